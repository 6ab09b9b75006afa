//! The Roles and ClusterRoles of a requesting user, resolved from RoleBindings and
//! ClusterRoleBindings the way Kyverno does, so `match`/`exclude` blocks with `roles` and
//! `clusterRoles` (the common "exclude cluster-admin") work.
//!
//! * A RoleBinding to a Role gives the role `namespace:name`.
//! * A RoleBinding to a ClusterRole gives the cluster role `name`, but only for requests in the
//!   binding's namespace.
//! * A ClusterRoleBinding to a ClusterRole gives the cluster role `name`.
//!
//! A binding applies when a subject names the user (`User`), one of its groups (`Group`), or the
//! service account the user is (`ServiceAccount`, whose namespace defaults to the binding's).
//!
//! The index is built once when bindings change and answers a request with a few map lookups.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, Subject};

/// What one binding grants.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant {
    /// Namespace of a RoleBinding; `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    /// `Role` or `ClusterRole`.
    cluster_role: bool,
    /// Name of the role.
    name: String,
}

/// Roles and cluster roles of one user, sorted and without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRoles {
    /// `namespace:name` of each Role.
    pub roles: Vec<String>,
    /// Name of each ClusterRole.
    pub cluster_roles: Vec<String>,
}

/// Bindings indexed by the users and groups they name.
#[derive(Clone, Debug, Default)]
pub struct RoleIndex {
    by_user: HashMap<String, Vec<Grant>>,
    by_group: HashMap<String, Vec<Grant>>,
}

/// The user name of a service account.
fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

impl RoleIndex {
    /// Indexes every binding.
    pub fn new<'a>(
        role_bindings: impl IntoIterator<Item = &'a RoleBinding>,
        cluster_role_bindings: impl IntoIterator<Item = &'a ClusterRoleBinding>,
    ) -> Self {
        let mut index = RoleIndex::default();
        for binding in role_bindings {
            let namespace = binding.metadata.namespace.clone().unwrap_or_default();
            let grant = match binding.role_ref.kind.as_str() {
                "Role" => Grant {
                    namespace: Some(namespace.clone()),
                    cluster_role: false,
                    name: binding.role_ref.name.clone(),
                },
                "ClusterRole" => Grant {
                    namespace: Some(namespace.clone()),
                    cluster_role: true,
                    name: binding.role_ref.name.clone(),
                },
                _ => continue,
            };
            index.add(
                binding.subjects.as_deref().unwrap_or_default(),
                &namespace,
                &grant,
            );
        }
        for binding in cluster_role_bindings {
            if binding.role_ref.kind != "ClusterRole" {
                continue;
            }
            let grant = Grant {
                namespace: None,
                cluster_role: true,
                name: binding.role_ref.name.clone(),
            };
            index.add(binding.subjects.as_deref().unwrap_or_default(), "", &grant);
        }
        index
    }

    fn add(&mut self, subjects: &[Subject], binding_namespace: &str, grant: &Grant) {
        for subject in subjects {
            match subject.kind.as_str() {
                "User" => self
                    .by_user
                    .entry(subject.name.clone())
                    .or_default()
                    .push(grant.clone()),
                "Group" => self
                    .by_group
                    .entry(subject.name.clone())
                    .or_default()
                    .push(grant.clone()),
                "ServiceAccount" => {
                    let namespace = subject
                        .namespace
                        .as_deref()
                        .filter(|ns| !ns.is_empty())
                        .unwrap_or(binding_namespace);
                    // A ClusterRoleBinding subject without a namespace names no account.
                    if !namespace.is_empty() {
                        self.by_user
                            .entry(service_account_user(namespace, &subject.name))
                            .or_default()
                            .push(grant.clone());
                    }
                }
                _ => {}
            }
        }
    }

    /// Number of users and groups that hold any role.
    pub fn len(&self) -> usize {
        self.by_user.len() + self.by_group.len()
    }

    /// True when no binding names anyone.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The roles of `username` in `groups`, for a request in `namespace` (`None` when the
    /// resource is cluster-scoped).
    pub fn roles_of(
        &self,
        username: &str,
        groups: &[String],
        namespace: Option<&str>,
    ) -> UserRoles {
        let mut roles = BTreeSet::new();
        let mut cluster_roles = BTreeSet::new();
        let grants = self
            .by_user
            .get(username)
            .into_iter()
            .chain(groups.iter().filter_map(|group| self.by_group.get(group)))
            .flatten();
        for grant in grants {
            match (&grant.namespace, grant.cluster_role) {
                (Some(binding_namespace), false) => {
                    roles.insert(format!("{binding_namespace}:{}", grant.name));
                }
                (Some(binding_namespace), true) => {
                    if namespace == Some(binding_namespace.as_str()) {
                        cluster_roles.insert(grant.name.clone());
                    }
                }
                (None, _) => {
                    cluster_roles.insert(grant.name.clone());
                }
            }
        }
        UserRoles {
            roles: roles.into_iter().collect(),
            cluster_roles: cluster_roles.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role_binding(
        namespace: &str,
        kind: &str,
        role: &str,
        subjects: serde_json::Value,
    ) -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{role}-binding"), "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": subjects
        }))
        .unwrap()
    }

    fn cluster_role_binding(role: &str, subjects: serde_json::Value) -> ClusterRoleBinding {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{role}-binding")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects
        }))
        .unwrap()
    }

    #[test]
    fn users_groups_and_service_accounts_get_their_roles_like_kyverno() {
        let index = RoleIndex::new(
            &[
                role_binding(
                    "team-a",
                    "Role",
                    "deployer",
                    json!([{"kind": "User", "name": "alice"}]),
                ),
                // A ClusterRole bound in a namespace counts only for requests in that namespace.
                role_binding(
                    "team-a",
                    "ClusterRole",
                    "edit",
                    json!([{"kind": "Group", "name": "devs"}]),
                ),
                // The service account's namespace defaults to the binding's.
                role_binding(
                    "ci",
                    "Role",
                    "pusher",
                    json!([{"kind": "ServiceAccount", "name": "builder"}]),
                ),
            ],
            &[
                cluster_role_binding(
                    "cluster-admin",
                    json!([{"kind": "Group", "name": "system:masters"}]),
                ),
                cluster_role_binding(
                    "view",
                    json!([
                        {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"},
                        {"kind": "ServiceAccount", "name": "orphan"}
                    ]),
                ),
            ],
        );
        let alice = index.roles_of("alice", &["devs".into()], Some("team-a"));
        assert_eq!(alice.roles, ["team-a:deployer"]);
        assert_eq!(alice.cluster_roles, ["edit"]);
        let elsewhere = index.roles_of("alice", &["devs".into()], Some("team-b"));
        assert_eq!(elsewhere.roles, ["team-a:deployer"]);
        assert!(elsewhere.cluster_roles.is_empty());

        let admin = index.roles_of("kubernetes-admin", &["system:masters".into()], None);
        assert_eq!(admin.cluster_roles, ["cluster-admin"]);

        let builder = index.roles_of("system:serviceaccount:ci:builder", &[], Some("ci"));
        assert_eq!(builder.roles, ["ci:pusher"]);
        assert_eq!(builder.cluster_roles, ["view"]);

        // A ClusterRoleBinding's namespace-less service account subject names nobody.
        assert_eq!(
            index.roles_of("system:serviceaccount::orphan", &[], None),
            UserRoles::default()
        );
        assert_eq!(
            index.roles_of("mallory", &["devs-not".into()], Some("team-a")),
            UserRoles::default()
        );
    }

    #[test]
    fn roles_are_sorted_and_unique() {
        let index = RoleIndex::new(
            &[
                role_binding("b", "Role", "r", json!([{"kind": "User", "name": "u"}])),
                role_binding(
                    "a",
                    "Role",
                    "r",
                    json!([{"kind": "User", "name": "u"}, {"kind": "Group", "name": "g"}]),
                ),
            ],
            &[
                cluster_role_binding("z", json!([{"kind": "User", "name": "u"}])),
                cluster_role_binding(
                    "y",
                    json!([{"kind": "Group", "name": "g"}, {"kind": "User", "name": "u"}]),
                ),
            ],
        );
        let roles = index.roles_of("u", &["g".into()], None);
        assert_eq!(roles.roles, ["a:r", "b:r"]);
        assert_eq!(roles.cluster_roles, ["y", "z"]);
    }
}
