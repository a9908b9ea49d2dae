//! Reading a batch folder: its current generation's manifest, ledger, job records, Bedrock's
//! output and the last results — every path taken from the layout, never from the files.

use std::sync::Arc;

use super::layout::{Generation, MANIFEST, RESULTS_RECORD};
use super::ledger::RecordLedger;
use super::manifest::{BatchManifest, JobRecord, ResultsRecord};
use super::FolderError;
use crate::io::{ChunkSource, Destination};

/// A batch folder's current generation, read.
#[derive(Clone)]
pub struct FolderReader {
    dest: Arc<dyn Destination>,
    manifest: BatchManifest,
    raw: Vec<u8>,
}

/// What Bedrock wrote for a generation's jobs: paths relative to the folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BedrockOutputs {
    /// `<gen>/output/<job-id>/…jsonl.out`, in order.
    pub records: Vec<String>,
    /// `<gen>/output/<job-id>/manifest.json.out`, one per job that wrote one.
    pub manifests: Vec<String>,
}

impl FolderReader {
    /// Reads the folder's `batch.json`; `None` when there is none (nothing converted there, or a
    /// conversion that did not finish).
    pub async fn open(dest: Arc<dyn Destination>) -> Result<Option<FolderReader>, FolderError> {
        let file = dest.uri(MANIFEST);
        let Some(raw) = dest
            .read_small(MANIFEST)
            .await
            .map_err(FolderError::io(format!("reading {file}")))?
        else {
            return Ok(None);
        };
        let manifest = BatchManifest::parse(&file, &raw)?;
        Ok(Some(FolderReader {
            dest,
            manifest,
            raw,
        }))
    }

    /// [`FolderReader::open`], for a folder that must hold a conversion.
    pub async fn open_existing(dest: Arc<dyn Destination>) -> Result<FolderReader, FolderError> {
        let folder = dest.uri("");
        Self::open(dest)
            .await?
            .ok_or(FolderError::NotABatchFolder { folder })
    }

    /// `batch.json`.
    pub fn manifest(&self) -> &BatchManifest {
        &self.manifest
    }

    /// `batch.json` as stored (what a submission's idempotency token is derived from).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The generation.
    pub fn generation(&self) -> Generation {
        self.manifest.generation()
    }

    /// The folder.
    pub fn dest(&self) -> &Arc<dyn Destination> {
        &self.dest
    }

    /// The full address of `rel` in the folder.
    pub fn uri(&self, rel: &str) -> String {
        self.dest.uri(rel)
    }

    /// Reads the `ids/` ledger of every shard.
    pub async fn ledger(&self) -> Result<RecordLedger, FolderError> {
        let mut ledger = RecordLedger::default();
        for shard in &self.manifest.shards {
            let file = self.dest.uri(&shard.ids);
            let text = self
                .dest
                .read_small(&shard.ids)
                .await
                .map_err(FolderError::io(format!("reading {file}")))?
                .ok_or_else(|| FolderError::Malformed {
                    file: file.clone(),
                    problem: "missing (batch.json names it)".into(),
                })?;
            let before = ledger.len() as u64;
            ledger.add(&file, &text, shard.job)?;
            let read = ledger.len() as u64 - before;
            if read != shard.records {
                return Err(FolderError::Malformed {
                    file,
                    problem: format!(
                        "the ledger has {read} records, batch.json says the shard has {}",
                        shard.records
                    ),
                });
            }
        }
        Ok(ledger)
    }

    /// When the generation's batch was cancelled (Unix seconds), if it was: then none of its
    /// jobs not yet submitted ever will be.
    pub async fn cancelled_at(&self) -> Result<Option<u64>, FolderError> {
        let rel = self.generation().cancel_record_path();
        let file = self.dest.uri(&rel);
        let Some(raw) = self
            .dest
            .read_small(&rel)
            .await
            .map_err(FolderError::io(format!("reading {file}")))?
        else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct Cancelled {
            cancelled_at: u64,
        }
        serde_json::from_slice::<Cancelled>(&raw)
            .map(|c| Some(c.cancelled_at))
            .map_err(|e| FolderError::Malformed {
                file,
                problem: e.to_string(),
            })
    }

    /// Records that the generation's batch is cancelled, at `at` (Unix seconds), unless it is
    /// already. The one write a reader makes, and without the folder's lock: a cancel must reach
    /// a batch whose `run` holds the lock for as long as it waits. It is one small file of the
    /// generation's own, which nothing else writes; should the folder hold another generation by
    /// then, the record is taken back and the cancel refused.
    pub async fn request_cancel(&self, at: u64) -> Result<(), FolderError> {
        if self.cancelled_at().await?.is_some() {
            return Ok(());
        }
        let rel = self.generation().cancel_record_path();
        let io = || FolderError::io(format!("writing {}", self.dest.uri(&rel)));
        let json = serde_json::to_vec_pretty(&serde_json::json!({ "cancelled_at": at }))
            .expect("a cancel record serializes");
        let mut w = self.dest.create(&rel).await.map_err(io())?;
        w.write(bytes::Bytes::from(json)).await.map_err(io())?;
        w.finish().await.map_err(io())?;
        let now = FolderReader::open_existing(Arc::clone(&self.dest)).await?;
        if now.manifest.generation != self.manifest.generation {
            let _ = self.dest.delete(&rel).await;
            return Err(FolderError::Changed {
                folder: self.dest.uri(""),
                opened: self.manifest.generation.clone(),
                now: now.manifest.generation,
            });
        }
        Ok(())
    }

    /// The job records of the generation, by job index (`None`: not submitted yet).
    pub async fn job_records(&self) -> Result<Vec<Option<JobRecord>>, FolderError> {
        let generation = self.generation();
        let prefix = generation.jobs_prefix();
        let listing = self
            .dest
            .list(&prefix)
            .await
            .map_err(FolderError::io(format!(
                "listing {}",
                self.dest.uri(&prefix)
            )))?;
        let mut records = vec![None; self.manifest.jobs.len()];
        for entry in listing.iter().filter(|e| e.path.ends_with(".json")) {
            let file = self.dest.uri(&entry.path);
            let Some(raw) = self
                .dest
                .read_small(&entry.path)
                .await
                .map_err(FolderError::io(format!("reading {file}")))?
            else {
                continue;
            };
            let record = JobRecord::parse(&file, &raw, &self.manifest, |rel| self.dest.uri(rel))?;
            let expected = generation.job_record_path(record.index);
            if entry.path != expected {
                return Err(FolderError::Outside {
                    file,
                    what: "the record of job".into(),
                    path: entry.path.clone(),
                    expected,
                });
            }
            let slot = &mut records[record.index as usize];
            *slot = Some(record);
        }
        Ok(records)
    }

    /// What Bedrock wrote for `jobs` (records of this generation): only their own output
    /// folders are read, so a job submitted again after a failure, or another generation's job,
    /// adds nothing. With no job recorded (jobs submitted by other means), everything below the
    /// generation's output prefix.
    pub async fn outputs(&self, jobs: &[JobRecord]) -> Result<BedrockOutputs, FolderError> {
        let generation = self.generation();
        let prefixes: Vec<String> = if jobs.is_empty() {
            vec![generation.output_prefix()]
        } else {
            jobs.iter()
                .filter(|j| j.generation == generation.as_str())
                .map(|j| generation.job_output_prefix(j.job_id()))
                .collect()
        };
        let mut found = BedrockOutputs::default();
        for prefix in prefixes {
            let listing = self
                .dest
                .list(&prefix)
                .await
                .map_err(FolderError::io(format!(
                    "listing {}",
                    self.dest.uri(&prefix)
                )))?;
            for entry in listing {
                if entry.path.ends_with("/manifest.json.out") {
                    found.manifests.push(entry.path);
                } else if entry.path.ends_with(".jsonl.out") {
                    found.records.push(entry.path);
                }
            }
        }
        Ok(found)
    }

    /// The last collection of this generation's results, if any. A record of another
    /// generation's results (left by a run killed while replacing it) is not this one's.
    pub async fn results(&self) -> Result<Option<ResultsRecord>, FolderError> {
        // The journal of a group commit (see `io::commit_all`) names results being replaced:
        // while one is there, `results/` may hold some new files and some old ones. It is looked
        // for before the record is read and again after, and the record is read twice, so that a
        // commit that starts, ends, or runs whole in between is seen.
        self.no_commit_under_way().await?;
        let file = self.dest.uri(RESULTS_RECORD);
        let Some(raw) = self
            .dest
            .read_small(RESULTS_RECORD)
            .await
            .map_err(FolderError::io(format!("reading {file}")))?
        else {
            return Ok(None);
        };
        let record: ResultsRecord =
            serde_json::from_slice(&raw).map_err(|e| FolderError::Malformed {
                file,
                problem: e.to_string(),
            })?;
        if record.generation != self.manifest.generation {
            return Ok(None);
        }
        self.no_commit_under_way().await?;
        // A whole commit between the two looks: the record changed under us.
        let again = self
            .dest
            .read_small(RESULTS_RECORD)
            .await
            .map_err(FolderError::io(format!(
                "reading {}",
                self.dest.uri(RESULTS_RECORD)
            )))?;
        if again.as_deref() != Some(&raw[..]) {
            return Err(FolderError::ResultsUnsettled {
                folder: self.dest.uri(""),
            });
        }
        Ok(Some(record))
    }

    async fn no_commit_under_way(&self) -> Result<(), FolderError> {
        let tmp = format!("{}/tmp/", crate::io::HOUSEKEEPING);
        let pending = self
            .dest
            .children(&tmp)
            .await
            .map_err(FolderError::io(format!("listing {}", self.dest.uri(&tmp))))?;
        if pending.iter().any(|n| n.ends_with(".journal")) {
            return Err(FolderError::ResultsUnsettled {
                folder: self.dest.uri(""),
            });
        }
        Ok(())
    }

    /// The rejected input lines (the OpenAI error-line shape, one per line).
    pub async fn rejected(&self) -> Result<Vec<u8>, FolderError> {
        let rel = self.generation().rejected_path();
        Ok(self
            .dest
            .read_small(&rel)
            .await
            .map_err(FolderError::io(format!("reading {}", self.dest.uri(&rel))))?
            .unwrap_or_default())
    }

    /// Opens an object of the folder (one the reader named) for reading.
    pub async fn open_object(&self, rel: &str) -> Result<Box<dyn ChunkSource>, FolderError> {
        self.dest
            .open(rel)
            .await
            .map_err(FolderError::io(format!("reading {}", self.dest.uri(rel))))
    }
}
