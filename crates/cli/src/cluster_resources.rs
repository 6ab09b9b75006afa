//! `bylaw apply --cluster`: the live resources of the kinds the policies select, read with
//! list requests only (paginated, `managedFields` dropped), so that the same table as for
//! files shows what a policy would say about what runs now.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bylaw_controller::reports::{kinds_selected, scannable_kinds};
use kube::api::{DynamicObject, ListParams};
use kube::discovery::Discovery;
use kube::Api;
use serde_json::Value;

use crate::load::{Document, PolicyBundle};

/// Objects read per list request.
const PAGE: u32 = 500;

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

async fn client(kubeconfig: Option<PathBuf>) -> Result<kube::Client> {
    let config = match &kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("using --kubeconfig {}", path.display()))?
        }
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
    let catalog = scannable_kinds(&discovery);
    let mut kinds = std::collections::BTreeSet::new();
    for policy in &bundle.policies {
        kinds.extend(kinds_selected(policy, &catalog, |_| true));
    }
    let source = PathBuf::from("<cluster>");
    let mut documents = Vec::new();
    for kind in kinds {
        let resource = kube::discovery::ApiResource {
            group: kind.group.clone(),
            version: kind.version.clone(),
            api_version: if kind.group.is_empty() {
                kind.version.clone()
            } else {
                format!("{}/{}", kind.group, kind.version)
            },
            kind: kind.kind.clone(),
            plural: kind.plural.clone(),
        };
        let api: Api<DynamicObject> = match (namespace, kind.namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = api.list(&params).await.with_context(|| {
                format!(
                    "--cluster: cannot list {} (check your permissions: list {})",
                    kind.kind, kind.plural
                )
            })?;
            for object in page.items {
                let mut value = serde_json::to_value(object)?;
                if let Value::Object(map) = &mut value {
                    map.insert(
                        "apiVersion".into(),
                        Value::String(resource.api_version.clone()),
                    );
                    map.insert("kind".into(), Value::String(kind.kind.clone()));
                    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                        meta.remove("managedFields");
                    }
                }
                documents.push(Document {
                    value,
                    source: source.clone(),
                });
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(documents)
}
