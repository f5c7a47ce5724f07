//! Content-addressed artifacts: stored once, verified on fetch, on a local
//! directory and on S3-compatible object storage.

use maas_registry::testsuite::S3Server;
use maas_registry::{ArtifactRef, ArtifactStore};
use object_store::ObjectStore;
use sha2::Digest;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("maas-artifacts-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn upload(store: &ArtifactStore, bytes: &[u8]) -> maas_registry::StoredArtifact {
    let mut sink = store.begin_upload().await.unwrap();
    for chunk in bytes.chunks(1000) {
        sink.write(chunk).await.unwrap();
    }
    sink.finish(None).await.unwrap()
}

/// The checks every store passes; `raw` sees the same bytes as `store`
/// without its checks, to count blobs and tamper with one.
async fn stores_once_and_verifies(store: &ArtifactStore, raw: &dyn ObjectStore, cache_name: &str) {
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let first = upload(store, &bytes).await;
    assert!(first.newly_stored);
    assert_eq!(first.artifact.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(first.artifact.size, 10_000);
    let second = upload(store, &bytes).await;
    assert!(!second.newly_stored);
    assert_eq!(second.artifact, first.artifact);
    assert_eq!(store.describe(&first.artifact.sha256).await.unwrap(), Some(first.artifact.clone()));

    let listed = |prefix: &'static str| async move {
        use futures_util::TryStreamExt;
        let prefix = object_store::path::Path::from(prefix);
        raw.list(Some(&prefix)).try_collect::<Vec<_>>().await.unwrap().len()
    };
    assert_eq!(listed("blobs/sha256").await, 1, "one blob for two identical uploads");
    assert_eq!(listed("uploads").await, 0, "no upload left behind");

    let cache = temp_dir(cache_name);
    let dest = cache.join("model.pt");
    store.fetch_to(&first.artifact, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);

    // A blob whose bytes no longer match its digest is refused.
    let blob = object_store::path::Path::from(format!("blobs/sha256/{}", first.artifact.sha256));
    raw.put(&blob, bytes::Bytes::from_static(b"tampered").into()).await.unwrap();
    let refused = cache.join("refused.pt");
    let err = store.fetch_to(&first.artifact, &refused).await.unwrap_err();
    assert!(err.to_string().contains("failed verification"), "{err}");
    assert!(!refused.exists());

    let missing = ArtifactRef { sha256: "ab".repeat(32), size: 1 };
    assert_eq!(store.describe(&missing.sha256).await.unwrap(), None);
    assert!(store.fetch_to(&missing, &cache.join("missing.pt")).await.is_err());
    let _ = std::fs::remove_dir_all(cache);
}

#[tokio::test]
async fn local_directory_stores_once_and_verifies() {
    let root = temp_dir("store");
    let store = ArtifactStore::open(root.to_str().unwrap()).unwrap();
    let raw = object_store::local::LocalFileSystem::new_with_prefix(&root).unwrap();
    stores_once_and_verifies(&store, &raw, "local-cache").await;
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn s3_bucket_stores_once_and_verifies() {
    let server = S3Server::start("maas-artifacts").await.unwrap();
    for (key, value) in server.env() {
        // SAFETY: this test binary sets these variables before any store
        // reads them and no other test here reads the environment.
        unsafe { std::env::set_var(key, value) };
    }
    let store = ArtifactStore::open("s3://maas-artifacts/team-a/models").unwrap();
    let bucket = object_store::aws::AmazonS3Builder::from_env().with_bucket_name("maas-artifacts").build().unwrap();
    let raw = object_store::prefix::PrefixStore::new(bucket, "team-a/models");
    stores_once_and_verifies(&store, &raw, "s3-cache").await;
}

#[test]
fn unknown_schemes_and_missing_buckets_are_refused() {
    let err = ArtifactStore::open("ftp://host/models").err().unwrap();
    assert!(err.to_string().contains("not supported"), "{err}");
    let err = ArtifactStore::open("s3:///models").err().unwrap();
    assert!(err.to_string().contains("names no bucket"), "{err}");
}
