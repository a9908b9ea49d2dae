//! The ordered stage of the to-Bedrock direction: each block's lines, in input order, are
//! admitted (each `custom_id` once, one model per file) and counted, and the admitted records
//! go to the stream or to the batch folder's writer (which shards them by quota); rejects go to
//! the rejects output.

use std::ops::Range;

use bytes::Bytes;

use super::super::keys::{Key, KeySet};
use super::super::lines::Mapped;
use super::super::ordered;
use super::super::Error;
use super::lines::{Converted, Item};
use super::{BedrockOutput, Prepared, PreparedConversion, Report};
use crate::batch_folder::{
    FolderError, GenerationSummary, GenerationWriter, InputIdentity, ManifestCounts, ManifestInput,
};
use crate::io::{ObjectWriter, PendingRun};
use crate::record::json::decode_literal;
use crate::record::{Reject, RejectCode};

/// Cross-line checks: each `custom_id` once, one model per file.
#[derive(Default)]
struct Admission {
    /// The keys of the custom_ids seen: the one part of memory that grows with the input, by
    /// 17–34 bytes a record (about 35 MB per million records). The line of the first use is not
    /// kept: it would double that.
    seen: KeySet,
    /// The first model literal, its value, and where it was set (`line 3`, or `line 3 of NAME`
    /// in a batch of several inputs).
    model: Option<FirstModel>,
}

struct FirstModel {
    literal: Box<[u8]>,
    value: Box<[u8]>,
    since: String,
}

impl Admission {
    /// Checks one record's `custom_id` by its key, and its `body.model` by value (the literal
    /// as the first one spelled it, else its value); the literals (in `input`) are read only for
    /// a message or the model.
    fn admit(
        &mut self,
        place: impl FnOnce() -> String,
        key: Key,
        input: &[u8],
        custom_id: &Range<usize>,
        model: Option<&Range<usize>>,
    ) -> Result<(), Reject> {
        let text = |r: &Range<usize>| String::from_utf8_lossy(&input[r.clone()]).into_owned();
        if let Some(range) = model {
            let literal = &input[range.clone()];
            match &self.model {
                Some(first) if *first.literal != *literal => {
                    let value = std::str::from_utf8(literal).map(decode_literal);
                    if value.as_deref().ok() != Some(&*first.value) {
                        return Err(Reject::new(
                            RejectCode::ModelMismatch,
                            format!(
                                "body.model {} differs from {} used since {} (a batch file holds requests for one model)",
                                text(range),
                                String::from_utf8_lossy(&first.literal),
                                first.since
                            ),
                        ));
                    }
                }
                Some(_) => {}
                None => {
                    let value = std::str::from_utf8(literal).map(decode_literal);
                    self.model = Some(FirstModel {
                        literal: literal.into(),
                        value: value.as_deref().unwrap_or_default().into(),
                        since: place(),
                    })
                }
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

/// Where admitted records and rejects go.
enum Sink {
    /// A records stream and a rejects stream.
    Stream {
        records: Box<dyn ObjectWriter>,
        rejects: Box<dyn ObjectWriter>,
        /// Records pending: a contiguous range of the current block's buffer.
        run: PendingRun,
    },
    /// A new generation of a batch folder.
    Folder(Box<GenerationWriter>),
}

impl Sink {
    /// Whether a record of `len` bytes fits a shard and a job of a batch folder at all (one that
    /// does not would make a file or a job Bedrock refuses, and the whole batch with it). A
    /// stream is one file, its size the user's to judge.
    fn fits(&self, len: u64) -> Result<(), Reject> {
        let Sink::Folder(f) = self else {
            return Ok(());
        };
        let o = &f.conversion().options;
        let (limit, flag) = if o.bytes_per_file <= o.bytes_per_job {
            (o.bytes_per_file, "--bytes-per-file")
        } else {
            (o.bytes_per_job, "--bytes-per-job")
        };
        if len <= limit {
            return Ok(());
        }
        let what = match flag {
            "--bytes-per-file" => {
                "a batch input file (--bytes-per-file; Bedrock takes files of at most 1 GB)"
            }
            _ => "a job (--bytes-per-job; Bedrock takes jobs of at most 5 GB)",
        };
        Err(Reject::new(
            RejectCode::LineTooLong,
            format!("the Bedrock record is {len} bytes, over the {limit} bytes of {what}"),
        ))
    }

    /// Adds one admitted record: bytes `out` of `records`, its ledger line at `ids_range` of
    /// `ids`, from input line `line`. Runs of records are written together; call
    /// [`flush`](Self::flush) before the block's buffers change.
    async fn place(
        &mut self,
        records: &Bytes,
        out: Range<usize>,
        ids: &Bytes,
        ids_range: Range<usize>,
        line: u64,
    ) -> Result<(), Error> {
        match self {
            Sink::Stream {
                records: w, run, ..
            } => {
                // A gap: a record between the pending ones and this one was rejected after
                // conversion. (The writer's name only for an error: this runs for every record.)
                let written = run.add(out, records, &mut **w).await;
                written.map_err(|source| Error::Write {
                    what: w.name(),
                    source,
                })
            }
            Sink::Folder(f) => Ok(f.place(records, out, ids, ids_range, line).await?),
        }
    }

    /// Writes the records pending.
    async fn flush(&mut self, records: &Bytes, ids: &Bytes) -> Result<(), Error> {
        match self {
            Sink::Stream {
                records: w, run, ..
            } => {
                let name = w.name();
                run.flush(records, &mut **w)
                    .await
                    .map_err(Error::write(name))
            }
            Sink::Folder(f) => Ok(f.flush(records, ids).await?),
        }
    }

    /// Appends rejected lines.
    async fn reject(&mut self, lines: Bytes) -> Result<(), Error> {
        match self {
            Sink::Stream { rejects: w, .. } => w.write(lines).await.map_err(Error::write(w.name())),
            Sink::Folder(f) => Ok(f.reject(lines).await?),
        }
    }
}

/// The to-Bedrock commit stage.
pub(super) struct Committer {
    admission: Admission,
    pub(super) report: Report,
    sink: Sink,
    /// In a batch of several inputs, the one being read and the report's counts before it.
    input: Option<(InputIdentity, ManifestCounts)>,
}

impl Committer {
    pub(super) fn new(output: BedrockOutput) -> Self {
        let sink = match output {
            BedrockOutput::Stream { records, rejects } => Sink::Stream {
                records,
                rejects,
                run: PendingRun::default(),
            },
            BedrockOutput::Folder(writer) => Sink::Folder(writer),
        };
        Committer {
            admission: Admission::default(),
            report: Report::default(),
            sink,
            input: None,
        }
    }

    /// The counts so far.
    fn counts(&self) -> ManifestCounts {
        let r = &self.report;
        ManifestCounts {
            lines: r.lines,
            records: r.records,
            rejected: r.rejected,
            blank: r.blank,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
        }
    }

    /// The next input starts: `Some` (what it is) in a batch of several inputs.
    fn begin(&mut self, input: Option<InputIdentity>) {
        self.input = input.map(|i| (i, self.counts()));
    }

    /// The input begun last ended after `bytes` bytes.
    fn end(&mut self, bytes: u64) {
        self.report.bytes_in += bytes;
        if let Some((identity, before)) = self.input.take() {
            let now = self.counts();
            self.report.inputs.push(ManifestInput {
                identity,
                counts: ManifestCounts {
                    lines: now.lines - before.lines,
                    records: now.records - before.records,
                    rejected: now.rejected - before.rejected,
                    blank: now.blank - before.blank,
                    bytes_in: now.bytes_in - before.bytes_in,
                    bytes_out: now.bytes_out - before.bytes_out,
                },
            });
        }
    }

    /// The name of the input being read, in a batch of several.
    fn input_name(&self) -> Option<&str> {
        self.input.as_ref().map(|(i, _)| i.name.as_str())
    }

    async fn commit_block(&mut self, block: Mapped<Converted>) -> Result<(), Error> {
        let Mapped {
            input,
            out:
                Converted {
                    records,
                    ids,
                    items,
                    tally,
                },
            endings,
        } = block;
        let (records, ids) = (Bytes::from(records), Bytes::from(ids));
        for field in tally.dropped {
            *self.report.dropped_fields.entry(field).or_default() += 1;
        }
        for (setting, n) in tally.clamped {
            *self.report.clamped.entry(setting.to_owned()).or_default() += n;
        }
        self.report.crlf_lines += endings.crlf;
        self.report.bom |= endings.bom;

        let text = |r: &Range<usize>| std::str::from_utf8(&input[r.clone()]).unwrap_or("");
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
                } => match self.sink.fits(out.len() as u64).and_then(|()| {
                    self.admission.admit(
                        || match self.input.as_ref() {
                            Some((i, _)) => format!("line {line} of {}", i.name),
                            None => format!("line {line}"),
                        },
                        key,
                        &input,
                        &custom_id,
                        model.as_ref(),
                    )
                }) {
                    Ok(()) => {
                        if self.report.openai_model.is_none() {
                            self.report.openai_model = model
                                .as_ref()
                                .and_then(|m| serde_json::from_str::<String>(text(m)).ok());
                        }
                        self.report.records += 1;
                        self.report.bytes_out += out.len() as u64;
                        self.sink
                            .place(&records, out, &ids, ids_range, line)
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
            reject_line(
                &mut rejects,
                self.input_name(),
                line,
                &reject,
                custom_id.as_ref().map(text),
            );
        }
        self.sink.flush(&records, &ids).await?;
        if !rejects.is_empty() {
            self.sink.reject(Bytes::from(rejects)).await?;
        }
        Ok(())
    }

    /// Ends the conversion: everything written and sealed, nothing visible yet.
    pub(super) async fn finish(mut self) -> Result<PreparedConversion, Error> {
        match self.sink {
            Sink::Stream {
                records, rejects, ..
            } => {
                self.report.shards = 1;
                self.report.jobs = 1;
                Ok(PreparedConversion {
                    report: self.report,
                    // The records last: the last commit of a group needs no backup of what it
                    // replaces, and the records are the big one.
                    target: Prepared::Stream(vec![rejects, records]),
                })
            }
            Sink::Folder(f) => {
                let sizes = f.job_sizes();
                self.report.jobs = sizes.len() as u32;
                let summary = GenerationSummary {
                    counts: ManifestCounts {
                        lines: self.report.lines,
                        records: self.report.records,
                        rejected: self.report.rejected,
                        blank: self.report.blank,
                        bytes_in: self.report.bytes_in,
                        bytes_out: self.report.bytes_out,
                    },
                    openai_model: self.report.openai_model.clone(),
                    inputs: self.report.inputs.clone(),
                };
                let target = match f.prepare(summary).await {
                    Ok(prepared) => {
                        self.report.shards = prepared.manifest().shards.len() as u32;
                        Prepared::Folder(Box::new(prepared))
                    }
                    Err(e @ FolderError::TooFewRecords { .. }) => Prepared::Refused(e),
                    Err(e) => return Err(e.into()),
                };
                Ok(PreparedConversion {
                    report: self.report,
                    target,
                })
            }
        }
    }

    /// Discards everything written.
    pub(super) async fn abort(self) {
        match self.sink {
            Sink::Stream {
                records, rejects, ..
            } => crate::io::abort_all(vec![records, rejects]).await,
            Sink::Folder(f) => f.abort().await,
        }
    }
}

/// Appends one line of the rejects file: `input` names the line's input in a batch of several.
fn reject_line(
    out: &mut Vec<u8>,
    input: Option<&str>,
    line: u64,
    reject: &Reject,
    custom_id: Option<&str>,
) {
    use crate::record::json::Obj;
    let mut o = Obj::open(out);
    o.raw("id", "null");
    // A custom_id no strict parser reads (a lone surrogate) is in the message, not the member.
    let readable = custom_id.filter(|c| crate::record::json::lone_surrogate(c).is_none());
    o.raw("custom_id", readable.unwrap_or("null"));
    o.raw("response", "null");
    {
        let mut e = Obj::open(o.key("error"));
        e.string("code", reject.code.as_str());
        e.string("message", &reject.message);
        e.close();
    }
    if let Some(input) = input {
        o.string("input", input);
    }
    o.raw("line", &line.to_string());
    o.close();
    out.push(b'\n');
}

impl ordered::Commit<Mapped<Converted>> for Committer {
    type Input = Option<InputIdentity>;

    fn begin_input(&mut self, input: Option<InputIdentity>) {
        self.begin(input);
    }

    fn end_input(&mut self, bytes: u64) {
        self.end(bytes);
    }

    fn commit(
        &mut self,
        block: Mapped<Converted>,
    ) -> futures::future::BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.commit_block(block))
    }
}
