//! The test suite every [`RecordStore`] must pass.
//!
//! Each function takes a fresh store; [`crate::record_store_suite`]
//! generates one `#[tokio::test]` per function for a store constructor, so
//! etcd and the embedded file run exactly the same checks.

use std::sync::Arc;
use std::time::Duration;

use maas_protocol::ModelConfig;

mod etcd_process;

pub use etcd_process::{EtcdProcess, EtcdTlsFiles, SECURE_PREFIX, SECURE_USER};

use crate::{ArtifactRef, Lineage, ModelRecord, RecordStore, Registry, RegistryError, SplitEntry};

/// A small valid configuration for `name`.
pub fn config(name: &str) -> ModelConfig {
    serde_json::from_value(serde_json::json!({
        "name": name, "max_batch_size": 8,
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
    }))
    .expect("valid test config")
}

fn artifact(n: u8) -> ArtifactRef {
    ArtifactRef { sha256: format!("{n:02x}").repeat(32), size: u64::from(n) * 100 }
}

fn lineage() -> Lineage {
    Lineage { uploaded_by: "suite".into(), uploaded_at: 1, source: None, parent: None, owner: None }
}

/// Generates the suite's tests for `$make`, an async expression yielding
/// `(Arc<dyn RecordStore>, guard)`; the guard lives as long as the test.
#[macro_export]
macro_rules! record_store_suite {
    ($make:expr) => {
        $crate::record_store_suite!(@tests $make;
            create_and_read, compare_and_swap, delete_compares, two_writers_race,
            concurrent_publishes_lose_nothing, aliases_and_rollback, split_rules,
            deleting_a_used_version_is_refused, changes_are_announced);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $make.await;
                $crate::testsuite::$name(store).await;
            }
        )*
    };
}

/// A new record can be created once and read back.
pub async fn create_and_read(store: Arc<dyn RecordStore>) {
    let record = ModelRecord::new("alpha");
    let revision = store.put(&record, None).await.unwrap();
    let stored = store.get("alpha").await.unwrap().expect("stored");
    assert_eq!(stored.record, record);
    assert_eq!(stored.revision, revision);
    assert!(store.get("missing").await.unwrap().is_none());
    assert_eq!(store.put(&record, None).await, Err(RegistryError::Conflict { model: "alpha".into() }));
    let names: Vec<String> = store.list().await.unwrap().into_iter().map(|s| s.record.name).collect();
    assert_eq!(names, vec!["alpha".to_string()]);
}

/// A write against a stale revision fails and changes nothing.
pub async fn compare_and_swap(store: Arc<dyn RecordStore>) {
    let mut record = ModelRecord::new("beta");
    let first = store.put(&record, None).await.unwrap();
    record.loaded = false;
    let second = store.put(&record, Some(first)).await.unwrap();
    assert!(second > first);
    record.next_version = 99;
    assert!(matches!(store.put(&record, Some(first)).await, Err(RegistryError::Conflict { .. })));
    let stored = store.get("beta").await.unwrap().unwrap();
    assert_eq!(stored.revision, second);
    assert_eq!(stored.record.next_version, 1);
}

/// Deletion compares the revision too.
pub async fn delete_compares(store: Arc<dyn RecordStore>) {
    let record = ModelRecord::new("gamma");
    let first = store.put(&record, None).await.unwrap();
    let second = store.put(&record, Some(first)).await.unwrap();
    assert!(matches!(store.delete("gamma", first).await, Err(RegistryError::Conflict { .. })));
    assert!(store.get("gamma").await.unwrap().is_some());
    store.delete("gamma", second).await.unwrap();
    assert!(store.get("gamma").await.unwrap().is_none());
}

/// Two writers holding the same revision: exactly one wins, and the record
/// is the winner's.
pub async fn two_writers_race(store: Arc<dyn RecordStore>) {
    let revision = store.put(&ModelRecord::new("race"), None).await.unwrap();
    for round in 0..10u64 {
        let current = store.get("race").await.unwrap().unwrap();
        let writers: Vec<_> = (0..2u64)
            .map(|writer| {
                let store = store.clone();
                let mut record = current.record.clone();
                record.next_version = 100 * round + writer;
                tokio::spawn(async move { (writer, store.put(&record, Some(current.revision)).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for handle in writers {
            let (writer, result) = handle.await.unwrap();
            match result {
                Ok(_) => winners.push(writer),
                Err(RegistryError::Conflict { model }) => assert_eq!(model, "race"),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = store.get("race").await.unwrap().unwrap();
        assert_eq!(stored.record.next_version, 100 * round + winners[0]);
        assert!(stored.revision > revision);
    }
}

/// Concurrent publishers that retry on conflict never lose a version.
pub async fn concurrent_publishes_lose_nothing(store: Arc<dyn RecordStore>) {
    let registry = Registry::new(store.clone());
    registry.publish_version(config("delta"), artifact(1), lineage()).await.unwrap();
    let publishers: Vec<_> = (0..8u8)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                loop {
                    match registry.publish_version(config("delta"), artifact(i + 2), lineage()).await {
                        Ok(version) => return version,
                        Err(RegistryError::Conflict { .. }) => tokio::task::yield_now().await,
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();
    let mut versions = Vec::new();
    for handle in publishers {
        versions.push(handle.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<u64>>());
    let record = registry.get("delta").await.unwrap().record;
    assert_eq!(record.versions.keys().copied().collect::<Vec<_>>(), (1..=9).collect::<Vec<u64>>());
    let digests: std::collections::BTreeSet<_> = record.versions.values().map(|v| v.artifact.sha256.clone()).collect();
    assert_eq!(digests.len(), 9, "every publisher's artifact is recorded");
}

/// Aliases move atomically and roll back through their history.
pub async fn aliases_and_rollback(store: Arc<dyn RecordStore>) {
    let registry = Registry::new(store);
    for n in 1..=3 {
        assert_eq!(registry.publish_version(config("eps"), artifact(n), lineage()).await.unwrap(), u64::from(n));
    }
    let record = registry.get("eps").await.unwrap().record;
    assert_eq!(record.versions[&3].lineage.parent, Some(2));
    registry.set_alias("eps", "production", 1).await.unwrap();
    registry.set_alias("eps", "production", 2).await.unwrap();
    registry.set_alias("eps", "production", 3).await.unwrap();
    assert_eq!(registry.rollback("eps", "production").await.unwrap(), (3, 2));
    assert_eq!(registry.rollback("eps", "production").await.unwrap(), (2, 1));
    let err = registry.rollback("eps", "production").await.unwrap_err();
    assert!(err.to_string().contains("no previous target"), "{err}");
    assert_eq!(registry.get("eps").await.unwrap().record.aliases["production"].version, 1);

    let before = registry.get("eps").await.unwrap();
    assert!(matches!(registry.set_alias("eps", "production", 7).await, Err(RegistryError::NotFound(_))));
    assert!(matches!(registry.set_alias("eps", "9lives", 1).await, Err(RegistryError::Invalid(_))));
    assert!(matches!(registry.rollback("eps", "canary").await, Err(RegistryError::NotFound(_))));
    assert!(matches!(registry.delete_alias("eps", "canary").await, Err(RegistryError::NotFound(_))));
    assert_eq!(registry.get("eps").await.unwrap(), before, "failed operations change nothing");
    registry.delete_alias("eps", "production").await.unwrap();
    assert!(registry.get("eps").await.unwrap().record.aliases.is_empty());
}

/// Splits name existing versions with positive weights.
pub async fn split_rules(store: Arc<dyn RecordStore>) {
    let registry = Registry::new(store);
    registry.publish_version(config("zeta"), artifact(1), lineage()).await.unwrap();
    registry.publish_version(config("zeta"), artifact(2), lineage()).await.unwrap();
    let before = registry.get("zeta").await.unwrap();
    let entry = |version, weight| SplitEntry { version, weight };
    assert!(matches!(
        registry.set_split("zeta", vec![entry(1, 90), entry(5, 10)]).await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(registry.set_split("zeta", vec![entry(1, 0)]).await, Err(RegistryError::Invalid(_))));
    assert!(matches!(registry.set_split("zeta", vec![entry(1, 1), entry(1, 1)]).await, Err(RegistryError::Invalid(_))));
    assert_eq!(registry.get("zeta").await.unwrap(), before);
    registry.set_split("zeta", vec![entry(1, 90), entry(2, 10)]).await.unwrap();
    assert_eq!(registry.get("zeta").await.unwrap().record.split, vec![entry(1, 90), entry(2, 10)]);
    registry.set_split("zeta", vec![]).await.unwrap();
    assert!(registry.get("zeta").await.unwrap().record.split.is_empty());
}

/// A version an alias or split uses cannot be deleted; the error says which.
pub async fn deleting_a_used_version_is_refused(store: Arc<dyn RecordStore>) {
    let registry = Registry::new(store);
    registry.publish_version(config("eta"), artifact(1), lineage()).await.unwrap();
    registry.publish_version(config("eta"), artifact(2), lineage()).await.unwrap();
    registry.set_alias("eta", "production", 1).await.unwrap();
    registry
        .set_split("eta", vec![SplitEntry { version: 1, weight: 1 }, SplitEntry { version: 2, weight: 1 }])
        .await
        .unwrap();
    let before = registry.get("eta").await.unwrap();
    let err = registry.delete_version("eta", 1).await.unwrap_err();
    assert!(err.to_string().contains("alias 'production' and the traffic split"), "{err}");
    assert_eq!(registry.get("eta").await.unwrap(), before);
    registry.set_split("eta", vec![]).await.unwrap();
    registry.delete_version("eta", 2).await.unwrap();
    let record = registry.get("eta").await.unwrap().record;
    assert_eq!(record.versions.keys().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        registry.publish_version(config("eta"), artifact(3), lineage()).await.unwrap(),
        3,
        "numbers are never reused"
    );
}

/// Every write moves the change counter.
pub async fn changes_are_announced(store: Arc<dyn RecordStore>) {
    let mut changes = store.changes();
    // The etcd store announces its watch starting; let that pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    changes.borrow_and_update();
    store.put(&ModelRecord::new("theta"), None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("a change is announced within 5 s")
        .unwrap();
}

/// An S3-compatible server on a loopback port (moto's server, from the
/// project venv or `MAAS_S3_SERVER_BIN`) with one empty bucket, for tests;
/// killed when dropped.
pub struct S3Server {
    child: std::process::Child,
    /// Its endpoint URL.
    pub endpoint: String,
    /// The bucket created in it.
    pub bucket: String,
}

impl S3Server {
    /// Starts the server and creates `bucket`.
    pub async fn start(bucket: &str) -> anyhow::Result<S3Server> {
        use anyhow::Context;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let binary = std::env::var("MAAS_S3_SERVER_BIN").unwrap_or_else(|_| {
            let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
            if venv.exists() {
                venv.display().to_string()
            } else {
                "moto_server".into()
            }
        });
        let child = std::process::Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary}; scripts/test.sh installs it (moto[server])"))?;
        let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}"), bucket: bucket.to_string() };
        let started = std::time::Instant::now();
        loop {
            match server.http_put(&format!("/{bucket}")).await {
                Ok(200) => return Ok(server),
                Ok(status) => anyhow::bail!("creating bucket {bucket} answered HTTP {status}"),
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => return Err(e.context("the S3 server did not start in 30 s")),
            }
        }
    }

    /// The environment that points object_store's S3 client at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "maas-test"),
            ("AWS_SECRET_ACCESS_KEY", "maas-test-secret"),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The size of the object at `key` in the bucket, if it is there.
    pub async fn object_size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        use object_store::ObjectStore;
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(&self.bucket);
        for (key, value) in self.env() {
            builder = builder.with_config(key.to_ascii_lowercase().parse()?, value);
        }
        match builder.build()?.head(&object_store::path::Path::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// An unauthenticated `PUT path` with an empty body; the HTTP status.
    async fn http_put(&self, path: &str) -> anyhow::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        let request = format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        let text = String::from_utf8_lossy(&answer);
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        status.ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {text}"))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
