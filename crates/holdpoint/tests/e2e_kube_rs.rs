//! kube-rs (the Rust client) through the gateway, unchanged: list, create, patch, watch, delete.

mod common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_crud_and_watch() {
    let t = common::start().await;
    let kubeconfig = kube::config::Kubeconfig::read_from(&t.env.agent_kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let ns = if common::on_emulator(&t) {
        "demo"
    } else {
        "default"
    };
    let cms: Api<ConfigMap> = Api::namespaced(client, ns);

    let watch = cms
        .watch(
            &WatchParams::default().fields("metadata.name=kube-rs-cm"),
            "0",
        )
        .await
        .unwrap();
    let mut watch = watch.boxed();

    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "kube-rs-cm" },
        "data": { "from": "kube-rs" }
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let listed = cms.list(&ListParams::default()).await.unwrap();
    assert!(
        listed
            .items
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("kube-rs-cm"))
    );

    let patched = cms
        .patch(
            "kube-rs-cm",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"patched": "yes"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["patched"], "yes");

    let first = tokio::time::timeout(std::time::Duration::from_secs(10), watch.try_next())
        .await
        .expect("a watch event in time")
        .unwrap()
        .expect("stream open");
    match first {
        WatchEvent::Added(cm) | WatchEvent::Modified(cm) => {
            assert_eq!(cm.metadata.name.as_deref(), Some("kube-rs-cm"))
        }
        other => panic!("unexpected first event {other:?}"),
    }
    cms.delete("kube-rs-cm", &DeleteParams::default())
        .await
        .unwrap();
    assert!(cms.get_opt("kube-rs-cm").await.unwrap().is_none());
}
