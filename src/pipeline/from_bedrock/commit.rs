//! The ordered stage of the from-Bedrock direction: for a record seen more than once, a success
//! beats an error (duplicates counted); the counts of the report; the output file written in
//! order; error lines held back (a later success replaces them) and written at the end, with a
//! line for every ledger record Bedrock did not return.

use std::io;

use bytes::Bytes;

use super::super::keys::{Key, KeyMap, KeySet};
use super::super::lines::Mapped;
use super::super::ordered;
use super::super::Error;
use super::lines::{Answers, Item};
use super::{BadLine, FromBedrockOptions, FromBedrockReport};
use crate::batch_folder::RecordLedger;
use crate::io::{ObjectWriter, PendingRun};
use crate::record::bedrock_output::{write_missing_line, IdSeed, Outcome};
use crate::record::Usage;

/// What became of a record so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Not,
    Succeeded,
    /// An error line was written (the status; 0 for an answer that could not be mapped).
    Failed(u16),
}

/// The records seen: by ledger index, or (without a ledger) by the identity key of the recordId.
enum SeenRecords {
    Indexed(Vec<Seen>),
    Keyed(KeyMap<Seen>),
}

impl SeenRecords {
    fn get(&self, who: Key) -> Seen {
        match self {
            SeenRecords::Indexed(v) => v[who as usize],
            SeenRecords::Keyed(m) => m.get(&who).copied().unwrap_or(Seen::Not),
        }
    }

    fn set(&mut self, who: Key, seen: Seen) {
        match self {
            SeenRecords::Indexed(v) => v[who as usize] = seen,
            SeenRecords::Keyed(m) => {
                m.insert(who, seen);
            }
        }
    }
}

/// Error lines, held back until every file is read: a success that comes later for the same
/// record takes its place (Bedrock can return a record twice). In memory up to a limit, then
/// in an anonymous temporary file, so memory stays bounded whatever the number of errors.
struct ErrorSpool {
    memory: Vec<u8>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    /// Each held line: its record and its length.
    lines: Vec<(Key, u32)>,
    /// Records whose error line was replaced by a later success.
    superseded: KeySet,
}

/// Error lines held in memory before they go to a temporary file.
const SPOOL_IN_MEMORY: usize = 16 << 20;

impl ErrorSpool {
    fn new() -> Self {
        ErrorSpool {
            memory: Vec::new(),
            file: None,
            lines: Vec::new(),
            superseded: Default::default(),
        }
    }

    fn push(&mut self, who: Key, line: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.lines.push((who, line.len() as u32));
        if let Some(f) = &mut self.file {
            return f.write_all(line);
        }
        self.memory.extend_from_slice(line);
        if self.memory.len() > SPOOL_IN_MEMORY {
            let mut f = std::io::BufWriter::with_capacity(1 << 20, tempfile::tempfile()?);
            f.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.file = Some(f);
        }
        Ok(())
    }

    /// Writes the held lines, but those superseded, to `err`.
    async fn drain_into(self, err: &mut Box<dyn ObjectWriter>) -> Result<(), Error> {
        let what = err.name();
        let io = |e: io::Error| Error::Write {
            what: what.clone(),
            source: e,
        };
        let mut source: Box<dyn std::io::Read + Send> = match self.file {
            Some(f) => {
                let mut f = f.into_inner().map_err(|e| io(e.into_error()))?;
                std::io::Seek::rewind(&mut f).map_err(io)?;
                Box::new(std::io::BufReader::with_capacity(1 << 20, f))
            }
            None => Box::new(std::io::Cursor::new(self.memory)),
        };
        let mut out = Vec::with_capacity(1 << 20);
        let mut line = Vec::new();
        for (who, len) in self.lines {
            line.resize(len as usize, 0);
            std::io::Read::read_exact(&mut source, &mut line).map_err(io)?;
            if !self.superseded.contains(&who) {
                out.extend_from_slice(&line);
            }
            if out.len() >= 1 << 20 {
                err.write(Bytes::from(std::mem::take(&mut out)))
                    .await
                    .map_err(io)?;
            }
        }
        if !out.is_empty() {
            err.write(Bytes::from(out)).await.map_err(io)?;
        }
        Ok(())
    }
}

/// The from-Bedrock commit stage: which of a record's lines stands, the report's counts, and
/// the writing of the output file (in order) and of the error lines (held back until the end).
pub(super) struct Committer {
    ok: Box<dyn ObjectWriter>,
    err: Box<dyn ObjectWriter>,
    seen: SeenRecords,
    spool: ErrorSpool,
    pub(super) report: FromBedrockReport,
    /// The file being read, for messages.
    pub(super) file: String,
}

impl Committer {
    /// A commit stage writing to `ok` and `err`; with a `ledger` of `records` records, each is
    /// tracked by its index, else by the hash of its recordId.
    pub(super) fn new(
        ok: Box<dyn ObjectWriter>,
        err: Box<dyn ObjectWriter>,
        records: Option<usize>,
    ) -> Self {
        Committer {
            ok,
            err,
            seen: match records {
                Some(n) => SeenRecords::Indexed(vec![Seen::Not; n]),
                None => SeenRecords::Keyed(KeyMap::default()),
            },
            spool: ErrorSpool::new(),
            report: FromBedrockReport::default(),
            file: String::new(),
        }
    }

    /// Discards both outputs.
    pub(super) async fn abort(self) {
        crate::io::abort_all(vec![self.ok, self.err]).await;
    }

    /// After the last file: the held error lines and (with a ledger) an error line for every
    /// record Bedrock did not return go to the error file. Returns the report and the written,
    /// uncommitted writers in the order to commit them; on an error, both are aborted.
    pub(super) async fn finish(
        self,
        ledger: Option<&RecordLedger>,
        opts: &FromBedrockOptions,
    ) -> Result<(FromBedrockReport, Vec<Box<dyn ObjectWriter>>), Error> {
        let Committer {
            ok,
            mut err,
            seen,
            spool,
            mut report,
            ..
        } = self;
        let mut ended = spool.drain_into(&mut err).await;
        if let (Ok(()), Some(ledger), SeenRecords::Indexed(seen)) = (&ended, ledger, &seen) {
            report.records = Some(ledger.len() as u64);
            ended = write_missing(ledger, seen, &mut err, opts, &mut report).await;
        }
        match ended {
            // The output last: the last commit of a group needs no backup of what it replaces.
            Ok(()) => Ok((report, vec![err, ok])),
            Err(e) => {
                crate::io::abort_all(vec![ok, err]).await;
                Err(e)
            }
        }
    }

    fn problem(&mut self, line: u64, message: String) {
        if self.report.problems.len() < 100 {
            self.report.problems.push(BadLine {
                file: self.file.clone(),
                line,
                message,
            });
        }
    }

    fn warn(&mut self, message: String) {
        if self.report.warnings.len() < 100 && !self.report.warnings.contains(&message) {
            self.report.warnings.push(message);
        }
    }

    fn count_failure(&mut self, status: u16, delta: i64) {
        let failed = self.report.failed_by_status.entry(status).or_default();
        *failed = failed.saturating_add_signed(delta);
        if *failed == 0 {
            self.report.failed_by_status.remove(&status);
        }
        self.report.failed = self.report.failed.saturating_add_signed(delta);
        if status == 0 {
            self.report.invalid_outputs = self.report.invalid_outputs.saturating_add_signed(delta);
        }
    }

    fn add_usage(&mut self, usage: &Usage, line: u64) {
        let r = &mut self.report;
        let sums = [
            (&mut r.input_tokens, usage.prompt_tokens),
            (&mut r.output_tokens, usage.completion_tokens),
            (&mut r.cached_tokens, usage.cached_tokens),
            (&mut r.cache_write_tokens, usage.cache_write_tokens),
        ];
        let mut capped = false;
        for (total, add) in sums {
            capped |= total.checked_add(add).is_none();
            *total = total.saturating_add(add);
        }
        if usage.adjusted {
            r.counts_adjusted += 1;
            let at = format!("{}:{line}", self.file);
            self.warn(format!("{at}: token counts that cannot be counts (negative, fractional, beyond 2^64−1) were adjusted to the nearest counts"));
        }
        if capped {
            self.warn("the token totals passed 2^64−1 and stop there".into());
        }
    }

    async fn commit_block(&mut self, block: Mapped<Answers>) -> Result<(), Error> {
        let Answers { ok, err, items } = block.out;
        let (ok, err) = (Bytes::from(ok), Bytes::from(err));
        let mut ok_run = PendingRun::default();
        for item in items {
            self.report.lines += 1;
            match item {
                Item::Blank => self.report.blank += 1,
                Item::Bad { line, reject } => {
                    self.report.bad_lines += 1;
                    self.problem(line, reject.to_string());
                }
                Item::Unknown { line, record_id } => {
                    self.report.unknown_records += 1;
                    self.problem(
                        line,
                        format!("recordId {record_id} is not in the batch folder's ledger"),
                    );
                }
                Item::Written {
                    line,
                    ok: to_output,
                    range,
                    who,
                    outcome,
                } => {
                    match (self.seen.get(who), to_output) {
                        (Seen::Not, _) => {}
                        // A success after an error: the success stands, the error goes.
                        (Seen::Failed(status), true) => {
                            self.count_failure(status, -1);
                            self.spool.superseded.insert(who);
                            self.report.duplicates += 1;
                            self.problem(
                                line,
                                "this record came back earlier as an error; this success replaces it"
                                    .to_owned(),
                            );
                        }
                        _ => {
                            self.report.duplicates += 1;
                            self.problem(
                                line,
                                "this record appeared earlier in Bedrock's output; reported once"
                                    .to_owned(),
                            );
                            continue;
                        }
                    }
                    match outcome {
                        Outcome::Succeeded(usage) => {
                            self.seen.set(who, Seen::Succeeded);
                            self.report.succeeded += 1;
                            self.add_usage(&usage, line);
                        }
                        Outcome::Failed(status) => {
                            self.seen.set(who, Seen::Failed(status));
                            self.count_failure(status, 1);
                        }
                        Outcome::Unmappable => {
                            self.seen.set(who, Seen::Failed(0));
                            self.count_failure(0, 1);
                        }
                    }
                    // (Writers' names only for an error: this runs for every record.)
                    if to_output {
                        let written = ok_run.add(range, &ok, &mut *self.ok).await;
                        written.map_err(|source| Error::Write {
                            what: self.ok.name(),
                            source,
                        })?;
                    } else if let Err(source) = self.spool.push(who, &err[range]) {
                        return Err(Error::Write {
                            what: self.err.name(),
                            source,
                        });
                    }
                }
            }
        }
        let name = self.ok.name();
        ok_run
            .flush(&ok, &mut *self.ok)
            .await
            .map_err(Error::write(name))
    }
}

/// Writes an error line for every ledger record not `seen` in Bedrock's output.
async fn write_missing(
    ledger: &RecordLedger,
    seen: &[Seen],
    err: &mut Box<dyn ObjectWriter>,
    opts: &FromBedrockOptions,
    report: &mut FromBedrockReport,
) -> Result<(), Error> {
    let mut buf = Vec::new();
    let ids = IdSeed::new(&opts.id_salt);
    for (i, seen) in seen.iter().enumerate() {
        if *seen != Seen::Not {
            continue;
        }
        let (record_id, custom_id) = ledger.record(i as u32);
        let literal = format!("\"{record_id}\"");
        let why = opts
            .missing_by_job
            .get(&ledger.job_of(i as u32))
            .unwrap_or(&opts.missing);
        write_missing_line(
            custom_id,
            &ids.ids(&literal),
            &why.code,
            &why.message,
            &mut buf,
        );
        report.missing += 1;
        if buf.len() > 1 << 20 {
            err.write(Bytes::from(std::mem::take(&mut buf)))
                .await
                .map_err(Error::write(err.name()))?;
        }
    }
    if !buf.is_empty() {
        err.write(Bytes::from(buf))
            .await
            .map_err(Error::write(err.name()))?;
    }
    Ok(())
}

impl ordered::Commit<Mapped<Answers>> for Committer {
    /// The file's name, for messages.
    type Input = String;

    fn begin_input(&mut self, file: String) {
        self.file = file;
    }

    fn end_input(&mut self, _bytes: u64) {}

    fn commit(
        &mut self,
        block: Mapped<Answers>,
    ) -> futures::future::BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.commit_block(block))
    }
}
