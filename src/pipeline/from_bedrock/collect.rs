//! A batch folder's collection: Bedrock's manifests summed and compared with the lines (they
//! only inform), and the folder's outputs converted and committed together with
//! `results/report.json`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::super::Error;
use super::by_input::split_by_input;
use super::{prepare_from_bedrock, FromBedrockOptions, FromBedrockReport, OutputFile};
use crate::batch_folder::{FolderError, FolderWriter, ResultsRecord, RESULTS_BY_INPUT};
use crate::io::{Counted, ObjectWriter, WrittenCopy};

/// The two result writers, counting what they write, with local copies of it when the
/// results are also split per input.
#[allow(clippy::type_complexity)]
fn counted(
    ok: Box<dyn ObjectWriter>,
    err: Box<dyn ObjectWriter>,
    by_input: bool,
) -> std::io::Result<(Counted, Counted, Option<(WrittenCopy, WrittenCopy)>)> {
    if !by_input {
        return Ok((Counted::new(ok), Counted::new(err), None));
    }
    let (ok, err) = (Counted::with_copy(ok)?, Counted::with_copy(err)?);
    let copies = ok.copy().zip(err.copy());
    Ok((ok, err, copies))
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
    /// Also write one output/error pair per input of the batch, below `results/by-input/`
    /// (see [`input_results_paths`](crate::batch_folder::input_results_paths)), committed with
    /// the others.
    pub by_input: bool,
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
) -> Result<Collected, Error> {
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let FolderResults {
        ok,
        err,
        output,
        errors,
        by_input,
    } = results;
    let (ok, err, copies) = match counted(ok, err, by_input) {
        Ok(kept) => kept,
        Err(e) => {
            return Err(Error::Write {
                what: "the results per input (a local temporary file)".to_owned(),
                source: e,
            })
        }
    };
    let (ok_bytes, err_bytes) = (ok.counter(), err.counter());
    let (ok, err): (Box<dyn ObjectWriter>, Box<dyn ObjectWriter>) = (Box::new(ok), Box::new(err));
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
    let ledger = Arc::new(ledger);
    let (mut report, mut writers) =
        prepare_from_bedrock(files, Some(Arc::clone(&ledger)), ok, err, opts).await?;
    report.warnings.extend(warnings);
    if let Some(totals) = totals {
        compare_with_manifest(&mut report, totals, reader.manifest().jobs.len());
    }
    let mut per_input = Vec::new();
    if let Some((ok_copy, err_copy)) = copies {
        let m = reader.manifest();
        let names: Vec<String> = if m.inputs.is_empty() {
            vec![m.input.name.clone()]
        } else {
            m.inputs.iter().map(|i| i.identity.name.clone()).collect()
        };
        let split = async {
            let (ok, err) = (ok_copy.into_file(), err_copy.into_file());
            let spool = |e| Error::Write {
                what: "the results per input (a local temporary file)".to_owned(),
                source: e,
            };
            let (ok, err) = (ok.map_err(spool)?, err.map_err(spool)?);
            split_by_input(&ledger, &names, ok, err, |rel| async move {
                Ok(folder.create(&rel).await?)
            })
            .await
        }
        .await;
        match split {
            Ok((mut made, results)) => {
                // The combined files last, as they were.
                made.append(&mut writers);
                writers = made;
                per_input = results;
            }
            Err(e) => {
                crate::io::abort_all(writers).await;
                return Err(e);
            }
        }
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
        cache_write_tokens: report.cache_write_tokens,
        output_bytes: Some(ok_bytes.load(Ordering::Relaxed)),
        errors_bytes: Some(err_bytes.load(Ordering::Relaxed)),
        by_input: per_input,
    };
    folder.commit_results(writers, &record).await?;
    if record.by_input.is_empty() {
        // Results per input of an earlier collection no longer match the combined files: the
        // record now lists none, and they go.
        if let Err(e) = reader.dest().delete_prefix(RESULTS_BY_INPUT).await {
            tracing::warn!("removing the earlier results per input: {e}");
        }
    }
    Ok(Collected { report, record })
}
