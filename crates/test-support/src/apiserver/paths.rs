//! Request paths and query strings, read the way kube-apiserver's RequestInfo reads them.

use std::collections::BTreeMap;

/// What a path addresses.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Route {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    Resources {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
    Unknown,
}

/// A path to a collection, an object or an object's subresource.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResourcePath {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The deprecated `/watch/` path prefix.
    pub watch_prefix: bool,
}

/// Subresources of a Namespace, which its path carries right after the namespace name.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

pub(crate) fn route(path: &str) -> Route {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::Resources {
            group: String::new(),
            version: version.to_string(),
        },
        ["apis", group, version] => Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Route::Unknown,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_prefix, mut rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let mut namespace = None;
    if let ["namespaces", ns, tail @ ..] = rest {
        // `/namespaces/{ns}` is the Namespace itself (and `/namespaces/{ns}/status` its status);
        // anything else under it is a namespaced resource.
        match tail.first() {
            Some(next) if !NAMESPACE_SUBRESOURCES.contains(next) => {
                namespace = Some(ns.to_string());
                rest = tail;
            }
            _ => {}
        }
    }
    let path = |resource: &str, name: Option<&str>, subresource: Option<&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
            namespace: namespace.clone(),
            name: name.map(str::to_string),
            subresource: subresource.map(str::to_string),
            watch_prefix,
        })
    };
    match rest {
        [resource] => path(resource, None, None),
        [resource, name] => path(resource, Some(name), None),
        [resource, name, subresource] => path(resource, Some(name), Some(subresource)),
        _ => Route::Unknown,
    }
}

/// Decoded query parameters (the last value wins, as in Go's `url.Values.Get` for single values).
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    params: BTreeMap<String, String>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let params = query
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { params }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// A boolean parameter: `true`/`1` (Go's strconv.ParseBool accepts a few more spellings).
    pub fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key),
            Some("true" | "1" | "t" | "T" | "TRUE" | "True")
        )
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match route(path) {
            Route::Resource(p) => p,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespace_paths_are_read_like_request_info() {
        let ns = resource("/api/v1/namespaces/team-a");
        assert_eq!(
            (ns.resource.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("team-a"), None)
        );
        let status = resource("/api/v1/namespaces/team-a/status");
        assert_eq!(
            (status.name.as_deref(), status.subresource.as_deref()),
            (Some("team-a"), Some("status"))
        );
        let pods = resource("/api/v1/namespaces/team-a/pods");
        assert_eq!(
            (pods.resource.as_str(), pods.namespace.as_deref(), pods.name),
            ("pods", Some("team-a"), None)
        );
        let scale = resource("/apis/apps/v1/namespaces/a/deployments/web/scale");
        assert_eq!(
            (
                scale.group.as_str(),
                scale.name.as_deref(),
                scale.subresource.as_deref()
            ),
            ("apps", Some("web"), Some("scale"))
        );
        let all = resource("/apis/kyverno.io/v1/clusterpolicies");
        assert_eq!((all.namespace, all.name), (None, None));
        assert!(resource("/api/v1/watch/namespaces/a/pods").watch_prefix);
        assert_eq!(route("/apis/apps"), Route::Group("apps".to_string()));
        assert_eq!(route("/api/v1/namespaces/a/pods/b/c/d"), Route::Unknown);
    }
}
