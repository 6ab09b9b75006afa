//! `bylaw serve`: the admission webhook.
//!
//! * Standalone (`--policies DIR`): policies come from files and are re-read when they change;
//!   namespace labels, ConfigMaps and role bindings come from optional files; no cluster needed.
//! * In a cluster (`--kubeconfig FILE`, or the Pod's service account when neither flag is
//!   given): policies come from the API server, their status and events go back to it, and
//!   policies look up namespaces, roles, ConfigMaps and API paths there
//!   (`bylaw_controller::Cluster`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bylaw_controller::certs::{remove_managed_secret, CertificateManager, IssuedCertificate};
use bylaw_controller::events::EventLimits;
use bylaw_controller::generate::queue::QueueConfig;
use bylaw_controller::generate::GenerateConfig;
use bylaw_controller::lease::{run_elector, LeaseConfig};
use bylaw_controller::policies::{ExceptionScope, PolicySyncConfig};
use bylaw_controller::reports::ReportOptions;
use bylaw_controller::webhooks::{
    remove_configurations, Endpoint, WebhookRegistrar, WebhookSettings,
};
use bylaw_controller::{leadership, Cluster, ClusterContext, ClusterContextConfig, ClusterOptions};
use bylaw_reports::ResultFilter;
use bylaw_runtime::context_scope::DEFAULT_MAX_CONTEXT_BYTES;
use bylaw_runtime::results::ResultsReceiver;
use bylaw_runtime::{
    init_tracing, results_channel, ContextSource, EmptyContext, FileContextSource,
    FilePolicySource, LogArgs, Metrics, PolicyCache, PolicyEvaluator, PolicySource, ReloadOutcome,
    RuleResult, Shutdown,
};
use bylaw_webhook::config::resolve_namespace;
use bylaw_webhook::duration::parse_go_duration;
use bylaw_webhook::{generate_dev_certificate, DevCa, Server, WebhookConfig};
use clap::Args;

use crate::{output, MessageFormatArg};

/// Batches of rule outcomes the reporting channel holds before it drops new ones.
const RESULTS_CAPACITY: usize = 4096;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Standalone mode: policy files or directories (ClusterPolicy, Policy, PolicyException;
    /// hidden directories are skipped), re-read when a file changes. A file or policy that does
    /// not load is reported and skipped; the others serve.
    #[arg(long = "policies", env = "BYLAW_POLICIES", num_args = 1.., value_delimiter = ',', conflicts_with = "kubeconfig")]
    policies: Vec<PathBuf>,

    /// In-cluster mode with this kubeconfig (default without `--policies`: the Pod's service
    /// account). Policies, namespaces, role bindings and ConfigMaps come from the API server.
    #[arg(long = "kubeconfig", env = "BYLAW_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// Standalone: YAML map of namespace → labels, for `namespaceSelector` and failure-action
    /// overrides.
    #[arg(
        long = "namespace-labels",
        env = "BYLAW_NAMESPACE_LABELS",
        requires = "policies"
    )]
    namespace_labels: Option<PathBuf>,

    /// Standalone: Kubernetes manifests whose Namespaces add labels, whose ConfigMaps answer
    /// `configMap` context entries and whose RoleBindings and ClusterRoleBindings give users
    /// their roles (files or directories, repeatable).
    #[arg(
        long = "context",
        env = "BYLAW_CONTEXT",
        value_delimiter = ',',
        requires = "policies"
    )]
    context: Vec<PathBuf>,

    /// Standalone: how often policy and context files are checked for changes.
    #[arg(long = "reload-interval", env = "BYLAW_RELOAD_INTERVAL", default_value = "1s", value_parser = parse_go_duration)]
    reload_interval: Duration,

    /// Largest total of data (ConfigMaps, API calls) the lookups of one review may return.
    #[arg(long = "max-context-bytes", env = "BYLAW_MAX_CONTEXT_BYTES", default_value_t = DEFAULT_MAX_CONTEXT_BYTES)]
    max_context_bytes: usize,

    #[command(flatten)]
    cluster: ClusterArgs,

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

/// Flags of the in-cluster mode.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Namespace whose PolicyExceptions are honoured; `*` for every namespace. Empty (the
    /// default, as in Kyverno) ignores PolicyExceptions in the cluster.
    #[arg(
        long = "exception-namespace",
        conflicts_with = "policies",
        env = "BYLAW_EXCEPTION_NAMESPACE",
        default_value = ""
    )]
    exception_namespace: String,

    /// Raise PolicyViolation events for Audit failures too (Enforce denials always raise them).
    #[arg(long = "audit-events", conflicts_with = "policies", env = "BYLAW_AUDIT_EVENTS", default_value_t = true, action = clap::ArgAction::Set)]
    audit_events: bool,

    /// Generate and mutate-existing work items started per second at most (the leader's
    /// queue; policies take turns).
    #[arg(
        long = "generate-rate",
        conflicts_with = "policies",
        env = "BYLAW_GENERATE_RATE",
        default_value_t = 50.0
    )]
    generate_rate: f64,

    /// Generate and mutate-existing work items handled at once.
    #[arg(
        long = "generate-workers",
        conflicts_with = "policies",
        env = "BYLAW_GENERATE_WORKERS",
        default_value_t = 4
    )]
    generate_workers: usize,

    /// Write PolicyReports (background scan results and Audit admission results).
    #[arg(long = "reports", conflicts_with = "policies", env = "BYLAW_REPORTS", default_value_t = true, action = clap::ArgAction::Set)]
    reports: bool,

    /// Evaluate existing resources against `background: true` policies.
    #[arg(long = "background-scan", conflicts_with = "policies", env = "BYLAW_BACKGROUND_SCAN", default_value_t = true, action = clap::ArgAction::Set)]
    background_scan: bool,

    /// How often every watched resource is evaluated again (changes are evaluated at once).
    #[arg(long = "background-scan-interval", conflicts_with = "policies", env = "BYLAW_BACKGROUND_SCAN_INTERVAL", default_value = "1h", value_parser = parse_go_duration)]
    background_scan_interval: Duration,

    /// Results kept in reports: a comma-separated list of pass, fail, warn, error, skip
    /// (empty: all).
    #[arg(long = "report-results", conflicts_with = "policies", env = "BYLAW_REPORT_RESULTS", default_value = "", value_parser = parse_result_filter)]
    report_results: ResultFilter,

    /// Messages of background scan results: `kyverno` (Kyverno's text, compact) or `bylaw`
    /// (adds what was found and wanted, as admission and `bylaw apply` show it).
    #[arg(long = "report-message-format", conflicts_with = "policies", env = "BYLAW_REPORT_MESSAGE_FORMAT", value_enum, default_value_t = MessageFormatArg::Kyverno)]
    report_message_format: MessageFormatArg,

    /// Let `apiCall.service` call URLs (never loopback, link-local or metadata addresses, never
    /// with bylaw's token). Off by default.
    #[arg(
        long = "allow-service-calls",
        conflicts_with = "policies",
        env = "BYLAW_ALLOW_SERVICE_CALLS"
    )]
    allow_service_calls: bool,

    /// Longest an `apiCall` (API server or service) or a first ConfigMap fetch may take.
    #[arg(long = "api-call-timeout", conflicts_with = "policies", env = "BYLAW_API_CALL_TIMEOUT", default_value = "2s", value_parser = parse_go_duration)]
    api_call_timeout: Duration,

    /// Largest `apiCall` response, in bytes.
    #[arg(long = "api-call-max-bytes", conflicts_with = "policies", env = "BYLAW_API_CALL_MAX_BYTES", default_value_t = 2 * 1024 * 1024)]
    api_call_max_bytes: usize,

    /// How long an `apiCall` GET answer of the API server is reused.
    #[arg(long = "api-call-cache-ttl", conflicts_with = "policies", env = "BYLAW_API_CALL_CACHE_TTL", default_value = "5s", value_parser = parse_go_duration)]
    api_call_cache_ttl: Duration,

    /// Keep bylaw's ValidatingWebhookConfiguration and MutatingWebhookConfiguration in step
    /// with the policies (`false`: someone else registers the webhooks).
    #[arg(long = "register-webhooks", conflicts_with = "policies", env = "BYLAW_REGISTER_WEBHOOKS", default_value_t = true, action = clap::ArgAction::Set)]
    register_webhooks: bool,

    /// Name of both webhook configurations.
    #[arg(
        long = "webhook-name",
        conflicts_with = "policies",
        env = "BYLAW_WEBHOOK_NAME",
        default_value = "bylaw"
    )]
    webhook_name: String,

    /// Register the webhooks by URL (`https://HOST:PORT`: bylaw outside the cluster, control
    /// planes without nodes) instead of by Service.
    #[arg(
        long = "webhook-url",
        conflicts_with = "policies",
        env = "BYLAW_WEBHOOK_URL"
    )]
    webhook_url: Option<String>,

    /// The Service in bylaw's namespace the API server calls (port 443).
    #[arg(
        long = "service-name",
        conflicts_with = "policies",
        env = "BYLAW_SERVICE_NAME",
        default_value = "bylaw"
    )]
    service_name: String,

    /// Namespaces whose requests are never sent to bylaw (kube-system and bylaw's own always).
    #[arg(
        long = "webhook-exclude-namespace",
        conflicts_with = "policies",
        env = "BYLAW_WEBHOOK_EXCLUDE_NAMESPACES",
        value_delimiter = ','
    )]
    webhook_exclude_namespaces: Vec<String>,

    /// Secret in bylaw's namespace holding the self-managed CA and serving certificate (used
    /// when no `--tls-cert-file` is given).
    #[arg(
        long = "tls-secret",
        conflicts_with = "policies",
        env = "BYLAW_TLS_SECRET",
        default_value = "bylaw-tls"
    )]
    tls_secret: String,

    /// Where the self-managed certificate is written for the server (default: a directory
    /// under the system's temporary directory).
    #[arg(long = "cert-dir", conflicts_with = "policies", env = "BYLAW_CERT_DIR")]
    cert_dir: Option<PathBuf>,

    /// CA bundle (PEM) for the webhook configurations when `--tls-cert-file` is given
    /// (cert-manager's `ca.crt`); default: `ca.crt` beside the certificate, else the
    /// certificate itself.
    #[arg(
        long = "tls-ca-file",
        conflicts_with = "policies",
        env = "BYLAW_TLS_CA_FILE"
    )]
    tls_ca_file: Option<PathBuf>,

    /// Remove everything bylaw registered (webhook configurations, its certificate Secret)
    /// and exit.
    #[arg(long = "cleanup", conflicts_with = "policies")]
    cleanup: bool,
}

/// Where policies come from.
enum Mode {
    Files {
        policies: Vec<PathBuf>,
        context: Arc<dyn ContextSource>,
        reload_interval: Duration,
    },
    Cluster {
        kubeconfig: Option<PathBuf>,
        args: Box<ClusterArgs>,
    },
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    // Destructured so that a new flag cannot be silently ignored.
    let ServeArgs {
        policies,
        kubeconfig,
        namespace_labels,
        context,
        reload_interval,
        max_context_bytes,
        cluster,
        dev_tls,
        dev_tls_dir,
        dev_tls_names,
        mut webhook,
        log,
    } = args;
    init_tracing(log.format, &log.filter)?;
    let mode = if policies.is_empty() {
        Mode::Cluster {
            kubeconfig,
            args: Box::new(cluster),
        }
    } else {
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
        Mode::Files {
            policies,
            context,
            reload_interval,
        }
    };
    let namespace = resolve_namespace(webhook.own_namespace.as_deref());
    webhook.own_namespace = Some(namespace.clone());
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
    runtime.block_on(async move {
        match mode {
            Mode::Files {
                policies,
                context,
                reload_interval,
            } => {
                serve_files(
                    policies,
                    context,
                    reload_interval,
                    max_context_bytes,
                    webhook,
                )
                .await
            }
            Mode::Cluster { kubeconfig, args } => {
                serve_cluster(kubeconfig, *args, namespace, max_context_bytes, webhook).await
            }
        }
    })?;
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

async fn serve_files(
    policies: Vec<PathBuf>,
    context: Arc<dyn ContextSource>,
    reload_interval: Duration,
    max_context_bytes: usize,
    webhook: WebhookConfig,
) -> Result<()> {
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    let cache = Arc::new(PolicyCache::new(metrics.clone()));
    let source: Arc<dyn PolicySource> = Arc::new(FilePolicySource::new(policies));
    if let ReloadOutcome::Failed(_) = cache.reload_from(source.as_ref()) {
        tracing::warn!("not ready until the policy files can be read");
    }

    let evaluator = Arc::new(
        PolicyEvaluator::new(cache.clone(), context.clone())
            .with_max_context_bytes(max_context_bytes),
    );
    // Standalone, outcomes only feed the debug log: with it off they are not sent at all, which
    // spares every review a hand-off of its outcomes to another task (and their freeing there).
    let log_outcomes_wanted = tracing::enabled!(tracing::Level::DEBUG);
    let mut server = Server::new_from_config(webhook, evaluator, metrics.clone())?;
    if log_outcomes_wanted {
        let (results, outcomes) = results_channel(RESULTS_CAPACITY, metrics);
        server = server.with_results(results);
        tokio::spawn(log_outcomes(outcomes));
    }
    let bound = server.bind().await?;
    output::line(&format!(
        "bylaw serve: listening on https://{}",
        bound.local_addr()
    ));

    let shutdown = Shutdown::new();
    let signal = shutdown.signal();
    tokio::spawn(cache.watch(source, context, reload_interval, signal.clone()));
    shutdown.trigger_on_os_signal();
    bound.run(signal).await?;
    Ok(())
}

/// The API server client: from `--kubeconfig`, else the Pod's service account.
async fn kube_client(kubeconfig: Option<PathBuf>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => crate::cluster_resources::config_from_file(&path).await?,
        None => kube::Config::incluster().context(
            "no --policies and no --kubeconfig, and not running in a Pod: pass --policies DIR \
             (standalone) or --kubeconfig FILE (a cluster)",
        )?,
    };
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).context("cannot build the API client")?;
    output::line(&format!(
        "bylaw serve: policies from the cluster at {server}"
    ));
    Ok(client)
}

async fn serve_cluster(
    kubeconfig: Option<PathBuf>,
    args: ClusterArgs,
    namespace: String,
    max_context_bytes: usize,
    webhook: WebhookConfig,
) -> Result<()> {
    let ClusterArgs {
        exception_namespace,
        audit_events,
        generate_rate,
        generate_workers,
        reports,
        background_scan,
        background_scan_interval,
        report_results,
        report_message_format,
        allow_service_calls,
        api_call_timeout,
        api_call_max_bytes,
        api_call_cache_ttl,
        register_webhooks,
        webhook_name,
        webhook_url,
        service_name,
        webhook_exclude_namespaces,
        tls_secret,
        cert_dir,
        tls_ca_file,
        cleanup,
    } = args;
    anyhow::ensure!(
        generate_rate.is_finite() && generate_rate > 0.0,
        "--generate-rate must be a positive number of work items per second, got {generate_rate}"
    );
    anyhow::ensure!(
        generate_workers > 0,
        "--generate-workers must be at least 1"
    );
    let client = kube_client(kubeconfig).await?;
    if cleanup {
        return clean_up(&client, &webhook_name, &namespace, &tls_secret).await;
    }
    // The Lease, the certificate Secret and events live there: say so at once if it is missing.
    if !bylaw_controller::lease::namespace_exists(&client, &namespace)
        .await
        .context("reading bylaw's namespace")?
    {
        anyhow::bail!(
            "namespace {namespace:?} does not exist: create it (`kubectl create namespace {namespace}`) or pass --namespace"
        );
    }
    let mut webhook = webhook;
    let endpoint = match &webhook_url {
        Some(url) => {
            anyhow::ensure!(
                url.starts_with("https://"),
                "--webhook-url {url}: must start with https://"
            );
            Endpoint::Url(url.clone())
        }
        None => Endpoint::Service {
            name: service_name.clone(),
            namespace: namespace.clone(),
        },
    };
    let (ca_bundle, certificates) = match (&webhook.tls_cert_file, &webhook.tls_key_file) {
        (Some(cert), Some(_)) => (given_ca_bundle(cert, tls_ca_file.as_deref())?, None),
        _ => {
            let manager = CertificateManager {
                client: client.clone(),
                namespace: namespace.clone(),
                secret_name: tls_secret.clone(),
                names: certificate_names(&service_name, &namespace, webhook_url.as_deref()),
                dir: cert_dir.unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("bylaw-serving-cert-{}", std::process::id()))
                }),
                issuer: Arc::new(issue_serving_certificate),
            };
            let bundle = manager
                .ensure(true)
                .await
                .context("setting up the serving certificate")?;
            let (cert, key) = manager.files();
            webhook.tls_cert_file = Some(cert);
            webhook.tls_key_file = Some(key);
            output::line(&format!(
                "bylaw serve: serving certificate from Secret {namespace}/{tls_secret}"
            ));
            (bundle, Some(manager))
        }
    };
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    let cache = Arc::new(PolicyCache::new(metrics.clone()));
    let shutdown = Shutdown::new();
    let signal = shutdown.signal();

    let context = ClusterContext::start(
        client.clone(),
        ClusterContextConfig {
            call_timeout: api_call_timeout,
            max_response_bytes: api_call_max_bytes,
            api_call_cache_ttl,
            allow_service_calls,
            ..ClusterContextConfig::default()
        },
        signal.clone(),
    );
    let evaluator = Arc::new(
        PolicyEvaluator::new(cache.clone(), context.clone())
            .with_max_context_bytes(max_context_bytes),
    );
    let (results, outcomes) = results_channel(RESULTS_CAPACITY, metrics.clone());
    let server =
        Server::new_from_config(webhook, evaluator, metrics.clone())?.with_results(results);
    let bound = server.bind().await?;
    output::line(&format!(
        "bylaw serve: listening on https://{}",
        bound.local_addr()
    ));

    // Every replica serves admission; singleton work follows the Lease.
    let instance = std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("bylaw-{}", std::process::id()));
    let (elector, leadership) = leadership();
    let elector_task = tokio::spawn(run_elector(
        client.clone(),
        LeaseConfig::new(&namespace, &instance),
        elector,
        signal.clone(),
    ));
    let cluster = Cluster {
        client,
        namespace,
        cache,
        metrics,
        leadership,
        shutdown: signal.clone(),
    };
    let options = ClusterOptions {
        policies: PolicySyncConfig {
            exceptions: ExceptionScope::parse(&exception_namespace),
            ..PolicySyncConfig::default()
        },
        audit_events,
        event_limits: EventLimits::default(),
        generate: GenerateConfig {
            queue: QueueConfig {
                rate_per_second: generate_rate,
                burst: generate_rate * 2.0,
                ..QueueConfig::default()
            },
            workers: generate_workers,
            ..GenerateConfig::default()
        },
        instance: instance.clone(),
        reports: ReportOptions {
            enabled: reports,
            background_scan,
            rescan_interval: background_scan_interval.max(Duration::from_secs(1)),
            filter: report_results,
            messages: report_message_format.into(),
            ..ReportOptions::default()
        },
        ..ClusterOptions::default()
    };
    let (bundle_tx, bundle_rx) = tokio::sync::watch::channel(ca_bundle.clone());
    if let Some(manager) = certificates {
        tokio::spawn(manager.run(
            cluster.leadership.clone(),
            bundle_tx,
            CERTIFICATE_CHECK_INTERVAL,
            signal.clone(),
        ));
    }
    if register_webhooks {
        let registrar = WebhookRegistrar {
            client: cluster.client.clone(),
            settings: WebhookSettings {
                name: webhook_name,
                endpoint,
                ca_bundle,
                excluded_namespaces: webhook_exclude_namespaces,
                namespace: cluster.namespace.clone(),
            },
            leadership: cluster.leadership.clone(),
            discovery_interval: DISCOVERY_INTERVAL,
        };
        tokio::spawn(registrar.run(cluster.cache.clone(), bundle_rx, signal.clone()));
    }
    tokio::spawn(cluster.run(context, options, outcomes));
    shutdown.trigger_on_os_signal();
    bound.run(signal).await?;
    // In-flight reviews are answered; now hand the Lease over.
    let _ = tokio::time::timeout(Duration::from_secs(5), elector_task).await;
    Ok(())
}

/// How often the certificate Secret is checked (renewal by the leader, reload by all).
const CERTIFICATE_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// How often API discovery is refreshed for the webhook rules.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(300);

/// The names bylaw's own certificate covers: the Service's DNS names and the `--webhook-url`
/// host.
fn certificate_names(service: &str, namespace: &str, webhook_url: Option<&str>) -> Vec<String> {
    let mut names = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    if let Some(host) = webhook_url.and_then(url_host) {
        names.push(host);
    }
    names
}

/// `HOST` of `https://HOST[:PORT][/…]`, IPv6 brackets removed.
fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// A new CA (one year) and serving certificate (150 days).
fn issue_serving_certificate(names: &[String]) -> Result<IssuedCertificate, String> {
    let ca = DevCa::generate_valid_for("bylaw webhook CA", Some(bylaw_controller::certs::CA_DAYS))
        .map_err(|e| e.to_string())?;
    let issued = ca
        .issue_valid_for(names, Some(bylaw_controller::certs::CERTIFICATE_DAYS))
        .map_err(|e| e.to_string())?;
    Ok(IssuedCertificate {
        ca_pem: issued.ca_pem,
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
    })
}

/// The CA bundle for certificates bylaw was given.
fn given_ca_bundle(cert: &Path, ca_file: Option<&Path>) -> Result<String> {
    let beside = cert.with_file_name("ca.crt");
    let path = match ca_file {
        Some(path) => path.to_owned(),
        None if beside.exists() => beside,
        None => cert.to_owned(),
    };
    std::fs::read_to_string(&path)
        .with_context(|| format!("reading the CA bundle {}", path.display()))
}

/// `--cleanup`: removes the webhook configurations and the certificate Secret bylaw made.
async fn clean_up(client: &kube::Client, name: &str, namespace: &str, secret: &str) -> Result<()> {
    let removed = remove_configurations(client, name)
        .await
        .context("removing the webhook configurations")?;
    let ours = remove_managed_secret(client, namespace, secret)
        .await
        .context("removing the certificate Secret")?;
    output::line(&format!(
        "bylaw serve --cleanup: removed {removed} webhook configuration(s) named {name}{}",
        if ours {
            format!(" and Secret {namespace}/{secret}")
        } else {
            String::new()
        }
    ));
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

fn parse_result_filter(text: &str) -> Result<ResultFilter, String> {
    ResultFilter::parse(text).map_err(|e| e.to_string())
}
