//! The registry suite against a real etcd.

use std::sync::Arc;

use maas_registry::testsuite::EtcdProcess;
use maas_registry::{EtcdStore, RecordStore};

async fn make() -> (Arc<dyn RecordStore>, EtcdProcess) {
    let etcd = EtcdProcess::start().await.unwrap();
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint), "/maas-test/").await.unwrap();
    (Arc::new(store), etcd)
}

maas_registry::record_store_suite!(make());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_two_clients_conflict() {
    let (first, etcd) = make().await;
    let second = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint), "/maas-test/").await.unwrap();
    let revision = first.put(&maas_registry::ModelRecord::new("shared"), None).await.unwrap();
    let mut record = second.get("shared").await.unwrap().unwrap().record;
    record.loaded = false;
    second.put(&record, Some(revision)).await.unwrap();
    record.loaded = true;
    assert!(matches!(first.put(&record, Some(revision)).await, Err(maas_registry::RegistryError::Conflict { .. })));
    assert!(!first.get("shared").await.unwrap().unwrap().record.loaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_larger_than_one_answer_is_listed_whole() {
    let (store, _etcd) = make().await;
    // Records of about 20 KiB: 600 of them make 12 MB, past the 4 MiB one
    // answer may carry, and a first page of them does not fit one either.
    let mut record = maas_registry::ModelRecord::new("template");
    for index in 0..250 {
        let alias = format!("alias-{index:03}-{}", "x".repeat(60));
        record.aliases.insert(alias, maas_registry::AliasRecord { version: 1, history: Vec::new() });
    }
    let names: Vec<String> = (0..600).map(|i| format!("m{i:04}")).collect();
    futures_util::future::join_all(names.iter().map(|name| {
        let (store, mut record) = (store.clone(), record.clone());
        record.name = name.clone();
        async move { store.put(&record, None).await.unwrap() }
    }))
    .await;
    let listed = store.list().await.unwrap();
    let listed: Vec<String> = listed.into_iter().map(|stored| stored.record.name).collect();
    assert_eq!(listed, names);
}
