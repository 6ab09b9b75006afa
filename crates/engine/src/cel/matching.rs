//! `matchConstraints` / `matchResources` of ValidatingPolicy and ValidatingAdmissionPolicy
//! (Kubernetes' `MatchResources`): resource rules by group, version, resource and operation,
//! exclusions, and namespace and object label selectors.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::compile::CompileError;
use crate::matching::{string_list, LabelSelector};
use crate::request::{metadata_map, Operation, Request};

/// One `resourceRules[]` / `excludeResourceRules[]` entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceRule {
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    /// Plural resources, `resource/subresource`, `*`, `*/*`, `*/scale`.
    pub resources: Vec<String>,
    pub operations: Vec<String>,
    pub resource_names: Vec<String>,
}

/// Compiled `MatchResources`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchResources {
    pub resource_rules: Vec<ResourceRule>,
    pub exclude_resource_rules: Vec<ResourceRule>,
    pub namespace_selector: Option<LabelSelector>,
    pub object_selector: Option<LabelSelector>,
}

fn any_or(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item == "*" || item == value)
}

impl ResourceRule {
    fn compile(value: &Value) -> ResourceRule {
        ResourceRule {
            api_groups: string_list(value.get("apiGroups")),
            api_versions: string_list(value.get("apiVersions")),
            resources: string_list(value.get("resources")),
            operations: string_list(value.get("operations")),
            resource_names: string_list(value.get("resourceNames")),
        }
    }

    /// Whether the rule covers the request (group, version, resource[/subresource],
    /// operation, name).
    pub fn covers(&self, request: &Request) -> bool {
        let kind = &request.kind;
        let resource = super::kinds::resource_of(&kind.kind);
        let sub = request.subresource.as_str();
        let resource_ok = self.resources.iter().any(|r| {
            let (want_res, want_sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
            let res_ok = want_res == "*" || want_res == resource;
            let sub_ok = if sub.is_empty() {
                // `*` and `pods` match the main resource; `*/*` matches every subresource and
                // the main resource too.
                want_sub.is_empty() || (want_res == "*" && want_sub == "*")
            } else {
                want_sub == "*" || want_sub == sub
            };
            res_ok && sub_ok
        });
        let operation = request.operation.as_str();
        let operation_ok = any_or(&self.operations, operation)
            || (request.operation == Operation::Connect && any_or(&self.operations, "CONNECT"));
        let name_ok = self.resource_names.is_empty()
            || self.resource_names.iter().any(|n| n == request.name());
        let version_known = !kind.version.is_empty();
        (!version_known
            || (any_or(&self.api_groups, &kind.group) && any_or(&self.api_versions, &kind.version)))
            && resource_ok
            && operation_ok
            && name_ok
    }
}

impl MatchResources {
    /// Compiles a `MatchResources` object; `path` names it in errors.
    pub fn compile(value: &Value, path: &str) -> Result<MatchResources, CompileError> {
        if !value.is_object() {
            return Err(CompileError::new(path, "must be an object"));
        }
        let rules = |key: &str| -> Result<Vec<ResourceRule>, CompileError> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => Ok(items.iter().map(ResourceRule::compile).collect()),
                Some(_) => Err(CompileError::new(format!("{path}.{key}"), "must be a list")),
            }
        };
        let selector = |key: &str| -> Result<Option<LabelSelector>, CompileError> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => LabelSelector::compile(v, &format!("{path}.{key}")).map(Some),
            }
        };
        Ok(MatchResources {
            resource_rules: rules("resourceRules")?,
            exclude_resource_rules: rules("excludeResourceRules")?,
            namespace_selector: selector("namespaceSelector")?,
            object_selector: selector("objectSelector")?,
        })
    }

    /// Whether the request is selected. `namespace_labels` are those of the request's
    /// namespace (the Namespace's own for a Namespace); unknown labels count as none.
    pub fn matches(&self, request: &Request) -> bool {
        if !self.resource_rules.iter().any(|r| r.covers(request)) {
            return false;
        }
        if self
            .exclude_resource_rules
            .iter()
            .any(|r| r.covers(request))
        {
            return false;
        }
        if let Some(selector) = &self.object_selector {
            let labels = metadata_map(request.resource(), "labels");
            if !selector.matches(&labels) {
                return false;
            }
        }
        if let Some(selector) = &self.namespace_selector {
            let is_namespace = request.kind.kind == "Namespace";
            let namespaced = !request.namespace().is_empty();
            if is_namespace {
                if !selector.matches(&metadata_map(request.resource(), "labels")) {
                    return false;
                }
            } else if namespaced {
                let empty = BTreeMap::new();
                let labels = request.namespace_labels.as_ref().unwrap_or(&empty);
                if !selector.matches(labels) {
                    return false;
                }
            }
        }
        true
    }

    /// Whether the constraints could select Pods only (the condition for autogen).
    pub fn selects_only_pods(&self) -> bool {
        let [rule] = self.resource_rules.as_slice() else {
            return false;
        };
        self.exclude_resource_rules.is_empty()
            && self
                .object_selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty() && s.match_expressions.is_empty())
            && rule.resource_names.is_empty()
            && rule.api_groups == [""]
            && rule.api_versions == ["v1"]
            && rule.resources == ["pods"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods(ops: Value) -> MatchResources {
        MatchResources::compile(
            &json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods"], "operations": ops}]}),
            "spec.matchConstraints",
        )
        .unwrap()
    }

    #[test]
    fn resource_rules_select_by_resource_and_operation() {
        let pod = Request::create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"}}));
        let deployment = Request::create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns"}}));
        assert!(pods(json!(["CREATE", "UPDATE"])).matches(&pod));
        assert!(!pods(json!(["UPDATE"])).matches(&pod));
        assert!(pods(json!(["*"])).matches(&pod));
        assert!(!pods(json!(["*"])).matches(&deployment));
        let mut exec = pod.clone();
        exec.subresource = "exec".into();
        assert!(!pods(json!(["*"])).matches(&exec));
        assert!(pods(json!(["CREATE"])).selects_only_pods());
    }

    #[test]
    fn selectors_and_exclusions_apply() {
        let m = MatchResources::compile(
            &json!({"resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"],
                "resources": ["*"], "operations": ["*"]}],
                "excludeResourceRules": [{"apiGroups": [""], "apiVersions": ["*"],
                "resources": ["configmaps"], "operations": ["*"]}],
                "namespaceSelector": {"matchLabels": {"env": "prod"}},
                "objectSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}}),
            "spec.matchConstraints",
        )
        .unwrap();
        let mut pod = Request::create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"}}));
        assert!(!m.matches(&pod), "namespace labels unknown");
        pod.namespace_labels = Some([("env".to_owned(), "prod".to_owned())].into());
        assert!(m.matches(&pod));
        let mut cm = pod.clone();
        cm.kind.kind = "ConfigMap".into();
        assert!(!m.matches(&cm));
        let mut labelled = pod.clone();
        labelled.object["metadata"]["labels"] = json!({"skip": "yes"});
        assert!(!m.matches(&labelled));
        let node =
            Request::create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}));
        assert!(
            m.matches(&node),
            "cluster-scoped objects ignore the namespace selector"
        );
    }
}
