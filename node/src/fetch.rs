//! Fetching model artifacts from the artifact store into a local cache.
//!
//! A version's TorchScript file is fetched once into
//! `<data-dir>/artifacts/<sha256>.pt`; the store streams it while its
//! digest is recomputed, and a file whose digest does not match is refused
//! and never loaded. A cached file is hashed again before it is used unless
//! this process verified it and its size, modification time and inode are
//! unchanged since (a gigabyte takes seconds to hash).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use maas_protocol::NodeError;
use maas_registry::{ArtifactRef, ArtifactStore};
use parking_lot::Mutex;

/// The node's view of the artifact store.
pub struct Fetcher {
    store: Option<ArtifactStore>,
    cache: PathBuf,
    /// One lock per digest: concurrent loads of the same artifact fetch it once.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Cached files verified by this process, as they were then.
    verified: Mutex<HashMap<PathBuf, FileStamp>>,
}

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &std::path::Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        Some(FileStamp { len: metadata.len(), modified: metadata.modified().ok(), inode: metadata.ino() })
    }
}

impl Fetcher {
    /// A fetcher caching into `data_dir/artifacts`.
    pub fn new(store: Option<ArtifactStore>, data_dir: PathBuf) -> anyhow::Result<Fetcher> {
        let cache = data_dir.join("artifacts");
        std::fs::create_dir_all(&cache)?;
        Ok(Fetcher { store, cache, in_flight: Mutex::new(HashMap::new()), verified: Mutex::new(HashMap::new()) })
    }

    /// The digests of the artifacts in the local cache.
    pub fn cached(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.cache) else { return Vec::new() };
        let mut digests: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".pt").map(str::to_string))
            .filter(|digest| maas_registry::check_digest(digest).is_ok())
            .collect();
        digests.sort();
        digests
    }

    /// The local path of a verified copy of the artifact: the cached one if
    /// its content still has the artifact's digest, else a fresh fetch.
    pub async fn fetch(&self, model: &str, version: u64, artifact: &ArtifactRef) -> Result<PathBuf, NodeError> {
        let failed = |message: String| NodeError::LoadFailed { model: model.to_string(), version, message };
        maas_registry::check_digest(&artifact.sha256).map_err(|e| failed(e.to_string()))?;
        let path = self.cache.join(format!("{}.pt", artifact.sha256));
        let lock = self.in_flight.lock().entry(artifact.sha256.clone()).or_default().clone();
        let _fetching = lock.lock().await;
        if path.exists() {
            let stamp = FileStamp::of(&path);
            if stamp.is_some() && self.verified.lock().get(&path) == stamp.as_ref() {
                return Ok(path);
            }
            // A cached copy is used only if it still is what its name says:
            // a file changed on disk is fetched again.
            match file_digest(&path).await {
                Ok(digest) if digest == artifact.sha256 => {
                    self.remember(&path, stamp);
                    return Ok(path);
                }
                Ok(digest) => {
                    tracing::warn!(model, version, path = %path.display(), found = %digest, "a cached artifact does not match its digest; fetching it again");
                    let _ = tokio::fs::remove_file(&path).await;
                }
                Err(error) => return Err(failed(format!("reading the cached artifact {}: {error}", path.display()))),
            }
        }
        let store =
            self.store.as_ref().ok_or_else(|| failed("this node has no artifact store (--artifact-store)".into()))?;
        store.fetch_to(artifact, &path).await.map_err(|e| failed(e.to_string()))?;
        tracing::info!(model, version, sha256 = %artifact.sha256, "artifact fetched and verified");
        self.remember(&path, FileStamp::of(&path));
        Ok(path)
    }

    fn remember(&self, path: &std::path::Path, stamp: Option<FileStamp>) {
        if let Some(stamp) = stamp {
            self.verified.lock().insert(path.to_path_buf(), stamp);
        }
    }
}

/// The sha256 of a file, hex, read in a blocking task.
async fn file_digest(path: &std::path::Path) -> std::io::Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}
