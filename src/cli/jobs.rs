//! `bedrock-batch submit | status | list | cancel | wait`: Bedrock jobs, shown as OpenAI Batch
//! objects.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::units::{format_time, parse_duration, parse_time};
use super::{Context, EXIT_FAILED, EXIT_OK, EXIT_REJECTS};
use bedrock_batch::driver::{
    is_job_identifier, job_id, parse_tag, timeout_hours, BatchContext, BatchFolder, BatchObject,
    BatchStatus, Driver, JobInfo, JobStatus, ListFilter, Pacer, PollOptions, StopOutcome,
    SubmitSettings,
};
use bedrock_batch::io::Location;

/// How a batch folder's jobs are submitted (shared by `submit` and `run`).
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The IAM service role Bedrock assumes to read the input and write the output
    /// (arn:aws:iam::ACCOUNT:role/NAME).
    #[arg(long, value_name = "ARN")]
    pub role_arn: String,

    /// The job name (default: the folder's name and conversion time; -jobNNN is added when the
    /// folder holds several jobs).
    #[arg(long, value_name = "NAME")]
    pub job_name: Option<String>,

    /// How long Bedrock may take before it stops the job: 24h to 168h (or 1d to 7d).
    #[arg(long, value_name = "WINDOW", default_value = "24h")]
    pub completion_window: String,

    /// A tag on the job (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// A VPC subnet for the job (repeatable; needs --security-group-id).
    #[arg(long = "subnet-id", value_name = "ID")]
    pub subnet_ids: Vec<String>,

    /// A VPC security group for the job (repeatable; needs --subnet-id).
    #[arg(long = "security-group-id", value_name = "ID")]
    pub security_group_ids: Vec<String>,

    /// Most jobs of the folder submitted or in progress at once (Bedrock's default quota is 20 per
    /// model).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_jobs: u16,
}

impl SubmitArgs {
    /// The settings, checked.
    pub fn settings(&self, kms_key_id: Option<String>) -> anyhow::Result<SubmitSettings> {
        let tags = self
            .tags
            .iter()
            .map(|t| parse_tag(t))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(name) = &self.job_name {
            bedrock_batch::driver::check_job_name(name)?;
        }
        Ok(SubmitSettings {
            role_arn: self.role_arn.clone(),
            job_name: self.job_name.clone(),
            timeout_hours: timeout_hours(&self.completion_window)?,
            kms_key_id,
            tags,
            subnet_ids: self.subnet_ids.clone(),
            security_group_ids: self.security_group_ids.clone(),
        })
    }
}

/// How often to ask Bedrock how the jobs are doing.
#[derive(Debug, clap::Args)]
pub struct PollArgs {
    /// The first interval between polls (it grows while nothing changes).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// The longest interval between polls.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub max_poll_interval: Duration,
}

impl PollArgs {
    /// The poll options.
    pub fn options(&self) -> PollOptions {
        PollOptions {
            initial: self.poll_interval,
            max: self.max_poll_interval,
        }
    }
}

/// Submit a batch folder on S3 as Bedrock batch inference jobs.
///
/// Makes one CreateModelInvocationJob per job of the folder (input DEST/<generation>/input/jobNNN/,
/// output DEST/<generation>/output/), after checking that each input prefix holds exactly the
/// shards batch.json names; records each job in DEST/<generation>/jobs/jobNNN.json, and prints
/// the batch. The idempotency token is derived from the folder and the settings: submitting the
/// same folder again returns the jobs already running instead of starting (and billing) new
/// ones; changed settings (say, a corrected role) submit anew once the old job has ended.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  bedrock-batch to-bedrock requests.jsonl s3://my-bucket/batches/run1/ --model anthropic.claude-3-5-haiku-20241022-v1:0
  bedrock-batch submit s3://my-bucket/batches/run1/ --role-arn arn:aws:iam::123456789012:role/BedrockBatch
  bedrock-batch wait s3://my-bucket/batches/run1/ && bedrock-batch from-bedrock s3://my-bucket/batches/run1/")]
pub struct SubmitCommand {
    /// The batch folder (s3://bucket/prefix/) made by `to-bedrock`.
    dest: String,

    #[command(flatten)]
    submit: SubmitArgs,
}

/// Show a batch (a batch folder, a job ARN or a job id) as an OpenAI Batch object.
#[derive(Debug, clap::Args)]
pub struct StatusCommand {
    /// A batch folder (s3://bucket/prefix/), a job ARN, or a 12-character job id.
    job_or_dest: String,
}

/// List Bedrock batch inference jobs, newest first.
#[derive(Debug, clap::Args)]
pub struct ListCommand {
    /// Only jobs in this Bedrock status (Submitted, Validating, Scheduled, InProgress, Completed,
    /// PartiallyCompleted, Failed, Stopping, Stopped, Expired).
    #[arg(long, value_name = "STATUS")]
    status: Option<String>,

    /// Only jobs whose name contains this.
    #[arg(long, value_name = "TEXT")]
    name_contains: Option<String>,

    /// Only jobs submitted after this time (2026-01-02T03:04:05Z or Unix seconds).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    submitted_after: Option<i64>,

    /// Only jobs submitted before this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    submitted_before: Option<i64>,

    /// At most this many jobs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,

    /// Oldest first.
    #[arg(long)]
    oldest_first: bool,
}

/// Stop a batch's Bedrock jobs (records already processed stay in the output and are billed).
#[derive(Debug, clap::Args)]
pub struct CancelCommand {
    /// A batch folder (s3://bucket/prefix/), a job ARN, or a 12-character job id.
    job_or_dest: String,
}

/// Wait until a batch's jobs end, with a progress bar; prints the final Batch object.
///
/// Exit status: 0 when the batch completed, 1 when it ended otherwise (expired, cancelled), 2 when
/// it failed.
#[derive(Debug, clap::Args)]
pub struct WaitCommand {
    /// A batch folder (s3://bucket/prefix/), a job ARN, or a 12-character job id.
    job_or_dest: String,

    #[command(flatten)]
    poll: PollArgs,
}

/// What a JOB_OR_DEST argument names.
enum Target {
    Job(String),
    Folder(Box<BatchFolder>),
}

async fn target(arg: &str, cx: &Context) -> anyhow::Result<Target> {
    if is_job_identifier(arg) {
        return Ok(Target::Job(arg.to_owned()));
    }
    let folder_arg = if arg.ends_with('/') {
        arg.to_owned()
    } else {
        format!("{arg}/")
    };
    let location = Location::parse(&folder_arg).map_err(anyhow::Error::msg)?;
    let dest = cx.storage.folder(&location).await?;
    Ok(Target::Folder(Box::new(BatchFolder::open(dest).await?)))
}

/// The Batch object of one job seen on its own.
fn job_batch(job: &JobInfo) -> BatchObject {
    let mut metadata = BTreeMap::new();
    if let Some(uri) = &job.output_uri {
        metadata.insert("output_uri".to_owned(), uri.clone());
    }
    BatchObject::new(
        std::slice::from_ref(job),
        BatchContext {
            id: format!("batch_{}", job.id()),
            endpoint: "/v1/chat/completions".into(),
            input_file_id: job.input_uri.clone().unwrap_or_default(),
            metadata,
            ..Default::default()
        },
    )
}

/// The current jobs and Batch object of a target.
async fn look(target: &Target, driver: &Driver) -> anyhow::Result<(Vec<JobInfo>, BatchObject)> {
    match target {
        Target::Job(job) => {
            let info = driver.get(job).await?;
            let batch = job_batch(&info);
            Ok((vec![info], batch))
        }
        Target::Folder(folder) => {
            if folder.job_records().iter().all(Option::is_none) && folder.cancelled_at().is_none() {
                bail!(
                    "{} is not submitted yet: bedrock-batch submit {} --role-arn ARN",
                    folder.uri(),
                    folder.uri()
                );
            }
            let jobs = folder.jobs(driver).await?;
            let batch = folder.batch_object(&jobs, None);
            Ok((jobs, batch))
        }
    }
}

/// Prints a Batch object: JSON on stdout with `--json`, else a few readable lines.
pub fn show(batch: &BatchObject, jobs: &[JobInfo], cx: &Context) -> anyhow::Result<()> {
    print!("{}", render(batch, jobs, cx)?);
    Ok(())
}

/// A Batch object as [`show`] prints it.
pub fn render(batch: &BatchObject, jobs: &[JobInfo], cx: &Context) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    if cx.json {
        writeln!(out, "{}", serde_json::to_string_pretty(batch)?)?;
        return Ok(out);
    }
    let c = &batch.request_counts;
    writeln!(out, "{}  {}", batch.id, batch.status.as_str())?;
    if let Some(model) = &batch.model {
        writeln!(out, "  model      {model}")?;
    }
    writeln!(out, "  input      {}", batch.input_file_id)?;
    writeln!(
        out,
        "  requests   {} total: {} completed, {} failed",
        c.total, c.completed, c.failed
    )?;
    for job in jobs {
        let progress = match (job.processed_records, job.total_records) {
            (Some(p), Some(t)) => format!(" {p}/{t} processed"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  job        {} {}{progress}  {}",
            job.id(),
            job.status,
            job.name
        )?;
    }
    writeln!(out, "  created    {}", format_time(batch.created_at))?;
    for (what, at) in [
        ("expires", batch.expires_at),
        ("completed", batch.completed_at),
        ("failed", batch.failed_at),
        ("expired", batch.expired_at),
        ("cancelled", batch.cancelled_at),
    ] {
        if let Some(at) = at {
            writeln!(out, "  {what:<10} {}", format_time(at))?;
        }
    }
    if let Some(file) = &batch.output_file_id {
        writeln!(out, "  output     {file}")?;
    }
    if let Some(err) = &batch.error_file_id {
        writeln!(out, "  errors     {err}")?;
    }
    if let Some(usage) = &batch.usage {
        writeln!(
            out,
            "  tokens     {} prompt ({} cached), {} completion",
            usage.input_tokens, usage.input_tokens_details.cached_tokens, usage.output_tokens
        )?;
    }
    for e in batch.errors.iter().flat_map(|e| &e.data) {
        writeln!(out, "  error      {}: {}", e.code, e.message)?;
    }
    if batch.status.is_terminal() && batch.output_file_id.is_none() {
        if let Some(folder) = batch.metadata.get("batch_folder") {
            writeln!(
                out,
                "  results    not collected yet: bedrock-batch from-bedrock {folder}"
            )?;
        }
    }
    Ok(out)
}

/// The exit status for a batch that ended: 0 completed, 1 expired or cancelled, 2 failed.
pub fn exit_for(status: BatchStatus) -> u8 {
    match status {
        BatchStatus::Completed => EXIT_OK,
        BatchStatus::Failed => EXIT_FAILED,
        _ => EXIT_REJECTS,
    }
}

/// Prints the submitted jobs on stderr.
pub fn report_submitted(summary: &bedrock_batch::driver::SubmitSummary, cx: &Context) {
    if cx.quiet {
        return;
    }
    for rec in &summary.submitted {
        eprintln!(
            "submitted job {} as {} ({})",
            rec.index, rec.job_arn, rec.job_name
        );
    }
    for rec in &summary.existing {
        eprintln!(
            "job {} was already submitted with these settings: {}",
            rec.index, rec.job_arn
        );
    }
    for rec in &summary.kept {
        eprintln!(
            "job {} ran to its end with other settings ({}): its results stand, it is not submitted again",
            rec.index, rec.job_arn
        );
    }
    if summary.pending > 0 {
        eprintln!(
            "{} jobs wait for a free slot{}",
            summary.pending,
            summary
                .quota_message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        );
    }
}

pub async fn submit(args: SubmitCommand, cx: &Context) -> anyhow::Result<u8> {
    let settings = args.submit.settings(cx.kms_key_id.clone())?;
    let Target::Folder(folder) = target(&args.dest, cx).await? else {
        bail!("submit takes a batch folder (s3://bucket/prefix/), not a job");
    };
    let mut folder = folder.with_lock_options(cx.lock("submit"));
    let driver = cx.driver().await;
    let summary = folder
        .submit(&driver, &settings, usize::from(args.submit.max_jobs))
        .await?;
    report_submitted(&summary, cx);
    if folder.cancelled_at().is_some() && !cx.quiet && folder.pending() > 0 {
        eprintln!(
            "the batch was cancelled: its {} jobs not submitted by then never will be",
            folder.pending()
        );
    }
    if summary.pending > 0 && !cx.quiet {
        eprintln!(
            "run `bedrock-batch submit {}` again once jobs finish, or use `bedrock-batch run`, which submits them as slots free up",
            folder.uri()
        );
    }
    let jobs = folder.jobs(&driver).await?;
    show(&folder.batch_object(&jobs, None), &jobs, cx)?;
    Ok(EXIT_OK)
}

pub async fn status(args: StatusCommand, cx: &Context) -> anyhow::Result<u8> {
    let target = target(&args.job_or_dest, cx).await?;
    let (jobs, batch) = look(&target, &cx.driver().await).await?;
    show(&batch, &jobs, cx)?;
    Ok(EXIT_OK)
}

pub async fn list(args: ListCommand, cx: &Context) -> anyhow::Result<u8> {
    let status = match &args.status {
        Some(s) => Some(JobStatus::parse(s).with_context(|| {
            format!(
                "--status {s}: not a Bedrock job status ({})",
                JobStatus::NAMES.join(", ")
            )
        })?),
        None => None,
    };
    let filter = ListFilter {
        status,
        name_contains: args.name_contains.clone(),
        submitted_after: args.submitted_after,
        submitted_before: args.submitted_before,
        limit: args.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        oldest_first: args.oldest_first,
    };
    let found = cx.driver().await.list(&filter).await?;
    let jobs = found.jobs;
    let batches: Vec<BatchObject> = jobs.iter().map(job_batch).collect();
    if cx.json {
        let list = serde_json::json!({
            "object": "list",
            "data": batches,
            "first_id": batches.first().map(|b| &b.id),
            "last_id": batches.last().map(|b| &b.id),
            "has_more": found.more,
        });
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(EXIT_OK);
    }
    println!(
        "{:<12}  {:<18}  {:<11}  {:<20}  {:>15}  {:<40}  NAME",
        "JOB", "BEDROCK STATUS", "STATUS", "SUBMITTED", "PROCESSED", "MODEL"
    );
    for (job, batch) in jobs.iter().zip(&batches) {
        let progress = match (job.processed_records, job.total_records) {
            (Some(p), Some(t)) => format!("{p}/{t}"),
            (Some(p), None) => p.to_string(),
            _ => "-".to_owned(),
        };
        println!(
            "{:<12}  {:<18}  {:<11}  {:<20}  {:>15}  {:<40}  {}",
            job.id(),
            job.status.as_str(),
            batch.status.as_str(),
            format_time(job.submitted_at),
            progress,
            job.model_id,
            job.name
        );
    }
    if found.more {
        // Not on stdout: its rows stay one per job for whoever reads them.
        eprintln!(
            "(more jobs match: raise --limit{} to see them)",
            args.limit
                .map(|n| format!(" above {n}"))
                .unwrap_or_default()
        );
    }
    Ok(EXIT_OK)
}

pub async fn cancel(args: CancelCommand, cx: &Context) -> anyhow::Result<u8> {
    let mut target = target(&args.job_or_dest, cx).await?;
    let driver = cx.driver().await;
    let arns: Vec<String> = match &mut target {
        Target::Job(job) => vec![job.clone()],
        Target::Folder(folder) => {
            // A batch that has ended is left as it is (completed stays completed).
            let jobs = folder.jobs(&driver).await?;
            let ended = folder.pending() == 0 && jobs.iter().all(|j| j.status.is_terminal());
            // Recorded first: a run submitting the folder's other jobs (here or elsewhere)
            // submits none after this, and wait and collect count them as cancelled.
            if !ended {
                folder.record_cancel().await?;
            }
            if !cx.quiet && folder.pending() > 0 {
                eprintln!(
                    "{} of the folder's jobs were not submitted yet; none of them will be",
                    folder.pending()
                );
            }
            folder
                .job_records()
                .iter()
                .flatten()
                .map(|r| r.job_arn.clone())
                .collect()
        }
    };
    if arns.is_empty() {
        if !cx.quiet {
            eprintln!("cancelled before any job was submitted");
        }
        return Ok(EXIT_OK);
    }
    for arn in &arns {
        match driver.stop(arn).await? {
            StopOutcome::Stopping => {
                if !cx.quiet {
                    eprintln!("stopping job {}", job_id(arn));
                }
            }
            StopOutcome::AlreadyFinished(status) => {
                if !cx.quiet {
                    eprintln!("job {} had already ended: {status}", job_id(arn));
                }
            }
        }
    }
    let (jobs, batch) = look(&target, &driver).await?;
    show(&batch, &jobs, cx)?;
    Ok(EXIT_OK)
}

/// A progress bar of records processed, on stderr when it is a terminal and not `--quiet`.
pub fn records_bar(quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let style = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} records  {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    indicatif::ProgressBar::new(0).with_style(style)
}

/// Shows a poll's news: the bar's position, and a line on stderr when the status changes.
pub struct Watcher {
    bar: indicatif::ProgressBar,
    last: Option<String>,
    quiet: bool,
}

impl Watcher {
    /// A watcher with a bar unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Watcher {
            bar: records_bar(quiet),
            last: None,
            quiet,
        }
    }

    /// Takes one poll's state.
    pub fn update(&mut self, jobs: &[JobInfo], batch: &BatchObject) {
        let total = jobs
            .iter()
            .filter_map(|j| j.total_records)
            .sum::<u64>()
            .max(batch.request_counts.total);
        let done: u64 = jobs.iter().filter_map(|j| j.processed_records).sum();
        let bedrock: Vec<&str> = jobs.iter().map(|j| j.status.as_str()).collect();
        let line = if bedrock.is_empty() {
            // (Cancelled before any job was submitted.)
            batch.status.as_str().to_owned()
        } else {
            format!(
                "{} (Bedrock: {})",
                batch.status.as_str(),
                bedrock.join(", ")
            )
        };
        // The news line first, above the bar, so the bar is drawn once, below it.
        if self.last.as_ref() != Some(&line) {
            if !self.quiet {
                self.bar
                    .suspend(|| eprintln!("status: {line}, {done}/{total} records processed"));
            }
            self.last = Some(line.clone());
        }
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.set_message(line);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub async fn wait(args: WaitCommand, cx: &Context) -> anyhow::Result<u8> {
    let target = target(&args.job_or_dest, cx).await?;
    let driver = cx.driver().await;
    let mut watcher = Watcher::new(cx.quiet);
    let mut pacer = Pacer::new(args.poll.options());
    let (jobs, batch) = loop {
        let (jobs, batch) = look(&target, &driver).await?;
        watcher.update(&jobs, &batch);
        let pending = match &target {
            Target::Folder(f) => f.pending(),
            Target::Job(_) => 0,
        };
        if jobs.iter().all(|j| j.status.is_terminal()) {
            if pending > 0 && !cx.quiet {
                eprintln!("{pending} jobs of the folder are not submitted yet: bedrock-batch submit or run");
            }
            break (jobs, batch);
        }
        tokio::time::sleep(pacer.next(&jobs)).await;
    };
    watcher.finish();
    show(&batch, &jobs, cx)?;
    Ok(exit_for(batch.status))
}
