//! Bedrock batch jobs: submit, track, stop, wait for and collect them, and show them as OpenAI
//! Batch objects.
//!
//! It owns the talk with Bedrock's control plane and a folder's jobs; it must not build batch
//! folder paths (that is [`crate::batch_folder`]'s) or convert lines (the pipeline's), and knows
//! nothing of HTTP clients or command lines.
//!
//! [`Driver`] is the thin layer over the Bedrock control plane (`aws-sdk-bedrock`):
//! CreateModelInvocationJob, GetModelInvocationJob, ListModelInvocationJobs and
//! StopModelInvocationJob, with errors in words a user can act on. [`BatchFolder`] puts it to work
//! on a batch folder on S3: one Bedrock job per job of the folder, each recorded in
//! `jobs/jobNNN.json` as soon as Bedrock accepts it (so later commands need only the folder), with an
//! idempotency token derived from the folder's contents (so a repeated submit never starts a second
//! billed job), and the results collected into OpenAI output and error files with every
//! `custom_id` accounted for.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bedrock_batch::driver::DriverError> {
//! use bedrock_batch::driver::{BedrockOptions, Driver, ListFilter};
//! let driver = Driver::connect(&BedrockOptions::default()).await;
//! for job in driver.list(&ListFilter::default()).await?.jobs {
//!     println!("{} {} {}", job.id(), job.status, job.name);
//! }
//! # Ok(()) }
//! ```
//!
//! A batch folder made by `to-bedrock`, from submission to OpenAI results:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bedrock_batch::driver::{BatchFolder, BedrockOptions, CollectOptions, Driver, PollOptions, SubmitSettings};
//! use bedrock_batch::io::{Location, S3Options, Storage};
//!
//! let storage = Storage::new(S3Options::default());
//! let dest = Location::parse("s3://my-bucket/batches/run1/")?;
//! let mut folder = BatchFolder::open(storage.folder(&dest).await?).await?;
//! let driver = Driver::connect(&BedrockOptions::default()).await;
//! let settings = SubmitSettings {
//!     role_arn: "arn:aws:iam::123456789012:role/BedrockBatch".into(),
//!     timeout_hours: 24,
//!     ..Default::default()
//! };
//! let submitted = folder.submit(&driver, &settings, 20).await?;
//! let arns: Vec<String> = submitted.submitted.iter().map(|r| r.job_arn.clone()).collect();
//! let jobs = driver.wait(&arns, PollOptions::default(), |_| {}).await?;
//! let results = folder
//!     .collect(&storage, &jobs, &dest.join("results/output.jsonl"), &dest.join("results/errors.jsonl"), &CollectOptions::default())
//!     .await?;
//! println!("{:?}", folder.batch_object(&jobs, None).status);
//! assert_eq!(results.report.records, Some(results.report.succeeded + results.report.failed + results.report.missing));
//! # Ok(()) }
//! ```

mod batch_object;
mod folder;
mod job;
mod request;
mod wait;

use aws_sdk_bedrock::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrock::primitives::DateTime;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig, ModelInvocationType,
    SortJobsBy, SortOrder, Tag, VpcConfig,
};

pub use crate::pipeline::Collected;
pub use batch_object::{
    BatchContext, BatchError, BatchErrors, BatchObject, BatchStatus, BatchUsage, RequestCounts,
};
pub use folder::{
    results_refusal, results_writer, BatchFolder, CollectOptions, Step, SubmitSettings,
    SubmitSummary,
};
pub use job::{is_job_identifier, job_id, JobInfo, JobStatus};
pub use request::{
    check_job_name, check_role_arn, check_s3_uri, completion_window, default_job_name, parse_tag,
    timeout_hours, InvalidRequest, JobRequest,
};
pub use wait::{Backoff, Pacer, PollOptions};

/// How to reach Bedrock's control plane (AWS conventions: the default credential chain,
/// `AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL_BEDROCK`).
#[derive(Debug, Clone)]
pub struct BedrockOptions {
    /// AWS profile.
    pub profile: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// A Bedrock-compatible endpoint (an emulator).
    pub endpoint_url: Option<String>,
    /// Attempts per request, throttling and server errors retried with backoff.
    pub max_attempts: u32,
}

impl Default for BedrockOptions {
    fn default() -> Self {
        BedrockOptions {
            profile: None,
            region: None,
            endpoint_url: None,
            max_attempts: 5,
        }
    }
}

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A request Bedrock would refuse, caught before sending it.
    #[error("{0}")]
    Invalid(#[from] InvalidRequest),
    /// Bedrock refused or failed a request.
    #[error("{operation}: {}{message}{hint}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Bedrock {
        /// What was being done.
        operation: String,
        /// Bedrock's error code (`ValidationException` …).
        code: Option<String>,
        /// Bedrock's message.
        message: String,
        /// What to check.
        hint: &'static str,
    },
    /// The batch folder could not be read or written.
    #[error(transparent)]
    Folder(#[from] crate::batch_folder::FolderError),
    /// A request could not be built (a bug).
    #[error("building the {what}: {message}")]
    Build {
        /// What.
        what: &'static str,
        /// The builder's word.
        message: String,
    },
    /// Bedrock reads and writes S3 only.
    #[error(
        "{folder}: Bedrock reads its input from S3; convert into an s3://bucket/prefix/ folder"
    )]
    NotOnS3 {
        /// The folder.
        folder: String,
    },
    /// A job of the folder was submitted with other settings and still runs.
    #[error("job {index} of {folder} was submitted as {job_arn} with other settings and is {status}: cancel it first (bedrock-batch cancel {folder}) or submit with its settings")]
    OtherSettings {
        /// The folder.
        folder: String,
        /// The folder's job index.
        index: u32,
        /// The running job.
        job_arn: String,
        /// Its status.
        status: String,
    },
    /// Results are collected once every job has ended.
    #[error("{0}: results are collected once every job has ended")]
    NotEnded(String),
    /// A results file could not be opened for writing.
    #[error("{location}: {why}")]
    Results {
        /// Where.
        location: String,
        /// Why (said in the message, not again as a source).
        why: std::io::Error,
    },
    /// Converting the results failed.
    #[error("converting the results: {0}")]
    Collect(#[from] crate::pipeline::Error),
}

impl DriverError {
    /// Bedrock's error code, if Bedrock answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            DriverError::Bedrock { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

fn bedrock_error<E, R>(operation: impl Into<String>, e: SdkError<E, R>) -> DriverError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_owned);
    let hint = match code.as_deref() {
        Some("AccessDeniedException") => {
            " (check the credentials, --profile, and that they allow bedrock:*ModelInvocationJob* and iam:PassRole on the role)"
        }
        Some("ResourceNotFoundException") => " (no such job or model in this account and region: check --region)",
        Some("ServiceQuotaExceededException") => {
            " (too many submitted and in-progress jobs for this model: wait for some to finish, or ask AWS for a higher quota)"
        }
        Some("ThrottlingException") => " (Bedrock kept throttling after retries: try again later)",
        Some("UnrecognizedClientException" | "InvalidSignatureException") => {
            " (check the credentials)"
        }
        _ => "",
    };
    let message = match e.message() {
        Some(m) => m.to_owned(),
        None if code.is_some() => String::new(),
        None => DisplayErrorContext(&e).to_string(),
    };
    DriverError::Bedrock {
        operation: operation.into(),
        code,
        message,
        hint,
    }
}

/// What stopping a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// Bedrock is stopping it.
    Stopping,
    /// It had already finished, in this status.
    AlreadyFinished(JobStatus),
}

/// Which jobs [`Driver::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs whose name contains this.
    pub name_contains: Option<String>,
    /// Only jobs submitted after this (Unix seconds).
    pub submitted_after: Option<i64>,
    /// Only jobs submitted before this (Unix seconds).
    pub submitted_before: Option<i64>,
    /// At most this many (all pages are read until then).
    pub limit: Option<usize>,
    /// Oldest first (default: newest first).
    pub oldest_first: bool,
}

/// The jobs [`Driver::list`] found.
#[derive(Debug, Clone)]
pub struct JobList {
    /// The jobs, in the order asked for, at most the filter's limit.
    pub jobs: Vec<JobInfo>,
    /// Whether more jobs matched than the limit let through.
    pub more: bool,
}

/// The Bedrock control-plane client.
#[derive(Debug, Clone)]
pub struct Driver {
    client: aws_sdk_bedrock::Client,
}

impl Driver {
    /// A driver over an existing client.
    pub fn new(client: aws_sdk_bedrock::Client) -> Driver {
        Driver { client }
    }

    /// Builds the client the AWS way.
    pub async fn connect(opts: &BedrockOptions) -> Driver {
        let shared = crate::aws::load(crate::aws::ConfigSource {
            profile: opts.profile.as_deref(),
            region: opts.region.as_deref(),
            endpoint_url: opts.endpoint_url.as_deref(),
            max_attempts: opts.max_attempts,
        })
        .await;
        Driver::new(aws_sdk_bedrock::Client::new(&shared))
    }

    /// CreateModelInvocationJob: checks the request, sends it, and returns the job's ARN (the
    /// existing job's, when Bedrock has seen the token before).
    pub async fn submit(&self, req: &JobRequest) -> Result<String, DriverError> {
        req.validate()?;
        let mut s3_out = ModelInvocationJobS3OutputDataConfig::builder().s3_uri(&req.output_uri);
        if let Some(key) = &req.kms_key_id {
            s3_out = s3_out.s3_encryption_key_id(key);
        }
        let built =
            |what: &'static str, e: aws_sdk_bedrock::error::BuildError| DriverError::Build {
                what,
                message: e.to_string(),
            };
        let input = ModelInvocationJobInputDataConfig::S3InputDataConfig(
            ModelInvocationJobS3InputDataConfig::builder()
                .s3_uri(&req.input_uri)
                .s3_input_format(aws_sdk_bedrock::types::S3InputFormat::Jsonl)
                .build()
                .map_err(|e| built("input config", e))?,
        );
        let output = ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
            s3_out.build().map_err(|e| built("output config", e))?,
        );
        let mut call = self
            .client
            .create_model_invocation_job()
            .job_name(&req.job_name)
            .role_arn(&req.role_arn)
            .model_id(&req.model_id)
            .input_data_config(input)
            .output_data_config(output)
            .timeout_duration_in_hours(req.timeout_hours)
            .model_invocation_type(ModelInvocationType::from(req.invocation_type.as_str()))
            .client_request_token(&req.client_request_token);
        for (key, value) in &req.tags {
            call = call.tags(
                Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|e| built("tag", e))?,
            );
        }
        if !req.subnet_ids.is_empty() {
            call = call.vpc_config(
                VpcConfig::builder()
                    .set_subnet_ids(Some(req.subnet_ids.clone()))
                    .set_security_group_ids(Some(req.security_group_ids.clone()))
                    .build()
                    .map_err(|e| built("VPC config", e))?,
            );
        }
        let out = call
            .send()
            .await
            .map_err(|e| bedrock_error(format!("creating job {}", req.job_name), e))?;
        Ok(out.job_arn().to_owned())
    }

    /// GetModelInvocationJob.
    pub async fn get(&self, job: &str) -> Result<JobInfo, DriverError> {
        let out = self
            .client
            .get_model_invocation_job()
            .job_identifier(job)
            .send()
            .await
            .map_err(|e| bedrock_error(format!("getting job {job}"), e))?;
        Ok(JobInfo::from(&out))
    }

    /// ListModelInvocationJobs, every page (up to `filter.limit`, and whether there were more).
    pub async fn list(&self, filter: &ListFilter) -> Result<JobList, DriverError> {
        // One job past the limit is asked for: whether it exists is whether there are more.
        let wanted = filter.limit.map(|n| n.saturating_add(1));
        let mut call = self
            .client
            .list_model_invocation_jobs()
            .sort_by(SortJobsBy::CreationTime)
            .sort_order(if filter.oldest_first {
                SortOrder::Ascending
            } else {
                SortOrder::Descending
            })
            .max_results(wanted.map_or(100, |n| n.clamp(1, 1000) as i32));
        if let Some(status) = &filter.status {
            call = call.status_equals(status.to_sdk());
        }
        if let Some(name) = &filter.name_contains {
            call = call.name_contains(name);
        }
        if let Some(t) = filter.submitted_after {
            call = call.submit_time_after(DateTime::from_secs(t));
        }
        if let Some(t) = filter.submitted_before {
            call = call.submit_time_before(DateTime::from_secs(t));
        }
        let mut pages = call.into_paginator().send();
        let mut jobs = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| bedrock_error("listing jobs", e))?;
            jobs.extend(page.invocation_job_summaries().iter().map(JobInfo::from));
            if wanted.is_some_and(|n| jobs.len() >= n) {
                break;
            }
        }
        let limit = filter.limit.unwrap_or(usize::MAX);
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        Ok(JobList { jobs, more })
    }

    /// StopModelInvocationJob; a job that already finished is reported as such, not as an error.
    pub async fn stop(&self, job: &str) -> Result<StopOutcome, DriverError> {
        let result = self
            .client
            .stop_model_invocation_job()
            .job_identifier(job)
            .send()
            .await;
        match result {
            Ok(_) => Ok(StopOutcome::Stopping),
            Err(e) => {
                let e = bedrock_error(format!("stopping job {job}"), e);
                if matches!(e.code(), Some("ValidationException" | "ConflictException")) {
                    let info = self.get(job).await?;
                    if info.status.is_terminal() {
                        return Ok(StopOutcome::AlreadyFinished(info.status));
                    }
                    if info.status == JobStatus::Stopping {
                        return Ok(StopOutcome::Stopping);
                    }
                }
                Err(e)
            }
        }
    }
}
