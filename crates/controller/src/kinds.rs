//! Which API resource serves a kind: the discovery catalog that turns a policy's `Namespace`,
//! `v1/Secret` or `networking.k8s.io/v1/NetworkPolicy` into a path the client can call.
//!
//! Discovery is read once and again when a kind is not found (at most every
//! [`REFRESH_AFTER`]), so CRDs installed after bylaw started become usable without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bylaw_engine::matching::KindSelector;
use kube::api::{Api, DynamicObject};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::Client;
use tokio::sync::Mutex;

/// A missing kind makes discovery run again only when the catalog is older than this.
pub const REFRESH_AFTER: Duration = Duration::from_secs(10);

/// One resource the API server serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedKind {
    pub resource: ApiResource,
    pub namespaced: bool,
    /// The group's preferred version serves it (a bare kind resolves to this one).
    pub preferred: bool,
    /// It can be listed and watched (what the background scan needs).
    pub listable: bool,
}

impl ServedKind {
    /// The client for this resource in `namespace` (every namespace when empty; cluster-scoped
    /// resources ignore it).
    pub fn api(&self, client: &Client, namespace: &str) -> Api<DynamicObject> {
        if self.namespaced && !namespace.is_empty() {
            Api::namespaced_with(client.clone(), namespace, &self.resource)
        } else {
            Api::all_with(client.clone(), &self.resource)
        }
    }

    /// `networkpolicies.networking.k8s.io` (`namespaces` for the core group), as RBAC names it.
    pub fn group_resource(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.plural.clone()
        } else {
            format!("{}.{}", self.resource.plural, self.resource.group)
        }
    }
}

/// Every resource of every version discovery found (subresources are not kinds here).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindCatalog {
    kinds: Vec<ServedKind>,
}

impl KindCatalog {
    /// The catalog of a discovery run.
    pub fn from_discovery(discovery: &Discovery) -> Self {
        let mut kinds = Vec::new();
        for group in discovery.groups() {
            let preferred = group.preferred_version_or_latest().to_owned();
            for version in group.versions() {
                for (resource, capabilities) in group.versioned_resources(version) {
                    kinds.push(ServedKind {
                        resource,
                        namespaced: capabilities.scope == Scope::Namespaced,
                        preferred: version == preferred,
                        listable: capabilities.supports_operation(verbs::LIST)
                            && capabilities.supports_operation(verbs::WATCH),
                    });
                }
            }
        }
        KindCatalog { kinds }
    }

    /// A catalog of the given kinds (tests, and callers that know their resources).
    pub fn new(kinds: Vec<ServedKind>) -> Self {
        KindCatalog { kinds }
    }

    /// Every resource of every version.
    pub fn kinds(&self) -> &[ServedKind] {
        &self.kinds
    }

    /// The resource of `kind` in `api_version` (`v1`, `apps/v1`); an empty `api_version` means
    /// the preferred version of whichever group serves the kind, the core group first.
    pub fn find(&self, api_version: &str, kind: &str) -> Option<&ServedKind> {
        if api_version.is_empty() {
            let mut candidates: Vec<&ServedKind> = self
                .kinds
                .iter()
                .filter(|k| k.resource.kind == kind && k.preferred)
                .collect();
            candidates.sort_by_key(|k| (!k.resource.group.is_empty(), k.resource.group.clone()));
            return candidates.first().copied();
        }
        self.kinds
            .iter()
            .find(|k| k.resource.api_version == api_version && k.resource.kind == kind)
    }

    /// The resources a policy's kind selector selects, one version per group (the preferred
    /// one, unless the selector names a version); subresource selectors select nothing here.
    pub fn select(&self, selector: &KindSelector) -> Vec<&ServedKind> {
        if !selector.subresource.is_empty() {
            return Vec::new();
        }
        let names_version = selector.version != "*";
        self.kinds
            .iter()
            .filter(|k| names_version || k.preferred)
            .filter(|k| {
                selector.matches(&k.resource.group, &k.resource.version, &k.resource.kind, "")
            })
            .collect()
    }
}

/// The catalog, read from the API server when needed.
pub struct KindResolver {
    client: Client,
    state: Mutex<Option<(Instant, Arc<KindCatalog>)>>,
}

impl std::fmt::Debug for KindResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindResolver").finish_non_exhaustive()
    }
}

impl KindResolver {
    /// A resolver that runs discovery on first use.
    pub fn new(client: Client) -> Self {
        KindResolver {
            client,
            state: Mutex::new(None),
        }
    }

    /// The catalog, from discovery on first use.
    pub async fn catalog(&self) -> Result<Arc<KindCatalog>, kube::Error> {
        let mut state = self.state.lock().await;
        if let Some((_, catalog)) = state.as_ref() {
            return Ok(Arc::clone(catalog));
        }
        let catalog = Arc::new(self.discover().await?);
        *state = Some((Instant::now(), Arc::clone(&catalog)));
        Ok(catalog)
    }

    /// Runs discovery again unless the catalog is fresh.
    pub async fn refresh(&self) -> Result<Arc<KindCatalog>, kube::Error> {
        let mut state = self.state.lock().await;
        if let Some((at, catalog)) = state.as_ref() {
            if at.elapsed() < REFRESH_AFTER {
                return Ok(Arc::clone(catalog));
            }
        }
        let catalog = Arc::new(self.discover().await?);
        *state = Some((Instant::now(), Arc::clone(&catalog)));
        Ok(catalog)
    }

    /// The resource serving `kind` (see [`KindCatalog::find`]), refreshing the catalog once
    /// when it does not know the kind; `None` when the API server does not serve it.
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<ServedKind>, kube::Error> {
        let catalog = self.catalog().await?;
        if let Some(found) = catalog.find(api_version, kind) {
            return Ok(Some(found.clone()));
        }
        Ok(self.refresh().await?.find(api_version, kind).cloned())
    }

    async fn discover(&self) -> Result<KindCatalog, kube::Error> {
        let discovery = Discovery::new(self.client.clone()).run().await?;
        Ok(KindCatalog::from_discovery(&discovery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(group: &str, version: &str, kind: &str, plural: &str, preferred: bool) -> ServedKind {
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        ServedKind {
            resource: ApiResource {
                group: group.into(),
                version: version.into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced: true,
            preferred,
            listable: true,
        }
    }

    fn catalog() -> KindCatalog {
        KindCatalog::new(vec![
            served("", "v1", "Secret", "secrets", true),
            served("example.com", "v1", "Secret", "secrets", true),
            served("autoscaling", "v2", "HorizontalPodAutoscaler", "hpas", true),
            served(
                "autoscaling",
                "v1",
                "HorizontalPodAutoscaler",
                "hpas",
                false,
            ),
        ])
    }

    #[test]
    fn a_bare_kind_is_the_core_groups_preferred_version() {
        let catalog = catalog();
        let found = catalog.find("", "Secret").unwrap();
        assert_eq!(found.resource.api_version, "v1");
        assert_eq!(found.group_resource(), "secrets");
        let found = catalog.find("", "HorizontalPodAutoscaler").unwrap();
        assert_eq!(found.resource.api_version, "autoscaling/v2");
        assert_eq!(found.group_resource(), "hpas.autoscaling");
        assert_eq!(
            catalog
                .find("autoscaling/v1", "HorizontalPodAutoscaler")
                .unwrap()
                .resource
                .version,
            "v1"
        );
        assert!(catalog.find("v2", "Secret").is_none());
    }

    #[test]
    fn selectors_pick_one_version_per_group_unless_they_name_one() {
        let catalog = catalog();
        let names = |text: &str| -> Vec<String> {
            catalog
                .select(&KindSelector::parse(text))
                .iter()
                .map(|k| k.resource.api_version.clone())
                .collect()
        };
        assert_eq!(names("Secret"), ["v1", "example.com/v1"]);
        assert_eq!(names("HorizontalPodAutoscaler"), ["autoscaling/v2"]);
        assert_eq!(
            names("autoscaling/v1/HorizontalPodAutoscaler"),
            ["autoscaling/v1"]
        );
        assert!(names("Pod.exec").is_empty());
    }
}
