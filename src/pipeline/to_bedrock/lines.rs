//! The to-Bedrock [`LineMap`]: every line of a block converted, in order, into one records
//! buffer (and, for a batch folder, its ledger lines), with an item per line saying what became
//! of it. Pure: the cross-line checks (duplicates, one model) are the commit stage's.

use std::ops::Range;

use crate::record::Raw;

use super::super::keys::{value_key, Key};
use super::super::lines::{stray_carriage_returns, Line, LineMap};
use crate::record::{
    convert_line_noted, leading_custom_id, LineOptions, Notes, RecordIdStyle, Reject, RejectCode,
};

/// What became of one input line.
#[derive(Debug)]
pub(crate) enum Item {
    /// A record, at `out` in the block's records buffer (and `ids` in its ledger buffer).
    Record {
        line: u64,
        out: Range<usize>,
        ids: Range<usize>,
        /// The `custom_id` literal, in the block's input.
        custom_id: Range<usize>,
        /// The identity key of the `custom_id`'s value, for duplicate detection.
        key: Key,
        /// The `body.model` literal, in the block's input.
        model: Option<Range<usize>>,
    },
    /// A rejected line.
    Reject {
        line: u64,
        reject: Reject,
        custom_id: Option<Range<usize>>,
    },
    /// A blank line.
    Blank,
}

/// What the records of a block noted on the way.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Fields dropped under `--drop-unsupported`, one entry per drop.
    pub dropped: Vec<String>,
    /// Settings clamped to the model's documented ranges, in how many requests.
    pub clamped: Vec<(&'static str, u64)>,
}

impl Tally {
    /// Adds what one record's conversion noted.
    fn note(&mut self, mut notes: Notes) {
        self.dropped.append(&mut notes.dropped);
        for setting in notes.clamped {
            match self.clamped.iter_mut().find(|(s, _)| *s == setting) {
                Some((_, n)) => *n += 1,
                None => self.clamped.push((setting, 1)),
            }
        }
    }
}

/// One converted block.
#[derive(Debug)]
pub(crate) struct Converted {
    /// The Bedrock records, back to back.
    pub records: Vec<u8>,
    /// Their ledger lines (batch folders only).
    pub ids: Vec<u8>,
    /// What became of each line.
    pub items: Vec<Item>,
    pub tally: Tally,
}

/// The to-Bedrock [`LineMap`]. A batch folder's records ([`RecordIdStyle::LineNumber`]) get
/// `ids/` ledger lines too.
pub(crate) struct RequestLines {
    pub opts: LineOptions,
}

fn span(data: &[u8], raw: Raw<'_>) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - data.as_ptr() as usize;
    start..start + raw.get().len()
}

impl LineMap for RequestLines {
    type Block = Converted;

    fn start(&self, input_len: usize, lines: usize) -> Converted {
        Converted {
            // Records are about as large as their input lines.
            records: Vec::with_capacity(input_len + input_len / 8),
            ids: Vec::new(),
            items: Vec::with_capacity(lines),
            tally: Tally::default(),
        }
    }

    fn line(&self, data: &[u8], line_no: u64, line: Line<'_>, out: &mut Converted) {
        let item = match line {
            Line::Blank => Item::Blank,
            // Its head still says whose request it is, most often.
            Line::TooLong { reject, head } => Item::Reject {
                line: line_no,
                reject,
                custom_id: leading_custom_id(head).map(|id| span(data, id)),
            },
            Line::Text { bytes, terminated } => self.convert(data, line_no, bytes, terminated, out),
        };
        out.items.push(item);
    }

    fn blank_carriage_returns(&self, out: &mut Converted) {
        super::super::lines::blank_carriage_returns(&mut out.records);
    }
}

impl RequestLines {
    /// Converts one line into the block's records (and ledger lines), or says why not.
    fn convert(
        &self,
        data: &[u8],
        line_no: u64,
        line: &[u8],
        terminated: bool,
        out: &mut Converted,
    ) -> Item {
        let mut notes = Notes::default();
        let out_start = out.records.len();
        match convert_line_noted(line, line_no, &self.opts, &mut notes, &mut out.records) {
            Ok(c) => {
                let ids_start = out.ids.len();
                if let RecordIdStyle::LineNumber { generation, input } = self.opts.record_id {
                    crate::batch_folder::push_line(
                        &mut out.ids,
                        input,
                        line_no,
                        generation,
                        c.custom_id.get(),
                    );
                }
                out.tally.note(notes);
                Item::Record {
                    line: line_no,
                    out: out_start..out.records.len(),
                    ids: ids_start..out.ids.len(),
                    custom_id: span(data, c.custom_id),
                    key: value_key(c.custom_id.get()),
                    model: c.model.map(|m| span(data, m)),
                }
            }
            Err(rejected) => Item::Reject {
                line: line_no,
                reject: explain(rejected.reject, line, terminated),
                custom_id: rejected.custom_id.map(|c| span(data, c)),
            },
        }
    }
}

/// A JSON reject worded for what the line ending says about it: carriage returns that do not
/// end CRLF endings (a file with CR-only endings reads as one line), or an input that ends
/// inside the line.
fn explain(reject: Reject, line: &[u8], terminated: bool) -> Reject {
    if reject.code != RejectCode::InvalidJson {
        reject
    } else if line.contains(&b'\r') {
        stray_carriage_returns(line, reject)
    } else if !terminated {
        Reject::new(
            RejectCode::TruncatedLine,
            format!("the input ends inside this line (no newline at the end) and it is not complete JSON: {}", reject.message),
        )
    } else {
        reject
    }
}
