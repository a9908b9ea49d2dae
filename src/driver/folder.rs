//! A batch folder's Bedrock jobs: submitting them (each recorded in `<gen>/jobs/jobNNN.json`),
//! reading their state, showing them as one OpenAI Batch object, and collecting their results.
//! Every write takes the folder's lock and checks that the folder still holds the generation it
//! was opened with.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::batch_object::{BatchContext, BatchObject};
use super::job::{JobInfo, JobStatus};
use super::request::{default_job_name, JobRequest};
use super::{Driver, DriverError};
use crate::batch_folder::{
    BatchManifest, FolderReader, FolderWriter, JobCheck, JobCheckError, JobRecord, LockOptions,
    ResultsRecord,
};
use crate::io::{Destination, Location, ObjectWriter, StdWriter, Storage};
use crate::pipeline::{
    collect_folder, Collected, FolderResults, FromBedrockOptions, MissingReason,
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
    /// Jobs submitted before with other settings that ran to an end (completed, partly, or
    /// stopped): they ran, and were billed, so their results stand and they are not submitted
    /// again. (Failed and expired jobs, which ran nothing, are submitted anew.)
    pub kept: Vec<JobRecord>,
    /// Jobs not submitted because the limit of jobs in flight was reached.
    pub pending: usize,
    /// Bedrock's word when its quota of submitted and in-progress jobs was reached.
    pub quota_message: Option<String>,
}

/// What one [`BatchFolder::advance`] step did and found.
#[derive(Debug, Clone)]
pub struct Step {
    /// What was submitted, when the step submitted.
    pub submitted: Option<SubmitSummary>,
    /// Every submitted job's state, in job order.
    pub jobs: Vec<JobInfo>,
    /// Every job has been submitted and has ended: the results can be collected.
    pub ended: bool,
}

/// Settings of a collection of results.
#[derive(Clone, Default)]
pub struct CollectOptions {
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Called with the bytes of Bedrock output read so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    /// Also write the results per input (see [`FolderResults::by_input`]).
    pub by_input: bool,
}

/// A batch folder and the Bedrock jobs it was submitted as.
pub struct BatchFolder {
    reader: FolderReader,
    records: Vec<Option<JobRecord>>,
    results: Option<ResultsRecord>,
    /// A commit of results was under way when the folder was read (or a killed run left one).
    unsettled: bool,
    /// When the batch was cancelled, if it was: no job not yet submitted ever will be.
    cancelled_at: Option<u64>,
    lock: LockOptions,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl BatchFolder {
    /// Opens the batch folder at `dest`; `None` when it has no `batch.json` (nothing converted
    /// there yet, or the conversion did not finish).
    pub async fn open_existing(dest: Arc<dyn Destination>) -> Result<Option<Self>, DriverError> {
        let Some(reader) = FolderReader::open(dest).await? else {
            return Ok(None);
        };
        Ok(Some(Self::from_reader(reader).await?))
    }

    /// Opens the batch folder at `dest`, which must hold a `batch.json`.
    pub async fn open(dest: Arc<dyn Destination>) -> Result<Self, DriverError> {
        Self::from_reader(FolderReader::open_existing(dest).await?).await
    }

    async fn from_reader(reader: FolderReader) -> Result<Self, DriverError> {
        let records = reader.job_records().await?;
        // Results being committed (or left mid-commit by a killed run, until the next writer
        // puts them back) are not there yet: the batch is finalizing, never shown half-old.
        let (results, unsettled) = match reader.results().await {
            Err(crate::batch_folder::FolderError::ResultsUnsettled { .. }) => (None, true),
            other => (other?, false),
        };
        let cancelled_at = reader.cancelled_at().await?;
        Ok(BatchFolder {
            reader,
            records,
            results,
            unsettled,
            cancelled_at,
            lock: LockOptions::default(),
        })
    }

    /// How later writes take the folder's lock (the command named, `--break-lock`).
    pub fn with_lock_options(mut self, lock: LockOptions) -> Self {
        self.lock = lock;
        self
    }

    /// `batch.json`.
    pub fn manifest(&self) -> &BatchManifest {
        self.reader.manifest()
    }

    /// The folder's URI.
    pub fn uri(&self) -> String {
        self.reader.uri("")
    }

    /// The folder's reader.
    pub fn reader(&self) -> &FolderReader {
        &self.reader
    }

    /// The recorded job of each of the folder's jobs, by index (`None`: not submitted yet).
    pub fn job_records(&self) -> &[Option<JobRecord>] {
        &self.records
    }

    /// The last collection of results, if any (none while a commit of them is under way).
    pub fn results(&self) -> Option<&ResultsRecord> {
        self.results.as_ref()
    }

    /// Removes every request and answer of the folder's current generation (see
    /// [`Generation::request_data`](crate::batch_folder::Generation::request_data)): what a
    /// finished batch keeps once its output has expired is its record, not its data.
    pub async fn erase_data(&self) -> Result<(), DriverError> {
        let dest = self.reader().dest();
        let generation = self.manifest().generation();
        let io = |rel: &str| {
            let what = format!("removing {}", dest.uri(rel));
            move |e: std::io::Error| {
                DriverError::Folder(crate::batch_folder::FolderError::io(what)(e))
            }
        };
        for rel in generation.request_data() {
            if rel.ends_with('/') {
                dest.delete_prefix(&rel).await.map_err(io(&rel))?;
            } else {
                dest.delete(&rel).await.map_err(io(&rel))?;
            }
        }
        Ok(())
    }

    /// Whether a commit of results was under way when the folder was read — or was left half
    /// done by a killed run, which [`BatchFolder::settle`] puts back.
    pub fn results_unsettled(&self) -> bool {
        self.unsettled
    }

    /// Puts back results a killed run left half committed (the clean-up every writer does when
    /// it takes the folder). A run still committing holds the lock: then nothing is done, and
    /// its commit settles the results.
    pub async fn settle(&self) -> Result<(), DriverError> {
        match FolderWriter::open(Arc::clone(self.reader.dest()), &self.lock).await {
            Ok(writer) => {
                writer.release().await;
                Ok(())
            }
            Err(crate::batch_folder::FolderError::Locked { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Jobs of the folder not submitted yet.
    pub fn pending(&self) -> usize {
        self.records.iter().filter(|r| r.is_none()).count()
    }

    /// When the batch was cancelled (Unix seconds), if it was: then its jobs not submitted by
    /// then never will be, and count as cancelled.
    pub fn cancelled_at(&self) -> Option<u64> {
        self.cancelled_at
    }

    /// Jobs that will still be submitted: none once the batch is cancelled.
    fn to_submit(&self) -> usize {
        if self.cancelled_at.is_some() {
            0
        } else {
            self.pending()
        }
    }

    /// Records that the batch is cancelled, so that no job not submitted yet ever is (by this
    /// process, or a `run` or `wait` on the folder elsewhere, which may hold the folder's lock:
    /// see [`FolderReader::request_cancel`]). Stopping the submitted jobs is the caller's.
    pub async fn record_cancel(&mut self) -> Result<(), DriverError> {
        self.reader.request_cancel(unix_now()).await?;
        self.cancelled_at = self.reader.cancelled_at().await?;
        // A job a run submitted as the cancel was written is recorded by now (a submitter
        // records each job before it looks for a cancel again): the caller stops it too.
        self.records = self.reader.job_records().await?;
        Ok(())
    }

    /// The CreateModelInvocationJob request for the folder's job `index`.
    pub fn request(&self, index: u32, s: &SubmitSettings) -> Result<JobRequest, DriverError> {
        let m = self.manifest();
        let jobs = m.jobs.len();
        let job_name = match &s.job_name {
            Some(name) if jobs > 1 => format!("{name}-job{index:03}"),
            Some(name) => name.clone(),
            None => default_job_name(&self.uri(), m.created_at, index, jobs),
        };
        let generation = self.reader.generation();
        let input_uri = self.reader.uri(&generation.job_input_prefix(index));
        if !input_uri.starts_with("s3://") {
            return Err(DriverError::NotOnS3 { folder: self.uri() });
        }
        let mut req = JobRequest {
            job_name,
            role_arn: s.role_arn.clone(),
            model_id: m.conversion.model_id.clone(),
            input_uri,
            output_uri: self.reader.uri(&generation.output_prefix()),
            kms_key_id: s.kms_key_id.clone(),
            timeout_hours: s.timeout_hours,
            tags: s.tags.clone(),
            subnet_ids: s.subnet_ids.clone(),
            security_group_ids: s.security_group_ids.clone(),
            invocation_type: m.conversion.invocation_type.clone(),
            client_request_token: String::new(),
        };
        req.client_request_token = req.token_for(self.reader.manifest_bytes());
        Ok(req)
    }

    /// Submits the folder's jobs not yet submitted with these settings, keeping at most
    /// `max_active` of them submitted or in progress at once; stops early (without an error) when
    /// Bedrock's quota of jobs in flight is reached. Each job's input prefix is checked to hold
    /// exactly its shards first, and each job is recorded as soon as Bedrock accepts it. A job
    /// recorded with other settings is submitted anew only once it has ended. Holds the folder's
    /// lock meanwhile.
    pub async fn submit(
        &mut self,
        driver: &Driver,
        settings: &SubmitSettings,
        max_active: usize,
    ) -> Result<SubmitSummary, DriverError> {
        let writer = FolderWriter::open(Arc::clone(self.reader.dest()), &self.lock).await?;
        let result = self
            .submit_locked(&writer, driver, settings, max_active)
            .await;
        writer.release().await;
        result
    }

    async fn submit_locked(
        &mut self,
        writer: &FolderWriter,
        driver: &Driver,
        settings: &SubmitSettings,
        max_active: usize,
    ) -> Result<SubmitSummary, DriverError> {
        // Another run may have submitted (or cancelled) meanwhile: what the folder records now
        // is what counts.
        let reader = writer.expect(&self.manifest().generation)?;
        self.records = reader.job_records().await?;
        self.cancelled_at = reader.cancelled_at().await?;
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
                        return Err(DriverError::OtherSettings {
                            folder: self.uri(),
                            index,
                            job_arn: rec.job_arn.clone(),
                            status: info.status.to_string(),
                        });
                    }
                    if matches!(info.status, JobStatus::Failed | JobStatus::Expired) {
                        todo.push((index, req));
                    } else {
                        summary.kept.push(rec.clone());
                    }
                }
                None => todo.push((index, req)),
            }
        }
        if self.cancelled_at.is_some() {
            // Cancelled: what was submitted runs out (or is being stopped); nothing more goes.
            return Ok(summary);
        }
        let mut todo = todo.into_iter();
        for (index, req) in todo.by_ref() {
            if active >= max_active {
                summary.pending += 1;
                continue;
            }
            // Bedrock reads every file under the prefix: it must hold exactly this job's shards.
            writer.check_job_input(index).await?;
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
                generation: self.manifest().generation.clone(),
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
            writer.write_job_record(&record).await?;
            self.records[index as usize] = Some(record.clone());
            summary.submitted.push(record);
            active += 1;
            // Recorded first, then looked for a cancel (before the pass, the folder was read
            // above): a cancel written before this look is seen here, and one written after it
            // reads this job's record and stops it.
            if let Some(at) = reader.cancelled_at().await? {
                self.cancelled_at = Some(at);
                driver
                    .stop(&summary.submitted.last().expect("pushed").job_arn)
                    .await?;
                break;
            }
        }
        summary.pending += todo.count();
        Ok(summary)
    }

    /// One step of running the batch, as `run` and `serve`'s background task both take it:
    /// when `submit` gives settings and a limit of jobs in flight, the jobs waiting for a slot
    /// are submitted ([`submit`](Self::submit)); then every submitted job's state is read. The
    /// step says whether every job has been submitted and has ended — then the results can be
    /// collected.
    pub async fn advance(
        &mut self,
        driver: &Driver,
        submit: Option<(&SubmitSettings, usize)>,
    ) -> Result<Step, DriverError> {
        // A cancel recorded since (by `cancel`, from anywhere) stops the submitting.
        if self.cancelled_at.is_none() {
            self.cancelled_at = self.reader.cancelled_at().await?;
        }
        let submitted = match submit {
            Some((settings, max_active)) if self.to_submit() > 0 => {
                Some(self.submit(driver, settings, max_active).await?)
            }
            _ => None,
        };
        let jobs = self.jobs(driver).await?;
        let ended = self.to_submit() == 0 && jobs.iter().all(|j| j.status.is_terminal());
        Ok(Step {
            submitted,
            jobs,
            ended,
        })
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
        let m = self.manifest();
        let mut metadata = BTreeMap::new();
        metadata.insert("batch_folder".to_owned(), self.uri());
        metadata.insert("model_id".to_owned(), m.conversion.model_id.clone());
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
                endpoint: m.conversion.endpoint.clone(),
                model: Some(
                    m.openai_model
                        .clone()
                        .unwrap_or_else(|| m.conversion.model_id.clone()),
                ),
                input_file_id: m.input.name.clone(),
                total_records: Some(m.counts.records),
                pending_jobs: self.to_submit(),
                cancelled_at: self.cancelled_at.map(|at| at as i64),
                created_at: m.created_at as i64,
                results: self.results.clone(),
                finalizing_since,
                metadata,
            },
        )
    }

    /// Converts the finished jobs' output into the OpenAI output file `output` and error file
    /// `errors`, every `custom_id` once: records a job did not return become error lines saying
    /// why (`batch_expired`, `batch_cancelled`, `batch_failed`, `result_missing`). Commits them
    /// with `results/report.json`, all or none, under the folder's lock.
    pub async fn collect(
        &mut self,
        storage: &Storage,
        jobs: &[JobInfo],
        output: &Location,
        errors: &Location,
        opts: &CollectOptions,
    ) -> Result<Collected, DriverError> {
        if let Some(job) = jobs.iter().find(|j| !j.status.is_terminal()) {
            return Err(DriverError::NotEnded(format!(
                "job {} is {}",
                job.id(),
                job.status
            )));
        }
        if self.to_submit() > 0 {
            return Err(DriverError::NotEnded(format!(
                "{} of the folder's jobs are not submitted yet",
                self.pending()
            )));
        }
        let mut fb = FromBedrockOptions::for_folder(self.manifest())?;
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
        // Jobs a cancel kept from being submitted: their records were cancelled.
        for (index, rec) in self.records.iter().enumerate() {
            if rec.is_none() {
                fb.missing_by_job
                    .insert(index as u32, MissingReason::cancelled());
            }
        }
        fb.threads = opts.threads;
        fb.progress = opts.progress.clone();
        let writer = FolderWriter::open(Arc::clone(self.reader.dest()), &self.lock).await?;
        let result = async {
            writer.expect(&self.manifest().generation)?;
            let results = FolderResults {
                ok: results_writer(storage, &writer, output, StdWriter::stdout).await?,
                err: results_writer(storage, &writer, errors, StdWriter::stderr).await?,
                output: output.to_string(),
                errors: errors.to_string(),
                by_input: opts.by_input,
            };
            Ok::<_, DriverError>(collect_folder(&writer, results, &fb).await?)
        }
        .await;
        writer.release().await;
        let collected = result?;
        self.results = Some(collected.record.clone());
        Ok(collected)
    }
}

/// Why a results file may not be at `at`, for the batch folder at `root`: inside the folder,
/// only `results/` takes results, and not `results/report.json`, the folder's own record of
/// them. (For callers that check before a run rather than at its end.)
pub fn results_refusal(at: &Location, root: &Location) -> Option<&'static str> {
    let rel = at.relative_to(root)?;
    if rel == crate::batch_folder::RESULTS_RECORD {
        return Some("results/report.json is the batch folder's own record of its results; choose another name");
    }
    if rel.starts_with(crate::batch_folder::RESULTS_BY_INPUT) {
        return Some("results/by-input/ holds the folder's per-input results, which each collection replaces; choose a name outside it");
    }
    if !rel.starts_with(crate::batch_folder::RESULTS)
        || rel.len() == crate::batch_folder::RESULTS.len()
    {
        return Some("inside the batch folder, results go below results/; its other files are the folder's own");
    }
    None
}

/// A writer for a results file at `at`: through the folder when `at` is inside it (so that its
/// temporary file is the folder's), else on its own. Inside the folder only `results/` takes
/// results, and not `results/report.json`, the folder's own record of them: a results file
/// anywhere else there (`batch.json`, a generation's files, through `..` or a link) is refused.
pub async fn results_writer(
    storage: &Storage,
    folder: &FolderWriter,
    at: &Location,
    std: fn() -> StdWriter,
) -> Result<Box<dyn ObjectWriter>, DriverError> {
    let refuse = |why: &str| DriverError::Results {
        location: at.to_string(),
        why: std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned()),
    };
    let root = Location::parse(&folder.dest().uri("")).map_err(|e| refuse(&e.to_string()))?;
    if let Some(why) = results_refusal(at, &root) {
        return Err(refuse(why));
    }
    if let Some(rel) = at.relative_to(&root) {
        return Ok(folder.create(&rel).await?);
    }
    storage
        .writer(at, std)
        .await
        .map_err(|why| DriverError::Results {
            location: at.to_string(),
            why,
        })
}

impl JobCheck for Driver {
    fn running<'a>(
        &'a self,
        job_arns: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, JobCheckError>> {
        Box::pin(async move {
            let mut running = Vec::new();
            for arn in job_arns {
                let info = self.get(arn).await?;
                if !info.status.is_terminal() {
                    running.push(format!("{} ({})", info.id(), info.status));
                }
            }
            Ok(running)
        })
    }
}
