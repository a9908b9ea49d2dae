//! Results per input: the output and error lines of a batch made of several inputs, split into
//! one output/error pair per input, in bounded memory whatever the number of inputs.
//!
//! The collection writes the combined files as usual and keeps a local copy of them
//! ([`Counted::with_copy`](crate::io::Counted::with_copy)). Each line goes to the input its `custom_id` came from (through the
//! ledger, whose recordIds name their input) in two passes over local files: first into at most
//! [`MAX_PARTS`] partition files of consecutive inputs, then one partition at a time, with
//! writers open only for that partition's inputs. Within an input, lines keep the combined
//! files' order.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};

use bytes::Bytes;

use super::super::Error;
use crate::batch_folder::{input_results_paths, InputResults, RecordLedger};
use crate::io::ObjectWriter;
use crate::record::parse_line_record_id;
use crate::record::scan::Scanner;

/// Partition files at most (descriptors open at once in the first pass).
const MAX_PARTS: usize = 256;
/// Inputs per partition at least: the writers open at once in the second pass.
const INPUTS_PER_PART: usize = 16;
/// Bytes an input's writer is given at a time.
const WRITE_SIZE: usize = 1 << 20;
/// Bytes held for a partition's writers at most: beyond, every writer is given what it holds.
const HELD_AT_MOST: usize = 32 << 20;

/// The input each `custom_id` literal of the ledger came from.
struct Owners<'a>(HashMap<&'a str, u32>);

impl<'a> Owners<'a> {
    fn of(ledger: &'a RecordLedger) -> Self {
        let mut map = HashMap::with_capacity(ledger.len());
        for i in 0..ledger.len() {
            let (record_id, custom_id) = ledger.record(i as u32);
            // A batch of one input has no index in its recordIds: everything is input 0.
            let input = parse_line_record_id(record_id)
                .and_then(|(input, _)| input)
                .unwrap_or(0);
            map.insert(custom_id, input);
        }
        Owners(map)
    }

    /// The input of a result line (as this crate writes them: the `custom_id` member holds the
    /// ledger's literal).
    fn of_line(&self, line: &[u8]) -> Option<u32> {
        let text = std::str::from_utf8(line).ok()?;
        let mut s = Scanner::new(text.trim_end());
        let mut found = None;
        s.object(|s, key| {
            let value = s.value()?;
            if key == "custom_id" {
                found = Some(value.get());
            }
            Ok(())
        })
        .ok()?;
        self.0.get(found?).copied()
    }
}

fn spool_error(e: io::Error) -> Error {
    Error::Write {
        what: "the results per input (a local temporary file)".to_owned(),
        source: e,
    }
}

/// Splits the combined results (`ok` and `err`, local copies from their start) into one
/// output/error pair per input of `inputs` (their names, in order), created by `create` at
/// [`input_results_paths`]. Returns the sealed writers (to be committed with the combined
/// results) and each input's pair and counts. On an error, every writer made is aborted.
pub(crate) async fn split_by_input<F, Fut>(
    ledger: &RecordLedger,
    inputs: &[String],
    ok: File,
    err: File,
    create: F,
) -> Result<(Vec<Box<dyn ObjectWriter>>, Vec<InputResults>), Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Box<dyn ObjectWriter>, Error>>,
{
    let n = inputs.len().max(1);
    let per_part = INPUTS_PER_PART.max(n.div_ceil(MAX_PARTS));
    let parts = partition(ledger, n, per_part, ok, err)?;
    let mut sealed: Vec<Box<dyn ObjectWriter>> = Vec::with_capacity(2 * n);
    let mut results = Vec::with_capacity(n);
    for (p, part) in parts.into_iter().enumerate() {
        let first = p * per_part;
        let count = per_part.min(n - first);
        let written = write_part(inputs, first, count, part, &create, &mut sealed).await;
        match written {
            Ok(mut r) => results.append(&mut r),
            Err(e) => {
                crate::io::abort_all(sealed).await;
                return Err(e);
            }
        }
    }
    Ok((sealed, results))
}

/// The first pass: each line of `ok` (kind 0) and `err` (kind 1) appended, with its input and
/// kind, to the partition file of its input.
fn partition(
    ledger: &RecordLedger,
    n: usize,
    per_part: usize,
    ok: File,
    err: File,
) -> Result<Vec<File>, Error> {
    let owners = Owners::of(ledger);
    let mut parts = Vec::with_capacity(n.div_ceil(per_part));
    for _ in 0..n.div_ceil(per_part) {
        let file = tempfile::tempfile().map_err(spool_error)?;
        parts.push(BufWriter::with_capacity(64 << 10, file));
    }
    for (kind, file) in [(0u8, ok), (1u8, err)] {
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(spool_error)? == 0 {
                break;
            }
            let input = owners.of_line(&line).filter(|&i| (i as usize) < n);
            let Some(input) = input else {
                return Err(spool_error(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a result line whose custom_id is not in the ledger",
                )));
            };
            let part = &mut parts[input as usize / per_part];
            let head = [
                input.to_le_bytes().as_slice(),
                &[kind],
                &(line.len() as u32).to_le_bytes(),
            ]
            .concat();
            part.write_all(&head).map_err(spool_error)?;
            part.write_all(&line).map_err(spool_error)?;
        }
    }
    parts
        .into_iter()
        .map(|p| {
            let mut file = p.into_inner().map_err(|e| spool_error(e.into_error()))?;
            io::Seek::rewind(&mut file).map_err(spool_error)?;
            Ok(file)
        })
        .collect()
}

/// The second pass over one partition: inputs `first..first + count`, each with its two
/// writers, written and sealed (pushed onto `sealed`, where a failure aborts them).
async fn write_part<F, Fut>(
    inputs: &[String],
    first: usize,
    count: usize,
    part: File,
    create: &F,
    sealed: &mut Vec<Box<dyn ObjectWriter>>,
) -> Result<Vec<InputResults>, Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Box<dyn ObjectWriter>, Error>>,
{
    let start = sealed.len();
    let mut results = Vec::with_capacity(count);
    for (i, name) in inputs.iter().enumerate().skip(first).take(count) {
        let (output, errors) = input_results_paths(i as u32, name);
        sealed.push(create(output.clone()).await?);
        sealed.push(create(errors.clone()).await?);
        results.push(InputResults {
            name: name.clone(),
            output,
            errors,
            succeeded: 0,
            errors_lines: 0,
        });
    }
    let mut pending: Vec<Vec<u8>> = vec![Vec::new(); 2 * count];
    let mut reader = BufReader::with_capacity(1 << 20, part);
    let mut head = [0u8; 9];
    let mut held = 0usize;
    loop {
        match reader.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(spool_error(e)),
        }
        let input = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let Some(input) = input.checked_sub(first).filter(|&i| i < count) else {
            return Err(spool_error(io::Error::new(
                io::ErrorKind::InvalidData,
                "a partition file holds a line of another partition",
            )));
        };
        let kind = usize::from(head[4]);
        if kind > 1 {
            return Err(spool_error(io::Error::new(
                io::ErrorKind::InvalidData,
                "a partition file is damaged",
            )));
        }
        let len = u32::from_le_bytes(head[5..].try_into().expect("4 bytes")) as usize;
        let slot = 2 * input + kind;
        let buf = &mut pending[slot];
        let at = buf.len();
        buf.resize(at + len, 0);
        reader.read_exact(&mut buf[at..]).map_err(spool_error)?;
        if kind == 0 {
            results[input].succeeded += 1;
        } else {
            results[input].errors_lines += 1;
        }
        held += len;
        if buf.len() >= WRITE_SIZE {
            held -= buf.len();
            let w = &mut sealed[start + slot];
            let bytes = Bytes::from(std::mem::take(buf));
            w.write(bytes).await.map_err(Error::write(w.name()))?;
        }
        if held > HELD_AT_MOST {
            // Many inputs, each holding a little: all of it goes out.
            for (slot, buf) in pending.iter_mut().enumerate() {
                if !buf.is_empty() {
                    let w = &mut sealed[start + slot];
                    let bytes = Bytes::from(std::mem::take(buf));
                    w.write(bytes).await.map_err(Error::write(w.name()))?;
                }
            }
            held = 0;
        }
    }
    for (slot, buf) in pending.into_iter().enumerate() {
        let w = &mut sealed[start + slot];
        if !buf.is_empty() {
            w.write(Bytes::from(buf))
                .await
                .map_err(Error::write(w.name()))?;
        }
        w.seal().await.map_err(Error::write(w.name()))?;
    }
    Ok(results)
}
