//! Model files stored by content digest.
//!
//! Layout inside the store: `blobs/sha256/<hex>` for each distinct file and
//! `uploads/<id>` for uploads in progress. An upload streams into the store
//! while its sha256 is computed; when it completes it is renamed to its
//! digest's path, or dropped if that digest is already stored, so identical
//! uploads are stored once. A fetch streams a blob to a local file,
//! recomputing the digest, and refuses the file if it does not match.
//!
//! The store is a local directory (a path or `file://`), or object storage
//! by URL: `s3://bucket[/prefix]` (AWS S3 or any S3-compatible server),
//! `gs://bucket[/prefix]` or `az://container[/prefix]`. Credentials, region
//! and endpoint come from the usual environment variables of each service
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`; `GOOGLE_SERVICE_ACCOUNT`;
//! `AZURE_STORAGE_ACCOUNT_NAME`, ...), as docs/REGISTRY.md lists.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{ArtifactRef, RegistryError, RegistryResult};

/// A content-addressed artifact store.
#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    location: String,
}

/// An artifact now in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// Its digest and size.
    pub artifact: ArtifactRef,
    /// False when an identical file was already stored.
    pub newly_stored: bool,
}

fn backend(message: String) -> RegistryError {
    RegistryError::Backend(message)
}

fn blob_path(sha256: &str) -> ObjectPath {
    ObjectPath::from(format!("blobs/sha256/{sha256}"))
}

/// Checks that `digest` is 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> RegistryResult<()> {
    if digest.len() == 64 && digest.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!("'{digest}' is not a sha256 digest (64 lowercase hex digits)")))
    }
}

fn local_store(dir: &str) -> RegistryResult<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(dir).map_err(|e| backend(format!("creating artifact store {dir}: {e}")))?;
    let local = LocalFileSystem::new_with_prefix(dir).map_err(|e| backend(format!("artifact store {dir}: {e}")))?;
    Ok(Arc::new(local))
}

/// A bucket (or container) from the environment's credentials, with the
/// URL's path as a prefix inside it.
fn object_storage(scheme: &str, rest: &str, location: &str) -> RegistryResult<Arc<dyn ObjectStore>> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(RegistryError::Invalid(format!("artifact store '{location}' names no bucket")));
    }
    let failed = |e: object_store::Error| backend(format!("artifact store {location}: {e}"));
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => Arc::new(AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(failed)?),
        "gs" => Arc::new(GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket).build().map_err(failed)?),
        "az" | "azure" => {
            Arc::new(MicrosoftAzureBuilder::from_env().with_container_name(bucket).build().map_err(failed)?)
        }
        _ => {
            return Err(RegistryError::Invalid(format!(
                "artifact store scheme '{scheme}' is not supported; use a directory, file://, s3://, gs:// or az://"
            )))
        }
    };
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) })
}

impl ArtifactStore {
    /// Opens a store by location: a local directory path, a `file://` URL,
    /// or an object storage URL (`s3://`, `gs://`, `az://`).
    pub fn open(location: &str) -> RegistryResult<ArtifactStore> {
        let store = match location.split_once("://") {
            None => local_store(location)?,
            Some(("file", path)) => local_store(path)?,
            Some((scheme, rest)) => object_storage(scheme, rest, location)?,
        };
        Ok(ArtifactStore { store, location: location.to_string() })
    }

    /// Where the store is.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Starts an upload.
    pub async fn begin_upload(&self) -> RegistryResult<UploadSink> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let id = format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let path = ObjectPath::from(format!("uploads/{id}"));
        let upload = self.store.put_multipart(&path).await.map_err(|e| backend(e.to_string()))?;
        Ok(UploadSink {
            store: self.store.clone(),
            path,
            writer: WriteMultipart::new(upload),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// The stored artifact with this digest, if any.
    pub async fn describe(&self, sha256: &str) -> RegistryResult<Option<ArtifactRef>> {
        check_digest(sha256)?;
        match self.store.head(&blob_path(sha256)).await {
            Ok(meta) => Ok(Some(ArtifactRef { sha256: sha256.to_string(), size: meta.size })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e.to_string())),
        }
    }

    /// Removes a blob (used to drop an upload that failed its checks).
    pub async fn remove(&self, sha256: &str) -> RegistryResult<()> {
        check_digest(sha256)?;
        self.store.delete(&blob_path(sha256)).await.map_err(|e| backend(e.to_string()))
    }

    /// Streams the blob of `artifact` to `dest`, verifying size and digest;
    /// a mismatch leaves nothing at `dest`.
    pub async fn fetch_to(&self, artifact: &ArtifactRef, dest: &Path) -> RegistryResult<()> {
        check_digest(&artifact.sha256)?;
        let result =
            self.store.get(&blob_path(&artifact.sha256)).await.map_err(|e| {
                RegistryError::NotFound(format!("artifact {} is not in the store: {e}", artifact.sha256))
            })?;
        static FETCHES: AtomicU64 = AtomicU64::new(0);
        let partial =
            dest.with_extension(format!("partial-{}-{}", std::process::id(), FETCHES.fetch_add(1, Ordering::Relaxed)));
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| backend(format!("creating {}: {e}", partial.display())))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| backend(format!("reading artifact {}: {e}", artifact.sha256)))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(|e| backend(e.to_string()))?;
        }
        file.sync_all().await.map_err(|e| backend(e.to_string()))?;
        let digest = hex::encode(hasher.finalize());
        if digest != artifact.sha256 || size != artifact.size {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(RegistryError::Invalid(format!(
                "artifact {} failed verification: got sha256 {digest} and {size} bytes",
                artifact.sha256
            )));
        }
        tokio::fs::rename(&partial, dest).await.map_err(|e| backend(format!("placing {}: {e}", dest.display())))
    }
}

/// An upload in progress.
pub struct UploadSink {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    writer: WriteMultipart,
    hasher: Sha256,
    size: u64,
}

impl UploadSink {
    /// Appends a chunk, waiting while too many parts are in flight.
    pub async fn write(&mut self, chunk: &[u8]) -> RegistryResult<()> {
        self.writer.wait_for_capacity(4).await.map_err(|e| backend(e.to_string()))?;
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.writer.write(chunk);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Completes the upload and files it under its digest.
    pub async fn finish(self) -> RegistryResult<StoredArtifact> {
        let UploadSink { store, path, writer, hasher, size } = self;
        writer.finish().await.map_err(|e| backend(e.to_string()))?;
        let sha256 = hex::encode(hasher.finalize());
        let artifact = ArtifactRef { sha256: sha256.clone(), size };
        let target = blob_path(&sha256);
        let newly_stored = file_under_digest(store.as_ref(), &path, &target).await;
        if !matches!(newly_stored, Ok(true)) {
            let _ = store.delete(&path).await;
        }
        let newly_stored = newly_stored?;
        Ok(StoredArtifact { artifact, newly_stored })
    }

    /// Drops the partial upload.
    pub async fn abort(self) {
        let _ = self.writer.abort().await;
        let _ = self.store.delete(&self.path).await;
    }
}

/// Moves a finished upload to its digest's path; false when that digest was
/// already stored. Stores that cannot rename atomically without overwriting
/// (S3 without conditional copy) check first and then rename: a racing
/// upload of the same digest writes the same bytes, so the overwrite is
/// harmless.
async fn file_under_digest(store: &dyn ObjectStore, upload: &ObjectPath, target: &ObjectPath) -> RegistryResult<bool> {
    match store.rename_if_not_exists(upload, target).await {
        Ok(()) => return Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
        Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented) => {}
        Err(e) => return Err(backend(e.to_string())),
    }
    match store.head(target).await {
        Ok(_) => return Ok(false),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(backend(e.to_string())),
    }
    store.rename(upload, target).await.map_err(|e| backend(e.to_string()))?;
    Ok(true)
}
