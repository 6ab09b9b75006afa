//! Write semantics on top of the store: create, update (main resource or `/status`), delete with
//! finalizers, namespace termination, owner-reference garbage collection and CRD registration.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::apply::Appliers;
use super::errors::{ApiError, Subject};
use super::resources::{crd_types, GroupResource, ResourceType};
use super::store::{owner_uids, uid_of, ObjectRef, Store};
use super::validation::{check_metadata, check_name};

/// Who is writing: a client through HTTP, or a test seeding state directly (which may set
/// `.status` on create and creates missing namespaces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Api,
    Seed,
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Everything except `.status` when the type has a status subresource.
    Main,
    /// Only `.status`.
    Status,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// What a delete did.
pub(crate) enum Deleted {
    /// Removed; the object as it was last.
    Gone(Arc<Value>),
    /// Finalizers (or a namespace's contents) keep it: `deletionTimestamp` is set.
    Pending(Arc<Value>),
}

pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn subject<'a>(rt: &'a ResourceType, name: &'a str) -> Subject<'a> {
    Subject {
        group: &rt.group,
        resource: &rt.plural,
        name,
    }
}

fn crd_resource() -> GroupResource {
    GroupResource {
        group: "apiextensions.k8s.io".to_string(),
        resource: "customresourcedefinitions".to_string(),
    }
}

fn namespace_resource() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "namespaces".to_string(),
    }
}

/// The object's metadata map, created when missing; `None` only when the object is not a map,
/// which [`Store::check_type`] refuses before any write.
fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let metadata = object
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    metadata.as_object_mut()
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn being_deleted(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Everything that counts for `metadata.generation`: the object without metadata (and without
/// status when the type has a status subresource).
fn generation_content(rt: &ResourceType, object: &Value) -> Value {
    let mut content = object.clone();
    if let Some(fields) = content.as_object_mut() {
        fields.remove("metadata");
        fields.remove("apiVersion");
        fields.remove("kind");
        if rt.status {
            fields.remove("status");
        }
    }
    content
}

/// Characters kube-apiserver uses for `generateName` suffixes.
const NAME_SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Store {
    /// Checks apiVersion/kind against the URL and fills them in when absent.
    fn check_type(rt: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let expected = rt.api_version();
        match object.get("apiVersion").and_then(Value::as_str) {
            Some(av) if av != expected => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({expected})"
                )));
            }
            _ => object["apiVersion"] = json!(expected),
        }
        match object.get("kind").and_then(Value::as_str) {
            Some(kind) if kind != rt.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({kind}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
            _ => object["kind"] = json!(rt.kind),
        }
        Ok(())
    }

    /// Checks and fills metadata.namespace for the URL's namespace.
    fn check_namespace(
        rt: &ResourceType,
        namespace: Option<&str>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        let Some(metadata) = metadata_mut(object) else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        if !rt.namespaced {
            metadata.remove("namespace");
            return Ok(());
        }
        let Some(namespace) = namespace else {
            return Err(ApiError::bad_request(
                "the namespace of the object is required for a namespaced resource",
            ));
        };
        match metadata.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )),
            _ => {
                metadata.insert("namespace".to_string(), json!(namespace));
                Ok(())
            }
        }
    }

    fn validate(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
        let name = meta_str(object, "name").unwrap_or_default();
        let mut errors: Vec<(String, String)> = check_name(rt, name).into_iter().collect();
        errors.extend(check_metadata(object));
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            if let Err(crd_errors) = crd_types(object) {
                errors.extend(crd_errors);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(&rt.kind, &rt.group, name, errors))
        }
    }

    /// The namespace of a namespaced write must exist and not be terminating.
    fn check_namespace_open(&mut self, namespace: &str, origin: Origin) -> Result<(), ApiError> {
        match self.get(&namespace_resource(), "", namespace) {
            Some(ns) if being_deleted(&ns.object) => Err(ApiError::forbidden(
                &Subject { group: "", resource: "namespaces", name: namespace },
                format!("unable to create new content in namespace {namespace} because it is being terminated"),
            )),
            Some(_) => Ok(()),
            None if origin == Origin::Seed => {
                let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace } });
                let rt = self
                    .registry
                    .by_path("", "v1", "namespaces")
                    .ok_or_else(|| ApiError::bad_request("namespaces are not served"))?;
                self.create(&rt, None, ns, Origin::Seed, Appliers::new(), false).map(|_| ())
            }
            None => Err(ApiError::not_found(&Subject { group: "", resource: "namespaces", name: namespace })),
        }
    }

    fn generated_name(&mut self, rt: &ResourceType, namespace: &str, prefix: &str) -> String {
        loop {
            let mut suffix = String::new();
            let mut seed = self.new_uid().bytes().fold(0u64, |acc, b| {
                acc.wrapping_mul(31).wrapping_add(u64::from(b))
            });
            for _ in 0..5 {
                let index = (seed % NAME_SUFFIX_ALPHABET.len() as u64) as usize;
                suffix.push(char::from(
                    NAME_SUFFIX_ALPHABET.get(index).copied().unwrap_or(b'x'),
                ));
                seed /= NAME_SUFFIX_ALPHABET.len() as u64;
            }
            let name = format!("{prefix}{suffix}");
            if self.get(&rt.group_resource(), namespace, &name).is_none() {
                return name;
            }
        }
    }

    /// Type-specific fields the real server sets on create.
    fn defaults_on_create(rt: &ResourceType, object: &mut Value) {
        let phase = match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "namespaces") => "Active",
            ("", "pods") => "Pending",
            _ => return,
        };
        if object.pointer("/status/phase").is_none() {
            object["status"] = json!({ "phase": phase });
        }
    }

    /// Fields the real server keeps in step on every write.
    fn defaults_on_write(rt: &ResourceType, object: &mut Value) {
        if rt.group.is_empty() && rt.plural == "namespaces" {
            let name = meta_str(object, "name").unwrap_or_default().to_string();
            let Some(metadata) = metadata_mut(object) else {
                return;
            };
            let labels = metadata.entry("labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            let names = object
                .pointer("/spec/names")
                .cloned()
                .unwrap_or_else(|| json!({}));
            let storage: Vec<Value> = object
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                        .filter_map(|v| v.get("name").cloned())
                        .collect()
                })
                .unwrap_or_default();
            let time = object
                .pointer("/metadata/creationTimestamp")
                .cloned()
                .unwrap_or_else(|| json!(now()));
            object["status"] = json!({
                "acceptedNames": names,
                "storedVersions": storage,
                "conditions": [
                    { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                      "message": "no conflicts found", "lastTransitionTime": time },
                    { "type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                      "message": "the initial names have been accepted", "lastTransitionTime": time },
                ],
            });
        }
    }

    fn register_if_crd(&mut self, rt: &ResourceType, object: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            if let (Some(name), Ok(types)) = (meta_str(object, "name"), crd_types(object)) {
                self.registry.register_crd(name, types);
            }
        }
    }

    /// POST: create an object.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        origin: Origin,
        appliers: Appliers,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        Self::check_type(rt, &mut object)?;
        Self::check_namespace(rt, namespace, &mut object)?;
        let ns = if rt.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        if meta_str(&object, "name").is_none_or(str::is_empty) {
            if let Some(prefix) = meta_str(&object, "generateName").map(str::to_string) {
                let name = self.generated_name(rt, ns, &prefix);
                if let Some(metadata) = metadata_mut(&mut object) {
                    metadata.insert("name".to_string(), json!(name));
                }
            }
        }
        Self::defaults_on_write(rt, &mut object);
        Self::validate(rt, &object)?;
        let name = meta_str(&object, "name").unwrap_or_default().to_string();
        if rt.namespaced {
            self.check_namespace_open(ns, origin)?;
        }
        if self.get(&rt.group_resource(), ns, &name).is_some() {
            return Err(ApiError::already_exists(&subject(rt, &name)));
        }
        let uid = self.new_uid();
        // Seeded objects may say when they were created, so tests can arrange objects older
        // than something else (a client's creationTimestamp is always replaced).
        let seeded_time = (origin == Origin::Seed)
            .then(|| meta_str(&object, "creationTimestamp").map(str::to_string))
            .flatten()
            .filter(|t| !t.is_empty());
        if let Some(metadata) = metadata_mut(&mut object) {
            for server_owned in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
            ] {
                metadata.remove(server_owned);
            }
            metadata.insert("uid".to_string(), json!(uid));
            metadata.insert(
                "creationTimestamp".to_string(),
                json!(seeded_time.unwrap_or_else(now)),
            );
            metadata.insert("generation".to_string(), json!(1));
        }
        if origin == Origin::Api && rt.status {
            if let Some(fields) = object.as_object_mut() {
                fields.remove("status");
            }
        }
        Self::defaults_on_create(rt, &mut object);
        Self::defaults_on_write(rt, &mut object);
        if dry_run {
            return Ok(object);
        }
        let stored = self.commit(&rt.group_resource(), object, appliers);
        self.register_if_crd(rt, &stored);
        Ok((*stored).clone())
    }

    /// PUT (and the end of every PATCH): replace an object, or only its status.
    ///
    /// `appliers` replaces the stored apply configurations (server-side apply); `None` keeps them.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        target: Target,
        appliers: Option<Appliers>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let gr = rt.group_resource();
        let ns = if rt.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        let Some(stored) = self.get(&gr, ns, name).cloned() else {
            return Err(ApiError::not_found(&subject(rt, name)));
        };
        Self::check_type(rt, &mut object)?;
        Self::check_namespace(rt, namespace, &mut object)?;
        match meta_str(&object, "name") {
            Some(body_name) if body_name != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            _ => {
                if let Some(metadata) = metadata_mut(&mut object) {
                    metadata.insert("name".to_string(), json!(name));
                }
            }
        }
        let old = &*stored.object;
        let old_rv = meta_str(old, "resourceVersion").unwrap_or_default();
        if let Some(rv) = meta_str(&object, "resourceVersion") {
            if !rv.is_empty() && rv != old_rv {
                return Err(ApiError::stale(&subject(rt, name)));
            }
        }

        let mut new = match target {
            Target::Main => {
                if rt.status {
                    match old.get("status") {
                        Some(status) => object["status"] = status.clone(),
                        None => {
                            if let Some(fields) = object.as_object_mut() {
                                fields.remove("status");
                            }
                        }
                    }
                }
                object
            }
            Target::Status => {
                let mut new = old.clone();
                match object.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(fields) = new.as_object_mut() {
                            fields.remove("status");
                        }
                    }
                }
                new
            }
        };
        if let Some(metadata) = metadata_mut(&mut new) {
            for kept in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old.pointer(&format!("/metadata/{kept}")) {
                    Some(value) => metadata.insert(kept.to_string(), value.clone()),
                    None => metadata.remove(kept),
                };
            }
            metadata.remove("managedFields");
            metadata.remove("selfLink");
            metadata.insert("resourceVersion".to_string(), json!(old_rv));
        }
        Self::defaults_on_write(rt, &mut new);
        Self::validate(rt, &new)?;
        if being_deleted(old) {
            let before = finalizers(old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &rt.group,
                    name,
                    vec![(
                        "metadata.finalizers".to_string(),
                        "Forbidden: no new finalizers can be added if the object is being deleted"
                            .to_string(),
                    )],
                ));
            }
        }
        if generation_content(rt, &new) != generation_content(rt, old) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if let Some(metadata) = metadata_mut(&mut new) {
                metadata.insert("generation".to_string(), json!(generation + 1));
            }
        }
        if new == *old {
            // Nothing changed: the real server does not write, and the resourceVersion stays.
            if let Some(appliers) = appliers {
                if !dry_run {
                    self.set_appliers(&gr, ns, name, appliers);
                }
            }
            return Ok(new);
        }
        if dry_run {
            return Ok(new);
        }
        let appliers = appliers.unwrap_or(stored.appliers);
        let committed = self.commit(&gr, new, appliers);
        self.register_if_crd(rt, &committed);
        if being_deleted(&committed) && finalizers(&committed).is_empty() {
            let me = ObjectRef {
                resource: gr,
                namespace: ns.to_string(),
                name: name.to_string(),
            };
            if me.resource == namespace_resource() {
                self.finish_namespace(name);
            } else {
                self.remove_and_collect(&me, Propagation::Background);
            }
        }
        Ok((*committed).clone())
    }

    /// DELETE of one object.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let gr = rt.group_resource();
        let ns = if rt.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        let Some(stored) = self.get(&gr, ns, name).cloned() else {
            return Err(ApiError::not_found(&subject(rt, name)));
        };
        let object = &stored.object;
        if let Some(uid) = &options.precondition_uid {
            let actual = uid_of(object).unwrap_or_default();
            if uid != actual {
                return Err(ApiError::conflict(
                    &subject(rt, name),
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = &options.precondition_rv {
            let actual = meta_str(object, "resourceVersion").unwrap_or_default();
            if rv != actual {
                return Err(ApiError::conflict(
                    &subject(rt, name),
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        if options.dry_run {
            return Ok(
                if finalizers(object).is_empty() && gr != namespace_resource() {
                    Deleted::Gone(object.clone())
                } else {
                    Deleted::Pending(object.clone())
                },
            );
        }
        let me = ObjectRef {
            resource: gr,
            namespace: ns.to_string(),
            name: name.to_string(),
        };
        Ok(self.delete_ref(&me, options.propagation))
    }

    /// Deletes an object the way the API does: finalizers hold it with a deletionTimestamp, a
    /// namespace first deletes its contents, anything else is removed and its dependents collected.
    pub fn delete_ref(&mut self, me: &ObjectRef, propagation: Propagation) -> Deleted {
        let Some(stored) = self.get(&me.resource, &me.namespace, &me.name).cloned() else {
            return Deleted::Gone(Arc::new(Value::Null));
        };
        let is_namespace = me.resource == namespace_resource();
        let mut current = stored.object.clone();
        if is_namespace || !finalizers(&current).is_empty() {
            if !being_deleted(&current) {
                let mut marked = (*current).clone();
                if let Some(metadata) = metadata_mut(&mut marked) {
                    metadata.insert("deletionTimestamp".to_string(), json!(now()));
                    metadata.insert("deletionGracePeriodSeconds".to_string(), json!(0));
                }
                if is_namespace {
                    marked["status"] = json!({ "phase": "Terminating" });
                }
                current = self.commit(&me.resource, marked, stored.appliers.clone());
            }
            if is_namespace {
                for content in self.in_namespace(&me.name) {
                    self.delete_ref(&content, Propagation::Background);
                }
                if let Some(gone) = self.finish_namespace(&me.name) {
                    return Deleted::Gone(gone);
                }
                let latest = self
                    .get(&me.resource, "", &me.name)
                    .map(|s| s.object.clone())
                    .unwrap_or(current);
                return Deleted::Pending(latest);
            }
            return Deleted::Pending(current);
        }
        match self.remove_and_collect(me, propagation) {
            Some(gone) => Deleted::Gone(gone),
            None => Deleted::Gone(current),
        }
    }

    /// Removes a terminating namespace once it is empty and has no finalizers left.
    fn finish_namespace(&mut self, name: &str) -> Option<Arc<Value>> {
        let ns = self.get(&namespace_resource(), "", name)?;
        if !being_deleted(&ns.object)
            || !finalizers(&ns.object).is_empty()
            || !self.in_namespace(name).is_empty()
        {
            return None;
        }
        let me = ObjectRef {
            resource: namespace_resource(),
            namespace: String::new(),
            name: name.to_string(),
        };
        self.remove_and_collect(&me, Propagation::Background)
    }

    /// Removes an object now, then what depended on it: a CRD's custom resources, the dependents
    /// whose owners are all gone (or, with Orphan, their owner references), and a terminating
    /// namespace that became empty.
    fn remove_and_collect(
        &mut self,
        me: &ObjectRef,
        propagation: Propagation,
    ) -> Option<Arc<Value>> {
        let removed = self.remove(&me.resource, &me.namespace, &me.name)?;
        if me.resource == crd_resource() {
            self.registry.unregister_crd(&me.name);
            let group = removed
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = removed
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let custom = GroupResource {
                group: group.to_string(),
                resource: plural.to_string(),
            };
            for object in self.all_of(&custom) {
                self.remove_and_collect(&object, Propagation::Background);
            }
        }
        if let Some(uid) = uid_of(&removed) {
            for dependent in self.dependents_of(uid) {
                let Some(stored) = self
                    .get(&dependent.resource, &dependent.namespace, &dependent.name)
                    .cloned()
                else {
                    continue;
                };
                if propagation == Propagation::Orphan {
                    let mut orphaned = (*stored.object).clone();
                    if let Some(refs) = orphaned
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                    }
                    self.commit(&dependent.resource, orphaned, stored.appliers);
                } else if owner_uids(&stored.object)
                    .iter()
                    .all(|owner| !self.uid_exists(owner))
                {
                    self.delete_ref(&dependent, Propagation::Background);
                }
            }
        }
        if !me.namespace.is_empty() {
            self.finish_namespace(&me.namespace);
        }
        Some(removed)
    }
}
