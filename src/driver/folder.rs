//! A batch folder's Bedrock jobs: submitting them (each recorded in `jobs/jobNNN.json`), reading
//! their state, showing them as one OpenAI Batch object, and collecting their results.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::batch_object::{BatchContext, BatchObject};
use super::job::{JobInfo, JobStatus};
use super::request::{default_job_name, JobRequest};
use super::{Driver, DriverError};
use crate::batch_folder::{self, BatchManifest, JobRecord, ResultsRecord};
use crate::io::{Destination, Location, StdWriter, Storage};
use crate::pipeline::{
    compare_with_manifest, convert_from_bedrock, read_batch_folder, read_job_records,
    FromBedrockOptions, FromBedrockReport, MissingReason,
};

/// The settings a batch folder's jobs are submitted with (the rest comes from the folder).
#[derive(Debug, Clone, Default)]
pub struct SubmitSettings {
    /// The service role Bedrock assumes.
    pub role_arn: String,
    /// The job name (`-jobNNN` is added when the folder holds several jobs); default: made from
    /// the folder's name and creation time.
    pub job_name: Option<String>,
    /// 24–168.
    pub timeout_hours: i32,
    /// KMS key for the output.
    pub kms_key_id: Option<String>,
    /// Tags on every job.
    pub tags: Vec<(String, String)>,
    /// VPC subnets.
    pub subnet_ids: Vec<String>,
    /// VPC security groups.
    pub security_group_ids: Vec<String>,
}

/// What [`BatchFolder::submit`] did.
#[derive(Debug, Clone, Default)]
pub struct SubmitSummary {
    /// Jobs submitted now.
    pub submitted: Vec<JobRecord>,
    /// Jobs submitted before with the same settings (left as they are).
    pub existing: Vec<JobRecord>,
    /// Jobs not submitted because the limit of jobs in flight was reached.
    pub pending: usize,
    /// Bedrock's word when its quota of submitted and in-progress jobs was reached.
    pub quota_message: Option<String>,
}

/// Settings of a collection of results.
#[derive(Clone, Default)]
pub struct CollectOptions {
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Called with the bytes of Bedrock output read so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

/// What a collection of results produced.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The conversion's accounting.
    pub report: FromBedrockReport,
    /// What was recorded in `results/report.json`.
    pub record: ResultsRecord,
}

/// A batch folder and the Bedrock jobs it was submitted as.
pub struct BatchFolder {
    dest: Arc<dyn Destination>,
    manifest: BatchManifest,
    manifest_bytes: Vec<u8>,
    records: Vec<Option<JobRecord>>,
    results: Option<ResultsRecord>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn folder_error(e: impl std::fmt::Display) -> DriverError {
    DriverError::Folder(e.to_string())
}

impl BatchFolder {
    /// Opens the batch folder at `dest`; `None` when it has no `batch.json` (nothing converted
    /// there yet, or the conversion did not finish).
    pub async fn open_existing(dest: Arc<dyn Destination>) -> Result<Option<Self>, DriverError> {
        let io = |e: std::io::Error| {
            DriverError::Folder(format!("reading {}: {e}", dest.uri(batch_folder::MANIFEST)))
        };
        let Some(raw) = dest.read_small(batch_folder::MANIFEST).await.map_err(io)? else {
            return Ok(None);
        };
        let manifest: BatchManifest = serde_json::from_slice(&raw).map_err(|e| {
            DriverError::Folder(format!("{}: {e}", dest.uri(batch_folder::MANIFEST)))
        })?;
        let mut records = vec![None; manifest.jobs.len()];
        for record in read_job_records(dest.as_ref())
            .await
            .map_err(folder_error)?
        {
            match records.get_mut(record.index as usize) {
                Some(slot) => *slot = Some(record),
                None => {
                    return Err(DriverError::Folder(format!(
                        "{}: job {} is not a job of this folder ({} jobs)",
                        dest.uri(&batch_folder::job_record_path(record.index)),
                        record.index,
                        manifest.jobs.len()
                    )))
                }
            }
        }
        let results = match dest
            .read_small(batch_folder::RESULTS_RECORD)
            .await
            .map_err(folder_error)?
        {
            Some(raw) => serde_json::from_slice(&raw).ok(),
            None => None,
        };
        Ok(Some(BatchFolder {
            dest,
            manifest,
            manifest_bytes: raw,
            records,
            results,
        }))
    }

    /// Opens the batch folder at `dest`, which must hold a `batch.json`.
    pub async fn open(dest: Arc<dyn Destination>) -> Result<Self, DriverError> {
        let uri = dest.uri("");
        Self::open_existing(dest).await?.ok_or_else(|| {
            DriverError::Folder(format!(
                "{uri}{} not found: not a batch folder (made by `bedrock-batch to-bedrock INPUT DEST/`)",
                batch_folder::MANIFEST
            ))
        })
    }

    /// `batch.json`.
    pub fn manifest(&self) -> &BatchManifest {
        &self.manifest
    }

    /// The folder's URI.
    pub fn uri(&self) -> String {
        self.dest.uri("")
    }

    /// The recorded job of each of the folder's jobs, by index (`None`: not submitted yet).
    pub fn job_records(&self) -> &[Option<JobRecord>] {
        &self.records
    }

    /// The last collection of results, if any.
    pub fn results(&self) -> Option<&ResultsRecord> {
        self.results.as_ref()
    }

    /// Jobs of the folder not submitted yet.
    pub fn pending(&self) -> usize {
        self.records.iter().filter(|r| r.is_none()).count()
    }

    /// The CreateModelInvocationJob request for the folder's job `index`.
    pub fn request(&self, index: u32, s: &SubmitSettings) -> Result<JobRequest, DriverError> {
        let job = self
            .manifest
            .jobs
            .get(index as usize)
            .ok_or_else(|| DriverError::Folder(format!("the folder has no job {index}")))?;
        let jobs = self.manifest.jobs.len();
        let job_name = match &s.job_name {
            Some(name) if jobs > 1 => format!("{name}-job{index:03}"),
            Some(name) => name.clone(),
            None => default_job_name(&self.uri(), self.manifest.created_at, index, jobs),
        };
        let input_uri = self.dest.uri(&job.input_prefix);
        if !input_uri.starts_with("s3://") {
            return Err(DriverError::Folder(format!(
                "{}: Bedrock reads its input from S3; convert into an s3://bucket/prefix/ folder",
                self.uri()
            )));
        }
        let mut req = JobRequest {
            job_name,
            role_arn: s.role_arn.clone(),
            model_id: self.manifest.model_id.clone(),
            input_uri,
            output_uri: self.dest.uri("output/"),
            kms_key_id: s.kms_key_id.clone(),
            timeout_hours: s.timeout_hours,
            tags: s.tags.clone(),
            subnet_ids: s.subnet_ids.clone(),
            security_group_ids: s.security_group_ids.clone(),
            invocation_type: self.manifest.invocation_type.clone(),
            client_request_token: String::new(),
        };
        req.client_request_token = req.token_for(&self.manifest_bytes);
        Ok(req)
    }

    /// Submits the folder's jobs not yet submitted with these settings, keeping at most
    /// `max_active` of them submitted or in progress at once; stops early (without an error) when
    /// Bedrock's quota of jobs in flight is reached. Each job is recorded as soon as Bedrock
    /// accepts it. A job recorded with other settings is submitted anew only once it has ended.
    pub async fn submit(
        &mut self,
        driver: &Driver,
        settings: &SubmitSettings,
        max_active: usize,
    ) -> Result<SubmitSummary, DriverError> {
        let mut summary = SubmitSummary::default();
        let mut active = 0;
        let mut todo = Vec::new();
        for index in 0..self.records.len() as u32 {
            let req = self.request(index, settings)?;
            req.validate()?;
            match &self.records[index as usize] {
                Some(rec) if rec.client_request_token == req.client_request_token => {
                    if driver.get(&rec.job_arn).await?.status.is_active() {
                        active += 1;
                    }
                    summary.existing.push(rec.clone());
                }
                Some(rec) => {
                    let info = driver.get(&rec.job_arn).await?;
                    if info.status.is_active() {
                        return Err(DriverError::Folder(format!(
                            "job {} of {} was submitted as {} with other settings and is {}: cancel it first (bedrock-batch cancel {}) or submit with its settings",
                            index,
                            self.uri(),
                            rec.job_arn,
                            info.status,
                            self.uri()
                        )));
                    }
                    todo.push((index, req));
                }
                None => todo.push((index, req)),
            }
        }
        let mut todo = todo.into_iter();
        for (index, req) in todo.by_ref() {
            if active >= max_active {
                summary.pending += 1;
                continue;
            }
            let arn = match driver.submit(&req).await {
                Ok(arn) => arn,
                Err(e) if e.code() == Some("ServiceQuotaExceededException") => {
                    summary.pending += 1;
                    summary.quota_message = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e),
            };
            let record = JobRecord {
                index,
                job_arn: arn,
                job_name: req.job_name.clone(),
                client_request_token: req.client_request_token.clone(),
                submitted_at: unix_now(),
                model_id: req.model_id.clone(),
                role_arn: req.role_arn.clone(),
                input_uri: req.input_uri.clone(),
                output_uri: req.output_uri.clone(),
                timeout_hours: req.timeout_hours,
                invocation_type: req.invocation_type.clone(),
            };
            self.write_json(&batch_folder::job_record_path(index), &record)
                .await?;
            self.records[index as usize] = Some(record.clone());
            summary.submitted.push(record);
            active += 1;
        }
        summary.pending += todo.count();
        Ok(summary)
    }

    async fn write_json<T: serde::Serialize>(
        &self,
        rel: &str,
        value: &T,
    ) -> Result<(), DriverError> {
        let json = serde_json::to_vec_pretty(value).map_err(folder_error)?;
        let io =
            |e: std::io::Error| DriverError::Folder(format!("writing {}: {e}", self.dest.uri(rel)));
        let mut w = self.dest.create(rel).await.map_err(io)?;
        w.write(Bytes::from(json)).await.map_err(io)?;
        w.finish().await.map_err(io)
    }

    /// The current state of every submitted job, in job order.
    pub async fn jobs(&self, driver: &Driver) -> Result<Vec<JobInfo>, DriverError> {
        let mut jobs = Vec::new();
        for rec in self.records.iter().flatten() {
            jobs.push(driver.get(&rec.job_arn).await?);
        }
        Ok(jobs)
    }

    /// The batch's OpenAI Batch object, given its jobs' state (`finalizing_since` while the
    /// results are being converted).
    pub fn batch_object(&self, jobs: &[JobInfo], finalizing_since: Option<i64>) -> BatchObject {
        let m = &self.manifest;
        let mut metadata = BTreeMap::new();
        metadata.insert("batch_folder".to_owned(), self.uri());
        metadata.insert("model_id".to_owned(), m.model_id.clone());
        if m.counts.rejected > 0 {
            metadata.insert("rejected_lines".to_owned(), m.counts.rejected.to_string());
        }
        let id = self.records.iter().flatten().next().map_or_else(
            || "batch_unsubmitted".to_owned(),
            |r| format!("batch_{}", r.job_id()),
        );
        BatchObject::new(
            jobs,
            BatchContext {
                id,
                endpoint: m.endpoint.clone(),
                model: Some(m.openai_model.clone().unwrap_or_else(|| m.model_id.clone())),
                input_file_id: m.source.clone(),
                total_records: Some(m.counts.records),
                pending_jobs: self.pending(),
                created_at: m.created_at as i64,
                results: self.results.clone(),
                finalizing_since,
                metadata,
            },
        )
    }

    /// Converts the finished jobs' output into the OpenAI output file `output` and error file
    /// `errors`, every `custom_id` once: records a job did not return become error lines saying
    /// why (`batch_expired`, `batch_cancelled`, `batch_failed`, `result_missing`). Records what it
    /// wrote in `results/report.json`.
    pub async fn collect(
        &mut self,
        storage: &Storage,
        jobs: &[JobInfo],
        output: &Location,
        errors: &Location,
        opts: &CollectOptions,
    ) -> Result<Collected, DriverError> {
        if let Some(job) = jobs.iter().find(|j| !j.status.is_terminal()) {
            return Err(DriverError::Folder(format!(
                "job {} is {}: results are collected once every job has ended",
                job.id(),
                job.status
            )));
        }
        if self.pending() > 0 {
            return Err(DriverError::Folder(format!(
                "{} of the folder's jobs are not submitted yet",
                self.pending()
            )));
        }
        let started_at = unix_now();
        let folder = read_batch_folder(self.dest.as_ref())
            .await
            .map_err(folder_error)?;
        let mut fb = FromBedrockOptions::for_folder(&folder.manifest).map_err(folder_error)?;
        if let Some(end) = jobs.iter().filter_map(|j| j.ended_at).max() {
            fb.response.created = end.max(0) as u64;
        }
        for (rec, job) in self.records.iter().flatten().zip(jobs) {
            let why = match &job.status {
                JobStatus::Completed => MissingReason::not_returned(),
                JobStatus::Stopped => MissingReason::cancelled(),
                JobStatus::Failed => {
                    MissingReason::failed(job.message.as_deref().unwrap_or("no reason given"))
                }
                _ => MissingReason::expired(),
            };
            fb.missing_by_job.insert(rec.index, why);
        }
        fb.threads = opts.threads;
        fb.progress = opts.progress.clone();
        let ok = storage
            .writer(output, StdWriter::stdout)
            .await
            .map_err(|e| DriverError::Folder(format!("{output}: {e}")))?;
        let err = storage
            .writer(errors, StdWriter::stderr)
            .await
            .map_err(|e| DriverError::Folder(format!("{errors}: {e}")))?;
        let mut report =
            convert_from_bedrock(folder.files, Some(Arc::new(folder.ledger)), ok, err, &fb).await?;
        if let Some(totals) = folder.totals {
            compare_with_manifest(&mut report, totals, jobs.len());
        }
        let record = ResultsRecord {
            output: output.to_string(),
            errors: errors.to_string(),
            started_at,
            finished_at: unix_now(),
            succeeded: report.succeeded,
            failed: report.failed,
            missing: report.missing,
            input_tokens: report.input_tokens,
            cached_tokens: report.cached_tokens,
            output_tokens: report.output_tokens,
        };
        self.write_json(batch_folder::RESULTS_RECORD, &record)
            .await?;
        self.results = Some(record.clone());
        Ok(Collected { report, record })
    }
}
