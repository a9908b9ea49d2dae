//! `bedrock-batch from-bedrock`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use super::to_bedrock::{check_distinct, check_outside_folder};
use super::{progress_bar, Context as Cx, EXIT_OK, EXIT_REJECTS};
use bedrock_batch::batch_folder::FolderWriter;
use bedrock_batch::driver::results_writer;
use bedrock_batch::io::{Location, StdWriter};
use bedrock_batch::pipeline::{
    collect_folder, convert_from_bedrock, FolderResults, FromBedrockOptions, FromBedrockReport,
    MissingReason, OutputFile,
};
use bedrock_batch::pricing::{Prices, Tokens};
use bedrock_batch::record::Family;

/// Convert Bedrock batch output back into OpenAI batch output and error files.
///
/// Each Bedrock record {"recordId","modelInput","modelOutput"} becomes an OpenAI output line
/// {"id","custom_id","response":{"status_code":200,"request_id","body":<chat.completion>},
/// "error":null}; each Bedrock error record becomes an error-file line with its status code and
/// message. Given a batch folder, recordIds are mapped back to custom_ids, and every record Bedrock
/// did not return gets an error line (batch_expired, or see --missing), so every custom_id comes
/// back exactly once.
///
/// Exit status: 0 when every line converted, 1 when some lines could not be read or matched, 2
/// when the run failed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  # A batch folder after its job ran: writes DEST/results/output.jsonl and errors.jsonl
  bedrock-batch from-bedrock staging/

  # One Bedrock output file (recordId = custom_id), errors to results.errors.jsonl
  bedrock-batch from-bedrock records.jsonl.out results.jsonl --model anthropic.claude-3-haiku-20240307-v1:0")]
pub struct Args {
    /// A Bedrock output file (.jsonl.out) as a path, an s3://bucket/key object or - for stdin; or a
    /// batch folder (a directory or an s3://bucket/prefix/ ending in /).
    input: String,

    /// Where OpenAI output lines go: a file, an s3://bucket/key object or -. Default for a batch
    /// folder: DEST/results/output.jsonl.
    output: Option<String>,

    /// Where OpenAI error lines go (default: OUTPUT's stem + .errors.jsonl beside it; stderr when
    /// OUTPUT is -; DEST/results/errors.jsonl for a batch folder).
    #[arg(long, value_name = "FILE")]
    errors: Option<String>,

    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,

    /// The Bedrock model id the records ran on (for a file; a batch folder knows it).
    #[arg(long, short = 'm', value_name = "MODEL_ID")]
    model: Option<String>,

    /// The body format of the records (for a file whose --model does not say; a batch folder
    /// knows it): anthropic, nova, llama, mistral-text, mistral-chat, gpt-oss, openai-chat,
    /// titan-embed, titan-embed-image, nova-embed, converse.
    #[arg(long, value_name = "NAME")]
    family: Option<String>,

    /// A model table whose lines take precedence over the built-in ones (as for to-bedrock).
    #[arg(long, value_name = "FILE")]
    models: Option<PathBuf>,

    /// The OpenAI endpoint the requests were for, which decides the responses' shape (for a
    /// file; a batch folder knows it): /v1/chat/completions (default), /v1/responses,
    /// /v1/completions, /v1/embeddings.
    #[arg(long, value_name = "URL", value_parser = super::to_bedrock::ENDPOINTS)]
    endpoint: Option<String>,

    /// What records Bedrock never returned become: expired (the job ran out of time) or cancelled
    /// (the job was stopped). Default: cancelled for a batch folder whose batch was cancelled
    /// (`bedrock-batch cancel`), else expired.
    #[arg(long, value_name = "WHY", value_parser = ["expired", "cancelled"])]
    missing: Option<String>,

    /// `created` of every response, Unix seconds (default: batch.json's creation time for a batch
    /// folder, the file's modification time for a file, now for stdin).
    #[arg(long, value_name = "SECS")]
    created: Option<u64>,

    /// Worker threads, 1 to 256 (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,

    /// Read lines of Bedrock's output up to this long, 1KiB to 4GiB (each is held in memory
    /// whole). A longer line is not read: the record it begins with gets an error line saying
    /// so (never "expired"), and a run with a higher limit reads its answer.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = super::units::bytes_in(1 << 10, 4 << 30))]
    max_line_bytes: u64,

    /// A price table (TOML, USD per million tokens by Bedrock model id; see the README): the
    /// summary shows the estimated cost of what ran.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,

    /// For a batch folder made of several inputs: also write one output and error file per
    /// input, DEST/results/by-input/NNNNNN-NAME.output.jsonl and .errors.jsonl (listed in
    /// results/report.json).
    #[arg(long)]
    results_per_input: bool,
}

/// `--prices FILE`, read before any work so that a bad table stops nothing half done.
pub(super) fn read_prices(path: Option<&Path>) -> anyhow::Result<Option<Prices>> {
    let Some(path) = path else { return Ok(None) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--prices {}", path.display()))?;
    Ok(Some(
        Prices::parse(&text).with_context(|| format!("--prices {}", path.display()))?,
    ))
}

/// The estimated cost of the report's tokens on `model`, when the table prices it (a warning
/// says when it does not).
pub(super) fn estimate(
    prices: Option<&Prices>,
    model: Option<&str>,
    r: &FromBedrockReport,
) -> Option<f64> {
    let prices = prices?;
    let Some(model) = model else {
        eprintln!("warning: --prices: the estimated cost needs the model (--model MODEL_ID)");
        return None;
    };
    let tokens = Tokens {
        input: r.input_tokens,
        cached: r.cached_tokens,
        cache_write: r.cache_write_tokens,
        output: r.output_tokens,
    };
    let cost = prices.cost(model, &tokens);
    if cost.is_none() {
        eprintln!("warning: --prices: no price for {model} in the table");
    }
    cost
}

/// The summary as JSON: the report, and the estimated cost when prices were given.
#[derive(serde::Serialize)]
pub(super) struct Summary<'a> {
    #[serde(flatten)]
    pub report: &'a FromBedrockReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_cost_usd: Option<f64>,
}

/// Where a batch folder's results go: OUTPUT (default `DEST/results/output.jsonl`) and ERRORS
/// (default beside OUTPUT, stderr when OUTPUT is `-`, else `DEST/results/errors.jsonl`).
pub fn folder_results(
    folder: &Location,
    output: Option<&str>,
    errors: Option<&str>,
) -> (String, String) {
    let errors = errors.map(str::to_owned).unwrap_or_else(|| match output {
        Some("-") => "-".to_owned(),
        Some(o) => default_errors(o),
        None => folder.join("results/errors.jsonl").to_string(),
    });
    let output = output
        .map(str::to_owned)
        .unwrap_or_else(|| folder.join("results/output.jsonl").to_string());
    (output, errors)
}

/// The error file beside an output file: `out.jsonl` → `out.errors.jsonl`.
pub fn default_errors(output: &str) -> String {
    let path = Path::new(output);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.errors.jsonl"))
        .display()
        .to_string()
}

fn unix_mtime(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs(),
    )
}

pub async fn run(args: Args, cx: &Cx) -> anyhow::Result<u8> {
    let started = Instant::now();
    let missing = args.missing.as_deref().map(|why| match why {
        "cancelled" => MissingReason::cancelled(),
        _ => MissingReason::expired(),
    });
    let input = Location::parse(&args.input).map_err(anyhow::Error::msg)?;
    let prices = read_prices(args.prices.as_deref())?;
    let bar = progress_bar(None, cx.quiet);
    let pb = bar.clone();
    let progress = Arc::new(move |n| pb.set_position(n));
    let (report, output, errors, model) = if input.is_folder() {
        collect_from_folder(&args, cx, &input, missing, progress).await?
    } else {
        let missing = missing.unwrap_or_else(MissingReason::expired);
        let (report, output, errors) = convert_files(&args, cx, &input, missing, progress).await?;
        (report, output, errors, args.model.clone())
    };
    bar.finish_and_clear();
    let summary = Summary {
        report: &report,
        estimated_cost_usd: estimate(prices.as_ref(), model.as_deref(), &report),
    };
    if cx.json {
        eprintln!("{}", serde_json::to_string(&summary)?);
    } else if !cx.quiet {
        print_summary(&args.input, &output, &errors, &report, started);
        print_cost(summary.estimated_cost_usd, model.as_deref());
    }
    if let Some(path) = &args.summary {
        super::write_summary(path, serde_json::to_vec_pretty(&summary)?).await?;
    }
    Ok(if report.clean() {
        EXIT_OK
    } else {
        EXIT_REJECTS
    })
}

impl Args {
    /// What the flags set on top of the options a folder or a file gives.
    fn apply(
        &self,
        opts: &mut FromBedrockOptions,
        missing: MissingReason,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) {
        opts.missing = missing;
        if let Some(created) = self.created {
            opts.response.created = created;
        }
        opts.threads = self.threads.map(usize::from);
        opts.max_line_bytes = usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX);
        opts.progress = Some(progress);
    }
}

/// Collects a batch folder's results into its `results/` (or OUTPUT and --errors): the report
/// and where the output and error files went.
async fn collect_from_folder(
    args: &Args,
    cx: &Cx,
    input: &Location,
    missing: Option<MissingReason>,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> anyhow::Result<(FromBedrockReport, String, String, Option<String>)> {
    let (output, errors) = folder_results(input, args.output.as_deref(), args.errors.as_deref());
    let output_loc = Location::parse(&output).map_err(anyhow::Error::msg)?;
    let errors_loc = Location::parse(&errors).map_err(anyhow::Error::msg)?;
    check_distinct(&[("OUTPUT", &output_loc), ("--errors", &errors_loc)])?;
    // (Inside the folder, only results/ takes them: the results writer checks.)
    if let Some(summary) = &args.summary {
        let summary = Location::File(summary.clone());
        check_distinct(&[
            ("OUTPUT", &output_loc),
            ("--errors", &errors_loc),
            ("--summary", &summary),
        ])?;
        check_outside_folder("--summary", &summary, input)?;
    }
    let dest = cx.storage.folder(input).await?;
    let folder = FolderWriter::open(dest, &cx.lock("from-bedrock")).await?;
    let mut model = None;
    let collected = async {
        let current = folder.current()?;
        let manifest = current.manifest().clone();
        model = Some(manifest.model_id().to_owned());
        let mut opts = FromBedrockOptions::for_folder(&manifest)?;
        let missing = match missing {
            Some(why) => why,
            None if current.cancelled_at().await?.is_some() => MissingReason::cancelled(),
            None => MissingReason::expired(),
        };
        args.apply(&mut opts, missing, progress);
        let results = FolderResults {
            ok: results_writer(&cx.storage, &folder, &output_loc, StdWriter::stdout).await?,
            err: results_writer(&cx.storage, &folder, &errors_loc, StdWriter::stderr).await?,
            output: output.clone(),
            errors: errors.clone(),
            by_input: args.results_per_input,
        };
        anyhow::Ok(collect_folder(&folder, results, &opts).await?)
    }
    .await;
    folder.release().await;
    let report = collected
        .with_context(|| format!("converting {}", args.input))?
        .report;
    if report.lines == 0 {
        eprintln!("warning: no Bedrock output (…/output/<job-id>/*.jsonl.out) in {input}: every record is missing");
    }
    Ok((report, output, errors, model))
}

/// Converts a Bedrock output file (or stdin) into OUTPUT and --errors: the report and where the
/// output and error files went.
async fn convert_files(
    args: &Args,
    cx: &Cx,
    input: &Location,
    missing: MissingReason,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> anyhow::Result<(FromBedrockReport, String, String)> {
    let Some(output) = args.output.clone() else {
        bail!("OUTPUT is required when INPUT is a file or -");
    };
    let errors = args.errors.clone().unwrap_or_else(|| {
        if output == "-" {
            "-".to_owned()
        } else {
            default_errors(&output)
        }
    });
    let output_loc = Location::parse(&output).map_err(anyhow::Error::msg)?;
    let errors_loc = Location::parse(&errors).map_err(anyhow::Error::msg)?;
    let summary = args.summary.clone().map(Location::File);
    let mut named = vec![
        ("INPUT", input),
        ("OUTPUT", &output_loc),
        ("--errors", &errors_loc),
    ];
    named.extend(summary.as_ref().map(|s| ("--summary", s)));
    check_distinct(&named)?;
    let model = args.model.clone().unwrap_or_else(|| "unknown".to_owned());
    let family = match (&args.family, &args.model) {
        (Some(name), _) => Family::from_name(name).with_context(|| {
            let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
            format!("--family {name}: not a family ({})", names.join(", "))
        })?,
        (None, Some(m)) => {
            super::to_bedrock::read_model_table(args.models.as_deref())?
                .resolve(m)?
                .family
        }
        (None, None) => Family::Anthropic,
    };
    let created = match &input {
        Location::File(path) => unix_mtime(path),
        _ => None,
    }
    .unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let mut opts = FromBedrockOptions::new(family, &model, created);
    if let Some(url) = &args.endpoint {
        opts.response.endpoint = super::to_bedrock::endpoint_for(url, family)?;
    }
    opts.id_salt = args.input.clone();
    args.apply(&mut opts, missing, progress);
    let (source, _) = cx.storage.open(input).await?;
    let files = vec![OutputFile {
        name: args.input.clone(),
        source,
    }];
    let ok = cx.storage.writer(&output_loc, StdWriter::stdout).await?;
    let err = match cx.storage.writer(&errors_loc, StdWriter::stderr).await {
        Ok(w) => w,
        Err(e) => {
            let _ = ok.abort().await;
            return Err(e).context(format!("--errors {errors}"));
        }
    };
    let report = convert_from_bedrock(files, None, ok, err, &opts)
        .await
        .with_context(|| format!("converting {}", args.input))?;
    Ok((report, output, errors))
}

/// The estimated cost line of the summary.
pub(super) fn print_cost(usd: Option<f64>, model: Option<&str>) {
    if let (Some(usd), Some(model)) = (usd, model) {
        eprintln!("  estimated cost: ${usd:.4} ({model}, at the --prices table's prices)");
    }
}

pub(super) fn print_summary(
    input: &str,
    output: &str,
    errors: &str,
    r: &FromBedrockReport,
    started: Instant,
) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{input} → {output} (errors: {errors})");
    if let Some(records) = r.records {
        eprintln!(
            "  records {records}: succeeded {} + failed {} + missing {}",
            r.succeeded, r.failed, r.missing
        );
    }
    eprintln!(
        "  lines {}: succeeded {} + failed {} + duplicates {} + unknown {} + unreadable {} + blank {}",
        r.lines, r.succeeded, r.failed, r.duplicates, r.unknown_records, r.bad_lines, r.blank
    );
    if r.invalid_outputs > 0 {
        eprintln!(
            "  answers that could not be mapped (invalid_model_output in the error file): {}",
            r.invalid_outputs
        );
    }
    if !r.failed_by_status.is_empty() {
        let by: Vec<String> = r
            .failed_by_status
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        eprintln!("  failed by status: {}", by.join(", "));
    }
    eprintln!(
        "  tokens: {} prompt ({} cached), {} completion; {} bytes in {:.2} s ({:.0} MB/s)",
        r.input_tokens,
        r.cached_tokens,
        r.output_tokens,
        r.bytes_in,
        secs,
        r.bytes_in as f64 / secs.max(1e-9) / 1e6
    );
    if let Some(m) = &r.manifest {
        eprintln!(
            "  Bedrock's manifest: {} records, {} processed, {} succeeded, {} failed; tokens {} in, {} out",
            m.total_record_count,
            m.processed_record_count,
            m.success_record_count,
            m.error_record_count,
            m.input_token_count,
            m.output_token_count
        );
    }
    for p in &r.problems {
        eprintln!("  {}:{}: {}", p.file, p.line, p.message);
    }
    for d in r.disagreements.iter().chain(&r.warnings) {
        eprintln!("  warning: {d}");
    }
}
