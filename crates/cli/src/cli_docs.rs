//! `bylaw __cli-docs` (hidden): prints docs/cli.md from the clap definitions, so the reference
//! cannot drift from the flags. `make cli-docs` writes the file; a test fails when it is stale.
//! Hooked in before argument parsing so it needs no variant in the command enum.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::output;

/// The argument that asks for the reference.
const TRIGGER: &str = "__cli-docs";

/// Prints the reference and returns an exit code when the first argument is [`TRIGGER`].
pub fn intercept<C: CommandFactory>() -> Option<ExitCode> {
    if std::env::args_os().nth(1)? != TRIGGER {
        return None;
    }
    output::text(&render(C::command()));
    Some(ExitCode::SUCCESS)
}

/// The whole reference as Markdown.
pub fn render(mut root: Command) -> String {
    root.build();
    let mut out = String::new();
    out.push_str("# bylaw command line reference\n\n");
    out.push_str(
        "<!-- Generated from the clap definitions by `make cli-docs`; do not edit by hand. \
         A test fails when this file is out of date. -->\n\n",
    );
    if let Some(about) = root.get_about() {
        let _ = writeln!(out, "{}\n", sentence(&about.to_string()));
    }
    out.push_str("| command | what it does |\n|---|---|\n");
    for sub in visible_subcommands(&root) {
        let _ = writeln!(
            out,
            "| [`bylaw {}`](#bylaw-{}) | {} |",
            sub.get_name(),
            sub.get_name(),
            cell(&sentence(
                &sub.get_about().map(ToString::to_string).unwrap_or_default()
            ))
        );
    }
    out.push('\n');
    for sub in visible_subcommands(&root) {
        render_command(&mut out, &format!("bylaw {}", sub.get_name()), sub, 2);
    }
    out
}

fn visible_subcommands(cmd: &Command) -> Vec<&Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect()
}

fn render_command(out: &mut String, path: &str, cmd: &Command, depth: usize) {
    let _ = writeln!(out, "{} `{path}`\n", "#".repeat(depth));
    let about = cmd
        .get_long_about()
        .or_else(|| cmd.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    if !about.is_empty() {
        let _ = writeln!(out, "{}\n", sentence(&about));
    }
    let usage = cmd
        .clone()
        .render_usage()
        .to_string()
        .replace("Usage: ", "");
    let _ = writeln!(out, "```text\n{}\n```\n", usage.trim());

    let args: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter(|a| !matches!(a.get_action(), ArgAction::Help | ArgAction::Version))
        .collect();
    if !args.is_empty() {
        out.push_str("| argument | environment | default | meaning |\n|---|---|---|---|\n");
        for arg in args {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                name_cell(arg),
                arg.get_env()
                    .map(|e| format!("`{}`", e.to_string_lossy()))
                    .unwrap_or_default(),
                default_cell(arg),
                meaning_cell(arg)
            );
        }
        out.push('\n');
    }
    for sub in visible_subcommands(cmd) {
        render_command(out, &format!("{path} {}", sub.get_name()), sub, depth + 1);
    }
}

fn name_cell(arg: &Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("<{}>", arg.get_id().as_str().to_uppercase()));
    if arg.is_positional() {
        let dots = if matches!(arg.get_action(), ArgAction::Append) {
            "..."
        } else {
            ""
        };
        return format!("`{value}{dots}`");
    }
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("-{short}"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("--{long}"));
    }
    let takes_value = matches!(arg.get_action(), ArgAction::Set | ArgAction::Append);
    if takes_value {
        format!("`{} {value}`", names.join(", "))
    } else {
        format!("`{}`", names.join(", "))
    }
}

fn default_cell(arg: &Arg) -> String {
    if matches!(
        arg.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
    ) {
        return String::new();
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    match defaults.join(",").as_str() {
        "" if defaults.is_empty() => String::new(),
        "" => "`\"\"`".to_owned(),
        joined => format!("`{joined}`"),
    }
}

fn meaning_cell(arg: &Arg) -> String {
    let text = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    // clap drops the final period of a doc comment; put it back before adding sentences.
    let mut text = sentence(text.trim());
    let is_bool = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    if !values.is_empty() && !is_bool {
        let _ = write!(text, " One of {}.", values.join(", "));
    }
    if arg.is_required_set() {
        text.push_str(" Required.");
    }
    cell(&text)
}

fn sentence(text: &str) -> String {
    if text.is_empty() || text.ends_with(['.', '!', '?', ':']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.trim()
        .replace('|', "\\|")
        .replace("\n\n", "<br>")
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand, ValueEnum};

    #[derive(Parser)]
    #[command(name = "tool", about = "A tool.")]
    struct Tool {
        #[command(subcommand)]
        command: ToolCommand,
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum Format {
        Table,
        Json,
    }

    #[derive(Subcommand)]
    enum ToolCommand {
        /// Runs things | fast.
        Run {
            /// Files to run.
            #[arg(required = true)]
            files: Vec<String>,
            /// Where to listen.
            #[arg(long, env = "TOOL_LISTEN", default_value = "0.0.0.0:1")]
            listen: String,
            /// Output format.
            #[arg(short = 'o', long, value_enum, default_value = "table")]
            output: Format,
            /// Be quiet.
            #[arg(long)]
            quiet: bool,
        },
        #[command(hide = true)]
        Secret,
    }

    #[test]
    fn renders_every_visible_command_and_flag_with_env_default_and_values() {
        let text = render(Tool::command());
        assert!(
            text.contains("| [`bylaw run`](#bylaw-run) | Runs things \\| fast. |"),
            "{text}"
        );
        assert!(text.contains("## `bylaw run`"), "{text}");
        assert!(
            text.contains("| `<FILES>...` |  |  | Files to run. Required. |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| `--listen <LISTEN>` | `TOOL_LISTEN` | `0.0.0.0:1` | Where to listen. |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| `-o, --output <OUTPUT>` |  | `table` | Output format. One of `table`, `json`. |"
            ),
            "{text}"
        );
        assert!(text.contains("| `--quiet` |  |  | Be quiet. |"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("--help"), "{text}");
    }
}
