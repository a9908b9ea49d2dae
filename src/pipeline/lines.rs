//! The per-block work of the to-Bedrock direction: every line of a block converted, in order,
//! into one records buffer, with an item per line saying what became of it.

use std::hash::{Hash, Hasher};
use std::ops::Range;

use crate::record::Raw;
use bytes::Bytes;

use super::framer::Block;
use super::ordered::BlockJob;
use crate::record::json::decode_literal;
use crate::record::{
    convert_line_noted, LineOptions, Notes, RecordIdStyle, Reject, RejectCode, BOM,
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
        /// A 64-bit hash of the unescaped `custom_id`, for duplicate detection.
        key: u64,
        /// The `body.model` literal, in the block's input, and a hash of it: the commit stage
        /// compares hashes, so it need not touch the input again.
        model: Option<(Range<usize>, u64)>,
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

/// Counters that lines add to on the way.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub dropped: Vec<String>,
    /// Settings clamped to the model's documented ranges, in how many requests.
    pub clamped: Vec<(&'static str, u64)>,
    pub crlf: u64,
    pub bom: bool,
}

/// One converted block.
#[derive(Debug)]
pub(crate) struct BlockOutput {
    pub input: Bytes,
    pub records: Bytes,
    pub ids: Bytes,
    pub items: Vec<Item>,
    pub tally: Tally,
}

/// The to-Bedrock [`BlockJob`]. A batch folder's records ([`RecordIdStyle::LineNumber`]) get
/// `ids/` ledger lines too.
pub(crate) struct LineJob {
    pub opts: LineOptions,
    pub max_line: usize,
}

fn span(data: &[u8], raw: Raw<'_>) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - data.as_ptr() as usize;
    start..start + raw.get().len()
}

/// The duplicate-detection key of a `custom_id` literal: a hash of its value, so that `"a"` and
/// `"\u0061"` are the same id and two different ids are two keys.
pub(crate) fn custom_id_key(raw: Raw<'_>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    decode_literal(raw.get()).hash(&mut h);
    h.finish()
}

/// A 64-bit hash of a string literal's value (FNV-1a: short inputs, stable, no setup), so that
/// two spellings of one model name are one model.
fn value_key(literal: &str) -> u64 {
    decode_literal(literal)
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

impl BlockJob for LineJob {
    type Output = BlockOutput;

    fn convert(&self, block: Block) -> BlockOutput {
        let data: &[u8] = &block.data;
        // Records are about as large as their input lines.
        let mut records = Vec::with_capacity(data.len() + data.len() / 8);
        let mut ids = Vec::new();
        let mut items = Vec::new();
        let mut tally = Tally::default();
        let mut notes = Notes::default();
        let mut line_no = block.first_line;
        let mut start = 0;
        while start < data.len() {
            let (end, next, terminated) = match memchr::memchr(b'\n', &data[start..]) {
                Some(i) => (start + i, start + i + 1, true),
                None => (data.len(), data.len(), !block.unterminated),
            };
            let mut line = &data[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
                tally.crlf += 1;
            }
            if line_no == 1 && line.starts_with(BOM) {
                line = &line[BOM.len()..];
                tally.bom = true;
            }
            let item = if line.iter().all(u8::is_ascii_whitespace) {
                Item::Blank
            } else if line.len() > self.max_line {
                too_long(line_no, line.len() as u64, self.max_line)
            } else {
                let out_start = records.len();
                match convert_line_noted(line, line_no, &self.opts, &mut notes, &mut records) {
                    Ok(c) => {
                        let ids_start = ids.len();
                        if let RecordIdStyle::LineNumber { generation } = self.opts.record_id {
                            crate::batch_folder::push_line(
                                &mut ids,
                                line_no,
                                generation,
                                c.custom_id.get(),
                            );
                        }
                        tally.dropped.append(&mut notes.dropped);
                        for setting in notes.clamped.drain(..) {
                            match tally.clamped.iter_mut().find(|(s, _)| *s == setting) {
                                Some((_, n)) => *n += 1,
                                None => tally.clamped.push((setting, 1)),
                            }
                        }
                        Item::Record {
                            line: line_no,
                            out: out_start..records.len(),
                            ids: ids_start..ids.len(),
                            custom_id: span(data, c.custom_id),
                            key: custom_id_key(c.custom_id),
                            model: c.model.map(|m| (span(data, m), value_key(m.get()))),
                        }
                    }
                    Err(rejected) => {
                        notes = Notes::default();
                        let mut reject = rejected.reject;
                        if reject.code == RejectCode::InvalidJson && line.contains(&b'\r') {
                            reject = Reject::new(
                                RejectCode::CrLineEndings,
                                format!("the line holds carriage returns (\\r) that do not end CRLF line endings: the file seems to use CR-only line endings, which JSONL does not allow (convert them to \\n); {}", reject.message),
                            );
                        } else if !terminated && reject.code == RejectCode::InvalidJson {
                            reject = Reject::new(
                                RejectCode::TruncatedLine,
                                format!("the input ends inside this line (no newline at the end) and it is not complete JSON: {}", reject.message),
                            );
                        }
                        Item::Reject {
                            line: line_no,
                            reject,
                            custom_id: rejected.custom_id.map(|c| span(data, c)),
                        }
                    }
                }
            };
            items.push(item);
            line_no += 1;
            start = next;
        }
        BlockOutput {
            input: block.data,
            records: Bytes::from(records),
            ids: Bytes::from(ids),
            items,
            tally,
        }
    }

    fn oversized(&self, line: u64, bytes: u64) -> BlockOutput {
        BlockOutput {
            input: Bytes::new(),
            records: Bytes::new(),
            ids: Bytes::new(),
            items: vec![too_long(line, bytes, self.max_line)],
            tally: Tally::default(),
        }
    }
}

fn too_long(line: u64, bytes: u64, max: usize) -> Item {
    Item::Reject {
        line,
        reject: Reject::new(
            RejectCode::LineTooLong,
            format!(
                "the line is {bytes} bytes, over the limit of {max} bytes (see --max-line-bytes)"
            ),
        ),
        custom_id: None,
    }
}
