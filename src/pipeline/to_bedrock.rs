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
use crate::batch_folder::{self, BatchManifest, ManifestCounts, ManifestOptions};
use crate::io::{ChunkSource, Destination, ObjectWriter};
use crate::record::{
    Family, LineOptions, MapOptions, RecordIdStyle, Reject, RejectCode, UnknownModel,
};

/// Bedrock's minimum number of records per batch job (not adjustable).
pub const MIN_RECORDS_PER_JOB: u64 = 100;

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
    /// A name for the input, recorded in `batch.json`.
    pub source_name: String,
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
            map: MapOptions::default(),
            records_per_file: 50_000,
            bytes_per_file: 1_000_000_000,
            records_per_job: 50_000,
            bytes_per_job: 5_000_000_000,
            allow_small: false,
            max_line_bytes: 20 << 20,
            block_size: 2 << 20,
            threads: None,
            progress: None,
            source_name: String::new(),
        }
    }
}

/// Where converted records go.
pub enum BedrockOutput {
    /// One Bedrock JSONL stream with `recordId = custom_id`, for piping; rejects go to their own
    /// writer.
    Stream {
        /// The records.
        records: Box<dyn ObjectWriter>,
        /// The rejects.
        rejects: Box<dyn ObjectWriter>,
    },
    /// A batch folder (see [`crate::batch_folder`]).
    Folder(Arc<dyn Destination>),
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
    /// Requests whose temperature was clamped to the model's maximum.
    pub temperature_clamped: u64,
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
/// bounded memory.
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
/// let out = BedrockOutput::Folder(Arc::new(LocalDir::new(dir.path())));
/// let report = convert_to_bedrock(BytesSource::new(input), out, &opts).await.unwrap();
/// assert_eq!((report.lines, report.records, report.rejected), (151, 150, 1));
/// assert!(dir.path().join("input/00000.jsonl").exists());
/// assert!(dir.path().join("batch.json").exists());
/// # });
/// ```
pub async fn convert_to_bedrock(
    source: impl ChunkSource,
    output: BedrockOutput,
    opts: &ToBedrockOptions,
) -> Result<Report, ConvertError> {
    let folder = matches!(output, BedrockOutput::Folder(_));
    let job = Arc::new(LineJob {
        opts: LineOptions {
            family: opts.family,
            map: opts.map.clone(),
            record_id: if folder {
                RecordIdStyle::LineNumber
            } else {
                RecordIdStyle::CustomId
            },
        },
        ledger: folder,
        max_line: opts.max_line_bytes,
    });
    let pool = worker_pool(opts.threads)?;
    let cfg = EngineConfig {
        block_size: opts.block_size,
        max_line: opts.max_line_bytes,
        pool,
        progress: opts.progress.clone(),
    };
    let mut committer = Committer::new(output, opts);
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
            committer.finish(opts).await
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

struct OpenShard {
    index: u32,
    records: u64,
    bytes: u64,
    first_line: u64,
    last_line: u64,
    data: Box<dyn ObjectWriter>,
    ids: Box<dyn ObjectWriter>,
}

struct Folder {
    dest: Arc<dyn Destination>,
    shard: Option<OpenShard>,
    /// Written in full, made visible only when the whole run succeeds.
    done: Vec<Box<dyn ObjectWriter>>,
    shards: Vec<batch_folder::Shard>,
    job: u32,
    job_records: u64,
    job_bytes: u64,
    job_sizes: Vec<(u64, u64)>,
    rejects: Option<Box<dyn ObjectWriter>>,
}

enum Sink {
    Stream {
        records: Box<dyn ObjectWriter>,
        rejects: Box<dyn ObjectWriter>,
    },
    Folder(Box<Folder>),
}

struct Limits {
    records_per_file: u64,
    bytes_per_file: u64,
    records_per_job: u64,
    bytes_per_job: u64,
}

struct Committer {
    ledger: Ledger,
    report: Report,
    sink: Sink,
    limits: Limits,
}

/// Records pending for the current shard: a contiguous range of one block's buffers.
#[derive(Default)]
struct Run {
    out: Option<(usize, usize)>,
    ids: Option<(usize, usize)>,
}

impl Committer {
    fn new(output: BedrockOutput, opts: &ToBedrockOptions) -> Self {
        let sink = match output {
            BedrockOutput::Stream { records, rejects } => Sink::Stream { records, rejects },
            BedrockOutput::Folder(dest) => Sink::Folder(Box::new(Folder {
                dest,
                shard: None,
                done: Vec::new(),
                shards: Vec::new(),
                job: 0,
                job_records: 0,
                job_bytes: 0,
                job_sizes: Vec::new(),
                rejects: None,
            })),
        };
        Committer {
            ledger: Ledger::default(),
            report: Report::default(),
            sink,
            limits: Limits {
                records_per_file: opts.records_per_file.max(1),
                bytes_per_file: opts.bytes_per_file.max(1),
                records_per_job: opts.records_per_job.max(1),
                bytes_per_job: opts.bytes_per_job.max(1),
            },
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
        self.report.temperature_clamped += tally.temperature_clamped;
        self.report.crlf_lines += tally.crlf;
        self.report.bom |= tally.bom;

        let text =
            |r: &std::ops::Range<usize>| std::str::from_utf8(&input[r.clone()]).unwrap_or("");
        let mut run = Run::default();
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
                        self.place(&mut run, &records, &ids, line, out, ids_range)
                            .await?;
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
        self.flush(&mut run, &records, &ids).await?;
        if !rejects.is_empty() {
            let writer = match &mut self.sink {
                Sink::Stream { rejects, .. } => rejects,
                Sink::Folder(f) => match &mut f.rejects {
                    Some(w) => w,
                    None => {
                        let w = f
                            .dest
                            .create(batch_folder::REJECTED)
                            .await
                            .map_err(write_err(f.dest.uri(batch_folder::REJECTED)))?;
                        f.rejects.insert(w)
                    }
                },
            };
            writer
                .write(Bytes::from(rejects))
                .await
                .map_err(write_err(writer.name()))?;
        }
        Ok(())
    }

    /// Adds one admitted record to the run, rolling shards and jobs over at the quotas.
    async fn place(
        &mut self,
        run: &mut Run,
        records: &Bytes,
        ids: &Bytes,
        line: u64,
        out: std::ops::Range<usize>,
        ids_range: std::ops::Range<usize>,
    ) -> Result<(), ConvertError> {
        if run.out.is_some_and(|(_, end)| end != out.start) {
            // A record between the pending ones and this one was rejected after conversion.
            self.flush(run, records, ids).await?;
        }
        let len = out.len() as u64;
        self.report.records += 1;
        self.report.bytes_out += len;
        if let Sink::Folder(f) = &mut self.sink {
            let l = &self.limits;
            let job_full = f.job_records > 0
                && (f.job_records + 1 > l.records_per_job || f.job_bytes + len > l.bytes_per_job);
            let shard_full = f.shard.as_ref().is_some_and(|s| {
                s.records + 1 > l.records_per_file || s.bytes + len > l.bytes_per_file
            });
            if job_full || shard_full {
                // Write what is pending to the shard it belongs to before closing it.
                Self::flush_folder(f, run, records, ids).await?;
                f.close_shard().await?;
            }
            if job_full {
                tracing::debug!(
                    job = f.job,
                    records = f.job_records,
                    bytes = f.job_bytes,
                    "job quota reached; starting the next job"
                );
                f.job_sizes.push((f.job_records, f.job_bytes));
                f.job += 1;
                f.job_records = 0;
                f.job_bytes = 0;
            }
            if f.shard.is_none() {
                f.open_shard(line).await?;
            }
            let shard = f.shard.as_mut().expect("a shard was just opened");
            shard.records += 1;
            shard.bytes += len;
            shard.last_line = line;
            f.job_records += 1;
            f.job_bytes += len;
        }
        extend(&mut run.out, out);
        extend(&mut run.ids, ids_range);
        Ok(())
    }

    async fn flush(
        &mut self,
        run: &mut Run,
        records: &Bytes,
        ids: &Bytes,
    ) -> Result<(), ConvertError> {
        match &mut self.sink {
            Sink::Stream { records: w, .. } => {
                if let Some((a, b)) = run.out.take() {
                    w.write(records.slice(a..b))
                        .await
                        .map_err(write_err(w.name()))?;
                }
                run.ids = None;
                Ok(())
            }
            Sink::Folder(f) => Self::flush_folder(f, run, records, ids).await,
        }
    }

    async fn flush_folder(
        f: &mut Folder,
        run: &mut Run,
        records: &Bytes,
        ids: &Bytes,
    ) -> Result<(), ConvertError> {
        let Some(shard) = f.shard.as_mut() else {
            *run = Run::default();
            return Ok(());
        };
        if let Some((a, b)) = run.out.take() {
            shard
                .data
                .write(records.slice(a..b))
                .await
                .map_err(write_err(shard.data.name()))?;
        }
        if let Some((a, b)) = run.ids.take() {
            shard
                .ids
                .write(ids.slice(a..b))
                .await
                .map_err(write_err(shard.ids.name()))?;
        }
        Ok(())
    }

    async fn finish(mut self, opts: &ToBedrockOptions) -> Result<Report, ConvertError> {
        match self.sink {
            Sink::Stream { records, rejects } => {
                let (rn, jn) = (records.name(), rejects.name());
                records.finish().await.map_err(write_err(rn))?;
                rejects.finish().await.map_err(write_err(jn))?;
                self.report.shards = 1;
                self.report.jobs = 1;
                Ok(self.report)
            }
            Sink::Folder(mut f) => {
                f.close_shard().await?;
                if f.job_records > 0 || f.job_sizes.is_empty() {
                    f.job_sizes.push((f.job_records, f.job_bytes));
                }
                self.report.shards = f.shards.len() as u32;
                self.report.jobs = f.job_sizes.len() as u32;
                if !opts.allow_small {
                    if let Some((job, &(records, _))) = f
                        .job_sizes
                        .iter()
                        .enumerate()
                        .find(|(_, s)| s.0 < MIN_RECORDS_PER_JOB)
                    {
                        f.abort().await;
                        return Err(ConvertError::TooFewRecords {
                            job: job as u32,
                            records,
                            report: Box::new(self.report),
                        });
                    }
                }
                finish_folder(self.report, *f, opts).await
            }
        }
    }
}

async fn finish_folder(
    report: Report,
    mut f: Folder,
    opts: &ToBedrockOptions,
) -> Result<Report, ConvertError> {
    let rejects = match f.rejects.take() {
        Some(w) => w,
        None => f
            .dest
            .create(batch_folder::REJECTED)
            .await
            .map_err(write_err(f.dest.uri(batch_folder::REJECTED)))?,
    };
    f.done.push(rejects);
    for w in f.done.drain(..) {
        let name = w.name();
        w.finish().await.map_err(write_err(name))?;
    }
    let jobs = f.job_sizes.len() as u32;
    if jobs > 1 {
        for s in &mut f.shards {
            let to = batch_folder::shard_path(index_of(&s.ids), s.job, jobs);
            f.dest
                .rename(&s.path, &to)
                .await
                .map_err(write_err(f.dest.uri(&to)))?;
            s.path = to;
        }
    }
    let manifest = BatchManifest {
        format: batch_folder::FORMAT.to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        source: opts.source_name.clone(),
        model_id: opts.model_id.clone(),
        family: opts.family.name().to_owned(),
        invocation_type: opts.family.invocation_type().to_owned(),
        endpoint: opts.family.endpoint().to_owned(),
        openai_model: report.openai_model.clone(),
        record_id: "line_number".to_owned(),
        options: ManifestOptions {
            max_tokens: opts.map.default_max_tokens,
            drop_unsupported: opts.map.drop_unsupported,
            records_per_file: opts.records_per_file,
            bytes_per_file: opts.bytes_per_file,
            records_per_job: opts.records_per_job,
            bytes_per_job: opts.bytes_per_job,
        },
        counts: ManifestCounts {
            lines: report.lines,
            records: report.records,
            rejected: report.rejected,
            blank: report.blank,
            bytes_in: report.bytes_in,
            bytes_out: report.bytes_out,
        },
        jobs: f
            .job_sizes
            .iter()
            .enumerate()
            .map(|(i, &(records, bytes))| batch_folder::Job {
                index: i as u32,
                input_prefix: batch_folder::job_prefix(i as u32, jobs),
                records,
                bytes,
            })
            .collect(),
        shards: f.shards,
        rejected: batch_folder::REJECTED.to_owned(),
    };
    let mut json = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
    json.push(b'\n');
    let mut w = f
        .dest
        .create(batch_folder::MANIFEST)
        .await
        .map_err(write_err(f.dest.uri(batch_folder::MANIFEST)))?;
    w.write(Bytes::from(json))
        .await
        .map_err(write_err(w.name()))?;
    let name = w.name();
    w.finish().await.map_err(write_err(name))?;
    Ok(report)
}

impl Committer {
    async fn abort(self) {
        match self.sink {
            Sink::Stream { records, rejects } => {
                let _ = records.abort().await;
                let _ = rejects.abort().await;
            }
            Sink::Folder(f) => f.abort().await,
        }
    }
}

fn index_of(ids_path: &str) -> u32 {
    ids_path
        .trim_start_matches("ids/")
        .trim_end_matches(".ids")
        .parse()
        .unwrap_or(0)
}

fn extend(run: &mut Option<(usize, usize)>, r: std::ops::Range<usize>) {
    match run {
        Some((_, end)) if *end == r.start => *end = r.end,
        // Callers flush before a gap, so this only starts a new run.
        _ => *run = Some((r.start, r.end)),
    }
}

impl Folder {
    async fn open_shard(&mut self, first_line: u64) -> Result<(), ConvertError> {
        let index = self.shards.len() as u32;
        let path = batch_folder::shard_path(index, 0, 1);
        let ids = batch_folder::ids_path(index);
        let data = self
            .dest
            .create(&path)
            .await
            .map_err(write_err(self.dest.uri(&path)))?;
        let ids_w = self
            .dest
            .create(&ids)
            .await
            .map_err(write_err(self.dest.uri(&ids)))?;
        self.shard = Some(OpenShard {
            index,
            records: 0,
            bytes: 0,
            first_line,
            last_line: first_line,
            data,
            ids: ids_w,
        });
        Ok(())
    }

    /// Closes the open shard: its writers are sealed (their data sent, only the commit left, so
    /// a folder of many shards holds no shard's tail in memory) and committed at the very end.
    async fn close_shard(&mut self) -> Result<(), ConvertError> {
        if let Some(mut s) = self.shard.take() {
            let mut sealed = Ok(());
            for w in [&mut s.data, &mut s.ids] {
                if let Err(e) = w.seal().await {
                    sealed = Err(write_err(w.name())(e));
                    break;
                }
            }
            self.shards.push(batch_folder::Shard {
                path: batch_folder::shard_path(s.index, 0, 1),
                ids: batch_folder::ids_path(s.index),
                job: self.job,
                records: s.records,
                bytes: s.bytes,
                first_line: s.first_line,
                last_line: s.last_line,
            });
            // Kept even when sealing failed, so that the abort that follows reaches them.
            self.done.push(s.data);
            self.done.push(s.ids);
            sealed?;
        }
        Ok(())
    }

    async fn abort(mut self) {
        if let Some(s) = self.shard.take() {
            self.done.push(s.data);
            self.done.push(s.ids);
        }
        self.done.extend(self.rejects.take());
        for w in self.done {
            let _ = w.abort().await;
        }
    }
}

/// Appends one line of the rejects file.
fn reject_line(out: &mut Vec<u8>, line: u64, reject: &Reject, custom_id: Option<&str>) {
    use crate::record::json::Obj;
    let mut o = Obj::open(out);
    o.raw("id", "null");
    o.raw("custom_id", custom_id.unwrap_or("null"));
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
