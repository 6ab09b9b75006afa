//! `bylaw serve`: the admission webhook, standalone. Policies come from files and are re-read
//! when they change; namespace labels and ConfigMaps come from optional files; no cluster needed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bylaw_runtime::results::ResultsReceiver;
use bylaw_runtime::{
    init_tracing, results_channel, ContextSource, EmptyContext, FileContextSource,
    FilePolicySource, LogArgs, Metrics, PolicyCache, PolicyEvaluator, PolicySource, ReloadOutcome,
    RuleResult, Shutdown,
};
use bylaw_webhook::duration::parse_go_duration;
use bylaw_webhook::{generate_dev_certificate, Server, WebhookConfig};
use clap::Args;

use crate::output;

/// Batches of rule outcomes the reporting channel holds before it drops new ones.
const RESULTS_CAPACITY: usize = 4096;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Policy files or directories (ClusterPolicy, Policy, PolicyException; hidden directories are
    /// skipped). Re-read when a file changes; an invalid file keeps the last good set serving.
    #[arg(long = "policies", env = "BYLAW_POLICIES", required = true, num_args = 1.., value_delimiter = ',')]
    policies: Vec<PathBuf>,

    /// YAML map of namespace → labels, for `namespaceSelector` and failure-action overrides.
    #[arg(long = "namespace-labels", env = "BYLAW_NAMESPACE_LABELS")]
    namespace_labels: Option<PathBuf>,

    /// Kubernetes manifests whose Namespaces add labels and whose ConfigMaps answer `configMap`
    /// context entries (files or directories, repeatable).
    #[arg(long = "context", env = "BYLAW_CONTEXT", value_delimiter = ',')]
    context: Vec<PathBuf>,

    /// How often policy and context files are checked for changes.
    #[arg(long = "reload-interval", env = "BYLAW_RELOAD_INTERVAL", default_value = "1s", value_parser = parse_go_duration)]
    reload_interval: Duration,

    /// Serve a freshly generated self-signed certificate (development only); prints its CA.
    #[arg(long = "dev-tls", env = "BYLAW_DEV_TLS", conflicts_with_all = ["tls_cert_file", "tls_key_file"])]
    dev_tls: bool,

    /// Where `--dev-tls` writes tls.crt, tls.key and ca.crt (default: a new temporary directory).
    #[arg(long = "dev-tls-dir", env = "BYLAW_DEV_TLS_DIR", requires = "dev_tls")]
    dev_tls_dir: Option<PathBuf>,

    /// DNS names and IP addresses the `--dev-tls` certificate is valid for.
    #[arg(
        long = "dev-tls-name",
        env = "BYLAW_DEV_TLS_NAMES",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1"
    )]
    dev_tls_names: Vec<String>,

    #[command(flatten)]
    webhook: WebhookConfig,

    #[command(flatten)]
    log: LogArgs,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    // Destructured so that a new flag cannot be silently ignored.
    let ServeArgs {
        policies,
        namespace_labels,
        context,
        reload_interval,
        dev_tls,
        dev_tls_dir,
        dev_tls_names,
        mut webhook,
        log,
    } = args;
    init_tracing(log.format, &log.filter)?;
    for path in &policies {
        anyhow::ensure!(
            path.exists(),
            "--policies {}: no such file or directory",
            path.display()
        );
    }
    let context: Arc<dyn ContextSource> = if namespace_labels.is_none() && context.is_empty() {
        Arc::new(EmptyContext)
    } else {
        Arc::new(
            FileContextSource::load(namespace_labels, context)
                .context("reading the context files")?,
        )
    };
    if dev_tls {
        let dir = match dev_tls_dir {
            Some(dir) => dir,
            None => std::env::temp_dir().join(format!("bylaw-dev-tls-{}", std::process::id())),
        };
        let (cert, key) = write_dev_certificate(&dir, &dev_tls_names)?;
        webhook.tls_cert_file = Some(cert);
        webhook.tls_key_file = Some(key);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bylaw-serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(policies, context, reload_interval, webhook))?;
    Ok(ExitCode::SUCCESS)
}

fn write_dev_certificate(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let certificate = generate_dev_certificate(names)?;
    let (cert, key) = certificate.write_files(dir)?;
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, &certificate.ca_pem)
        .with_context(|| format!("cannot write {}", ca.display()))?;
    output::line(&format!(
        "bylaw serve: development certificate for {} in {} (CA: {}, never use it in production)",
        names.join(", "),
        dir.display(),
        ca.display()
    ));
    output::text(&certificate.ca_pem);
    Ok((cert, key))
}

async fn serve(
    policies: Vec<PathBuf>,
    context: Arc<dyn ContextSource>,
    reload_interval: Duration,
    webhook: WebhookConfig,
) -> Result<()> {
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    let cache = Arc::new(PolicyCache::new(metrics.clone()));
    let source: Arc<dyn PolicySource> = Arc::new(FilePolicySource::new(policies));
    if let ReloadOutcome::Failed(_) = cache.reload_from(source.as_ref()) {
        tracing::warn!("not ready until the policy files can be read");
    }

    let evaluator = Arc::new(PolicyEvaluator::new(cache.clone(), context.clone()));
    let (results, outcomes) = results_channel(RESULTS_CAPACITY, metrics.clone());
    let server = Server::new_from_config(webhook, evaluator, metrics)?.with_results(results);
    let bound = server.bind().await?;
    output::line(&format!(
        "bylaw serve: listening on https://{}",
        bound.local_addr()
    ));

    let shutdown = Shutdown::new();
    let signal = shutdown.signal();
    tokio::spawn(cache.watch(source, context, reload_interval, signal.clone()));
    tokio::spawn(log_outcomes(outcomes));
    shutdown.trigger_on_os_signal();
    bound.run(signal).await?;
    Ok(())
}

/// Standalone mode has no reports to write: failures and errors go to the debug log.
async fn log_outcomes(mut outcomes: ResultsReceiver) {
    while let Some(batch) = outcomes.recv().await {
        for outcome in batch
            .outcomes
            .iter()
            .filter(|o| matches!(o.result, RuleResult::Fail | RuleResult::Error))
        {
            tracing::debug!(
                uid = %batch.request_uid,
                kind = %batch.resource.kind.kind,
                namespace = batch.resource.namespace.as_deref().unwrap_or(""),
                name = %batch.resource.name,
                policy = %outcome.policy,
                rule = %outcome.rule,
                result = outcome.result.as_str(),
                message = %outcome.message,
                "rule outcome"
            );
        }
    }
}
