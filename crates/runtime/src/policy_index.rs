//! Policy objects of a cluster, each compiled once when it changes.
//!
//! The in-cluster policy controller feeds watch events in ([`PolicyIndex::apply`],
//! [`PolicyIndex::delete`], and [`PolicyIndex::begin_relist`]/[`PolicyIndex::finish_relist`]
//! around a full list) and builds the [`PolicySet`] to serve from it ([`PolicyIndex::build`]).
//! An object is recompiled only when what the compiler reads (kind, name, namespace, labels,
//! annotations, spec) changed: a status update or a new resourceVersion alone compiles nothing.
//! Each object's outcome (served, or rejected with the reason) stays available for its status.
//!
//! The index keeps a trimmed copy of each object (no managedFields, no status), so memory grows
//! with the policies' specs, not with what the API server adds to them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bylaw_engine::engine::PolicySet;
use serde_json::{Map, Value};

use crate::policy_cache::{compile_one, Compiled, PolicyError};
use crate::sources::PolicyDocument;

/// The kinds of policy objects the index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// `kyverno.io/v1` ClusterPolicy.
    ClusterPolicy,
    /// `kyverno.io/v1` Policy.
    Policy,
    /// `kyverno.io/v2` PolicyException.
    PolicyException,
    /// `policies.kyverno.io/v1` ValidatingPolicy (CEL).
    ValidatingPolicy,
    /// `policies.kyverno.io/v1` NamespacedValidatingPolicy (CEL).
    NamespacedValidatingPolicy,
}

impl PolicyKind {
    /// Every kind.
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::ClusterPolicy,
        PolicyKind::Policy,
        PolicyKind::PolicyException,
        PolicyKind::ValidatingPolicy,
        PolicyKind::NamespacedValidatingPolicy,
    ];

    /// The `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::ClusterPolicy => "ClusterPolicy",
            PolicyKind::Policy => "Policy",
            PolicyKind::PolicyException => "PolicyException",
            PolicyKind::ValidatingPolicy => "ValidatingPolicy",
            PolicyKind::NamespacedValidatingPolicy => "NamespacedValidatingPolicy",
        }
    }

    /// Whether this is one of the `policies.kyverno.io` kinds, whose status has Kyverno's
    /// `conditionStatus` shape.
    pub fn is_cel_policy(self) -> bool {
        matches!(
            self,
            PolicyKind::ValidatingPolicy | PolicyKind::NamespacedValidatingPolicy
        )
    }

    /// The kind named by a document's `kind` field.
    pub fn from_kind(kind: &str) -> Option<Self> {
        PolicyKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// Identity of one object: kind, namespace (empty when cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Kind.
    pub kind: PolicyKind,
    /// Namespace; empty for a ClusterPolicy.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of a document, when it is a policy object with a name.
    pub fn of(doc: &Value) -> Option<Self> {
        let kind = PolicyKind::from_kind(doc.get("kind")?.as_str()?)?;
        let meta = |field: &str| {
            doc.pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let name = meta("name");
        if name.is_empty() {
            return None;
        }
        Some(ObjectKey {
            kind,
            namespace: meta("namespace"),
            name,
        })
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind.as_str(), self.name)
        } else {
            write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
        }
    }
}

/// What the API server says about an object besides what the compiler reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp` (RFC 3339; empty when unknown).
    pub creation_timestamp: String,
    /// `status` as last seen.
    pub status: Option<Value>,
}

/// One object in the index.
#[derive(Clone, Debug)]
pub struct IndexedObject {
    /// Identity and status as last seen.
    pub meta: ObjectMeta,
    /// The compiled outcome: served, or rejected and why.
    pub outcome: Result<Compiled, Box<PolicyError>>,
    /// The trimmed document the outcome was compiled from.
    source: Value,
}

impl IndexedObject {
    /// The document as compiled (kind, name, namespace, labels, annotations, spec).
    pub fn source(&self) -> &Value {
        &self.source
    }
}

/// What [`PolicyIndex::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Compiled anew: the served set may change.
    Compiled,
    /// Only metadata or status changed: nothing to recompile.
    MetaOnly,
    /// Not a policy object (no kind this index holds, or no name).
    Ignored,
}

/// Every policy object of the cluster, compiled.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    objects: BTreeMap<ObjectKey, IndexedObject>,
    /// Keys seen since [`PolicyIndex::begin_relist`] for each kind being relisted.
    relisting: BTreeMap<PolicyKind, BTreeSet<ObjectKey>>,
}

/// What the compiler reads of an object: everything else (managedFields, status,
/// resourceVersion, …) is dropped before it is compiled and kept.
fn trimmed(doc: &Value) -> Value {
    let mut out = Map::new();
    for field in ["apiVersion", "kind", "spec"] {
        if let Some(value) = doc.get(field) {
            out.insert(field.to_owned(), value.clone());
        }
    }
    let mut meta = Map::new();
    if let Some(metadata) = doc.get("metadata").and_then(Value::as_object) {
        for field in ["name", "namespace", "labels", "annotations"] {
            if let Some(value) = metadata.get(field) {
                meta.insert(field.to_owned(), value.clone());
            }
        }
    }
    out.insert("metadata".to_owned(), Value::Object(meta));
    Value::Object(out)
}

fn object_meta(doc: &Value) -> ObjectMeta {
    let text = |pointer: &str| {
        doc.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    ObjectMeta {
        uid: text("/metadata/uid"),
        resource_version: text("/metadata/resourceVersion"),
        generation: doc.pointer("/metadata/generation").and_then(Value::as_i64),
        creation_timestamp: text("/metadata/creationTimestamp"),
        status: doc.get("status").filter(|s| !s.is_null()).cloned(),
    }
}

impl PolicyIndex {
    /// An empty index.
    pub fn new() -> Self {
        PolicyIndex::default()
    }

    /// Adds or updates an object, compiling it only when what the compiler reads changed.
    pub fn apply(&mut self, doc: &Value) -> Applied {
        let Some(key) = ObjectKey::of(doc) else {
            return Applied::Ignored;
        };
        if let Some(seen) = self.relisting.get_mut(&key.kind) {
            seen.insert(key.clone());
        }
        let meta = object_meta(doc);
        let source = trimmed(doc);
        if let Some(existing) = self.objects.get_mut(&key) {
            if existing.source == source {
                existing.meta = meta;
                return Applied::MetaOnly;
            }
        }
        let document = PolicyDocument {
            value: source,
            origin: key.to_string(),
        };
        let outcome = compile_one(&document);
        self.objects.insert(
            key,
            IndexedObject {
                meta,
                outcome,
                source: document.value,
            },
        );
        Applied::Compiled
    }

    /// Removes an object; true when it was there.
    pub fn delete(&mut self, key: &ObjectKey) -> bool {
        self.objects.remove(key).is_some()
    }

    /// A full list of `kind` starts: objects not applied again before
    /// [`PolicyIndex::finish_relist`] are gone.
    pub fn begin_relist(&mut self, kind: PolicyKind) {
        self.relisting.insert(kind, BTreeSet::new());
    }

    /// The full list of `kind` is complete: removes every object of that kind it did not
    /// include, and returns how many.
    pub fn finish_relist(&mut self, kind: PolicyKind) -> usize {
        let Some(seen) = self.relisting.remove(&kind) else {
            return 0;
        };
        let before = self.objects.len();
        self.objects
            .retain(|key, _| key.kind != kind || seen.contains(key));
        before - self.objects.len()
    }

    /// The object under `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&IndexedObject> {
        self.objects.get(key)
    }

    /// Every object, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &IndexedObject)> {
        self.objects.iter()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The set to serve (policies in key order) and every object that is not served.
    pub fn build(&self) -> (PolicySet, Vec<PolicyError>) {
        let mut set = PolicySet::default();
        let mut rejected = Vec::new();
        for object in self.objects.values() {
            match &object.outcome {
                Ok(Compiled::Policy(policy)) => set.policies.push(Arc::clone(policy)),
                Ok(Compiled::Exception(exception)) => {
                    set.exceptions.push(exception.as_ref().clone());
                }
                Ok(Compiled::Other) => {}
                Err(error) => rejected.push(error.as_ref().clone()),
            }
        }
        (set, rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_cache::Rejection;
    use serde_json::json;

    fn policy(name: &str, namespace: Option<&str>, message: &str) -> Value {
        let mut doc = json!({
            "apiVersion": "kyverno.io/v1",
            "kind": if namespace.is_some() { "Policy" } else { "ClusterPolicy" },
            "metadata": {
                "name": name,
                "uid": format!("uid-{name}"),
                "resourceVersion": "1",
                "generation": 1,
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": {
                "rules": [{
                    "name": "check",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "validate": {"message": message, "pattern": {"metadata": {"name": "?*"}}}
                }]
            }
        });
        if let Some(ns) = namespace {
            doc["metadata"]["namespace"] = json!(ns);
        }
        doc
    }

    fn key(kind: PolicyKind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn objects_compile_once_and_status_updates_compile_nothing() {
        let mut index = PolicyIndex::new();
        let a = policy("a", None, "one");
        assert_eq!(index.apply(&a), Applied::Compiled);
        let first = match &index
            .get(&key(PolicyKind::ClusterPolicy, "", "a"))
            .unwrap()
            .outcome
        {
            Ok(Compiled::Policy(p)) => Arc::clone(p),
            other => panic!("compiled policy expected: {other:?}"),
        };
        // managedFields are not kept.
        assert!(first.source.pointer("/metadata/managedFields").is_none());

        let mut status_only = a.clone();
        status_only["metadata"]["resourceVersion"] = json!("2");
        status_only["status"] = json!({"ready": true});
        assert_eq!(index.apply(&status_only), Applied::MetaOnly);
        let object = index.get(&key(PolicyKind::ClusterPolicy, "", "a")).unwrap();
        assert_eq!(object.meta.resource_version, "2");
        assert_eq!(object.meta.status, Some(json!({"ready": true})));
        match &object.outcome {
            Ok(Compiled::Policy(p)) => assert!(Arc::ptr_eq(p, &first), "not recompiled"),
            other => panic!("{other:?}"),
        }

        let mut annotated = status_only.clone();
        annotated["metadata"]["annotations"] =
            json!({"pod-policies.kyverno.io/autogen-controllers": "none"});
        assert_eq!(index.apply(&annotated), Applied::Compiled);
        assert_eq!(
            index.apply(&json!({"kind": "ConfigMap", "metadata": {"name": "x"}})),
            Applied::Ignored
        );
    }

    #[test]
    fn the_set_holds_what_compiles_and_lists_what_does_not() {
        let mut index = PolicyIndex::new();
        index.apply(&policy("b", None, "x"));
        index.apply(&policy("a", Some("team"), "x"));
        let mut broken = policy("c", None, "x");
        broken["spec"]["rules"][0]["match"] = json!({});
        index.apply(&broken);
        index.apply(&json!({
            "apiVersion": "kyverno.io/v2",
            "kind": "PolicyException",
            "metadata": {"name": "e", "namespace": "team"},
            "spec": {
                "exceptions": [{"policyName": "b", "ruleNames": ["check"]}],
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}
            }
        }));
        let (set, rejected) = index.build();
        let names: Vec<String> = set.policies.iter().map(|p| p.key()).collect();
        assert_eq!(
            names,
            ["b", "team/a"],
            "ClusterPolicies first, then Policies, by name"
        );
        assert_eq!(set.exceptions.len(), 1);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].rejection, Rejection::Invalid);
        assert_eq!(rejected[0].origin, "ClusterPolicy c");
        assert!(
            rejected[0].message.starts_with("spec.rules[0].match"),
            "{}",
            rejected[0].message
        );
    }

    #[test]
    fn a_relist_removes_what_it_no_longer_contains() {
        let mut index = PolicyIndex::new();
        index.apply(&policy("a", None, "x"));
        index.apply(&policy("b", None, "x"));
        index.apply(&policy("p", Some("team"), "x"));
        index.begin_relist(PolicyKind::ClusterPolicy);
        index.apply(&policy("b", None, "x"));
        // Until the list completes nothing is dropped: no gap in enforcement.
        assert_eq!(index.len(), 3);
        assert_eq!(index.finish_relist(PolicyKind::ClusterPolicy), 1);
        let keys: Vec<String> = index.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(
            keys,
            ["ClusterPolicy b", "Policy team/p"],
            "other kinds are untouched"
        );
        assert!(index.delete(&key(PolicyKind::Policy, "team", "p")));
        assert!(!index.delete(&key(PolicyKind::Policy, "team", "p")));
    }
}
