//! `bedrock-batch to-bedrock`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use futures::StreamExt;

use super::inputs::{InputStream, Inputs};
use super::units::bytes_in;
use super::{progress_bar, Context, EXIT_OK, EXIT_REJECTS};
use bedrock_batch::batch_folder::{
    owned_prefixes, BatchManifest, FolderError, FolderWriter, InputIdentity, LockOptions, Replace,
    Start,
};
use bedrock_batch::io::{
    ChunkSource, Destination, Location, ObjectIdentity, Peeked, StdWriter, Storage, HOUSEKEEPING,
};
use bedrock_batch::pipeline::{
    prepare_to_bedrock_inputs, BedrockOutput, Error as PipelineError, Report, ToBedrockOptions,
};
use bedrock_batch::record::endpoint::{first_line, named_by};
use bedrock_batch::record::model_table::{check_model_id, Invocation};
use bedrock_batch::record::{Endpoint, Family, ModelTable};

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

  # A batch folder ready for a Bedrock job: batch.json and gen-…/ (input/, ids/, rejected.jsonl)
  bedrock-batch to-bedrock requests.jsonl staging/ --model us.anthropic.claude-sonnet-4-20250514-v1:0

  # Replace what a folder holds (refused while its Bedrock jobs run)
  bedrock-batch to-bedrock requests-v2.jsonl staging/ --model us.anthropic.claude-sonnet-4-20250514-v1:0 --overwrite

  # From S3 to a batch folder on S3, ready to submit
  bedrock-batch to-bedrock s3://my-bucket/requests.jsonl s3://my-bucket/batches/run1/ \
      --model us.anthropic.claude-sonnet-4-20250514-v1:0

  # Every .jsonl file under a prefix, packed into full jobs of one batch folder
  bedrock-batch to-bedrock s3://my-bucket/exports/2026-11-30/ s3://my-bucket/batches/run2/ \
      --model us.anthropic.claude-sonnet-4-20250514-v1:0

  # From stdin to stdout, rejects on stderr
  cat requests.jsonl | bedrock-batch to-bedrock - - --model anthropic.claude-3-haiku-20240307-v1:0")]
pub struct Args {
    /// The OpenAI batch input (JSONL): a path, an s3://bucket/key object, or - for stdin. Several
    /// inputs, or a directory or s3://bucket/prefix/ of .jsonl files (see --input-glob), make one
    /// batch: custom_ids unique across them, each reject naming its input and line.
    #[arg(required = true, num_args = 1.., value_name = "INPUT")]
    inputs: Vec<String>,

    /// Where to write: a file, an s3://bucket/key object or - (one Bedrock JSONL stream), or a
    /// directory or s3://bucket/prefix/ ending in / (a batch folder: batch.json and one
    /// generation's input/, ids/ and rejected.jsonl).
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

    /// The body format, when the model id does not say (an application inference profile) or
    /// to choose another than the model table's: anthropic, nova, llama, mistral-text,
    /// mistral-chat, gpt-oss, openai-chat, titan-embed, titan-embed-image, nova-embed.
    #[arg(long, value_name = "NAME")]
    family: Option<String>,

    /// Which files of an INPUT directory or s3://…/ prefix are read: a glob matched against the
    /// path below it (* matches across /; default *.jsonl).
    #[arg(long, value_name = "GLOB")]
    pub input_glob: Option<String>,

    /// A model table (TOML, the shape of the built-in one: see the README) whose lines take
    /// precedence over the built-in lines: a model this version does not know, or newer limits.
    #[arg(long, value_name = "FILE")]
    pub models: Option<PathBuf>,

    /// The OpenAI endpoint of the input lines (one per file, as OpenAI requires): /v1/responses
    /// and /v1/completions lines for any chat model; default: the first line's url, else
    /// /v1/chat/completions (/v1/embeddings for an embeddings model). The results are written
    /// in its shape.
    #[arg(long, value_name = "URL", value_parser = ENDPOINTS)]
    endpoint: Option<String>,

    /// invoke-model: each record in the model's native body (default); converse: a Converse job,
    /// one body for any chat model (no tool calling in batch).
    #[arg(long, value_name = "TYPE", default_value = "invoke-model", value_parser = ["invoke-model", "converse"])]
    invocation_type: String,

    /// max_tokens for requests that set neither max_completion_tokens nor max_tokens (Claude
    /// requires one), 1 to 1000000.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_tokens: u64,

    /// Most records in one input file of a batch folder, 1 to 100000000 (Bedrock's default
    /// quota is 50,000).
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    records_per_file: u64,

    /// Largest input file of a batch folder, 1B to 1GB (Bedrock's limit, not adjustable).
    /// Accepts 500MB, 1GB, 64MiB.
    #[arg(long, value_name = "SIZE", default_value = "1GB", value_parser = bytes_in(1, 1_000_000_000))]
    bytes_per_file: u64,

    /// Most records in one Bedrock job, 1 to 100000000 (Bedrock's default quota is 50,000);
    /// more records make several jobs, each with its own input/jobNNN/.
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    records_per_job: u64,

    /// Largest Bedrock job, 1B to 100GB (Bedrock's limit is 5 GB; 100 GB for Nova Pro).
    #[arg(long, value_name = "SIZE", default_value = "5GB", value_parser = bytes_in(1, 100_000_000_000))]
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

    /// Replace what the batch folder holds (another input, other options): the new conversion
    /// is committed first, then everything of the old one is removed. Refused while the old
    /// conversion's Bedrock jobs run.
    #[arg(long)]
    pub overwrite: bool,

    /// Reject lines longer than this without reading them into memory, 1KiB to 1GiB.
    #[arg(long, value_name = "SIZE", default_value = "20MiB", value_parser = bytes_in(1 << 10, 1 << 30))]
    max_line_bytes: u64,

    /// Worker threads, 1 to 256 (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// Size of the blocks converted in parallel (tuning), 64KiB to 256MiB.
    #[arg(long, value_name = "SIZE", default_value = "2MiB", value_parser = bytes_in(64 << 10, 256 << 20), hide_short_help = true)]
    block_size: u64,
}

impl ConvertArgs {
    /// Opens the inputs (one, or each of several in turn as the conversion reaches it) and makes
    /// the conversion options; nothing is read yet.
    pub async fn open<'a>(
        &self,
        storage: &'a Storage,
        inputs: &'a Inputs,
    ) -> anyhow::Result<(InputStream<'a>, ToBedrockOptions)> {
        if let [(name, location)] = inputs.list.as_slice() {
            let opened = storage
                .open_identified(location)
                .await
                .with_context(|| format!("opening {name}"))?;
            let identity = input_identity(name, opened.identity);
            let opts = self.options(identity.clone(), storage.region())?;
            let source = super::inputs::sized(opened.source, identity.bytes);
            let one = futures::stream::once(async move { (identity, Ok(source)) });
            return Ok((one.boxed(), opts));
        }
        let identities = inputs.identify(storage).await?;
        let set = InputIdentity::of_set(&inputs.name, &identities);
        let opts = self.options(set, storage.region())?;
        Ok((inputs.stream(storage, identities), opts))
    }

    /// [`open`](Self::open) for a batch folder at `dest`: the inputs opened, the folder's lock
    /// taken, then the first input's endpoint read (reading a pipe can wait; the lock is held
    /// first).
    pub async fn open_into_folder<'a>(
        &self,
        storage: &'a Storage,
        inputs: &'a Inputs,
        dest: Arc<dyn Destination>,
        lock: &LockOptions,
    ) -> anyhow::Result<(InputStream<'a>, ToBedrockOptions, FolderWriter)> {
        let (stream, mut opts) = self.open(storage, inputs).await?;
        let folder = FolderWriter::open(dest, lock).await?;
        match self.endpoint_from_input(stream, &mut opts).await {
            Ok(stream) => Ok((stream, opts, folder)),
            Err(e) => {
                folder.release().await;
                Err(e)
            }
        }
    }

    /// Without `--endpoint`, reads the first input up to its first request line, whose `url`
    /// names the endpoint when the family serves it (else the family's usual one stays); returns
    /// the inputs to read from their start. A batch folder's lock is taken first: reading a pipe
    /// can wait.
    pub async fn endpoint_from_input<'a>(
        &self,
        mut inputs: InputStream<'a>,
        opts: &mut ToBedrockOptions,
    ) -> anyhow::Result<InputStream<'a>> {
        if self.endpoint.is_some() || opts.family.endpoints().len() < 2 {
            return Ok(inputs);
        }
        // The first request line of the batch: past empty and blank-only inputs (an export's
        // empty first part), a few inputs at most.
        let mut peeked = Vec::new();
        while peeked.len() < 64 {
            let Some((identity, source)) = inputs.next().await else {
                break;
            };
            let source = match source {
                Ok(source) => source,
                // The conversion says why it could not be opened.
                Err(e) => {
                    peeked.push((identity, Err(e)));
                    break;
                }
            };
            let (source, head) =
                Peeked::read(source, opts.max_line_bytes, |h| first_line(h).is_some())
                    .await
                    .with_context(|| format!("reading {}", identity.name))?;
            peeked.push((identity, Ok(Box::new(source) as Box<dyn ChunkSource>)));
            if let Some(line) = first_line(&head) {
                if let Some(endpoint) = named_by(line).filter(|e| opts.family.serves(*e)) {
                    opts.endpoint = endpoint;
                }
                break;
            }
        }
        Ok(futures::stream::iter(peeked).chain(inputs).boxed())
    }

    /// The model table: the built-in one, with `--models FILE`'s lines over it.
    pub fn model_table(&self) -> anyhow::Result<Cow<'static, ModelTable>> {
        read_model_table(self.models.as_deref())
    }

    /// The conversion options these arguments ask for; `region` (where the job would run, if
    /// known) is checked against the model table.
    pub fn options(
        &self,
        source: InputIdentity,
        region: Option<&str>,
    ) -> anyhow::Result<ToBedrockOptions> {
        let table = self.model_table()?;
        check_model_id(&self.model)?;
        table.check_batchable(&self.model)?;
        let family = match (&self.family, self.invocation_type.as_str()) {
            (Some(_), "converse") => {
                bail!("--family and --invocation-type converse exclude each other: a Converse job has one body for every model")
            }
            (None, "converse") => {
                if let Some(entry) = table.entry(&self.model).filter(|e| e.family.is_some()) {
                    if !entry.invocations().contains(&Invocation::Converse) {
                        bail!(
                            "{}: Converse jobs are for chat models; {} runs as InvokeModel jobs",
                            self.model,
                            entry.name
                        );
                    }
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
            (None, _) => {
                let resolved = table.resolve(&self.model)?;
                if let Some(notice) = resolved.notice(&self.model) {
                    tracing::warn!("{notice}");
                }
                resolved.family
            }
        };
        table.check_region(&self.model, region)?;
        let mut opts = ToBedrockOptions::with_family(&self.model, family);
        opts.map.limits = table.limits(family, &self.model);
        if let Some(url) = &self.endpoint {
            opts.endpoint = endpoint_for(url, family)?;
        }
        opts.map.default_max_tokens = self.max_tokens;
        opts.map.drop_unsupported = self.drop_unsupported;
        opts.records_per_file = self.records_per_file;
        opts.bytes_per_file = self.bytes_per_file;
        opts.records_per_job = self.records_per_job;
        opts.bytes_per_job = self.bytes_per_job;
        opts.allow_small = self.allow_small;
        opts.max_line_bytes = usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX);
        opts.max_line_hint = " (see --max-line-bytes)";
        opts.threads = self.threads.map(usize::from);
        opts.block_size = usize::try_from(self.block_size).unwrap_or(usize::MAX);
        opts.source = source;
        Ok(opts)
    }
}

/// The built-in model table, or one with the lines of the table file at `path` over it.
pub fn read_model_table(path: Option<&Path>) -> anyhow::Result<Cow<'static, ModelTable>> {
    match path {
        None => Ok(Cow::Borrowed(ModelTable::builtin())),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--models {}", path.display()))?;
            let table = ModelTable::with_file(&text)
                .with_context(|| format!("--models {}", path.display()))?;
            Ok(Cow::Owned(table))
        }
    }
}

/// The endpoints `--endpoint` takes.
pub const ENDPOINTS: [&str; 4] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/completions",
    "/v1/embeddings",
];

/// The endpoint `--endpoint URL` names, if `family` serves it.
pub fn endpoint_for(url: &str, family: Family) -> anyhow::Result<Endpoint> {
    let endpoint =
        Endpoint::from_url(url).with_context(|| format!("--endpoint {url}: not an endpoint"))?;
    if !family.serves(endpoint) {
        let urls: Vec<&str> = family.endpoints().iter().map(|e| e.url()).collect();
        bail!(
            "--endpoint {url}: the {family} family serves {}",
            urls.join(", ")
        );
    }
    Ok(endpoint)
}

/// What identifies the input `name` opened with `identity`.
pub fn input_identity(name: &str, identity: ObjectIdentity) -> InputIdentity {
    InputIdentity {
        name: name.to_owned(),
        location: identity.location,
        bytes: identity.size,
        version: identity.version,
    }
}

/// Refuses a file (`what` names it) that lies among the batch folder's own files — its
/// generations, results, `batch.json`, housekeeping — which a run into the folder replaces or
/// removes.
pub fn check_outside_folder(what: &str, at: &Location, folder: &Location) -> anyhow::Result<()> {
    if let Some(rel) = at.relative_to(folder) {
        let ours = owned_prefixes().iter().any(|p| rel.starts_with(p.as_str()))
            || rel.starts_with(HOUSEKEEPING);
        if ours {
            bail!("{what} {at} is one of the batch folder {folder}'s own files, which the run replaces or removes; nothing was written");
        }
    }
    Ok(())
}

/// Refuses two of the run's files being one: an output that is the input would destroy it, and
/// two outputs in one file would mix.
pub fn check_distinct(named: &[(&str, &Location)]) -> anyhow::Result<()> {
    for (i, (a, la)) in named.iter().enumerate() {
        for (b, lb) in &named[i + 1..] {
            if la.same_object(lb) {
                bail!("{a} and {b} are the same file ({la}): nothing was written");
            }
        }
    }
    Ok(())
}

pub async fn run(args: Args, cx: &Context) -> anyhow::Result<u8> {
    let output = Location::parse(&args.output).map_err(anyhow::Error::msg)?;
    let inputs = Inputs::resolve(
        &cx.storage,
        &args.inputs,
        args.convert.input_glob.as_deref(),
        output.is_folder().then_some(&output),
    )
    .await?;
    let summary = args.summary.clone().map(Location::File);
    if let Some(s) = &summary {
        for (_, input) in &inputs.list {
            check_distinct(&[("INPUT", input), ("--summary", s)])?;
        }
    }
    let report = if output.is_folder() {
        if args.rejects.is_some() {
            bail!("--rejects applies to file and - outputs; a batch folder keeps its rejects in its generation's rejected.jsonl");
        }
        for (_, input) in &inputs.list {
            check_outside_folder("INPUT", input, &output)?;
        }
        if let Some(s) = &summary {
            check_outside_folder("--summary", s, &output)?;
        }
        let dest = cx.storage.folder(&output).await?;
        let (source, opts, folder) = args
            .convert
            .open_into_folder(&cx.storage, &inputs, dest, &cx.lock("to-bedrock"))
            .await?;
        let jobs = cx.job_check();
        let replace = if args.convert.overwrite {
            Replace::Overwrite(&jobs)
        } else {
            Replace::Refuse
        };
        match folder
            .start_generation(opts.conversion(), opts.source.clone(), replace)
            .await?
        {
            Start::Same(folder) => {
                let m = folder.current()?.manifest().clone();
                folder.release().await;
                already_converted(&args.output, &m, cx);
                return Ok(exit_for_rejects(
                    m.counts.rejected,
                    args.convert.allow_rejects,
                ));
            }
            Start::New(writer) => {
                let rejects_at = writer.uri(&writer.generation().rejected_path());
                convert(
                    &inputs,
                    &args.output,
                    source,
                    BedrockOutput::Folder(writer),
                    opts,
                    cx,
                    &rejects_at,
                )
                .await?
            }
        }
    } else {
        let rejects_arg = args.rejects.clone().unwrap_or_else(|| match &output {
            Location::Std => "-".to_owned(),
            other => format!("{other}.rejected.jsonl"),
        });
        let rejects_loc = Location::parse(&rejects_arg).map_err(anyhow::Error::msg)?;
        for (_, input) in &inputs.list {
            let mut named = vec![
                ("INPUT", input),
                ("OUTPUT", &output),
                ("--rejects", &rejects_loc),
            ];
            named.extend(summary.as_ref().map(|s| ("--summary", s)));
            check_distinct(&named)?;
        }
        let (source, mut opts) = args.convert.open(&cx.storage, &inputs).await?;
        let source = args.convert.endpoint_from_input(source, &mut opts).await?;
        let records = cx.storage.writer(&output, StdWriter::stdout).await?;
        let rejects = match cx.storage.writer(&rejects_loc, StdWriter::stderr).await {
            Ok(w) => w,
            Err(e) => {
                let _ = records.abort().await;
                return Err(e).context(format!("--rejects {rejects_arg}"));
            }
        };
        let shown = if rejects_arg == "-" {
            "stderr".to_owned()
        } else {
            rejects_arg
        };
        convert(
            &inputs,
            &args.output,
            source,
            BedrockOutput::Stream { records, rejects },
            opts,
            cx,
            &shown,
        )
        .await?
    };
    if let Some(path) = &args.summary {
        super::write_summary(path, serde_json::to_vec_pretty(&report)?).await?;
    }
    Ok(exit_for_rejects(
        report.rejected,
        args.convert.allow_rejects,
    ))
}

fn exit_for_rejects(rejected: u64, allowed: bool) -> u8 {
    if rejected > 0 && !allowed {
        EXIT_REJECTS
    } else {
        EXIT_OK
    }
}

/// Says that `folder` already holds this very conversion.
pub fn already_converted(folder: &str, m: &BatchManifest, cx: &Context) {
    if cx.json {
        eprintln!(
            "{}",
            serde_json::json!({"already_converted": m.generation, "counts": m.counts})
        );
    } else if !cx.quiet {
        eprintln!(
            "{folder} already holds this conversion of {} ({}: {} records, {} rejected): nothing to do (--overwrite converts it again)",
            m.input.name, m.generation, m.counts.records, m.counts.rejected
        );
    }
}

/// Converts `inputs` (opened as `source`) into `sink` with a progress bar, and prints the
/// summary on stderr (as JSON with `--json`).
pub async fn convert(
    inputs: &Inputs,
    output: &str,
    source: InputStream<'_>,
    sink: BedrockOutput,
    mut opts: ToBedrockOptions,
    cx: &Context,
    rejects_at: &str,
) -> anyhow::Result<Report> {
    let (quiet, json) = (cx.quiet, cx.json);
    let input = inputs.name.as_str();
    let bar = progress_bar(opts.source.bytes, quiet);
    let pb = bar.clone();
    opts.progress = Some(Arc::new(move |n| pb.set_position(n)));
    let started = Instant::now();
    let prepared = prepare_to_bedrock_inputs(source, inputs.several(), sink, &opts).await;
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
    let prepared = prepared.with_context(|| format!("converting {input} to {output}"))?;
    let report = prepared.report().clone();
    match prepared.commit().await {
        Ok(report) => {
            summary(&report, Some(rejects_at));
            Ok(report)
        }
        Err(e @ PipelineError::Folder(FolderError::TooFewRecords { .. })) => {
            // Nothing was written; the counts still say what the input holds.
            summary(&report, None);
            bail!(e)
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
    if !r.inputs.is_empty() {
        let rejecting = r.inputs.iter().filter(|i| i.counts.rejected > 0).count();
        eprintln!(
            "  inputs {}: {rejecting} with rejected lines",
            r.inputs.len()
        );
    }
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
            .map(|(k, v)| format!("{} {v}", field_name(k)))
            .collect();
        eprintln!("  dropped fields: {}", by.join(", "));
    }
    if !r.clamped.is_empty() {
        let by: Vec<String> = r.clamped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        eprintln!(
            "  clamped to the model's documented range (requests): {}",
            by.join(", ")
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

/// A dropped field's name as the summary shows it: as written when it is plain, else quoted
/// and escaped as a JSON string, so that a name the line gave (a key holding a control
/// character, a space, a comma or a quote) reaches the terminal as text and cannot run into
/// the list around it.
fn field_name(name: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| !(c.is_control() || c.is_whitespace() || matches!(c, ',' | '"'));
    if !name.is_empty() && name.chars().all(plain) {
        name.into()
    } else {
        serde_json::to_string(name)
            .expect("a string serializes")
            .into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dropped_field_s_name_is_shown_as_text_that_ends_where_it_ends() {
        assert_eq!(super::field_name("messages[].name"), "messages[].name");
        assert_eq!(super::field_name("input[0].é"), "input[0].é");
        assert_eq!(super::field_name("a, b"), r#""a, b""#);
        assert_eq!(super::field_name("x\u{0}\n"), r#""x\u0000\n""#);
        assert_eq!(super::field_name("q\"r"), r#""q\"r""#);
        assert_eq!(super::field_name(""), r#""""#);
    }
}
