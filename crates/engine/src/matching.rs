//! `match` / `exclude` blocks: which resources and users a rule (or exception) applies to.
//!
//! Semantics follow Kyverno: inside one resource filter every given attribute must match (AND),
//! inside a list attribute one entry is enough (OR); `any` ORs filters, `all` ANDs them; the
//! legacy form is a single filter. An exclude block excludes when its filter matches.

use crate::json::Lookup;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::compile::CompileError;
use crate::request::{metadata_map, metadata_str, Request};
use crate::wildcard::{has_wildcard, wildcard_match};

/// A parsed kind selector: `Kind`, `Kind/sub`, `version/Kind`, `group/version/Kind[/sub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSelector {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub subresource: String,
}

impl KindSelector {
    /// Parses the selector forms Kyverno accepts, Kyverno's way: the last part may carry the
    /// subresource after a dot (`Pod.exec`); a first part that looks like a version (`v1`,
    /// `v2beta1`, `*`) makes `version/Kind[/sub]`, otherwise two parts are `Kind/sub` and three
    /// are `group/version/Kind`. Anything longer than four parts selects nothing.
    pub fn parse(text: &str) -> KindSelector {
        let mut parts: Vec<&str> = text.split('/').collect();
        if let Some(last) = parts.pop() {
            parts.extend(last.split('.'));
        }
        let owned = |s: &str| s.to_owned();
        let any = || "*".to_owned();
        let (group, version, kind, subresource) = match parts.as_slice() {
            [kind] => (any(), any(), owned(kind), String::new()),
            ["*", "*"] => (any(), any(), any(), any()),
            ["*", sub] if sub.to_lowercase() == *sub => (any(), any(), any(), owned(sub)),
            [version, kind] if is_version(version) => {
                (any(), owned(version), owned(kind), String::new())
            }
            [kind, sub] => (any(), any(), owned(kind), owned(sub)),
            [version, kind, sub] if is_version(version) => {
                (any(), owned(version), owned(kind), owned(sub))
            }
            [group, version, kind] => (owned(group), owned(version), owned(kind), String::new()),
            [group, version, kind, sub] => (owned(group), owned(version), owned(kind), owned(sub)),
            _ => (String::new(), String::new(), String::new(), String::new()),
        };
        KindSelector {
            group,
            version,
            kind,
            subresource,
        }
    }

    /// Whether a request for `gvk` (and `subresource`) is selected. As in Kyverno, a selector
    /// without a subresource selects only the resource itself, except that `Pod` also selects
    /// `pods/ephemeralcontainers` (kept by Kyverno for backward compatibility).
    /// A resource without `apiVersion` (hand-written test fixtures) has an unknown group and
    /// version, which cannot rule a selector out.
    pub fn matches(&self, group: &str, version: &str, kind: &str, subresource: &str) -> bool {
        // The kind first: it is what tells most selectors of a policy set apart.
        if !wildcard_match(&self.kind, kind) {
            return false;
        }
        let api_version_known = !version.is_empty();
        let type_matches = !api_version_known
            || (wildcard_match(&self.group, group) && wildcard_match(&self.version, version));
        let is_core_pod = kind == "Pod" && group.is_empty() && matches!(version, "v1" | "");
        type_matches
            && (wildcard_match(&self.subresource, subresource)
                || (is_core_pod && subresource == "ephemeralcontainers"))
    }
}

/// `v1`, `v2beta1`, `v1alpha3` or `*`: how Kyverno tells a version from a kind in a selector.
fn is_version(part: &str) -> bool {
    if part == "*" {
        return true;
    }
    let Some(rest) = part.strip_prefix('v') else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = rest.get(digits..).unwrap_or_default();
    tail.is_empty()
        || ["alpha", "beta"].iter().any(|stage| {
            tail.strip_prefix(stage)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}

/// A Kubernetes label selector; keys and values may carry `*`/`?` wildcards as in Kyverno.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<SelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    pub fn compile(value: &Value, path: &str) -> Result<LabelSelector, CompileError> {
        let mut selector = LabelSelector::default();
        if let Some(labels) = value.field("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                let v = scalar_string(v).ok_or_else(|| {
                    CompileError::new(
                        format!("{path}.matchLabels.{k}"),
                        "label values must be strings",
                    )
                })?;
                selector.match_labels.insert(k.clone(), v);
            }
        }
        if let Some(exprs) = value.field("matchExpressions").and_then(Value::as_array) {
            for (i, expr) in exprs.iter().enumerate() {
                let at = format!("{path}.matchExpressions[{i}]");
                let key = expr
                    .field("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| CompileError::new(format!("{at}.key"), "key is required"))?;
                let op = expr.field("operator").and_then(Value::as_str).unwrap_or("");
                let operator = match op {
                    "In" => SelectorOperator::In,
                    "NotIn" => SelectorOperator::NotIn,
                    "Exists" => SelectorOperator::Exists,
                    "DoesNotExist" => SelectorOperator::DoesNotExist,
                    other => {
                        return Err(CompileError::new(
                            format!("{at}.operator"),
                            format!("unknown selector operator {other:?} (want In, NotIn, Exists or DoesNotExist)"),
                        ))
                    }
                };
                let values = string_list(expr.field("values"));
                if matches!(operator, SelectorOperator::In | SelectorOperator::NotIn)
                    && values.is_empty()
                {
                    return Err(CompileError::new(
                        format!("{at}.values"),
                        "values must be non-empty for In and NotIn",
                    ));
                }
                selector.match_expressions.push(SelectorRequirement {
                    key: key.to_owned(),
                    operator,
                    values,
                });
            }
        }
        Ok(selector)
    }

    /// Kyverno first replaces wildcard keys/values with the actual labels they match, then
    /// applies ordinary selector semantics; matching each requirement against any fitting label
    /// is equivalent.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let label_matches = |key: &str, value: &str| {
            labels
                .iter()
                .any(|(k, v)| wildcard_match(key, k) && wildcard_match(value, v))
        };
        let has_key = |key: &str| labels.keys().any(|k| wildcard_match(key, k));
        let value_in = |key: &str, wanted: &[String]| {
            labels.iter().any(|(k, v)| {
                wildcard_match(key, k) && wanted.iter().any(|want| wildcard_match(want, v))
            })
        };
        self.match_labels.iter().all(|(k, v)| label_matches(k, v))
            && self.match_expressions.iter().all(|req| match req.operator {
                SelectorOperator::Exists => has_key(&req.key),
                SelectorOperator::DoesNotExist => !has_key(&req.key),
                SelectorOperator::In => value_in(&req.key, &req.values),
                SelectorOperator::NotIn => !value_in(&req.key, &req.values),
            })
    }
}

/// `resources:` of a filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceDescription {
    pub kinds: Vec<KindSelector>,
    pub raw_kinds: Vec<String>,
    pub name: Option<String>,
    pub names: Vec<String>,
    pub namespaces: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub selector: Option<LabelSelector>,
    pub namespace_selector: Option<LabelSelector>,
    pub operations: Vec<String>,
}

impl ResourceDescription {
    fn is_empty(&self) -> bool {
        self.kinds.is_empty()
            && self.name.is_none()
            && self.names.is_empty()
            && self.namespaces.is_empty()
            && self.annotations.is_empty()
            && self.selector.is_none()
            && self.namespace_selector.is_none()
            && self.operations.is_empty()
    }
}

/// An RBAC subject of `subjects:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// One resource filter: resources plus who is asking.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceFilter {
    pub resources: ResourceDescription,
    pub subjects: Vec<Subject>,
    pub roles: Vec<String>,
    pub cluster_roles: Vec<String>,
}

impl ResourceFilter {
    fn has_user_info(&self) -> bool {
        !(self.subjects.is_empty() && self.roles.is_empty() && self.cluster_roles.is_empty())
    }

    fn is_empty(&self) -> bool {
        self.resources.is_empty() && !self.has_user_info()
    }
}

/// A `match` or `exclude` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum MatchBlock {
    #[default]
    Empty,
    Any(Vec<ResourceFilter>),
    All(Vec<ResourceFilter>),
    Legacy(Box<ResourceFilter>),
}

impl MatchBlock {
    /// Parses a match/exclude block; `path` names it in errors (`spec.rules[0].match`).
    pub fn compile(value: Option<&Value>, path: &str) -> Result<MatchBlock, CompileError> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(MatchBlock::Empty);
        };
        if !value.is_object() {
            return Err(CompileError::new(path, "must be an object"));
        }
        let list = |key: &str| -> Result<Option<Vec<ResourceFilter>>, CompileError> {
            match value.field(key).and_then(Value::as_array) {
                Some(items) if !items.is_empty() => items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| compile_filter(f, &format!("{path}.{key}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                _ => Ok(None),
            }
        };
        if let Some(any) = list("any")? {
            return Ok(MatchBlock::Any(any));
        }
        if let Some(all) = list("all")? {
            return Ok(MatchBlock::All(all));
        }
        let legacy = compile_filter(value, path)?;
        if legacy.is_empty() {
            Ok(MatchBlock::Empty)
        } else {
            Ok(MatchBlock::Legacy(Box::new(legacy)))
        }
    }

    /// Every kind selector named anywhere in the block (for indexing rules by kind).
    pub fn kinds(&self) -> Vec<&KindSelector> {
        match self {
            MatchBlock::Empty => Vec::new(),
            MatchBlock::Any(filters) | MatchBlock::All(filters) => filters
                .iter()
                .flat_map(|f| f.resources.kinds.iter())
                .collect(),
            MatchBlock::Legacy(f) => f.resources.kinds.iter().collect(),
        }
    }

    /// Whether any filter of the block selects by namespace labels, for whichever kind.
    pub fn has_namespace_selector(&self) -> bool {
        self.filters()
            .iter()
            .any(|f| f.resources.namespace_selector.is_some())
    }

    fn filters(&self) -> &[ResourceFilter] {
        match self {
            MatchBlock::Empty => &[],
            MatchBlock::Any(filters) | MatchBlock::All(filters) => filters,
            MatchBlock::Legacy(f) => std::slice::from_ref(f.as_ref()),
        }
    }

    /// Whether a `namespaceSelector` of this block could decide about the request: some
    /// filter that names the request's kind (or no kind) has one. When the namespace's labels
    /// are unknown, such a block cannot be decided.
    pub fn has_namespace_selector_for(&self, request: &Request) -> bool {
        self.filters().iter().any(|f| {
            let desc = &f.resources;
            desc.namespace_selector.is_some()
                && (desc.kinds.is_empty()
                    || desc.kinds.iter().any(|k| {
                        k.matches(
                            &request.kind.group,
                            &request.kind.version,
                            &request.kind.kind,
                            &request.subresource,
                        )
                    }))
        })
    }

    /// Whether a match block selects the request (an empty block selects nothing).
    pub fn matches(&self, request: &Request) -> bool {
        let user_known = !request.user.is_empty();
        match self {
            MatchBlock::Empty => false,
            MatchBlock::Any(filters) => filters.iter().any(|f| selects(f, request, user_known)),
            MatchBlock::All(filters) => filters.iter().all(|f| selects(f, request, user_known)),
            MatchBlock::Legacy(f) => selects(f, request, user_known),
        }
    }

    /// The kinds the block can select when every filter names its kinds and none of them has
    /// a wildcard; `None` when it may select other kinds (no kinds, wildcards, `all`).
    pub fn literal_kinds(&self) -> Option<Vec<String>> {
        let filters: &[ResourceFilter] = match self {
            MatchBlock::Any(filters) => filters,
            MatchBlock::Legacy(filter) => std::slice::from_ref(filter),
            MatchBlock::Empty => return Some(Vec::new()),
            MatchBlock::All(_) => return None,
        };
        let mut kinds: Vec<String> = Vec::new();
        for filter in filters {
            let selectors = &filter.resources.kinds;
            if selectors.is_empty() || selectors.iter().any(|k| has_wildcard(&k.kind)) {
                return None;
            }
            for selector in selectors {
                if !kinds.contains(&selector.kind) {
                    kinds.push(selector.kind.clone());
                }
            }
        }
        Some(kinds)
    }

    /// Whether the block selects by nothing but plain kinds (`Pod`: no group, version,
    /// subresource, wildcard or other criterion, user criteria included) in `any` filters or
    /// the legacy form. For a request of one of its kinds such a block answers
    /// [`selects_main_resource`], which rules use instead of walking the block.
    pub fn selects_by_kinds_alone(&self) -> bool {
        let filters: &[ResourceFilter] = match self {
            MatchBlock::Any(filters) => filters,
            MatchBlock::Legacy(filter) => std::slice::from_ref(filter),
            MatchBlock::Empty | MatchBlock::All(_) => return false,
        };
        !filters.is_empty()
            && filters.iter().all(|filter| {
                let kinds = &filter.resources.kinds;
                let kinds_alone = ResourceDescription {
                    kinds: Vec::new(),
                    raw_kinds: Vec::new(),
                    ..filter.resources.clone()
                }
                .is_empty();
                kinds_alone
                    && !filter.has_user_info()
                    && !kinds.is_empty()
                    && kinds.iter().all(|k| {
                        k.group == "*"
                            && k.version == "*"
                            && k.subresource.is_empty()
                            && !has_wildcard(&k.kind)
                    })
            })
    }

    /// Whether an exclude block excludes the request (an empty block excludes nothing).
    /// User criteria always count here, as in Kyverno.
    pub fn excludes(&self, request: &Request) -> bool {
        match self {
            MatchBlock::Empty => false,
            MatchBlock::Any(filters) => filters
                .iter()
                .any(|f| !f.is_empty() && filter_matches(f, request, true)),
            MatchBlock::All(filters) => filters
                .iter()
                .all(|f| !f.is_empty() && filter_matches(f, request, true)),
            MatchBlock::Legacy(f) => !f.is_empty() && filter_matches(f, request, true),
        }
    }
}

/// What a block that [`MatchBlock::selects_by_kinds_alone`] answers for a request of one of
/// its kinds: the resource itself, not a subresource of it — except a core Pod's
/// `ephemeralcontainers`, which Kyverno selects as the Pod.
pub fn selects_main_resource(request: &Request) -> bool {
    request.subresource.is_empty()
        || (request.subresource == "ephemeralcontainers"
            && request.kind.kind == "Pod"
            && request.kind.group.is_empty()
            && matches!(request.kind.version.as_str(), "v1" | ""))
}

/// A match filter selects when it is not empty and every criterion holds. Without a known
/// user, Kyverno drops the user criteria first, so a filter of only user criteria is empty.
fn selects(filter: &ResourceFilter, request: &Request, user_known: bool) -> bool {
    let empty = if user_known {
        filter.is_empty()
    } else {
        filter.resources.is_empty()
    };
    !empty && filter_matches(filter, request, user_known)
}

fn compile_filter(value: &Value, path: &str) -> Result<ResourceFilter, CompileError> {
    let mut filter = ResourceFilter::default();
    if let Some(res) = value.field("resources").filter(|v| !v.is_null()) {
        let at = format!("{path}.resources");
        let desc = &mut filter.resources;
        desc.raw_kinds = string_list(res.field("kinds"));
        desc.kinds = desc
            .raw_kinds
            .iter()
            .map(|k| KindSelector::parse(k))
            .collect();
        desc.name = res
            .field("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        desc.names = string_list(res.field("names"));
        desc.namespaces = string_list(res.field("namespaces"));
        desc.operations = string_list(res.field("operations"));
        if let Some(annotations) = res.field("annotations").and_then(Value::as_object) {
            for (k, v) in annotations {
                let v = scalar_string(v).ok_or_else(|| {
                    CompileError::new(format!("{at}.annotations.{k}"), "must be a string")
                })?;
                desc.annotations.insert(k.clone(), v);
            }
        }
        if let Some(sel) = res.field("selector").filter(|v| !v.is_null()) {
            desc.selector = Some(LabelSelector::compile(sel, &format!("{at}.selector"))?);
        }
        if let Some(sel) = res.field("namespaceSelector").filter(|v| !v.is_null()) {
            desc.namespace_selector = Some(LabelSelector::compile(
                sel,
                &format!("{at}.namespaceSelector"),
            )?);
        }
    }
    if let Some(subjects) = value.field("subjects").and_then(Value::as_array) {
        for (i, s) in subjects.iter().enumerate() {
            let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let subject = Subject {
                kind: field("kind"),
                name: field("name"),
                namespace: field("namespace"),
            };
            if !matches!(subject.kind.as_str(), "User" | "Group" | "ServiceAccount") {
                return Err(CompileError::new(
                    format!("{path}.subjects[{i}].kind"),
                    format!(
                        "unknown subject kind {:?} (want User, Group or ServiceAccount)",
                        subject.kind
                    ),
                ));
            }
            filter.subjects.push(subject);
        }
    }
    filter.roles = string_list(value.field("roles"));
    filter.cluster_roles = string_list(value.field("clusterRoles"));
    Ok(filter)
}

/// Evaluates one filter. `use_user_info` is false when matching without any request user (the
/// offline CLI without a userinfo file), where Kyverno ignores a filter's user criteria.
fn filter_matches(filter: &ResourceFilter, request: &Request, use_user_info: bool) -> bool {
    let desc = &filter.resources;
    let resource = request.resource();
    let kind = request.kind.kind.as_str();
    if !desc.kinds.is_empty()
        && !desc.kinds.iter().any(|k| {
            k.matches(
                &request.kind.group,
                &request.kind.version,
                kind,
                &request.subresource,
            )
        })
    {
        return false;
    }
    // Most filters name only kinds: the name is looked up when a criterion reads it.
    let name = || match metadata_str(resource, "name") {
        "" => metadata_str(resource, "generateName"),
        name => name,
    };
    if let Some(want) = &desc.name {
        if !wildcard_match(want, name()) {
            return false;
        }
    }
    if !desc.names.is_empty() {
        let name = name();
        if !desc.names.iter().any(|n| wildcard_match(n, name)) {
            return false;
        }
    }
    if !desc.namespaces.is_empty() {
        let namespace = if kind == "Namespace" {
            name()
        } else {
            metadata_str(resource, "namespace")
        };
        if !desc.namespaces.iter().any(|n| wildcard_match(n, namespace)) {
            return false;
        }
    }
    if !desc.annotations.is_empty() {
        let actual = metadata_map(resource, "annotations");
        let all_found = desc.annotations.iter().all(|(k, v)| {
            actual
                .iter()
                .any(|(ak, av)| wildcard_match(k, ak) && wildcard_match(v, av))
        });
        if !all_found {
            return false;
        }
    }
    if let Some(selector) = &desc.selector {
        if !selector.matches(&metadata_map(resource, "labels")) {
            return false;
        }
    }
    if let Some(selector) = &desc.namespace_selector {
        if kind != "Namespace" && !kind.is_empty() {
            let empty = BTreeMap::new();
            let labels = request.namespace_labels.as_ref().unwrap_or(&empty);
            if !selector.matches(labels) {
                return false;
            }
        }
    }
    if !desc.operations.is_empty()
        && !desc
            .operations
            .iter()
            .any(|op| op.eq_ignore_ascii_case(request.operation.as_str()))
    {
        return false;
    }
    if use_user_info {
        let user = &request.user;
        if !filter.roles.is_empty() && !filter.roles.iter().any(|r| user.roles.contains(r)) {
            return false;
        }
        if !filter.cluster_roles.is_empty()
            && !filter
                .cluster_roles
                .iter()
                .any(|r| user.cluster_roles.contains(r))
        {
            return false;
        }
        if !filter.subjects.is_empty()
            && !filter.subjects.iter().any(|s| subject_matches(s, request))
        {
            return false;
        }
    }
    true
}

fn subject_matches(subject: &Subject, request: &Request) -> bool {
    let user = &request.user;
    match subject.kind.as_str() {
        "ServiceAccount" => wildcard_match(
            &format!(
                "system:serviceaccount:{}:{}",
                subject.namespace, subject.name
            ),
            &user.username,
        ),
        "Group" => user.groups.iter().any(|g| wildcard_match(&subject.name, g)),
        "User" => wildcard_match(&subject.name, &user.username),
        _ => false,
    }
}

/// A list of strings; a lone string counts as a one-element list, other entries are skipped.
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_string).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Strings as they are; numbers and booleans in their JSON spelling (YAML `true` as a label).
pub fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_block_of_plain_kinds_selects_the_main_resource_of_its_kinds() {
        let alone = [
            json!({"any": [{"resources": {"kinds": ["Pod"]}}]}),
            json!({"resources": {"kinds": ["Pod", "Deployment"]}}),
            json!({"any": [{"resources": {"kinds": ["Pod"]}}, {"resources": {"kinds": ["ConfigMap"]}}]}),
        ];
        let not_alone = [
            json!({"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["a"]}}]}),
            json!({"any": [{"resources": {"kinds": ["Pod"], "operations": ["CREATE"]}}]}),
            json!({"any": [{"resources": {"kinds": ["v1/Pod"]}}]}),
            json!({"any": [{"resources": {"kinds": ["Pod/status"]}}]}),
            json!({"any": [{"resources": {"kinds": ["Po*"]}}]}),
            json!({"all": [{"resources": {"kinds": ["Pod"]}}]}),
            json!({"any": [{"resources": {"kinds": ["Pod"]}, "clusterRoles": ["admin"]}]}),
        ];
        let mut requests = Vec::new();
        for (api_version, kind) in [
            ("v1", "Pod"),
            ("", "Pod"),
            ("example.com/v1", "Pod"),
            ("apps/v1", "Deployment"),
            ("v1", "ConfigMap"),
        ] {
            for subresource in ["", "status", "exec", "ephemeralcontainers"] {
                let mut request = Request::create(json!({
                    "apiVersion": api_version, "kind": kind,
                    "metadata": {"name": "a", "namespace": "a"},
                }));
                request.subresource = subresource.to_owned();
                requests.push(request);
            }
        }
        let (mut selected, mut passed_over) = (0, 0);
        for written in &alone {
            let block = MatchBlock::compile(Some(written), "match").unwrap();
            assert!(block.selects_by_kinds_alone(), "{written}");
            let kinds = block.literal_kinds().unwrap();
            for request in requests.iter().filter(|r| kinds.contains(&r.kind.kind)) {
                let matches = block.matches(request);
                assert_eq!(
                    selects_main_resource(request),
                    matches,
                    "{written} {request:?}"
                );
                if matches {
                    selected += 1;
                } else {
                    passed_over += 1;
                }
            }
        }
        assert!(
            selected >= 10 && passed_over >= 10,
            "{selected} / {passed_over}"
        );
        for written in &not_alone {
            let block = MatchBlock::compile(Some(written), "match").unwrap();
            assert!(!block.selects_by_kinds_alone(), "{written}");
        }
    }

    fn pod(name: &str, ns: &str, labels: Value) -> Request {
        Request::create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
        }))
    }

    #[test]
    fn kind_selector_forms() {
        let k = KindSelector::parse("Pod");
        assert!(k.matches("", "v1", "Pod", ""));
        assert!(
            !k.matches("", "v1", "Pod", "exec"),
            "a bare kind selects only the resource itself"
        );
        assert!(
            k.matches("", "v1", "Pod", "ephemeralcontainers"),
            "except pods/ephemeralcontainers, as Kyverno keeps it"
        );
        assert!(!KindSelector::parse("Deployment").matches("apps", "v1", "Deployment", "scale"));
        assert!(KindSelector::parse("Deployment/scale").matches(
            "apps",
            "v1",
            "Deployment",
            "scale"
        ));
        assert!(KindSelector::parse("Pod.exec").matches("", "v1", "Pod", "exec"));
        assert!(KindSelector::parse("*/*").matches("apps", "v1", "Deployment", "scale"));
        assert!(KindSelector::parse("*/exec").matches("", "v1", "Pod", "exec"));
        assert!(KindSelector::parse("v1/Pod/status").matches("", "v1", "Pod", "status"));
        // A first part that is not a version names the kind: `batch/Job` is kind `batch`.
        assert!(!KindSelector::parse("batch/Job").matches("batch", "v1", "Job", ""));
        assert!(!KindSelector::parse("a/b/c/d/e").matches("a", "b", "c", "d"));
        let k = KindSelector::parse("Pod/exec");
        assert!(k.matches("", "v1", "Pod", "exec"));
        assert!(!k.matches("", "v1", "Pod", "log"));
        assert!(!k.matches("", "v1", "Pod", ""));
        let k = KindSelector::parse("apps/v1/Deployment");
        assert!(k.matches("apps", "v1", "Deployment", ""));
        assert!(!k.matches("extensions", "v1beta1", "Deployment", ""));
        let k = KindSelector::parse("v1/ConfigMap");
        assert_eq!((k.version.as_str(), k.kind.as_str()), ("v1", "ConfigMap"));
        let k = KindSelector::parse("networking.k8s.io/*/Ingress");
        assert!(k.matches("networking.k8s.io", "v1", "Ingress", ""));
        assert!(KindSelector::parse("*").matches("x", "y", "Anything", ""));
        // No apiVersion on the resource: only the kind can decide.
        assert!(KindSelector::parse("batch/v1/CronJob").matches("", "", "CronJob", ""));
        assert!(!KindSelector::parse("batch/v1/CronJob").matches("", "", "Job", ""));
    }

    #[test]
    fn any_all_and_legacy_blocks() {
        let block = MatchBlock::compile(
            Some(&json!({"any": [
                {"resources": {"kinds": ["Deployment"]}},
                {"resources": {"kinds": ["Pod"], "namespaces": ["prod-*"]}},
            ]})),
            "match",
        )
        .unwrap();
        assert!(block.matches(&pod("a", "prod-eu", json!({}))));
        assert!(!block.matches(&pod("a", "dev", json!({}))));

        let block = MatchBlock::compile(
            Some(&json!({"all": [
                {"resources": {"kinds": ["Pod"]}},
                {"resources": {"selector": {"matchLabels": {"app": "web"}}}},
            ]})),
            "match",
        )
        .unwrap();
        assert!(block.matches(&pod("a", "x", json!({"app": "web"}))));
        assert!(!block.matches(&pod("a", "x", json!({"app": "db"}))));

        let legacy = MatchBlock::compile(
            Some(&json!({"resources": {"kinds": ["Pod"], "names": ["web-?"]}})),
            "match",
        )
        .unwrap();
        assert!(legacy.matches(&pod("web-1", "x", json!({}))));
        assert!(!legacy.matches(&pod("web-10", "x", json!({}))));
        assert!(!MatchBlock::Empty.matches(&pod("a", "b", json!({}))));
    }

    #[test]
    fn selectors_with_wildcards_and_expressions() {
        let sel = LabelSelector::compile(
            &json!({"matchLabels": {"app.kubernetes.io/*": "*"},
                    "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}),
            "selector",
        )
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(sel.matches(&labels(&[("app.kubernetes.io/name", "x")])));
        assert!(!sel.matches(&labels(&[("app.kubernetes.io/name", "x"), ("tier", "db")])));
        assert!(!sel.matches(&labels(&[("team", "a")])));
        let err = LabelSelector::compile(
            &json!({"matchExpressions": [{"key": "a", "operator": "Like"}]}),
            "spec.rules[0].match.resources.selector",
        )
        .unwrap_err();
        assert_eq!(
            err.path,
            "spec.rules[0].match.resources.selector.matchExpressions[0].operator"
        );
    }

    #[test]
    fn namespace_kind_is_matched_by_its_own_name() {
        let block = MatchBlock::compile(
            Some(&json!({"resources": {"kinds": ["Namespace"], "namespaces": ["team-*"]}})),
            "match",
        )
        .unwrap();
        let ns = Request::create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        );
        assert!(block.matches(&ns));
    }

    #[test]
    fn exclude_by_subject_and_operations() {
        let exclude = MatchBlock::compile(
            Some(&json!({"any": [{"subjects": [{"kind": "Group", "name": "system:masters"}]}]})),
            "exclude",
        )
        .unwrap();
        let mut req = pod("a", "b", json!({}));
        assert!(!exclude.excludes(&req));
        req.user.groups.push("system:masters".into());
        assert!(exclude.excludes(&req));

        let only_delete = MatchBlock::compile(
            Some(&json!({"any": [{"resources": {"kinds": ["Pod"], "operations": ["DELETE"]}}]})),
            "match",
        )
        .unwrap();
        assert!(!only_delete.matches(&pod("a", "b", json!({}))));
    }
}
