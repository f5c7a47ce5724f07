//! Content-addressed artifacts: stored once, verified on fetch.

use maas_registry::{ArtifactRef, ArtifactStore};
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
    sink.finish().await.unwrap()
}

#[tokio::test]
async fn identical_uploads_are_stored_once_and_fetches_verify() {
    let root = temp_dir("store");
    let store = ArtifactStore::open(root.to_str().unwrap()).unwrap();
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let first = upload(&store, &bytes).await;
    assert!(first.newly_stored);
    assert_eq!(first.artifact.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(first.artifact.size, 10_000);
    let second = upload(&store, &bytes).await;
    assert!(!second.newly_stored);
    assert_eq!(second.artifact, first.artifact);
    let blobs = std::fs::read_dir(root.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 1);
    assert_eq!(std::fs::read_dir(root.join("uploads")).map(|d| d.count()).unwrap_or(0), 0, "no upload left behind");

    let cache = temp_dir("cache");
    let dest = cache.join("model.pt");
    store.fetch_to(&first.artifact, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);

    // A blob whose bytes no longer match its digest is refused.
    std::fs::write(root.join("blobs/sha256").join(&first.artifact.sha256), b"tampered").unwrap();
    let refused = cache.join("refused.pt");
    let err = store.fetch_to(&first.artifact, &refused).await.unwrap_err();
    assert!(err.to_string().contains("failed verification"), "{err}");
    assert!(!refused.exists());

    let missing = ArtifactRef { sha256: "ab".repeat(32), size: 1 };
    assert!(store.fetch_to(&missing, &cache.join("missing.pt")).await.is_err());
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_dir_all(cache);
}
