//! Writing a batch folder: the lock and the clean-up of what dead runs left ([`FolderWriter`]),
//! a new generation's records sharded by quota, its ledger and rejects, committed with
//! `batch.json` last or rolled back ([`GenerationWriter`], [`PreparedGeneration`]), and the small
//! writes of later steps (job records, results).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::layout::{is_own_object, owned_prefixes, Generation, MANIFEST, RESULTS, RESULTS_RECORD};
use super::lock::{FolderLock, LockOptions};
use super::manifest::{
    BatchManifest, Conversion, InputIdentity, Job, JobRecord, ManifestCounts, ManifestInput,
    ResultsRecord, Shard, FORMAT,
};
use super::reader::FolderReader;
use super::{FolderError, MIN_RECORDS_PER_JOB};
use crate::io::{commit_all, Destination, ObjectWriter, PendingRun};

/// Finds out which of a generation's Bedrock jobs still run (the driver knows how); used before
/// a generation is replaced.
pub trait JobCheck: Send + Sync {
    /// Of the jobs with these ARNs, the ones not yet ended, each as "id (Status)"; an error when
    /// Bedrock cannot be asked.
    fn running<'a>(
        &'a self,
        job_arns: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, JobCheckError>>;
}

/// Why the jobs of a generation could not be checked (the checker's own error).
pub type JobCheckError = Box<dyn std::error::Error + Send + Sync>;

/// What to do with a folder that already holds a conversion.
#[derive(Clone, Copy)]
pub enum Replace<'a> {
    /// Refuse, unless it holds this very conversion (then there is nothing to do).
    Refuse,
    /// Replace it: everything of the old generation goes once the new one is committed. Refused
    /// while the old generation's jobs run (`JobCheck` says which).
    Overwrite(&'a dyn JobCheck),
}

/// What the folder held when it was opened.
enum Current {
    Empty,
    Generation(Box<FolderReader>),
    /// A `batch.json` that cannot be read (malformed, or another version's layout).
    Broken(FolderError),
}

/// A batch folder opened for writing: its lock is held until the writer is released (or
/// dropped), and what dead runs left has been removed.
pub struct FolderWriter {
    dest: Arc<dyn Destination>,
    lock: Option<FolderLock>,
    current: Current,
}

/// What [`FolderWriter::start_generation`] found.
pub enum Start {
    /// A new generation, ready for records.
    New(Box<GenerationWriter>),
    /// The folder holds this very conversion already (same input, same options).
    Same(Box<FolderWriter>),
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Removes every object below `prefix`.
async fn delete_prefix(dest: &dyn Destination, prefix: &str) -> Result<u64, FolderError> {
    dest.delete_prefix(prefix)
        .await
        .map_err(FolderError::io(format!("removing {}", dest.uri(prefix))))
}

impl FolderWriter {
    /// Takes the folder's lock (refusing at once, naming the holder, when another run has it)
    /// and removes what runs that died left: temporary files, incomplete uploads, generations
    /// that were never committed, and results of a generation that is not the folder's.
    pub async fn open(
        dest: Arc<dyn Destination>,
        lock: &LockOptions,
    ) -> Result<FolderWriter, FolderError> {
        let held = FolderLock::acquire(dest.as_ref(), lock).await?;
        let current = match FolderReader::open(Arc::clone(&dest)).await {
            Ok(Some(reader)) => Current::Generation(Box::new(reader)),
            Ok(None) => Current::Empty,
            Err(
                e @ (FolderError::Malformed { .. }
                | FolderError::Outside { .. }
                | FolderError::Unsupported { .. }),
            ) => Current::Broken(e),
            Err(e) => {
                held.release().await;
                return Err(e);
            }
        };
        let writer = FolderWriter {
            dest,
            lock: Some(held),
            current,
        };
        if let Err(e) = writer.clean_up().await {
            // What is left is never read (it is not the current generation's); the next run
            // tries again.
            tracing::warn!(
                "{}: cleaning up after earlier runs: {e}",
                writer.dest.uri("")
            );
        }
        Ok(writer)
    }

    async fn clean_up(&self) -> Result<(), FolderError> {
        let dest = self.dest.as_ref();
        let removed = dest
            .clean_up(is_own_object)
            .await
            .map_err(FolderError::io(format!("cleaning up {}", dest.uri(""))))?;
        if removed > 0 {
            tracing::info!(
                "{}: removed {removed} temporary objects of earlier runs",
                dest.uri("")
            );
        }
        let keep = match &self.current {
            Current::Empty => None,
            Current::Generation(r) => Some(r.generation()),
            // Which generation is the real one cannot be told: touch nothing.
            Current::Broken(_) => return Ok(()),
        };
        let children = dest
            .children("")
            .await
            .map_err(FolderError::io(format!("listing {}", dest.uri(""))))?;
        for child in children {
            let Some(generation) = child.strip_suffix('/').and_then(Generation::parse) else {
                continue;
            };
            if Some(&generation) != keep.as_ref() {
                let n = delete_prefix(dest, &generation.prefix()).await?;
                tracing::info!("{}: removed {n} objects of {generation}, which was never committed or was replaced", dest.uri(""));
            }
        }
        self.remove_results_unless(keep.as_ref()).await
    }

    /// Removes the folder's results (all of `results/`, the folder's own) unless its record says
    /// they are `keep`'s. Results outside the folder are the user's and stay.
    async fn remove_results_unless(&self, keep: Option<&Generation>) -> Result<(), FolderError> {
        let dest = self.dest.as_ref();
        let Some(raw) = dest
            .read_small(RESULTS_RECORD)
            .await
            .map_err(FolderError::io(format!(
                "reading {}",
                dest.uri(RESULTS_RECORD)
            )))?
        else {
            return Ok(());
        };
        let record = serde_json::from_slice::<ResultsRecord>(&raw).ok();
        if keep.is_some_and(|g| record.is_some_and(|r| r.generation == g.as_str())) {
            return Ok(());
        }
        // The record goes first: results without one are never taken for anyone's.
        dest.delete(RESULTS_RECORD)
            .await
            .map_err(FolderError::io(format!(
                "removing {}",
                dest.uri(RESULTS_RECORD)
            )))?;
        delete_prefix(dest, RESULTS).await.map(drop)
    }

    /// The folder.
    pub fn dest(&self) -> &Arc<dyn Destination> {
        &self.dest
    }

    /// The folder's current generation (the lock keeps it current while it is held).
    pub fn current(&self) -> Result<&FolderReader, FolderError> {
        match &self.current {
            Current::Generation(r) => Ok(r),
            Current::Empty => Err(FolderError::NotABatchFolder {
                folder: self.dest.uri(""),
            }),
            Current::Broken(e) => Err(FolderError::Malformed {
                file: self.dest.uri(MANIFEST),
                problem: e.to_string(),
            }),
        }
    }

    /// The current generation, which must be `opened` (the one a caller read before it took
    /// the lock).
    pub fn expect(&self, opened: &str) -> Result<&FolderReader, FolderError> {
        let current = self.current()?;
        if current.manifest().generation != opened {
            return Err(FolderError::Changed {
                folder: self.dest.uri(""),
                opened: opened.to_owned(),
                now: current.manifest().generation.clone(),
            });
        }
        Ok(current)
    }

    /// Starts a new generation for `conversion` of `input`, or finds the folder already holds
    /// it. A folder holding another conversion is refused (with what it holds) unless `replace`
    /// says to overwrite it, and then only when its jobs have all ended.
    pub async fn start_generation(
        self,
        conversion: Conversion,
        input: InputIdentity,
        replace: Replace<'_>,
    ) -> Result<Start, FolderError> {
        let folder = self.dest.uri("");
        let replacing = match (&self.current, replace) {
            (Current::Empty, _) => Replacing::Nothing,
            (Current::Generation(r), Replace::Refuse) => {
                let m = r.manifest();
                if m.conversion == conversion && m.input.same_as(&input) {
                    return Ok(Start::Same(Box::new(self)));
                }
                let holds = describe(m);
                let why = differences(m, &conversion, &input);
                self.release().await;
                return Err(FolderError::Occupied { folder, holds, why });
            }
            (Current::Broken(e), Replace::Refuse) => {
                let holds = format!("a batch.json this version cannot use ({e})");
                self.release().await;
                return Err(FolderError::Occupied {
                    folder,
                    holds,
                    why: "it cannot be resumed".into(),
                });
            }
            (Current::Generation(r), Replace::Overwrite(check)) => {
                if let Err(e) = jobs_ended(r, check).await {
                    self.release().await;
                    return Err(e);
                }
                Replacing::Generation(r.generation())
            }
            (Current::Broken(FolderError::Unsupported { .. }), Replace::Overwrite(_)) => {
                Replacing::Everything { legacy: true }
            }
            (Current::Broken(_), Replace::Overwrite(_)) => Replacing::Everything { legacy: false },
        };
        let generation = Generation::new(now());
        tracing::debug!("{folder}: writing {generation}");
        Ok(Start::New(Box::new(GenerationWriter {
            folder: self,
            generation,
            replacing,
            conversion,
            input,
            shard: None,
            shards: Vec::new(),
            job: 0,
            job_records: 0,
            job_bytes: 0,
            job_sizes: Vec::new(),
            sealed: Vec::new(),
            rejects: None,
            run_out: PendingRun::default(),
            run_ids: PendingRun::default(),
        })))
    }

    /// Records the Bedrock job submitted for the current generation's job `record.index`.
    pub async fn write_job_record(&self, record: &JobRecord) -> Result<(), FolderError> {
        self.lock()?.confirm().await?;
        let generation = self.current()?.generation();
        if record.generation != generation.as_str() {
            return Err(FolderError::Changed {
                folder: self.dest.uri(""),
                opened: record.generation.clone(),
                now: generation.to_string(),
            });
        }
        let rel = generation.job_record_path(record.index);
        let json = serde_json::to_vec_pretty(record).expect("a job record serializes");
        self.put(&rel, json).await
    }

    /// Checks that the input prefix of the current generation's job `job` holds exactly the
    /// shards `batch.json` names for it, each of its recorded size: Bedrock reads every file
    /// there.
    pub async fn check_job_input(&self, job: u32) -> Result<(), FolderError> {
        let reader = self.current()?;
        let generation = reader.generation();
        let prefix = generation.job_input_prefix(job);
        let prefix_uri = self.dest.uri(&prefix);
        let listing = self
            .dest
            .list(&prefix)
            .await
            .map_err(FolderError::io(format!("listing {prefix_uri}")))?;
        let expected: Vec<(&str, u64)> = reader
            .manifest()
            .shards
            .iter()
            .filter(|s| s.job == job)
            .map(|s| (s.path.as_str(), s.bytes))
            .collect();
        let mismatch = |problem: String| FolderError::InputMismatch {
            prefix: prefix_uri.clone(),
            problem,
        };
        for entry in &listing {
            match expected.iter().find(|(p, _)| *p == entry.path) {
                None => {
                    return Err(mismatch(format!(
                        "{} is not a shard of this batch (batch.json names {} files there)",
                        entry.path,
                        expected.len()
                    )))
                }
                Some((_, bytes)) if *bytes != entry.size => {
                    return Err(mismatch(format!(
                        "{} has {} bytes, batch.json says {bytes}",
                        entry.path, entry.size
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some((missing, _)) = expected
            .iter()
            .find(|(p, _)| !listing.iter().any(|e| e.path == *p))
        {
            return Err(mismatch(format!("{missing} is missing")));
        }
        Ok(())
    }

    /// Starts writing `rel` below the folder (a result file).
    pub async fn create(&self, rel: &str) -> Result<Box<dyn ObjectWriter>, FolderError> {
        self.dest
            .create(rel)
            .await
            .map_err(FolderError::io(format!("writing {}", self.dest.uri(rel))))
    }

    /// Commits a collection's output and error files together with its record
    /// (`results/report.json`): all of them, or — when one cannot be — none, and the folder's
    /// results are what they were.
    pub async fn commit_results(
        &self,
        files: Vec<Box<dyn ObjectWriter>>,
        record: &ResultsRecord,
    ) -> Result<(), FolderError> {
        if let Err(e) = self.lock()?.confirm().await {
            crate::io::abort_all(files).await;
            return Err(e);
        }
        let mut json = serde_json::to_vec_pretty(record).expect("a results record serializes");
        json.push(b'\n');
        let mut report = match self.create(RESULTS_RECORD).await {
            Ok(w) => w,
            Err(e) => {
                crate::io::abort_all(files).await;
                return Err(e);
            }
        };
        if let Err(e) = report.write(Bytes::from(json)).await {
            crate::io::abort_all(files).await;
            let _ = report.abort().await;
            return Err(FolderError::io(format!(
                "writing {}",
                self.dest.uri(RESULTS_RECORD)
            ))(e));
        }
        let mut all = files;
        all.push(report);
        commit_all(all).await.map_err(FolderError::io(format!(
            "committing the results in {}",
            self.dest.uri(RESULTS)
        )))
    }

    async fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), FolderError> {
        let io = || FolderError::io(format!("writing {}", self.dest.uri(rel)));
        let mut w = self.dest.create(rel).await.map_err(io())?;
        w.write(Bytes::from(bytes)).await.map_err(io())?;
        w.finish().await.map_err(io())
    }

    fn lock(&self) -> Result<&FolderLock, FolderError> {
        self.lock.as_ref().ok_or_else(|| FolderError::LockLost {
            folder: self.dest.uri(""),
        })
    }

    /// Lets go of the folder's lock.
    pub async fn release(mut self) {
        if let Some(lock) = self.lock.take() {
            lock.release().await;
        }
    }
}

/// Fails unless every job of `reader`'s generation has ended. (Results in the folder prove
/// nothing: `from-bedrock` collects whatever is there, while jobs run.)
async fn jobs_ended(reader: &FolderReader, check: &dyn JobCheck) -> Result<(), FolderError> {
    let folder = reader.uri("");
    let arns: Vec<String> = reader
        .job_records()
        .await?
        .into_iter()
        .flatten()
        .map(|r| r.job_arn)
        .collect();
    if arns.is_empty() {
        return Ok(());
    }
    match check.running(&arns).await {
        Ok(running) if running.is_empty() => Ok(()),
        Ok(running) => Err(FolderError::JobsRunning {
            folder,
            jobs: running.join(", "),
        }),
        Err(reason) => Err(FolderError::JobsUnknown {
            folder,
            reason: reason.to_string(),
        }),
    }
}

/// What a conversion holds, in words.
fn describe(m: &BatchManifest) -> String {
    format!(
        "{} ({} records of {}, converted at {} for {})",
        m.generation,
        m.counts.records,
        m.input.name,
        super::time_text(m.created_at),
        m.conversion.model_id
    )
}

/// How a conversion differs from the one a folder holds, in words.
fn differences(m: &BatchManifest, conversion: &Conversion, input: &InputIdentity) -> String {
    let mut why = Vec::new();
    let was = &m.conversion;
    if was.model_id != conversion.model_id {
        why.push(format!(
            "model {} instead of {}",
            conversion.model_id, was.model_id
        ));
    }
    if was.family != conversion.family || was.invocation_type != conversion.invocation_type {
        why.push(format!(
            "{} ({}) instead of {} ({})",
            conversion.family, conversion.invocation_type, was.family, was.invocation_type
        ));
    }
    if was.options != conversion.options {
        why.push("other conversion options".to_owned());
    }
    if !m.input.same_as(input) {
        why.push(if input.location.is_none() || input.version.is_none() {
            format!(
                "an input that cannot be told to be the one converted before ({}: a stream, or a file whose version is unknown)",
                if input.name == "-" { "stdin" } else { input.name.as_str() }
            )
        } else if m.input.location != input.location {
            format!("input {} instead of {}", input.name, m.input.name)
        } else {
            format!("{} has changed since", input.name)
        });
    }
    if why.is_empty() {
        why.push("it is the same conversion, but --overwrite was not given".into());
    }
    format!("this run converts {}", why.join(", "))
}

/// What a new generation replaces, removed once it is committed.
enum Replacing {
    Nothing,
    Generation(Generation),
    /// An unreadable folder: all of its own files (and, for an older version's layout, that
    /// layout's folders).
    Everything {
        legacy: bool,
    },
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

/// A new generation being written: records placed into shards and jobs by quota, each with its
/// ledger line; rejects; all invisible to readers until [`PreparedGeneration::commit`].
pub struct GenerationWriter {
    folder: FolderWriter,
    generation: Generation,
    replacing: Replacing,
    conversion: Conversion,
    input: InputIdentity,
    shard: Option<OpenShard>,
    shards: Vec<Shard>,
    job: u32,
    job_records: u64,
    job_bytes: u64,
    job_sizes: Vec<(u64, u64)>,
    /// Closed shards' writers: sealed, committed at the very end.
    sealed: Vec<Box<dyn ObjectWriter>>,
    rejects: Option<Box<dyn ObjectWriter>>,
    /// Records pending for the open shard: a contiguous range of the caller's current block.
    run_out: PendingRun,
    run_ids: PendingRun,
}

/// What a conversion tells the folder about itself when it is done.
#[derive(Debug, Clone, Default)]
pub struct GenerationSummary {
    /// The line accounting.
    pub counts: ManifestCounts,
    /// The `body.model` of the input, if any.
    pub openai_model: Option<String>,
    /// For a batch of several inputs, each one and its counts, in order.
    pub inputs: Vec<ManifestInput>,
}

impl GenerationWriter {
    /// The generation being written.
    pub fn generation(&self) -> &Generation {
        &self.generation
    }

    /// What this generation converts, with its quotas.
    pub fn conversion(&self) -> &Conversion {
        &self.conversion
    }

    /// The folder's address.
    pub fn uri(&self, rel: &str) -> String {
        self.folder.dest.uri(rel)
    }

    /// Adds one record — bytes `out` of `records`, its ledger line at `ids_range` of `ids`, made
    /// from input line `line` — closing the shard or the job first when the record would not fit
    /// its quotas. Records of one block that follow each other are written as one run; call
    /// [`flush`](Self::flush) before the block's buffers change.
    pub async fn place(
        &mut self,
        records: &Bytes,
        out: Range<usize>,
        ids: &Bytes,
        ids_range: Range<usize>,
        line: u64,
    ) -> Result<(), FolderError> {
        if !self.run_out.continues(&out) {
            // A record between the pending ones and this one was not admitted.
            self.flush(records, ids).await?;
        }
        let len = out.len() as u64;
        let o = &self.conversion.options;
        let job_full = self.job_records > 0
            && (self.job_records + 1 > o.records_per_job || self.job_bytes + len > o.bytes_per_job);
        let shard_full = self.shard.as_ref().is_some_and(|s| {
            s.records + 1 > o.records_per_file || s.bytes + len > o.bytes_per_file
        });
        if job_full || shard_full {
            // What is pending belongs to the shard being closed.
            self.flush(records, ids).await?;
            self.close_shard().await?;
        }
        if job_full {
            tracing::debug!(
                job = self.job,
                records = self.job_records,
                bytes = self.job_bytes,
                "job quota reached; starting the next job"
            );
            self.job_sizes.push((self.job_records, self.job_bytes));
            self.job += 1;
            self.job_records = 0;
            self.job_bytes = 0;
        }
        if self.shard.is_none() {
            self.open_shard(line).await?;
        }
        let shard = self.shard.as_mut().expect("a shard is open");
        shard.records += 1;
        shard.bytes += len;
        shard.last_line = line;
        self.job_records += 1;
        self.job_bytes += len;
        self.run_out.extend(out);
        self.run_ids.extend(ids_range);
        Ok(())
    }

    /// Writes the pending run of records (of `records` and `ids`) to the open shard.
    pub async fn flush(&mut self, records: &Bytes, ids: &Bytes) -> Result<(), FolderError> {
        let Some(shard) = self.shard.as_mut() else {
            self.run_out.clear();
            self.run_ids.clear();
            return Ok(());
        };
        for (run, buf, w) in [
            (&mut self.run_out, records, &mut shard.data),
            (&mut self.run_ids, ids, &mut shard.ids),
        ] {
            let name = w.name();
            run.flush(buf, &mut **w)
                .await
                .map_err(FolderError::io(format!("writing {name}")))?;
        }
        Ok(())
    }

    /// Appends rejected lines (OpenAI error-line shape) to the generation's rejects file.
    pub async fn reject(&mut self, lines: Bytes) -> Result<(), FolderError> {
        let writer = match &mut self.rejects {
            Some(w) => w,
            None => {
                let rel = self.generation.rejected_path();
                let w = self.folder.create(&rel).await?;
                self.rejects.insert(w)
            }
        };
        let name = writer.name();
        writer
            .write(lines)
            .await
            .map_err(FolderError::io(format!("writing {name}")))
    }

    async fn open_shard(&mut self, first_line: u64) -> Result<(), FolderError> {
        let index = self.shards.len() as u32;
        let data = self
            .folder
            .create(&self.generation.shard_path(self.job, index))
            .await?;
        let ids = match self.folder.create(&self.generation.ids_path(index)).await {
            Ok(w) => w,
            Err(e) => {
                let _ = data.abort().await;
                return Err(e);
            }
        };
        self.shard = Some(OpenShard {
            index,
            records: 0,
            bytes: 0,
            first_line,
            last_line: first_line,
            data,
            ids,
        });
        Ok(())
    }

    /// Closes the open shard: its writers are sealed (their data sent, only the commit left, so
    /// a folder of many shards holds no shard's tail in memory) and committed at the very end.
    async fn close_shard(&mut self) -> Result<(), FolderError> {
        let Some(mut s) = self.shard.take() else {
            return Ok(());
        };
        let mut sealed = Ok(());
        for w in [&mut s.data, &mut s.ids] {
            if let Err(e) = w.seal().await {
                sealed = Err(FolderError::io(format!("writing {}", w.name()))(e));
                break;
            }
        }
        self.shards.push(Shard {
            index: s.index,
            path: self.generation.shard_path(self.job, s.index),
            ids: self.generation.ids_path(s.index),
            job: self.job,
            records: s.records,
            bytes: s.bytes,
            first_line: s.first_line,
            last_line: s.last_line,
        });
        // Kept even when sealing failed, so that the abort that follows reaches them.
        self.sealed.push(s.data);
        self.sealed.push(s.ids);
        sealed
    }

    /// The records and bytes of each job so far (the open one last).
    pub fn job_sizes(&self) -> Vec<(u64, u64)> {
        let mut sizes = self.job_sizes.clone();
        if self.job_records > 0 || sizes.is_empty() {
            sizes.push((self.job_records, self.job_bytes));
        }
        sizes
    }

    /// Finishes writing: every object sent and sealed, `batch.json` made, nothing visible yet.
    /// A job below Bedrock's minimum of records is refused (unless the conversion allows small
    /// jobs), and then nothing is left.
    pub async fn prepare(
        mut self,
        summary: GenerationSummary,
    ) -> Result<PreparedGeneration, FolderError> {
        let result = self.prepare_inner(summary).await;
        match result {
            Ok(manifest) => Ok(PreparedGeneration {
                writers: std::mem::take(&mut self.sealed),
                manifest,
                folder: Some(self.folder),
                replacing: self.replacing,
            }),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn prepare_inner(
        &mut self,
        summary: GenerationSummary,
    ) -> Result<BatchManifest, FolderError> {
        self.close_shard().await?;
        let job_sizes = self.job_sizes();
        if !self.conversion.options.allow_small {
            if let Some((job, &(records, _))) = job_sizes
                .iter()
                .enumerate()
                .find(|(_, s)| s.0 < MIN_RECORDS_PER_JOB)
            {
                return Err(FolderError::TooFewRecords {
                    job: job as u32,
                    records,
                });
            }
        }
        let mut rejects = match self.rejects.take() {
            Some(w) => w,
            None => self.folder.create(&self.generation.rejected_path()).await?,
        };
        let sealed = rejects.seal().await;
        self.sealed.push(rejects);
        sealed.map_err(FolderError::io(format!(
            "writing {}",
            self.uri(&self.generation.rejected_path())
        )))?;
        Ok(BatchManifest {
            format: FORMAT.to_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            generation: self.generation.to_string(),
            created_at: now(),
            input: self.input.clone(),
            inputs: summary.inputs,
            conversion: self.conversion.clone(),
            openai_model: summary.openai_model,
            record_id: "line_number_generation".to_owned(),
            counts: summary.counts,
            jobs: job_sizes
                .iter()
                .enumerate()
                .map(|(i, &(records, bytes))| Job {
                    index: i as u32,
                    input_prefix: self.generation.job_input_prefix(i as u32),
                    records,
                    bytes,
                })
                .collect(),
            shards: std::mem::take(&mut self.shards),
            rejected: self.generation.rejected_path(),
        })
    }

    /// Discards everything written; the folder is as it was.
    pub async fn abort(mut self) {
        if let Some(s) = self.shard.take() {
            self.sealed.push(s.data);
            self.sealed.push(s.ids);
        }
        self.sealed.extend(self.rejects.take());
        crate::io::abort_all(std::mem::take(&mut self.sealed)).await;
        self.folder.release().await;
    }
}

/// A generation written in full and not yet visible: [`commit`](Self::commit) makes it the
/// folder's, [`abort`](Self::abort) (or dropping it) leaves the folder as it was.
pub struct PreparedGeneration {
    writers: Vec<Box<dyn ObjectWriter>>,
    manifest: BatchManifest,
    folder: Option<FolderWriter>,
    replacing: Replacing,
}

impl PreparedGeneration {
    /// The `batch.json` the commit will write.
    pub fn manifest(&self) -> &BatchManifest {
        &self.manifest
    }

    /// Makes the generation the folder's: every file of it, then `batch.json` — the commit
    /// point. A failure before `batch.json` undoes what was committed, so the folder holds what
    /// it held before; after it, what the generation replaces is removed (what cannot be is left
    /// for the next run's clean-up, and is never read meanwhile).
    pub async fn commit(self) -> Result<BatchManifest, FolderError> {
        self.commit_then(async {})
            .await
            .map(|(manifest, ())| manifest)
    }

    /// [`commit`](Self::commit), then `then` — only if the commit held — before the folder's
    /// lock is let go: what must be done before another writer may take the folder (a server
    /// writes its record of an upload, so that no sweep takes the committed folder for one a
    /// kill cut off before its record). Returns the manifest and what `then` returned.
    pub async fn commit_then<T>(
        mut self,
        then: impl std::future::Future<Output = T>,
    ) -> Result<(BatchManifest, T), FolderError> {
        let folder = self.folder.take().expect("committed once");
        let writers = std::mem::take(&mut self.writers);
        let result = commit_generation(&folder, &self.manifest, writers).await;
        let after = match result {
            Ok(()) => {
                let new = self.manifest.generation();
                if let Err(e) = remove_replaced(&folder, &self.replacing, &new).await {
                    tracing::warn!(
                        "{}: removing what the new conversion replaced: {e} (the next run on the folder removes it)",
                        folder.dest.uri("")
                    );
                }
                Ok(then.await)
            }
            Err(e) => Err(e),
        };
        folder.release().await;
        after.map(|t| (self.manifest.clone(), t))
    }
}

/// Commits a generation's `writers` and then its `manifest`, or none of them.
async fn commit_generation(
    folder: &FolderWriter,
    manifest: &BatchManifest,
    mut writers: Vec<Box<dyn ObjectWriter>>,
) -> Result<(), FolderError> {
    let ready = async {
        folder.lock()?.confirm().await?;
        let mut w = folder.create(MANIFEST).await?;
        if let Err(e) = w.write(Bytes::from(manifest.to_bytes())).await {
            let _ = w.abort().await;
            return Err(FolderError::io(format!(
                "writing {}",
                folder.dest.uri(MANIFEST)
            ))(e));
        }
        Ok(w)
    }
    .await;
    match ready {
        // `batch.json` last: the commit point.
        Ok(w) => writers.push(w),
        Err(e) => {
            crate::io::abort_all(writers).await;
            return Err(e);
        }
    }
    commit_all(writers).await.map_err(FolderError::io(format!(
        "committing {} to {}",
        manifest.generation,
        folder.dest.uri("")
    )))
}

impl PreparedGeneration {
    /// Discards the generation; the folder is as it was.
    pub async fn abort(mut self) {
        crate::io::abort_all(std::mem::take(&mut self.writers)).await;
        if let Some(folder) = self.folder.take() {
            folder.release().await;
        }
    }
}

/// Removes what a committed generation replaced.
async fn remove_replaced(
    folder: &FolderWriter,
    replacing: &Replacing,
    new: &Generation,
) -> Result<(), FolderError> {
    let dest = folder.dest.as_ref();
    match replacing {
        Replacing::Nothing => Ok(()),
        Replacing::Generation(old) => {
            delete_prefix(dest, &old.prefix()).await?;
            folder.remove_results_unless(Some(new)).await
        }
        Replacing::Everything { legacy } => {
            let mut areas = owned_prefixes();
            areas.retain(|a| a != MANIFEST);
            if *legacy {
                // The layout of format 1: one set of folders for the whole folder.
                areas.extend(
                    ["input/", "ids/", "jobs/", "output/", "rejected.jsonl"].map(String::from),
                );
            }
            for area in areas {
                for child in dest
                    .list(&area)
                    .await
                    .map_err(FolderError::io(format!("listing {}", dest.uri(&area))))?
                {
                    if child.path.starts_with(&new.prefix()) {
                        continue;
                    }
                    dest.delete(&child.path)
                        .await
                        .map_err(FolderError::io(format!(
                            "removing {}",
                            dest.uri(&child.path)
                        )))?;
                }
            }
            Ok(())
        }
    }
}
