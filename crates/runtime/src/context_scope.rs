//! What one policy may look up while a review is evaluated.
//!
//! Every lookup a policy makes goes through a [`PolicyScope`], whatever [`ContextSource`] answers
//! it, so the rules hold in standalone and in-cluster mode alike:
//!
//! * a namespaced `Policy` reads ConfigMaps, API paths and clone sources of its own namespace
//!   only (Kyverno's rule since its advisories about cross-namespace reads); a `configMap` entry
//!   without a namespace means the policy's namespace, or `default` for a ClusterPolicy;
//! * an `apiCall.urlPath` is cleaned (`.`/`..` resolved) before it is checked and called, and a
//!   namespaced policy's path may not hide its namespace behind percent-encoding;
//! * everything the lookups of one review return together is bounded ([`ContextBudget`]), so a
//!   request cannot make bylaw hold unbounded data.

use std::sync::atomic::{AtomicUsize, Ordering};

use bylaw_engine::context::{ApiCall, ContextError, ContextProvider};
use serde_json::{Map, Value};

use crate::sources::ContextSource;

/// Default bound on the data all lookups of one review may return: 8 MiB.
pub const DEFAULT_MAX_CONTEXT_BYTES: usize = 8 * 1024 * 1024;

/// How much lookup data one review may still take in. Shared by every policy of the review.
#[derive(Debug)]
pub struct ContextBudget {
    /// Atomic only because providers must be `Sync` (CEL shares them); one review uses it.
    remaining: AtomicUsize,
    limit: usize,
}

impl ContextBudget {
    /// A budget of `limit` bytes (as serialized JSON).
    pub fn new(limit: usize) -> Self {
        ContextBudget {
            remaining: AtomicUsize::new(limit),
            limit,
        }
    }

    /// Charges the size of `value`, or fails when the review's budget is spent.
    fn charge(&self, value: &Value) -> Result<(), ContextError> {
        let remaining = self.remaining.load(Ordering::Relaxed);
        let size = json_size(value, remaining.saturating_add(1));
        match remaining.checked_sub(size) {
            Some(left) => {
                self.remaining.store(left, Ordering::Relaxed);
                Ok(())
            }
            None => {
                self.remaining.store(0, Ordering::Relaxed);
                Err(ContextError(format!(
                    "context data of this request exceeds the {} byte limit",
                    self.limit
                )))
            }
        }
    }
}

/// Approximate serialized size of `value`, counted only up to `cap` (enough to know it is over).
pub fn json_size(value: &Value, cap: usize) -> usize {
    fn walk(value: &Value, total: &mut usize, cap: usize) {
        if *total > cap {
            return;
        }
        match value {
            Value::Null | Value::Bool(_) => *total += 5,
            Value::Number(_) => *total += 8,
            Value::String(s) => *total += s.len() + 2,
            Value::Array(items) => {
                *total += 2;
                for item in items {
                    walk(item, total, cap);
                    *total += 1;
                }
            }
            Value::Object(map) => {
                *total += 2;
                for (key, item) in map {
                    *total += key.len() + 4;
                    walk(item, total, cap);
                }
            }
        }
    }
    let mut total = 0;
    walk(value, &mut total, cap);
    total
}

/// Resolves `.` and `..` segments of an absolute URL path (the query is kept as is).
/// `None` when `..` would climb above the root.
pub fn clean_url_path(path: &str) -> Option<String> {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            segment => segments.push(segment),
        }
    }
    let mut cleaned = format!("/{}", segments.join("/"));
    if let Some(query) = query {
        cleaned.push('?');
        cleaned.push_str(query);
    }
    Some(cleaned)
}

/// The namespace an API path addresses: `/api/v1/namespaces/NS[/...]` or
/// `/apis/GROUP/VERSION/namespaces/NS[/...]`; `None` for cluster-wide paths.
pub fn url_path_namespace(path: &str) -> Option<&str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    match rest {
        ["namespaces", namespace, ..] => Some(namespace),
        _ => None,
    }
}

/// Checks an `apiCall.urlPath` for a policy (namespaced when `policy_namespace` is set) and
/// returns the cleaned path to call.
pub fn check_url_path(path: &str, policy_namespace: Option<&str>) -> Result<String, ContextError> {
    if !path.starts_with('/') {
        return Err(ContextError(format!(
            "apiCall.urlPath {path:?} must be an absolute path starting with /"
        )));
    }
    let cleaned = clean_url_path(path)
        .ok_or_else(|| ContextError(format!("apiCall.urlPath {path:?} climbs above the root")))?;
    let Some(policy_namespace) = policy_namespace else {
        return Ok(cleaned);
    };
    let path_part = cleaned.split('?').next().unwrap_or(&cleaned);
    if path_part.contains('%') {
        return Err(ContextError(format!(
            "apiCall.urlPath {cleaned}: a namespaced policy may not use percent-encoding in the path"
        )));
    }
    match url_path_namespace(&cleaned) {
        Some(namespace) if namespace == policy_namespace => Ok(cleaned),
        Some(namespace) => Err(ContextError(format!(
            "apiCall.urlPath {cleaned} refers to namespace {namespace}, which is different from the policy namespace {policy_namespace}"
        ))),
        None => Err(ContextError(format!(
            "apiCall.urlPath {cleaned} does not address a namespace, which a namespaced policy requires"
        ))),
    }
}

/// The lookups of one policy during one review: namespace rules applied, sizes charged to the
/// review's budget, the answer from the underlying [`ContextSource`].
pub struct PolicyScope<'a> {
    source: &'a dyn ContextSource,
    /// Set for a namespaced Policy.
    namespace: Option<&'a str>,
    budget: &'a ContextBudget,
}

impl<'a> PolicyScope<'a> {
    /// Lookups of a policy in `namespace` (`None` for a ClusterPolicy).
    pub fn new(
        source: &'a dyn ContextSource,
        namespace: Option<&'a str>,
        budget: &'a ContextBudget,
    ) -> Self {
        PolicyScope {
            source,
            namespace,
            budget,
        }
    }

    fn same_namespace(&self, what: &str, namespace: &str) -> Result<(), ContextError> {
        match self.namespace {
            Some(own) if own != namespace => Err(ContextError(format!(
                "{what} namespace {namespace:?} is different from the policy namespace {own:?}"
            ))),
            _ => Ok(()),
        }
    }

    fn charged(
        &self,
        found: Result<Option<Value>, ContextError>,
    ) -> Result<Option<Value>, ContextError> {
        let found = found?;
        if let Some(value) = &found {
            self.budget.charge(value)?;
        }
        Ok(found)
    }
}

impl ContextProvider for PolicyScope<'_> {
    fn rule_values(&self, policy: &str, rule: &str) -> Option<&Map<String, Value>> {
        self.source.rule_values(policy, rule)
    }

    fn foreach_values(&self, policy: &str, rule: &str) -> Option<&Map<String, Value>> {
        self.source.foreach_values(policy, rule)
    }

    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Value>, ContextError> {
        let namespace = match (namespace, self.namespace) {
            ("", Some(own)) => own,
            ("", None) => "default",
            (namespace, _) => namespace,
        };
        self.same_namespace("configMap", namespace)?;
        self.charged(self.source.config_map(namespace, name))
    }

    fn api_call(&self, call: &ApiCall) -> Result<Option<Value>, ContextError> {
        let mut call = call.clone();
        if let Some(path) = &call.url_path {
            call.url_path = Some(check_url_path(path, self.namespace)?);
        }
        self.charged(self.source.api_call(&call))
    }

    fn global_reference(&self, name: &str) -> Result<Option<Value>, ContextError> {
        self.charged(self.source.global_reference(name))
    }

    fn image_data(&self, reference: &str) -> Result<Option<Value>, ContextError> {
        self.charged(self.source.image_data(reference))
    }

    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ContextError> {
        self.same_namespace("clone source", namespace)?;
        self.charged(self.source.resource(api_version, kind, namespace, name))
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: Option<&Value>,
    ) -> Result<Vec<Value>, ContextError> {
        self.same_namespace("clone source", namespace)?;
        let items = self
            .source
            .list_resources(api_version, kind, namespace, selector)?;
        for item in &items {
            self.budget.charge(item)?;
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use serde_json::json;

    /// Answers every lookup and records what reached it.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<String>>,
    }

    impl ContextProvider for Recorder {
        fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Value>, ContextError> {
            self.seen
                .lock()
                .unwrap()
                .push(format!("cm {namespace}/{name}"));
            Ok(Some(json!({"data": {"key": "x".repeat(100)}})))
        }

        fn api_call(&self, call: &ApiCall) -> Result<Option<Value>, ContextError> {
            self.seen
                .lock()
                .unwrap()
                .push(format!("api {}", call.url_path.as_deref().unwrap_or("-")));
            Ok(Some(json!({"items": []})))
        }

        fn resource(
            &self,
            _: &str,
            kind: &str,
            namespace: &str,
            name: &str,
        ) -> Result<Option<Value>, ContextError> {
            self.seen
                .lock()
                .unwrap()
                .push(format!("get {kind} {namespace}/{name}"));
            Ok(Some(json!({})))
        }
    }

    impl ContextSource for Recorder {
        fn namespace_labels(&self, _: &str) -> Option<BTreeMap<String, String>> {
            None
        }
    }

    fn call(path: &str) -> ApiCall {
        ApiCall {
            url_path: Some(path.to_owned()),
            method: "GET".into(),
            data: Vec::new(),
            service_url: None,
            service_ca_bundle: None,
            service_headers: Vec::new(),
        }
    }

    #[test]
    fn a_namespaced_policy_cannot_read_another_namespaces_config_map() {
        let source = Recorder::default();
        let budget = ContextBudget::new(DEFAULT_MAX_CONTEXT_BYTES);
        let scope = PolicyScope::new(&source, Some("team-a"), &budget);
        let error = scope.config_map("kube-system", "secrets-ish").unwrap_err();
        assert_eq!(
            error.0,
            "configMap namespace \"kube-system\" is different from the policy namespace \"team-a\""
        );
        assert!(scope.config_map("team-a", "settings").unwrap().is_some());
        // No namespace means the policy's own.
        assert!(scope.config_map("", "settings").unwrap().is_some());
        // A ClusterPolicy reads anywhere; no namespace means `default`.
        let cluster = PolicyScope::new(&source, None, &budget);
        assert!(cluster.config_map("kube-system", "x").unwrap().is_some());
        assert!(cluster.config_map("", "y").unwrap().is_some());
        assert_eq!(
            *source.seen.lock().unwrap(),
            [
                "cm team-a/settings",
                "cm team-a/settings",
                "cm kube-system/x",
                "cm default/y"
            ],
            "the refused lookup never reached the source"
        );
    }

    #[test]
    fn a_namespaced_policy_calls_api_paths_of_its_own_namespace_only() {
        let source = Recorder::default();
        let budget = ContextBudget::new(DEFAULT_MAX_CONTEXT_BYTES);
        let scope = PolicyScope::new(&source, Some("team-a"), &budget);
        for (path, refused) in [
            (
                "/api/v1/namespaces/team-b/configmaps",
                "refers to namespace team-b",
            ),
            (
                "/api/v1/namespaces/team-a/../team-b/secrets",
                "refers to namespace team-b",
            ),
            (
                "/api/v1/namespaces/team-a/pods/../../../namespaces/kube-system/secrets",
                "refers to namespace kube-system",
            ),
            ("/api/v1/secrets", "does not address a namespace"),
            ("/api/v1/namespaces", "does not address a namespace"),
            ("/apis/apps/v1/deployments", "does not address a namespace"),
            (
                "/api/v1/namespaces/team-a%2F..%2Fteam-b/pods",
                "percent-encoding",
            ),
            ("/../../etc/passwd", "climbs above the root"),
            ("api/v1/namespaces/team-a/pods", "absolute path"),
        ] {
            let error = scope.api_call(&call(path)).unwrap_err();
            assert!(error.0.contains(refused), "{path}: {error}");
        }
        assert!(source.seen.lock().unwrap().is_empty(), "{:?}", source.seen);

        scope
            .api_call(&call(
                "/apis/apps/v1/namespaces/team-a/deployments?labelSelector=app%3Dweb",
            ))
            .unwrap();
        scope
            .api_call(&call("/api/v1/namespaces/team-a/./pods"))
            .unwrap();
        let cluster = PolicyScope::new(&source, None, &budget);
        cluster
            .api_call(&call("/api/v1/namespaces/a/../b/pods"))
            .unwrap();
        assert_eq!(
            *source.seen.lock().unwrap(),
            [
                "api /apis/apps/v1/namespaces/team-a/deployments?labelSelector=app%3Dweb",
                "api /api/v1/namespaces/team-a/pods",
                "api /api/v1/namespaces/b/pods",
            ],
            "what is called is the path that was checked"
        );
    }

    #[test]
    fn a_namespaced_policy_clones_from_its_own_namespace_only() {
        let source = Recorder::default();
        let budget = ContextBudget::new(DEFAULT_MAX_CONTEXT_BYTES);
        let scope = PolicyScope::new(&source, Some("team-a"), &budget);
        assert!(scope
            .resource("v1", "Secret", "kube-system", "token")
            .is_err());
        assert!(scope
            .list_resources("v1", "Secret", "kube-system", None)
            .is_err());
        assert!(scope
            .resource("v1", "Secret", "team-a", "token")
            .unwrap()
            .is_some());
        assert_eq!(*source.seen.lock().unwrap(), ["get Secret team-a/token"]);
    }

    #[test]
    fn the_data_one_review_looks_up_is_bounded() {
        let source = Recorder::default();
        let budget = ContextBudget::new(1000);
        let scope = PolicyScope::new(&source, None, &budget);
        let mut loaded = 0;
        let error = loop {
            match scope.config_map("default", "big") {
                Ok(_) => loaded += 1,
                Err(error) => break error,
            }
            assert!(loaded < 100, "the budget never ran out");
        };
        assert!(loaded >= 5, "{loaded} lookups fit in 1000 bytes");
        assert_eq!(
            error.0,
            "context data of this request exceeds the 1000 byte limit"
        );
        // Spent for every policy of the review.
        let other = PolicyScope::new(&source, Some("team-a"), &budget);
        assert!(other
            .api_call(&call("/api/v1/namespaces/team-a/pods"))
            .is_err());
    }

    #[test]
    fn paths_are_cleaned_and_their_namespace_found() {
        assert_eq!(
            clean_url_path("/a/./b/../c?x=../y").as_deref(),
            Some("/a/c?x=../y")
        );
        assert_eq!(clean_url_path("//a//b/").as_deref(), Some("/a/b"));
        assert_eq!(clean_url_path("/a/../.."), None);
        assert_eq!(url_path_namespace("/api/v1/namespaces/x/pods"), Some("x"));
        assert_eq!(
            url_path_namespace("/apis/g/v1/namespaces/x/things/y"),
            Some("x")
        );
        assert_eq!(url_path_namespace("/api/v1/namespaces/x"), Some("x"));
        assert_eq!(url_path_namespace("/api/v1/namespaces"), None);
        assert_eq!(url_path_namespace("/api/v1/nodes"), None);
        assert_eq!(url_path_namespace("/healthz"), None);
        assert!(json_size(&json!({"a": "bc"}), usize::MAX) >= 9);
        assert!(json_size(&json!(["x".repeat(1000)]), 10) > 10);
    }
}
