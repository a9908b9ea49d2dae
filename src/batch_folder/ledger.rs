//! The `ids/` ledger: for each record of a shard, in record order, its `recordId` and the
//! `custom_id` it stands for.
//!
//! One line per record: `recordId<TAB>custom_id`, the `custom_id` as the JSON string literal the
//! input held (escapes intact; a JSON string cannot hold a raw tab or newline, so the line is
//! unambiguous). The `recordId` is [`record::line_record_id`](crate::record::line_record_id).

use std::collections::HashMap;

use crate::record::RecordTag;

use super::FolderError;

/// Appends the ledger line of the record made from line `line_no` of input `input` (of a batch of
/// several) of the generation tagged `generation`, with `custom_id` (a JSON string literal).
pub fn push_line(
    out: &mut Vec<u8>,
    input: Option<u32>,
    line_no: u64,
    generation: RecordTag,
    custom_id: &str,
) {
    crate::record::write_line_record_id(out, input, line_no, generation);
    out.push(b'\t');
    out.extend_from_slice(custom_id.as_bytes());
    out.push(b'\n');
}

/// The ledger of a batch folder: each record's `recordId` and `custom_id`, in record order.
#[derive(Debug, Default)]
pub struct RecordLedger {
    index: HashMap<Box<str>, u32>,
    /// `(recordId, custom_id literal)` by index.
    records: Vec<(Box<str>, Box<str>)>,
    /// `(first index, job)` for each run of records of one job.
    jobs: Vec<(u32, u32)>,
}

impl RecordLedger {
    /// Adds the lines of one ledger file (`name` in messages) whose records belong to job `job`.
    pub fn add(&mut self, name: &str, text: &[u8], job: u32) -> Result<(), FolderError> {
        if self.jobs.last().is_none_or(|&(_, j)| j != job) {
            self.jobs.push((self.records.len() as u32, job));
        }
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let bad = |problem: &str| FolderError::Malformed {
                file: name.to_owned(),
                problem: format!("line {}: {problem}", i + 1),
            };
            let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
            let (record_id, custom_id) = line
                .split_once('\t')
                .ok_or_else(|| bad("not `recordId<TAB>custom_id`"))?;
            if !crate::record::scan::is_string_literal(custom_id) {
                return Err(bad("the custom_id is not a JSON string"));
            }
            let index = self.records.len() as u32;
            if self.index.insert(record_id.into(), index).is_some() {
                return Err(bad(&format!(
                    "recordId {record_id} appears twice in the ledger"
                )));
            }
            self.records.push((record_id.into(), custom_id.into()));
        }
        Ok(())
    }

    /// Records in the ledger.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the ledger is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The job of the record at `index`.
    pub fn job_of(&self, index: u32) -> u32 {
        let run = self.jobs.partition_point(|&(first, _)| first <= index);
        run.checked_sub(1).map_or(0, |r| self.jobs[r].1)
    }

    /// The index and `custom_id` literal of `record_id`.
    pub fn get(&self, record_id: &str) -> Option<(u32, &str)> {
        self.index
            .get(record_id)
            .map(|&i| (i, &*self.records[i as usize].1))
    }

    /// The `recordId` and `custom_id` literal of the record at `index`.
    pub fn record(&self, index: u32) -> (&str, &str) {
        let (r, c) = &self.records[index as usize];
        (r, c)
    }
}
