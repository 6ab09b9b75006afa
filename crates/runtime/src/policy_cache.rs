//! The policy cache: the compiled [`PolicySet`] admission evaluates, swapped whole when the
//! source changes, plus the loop that polls the source.
//!
//! Policies load one by one: a document that cannot be read, does not compile, uses a rule
//! bylaw cannot evaluate, or repeats another's name is reported ([`PolicyError`]: log, metric,
//! and in a cluster its status) and skipped, and every other policy is served. Readiness never
//! waits for a broken policy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bylaw_engine::compile::{CompiledPolicy, RuleBody, UnsupportedRule};
use bylaw_engine::engine::{compile_document, CompiledDocument, PolicySet};
use bylaw_engine::exceptions::CompiledException;
use bylaw_engine::response::FailureAction;
use serde_json::Value;

use crate::admission::RuleType;
use crate::metrics::{Metrics, PolicyChange, PolicyIdentity};
use crate::shutdown::ShutdownSignal;
use crate::sources::{ContextSource, PolicyBatch, PolicyDocument, PolicySource, SourceError};

/// Why a policy document is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// The file holding it cannot be read or parsed.
    Unreadable,
    /// It does not compile; the message starts with the field path.
    Invalid,
    /// It has a rule bylaw does not evaluate yet ([`CompiledPolicy::unsupported_rules`]).
    Unsupported,
    /// Another document defines a policy of the same kind and name.
    Duplicate,
}

impl Rejection {
    /// The `reason` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Unreadable => "unreadable",
            Rejection::Invalid => "invalid",
            Rejection::Unsupported => "unsupported",
            Rejection::Duplicate => "duplicate",
        }
    }
}

/// One document that is not served, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Where the document came from (a file, or `kind namespace/name` in a cluster).
    pub origin: String,
    /// `ClusterPolicy`, `Policy` or `PolicyException`; empty when the file did not parse.
    pub kind: String,
    /// `metadata.name`; empty when the file did not parse.
    pub name: String,
    /// `metadata.namespace`, for namespaced kinds.
    pub namespace: Option<String>,
    /// The category.
    pub rejection: Rejection,
    /// What is wrong, starting with the field path where there is one.
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rejection {
            Rejection::Unreadable => f.write_str(&self.message),
            Rejection::Unsupported => write!(
                f,
                "{}: {} {:?} not loaded, it uses what bylaw does not evaluate yet: {}",
                self.origin, self.kind, self.name, self.message
            ),
            Rejection::Invalid | Rejection::Duplicate => write!(
                f,
                "{}: invalid {} {:?}: {}",
                self.origin, self.kind, self.name, self.message
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

impl PolicyError {
    /// A document that could not be read at all.
    pub fn unreadable(error: &SourceError) -> Self {
        PolicyError {
            origin: error.path().unwrap_or_default().to_owned(),
            kind: String::new(),
            name: String::new(),
            namespace: None,
            rejection: Rejection::Unreadable,
            message: error.to_string(),
        }
    }
}

/// The message for a policy with unsupported rules: each rule with the feature it uses.
pub fn unsupported_message(rules: &[UnsupportedRule]) -> String {
    rules
        .iter()
        .map(|rule| format!("rule {} uses {}", rule.rule, rule.feature))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One document, compiled.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// A ClusterPolicy or Policy that can be served.
    Policy(Arc<CompiledPolicy>),
    /// A PolicyException.
    Exception(Arc<CompiledException>),
    /// Not a policy document; ignored.
    Other,
}

/// Compiles one document: a policy with unsupported rules is rejected like an invalid one.
pub fn compile_one(doc: &PolicyDocument) -> Result<Compiled, Box<PolicyError>> {
    let value = &doc.value;
    let meta = |field: &str| {
        value
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let error = |rejection: Rejection, message: String| {
        Box::new(PolicyError {
            origin: doc.origin.clone(),
            kind: value
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            name: meta("name").unwrap_or_default(),
            namespace: meta("namespace").filter(|ns| !ns.is_empty()),
            rejection,
            message,
        })
    };
    match compile_document(value) {
        Ok(CompiledDocument::Policy(policy)) => {
            let mut unsupported = policy.unsupported_rules();
            // Autogen copies repeat their rule's problem; name the rules the user wrote.
            let written = |name: &str| policy.rules.iter().any(|r| *r.name == *name && !r.autogen);
            if unsupported.iter().any(|u| written(&u.rule)) {
                unsupported.retain(|u| written(&u.rule));
            }
            if unsupported.is_empty() {
                Ok(Compiled::Policy(Arc::new(*policy)))
            } else {
                Err(error(
                    Rejection::Unsupported,
                    unsupported_message(&unsupported),
                ))
            }
        }
        Ok(CompiledDocument::Exception(exception)) => Ok(Compiled::Exception(Arc::new(*exception))),
        Ok(CompiledDocument::Other) => Ok(Compiled::Other),
        Err(e) => Err(error(Rejection::Invalid, e.to_string())),
    }
}

/// The result of compiling a batch of documents.
#[derive(Debug)]
pub struct CompiledBatch {
    /// Everything that can be served.
    pub set: PolicySet,
    /// `kind name (origin)` of documents that are not policies.
    pub ignored: Vec<String>,
    /// Every document that is not served.
    pub rejected: Vec<PolicyError>,
}

/// Compiles policy documents one by one. Documents of other kinds are listed in `ignored`;
/// invalid and unsupported policies, and a second policy of the same kind and name, are
/// rejected while the rest are served.
pub fn compile_documents(docs: &[PolicyDocument]) -> CompiledBatch {
    let mut policies: Vec<Arc<CompiledPolicy>> = Vec::new();
    let mut exceptions = Vec::new();
    let mut ignored = Vec::new();
    let mut rejected = Vec::new();
    let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
    for doc in docs {
        match compile_one(doc) {
            Ok(Compiled::Policy(policy)) => {
                let key = (kind_name(&policy).to_owned(), policy.key());
                if let Some(first) = seen.get(&key) {
                    rejected.push(PolicyError {
                        origin: doc.origin.clone(),
                        kind: key.0,
                        name: policy.name.to_string(),
                        namespace: policy.namespace.clone(),
                        rejection: Rejection::Duplicate,
                        message: format!("metadata.name: also defined in {first}"),
                    });
                } else {
                    seen.insert(key, &doc.origin);
                    policies.push(policy);
                }
            }
            Ok(Compiled::Exception(exception)) => exceptions.push(Arc::unwrap_or_clone(exception)),
            Ok(Compiled::Other) => {
                let field = |pointer: &str| doc.value.pointer(pointer).and_then(Value::as_str);
                ignored.push(format!(
                    "{} {:?} ({})",
                    field("/kind").unwrap_or(""),
                    field("/metadata/name").unwrap_or(""),
                    doc.origin
                ));
            }
            Err(error) => rejected.push(*error),
        }
    }
    CompiledBatch {
        set: PolicySet {
            policies,
            exceptions,
        },
        ignored,
        rejected,
    }
}

/// The policy's kind as written: `ClusterPolicy`, `Policy`, `ValidatingPolicy`, …
pub fn kind_name(policy: &CompiledPolicy) -> &'static str {
    policy.kind.as_str()
}

fn rule_type(body: &RuleBody) -> RuleType {
    match body {
        RuleBody::Validate(_) => RuleType::Validate,
        RuleBody::Mutate(_) => RuleType::Mutate,
        RuleBody::Generate(_) => RuleType::Generate,
        RuleBody::VerifyImages(_) => RuleType::VerifyImages,
    }
}

fn identity(policy: &CompiledPolicy) -> PolicyIdentity<'_> {
    PolicyIdentity {
        name: &policy.name,
        namespace: policy.namespace.as_deref(),
        enforce: policy.validation_failure_action == FailureAction::Enforce,
        background: policy.background,
    }
}

/// What a load changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Policies now served.
    pub policies: usize,
    /// PolicyExceptions now served.
    pub exceptions: usize,
    /// Policies that are new, changed or gone compared with the previous set.
    pub created: usize,
    /// See `created`.
    pub updated: usize,
    /// See `created`.
    pub deleted: usize,
    /// `kind name (origin)` of documents that are not policies and were ignored.
    pub ignored: Vec<String>,
    /// Documents that are not served, and why.
    pub rejected: Vec<PolicyError>,
}

/// The compiled policies admission evaluates. Readers take an `Arc` snapshot, so a reload never
/// waits for, or disturbs, reviews in flight.
#[derive(Debug)]
pub struct PolicyCache {
    current: RwLock<Option<Arc<PolicySet>>>,
    /// Counts installed sets, so that controllers (webhook registration, scans) wake on a change.
    installed: tokio::sync::watch::Sender<u64>,
    /// Serializes reloads so metrics see changes in order.
    reload: Mutex<()>,
    metrics: Metrics,
}

impl PolicyCache {
    /// An empty cache: not loaded until the first [`PolicyCache::install`].
    pub fn new(metrics: Metrics) -> Self {
        PolicyCache {
            current: RwLock::new(None),
            installed: tokio::sync::watch::Sender::new(0),
            reload: Mutex::new(()),
            metrics,
        }
    }

    /// The metrics this cache reports to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The set served now; `None` before the first load.
    pub fn current(&self) -> Option<Arc<PolicySet>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A receiver that sees a new value every time a set is installed; `borrow_and_update` then
    /// `changed().await` to follow the cache without polling.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.installed.subscribe()
    }

    /// True once a set has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Compiles `docs` and serves every one that compiles; the summary lists the others.
    pub fn replace(&self, docs: &[PolicyDocument]) -> LoadSummary {
        let CompiledBatch {
            set,
            ignored,
            rejected,
        } = compile_documents(docs);
        self.install(set, ignored, rejected)
    }

    /// Serves an already compiled set; `rejected` lists what was left out (for metrics).
    pub fn install(
        &self,
        set: PolicySet,
        ignored: Vec<String>,
        rejected: Vec<PolicyError>,
    ) -> LoadSummary {
        let _serialized = self.reload.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = self.current();
        let mut summary = LoadSummary {
            policies: set.policies.len(),
            exceptions: set.exceptions.len(),
            ignored,
            ..LoadSummary::default()
        };
        let old: BTreeMap<(bool, String), &Arc<CompiledPolicy>> = previous
            .iter()
            .flat_map(|set| set.policies.iter())
            .map(|p| ((p.namespace.is_some(), p.key()), p))
            .collect();
        let new: BTreeMap<(bool, String), &Arc<CompiledPolicy>> = set
            .policies
            .iter()
            .map(|p| ((p.namespace.is_some(), p.key()), p))
            .collect();
        for (key, policy) in &old {
            if !new.contains_key(key) {
                summary.deleted += 1;
                self.metrics
                    .record_policy_change(&identity(policy), PolicyChange::Delete);
                self.metrics
                    .forget_policy_cost(&policy.name, policy.namespace.as_deref());
            }
        }
        for (key, policy) in &new {
            match old.get(key) {
                None => {
                    summary.created += 1;
                    self.metrics
                        .record_policy_change(&identity(policy), PolicyChange::Create);
                }
                Some(before) if before.source != policy.source => {
                    summary.updated += 1;
                    self.metrics
                        .record_policy_change(&identity(policy), PolicyChange::Update);
                }
                Some(_) => {}
            }
        }
        // Rules that disappeared (with their policy or alone) drop to 0, current ones are 1.
        for policy in old.values() {
            for rule in &policy.rules {
                self.metrics.set_rule_info(
                    &identity(policy),
                    &rule.name,
                    rule_type(&rule.body),
                    true,
                    false,
                );
            }
        }
        for policy in new.values() {
            for rule in &policy.rules {
                self.metrics.set_rule_info(
                    &identity(policy),
                    &rule.name,
                    rule_type(&rule.body),
                    true,
                    true,
                );
            }
        }
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for error in &rejected {
            *counts.entry(error.rejection.label()).or_default() += 1;
        }
        self.metrics
            .set_policies_not_loaded(&counts.into_iter().collect::<Vec<_>>());
        summary.rejected = rejected;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
        self.installed.send_modify(|count| *count += 1);
        summary
    }

    /// Polls `source` once and applies what changed, logging the outcome.
    pub fn reload_from(&self, source: &dyn PolicySource) -> ReloadOutcome {
        let PolicyBatch {
            documents,
            unreadable,
        } = match source.poll() {
            Ok(Some(batch)) => batch,
            Ok(None) => return ReloadOutcome::Unchanged,
            Err(error) => {
                tracing::error!(%error, source = %source.describe(), "cannot read policies; still serving the previous set");
                return ReloadOutcome::Failed(vec![error.to_string()]);
            }
        };
        let CompiledBatch {
            set,
            ignored,
            mut rejected,
        } = compile_documents(&documents);
        rejected.splice(0..0, unreadable.iter().map(PolicyError::unreadable));
        let summary = self.install(set, ignored, rejected);
        report_load(&self.metrics, &summary);
        ReloadOutcome::Loaded(summary)
    }

    /// Polls `policies` and `context` every `interval` (and once at the start) until shutdown.
    pub async fn watch(
        self: Arc<Self>,
        policies: Arc<dyn PolicySource>,
        context: Arc<dyn ContextSource>,
        interval: Duration,
        shutdown: ShutdownSignal,
    ) {
        crate::shutdown::every(interval, shutdown, || {
            let cache = self.clone();
            let source = policies.clone();
            let context = context.clone();
            async move {
                let polled = tokio::task::spawn_blocking(move || {
                    match context.refresh() {
                        Ok(true) => tracing::info!("context files reloaded"),
                        Ok(false) => {}
                        Err(error) => {
                            tracing::error!(%error, "cannot read context files; still serving the previous context");
                        }
                    }
                    cache.reload_from(source.as_ref());
                })
                .await;
                if let Err(error) = polled {
                    tracing::error!(%error, "policy reload task failed");
                }
            }
        })
        .await;
    }
}

/// Logs a load and counts its rejected documents.
pub fn report_load(metrics: &Metrics, summary: &LoadSummary) {
    for ignored in &summary.ignored {
        tracing::debug!(document = %ignored, "not a policy; ignored");
    }
    for error in &summary.rejected {
        metrics.record_load_error(error.rejection.label());
        tracing::error!(%error, reason = error.rejection.label(), "policy not loaded; the others are served");
    }
    tracing::info!(
        policies = summary.policies,
        exceptions = summary.exceptions,
        created = summary.created,
        updated = summary.updated,
        deleted = summary.deleted,
        rejected = summary.rejected.len(),
        "policies loaded"
    );
}

/// What one poll of the policy source did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Nothing changed.
    Unchanged,
    /// A new set is served; `rejected` in the summary lists what was left out.
    Loaded(LoadSummary),
    /// The source itself cannot be read (e.g. a directory is gone); the previous set stays.
    Failed(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> PolicyDocument {
        PolicyDocument {
            value,
            origin: "test.yaml".into(),
        }
    }

    fn policy(name: &str, message: &str) -> Value {
        json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": name},
            "spec": {
                "validationFailureAction": "Enforce",
                "rules": [{
                    "name": "check",
                    "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                    "validate": {"message": message, "pattern": {"metadata": {"labels": {"team": "?*"}}}}
                }]
            }
        })
    }

    fn verify_images(name: &str) -> Value {
        json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": name},
            "spec": {
                "rules": [{
                    "name": "check-signature",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [{"imageReferences": ["ghcr.io/*"], "attestors": []}]
                }]
            }
        })
    }

    #[test]
    fn reload_counts_changes_and_serves_the_good_policies_one_by_one() {
        let metrics = Metrics::new("test");
        let cache = PolicyCache::new(metrics.clone());
        let mut installs = cache.subscribe();
        assert!(!cache.is_loaded());
        let first = cache.replace(&[
            doc(policy("a", "one")),
            doc(policy("b", "one")),
            doc(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})),
        ]);
        assert_eq!((first.created, first.updated, first.deleted), (2, 0, 0));
        assert_eq!(first.ignored, ["Pod \"x\" (test.yaml)"]);
        assert!(first.rejected.is_empty());
        assert!(cache.is_loaded());
        assert!(installs.has_changed().unwrap());
        assert_eq!(*installs.borrow_and_update(), 1);

        let second = cache.replace(&[doc(policy("a", "two")), doc(policy("c", "one"))]);
        assert_eq!((second.created, second.updated, second.deleted), (1, 1, 1));

        // One broken policy is rejected with its field path; the others are served.
        let mut broken = policy("d", "x");
        broken["spec"]["validationFailureAction"] = json!("Sometimes");
        let third = cache.replace(&[
            doc(policy("a", "two")),
            doc(broken),
            doc(policy("c", "one")),
        ]);
        assert_eq!(third.rejected.len(), 1);
        assert_eq!(third.rejected[0].rejection, Rejection::Invalid);
        assert!(
            third.rejected[0].to_string().starts_with(
                "test.yaml: invalid ClusterPolicy \"d\": spec.validationFailureAction"
            ),
            "{}",
            third.rejected[0]
        );
        assert_eq!(*installs.borrow_and_update(), 3);
        let names: Vec<String> = cache
            .current()
            .unwrap()
            .policies
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        assert_eq!(names, ["a", "c"]);

        let text = metrics.encode_openmetrics().unwrap();
        for line in [
            "bylaw_policy_changes_total{policy_name=\"a\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",policy_change_type=\"create\"} 1",
            "bylaw_policy_changes_total{policy_name=\"a\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",policy_change_type=\"update\"} 1",
            "bylaw_policy_changes_total{policy_name=\"b\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",policy_change_type=\"delete\"} 1",
            "bylaw_policy_rule_info_total{policy_name=\"b\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"check\",rule_type=\"validate\",status_ready=\"true\"} 0",
            "bylaw_policy_rule_info_total{policy_name=\"c\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"check\",rule_type=\"validate\",status_ready=\"true\"} 1",
            "bylaw_policies_not_loaded{reason=\"invalid\"} 1",
            "bylaw_policies_not_loaded{reason=\"unsupported\"} 0",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn a_cache_loads_even_when_every_policy_is_broken() {
        let cache = PolicyCache::new(Metrics::new("test"));
        let mut broken = policy("d", "x");
        broken["spec"]["rules"] = json!([]);
        let summary = cache.replace(&[doc(broken)]);
        assert_eq!(summary.policies, 0);
        assert_eq!(summary.rejected.len(), 1);
        assert_eq!(
            summary.rejected[0].message,
            "spec.rules: a policy needs at least one rule"
        );
        // Readiness does not wait for a broken policy: an empty set is served.
        assert!(cache.is_loaded());
    }

    #[test]
    fn unsupported_policies_are_never_served() {
        let metrics = Metrics::new("test");
        let cache = PolicyCache::new(metrics.clone());
        let summary = cache.replace(&[doc(verify_images("check-images")), doc(policy("a", "x"))]);
        assert_eq!(summary.policies, 1);
        let [error] = summary.rejected.as_slice() else {
            panic!("one rejection expected: {:?}", summary.rejected)
        };
        assert_eq!(error.rejection, Rejection::Unsupported);
        assert_eq!(error.name, "check-images");
        assert!(
            error
                .message
                .contains("rule check-signature uses verifyImages"),
            "{}",
            error.message
        );
        assert!(error.to_string().contains("not loaded"), "{error}");
        let served: Vec<String> = cache
            .current()
            .unwrap()
            .policies
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        assert_eq!(served, ["a"]);
        let text = metrics.encode_openmetrics().unwrap();
        assert!(
            text.contains("bylaw_policies_not_loaded{reason=\"unsupported\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn duplicates_and_invalid_exceptions_are_rejected_alone() {
        let cache = PolicyCache::new(Metrics::new("test"));
        let exception = json!({
            "apiVersion": "kyverno.io/v2",
            "kind": "PolicyException",
            "metadata": {"name": "e", "namespace": "default"},
            "spec": {}
        });
        let summary =
            cache.replace(&[doc(policy("a", "x")), doc(policy("a", "y")), doc(exception)]);
        assert_eq!(summary.rejected.len(), 2, "{:?}", summary.rejected);
        assert_eq!(summary.rejected[0].rejection, Rejection::Duplicate);
        assert!(summary.rejected[0]
            .message
            .contains("also defined in test.yaml"));
        assert_eq!(summary.rejected[1].rejection, Rejection::Invalid);
        assert_eq!(summary.rejected[1].namespace.as_deref(), Some("default"));
        assert!(
            summary.rejected[1].message.starts_with("spec.exceptions"),
            "{}",
            summary.rejected[1]
        );
        // The first definition is served.
        let set = cache.current().unwrap();
        assert_eq!(set.policies.len(), 1);
        assert_eq!(
            set.policies[0]
                .source
                .pointer("/spec/rules/0/validate/message"),
            Some(&json!("x"))
        );
    }

    #[test]
    fn an_unreadable_file_is_reported_and_the_others_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "kind: [unclosed\n").unwrap();
        std::fs::write(
            dir.path().join("good.yaml"),
            serde_json::to_string(&policy("good", "x")).unwrap(),
        )
        .unwrap();
        let metrics = Metrics::new("test");
        let cache = PolicyCache::new(metrics.clone());
        let source = crate::sources::FilePolicySource::new(vec![dir.path().to_owned()]);
        let ReloadOutcome::Loaded(summary) = cache.reload_from(&source) else {
            panic!("a load expected")
        };
        assert_eq!(summary.policies, 1);
        assert_eq!(summary.rejected.len(), 1);
        assert_eq!(summary.rejected[0].rejection, Rejection::Unreadable);
        assert!(summary.rejected[0].origin.ends_with("bad.yaml"));
        assert!(
            summary.rejected[0].to_string().contains("bad.yaml:2:1: "),
            "{}",
            summary.rejected[0]
        );
        assert!(cache.is_loaded());
        let text = metrics.encode_openmetrics().unwrap();
        assert!(
            text.contains("bylaw_policy_load_errors_total{reason=\"unreadable\"} 1"),
            "{text}"
        );
        // Nothing changed: nothing reloaded, the error is not counted again.
        assert_eq!(cache.reload_from(&source), ReloadOutcome::Unchanged);

        // The source itself gone: the previous set keeps serving.
        let gone = crate::sources::FilePolicySource::new(vec![dir.path().join("missing")]);
        assert!(matches!(cache.reload_from(&gone), ReloadOutcome::Failed(_)));
        assert_eq!(cache.current().unwrap().policies.len(), 1);
    }
}
