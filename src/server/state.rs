//! What the server keeps, all in the staging prefix — `files/<id>/file.json` beside each file's
//! batch folder, `batches/<id>.json`, the tenants' index (`index/files/<owner>/<id>`,
//! `index/batches/<owner>/<id>`: empty objects, so that a listing reads one tenant's records
//! and never every object of every folder), and the background work's leases
//! (`leases/<name>.json`) — and the places in it ([`Staging`]). Nothing that matters is kept in
//! memory, so a restarted server carries on, and any number of servers can share one prefix:
//! every change of a record is a compare-and-swap. This module reads and writes records; it
//! does not answer requests or decide anything about batches.

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
    /// Its results are collected: the background task has nothing left to do for it.
    #[serde(default)]
    pub collected: bool,
    /// Its output or error files the client deleted (their ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_outputs: Vec<String>,
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

/// Whether file `f` names batch `b` as its batch.
fn names(f: Option<&FileRecord>, b: &BatchRecord) -> bool {
    f.is_some_and(|f| f.batch.as_deref() == Some(b.id.as_str()))
}

/// Every upload in the staging prefix, as [`Staging::census`] finds it.
#[derive(Debug, Default)]
pub(crate) struct Census {
    /// Every file record, deleted and expired ones too.
    pub records: Vec<FileRecord>,
    /// The uploads with no record — still streaming in, or cut off by a kill — with their
    /// index entry, if any.
    pub without_record: Vec<(String, Option<String>)>,
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

/// The index folder of `owner`'s files or batches (`kind`): the owner's name in hex, so any
/// key name is a safe path segment.
fn index_folder(kind: &str, owner: &str) -> String {
    let hex: String = owner.bytes().map(|b| format!("{b:02x}")).collect();
    format!("index/{kind}/{hex}/")
}

fn lease_path(name: &str) -> String {
    format!("leases/{name}.json")
}

/// How many records a listing reads at once.
const READS_AT_ONCE: usize = 32;

/// Who holds a lease, and until when.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    /// Unix milliseconds.
    until_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        self.parse(rel, &raw).map(Some)
    }

    /// The record `raw` read at `rel`; a [`StateError::Malformed`] naming `rel` if it is not one.
    fn parse<T: for<'de> Deserialize<'de>>(&self, rel: &str, raw: &[u8]) -> Result<T, StateError> {
        serde_json::from_slice(raw).map_err(|source| StateError::Malformed {
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
            let mut record: T = self.parse(rel, &read.bytes)?;
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

    /// Writes the record of a new upload (its id must be new), indexed under its owner first:
    /// a kill between the two leaves an index entry with no record, which listings skip and
    /// the background task removes.
    pub async fn create_file(&self, f: &FileRecord) -> Result<(), StateError> {
        self.index_file(f).await?;
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

    /// Writes the record of a new batch (its id must be new), then indexes it under its owner:
    /// a kill between the two leaves a record with no index entry, which
    /// [`tidy_batches`](Staging::tidy_batches) indexes. (So an entry is only ever without a
    /// record once the record was removed.)
    pub async fn create_batch(&self, b: &BatchRecord) -> Result<(), StateError> {
        self.create_json(&batch_record_path(&b.id), b).await?;
        self.put_marker(&format!("{}{}", index_folder("batches", &b.owner), b.id))
            .await
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

    /// Removes batch `id`'s record (one that lost a race to be the file's batch), then its
    /// index entry and the lease on its background work (`lease`).
    pub async fn remove_batch(&self, b: &BatchRecord, lease: &str) -> Result<(), StateError> {
        self.delete(&batch_record_path(&b.id)).await?;
        self.delete(&format!("{}{}", index_folder("batches", &b.owner), b.id))
            .await?;
        self.remove_lease(lease).await
    }

    /// Mends the batches' index and leases after kills and races: a record with no index entry
    /// (written by a version without the index, or a kill between record and entry) is
    /// indexed; an entry whose record is gone is removed; and so is a lease on a batch whose
    /// record is gone or collected (`lease_of` names a batch's lease). Entries and leases are
    /// listed before the records, so that one seen without its record is one whose record was
    /// removed, not one about to be written. A record that does not read keeps its entry and
    /// its lease (it is there, and may be mended). Returns the records that read.
    pub async fn tidy_batches(
        &self,
        lease_of: impl Fn(&str) -> String,
    ) -> Result<Vec<BatchRecord>, StateError> {
        let mut entries = Vec::new();
        for owner in self.children("index/batches/").await? {
            let folder = format!("index/batches/{owner}");
            for id in self.indexed(&folder).await? {
                entries.push((format!("{folder}{id}"), id));
            }
        }
        let leases = self.children("leases/").await?;
        let (records, unreadable) = self.batch_records().await?;
        let by_id: std::collections::HashMap<&str, &BatchRecord> =
            records.iter().map(|b| (b.id.as_str(), b)).collect();
        let unreadable: std::collections::HashSet<&str> =
            unreadable.iter().map(String::as_str).collect();
        let mut indexed = std::collections::HashSet::new();
        for (entry, id) in &entries {
            // A record that does not read is still there: its entry and lease stay with it.
            if unreadable.contains(id.as_str()) {
                continue;
            }
            if by_id.contains_key(id.as_str()) {
                indexed.insert(entry.clone());
            } else {
                self.delete(entry).await?;
            }
        }
        for b in &records {
            let entry = format!("{}{}", index_folder("batches", &b.owner), b.id);
            if !indexed.contains(&entry) {
                self.put_marker(&entry).await?;
            }
        }
        let live: std::collections::HashSet<String> = records
            .iter()
            .filter(|b| !b.collected)
            .map(|b| b.id.as_str())
            .chain(unreadable.iter().copied())
            .map(|id| format!("{}.json", lease_of(id)))
            .collect();
        for name in leases {
            if name.starts_with(&lease_of("")) && !live.contains(&name) {
                self.delete(&format!("leases/{name}")).await?;
            }
        }
        Ok(records)
    }

    /// Every batch record that reads (one object per batch: no folder's objects are listed).
    /// One that does not is logged and left out, and left alone (see [`Staging::readable`]).
    pub async fn batches(&self) -> Result<Vec<BatchRecord>, StateError> {
        Ok(self.batch_records().await?.0)
    }

    /// Every batch record that reads, and the ids of those that do not.
    async fn batch_records(&self) -> Result<(Vec<BatchRecord>, Vec<String>), StateError> {
        let ids: Vec<String> = self
            .list("batches/")
            .await?
            .into_iter()
            .filter_map(|rel| {
                let id = rel.strip_prefix("batches/")?.strip_suffix(".json")?;
                (!id.contains('/')).then(|| id.to_owned())
            })
            .collect();
        let raw = self
            .read_many(ids.iter().map(|id| batch_record_path(id)).collect())
            .await?;
        let (mut records, mut unreadable) = (Vec::new(), Vec::new());
        for (id, raw) in ids.into_iter().zip(raw) {
            let Some(raw) = raw else { continue }; // removed since the listing
            match self.readable(&batch_record_path(&id), &raw) {
                Some(b) => records.push(b),
                None => unreadable.push(id),
            }
        }
        Ok((records, unreadable))
    }

    /// `owner`'s batches, found through the index: the records of batches that were
    /// [made](Staging::made).
    pub async fn batches_of(&self, owner: &str) -> Result<Vec<BatchRecord>, StateError> {
        let ids = self.indexed(&index_folder("batches", owner)).await?;
        let paths: Vec<String> = ids.iter().map(|id| batch_record_path(id)).collect();
        let raw = self.read_many(paths.clone()).await?;
        let mut all: Vec<BatchRecord> = paths
            .iter()
            .zip(raw)
            .filter_map(|(rel, raw)| self.readable(rel, &raw?))
            .collect();
        all.retain(|b| b.owner == owner);
        // Their files' records, to leave out records whose making did not finish.
        let files = self
            .read_many(
                all.iter()
                    .map(|b| file_record_path(&b.input_file_id))
                    .collect(),
            )
            .await?;
        let mut made = Vec::with_capacity(all.len());
        for (b, raw) in all.into_iter().zip(files) {
            let file: Option<FileRecord> = raw.and_then(|raw| serde_json::from_slice(&raw).ok());
            if names(file.as_ref(), &b) {
                made.push(b);
            }
        }
        Ok(made)
    }

    /// Whether batch `b` was made: its file names it. A record whose making did not finish —
    /// cut off by a kill before its file was attached, or one that lost the race for its file —
    /// is no batch: not listed, not found, not cancelled (it would reach the file's real batch
    /// through the folder they share).
    pub async fn made(&self, b: &BatchRecord) -> Result<bool, StateError> {
        Ok(names(self.file_record(&b.input_file_id).await?.as_ref(), b))
    }

    /// `owner`'s [visible](FileRecord::visible) file records, found through the index.
    pub async fn files_of(&self, owner: &str) -> Result<Vec<FileRecord>, StateError> {
        let ids = self.indexed(&index_folder("files", owner)).await?;
        let now = now();
        let raw = self
            .read_many(ids.iter().map(|id| file_record_path(id)).collect())
            .await?;
        let mut all: Vec<FileRecord> = ids
            .iter()
            .zip(raw)
            .filter_map(|(id, raw)| self.readable(&file_record_path(id), &raw?))
            .collect();
        all.retain(|f| f.owner == owner && f.visible(now));
        Ok(all)
    }

    /// The record at `rel` read from `raw`; one that does not read is logged and left out (and
    /// left alone): one broken record must not stop every listing, every sweep and every
    /// batch's progress.
    fn readable<T: for<'de> Deserialize<'de>>(&self, rel: &str, raw: &[u8]) -> Option<T> {
        self.parse(rel, raw)
            .map_err(|e| tracing::warn!(record = rel, "{e}; left out and left alone until mended"))
            .ok()
    }

    /// Every file record as stored, deleted and expired ones too, found through the index;
    /// and the uploads without a record (see [`Census`]). A record that does not read is in
    /// neither (see [`Staging::readable`]).
    pub async fn census(&self) -> Result<Census, StateError> {
        let mut entries = Vec::new();
        for owner in self.children("index/files/").await? {
            let folder = format!("index/files/{owner}");
            for id in self.indexed(&folder).await? {
                entries.push((format!("{folder}{id}"), id));
            }
        }
        let raw = self
            .read_many(entries.iter().map(|(_, id)| file_record_path(id)).collect())
            .await?;
        let mut census = Census::default();
        let mut indexed = std::collections::HashSet::new();
        for ((entry, id), raw) in entries.into_iter().zip(raw) {
            indexed.insert(id.clone());
            match raw {
                Some(raw) => census
                    .records
                    .extend(self.readable(&file_record_path(&id), &raw)),
                None => census.without_record.push((id, Some(entry))),
            }
        }
        let unindexed: Vec<String> = self
            .children("files/")
            .await?
            .iter()
            .filter_map(|name| name.strip_suffix('/'))
            .filter(|id| plausible_id(id) && !indexed.contains(*id))
            .map(str::to_owned)
            .collect();
        let raw = self
            .read_many(unindexed.iter().map(|id| file_record_path(id)).collect())
            .await?;
        for (id, raw) in unindexed.into_iter().zip(raw) {
            match raw {
                // Recorded by a version without the index (or its entry went astray): indexed
                // now, so listings find it.
                Some(raw) => {
                    if let Some(f) = self.readable::<FileRecord>(&file_record_path(&id), &raw) {
                        self.index_file(&f).await?;
                        census.records.push(f);
                    }
                }
                None => census.without_record.push((id, None)),
            }
        }
        Ok(census)
    }

    /// Indexes file `id`'s record, as it is, under its owner (a record written by a version
    /// without the index, or whose index entry a kill cut off).
    pub async fn index_file(&self, f: &FileRecord) -> Result<(), StateError> {
        self.put_marker(&format!("{}{}", index_folder("files", &f.owner), f.id))
            .await
    }

    /// Removes `owner`'s index entry of file `id` (its folder went).
    pub async fn unindex_file(&self, owner: &str, id: &str) -> Result<(), StateError> {
        self.delete(&format!("{}{id}", index_folder("files", owner)))
            .await
    }

    /// The ids below the index folder `folder`.
    async fn indexed(&self, folder: &str) -> Result<Vec<String>, StateError> {
        Ok(self
            .children(folder)
            .await?
            .into_iter()
            .filter(|id| plausible_id(id))
            .collect())
    }

    async fn children(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.dest
            .children(prefix)
            .await
            .map_err(self.io("listing", prefix))
    }

    /// Writes an empty index entry.
    async fn put_marker(&self, rel: &str) -> Result<(), StateError> {
        let w = self
            .dest
            .create(rel)
            .await
            .map_err(self.io("writing", rel))?;
        w.finish().await.map_err(self.io("writing", rel))
    }

    /// The objects at `paths`, read [`READS_AT_ONCE`] at a time, in order (`None`: absent).
    async fn read_many(&self, paths: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(paths)
            .map(|rel| async move {
                self.dest
                    .read_small(&rel)
                    .await
                    .map_err(self.io("reading", &rel))
            })
            .buffered(READS_AT_ONCE)
            .try_collect()
            .await
    }

    /// Takes, or keeps, the lease `name` for `holder` for `ttl` from now: `true` when `holder`
    /// holds it now. A lease held by another holder and not yet run out is refused; one that
    /// ran out (its holder died or stalled) is taken over, by one of those who try, through a
    /// compare-and-swap. A lease of `holder`'s with more than half its time left is not
    /// written again.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StateError> {
        let rel = lease_path(name);
        let now = now_ms();
        let ttl = ttl.as_millis() as u64;
        let read = self
            .dest
            .read_versioned(&rel)
            .await
            .map_err(self.io("reading", &rel))?;
        let expect = match read {
            None => Expect::Absent,
            Some(read) => {
                // A lease that does not parse is taken over, as one that ran out.
                match serde_json::from_slice::<LeaseRecord>(&read.bytes) {
                    Ok(l) if l.holder == holder && l.until_ms > now + ttl / 2 => return Ok(true),
                    Ok(l) if l.holder != holder && l.until_ms > now => return Ok(false),
                    _ => Expect::Version(read.version),
                }
            }
        };
        let lease = LeaseRecord {
            holder: holder.to_owned(),
            until_ms: now + ttl,
        };
        let json = self.json(&rel, &lease)?;
        Ok(matches!(
            self.dest
                .put_if(&rel, json, expect)
                .await
                .map_err(self.io("writing", &rel))?,
            Swap::Done(_)
        ))
    }

    /// Removes the lease `name`, whoever holds it: for work that is over for good (a batch
    /// collected or removed), which no server takes up again.
    pub async fn remove_lease(&self, name: &str) -> Result<(), StateError> {
        self.delete(&lease_path(name)).await
    }

    /// Gives up the lease `name` if `holder` holds it (marked run out, in one
    /// compare-and-swap, so that a holder that took it over meanwhile keeps it).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StateError> {
        let rel = lease_path(name);
        let read = self
            .dest
            .read_versioned(&rel)
            .await
            .map_err(self.io("reading", &rel))?;
        let Some(read) = read else {
            return Ok(());
        };
        if serde_json::from_slice::<LeaseRecord>(&read.bytes).is_ok_and(|l| l.holder == holder) {
            let json = self.json(
                &rel,
                &LeaseRecord {
                    holder: holder.to_owned(),
                    until_ms: 0,
                },
            )?;
            // A conflict means another holder has it now: theirs to keep.
            self.dest
                .put_if(&rel, json, Expect::Version(read.version))
                .await
                .map_err(self.io("writing", &rel))?;
        }
        Ok(())
    }

    /// Removes the kept upload `id`, if any.
    pub async fn remove_upload(&self, id: &str) -> Result<(), StateError> {
        self.delete(&Self::upload_path(id)).await
    }

    /// Removes the output and error files of file `id`'s batch.
    pub async fn remove_results(&self, id: &str) -> Result<(), StateError> {
        for name in ["output.jsonl", "errors.jsonl"] {
            self.remove_result(id, name).await?;
        }
        Ok(())
    }

    /// Removes the results file `name` (`output.jsonl`, `errors.jsonl`) of file `id`'s batch.
    pub async fn remove_result(&self, id: &str, name: &str) -> Result<(), StateError> {
        self.delete(&Self::result_path(id, name)).await
    }

    async fn delete(&self, rel: &str) -> Result<(), StateError> {
        self.dest
            .delete(rel)
            .await
            .map_err(self.io("removing", rel))
    }

    /// Removes an index entry (see [`Census::without_record`]).
    pub async fn remove_index_entry(&self, entry: &str) -> Result<(), StateError> {
        self.delete(entry).await
    }

    /// Removes everything of `owner`'s upload `id` — its folder, its record last, then its
    /// index entry (best effort: what is left is logged, and a record left is found again).
    pub async fn remove_folder(&self, owner: &str, id: &str) {
        let prefix = file_folder(id);
        match self.list(&prefix).await {
            Ok(mut listing) => {
                // The record last: a removal cut short leaves a record the next one finds.
                let record = file_record_path(id);
                listing.sort_by_key(|p| *p == record);
                for path in listing {
                    if let Err(e) = self.dest.delete(&path).await {
                        tracing::warn!("removing {}: {e}", self.uri(&path));
                        return;
                    }
                }
                if let Err(e) = self.unindex_file(owner, id).await {
                    tracing::warn!("{e}");
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// A staging prefix in a local folder, and records, for the server's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A staging prefix in `dir`, and the storage it was opened with.
    pub(crate) async fn staging_in(dir: &tempfile::TempDir) -> (Storage, Staging) {
        let storage = Storage::new(Default::default());
        let location = Location::parse(&format!("{}/", dir.path().display())).unwrap();
        let staging = Staging::open(&storage, location).await.unwrap();
        (storage, staging)
    }

    /// A file record of upload `id` by `owner`.
    pub(crate) fn file(id: &str, owner: &str) -> FileRecord {
        FileRecord {
            id: id.into(),
            bytes: 1,
            created_at: 1,
            filename: "f.jsonl".into(),
            purpose: "batch".into(),
            owner: owner.into(),
            model: "m".into(),
            endpoint: "/v1/chat/completions".into(),
            batch: None,
            deleted: false,
            kept: false,
            expires_at: None,
            expired: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::file;
    use super::*;

    async fn staging(dir: &tempfile::TempDir) -> Staging {
        testing::staging_in(dir).await.1
    }

    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_runs_out_or_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let s = staging(&dir).await;
        let ttl = std::time::Duration::from_millis(300);
        assert!(s.take_lease("batch-x", "a", ttl).await.unwrap());
        assert!(!s.take_lease("batch-x", "b", ttl).await.unwrap());
        // Kept by its holder without a write while more than half its time is left.
        let before = s.dest.read_versioned("leases/batch-x.json").await.unwrap();
        assert!(s.take_lease("batch-x", "a", ttl).await.unwrap());
        let after = s.dest.read_versioned("leases/batch-x.json").await.unwrap();
        assert_eq!(before.map(|v| v.version), after.map(|v| v.version));
        // Run out: taken over by one of two.
        tokio::time::sleep(ttl + std::time::Duration::from_millis(50)).await;
        let (b, c) = tokio::join!(
            s.take_lease("batch-x", "b", ttl),
            s.take_lease("batch-x", "c", ttl)
        );
        assert!(b.unwrap() ^ c.unwrap(), "exactly one takes it over");
        let winner = if s.take_lease("batch-x", "b", ttl).await.unwrap() {
            "b"
        } else {
            "c"
        };
        assert!(!s.take_lease("batch-x", "a", ttl).await.unwrap());
        // Given up by someone else: nothing happens; by its holder: free at once.
        s.release_lease("batch-x", "a").await.unwrap();
        assert!(!s.take_lease("batch-x", "a", ttl).await.unwrap());
        s.release_lease("batch-x", winner).await.unwrap();
        assert!(s.take_lease("batch-x", "a", ttl).await.unwrap());
        // A lease that does not parse is taken over.
        std::fs::write(dir.path().join("leases/sweep.json"), b"{oops").unwrap();
        assert!(s.take_lease("sweep", "a", ttl).await.unwrap());
    }

    #[tokio::test]
    async fn listings_read_one_tenants_index_and_the_census_finds_what_it_misses() {
        let dir = tempfile::tempdir().unwrap();
        let s = staging(&dir).await;
        // Owner names are any key name: hex keeps them one path segment.
        for (id, owner) in [
            ("file-a1", "alice"),
            ("file-a2", "alice"),
            ("file-b1", "b/../ob"),
        ] {
            s.create_file(&file(id, owner)).await.unwrap();
        }
        let ids = |v: Vec<FileRecord>| {
            let mut ids: Vec<String> = v.into_iter().map(|f| f.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(s.files_of("alice").await.unwrap()),
            ["file-a1", "file-a2"]
        );
        assert_eq!(ids(s.files_of("b/../ob").await.unwrap()), ["file-b1"]);
        assert!(s.files_of("b").await.unwrap().is_empty());
        // Deleted: not listed (its entry goes with its folder).
        s.update_file("file-a2", |f| {
            f.deleted = true;
            Ok::<_, StateError>(true)
        })
        .await
        .unwrap();
        assert_eq!(ids(s.files_of("alice").await.unwrap()), ["file-a1"]);
        s.remove_folder("alice", "file-a2").await;
        assert!(!dir
            .path()
            .join(index_folder("files", "alice"))
            .join("file-a2")
            .exists());

        // A record an older version wrote (no index entry), a folder with no record, and an
        // entry whose record a kill cut off.
        let legacy = file("file-old", "alice");
        s.create_json(&file_record_path(&legacy.id), &legacy)
            .await
            .unwrap();
        std::fs::create_dir_all(dir.path().join("files/file-cut")).unwrap();
        std::fs::write(dir.path().join("files/file-cut/part"), b"x").unwrap();
        s.put_marker(&format!("{}file-gone", index_folder("files", "alice")))
            .await
            .unwrap();
        assert_eq!(ids(s.files_of("alice").await.unwrap()), ["file-a1"]);
        let census = s.census().await.unwrap();
        assert_eq!(
            ids(census.records),
            ["file-a1", "file-b1", "file-old"],
            "every record, the unindexed one too"
        );
        let mut without = census.without_record;
        without.sort();
        assert_eq!(
            without,
            [
                ("file-cut".to_owned(), None),
                (
                    "file-gone".to_owned(),
                    Some(format!("{}file-gone", index_folder("files", "alice")))
                )
            ]
        );
        // The census indexed the old record: listed from now on.
        assert_eq!(
            ids(s.files_of("alice").await.unwrap()),
            ["file-a1", "file-old"]
        );

        // A record that does not read, indexed or not, is left out of the listing and of the
        // census — neither a record to expire nor an upload without one to remove — and the
        // others are read as before (it used to fail both, and so every sweep).
        for id in ["file-bad", "file-bad-unindexed"] {
            std::fs::create_dir_all(dir.path().join(format!("files/{id}"))).unwrap();
            std::fs::write(dir.path().join(file_record_path(id)), b"{\"id\":").unwrap();
        }
        s.put_marker(&format!("{}file-bad", index_folder("files", "alice")))
            .await
            .unwrap();
        assert_eq!(
            ids(s.files_of("alice").await.unwrap()),
            ["file-a1", "file-old"]
        );
        let census = s.census().await.unwrap();
        assert_eq!(ids(census.records), ["file-a1", "file-b1", "file-old"]);
        assert!(
            census
                .without_record
                .iter()
                .all(|(id, _)| !id.starts_with("file-bad")),
            "{:?}",
            census.without_record
        );
    }

    fn batch(id: &str, owner: &str, collected: bool) -> BatchRecord {
        BatchRecord {
            id: id.into(),
            input_file_id: format!("file-of-{id}"),
            owner: owner.into(),
            endpoint: "/v1/chat/completions".into(),
            completion_window: "24h".into(),
            metadata: None,
            created_at: 1,
            failure: None,
            cancel_requested_at: None,
            output_expires_after: None,
            outputs_expired: false,
            collected,
            deleted_outputs: Vec::new(),
        }
    }

    #[tokio::test]
    async fn tidying_indexes_batches_and_removes_what_names_a_gone_or_finished_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = staging(&dir).await;
        let lease = |id: &str| format!("batch-{id}");
        let ttl = std::time::Duration::from_secs(60);
        s.create_batch(&batch("batch_run", "alice", false))
            .await
            .unwrap();
        s.create_batch(&batch("batch_done", "alice", true))
            .await
            .unwrap();
        // Written by a version without the index.
        let old = batch("batch_old", "alice", false);
        s.create_json(&batch_record_path(&old.id), &old)
            .await
            .unwrap();
        // Removed, its entry and lease left by a kill; a lease on a collected batch.
        s.put_marker(&format!("{}batch_gone", index_folder("batches", "alice")))
            .await
            .unwrap();
        for id in ["batch_run", "batch_done", "batch_gone"] {
            assert!(s.take_lease(&lease(id), "a", ttl).await.unwrap());
        }
        // Each made: its file names it.
        for id in ["batch_run", "batch_done", "batch_old"] {
            let mut f = file(&format!("file-of-{id}"), "alice");
            f.batch = Some(id.to_owned());
            s.create_file(&f).await.unwrap();
        }
        assert!(s.take_lease("sweep", "a", ttl).await.unwrap());
        let ids = |v: Vec<BatchRecord>| {
            let mut ids: Vec<String> = v.into_iter().map(|b| b.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(
            ids(s.batches_of("alice").await.unwrap()),
            ["batch_done", "batch_run"]
        );
        let records = s.tidy_batches(lease).await.unwrap();
        assert_eq!(ids(records), ["batch_done", "batch_old", "batch_run"]);
        assert_eq!(
            ids(s.batches_of("alice").await.unwrap()),
            ["batch_done", "batch_old", "batch_run"]
        );
        assert!(!dir
            .path()
            .join(index_folder("batches", "alice"))
            .join("batch_gone")
            .exists());
        let mut leases = s.children("leases/").await.unwrap();
        leases.sort();
        assert_eq!(leases, ["batch-batch_run.json", "sweep.json"]);

        // A record that does not read is left out of every listing — the others read as
        // before (it used to fail them all: every listing, every sweep, every batch's
        // progress) — and left alone: its record, its entry and its lease are kept.
        std::fs::write(dir.path().join(batch_record_path("batch_bad")), b"{\"id\":").unwrap();
        s.put_marker(&format!("{}batch_bad", index_folder("batches", "alice")))
            .await
            .unwrap();
        assert!(s.take_lease(&lease("batch_bad"), "a", ttl).await.unwrap());
        assert_eq!(
            ids(s.batches().await.unwrap()),
            ["batch_done", "batch_old", "batch_run"]
        );
        assert_eq!(
            ids(s.batches_of("alice").await.unwrap()),
            ["batch_done", "batch_old", "batch_run"]
        );
        let records = s.tidy_batches(lease).await.unwrap();
        assert_eq!(ids(records), ["batch_done", "batch_old", "batch_run"]);
        assert!(dir.path().join(batch_record_path("batch_bad")).exists());
        assert!(dir
            .path()
            .join(index_folder("batches", "alice"))
            .join("batch_bad")
            .exists());
        let mut leases = s.children("leases/").await.unwrap();
        leases.sort();
        assert_eq!(
            leases,
            ["batch-batch_bad.json", "batch-batch_run.json", "sweep.json"]
        );
    }
}
