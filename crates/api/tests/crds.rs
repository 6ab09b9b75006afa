//! The generated CRDs: structural schemas, names, printer columns, subresources, and that the
//! committed files under `crds/` and `helm/bylaw/crds/` are up to date.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use bylaw_api::crd_files;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// The CRDs as a user gets them: `crds_yaml()` read back as Kubernetes objects. Generated once
/// per test binary (schema generation is slow in debug builds).
fn parsed_crds() -> &'static [CustomResourceDefinition] {
    static CRDS: OnceLock<Vec<CustomResourceDefinition>> = OnceLock::new();
    CRDS.get_or_init(|| {
        let documents = bylaw_api::parse_documents(&bylaw_api::crds_yaml(), "crds_yaml()")
            .expect("crds_yaml() is valid YAML");
        documents
            .into_iter()
            .map(|doc| {
                serde_json::from_value(doc).expect("each document is a CustomResourceDefinition")
            })
            .collect()
    })
}

fn crd<'a>(crds: &'a [CustomResourceDefinition], name: &str) -> &'a CustomResourceDefinition {
    crds.iter()
        .find(|crd| crd.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("CRD {name} is generated"))
}

/// Returns every violation of the Kubernetes structural-schema rules (plus the stricter house
/// rules: no `$ref`, no `nullable`) found at or below `schema`.
fn structural_violations(schema: &JSONSchemaProps, path: &str, out: &mut Vec<String>) {
    let preserve = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    let int_or_string = schema.x_kubernetes_int_or_string == Some(true);
    if schema.type_.is_none() && !preserve && !int_or_string {
        out.push(format!(
            "{path}: no `type` and not x-kubernetes-preserve-unknown-fields"
        ));
    }
    if schema.ref_path.is_some() {
        out.push(format!("{path}: `$ref` is not allowed"));
    }
    if schema.nullable.is_some() {
        out.push(format!("{path}: `nullable` is not used by bylaw schemas"));
    }
    if schema.type_.as_deref() == Some("array") && schema.items.is_none() {
        out.push(format!("{path}: array without `items`"));
    }
    if schema.properties.is_some() && schema.additional_properties.is_some() {
        out.push(format!(
            "{path}: `properties` together with `additionalProperties`"
        ));
    }
    for (keyword, branches) in [
        ("anyOf", &schema.any_of),
        ("oneOf", &schema.one_of),
        ("allOf", &schema.all_of),
    ] {
        for (i, branch) in branches.iter().flatten().enumerate() {
            logical_branch_violations(branch, &format!("{path}.{keyword}[{i}]"), out);
        }
    }
    if let Some(not) = &schema.not {
        logical_branch_violations(not, &format!("{path}.not"), out);
    }
    for (name, property) in schema.properties.iter().flatten() {
        structural_violations(property, &format!("{path}.{name}"), out);
    }
    match &schema.items {
        Some(JSONSchemaPropsOrArray::Schema(items)) => {
            structural_violations(items, &format!("{path}[]"), out)
        }
        Some(JSONSchemaPropsOrArray::Schemas(_)) => {
            out.push(format!("{path}: tuple `items` are not allowed"))
        }
        None => {}
    }
    match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(values)) => {
            structural_violations(values, &format!("{path}{{}}"), out)
        }
        Some(JSONSchemaPropsOrBool::Bool(false)) => {
            out.push(format!("{path}: `additionalProperties: false`"))
        }
        _ => {}
    }
}

/// Inside anyOf/oneOf/allOf/not only value validations are allowed: no types, structure,
/// descriptions, defaults or Kubernetes extensions.
fn logical_branch_violations(branch: &JSONSchemaProps, path: &str, out: &mut Vec<String>) {
    let forbidden = [
        ("type", branch.type_.is_some()),
        ("properties", branch.properties.is_some()),
        ("items", branch.items.is_some()),
        (
            "additionalProperties",
            branch.additional_properties.is_some(),
        ),
        ("description", branch.description.is_some()),
        ("default", branch.default.is_some()),
        ("nullable", branch.nullable.is_some()),
        (
            "x-kubernetes-preserve-unknown-fields",
            branch.x_kubernetes_preserve_unknown_fields.is_some(),
        ),
        (
            "x-kubernetes-int-or-string",
            branch.x_kubernetes_int_or_string.is_some(),
        ),
    ];
    for (keyword, present) in forbidden {
        if present {
            out.push(format!("{path}: `{keyword}` inside a logical junctor"));
        }
    }
}

fn violations_of(schema: &JSONSchemaProps) -> Vec<String> {
    let mut out = Vec::new();
    structural_violations(schema, "", &mut out);
    out
}

fn schema_from(json: serde_json::Value) -> JSONSchemaProps {
    serde_json::from_value(json).expect("test schema is a JSONSchemaProps")
}

#[test]
fn checker_rejects_non_structural_schemas() {
    let cases = [
        (
            serde_json::json!({"type": "object", "properties": {"pattern": {"description": "free form"}}}),
            ".pattern: no `type`",
        ),
        (
            serde_json::json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}}),
            ".a: `$ref`",
        ),
        (
            serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
            "`properties` together with `additionalProperties`",
        ),
        (
            serde_json::json!({"type": "object", "properties": {"c": {"anyOf": [{"type": "object"}, {"type": "array"}]}}}),
            ".c: no `type`",
        ),
        (
            serde_json::json!({"type": "string", "anyOf": [{"type": "string"}]}),
            ".anyOf[0]: `type` inside a logical junctor",
        ),
        (
            serde_json::json!({"type": "array"}),
            "array without `items`",
        ),
        (
            serde_json::json!({"type": "string", "nullable": true}),
            "`nullable`",
        ),
    ];
    for (schema, expected) in cases {
        let violations = violations_of(&schema_from(schema.clone()));
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "schema {schema} should be rejected with `{expected}`, got {violations:?}"
        );
    }
}

#[test]
fn checker_accepts_structural_schemas() {
    let schema = schema_from(serde_json::json!({
        "type": "object",
        "properties": {
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "list": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        },
    }));
    assert_eq!(violations_of(&schema), Vec::<String>::new());
}

#[test]
fn every_generated_schema_is_structural() {
    let crds = parsed_crds();
    assert_eq!(crds.len(), 7);
    for crd in crds {
        for version in &crd.spec.versions {
            let name = format!(
                "{}/{}",
                crd.metadata.name.as_deref().unwrap_or("?"),
                version.name
            );
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap_or_else(|| panic!("{name} has a schema"));
            let violations = violations_of(schema);
            assert!(
                violations.is_empty(),
                "{name} is not structural:\n{}",
                violations.join("\n")
            );
            let metadata = schema.properties.as_ref().and_then(|p| p.get("metadata"));
            assert_eq!(
                metadata.and_then(|m| m.type_.as_deref()),
                Some("object"),
                "{name}: metadata is an object"
            );
            assert!(
                metadata.is_some_and(|m| m.properties.is_none()),
                "{name}: metadata must not be constrained"
            );
        }
    }
}

#[test]
fn names_scopes_and_subresources_match_kyverno() {
    let crds = parsed_crds();
    // (CRD name, kind, scope, short name, categories, served versions, has status subresource)
    let table = [
        (
            "clusterpolicies.kyverno.io",
            "ClusterPolicy",
            "Cluster",
            "cpol",
            Some("kyverno"),
            vec!["v1", "v2beta1"],
            true,
        ),
        (
            "policies.kyverno.io",
            "Policy",
            "Namespaced",
            "pol",
            Some("kyverno"),
            vec!["v1", "v2beta1"],
            true,
        ),
        (
            "policyexceptions.kyverno.io",
            "PolicyException",
            "Namespaced",
            "polex",
            Some("kyverno"),
            vec!["v2", "v2beta1"],
            false,
        ),
        (
            "validatingpolicies.policies.kyverno.io",
            "ValidatingPolicy",
            "Cluster",
            "vpol",
            Some("kyverno"),
            vec!["v1", "v1beta1", "v1alpha1"],
            true,
        ),
        (
            "namespacedvalidatingpolicies.policies.kyverno.io",
            "NamespacedValidatingPolicy",
            "Namespaced",
            "nvpol",
            Some("kyverno"),
            vec!["v1", "v1beta1", "v1alpha1"],
            true,
        ),
        (
            "policyreports.wgpolicyk8s.io",
            "PolicyReport",
            "Namespaced",
            "polr",
            None,
            vec!["v1alpha2"],
            false,
        ),
        (
            "clusterpolicyreports.wgpolicyk8s.io",
            "ClusterPolicyReport",
            "Cluster",
            "cpolr",
            None,
            vec!["v1alpha2"],
            false,
        ),
    ];
    for (name, kind, scope, short_name, category, versions, status) in table {
        let crd = crd(crds, name);
        assert_eq!(crd.spec.names.kind, kind, "{name}");
        assert_eq!(crd.spec.scope, scope, "{name}");
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short_name.to_owned()][..]),
            "{name}"
        );
        assert_eq!(
            crd.spec.names.list_kind.as_deref(),
            Some(format!("{kind}List").as_str()),
            "{name}"
        );
        let categories = crd.spec.names.categories.clone().unwrap_or_default();
        assert_eq!(categories.first().map(String::as_str), category, "{name}");
        let served: Vec<&str> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(served, versions, "{name}");
        let storage: Vec<&str> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.storage)
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(
            storage,
            vec![versions[0]],
            "{name}: exactly one storage version, the first"
        );
        for version in &crd.spec.versions {
            let has_status = version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some());
            assert_eq!(
                has_status, status,
                "{name}/{}: status subresource",
                version.name
            );
        }
    }
}

#[test]
fn printer_columns_match_kyverno() {
    let crds = parsed_crds();
    // Columns shown by default (priority 0), in order, with their JSON paths.
    let policy_columns = [
        ("ADMISSION", ".spec.admission"),
        ("BACKGROUND", ".spec.background"),
        ("READY", ".status.conditions[?(@.type == \"Ready\")].status"),
        ("AGE", ".metadata.creationTimestamp"),
        (
            "MESSAGE",
            ".status.conditions[?(@.type == \"Ready\")].message",
        ),
    ];
    let report_columns = [
        ("KIND", ".scope.kind"),
        ("NAME", ".scope.name"),
        ("PASS", ".summary.pass"),
        ("FAIL", ".summary.fail"),
        ("WARN", ".summary.warn"),
        ("ERROR", ".summary.error"),
        ("SKIP", ".summary.skip"),
        ("AGE", ".metadata.creationTimestamp"),
    ];
    let table: [(&str, &[(&str, &str)]); 4] = [
        ("clusterpolicies.kyverno.io", &policy_columns),
        ("policies.kyverno.io", &policy_columns),
        ("policyreports.wgpolicyk8s.io", &report_columns),
        ("clusterpolicyreports.wgpolicyk8s.io", &report_columns),
    ];
    for (name, expected) in table {
        for version in &crd(crds, name).spec.versions {
            let shown: Vec<(&str, &str)> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .filter(|c| c.priority.unwrap_or(0) == 0)
                .map(|c| (c.name.as_str(), c.json_path.as_str()))
                .collect();
            assert_eq!(shown, expected, "{name}/{}", version.name);
        }
    }
}

fn properties<'a>(schema: &'a JSONSchemaProps, path: &[&str]) -> BTreeSet<&'a str> {
    let mut node = schema;
    for step in path {
        node = match *step {
            "[]" => match &node.items {
                Some(JSONSchemaPropsOrArray::Schema(items)) => items,
                _ => panic!("no items at {step} of {path:?}"),
            },
            name => node
                .properties
                .as_ref()
                .and_then(|p| p.get(name))
                .unwrap_or_else(|| panic!("no property {name} in {path:?}")),
        };
    }
    node.properties
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect()
}

#[test]
fn policy_schema_has_every_kyverno_field() {
    let crds = parsed_crds();
    let schema = crd(crds, "clusterpolicies.kyverno.io").spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    // Field names from Kyverno's documented kyverno.io/v1 API.
    let table: [(&[&str], &[&str]); 9] = [
        (
            &["spec"],
            &[
                "admission",
                "applyRules",
                "background",
                "emitWarning",
                "failurePolicy",
                "generateExisting",
                "generateExistingOnPolicyUpdate",
                "mutateExistingOnPolicyUpdate",
                "rules",
                "schemaValidation",
                "useServerSideApply",
                "validationFailureAction",
                "validationFailureActionOverrides",
                "webhookConfiguration",
                "webhookTimeoutSeconds",
            ],
        ),
        (
            &["spec", "rules", "[]"],
            &[
                "celPreconditions",
                "context",
                "exclude",
                "generate",
                "imageExtractors",
                "match",
                "mutate",
                "name",
                "preconditions",
                "reportProperties",
                "skipBackgroundRequests",
                "validate",
                "verifyImages",
            ],
        ),
        (
            &["spec", "rules", "[]", "match"],
            &[
                "all",
                "any",
                "clusterRoles",
                "resources",
                "roles",
                "subjects",
            ],
        ),
        (
            &["spec", "rules", "[]", "match", "any", "[]", "resources"],
            &[
                "annotations",
                "kinds",
                "name",
                "names",
                "namespaceSelector",
                "namespaces",
                "operations",
                "selector",
            ],
        ),
        (
            &["spec", "rules", "[]", "context", "[]"],
            &[
                "apiCall",
                "configMap",
                "globalReference",
                "imageRegistry",
                "name",
                "variable",
            ],
        ),
        (
            &["spec", "rules", "[]", "validate"],
            &[
                "allowExistingViolations",
                "anyPattern",
                "assert",
                "cel",
                "deny",
                "failureAction",
                "failureActionOverrides",
                "foreach",
                "manifests",
                "message",
                "pattern",
                "podSecurity",
            ],
        ),
        (
            &["spec", "rules", "[]", "mutate"],
            &[
                "foreach",
                "mutateExistingOnPolicyUpdate",
                "patchStrategicMerge",
                "patchesJson6902",
                "targets",
            ],
        ),
        (
            &["spec", "rules", "[]", "generate"],
            &[
                "apiVersion",
                "clone",
                "cloneList",
                "data",
                "foreach",
                "generateExisting",
                "kind",
                "name",
                "namespace",
                "orphanDownstreamOnPolicyDelete",
                "synchronize",
                "uid",
            ],
        ),
        (
            &["status"],
            &[
                "autogen",
                "conditions",
                "ready",
                "rulecount",
                "validatingadmissionpolicy",
            ],
        ),
    ];
    for (path, expected) in table {
        let actual = properties(schema, path);
        let missing: Vec<&&str> = expected.iter().filter(|f| !actual.contains(**f)).collect();
        assert!(missing.is_empty(), "{path:?} lacks {missing:?}");
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn committed_crd_files_are_up_to_date() {
    let generated = crd_files();
    for dir in ["crds", "helm/bylaw/crds"] {
        let dir = repo_root().join(dir);
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(".yaml"))
                    .collect()
            })
            .unwrap_or_default();
        let expected: BTreeSet<String> = generated.iter().map(|(name, _)| name.clone()).collect();
        assert_eq!(
            on_disk,
            expected,
            "CRDs are out of date: run `make crds` (files in {} differ)",
            dir.display()
        );
        for (name, content) in &generated {
            let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            assert!(
                committed == *content,
                "CRDs are out of date: run `make crds` ({} differs)",
                dir.join(name).display()
            );
        }
    }
}

#[test]
fn crds_yaml_is_deterministic_and_multi_document() {
    let first = bylaw_api::crds_yaml();
    assert_eq!(first, bylaw_api::crds_yaml());
    assert_eq!(
        first.matches("\n---\n").count() + usize::from(first.starts_with("---\n")),
        7
    );
}

fn resource_names<T: kube::Resource<DynamicType = ()>>() -> (String, String, String, String) {
    (
        T::group(&()).into_owned(),
        T::version(&()).into_owned(),
        T::kind(&()).into_owned(),
        T::plural(&()).into_owned(),
    )
}

#[test]
fn kube_resource_impls_agree_with_the_crds() {
    let crds = parsed_crds();
    let table = [
        (
            "clusterpolicies.kyverno.io",
            resource_names::<bylaw_api::ClusterPolicy>(),
            None,
        ),
        (
            "policies.kyverno.io",
            resource_names::<bylaw_api::Policy>(),
            Some("ns"),
        ),
        (
            "policyexceptions.kyverno.io",
            resource_names::<bylaw_api::PolicyException>(),
            Some("ns"),
        ),
        (
            "validatingpolicies.policies.kyverno.io",
            resource_names::<bylaw_api::ValidatingPolicy>(),
            None,
        ),
        (
            "namespacedvalidatingpolicies.policies.kyverno.io",
            resource_names::<bylaw_api::NamespacedValidatingPolicy>(),
            Some("ns"),
        ),
        (
            "policyreports.wgpolicyk8s.io",
            resource_names::<bylaw_api::PolicyReport>(),
            Some("ns"),
        ),
        (
            "clusterpolicyreports.wgpolicyk8s.io",
            resource_names::<bylaw_api::ClusterPolicyReport>(),
            None,
        ),
    ];
    for (name, (group, version, kind, plural), namespace) in table {
        let crd = crd(crds, name);
        assert_eq!(crd.spec.group, group, "{name}");
        assert_eq!(crd.spec.names.kind, kind, "{name}");
        assert_eq!(crd.spec.names.plural, plural, "{name}");
        assert!(
            crd.spec
                .versions
                .iter()
                .any(|v| v.storage && v.name == version),
            "{name}: {version} is stored"
        );
        assert_eq!(
            crd.spec.scope == "Namespaced",
            namespace.is_some(),
            "{name}"
        );
    }
    assert_eq!(
        <bylaw_api::Policy as kube::Resource>::url_path(&(), Some("team-a")),
        "/apis/kyverno.io/v1/namespaces/team-a/policies"
    );
}

#[test]
fn new_objects_carry_api_version_and_kind() {
    let policy = bylaw_api::ClusterPolicy::new("require-labels", bylaw_api::PolicySpec::default());
    let value = serde_json::to_value(&policy).expect("serialise");
    assert_eq!(value["apiVersion"], "kyverno.io/v1");
    assert_eq!(value["kind"], "ClusterPolicy");
    assert_eq!(value["metadata"]["name"], "require-labels");
    assert!(
        value.get("status").is_none(),
        "absent status is not written"
    );
}
