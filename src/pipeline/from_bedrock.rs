//! Bedrock batch output → OpenAI batch output and error files, streaming, with every custom_id
//! accounted for.
//!
//! Output lines follow the order of Bedrock's `.jsonl.out` files (Bedrock shuffles them; OpenAI
//! makes no order promise either). With a batch folder, the `ids/` ledger turns `recordId`s back
//! into `custom_id`s, and every ledger record Bedrock did not return gets an error line at the end
//! (`batch_expired`, or the code the caller chooses, such as `batch_cancelled`).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::framer::Block;
use super::ordered::{self, BlockJob, EngineConfig, EngineError};
use super::shared::{worker_pool, write_err, KeySet};
use super::to_bedrock::ConvertError;
use crate::batch_folder::{self, BatchManifest, JobRecord};
use crate::io::{ChunkSource, Destination, ObjectWriter};
use crate::record::anthropic::Usage;
use crate::record::bedrock_output::{
    parse_output_line, write_missing_line, write_openai_line, LineIds, Outcome, ResponseOptions,
};
use crate::record::{Family, Reject, RejectCode};

/// The error code and message for records Bedrock never returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingReason {
    /// OpenAI `error.code`.
    pub code: String,
    /// OpenAI `error.message`.
    pub message: String,
}

impl MissingReason {
    /// The job ran out of time (`Expired`, `PartiallyCompleted`): OpenAI's `batch_expired`.
    pub fn expired() -> Self {
        MissingReason {
            code: "batch_expired".into(),
            message: "This request could not be executed before the completion window expired."
                .into(),
        }
    }

    /// The job was stopped: `batch_cancelled`.
    pub fn cancelled() -> Self {
        MissingReason {
            code: "batch_cancelled".into(),
            message: "This request was not executed because the batch was cancelled.".into(),
        }
    }
}

impl MissingReason {
    /// The job failed before running the record.
    pub fn failed(why: &str) -> Self {
        MissingReason {
            code: "batch_failed".into(),
            message: format!("This request was not executed because the Bedrock job failed: {why}"),
        }
    }

    /// The job completed, yet Bedrock returned nothing for the record.
    pub fn not_returned() -> Self {
        MissingReason {
            code: "result_missing".into(),
            message: "Bedrock completed the job but returned no result for this request.".into(),
        }
    }
}

/// Settings of a conversion from Bedrock.
#[derive(Clone)]
pub struct FromBedrockOptions {
    /// How responses are written (family, reported model, `created`).
    pub response: ResponseOptions,
    /// What records missing from Bedrock's output become.
    pub missing: MissingReason,
    /// The same, per job of a batch folder (when its jobs ended differently); else `missing`.
    pub missing_by_job: BTreeMap<u32, MissingReason>,
    /// Mixed into every output `id`, so two batches never share ids (a batch folder uses its
    /// source and creation time).
    pub id_salt: String,
    /// Lines longer than this are reported without being read into memory.
    pub max_line_bytes: usize,
    /// Approximate size of the blocks converted in parallel.
    pub block_size: usize,
    /// Worker threads; `None` uses rayon's global pool.
    pub threads: Option<usize>,
    /// Called with the number of bytes read so far (across files).
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl FromBedrockOptions {
    /// Options for the results of a batch folder: its family, the model its input named (as
    /// OpenAI reports it; else the Bedrock model), its creation time as `created`, and an id salt
    /// of its own.
    pub fn for_folder(manifest: &BatchManifest) -> Result<Self, FolderError> {
        let family = Family::from_name(&manifest.family).ok_or_else(|| {
            FolderError::Invalid(format!(
                "batch.json names an unknown model family {:?}",
                manifest.family
            ))
        })?;
        let model = manifest
            .openai_model
            .as_deref()
            .unwrap_or(&manifest.model_id);
        let mut opts = FromBedrockOptions::new(family, model, manifest.created_at);
        opts.id_salt = format!("{}:{}", manifest.source, manifest.created_at);
        Ok(opts)
    }

    /// Options for `family`, reporting `model` (a plain string) and `created`.
    pub fn new(family: Family, model: &str, created: u64) -> Self {
        FromBedrockOptions {
            response: ResponseOptions {
                family,
                model: serde_json::to_string(model).expect("a string serializes"),
                created,
            },
            missing: MissingReason::expired(),
            missing_by_job: BTreeMap::new(),
            id_salt: String::new(),
            max_line_bytes: 256 << 20,
            block_size: 2 << 20,
            threads: None,
            progress: None,
        }
    }
}

/// The ledger of a batch folder: each record's `recordId` and `custom_id`, in record order.
#[derive(Debug, Default)]
pub struct RecordLedger {
    index: HashMap<Box<str>, u32>,
    /// `(recordId, custom_id literal)` by index.
    records: Vec<(Box<str>, Box<str>)>,
    /// `(first index, job)` for each run of records of one job.
    jobs: Vec<(u32, u32)>,
}

impl RecordLedger {
    /// Adds the lines of one `ids/NNNNN.ids` file (`recordId<TAB>custom_id literal`).
    pub fn add_ids(&mut self, name: &str, text: &[u8]) -> Result<(), String> {
        self.add_job_ids(name, text, 0)
    }

    /// Adds the lines of one `ids/NNNNN.ids` file whose records belong to job `job`.
    pub fn add_job_ids(&mut self, name: &str, text: &[u8], job: u32) -> Result<(), String> {
        if self.jobs.last().is_none_or(|&(_, j)| j != job) {
            self.jobs.push((self.records.len() as u32, job));
        }
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let bad = || format!("{name} line {}: not `recordId<TAB>custom_id`", i + 1);
            let line = std::str::from_utf8(line).map_err(|_| bad())?;
            let (record_id, custom_id) = line.split_once('\t').ok_or_else(bad)?;
            if serde_json::from_str::<String>(custom_id).is_err() {
                return Err(bad());
            }
            let index = self.records.len() as u32;
            if self.index.insert(record_id.into(), index).is_some() {
                return Err(format!(
                    "{name} line {}: recordId {record_id} appears twice in the ledger",
                    i + 1
                ));
            }
            self.records.push((record_id.into(), custom_id.into()));
        }
        Ok(())
    }

    /// Records in the ledger.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the ledger is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The job of the record at `index`.
    fn job_of(&self, index: u32) -> u32 {
        let run = self.jobs.partition_point(|&(first, _)| first <= index);
        run.checked_sub(1).map_or(0, |r| self.jobs[r].1)
    }

    fn get(&self, record_id: &str) -> Option<(u32, &str)> {
        self.index
            .get(record_id)
            .map(|&i| (i, &*self.records[i as usize].1))
    }
}

/// One Bedrock output file to convert.
pub struct OutputFile {
    /// Its name, for messages.
    pub name: String,
    /// Its bytes.
    pub source: Box<dyn ChunkSource>,
}

/// A line that could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// The file.
    pub file: String,
    /// The 1-based line number in it.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Totals from Bedrock's `manifest.json.out` files, summed over jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestTotals {
    /// Records submitted.
    #[serde(default)]
    pub total_record_count: u64,
    /// Records processed.
    #[serde(default)]
    pub processed_record_count: u64,
    /// Records that succeeded.
    #[serde(default)]
    pub success_record_count: u64,
    /// Records that failed.
    #[serde(default)]
    pub error_record_count: u64,
    /// Input tokens.
    #[serde(default)]
    pub input_token_count: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_token_count: u64,
    /// How many manifests were summed.
    #[serde(skip)]
    pub manifests: u64,
}

impl ManifestTotals {
    fn add(&mut self, o: &ManifestTotals) {
        self.total_record_count += o.total_record_count;
        self.processed_record_count += o.processed_record_count;
        self.success_record_count += o.success_record_count;
        self.error_record_count += o.error_record_count;
        self.input_token_count += o.input_token_count;
        self.output_token_count += o.output_token_count;
        self.manifests += 1;
    }
}

/// What a conversion from Bedrock did.
///
/// `lines = succeeded + failed + duplicates + unknown_records + bad_lines + blank`, and with a
/// ledger `records = succeeded + failed + missing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FromBedrockReport {
    /// Lines read from Bedrock's output files.
    pub lines: u64,
    /// Records in the ledger (batch folders only).
    pub records: Option<u64>,
    /// Output-file lines written (successes).
    pub succeeded: u64,
    /// Error-file lines from Bedrock error records.
    pub failed: u64,
    /// Error-file lines for records Bedrock never returned.
    pub missing: u64,
    /// Records Bedrock returned more than once (reported once).
    pub duplicates: u64,
    /// Lines whose recordId is not in the ledger.
    pub unknown_records: u64,
    /// Lines that could not be read.
    pub bad_lines: u64,
    /// Blank lines.
    pub blank: u64,
    /// Failures by status code.
    pub failed_by_status: BTreeMap<u16, u64>,
    /// Prompt tokens of the successes (cache included).
    pub input_tokens: u64,
    /// Completion tokens of the successes.
    pub output_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cached_tokens: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// The first bad and unknown lines (at most 100), with file and line.
    pub problems: Vec<BadLine>,
    /// Bedrock's own totals, when its manifests were found.
    pub manifest: Option<ManifestTotals>,
    /// Where the manifest and the lines disagree.
    pub disagreements: Vec<String>,
}

impl FromBedrockReport {
    /// Whether every line was converted (Bedrock failures and missing records are results, not
    /// conversion failures).
    pub fn clean(&self) -> bool {
        self.bad_lines == 0 && self.unknown_records == 0
    }
}

#[derive(Debug)]
enum Item {
    Written {
        line: u64,
        ok: bool,
        range: Range<usize>,
        /// Ledger index, or the hash of the recordId without a ledger.
        who: Who,
        outcome: Outcome,
    },
    Unknown {
        line: u64,
        record_id: String,
    },
    Bad {
        line: u64,
        reject: Reject,
    },
    Blank,
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Index(u32),
    Key(u64),
}

struct BlockOutput {
    ok: Bytes,
    err: Bytes,
    items: Vec<Item>,
}

struct OutJob {
    ledger: Option<Arc<RecordLedger>>,
    response: ResponseOptions,
    salt: String,
    max_line: usize,
}

impl OutJob {
    fn line(&self, line_no: u64, line: &[u8], ok: &mut Vec<u8>, err: &mut Vec<u8>) -> Item {
        let parsed = match parse_output_line(line, self.response.family) {
            Ok(p) => p,
            Err(reject) => {
                return Item::Bad {
                    line: line_no,
                    reject,
                }
            }
        };
        let literal = parsed.record_id.get();
        let (custom_id, who) = match &self.ledger {
            Some(ledger) => match ledger.get(&literal[1..literal.len() - 1]) {
                Some((index, custom_id)) => (custom_id, Who::Index(index)),
                None => {
                    return Item::Unknown {
                        line: line_no,
                        record_id: literal.to_owned(),
                    }
                }
            },
            None => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                literal.hash(&mut h);
                (literal, Who::Key(h.finish()))
            }
        };
        let ids = LineIds::new(&self.salt, literal);
        let (ok_start, err_start) = (ok.len(), err.len());
        match write_openai_line(parsed, custom_id, &ids, &self.response, ok, err) {
            Ok(outcome @ Outcome::Succeeded(_)) => Item::Written {
                line: line_no,
                ok: true,
                range: ok_start..ok.len(),
                who,
                outcome,
            },
            Ok(outcome @ Outcome::Failed(_)) => Item::Written {
                line: line_no,
                ok: false,
                range: err_start..err.len(),
                who,
                outcome,
            },
            Err(reject) => Item::Bad {
                line: line_no,
                reject: Reject::new(
                    reject.code,
                    format!("recordId {literal}: {}", reject.message),
                ),
            },
        }
    }
}

impl BlockJob for OutJob {
    type Output = BlockOutput;

    fn convert(&self, block: Block) -> BlockOutput {
        let data: &[u8] = &block.data;
        // Outputs are smaller than inputs: the echoed modelInput is not carried over.
        let mut ok = Vec::with_capacity(data.len() / 2);
        let mut err = Vec::new();
        let mut items = Vec::new();
        let mut line_no = block.first_line;
        let mut start = 0;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let line = &data[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let item = if line.iter().all(u8::is_ascii_whitespace) {
                Item::Blank
            } else if line.len() > self.max_line {
                too_long(line_no, line.len() as u64, self.max_line)
            } else {
                self.line(line_no, line, &mut ok, &mut err)
            };
            items.push(item);
            line_no += 1;
            start = end + 1;
        }
        BlockOutput {
            ok: Bytes::from(ok),
            err: Bytes::from(err),
            items,
        }
    }

    fn oversized(&self, line: u64, bytes: u64) -> BlockOutput {
        BlockOutput {
            ok: Bytes::new(),
            err: Bytes::new(),
            items: vec![too_long(line, bytes, self.max_line)],
        }
    }
}

fn too_long(line: u64, bytes: u64, max: usize) -> Item {
    Item::Bad {
        line,
        reject: Reject::new(
            RejectCode::LineTooLong,
            format!("the line is {bytes} bytes, over the limit of {max} bytes"),
        ),
    }
}

struct Committer {
    ok: Box<dyn ObjectWriter>,
    err: Box<dyn ObjectWriter>,
    seen_index: Vec<bool>,
    seen_key: KeySet,
    report: FromBedrockReport,
    file: String,
}

/// A contiguous run of one block buffer waiting to be written.
#[derive(Default)]
struct Run(Option<(usize, usize)>);

impl Run {
    async fn add(
        &mut self,
        r: Range<usize>,
        buf: &Bytes,
        w: &mut Box<dyn ObjectWriter>,
    ) -> Result<(), ConvertError> {
        match &mut self.0 {
            Some((_, end)) if *end == r.start => *end = r.end,
            _ => {
                self.flush(buf, w).await?;
                self.0 = Some((r.start, r.end));
            }
        }
        Ok(())
    }

    async fn flush(
        &mut self,
        buf: &Bytes,
        w: &mut Box<dyn ObjectWriter>,
    ) -> Result<(), ConvertError> {
        if let Some((a, b)) = self.0.take() {
            w.write(buf.slice(a..b))
                .await
                .map_err(|source| ConvertError::Write {
                    what: w.name(),
                    source,
                })?;
        }
        Ok(())
    }
}

impl Committer {
    fn problem(&mut self, line: u64, message: String) {
        if self.report.problems.len() < 100 {
            self.report.problems.push(BadLine {
                file: self.file.clone(),
                line,
                message,
            });
        }
    }

    async fn commit_block(&mut self, block: BlockOutput) -> Result<(), ConvertError> {
        let (mut ok_run, mut err_run) = (Run::default(), Run::default());
        for item in block.items {
            self.report.lines += 1;
            match item {
                Item::Blank => self.report.blank += 1,
                Item::Bad { line, reject } => {
                    self.report.bad_lines += 1;
                    self.problem(line, reject.to_string());
                }
                Item::Unknown { line, record_id } => {
                    self.report.unknown_records += 1;
                    self.problem(
                        line,
                        format!("recordId {record_id} is not in the batch folder's ledger"),
                    );
                }
                Item::Written {
                    line,
                    ok,
                    range,
                    who,
                    outcome,
                } => {
                    let first = match who {
                        Who::Index(i) => !std::mem::replace(&mut self.seen_index[i as usize], true),
                        Who::Key(k) => self.seen_key.insert(k),
                    };
                    if !first {
                        self.report.duplicates += 1;
                        self.problem(
                            line,
                            "this record appeared earlier in Bedrock's output; reported once"
                                .to_owned(),
                        );
                        continue;
                    }
                    match outcome {
                        Outcome::Succeeded(Usage {
                            prompt_tokens,
                            completion_tokens,
                            cached_tokens,
                        }) => {
                            self.report.succeeded += 1;
                            self.report.input_tokens += prompt_tokens;
                            self.report.output_tokens += completion_tokens;
                            self.report.cached_tokens += cached_tokens;
                        }
                        Outcome::Failed(status) => {
                            self.report.failed += 1;
                            *self.report.failed_by_status.entry(status).or_default() += 1;
                        }
                    }
                    if ok {
                        ok_run.add(range, &block.ok, &mut self.ok).await?;
                    } else {
                        err_run.add(range, &block.err, &mut self.err).await?;
                    }
                }
            }
        }
        ok_run.flush(&block.ok, &mut self.ok).await?;
        err_run.flush(&block.err, &mut self.err).await
    }
}

/// Converts Bedrock output files into one OpenAI output file and one error file.
///
/// With a `ledger` (a batch folder), `recordId`s are mapped back to `custom_id`s and every ledger
/// record missing from the files gets an error line; without one, `recordId` is the `custom_id`.
pub async fn convert_from_bedrock(
    files: Vec<OutputFile>,
    ledger: Option<Arc<RecordLedger>>,
    ok: Box<dyn ObjectWriter>,
    err: Box<dyn ObjectWriter>,
    opts: &FromBedrockOptions,
) -> Result<FromBedrockReport, ConvertError> {
    let pool = worker_pool(opts.threads)?;
    let job = Arc::new(OutJob {
        ledger: ledger.clone(),
        response: opts.response.clone(),
        salt: opts.id_salt.clone(),
        max_line: opts.max_line_bytes,
    });
    let mut committer = Committer {
        ok,
        err,
        seen_index: vec![false; ledger.as_ref().map_or(0, |l| l.len())],
        seen_key: KeySet::default(),
        report: FromBedrockReport::default(),
        file: String::new(),
    };
    let mut bytes_before = 0;
    for file in files {
        committer.file = file.name.clone();
        let progress = opts.progress.clone().map(|p| {
            let base = bytes_before;
            Arc::new(move |n: u64| p(base + n)) as Arc<dyn Fn(u64) + Send + Sync>
        });
        let cfg = EngineConfig {
            block_size: opts.block_size,
            max_line: opts.max_line_bytes,
            pool: pool.clone(),
            progress,
        };
        let result = ordered::run(file.source, Arc::clone(&job), &cfg, &mut committer).await;
        match result {
            Ok(n) => bytes_before += n,
            Err(e) => {
                let _ = committer.ok.abort().await;
                let _ = committer.err.abort().await;
                return Err(match e {
                    EngineError::Read(e) => {
                        ConvertError::Read(io::Error::new(e.kind(), format!("{}: {e}", file.name)))
                    }
                    EngineError::Panicked => ConvertError::Panicked,
                    EngineError::Commit(e) => e,
                });
            }
        }
    }
    let Committer {
        ok,
        mut err,
        seen_index,
        mut report,
        ..
    } = committer;
    report.bytes_in = bytes_before;
    if let Some(ledger) = &ledger {
        report.records = Some(ledger.len() as u64);
        let mut buf = Vec::new();
        for (i, seen) in seen_index.iter().enumerate() {
            if !seen {
                let (record_id, custom_id) = &ledger.records[i];
                let literal = format!("\"{record_id}\"");
                let why = opts
                    .missing_by_job
                    .get(&ledger.job_of(i as u32))
                    .unwrap_or(&opts.missing);
                write_missing_line(
                    custom_id,
                    &LineIds::new(&opts.id_salt, &literal),
                    &why.code,
                    &why.message,
                    &mut buf,
                );
                report.missing += 1;
                if buf.len() > 1 << 20 {
                    err.write(Bytes::from(std::mem::take(&mut buf)))
                        .await
                        .map_err(write_err(err.name()))?;
                }
            }
        }
        if !buf.is_empty() {
            err.write(Bytes::from(buf))
                .await
                .map_err(write_err(err.name()))?;
        }
    }
    let (on, en) = (ok.name(), err.name());
    ok.finish().await.map_err(write_err(on))?;
    err.finish().await.map_err(write_err(en))?;
    Ok(report)
}

/// Compares Bedrock's manifest totals with what the lines said, in words. The records submitted
/// are compared only when there is a manifest for each of the batch's `jobs` (a job that failed
/// validation writes none).
pub fn compare_with_manifest(
    report: &mut FromBedrockReport,
    manifest: ManifestTotals,
    jobs: usize,
) {
    let mut say = |what: &str, manifest: u64, lines: u64| {
        if manifest != lines {
            report.disagreements.push(format!(
                "{what}: the manifest says {manifest}, the output lines say {lines}"
            ));
        }
    };
    say(
        "successful records",
        manifest.success_record_count,
        report.succeeded,
    );
    say("failed records", manifest.error_record_count, report.failed);
    if let Some(records) = report.records.filter(|_| manifest.manifests == jobs as u64) {
        say("records submitted", manifest.total_record_count, records);
    }
    report.manifest = Some(manifest);
}

/// Finds the pieces of a batch folder's results: its manifest, ledger, output files and Bedrock's
/// manifests.
pub struct FolderInputs {
    /// `batch.json`.
    pub manifest: BatchManifest,
    /// The `ids/` ledger.
    pub ledger: RecordLedger,
    /// `output/<job-id>/*.jsonl.out`, sorted.
    pub files: Vec<OutputFile>,
    /// Bedrock's `manifest.json.out` totals, summed, if any was found.
    pub totals: Option<ManifestTotals>,
    /// The jobs the folder was submitted as (`jobs/`), if any. When there are some, only their
    /// output sub-folders are read: a job submitted again after a failure leaves the old job's
    /// output behind, and that is not this batch's result.
    pub jobs: Vec<JobRecord>,
}

/// Why a batch folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// An object could not be read.
    #[error("reading {what}: {source}")]
    Io {
        /// Which.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The folder is not a batch folder, or a file in it is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// Reads a batch folder's `batch.json`, ledger and Bedrock output listing.
pub async fn read_batch_folder(dest: &dyn Destination) -> Result<FolderInputs, FolderError> {
    let io_err = |what: String| move |source| FolderError::Io { what, source };
    let raw = dest
        .read_small(batch_folder::MANIFEST)
        .await
        .map_err(io_err(dest.uri(batch_folder::MANIFEST)))?
        .ok_or_else(|| {
            FolderError::Invalid(format!(
                "{} not found: not a batch folder (made by `bedrock-batch to-bedrock INPUT DEST/`)",
                dest.uri(batch_folder::MANIFEST)
            ))
        })?;
    let manifest: BatchManifest = serde_json::from_slice(&raw)
        .map_err(|e| FolderError::Invalid(format!("{}: {e}", dest.uri(batch_folder::MANIFEST))))?;
    let mut ledger = RecordLedger::default();
    for shard in &manifest.shards {
        let text = dest
            .read_small(&shard.ids)
            .await
            .map_err(io_err(dest.uri(&shard.ids)))?
            .ok_or_else(|| FolderError::Invalid(format!("{} is missing", dest.uri(&shard.ids))))?;
        ledger
            .add_job_ids(&dest.uri(&shard.ids), &text, shard.job)
            .map_err(FolderError::Invalid)?;
    }
    let jobs = read_job_records(dest).await?;
    let job_dirs: Vec<String> = jobs
        .iter()
        .map(|j| format!("output/{}/", j.job_id()))
        .collect();
    let listing = dest
        .list("output/")
        .await
        .map_err(io_err(dest.uri("output/")))?;
    let mut files = Vec::new();
    let mut totals: Option<ManifestTotals> = None;
    for rel in listing {
        if !job_dirs.is_empty() && !job_dirs.iter().any(|d| rel.starts_with(d)) {
            continue;
        }
        if rel.ends_with("/manifest.json.out") {
            let raw = dest
                .read_small(&rel)
                .await
                .map_err(io_err(dest.uri(&rel)))?
                .unwrap_or_default();
            let t: ManifestTotals = serde_json::from_slice(&raw)
                .map_err(|e| FolderError::Invalid(format!("{}: {e}", dest.uri(&rel))))?;
            totals.get_or_insert_with(Default::default).add(&t);
        } else if rel.ends_with(".jsonl.out") {
            let source = dest.open(&rel).await.map_err(io_err(dest.uri(&rel)))?;
            files.push(OutputFile {
                name: dest.uri(&rel),
                source,
            });
        }
    }
    Ok(FolderInputs {
        manifest,
        ledger,
        files,
        totals,
        jobs,
    })
}

/// Reads a batch folder's `jobs/jobNNN.json` records, by job index.
pub async fn read_job_records(dest: &dyn Destination) -> Result<Vec<JobRecord>, FolderError> {
    let listing = dest
        .list(batch_folder::JOBS)
        .await
        .map_err(|source| FolderError::Io {
            what: dest.uri(batch_folder::JOBS),
            source,
        })?;
    let mut jobs = Vec::new();
    for rel in listing.iter().filter(|r| r.ends_with(".json")) {
        let Some(raw) = dest
            .read_small(rel)
            .await
            .map_err(|source| FolderError::Io {
                what: dest.uri(rel),
                source,
            })?
        else {
            continue;
        };
        let job: JobRecord = serde_json::from_slice(&raw)
            .map_err(|e| FolderError::Invalid(format!("{}: {e}", dest.uri(rel))))?;
        jobs.push(job);
    }
    jobs.sort_by_key(|j| j.index);
    Ok(jobs)
}

impl ordered::Commit<BlockOutput, ConvertError> for Committer {
    fn commit(
        &mut self,
        block: BlockOutput,
    ) -> futures::future::BoxFuture<'_, Result<(), ConvertError>> {
        Box::pin(self.commit_block(block))
    }
}
