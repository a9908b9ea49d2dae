//! A Bedrock model-invocation job as the driver sees it, independent of the SDK's types.

use std::fmt;

use aws_sdk_bedrock::primitives::DateTime;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobStatus, ModelInvocationJobSummary,
};
use serde::Serialize;

/// A job's status, as Bedrock names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum JobStatus {
    /// Queued for validation.
    Submitted,
    /// Its input is being checked.
    Validating,
    /// Validated and queued.
    Scheduled,
    /// Running.
    InProgress,
    /// Done; outputs are in S3.
    Completed,
    /// Not every record could be processed in time.
    PartiallyCompleted,
    /// Failed; the job's message says why.
    Failed,
    /// Being stopped.
    Stopping,
    /// Stopped by a user.
    Stopped,
    /// Scheduled but not started before its timeout.
    Expired,
    /// A status this version does not know.
    Unknown(String),
}

impl JobStatus {
    /// Every status Bedrock names, for messages.
    pub const NAMES: [&'static str; 10] = [
        "Submitted",
        "Validating",
        "Scheduled",
        "InProgress",
        "Completed",
        "PartiallyCompleted",
        "Failed",
        "Stopping",
        "Stopped",
        "Expired",
    ];

    /// Parses a status name, ignoring case (`inprogress`, `InProgress`).
    pub fn parse(name: &str) -> Option<JobStatus> {
        let known = Self::NAMES.iter().find(|n| n.eq_ignore_ascii_case(name))?;
        Some(Self::from_name(known))
    }

    fn from_name(name: &str) -> JobStatus {
        match name {
            "Submitted" => JobStatus::Submitted,
            "Validating" => JobStatus::Validating,
            "Scheduled" => JobStatus::Scheduled,
            "InProgress" => JobStatus::InProgress,
            "Completed" => JobStatus::Completed,
            "PartiallyCompleted" => JobStatus::PartiallyCompleted,
            "Failed" => JobStatus::Failed,
            "Stopping" => JobStatus::Stopping,
            "Stopped" => JobStatus::Stopped,
            "Expired" => JobStatus::Expired,
            other => JobStatus::Unknown(other.to_owned()),
        }
    }

    /// Bedrock's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::Submitted => "Submitted",
            JobStatus::Validating => "Validating",
            JobStatus::Scheduled => "Scheduled",
            JobStatus::InProgress => "InProgress",
            JobStatus::Completed => "Completed",
            JobStatus::PartiallyCompleted => "PartiallyCompleted",
            JobStatus::Failed => "Failed",
            JobStatus::Stopping => "Stopping",
            JobStatus::Stopped => "Stopped",
            JobStatus::Expired => "Expired",
            JobStatus::Unknown(s) => s,
        }
    }

    /// Whether the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed
                | JobStatus::PartiallyCompleted
                | JobStatus::Failed
                | JobStatus::Stopped
                | JobStatus::Expired
        )
    }

    /// Whether the job counts against the quota of submitted and in-progress jobs.
    pub fn is_active(&self) -> bool {
        !self.is_terminal() && !matches!(self, JobStatus::Unknown(_))
    }

    /// The SDK's value.
    pub fn to_sdk(&self) -> ModelInvocationJobStatus {
        ModelInvocationJobStatus::from(self.as_str())
    }
}

impl From<&ModelInvocationJobStatus> for JobStatus {
    fn from(s: &ModelInvocationJobStatus) -> Self {
        JobStatus::from_name(s.as_str())
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What GetModelInvocationJob or ListModelInvocationJobs says of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobInfo {
    /// The job's ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The model it runs.
    pub model_id: String,
    /// Its status.
    pub status: JobStatus,
    /// Why it failed (or other news from Bedrock).
    pub message: Option<String>,
    /// `InvokeModel` or `Converse`.
    pub invocation_type: Option<String>,
    /// Where its records are read from.
    pub input_uri: Option<String>,
    /// Where its results are written (Bedrock adds `<job-id>/`).
    pub output_uri: Option<String>,
    /// Unix seconds.
    pub submitted_at: i64,
    /// Unix seconds.
    pub last_modified_at: Option<i64>,
    /// Unix seconds, once terminal.
    pub ended_at: Option<i64>,
    /// Unix seconds: when Bedrock gives up on it.
    pub expires_at: Option<i64>,
    /// The timeout it was given.
    pub timeout_hours: Option<i32>,
    /// Records in its input.
    pub total_records: Option<u64>,
    /// Records processed so far.
    pub processed_records: Option<u64>,
    /// Records that succeeded so far.
    pub succeeded_records: Option<u64>,
    /// Records that failed so far.
    pub failed_records: Option<u64>,
}

impl JobInfo {
    /// The 12-character job id: the ARN's last segment.
    pub fn id(&self) -> &str {
        job_id(&self.arn)
    }
}

/// The job id of a job ARN (or the id itself).
pub fn job_id(arn_or_id: &str) -> &str {
    arn_or_id.rsplit('/').next().unwrap_or(arn_or_id)
}

/// Whether `s` names a job rather than a batch folder: a job ARN or a 12-character job id.
pub fn is_job_identifier(s: &str) -> bool {
    let id = s
        .strip_prefix("arn:")
        .map(|rest| rest.rsplit_once(":model-invocation-job/").map(|(_, id)| id))
        .unwrap_or(Some(s));
    id.is_some_and(|id| {
        id.len() == 12
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn secs(t: &DateTime) -> i64 {
    t.secs()
}

fn count(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

fn input_uri(c: Option<&ModelInvocationJobInputDataConfig>) -> Option<String> {
    match c? {
        ModelInvocationJobInputDataConfig::S3InputDataConfig(s3) => Some(s3.s3_uri().to_owned()),
        _ => None,
    }
}

fn output_uri(c: Option<&ModelInvocationJobOutputDataConfig>) -> Option<String> {
    match c? {
        ModelInvocationJobOutputDataConfig::S3OutputDataConfig(s3) => Some(s3.s3_uri().to_owned()),
        _ => None,
    }
}

/// The SDK's Get output and List summary carry the same fields under two types; one macro reads
/// both so the two never drift apart.
macro_rules! job_info_from {
    ($v:expr, $name:expr) => {{
        let v = $v;
        JobInfo {
            arn: v.job_arn().to_owned(),
            name: $name,
            model_id: v.model_id().to_owned(),
            status: v
                .status()
                .map_or(JobStatus::Unknown(String::new()), JobStatus::from),
            message: v.message().map(str::to_owned),
            invocation_type: v.model_invocation_type().map(|t| t.as_str().to_owned()),
            input_uri: input_uri(v.input_data_config()),
            output_uri: output_uri(v.output_data_config()),
            submitted_at: secs(v.submit_time()),
            last_modified_at: v.last_modified_time().map(secs),
            ended_at: v.end_time().map(secs),
            expires_at: v.job_expiration_time().map(secs),
            timeout_hours: v.timeout_duration_in_hours(),
            total_records: count(v.total_record_count()),
            processed_records: count(v.processed_record_count()),
            succeeded_records: count(v.success_record_count()),
            failed_records: count(v.error_record_count()),
        }
    }};
}

impl From<&aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput>
    for JobInfo
{
    fn from(
        v: &aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput,
    ) -> Self {
        job_info_from!(v, v.job_name().unwrap_or_default().to_owned())
    }
}

impl From<&ModelInvocationJobSummary> for JobInfo {
    fn from(v: &ModelInvocationJobSummary) -> Self {
        job_info_from!(v, v.job_name().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_ignoring_case_and_know_terminal_ones() {
        assert_eq!(JobStatus::parse("inprogress"), Some(JobStatus::InProgress));
        assert_eq!(JobStatus::parse("Stopped"), Some(JobStatus::Stopped));
        assert_eq!(JobStatus::parse("running"), None);
        for name in JobStatus::NAMES {
            let s = JobStatus::parse(name).unwrap();
            assert_eq!(s.as_str(), name);
            assert_eq!(JobStatus::from(&s.to_sdk()), s);
        }
        let terminal: Vec<_> = JobStatus::NAMES
            .iter()
            .filter(|n| JobStatus::parse(n).unwrap().is_terminal())
            .copied()
            .collect();
        assert_eq!(
            terminal,
            [
                "Completed",
                "PartiallyCompleted",
                "Failed",
                "Stopped",
                "Expired"
            ]
        );
    }

    #[test]
    fn job_identifiers_are_arns_or_twelve_character_ids() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefgh1234";
        assert!(is_job_identifier(arn));
        assert!(is_job_identifier("abcdefgh1234"));
        assert_eq!(job_id(arn), "abcdefgh1234");
        assert!(!is_job_identifier("s3://bucket/prefix/"));
        assert!(!is_job_identifier("ABCDEFGH1234"));
        assert!(!is_job_identifier("abcdefgh123"));
        assert!(!is_job_identifier(
            "arn:aws:iam::123456789012:role/abcdefgh1234"
        ));
    }
}
