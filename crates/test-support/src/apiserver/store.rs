//! The in-memory object store: objects per group/resource, one global resourceVersion counter, the
//! bounded change history watches resume from, and the broadcast that feeds open watches.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::apply::Appliers;
use super::resources::{GroupResource, Registry};

/// How many changes are kept for watches that resume from a resourceVersion; older ones answer
/// 410 Gone, as after an etcd compaction.
const HISTORY_LIMIT: usize = 20_000;
/// Room in the fan-out channel; a watch that falls further behind is ended and resumes from history.
const BROADCAST_CAPACITY: usize = 8_192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub resource: GroupResource,
    pub namespace: String,
    pub event: EventType,
    pub object: Arc<Value>,
    /// The object before a modification, so a selector-filtered watch can tell an object that
    /// started or stopped matching.
    pub previous: Option<Arc<Value>>,
}

/// A stored object with the configurations its apply managers last sent.
#[derive(Clone, Debug)]
pub(crate) struct StoredObject {
    pub object: Arc<Value>,
    pub appliers: Appliers,
}

/// Namespace ("" for cluster-scoped) and name.
pub(crate) type ObjectKey = (String, String);

/// Identifies a stored object across resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjectRef {
    pub resource: GroupResource,
    pub namespace: String,
    pub name: String,
}

pub(crate) fn uid_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/uid").and_then(Value::as_str)
}

pub(crate) fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) struct Store {
    pub registry: Registry,
    objects: BTreeMap<GroupResource, BTreeMap<ObjectKey, StoredObject>>,
    rv: u64,
    /// Changes at or below this resourceVersion are no longer in `history`.
    compacted: u64,
    history: VecDeque<Arc<Change>>,
    changes: broadcast::Sender<Arc<Change>>,
    by_uid: HashMap<String, ObjectRef>,
    /// Owner uid → objects that list it in ownerReferences (for garbage collection).
    dependents: HashMap<String, BTreeSet<ObjectRef>>,
    uid_counter: u64,
    uid_seed: u64,
}

impl Store {
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(BROADCAST_CAPACITY);
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Store {
            registry: Registry::with_builtins(),
            objects: BTreeMap::new(),
            rv: 1,
            compacted: 0,
            history: VecDeque::new(),
            changes,
            by_uid: HashMap::new(),
            dependents: HashMap::new(),
            uid_counter: 0,
            uid_seed: seed,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// Changes after `rv`, oldest first, or `None` when some of them were compacted away.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.compacted {
            return None;
        }
        Some(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Forgets the history: every resourceVersion handed out so far is now too old to watch from.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.compacted = self.rv;
        self.history.clear();
    }

    /// A fresh uid in the usual 8-4-4-4-12 form.
    pub fn new_uid(&mut self) -> String {
        self.uid_counter += 1;
        let mut high = std::collections::hash_map::DefaultHasher::new();
        high.write_u64(self.uid_seed);
        high.write_u64(self.uid_counter);
        let a = high.finish();
        high.write_u64(a);
        let b = high.finish();
        let hex = format!("{a:016x}{b:016x}");
        format!(
            "{}-{}-4{}-a{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    pub fn get(
        &self,
        resource: &GroupResource,
        namespace: &str,
        name: &str,
    ) -> Option<&StoredObject> {
        self.objects
            .get(resource)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of a resource in key order (namespace, then name), optionally in one namespace.
    pub fn list<'a>(
        &'a self,
        resource: &GroupResource,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a StoredObject)> + 'a> {
        let Some(objects) = self.objects.get(resource) else {
            return Box::new(std::iter::empty());
        };
        match namespace {
            Some(ns) => Box::new(
                objects
                    .range((ns.to_string(), String::new())..)
                    .take_while(move |((object_ns, _), _)| object_ns == ns),
            ),
            None => Box::new(objects.iter()),
        }
    }

    /// Every namespaced object in a namespace, across resources.
    pub fn in_namespace(&self, namespace: &str) -> Vec<ObjectRef> {
        let mut refs = Vec::new();
        for (resource, objects) in &self.objects {
            for ((ns, name), _) in objects.range((namespace.to_string(), String::new())..) {
                if ns != namespace {
                    break;
                }
                refs.push(ObjectRef {
                    resource: resource.clone(),
                    namespace: ns.clone(),
                    name: name.clone(),
                });
            }
        }
        refs
    }

    pub fn all_of(&self, resource: &GroupResource) -> Vec<ObjectRef> {
        self.list(resource, None)
            .map(|((ns, name), _)| ObjectRef {
                resource: resource.clone(),
                namespace: ns.clone(),
                name: name.clone(),
            })
            .collect()
    }

    pub fn uid_exists(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// Objects with owner references none of whose owners exist.
    pub fn dangling_dependents(&self) -> Vec<ObjectRef> {
        let mut dangling = BTreeSet::new();
        for (owner, dependents) in &self.dependents {
            if self.by_uid.contains_key(owner) {
                continue;
            }
            for dependent in dependents {
                let all_gone = self
                    .get(&dependent.resource, &dependent.namespace, &dependent.name)
                    .is_some_and(|stored| {
                        owner_uids(&stored.object)
                            .iter()
                            .all(|o| !self.by_uid.contains_key(o))
                    });
                if all_gone {
                    dangling.insert(dependent.clone());
                }
            }
        }
        dangling.into_iter().collect()
    }

    pub fn dependents_of(&self, uid: &str) -> Vec<ObjectRef> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn unindex(&mut self, me: &ObjectRef, object: &Value) {
        if let Some(uid) = uid_of(object) {
            self.by_uid.remove(uid);
        }
        for owner in owner_uids(object) {
            if let Some(set) = self.dependents.get_mut(&owner) {
                set.remove(me);
                if set.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
    }

    fn index(&mut self, me: &ObjectRef, object: &Value) {
        if let Some(uid) = uid_of(object) {
            self.by_uid.insert(uid.to_string(), me.clone());
        }
        for owner in owner_uids(object) {
            self.dependents.entry(owner).or_default().insert(me.clone());
        }
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY_LIMIT {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Stores `object` under a new resourceVersion and tells the watches. The caller has checked
    /// everything; this cannot fail.
    pub fn commit(
        &mut self,
        resource: &GroupResource,
        mut object: Value,
        appliers: Appliers,
    ) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        set_resource_version(&mut object, rv);
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let object = Arc::new(object);
        let me = ObjectRef {
            resource: resource.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let key = (namespace.clone(), name);
        let previous = self
            .objects
            .get(resource)
            .and_then(|o| o.get(&key))
            .map(|s| s.object.clone());
        if let Some(previous) = &previous {
            self.unindex(&me, previous);
        }
        self.index(&me, &object);
        self.objects.entry(resource.clone()).or_default().insert(
            key,
            StoredObject {
                object: object.clone(),
                appliers,
            },
        );
        let event = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv,
            resource: resource.clone(),
            namespace,
            event,
            object: object.clone(),
            previous,
        });
        object
    }

    /// Keeps new apply configurations for an object whose content did not change.
    pub fn set_appliers(
        &mut self,
        resource: &GroupResource,
        namespace: &str,
        name: &str,
        appliers: Appliers,
    ) {
        if let Some(stored) = self
            .objects
            .get_mut(resource)
            .and_then(|o| o.get_mut(&(namespace.to_string(), name.to_string())))
        {
            stored.appliers = appliers;
        }
    }

    /// Removes an object for good; the DELETED event carries the object at the new resourceVersion.
    pub fn remove(
        &mut self,
        resource: &GroupResource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let stored = self
            .objects
            .get_mut(resource)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        let me = ObjectRef {
            resource: resource.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.unindex(&me, &stored.object);
        self.rv += 1;
        let rv = self.rv;
        let mut object = (*stored.object).clone();
        set_resource_version(&mut object, rv);
        let object = Arc::new(object);
        self.record(Change {
            rv,
            resource: resource.clone(),
            namespace: namespace.to_string(),
            event: EventType::Deleted,
            object: object.clone(),
            previous: None,
        });
        Some(object)
    }
}

pub(crate) fn set_resource_version(object: &mut Value, rv: u64) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("resourceVersion".to_string(), Value::String(rv.to_string()));
    }
}

/// `apps/v1` → ("apps", "v1"); `v1` → ("", "v1").
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}
