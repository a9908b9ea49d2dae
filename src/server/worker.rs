//! The background task: every poll interval, each running batch takes one
//! [`advance`](crate::driver::BatchFolder::advance) step — jobs waiting for a slot submitted,
//! every job's state read — and a batch whose jobs have all ended has its results collected
//! into its folder's `results/`. It answers no requests.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::state::{BatchRecord, StateError};
use super::Server;
use crate::driver::{timeout_hours, DriverError};

/// Why one batch could not be moved along this round.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdvanceError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// How often expired files are looked for, at most (each look lists every record).
const EXPIRY_SWEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// Moves batches along, and deletes what has expired, until `stop` is cancelled.
pub(crate) async fn advance_forever(server: Arc<Server>, stop: CancellationToken) {
    let every = server.config.poll_interval();
    let mut swept: Option<std::time::Instant> = None;
    let mut suspects = std::collections::HashSet::new();
    loop {
        if let Err(e) = advance_all(&server).await {
            tracing::warn!("moving batches along: {e}");
        }
        if swept.is_none_or(|at| at.elapsed() >= EXPIRY_SWEEP.min(every * 10)) {
            swept = Some(std::time::Instant::now());
            if let Err(e) = super::expiry::expire_all(&server).await {
                tracing::warn!("deleting what expired: {e}");
            }
            if let Err(e) = super::expiry::remove_orphans(&server, &mut suspects).await {
                tracing::warn!("removing uploads cut off: {e}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One round: every batch still running takes a step.
pub(crate) async fn advance_all(server: &Server) -> Result<(), StateError> {
    for b in server.staging.batches().await? {
        if b.failure.is_some() {
            continue;
        }
        // One batch in trouble (Bedrock or S3 refusing it) must not hold up the others.
        if let Err(e) = advance(server, &b).await {
            tracing::warn!(batch = b.id, "{e}");
        }
    }
    Ok(())
}

async fn advance(server: &Server, listed: &BatchRecord) -> Result<(), AdvanceError> {
    let _held = server.lock(&listed.id).lock_owned().await;
    // Read again (the listing can be old: another server may have cancelled it), and only a
    // batch its file names is moved along: a record whose making did not finish (its file went
    // to another server's batch, or its submission was taken back) runs nothing.
    let Some(b) = server.staging.batch(&listed.id).await? else {
        return Ok(());
    };
    let attached = server
        .staging
        .file_record(&b.input_file_id)
        .await?
        .is_some_and(|f| f.batch.as_deref() == Some(b.id.as_str()));
    if !attached || b.failure.is_some() {
        return Ok(());
    }
    let b = &b;
    let mut folder = server.folder_of_file(&b.input_file_id).await?;
    if folder.results().is_some() {
        return Ok(());
    }
    if folder.results_unsettled() {
        // Not "no results": a commit is under way, or a killed one waits to be put back.
        return Ok(folder.settle().await?);
    }
    let settings = server.settings(timeout_hours(&b.completion_window).unwrap_or(24));
    // A batch being cancelled gets no new jobs.
    let submit = b.cancel_requested_at.is_none().then_some((&settings, 20));
    let step = folder.advance(&server.driver, submit).await?;
    if !step.ended {
        return Ok(());
    }
    let collected = folder
        .collect(
            &server.storage,
            &step.jobs,
            &server.staging.result_file(&b.input_file_id, "output.jsonl"),
            &server.staging.result_file(&b.input_file_id, "errors.jsonl"),
            &Default::default(),
        )
        .await?;
    tracing::info!(
        batch = b.id,
        succeeded = collected.report.succeeded,
        failed = collected.report.failed,
        missing = collected.report.missing,
        "results ready"
    );
    Ok(())
}
