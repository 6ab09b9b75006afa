//! `bylaw apply --cluster`: the live resources of the kinds the policies select, read with
//! list requests only (paginated, `managedFields` dropped), so that the same table as for
//! files shows what a policy would say about what runs now.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bylaw_controller::kinds::KindCatalog;
use bylaw_controller::reports::{kinds_selected, list_all, with_type};
use kube::api::{DynamicObject, ListParams};
use kube::discovery::Discovery;
use kube::Api;

use crate::load::{Document, PolicyBundle};

/// Every object of the kinds some rule of `bundle` selects, in `namespace` when given.
pub fn read(
    bundle: &PolicyBundle,
    kubeconfig: Option<PathBuf>,
    namespace: Option<&str>,
) -> Result<Vec<Document>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the API client runtime")?;
    runtime.block_on(read_async(bundle, kubeconfig, namespace))
}

/// The client configuration of a `--kubeconfig` file, with the flag named in errors.
pub async fn config_from_file(path: &std::path::Path) -> Result<kube::Config> {
    let file = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("using --kubeconfig {}", path.display()))
}

async fn client(kubeconfig: Option<PathBuf>) -> Result<kube::Client> {
    let config = match &kubeconfig {
        Some(path) => config_from_file(path).await?,
        None => kube::Config::infer()
            .await
            .context("--cluster: no kubeconfig found (pass --kubeconfig or set KUBECONFIG)")?,
    };
    kube::Client::try_from(config).context("cannot build the API client")
}

async fn read_async(
    bundle: &PolicyBundle,
    kubeconfig: Option<PathBuf>,
    namespace: Option<&str>,
) -> Result<Vec<Document>> {
    let client = client(kubeconfig).await?;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .context("--cluster: API discovery failed (is the cluster reachable?)")?;
    let catalog = KindCatalog::from_discovery(&discovery);
    let mut kinds = std::collections::BTreeSet::new();
    for policy in &bundle.policies {
        kinds.extend(kinds_selected(policy, &catalog, |_| true));
    }
    let source = PathBuf::from("<cluster>");
    let mut documents = Vec::new();
    for kind in kinds {
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = match (namespace, kind.namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        let objects = list_all(&api, ListParams::default())
            .await
            .with_context(|| {
                format!(
                    "--cluster: cannot list {} (check your permissions: list {})",
                    kind.kind, kind.plural
                )
            })?;
        documents.extend(objects.into_iter().map(|object| Document {
            value: with_type(object, &resource.api_version, &kind.kind),
            source: source.clone(),
        }));
    }
    Ok(documents)
}
