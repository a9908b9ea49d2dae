//! What the server keeps, all in the staging prefix: `files/<id>/file.json` beside each file's
//! batch folder, and `batches/<id>.json`.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Server;
use crate::driver::BatchObject;

/// An uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// `file-…`.
    pub id: String,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// The upload's file name.
    pub filename: String,
    /// `batch`.
    pub purpose: String,
    /// The name of the key that uploaded it.
    pub owner: String,
    /// The model name its lines use (a configured alias).
    pub model: String,
    /// The OpenAI endpoint of its lines.
    pub endpoint: String,
    /// The batch made from it, if any (a file's folder runs one batch).
    #[serde(default)]
    pub batch: Option<String>,
    /// Deleted by its owner.
    #[serde(default)]
    pub deleted: bool,
}

/// A batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// `batch_…`.
    pub id: String,
    /// The file it runs.
    pub input_file_id: String,
    /// The name of the key that made it.
    pub owner: String,
    /// The OpenAI endpoint.
    pub endpoint: String,
    /// As asked (`24h`).
    pub completion_window: String,
    /// The client's metadata, returned as given.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Unix seconds.
    pub created_at: i64,
    /// Set when the batch failed before any job ran (rejected lines, too few requests).
    #[serde(default)]
    pub failure: Option<BatchObject>,
    /// Unix seconds, once a cancel was asked for.
    #[serde(default)]
    pub cancel_requested_at: Option<i64>,
}

/// A fresh id: `prefix` and 24 hex digits (randomly keyed hashes of the time and a counter).
pub(crate) fn new_id(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(now);
        h.write_u64(n);
        h.write_usize(i);
        *part = h.finish();
    }
    format!("{prefix}{:016x}{:08x}", parts[0], parts[1] as u32)
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where a file's batch folder is, relative to the staging prefix.
pub(crate) fn file_folder(id: &str) -> String {
    format!("files/{id}/")
}

fn file_record_path(id: &str) -> String {
    format!("files/{id}/file.json")
}

fn batch_record_path(id: &str) -> String {
    format!("batches/{id}.json")
}

/// Ids are ours: letters, digits, `-` and `_` only, so they are safe in keys.
pub(crate) fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Server {
    async fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        rel: &str,
    ) -> Result<Option<T>, String> {
        let Some(raw) = self
            .staging
            .read_small(rel)
            .await
            .map_err(|e| format!("reading {}: {e}", self.staging.uri(rel)))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| format!("{}: {e}", self.staging.uri(rel)))
    }

    async fn write_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| format!("writing {}: {e}", self.staging.uri(rel));
        let mut w = self.staging.create(rel).await.map_err(io)?;
        w.write(Bytes::from(json)).await.map_err(io)?;
        w.finish().await.map_err(io)
    }

    /// A file record, if it exists and is not deleted.
    pub(crate) async fn file(&self, id: &str) -> Result<Option<FileRecord>, String> {
        if !plausible_id(id) {
            return Ok(None);
        }
        Ok(self
            .read_json::<FileRecord>(&file_record_path(id))
            .await?
            .filter(|f| !f.deleted))
    }

    pub(crate) async fn save_file(&self, f: &FileRecord) -> Result<(), String> {
        self.write_json(&file_record_path(&f.id), f).await
    }

    /// A batch record, if it exists.
    pub(crate) async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, String> {
        if !plausible_id(id) {
            return Ok(None);
        }
        self.read_json(&batch_record_path(id)).await
    }

    pub(crate) async fn save_batch(&self, b: &BatchRecord) -> Result<(), String> {
        self.write_json(&batch_record_path(&b.id), b).await
    }

    /// Every batch record.
    pub(crate) async fn batches(&self) -> Result<Vec<BatchRecord>, String> {
        let names = self
            .staging
            .list("batches/")
            .await
            .map_err(|e| format!("listing {}: {e}", self.staging.uri("batches/")))?;
        let mut out = Vec::with_capacity(names.len());
        for rel in names.iter().filter(|n| n.path.ends_with(".json")) {
            if let Some(b) = self.read_json::<BatchRecord>(&rel.path).await? {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Every (undeleted) file record.
    pub(crate) async fn files(&self) -> Result<Vec<FileRecord>, String> {
        let names = self
            .staging
            .list("files/")
            .await
            .map_err(|e| format!("listing {}: {e}", self.staging.uri("files/")))?;
        let mut out = Vec::new();
        for rel in names.iter().filter(|n| n.path.ends_with("/file.json")) {
            if let Some(f) = self.read_json::<FileRecord>(&rel.path).await? {
                if !f.deleted {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }
}
