//! The one line loop both directions run on each block: it cuts the block into lines, takes off
//! the newline, a CR before it (CRLF endings) and a byte-order mark at the start of the input,
//! tells blank lines and lines over the length limit apart, and hands every other line to the
//! direction's [`LineMap`]. Every line of the input reaches the plug-in exactly once, as one of
//! the three [`Line`] kinds, so each direction's accounting starts from the same count.

use std::sync::Arc;

use bytes::Bytes;

use super::framer::Block;
use super::ordered::BlockJob;
use crate::record::{Reject, RejectCode, BOM};

/// One line, as the loop hands it on.
pub(crate) enum Line<'a> {
    /// Whitespace only.
    Blank,
    /// Over the line-length limit: rejected unread (the reason says by how much). `head` is its
    /// start (at least the first [`HEAD`](super::framer::HEAD) bytes, or all of it), for who it
    /// says it is.
    TooLong { reject: Reject, head: &'a [u8] },
    /// A line to map: its bytes without line ending or BOM, and whether a newline ended it (the
    /// last line of an input may lack one).
    Text { bytes: &'a [u8], terminated: bool },
}

/// What the loop saw of the line endings.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Endings {
    /// Lines that ended in CRLF.
    pub crlf: u64,
    /// The input began with a byte-order mark.
    pub bom: bool,
}

/// What a direction makes of each line of a block. Pure: it runs on the worker pool, sees one
/// block, and keeps what it makes in its own per-block value.
pub(crate) trait LineMap: Send + Sync + 'static {
    /// What a block becomes (output buffers and one item per line).
    type Block: Send + 'static;
    /// An empty value for a block of `input_len` bytes in `lines` lines (its item vectors made
    /// with room for every line, so that they never grow, which copies them).
    fn start(&self, input_len: usize, lines: usize) -> Self::Block;
    /// Maps line `no` (1-based in its input), whose bytes lie in `data`, the block.
    fn line(&self, data: &[u8], no: u64, line: Line<'_>, block: &mut Self::Block);
    /// Turns every carriage return in the block's output lines into a space (with
    /// [`blank_carriage_returns`]). Called when the block's input holds one.
    fn blank_carriage_returns(&self, block: &mut Self::Block);
}

/// Turns every carriage return in `json` into a space. In JSON text a raw CR can only be
/// whitespace between tokens (inside a string it is written `\r`), so the text means the same;
/// but a value copied as the input spelled it would carry the CR into an output line, and
/// readers that also end lines at a CR (Python's text files) would cut the line there.
pub(crate) fn blank_carriage_returns(json: &mut [u8]) {
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'\r', &json[at..]) {
        json[at + i] = b' ';
        at += i + 1;
    }
}

/// One block, mapped.
pub(crate) struct Mapped<B> {
    /// The block's input bytes (the commit stage may quote from them).
    pub input: Bytes,
    /// What the direction made of it.
    pub out: B,
    /// What the loop saw of its line endings.
    pub endings: Endings,
}

/// The [`BlockJob`] running the line loop with a direction's [`LineMap`].
pub(crate) struct LineLoop<M> {
    map: M,
    max_line: usize,
    /// Where a user changes the limit, for the reason (`" (see --max-line-bytes)"`), or `""`.
    hint: &'static str,
}

impl<M: LineMap> LineLoop<M> {
    /// The loop for `map`, rejecting lines over `max_line` bytes.
    pub(crate) fn new(map: M, max_line: usize, hint: &'static str) -> Arc<Self> {
        Arc::new(LineLoop {
            map,
            max_line,
            hint,
        })
    }

    fn too_long<'a>(&self, bytes: u64, head: &'a [u8]) -> Line<'a> {
        Line::TooLong {
            reject: Reject::new(
                RejectCode::LineTooLong,
                format!(
                    "the line is {bytes} bytes, over the limit of {} bytes{}",
                    self.max_line, self.hint
                ),
            ),
            head,
        }
    }
}

impl<M: LineMap> BlockJob for LineLoop<M> {
    type Output = Mapped<M::Block>;

    fn convert(&self, block: Block) -> Self::Output {
        let data: &[u8] = &block.data;
        let lines = block.newlines.count() + usize::from(block.unterminated);
        let mut out = self.map.start(data.len(), lines);
        let mut endings = Endings::default();
        let mut no = block.first_line;
        let mut start = 0;
        // The framer found the newlines; a last line without one runs to the block's end.
        let mut newlines = block.newlines.positions();
        while start < data.len() {
            let (end, next, terminated) = match newlines.next() {
                Some(i) => (i, i + 1, true),
                None => (data.len(), data.len(), !block.unterminated),
            };
            let mut bytes = &data[start..end];
            if let [rest @ .., b'\r'] = bytes {
                bytes = rest;
                endings.crlf += 1;
            }
            if no == 1 && bytes.starts_with(BOM) {
                bytes = &bytes[BOM.len()..];
                endings.bom = true;
            }
            let line = if bytes.iter().all(u8::is_ascii_whitespace) {
                Line::Blank
            } else if bytes.len() > self.max_line {
                self.too_long(bytes.len() as u64, bytes)
            } else {
                Line::Text { bytes, terminated }
            };
            self.map.line(data, no, line, &mut out);
            no += 1;
            start = next;
        }
        // Rare (CRLF endings, CRs as whitespace): the outputs only need looking at when the
        // input has a CR.
        if block.newlines.crs() {
            self.map.blank_carriage_returns(&mut out);
        }
        Mapped {
            input: block.data,
            out,
            endings,
        }
    }

    fn oversized(&self, line: u64, bytes: u64, head: Bytes) -> Self::Output {
        let mut out = self.map.start(0, 1);
        let head = match head.starts_with(BOM) && line == 1 {
            true => head.slice(BOM.len()..),
            false => head,
        };
        // The head is the block's input: what the map takes from it, it finds there.
        self.map
            .line(&head, line, self.too_long(bytes, &head), &mut out);
        Mapped {
            input: head,
            out,
            endings: Endings::default(),
        }
    }
}

/// `reject` reworded when `line` holds carriage returns that do not end CRLF endings: a file
/// with CR-only endings reads as one long line, which is what a user needs to hear.
pub(crate) fn stray_carriage_returns(line: &[u8], reject: Reject) -> Reject {
    if memchr::memchr(b'\r', line).is_none() {
        return reject;
    }
    Reject::new(
        RejectCode::CrLineEndings,
        format!("the line holds carriage returns (\\r) that do not end CRLF line endings: the file seems to use CR-only line endings, which JSONL does not allow (convert them to \\n); {}", reject.message),
    )
}
