//! The batch folder: the self-describing, crash-safe format a conversion to Bedrock writes and
//! every later step reads (DESIGN §4). This module owns its layout, its files' schema, the
//! recordId ledger, the writer lock, and the writing and reading of it; nothing else builds its
//! paths.
//!
//! ```text
//! DEST/
//!   batch.json                          the current generation: what was converted, how, counts, shards,
//!                                       jobs — written last, it is the commit
//!   gen-20261129T181256Z-3f9a2c/        everything of that generation:
//!     input/job000/00000.jsonl          Bedrock records; input/jobNNN/ is job NNN's input prefix
//!     ids/00000.ids                     per record of shard 00000: recordId <TAB> custom_id
//!     rejected.jsonl                    input lines that could not be converted
//!     jobs/job000.json                  the Bedrock job submitted for job 000
//!     cancelled.json                    the batch was cancelled: no job not yet submitted will be
//!     output/<job-id>/…                 where Bedrock writes (the jobs' output prefix)
//!   results/output.jsonl, errors.jsonl  the OpenAI files of the last collection, and
//!   results/report.json                 its record, naming its generation
//!   .bedrock-batch/lock                 the writer lock; .bedrock-batch/tmp/: a local writer's temporary files
//! ```
//!
//! # Generations: why nothing of one conversion can meet another's custom_ids
//!
//! Each conversion into a folder is a *generation* with a name of its own, and writes only below
//! `DEST/<generation>/` — files no reader of the folder looks at until `batch.json` names that
//! generation. Writing `batch.json` (one atomic rename or PutObject) is the commit; everything
//! before it can be undone, and a run that fails or dies before it leaves the old `batch.json`,
//! which still names only the old generation's files. So:
//!
//! - every path a reader follows comes from the layout and the generation in `batch.json`, and a
//!   path in the folder's files that is not exactly where the layout puts it is refused
//!   ([`FolderError::Outside`]) — no `..`, no absolute path, no other bucket, no other
//!   generation;
//! - each Bedrock job reads its own prefix, `DEST/<generation>/input/jobNNN/`: a job can only
//!   ever see records of its generation, and `submit` checks that the prefix holds exactly the
//!   shards `batch.json` names, of their sizes, before it sends the job;
//! - job records and Bedrock's output live below the generation, and results name their
//!   generation: collection reads only the outputs of the jobs recorded for the current
//!   generation, so a recordId of another generation cannot be mapped to this one's ledger.
//!
//! # Lifecycle
//!
//! - **A used folder** is refused ([`FolderError::Occupied`], saying what it holds) unless the
//!   run is the very same conversion — same input (path, size and modification time, or S3
//!   ETag) and same options — which is then a no-op, or `--overwrite` replaces it: the new
//!   generation is written and committed first, and then everything of the old one (inputs,
//!   ledger, rejects, job records, Bedrock output, results) is removed. `--overwrite` is refused
//!   while the old generation's Bedrock jobs run ([`JobCheck`]).
//! - **One writer at a time**: every write takes the folder's lock first (see [`LockOptions`]
//!   for how it works locally and on S3, and when a dead holder's lock is taken over); a second
//!   writer is refused at once, with the holder's host, process and start time.
//! - **Crash safety**: temporary files live in `.bedrock-batch/tmp/` (on S3, multipart uploads
//!   not yet completed), and a failing run removes them. Whatever a killed run left — temporary
//!   files, incomplete uploads, a generation never committed, results of a generation that is
//!   not the folder's — the next writer removes when it takes the lock.
//! - **Commits of several files** (a generation; a collection's output, error and record files)
//!   go through [`commit_all`](crate::io::commit_all): when one cannot be committed the others
//!   are undone, and every name holds what it held before.

mod error;
mod layout;
mod ledger;
mod lock;
mod manifest;
mod reader;
mod writer;

pub use error::FolderError;
pub use layout::{
    input_results_paths, is_job_id, is_own_object, owned_prefixes, Generation, LOCK, MANIFEST,
    RESULTS, RESULTS_BY_INPUT, RESULTS_ERRORS, RESULTS_OUTPUT, RESULTS_RECORD,
};
pub use ledger::{push_line, RecordLedger};
pub use lock::LockOptions;
pub use manifest::{
    BatchManifest, Conversion, InputIdentity, InputResults, Job, JobRecord, ManifestCounts,
    ManifestInput, ManifestOptions, ResultsRecord, Shard, FORMAT,
};
pub use reader::{BedrockOutputs, FolderReader};
pub use writer::{
    FolderWriter, GenerationSummary, GenerationWriter, JobCheck, JobCheckError, PreparedGeneration,
    Replace, Start,
};

/// Bedrock's minimum number of records per batch job (not adjustable).
pub const MIN_RECORDS_PER_JOB: u64 = 100;

/// Unix seconds as an RFC 3339 UTC time, for messages.
pub(crate) fn time_text(secs: u64) -> String {
    aws_sdk_s3::primitives::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_else(|_| secs.to_string())
}
