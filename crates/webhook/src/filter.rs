//! Resource filters in Kyverno's `resourceFilters` syntax: `[Kind,Namespace,Name]` entries whose
//! parts may use `*` and `?`. A request matching any entry is admitted without evaluation.
//!
//! The kind part may be `Kind`, `Kind/subresource`, `version/Kind`, `group/version/Kind` (with an
//! optional `/subresource`), or `*/*` for every resource and sub-resource. A bare `Kind` matches only
//! the main resource, not its sub-resources. Missing namespace or name parts match only empty values.
//! For `Namespace` objects, the namespace part is also compared with the namespace's own name, so
//! `[*/*,kube-system,*]` covers the `kube-system` Namespace itself.

use bylaw_runtime::gocompat::{wildcard_match, KindSelector};
use bylaw_runtime::ReviewRequest;

/// Kyverno's default filters (its Helm chart's `config.resourceFilters`, minus entries naming
/// Kyverno's own objects); bylaw's namespace is added separately.
pub const DEFAULT_RESOURCE_FILTERS: &str = "[Event,*,*][*/*,kube-system,*][*/*,kube-public,*]\
[*/*,kube-node-lease,*][Node,*,*][Node/*,*,*][APIService,*,*][APIService/*,*,*][TokenReview,*,*]\
[SubjectAccessReview,*,*][SelfSubjectAccessReview,*,*][Binding,*,*][Pod/binding,*,*]\
[ReplicaSet,*,*][ReplicaSet/*,*,*][EphemeralReport,*,*][ClusterEphemeralReport,*,*]";

/// A filter spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// An entry has more than three comma-separated parts.
    #[error("resource filter [{0}] has more than three parts; expected [Kind,Namespace,Name]")]
    TooManyParts(String),
    /// Text outside brackets.
    #[error("unexpected text {0:?} in resource filters; entries look like [Kind,Namespace,Name]")]
    Stray(String),
    /// An opening bracket without a closing one.
    #[error("unclosed '[' in resource filters")]
    Unclosed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct FilterEntry {
    group: String,
    version: String,
    kind: String,
    subresource: String,
    namespace: String,
    name: String,
}

/// A parsed, immutable set of resource filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceFilters {
    entries: Vec<FilterEntry>,
}

impl ResourceFilters {
    /// Parses `[Kind,Namespace,Name]` entries; whitespace and newlines between entries are ignored.
    pub fn parse(spec: &str) -> Result<Self, FilterError> {
        let mut entries = Vec::new();
        let mut rest = spec;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            if rest.is_empty() {
                break;
            }
            let Some(after_open) = rest.strip_prefix('[') else {
                let stray: String = rest.chars().take(20).collect();
                return Err(FilterError::Stray(stray));
            };
            let close = after_open.find(']').ok_or(FilterError::Unclosed)?;
            let (inner, after) = after_open.split_at(close);
            rest = after.get(1..).unwrap_or_default();
            let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
            let (kind, namespace, name) = match parts.as_slice() {
                [kind] => (*kind, "", ""),
                [kind, namespace] => (*kind, *namespace, ""),
                [kind, namespace, name] => (*kind, *namespace, *name),
                _ => return Err(FilterError::TooManyParts(inner.to_owned())),
            };
            let KindSelector {
                group,
                version,
                kind,
                subresource,
            } = KindSelector::parse(kind);
            entries.push(FilterEntry {
                group,
                version,
                kind,
                subresource,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(ResourceFilters { entries })
    }

    /// Adds an entry skipping everything in `namespace` (used for bylaw's own namespace).
    pub fn exclude_namespace(&mut self, namespace: &str) {
        self.entries.push(FilterEntry {
            group: "*".into(),
            version: "*".into(),
            kind: "*".into(),
            subresource: "*".into(),
            namespace: namespace.to_owned(),
            name: "*".into(),
        });
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the request should be admitted without evaluation.
    pub fn matches(&self, request: &ReviewRequest) -> bool {
        let gvk = &request.kind;
        let subresource = request.sub_resource.as_deref().unwrap_or_default();
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let is_namespace_object =
            gvk.group.is_empty() && gvk.version == "v1" && gvk.kind == "Namespace";
        self.entries.iter().any(|f| {
            let type_matches = wildcard_match(&f.group, &gvk.group)
                && wildcard_match(&f.version, &gvk.version)
                && wildcard_match(&f.kind, &gvk.kind)
                && wildcard_match(&f.subresource, subresource);
            type_matches
                && ((wildcard_match(&f.namespace, namespace)
                    && wildcard_match(&f.name, &request.name))
                    || (is_namespace_object && wildcard_match(&f.namespace, &request.name)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bylaw_runtime::{GroupVersionKind, GroupVersionResource, Operation, UserInfo};

    fn request(
        gvk: (&str, &str, &str),
        sub: Option<&str>,
        ns: Option<&str>,
        name: &str,
    ) -> ReviewRequest {
        ReviewRequest {
            uid: "u".into(),
            kind: GroupVersionKind {
                group: gvk.0.into(),
                version: gvk.1.into(),
                kind: gvk.2.into(),
            },
            resource: GroupVersionResource::default(),
            sub_resource: sub.map(str::to_owned),
            request_kind: None,
            request_resource: None,
            request_sub_resource: None,
            name: name.into(),
            namespace: ns.map(str::to_owned),
            operation: Operation::Create,
            user_info: UserInfo::default(),
            object: None,
            old_object: None,
            dry_run: false,
            options: None,
            managed_fields_left_out: false,
        }
    }

    #[test]
    fn default_filters_follow_kyverno_semantics() {
        let mut filters = ResourceFilters::parse(DEFAULT_RESOURCE_FILTERS).unwrap();
        filters.exclude_namespace("bylaw");
        let core = ("", "v1", "Pod");
        let cases: Vec<(&str, ReviewRequest, bool)> = vec![
            (
                "pod in default",
                request(core, None, Some("default"), "web"),
                false,
            ),
            (
                "pod in kube-system",
                request(core, None, Some("kube-system"), "dns"),
                true,
            ),
            (
                "pod status in kube-system",
                request(core, Some("status"), Some("kube-system"), "dns"),
                true,
            ),
            (
                "pod in bylaw",
                request(core, None, Some("bylaw"), "bylaw-0"),
                true,
            ),
            (
                "event",
                request(("events.k8s.io", "v1", "Event"), None, Some("default"), "e"),
                true,
            ),
            ("node", request(("", "v1", "Node"), None, None, "n1"), true),
            (
                "node status",
                request(("", "v1", "Node"), Some("status"), None, "n1"),
                true,
            ),
            (
                "pod binding",
                request(("", "v1", "Binding"), None, Some("default"), "b"),
                true,
            ),
            (
                "pods/binding",
                request(core, Some("binding"), Some("default"), "web"),
                true,
            ),
            (
                "pod exec is not filtered",
                request(core, Some("exec"), Some("default"), "web"),
                false,
            ),
            (
                "replicaset",
                request(("apps", "v1", "ReplicaSet"), None, Some("default"), "rs"),
                true,
            ),
            (
                "deployment",
                request(("apps", "v1", "Deployment"), None, Some("default"), "d"),
                false,
            ),
            (
                "kube-system namespace object",
                request(("", "v1", "Namespace"), None, None, "kube-system"),
                true,
            ),
            (
                "team namespace object",
                request(("", "v1", "Namespace"), None, None, "team-a"),
                false,
            ),
            (
                "token review",
                request(
                    ("authentication.k8s.io", "v1", "TokenReview"),
                    None,
                    None,
                    "",
                ),
                true,
            ),
        ];
        for (what, req, expected) in cases {
            assert_eq!(filters.matches(&req), expected, "{what}");
        }
    }

    #[test]
    fn kind_selectors() {
        let filters = ResourceFilters::parse(
            "[v1/ConfigMap,team-*,cfg?] [apps/v1/Deployment/scale,*,*] [Secret,default]",
        )
        .unwrap();
        assert_eq!(filters.len(), 3);
        assert!(filters.matches(&request(
            ("", "v1", "ConfigMap"),
            None,
            Some("team-a"),
            "cfg1"
        )));
        assert!(!filters.matches(&request(
            ("", "v2", "ConfigMap"),
            None,
            Some("team-a"),
            "cfg1"
        )));
        assert!(!filters.matches(&request(
            ("", "v1", "ConfigMap"),
            None,
            Some("team-a"),
            "cfg10"
        )));
        assert!(filters.matches(&request(
            ("apps", "v1", "Deployment"),
            Some("scale"),
            Some("x"),
            "d"
        )));
        assert!(!filters.matches(&request(("apps", "v1", "Deployment"), None, Some("x"), "d")));
        // A missing name part matches only an empty name.
        assert!(!filters.matches(&request(("", "v1", "Secret"), None, Some("default"), "s")));
        assert!(filters.matches(&request(("", "v1", "Secret"), None, Some("default"), "")));
    }

    #[test]
    fn malformed_specs_are_rejected_with_reasons() {
        assert_eq!(
            ResourceFilters::parse("[a,b,c,d]"),
            Err(FilterError::TooManyParts("a,b,c,d".into()))
        );
        assert_eq!(ResourceFilters::parse("[Pod,*"), Err(FilterError::Unclosed));
        assert!(matches!(
            ResourceFilters::parse("Pod,*,*"),
            Err(FilterError::Stray(_))
        ));
        assert!(ResourceFilters::parse("  \n").unwrap().is_empty());
    }
}
