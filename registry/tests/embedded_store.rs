//! The registry suite against the embedded file store.

use std::path::PathBuf;
use std::sync::Arc;

use maas_registry::{EmbeddedStore, RecordStore};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn make() -> (Arc<dyn RecordStore>, Dir) {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "maas-embedded-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    (Arc::new(EmbeddedStore::open(&dir).unwrap()), Dir(dir))
}

maas_registry::record_store_suite!(make());

#[tokio::test]
async fn records_survive_reopening() {
    let (store, dir) = make().await;
    let record = maas_registry::ModelRecord::new("kept");
    let revision = store.put(&record, None).await.unwrap();
    drop(store);
    let reopened = EmbeddedStore::open(&dir.0).unwrap();
    let stored = reopened.get("kept").await.unwrap().unwrap();
    assert_eq!((stored.record, stored.revision), (record, revision));
}

#[tokio::test]
async fn a_directory_is_open_in_one_store_at_a_time() {
    let (store, dir) = make().await;
    let record = maas_registry::ModelRecord::new("guarded");
    let revision = store.put(&record, None).await.unwrap();

    // Separate opens of the lock file conflict even within one process, as
    // two coordinators on one data directory would.
    let err = EmbeddedStore::open(&dir.0).err().expect("a second open of a locked directory fails");
    let message = err.to_string();
    assert!(message.contains(&dir.0.display().to_string()), "{message}");
    assert!(message.contains("another process"), "{message}");
    assert_eq!(store.get("guarded").await.unwrap().unwrap().revision, revision);

    drop(store);
    let reopened = EmbeddedStore::open(&dir.0).expect("the lock is released with the store");
    assert_eq!(reopened.get("guarded").await.unwrap().unwrap().revision, revision);
}
