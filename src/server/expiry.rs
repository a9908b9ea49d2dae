//! Expiry, as OpenAI has it: an upload's `expires_after` and a batch's `output_expires_after`
//! (`{"anchor": "created_at", "seconds": N}`, N from one hour to 30 days; 30 days when not
//! given, as OpenAI keeps batch files), shown as `expires_at`, and enforced by the background
//! task, which deletes what has expired — the objects in the staging prefix with the records'
//! view of them.
//!
//! Expired things answer 404 from the moment they expire; the task removes them soon after. An
//! expired upload no batch uses goes whole (its folder and record); one a batch runs loses its
//! kept original and is hidden, while the batch's folder stays for the batch. When a batch's
//! output and error files expire they are deleted, and so is every request and answer its
//! folder holds (records, ledger, rejected lines, Bedrock's output); the batch itself stays,
//! with its counts, as on OpenAI.
//!
//! The same sweep removes what a server killed in the middle of an upload left: a folder with
//! no record, once its lock is free ([`remove_orphans`]); and the records of batches whose
//! making a kill cut off, with the batches' index and leases mended ([`tidy_batches`]).

use std::collections::HashSet;
use std::sync::Arc;

use super::error::{ApiError, ApiResult};
use super::state::{now, FileRecord, Staging, StateError};
use super::Server;
use crate::batch_folder::{FolderError, FolderWriter, LockOptions};
use crate::io::Storage;

/// The longest expiry OpenAI takes, and the one given when none is asked for: 30 days.
pub(crate) const MAX_SECONDS: i64 = 2_592_000;

/// An expiry policy as the request gave it: its `anchor` and its `seconds` (each `None` when
/// absent), read as text (a form field) or JSON (a batch's body).
pub(crate) struct Asked<'a> {
    /// `expires_after` or `output_expires_after`, for messages.
    pub param: &'static str,
    pub anchor: Option<&'a str>,
    pub seconds: Option<&'a str>,
}

impl Asked<'_> {
    /// The seconds after creation it asks for: from `min` (the server's shortest, OpenAI's one
    /// hour unless configured lower) to 30 days; 30 days when nothing was asked.
    pub(crate) fn seconds(&self, min: u64) -> ApiResult<i64> {
        let param = self.param;
        match (self.anchor, self.seconds) {
            (None, None) => return Ok(MAX_SECONDS),
            (Some("created_at"), Some(_)) => {}
            (Some(other), _) if other != "created_at" => {
                return Err(ApiError::bad(format!(
                    "{param}.anchor: {other:?}; the one anchor is \"created_at\""
                ))
                .param(param))
            }
            _ => {
                return Err(ApiError::bad(format!(
                    "{param}: both anchor (\"created_at\") and seconds are required"
                ))
                .param(param))
            }
        }
        let text = self.seconds.unwrap_or_default();
        let min = i64::try_from(min).unwrap_or(MAX_SECONDS).min(MAX_SECONDS);
        // Digits only: no sign, space, fraction or exponent (a JSON string is refused too).
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        match text.parse::<i64>().ok().filter(|_| digits) {
            Some(n) if (min..=MAX_SECONDS).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(format!(
                "{param}.seconds: {text:?}; a whole number of seconds from {min} to {MAX_SECONDS} (30 days)"
            ))
            .param(param)),
        }
    }
}

/// Deletes what has expired: uploads (of `files`, every file record), and batches' output and
/// error files. One item in trouble is logged and does not stop the others.
pub(crate) async fn expire_all(server: &Server, files: &[FileRecord]) -> Result<(), StateError> {
    let now = now();
    // Expired and not yet dealt with; or deleted with nothing using it, and not yet removed
    // whole (a removal cut short).
    let due = |f: &FileRecord| {
        (!f.deleted && !f.expired && f.expires_at.is_some_and(|at| at <= now))
            || ((f.deleted || f.expired) && f.batch.is_none())
    };
    for f in files {
        if !due(f) {
            continue;
        }
        let _held = server.lock(&f.id).lock_owned().await;
        // Marked expired in one compare-and-swap, which says whether a batch uses it: a batch
        // another server makes of it at the same moment either came first (its folder stays)
        // or finds it expired.
        let mut act = false;
        let marked = server
            .staging
            .update_file(&f.id, |f| {
                act = due(f);
                let mark = act && !f.deleted && !f.expired;
                f.expired |= mark;
                Ok::<_, StateError>(mark)
            })
            .await?;
        let Some(f) = marked.filter(|_| act) else {
            continue;
        };
        match &f.batch {
            None => {
                server.staging.remove_folder(&f.owner, &f.id).await;
                tracing::info!(file = f.id, "expired: removed");
            }
            Some(batch) => {
                server.staging.remove_upload(&f.id).await?;
                tracing::info!(
                    file = f.id,
                    batch,
                    "expired: its upload removed, its batch's folder kept"
                );
            }
        }
    }
    for b in server.staging.batches().await? {
        if b.outputs_expired || b.failure.is_some() || b.output_expires_after.is_none() {
            continue;
        }
        let _held = server.lock(&b.id).lock_owned().await;
        let folder = match server.folder_of_file(&b.input_file_id).await {
            Ok(folder) => folder,
            Err(e) => {
                tracing::warn!(batch = b.id, "{e}");
                continue;
            }
        };
        let Some(results) = folder.results() else {
            continue;
        };
        if !b.outputs_gone(results.finished_at, now) {
            continue;
        }
        let Some(b) = server.staging.batch(&b.id).await? else {
            continue;
        };
        // Every request and answer the folder holds, then the results: the record stays.
        if let Err(e) = folder.erase_data().await {
            tracing::warn!(batch = b.id, "{e}");
            continue;
        }
        server.staging.remove_results(&b.input_file_id).await?;
        server
            .staging
            .update_batch(&b.id, |b| {
                b.outputs_expired = true;
                Ok::<_, StateError>(true)
            })
            .await?;
        tracing::info!(
            batch = b.id,
            "expired: its output and error files and its requests removed"
        );
    }
    Ok(())
}

/// Removes the folders of uploads a kill cut off (objects, incomplete uploads, lock, index
/// entry), which no record names (`without_record`, from [`Census`]): one seen without a record
/// on two sweeps in a row — an upload's commit and its record are moments apart — whose lock
/// is free or whose holder is gone, and which still has no record once the lock is taken. An
/// upload still streaming in holds its folder's lock and is left alone.
///
/// [`Census`]: super::state::Census
pub(crate) async fn remove_orphans(
    storage: &Storage,
    staging: &Staging,
    without_record: Vec<(String, Option<String>)>,
    suspects: &mut HashSet<String>,
) -> Result<(), StateError> {
    let entries: std::collections::HashMap<String, Option<String>> =
        without_record.into_iter().collect();
    let now_without: HashSet<String> = entries.keys().cloned().collect();
    for id in now_without.intersection(suspects) {
        let dest = match storage.folder(&staging.file_folder(id)).await {
            Ok(dest) => dest,
            Err(e) => {
                tracing::warn!(file = id, "{e}");
                continue;
            }
        };
        let writer =
            match FolderWriter::open(Arc::clone(&dest), &LockOptions::for_command("serve")).await {
                Ok(writer) => writer,
                // Held by a live upload.
                Err(FolderError::Locked { .. }) => continue,
                Err(e) => {
                    tracing::warn!(file = id, "{e}");
                    continue;
                }
            };
        // The census was read before the lock was taken: an upload may have written its record
        // and let go of its lock in between. The record is written before the lock is let go,
        // so with the lock held, this read is the truth.
        match staging.file_record(id).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                writer.release().await;
                continue;
            }
            Err(e) => {
                writer.release().await;
                tracing::warn!(file = id, "{e}");
                continue;
            }
        }
        // The folder is ours: every incomplete upload below it is a dead writer's.
        let mut removed = dest.clean_up(|_| true).await.unwrap_or_default();
        for listed in dest.list("").await.unwrap_or_default() {
            match dest.delete(&listed.path).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(file = id, "removing {}: {e}", listed.path),
            }
        }
        writer.release().await;
        if let Some(Some(entry)) = entries.get(id) {
            staging.remove_index_entry(entry).await?;
        }
        tracing::info!(
            file = id,
            removed,
            "removed an upload cut off before its record"
        );
    }
    *suspects = now_without;
    Ok(())
}

/// How long a batch record may go without its file naming it before it counts as one whose
/// making was cut off: far longer than making a batch takes.
const UNMADE_AFTER: i64 = 600;

/// Mends the batches' index and leases ([`Staging::tidy_batches`]), and removes the records
/// of batches whose making a kill cut off between the record and its file's attach (the file
/// does not name them), once they are [`UNMADE_AFTER`] old. A batch that is attached later
/// finds its record gone and takes itself back.
///
/// [`Staging::tidy_batches`]: super::state::Staging::tidy_batches
pub(crate) async fn tidy_batches(server: &Server) -> Result<(), StateError> {
    let now = now();
    for b in server
        .staging
        .tidy_batches(super::worker::batch_lease)
        .await?
    {
        if b.collected || b.created_at.saturating_add(UNMADE_AFTER) > now {
            continue;
        }
        let _held = server.lock(&b.input_file_id).lock_owned().await;
        if !server.staging.made(&b).await? {
            server
                .staging
                .remove_batch(&b, &super::worker::batch_lease(&b.id))
                .await?;
            tracing::info!(batch = b.id, "removed a batch whose making was cut off");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(anchor: Option<&'static str>, seconds: Option<&'static str>) -> Asked<'static> {
        Asked {
            param: "expires_after",
            anchor,
            seconds,
        }
    }

    #[test]
    fn openai_limits_and_default() {
        assert_eq!(asked(None, None).seconds(3600).unwrap(), MAX_SECONDS);
        assert_eq!(
            asked(Some("created_at"), Some("3600"))
                .seconds(3600)
                .unwrap(),
            3600
        );
        assert_eq!(
            asked(Some("created_at"), Some("2592000"))
                .seconds(3600)
                .unwrap(),
            MAX_SECONDS
        );
        for (anchor, seconds) in [
            (Some("created_at"), Some("3599")),
            (Some("created_at"), Some("2592001")),
            (Some("created_at"), Some("1.5")),
            (Some("created_at"), Some("-1")),
            (Some("created_at"), Some("+3600")),
            (Some("created_at"), Some(" 3600")),
            (Some("created_at"), Some("3600\n")),
            (Some("created_at"), Some("\"3600\"")),
            (Some("created_at"), None),
            (None, Some("3600")),
            (Some("last_active_at"), Some("3600")),
        ] {
            let e = asked(anchor, seconds).seconds(3600).unwrap_err();
            assert_eq!(e.param, Some("expires_after"), "{anchor:?} {seconds:?}");
        }
        // A server configured for shorter expiries takes them.
        assert_eq!(asked(Some("created_at"), Some("1")).seconds(1).unwrap(), 1);
    }

    /// Upload `id`'s folder with an object in it and its index entry, and no record: an
    /// upload between its first write and its record, or one a kill cut off.
    async fn upload_without_record(storage: &Storage, staging: &Staging, id: &str) {
        let dest = storage.folder(&staging.file_folder(id)).await.unwrap();
        let w = dest.create("requests.jsonl").await.unwrap();
        w.finish().await.unwrap();
        staging
            .index_file(&super::super::state::testing::file(id, "alice"))
            .await
            .unwrap();
    }

    /// The objects in upload `id`'s folder, sorted.
    async fn objects_in(storage: &Storage, staging: &Staging, id: &str) -> Vec<String> {
        let dest = storage.folder(&staging.file_folder(id)).await.unwrap();
        let mut names: Vec<String> = dest
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.path)
            .collect();
        names.sort_unstable();
        names
    }

    /// The sweep reads the census, then takes each suspect's lock. An upload that writes its
    /// record and lets go of its lock in between is kept: the record is read again under
    /// the lock. (A server under load lost an upload it had answered 200 for this way.)
    #[tokio::test]
    async fn an_upload_recorded_between_the_census_and_the_lock_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, staging) = super::super::state::testing::staging_in(&dir).await;
        for id in ["file-kept", "file-orphan"] {
            upload_without_record(&storage, &staging, id).await;
        }
        let census = staging.census().await.unwrap();
        let mut without: Vec<&str> = census
            .without_record
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        without.sort_unstable();
        assert_eq!(without, ["file-kept", "file-orphan"]);
        // Seen without a record on the sweep before, too.
        let mut suspects: HashSet<String> = without.iter().map(|id| (*id).to_owned()).collect();
        // The upload's record lands after the census was read.
        let record = super::super::state::testing::file("file-kept", "alice");
        staging.create_file(&record).await.unwrap();
        remove_orphans(&storage, &staging, census.without_record, &mut suspects)
            .await
            .unwrap();
        let listed: Vec<String> = staging
            .files_of("alice")
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(listed, ["file-kept"]);
        assert_eq!(
            objects_in(&storage, &staging, "file-kept").await,
            ["file.json", "requests.jsonl"]
        );
        // The one still without a record went, whole.
        assert!(objects_in(&storage, &staging, "file-orphan")
            .await
            .is_empty());
        // Its index entry too (a local folder keeps the empty directory, which S3 does not).
        let census = staging.census().await.unwrap();
        assert!(census
            .without_record
            .iter()
            .all(|(_, entry)| entry.is_none()));
    }
}
