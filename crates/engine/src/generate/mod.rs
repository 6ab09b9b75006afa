//! Kyverno `generate` rules, decided purely: which objects a trigger should produce and what a
//! controller should do with existing downstream objects when things change.
//!
//! - [`generate_rule`]: one matched rule (context loaded, preconditions passed) for one
//!   trigger — `data`, `clone`, `cloneList` and `foreach`, with variables substituted in the
//!   generate block. It returns the objects to create or update (labelled with
//!   [`labels::downstream_selector`]) and a rule response with Kyverno's statuses: pass with
//!   the generated objects, error for a bad block or a missing clone source.
//! - [`GenerateSettings::decide`]: the documented reaction to trigger, policy, source and
//!   downstream changes (`synchronize`, `orphanDownstreamOnPolicyDelete`, `generateExisting`).
//!
//! Matching, exceptions, context entries and preconditions are the caller's
//! ([`crate::engine::generate_policy`]); existing objects (clone sources, current targets) come
//! through [`crate::context::ContextProvider::resource`] and
//! [`crate::context::ContextProvider::list_resources`].

pub mod labels;
mod lifecycle;
mod rule;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use lifecycle::{DownstreamAction, GenerateSettings, LifecycleEvent, SourceKind};
pub use rule::{generate_rule, settings};

use crate::request::metadata_str;
use crate::response::{PolicyResponse, RuleResponse};

/// Where an object lives: what a controller needs to get, create or delete it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ResourceRef {
    /// The reference of an object, from its `apiVersion`, `kind` and metadata.
    pub fn of(object: &Value) -> ResourceRef {
        let text = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        ResourceRef {
            api_version: text("apiVersion"),
            kind: text("kind"),
            namespace: metadata_str(object, "namespace").to_owned(),
            name: metadata_str(object, "name").to_owned(),
        }
    }
}

/// Objects that exist, looked up the way a controller's client would: the source of `clone` and
/// `cloneList` for offline evaluation (the CLI, tests). An empty apiVersion matches any.
#[derive(Debug, Default, Clone)]
pub struct ObjectStore(pub Vec<Value>);

impl ObjectStore {
    fn is(id: &ResourceRef, api_version: &str, kind: &str, namespace: &str) -> bool {
        (api_version.is_empty() || id.api_version == api_version)
            && id.kind == kind
            && id.namespace == namespace
    }

    /// The object with this identity, if it exists.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<&Value> {
        self.0.iter().find(|o| {
            let id = ResourceRef::of(o);
            Self::is(&id, api_version, kind, namespace) && id.name == name
        })
    }

    /// Every object of a kind in a namespace (selectors are applied by the rule).
    pub fn list(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        self.0
            .iter()
            .filter(|o| Self::is(&ResourceRef::of(o), api_version, kind, namespace))
            .cloned()
            .collect()
    }
}

impl crate::context::ContextProvider for ObjectStore {
    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, crate::context::ContextError> {
        Ok(self.get(api_version, kind, namespace, name).cloned())
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        _selector: Option<&Value>,
    ) -> Result<Vec<Value>, crate::context::ContextError> {
        Ok(self.list(api_version, kind, namespace))
    }
}

impl std::fmt::Display for ResourceRef {
    /// `Kind namespace/name`, or `Kind name` when cluster-scoped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Whether the writer creates the object or updates the one that is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GenerateAction {
    Create,
    Update,
}

/// One object a generate rule wants in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedResource {
    pub action: GenerateAction,
    pub target: ResourceRef,
    /// The full object to write, generate labels included.
    pub object: Value,
    /// For clones: the source, which the writer tags with [`labels::CLONE_SOURCE`] so its
    /// changes can be traced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_source: Option<ResourceRef>,
}

/// The outcome of one generate rule for one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleGeneration {
    pub rule: String,
    pub settings: GenerateSettings,
    /// The rule response to report; `None` where Kyverno reports nothing (a trigger being
    /// deleted by a rule that does not generate on DELETE).
    pub response: Option<RuleResponse>,
    /// Objects to create or update (empty unless the response is a pass).
    pub resources: Vec<GeneratedResource>,
    /// What to do with the downstream objects this trigger already has.
    pub downstream: DownstreamAction,
}

/// Every generate rule of one policy for one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyGeneration {
    /// The rule responses, as reports and `bylaw test` see them.
    pub response: PolicyResponse,
    pub rules: Vec<RuleGeneration>,
}

impl PolicyGeneration {
    /// Every object the policy wants written, in rule order.
    pub fn resources(&self) -> impl Iterator<Item = &GeneratedResource> {
        self.rules.iter().flat_map(|r| r.resources.iter())
    }
}

/// Whether a policy has at least one generate rule.
pub fn has_generate(policy: &crate::compile::CompiledPolicy) -> bool {
    policy
        .rules
        .iter()
        .any(|r| matches!(r.body, crate::compile::RuleBody::Generate(_)))
}
