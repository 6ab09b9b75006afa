//! kube-runtime's own building blocks — Controller, the finalizer helper, the event Recorder —
//! run unchanged against the fake, the way bylaw's controllers will use them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bylaw_test_support::apiserver::FakeApiServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::{config_map, eventually, WAIT};

const FINALIZER: &str = "bylaw.io/mirror";

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

struct Context {
    api: Api<ConfigMap>,
    cleaned: Mutex<Vec<String>>,
}

/// Mirrors every ConfigMap labelled `mirror=yes` into an owned `<name>-mirror` ConfigMap.
async fn reconcile(
    source: Arc<ConfigMap>,
    ctx: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<ReconcileError>> {
    let api = ctx.api.clone();
    finalizer(&api, FINALIZER, source, |event| async {
        match event {
            Finalizer::Apply(source) => {
                let owner = source
                    .controller_owner_ref(&())
                    .expect("stored objects have a uid");
                let mirror = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(format!("{}-mirror", source.name_any())),
                        owner_references: Some(vec![owner]),
                        ..ObjectMeta::default()
                    },
                    data: source.data.clone(),
                    ..ConfigMap::default()
                };
                ctx.api
                    .patch(
                        &mirror.name_any(),
                        &PatchParams::apply("mirror").force(),
                        &Patch::Apply(&mirror),
                    )
                    .await?;
                Ok(Action::await_change())
            }
            Finalizer::Cleanup(source) => {
                ctx.cleaned.lock().unwrap().push(source.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
}

fn error_policy(
    _: Arc<ConfigMap>,
    _: &kube::runtime::finalizer::Error<ReconcileError>,
    _: Arc<Context>,
) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn a_kube_runtime_controller_with_a_finalizer_runs_against_the_fake() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let ctx = Arc::new(Context {
        api: api.clone(),
        cleaned: Mutex::new(Vec::new()),
    });
    let controller = Controller::new(api.clone(), watcher::Config::default().labels("mirror=yes"))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    tokio::spawn(controller);

    api.create(
        &PostParams::default(),
        &config_map("default", "source", json!({ "mirror": "yes" })),
    )
    .await
    .unwrap();
    let mirror = eventually("the mirror", WAIT, || {
        let api = api.clone();
        async move { api.get_opt("source-mirror").await.unwrap() }
    })
    .await;
    assert_eq!(mirror.data.unwrap()["key"], "value");
    assert_eq!(
        api.get("source").await.unwrap().finalizers(),
        &[FINALIZER.to_string()]
    );

    api.delete("source", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the source to be finalized and gone", WAIT, || {
        let api = api.clone();
        async move { api.get_opt("source").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert_eq!(*ctx.cleaned.lock().unwrap(), vec!["source".to_string()]);
    assert!(
        api.get_opt("source-mirror").await.unwrap().is_none(),
        "the owned mirror is garbage-collected"
    );
}

#[tokio::test]
async fn the_event_recorder_creates_then_patches_a_series() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm = api
        .create(
            &PostParams::default(),
            &config_map("default", "cm", json!({})),
        )
        .await
        .unwrap();
    let recorder = Recorder::new(
        server.client(),
        Reporter {
            controller: "bylaw".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "PolicyViolation".into(),
        note: Some("denied by require-labels".into()),
        action: "Admission".into(),
        secondary: None,
    };
    recorder.publish(&event, &cm.object_ref(&())).await.unwrap();
    recorder.publish(&event, &cm.object_ref(&())).await.unwrap();
    let events: Api<KubeEvent> = Api::default_namespaced(server.client());
    let stored = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        stored[0].regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("cm")
    );
}
