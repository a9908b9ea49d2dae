//! The folder's JSON files — `batch.json`, `jobs/jobNNN.json`, `results/report.json` — and the
//! checks that every path they hold is where the layout puts it.

use serde::{Deserialize, Serialize};

use super::layout::{is_job_id, Generation};
use super::FolderError;

/// The manifest format tag; bumped when the layout changes incompatibly.
pub const FORMAT: &str = "bedrock-batch/2";

/// What was converted: the input as the user named it, and what identifies its content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    /// As given (a path, `-`, or an `s3://` URI).
    pub name: String,
    /// Where it is, canonically (an absolute path, an `s3://` URI); `None` for a stream.
    pub location: Option<String>,
    /// Its size, when known before reading.
    pub bytes: Option<u64>,
    /// What changes when its content does: a local file's modification time (ns), an S3
    /// object's ETag; `None` when nothing does (a stream).
    pub version: Option<String>,
}

impl InputIdentity {
    /// An input known only by its name (a stream, or a library caller's bytes).
    pub fn named(name: &str) -> Self {
        InputIdentity {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// The identity of several inputs converted as one batch, named `name` (as the user gave
    /// them): the same as another set only when every input is provably the same, in the same
    /// order.
    pub fn of_set(name: &str, inputs: &[InputIdentity]) -> Self {
        let known = inputs
            .iter()
            .all(|i| i.location.is_some() && i.version.is_some() && i.bytes.is_some());
        if !known {
            return InputIdentity::named(name);
        }
        // FNV-1a over every input's place, size and version: a short, stable digest.
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for i in inputs {
            let text = format!(
                "{}\n{}\n{}\n",
                i.location.as_deref().unwrap_or(""),
                i.bytes.unwrap_or(0),
                i.version.as_deref().unwrap_or("")
            );
            for b in text.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        InputIdentity {
            name: name.to_owned(),
            location: Some(format!(
                "{} inputs from {}",
                inputs.len(),
                inputs[0].location.as_deref().unwrap_or("")
            )),
            bytes: Some(inputs.iter().filter_map(|i| i.bytes).sum()),
            version: Some(format!("set:{h:016x}")),
        }
    }

    /// Whether `self` and `other` are provably the same content: the same place, size and
    /// version. A stream is never the same as anything.
    pub fn same_as(&self, other: &InputIdentity) -> bool {
        self.location.is_some()
            && self.version.is_some()
            && self.bytes.is_some()
            && self.location == other.location
            && self.bytes == other.bytes
            && self.version == other.version
    }
}

/// One of the several inputs (files) a batch is made of, and what became of its lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInput {
    /// Which input.
    #[serde(flatten)]
    pub identity: InputIdentity,
    /// Its lines: `lines = records + rejected + blank`.
    pub counts: ManifestCounts,
}

/// What a conversion makes of its input: the same input converted with the same conversion gives
/// the same records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// The Bedrock model id the records are for.
    pub model_id: String,
    /// The model family whose body format `modelInput` holds.
    pub family: String,
    /// `InvokeModel` or `Converse`.
    pub invocation_type: String,
    /// The OpenAI endpoint of the input lines.
    pub endpoint: String,
    /// The options.
    pub options: ManifestOptions,
}

/// Conversion options recorded in `batch.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestOptions {
    /// Default `max_tokens`.
    pub max_tokens: u64,
    /// Whether unsupported fields were dropped instead of rejected.
    pub drop_unsupported: bool,
    /// Records per file at most.
    pub records_per_file: u64,
    /// Bytes per file at most.
    pub bytes_per_file: u64,
    /// Records per job at most.
    pub records_per_job: u64,
    /// Bytes per job at most.
    pub bytes_per_job: u64,
    /// Jobs below Bedrock's minimum of records were allowed.
    pub allow_small: bool,
    /// Lines longer than this were rejected.
    pub max_line_bytes: u64,
}

/// Line accounting recorded in `batch.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestCounts {
    /// Input lines.
    pub lines: u64,
    /// Records written.
    pub records: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// Blank lines skipped.
    pub blank: u64,
    /// Input bytes.
    pub bytes_in: u64,
    /// Record bytes written.
    pub bytes_out: u64,
}

/// One record file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Its index, from 0, across jobs.
    pub index: u32,
    /// The record file, relative to the folder.
    pub path: String,
    /// Its ledger file, relative to the folder.
    pub ids: String,
    /// The job it belongs to.
    pub job: u32,
    /// Records in it.
    pub records: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Input line of its first record.
    pub first_line: u64,
    /// Input line of its last record.
    pub last_line: u64,
}

/// One Bedrock job's share of the folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its index, from 0.
    pub index: u32,
    /// The prefix to give CreateModelInvocationJob as input, relative to the folder.
    pub input_prefix: String,
    /// Records in it.
    pub records: u64,
    /// Bytes in it.
    pub bytes: u64,
}

/// `batch.json`: one generation of the folder, and the commit point of its conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchManifest {
    /// [`FORMAT`].
    pub format: String,
    /// The version of bedrock-batch that wrote it.
    pub tool_version: String,
    /// The generation: the folder below which all of this conversion's files are.
    pub generation: String,
    /// Unix seconds when the conversion finished.
    pub created_at: u64,
    /// What was converted (for several inputs, the set: see [`InputIdentity::of_set`]).
    pub input: InputIdentity,
    /// For a batch of several inputs, each one in order: its records' ids carry its index
    /// ([`record::line_record_id`](crate::record::line_record_id)). Empty for one input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ManifestInput>,
    /// How.
    pub conversion: Conversion,
    /// The `body.model` of the input lines, if they named one.
    pub openai_model: Option<String>,
    /// How `recordId`s were made: `line_number_generation` (`L`, the 10-digit line number, `G`
    /// and the generation's tag: [`record::line_record_id`](crate::record::line_record_id)).
    pub record_id: String,
    /// What happened to the input lines; `lines = records + rejected + blank`.
    pub counts: ManifestCounts,
    /// The record files, in order.
    pub shards: Vec<Shard>,
    /// The Bedrock jobs the records are grouped into.
    pub jobs: Vec<Job>,
    /// The rejects file, relative to the folder.
    pub rejected: String,
}

/// The format tag and generation of any `batch.json`, read before the rest (an older format
/// has other fields).
#[derive(Deserialize)]
struct Head {
    format: Option<String>,
}

impl BatchManifest {
    /// The generation, checked.
    pub fn generation(&self) -> Generation {
        Generation::parse(&self.generation).expect("checked when read")
    }

    /// The model id.
    pub fn model_id(&self) -> &str {
        &self.conversion.model_id
    }

    /// Reads and checks a `batch.json` (`file` names it in errors): the format, the generation,
    /// that every path is where the layout puts it, and that the counts add up.
    pub fn parse(file: &str, raw: &[u8]) -> Result<BatchManifest, FolderError> {
        let malformed = |problem: String| FolderError::Malformed {
            file: file.to_owned(),
            problem,
        };
        let head: Head = serde_json::from_slice(raw).map_err(|e| malformed(e.to_string()))?;
        match head.format.as_deref() {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(FolderError::Unsupported {
                    file: file.to_owned(),
                    format: other.to_owned(),
                })
            }
            None => return Err(malformed("no \"format\"".into())),
        }
        let m: BatchManifest = serde_json::from_slice(raw).map_err(|e| malformed(e.to_string()))?;
        let generation = Generation::parse(&m.generation).ok_or_else(|| {
            malformed(format!(
                "generation {:?} is not a generation name",
                m.generation
            ))
        })?;
        let placed = |what: String, got: &str, expected: String| {
            if got == expected {
                Ok(())
            } else {
                Err(FolderError::Outside {
                    file: file.to_owned(),
                    what,
                    path: got.to_owned(),
                    expected,
                })
            }
        };
        for (i, job) in m.jobs.iter().enumerate() {
            if job.index as usize != i {
                return Err(malformed(format!("jobs[{i}] has index {}", job.index)));
            }
            placed(
                format!("jobs[{i}].input_prefix"),
                &job.input_prefix,
                generation.job_input_prefix(job.index),
            )?;
        }
        let mut per_job = vec![(0u64, 0u64); m.jobs.len()];
        for (i, shard) in m.shards.iter().enumerate() {
            if shard.index as usize != i {
                return Err(malformed(format!("shards[{i}] has index {}", shard.index)));
            }
            let sums = per_job.get_mut(shard.job as usize).ok_or_else(|| {
                malformed(format!(
                    "shards[{i}] belongs to job {}, which is not listed",
                    shard.job
                ))
            })?;
            placed(
                format!("shards[{i}].path"),
                &shard.path,
                generation.shard_path(shard.job, shard.index),
            )?;
            placed(
                format!("shards[{i}].ids"),
                &shard.ids,
                generation.ids_path(shard.index),
            )?;
            sums.0 += shard.records;
            sums.1 += shard.bytes;
        }
        for (job, sums) in m.jobs.iter().zip(&per_job) {
            if (job.records, job.bytes) != *sums {
                return Err(malformed(format!(
                    "job {} says {} records, {} bytes; its shards hold {} records, {} bytes",
                    job.index, job.records, job.bytes, sums.0, sums.1
                )));
            }
        }
        placed("rejected".into(), &m.rejected, generation.rejected_path())?;
        let c = &m.counts;
        let records: u64 = per_job.iter().map(|s| s.0).sum();
        if c.records != records
            || c.records
                .checked_add(c.rejected)
                .and_then(|n| n.checked_add(c.blank))
                != Some(c.lines)
        {
            return Err(malformed(format!(
                "the counts do not add up: lines {} = records {} + rejected {} + blank {}; the shards hold {records} records",
                c.lines, c.records, c.rejected, c.blank
            )));
        }
        if !m.inputs.is_empty() {
            let mut sum = ManifestCounts::default();
            for i in &m.inputs {
                let n = &i.counts;
                if n.records
                    .checked_add(n.rejected)
                    .and_then(|r| r.checked_add(n.blank))
                    != Some(n.lines)
                {
                    return Err(malformed(format!(
                        "the counts of input {} do not add up",
                        i.identity.name
                    )));
                }
                sum.lines += n.lines;
                sum.records += n.records;
                sum.rejected += n.rejected;
                sum.blank += n.blank;
            }
            if (sum.lines, sum.records, sum.rejected, sum.blank)
                != (c.lines, c.records, c.rejected, c.blank)
            {
                return Err(malformed(
                    "the inputs' counts do not add up to the batch's".to_owned(),
                ));
            }
        }
        Ok(m)
    }

    /// `batch.json` as written: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("the manifest serializes");
        json.push(b'\n');
        json
    }
}

/// `<gen>/jobs/jobNNN.json`: the Bedrock job a folder's job `index` was submitted as, written as
/// soon as Bedrock accepts it, so later commands need only the folder. A new submission with
/// other settings replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The generation it belongs to.
    pub generation: String,
    /// The folder's job index.
    pub index: u32,
    /// The Bedrock job's ARN.
    pub job_arn: String,
    /// Its name.
    pub job_name: String,
    /// The idempotency token it was created with.
    pub client_request_token: String,
    /// Unix seconds when it was submitted.
    pub submitted_at: u64,
    /// The model it runs.
    pub model_id: String,
    /// The service role.
    pub role_arn: String,
    /// Its input URI.
    pub input_uri: String,
    /// Its output URI (Bedrock writes under `<job-id>/`).
    pub output_uri: String,
    /// Its timeout.
    pub timeout_hours: i32,
    /// `InvokeModel` or `Converse`.
    pub invocation_type: String,
}

impl JobRecord {
    /// The job id: the ARN's last segment, also the name of its output sub-folder.
    pub fn job_id(&self) -> &str {
        self.job_arn.rsplit('/').next().unwrap_or(&self.job_arn)
    }

    /// Reads and checks a job record of `manifest`'s folder, whose `uri` gives a path's full
    /// address: its generation, index, input and output must be the folder's own.
    pub fn parse(
        file: &str,
        raw: &[u8],
        manifest: &BatchManifest,
        uri: impl Fn(&str) -> String,
    ) -> Result<JobRecord, FolderError> {
        let malformed = |problem: String| FolderError::Malformed {
            file: file.to_owned(),
            problem,
        };
        let r: JobRecord = serde_json::from_slice(raw).map_err(|e| malformed(e.to_string()))?;
        let generation = manifest.generation();
        if r.generation != generation.as_str() {
            return Err(malformed(format!(
                "it belongs to generation {}, not {generation}",
                r.generation
            )));
        }
        if r.index as usize >= manifest.jobs.len() {
            return Err(malformed(format!(
                "job {} is not a job of this folder ({} jobs)",
                r.index,
                manifest.jobs.len()
            )));
        }
        if !is_job_id(r.job_id()) {
            return Err(malformed(format!("{} is not a Bedrock job ARN", r.job_arn)));
        }
        for (what, got, expected) in [
            (
                "input_uri",
                &r.input_uri,
                uri(&generation.job_input_prefix(r.index)),
            ),
            (
                "output_uri",
                &r.output_uri,
                uri(&generation.output_prefix()),
            ),
        ] {
            if *got != expected {
                return Err(FolderError::Outside {
                    file: file.to_owned(),
                    what: what.to_owned(),
                    path: got.clone(),
                    expected,
                });
            }
        }
        Ok(r)
    }
}

/// `results/report.json`: where the OpenAI files of the last collection went and what they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsRecord {
    /// The generation whose results these are.
    pub generation: String,
    /// The OpenAI output file.
    pub output: String,
    /// The OpenAI error file.
    pub errors: String,
    /// Unix seconds when the conversion started.
    pub started_at: u64,
    /// Unix seconds when it finished.
    pub finished_at: u64,
    /// Records in the output file.
    pub succeeded: u64,
    /// Records Bedrock answered with an error.
    pub failed: u64,
    /// Records Bedrock never returned.
    pub missing: u64,
    /// Prompt tokens (cache included).
    pub input_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cached_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens written to the cache (absent in records of older versions: 0).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// The output file's size (absent in records of older versions).
    #[serde(default)]
    pub output_bytes: Option<u64>,
    /// The error file's size (absent in records of older versions).
    #[serde(default)]
    pub errors_bytes: Option<u64>,
    /// With the results written per input as well (`--results-per-input`), each input's pair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_input: Vec<InputResults>,
}

/// One input's results, when they are written per input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputResults {
    /// The input, as `batch.json` names it.
    pub name: String,
    /// Its OpenAI output file, relative to the folder.
    pub output: String,
    /// Its OpenAI error file, relative to the folder.
    pub errors: String,
    /// Lines in its output file.
    pub succeeded: u64,
    /// Lines in its error file (failed and missing records).
    pub errors_lines: u64,
}
