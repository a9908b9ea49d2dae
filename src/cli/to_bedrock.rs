//! `bedrock-batch to-bedrock`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use super::units::parse_bytes;
use super::{progress_bar, EXIT_OK, EXIT_REJECTS};
use bedrock_batch::batch_folder;
use bedrock_batch::io::{ChunkSource, Location, StdWriter, Storage};
use bedrock_batch::pipeline::{
    convert_to_bedrock, BedrockOutput, ConvertError, Report, ToBedrockOptions,
};
use bedrock_batch::record::Family;

/// Convert an OpenAI batch input file into Bedrock batch inference records.
///
/// Each input line {"custom_id","method":"POST","url":"/v1/chat/completions","body":{…}} becomes
/// one Bedrock record {"recordId","modelInput":{…}} whose modelInput is the model's native
/// request body. Lines that cannot be converted are written, with their line number and the
/// reason, to a rejects file; the run goes on. A summary of the counts is printed on stderr.
///
/// Exit status: 0 when every line converted, 1 when some lines were rejected (0 with
/// --allow-rejects), 2 when the run failed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  # One Bedrock JSONL stream (recordId = custom_id), rejects in out.jsonl.rejected.jsonl
  bedrock-batch to-bedrock requests.jsonl out.jsonl --model anthropic.claude-3-5-haiku-20241022-v1:0

  # A batch folder ready for a Bedrock job: batch.json, input/00000.jsonl, ids/, rejected.jsonl
  bedrock-batch to-bedrock requests.jsonl staging/ --model us.anthropic.claude-sonnet-4-20250514-v1:0

  # From S3 to a batch folder on S3, ready to submit
  bedrock-batch to-bedrock s3://my-bucket/requests.jsonl s3://my-bucket/batches/run1/ \
      --model us.anthropic.claude-sonnet-4-20250514-v1:0

  # From stdin to stdout, rejects on stderr
  cat requests.jsonl | bedrock-batch to-bedrock - - --model anthropic.claude-3-haiku-20240307-v1:0")]
pub struct Args {
    /// The OpenAI batch input file (JSONL): a path, an s3://bucket/key object, or - for stdin.
    input: String,

    /// Where to write: a file, an s3://bucket/key object or - (one Bedrock JSONL stream), or a
    /// directory or s3://bucket/prefix/ ending in / (a batch folder with batch.json, input/, ids/
    /// and rejected.jsonl).
    output: String,

    #[command(flatten)]
    convert: ConvertArgs,

    /// Where rejected lines go when OUTPUT is a file or - (default: OUTPUT.rejected.jsonl, or
    /// stderr when OUTPUT is -).
    #[arg(long, value_name = "FILE")]
    rejects: Option<String>,

    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
}

/// How OpenAI lines become Bedrock records (shared by `to-bedrock` and `run`).
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The Bedrock model id, inference profile id (us.…, eu.…, global.…) or ARN the batch is for.
    #[arg(long, short = 'm', value_name = "MODEL_ID")]
    pub model: String,

    /// The body format, when the model id does not say (an application inference profile):
    /// anthropic, nova, llama, mistral-text, mistral-chat, gpt-oss, titan-embed.
    #[arg(long, value_name = "NAME")]
    family: Option<String>,

    /// invoke-model: each record in the model's native body (default); converse: a Converse job,
    /// one body for any chat model (no tool calling in batch).
    #[arg(long, value_name = "TYPE", default_value = "invoke-model", value_parser = ["invoke-model", "converse"])]
    invocation_type: String,

    /// max_tokens for requests that set neither max_completion_tokens nor max_tokens (Claude
    /// requires one).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_tokens: u64,

    /// Most records in one input file of a batch folder (Bedrock's default quota is 50,000).
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    records_per_file: u64,

    /// Largest input file of a batch folder (Bedrock's limit is 1 GB). Accepts 500MB, 1GB, 64MiB.
    #[arg(long, value_name = "SIZE", default_value = "1GB", value_parser = parse_bytes)]
    bytes_per_file: u64,

    /// Most records in one Bedrock job (Bedrock's default quota is 50,000); more records make
    /// several jobs, each under input/jobNNN/.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    records_per_job: u64,

    /// Largest Bedrock job (Bedrock's limit is 5 GB).
    #[arg(long, value_name = "SIZE", default_value = "5GB", value_parser = parse_bytes)]
    bytes_per_job: u64,

    /// Drop request fields the model cannot honour (seed, logprobs, n>1, penalties, …) and count
    /// them, instead of rejecting the line.
    #[arg(long)]
    drop_unsupported: bool,

    /// Exit with status 0 even when some lines were rejected.
    #[arg(long)]
    pub allow_rejects: bool,

    /// Write a batch folder even when a job has fewer than the 100 records Bedrock requires.
    #[arg(long)]
    allow_small: bool,

    /// Reject lines longer than this without reading them into memory.
    #[arg(long, value_name = "SIZE", default_value = "20MiB", value_parser = parse_bytes)]
    max_line_bytes: u64,

    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Size of the blocks converted in parallel (tuning).
    #[arg(long, value_name = "SIZE", default_value = "2MiB", value_parser = parse_bytes, hide_short_help = true)]
    block_size: u64,
}

impl ConvertArgs {
    /// The conversion options these arguments ask for.
    pub fn options(&self, source_name: &str) -> anyhow::Result<ToBedrockOptions> {
        if self.max_tokens == 0 {
            bail!("--max-tokens must be at least 1");
        }
        let family = match (&self.family, self.invocation_type.as_str()) {
            (Some(_), "converse") => {
                bail!("--family and --invocation-type converse exclude each other: a Converse job has one body for every model")
            }
            (None, "converse") => {
                if Family::for_model(&self.model).ok() == Some(Family::TitanEmbed) {
                    bail!(
                        "{}: Converse jobs are for chat models; embeddings run as InvokeModel jobs",
                        self.model
                    );
                }
                Family::Converse
            }
            (Some(name), _) => Family::from_name(name)
                .filter(|f| *f != Family::Converse)
                .with_context(|| {
                    let names: Vec<&str> = Family::ALL
                        .iter()
                        .filter(|f| **f != Family::Converse)
                        .map(|f| f.name())
                        .collect();
                    format!("--family {name}: not a family ({})", names.join(", "))
                })?,
            (None, _) => Family::for_model(&self.model)?,
        };
        let mut opts = ToBedrockOptions::with_family(&self.model, family);
        opts.map.default_max_tokens = self.max_tokens;
        opts.map.drop_unsupported = self.drop_unsupported;
        opts.records_per_file = self.records_per_file;
        opts.bytes_per_file = self.bytes_per_file;
        opts.records_per_job = self.records_per_job;
        opts.bytes_per_job = self.bytes_per_job;
        opts.allow_small = self.allow_small;
        opts.max_line_bytes = usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX);
        opts.threads = self.threads;
        opts.block_size = usize::try_from(self.block_size)
            .unwrap_or(usize::MAX)
            .max(1);
        opts.source_name = source_name.to_owned();
        Ok(opts)
    }
}

pub async fn run(args: Args, storage: &Storage, quiet: bool, json: bool) -> anyhow::Result<u8> {
    let opts = args.convert.options(&args.input)?;
    let input = Location::parse(&args.input).map_err(anyhow::Error::msg)?;
    if input.is_folder() {
        bail!("INPUT {} is a folder; give an OpenAI batch .jsonl file, an s3://bucket/key object, or -", args.input);
    }
    let (source, total) = storage.open(&input).await?;
    let output = Location::parse(&args.output).map_err(anyhow::Error::msg)?;
    let (sink, rejects_at) = if output.is_folder() {
        if args.rejects.is_some() {
            bail!("--rejects applies to file and - outputs; a batch folder keeps its rejects in rejected.jsonl");
        }
        let dest = storage.folder(&output).await?;
        let at = dest.uri(batch_folder::REJECTED);
        (BedrockOutput::Folder(dest), at)
    } else {
        let records = storage.writer(&output, StdWriter::stdout).await?;
        let rejects_arg = args.rejects.clone().unwrap_or_else(|| match &output {
            Location::Std => "-".to_owned(),
            other => format!("{other}.rejected.jsonl"),
        });
        let rejects_loc = Location::parse(&rejects_arg).map_err(anyhow::Error::msg)?;
        let rejects = storage.writer(&rejects_loc, StdWriter::stderr).await?;
        let shown = if rejects_arg == "-" {
            "stderr".to_owned()
        } else {
            rejects_arg
        };
        (BedrockOutput::Stream { records, rejects }, shown)
    };

    let report = convert(
        &args.input,
        &args.output,
        source,
        total,
        sink,
        opts,
        quiet,
        json,
        &rejects_at,
    )
    .await?;
    if let Some(path) = &args.summary {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the summary to {}", path.display()))?;
    }
    Ok(if report.rejected > 0 && !args.convert.allow_rejects {
        EXIT_REJECTS
    } else {
        EXIT_OK
    })
}

/// Converts `source` into `sink` with a progress bar, and prints the summary on stderr (as JSON
/// with `json`).
#[allow(clippy::too_many_arguments)]
pub async fn convert(
    input: &str,
    output: &str,
    source: Box<dyn ChunkSource>,
    total: Option<u64>,
    sink: BedrockOutput,
    mut opts: ToBedrockOptions,
    quiet: bool,
    json: bool,
    rejects_at: &str,
) -> anyhow::Result<Report> {
    let bar = progress_bar(total, quiet);
    let pb = bar.clone();
    opts.progress = Some(Arc::new(move |n| pb.set_position(n)));
    let started = Instant::now();
    let result = convert_to_bedrock(source, sink, &opts).await;
    bar.finish_and_clear();
    let summary = |report: &Report, rejects_at: Option<&str>| {
        if json {
            if let Ok(text) = serde_json::to_string(report) {
                eprintln!("{text}");
            }
        } else if !quiet {
            print_summary(input, output, &opts, report, started, rejects_at);
        }
    };
    match result {
        Ok(report) => {
            summary(&report, Some(rejects_at));
            Ok(report)
        }
        Err(ConvertError::TooFewRecords {
            report,
            job,
            records,
        }) => {
            summary(&report, None);
            bail!(ConvertError::TooFewRecords {
                report,
                job,
                records
            });
        }
        Err(e) => Err(e).context(format!("converting {input} to {output}")),
    }
}

fn print_summary(
    input: &str,
    output: &str,
    opts: &ToBedrockOptions,
    r: &Report,
    started: Instant,
    rejects_at: Option<&str>,
) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{input} → {output} ({}, {})", opts.family, opts.model_id);
    eprintln!(
        "  lines {}: records {} + rejected {} + blank {}",
        r.lines, r.records, r.rejected, r.blank
    );
    eprintln!(
        "  files {}, jobs {}; {} bytes in, {} bytes out in {:.2} s ({:.0} MB/s)",
        r.shards,
        r.jobs,
        r.bytes_in,
        r.bytes_out,
        secs,
        r.bytes_in as f64 / secs.max(1e-9) / 1e6
    );
    if r.rejected > 0 {
        let by: Vec<String> = r
            .rejects_by_code
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        match rejects_at {
            Some(at) => eprintln!("  rejected: {} → {at}", by.join(", ")),
            None => eprintln!("  rejected: {}", by.join(", ")),
        }
    }
    if !r.dropped_fields.is_empty() {
        let by: Vec<String> = r
            .dropped_fields
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        eprintln!("  dropped fields: {}", by.join(", "));
    }
    if r.temperature_clamped > 0 {
        eprintln!(
            "  temperature above 1 clamped to 1: {} requests",
            r.temperature_clamped
        );
    }
    if r.crlf_lines > 0 || r.bom {
        eprintln!(
            "  accepted: {} CRLF line endings{}",
            r.crlf_lines,
            if r.bom { ", a byte-order mark" } else { "" }
        );
    }
}
