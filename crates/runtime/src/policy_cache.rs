//! The policy cache: the compiled [`PolicySet`] admission evaluates, swapped whole when the
//! source changes, plus the loop that polls the source.
//!
//! A reload compiles every document first and swaps only when all of them compile: one invalid
//! file keeps the last good set serving (and the error, with its field path, in the log).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bylaw_engine::compile::{CompiledPolicy, RuleBody};
use bylaw_engine::engine::{compile_document, CompiledDocument, PolicySet};
use bylaw_engine::response::FailureAction;
use serde_json::Value;

use crate::admission::RuleType;
use crate::metrics::{Metrics, PolicyChange, PolicyIdentity};
use crate::shutdown::ShutdownSignal;
use crate::sources::{ContextSource, PolicyDocument, PolicySource};

/// One document that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: invalid {kind} {name:?}: {reason}")]
pub struct PolicyError {
    /// Where the document came from.
    pub origin: String,
    /// `ClusterPolicy`, `Policy` or `PolicyException`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// What is wrong, starting with the field path.
    pub reason: String,
}

/// What a successful load changed.
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
}

/// Compiles policy documents. Documents of other kinds are listed in `ignored`; every invalid
/// policy or exception, and every policy defined twice, is an error.
pub fn compile_documents(
    docs: &[PolicyDocument],
) -> Result<(PolicySet, Vec<String>), Vec<PolicyError>> {
    let mut policies: Vec<CompiledPolicy> = Vec::new();
    let mut exceptions = Vec::new();
    let mut ignored = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
    for doc in docs {
        let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = doc
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let error = |reason: String| PolicyError {
            origin: doc.origin.clone(),
            kind: kind.to_owned(),
            name: name.clone(),
            reason,
        };
        match compile_document(&doc.value) {
            Ok(CompiledDocument::Policy(policy)) => {
                let key = (kind.to_owned(), policy.key());
                if let Some(first) = seen.insert(key, &doc.origin) {
                    errors.push(error(format!("also defined in {first}")));
                } else {
                    policies.push(*policy);
                }
            }
            Ok(CompiledDocument::Exception(exception)) => exceptions.push(*exception),
            Ok(CompiledDocument::Other) => {
                ignored.push(format!("{kind} {name:?} ({})", doc.origin))
            }
            Err(e) => errors.push(error(e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok((PolicySet::new(policies, exceptions), ignored))
    } else {
        Err(errors)
    }
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
    /// An empty cache: not loaded until the first successful [`PolicyCache::replace`].
    pub fn new(metrics: Metrics) -> Self {
        PolicyCache {
            current: RwLock::new(None),
            installed: tokio::sync::watch::Sender::new(0),
            reload: Mutex::new(()),
            metrics,
        }
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

    /// Compiles `docs` and serves them, or keeps the current set and returns every error.
    pub fn replace(&self, docs: &[PolicyDocument]) -> Result<LoadSummary, Vec<PolicyError>> {
        let (set, ignored) = compile_documents(docs)?;
        Ok(self.install(set, ignored))
    }

    /// Serves an already compiled set.
    pub fn install(&self, set: PolicySet, ignored: Vec<String>) -> LoadSummary {
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
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
        self.installed.send_modify(|count| *count += 1);
        summary
    }

    /// Polls `source` once and applies what changed, logging the outcome.
    pub fn reload_from(&self, source: &dyn PolicySource) -> ReloadOutcome {
        let docs = match source.poll() {
            Ok(Some(docs)) => docs,
            Ok(None) => return ReloadOutcome::Unchanged,
            Err(error) => {
                tracing::error!(%error, source = %source.describe(), "cannot read policies; still serving the previous set");
                return ReloadOutcome::Failed(vec![error.to_string()]);
            }
        };
        match self.replace(&docs) {
            Ok(summary) => {
                for ignored in &summary.ignored {
                    tracing::debug!(document = %ignored, "not a policy; ignored");
                }
                tracing::info!(
                    policies = summary.policies,
                    exceptions = summary.exceptions,
                    created = summary.created,
                    updated = summary.updated,
                    deleted = summary.deleted,
                    "policies loaded"
                );
                ReloadOutcome::Loaded(summary)
            }
            Err(errors) => {
                for error in &errors {
                    tracing::error!(%error, "invalid policy; still serving the previous set");
                }
                ReloadOutcome::Failed(errors.iter().map(ToString::to_string).collect())
            }
        }
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

/// What one poll of the policy source did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Nothing changed.
    Unchanged,
    /// A new set is served.
    Loaded(LoadSummary),
    /// The source changed but cannot be served; the messages say why.
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

    #[test]
    fn reload_counts_changes_and_keeps_the_last_good_set() {
        let metrics = Metrics::new("test");
        let cache = PolicyCache::new(metrics.clone());
        let mut installs = cache.subscribe();
        assert!(!cache.is_loaded());
        let first = cache
            .replace(&[
                doc(policy("a", "one")),
                doc(policy("b", "one")),
                doc(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})),
            ])
            .unwrap();
        assert_eq!((first.created, first.updated, first.deleted), (2, 0, 0));
        assert_eq!(first.ignored, ["Pod \"x\" (test.yaml)"]);
        assert!(cache.is_loaded());
        assert!(installs.has_changed().unwrap());
        assert_eq!(*installs.borrow_and_update(), 1);

        let second = cache
            .replace(&[doc(policy("a", "two")), doc(policy("c", "one"))])
            .unwrap();
        assert_eq!((second.created, second.updated, second.deleted), (1, 1, 1));

        let mut broken = policy("d", "x");
        broken["spec"]["validationFailureAction"] = json!("Sometimes");
        let errors = cache
            .replace(&[doc(policy("a", "three")), doc(broken)])
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            *installs.borrow_and_update(),
            2,
            "a failed reload installs nothing"
        );
        assert!(
            errors[0].to_string().starts_with(
                "test.yaml: invalid ClusterPolicy \"d\": spec.validationFailureAction"
            ),
            "{}",
            errors[0]
        );
        let names: Vec<String> = cache
            .current()
            .unwrap()
            .policies
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(names, ["a", "c"]);

        let text = metrics.encode_openmetrics().unwrap();
        for line in [
            "bylaw_policy_changes_total{policy_name=\"a\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",policy_change_type=\"create\"} 1",
            "bylaw_policy_changes_total{policy_name=\"a\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",policy_change_type=\"update\"} 1",
            "bylaw_policy_changes_total{policy_name=\"b\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",policy_change_type=\"delete\"} 1",
            "bylaw_policy_rule_info_total{policy_name=\"b\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"check\",rule_type=\"validate\",status_ready=\"true\"} 0",
            "bylaw_policy_rule_info_total{policy_name=\"c\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"check\",rule_type=\"validate\",status_ready=\"true\"} 1",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn duplicates_and_invalid_exceptions_are_errors() {
        let cache = PolicyCache::new(Metrics::new("test"));
        let exception = json!({
            "apiVersion": "kyverno.io/v2",
            "kind": "PolicyException",
            "metadata": {"name": "e", "namespace": "default"},
            "spec": {}
        });
        let errors = cache
            .replace(&[doc(policy("a", "x")), doc(policy("a", "y")), doc(exception)])
            .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].reason.contains("also defined in test.yaml"));
        assert!(
            errors[1].reason.starts_with("spec.exceptions"),
            "{}",
            errors[1]
        );
        assert!(!cache.is_loaded());
    }
}
