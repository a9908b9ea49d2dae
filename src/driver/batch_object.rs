//! A batch's state as an OpenAI Batch object (formats.md B.4), from its Bedrock jobs.
//!
//! Bedrock → OpenAI status: Submitted, Validating → `validating`; Scheduled, InProgress →
//! `in_progress`; Completed → `completed`; PartiallyCompleted → `expired` (OpenAI's meaning
//! exactly: the window ran out, what finished is in the output file, the rest are `batch_expired`
//! lines); Failed → `failed`; Stopping → `cancelling`; Stopped → `cancelled`; Expired → `expired`.
//! `finalizing` is shown while the results are being converted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::job::{JobInfo, JobStatus};
use crate::batch_folder::ResultsRecord;

/// OpenAI's batch statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// The input is being validated.
    Validating,
    /// The input failed validation (or the job failed).
    Failed,
    /// Running.
    InProgress,
    /// The results are being prepared.
    Finalizing,
    /// Done; the results are ready.
    Completed,
    /// The window ran out; partial results.
    Expired,
    /// Being cancelled.
    Cancelling,
    /// Cancelled; partial results.
    Cancelled,
}

impl BatchStatus {
    /// The status OpenAI shows for a Bedrock job status.
    pub fn of_job(status: &JobStatus) -> BatchStatus {
        match status {
            JobStatus::Submitted | JobStatus::Validating => BatchStatus::Validating,
            JobStatus::Scheduled | JobStatus::InProgress | JobStatus::Unknown(_) => {
                BatchStatus::InProgress
            }
            JobStatus::Completed => BatchStatus::Completed,
            JobStatus::PartiallyCompleted | JobStatus::Expired => BatchStatus::Expired,
            JobStatus::Failed => BatchStatus::Failed,
            JobStatus::Stopping => BatchStatus::Cancelling,
            JobStatus::Stopped => BatchStatus::Cancelled,
        }
    }

    /// OpenAI's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::Failed => "failed",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the batch will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchStatus::Failed
                | BatchStatus::Completed
                | BatchStatus::Expired
                | BatchStatus::Cancelled
        )
    }

    /// The status of a batch made of several jobs (some maybe not submitted yet): active while
    /// any job is; once all are done, `failed` only if every job failed, else `cancelled` if one
    /// was stopped, `expired` if one ran out of time, `completed` otherwise.
    pub fn combine(jobs: &[JobStatus], pending: usize) -> BatchStatus {
        let each: Vec<BatchStatus> = jobs.iter().map(BatchStatus::of_job).collect();
        let any = |s: BatchStatus| each.contains(&s);
        if pending > 0 || each.iter().any(|s| !s.is_terminal()) {
            return if any(BatchStatus::Cancelling) {
                BatchStatus::Cancelling
            } else if each.iter().all(|&s| s == BatchStatus::Validating)
                && (pending == 0 || each.is_empty())
            {
                // Nothing has started running yet.
                BatchStatus::Validating
            } else {
                BatchStatus::InProgress
            };
        }
        if !each.is_empty() && each.iter().all(|&s| s == BatchStatus::Failed) {
            BatchStatus::Failed
        } else if any(BatchStatus::Cancelled) {
            BatchStatus::Cancelled
        } else if any(BatchStatus::Expired) {
            BatchStatus::Expired
        } else {
            BatchStatus::Completed
        }
    }
}

/// `request_counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests in the batch.
    pub total: u64,
    /// Requests that succeeded.
    pub completed: u64,
    /// Requests that failed (Bedrock errors and requests never run).
    pub failed: u64,
}

/// One entry of `errors.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    /// A machine-readable code.
    pub code: String,
    /// What happened.
    pub message: String,
    /// The parameter at fault.
    pub param: Option<String>,
    /// The input line at fault.
    pub line: Option<u64>,
}

/// `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchErrors {
    /// `"list"`.
    pub object: String,
    /// The errors.
    pub data: Vec<BatchError>,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Prompt tokens read from the cache.
    pub cached_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Reasoning tokens (Bedrock does not report them apart; 0).
    pub reasoning_tokens: u64,
}

/// `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Of which cached.
    pub input_tokens_details: InputTokensDetails,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Of which reasoning.
    pub output_tokens_details: OutputTokensDetails,
    /// Both.
    pub total_tokens: u64,
}

/// An OpenAI Batch object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchObject {
    /// `batch_…`.
    pub id: String,
    /// `"batch"`.
    pub object: String,
    /// The OpenAI endpoint of the requests.
    pub endpoint: String,
    /// The model the requests named.
    pub model: Option<String>,
    /// Why the batch (or a job of it) failed.
    pub errors: Option<BatchErrors>,
    /// The input.
    pub input_file_id: String,
    /// The completion window (`24h` …).
    pub completion_window: String,
    /// The status.
    pub status: BatchStatus,
    /// The OpenAI output file, once collected.
    pub output_file_id: Option<String>,
    /// The OpenAI error file, once collected.
    pub error_file_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds (Bedrock does not say when a job started running: null).
    pub in_progress_at: Option<i64>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub finalizing_at: Option<i64>,
    /// Unix seconds.
    pub completed_at: Option<i64>,
    /// Unix seconds.
    pub failed_at: Option<i64>,
    /// Unix seconds.
    pub expired_at: Option<i64>,
    /// Unix seconds.
    pub cancelling_at: Option<i64>,
    /// Unix seconds.
    pub cancelled_at: Option<i64>,
    /// Request counts.
    pub request_counts: RequestCounts,
    /// Token usage, once the results are collected.
    pub usage: Option<BatchUsage>,
    /// `job_arn` (or `job_arns`), `model_id`, `bedrock_status`, and what the caller adds.
    pub metadata: BTreeMap<String, String>,
}

/// What a batch is besides its jobs.
#[derive(Debug, Clone, Default)]
pub struct BatchContext {
    /// The batch id.
    pub id: String,
    /// The OpenAI endpoint.
    pub endpoint: String,
    /// The model the requests named.
    pub model: Option<String>,
    /// The input file.
    pub input_file_id: String,
    /// Requests in the batch, when known (else Bedrock's counts).
    pub total_records: Option<u64>,
    /// Jobs of the batch not submitted yet (and still to be).
    pub pending_jobs: usize,
    /// When the batch was cancelled, if it was: `cancelling` until its jobs have ended, then
    /// `cancelled`.
    pub cancelled_at: Option<i64>,
    /// When the batch was created, if no job was submitted yet.
    pub created_at: i64,
    /// The last collection of results, if any.
    pub results: Option<ResultsRecord>,
    /// Set while the results are being converted: since when.
    pub finalizing_since: Option<i64>,
    /// More `metadata`.
    pub metadata: BTreeMap<String, String>,
}

impl BatchObject {
    /// The Batch object of a batch whose jobs are `jobs`.
    pub fn new(jobs: &[JobInfo], ctx: BatchContext) -> BatchObject {
        let status = batch_status(jobs, &ctx);
        let results = ctx.results.filter(|_| status.is_terminal());
        let latest_end = jobs.iter().filter_map(|j| j.ended_at).max();
        let at = |s: BatchStatus| (status == s).then_some(latest_end).flatten();
        let stopping_since = jobs
            .iter()
            .filter(|j| matches!(j.status, JobStatus::Stopping | JobStatus::Stopped))
            .filter_map(|j| j.last_modified_at.or(j.ended_at))
            .min();
        let request_counts = request_counts(jobs, results.as_ref(), ctx.total_records);
        let failures = job_failures(jobs);
        let metadata = job_metadata(ctx.metadata, jobs);
        let completion_window = jobs
            .iter()
            .find_map(|j| j.timeout_hours)
            .map_or_else(|| "24h".to_owned(), super::request::completion_window);
        BatchObject {
            id: ctx.id,
            object: "batch".into(),
            endpoint: ctx.endpoint,
            model: ctx.model,
            errors: (!failures.is_empty()).then(|| BatchErrors {
                object: "list".into(),
                data: failures,
            }),
            input_file_id: ctx.input_file_id,
            completion_window,
            status,
            output_file_id: results.as_ref().map(|r| r.output.clone()),
            error_file_id: results.as_ref().map(|r| r.errors.clone()),
            created_at: jobs
                .iter()
                .map(|j| j.submitted_at)
                .min()
                .unwrap_or(ctx.created_at),
            in_progress_at: None,
            expires_at: jobs.iter().filter_map(|j| j.expires_at).max(),
            finalizing_at: ctx
                .finalizing_since
                .or(results.as_ref().map(|r| r.started_at as i64)),
            completed_at: results
                .as_ref()
                .filter(|_| status == BatchStatus::Completed)
                .map(|r| r.finished_at as i64)
                .or(at(BatchStatus::Completed)),
            failed_at: at(BatchStatus::Failed),
            expired_at: at(BatchStatus::Expired),
            cancelling_at: matches!(status, BatchStatus::Cancelling | BatchStatus::Cancelled)
                .then_some(stopping_since.or(ctx.cancelled_at))
                .flatten(),
            // (A batch cancelled before any job was stopped: when it was cancelled.)
            cancelled_at: at(BatchStatus::Cancelled).or(ctx
                .cancelled_at
                .filter(|_| status == BatchStatus::Cancelled)),
            request_counts,
            usage: results.as_ref().map(|r| BatchUsage {
                input_tokens: r.input_tokens,
                input_tokens_details: InputTokensDetails {
                    cached_tokens: r.cached_tokens,
                },
                output_tokens: r.output_tokens,
                output_tokens_details: OutputTokensDetails::default(),
                total_tokens: r.input_tokens + r.output_tokens,
            }),
            metadata,
        }
    }
}

/// The batch's status: its jobs' combined; while the results are being converted, a finished
/// batch is `finalizing`, a stopped one still `cancelling` (OpenAI shows `cancelled` with its
/// files ready), a failed one stays `failed`.
fn batch_status(jobs: &[JobInfo], ctx: &BatchContext) -> BatchStatus {
    let statuses: Vec<JobStatus> = jobs.iter().map(|j| j.status.clone()).collect();
    let mut status = BatchStatus::combine(&statuses, ctx.pending_jobs);
    if ctx.cancelled_at.is_some() && status != BatchStatus::Failed {
        status = if status.is_terminal() {
            BatchStatus::Cancelled
        } else {
            BatchStatus::Cancelling
        };
    }
    if ctx.finalizing_since.is_none() {
        return status;
    }
    match status {
        BatchStatus::Completed | BatchStatus::Expired => BatchStatus::Finalizing,
        BatchStatus::Cancelled => BatchStatus::Cancelling,
        other => other,
    }
}

/// The request counts: from the results once collected, else from Bedrock's counters.
fn request_counts(
    jobs: &[JobInfo],
    results: Option<&ResultsRecord>,
    total_records: Option<u64>,
) -> RequestCounts {
    let sum = |f: fn(&JobInfo) -> Option<u64>| jobs.iter().filter_map(f).sum::<u64>();
    match results {
        Some(r) => RequestCounts {
            total: total_records.unwrap_or(r.succeeded + r.failed + r.missing),
            completed: r.succeeded,
            failed: r.failed + r.missing,
        },
        None => RequestCounts {
            total: total_records.unwrap_or_else(|| sum(|j| j.total_records)),
            completed: sum(|j| j.succeeded_records),
            failed: sum(|j| j.failed_records),
        },
    }
}

/// An error for each job that failed, with Bedrock's reason.
fn job_failures(jobs: &[JobInfo]) -> Vec<BatchError> {
    jobs.iter()
        .filter(|j| j.status == JobStatus::Failed)
        .map(|j| BatchError {
            code: "bedrock_job_failed".into(),
            message: format!(
                "Bedrock job {} failed: {}",
                j.id(),
                j.message.as_deref().unwrap_or("no reason given")
            ),
            param: None,
            line: None,
        })
        .collect()
}

/// The caller's metadata with the jobs': `job_arn` (or `job_arns`), `model_id`,
/// `bedrock_status`.
fn job_metadata(
    mut metadata: BTreeMap<String, String>,
    jobs: &[JobInfo],
) -> BTreeMap<String, String> {
    if let [job] = jobs {
        metadata.insert("job_arn".into(), job.arn.clone());
    } else if !jobs.is_empty() {
        let arns: Vec<&str> = jobs.iter().map(|j| j.arn.as_str()).collect();
        metadata.insert("job_arns".into(), arns.join(","));
    }
    if let Some(model) = jobs.first().map(|j| &j.model_id) {
        metadata
            .entry("model_id".into())
            .or_insert_with(|| model.clone());
    }
    let bedrock: Vec<&str> = jobs.iter().map(|j| j.status.as_str()).collect();
    metadata.insert("bedrock_status".into(), bedrock.join(","));
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus) -> JobInfo {
        JobInfo {
            arn: "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefgh1234".into(),
            name: "n".into(),
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            status,
            message: None,
            invocation_type: Some("InvokeModel".into()),
            input_uri: None,
            output_uri: None,
            submitted_at: 1000,
            last_modified_at: Some(1500),
            ended_at: Some(2000),
            expires_at: Some(1000 + 86400),
            timeout_hours: Some(24),
            total_records: Some(10),
            processed_records: Some(8),
            succeeded_records: Some(7),
            failed_records: Some(1),
        }
    }

    #[test]
    fn each_bedrock_status_maps_as_documented() {
        use BatchStatus as B;
        use JobStatus as J;
        for (j, b) in [
            (J::Submitted, B::Validating),
            (J::Validating, B::Validating),
            (J::Scheduled, B::InProgress),
            (J::InProgress, B::InProgress),
            (J::Completed, B::Completed),
            (J::PartiallyCompleted, B::Expired),
            (J::Failed, B::Failed),
            (J::Stopping, B::Cancelling),
            (J::Stopped, B::Cancelled),
            (J::Expired, B::Expired),
        ] {
            assert_eq!(BatchStatus::of_job(&j), b, "{j}");
            assert_eq!(BatchStatus::combine(&[j], 0), b);
        }
    }

    #[test]
    fn several_jobs_combine() {
        use BatchStatus as B;
        use JobStatus as J;
        assert_eq!(B::combine(&[J::Completed, J::InProgress], 0), B::InProgress);
        assert_eq!(B::combine(&[J::Completed], 1), B::InProgress);
        assert_eq!(B::combine(&[], 2), B::Validating);
        assert_eq!(B::combine(&[J::Validating, J::Submitted], 0), B::Validating);
        assert_eq!(B::combine(&[J::Stopping, J::InProgress], 0), B::Cancelling);
        assert_eq!(B::combine(&[J::Completed, J::Failed], 0), B::Completed);
        assert_eq!(B::combine(&[J::Failed, J::Failed], 0), B::Failed);
        assert_eq!(B::combine(&[J::Completed, J::Stopped], 0), B::Cancelled);
        assert_eq!(
            B::combine(&[J::Completed, J::PartiallyCompleted], 0),
            B::Expired
        );
    }

    #[test]
    fn a_running_job_shows_bedrocks_counters_and_no_files() {
        let b = BatchObject::new(
            &[job(JobStatus::InProgress)],
            BatchContext {
                id: "batch_x".into(),
                endpoint: "/v1/chat/completions".into(),
                input_file_id: "s3://b/in.jsonl".into(),
                ..Default::default()
            },
        );
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["status"], "in_progress");
        assert_eq!(v["object"], "batch");
        assert_eq!(v["request_counts"]["total"], 10);
        assert_eq!(v["request_counts"]["completed"], 7);
        assert_eq!(v["request_counts"]["failed"], 1);
        assert_eq!(v["output_file_id"], serde_json::Value::Null);
        assert_eq!(v["completed_at"], serde_json::Value::Null);
        assert_eq!(v["created_at"], 1000);
        assert_eq!(v["expires_at"], 87400);
        assert_eq!(v["completion_window"], "24h");
        assert_eq!(
            v["metadata"]["job_arn"],
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefgh1234"
        );
        assert_eq!(v["metadata"]["bedrock_status"], "InProgress");
    }

    #[test]
    fn collected_results_give_files_counts_usage_and_completion_time() {
        let results = ResultsRecord {
            generation: "gen-20261129T181256Z-3f9a2c".into(),
            output: "s3://b/p/results/output.jsonl".into(),
            errors: "s3://b/p/results/errors.jsonl".into(),
            started_at: 2100,
            finished_at: 2200,
            succeeded: 7,
            failed: 1,
            missing: 2,
            input_tokens: 100,
            cached_tokens: 10,
            output_tokens: 50,
            cache_write_tokens: 5,
            output_bytes: Some(700),
            errors_bytes: Some(80),
            by_input: Vec::new(),
        };
        let ctx = BatchContext {
            id: "batch_x".into(),
            total_records: Some(10),
            results: Some(results),
            ..Default::default()
        };
        let b = BatchObject::new(&[job(JobStatus::Completed)], ctx.clone());
        assert_eq!(b.status, BatchStatus::Completed);
        assert_eq!(
            b.output_file_id.as_deref(),
            Some("s3://b/p/results/output.jsonl")
        );
        assert_eq!(
            b.request_counts,
            RequestCounts {
                total: 10,
                completed: 7,
                failed: 3
            }
        );
        assert_eq!(b.completed_at, Some(2200));
        assert_eq!(b.finalizing_at, Some(2100));
        assert_eq!(b.usage.unwrap().total_tokens, 150);
        // While the results are being converted again, the batch is finalizing.
        let mut finalizing = ctx;
        finalizing.finalizing_since = Some(3000);
        let b = BatchObject::new(&[job(JobStatus::Completed)], finalizing.clone());
        assert_eq!(b.status, BatchStatus::Finalizing);
        assert_eq!(b.finalizing_at, Some(3000));
        let b = BatchObject::new(&[job(JobStatus::Stopped)], finalizing.clone());
        assert_eq!(b.status, BatchStatus::Cancelling);
        let b = BatchObject::new(&[job(JobStatus::Failed)], finalizing);
        assert_eq!(b.status, BatchStatus::Failed);
    }

    #[test]
    fn a_failed_job_says_why_and_a_stopped_one_when() {
        let mut failed = job(JobStatus::Failed);
        failed.message = Some("fewer than 100 records".into());
        let b = BatchObject::new(&[failed], BatchContext::default());
        assert_eq!(b.status, BatchStatus::Failed);
        assert_eq!(b.failed_at, Some(2000));
        let errors = b.errors.unwrap();
        assert!(errors.data[0].message.contains("fewer than 100 records"));
        let b = BatchObject::new(&[job(JobStatus::Stopped)], BatchContext::default());
        assert_eq!(b.status, BatchStatus::Cancelled);
        assert_eq!(b.cancelled_at, Some(2000));
        assert_eq!(b.cancelling_at, Some(1500));
    }
}
