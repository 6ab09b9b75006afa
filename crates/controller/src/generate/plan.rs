//! What the generate controller needs to know about a policy, read once when it changes, and
//! the pure decisions of a reconcile: which triggers a rule acts on, which downstream objects
//! belong to whom, what a rule's outcome means for them. No I/O here.

use std::collections::BTreeMap;
use std::sync::Arc;

use bylaw_engine::compile::{CompiledPolicy, RuleBody};
use bylaw_engine::generate::labels::{
    POLICY_NAME, POLICY_NAMESPACE, RULE_NAME, TRIGGER_KIND, TRIGGER_NAMESPACE, TRIGGER_UID,
};
use bylaw_engine::generate::{
    settings, DownstreamAction, GenerateSettings, LifecycleEvent, RuleGeneration, SourceKind,
};
use bylaw_engine::matching::{KindSelector, MatchBlock, ResourceFilter};
use bylaw_engine::request::metadata_str;
use bylaw_engine::response::RuleStatus;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// `apiVersion` and kind of objects a rule writes or reads; the apiVersion may be empty (any).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindRef {
    pub api_version: String,
    pub kind: String,
}

/// Where a synchronized clone rule reads from: a kind in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef {
    pub kind: KindRef,
    pub namespace: String,
}

/// One generate rule, as the controller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRule {
    pub name: String,
    pub settings: GenerateSettings,
    /// The kinds of the objects it writes (those written without variables in the kind).
    pub downstream: Vec<KindRef>,
    /// The clone sources it follows (synchronized clones only).
    pub sources: Vec<SourceRef>,
    /// Its match block lists DELETE: it generates when a trigger is deleted.
    pub on_delete: bool,
}

/// One mutate-existing rule (`mutate.targets`).
#[derive(Clone, Debug, PartialEq)]
pub struct MutateRule {
    pub name: String,
    /// `mutateExistingOnPolicyUpdate` (on the rule's mutate block, or the policy's deprecated
    /// spec field).
    pub on_policy_update: bool,
    /// The target kinds and namespaces (empty: every namespace, or not known before the
    /// variables are substituted).
    pub targets: Vec<SourceRef>,
}

/// A policy with generate or mutate-existing rules.
#[derive(Clone, Debug)]
pub struct PolicyEntry {
    pub policy: Arc<CompiledPolicy>,
    /// `metadata.uid`, to tell a recreated policy from an updated one.
    pub uid: String,
    /// `metadata.creationTimestamp`: triggers older than the policy are generated for only
    /// with `generateExisting`.
    pub created: Option<DateTime<Utc>>,
    pub generate: Vec<GenerateRule>,
    pub mutate: Vec<MutateRule>,
    /// The kinds of the rules' triggers (from their `match` blocks).
    pub triggers: Vec<KindSelector>,
}

impl PolicyEntry {
    /// The entry of a policy, or `None` when it has neither generate nor mutate-existing rules.
    pub fn of(policy: Arc<CompiledPolicy>, uid: &str, created: &str) -> Option<PolicyEntry> {
        let spec = policy.source.get("spec");
        let policy_flag = |key: &str| {
            spec.and_then(|s| s.get(key))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let mut generate = Vec::new();
        let mut mutate = Vec::new();
        let mut triggers: Vec<KindSelector> = Vec::new();
        for rule in &policy.rules {
            match &rule.body {
                RuleBody::Generate(block) => {
                    let settings = settings(&policy, block);
                    generate.push(GenerateRule {
                        name: rule.name.to_string(),
                        settings,
                        downstream: downstream_kinds(block),
                        sources: if settings.synchronize {
                            clone_sources(block, policy.namespace.as_deref())
                        } else {
                            Vec::new()
                        },
                        on_delete: names_delete(&rule.source),
                    });
                }
                RuleBody::Mutate(block) if block.get("targets").is_some_and(|t| !t.is_null()) => {
                    let on_policy_update = block
                        .get("mutateExistingOnPolicyUpdate")
                        .and_then(Value::as_bool)
                        .unwrap_or_else(|| policy_flag("mutateExistingOnPolicyUpdate"));
                    mutate.push(MutateRule {
                        name: rule.name.to_string(),
                        on_policy_update,
                        targets: mutate_targets(block, policy.namespace.as_deref()),
                    });
                }
                _ => continue,
            }
            for filter in filters(&rule.match_block) {
                for selector in &filter.resources.kinds {
                    if !triggers.contains(selector) {
                        triggers.push(selector.clone());
                    }
                }
            }
        }
        if generate.is_empty() && mutate.is_empty() {
            return None;
        }
        Some(PolicyEntry {
            policy,
            uid: uid.to_owned(),
            created: parse_time(created),
            generate,
            mutate,
            triggers,
        })
    }

    /// `namespace/name` or `name`: the key of work items and of downstream labels.
    pub fn key(&self) -> String {
        self.policy.key()
    }

    /// Whether a trigger of this kind may concern the policy.
    pub fn selects_kind(&self, group: &str, version: &str, kind: &str) -> bool {
        self.triggers
            .iter()
            .any(|s| s.matches(group, version, kind, ""))
    }

    /// Whether a synchronized clone rule reads from this kind in this namespace.
    pub fn follows_source(&self, api_version: &str, kind: &str, namespace: &str) -> bool {
        self.generate.iter().flat_map(|r| &r.sources).any(|s| {
            s.kind.kind == kind
                && (s.kind.api_version.is_empty() || s.kind.api_version == api_version)
                && s.namespace == namespace
        })
    }

    /// Whether a trigger is old news for a rule that does not generate for existing
    /// resources: it was created before the policy and not changed since.
    pub fn predates(&self, trigger: &Value, changed_at: Option<DateTime<Utc>>) -> bool {
        let Some(policy_created) = self.created else {
            return false;
        };
        let created = parse_time(metadata_str(trigger, "creationTimestamp"));
        let last_change = [created, changed_at, last_managed_change(trigger)]
            .into_iter()
            .flatten()
            .max();
        // Timestamps have whole seconds: a trigger of the same second counts as new.
        last_change.is_some_and(|at| at < policy_created)
    }
}

/// Whether a rule's match block lists DELETE among its operations.
fn names_delete(rule: &Value) -> bool {
    let Some(block) = rule.get("match") else {
        return false;
    };
    ["any", "all"]
        .iter()
        .filter_map(|k| block.get(*k).and_then(Value::as_array))
        .flatten()
        .chain(std::iter::once(block))
        .filter_map(|f| f.pointer("/resources/operations").and_then(Value::as_array))
        .flatten()
        .any(|op| {
            op.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("DELETE"))
        })
}

/// The filters of a match block.
fn filters(block: &MatchBlock) -> Vec<&ResourceFilter> {
    match block {
        MatchBlock::Empty => Vec::new(),
        MatchBlock::Any(filters) | MatchBlock::All(filters) => filters.iter().collect(),
        MatchBlock::Legacy(filter) => vec![filter.as_ref()],
    }
}

/// An RFC 3339 time; `None` when empty or malformed.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The latest `managedFields[].time`: when any client last wrote the object (the API server
/// keeps it; it is the only durable record of an update).
fn last_managed_change(object: &Value) -> Option<DateTime<Utc>> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|entry| entry.get("time").and_then(Value::as_str))
        .filter_map(parse_time)
        .max()
}

fn has_variables(text: &str) -> bool {
    text.contains("{{")
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The kinds a generate block writes: its `kind` (or `data.kind`), each foreach entry's, and
/// every `cloneList.kinds` entry. Kinds with variables are unknown until a trigger arrives.
fn downstream_kinds(block: &Value) -> Vec<KindRef> {
    let mut kinds = Vec::new();
    let patterns: Vec<&Value> = match block.get("foreach").and_then(Value::as_array) {
        Some(entries) if !entries.is_empty() => entries.iter().collect(),
        _ => vec![block],
    };
    for pattern in patterns {
        let data = pattern.get("data").unwrap_or(&Value::Null);
        let kind = match text(pattern, "kind") {
            "" => text(data, "kind"),
            kind => kind,
        };
        let api_version = match text(pattern, "apiVersion") {
            "" => text(data, "apiVersion"),
            version => version,
        };
        if !kind.is_empty() && !has_variables(kind) && !has_variables(api_version) {
            kinds.push(KindRef {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            });
        }
        if let Some(list) = pattern
            .pointer("/cloneList/kinds")
            .and_then(Value::as_array)
        {
            for entry in list.iter().filter_map(Value::as_str) {
                if !has_variables(entry) {
                    kinds.push(split_kind(entry));
                }
            }
        }
    }
    kinds.sort();
    kinds.dedup();
    kinds
}

/// `v1/Secret` → (`v1`, `Secret`); `apps/v1/Deployment` → (`apps/v1`, `Deployment`).
fn split_kind(text: &str) -> KindRef {
    match text.rsplit_once('/') {
        Some((api_version, kind)) => KindRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        },
        None => KindRef {
            api_version: String::new(),
            kind: text.to_owned(),
        },
    }
}

/// The sources a clone or cloneList block reads (without variables in kind or namespace).
fn clone_sources(block: &Value, policy_namespace: Option<&str>) -> Vec<SourceRef> {
    let mut sources = Vec::new();
    let patterns: Vec<&Value> = match block.get("foreach").and_then(Value::as_array) {
        Some(entries) if !entries.is_empty() => entries.iter().collect(),
        _ => vec![block],
    };
    for pattern in patterns {
        let known = |namespace: &str| {
            !has_variables(namespace) && policy_namespace.is_none_or(|own| own == namespace)
        };
        if let Some(clone) = pattern.get("clone").filter(|c| !text(c, "name").is_empty()) {
            let namespace = text(clone, "namespace");
            let kind = text(pattern, "kind");
            if known(namespace) && !kind.is_empty() && !has_variables(kind) {
                sources.push(SourceRef {
                    kind: KindRef {
                        api_version: text(pattern, "apiVersion").to_owned(),
                        kind: kind.to_owned(),
                    },
                    namespace: namespace.to_owned(),
                });
            }
        }
        if let Some(list) = pattern.get("cloneList") {
            let namespace = text(list, "namespace");
            if known(namespace) {
                for entry in list
                    .get("kinds")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|k| !has_variables(k))
                {
                    sources.push(SourceRef {
                        kind: split_kind(entry),
                        namespace: namespace.to_owned(),
                    });
                }
            }
        }
    }
    sources.sort();
    sources.dedup();
    sources
}

/// The kinds and namespaces a mutate-existing block targets. A namespaced policy reaches its
/// own namespace only; a namespace with variables is left empty (every namespace).
fn mutate_targets(block: &Value, policy_namespace: Option<&str>) -> Vec<SourceRef> {
    let mut targets = Vec::new();
    for target in block
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = text(target, "kind");
        let api_version = text(target, "apiVersion");
        if kind.is_empty() || has_variables(kind) || has_variables(api_version) {
            continue;
        }
        let namespace = match policy_namespace {
            Some(own) => own,
            None => match text(target, "namespace") {
                ns if has_variables(ns) || ns.contains('*') || ns.contains('?') => "",
                ns => ns,
            },
        };
        targets.push(SourceRef {
            kind: KindRef {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            },
            namespace: namespace.to_owned(),
        });
    }
    targets.sort();
    targets.dedup();
    targets
}

/// The label selector of a rule's downstream objects: of one trigger (`trigger_uid`), or of
/// every trigger.
pub fn downstream_selector(
    policy: &CompiledPolicy,
    rule: &str,
    trigger_uid: Option<&str>,
) -> String {
    let mut parts = vec![
        format!("{POLICY_NAME}={}", policy.name),
        format!(
            "{POLICY_NAMESPACE}={}",
            policy.namespace.as_deref().unwrap_or_default()
        ),
        format!("{RULE_NAME}={rule}"),
    ];
    if let Some(uid) = trigger_uid {
        parts.push(format!("{TRIGGER_UID}={uid}"));
    }
    parts.join(",")
}

/// Who a downstream object says made it: the policy key and the trigger's kind, namespace
/// and uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub policy: String,
    pub rule: String,
    pub trigger_kind: String,
    pub trigger_namespace: String,
    pub trigger_uid: String,
}

impl Provenance {
    /// Read from the generate labels; `None` when they are incomplete.
    pub fn of(object: &Value) -> Option<Provenance> {
        let labels: BTreeMap<String, String> =
            bylaw_engine::request::metadata_map(object, "labels");
        let get = |key: &str| labels.get(key).cloned().unwrap_or_default();
        let name = get(POLICY_NAME);
        let uid = get(TRIGGER_UID);
        if name.is_empty() || uid.is_empty() {
            return None;
        }
        let namespace = get(POLICY_NAMESPACE);
        Some(Provenance {
            policy: if namespace.is_empty() {
                name
            } else {
                format!("{namespace}/{name}")
            },
            rule: get(RULE_NAME),
            trigger_kind: get(TRIGGER_KIND),
            trigger_namespace: get(TRIGGER_NAMESPACE),
            trigger_uid: uid,
        })
    }
}

/// What to do for one rule and one trigger after the engine ran.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleStep {
    /// Write these objects (the engine's pass).
    Write,
    /// Apply the lifecycle decision to the trigger's existing downstream objects.
    Downstream(DownstreamAction),
    /// The rule could not be evaluated: try again later.
    Failed(String),
}

/// The step for a rule given the engine's outcome for it (`None`: the rule does not select the
/// trigger).
pub fn rule_step(rule: &GenerateRule, outcome: Option<&RuleGeneration>) -> RuleStep {
    let not_matching = rule.settings.decide(LifecycleEvent::TriggerModified {
        still_matches: false,
    });
    let Some(outcome) = outcome else {
        return RuleStep::Downstream(not_matching);
    };
    let Some(response) = &outcome.response else {
        return RuleStep::Downstream(outcome.downstream);
    };
    match response.status {
        RuleStatus::Pass => RuleStep::Write,
        // An exception leaves the downstream objects alone; unmet preconditions mean the rule
        // no longer applies to the trigger.
        RuleStatus::Skip if response.exception.is_some() => {
            RuleStep::Downstream(DownstreamAction::Keep)
        }
        RuleStatus::Skip => RuleStep::Downstream(not_matching),
        RuleStatus::Error
            if rule.settings.source != SourceKind::Data
                && response.message.contains("clone source")
                && response.message.ends_with("not found") =>
        {
            RuleStep::Downstream(rule.settings.decide(LifecycleEvent::SourceDeleted))
        }
        RuleStatus::Error => RuleStep::Failed(response.message.clone()),
        RuleStatus::Fail | RuleStatus::Warn => RuleStep::Downstream(outcome.downstream),
    }
}

/// Whether a namespaced policy may write `namespace` (its own namespace only, never a
/// cluster-scoped object); a ClusterPolicy may write anywhere its RBAC allows.
pub fn may_write(policy: &CompiledPolicy, namespace: &str) -> Result<(), String> {
    match &policy.namespace {
        Some(own) if own != namespace => Err(format!(
            "a namespaced Policy generates only into its own namespace {own:?}, not {}",
            if namespace.is_empty() {
                "a cluster-scoped object".to_owned()
            } else {
                format!("{namespace:?}")
            }
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bylaw_engine::compile::compile_policy;
    use bylaw_engine::response::{RuleResponse, RuleType};
    use serde_json::json;

    fn entry(policy: Value) -> PolicyEntry {
        let compiled = compile_policy(&policy).expect("compiles");
        PolicyEntry::of(Arc::new(compiled), "uid-1", "2024-05-01T10:00:00Z").expect("generates")
    }

    fn netpol_policy(synchronize: bool) -> Value {
        json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "default-deny"},
            "spec": {"rules": [{
                "name": "netpol",
                "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                "generate": {
                    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "name": "default-deny", "namespace": "{{request.object.metadata.name}}",
                    "synchronize": synchronize,
                    "data": {"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
                }
            }, {
                "name": "secrets",
                "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                "generate": {
                    "namespace": "{{request.object.metadata.name}}", "synchronize": true,
                    "cloneList": {"namespace": "default", "kinds": ["v1/Secret", "ConfigMap"]}
                }
            }]}
        })
    }

    #[test]
    fn a_policy_entry_knows_triggers_downstream_kinds_and_sources() {
        let entry = entry(netpol_policy(false));
        assert_eq!(entry.key(), "default-deny");
        assert!(entry.selects_kind("", "v1", "Namespace"));
        assert!(!entry.selects_kind("", "v1", "Pod"));
        let [netpol, secrets] = entry.generate.as_slice() else {
            panic!("two rules: {:?}", entry.generate)
        };
        assert_eq!(
            netpol.downstream,
            [KindRef {
                api_version: "networking.k8s.io/v1".into(),
                kind: "NetworkPolicy".into()
            }]
        );
        assert!(netpol.sources.is_empty(), "data rules follow no source");
        assert!(!netpol.on_delete);
        assert_eq!(secrets.settings.source, SourceKind::CloneList);
        assert_eq!(
            secrets
                .downstream
                .iter()
                .map(|k| format!("{}|{}", k.api_version, k.kind))
                .collect::<Vec<_>>(),
            ["|ConfigMap", "v1|Secret"]
        );
        assert!(entry.follows_source("v1", "Secret", "default"));
        assert!(entry.follows_source("v1", "ConfigMap", "default"));
        assert!(!entry.follows_source("v1", "Secret", "other"));
    }

    #[test]
    fn policies_without_generate_or_mutate_targets_have_no_entry() {
        let policy = json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "labels"},
            "spec": {"rules": [{
                "name": "add", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"a": "b"}}}}
            }]}
        });
        let compiled = compile_policy(&policy).unwrap();
        assert!(PolicyEntry::of(Arc::new(compiled), "u", "").is_none());
    }

    #[test]
    fn mutate_existing_rules_read_the_flag_from_the_rule_or_the_spec() {
        let policy = |rule_flag: Option<bool>, spec_flag: bool| {
            let mut mutate = json!({
                "targets": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "{{request.object.metadata.name}}"}],
                "patchStrategicMerge": {"metadata": {"labels": {"a": "b"}}}
            });
            if let Some(flag) = rule_flag {
                mutate["mutateExistingOnPolicyUpdate"] = json!(flag);
            }
            entry(json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "m"},
                "spec": {"mutateExistingOnPolicyUpdate": spec_flag, "rules": [{
                    "name": "label", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                    "mutate": mutate
                }]}
            }))
        };
        assert!(policy(Some(true), false).mutate[0].on_policy_update);
        assert!(!policy(Some(false), true).mutate[0].on_policy_update);
        assert!(policy(None, true).mutate[0].on_policy_update);
        let rule = &policy(None, false).mutate[0];
        assert!(!rule.on_policy_update);
        assert_eq!(
            rule.targets,
            [SourceRef {
                kind: KindRef {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into()
                },
                namespace: String::new()
            }],
            "a namespace with variables means every namespace"
        );
    }

    #[test]
    fn triggers_older_than_the_policy_predate_it_unless_changed_since() {
        let entry = entry(netpol_policy(false));
        let namespace = |created: &str| {
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "x", "creationTimestamp": created}})
        };
        assert!(entry.predates(&namespace("2024-05-01T09:59:59Z"), None));
        assert!(!entry.predates(&namespace("2024-05-01T10:00:00Z"), None));
        assert!(!entry.predates(&namespace("2024-06-01T00:00:00Z"), None));
        let seen_changing = parse_time("2024-05-02T00:00:00Z");
        assert!(!entry.predates(&namespace("2024-01-01T00:00:00Z"), seen_changing));
        let mut updated = namespace("2024-01-01T00:00:00Z");
        updated["metadata"]["managedFields"] = json!([
            {"manager": "kubectl", "time": "2024-01-01T00:00:00Z"},
            {"manager": "kubectl-label", "time": "2024-05-03T00:00:00Z"}
        ]);
        assert!(
            !entry.predates(&updated, None),
            "an update after the policy counts as a change the policy sees"
        );
    }

    #[test]
    fn provenance_reads_the_generate_labels() {
        let trigger = json!({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "x", "uid": "t-1"}});
        let mut object = json!({"metadata": {"name": "default-deny"}});
        bylaw_engine::generate::labels::add_labels(
            &mut object,
            &bylaw_engine::generate::labels::downstream_selector("p", "team", "r", &trigger),
        );
        let found = Provenance::of(&object).unwrap();
        assert_eq!(found.policy, "team/p");
        assert_eq!(found.rule, "r");
        assert_eq!(found.trigger_kind, "Namespace");
        assert_eq!(found.trigger_uid, "t-1");
        assert!(Provenance::of(&json!({"metadata": {"labels": {"a": "b"}}})).is_none());
    }

    #[test]
    fn rule_steps_follow_the_lifecycle_table() {
        let rule = |synchronize: bool, source: SourceKind| GenerateRule {
            name: "r".into(),
            settings: GenerateSettings {
                source,
                synchronize,
                orphan_downstream_on_policy_delete: false,
                generate_existing: false,
            },
            downstream: Vec::new(),
            sources: Vec::new(),
            on_delete: false,
        };
        let outcome = |status: RuleStatus, message: &str| RuleGeneration {
            rule: "r".into(),
            settings: rule(true, SourceKind::Data).settings,
            response: Some(RuleResponse::named(
                "r".into(),
                RuleType::Generation,
                status,
                message.to_owned(),
            )),
            resources: Vec::new(),
            downstream: DownstreamAction::Keep,
        };
        let synced = rule(true, SourceKind::Data);
        let once = rule(false, SourceKind::Data);
        let clone = rule(true, SourceKind::Clone);
        assert_eq!(
            rule_step(&synced, None),
            RuleStep::Downstream(DownstreamAction::Delete)
        );
        assert_eq!(
            rule_step(&once, None),
            RuleStep::Downstream(DownstreamAction::Keep)
        );
        assert_eq!(
            rule_step(&synced, Some(&outcome(RuleStatus::Pass, "generated"))),
            RuleStep::Write
        );
        assert_eq!(
            rule_step(
                &synced,
                Some(&outcome(RuleStatus::Skip, "preconditions not met"))
            ),
            RuleStep::Downstream(DownstreamAction::Delete)
        );
        let mut excepted = outcome(RuleStatus::Skip, "rule skipped due to policy exception e");
        if let Some(response) = &mut excepted.response {
            response.exception = Some("e".into());
        }
        assert_eq!(
            rule_step(&synced, Some(&excepted)),
            RuleStep::Downstream(DownstreamAction::Keep)
        );
        let missing = outcome(
            RuleStatus::Error,
            "clone source Secret default/regcred not found",
        );
        assert_eq!(
            rule_step(&clone, Some(&missing)),
            RuleStep::Downstream(DownstreamAction::Delete)
        );
        assert_eq!(
            rule_step(&rule(false, SourceKind::Clone), Some(&missing)),
            RuleStep::Downstream(DownstreamAction::Keep)
        );
        assert_eq!(
            rule_step(&synced, Some(&outcome(RuleStatus::Error, "bad variable"))),
            RuleStep::Failed("bad variable".into())
        );
    }

    #[test]
    fn a_namespaced_policy_writes_only_into_its_namespace() {
        let policy = compile_policy(&json!({
            "apiVersion": "kyverno.io/v1", "kind": "Policy",
            "metadata": {"name": "p", "namespace": "team-a"},
            "spec": {"rules": [{
                "name": "r", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                "generate": {"kind": "Secret", "name": "s", "namespace": "team-a", "data": {}}
            }]}
        }))
        .unwrap();
        assert!(may_write(&policy, "team-a").is_ok());
        assert_eq!(
            may_write(&policy, "team-b").unwrap_err(),
            "a namespaced Policy generates only into its own namespace \"team-a\", not \"team-b\""
        );
        assert!(may_write(&policy, "")
            .unwrap_err()
            .contains("cluster-scoped"));
    }
}
