//! The registry in etcd.
//!
//! Each model is one key, `<prefix>models/<name>`, holding its
//! [`ModelRecord`] as JSON. Writes are transactions that compare the key's
//! mod revision (or, for a new model, its create revision with 0), so a
//! writer holding a stale record fails with a conflict instead of
//! overwriting. A transaction retried after a transport error whose first
//! attempt had in fact committed is recognised as done, not reported as a
//! conflict (see `compare_and_swap`). A watch on the prefix feeds
//! [`RecordStore::changes`].

use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse, TxnResponse};
use tokio::sync::watch;

use crate::{ModelRecord, RecordStore, RegistryError, RegistryResult, StoredRecord};

/// Records read per request when listing the registry, at first: halved
/// while a page is larger than one answer may be.
const LIST_PAGE: i64 = 1024;

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: to the end of the key space.
    vec![0]
}

/// An etcd-backed store.
pub struct EtcdStore {
    client: Client,
    prefix: String,
    changes: watch::Receiver<u64>,
}

impl EtcdStore {
    /// Connects to `endpoints` without TLS or a user and starts watching
    /// `prefix` (e.g. `/maas/v1/`).
    pub async fn connect(endpoints: &[String], prefix: &str) -> RegistryResult<EtcdStore> {
        let client =
            crate::EtcdAccess::plain(endpoints, prefix).connect().await.map_err(|e| backend(format!("{e:#}")))?;
        Ok(EtcdStore::open(client, prefix))
    }

    /// Uses a connected client and starts watching `prefix`.
    pub fn open(client: Client, prefix: &str) -> EtcdStore {
        let prefix = prefix.to_string();
        let (sender, changes) = watch::channel(0u64);
        crate::watch_prefixes(client.clone(), vec![format!("{prefix}models/")], sender, "models");
        EtcdStore { client, prefix, changes }
    }

    /// The etcd client, for membership, placement and election.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs [`compare_and_swap`] on `model`'s key through this store's client.
    async fn swap(&self, model: &str, guard: Compare, write: Write<'_>) -> RegistryResult<i64> {
        compare_and_swap(model, &self.key(model), guard, write, |txn| {
            let mut client = self.client.clone();
            async move { client.txn(txn).await }
        })
        .await
    }

    fn key(&self, model: &str) -> String {
        format!("{}models/{model}", self.prefix)
    }
}

fn backend(message: String) -> RegistryError {
    RegistryError::Backend(message)
}

/// What a guarded transaction does to its key when its guard holds.
#[derive(Clone, Copy)]
enum Write<'a> {
    /// Stores these bytes.
    Put(&'a [u8]),
    /// Removes the key.
    Delete,
}

impl Write<'_> {
    fn operation(self, key: &str) -> TxnOp {
        match self {
            Write::Put(value) => TxnOp::put(key, value, None),
            Write::Delete => TxnOp::delete(key, None),
        }
    }

    /// Whether the key, as `current` shows it at `revision`, already holds
    /// this write's result: our bytes for a put, nothing for a delete.
    /// Returns the revision to report: the key's mod revision for a put,
    /// the store's revision for a delete.
    fn landed(self, current: Option<&KeyValue>, revision: i64) -> Option<i64> {
        match (self, current) {
            (Write::Put(value), Some(kv)) if kv.value() == value => Some(kv.mod_revision()),
            (Write::Delete, None) => Some(revision),
            _ => None,
        }
    }
}

/// Applies `write` to `key` if `guard` holds, sending the transaction with
/// `send` (the client's `txn`; tests put a lossy transport there). Returns
/// the revision of the write, or [`RegistryError::Conflict`].
///
/// The transaction is retried on transport errors ([`retrying`]), and an
/// error can hide an attempt that committed: its response was lost. The
/// retry then fails its guard, since the key has moved on by our own
/// write. So the transaction's failure branch reads the key, atomically
/// with the failed comparison, and a retry (never a first attempt) that
/// finds the key exactly as our write leaves it — our bytes for a put, no
/// key for a delete — counts as the write having landed and succeeds with
/// the key's revision. A first attempt that fails its guard is always a
/// conflict, even when the stored bytes happen to equal ours.
///
/// The check looks at the result, not at who wrote it: if another writer
/// stored the very same bytes (or deleted the key) between our lost
/// attempt and the retry, the retry reports success; the key then holds
/// what the caller asked for either way. If another writer changed the key
/// after our lost attempt, the retry reports a conflict although our write
/// did land for a moment; the caller reloads and sees the other write, as
/// after any conflict.
async fn compare_and_swap<F, Fut>(
    model: &str,
    key: &str,
    guard: Compare,
    write: Write<'_>,
    mut send: F,
) -> RegistryResult<i64>
where
    F: FnMut(Txn) -> Fut,
    Fut: std::future::Future<Output = Result<TxnResponse, etcd_client::Error>>,
{
    let txn = Txn::new().when([guard]).and_then([write.operation(key)]).or_else([TxnOp::get(key, None)]);
    let mut attempts = 0u32;
    let response = retrying(|| {
        attempts += 1;
        send(txn.clone())
    })
    .await
    .map_err(|e| backend(format!("writing model '{model}' to etcd: {e}")))?;
    let revision = response.header().map(|h| h.revision()).unwrap_or_default();
    if response.succeeded() {
        return Ok(revision);
    }
    if attempts > 1 {
        let read = response.op_responses();
        let current = read.iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first()),
            _ => None,
        });
        if let Some(landed) = current.and_then(|current| write.landed(current, revision)) {
            tracing::debug!(model, attempts, "etcd write had landed before its response was lost");
            return Ok(landed);
        }
    }
    Err(RegistryError::Conflict { model: model.to_string() })
}

/// Runs an etcd call, retrying transport failures a few times: with several
/// endpoints, a call that reached a dead member goes to another on retry. A
/// compare-and-swap retried after an unseen success fails its comparison,
/// so nothing is applied twice; [`compare_and_swap`] then tells that apart
/// from a conflict.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(error) if attempt < 5 && is_transient(&error) => {
                attempt += 1;
                tracing::debug!(%error, attempt, "etcd call failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            result => return result,
        }
    }
}

fn is_transient(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown)
        }
        _ => false,
    }
}

fn decode(bytes: &[u8], revision: i64) -> RegistryResult<StoredRecord> {
    let record = serde_json::from_slice(bytes).map_err(|e| backend(format!("unreadable model record: {e}")))?;
    Ok(StoredRecord { record, revision })
}

#[async_trait]
impl RecordStore for EtcdStore {
    async fn get(&self, model: &str) -> RegistryResult<Option<StoredRecord>> {
        let key = self.key(model);
        let response = retrying(|| {
            let mut client = self.client.clone();
            let key = key.clone();
            async move { client.get(key, None).await }
        })
        .await
        .map_err(|e| backend(e.to_string()))?;
        response.kvs().first().map(|kv| decode(kv.value(), kv.mod_revision())).transpose()
    }

    /// Every record, read in pages at one revision: one answer with
    /// thousands of records would pass the client's 4 MiB message limit.
    async fn list(&self) -> RegistryResult<Vec<StoredRecord>> {
        let prefix = format!("{}models/", self.prefix);
        let end = prefix_end(prefix.as_bytes());
        let (mut records, mut from, mut revision, mut page) = (Vec::new(), prefix.into_bytes(), 0, LIST_PAGE);
        loop {
            let answer = retrying(|| {
                let mut client = self.client.clone();
                let (from, end) = (from.clone(), end.clone());
                let mut options = GetOptions::new().with_range(end).with_limit(page);
                if revision > 0 {
                    options = options.with_revision(revision);
                }
                async move { client.get(from, Some(options)).await }
            })
            .await;
            let response = match answer {
                Err(error) if page > 1 && error.to_string().contains("message length too large") => {
                    page /= 2;
                    continue;
                }
                answer => answer.map_err(|e| backend(e.to_string()))?,
            };
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for kv in response.kvs() {
                records.push(decode(kv.value(), kv.mod_revision())?);
            }
            match (response.more(), response.kvs().last()) {
                (true, Some(last)) => {
                    // The next page starts just after the last key read.
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(records),
            }
        }
    }

    async fn put(&self, record: &ModelRecord, expected: Option<i64>) -> RegistryResult<i64> {
        let key = self.key(&record.name);
        let value = serde_json::to_vec(record).map_err(|e| backend(e.to_string()))?;
        let guard = match expected {
            None => Compare::create_revision(key, CompareOp::Equal, 0),
            Some(revision) => Compare::mod_revision(key, CompareOp::Equal, revision),
        };
        self.swap(&record.name, guard, Write::Put(&value)).await
    }

    async fn delete(&self, model: &str, expected: i64) -> RegistryResult<()> {
        let guard = Compare::mod_revision(self.key(model), CompareOp::Equal, expected);
        self.swap(model, guard, Write::Delete).await.map(|_| ())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::testsuite::EtcdProcess;
    use crate::ModelRecord;

    /// The client's `txn`, except that the first call's response is lost
    /// after etcd handled it (`commit_first`) or before it reached etcd.
    fn lossy(
        client: Client,
        commit_first: bool,
    ) -> impl FnMut(
        Txn,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<TxnResponse, etcd_client::Error>> + Send>,
    > {
        let lost = Arc::new(AtomicBool::new(false));
        move |txn| {
            let mut client = client.clone();
            let lost = lost.clone();
            Box::pin(async move {
                if lost.swap(true, Ordering::SeqCst) {
                    return client.txn(txn).await;
                }
                if commit_first {
                    client.txn(txn).await?;
                }
                Err(etcd_client::Error::GRpcStatus(tonic::Status::unavailable("response lost")))
            })
        }
    }

    fn bytes(record: &ModelRecord) -> Vec<u8> {
        serde_json::to_vec(record).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_whose_response_was_lost_is_not_a_conflict() {
        let etcd = EtcdProcess::start().await.unwrap();
        let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint), "/maas-test/").await.unwrap();
        let key = store.key("lost");
        let mut record = ModelRecord::new("lost");

        let guard = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
        let value = bytes(&record);
        let created = compare_and_swap("lost", &key, guard, Write::Put(&value), lossy(store.client(), true)).await;
        let stored = store.get("lost").await.unwrap().expect("the create landed");
        assert_eq!(created, Ok(stored.revision));

        record.loaded = false;
        let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, stored.revision);
        let value = bytes(&record);
        let updated = compare_and_swap("lost", &key, guard, Write::Put(&value), lossy(store.client(), true)).await;
        let stored = store.get("lost").await.unwrap().expect("still there");
        assert_eq!((updated, stored.record), (Ok(stored.revision), record.clone()));

        let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, stored.revision);
        let deleted = compare_and_swap("lost", &key, guard, Write::Delete, lossy(store.client(), true)).await;
        assert!(deleted.is_ok(), "{deleted:?}");
        assert_eq!(store.get("lost").await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_that_finds_another_write_is_a_conflict() {
        let etcd = EtcdProcess::start().await.unwrap();
        let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint), "/maas-test/").await.unwrap();
        let key = store.key("taken");
        let mut record = ModelRecord::new("taken");
        let first = store.put(&record, None).await.unwrap();
        record.loaded = false;
        store.put(&record, Some(first)).await.unwrap();

        // A stale write retried after a lost request: the key holds other bytes.
        record.next_version = 7;
        let value = bytes(&record);
        let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, first);
        let stale = compare_and_swap("taken", &key, guard, Write::Put(&value), lossy(store.client(), false)).await;
        assert_eq!(stale, Err(RegistryError::Conflict { model: "taken".into() }));

        // A stale delete retried after a lost request: the key is still there.
        let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, first);
        let stale = compare_and_swap("taken", &key, guard, Write::Delete, lossy(store.client(), false)).await;
        assert_eq!(stale, Err(RegistryError::Conflict { model: "taken".into() }));
        assert!(store.get("taken").await.unwrap().is_some());
    }
}
