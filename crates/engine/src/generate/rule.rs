//! One generate rule for one trigger: variable substitution in the generate block, `data`,
//! `clone`, `cloneList` and `foreach`, with Kyverno's outcomes.

use serde_json::{Map, Value};

use super::labels::{add_labels, downstream_selector, source_labels};
use super::{GenerateAction, GenerateSettings, GeneratedResource, ResourceRef, SourceKind};
use crate::compile::CompiledPolicy;
use crate::context::{add_variable, substitute_text, ContextProvider};
use crate::matching::LabelSelector;
use crate::mutate::{MutateEnv, ProviderEnv};
use crate::request::metadata_map;
use crate::response::{RuleResponse, RuleStatus, RuleType};

/// The keys of a generate block (or foreach entry) that describe the object; variables are
/// substituted in these only.
const PATTERN_KEYS: [&str; 7] = [
    "apiVersion",
    "kind",
    "name",
    "namespace",
    "data",
    "clone",
    "cloneList",
];

/// Metadata a clone does not carry over from its source: the API server assigns it anew.
const SERVER_METADATA: [&str; 5] = [
    "uid",
    "selfLink",
    "creationTimestamp",
    "managedFields",
    "resourceVersion",
];

/// The settings of a rule's `generate` block (see [`GenerateSettings`]).
pub fn settings(policy: &CompiledPolicy, generate: &Value) -> GenerateSettings {
    let flag = |value: Option<&Value>, key: &str| {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let spec = policy.source.get("spec");
    let policy_existing =
        flag(spec, "generateExisting") || flag(spec, "generateExistingOnPolicyUpdate");
    let first_pattern = generate
        .get("foreach")
        .and_then(Value::as_array)
        .and_then(|entries| entries.first())
        .unwrap_or(generate);
    GenerateSettings {
        source: source_kind(first_pattern),
        synchronize: flag(Some(generate), "synchronize"),
        orphan_downstream_on_policy_delete: flag(Some(generate), "orphanDownstreamOnPolicyDelete"),
        generate_existing: flag(Some(generate), "generateExisting") || policy_existing,
    }
}

fn source_kind(pattern: &Value) -> SourceKind {
    let non_empty_text = |pointer: &str| {
        pattern
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if non_empty_text("/clone/name") {
        SourceKind::Clone
    } else if pattern
        .pointer("/cloneList/kinds")
        .and_then(Value::as_array)
        .is_some_and(|k| !k.is_empty())
    {
        SourceKind::CloneList
    } else {
        SourceKind::Data
    }
}

/// Runs one generate rule (`generate` is the rule's `generate` object) for `trigger`.
///
/// `ctx` is the context document with the rule's context entries loaded; the caller has matched
/// the rule and checked its preconditions. A pass carries the objects to create or update; an
/// error (bad block, unresolvable variable, missing clone source, failed lookup) carries none —
/// a rule either produces everything it describes or nothing.
pub fn generate_rule(
    policy: &CompiledPolicy,
    rule_name: &str,
    generate: &Value,
    trigger: &Value,
    ctx: &Value,
    provider: &dyn ContextProvider,
) -> (RuleResponse, Vec<GeneratedResource>) {
    let scope = Scope {
        policy,
        rule_name,
        trigger,
        provider,
        env: ProviderEnv(provider),
        synchronize: settings(policy, generate).synchronize,
    };
    let mut out = Output::default();
    match generate
        .get("foreach")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
    {
        Some(entries) => scope.foreach(entries, ctx, &mut out),
        None => scope.pattern(generate, "/generate", ctx, &mut out),
    }
    respond(rule_name, out)
}

fn respond(rule_name: &str, out: Output) -> (RuleResponse, Vec<GeneratedResource>) {
    if !out.errors.is_empty() {
        let response = RuleResponse::named(
            rule_name.into(),
            RuleType::Generation,
            RuleStatus::Error,
            out.errors.join("; "),
        );
        return (response, Vec::new());
    }
    let message = if out.resources.is_empty() {
        if out.notes.is_empty() {
            "nothing to generate".to_owned()
        } else {
            format!("nothing to generate: {}", out.notes.join("; "))
        }
    } else {
        let done: Vec<String> = out
            .resources
            .iter()
            .map(|r| match r.action {
                GenerateAction::Create => format!("generated {}", r.target),
                GenerateAction::Update => format!("updated {}", r.target),
            })
            .collect();
        done.join(", ")
    };
    (
        RuleResponse::named(
            rule_name.into(),
            RuleType::Generation,
            RuleStatus::Pass,
            message,
        ),
        out.resources,
    )
}

/// What a rule produced so far.
#[derive(Default)]
struct Output {
    resources: Vec<GeneratedResource>,
    /// Why something was not generated, for the message of a pass without objects.
    notes: Vec<String>,
    errors: Vec<String>,
}

struct Scope<'a> {
    policy: &'a CompiledPolicy,
    rule_name: &'a str,
    trigger: &'a Value,
    provider: &'a dyn ContextProvider,
    env: ProviderEnv<'a>,
    synchronize: bool,
}

impl Scope<'_> {
    /// `generate.foreach`: each element gets its own context (`element`, `elementIndex`),
    /// context entries and preconditions; an element that fails does not stop the others,
    /// but fails the rule.
    fn foreach(&self, entries: &[Value], ctx: &Value, out: &mut Output) {
        for (position, entry) in entries.iter().enumerate() {
            let list = entry
                .get("list")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let elements = match substitute_text(list, ctx).and_then(|l| self.env.query(&l, ctx)) {
                Ok(Value::Array(items)) => items,
                Ok(Value::Null) => Vec::new(),
                Ok(other) => vec![other],
                Err(e) => {
                    out.errors.push(format!(
                        "failed to evaluate generate.foreach[{position}].list {list:?}: {e}"
                    ));
                    continue;
                }
            };
            let at = format!("/generate/foreach/{position}");
            for (index, element) in elements.iter().enumerate() {
                if element.is_null() {
                    continue;
                }
                if let Err(expired) = crate::deadline::check_after_work() {
                    out.errors.push(expired);
                    break;
                }
                let mut element_ctx = ctx.clone();
                for (name, value) in [
                    ("element", element.clone()),
                    ("element0", element.clone()),
                    ("elementIndex", Value::from(index)),
                    ("elementIndex0", Value::from(index)),
                ] {
                    add_variable(&mut element_ctx, name, value);
                }
                let where_ = format!("generate.foreach[{position}] element {index}");
                if let Some(context) = entry.get("context").and_then(Value::as_array) {
                    if let Err(e) = self.env.load_context(context, &mut element_ctx) {
                        out.errors
                            .push(format!("{where_}: failed to load context: {e}"));
                        continue;
                    }
                }
                if let Some(block) = entry.get("preconditions").filter(|v| !v.is_null()) {
                    match self.env.preconditions(block, &element_ctx) {
                        Err(e) => {
                            out.errors
                                .push(format!("{where_}: failed to evaluate preconditions: {e}"));
                            continue;
                        }
                        Ok((false, _)) => {
                            out.notes.push(format!("{where_}: preconditions not met"));
                            continue;
                        }
                        Ok((true, _)) => {}
                    }
                }
                self.pattern(entry, &at, &element_ctx, out);
            }
        }
    }

    /// One generate pattern (the generate block, or a foreach entry) after substitution.
    fn pattern(&self, section: &Value, at: &str, ctx: &Value, out: &mut Output) {
        let raw: Map<String, Value> = PATTERN_KEYS
            .iter()
            .filter_map(|key| {
                section
                    .get(*key)
                    .filter(|v| !v.is_null())
                    .map(|v| ((*key).to_owned(), v.clone()))
            })
            .collect();
        let pattern = match self.env.substitute(&Value::Object(raw), at, ctx) {
            Ok(p) => p,
            Err(e) => {
                out.errors
                    .push(format!("variable substitution failed: {e}"));
                return;
            }
        };
        let text = |key: &str| -> Result<String, String> {
            match pattern.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!("generate.{key} must be a string, got {other}")),
            }
        };
        let target = match (|| {
            Ok::<_, String>(ResourceRef {
                api_version: text("apiVersion")?,
                kind: text("kind")?,
                namespace: text("namespace")?,
                name: text("name")?,
            })
        })() {
            Ok(t) => t,
            Err(e) => {
                out.errors.push(e);
                return;
            }
        };
        let clone_name = pattern
            .pointer("/clone/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let clone_list = pattern.get("cloneList").filter(|c| {
            c.get("kinds")
                .and_then(Value::as_array)
                .is_some_and(|k| !k.is_empty())
        });
        if let Some(name) = clone_name {
            let namespace = pattern
                .pointer("/clone/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.clone_one(target, namespace, name, out);
        } else if let Some(list) = clone_list {
            self.clone_list(&target.namespace, list, out);
        } else {
            // Without data (or with `data: null`) Kyverno still generates the target: an object
            // with only its apiVersion, kind, name and namespace.
            let empty = Value::Object(serde_json::Map::new());
            let data = pattern
                .get("data")
                .filter(|d| !d.is_null())
                .unwrap_or(&empty);
            self.data(target, data, out);
        }
    }

    /// `generate.data`: the object is the data, named and placed by the rule.
    fn data(&self, mut target: ResourceRef, data: &Value, out: &mut Output) {
        let Value::Object(fields) = data else {
            out.errors
                .push(format!("generate.data must be an object, got {data}"));
            return;
        };
        let mut object = Value::Object(fields.clone());
        let data_text = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if target.kind.is_empty() {
            target.kind = data_text("kind");
        }
        if target.api_version.is_empty() {
            target.api_version = data_text("apiVersion");
        }
        if target.kind.is_empty() || target.name.is_empty() {
            out.errors
                .push("generate.kind and generate.name are required with data".to_owned());
            return;
        }
        if let Value::Object(root) = &mut object {
            root.insert(
                "apiVersion".into(),
                Value::String(target.api_version.clone()),
            );
            if root
                .get("kind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                root.insert("kind".into(), Value::String(target.kind.clone()));
            }
        }
        place(&mut object, &target);
        self.label(&mut object);
        self.write(target, object, None, out);
    }

    /// `generate.clone`: a copy of one existing object of the target's kind.
    fn clone_one(&self, target: ResourceRef, namespace: &str, name: &str, out: &mut Output) {
        if let Err(e) = self.check_source_namespace("clone", namespace) {
            out.errors.push(e);
            return;
        }
        if target.kind.is_empty() || target.name.is_empty() {
            out.errors
                .push("generate.kind and generate.name are required with clone".to_owned());
            return;
        }
        let source = ResourceRef {
            api_version: target.api_version.clone(),
            kind: target.kind.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        if source.namespace == target.namespace && source.name == target.name {
            out.notes
                .push(format!("{target} would be cloned onto itself"));
            return;
        }
        let found = self.provider.resource(
            &source.api_version,
            &source.kind,
            &source.namespace,
            &source.name,
        );
        match found {
            Err(e) => out
                .errors
                .push(format!("failed to get clone source {source}: {e}")),
            Ok(None) => out.errors.push(format!("clone source {source} not found")),
            Ok(Some(object)) => self.copy(&object, target, out),
        }
    }

    /// `generate.cloneList`: a copy of every selected object of the listed kinds in the
    /// source namespace, each keeping its name, into the target namespace.
    fn clone_list(&self, target_namespace: &str, list: &Value, out: &mut Output) {
        let namespace = list
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Err(e) = self.check_source_namespace("cloneList", namespace) {
            out.errors.push(e);
            return;
        }
        let selector_value = list.get("selector").filter(|s| !s.is_null());
        let selector = match selector_value
            .map(|s| LabelSelector::compile(s, "generate.cloneList.selector"))
            .transpose()
        {
            Ok(s) => s,
            Err(e) => {
                out.errors.push(e.to_string());
                return;
            }
        };
        let kinds = crate::matching::string_list(list.get("kinds"));
        for kind_text in &kinds {
            // `v1/Secret`, `apps/v1/Deployment`, or a bare kind.
            let (api_version, kind) = match kind_text.rsplit_once('/') {
                Some((api_version, kind)) => (api_version, kind),
                None => ("", kind_text.as_str()),
            };
            let listed =
                match self
                    .provider
                    .list_resources(api_version, kind, namespace, selector_value)
                {
                    Ok(items) => items,
                    Err(e) => {
                        out.errors.push(format!(
                        "failed to list {kind_text} in namespace {namespace:?} for cloneList: {e}"
                    ));
                        continue;
                    }
                };
            let mut sources: Vec<&Value> = listed
                .iter()
                .filter(|source| {
                    let id = ResourceRef::of(source);
                    id.kind == kind
                        && (api_version.is_empty() || id.api_version == api_version)
                        && id.namespace == namespace
                        && selector
                            .as_ref()
                            .is_none_or(|s| s.matches(&metadata_map(source, "labels")))
                })
                .collect();
            sources.sort_by_key(|s| ResourceRef::of(s));
            for source in sources {
                let id = ResourceRef::of(source);
                let target = ResourceRef {
                    api_version: id.api_version.clone(),
                    kind: id.kind.clone(),
                    namespace: target_namespace.to_owned(),
                    name: id.name.clone(),
                };
                if id.namespace == target.namespace {
                    out.notes
                        .push(format!("{target} would be cloned onto itself"));
                    continue;
                }
                self.copy(source, target, out);
            }
        }
    }

    /// A namespaced Policy may only clone from its own namespace.
    fn check_source_namespace(&self, field: &str, namespace: &str) -> Result<(), String> {
        match &self.policy.namespace {
            Some(own) if own != namespace => Err(format!(
                "generate.{field}.namespace {namespace:?} must be the policy's namespace {own:?}"
            )),
            _ => Ok(()),
        }
    }

    /// The copy of `source` that becomes `target`: server-assigned metadata dropped, owner
    /// references dropped across namespaces, source and generate labels added.
    fn copy(&self, source: &Value, mut target: ResourceRef, out: &mut Output) {
        let source_ref = ResourceRef::of(source);
        let uid = crate::request::metadata_str(source, "uid").to_owned();
        let mut copy = source.clone();
        if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in SERVER_METADATA {
                metadata.shift_remove(key);
            }
            if source_ref.namespace != target.namespace {
                metadata.shift_remove("ownerReferences");
            }
        }
        if target.api_version.is_empty() {
            target.api_version = source_ref.api_version.clone();
        }
        place(&mut copy, &target);
        add_labels(&mut copy, &source_labels(&source_ref, &uid));
        self.label(&mut copy);
        self.write(target, copy, Some(source_ref), out);
    }

    /// Adds the generate labels and lays the object out in a stable order.
    fn label(&self, object: &mut Value) {
        let labels = downstream_selector(
            &self.policy.name,
            self.policy.namespace.as_deref().unwrap_or_default(),
            self.rule_name,
            self.trigger,
        );
        add_labels(object, &labels);
        arrange(object);
    }

    /// Create when the target does not exist; update a synchronized target that differs;
    /// otherwise leave it.
    fn write(
        &self,
        target: ResourceRef,
        object: Value,
        clone_source: Option<ResourceRef>,
        out: &mut Output,
    ) {
        let existing = self.provider.resource(
            &target.api_version,
            &target.kind,
            &target.namespace,
            &target.name,
        );
        let action = match existing {
            Err(e) => {
                out.errors
                    .push(format!("failed to get the target {target}: {e}"));
                return;
            }
            Ok(None) => GenerateAction::Create,
            Ok(Some(_)) if !self.synchronize => {
                out.notes
                    .push(format!("{target} exists and synchronize is off"));
                return;
            }
            Ok(Some(current)) if contains(&current, &object) => {
                out.notes.push(format!("{target} is up to date"));
                return;
            }
            Ok(Some(_)) => GenerateAction::Update,
        };
        out.resources.push(GeneratedResource {
            action,
            target,
            object,
            clone_source,
        });
    }
}

/// `apiVersion`, `kind` and `metadata` (`name`, `namespace`, …, labels sorted) first, the
/// rest as written: generated objects read like hand-written ones and serialize the same way
/// every time.
fn arrange(object: &mut Value) {
    let Value::Object(root) = object else {
        return;
    };
    if let Some(Value::Object(metadata)) = root.get_mut("metadata") {
        if let Some(Value::Object(labels)) = metadata.get_mut("labels") {
            labels.sort_keys();
        }
        let mut ordered = Map::new();
        for key in ["name", "namespace"] {
            if let Some(value) = metadata.shift_remove(key) {
                ordered.insert(key.to_owned(), value);
            }
        }
        ordered.append(metadata);
        *metadata = ordered;
    }
    let mut ordered = Map::new();
    for key in ["apiVersion", "kind", "metadata"] {
        if let Some(value) = root.shift_remove(key) {
            ordered.insert(key.to_owned(), value);
        }
    }
    ordered.append(root);
    *root = ordered;
}

/// Sets `metadata.name` and `metadata.namespace` (removed for cluster-scoped targets).
fn place(object: &mut Value, target: &ResourceRef) {
    let Value::Object(root) = object else {
        return;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Value::Object(metadata) = metadata {
        metadata.insert("name".into(), Value::String(target.name.clone()));
        if target.namespace.is_empty() {
            metadata.shift_remove("namespace");
        } else {
            metadata.insert("namespace".into(), Value::String(target.namespace.clone()));
        }
    }
}

/// Whether every field of `wanted` is in `current` with the same value (lists element by
/// element); fields only `current` has (status, server metadata) do not count. Iterative, so
/// deep documents cannot exhaust the stack.
fn contains(current: &Value, wanted: &Value) -> bool {
    let mut stack = vec![(current, wanted)];
    while let Some((have, want)) = stack.pop() {
        match (have, want) {
            (Value::Object(have), Value::Object(want)) => {
                for (key, w) in want {
                    match have.get(key) {
                        Some(h) => stack.push((h, w)),
                        None => return false,
                    }
                }
            }
            (Value::Array(have), Value::Array(want)) => {
                if have.len() != want.len() {
                    return false;
                }
                stack.extend(have.iter().zip(want.iter()));
            }
            (have, want) => {
                if have != want {
                    return false;
                }
            }
        }
    }
    true
}
