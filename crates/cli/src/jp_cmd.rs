//! `bylaw jp`: JMESPath with Kyverno's functions, for writing and debugging policy expressions.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::output;

#[derive(Debug, Args)]
pub struct JpArgs {
    #[command(subcommand)]
    command: JpCommand,
}

#[derive(Debug, Subcommand)]
enum JpCommand {
    /// Evaluate an expression against JSON or YAML input (a file, or standard input).
    Query {
        /// The expression(s) to evaluate.
        #[arg(required = true)]
        queries: Vec<String>,
        /// Input file; standard input when absent.
        #[arg(short = 'i', long = "input")]
        input: Option<PathBuf>,
        /// Print strings without JSON quotes.
        #[arg(short = 'u', long = "unquoted")]
        unquoted: bool,
    },
    /// List the available functions, or describe the named ones.
    Function { names: Vec<String> },
    /// Check an expression's syntax and print how it parses.
    Parse {
        #[arg(required = true)]
        expressions: Vec<String>,
    },
}

pub fn run(args: JpArgs) -> Result<ExitCode> {
    match args.command {
        JpCommand::Query {
            queries,
            input,
            unquoted,
        } => {
            let (text, source) = match &input {
                Some(path) => (
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                    path.display().to_string(),
                ),
                None => {
                    let mut buf = String::new();
                    std::io::stdin()
                        .read_to_string(&mut buf)
                        .context("cannot read standard input")?;
                    (buf, "<stdin>".to_owned())
                }
            };
            let docs = bylaw_api::yaml::parse_documents(&text, &source)?;
            let data = docs.into_iter().next().unwrap_or(Value::Null);
            for query in &queries {
                let expr = bylaw_engine::jmespath::compile(query)
                    .map_err(|e| anyhow::anyhow!("{query}: {e}"))?;
                let result = expr
                    .search(&data)
                    .map_err(|e| anyhow::anyhow!("{query}: {e}"))?;
                match (&result, unquoted) {
                    (Value::String(s), true) => output::line(s),
                    _ => output::line(&serde_json::to_string_pretty(&result)?),
                }
            }
        }
        JpCommand::Function { names } => {
            let mut functions = bylaw_engine::jmespath::functions();
            functions.sort_by(|a, b| a.name.cmp(b.name));
            for f in functions
                .iter()
                .filter(|f| names.is_empty() || names.iter().any(|n| n == f.name))
            {
                output::line(&format!("{}\n  {}\n", f.signature, f.description));
            }
        }
        JpCommand::Parse { expressions } => {
            for expr in &expressions {
                let parsed = bylaw_engine::jmespath::parse_tree(expr)
                    .map_err(|e| anyhow::anyhow!("{expr}: {e}"))?;
                output::line(&format!("# {expr}\n{parsed}"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
