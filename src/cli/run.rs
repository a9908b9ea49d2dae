//! `bedrock-batch run`: convert → upload → submit → wait → collect, in one command, resumable.

use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::from_bedrock::{
    estimate, folder_results, print_cost, print_summary, read_prices, Summary,
};
use super::inputs::Inputs;
use super::jobs::{exit_for, render, report_submitted, PollArgs, SubmitArgs, Watcher};
use super::to_bedrock::{check_distinct, check_outside_folder, convert, ConvertArgs};
use super::{Context, EXIT_FAILED, EXIT_OK, EXIT_REJECTS};
use bedrock_batch::batch_folder::{Replace, Start};
use bedrock_batch::driver::{
    results_refusal, BatchFolder, BatchStatus, CollectOptions, Driver, JobInfo, Pacer,
    SubmitSettings,
};
use bedrock_batch::io::{Destination, Location};
use bedrock_batch::pipeline::BedrockOutput;

/// Run an OpenAI batch input file on Bedrock, start to finish.
///
/// Converts INPUT into a batch folder under --staging (streamed straight to S3, no temporary
/// copy), submits its Bedrock jobs (keeping at most --max-jobs in flight), waits for them with a
/// progress bar, and converts the results into OpenAI output and error files, in which every
/// custom_id appears exactly once. Prints the final OpenAI Batch object.
///
/// Running the same command again resumes: a folder that holds this very conversion (same
/// input, same options) is not converted again, jobs already submitted are not submitted again
/// (the idempotency token comes from the folder), and a finished batch is only collected. A
/// folder holding another conversion is refused unless --overwrite replaces it.
///
/// Exit status: 0 when every request succeeded; 1 when some lines were rejected (without
/// --allow-rejects) or some requests failed, expired or were cancelled; 2 when the batch failed or
/// the run could not go on.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  bedrock-batch run requests.jsonl --model us.anthropic.claude-sonnet-4-20250514-v1:0 \\
      --role-arn arn:aws:iam::123456789012:role/BedrockBatch \\
      --staging s3://my-bucket/batches/run1/ --output results.jsonl")]
pub struct Args {
    /// The OpenAI batch input (JSONL): a path, an s3://bucket/key object, or - for stdin. Several
    /// inputs, or a directory or s3://bucket/prefix/ of .jsonl files (see --input-glob), run as
    /// one batch: their records packed into full jobs, at most --max-jobs in flight.
    #[arg(required = true, num_args = 1.., value_name = "INPUT")]
    inputs: Vec<String>,

    /// The S3 prefix the batch folder is staged under (s3://bucket/prefix/); the same prefix
    /// resumes a run.
    #[arg(long, value_name = "S3_PREFIX")]
    staging: String,

    /// Where the OpenAI output lines go (a file, s3://bucket/key or -; default
    /// STAGING/results/output.jsonl).
    #[arg(long, value_name = "RESULTS")]
    output: Option<String>,

    /// Where the OpenAI error lines go (default: beside --output as NAME.errors.jsonl, or
    /// STAGING/results/errors.jsonl).
    #[arg(long, value_name = "FILE")]
    errors: Option<String>,

    #[command(flatten)]
    convert: ConvertArgs,

    #[command(flatten)]
    submit: SubmitArgs,

    #[command(flatten)]
    poll: PollArgs,

    /// A price table (TOML, USD per million tokens by Bedrock model id; see the README): the
    /// summary shows the estimated cost of what ran.
    #[arg(long, value_name = "FILE")]
    prices: Option<std::path::PathBuf>,

    /// Also write one output and error file per input, STAGING/results/by-input/
    /// NNNNNN-NAME.output.jsonl and .errors.jsonl (listed in results/report.json).
    #[arg(long)]
    results_per_input: bool,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub async fn run(args: Args, cx: &Context) -> anyhow::Result<u8> {
    let staging_arg = if args.staging.ends_with('/') {
        args.staging.clone()
    } else {
        format!("{}/", args.staging)
    };
    let staging = Location::parse(&staging_arg).map_err(anyhow::Error::msg)?;
    if !matches!(staging, Location::S3(_)) {
        bail!("--staging {staging_arg}: Bedrock reads and writes S3, so the staging folder must be an s3://bucket/prefix/");
    }
    let prices = read_prices(args.prices.as_deref())?;
    let settings = args.submit.settings(cx.kms_key_id.clone())?;
    let inputs = Inputs::resolve(
        &cx.storage,
        &args.inputs,
        args.convert.input_glob.as_deref(),
        Some(&staging),
    )
    .await?;
    for (_, input) in &inputs.list {
        check_outside_folder("INPUT", input, &staging)?;
    }
    // Where the results go, checked before anything runs (and is billed): never over an input,
    // never both into one file, inside the folder only below results/.
    let (output, errors) = folder_results(&staging, args.output.as_deref(), args.errors.as_deref());
    let output_loc = Location::parse(&output).map_err(anyhow::Error::msg)?;
    let errors_loc = Location::parse(&errors).map_err(anyhow::Error::msg)?;
    check_distinct(&[("--output", &output_loc), ("--errors", &errors_loc)])?;
    for (_, input) in &inputs.list {
        check_distinct(&[
            ("INPUT", input),
            ("--output", &output_loc),
            ("--errors", &errors_loc),
        ])?;
    }
    for (what, at) in [("--output", &output_loc), ("--errors", &errors_loc)] {
        if at.to_string().trim_end_matches('/') == staging_arg.trim_end_matches('/') {
            bail!("{what} {at} is the staging folder itself; nothing was converted or submitted");
        }
        if let Some(why) = results_refusal(at, &staging) {
            bail!("{what} {at}: {why}; nothing was converted or submitted");
        }
    }
    let dest = cx.storage.folder(&staging).await?;
    let driver = cx.driver().await;

    // 1. Convert, unless the folder already holds this very conversion (a resumed run).
    convert_unless_done(&args, &inputs, &staging_arg, &dest, &driver, cx).await?;
    let mut folder = BatchFolder::open(Arc::clone(&dest))
        .await?
        .with_lock_options(cx.lock("run"));
    let rejected = folder.manifest().counts.rejected;
    if rejected > 0 && !args.convert.allow_rejects {
        eprintln!(
            "{rejected} lines were rejected (see {}): nothing was submitted. Fix them and run with --overwrite (or another --staging), or run again with --allow-rejects to run the other {} requests.",
            folder.reader().uri(&folder.manifest().rejected),
            folder.manifest().counts.records
        );
        return Ok(EXIT_REJECTS);
    }

    if folder.cancelled_at().is_some() && !cx.quiet {
        eprintln!(
            "{staging_arg} holds a cancelled batch: nothing more of it is submitted, and its results are collected as they stand; --overwrite converts and runs it anew"
        );
    }
    // 2. Submit (again only what is not running with these settings) and wait, submitting the
    // jobs left over as slots free up.
    let jobs = submit_and_wait(&mut folder, &driver, &settings, &args, cx).await?;

    // 3. Collect: every custom_id once, in the output or the error file.
    let finalizing = folder.batch_object(&jobs, Some(now()));
    if !cx.quiet {
        eprintln!(
            "status: {}: converting the results",
            finalizing.status.as_str()
        );
    }
    let started = std::time::Instant::now();
    let collected = folder
        .collect(
            &cx.storage,
            &jobs,
            &output_loc,
            &errors_loc,
            &CollectOptions {
                threads: args.convert.threads.map(usize::from),
                progress: None,
                by_input: args.results_per_input,
            },
        )
        .await
        .context("collecting the results")?;
    let summary = Summary {
        report: &collected.report,
        estimated_cost_usd: estimate(
            prices.as_ref(),
            Some(folder.manifest().model_id()),
            &collected.report,
        ),
    };
    if cx.json {
        eprintln!("{}", serde_json::to_string(&summary)?);
    } else if !cx.quiet {
        print_summary(&staging_arg, &output, &errors, &collected.report, started);
        print_cost(
            summary.estimated_cost_usd,
            Some(folder.manifest().model_id()),
        );
    }
    let batch = folder.batch_object(&jobs, None);
    let shown = render(&batch, &jobs, cx)?;
    if matches!(output_loc, Location::Std) {
        // The results are on stdout: the Batch object stays out of them.
        eprint!("{shown}");
    } else {
        print!("{shown}");
    }
    let r = &collected.report;
    Ok(match batch.status {
        BatchStatus::Failed => EXIT_FAILED,
        status if exit_for(status) != EXIT_OK => exit_for(status),
        _ if r.failed + r.missing > 0 || !r.clean() => EXIT_REJECTS,
        _ => EXIT_OK,
    })
}

/// Converts INPUT into the staging folder, unless the folder holds this very conversion
/// already (then the run resumes).
async fn convert_unless_done(
    args: &Args,
    inputs: &Inputs,
    staging_arg: &str,
    dest: &Arc<dyn Destination>,
    driver: &Driver,
    cx: &Context,
) -> anyhow::Result<()> {
    let (source, opts, writer) = args
        .convert
        .open_into_folder(&cx.storage, inputs, Arc::clone(dest), &cx.lock("run"))
        .await?;
    let replace = if args.convert.overwrite {
        Replace::Overwrite(driver)
    } else {
        Replace::Refuse
    };
    match writer
        .start_generation(opts.conversion(), opts.source.clone(), replace)
        .await?
    {
        Start::Same(writer) => {
            writer.release().await;
            if !cx.quiet {
                eprintln!("resuming: {staging_arg} already holds this batch, converted before");
            }
        }
        Start::New(generation) => {
            let rejects_at = generation.uri(&generation.generation().rejected_path());
            convert(
                inputs,
                staging_arg,
                source,
                BedrockOutput::Folder(generation),
                opts,
                cx,
                &rejects_at,
            )
            .await?;
        }
    }
    Ok(())
}

/// Submits the folder's jobs (checking those submitted before against these settings) and
/// takes [`BatchFolder::advance`] steps, with a progress bar, until every job has ended.
/// Returns the jobs' final state.
async fn submit_and_wait(
    folder: &mut BatchFolder,
    driver: &Driver,
    settings: &SubmitSettings,
    args: &Args,
    cx: &Context,
) -> anyhow::Result<Vec<JobInfo>> {
    let max_jobs = usize::from(args.submit.max_jobs);
    // The first submission checks every recorded job against these settings, even when none
    // waits for a slot.
    let summary = folder.submit(driver, settings, max_jobs).await?;
    report_submitted(&summary, cx);
    if folder.job_records().iter().all(Option::is_none) && folder.cancelled_at().is_none() {
        bail!(
            "no job could be submitted: {}",
            summary
                .quota_message
                .as_deref()
                .unwrap_or("the job quota is full")
        );
    }
    let mut watcher = Watcher::new(cx.quiet);
    let mut pacer = Pacer::new(args.poll.options());
    let mut submit = None;
    let jobs = loop {
        let step = folder.advance(driver, submit).await?;
        submit = Some((settings, max_jobs));
        if let Some(summary) = step.submitted.filter(|s| !s.submitted.is_empty()) {
            report_submitted(&summary, cx);
        }
        watcher.update(&step.jobs, &folder.batch_object(&step.jobs, None));
        if step.ended {
            break step.jobs;
        }
        tokio::time::sleep(pacer.next(&step.jobs)).await;
    };
    watcher.finish();
    Ok(jobs)
}
