//! Expiry, as OpenAI has it: an upload's `expires_after` and a batch's `output_expires_after`
//! (`{"anchor": "created_at", "seconds": N}`, N from one hour to 30 days; 30 days when not
//! given, as OpenAI keeps batch files), shown as `expires_at`, and enforced by the background
//! task, which deletes what has expired — the objects in the staging prefix with the records'
//! view of them.
//!
//! An expired upload no batch uses goes whole (its folder and record); one a batch runs loses
//! its kept original and is hidden (404), while the batch's folder stays for the batch. A
//! batch's expired output and error files are deleted and their ids answer 404; the batch
//! itself stays, as on OpenAI.

use super::error::{ApiError, ApiResult};
use super::state::{now, StateError};
use super::Server;

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
        let text = self.seconds.unwrap_or_default().trim();
        let min = i64::try_from(min).unwrap_or(MAX_SECONDS).min(MAX_SECONDS);
        match text.parse::<i64>() {
            Ok(n) if (min..=MAX_SECONDS).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(format!(
                "{param}.seconds: {text:?}; a whole number of seconds from {min} to {MAX_SECONDS} (30 days)"
            ))
            .param(param)),
        }
    }
}

/// Deletes what has expired: uploads, and batches' output and error files. One item in trouble
/// is logged and does not stop the others.
pub(crate) async fn expire_all(server: &Server) -> Result<(), StateError> {
    let now = now();
    for f in server.staging.files().await? {
        if f.expired || f.expires_at.is_none_or(|at| at > now) {
            continue;
        }
        let _held = server.lock(&f.id).lock_owned().await;
        // Read again under the lock: a batch may have been made from it meanwhile.
        let Some(mut f) = server.staging.file(&f.id).await? else {
            continue;
        };
        match &f.batch {
            None => {
                server.staging.remove_folder(&f.id).await;
                tracing::info!(file = f.id, "expired: removed");
            }
            Some(batch) => {
                server.staging.remove_upload(&f.id).await?;
                f.expired = true;
                server.staging.save_file(&f).await?;
                tracing::info!(
                    file = f.id,
                    batch,
                    "expired: its upload removed, its batch's folder kept"
                );
            }
        }
    }
    for b in server.staging.batches().await? {
        let Some(seconds) = b.output_expires_after else {
            continue;
        };
        if b.outputs_expired || b.failure.is_some() {
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
        if (results.finished_at as i64).saturating_add(seconds) > now {
            continue;
        }
        let Some(mut b) = server.staging.batch(&b.id).await? else {
            continue;
        };
        server.staging.remove_results(&b.input_file_id).await?;
        b.outputs_expired = true;
        server.staging.save_batch(&b).await?;
        tracing::info!(batch = b.id, "expired: its output and error files removed");
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
}
