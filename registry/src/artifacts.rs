//! Model files stored by content digest.
//!
//! Layout inside the store: `blobs/sha256/<hex>` for each distinct file and
//! `uploads/<id>` for uploads in progress. An upload streams into the store
//! while its sha256 is computed; when it completes, and only if its digest
//! is the one the uploader announced, it is renamed to its digest's path,
//! or dropped if that digest is already stored, so identical uploads are
//! stored once. A stored blob is never deleted here: another upload of the
//! same bytes may have been told it is stored, and records may refer to
//! it, so a refused upload removes only its own object under `uploads/`.
//! A fetch streams a blob to a local file, recomputing the digest, and
//! refuses the file if it does not match.
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
use object_store::{GetResultPayload, ObjectStore, WriteMultipart};
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

    /// Streams the blob of `artifact` to `dest`, verifying size and digest;
    /// a mismatch leaves nothing at `dest`. The copy is not synced to disk:
    /// whoever uses a file fetched before a crash verifies it again.
    pub async fn fetch_to(&self, artifact: &ArtifactRef, dest: &Path) -> RegistryResult<()> {
        check_digest(&artifact.sha256)?;
        let result =
            self.store.get(&blob_path(&artifact.sha256)).await.map_err(|e| {
                RegistryError::NotFound(format!("artifact {} is not in the store: {e}", artifact.sha256))
            })?;
        static FETCHES: AtomicU64 = AtomicU64::new(0);
        let partial =
            dest.with_extension(format!("partial-{}-{}", std::process::id(), FETCHES.fetch_add(1, Ordering::Relaxed)));
        let copied = match result.payload {
            // A local store hands over the file: read it in large blocks
            // (its stream would come in 8 KiB pieces).
            GetResultPayload::File(file, _) => {
                let (target, range) = (partial.clone(), result.range.clone());
                tokio::task::spawn_blocking(move || copy_hashing(file, range, &target))
                    .await
                    .map_err(|e| backend(format!("copying artifact {}: {e}", artifact.sha256)))?
            }
            GetResultPayload::Stream(stream) => stream_hashing(stream, &partial).await,
        };
        let (digest, size) = match copied {
            Ok(copied) => copied,
            Err(error) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(backend(format!("fetching artifact {}: {error}", artifact.sha256)));
            }
        };
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

impl ArtifactStore {
    /// The bytes of a small artifact (a tokenizer, a labels file), verified
    /// against its digest; refused when it is missing or over `most` bytes.
    pub async fn read_small(&self, sha256: &str, most: u64) -> RegistryResult<Vec<u8>> {
        let artifact = self
            .describe(sha256)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("artifact {sha256} is not in the store")))?;
        if artifact.size > most {
            return Err(RegistryError::Invalid(format!("artifact {sha256} is larger than {most} bytes")));
        }
        let result = self.store.get(&blob_path(sha256)).await.map_err(|e| backend(format!("reading {sha256}: {e}")))?;
        let bytes = result.bytes().await.map_err(|e| backend(format!("reading {sha256}: {e}")))?;
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(RegistryError::Invalid(format!("artifact {sha256} failed verification")));
        }
        Ok(bytes.to_vec())
    }
}

/// Copies `range` of `source` to a new file at `target`; returns the
/// copy's sha256 (hex) and size.
fn copy_hashing(
    mut source: std::fs::File,
    range: std::ops::Range<u64>,
    target: &Path,
) -> std::io::Result<(String, u64)> {
    use std::io::{Read, Seek, Write};
    source.seek(std::io::SeekFrom::Start(range.start))?;
    let mut source = source.take(range.end.saturating_sub(range.start));
    let mut file = std::fs::File::create(target)?;
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    let mut buffer = vec![0u8; 4 << 20];
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read])?;
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Writes `stream` to a new file at `target`; returns its sha256 (hex) and
/// size.
async fn stream_hashing(
    mut stream: futures_util::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    target: &Path,
) -> std::io::Result<(String, u64)> {
    let file = tokio::fs::File::create(target).await?;
    // Few large writes, not one per (small) chunk of the stream.
    let mut file = tokio::io::BufWriter::with_capacity(4 << 20, file);
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(std::io::Error::other)?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok((hex::encode(hasher.finalize()), size))
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

    /// Completes the upload and files it under its digest. With
    /// `expected_sha256` (what the uploader announced), an upload with
    /// another digest is refused with [`RegistryError::Invalid`] before it
    /// is filed; as on any failure here, only this upload's temporary object
    /// is removed, never a stored blob.
    pub async fn finish(self, expected_sha256: Option<&str>) -> RegistryResult<StoredArtifact> {
        let UploadSink { store, path, writer, hasher, size } = self;
        if let Err(e) = writer.finish().await {
            let _ = store.delete(&path).await;
            return Err(backend(format!("completing upload {path}: {e}")));
        }
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = expected_sha256.filter(|expected| *expected != sha256) {
            let _ = store.delete(&path).await;
            return Err(RegistryError::Invalid(format!(
                "digest mismatch: the upload's sha256 is {sha256}, the uploader announced {expected}"
            )));
        }
        let artifact = ArtifactRef { sha256: sha256.clone(), size };
        let newly_stored = file_under_digest(store.as_ref(), &path, &blob_path(&sha256)).await;
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

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use futures_util::stream::BoxStream;
    use object_store::{
        GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMultipartOptions, PutOptions, PutPayload,
        PutResult,
    };
    use tokio::sync::{Notify, Semaphore};

    use super::*;

    /// A real directory store, except that deleting anything under `blobs/`
    /// announces itself and then waits for the gate, so a test can finish
    /// another upload in between.
    #[derive(Debug)]
    struct GatedBlobDeletes {
        inner: LocalFileSystem,
        requested: Notify,
        gate: Semaphore,
    }

    impl std::fmt::Display for GatedBlobDeletes {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "GatedBlobDeletes({})", self.inner)
        }
    }

    #[async_trait]
    impl ObjectStore for GatedBlobDeletes {
        async fn put_opts(
            &self,
            to: &ObjectPath,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(to, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            to: &ObjectPath,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(to, opts).await
        }
        async fn get_opts(&self, from: &ObjectPath, options: GetOptions) -> object_store::Result<GetResult> {
            self.inner.get_opts(from, options).await
        }
        async fn delete(&self, location: &ObjectPath) -> object_store::Result<()> {
            if location.as_ref().starts_with("blobs/") {
                self.requested.notify_one();
                let _permit = self.gate.acquire().await.expect("gate open");
            }
            self.inner.delete(location).await
        }
        fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy(&self, from: &ObjectPath, to: &ObjectPath) -> object_store::Result<()> {
            self.inner.copy(from, to).await
        }
        async fn copy_if_not_exists(&self, from: &ObjectPath, to: &ObjectPath) -> object_store::Result<()> {
            self.inner.copy_if_not_exists(from, to).await
        }
    }

    async fn sink_with(store: &ArtifactStore, bytes: &[u8]) -> UploadSink {
        let mut sink = store.begin_upload().await.unwrap();
        sink.write(bytes).await.unwrap();
        sink
    }

    /// Two concurrent uploads of the same bytes, one announcing a wrong
    /// digest: the refused one finishes first and, should it delete a stored
    /// blob, is held just before that while the honest one finishes and is
    /// told its bytes are stored. The blob must still be there afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_upload_never_deletes_a_stored_blob() {
        let root = std::env::temp_dir().join(format!("maas-artifacts-gated-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let gated = Arc::new(GatedBlobDeletes {
            inner: LocalFileSystem::new_with_prefix(&root).unwrap(),
            requested: Notify::new(),
            gate: Semaphore::new(0),
        });
        let store = ArtifactStore { store: gated.clone(), location: root.display().to_string() };
        let bytes: Vec<u8> = (0..5_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let wrong = "0".repeat(64);

        let liar = sink_with(&store, &bytes).await;
        let honest = sink_with(&store, &bytes).await;
        let mut refused = tokio::spawn(async move { liar.finish(Some(&wrong)).await });
        let early = tokio::select! {
            done = &mut refused => Some(done),
            _ = gated.requested.notified() => None,
        };
        let stored = honest.finish(Some(&sha256)).await.unwrap();
        gated.gate.add_permits(1);
        let refused = match early {
            Some(done) => done,
            None => refused.await,
        }
        .unwrap();
        let err = refused.unwrap_err();
        assert!(matches!(&err, RegistryError::Invalid(m) if m.contains("digest mismatch")), "{err}");
        assert_eq!(stored.artifact, ArtifactRef { sha256: sha256.clone(), size: 5_000 });

        let dest = root.join("fetched.pt");
        store.fetch_to(&stored.artifact, &dest).await.expect("the stored blob is still there");
        assert_eq!(std::fs::read(&dest).unwrap(), bytes);
        let prefix = ObjectPath::from("uploads");
        let left: Vec<_> = futures_util::TryStreamExt::try_collect(gated.list(Some(&prefix))).await.unwrap();
        assert!(left.is_empty(), "uploads left behind: {left:?}");
        let _ = std::fs::remove_dir_all(root);
    }
}
