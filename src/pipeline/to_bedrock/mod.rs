//! OpenAI batch input → Bedrock batch records, streaming: the to-Bedrock plug-in of the engine.
//! This module holds the options, the output choice, the report and the entry points;
//! [`lines`] the per-line transform (run in parallel), [`commit`] the ordered stage (duplicate
//! and model checks, the report's counts, and handing records to the stream or to the batch
//! folder's writer, which shards them by quota).

mod commit;
mod lines;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::lines::LineLoop;
use super::ordered::{self, worker_pool, EngineConfig, EngineInput};
use super::Error;
use crate::batch_folder::{
    BatchManifest, Conversion, FolderError, FolderWriter, GenerationWriter, InputIdentity,
    LockOptions, ManifestInput, ManifestOptions, PreparedGeneration, Replace, Start,
};
use crate::io::{ChunkSource, Destination, ObjectWriter};
use crate::record::{Endpoint, Family, LineOptions, MapOptions, RecordIdStyle, UnknownModel};
use commit::Committer;
use lines::RequestLines;

pub use crate::batch_folder::MIN_RECORDS_PER_JOB;

/// Settings of a conversion to Bedrock. [`ToBedrockOptions::new`] gives Bedrock's default quotas.
#[derive(Clone)]
pub struct ToBedrockOptions {
    /// The Bedrock model id (or inference profile id or ARN) the records are for.
    pub model_id: String,
    /// Its family (derived from `model_id` by [`ToBedrockOptions::new`]).
    pub family: Family,
    /// The OpenAI endpoint the input lines are for (one per file, as OpenAI requires; lines
    /// naming another are rejected). It decides the responses' shape on the way back.
    pub endpoint: Endpoint,
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
    /// Where the user sets `max_line_bytes`, added to the reject of a longer line (the CLI's
    /// `" (see --max-line-bytes)"`); empty where nothing sets it (the server).
    pub max_line_hint: &'static str,
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
            .field("endpoint", &self.endpoint)
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
            endpoint: family.endpoints()[0],
            map: MapOptions::new(family, model_id),
            records_per_file: 50_000,
            bytes_per_file: 1_000_000_000,
            records_per_job: 50_000,
            bytes_per_job: 5_000_000_000,
            allow_small: false,
            max_line_bytes: 20 << 20,
            max_line_hint: "",
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
            endpoint: self.endpoint.url().to_owned(),
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
    /// this very one (then [`Error::Folder`] says so with
    /// [`FolderError::Occupied`] — use [`FolderWriter`] to resume or replace).
    pub async fn new_folder(
        dest: Arc<dyn Destination>,
        opts: &ToBedrockOptions,
    ) -> Result<BedrockOutput, Error> {
        let folder = FolderWriter::open(dest, &LockOptions::default()).await?;
        match folder
            .start_generation(opts.conversion(), opts.source.clone(), Replace::Refuse)
            .await?
        {
            Start::New(writer) => Ok(BedrockOutput::Folder(writer)),
            Start::Same(folder) => {
                let m = folder.current()?.manifest().clone();
                folder.release().await;
                Err(Error::Folder(FolderError::Occupied {
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
    /// For a batch of several inputs, each one and its counts, in order (empty for one input).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ManifestInput>,
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
) -> Result<Report, Error> {
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
    /// The folder refused the generation (a job with too few records); nothing was written.
    Refused(FolderError),
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
            Prepared::Stream(_) | Prepared::Refused(_) => None,
        }
    }

    /// Makes the outputs visible, all of them or none. A batch folder that refused the
    /// generation (see [`FolderError::TooFewRecords`]) is an error here; the report still says
    /// what was read.
    pub async fn commit(self) -> Result<Report, Error> {
        self.commit_then(async {}).await.map(|(report, ())| report)
    }

    /// [`commit`](Self::commit), then `then` — only if the commit held —, into a batch folder
    /// before its lock is let go (see [`PreparedGeneration::commit_then`]). Returns the report
    /// and what `then` returned.
    ///
    /// [`PreparedGeneration::commit_then`]: crate::batch_folder::PreparedGeneration::commit_then
    pub async fn commit_then<T>(
        self,
        then: impl std::future::Future<Output = T>,
    ) -> Result<(Report, T), Error> {
        let after = match self.target {
            Prepared::Stream(writers) => {
                let names: Vec<String> = writers.iter().map(|w| w.name()).collect();
                crate::io::commit_all(writers)
                    .await
                    .map_err(Error::write(names.join(" and ")))?;
                then.await
            }
            Prepared::Folder(p) => p.commit_then(then).await?.1,
            Prepared::Refused(e) => return Err(e.into()),
        };
        Ok((self.report, after))
    }

    /// Discards the outputs; nothing is left.
    pub async fn abort(self) {
        match self.target {
            Prepared::Stream(writers) => crate::io::abort_all(writers).await,
            Prepared::Folder(p) => p.abort().await,
            Prepared::Refused(_) => {}
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
) -> Result<PreparedConversion, Error> {
    let one = futures::stream::iter([(opts.source.clone(), Ok(source))]);
    prepare_to_bedrock_inputs(one, false, output, opts).await
}

/// [`prepare_to_bedrock`] for a batch made of several inputs, converted one after the other in
/// the order `inputs` yields them (each `(what it is, the opened input or why it could not be
/// opened)`; a caller opens the next ones while one converts), packed into one batch: shards
/// and jobs filled across input boundaries, each `custom_id` once across all of them.
///
/// With `several`, every record's id carries its input's index
/// ([`line_record_id`](crate::record::line_record_id)), each reject names its input, and the
/// report (and `batch.json`) lists each input with its counts.
pub async fn prepare_to_bedrock_inputs<S, C>(
    mut inputs: S,
    several: bool,
    output: BedrockOutput,
    opts: &ToBedrockOptions,
) -> Result<PreparedConversion, Error>
where
    S: futures::Stream<Item = (InputIdentity, std::io::Result<C>)> + Send + Unpin,
    C: ChunkSource,
{
    use futures::StreamExt;
    let generation = match &output {
        BedrockOutput::Folder(w) => Some(w.generation().record_tag()),
        BedrockOutput::Stream { .. } => None,
    };
    let pool = match worker_pool(opts.threads) {
        Ok(pool) => pool,
        Err(e) => {
            Committer::new(output).abort().await;
            return Err(e);
        }
    };
    let mut committer = Committer::new(output);
    // The inputs are opened (and read ahead) by `feed` while the engine converts: polled
    // together, so S3 round trips for the next inputs overlap this one's conversion.
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let feed = async move {
        while let Some(input) = inputs.next().await {
            if tx.send(input).await.is_err() {
                break; // The conversion ended early.
            }
        }
    };
    let received = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|input| (input, rx))
    });
    let mut index = 0u32;
    let engine_inputs = received
        .map(|(identity, source)| {
            let input = several.then_some(index);
            index += 1;
            let record_id = match generation {
                Some(generation) => RecordIdStyle::LineNumber { generation, input },
                None => RecordIdStyle::CustomId,
            };
            let job = LineLoop::new(
                RequestLines {
                    opts: LineOptions {
                        family: opts.family,
                        map: opts.map.clone(),
                        record_id,
                        endpoint: Some(opts.endpoint),
                    },
                },
                opts.max_line_bytes,
                opts.max_line_hint,
            );
            EngineInput {
                name: if several {
                    identity.name.clone()
                } else {
                    "the input".to_owned()
                },
                job,
                source,
                meta: several.then_some(identity),
            }
        })
        .boxed();
    let cfg = EngineConfig {
        block_size: opts.block_size,
        max_line: opts.max_line_bytes,
        cr_records: false,
        pool,
        progress: opts.progress.clone(),
    };
    // Both are polled until the engine ends; then the feed is dropped, opens in flight and
    // all (an error is reported at once, not after the inputs opened ahead have been read).
    let read = {
        let work = std::pin::pin!(ordered::run(engine_inputs, &cfg, &mut committer));
        let feed = std::pin::pin!(feed);
        match futures::future::select(feed, work).await {
            futures::future::Either::Left(((), work)) => work.await,
            futures::future::Either::Right((read, _feed)) => read,
        }
    };
    let read = read.map(drop);
    match read {
        Ok(()) => {
            let r = &committer.report;
            tracing::debug!(
                lines = r.lines,
                records = r.records,
                rejected = r.rejected,
                blank = r.blank,
                bytes_in = r.bytes_in,
                inputs = r.inputs.len(),
                "input read"
            );
            committer.finish().await
        }
        Err(e) => {
            tracing::debug!("conversion failed; aborting every output");
            committer.abort().await;
            Err(e)
        }
    }
}
