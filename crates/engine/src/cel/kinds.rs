//! Kinds and resources: CEL policies name resources by their plural (`pods`,
//! `deployments`), objects carry their kind. Built-in kinds come from a table; others are
//! guessed the way Kubernetes' `UnsafeGuessKindToResource` does.

/// `(kind, resource)` of built-in Kubernetes kinds whose plural the guess gets wrong, or that
/// policies commonly name.
const BUILT_IN: &[(&str, &str)] = &[
    ("Endpoints", "endpoints"),
    ("PodSecurityPolicy", "podsecuritypolicies"),
    ("NetworkPolicy", "networkpolicies"),
    ("Ingress", "ingresses"),
    ("IngressClass", "ingressclasses"),
    ("StorageClass", "storageclasses"),
    ("PriorityClass", "priorityclasses"),
    ("RuntimeClass", "runtimeclasses"),
    ("ResourceQuota", "resourcequotas"),
    ("ComponentStatus", "componentstatuses"),
];

/// The plural resource name of a kind: `Pod` → `pods`, `NetworkPolicy` → `networkpolicies`,
/// `Ingress` → `ingresses`.
pub fn resource_of(kind: &str) -> String {
    if let Some((_, resource)) = BUILT_IN.iter().find(|(k, _)| *k == kind) {
        return (*resource).to_owned();
    }
    let lower = kind.to_ascii_lowercase();
    if lower.is_empty() {
        return lower;
    }
    if lower.ends_with('s')
        || lower.ends_with("sh")
        || lower.ends_with("ch")
        || lower.ends_with('x')
    {
        return format!("{lower}es");
    }
    if let Some(stem) = lower.strip_suffix('y') {
        if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) {
            return format!("{stem}ies");
        }
    }
    format!("{lower}s")
}

/// Whether an object of `kind` is named by `resource` (case-insensitive on the kind side, so a
/// `configmaps` lookup finds `ConfigMap` objects).
pub fn names(resource: &str, kind: &str) -> bool {
    resource_of(kind) == resource || kind.eq_ignore_ascii_case(resource)
}

/// The kind a resource name most likely stands for, for providers that look objects up by
/// kind: the built-in table, then a guess (`configmaps` → `Configmap` is not right, so the
/// common built-ins are listed).
pub fn kind_of(resource: &str) -> String {
    const COMMON: &[(&str, &str)] = &[
        ("configmaps", "ConfigMap"),
        ("secrets", "Secret"),
        ("pods", "Pod"),
        ("services", "Service"),
        ("serviceaccounts", "ServiceAccount"),
        ("namespaces", "Namespace"),
        ("nodes", "Node"),
        ("deployments", "Deployment"),
        ("statefulsets", "StatefulSet"),
        ("daemonsets", "DaemonSet"),
        ("replicasets", "ReplicaSet"),
        ("jobs", "Job"),
        ("cronjobs", "CronJob"),
        ("persistentvolumeclaims", "PersistentVolumeClaim"),
        ("persistentvolumes", "PersistentVolume"),
        ("horizontalpodautoscalers", "HorizontalPodAutoscaler"),
        ("poddisruptionbudgets", "PodDisruptionBudget"),
        ("roles", "Role"),
        ("rolebindings", "RoleBinding"),
        ("clusterroles", "ClusterRole"),
        ("clusterrolebindings", "ClusterRoleBinding"),
        ("limitranges", "LimitRange"),
        ("replicationcontrollers", "ReplicationController"),
        ("customresourcedefinitions", "CustomResourceDefinition"),
    ];
    if let Some((_, kind)) = COMMON.iter().find(|(r, _)| *r == resource) {
        return (*kind).to_owned();
    }
    if let Some((kind, _)) = BUILT_IN.iter().find(|(_, r)| *r == resource) {
        return (*kind).to_owned();
    }
    let singular = if let Some(stem) = resource.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = resource
        .strip_suffix("ses")
        .or_else(|| resource.strip_suffix("xes"))
    {
        format!(
            "{stem}{}",
            resource.get(stem.len()..stem.len() + 1).unwrap_or("")
        )
    } else {
        resource.strip_suffix('s').unwrap_or(resource).to_owned()
    };
    let mut chars = singular.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_their_plural_resources() {
        for (kind, resource) in [
            ("Pod", "pods"),
            ("Deployment", "deployments"),
            ("NetworkPolicy", "networkpolicies"),
            ("Ingress", "ingresses"),
            ("Endpoints", "endpoints"),
            ("ConfigMap", "configmaps"),
            ("Gateway", "gateways"),
        ] {
            assert_eq!(resource_of(kind), resource, "{kind}");
        }
        assert_eq!(kind_of("configmaps"), "ConfigMap");
        assert_eq!(
            kind_of("horizontalpodautoscalers"),
            "HorizontalPodAutoscaler"
        );
        assert_eq!(kind_of("applications"), "Application");
        assert_eq!(kind_of("policies"), "Policy");
        assert!(names("configmaps", "ConfigMap"));
    }
}
