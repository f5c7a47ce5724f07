//! Where flushed usage lives: one record per minute and writer, in etcd
//! (`<prefix>usage/<minute>/<writer>`, so a range of minutes is one range
//! read) or appended as JSON lines to a file on one machine.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use async_trait::async_trait;
use etcd_client::{Client, GetOptions};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::counts::UsageEntry;

/// Storage of flushed usage.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds `entries` to the record of `writer` for minute `bucket`.
    async fn merge(&self, bucket: u64, writer: &str, entries: &[UsageEntry]) -> Result<()>;

    /// Every entry of minutes `first..=last`, of every writer.
    async fn range(&self, first: u64, last: u64) -> Result<Vec<UsageEntry>>;
}

/// One stored record.
#[derive(Serialize, Deserialize)]
struct Record {
    bucket: u64,
    writer: String,
    entries: Vec<UsageEntry>,
}

/// Usage in etcd.
pub struct EtcdUsageStore {
    client: Client,
    prefix: String,
}

impl EtcdUsageStore {
    /// Usage under `<prefix>usage/`.
    pub fn new(client: Client, prefix: &str) -> EtcdUsageStore {
        EtcdUsageStore { client, prefix: format!("{prefix}usage/") }
    }

    fn bucket_key(&self, bucket: u64) -> String {
        format!("{}{bucket:012}/", self.prefix)
    }
}

#[async_trait]
impl UsageStore for EtcdUsageStore {
    async fn merge(&self, bucket: u64, writer: &str, entries: &[UsageEntry]) -> Result<()> {
        // Only this writer writes this key, so read, add and put is safe.
        let key = format!("{}{writer}", self.bucket_key(bucket));
        let mut client = self.client.clone();
        let mut record = match client.get(key.clone(), None).await.context("reading usage from etcd")?.kvs().first() {
            Some(kv) => serde_json::from_slice(kv.value()).context("an unreadable usage record in etcd")?,
            None => Record { bucket, writer: writer.to_string(), entries: Vec::new() },
        };
        add_into(&mut record.entries, entries);
        client.put(key, serde_json::to_vec(&record)?, None).await.context("storing usage in etcd")?;
        Ok(())
    }

    async fn range(&self, first: u64, last: u64) -> Result<Vec<UsageEntry>> {
        let options = GetOptions::new().with_range(self.bucket_key(last + 1));
        let response =
            self.client.clone().get(self.bucket_key(first), Some(options)).await.context("reading usage from etcd")?;
        let mut entries = Vec::new();
        for kv in response.kvs() {
            let record: Record = serde_json::from_slice(kv.value()).context("an unreadable usage record in etcd")?;
            entries.extend(record.entries);
        }
        Ok(entries)
    }
}

/// Usage appended to `<dir>/usage.jsonl`, one line per flush.
pub struct FileUsageStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileUsageStore {
    /// Opens (or starts) `<dir>/usage.jsonl`.
    pub fn open(dir: &Path) -> Result<FileUsageStore> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(FileUsageStore { path: dir.join("usage.jsonl"), lock: Mutex::new(()) })
    }
}

#[async_trait]
impl UsageStore for FileUsageStore {
    async fn merge(&self, bucket: u64, writer: &str, entries: &[UsageEntry]) -> Result<()> {
        let record = Record { bucket, writer: writer.to_string(), entries: entries.to_vec() };
        let mut line = serde_json::to_vec(&record)?;
        line.push(b'\n');
        let _held = self.lock.lock();
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        file.write_all(&line).with_context(|| format!("writing {}", self.path.display()))?;
        file.sync_data()?;
        Ok(())
    }

    async fn range(&self, first: u64, last: u64) -> Result<Vec<UsageEntry>> {
        let file = match fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let mut entries = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            // A line cut short by a crash is skipped, not fatal.
            let Ok(record) = serde_json::from_str::<Record>(&line) else { continue };
            if (first..=last).contains(&record.bucket) {
                entries.extend(record.entries);
            }
        }
        Ok(entries)
    }
}

/// Adds `more` into `entries`, entry by entry under the same key.
fn add_into(entries: &mut Vec<UsageEntry>, more: &[UsageEntry]) {
    for entry in more {
        match entries.iter_mut().find(|e| e.key == entry.key) {
            Some(existing) => existing.counts += entry.counts,
            None => entries.push(entry.clone()),
        }
    }
}
