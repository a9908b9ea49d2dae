//! What the server keeps, all in the staging prefix — `files/<id>/file.json` beside each file's
//! batch folder, and `batches/<id>.json` — and the places in it ([`Staging`]). Nothing that
//! matters is kept in memory, so a restarted server carries on. This module reads and writes
//! records; it does not answer requests or decide anything about batches.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::driver::BatchObject;
use crate::io::{Destination, Expect, Location, ObjectWriter, Storage, Swap};

/// A record of the server's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing or listing the staging prefix failed.
    #[error("{doing} {uri}: {source}")]
    Io {
        /// `reading`, `writing` or `listing`.
        doing: &'static str,
        /// Where.
        uri: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file's batch folder could not be read.
    #[error(transparent)]
    Folder(#[from] crate::driver::DriverError),
    /// Other servers kept changing a record while this one tried to change it.
    #[error("{uri}: changed by other servers at every one of {tries} attempts; try again")]
    Contended {
        /// Where.
        uri: String,
        /// How many times this server read it again.
        tries: u32,
    },
    /// A record that must be new exists already.
    #[error("{uri} exists already")]
    Exists {
        /// Where.
        uri: String,
    },
    /// A record is not what the server wrote.
    #[error("{uri}: {source}")]
    Malformed {
        /// Where.
        uri: String,
        /// What is wrong.
        #[source]
        source: serde_json::Error,
    },
}

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
    /// The upload is kept as it was sent (see [`Staging::upload_path`]).
    #[serde(default)]
    pub kept: bool,
    /// Unix seconds when it expires (records of older versions: never).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// It expired while a batch used it: its upload is gone and it is no longer listed.
    #[serde(default)]
    pub expired: bool,
}

impl FileRecord {
    /// Whether the API shows it at `now`: not deleted, not expired (whether or not the
    /// background task has removed it yet).
    pub fn visible(&self, now: i64) -> bool {
        !self.deleted && !self.expired && self.expires_at.is_none_or(|at| at > now)
    }
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
    /// Seconds after their creation that the output and error files expire (records of older
    /// versions: never).
    #[serde(default)]
    pub output_expires_after: Option<i64>,
    /// The output and error files expired and were removed.
    #[serde(default)]
    pub outputs_expired: bool,
}

impl BatchRecord {
    /// Whether its output and error files are gone at `now` (removed, or past their expiry
    /// and about to be), given when they were written.
    pub fn outputs_gone(&self, written_at: u64, now: i64) -> bool {
        self.outputs_expired
            || self
                .output_expires_after
                .is_some_and(|s| (written_at as i64).saturating_add(s) <= now)
    }
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

/// The output and error file ids of a batch.
pub(crate) fn output_ids(batch_id: &str) -> (String, String) {
    let suffix = batch_id.trim_start_matches("batch_");
    (format!("file-out-{suffix}"), format!("file-err-{suffix}"))
}

/// Where a file's batch folder is, relative to the staging prefix.
fn file_folder(id: &str) -> String {
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

/// The staging prefix: where every file's batch folder and every record is, as places (no
/// URI strings parsed back), and the records' reading and writing.
pub(crate) struct Staging {
    location: Location,
    dest: Arc<dyn Destination>,
}

impl Staging {
    /// The staging prefix at `location`.
    pub async fn open(storage: &Storage, location: Location) -> io::Result<Staging> {
        let dest = storage.folder(&location).await?;
        Ok(Staging { location, dest })
    }

    /// The address of `rel`, for messages and records.
    pub fn uri(&self, rel: &str) -> String {
        self.dest.uri(rel)
    }

    /// Where file `id`'s batch folder is.
    pub fn file_folder(&self, id: &str) -> Location {
        self.location.join(&file_folder(id))
    }

    /// Where the results file `name` (`output.jsonl`, `errors.jsonl`) of file `id`'s batch is,
    /// relative to the staging prefix.
    pub fn result_path(id: &str, name: &str) -> String {
        format!("{}results/{name}", file_folder(id))
    }

    /// Where upload `id` is kept as it was sent, relative to the staging prefix: beside its
    /// record, outside the batch folder's own files.
    pub fn upload_path(id: &str) -> String {
        format!("{}upload.jsonl", file_folder(id))
    }

    /// [`upload_path`](Self::upload_path) as a place.
    pub fn upload_file(&self, id: &str) -> Location {
        self.location.join(&Self::upload_path(id))
    }

    /// A writer for the kept upload `id` (nothing visible until it is finished).
    pub async fn upload_writer(&self, id: &str) -> Result<Box<dyn ObjectWriter>, StateError> {
        let rel = Self::upload_path(id);
        self.dest
            .create(&rel)
            .await
            .map_err(self.io("writing", &rel))
    }

    /// [`result_path`](Self::result_path) as a place.
    pub fn result_file(&self, id: &str, name: &str) -> Location {
        self.location.join(&Self::result_path(id, name))
    }

    /// The error of `doing` something to `rel`, from the I/O error that says why.
    fn io(&self, doing: &'static str, rel: &str) -> impl Fn(io::Error) -> StateError {
        let uri = self.uri(rel);
        move |source| StateError::Io {
            doing,
            uri: uri.clone(),
            source,
        }
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        rel: &str,
    ) -> Result<Option<T>, StateError> {
        let Some(raw) = self
            .dest
            .read_small(rel)
            .await
            .map_err(self.io("reading", rel))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|source| StateError::Malformed {
                uri: self.uri(rel),
                source,
            })
    }

    fn json<T: Serialize>(&self, rel: &str, value: &T) -> Result<Bytes, StateError> {
        serde_json::to_vec_pretty(value)
            .map(Bytes::from)
            .map_err(|source| StateError::Malformed {
                uri: self.uri(rel),
                source,
            })
    }

    /// Writes a record that must not exist yet: of two servers creating it, one wins.
    async fn create_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<(), StateError> {
        let json = self.json(rel, value)?;
        match self
            .dest
            .put_if(rel, json.clone(), Expect::Absent)
            .await
            .map_err(self.io("writing", rel))?
        {
            Swap::Done(_) => Ok(()),
            Swap::Conflict => {
                // A create retried (by the SDK, after a lost answer) once it had succeeded is
                // refused: the record then holds exactly these bytes — which, as they hold a
                // fresh id, no other server writes.
                let now = self
                    .dest
                    .read_small(rel)
                    .await
                    .map_err(self.io("reading", rel))?;
                if now.as_deref() == Some(&json[..]) {
                    Ok(())
                } else {
                    Err(StateError::Exists { uri: self.uri(rel) })
                }
            }
        }
    }

    /// Changes the record at `rel` in one compare-and-swap: `change` is applied to the record
    /// as read — again to the newer one when another server changed it first — until the write
    /// holds. `change` says whether anything is to change (`Ok(false)`: nothing is written) or
    /// why it must not (its error). Returns the record as it is now; `None` when there is none.
    async fn update_json<T, E>(
        &self,
        rel: &str,
        mut change: impl FnMut(&mut T) -> Result<bool, E>,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + for<'de> Deserialize<'de>,
        E: From<StateError>,
    {
        const TRIES: u32 = 32;
        for attempt in 0..TRIES {
            let Some(read) = self
                .dest
                .read_versioned(rel)
                .await
                .map_err(self.io("reading", rel))?
            else {
                return Ok(None);
            };
            let mut record: T =
                serde_json::from_slice(&read.bytes).map_err(|source| StateError::Malformed {
                    uri: self.uri(rel),
                    source,
                })?;
            if !change(&mut record)? {
                return Ok(Some(record));
            }
            let json = self.json(rel, &record)?;
            match self
                .dest
                .put_if(rel, json, Expect::Version(read.version))
                .await
                .map_err(self.io("writing", rel))?
            {
                Swap::Done(_) => return Ok(Some(record)),
                Swap::Conflict => {
                    // Another server wrote it in between: read its version and apply the
                    // change to that, after a pause growing exponentially to 200 ms, with
                    // jitter so that servers in step fall out of it.
                    let cap = (5u64 << attempt.min(6)).min(200);
                    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                    h.write_u32(attempt);
                    let pause = cap / 2 + h.finish() % (cap / 2 + 1);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
            }
        }
        Err(StateError::Contended {
            uri: self.uri(rel),
            tries: TRIES,
        }
        .into())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let listed = self
            .dest
            .list(prefix)
            .await
            .map_err(self.io("listing", prefix))?;
        Ok(listed.into_iter().map(|l| l.path).collect())
    }

    /// A file record, if it exists and is [visible](FileRecord::visible).
    pub async fn file(&self, id: &str) -> Result<Option<FileRecord>, StateError> {
        let now = now();
        Ok(self.file_record(id).await?.filter(|f| f.visible(now)))
    }

    /// A file record as stored, deleted or expired.
    pub async fn file_record(&self, id: &str) -> Result<Option<FileRecord>, StateError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        self.read_json::<FileRecord>(&file_record_path(id)).await
    }

    /// Writes the record of a new upload (its id must be new).
    pub async fn create_file(&self, f: &FileRecord) -> Result<(), StateError> {
        self.create_json(&file_record_path(&f.id), f).await
    }

    /// Changes file `id`'s record in one compare-and-swap (see [`Staging::update_json`]):
    /// another server's change in between is never lost.
    pub async fn update_file<E: From<StateError>>(
        &self,
        id: &str,
        change: impl FnMut(&mut FileRecord) -> Result<bool, E>,
    ) -> Result<Option<FileRecord>, E> {
        if !plausible_id(id) {
            return Ok(None);
        }
        self.update_json(&file_record_path(id), change).await
    }

    /// A batch record, if it exists.
    pub async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, StateError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        self.read_json(&batch_record_path(id)).await
    }

    /// Writes the record of a new batch (its id must be new).
    pub async fn create_batch(&self, b: &BatchRecord) -> Result<(), StateError> {
        self.create_json(&batch_record_path(&b.id), b).await
    }

    /// Changes batch `id`'s record in one compare-and-swap (see [`Staging::update_json`]).
    pub async fn update_batch<E: From<StateError>>(
        &self,
        id: &str,
        change: impl FnMut(&mut BatchRecord) -> Result<bool, E>,
    ) -> Result<Option<BatchRecord>, E> {
        if !plausible_id(id) {
            return Ok(None);
        }
        self.update_json(&batch_record_path(id), change).await
    }

    /// Removes batch `id`'s record (one that lost a race to be the file's batch).
    pub async fn remove_batch(&self, id: &str) -> Result<(), StateError> {
        self.delete(&batch_record_path(id)).await
    }

    /// Every batch record.
    pub async fn batches(&self) -> Result<Vec<BatchRecord>, StateError> {
        let mut out = Vec::new();
        for rel in self.list("batches/").await? {
            if rel.ends_with(".json") {
                if let Some(b) = self.read_json::<BatchRecord>(&rel).await? {
                    out.push(b);
                }
            }
        }
        Ok(out)
    }

    /// Every [visible](FileRecord::visible) file record.
    pub async fn files(&self) -> Result<Vec<FileRecord>, StateError> {
        let now = now();
        let mut all = self.file_records().await?;
        all.retain(|f| f.visible(now));
        Ok(all)
    }

    /// Every file record as stored, deleted and expired ones too.
    pub async fn file_records(&self) -> Result<Vec<FileRecord>, StateError> {
        let mut out = Vec::new();
        for rel in self.list("files/").await? {
            if rel.ends_with("/file.json") {
                if let Some(f) = self.read_json::<FileRecord>(&rel).await? {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// The ids of folders under `files/` that hold objects but no record: uploads still
    /// streaming in, or cut off by a kill.
    pub async fn folders_without_record(&self) -> Result<Vec<String>, StateError> {
        let listed = self.list("files/").await?;
        let mut ids: Vec<String> = listed
            .iter()
            .filter_map(|p| p.strip_prefix("files/")?.split_once('/').map(|(id, _)| id))
            .filter(|id| plausible_id(id))
            .map(str::to_owned)
            .collect();
        ids.dedup();
        ids.retain(|id| !listed.contains(&file_record_path(id)));
        Ok(ids)
    }

    /// Removes the kept upload `id`, if any.
    pub async fn remove_upload(&self, id: &str) -> Result<(), StateError> {
        self.delete(&Self::upload_path(id)).await
    }

    /// Removes the output and error files of file `id`'s batch.
    pub async fn remove_results(&self, id: &str) -> Result<(), StateError> {
        for name in ["output.jsonl", "errors.jsonl"] {
            self.delete(&Self::result_path(id, name)).await?;
        }
        Ok(())
    }

    async fn delete(&self, rel: &str) -> Result<(), StateError> {
        self.dest
            .delete(rel)
            .await
            .map_err(self.io("removing", rel))
    }

    /// Removes everything of an upload's folder (best effort: what is left is logged).
    pub async fn remove_folder(&self, id: &str) {
        let prefix = file_folder(id);
        match self.list(&prefix).await {
            Ok(mut listing) => {
                // The record last: a removal cut short leaves a record the next one finds.
                let record = file_record_path(id);
                listing.sort_by_key(|p| *p == record);
                for path in listing {
                    if let Err(e) = self.dest.delete(&path).await {
                        tracing::warn!("removing {}: {e}", self.uri(&path));
                    }
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
}
