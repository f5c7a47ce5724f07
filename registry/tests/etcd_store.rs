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
