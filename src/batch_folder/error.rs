//! What can go wrong with a batch folder, naming the folder or file and what is wrong.

use std::io;

/// Why a batch folder could not be read, written or replaced.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// An object could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, and to which object.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The folder holds no `batch.json`.
    #[error("{folder}batch.json not found: not a batch folder (made by `bedrock-batch to-bedrock INPUT DEST/`)")]
    NotABatchFolder {
        /// The folder.
        folder: String,
    },
    /// A file of the folder is not what bedrock-batch writes.
    #[error("{file}: {problem}")]
    Malformed {
        /// The file.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// A path read from the folder's own files is not where the layout puts it (it could point
    /// outside the folder, or at another generation's files).
    #[error("{file}: {what} is {path:?}, but bedrock-batch keeps it at {expected:?}: refusing to follow a path from the file")]
    Outside {
        /// The file the path was read from.
        file: String,
        /// Which field.
        what: String,
        /// The path found.
        path: String,
        /// Where the layout puts it.
        expected: String,
    },
    /// `batch.json` was written by a version of bedrock-batch with another layout.
    #[error(
        "{file}: format {format:?} is another version's layout (this one reads {})",
        super::FORMAT
    )]
    Unsupported {
        /// The file.
        file: String,
        /// Its format tag.
        format: String,
    },
    /// Another run is writing the folder.
    #[error("{folder} is being written by another run ({holder}); wait for it to finish. {hint}")]
    Locked {
        /// The folder.
        folder: String,
        /// Who holds the lock.
        holder: String,
        /// What to do if that run is dead.
        hint: String,
    },
    /// The lock expired and another run took it while this one was writing.
    #[error("{folder}: another run took over the folder's lock while this one was writing; nothing was committed")]
    LockLost {
        /// The folder.
        folder: String,
    },
    /// The folder already holds a conversion, of something else.
    #[error("{folder} already holds {holds}; {why}. To replace it (its inputs, ledger, rejects, job records, Bedrock output and results), run again with --overwrite, or use another folder")]
    Occupied {
        /// The folder.
        folder: String,
        /// What it holds.
        holds: String,
        /// Why this run is not the same conversion.
        why: String,
    },
    /// `--overwrite` while Bedrock jobs of the old generation still run.
    #[error("{folder}: cannot replace its conversion while its Bedrock jobs run ({jobs}); cancel them first (bedrock-batch cancel {folder}) or wait for them to end")]
    JobsRunning {
        /// The folder.
        folder: String,
        /// The jobs and their status.
        jobs: String,
    },
    /// Whether the old generation's jobs still run could not be found out.
    #[error(
        "{folder}: cannot tell whether its Bedrock jobs still run, so it is not replaced: {reason}"
    )]
    JobsUnknown {
        /// The folder.
        folder: String,
        /// Why.
        reason: String,
    },
    /// A commit of results has not finished: one is under way, or a run was killed in one.
    #[error("{folder}results/ is between two collections (a commit is under way, or a run was killed during one), so its files may not belong together; try again in a moment. If a run was killed, the next command that writes to the folder (from-bedrock, run) puts the last complete results back")]
    ResultsUnsettled {
        /// The folder.
        folder: String,
    },
    /// Another generation was committed since the folder was opened.
    #[error("{folder} now holds another conversion ({now}, not {opened}); run the command again")]
    Changed {
        /// The folder.
        folder: String,
        /// The generation that was opened.
        opened: String,
        /// The one it holds now.
        now: String,
    },
    /// A job's input prefix does not hold exactly the shards `batch.json` names.
    #[error(
        "{prefix}: {problem}; Bedrock would read every .jsonl there, so the job is not submitted"
    )]
    InputMismatch {
        /// The job's input prefix.
        prefix: String,
        /// What differs.
        problem: String,
    },
    /// A job would have fewer records than Bedrock accepts; nothing was written.
    #[error(
        "job {job} would hold {records} records, but Bedrock needs at least {} records per batch job \
         (quota \"Minimum number of records per batch inference job\", not adjustable); nothing was written. \
         Add records, adjust --records-per-job, or pass --allow-small to write it anyway",
        super::MIN_RECORDS_PER_JOB
    )]
    TooFewRecords {
        /// The job, from 0.
        job: u32,
        /// Its records.
        records: u64,
    },
}

impl FolderError {
    /// An I/O error while doing `what`.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> FolderError {
        let what = what.into();
        move |source| FolderError::Io { what, source }
    }
}
