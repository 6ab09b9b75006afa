//! The `bylaw` binary: offline policy tooling (`apply`, `test`, `jp`, `crds`) and, later, the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod apply_cmd;
mod cli_docs;
mod cluster;
mod cluster_resources;
mod conformance;
mod jp_cmd;
mod load;
mod output;
mod run;
mod serve_cmd;
mod test_cmd;

/// Policy evaluation allocates and frees many small JSON nodes; glibc's allocator spent a third
/// to a half of the engine's instructions on them. mimalloc's thread-local free lists do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// bylaw — a Kyverno-compatible Kubernetes policy engine.
#[derive(Debug, Parser)]
#[command(name = "bylaw", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplyFormat {
    Table,
    Json,
    Yaml,
}

/// How rule messages are written: bylaw's (Kyverno's text plus what was found and what was
/// wanted) or exactly Kyverno's, for tools that match its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum MessageFormatArg {
    #[default]
    Bylaw,
    Kyverno,
}

impl From<MessageFormatArg> for bylaw_engine::response::MessageFormat {
    fn from(arg: MessageFormatArg) -> Self {
        match arg {
            MessageFormatArg::Bylaw => bylaw_engine::response::MessageFormat::Bylaw,
            MessageFormatArg::Kyverno => bylaw_engine::response::MessageFormat::Kyverno,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    Table,
    Json,
    Junit,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply policies to resources and print the results.
    Apply(apply_cmd::ApplyArgs),
    /// Run kyverno-test.yaml suites and compare every expected result.
    Test {
        /// Directories (or suite files) to search for test files; dot-folders included.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Name of the test files to look for.
        #[arg(short = 'f', long = "file-name", default_value = "kyverno-test.yaml")]
        file_name: String,
        /// Only run rows matching `policy=…,rule=…,resource=…` (wildcards allowed).
        #[arg(long = "test-case-selector", default_value = "")]
        test_case_selector: String,
        /// Print only the rows that did not match.
        #[arg(long = "fail-only")]
        fail_only: bool,
        /// Also print the engine's message for each row.
        #[arg(long = "detailed-results")]
        detailed_results: bool,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = TestFormat::Table)]
        output: TestFormat,
        /// Rule messages as bylaw writes them (with what was found and wanted) or exactly as
        /// Kyverno does.
        #[arg(long = "message-format", value_enum, default_value_t = MessageFormatArg::Bylaw)]
        message_format: MessageFormatArg,
        /// A custom kind whose objects live outside namespaces (`Kind` or `group/Kind`;
        /// repeatable). CustomResourceDefinitions among the inputs are read too.
        #[arg(long = "cluster-scoped")]
        cluster_scoped: Vec<String>,
    },
    /// Query JSON with JMESPath and Kyverno's functions.
    Jp(jp_cmd::JpArgs),
    /// Print the CustomResourceDefinitions bylaw serves, or write them to a directory.
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long = "out-dir")]
        out_dir: Option<PathBuf>,
    },
    /// Score bylaw against Kyverno's public policy library (`make conformance`).
    #[command(hide = true)]
    Conformance(conformance::ConformanceArgs),
    /// Run the admission webhook: policies from files (`--policies`) or from the cluster.
    Serve(Box<serve_cmd::ServeArgs>),
    /// Print the version and the git commit bylaw was built from.
    Version,
}

fn main() -> ExitCode {
    if let Some(code) = cli_docs::intercept::<Cli>() {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apply(args) => apply_cmd::run(args),
        Command::Test {
            dirs,
            file_name,
            test_case_selector,
            fail_only,
            detailed_results,
            output,
            message_format,
            cluster_scoped,
        } => run_test(
            &dirs,
            &file_name,
            &test_case_selector,
            TestOutput {
                fail_only,
                detailed: detailed_results,
                format: output,
                message_format,
            },
            cluster_scoped,
        ),
        Command::Jp(args) => jp_cmd::run(args),
        Command::Crds { out_dir } => write_crds(out_dir),
        Command::Conformance(args) => conformance::run(args),
        Command::Serve(args) => serve_cmd::run(*args),
        Command::Version => {
            output::line(&format!(
                "bylaw {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("BYLAW_GIT_COMMIT")
            ));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::error(&err);
            ExitCode::from(2)
        }
    }
}

/// How `bylaw test` reports.
struct TestOutput {
    fail_only: bool,
    detailed: bool,
    format: TestFormat,
    message_format: MessageFormatArg,
}

fn run_test(
    dirs: &[PathBuf],
    file_name: &str,
    selector: &str,
    output: TestOutput,
    cluster_scoped: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let TestOutput {
        fail_only,
        detailed,
        format,
        message_format,
    } = output;
    let selector_text = selector;
    let options = test_cmd::SuiteOptions {
        selector: test_cmd::CaseSelector::parse(selector)?,
        message_format: message_format.into(),
        cluster_scoped,
    };
    let mut suites = Vec::new();
    for dir in dirs {
        suites.extend(test_cmd::find_suites(dir, file_name)?);
    }
    if suites.is_empty() {
        anyhow::bail!(
            "no {file_name} found below {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let results: Vec<test_cmd::SuiteResult> = suites
        .iter()
        .flat_map(|s| test_cmd::run_suites(s, &options))
        .filter(|suite| !suite.deselected)
        .collect();
    if results.is_empty() {
        anyhow::bail!(
            "--test-case-selector {selector_text:?} selects no result row in {} suite file(s): \
             nothing was checked",
            suites.len()
        );
    }
    match format {
        TestFormat::Table => output::test_table(&results, fail_only, detailed),
        TestFormat::Json => output::json(&results)?,
        TestFormat::Junit => output::text(&output::junit(&results)),
    }
    let all_passed = results.iter().all(test_cmd::SuiteResult::passed);
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn write_crds(out_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    match out_dir {
        None => output::text(&bylaw_api::crds_yaml()),
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (file, text) in bylaw_api::crd_files() {
                let path = dir.join(file);
                std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
