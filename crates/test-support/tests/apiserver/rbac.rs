use bylaw_test_support::apiserver::FakeApiServer;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{api_code, api_reason, config_map};

async fn can(
    server: &FakeApiServer,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(server.client());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap()
        .allowed
}

#[tokio::test]
async fn deny_answers_403_like_missing_rbac_until_allowed_again() {
    let server = FakeApiServer::start().await;
    server.insert(serde_json::to_value(config_map("team-a", "cm", json!({}))).unwrap());
    server.deny("list", "configmaps", Some("team-a"));
    server.deny("patch", "deployments.apps/status", None);

    let team_a: Api<ConfigMap> = Api::namespaced(server.client(), "team-a");
    let err = team_a.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (403, "Forbidden")
    );
    let kube::Error::Api(status) = &err else {
        unreachable!()
    };
    assert!(
        status
            .message
            .contains("cannot list resource \"configmaps\""),
        "{}",
        status.message
    );
    assert!(team_a.get("cm").await.is_ok(), "other verbs are allowed");
    let default: Api<ConfigMap> = Api::default_namespaced(server.client());
    assert!(
        default.list(&ListParams::default()).await.is_ok(),
        "other namespaces are allowed"
    );

    assert!(!can(&server, "list", "", "configmaps", Some("team-a")).await);
    assert!(can(&server, "list", "", "configmaps", Some("default")).await);
    assert!(!can(&server, "patch", "apps", "deployments/status", Some("x")).await);
    assert!(can(&server, "patch", "apps", "deployments", Some("x")).await);

    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::default_namespaced(server.client());
    let err = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": {} })),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&err),
        403,
        "denied before the object is even looked up"
    );

    server.allow_all();
    assert!(team_a.list(&ListParams::default()).await.is_ok());
    assert!(can(&server, "list", "", "configmaps", Some("team-a")).await);
}
