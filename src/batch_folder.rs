//! The batch folder: the self-describing layout a conversion to Bedrock writes (DESIGN §4).
//!
//! ```text
//! DEST/
//!   batch.json          this manifest
//!   input/00000.jsonl   Bedrock records (one job); input/jobNNN/NNNNN.jsonl when several jobs
//!   ids/00000.ids       per record of that shard: `<recordId>\t<custom_id as a JSON string>`
//!   rejected.jsonl      input lines that could not be converted
//!   output/             where Bedrock writes
//!   results/            OpenAI output and error files made from output/
//! ```
//! `batch.json` is written last: a folder without it is incomplete.

use serde::{Deserialize, Serialize};

/// The manifest's file name.
pub const MANIFEST: &str = "batch.json";
/// The rejects file's name.
pub const REJECTED: &str = "rejected.jsonl";
/// The manifest format tag; bumped when the layout changes incompatibly.
pub const FORMAT: &str = "bedrock-batch/1";

/// `batch.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchManifest {
    /// [`FORMAT`].
    pub format: String,
    /// The version of bedrock-batch that wrote it.
    pub tool_version: String,
    /// Unix seconds when the conversion finished.
    pub created_at: u64,
    /// What was converted (a path, `-`, or a URI).
    pub source: String,
    /// The Bedrock model id the records are for.
    pub model_id: String,
    /// The model family whose body format `modelInput` holds.
    pub family: String,
    /// `InvokeModel` or `Converse`.
    pub invocation_type: String,
    /// The OpenAI endpoint of the input lines.
    pub endpoint: String,
    /// The `body.model` of the input lines, if they named one.
    pub openai_model: Option<String>,
    /// How `recordId`s were made: `line_number` (`L` + 10-digit line number).
    pub record_id: String,
    /// The options the conversion ran with.
    pub options: ManifestOptions,
    /// What happened to the input lines; `lines = records + rejected + blank`.
    pub counts: ManifestCounts,
    /// The record files, in order.
    pub shards: Vec<Shard>,
    /// The Bedrock jobs the records are grouped into (one unless a job quota was exceeded).
    pub jobs: Vec<Job>,
    /// The rejects file, relative to the folder.
    pub rejected: String,
}

/// Conversion options recorded in `batch.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestOptions {
    /// Default `max_tokens`.
    pub max_tokens: u64,
    /// Whether unsupported fields were dropped instead of rejected.
    pub drop_unsupported: bool,
    /// Records per file at most.
    pub records_per_file: u64,
    /// Bytes per file at most.
    pub bytes_per_file: u64,
    /// Records per job at most.
    pub records_per_job: u64,
    /// Bytes per job at most.
    pub bytes_per_job: u64,
}

/// Line accounting recorded in `batch.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestCounts {
    /// Input lines.
    pub lines: u64,
    /// Records written.
    pub records: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// Blank lines skipped.
    pub blank: u64,
    /// Input bytes.
    pub bytes_in: u64,
    /// Record bytes written.
    pub bytes_out: u64,
}

/// One record file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// The record file, relative to the folder.
    pub path: String,
    /// Its ledger file, relative to the folder.
    pub ids: String,
    /// The job it belongs to.
    pub job: u32,
    /// Records in it.
    pub records: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Input line of its first record.
    pub first_line: u64,
    /// Input line of its last record.
    pub last_line: u64,
}

/// One Bedrock job's share of the folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its index, from 0.
    pub index: u32,
    /// The prefix to give CreateModelInvocationJob as input, relative to the folder.
    pub input_prefix: String,
    /// Records in it.
    pub records: u64,
    /// Bytes in it.
    pub bytes: u64,
}

/// The record file name of shard `index` in job `job`, for a folder of `jobs` jobs.
pub fn shard_path(index: u32, job: u32, jobs: u32) -> String {
    if jobs > 1 {
        format!("input/job{job:03}/{index:05}.jsonl")
    } else {
        format!("input/{index:05}.jsonl")
    }
}

/// The input prefix of job `job` for a folder of `jobs` jobs.
pub fn job_prefix(job: u32, jobs: u32) -> String {
    if jobs > 1 {
        format!("input/job{job:03}/")
    } else {
        "input/".to_owned()
    }
}

/// The ledger file name of shard `index`.
pub fn ids_path(index: u32) -> String {
    format!("ids/{index:05}.ids")
}

/// The folder of job records.
pub const JOBS: &str = "jobs/";
/// The record of the last collection of results.
pub const RESULTS_RECORD: &str = "results/report.json";

/// The record file of job `index`.
pub fn job_record_path(index: u32) -> String {
    format!("jobs/job{index:03}.json")
}

/// `jobs/jobNNN.json`: the Bedrock job a folder's job `index` was submitted as, written as soon
/// as Bedrock accepts it, so later commands need only the folder. A new submission with other
/// settings replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The folder's job index.
    pub index: u32,
    /// The Bedrock job's ARN.
    pub job_arn: String,
    /// Its name.
    pub job_name: String,
    /// The idempotency token it was created with.
    pub client_request_token: String,
    /// Unix seconds when it was submitted.
    pub submitted_at: u64,
    /// The model it runs.
    pub model_id: String,
    /// The service role.
    pub role_arn: String,
    /// Its input URI.
    pub input_uri: String,
    /// Its output URI (Bedrock writes under `<job-id>/`).
    pub output_uri: String,
    /// Its timeout.
    pub timeout_hours: i32,
    /// `InvokeModel` or `Converse`.
    pub invocation_type: String,
}

impl JobRecord {
    /// The job id: the ARN's last segment, also the name of its output sub-folder.
    pub fn job_id(&self) -> &str {
        self.job_arn.rsplit('/').next().unwrap_or(&self.job_arn)
    }
}

/// `results/report.json`: where the OpenAI files of the last collection went and what they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsRecord {
    /// The OpenAI output file.
    pub output: String,
    /// The OpenAI error file.
    pub errors: String,
    /// Unix seconds when the conversion started.
    pub started_at: u64,
    /// Unix seconds when it finished.
    pub finished_at: u64,
    /// Records in the output file.
    pub succeeded: u64,
    /// Records Bedrock answered with an error.
    pub failed: u64,
    /// Records Bedrock never returned.
    pub missing: u64,
    /// Prompt tokens (cache included).
    pub input_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cached_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}
