//! Bedrock batch output → OpenAI batch output and error files, streaming, with every custom_id
//! accounted for.
//!
//! Output lines follow the order of Bedrock's `.jsonl.out` files (Bedrock shuffles them; OpenAI
//! makes no order promise either). With a batch folder, the `ids/` ledger turns `recordId`s back
//! into `custom_id`s, and every ledger record Bedrock did not return gets an error line at the end
//! (`batch_expired`, or the code the caller chooses, such as `batch_cancelled`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::framer::Block;
use super::ordered::{self, BlockJob, EngineConfig, EngineError};
use super::shared::{worker_pool, write_err, KeyHasher};
use super::to_bedrock::ConvertError;
use crate::batch_folder::{BatchManifest, FolderError, FolderWriter, RecordLedger, ResultsRecord};
use crate::io::{ChunkSource, ObjectWriter};
use crate::record::anthropic::Usage;
use crate::record::bedrock_output::{
    parse_output_line, write_invalid_output_line, write_missing_line, write_openai_line, LineIds,
    Outcome, ResponseOptions,
};
use crate::record::json::{decode_literal, text_value};
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
        let family = Family::from_name(&manifest.conversion.family).ok_or_else(|| {
            FolderError::Malformed {
                file: crate::batch_folder::MANIFEST.to_owned(),
                problem: format!(
                    "it names an unknown model family {:?}",
                    manifest.conversion.family
                ),
            }
        })?;
        let model = manifest
            .openai_model
            .as_deref()
            .unwrap_or(&manifest.conversion.model_id);
        let mut opts = FromBedrockOptions::new(family, model, manifest.created_at);
        opts.id_salt = manifest.generation.clone();
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
    /// The members some manifest gave as something no count can be: their totals are unknown,
    /// and nothing is compared with them.
    #[serde(skip)]
    pub unknown: Vec<&'static str>,
}

impl ManifestTotals {
    /// Adds one `manifest.json.out` (`name` in messages). The manifest is informational: what
    /// it cannot say (not JSON, a count that is not a count) becomes a warning, and what it can
    /// is added.
    /// Adds one `manifest.json.out` (`name` in messages); says whether it could be read (an
    /// empty one, or one that is not a JSON object, adds nothing — its job's totals are unknown,
    /// so a folder whose manifests are all unreadable has no totals at all).
    pub fn add_manifest(&mut self, name: &str, raw: &[u8], warnings: &mut Vec<String>) -> bool {
        let value: serde_json::Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(_) if raw.iter().all(u8::is_ascii_whitespace) => {
                warnings.push(format!(
                    "{name}: empty; Bedrock's totals for that job are unknown"
                ));
                return false;
            }
            Err(e) => {
                warnings.push(format!(
                    "{name}: not JSON ({e}); Bedrock's totals for that job are unknown"
                ));
                return false;
            }
        };
        let Some(fields) = value.as_object() else {
            warnings.push(format!(
                "{name}: not a JSON object; Bedrock's totals for that job are unknown"
            ));
            return false;
        };
        let unknown = &mut self.unknown;
        let mut add = |key: &'static str, total: &mut u64| match fields.get(key) {
            None | Some(serde_json::Value::Null) => {}
            Some(v) => {
                // By value (`1e2` is 100), as the lines' counts are read.
                let count = crate::record::count_value(&v.to_string());
                match count {
                    Some(n) => *total = total.saturating_add(n),
                    None => {
                        warnings.push(format!(
                            "{name}: {key} is {v}, not a count; that total is unknown"
                        ));
                        if !unknown.contains(&key) {
                            unknown.push(key);
                        }
                    }
                }
            }
        };
        add("totalRecordCount", &mut self.total_record_count);
        add("processedRecordCount", &mut self.processed_record_count);
        add("successRecordCount", &mut self.success_record_count);
        add("errorRecordCount", &mut self.error_record_count);
        add("inputTokenCount", &mut self.input_token_count);
        add("outputTokenCount", &mut self.output_token_count);
        self.manifests += 1;
        true
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
    /// Error-file lines for records Bedrock returned: its error records, and answers that could
    /// not be mapped (`invalid_model_output`).
    pub failed: u64,
    /// Of `failed`: answers that could not be mapped to an OpenAI response.
    pub invalid_outputs: u64,
    /// Error-file lines for records Bedrock never returned.
    pub missing: u64,
    /// Records Bedrock returned more than once (reported once; a success beats an error).
    pub duplicates: u64,
    /// Lines whose recordId is not in the ledger.
    pub unknown_records: u64,
    /// Lines that could not be read: no recordId could be read from them.
    pub bad_lines: u64,
    /// Blank lines.
    pub blank: u64,
    /// Failures by status code (answers that could not be mapped: status 0).
    pub failed_by_status: BTreeMap<u16, u64>,
    /// Prompt tokens of the successes (cache included).
    pub input_tokens: u64,
    /// Completion tokens of the successes.
    pub output_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cached_tokens: u64,
    /// Responses whose token counts could not be counts (negative, fractional, beyond 2^64−1)
    /// and were adjusted to the nearest counts.
    pub counts_adjusted: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// The first bad and unknown lines (at most 100), with file and line.
    pub problems: Vec<BadLine>,
    /// Bedrock's own totals, when its manifests were found.
    pub manifest: Option<ManifestTotals>,
    /// Where the manifest and the lines disagree.
    pub disagreements: Vec<String>,
    /// What else a person should know (at most 100): odd manifests, adjusted counts, totals that
    /// stopped at 2^64−1.
    pub warnings: Vec<String>,
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
    /// A line for a record: to the output file (`ok`) or the error file.
    Written {
        line: u64,
        ok: bool,
        range: Range<usize>,
        /// Ledger index, or the hash of the recordId's value without a ledger.
        who: u64,
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

/// A 64-bit hash of a recordId's value, so `"a"` and `"\u0061"` are one record.
fn value_key(literal: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    decode_literal(literal).hash(&mut h);
    h.finish()
}

impl OutJob {
    fn line(&self, line_no: u64, line: &[u8], ok: &mut Vec<u8>, err: &mut Vec<u8>) -> Item {
        let (parsed, broken) = match parse_output_line(line, self.response.family) {
            Ok(p) => (Some(p), None),
            Err(reject) => match salvage_record_id(line) {
                // The line is broken, but says whose it is: that record came back, broken.
                Some(record_id) => (None, Some((record_id, reject))),
                None => {
                    return Item::Bad {
                        line: line_no,
                        reject: explain_line_endings(line, reject),
                    }
                }
            },
        };
        let literal = match (&parsed, &broken) {
            (Some(p), _) => p.record_id.get(),
            (None, Some((r, _))) => r.get(),
            (None, None) => unreachable!("one of the two"),
        };
        let value = text_value(literal);
        let (custom_id, who) = match &self.ledger {
            Some(ledger) => match ledger.get(&value) {
                Some((index, custom_id)) => (custom_id, u64::from(index)),
                None => {
                    return Item::Unknown {
                        line: line_no,
                        record_id: literal.to_owned(),
                    }
                }
            },
            None => (literal, value_key(literal)),
        };
        // Ids follow the recordId's value, so its spelling does not change them.
        let canonical = if literal.contains('\\') {
            Cow::Owned(format!("\"{value}\""))
        } else {
            Cow::Borrowed(literal)
        };
        let ids = LineIds::new(&self.salt, &canonical);
        let (ok_start, err_start) = (ok.len(), err.len());
        let written = match (parsed, broken) {
            (Some(parsed), _) => {
                write_openai_line(parsed, custom_id, &ids, &self.response, ok, err)
            }
            (None, Some((_, reject))) => Err(reject),
            (None, None) => unreachable!("one of the two"),
        };
        match written {
            Ok(outcome @ Outcome::Succeeded(_)) => Item::Written {
                line: line_no,
                ok: true,
                range: ok_start..ok.len(),
                who,
                outcome,
            },
            Ok(outcome) => Item::Written {
                line: line_no,
                ok: false,
                range: err_start..err.len(),
                who,
                outcome,
            },
            Err(reject) => {
                // Bedrock answered, and the answer cannot be mapped: the record's error line
                // says so, never "expired".
                ok.truncate(ok_start);
                err.truncate(err_start);
                write_invalid_output_line(custom_id, &ids, &reject.message, err);
                Item::Written {
                    line: line_no,
                    ok: false,
                    range: err_start..err.len(),
                    who,
                    outcome: Outcome::Unmappable,
                }
            }
        }
    }
}

/// The recordId of a line that is not valid JSON, when it begins as Bedrock writes its lines:
/// `{"recordId":"…"` (any spacing, the key in any spelling).
fn salvage_record_id(line: &[u8]) -> Option<crate::record::Raw<'_>> {
    let text = std::str::from_utf8(line).ok()?;
    crate::record::bedrock_output::leading_record_id(text)
}

/// A reject for a line that holds carriage returns not part of CRLF endings: a file with CR-only
/// line endings reads as one long line.
fn explain_line_endings(line: &[u8], reject: Reject) -> Reject {
    if memchr::memchr(b'\r', line).is_some() {
        return Reject::new(
            RejectCode::CrLineEndings,
            format!("the line holds carriage returns (\\r) that do not end CRLF line endings: the file seems to use CR-only line endings, which JSONL does not allow (convert them to \\n); {}", reject.message),
        );
    }
    reject
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
            let mut line = &data[start..end];
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if line_no == 1 {
                // A byte-order mark at the start of a file is not part of its first line.
                line = line.strip_prefix(crate::record::BOM).unwrap_or(line);
            }
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

/// What became of a record so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Not,
    Succeeded,
    /// An error line was written (the status; 0 for an answer that could not be mapped).
    Failed(u16),
}

/// The records seen: by ledger index, or (without a ledger) by the hash of the recordId.
enum SeenRecords {
    Indexed(Vec<Seen>),
    Keyed(std::collections::HashMap<u64, Seen, BuildHasherDefault<KeyHasher>>),
}

impl SeenRecords {
    fn get(&self, who: u64) -> Seen {
        match self {
            SeenRecords::Indexed(v) => v[who as usize],
            SeenRecords::Keyed(m) => m.get(&who).copied().unwrap_or(Seen::Not),
        }
    }

    fn set(&mut self, who: u64, seen: Seen) {
        match self {
            SeenRecords::Indexed(v) => v[who as usize] = seen,
            SeenRecords::Keyed(m) => {
                m.insert(who, seen);
            }
        }
    }
}

/// Error lines, held back until every file is read: a success that comes later for the same
/// record takes its place (Bedrock can return a record twice). In memory up to a limit, then
/// in an anonymous temporary file, so memory stays bounded whatever the number of errors.
struct ErrorSpool {
    memory: Vec<u8>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    /// Each held line: its record and its length.
    lines: Vec<(u64, u32)>,
    /// Records whose error line was replaced by a later success.
    superseded: std::collections::HashSet<u64, BuildHasherDefault<KeyHasher>>,
}

/// Error lines held in memory before they go to a temporary file.
const SPOOL_IN_MEMORY: usize = 16 << 20;

impl ErrorSpool {
    fn new() -> Self {
        ErrorSpool {
            memory: Vec::new(),
            file: None,
            lines: Vec::new(),
            superseded: Default::default(),
        }
    }

    fn push(&mut self, who: u64, line: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.lines.push((who, line.len() as u32));
        if let Some(f) = &mut self.file {
            return f.write_all(line);
        }
        self.memory.extend_from_slice(line);
        if self.memory.len() > SPOOL_IN_MEMORY {
            let mut f = std::io::BufWriter::with_capacity(1 << 20, tempfile::tempfile()?);
            f.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.file = Some(f);
        }
        Ok(())
    }

    /// Writes the held lines, but those superseded, to `err`.
    async fn drain_into(self, err: &mut Box<dyn ObjectWriter>) -> Result<(), ConvertError> {
        let what = err.name();
        let io = |e: io::Error| ConvertError::Write {
            what: what.clone(),
            source: e,
        };
        let mut source: Box<dyn std::io::Read + Send> = match self.file {
            Some(f) => {
                let mut f = f.into_inner().map_err(|e| io(e.into_error()))?;
                std::io::Seek::rewind(&mut f).map_err(io)?;
                Box::new(std::io::BufReader::with_capacity(1 << 20, f))
            }
            None => Box::new(std::io::Cursor::new(self.memory)),
        };
        let mut out = Vec::with_capacity(1 << 20);
        let mut line = Vec::new();
        for (who, len) in self.lines {
            line.resize(len as usize, 0);
            std::io::Read::read_exact(&mut source, &mut line).map_err(io)?;
            if !self.superseded.contains(&who) {
                out.extend_from_slice(&line);
            }
            if out.len() >= 1 << 20 {
                err.write(Bytes::from(std::mem::take(&mut out)))
                    .await
                    .map_err(io)?;
            }
        }
        if !out.is_empty() {
            err.write(Bytes::from(out)).await.map_err(io)?;
        }
        Ok(())
    }
}

struct Committer {
    ok: Box<dyn ObjectWriter>,
    err: Box<dyn ObjectWriter>,
    seen: SeenRecords,
    spool: ErrorSpool,
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

    fn warn(&mut self, message: String) {
        if self.report.warnings.len() < 100 && !self.report.warnings.contains(&message) {
            self.report.warnings.push(message);
        }
    }

    fn count_failure(&mut self, status: u16, delta: i64) {
        let failed = self.report.failed_by_status.entry(status).or_default();
        *failed = failed.saturating_add_signed(delta);
        if *failed == 0 {
            self.report.failed_by_status.remove(&status);
        }
        self.report.failed = self.report.failed.saturating_add_signed(delta);
        if status == 0 {
            self.report.invalid_outputs = self.report.invalid_outputs.saturating_add_signed(delta);
        }
    }

    fn add_usage(&mut self, usage: &Usage, line: u64) {
        let r = &mut self.report;
        let sums = [
            (&mut r.input_tokens, usage.prompt_tokens),
            (&mut r.output_tokens, usage.completion_tokens),
            (&mut r.cached_tokens, usage.cached_tokens),
        ];
        let mut capped = false;
        for (total, add) in sums {
            capped |= total.checked_add(add).is_none();
            *total = total.saturating_add(add);
        }
        if usage.adjusted {
            r.counts_adjusted += 1;
            let at = format!("{}:{line}", self.file);
            self.warn(format!("{at}: token counts that cannot be counts (negative, fractional, beyond 2^64−1) were adjusted to the nearest counts"));
        }
        if capped {
            self.warn("the token totals passed 2^64−1 and stop there".into());
        }
    }

    async fn commit_block(&mut self, block: BlockOutput) -> Result<(), ConvertError> {
        let mut ok_run = Run::default();
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
                    match (self.seen.get(who), ok) {
                        (Seen::Not, _) => {}
                        // A success after an error: the success stands, the error goes.
                        (Seen::Failed(status), true) => {
                            self.count_failure(status, -1);
                            self.spool.superseded.insert(who);
                            self.report.duplicates += 1;
                            self.problem(
                                line,
                                "this record came back earlier as an error; this success replaces it"
                                    .to_owned(),
                            );
                        }
                        _ => {
                            self.report.duplicates += 1;
                            self.problem(
                                line,
                                "this record appeared earlier in Bedrock's output; reported once"
                                    .to_owned(),
                            );
                            continue;
                        }
                    }
                    match outcome {
                        Outcome::Succeeded(usage) => {
                            self.seen.set(who, Seen::Succeeded);
                            self.report.succeeded += 1;
                            self.add_usage(&usage, line);
                        }
                        Outcome::Failed(status) => {
                            self.seen.set(who, Seen::Failed(status));
                            self.count_failure(status, 1);
                        }
                        Outcome::Unmappable => {
                            self.seen.set(who, Seen::Failed(0));
                            self.count_failure(0, 1);
                        }
                    }
                    if ok {
                        ok_run.add(range, &block.ok, &mut self.ok).await?;
                    } else {
                        let name = self.err.name();
                        self.spool
                            .push(who, &block.err[range])
                            .map_err(|source| ConvertError::Write { what: name, source })?;
                    }
                }
            }
        }
        ok_run.flush(&block.ok, &mut self.ok).await
    }
}

/// Converts Bedrock output files into one OpenAI output file and one error file, and commits
/// both together (or neither).
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
    let (report, writers) = prepare_from_bedrock(files, ledger, ok, err, opts).await?;
    let names: Vec<String> = writers.iter().map(|w| w.name()).collect();
    crate::io::commit_all(writers)
        .await
        .map_err(write_err(names.join(" and ")))?;
    Ok(report)
}

/// [`convert_from_bedrock`] up to the commit: returns the report and the written, uncommitted
/// error and output writers (in the order to commit them), so that a caller can commit them
/// together with files of its own. On an error, both are aborted.
pub async fn prepare_from_bedrock(
    files: Vec<OutputFile>,
    ledger: Option<Arc<RecordLedger>>,
    ok: Box<dyn ObjectWriter>,
    err: Box<dyn ObjectWriter>,
    opts: &FromBedrockOptions,
) -> Result<(FromBedrockReport, Vec<Box<dyn ObjectWriter>>), ConvertError> {
    let pool = match worker_pool(opts.threads) {
        Ok(pool) => pool,
        Err(e) => {
            crate::io::abort_all(vec![ok, err]).await;
            return Err(e);
        }
    };
    let job = Arc::new(OutJob {
        ledger: ledger.clone(),
        response: opts.response.clone(),
        salt: opts.id_salt.clone(),
        max_line: opts.max_line_bytes,
    });
    let mut committer = Committer {
        ok,
        err,
        seen: match &ledger {
            Some(l) => SeenRecords::Indexed(vec![Seen::Not; l.len()]),
            None => SeenRecords::Keyed(Default::default()),
        },
        spool: ErrorSpool::new(),
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
                crate::io::abort_all(vec![committer.ok, committer.err]).await;
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
        seen,
        spool,
        mut report,
        ..
    } = committer;
    report.bytes_in = bytes_before;
    if let Err(e) = spool.drain_into(&mut err).await {
        crate::io::abort_all(vec![ok, err]).await;
        return Err(e);
    }
    if let (Some(ledger), SeenRecords::Indexed(seen)) = (&ledger, &seen) {
        report.records = Some(ledger.len() as u64);
        if let Err(e) = write_missing(ledger, seen, &mut err, opts, &mut report).await {
            crate::io::abort_all(vec![ok, err]).await;
            return Err(e);
        }
    }
    // The output last: the last commit of a group needs no backup of what it replaces.
    Ok((report, vec![err, ok]))
}

/// Writes an error line for every ledger record not `seen` in Bedrock's output.
async fn write_missing(
    ledger: &RecordLedger,
    seen: &[Seen],
    err: &mut Box<dyn ObjectWriter>,
    opts: &FromBedrockOptions,
    report: &mut FromBedrockReport,
) -> Result<(), ConvertError> {
    let mut buf = Vec::new();
    for (i, seen) in seen.iter().enumerate() {
        if *seen != Seen::Not {
            continue;
        }
        let (record_id, custom_id) = ledger.record(i as u32);
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
    if !buf.is_empty() {
        err.write(Bytes::from(buf))
            .await
            .map_err(write_err(err.name()))?;
    }
    Ok(())
}

/// Compares Bedrock's manifest totals with what the lines said, in words. The records submitted
/// are compared only when there is a manifest for each of the batch's `jobs` (a job that failed
/// validation writes none).
pub fn compare_with_manifest(
    report: &mut FromBedrockReport,
    manifest: ManifestTotals,
    jobs: usize,
) {
    let mut say = |what: &str, key: &str, manifest_says: u64, lines: u64| {
        if manifest_says != lines && !manifest.unknown.contains(&key) {
            report.disagreements.push(format!(
                "{what}: the manifest says {manifest_says}, the output lines say {lines}"
            ));
        }
    };
    say(
        "successful records",
        "successRecordCount",
        manifest.success_record_count,
        report.succeeded,
    );
    say(
        "failed records",
        "errorRecordCount",
        manifest.error_record_count,
        report.failed,
    );
    if let Some(records) = report.records.filter(|_| manifest.manifests == jobs as u64) {
        say(
            "records submitted",
            "totalRecordCount",
            manifest.total_record_count,
            records,
        );
    }
    report.manifest = Some(manifest);
}

/// Where a batch folder's results go: the writers, and where they are (for the record).
pub struct FolderResults {
    /// The OpenAI output file.
    pub ok: Box<dyn ObjectWriter>,
    /// The OpenAI error file.
    pub err: Box<dyn ObjectWriter>,
    /// The output file's location, as the record names it.
    pub output: String,
    /// The error file's location, as the record names it.
    pub errors: String,
}

/// What a collection of a batch folder's results produced.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The conversion's accounting.
    pub report: FromBedrockReport,
    /// What was recorded in `results/report.json`.
    pub record: ResultsRecord,
}

/// Converts the Bedrock output of `folder`'s current generation into OpenAI results — every
/// `custom_id` once — and commits the output file, the error file and `results/report.json`
/// together, or none of them.
///
/// Only the output folders of the jobs recorded for the generation are read (a job submitted
/// again after a failure leaves the old job's output behind, and that is not this batch's
/// result); with no job recorded (jobs submitted by other means), all of the generation's
/// output. `opts` are [`FromBedrockOptions::for_folder`] with the caller's missing reasons.
pub async fn collect_folder(
    folder: &FolderWriter,
    results: FolderResults,
    opts: &FromBedrockOptions,
) -> Result<Collected, ConvertError> {
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let FolderResults {
        ok,
        err,
        output,
        errors,
    } = results;
    let gathered = async {
        let reader = folder.current()?;
        let ledger = reader.ledger().await?;
        let jobs: Vec<_> = reader.job_records().await?.into_iter().flatten().collect();
        let outputs = reader.outputs(&jobs).await?;
        let mut files = Vec::with_capacity(outputs.records.len());
        for rel in &outputs.records {
            files.push(OutputFile {
                name: reader.uri(rel),
                source: reader.open_object(rel).await?,
            });
        }
        let mut totals: Option<ManifestTotals> = None;
        let mut warnings = Vec::new();
        for rel in &outputs.manifests {
            let raw = reader
                .dest()
                .read_small(rel)
                .await
                .map_err(FolderError::io(format!("reading {}", reader.uri(rel))))?
                .unwrap_or_default();
            let mut sum = totals.take().unwrap_or_default();
            sum.add_manifest(&reader.uri(rel), &raw, &mut warnings);
            totals = (sum.manifests > 0).then_some(sum);
        }
        Ok::<_, FolderError>((reader, ledger, files, totals, warnings))
    }
    .await;
    let (reader, ledger, files, totals, warnings) = match gathered {
        Ok(g) => g,
        Err(e) => {
            crate::io::abort_all(vec![ok, err]).await;
            return Err(e.into());
        }
    };
    let (mut report, writers) =
        prepare_from_bedrock(files, Some(Arc::new(ledger)), ok, err, opts).await?;
    report.warnings.extend(warnings);
    if let Some(totals) = totals {
        compare_with_manifest(&mut report, totals, reader.manifest().jobs.len());
    }
    let record = ResultsRecord {
        generation: reader.manifest().generation.clone(),
        output,
        errors,
        started_at,
        finished_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        succeeded: report.succeeded,
        failed: report.failed,
        missing: report.missing,
        input_tokens: report.input_tokens,
        cached_tokens: report.cached_tokens,
        output_tokens: report.output_tokens,
    };
    folder.commit_results(writers, &record).await?;
    Ok(Collected { report, record })
}

impl ordered::Commit<BlockOutput, ConvertError> for Committer {
    fn commit(
        &mut self,
        block: BlockOutput,
    ) -> futures::future::BoxFuture<'_, Result<(), ConvertError>> {
        Box::pin(self.commit_block(block))
    }
}
