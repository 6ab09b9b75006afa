//! What happens to downstream (generated) objects after they exist: the decision a controller
//! takes when the trigger, the policy, the clone source or the downstream object itself
//! changes. The tables are Kyverno's documented behaviour for `data` and `clone` rules with and
//! without `synchronize`; applying the decision is the controller's job.

use serde::{Deserialize, Serialize};

/// Where a generate rule takes its object from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SourceKind {
    /// `generate.data`: the policy is the source of truth.
    Data,
    /// `generate.clone`: an existing object is copied.
    Clone,
    /// `generate.cloneList`: every selected object of some kinds in a namespace is copied.
    CloneList,
}

/// The settings of a generate rule that decide what happens after generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateSettings {
    pub source: SourceKind,
    /// `generate.synchronize`: keep downstream objects in step with the source.
    pub synchronize: bool,
    /// `generate.orphanDownstreamOnPolicyDelete`: keep `data` downstream objects of a
    /// synchronized rule when the policy goes away.
    pub orphan_downstream_on_policy_delete: bool,
    /// `generate.generateExisting` (or the policy's deprecated `spec.generateExisting` /
    /// `spec.generateExistingOnPolicyUpdate`): also generate for triggers that already exist
    /// when the policy is created or updated.
    pub generate_existing: bool,
}

/// Something that happened to a piece of a generate rule's world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleEvent {
    /// The policy was created.
    PolicyCreated,
    /// The policy (or the rule) changed.
    PolicyModified,
    /// The policy (or the rule) was deleted.
    PolicyDeleted,
    /// The trigger changed; `still_matches` says whether the rule still selects it.
    TriggerModified { still_matches: bool },
    /// The trigger was deleted.
    TriggerDeleted,
    /// The clone source changed.
    SourceModified,
    /// The clone source was deleted.
    SourceDeleted,
    /// Someone changed a downstream object.
    DownstreamModified,
    /// Someone deleted a downstream object.
    DownstreamDeleted,
}

/// What the controller should do with the downstream objects of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DownstreamAction {
    /// Leave them alone.
    Keep,
    /// Run the rule again for the trigger and write the result: recreates a deleted object,
    /// reverts a modified one, carries policy or source changes over.
    Regenerate,
    /// Delete them (found through [`super::labels::downstream_selector`]).
    Delete,
    /// Run the rule for every existing resource it selects (generate-existing).
    GenerateForExisting,
}

impl GenerateSettings {
    /// The controller's move after `event`.
    pub fn decide(&self, event: LifecycleEvent) -> DownstreamAction {
        use DownstreamAction::{Delete, GenerateForExisting, Keep, Regenerate};
        let sync = self.synchronize;
        let data = self.source == SourceKind::Data;
        match event {
            LifecycleEvent::PolicyCreated if self.generate_existing => GenerateForExisting,
            LifecycleEvent::PolicyCreated => Keep,
            LifecycleEvent::PolicyModified if self.generate_existing => GenerateForExisting,
            // Only a data rule carries the object in the policy; clones keep following their
            // source.
            LifecycleEvent::PolicyModified if sync && data => Regenerate,
            LifecycleEvent::PolicyModified => Keep,
            LifecycleEvent::PolicyDeleted
                if sync && data && !self.orphan_downstream_on_policy_delete =>
            {
                Delete
            }
            LifecycleEvent::PolicyDeleted => Keep,
            LifecycleEvent::TriggerModified {
                still_matches: true,
            } if sync => Regenerate,
            LifecycleEvent::TriggerModified {
                still_matches: false,
            } if sync => Delete,
            LifecycleEvent::TriggerModified { .. } => Keep,
            LifecycleEvent::TriggerDeleted if sync => Delete,
            LifecycleEvent::TriggerDeleted => Keep,
            LifecycleEvent::SourceModified if sync && !data => Regenerate,
            LifecycleEvent::SourceModified => Keep,
            LifecycleEvent::SourceDeleted if sync && !data => Delete,
            LifecycleEvent::SourceDeleted => Keep,
            LifecycleEvent::DownstreamModified if sync => Regenerate,
            LifecycleEvent::DownstreamModified => Keep,
            LifecycleEvent::DownstreamDeleted if sync => Regenerate,
            LifecycleEvent::DownstreamDeleted => Keep,
        }
    }
}
