//! The slice of the Kubernetes OpenAPI schema that strategic merge needs: which list fields of
//! built-in types merge by key (and by which keys) and which are replaced whole.
//!
//! Kyverno merges through kustomize's kyaml, which finds a resource's schema from its
//! `apiVersion` and `kind`. A list merges element by element only when its schema carries
//! `x-kubernetes-patch-strategy: merge`; the keys are `x-kubernetes-list-map-keys` when present,
//! else `x-kubernetes-patch-merge-key`. Kinds without a schema (custom resources) get no merge
//! keys at all, so every list in them is replaced by the patch's list.

/// A known object type whose fields lead to merge lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// A built-in kind without interesting fields besides `metadata`.
    Generic,
    Pod,
    /// Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController, PodTemplate's
    /// holder: an object whose `spec.template` is a pod template.
    Workload,
    Job,
    CronJob,
    PodTemplate,
    Service,
    ServiceAccount,
    ObjectMeta,
    PodTemplateSpec,
    PodSpec,
    Container,
    TemplateHolderSpec,
    CronJobSpec,
    JobTemplateSpec,
    ServiceSpec,
    /// A known field whose value holds no merge lists (scalars, plain maps, atomic structs).
    Leaf,
}

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListSchema {
    /// `x-kubernetes-patch-strategy` contains `merge`.
    pub merge: bool,
    /// Merge keys; empty for a merged list of primitives (`finalizers`).
    pub keys: &'static [&'static str],
    /// The schema of the elements.
    pub element: Type,
}

/// The schema of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    Object(Type),
    List(ListSchema),
}

const fn merged(keys: &'static [&'static str], element: Type) -> Schema {
    Schema::List(ListSchema {
        merge: true,
        keys,
        element,
    })
}

const fn atomic() -> Schema {
    Schema::List(ListSchema {
        merge: false,
        keys: &[],
        element: Type::Leaf,
    })
}

impl Schema {
    /// The schema of a field of this node, `None` when the schema does not know the field.
    pub(crate) fn field(self, key: &str) -> Option<Schema> {
        let Schema::Object(ty) = self else {
            return None;
        };
        let leaf = Some(Schema::Object(Type::Leaf));
        let meta = Some(Schema::Object(Type::ObjectMeta));
        match (ty, key) {
            (Type::Leaf, _) => None,
            (_, "metadata") if ty.is_root() => meta,
            (_, "apiVersion" | "kind") if ty.is_root() => leaf,
            (Type::Pod, "spec") => Some(Schema::Object(Type::PodSpec)),
            (Type::Pod, "status") => leaf,
            (Type::Workload | Type::Job, "spec") => Some(Schema::Object(Type::TemplateHolderSpec)),
            (Type::Workload | Type::Job, "status") => leaf,
            (Type::CronJob, "spec") => Some(Schema::Object(Type::CronJobSpec)),
            (Type::CronJob, "status") => leaf,
            (Type::PodTemplate, "template") => Some(Schema::Object(Type::PodTemplateSpec)),
            (Type::Service, "spec") => Some(Schema::Object(Type::ServiceSpec)),
            (Type::Service, "status") => leaf,
            (Type::ServiceAccount, "secrets") => Some(merged(&["name"], Type::Leaf)),
            (Type::ServiceAccount, "imagePullSecrets") => Some(atomic()),
            (Type::ServiceAccount, "automountServiceAccountToken") => leaf,
            (Type::ObjectMeta, "finalizers") => Some(merged(&[], Type::Leaf)),
            (Type::ObjectMeta, "ownerReferences") => Some(merged(&["uid"], Type::Leaf)),
            (Type::ObjectMeta, "managedFields") => Some(atomic()),
            (Type::ObjectMeta, _) => leaf,
            (Type::TemplateHolderSpec, "template") => Some(Schema::Object(Type::PodTemplateSpec)),
            (Type::TemplateHolderSpec, "volumeClaimTemplates") => Some(atomic()),
            (Type::TemplateHolderSpec, _) => leaf,
            (Type::CronJobSpec, "jobTemplate") => Some(Schema::Object(Type::JobTemplateSpec)),
            (Type::CronJobSpec, _) => leaf,
            (Type::JobTemplateSpec, "metadata") => meta,
            (Type::JobTemplateSpec, "spec") => Some(Schema::Object(Type::TemplateHolderSpec)),
            (Type::PodTemplateSpec, "metadata") => meta,
            (Type::PodTemplateSpec, "spec") => Some(Schema::Object(Type::PodSpec)),
            (Type::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
                Some(merged(&["name"], Type::Container))
            }
            (Type::PodSpec, "volumes" | "imagePullSecrets") => Some(merged(&["name"], Type::Leaf)),
            (Type::PodSpec, "hostAliases") => Some(merged(&["ip"], Type::Leaf)),
            (Type::PodSpec, "topologySpreadConstraints") => {
                Some(merged(&["topologyKey", "whenUnsatisfiable"], Type::Leaf))
            }
            (Type::PodSpec, "tolerations" | "readinessGates") => Some(atomic()),
            (Type::PodSpec, _) => leaf,
            (Type::Container, "ports") => Some(merged(&["containerPort", "protocol"], Type::Leaf)),
            (Type::Container, "env") => Some(merged(&["name"], Type::Leaf)),
            (Type::Container, "volumeMounts") => Some(merged(&["mountPath"], Type::Leaf)),
            (Type::Container, "volumeDevices") => Some(merged(&["devicePath"], Type::Leaf)),
            (Type::Container, "args" | "command" | "envFrom") => Some(atomic()),
            (Type::Container, _) => leaf,
            (Type::ServiceSpec, "ports") => Some(merged(&["port", "protocol"], Type::Leaf)),
            (Type::ServiceSpec, _) => leaf,
            _ => None,
        }
    }

    /// The schema of a list's elements.
    pub(crate) fn element(self) -> Option<Schema> {
        match self {
            Schema::List(list) => Some(Schema::Object(list.element)),
            Schema::Object(_) => None,
        }
    }
}

impl Type {
    fn is_root(self) -> bool {
        matches!(
            self,
            Type::Generic
                | Type::Pod
                | Type::Workload
                | Type::Job
                | Type::CronJob
                | Type::PodTemplate
                | Type::Service
                | Type::ServiceAccount
        )
    }
}

/// The schema of a top-level object from its `apiVersion` and `kind`; `None` for kinds the
/// built-in schema does not describe (custom resources).
pub(crate) fn for_kind(api_version: &str, kind: &str) -> Option<Schema> {
    let ty = match (api_version, kind) {
        ("v1", "Pod") => Type::Pod,
        ("v1", "ReplicationController")
        | ("apps/v1", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => Type::Workload,
        ("batch/v1", "Job") => Type::Job,
        ("batch/v1" | "batch/v1beta1", "CronJob") => Type::CronJob,
        ("v1", "PodTemplate") => Type::PodTemplate,
        ("v1", "Service") => Type::Service,
        ("v1", "ServiceAccount") => Type::ServiceAccount,
        _ if is_builtin(api_version, kind) => Type::Generic,
        _ => return None,
    };
    Some(Schema::Object(ty))
}

fn is_builtin(api_version: &str, kind: &str) -> bool {
    let kinds: &[&str] = match api_version {
        "v1" => &[
            "Binding",
            "ConfigMap",
            "Endpoints",
            "Event",
            "LimitRange",
            "Namespace",
            "Node",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "ResourceQuota",
            "Secret",
        ],
        "apps/v1" => &["ControllerRevision"],
        "networking.k8s.io/v1" => &["Ingress", "IngressClass", "NetworkPolicy"],
        "networking.k8s.io/v1beta1" | "extensions/v1beta1" => &["Ingress"],
        "rbac.authorization.k8s.io/v1" => {
            &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
        }
        "policy/v1" => &["PodDisruptionBudget"],
        "policy/v1beta1" => &["PodDisruptionBudget", "PodSecurityPolicy"],
        "autoscaling/v1" | "autoscaling/v2beta1" | "autoscaling/v2beta2" | "autoscaling/v2" => {
            &["HorizontalPodAutoscaler"]
        }
        "storage.k8s.io/v1" => &["CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"],
        "scheduling.k8s.io/v1" => &["PriorityClass"],
        "coordination.k8s.io/v1" => &["Lease"],
        "admissionregistration.k8s.io/v1" => &[
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ],
        "apiextensions.k8s.io/v1" => &["CustomResourceDefinition"],
        "certificates.k8s.io/v1" => &["CertificateSigningRequest"],
        "discovery.k8s.io/v1" | "discovery.k8s.io/v1beta1" => &["EndpointSlice"],
        "node.k8s.io/v1" => &["RuntimeClass"],
        "events.k8s.io/v1" => &["Event"],
        "apiregistration.k8s.io/v1" => &["APIService"],
        _ => &[],
    };
    kinds.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_template_lists_merge_by_their_keys() {
        let deploy = for_kind("apps/v1", "Deployment").unwrap();
        let containers = deploy
            .field("spec")
            .and_then(|s| s.field("template"))
            .and_then(|s| s.field("spec"))
            .and_then(|s| s.field("containers"))
            .unwrap();
        let Schema::List(list) = containers else {
            panic!("containers is a list")
        };
        assert!(list.merge);
        assert_eq!(list.keys, ["name"]);
        let env = containers.element().and_then(|c| c.field("env")).unwrap();
        assert_eq!(env, merged(&["name"], Type::Leaf));
        let tolerations = for_kind("v1", "Pod")
            .and_then(|s| s.field("spec"))
            .and_then(|s| s.field("tolerations"))
            .unwrap();
        assert_eq!(tolerations, atomic());
    }

    #[test]
    fn custom_resources_have_no_schema() {
        assert_eq!(for_kind("argoproj.io/v1alpha1", "Workflow"), None);
        assert_eq!(
            for_kind("v1", "ConfigMap"),
            Some(Schema::Object(Type::Generic))
        );
        assert_eq!(for_kind("v2", "Pod"), None);
    }
}
