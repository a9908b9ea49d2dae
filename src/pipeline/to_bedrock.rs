//! OpenAI batch input → Bedrock batch records, streaming: the public entry point, the ordered
//! commit stage (duplicate and model checks, sharding by quota, writing) and the report.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::lines::{BlockOutput, Item, LineJob};
use super::ordered::{self, EngineConfig, EngineError};
use super::shared::{worker_pool, write_err, KeySet};
use crate::batch_folder::{
    BatchManifest, Conversion, FolderError, FolderWriter, GenerationSummary, GenerationWriter,
    InputIdentity, LockOptions, ManifestCounts, ManifestOptions, PreparedGeneration, Replace,
    Start,
};
use crate::io::{ChunkSource, Destination, ObjectWriter};
use crate::record::{
    Family, LineOptions, MapOptions, RecordIdStyle, Reject, RejectCode, UnknownModel,
};

pub use crate::batch_folder::MIN_RECORDS_PER_JOB;

/// Settings of a conversion to Bedrock. [`ToBedrockOptions::new`] gives Bedrock's default quotas.
#[derive(Clone)]
pub struct ToBedrockOptions {
    /// The Bedrock model id (or inference profile id or ARN) the records are for.
    pub model_id: String,
    /// Its family (derived from `model_id` by [`ToBedrockOptions::new`]).
    pub family: Family,
    /// How request bodies are mapped.
    pub map: MapOptions,
    /// Records per file at most (Bedrock default quota: 50,000).
    pub records_per_file: u64,
    /// Bytes per file at most (Bedrock: 1 GB).
    pub bytes_per_file: u64,
    /// Records per job at most (Bedrock default quota: 50,000).
    pub records_per_job: u64,
    /// Bytes per job at most (Bedrock: 5 GB).
    pub bytes_per_job: u64,
    /// Accept jobs with fewer than [`MIN_RECORDS_PER_JOB`] records.
    pub allow_small: bool,
    /// Lines longer than this are rejected without being read into memory.
    pub max_line_bytes: usize,
    /// Approximate size of the blocks converted in parallel.
    pub block_size: usize,
    /// Worker threads; `None` uses rayon's global pool (one per core).
    pub threads: Option<usize>,
    /// Called with the number of bytes read so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    /// What is converted, recorded in `batch.json` (and compared when a folder is used again).
    pub source: InputIdentity,
}

impl std::fmt::Debug for ToBedrockOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToBedrockOptions")
            .field("model_id", &self.model_id)
            .field("family", &self.family)
            .field("map", &self.map)
            .field("records_per_file", &self.records_per_file)
            .field("bytes_per_file", &self.bytes_per_file)
            .field("records_per_job", &self.records_per_job)
            .field("bytes_per_job", &self.bytes_per_job)
            .field("allow_small", &self.allow_small)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("block_size", &self.block_size)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl ToBedrockOptions {
    /// Options for `model_id` with Bedrock's default quotas, its family found from its id.
    pub fn new(model_id: &str) -> Result<Self, UnknownModel> {
        Ok(Self::with_family(model_id, Family::for_model(model_id)?))
    }

    /// Options for `model_id` whose family is given (an application inference profile, whose id
    /// does not say; or [`Family::Converse`] for a Converse job).
    pub fn with_family(model_id: &str, family: Family) -> Self {
        ToBedrockOptions {
            model_id: model_id.to_owned(),
            family,
            map: MapOptions::new(family, model_id),
            records_per_file: 50_000,
            bytes_per_file: 1_000_000_000,
            records_per_job: 50_000,
            bytes_per_job: 5_000_000_000,
            allow_small: false,
            max_line_bytes: 20 << 20,
            block_size: 2 << 20,
            threads: None,
            progress: None,
            source: InputIdentity::default(),
        }
    }

    /// What this conversion makes of its input, as `batch.json` records it.
    pub fn conversion(&self) -> Conversion {
        Conversion {
            model_id: self.model_id.clone(),
            family: self.family.name().to_owned(),
            invocation_type: self.family.invocation_type().to_owned(),
            endpoint: self.family.endpoint().to_owned(),
            options: ManifestOptions {
                max_tokens: self.map.default_max_tokens,
                drop_unsupported: self.map.drop_unsupported,
                records_per_file: self.records_per_file,
                bytes_per_file: self.bytes_per_file,
                records_per_job: self.records_per_job,
                bytes_per_job: self.bytes_per_job,
                allow_small: self.allow_small,
                max_line_bytes: self.max_line_bytes as u64,
            },
        }
    }
}

/// Where converted records go.
pub enum BedrockOutput {
    /// One Bedrock JSONL stream with `recordId = custom_id`, for piping; rejects go to their own
    /// writer. Both are committed together.
    Stream {
        /// The records.
        records: Box<dyn ObjectWriter>,
        /// The rejects.
        rejects: Box<dyn ObjectWriter>,
    },
    /// A new generation of a batch folder (see [`crate::batch_folder`]).
    Folder(Box<GenerationWriter>),
}

impl BedrockOutput {
    /// A new generation of the batch folder at `dest`, which must hold no conversion yet, or
    /// this very one (then [`ConvertError::Folder`] says so with
    /// [`FolderError::Occupied`] — use [`FolderWriter`] to resume or replace).
    pub async fn new_folder(
        dest: Arc<dyn Destination>,
        opts: &ToBedrockOptions,
    ) -> Result<BedrockOutput, ConvertError> {
        let folder = FolderWriter::open(dest, &LockOptions::default()).await?;
        match folder
            .start_generation(opts.conversion(), opts.source.clone(), Replace::Refuse)
            .await?
        {
            Start::New(writer) => Ok(BedrockOutput::Folder(writer)),
            Start::Same(folder) => {
                let m = folder.current()?.manifest().clone();
                folder.release().await;
                Err(ConvertError::Folder(FolderError::Occupied {
                    folder: m.input.name.clone(),
                    holds: format!("this conversion ({})", m.generation),
                    why: "there is nothing to convert again".into(),
                }))
            }
        }
    }
}

/// What a conversion did. `lines == records + rejected + blank`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Input lines seen.
    pub lines: u64,
    /// Bedrock records written.
    pub records: u64,
    /// Lines rejected (written to the rejects output).
    pub rejected: u64,
    /// Blank lines skipped.
    pub blank: u64,
    /// Input bytes read.
    pub bytes_in: u64,
    /// Record bytes written.
    pub bytes_out: u64,
    /// Record files written (1 for a stream).
    pub shards: u32,
    /// Bedrock jobs the records need.
    pub jobs: u32,
    /// Rejects by reason.
    pub rejects_by_code: BTreeMap<String, u64>,
    /// Fields dropped under `--drop-unsupported`, by name.
    pub dropped_fields: BTreeMap<String, u64>,
    /// Requests with a setting clamped to the model's documented range, by setting
    /// (`max_tokens`, `temperature`, `top_k`, `stop`).
    pub clamped: BTreeMap<String, u64>,
    /// Lines that ended in CRLF (accepted).
    pub crlf_lines: u64,
    /// The input began with a byte-order mark (skipped).
    pub bom: bool,
    /// The `body.model` of the input, if any.
    pub openai_model: Option<String>,
}

/// Why a conversion stopped. Rejected lines are not errors; they are in the [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The input could not be read.
    #[error("reading the input failed: {0}")]
    Read(#[source] io::Error),
    /// An output could not be written.
    #[error("writing {what} failed: {source}")]
    Write {
        /// Which output.
        what: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The batch folder could not be written (or is in use, or holds another conversion).
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// A job would have fewer records than Bedrock accepts; nothing was written.
    #[error(
        "job {job} would hold {records} records, but Bedrock needs at least {MIN_RECORDS_PER_JOB} records per batch job \
         (quota \"Minimum number of records per batch inference job\", not adjustable); nothing was written. \
         Add records, adjust --records-per-job, or pass --allow-small to write it anyway"
    )]
    TooFewRecords {
        /// The job, from 0.
        job: u32,
        /// Its records.
        records: u64,
        /// The counts up to the stop.
        report: Box<Report>,
    },
    /// A bug: a converter thread panicked.
    #[error("internal error: a converter thread panicked")]
    Panicked,
    /// The worker pool could not start.
    #[error("cannot start {0} worker threads")]
    Pool(usize),
}

/// Converts an OpenAI batch input stream to Bedrock records, in parallel, in input order, in
/// bounded memory, and commits the outputs: all of them, or none.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use bedrock_batch::io::{BytesSource, LocalDir};
/// use bedrock_batch::pipeline::{convert_to_bedrock, BedrockOutput, ToBedrockOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut input = Vec::new();
/// bedrock_batch::sample::write_chat_lines(&mut input, 150, 1).unwrap();
/// input.extend_from_slice(b"not json\n");
///
/// let opts = ToBedrockOptions::new("anthropic.claude-3-haiku-20240307-v1:0").unwrap();
/// let out = BedrockOutput::new_folder(Arc::new(LocalDir::new(dir.path())), &opts).await.unwrap();
/// let report = convert_to_bedrock(BytesSource::new(input), out, &opts).await.unwrap();
/// assert_eq!((report.lines, report.records, report.rejected), (151, 150, 1));
/// assert!(dir.path().join("batch.json").exists());
/// # });
/// ```
pub async fn convert_to_bedrock(
    source: impl ChunkSource,
    output: BedrockOutput,
    opts: &ToBedrockOptions,
) -> Result<Report, ConvertError> {
    prepare_to_bedrock(source, output, opts)
        .await?
        .commit()
        .await
}

/// A conversion whose outputs are written in full and not yet visible.
pub struct PreparedConversion {
    report: Report,
    target: Prepared,
}

enum Prepared {
    Stream(Vec<Box<dyn ObjectWriter>>),
    Folder(Box<PreparedGeneration>),
}

impl PreparedConversion {
    /// What the conversion did.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The `batch.json` a batch folder's commit will write.
    pub fn manifest(&self) -> Option<&BatchManifest> {
        match &self.target {
            Prepared::Folder(p) => Some(p.manifest()),
            Prepared::Stream(_) => None,
        }
    }

    /// Makes the outputs visible, all of them or none.
    pub async fn commit(self) -> Result<Report, ConvertError> {
        match self.target {
            Prepared::Stream(writers) => {
                let names: Vec<String> = writers.iter().map(|w| w.name()).collect();
                crate::io::commit_all(writers)
                    .await
                    .map_err(write_err(names.join(" and ")))?;
            }
            Prepared::Folder(p) => {
                p.commit().await?;
            }
        }
        Ok(self.report)
    }

    /// Discards the outputs; nothing is left.
    pub async fn abort(self) {
        match self.target {
            Prepared::Stream(writers) => crate::io::abort_all(writers).await,
            Prepared::Folder(p) => p.abort().await,
        }
    }
}

/// [`convert_to_bedrock`] up to the commit: the outputs are written and sealed, nothing is
/// visible until [`PreparedConversion::commit`] (a server commits an upload only once the whole
/// request checks out).
pub async fn prepare_to_bedrock(
    source: impl ChunkSource,
    output: BedrockOutput,
    opts: &ToBedrockOptions,
) -> Result<PreparedConversion, ConvertError> {
    let record_id = match &output {
        BedrockOutput::Folder(w) => RecordIdStyle::LineNumber {
            generation: w.generation().record_tag(),
        },
        BedrockOutput::Stream { .. } => RecordIdStyle::CustomId,
    };
    let job = Arc::new(LineJob {
        opts: LineOptions {
            family: opts.family,
            map: opts.map.clone(),
            record_id,
        },
        max_line: opts.max_line_bytes,
    });
    let pool = match worker_pool(opts.threads) {
        Ok(pool) => pool,
        Err(e) => {
            Committer::new(output).abort().await;
            return Err(e);
        }
    };
    let cfg = EngineConfig {
        block_size: opts.block_size,
        max_line: opts.max_line_bytes,
        pool,
        progress: opts.progress.clone(),
    };
    let mut committer = Committer::new(output);
    let result = ordered::run(source, job, &cfg, &mut committer).await;
    match result {
        Ok(bytes_in) => {
            committer.report.bytes_in = bytes_in;
            let r = &committer.report;
            tracing::debug!(
                lines = r.lines,
                records = r.records,
                rejected = r.rejected,
                blank = r.blank,
                bytes_in,
                "input read"
            );
            committer.finish().await
        }
        Err(e) => {
            tracing::debug!("conversion failed; aborting every output");
            committer.abort().await;
            Err(match e {
                EngineError::Read(e) => ConvertError::Read(e),
                EngineError::Panicked => ConvertError::Panicked,
                EngineError::Commit(e) => e,
            })
        }
    }
}

/// Cross-line checks: each `custom_id` once, one model per file.
#[derive(Default)]
struct Ledger {
    /// Hashes of the custom_ids seen: the one part of memory that grows with the input, by 9–18
    /// bytes a record (about 16 MB per million records). The line of the first use is not kept:
    /// it would double that.
    seen: KeySet,
    /// The model literal's key, the literal, and the line that set it.
    model: Option<(u64, Box<str>, u64)>,
}

impl Ledger {
    /// Checks one record's `custom_id` and `body.model` by their keys; the literals (in `input`)
    /// are read only for a message or the first model.
    fn admit(
        &mut self,
        line: u64,
        key: u64,
        input: &[u8],
        custom_id: &std::ops::Range<usize>,
        model: Option<&(std::ops::Range<usize>, u64)>,
    ) -> Result<(), Reject> {
        let text =
            |r: &std::ops::Range<usize>| String::from_utf8_lossy(&input[r.clone()]).into_owned();
        if let Some((range, model_key)) = model {
            match &self.model {
                Some((first_key, first, since)) if first_key != model_key => {
                    return Err(Reject::new(
                        RejectCode::ModelMismatch,
                        format!(
                            "body.model {} differs from {first} used since line {since} (a batch file holds requests for one model)",
                            text(range)
                        ),
                    ))
                }
                Some(_) => {}
                None => self.model = Some((*model_key, text(range).into(), line)),
            }
        }
        if !self.seen.insert(key) {
            return Err(Reject::new(
                RejectCode::DuplicateCustomId,
                format!(
                    "custom_id {} was already used by an earlier line (custom_ids must be unique in a batch)",
                    text(custom_id)
                ),
            ));
        }
        Ok(())
    }
}

enum Sink {
    Stream {
        records: Box<dyn ObjectWriter>,
        rejects: Box<dyn ObjectWriter>,
        /// Records pending: a contiguous range of the current block's buffer.
        run: Option<(usize, usize)>,
    },
    Folder(Box<GenerationWriter>),
}

struct Committer {
    ledger: Ledger,
    report: Report,
    sink: Sink,
}

impl Committer {
    fn new(output: BedrockOutput) -> Self {
        let sink = match output {
            BedrockOutput::Stream { records, rejects } => Sink::Stream {
                records,
                rejects,
                run: None,
            },
            BedrockOutput::Folder(writer) => Sink::Folder(writer),
        };
        Committer {
            ledger: Ledger::default(),
            report: Report::default(),
            sink,
        }
    }

    async fn commit_block(&mut self, block: BlockOutput) -> Result<(), ConvertError> {
        let BlockOutput {
            input,
            records,
            ids,
            items,
            tally,
        } = block;
        for field in tally.dropped {
            *self.report.dropped_fields.entry(field).or_default() += 1;
        }
        for (setting, n) in tally.clamped {
            *self.report.clamped.entry(setting.to_owned()).or_default() += n;
        }
        self.report.crlf_lines += tally.crlf;
        self.report.bom |= tally.bom;

        let text =
            |r: &std::ops::Range<usize>| std::str::from_utf8(&input[r.clone()]).unwrap_or("");
        let mut rejects = Vec::new();
        for item in items {
            self.report.lines += 1;
            let (line, reject, custom_id) = match item {
                Item::Blank => {
                    self.report.blank += 1;
                    continue;
                }
                Item::Reject {
                    line,
                    reject,
                    custom_id,
                } => (line, reject, custom_id),
                Item::Record {
                    line,
                    out,
                    ids: ids_range,
                    custom_id,
                    key,
                    model,
                } => match self
                    .ledger
                    .admit(line, key, &input, &custom_id, model.as_ref())
                {
                    Ok(()) => {
                        if self.report.openai_model.is_none() {
                            self.report.openai_model = model
                                .as_ref()
                                .and_then(|(m, _)| serde_json::from_str::<String>(text(m)).ok());
                        }
                        self.report.records += 1;
                        self.report.bytes_out += out.len() as u64;
                        self.place(&records, out, &ids, ids_range, line).await?;
                        continue;
                    }
                    Err(reject) => (line, reject, Some(custom_id)),
                },
            };
            self.report.rejected += 1;
            *self
                .report
                .rejects_by_code
                .entry(reject.code.as_str().to_owned())
                .or_default() += 1;
            reject_line(&mut rejects, line, &reject, custom_id.as_ref().map(text));
        }
        self.flush(&records, &ids).await?;
        if !rejects.is_empty() {
            match &mut self.sink {
                Sink::Stream { rejects: w, .. } => w
                    .write(Bytes::from(rejects))
                    .await
                    .map_err(write_err(w.name()))?,
                Sink::Folder(f) => f.reject(Bytes::from(rejects)).await?,
            }
        }
        Ok(())
    }

    /// Adds one admitted record.
    async fn place(
        &mut self,
        records: &Bytes,
        out: std::ops::Range<usize>,
        ids: &Bytes,
        ids_range: std::ops::Range<usize>,
        line: u64,
    ) -> Result<(), ConvertError> {
        match &mut self.sink {
            Sink::Stream { run, .. } => {
                if run.is_some_and(|(_, end)| end != out.start) {
                    // A record between the pending ones and this one was rejected after
                    // conversion.
                    self.flush(records, ids).await?;
                }
                let Sink::Stream { run, .. } = &mut self.sink else {
                    unreachable!("still a stream")
                };
                match run {
                    Some((_, end)) => *end = out.end,
                    None => *run = Some((out.start, out.end)),
                }
                Ok(())
            }
            Sink::Folder(f) => Ok(f.place(records, out, ids, ids_range, line).await?),
        }
    }

    async fn flush(&mut self, records: &Bytes, ids: &Bytes) -> Result<(), ConvertError> {
        match &mut self.sink {
            Sink::Stream {
                records: w, run, ..
            } => {
                if let Some((a, b)) = run.take() {
                    w.write(records.slice(a..b))
                        .await
                        .map_err(write_err(w.name()))?;
                }
                Ok(())
            }
            Sink::Folder(f) => Ok(f.flush(records, ids).await?),
        }
    }

    async fn finish(mut self) -> Result<PreparedConversion, ConvertError> {
        match self.sink {
            Sink::Stream {
                records, rejects, ..
            } => {
                self.report.shards = 1;
                self.report.jobs = 1;
                Ok(PreparedConversion {
                    report: self.report,
                    // The records last: the last commit of a group needs no backup of what it
                    // replaces, and the records are the big one.
                    target: Prepared::Stream(vec![rejects, records]),
                })
            }
            Sink::Folder(f) => {
                let sizes = f.job_sizes();
                self.report.jobs = sizes.len() as u32;
                let summary = GenerationSummary {
                    counts: ManifestCounts {
                        lines: self.report.lines,
                        records: self.report.records,
                        rejected: self.report.rejected,
                        blank: self.report.blank,
                        bytes_in: self.report.bytes_in,
                        bytes_out: self.report.bytes_out,
                    },
                    openai_model: self.report.openai_model.clone(),
                };
                match f.prepare(summary).await {
                    Ok(prepared) => {
                        self.report.shards = prepared.manifest().shards.len() as u32;
                        Ok(PreparedConversion {
                            report: self.report,
                            target: Prepared::Folder(Box::new(prepared)),
                        })
                    }
                    Err(FolderError::TooFewRecords { job, records }) => {
                        Err(ConvertError::TooFewRecords {
                            job,
                            records,
                            report: Box::new(self.report),
                        })
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    async fn abort(self) {
        match self.sink {
            Sink::Stream {
                records, rejects, ..
            } => crate::io::abort_all(vec![records, rejects]).await,
            Sink::Folder(f) => f.abort().await,
        }
    }
}

/// Appends one line of the rejects file.
fn reject_line(out: &mut Vec<u8>, line: u64, reject: &Reject, custom_id: Option<&str>) {
    use crate::record::json::Obj;
    let mut o = Obj::open(out);
    o.raw("id", "null");
    // A custom_id no strict parser reads (a lone surrogate) is in the message, not the member.
    let readable = custom_id.filter(|c| crate::record::json::lone_surrogate(c).is_none());
    o.raw("custom_id", readable.unwrap_or("null"));
    o.raw("response", "null");
    {
        let mut e = Obj::open(o.key("error"));
        e.string("code", reject.code.as_str());
        e.string("message", &reject.message);
        e.close();
    }
    o.raw("line", &line.to_string());
    o.close();
    out.push(b'\n');
}

impl ordered::Commit<BlockOutput, ConvertError> for Committer {
    fn commit(
        &mut self,
        block: BlockOutput,
    ) -> futures::future::BoxFuture<'_, Result<(), ConvertError>> {
        Box::pin(self.commit_block(block))
    }
}
