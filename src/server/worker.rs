//! The background task: every poll interval, each running batch takes one
//! [`advance`](crate::driver::BatchFolder::advance) step — jobs waiting for a slot submitted,
//! every job's state read — and a batch whose jobs have all ended has its results collected
//! into its folder's `results/`. It answers no requests.
//!
//! Several servers on one staging prefix share the work through leases: a batch is moved along
//! by the server holding its lease (`batch-<id>`), and expiry is swept by the one holding
//! `sweep`. A lease runs out [`lease_ttl`] after it was last renewed — renewed while its work
//! runs —, so a server that dies leaves its batches to another within that time. The leases
//! keep two servers from doing one step twice; the batch folder's own lock and its
//! idempotent submission keep it correct if they ever do (a server that stalled past its
//! lease).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::state::{BatchRecord, StateError};
use super::Server;
use crate::driver::{timeout_hours, DriverError, JobStatus};

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

/// How long a lease of background work lasts unless renewed: ten poll intervals, from 2 s to
/// 10 minutes.
fn lease_ttl(poll: Duration) -> Duration {
    (poll * 10).clamp(Duration::from_secs(2), Duration::from_secs(600))
}

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
            let sweep = async {
                let census = match server.staging.census().await {
                    Ok(census) => census,
                    Err(e) => return tracing::warn!("reading the file records: {e}"),
                };
                if let Err(e) = super::expiry::expire_all(&server, &census.records).await {
                    tracing::warn!("deleting what expired: {e}");
                }
                let orphans = census.without_record;
                let removed = super::expiry::remove_orphans(
                    &server.storage,
                    &server.staging,
                    orphans,
                    &mut suspects,
                );
                if let Err(e) = removed.await {
                    tracing::warn!("removing uploads cut off: {e}");
                }
                if let Err(e) = super::expiry::tidy_batches(&server).await {
                    tracing::warn!("mending the batches' index and leases: {e}");
                }
            };
            if let Err(e) = leased(&server, "sweep", sweep).await {
                tracing::warn!("{e}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Runs `work` if this server holds the lease `name` (taking it when it is free or ran out),
/// renewing it while `work` runs; `None` when another server holds it.
async fn leased<F: Future>(
    server: &Server,
    name: &str,
    work: F,
) -> Result<Option<F::Output>, StateError> {
    let ttl = lease_ttl(server.config.poll_interval());
    if !server.staging.take_lease(name, &server.holder, ttl).await? {
        return Ok(None);
    }
    server.held(name);
    let done = tokio::sync::Notify::new();
    let renew = async {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ttl / 4) => {}
                _ = done.notified() => return,
            }
            // A renewal under way is let finish, never dropped half-way: a write cut off in
            // the middle leaves some S3 implementations' object torn.
            match server.staging.take_lease(name, &server.holder, ttl).await {
                Ok(true) => {}
                // The work goes on: the folder's lock keeps it correct; this only says that
                // another server may now be doing it too.
                Ok(false) => tracing::warn!(lease = name, "lost to another server while working"),
                Err(e) => tracing::warn!(lease = name, "renewing: {e}"),
            }
        }
    };
    let work = async {
        let out = work.await;
        // Stored if the renewal is writing: it ends once the write has.
        done.notify_one();
        out
    };
    let (out, ()) = tokio::join!(work, renew);
    Ok(Some(out))
}

/// One round: every batch still running takes a step, each by the server holding its lease.
pub(crate) async fn advance_all(server: &Server) -> Result<(), StateError> {
    for b in server.staging.batches().await? {
        if b.failure.is_some() || b.collected {
            continue;
        }
        // One batch in trouble (Bedrock or S3 refusing it) must not hold up the others.
        let lease = batch_lease(&b.id);
        match leased(server, &lease, advance(server, &b)).await {
            Ok(Some(Ok(Progress::Collected | Progress::Gone))) => {
                // Over for good: a server that looks at the batch again finds it collected
                // or gone.
                if let Err(e) = server.staging.remove_lease(&lease).await {
                    tracing::warn!(batch = b.id, "{e}");
                }
                server.not_held(&lease);
            }
            Ok(Some(Ok(Progress::Running)) | None) => {}
            Ok(Some(Err(e))) => tracing::warn!(batch = b.id, "{e}"),
            Err(e) => tracing::warn!(batch = b.id, "{e}"),
        }
    }
    Ok(())
}

/// The name of the lease on moving batch `id` along.
pub(crate) fn batch_lease(id: &str) -> String {
    format!("batch-{id}")
}

/// Where a batch is after its step.
enum Progress {
    /// Jobs run, or wait to.
    Running,
    /// Its results are collected (by this step or an earlier one): nothing more to do.
    Collected,
    /// Its record is gone (a batch whose making was taken back).
    Gone,
}

async fn advance(server: &Server, listed: &BatchRecord) -> Result<Progress, AdvanceError> {
    let _held = server.lock(&listed.id).lock_owned().await;
    // Read again (the listing can be old: another server may have cancelled it), and only a
    // batch its file names is moved along: a record whose making did not finish (its file went
    // to another server's batch, or its submission was taken back) runs nothing.
    let Some(b) = server.staging.batch(&listed.id).await? else {
        return Ok(Progress::Gone);
    };
    if b.collected {
        return Ok(Progress::Collected);
    }
    if !server.staging.made(&b).await? || b.failure.is_some() {
        return Ok(Progress::Running);
    }
    let b = &b;
    let mut folder = server.folder_of_file(&b.input_file_id).await?;
    if folder.results().is_some() {
        mark_collected(server, &b.id).await?;
        return Ok(Progress::Collected);
    }
    if folder.results_unsettled() {
        // Not "no results": a commit is under way, or a killed one waits to be put back.
        folder.settle().await?;
        return Ok(Progress::Running);
    }
    let settings = server.settings(timeout_hours(&b.completion_window).unwrap_or(24));
    // A batch being cancelled gets no new jobs.
    let submit = b.cancel_requested_at.is_none().then_some((&settings, 20));
    let step = folder.advance(&server.driver, submit).await?;
    // A cancel asked for while this step submitted (after the record was read) may not have
    // seen the jobs it submitted: the cancel is read again, and the jobs still running stop.
    let cancelled = b.cancel_requested_at.is_some()
        || (step.submitted.is_some()
            && server
                .staging
                .batch(&b.id)
                .await?
                .is_some_and(|b| b.cancel_requested_at.is_some()));
    if cancelled {
        for job in step.jobs.iter().filter(|j| !j.status.is_terminal()) {
            if job.status != JobStatus::Stopping {
                server.driver.stop(&job.arn).await?;
            }
        }
    }
    if !step.ended {
        return Ok(Progress::Running);
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
    mark_collected(server, &b.id).await?;
    Ok(Progress::Collected)
}

/// Records that batch `id` needs nothing more of the background task.
async fn mark_collected(server: &Server, id: &str) -> Result<(), StateError> {
    server
        .staging
        .update_batch(id, |b| {
            let first = !b.collected;
            b.collected = true;
            Ok::<_, StateError>(first)
        })
        .await
        .map(drop)
}
