//! bylaw's ValidatingWebhookConfiguration and MutatingWebhookConfiguration: what they should
//! hold for the served policies (pure: [`desired_configurations`]) and the writer that keeps
//! them so while this replica leads.
//!
//! The API server sends a request only when some served policy can select it: rules are
//! computed from the policies' `match` kinds (and a ValidatingPolicy's `resourceRules`) through
//! API discovery, with the operations the rules name. Policies are split by `failurePolicy`
//! into a `Fail` and an `Ignore` webhook, at `/validate/fail-policies`,
//! `/validate/ignore-policies` (and `/mutate/…`), which evaluate only the policies of their
//! failure policy, so no policy is evaluated twice.
//!
//! Never a lock-out: nodes, leases, events, token and access reviews and webhook
//! configurations never reach bylaw, and requests in kube-system and bylaw's own namespace are
//! never sent (`namespaceSelector`). A webhook for the policy kinds points at
//! `/policies/validate`, so `kubectl apply` of an invalid policy fails with its field path.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bylaw_engine::compile::{CompiledPolicy, FailurePolicy, RuleBody};
use bylaw_engine::engine::PolicySet;
use bylaw_engine::matching::{KindSelector, MatchBlock, ResourceFilter};
use bylaw_runtime::{PolicyCache, ShutdownSignal};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::Client;
use serde_json::{json, Value};

use crate::leader::Leadership;

/// Field manager of every write bylaw makes to its webhook configurations.
pub const FIELD_MANAGER: &str = "bylaw";

/// Resources that never reach bylaw's webhooks, whatever a policy selects: the cluster must
/// keep working (nodes heartbeat, leader election, events, authentication and authorization,
/// and the webhook configurations themselves, so they can always be repaired) while bylaw is
/// down.
pub const NEVER_SENT: &[(&str, &str)] = &[
    ("", "nodes"),
    ("", "events"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
    ),
];

/// Default `timeoutSeconds` (Kyverno's default `webhookTimeoutSeconds`).
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 10;

/// One resource the API server serves, as discovery reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedResource {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Plural name (`pods`).
    pub plural: String,
    pub namespaced: bool,
    /// Subresources: (name, kind of their object), e.g. (`exec`, `PodExecOptions`).
    pub subresources: Vec<(String, String)>,
}

/// What the API server serves: the resources policies' kinds are resolved against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiCatalog {
    pub resources: Vec<ServedResource>,
}

impl ApiCatalog {
    /// Every version of every resource discovery found.
    pub fn from_discovery(discovery: &Discovery) -> ApiCatalog {
        let mut resources = Vec::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (resource, capabilities) in group.versioned_resources(version) {
                    resources.push(ServedResource {
                        group: resource.group.clone(),
                        version: resource.version.clone(),
                        kind: resource.kind.clone(),
                        plural: resource.plural.clone(),
                        namespaced: capabilities.scope == Scope::Namespaced,
                        subresources: capabilities
                            .subresources
                            .iter()
                            .map(|(sub, _)| (sub.plural.clone(), sub.kind.clone()))
                            .collect(),
                    });
                }
            }
        }
        ApiCatalog { resources }
    }
}

/// Where the API server reaches bylaw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `https://HOST:PORT` (bylaw outside the cluster, control planes without nodes).
    Url(String),
    /// A Service in bylaw's namespace, port 443.
    Service { name: String, namespace: String },
}

/// Settings of the webhook configurations.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Name of both configurations.
    pub name: String,
    pub endpoint: Endpoint,
    /// PEM bundle of the CA(s) that sign bylaw's serving certificate.
    pub ca_bundle: String,
    /// Namespaces whose requests are never sent (kube-system and bylaw's own are always added).
    pub excluded_namespaces: Vec<String>,
    /// bylaw's own namespace.
    pub namespace: String,
}

/// One admission rule of a webhook: (group, resource incl. subresource, namespaced) → operations.
type RuleKey = (String, String, bool);

/// Both configurations bylaw owns, for the served `set`.
pub fn desired_configurations(
    set: &PolicySet,
    catalog: &ApiCatalog,
    settings: &WebhookSettings,
) -> (Value, Value) {
    let mut validating: BTreeMap<FailurePolicy, Group> = BTreeMap::new();
    let mut mutating: BTreeMap<FailurePolicy, Group> = BTreeMap::new();
    for policy in set.policies.iter().filter(|p| p.admission) {
        let timeout = policy
            .webhook_timeout_seconds
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
            .clamp(1, 30);
        if policy.kind.is_ruleless() {
            let group = validating.entry(policy.failure_policy).or_default();
            group.timeout = group.timeout.max(timeout);
            add_resource_rules(policy, catalog, &mut group.rules);
            continue;
        }
        for rule in &policy.rules {
            let (target, default_ops): (&mut BTreeMap<FailurePolicy, Group>, &[&str]) =
                match &rule.body {
                    RuleBody::Mutate(body) if body.get("targets").is_none() => {
                        (&mut mutating, &["CREATE", "UPDATE"])
                    }
                    // Validation, generate and mutate-existing triggers, and rules bylaw cannot
                    // evaluate (so their error shows) go through the validating webhook.
                    _ => (&mut validating, &["CREATE", "UPDATE", "DELETE", "CONNECT"]),
                };
            let group = target.entry(policy.failure_policy).or_default();
            group.timeout = group.timeout.max(timeout);
            for filter in filters(&rule.match_block) {
                let operations: Vec<String> = if filter.resources.operations.is_empty() {
                    default_ops.iter().map(|s| (*s).to_owned()).collect()
                } else {
                    filter.resources.operations.clone()
                };
                for selector in &filter.resources.kinds {
                    for key in resolve(selector, catalog) {
                        group
                            .rules
                            .entry(key)
                            .or_default()
                            .extend(operations.iter().cloned());
                    }
                }
            }
        }
    }
    let validating_hooks: Vec<Value> = validating
        .iter()
        .filter(|(_, group)| !group.rules.is_empty())
        .map(|(failure, group)| webhook("validate", *failure, group, settings))
        .chain(std::iter::once(policy_webhook(settings)))
        .collect();
    let mutating_hooks: Vec<Value> = mutating
        .iter()
        .filter(|(_, group)| !group.rules.is_empty())
        .map(|(failure, group)| {
            let mut hook = webhook("mutate", *failure, group, settings);
            if let Some(fields) = hook.as_object_mut() {
                fields.insert("reinvocationPolicy".into(), json!("IfNeeded"));
            }
            hook
        })
        .collect();
    let labels = json!({"app.kubernetes.io/managed-by": "bylaw"});
    (
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": settings.name, "labels": labels},
            "webhooks": validating_hooks,
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": settings.name, "labels": labels},
            "webhooks": mutating_hooks,
        }),
    )
}

/// The rules and timeout of one webhook.
#[derive(Debug)]
struct Group {
    rules: BTreeMap<RuleKey, BTreeSet<String>>,
    timeout: u32,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            rules: BTreeMap::new(),
            timeout: 1,
        }
    }
}

fn filters(block: &MatchBlock) -> Vec<&ResourceFilter> {
    match block {
        MatchBlock::Empty => Vec::new(),
        MatchBlock::Any(filters) | MatchBlock::All(filters) => filters.iter().collect(),
        MatchBlock::Legacy(filter) => vec![filter.as_ref()],
    }
}

fn never_sent(group: &str, resource: &str) -> bool {
    let base = resource.split('/').next().unwrap_or(resource);
    NEVER_SENT.iter().any(|(g, r)| *g == group && *r == base)
}

/// The resources a kind selector selects among those served.
fn resolve(selector: &KindSelector, catalog: &ApiCatalog) -> Vec<RuleKey> {
    let mut keys = Vec::new();
    for resource in &catalog.resources {
        if selector.matches(&resource.group, &resource.version, &resource.kind, "") {
            keys.push((
                resource.group.clone(),
                resource.plural.clone(),
                resource.namespaced,
            ));
        }
        for (sub, _) in &resource.subresources {
            if selector.matches(&resource.group, &resource.version, &resource.kind, sub) {
                keys.push((
                    resource.group.clone(),
                    format!("{}/{sub}", resource.plural),
                    resource.namespaced,
                ));
            }
        }
    }
    keys.retain(|(group, resource, _)| !never_sent(group, resource));
    keys.sort();
    keys.dedup();
    keys
}

/// A ValidatingPolicy's `matchConstraints.resourceRules`, resolved against the catalog so that
/// wildcards never reach the never-sent resources.
fn add_resource_rules(
    policy: &CompiledPolicy,
    catalog: &ApiCatalog,
    rules: &mut BTreeMap<RuleKey, BTreeSet<String>>,
) {
    let strings = |value: &Value, field: &str| -> Vec<String> {
        value
            .get(field)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let resource_rules = policy
        .source
        .pointer("/spec/matchConstraints/resourceRules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let covers = |patterns: &[String], value: &str| patterns.iter().any(|p| p == "*" || p == value);
    for rule in &resource_rules {
        let groups = strings(rule, "apiGroups");
        let versions = strings(rule, "apiVersions");
        let names = strings(rule, "resources");
        let mut operations = strings(rule, "operations");
        if operations.iter().any(|o| o == "*") || operations.is_empty() {
            operations = ["CREATE", "UPDATE", "DELETE", "CONNECT"]
                .map(str::to_owned)
                .to_vec();
        }
        for resource in &catalog.resources {
            if !covers(&groups, &resource.group) || !covers(&versions, &resource.version) {
                continue;
            }
            let mut candidates = vec![resource.plural.clone()];
            candidates.extend(
                resource
                    .subresources
                    .iter()
                    .map(|(sub, _)| format!("{}/{sub}", resource.plural)),
            );
            for candidate in candidates {
                let (base, sub) = candidate
                    .split_once('/')
                    .map_or((candidate.as_str(), None), |(b, s)| (b, Some(s)));
                let selected = names.iter().any(|name| match name.split_once('/') {
                    None => name == "*" && sub.is_none() || (name == base && sub.is_none()),
                    Some((n, s)) => {
                        (n == "*" || n == base) && sub.is_some_and(|sub| s == "*" || s == sub)
                    }
                });
                if selected && !never_sent(&resource.group, &candidate) {
                    rules
                        .entry((resource.group.clone(), candidate, resource.namespaced))
                        .or_default()
                        .extend(operations.iter().cloned());
                }
            }
        }
    }
}

/// The API server adds `?timeout=Ns` to every call itself; URLs may not carry a query.
fn client_config(path: &str, settings: &WebhookSettings) -> Value {
    let ca_bundle = base64_encode(settings.ca_bundle.as_bytes());
    match &settings.endpoint {
        Endpoint::Url(base) => json!({
            "url": format!("{}{path}", base.trim_end_matches('/')),
            "caBundle": ca_bundle,
        }),
        Endpoint::Service { name, namespace } => json!({
            "service": {"name": name, "namespace": namespace, "path": path, "port": 443},
            "caBundle": ca_bundle,
        }),
    }
}

fn namespace_selector(settings: &WebhookSettings) -> Value {
    let mut excluded: BTreeSet<String> = settings.excluded_namespaces.iter().cloned().collect();
    excluded.insert("kube-system".to_owned());
    if !settings.namespace.is_empty() {
        excluded.insert(settings.namespace.clone());
    }
    json!({"matchExpressions": [{
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": excluded.into_iter().collect::<Vec<_>>(),
    }]})
}

fn webhook(
    phase: &str,
    failure: FailurePolicy,
    group: &Group,
    settings: &WebhookSettings,
) -> Value {
    let failure_name = match failure {
        FailurePolicy::Fail => "Fail",
        FailurePolicy::Ignore => "Ignore",
    };
    let lower = failure_name.to_lowercase();
    let path = format!("/{phase}/{lower}-policies");
    let rules: Vec<Value> = group
        .rules
        .iter()
        .map(|((api_group, resource, namespaced), operations)| {
            json!({
                "apiGroups": [api_group],
                "apiVersions": ["*"],
                "resources": [resource],
                "operations": operations.iter().collect::<Vec<_>>(),
                "scope": if *namespaced { "Namespaced" } else { "Cluster" },
            })
        })
        .collect();
    json!({
        "name": format!("{phase}-{lower}.{}.bylaw.io", settings.name),
        "admissionReviewVersions": ["v1"],
        "sideEffects": "NoneOnDryRun",
        "failurePolicy": failure_name,
        "matchPolicy": "Equivalent",
        "timeoutSeconds": group.timeout,
        "clientConfig": client_config(&path, settings),
        "namespaceSelector": namespace_selector(settings),
        "rules": rules,
    })
}

/// The webhook that checks policies at `kubectl apply`. Ignore: a policy can always be fixed
/// or removed while bylaw is down.
fn policy_webhook(settings: &WebhookSettings) -> Value {
    let rule = |group: &str, resources: &[&str]| {
        json!({
            "apiGroups": [group],
            "apiVersions": ["*"],
            "resources": resources,
            "operations": ["CREATE", "UPDATE"],
            "scope": "*",
        })
    };
    json!({
        "name": format!("policies.{}.bylaw.io", settings.name),
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": DEFAULT_TIMEOUT_SECONDS,
        "clientConfig": client_config("/policies/validate", settings),
        "rules": [
            rule("kyverno.io", &["clusterpolicies", "policies", "policyexceptions"]),
            rule("policies.kyverno.io", &["validatingpolicies", "namespacedvalidatingpolicies"]),
        ],
    })
}

/// Base64, as the API expects `caBundle`.
fn base64_encode(bytes: &[u8]) -> Value {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())).unwrap_or(Value::Null)
}

fn configuration_api(client: &Client, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    Api::all_with(client.clone(), &resource)
}

/// Keeps both configurations in step with the served policies while this replica leads.
pub struct WebhookRegistrar {
    pub client: Client,
    pub settings: WebhookSettings,
    pub leadership: Leadership,
    /// How often discovery is refreshed (new CRDs make new kinds selectable).
    pub discovery_interval: Duration,
}

impl WebhookRegistrar {
    /// Writes on every policy set installed, CA bundle change, leadership gained and discovery
    /// refresh.
    pub async fn run(
        mut self,
        cache: std::sync::Arc<PolicyCache>,
        mut ca_bundle: tokio::sync::watch::Receiver<String>,
        shutdown: ShutdownSignal,
    ) {
        let mut installed = cache.subscribe();
        let mut leadership = self.leadership.clone();
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut refresh = tokio::time::interval(self.discovery_interval);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut catalog: Option<ApiCatalog> = None;
        let mut written: Option<(Value, Value)> = None;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                changed = installed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = refresh.tick() => catalog = None,
                changed = ca_bundle.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = leadership.acquired(), if !leadership.is_leader() => written = None,
            }
            if !self.leadership.is_leader() {
                continue;
            }
            let Some(set) = cache.current() else {
                continue;
            };
            if catalog.is_none() {
                match Discovery::new(self.client.clone()).run().await {
                    Ok(discovery) => catalog = Some(ApiCatalog::from_discovery(&discovery)),
                    Err(error) => {
                        tracing::warn!(%error, "API discovery failed; webhook rules not updated");
                        continue;
                    }
                }
            }
            let Some(catalog) = catalog.as_ref() else {
                continue;
            };
            self.settings.ca_bundle = ca_bundle.borrow_and_update().clone();
            let desired = desired_configurations(&set, catalog, &self.settings);
            if written.as_ref() == Some(&desired) {
                continue;
            }
            match self.apply(&desired).await {
                Ok(()) => {
                    tracing::info!(
                        name = %self.settings.name,
                        validating = count_webhooks(&desired.0),
                        mutating = count_webhooks(&desired.1),
                        "webhook configurations written"
                    );
                    written = Some(desired);
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot write webhook configurations; will retry on the next change");
                }
            }
        }
    }

    async fn apply(&self, (validating, mutating): &(Value, Value)) -> Result<(), kube::Error> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for (kind, body) in [
            ("ValidatingWebhookConfiguration", validating),
            ("MutatingWebhookConfiguration", mutating),
        ] {
            configuration_api(&self.client, kind)
                .patch(&self.settings.name, &params, &Patch::Apply(body))
                .await?;
        }
        Ok(())
    }
}

fn count_webhooks(configuration: &Value) -> usize {
    configuration
        .get("webhooks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Deletes both configurations named `name`; absent ones are fine. Returns how many existed.
pub async fn remove_configurations(client: &Client, name: &str) -> Result<usize, kube::Error> {
    let mut removed = 0;
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        match configuration_api(client, kind)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => removed += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bylaw_engine::compile::compile_policy;

    fn served(
        group: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        subs: &[&str],
    ) -> ServedResource {
        ServedResource {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            subresources: subs
                .iter()
                .map(|s| ((*s).to_owned(), String::new()))
                .collect(),
        }
    }

    fn catalog() -> ApiCatalog {
        ApiCatalog {
            resources: vec![
                served(
                    "",
                    "Pod",
                    "pods",
                    true,
                    &["exec", "ephemeralcontainers", "status"],
                ),
                served("", "ConfigMap", "configmaps", true, &[]),
                served("", "Node", "nodes", false, &["status"]),
                served("", "Event", "events", true, &[]),
                served("", "Namespace", "namespaces", false, &[]),
                served("apps", "Deployment", "deployments", true, &["scale"]),
                served("coordination.k8s.io", "Lease", "leases", true, &[]),
            ],
        }
    }

    fn settings(endpoint: Endpoint) -> WebhookSettings {
        WebhookSettings {
            name: "bylaw".into(),
            endpoint,
            ca_bundle: "CA".into(),
            excluded_namespaces: vec!["monitoring".into()],
            namespace: "bylaw-system".into(),
        }
    }

    fn url() -> Endpoint {
        Endpoint::Url("https://127.0.0.1:9443".into())
    }

    fn policy(name: &str, failure: &str, rule: Value) -> CompiledPolicy {
        compile_policy(&json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": name},
            "spec": {"failurePolicy": failure, "rules": [rule]}
        }))
        .unwrap()
    }

    fn validate_rule(kinds: Value, operations: Option<Value>) -> Value {
        let mut resources = json!({"kinds": kinds});
        if let Some(ops) = operations {
            resources["operations"] = ops;
        }
        json!({"name": "r", "match": {"any": [{"resources": resources}]},
               "validate": {"pattern": {"metadata": {"name": "?*"}}}})
    }

    /// (webhook name, [(resource, operations)]) of each webhook of a configuration.
    type Summary = Vec<(String, Vec<(String, Vec<String>)>)>;

    fn summary(configuration: &Value) -> Summary {
        configuration["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hook| {
                let rules = hook["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|rule| {
                        let ops: Vec<String> = rule["operations"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|o| o.as_str().unwrap().to_owned())
                            .collect();
                        rule["resources"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(move |r| (r.as_str().unwrap().to_owned(), ops.clone()))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                (hook["name"].as_str().unwrap().to_owned(), rules)
            })
            .collect()
    }

    fn ops(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    const POLICY_HOOK: &str = "policies.bylaw.bylaw.io";

    #[test]
    fn webhook_rules_follow_the_policies_match_blocks() {
        let all = ops(&["CONNECT", "CREATE", "DELETE", "UPDATE"]);
        let policy_rules = || {
            (
                POLICY_HOOK.to_owned(),
                vec![
                    ("clusterpolicies".to_owned(), ops(&["CREATE", "UPDATE"])),
                    ("policies".to_owned(), ops(&["CREATE", "UPDATE"])),
                    ("policyexceptions".to_owned(), ops(&["CREATE", "UPDATE"])),
                    ("validatingpolicies".to_owned(), ops(&["CREATE", "UPDATE"])),
                    (
                        "namespacedvalidatingpolicies".to_owned(),
                        ops(&["CREATE", "UPDATE"]),
                    ),
                ],
            )
        };
        let cases: Vec<(&str, Vec<CompiledPolicy>, Summary, usize)> = vec![
            (
                "no policies: only the policy webhook",
                vec![],
                vec![policy_rules()],
                0,
            ),
            (
                "a Pod rule: the Pod, its ephemeral containers and (autogen) Deployments, Fail",
                vec![policy("p", "Fail", validate_rule(json!(["Pod"]), None))],
                vec![
                    (
                        "validate-fail.bylaw.bylaw.io".to_owned(),
                        vec![
                            ("deployments".to_owned(), all.clone()),
                            ("pods".to_owned(), all.clone()),
                            ("pods/ephemeralcontainers".to_owned(), all.clone()),
                        ],
                    ),
                    policy_rules(),
                ],
                0,
            ),
            (
                "a subresource with its operation, Ignore",
                vec![policy(
                    "p",
                    "Ignore",
                    validate_rule(json!(["Pod/exec"]), Some(json!(["CONNECT"]))),
                )],
                vec![
                    (
                        "validate-ignore.bylaw.bylaw.io".to_owned(),
                        // As in Kyverno's matching, any Pod selector also selects
                        // pods/ephemeralcontainers, so the API server must send those too.
                        vec![
                            ("pods/ephemeralcontainers".to_owned(), ops(&["CONNECT"])),
                            ("pods/exec".to_owned(), ops(&["CONNECT"])),
                        ],
                    ),
                    policy_rules(),
                ],
                0,
            ),
            (
                "a wildcard kind: everything but nodes, events and leases",
                vec![policy(
                    "p",
                    "Fail",
                    validate_rule(json!(["*"]), Some(json!(["CREATE"]))),
                )],
                vec![
                    (
                        "validate-fail.bylaw.bylaw.io".to_owned(),
                        vec![
                            ("configmaps".to_owned(), ops(&["CREATE"])),
                            ("namespaces".to_owned(), ops(&["CREATE"])),
                            ("pods".to_owned(), ops(&["CREATE"])),
                            ("pods/ephemeralcontainers".to_owned(), ops(&["CREATE"])),
                            ("deployments".to_owned(), ops(&["CREATE"])),
                        ],
                    ),
                    policy_rules(),
                ],
                0,
            ),
            (
                "Fail and Ignore policies: two webhooks",
                vec![
                    policy(
                        "a",
                        "Fail",
                        validate_rule(json!(["ConfigMap"]), Some(json!(["CREATE"]))),
                    ),
                    policy(
                        "b",
                        "Ignore",
                        validate_rule(json!(["apps/v1/Deployment"]), Some(json!(["UPDATE"]))),
                    ),
                ],
                vec![
                    (
                        "validate-fail.bylaw.bylaw.io".to_owned(),
                        vec![("configmaps".to_owned(), ops(&["CREATE"]))],
                    ),
                    (
                        "validate-ignore.bylaw.bylaw.io".to_owned(),
                        vec![("deployments".to_owned(), ops(&["UPDATE"]))],
                    ),
                    policy_rules(),
                ],
                0,
            ),
            (
                "a mutate rule goes to the mutating configuration",
                vec![policy(
                    "m",
                    "Fail",
                    json!({"name": "add", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                           "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"a": "b"}}}}}),
                )],
                vec![policy_rules()],
                1,
            ),
        ];
        for (case, policies, expected, mutating) in cases {
            let set = PolicySet::new(policies, Vec::new());
            let (validating_config, mutating_config) =
                desired_configurations(&set, &catalog(), &settings(url()));
            let mut got = summary(&validating_config);
            for (_, rules) in &mut got {
                rules.sort();
            }
            let mut want = expected.clone();
            for (_, rules) in &mut want {
                rules.sort();
            }
            assert_eq!(got, want, "{case}");
            assert_eq!(
                mutating_config["webhooks"].as_array().unwrap().len(),
                mutating,
                "{case}"
            );
        }
    }

    #[test]
    fn webhooks_never_send_system_namespaces_and_point_at_their_half() {
        let set = PolicySet::new(
            vec![policy("p", "Fail", validate_rule(json!(["Pod"]), None))],
            Vec::new(),
        );
        let (validating, _) = desired_configurations(&set, &catalog(), &settings(url()));
        let hook = &validating["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(
            hook["clientConfig"]["url"],
            "https://127.0.0.1:9443/validate/fail-policies"
        );
        assert_eq!(hook["clientConfig"]["caBundle"], "Q0E=");
        assert_eq!(
            hook["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["bylaw-system", "kube-system", "monitoring"])
        );
        assert_eq!(hook["timeoutSeconds"], 10);

        let service = Endpoint::Service {
            name: "bylaw".into(),
            namespace: "bylaw-system".into(),
        };
        let (validating, _) = desired_configurations(&set, &catalog(), &settings(service));
        assert_eq!(
            validating["webhooks"][0]["clientConfig"]["service"],
            json!({"name": "bylaw", "namespace": "bylaw-system", "path": "/validate/fail-policies", "port": 443})
        );
    }
}
