//! Tracing setup: a text or JSON formatter behind a reloadable `EnvFilter`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// Output format of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with span fields.
    Json,
}

/// Logging flags shared by every bylaw server.
#[derive(Clone, Debug, clap::Args)]
pub struct LogArgs {
    /// Log line format; `text` is coloured only on a terminal without `NO_COLOR`.
    #[arg(long = "log-format", env = "BYLAW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
    /// Log filter in `RUST_LOG` syntax, e.g. `info,bylaw_webhook=debug`.
    #[arg(long = "log-filter", env = "BYLAW_LOG", default_value = "info")]
    pub filter: String,
}

/// Changes the log filter of a running process.
#[derive(Clone, Debug)]
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogHandle {
    /// Replaces the active filter, e.g. to turn on debug logs without a restart.
    pub fn set_filter(&self, filter: &str) -> Result<(), crate::Error> {
        let filter = parse_filter(filter)?;
        self.handle
            .reload(filter)
            .map_err(|e| crate::Error::TracingInit(e.to_string()))
    }
}

fn parse_filter(filter: &str) -> Result<EnvFilter, crate::Error> {
    EnvFilter::try_new(filter).map_err(|e| crate::Error::InvalidLogFilter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })
}

/// Colours only on a terminal: piped to a file or a container runtime (`kubectl logs`), escape
/// codes would split every `key=value` a reader or a log pipeline looks for. `NO_COLOR` turns
/// them off on a terminal too.
fn colour_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global tracing subscriber. Fails on an invalid filter or when a subscriber is
/// already installed.
pub fn init_tracing(format: LogFormat, filter: &str) -> Result<LogHandle, crate::Error> {
    let (filter_layer, handle) = reload::Layer::new(parse_filter(filter)?);
    let registry = tracing_subscriber::registry().with(filter_layer);
    let result = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_target(true).with_ansi(colour_wanted()))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
    };
    result.map_err(|e| crate::Error::TracingInit(e.to_string()))?;
    Ok(LogHandle { handle })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_filter_is_a_clear_error() {
        let err = init_tracing(LogFormat::Text, "info,[unclosed").unwrap_err();
        assert!(
            err.to_string().contains("info,[unclosed"),
            "error should quote the filter: {err}"
        );
    }
}
