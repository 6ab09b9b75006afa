//! Flags of the webhook server.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::parse_go_duration;
use crate::filter::DEFAULT_RESOURCE_FILTERS;

/// Default request body limit: 3 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Configuration of the admission webhook server; every flag also reads a `BYLAW_*` variable.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookConfig {
    /// Address the HTTPS server listens on.
    #[arg(long, env = "BYLAW_LISTEN", default_value = "0.0.0.0:9443")]
    pub listen: SocketAddr,

    /// PEM certificate chain served to the API server; reloaded when the file changes.
    #[arg(long, env = "BYLAW_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key matching `--tls-cert-file`; reloaded when the file changes.
    #[arg(long, env = "BYLAW_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// How often the certificate files are checked for changes.
    #[arg(long, env = "BYLAW_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_go_duration)]
    pub tls_reload_interval: Duration,

    /// Largest accepted AdmissionReview body, in bytes.
    #[arg(long, env = "BYLAW_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Longest a request body may take to arrive; a slower client gets 408 and frees its slot.
    #[arg(long, env = "BYLAW_BODY_READ_TIMEOUT", default_value = "2s", value_parser = parse_go_duration)]
    pub body_read_timeout: Duration,

    /// Evaluations running at once; more requests wait (until their deadline). Default: 2 × CPUs.
    #[arg(long, env = "BYLAW_MAX_CONCURRENCY")]
    pub max_concurrency: Option<NonZeroUsize>,

    /// Time kept in reserve below the API server's timeout, so an answer arrives before it gives up.
    #[arg(long, env = "BYLAW_TIMEOUT_MARGIN", default_value = "1s", value_parser = parse_go_duration)]
    pub timeout_margin: Duration,

    /// Review timeout used when the request carries no `?timeout=` (the API server's default is 10s).
    #[arg(long, env = "BYLAW_DEFAULT_TIMEOUT", default_value = "10s", value_parser = parse_go_duration)]
    pub default_timeout: Duration,

    /// Requests admitted without evaluation, in Kyverno's `[Kind,Namespace,Name]` syntax.
    #[arg(long, env = "BYLAW_RESOURCE_FILTERS", default_value = DEFAULT_RESOURCE_FILTERS)]
    pub resource_filters: String,

    /// Namespace bylaw runs in; requests for it are never evaluated (empty disables this).
    /// Default: the Pod's namespace (`POD_NAMESPACE`, else the service account's namespace
    /// file), else `bylaw-system`.
    #[arg(long = "namespace", env = "BYLAW_NAMESPACE")]
    pub own_namespace: Option<String>,
}

/// bylaw's namespace when `--namespace` is not given outside a cluster.
pub const DEFAULT_NAMESPACE: &str = "bylaw-system";

/// Where Kubernetes mounts the service account's namespace in a Pod.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// bylaw's namespace: the flag, else `POD_NAMESPACE`, else the service-account namespace file,
/// else [`DEFAULT_NAMESPACE`].
pub fn resolve_namespace(flag: Option<&str>) -> String {
    resolve_namespace_from(
        flag,
        std::env::var("POD_NAMESPACE").ok().as_deref(),
        std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE)
            .ok()
            .as_deref(),
    )
}

fn resolve_namespace_from(flag: Option<&str>, env: Option<&str>, file: Option<&str>) -> String {
    if let Some(flag) = flag {
        return flag.trim().to_owned();
    }
    [env, file]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned()
}

impl WebhookConfig {
    /// A configuration with every default, serving the given certificate files.
    pub fn with_tls_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        WebhookConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9443)),
            tls_cert_file: Some(cert.into()),
            tls_key_file: Some(key.into()),
            tls_reload_interval: Duration::from_secs(5),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: Duration::from_secs(2),
            max_concurrency: None,
            timeout_margin: Duration::from_secs(1),
            default_timeout: Duration::from_secs(10),
            resource_filters: DEFAULT_RESOURCE_FILTERS.to_owned(),
            own_namespace: None,
        }
    }
}

/// The evaluation budget for a review with the given API-server timeout: the timeout minus the
/// margin, but never less than half the timeout (a 1s webhook with a 1s margin still gets 500ms).
pub fn evaluation_budget(timeout: Duration, margin: Duration) -> Duration {
    timeout.saturating_sub(margin).max(timeout / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        webhook: WebhookConfig,
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let cli = Cli::try_parse_from(["bylaw"]).unwrap();
        let defaults = WebhookConfig::with_tls_files("c", "k");
        let parsed = cli.webhook;
        assert_eq!(parsed.listen, defaults.listen);
        assert_eq!(parsed.max_body_bytes, 3 * 1024 * 1024);
        assert_eq!(parsed.timeout_margin, defaults.timeout_margin);
        assert_eq!(parsed.default_timeout, defaults.default_timeout);
        assert_eq!(parsed.tls_reload_interval, defaults.tls_reload_interval);
        assert_eq!(parsed.resource_filters, defaults.resource_filters);
        assert_eq!(parsed.own_namespace, defaults.own_namespace);
        assert_eq!(parsed.tls_cert_file, None);
    }

    #[test]
    fn flags_take_typed_values() {
        let cli = Cli::try_parse_from([
            "bylaw",
            "--listen",
            "127.0.0.1:8443",
            "--timeout-margin",
            "250ms",
            "--max-concurrency",
            "3",
            "--tls-cert-file",
            "/tls/tls.crt",
        ])
        .unwrap();
        assert_eq!(cli.webhook.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(cli.webhook.timeout_margin, Duration::from_millis(250));
        assert_eq!(cli.webhook.max_concurrency, NonZeroUsize::new(3));
        assert!(Cli::try_parse_from(["bylaw", "--timeout-margin", "soon"]).is_err());
        assert!(Cli::try_parse_from(["bylaw", "--max-concurrency", "0"]).is_err());
    }

    #[test]
    fn the_namespace_comes_from_the_flag_the_pod_or_the_default() {
        assert_eq!(
            resolve_namespace_from(Some("ops"), Some("pod"), Some("file")),
            "ops"
        );
        assert_eq!(
            resolve_namespace_from(Some(""), Some("pod"), None),
            "",
            "empty turns it off"
        );
        assert_eq!(
            resolve_namespace_from(None, Some("pod-ns"), Some("file-ns")),
            "pod-ns"
        );
        assert_eq!(
            resolve_namespace_from(None, None, Some("file-ns\n")),
            "file-ns"
        );
        assert_eq!(
            resolve_namespace_from(None, Some(" "), None),
            "bylaw-system"
        );
        assert_eq!(resolve_namespace_from(None, None, None), "bylaw-system");
    }

    #[test]
    fn budget_keeps_a_margin_but_at_least_half() {
        let s = Duration::from_secs;
        assert_eq!(evaluation_budget(s(10), s(1)), s(9));
        assert_eq!(evaluation_budget(s(1), s(1)), Duration::from_millis(500));
        assert_eq!(evaluation_budget(s(30), s(1)), s(29));
        assert_eq!(evaluation_budget(s(2), Duration::ZERO), s(2));
    }
}
