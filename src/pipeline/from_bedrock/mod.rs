//! Bedrock batch output → OpenAI batch output and error files, streaming, with every custom_id
//! accounted for.
//!
//! Output lines follow the order of Bedrock's `.jsonl.out` files (Bedrock shuffles them; OpenAI
//! makes no order promise either). With a batch folder, the `ids/` ledger turns `recordId`s back
//! into `custom_id`s, and every ledger record Bedrock did not return gets an error line at the end
//! (`batch_expired`, or the code the caller chooses, such as `batch_cancelled`).

//!
//! This module holds the options, the report and the entry points; [`lines`] the per-line
//! transform (run in parallel), [`commit`] the ordered stage, [`collect`] a batch folder's
//! collection.

mod by_input;
mod collect;
mod commit;
mod lines;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::lines::LineLoop;
use super::ordered::{self, worker_pool, EngineConfig, EngineInput};
use super::Error;
use crate::batch_folder::{BatchManifest, FolderError, RecordLedger};
use crate::io::{ChunkSource, ObjectWriter};
use crate::record::bedrock_output::{IdSeed, ResponseOptions};
use crate::record::{Endpoint, Family};
use commit::Committer;
use lines::OutputLines;

pub use collect::{
    collect_folder, compare_with_manifest, Collected, FolderResults, ManifestTotals,
};

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
        opts.response.endpoint = Endpoint::from_url(&manifest.conversion.endpoint)
            .filter(|e| family.serves(*e))
            .ok_or_else(|| FolderError::Malformed {
                file: crate::batch_folder::MANIFEST.to_owned(),
                problem: format!(
                    "it names the endpoint {:?}, which the {family} family does not serve",
                    manifest.conversion.endpoint
                ),
            })?;
        Ok(opts)
    }

    /// Options for `family`, reporting `model` (a plain string) and `created`, in the shape of
    /// the family's usual endpoint (chat completions, or embeddings).
    pub fn new(family: Family, model: &str, created: u64) -> Self {
        FromBedrockOptions {
            response: ResponseOptions {
                family,
                model: serde_json::to_string(model).expect("a string serializes"),
                created,
                endpoint: family.endpoints()[0],
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
    /// Prompt tokens written to the cache.
    pub cache_write_tokens: u64,
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
) -> Result<FromBedrockReport, Error> {
    let (report, writers) = prepare_from_bedrock(files, ledger, ok, err, opts).await?;
    let names: Vec<String> = writers.iter().map(|w| w.name()).collect();
    crate::io::commit_all(writers)
        .await
        .map_err(Error::write(names.join(" and ")))?;
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
) -> Result<(FromBedrockReport, Vec<Box<dyn ObjectWriter>>), Error> {
    let mut committer = Committer::new(ok, err, ledger.as_ref().map(|l| l.len()));
    let pool = match worker_pool(opts.threads) {
        Ok(pool) => pool,
        Err(e) => {
            committer.abort().await;
            return Err(e);
        }
    };
    let job = LineLoop::new(
        OutputLines {
            ledger: ledger.clone(),
            response: opts.response.clone(),
            ids: IdSeed::new(&opts.id_salt),
        },
        opts.max_line_bytes,
        // Said the same under `run` and `serve`, which collect with the default limit: the
        // folder can always be collected again by `from-bedrock`.
        " (`from-bedrock --max-line-bytes` reads longer lines)",
    );
    let inputs = futures::stream::iter(files.into_iter().map(|file| EngineInput {
        name: file.name.clone(),
        job: Arc::clone(&job),
        source: Ok(file.source),
        meta: file.name,
    }));
    let cfg = EngineConfig {
        block_size: opts.block_size,
        max_line: opts.max_line_bytes,
        cr_records: true,
        pool,
        progress: opts.progress.clone(),
    };
    let bytes_before = match ordered::run(inputs, &cfg, &mut committer).await {
        Ok(n) => n,
        Err(e) => {
            committer.abort().await;
            return Err(e);
        }
    };
    committer.report.bytes_in = bytes_before;
    committer.finish(ledger.as_deref(), opts).await
}
