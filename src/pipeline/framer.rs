//! Cuts a stream of byte chunks into line-aligned blocks.
//!
//! Large chunks are framed without copying: a block is a slice of the chunk up to its last
//! newline, and only the partial line at its end is carried over (and copied) into the next
//! block. Small chunks (a pipe's 64 KiB reads) are gathered until a block is full.
//!
//! A line longer than the limit is never buffered whole: once the partial line outgrows the limit,
//! the framer drops its bytes until the next newline and reports it as [`Frame::Oversized`], so
//! memory stays bounded by the block size plus the line limit whatever the input holds.
//!
//! Framing Bedrock's output, it first turns each carriage return that ends a record of a file
//! with CR-only line endings into a newline ([`super::cr_records`]), so such a file is read a
//! record at a time, at any size.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::cr_records::CrRecords;
use super::newlines::Newlines;

/// A run of whole lines.
#[derive(Debug, Clone)]
pub struct Block {
    /// Position of the block in the stream, from 0.
    pub seq: u64,
    /// 1-based number of the first line in the block.
    pub first_line: u64,
    /// The lines; every line ends in `\n` except, at the end of the input, the last one when
    /// `unterminated` is set.
    pub data: Bytes,
    /// The last line has no newline: the input ended inside it.
    pub unterminated: bool,
    /// Where its lines end, and whether it holds a carriage return: found as the input is
    /// framed, on the reading task, so the workers search the bytes for neither.
    pub newlines: Newlines,
}

/// What the framer hands on.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Whole lines.
    Block(Block),
    /// A line longer than the limit, dropped unread but for its head.
    Oversized {
        /// Position in the stream (shared numbering with blocks).
        seq: u64,
        /// Its 1-based line number.
        line: u64,
        /// Its length in bytes, newline excluded.
        bytes: u64,
        /// Its first [`HEAD`] bytes (all of them if fewer): where a line says whose it is.
        head: Bytes,
    },
}

/// How much of a line over the limit is kept: the record id that Bedrock writes first on its
/// output lines is in it, so the answer on an over-long line is still known to be that record's.
pub const HEAD: usize = 64 << 10;

/// The framing state machine: [`push`](Framer::push) chunks in, [`finish`](Framer::finish) at
/// the end, and take frames out with [`next_frame`](Framer::next_frame).
#[derive(Debug)]
pub struct Framer {
    /// Bytes not yet framed: whole lines gathered from small chunks and the partial last line.
    pending: BytesMut,
    ready: VecDeque<Frame>,
    block_size: usize,
    max_line: usize,
    next_line: u64,
    next_seq: u64,
    /// Bytes of an oversized line dropped so far (`Some` while inside one).
    skipping: Option<u64>,
    /// The first [`HEAD`] bytes of the oversized line being dropped, as far as they came.
    head: BytesMut,
    /// Where records of CR-only line endings part, when the framer cuts them.
    cr_records: Option<CrRecords>,
}

impl Framer {
    /// A framer that makes blocks of about `block_size` bytes and treats lines over `max_line`
    /// bytes as oversized.
    pub fn new(block_size: usize, max_line: usize) -> Self {
        Framer {
            pending: BytesMut::new(),
            ready: VecDeque::new(),
            block_size: block_size.max(1),
            max_line: max_line.max(1),
            next_line: 1,
            next_seq: 0,
            skipping: None,
            head: BytesMut::new(),
            cr_records: None,
        }
    }

    /// This framer, ending a line at each carriage return that ends a record of CR-only line
    /// endings (see [`super::cr_records`]): Bedrock's output, where every record is an answer.
    pub fn cutting_cr_records(mut self) -> Self {
        self.cr_records = Some(CrRecords::default());
        self
    }

    /// Frames one more chunk of input.
    pub fn push(&mut self, chunk: Bytes) {
        let mut chunk = self.cut_cr_records(chunk);
        while !chunk.is_empty() {
            if let Some(skipped) = self.skipping {
                let newline = memchr::memchr(b'\n', &chunk);
                self.keep_head(&chunk[..newline.unwrap_or(chunk.len())]);
                match newline {
                    Some(i) => {
                        self.pending.clear();
                        self.oversized(skipped + i as u64);
                        chunk = chunk.slice(i + 1..);
                    }
                    None => {
                        self.skipping = Some(skipped + chunk.len() as u64);
                        self.hold_open_run(&chunk);
                        return;
                    }
                }
                continue;
            }
            let large = chunk.len() >= self.block_size / 2;
            if !large {
                self.pending.extend_from_slice(&chunk);
                if self.pending.len() >= self.block_size {
                    self.cut_pending();
                }
                self.check_partial();
                return;
            }
            if !self.pending.is_empty() {
                // Complete the carried partial line with the head of this chunk.
                match memchr::memchr(b'\n', &chunk) {
                    Some(i) if self.partial_len() + i > self.max_line => {
                        // Whole lines gathered from small chunks before it go on as they are.
                        self.cut_pending();
                        let partial = self.pending.split();
                        self.keep_head(&partial);
                        self.keep_head(&chunk[..i]);
                        self.oversized((partial.len() + i) as u64);
                        chunk = chunk.slice(i + 1..);
                        continue;
                    }
                    Some(i) => {
                        self.pending.extend_from_slice(&chunk[..=i]);
                        let data = self.pending.split().freeze();
                        self.block(data, false);
                        chunk = chunk.slice(i + 1..);
                        continue;
                    }
                    None => {
                        self.pending.extend_from_slice(&chunk);
                        self.check_partial();
                        return;
                    }
                }
            }
            // Zero-copy: the chunk's whole lines are the blocks, about `block_size` each.
            while chunk.len() > self.block_size + self.block_size / 2 {
                match memchr::memrchr(b'\n', &chunk[..self.block_size]) {
                    Some(i) => {
                        self.block(chunk.slice(..=i), false);
                        chunk = chunk.slice(i + 1..);
                    }
                    None => break,
                }
            }
            match memchr::memrchr(b'\n', &chunk) {
                Some(i) => {
                    self.block(chunk.slice(..=i), false);
                    self.pending.extend_from_slice(&chunk[i + 1..]);
                }
                None => self.pending.extend_from_slice(&chunk),
            }
            self.check_partial();
            return;
        }
    }

    /// Frames what is left at the end of the input.
    pub fn finish(&mut self) {
        if let Some(skipped) = self.skipping {
            self.oversized(skipped);
        } else if !self.pending.is_empty() {
            let data = self.pending.split().freeze();
            let unterminated = data.last() != Some(&b'\n');
            self.block(data, unterminated);
        }
    }

    /// The next frame, in stream order.
    pub fn next_frame(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// Lines framed so far.
    pub fn lines(&self) -> u64 {
        self.next_line - 1
    }

    /// `chunk`, each carriage return in it that ends a record turned into a newline (and one
    /// before it, carried in `pending`, or ending the line being skipped).
    fn cut_cr_records(&mut self, chunk: Bytes) -> Bytes {
        let Some(state) = self.cr_records.as_mut() else {
            return chunk;
        };
        let cuts = state.cuts(&chunk);
        if let Some(back) = cuts.before {
            // The CR came after the last newline: it is in the partial line, or in the bytes of
            // the oversized one being dropped.
            match self.skipping {
                Some(skipped) => {
                    let line = skipped.saturating_sub(back as u64);
                    self.head.truncate(self.head.len().min(line as usize));
                    self.oversized(line);
                    // The blanks after the CR, held, begin the next line.
                    match self.pending.len() == back {
                        true => self.pending.advance(1),
                        false => self.pending.clear(),
                    }
                }
                None => {
                    let at = self.pending.len().checked_sub(back);
                    match at.and_then(|at| self.pending.get_mut(at)) {
                        Some(cr @ b'\r') => *cr = b'\n',
                        _ => debug_assert!(false, "a carried CR {back} bytes back"),
                    }
                }
            }
        }
        if cuts.within.is_empty() {
            return chunk;
        }
        let mut copy = BytesMut::from(&chunk[..]);
        for i in cuts.within {
            copy[i] = b'\n';
        }
        copy.freeze()
    }

    /// While an oversized line is skipped, holds in `pending` the run of blanks open at its end
    /// from its first CR (when short): if the byte after the run ends the record there, those
    /// blanks begin the next line.
    fn hold_open_run(&mut self, chunk: &[u8]) {
        match self.cr_records.as_ref().and_then(CrRecords::open_run) {
            Some(run) if run <= HEAD as u64 => {
                let run = run as usize;
                if run <= chunk.len() {
                    self.pending.clear();
                    self.pending.extend_from_slice(&chunk[chunk.len() - run..]);
                } else {
                    // It began in a chunk before, whose part of it is held already.
                    self.pending.extend_from_slice(chunk);
                }
            }
            _ => self.pending.clear(),
        }
    }

    /// The length of the partial line at the end of `pending`.
    fn partial_len(&self) -> usize {
        self.pending.len() - memchr::memrchr(b'\n', &self.pending).map_or(0, |i| i + 1)
    }

    /// Emits the whole lines of `pending` as a block.
    fn cut_pending(&mut self) {
        if let Some(i) = memchr::memrchr(b'\n', &self.pending) {
            let data = self.pending.split_to(i + 1).freeze();
            self.block(data, false);
        }
    }

    /// Starts skipping when the partial line at the end of `pending` is over the limit.
    fn check_partial(&mut self) {
        // A run of blanks open at the end may yet end the line at its first CR (CR-only
        // endings): until the byte after it comes, neither the line's length nor its end is
        // known. A run of up to HEAD bytes is waited for, so memory stays bounded. A longer one
        // (blanks only, no input has it) is not held: if the line with it is over the limit, the
        // line is dropped as oversized even should the byte after the run end it at the CR (its
        // error then names a length within the limit), and the next line loses the blanks.
        let open = self.cr_records.as_ref().and_then(CrRecords::open_run);
        if open.is_some_and(|run| run <= HEAD as u64) {
            return;
        }
        if self.partial_len() > self.max_line {
            self.cut_pending();
            let line = self.pending.split();
            self.keep_head(&line);
            self.skipping = Some(line.len() as u64);
        }
    }

    fn block(&mut self, data: Bytes, unterminated: bool) {
        let newlines = Newlines::of(&data);
        let lines = newlines.count() as u64 + u64::from(unterminated);
        self.ready.push_back(Frame::Block(Block {
            seq: self.next_seq,
            first_line: self.next_line,
            data,
            unterminated,
            newlines,
        }));
        self.next_seq += 1;
        self.next_line += lines;
    }

    /// Keeps the start of `bytes`, the next bytes of an oversized line, while its head is
    /// shorter than [`HEAD`].
    fn keep_head(&mut self, bytes: &[u8]) {
        let room = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn oversized(&mut self, bytes: u64) {
        self.skipping = None;
        self.ready.push_back(Frame::Oversized {
            seq: self.next_seq,
            line: self.next_line,
            bytes,
            head: self.head.split().freeze(),
        });
        self.next_seq += 1;
        self.next_line += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in `chunk`-sized pieces and collects every frame.
    fn frame_all(input: &[u8], chunk: usize, block: usize, max_line: usize) -> Vec<Frame> {
        let sizes = std::iter::repeat(chunk.max(1));
        frame_with(Framer::new(block, max_line), input, sizes)
    }

    /// Feeds `input` to `f` in pieces of the `sizes` given in turn, and collects every frame.
    fn frame_with(
        mut f: Framer,
        input: &[u8],
        sizes: impl IntoIterator<Item = usize>,
    ) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut sizes = sizes.into_iter();
        let mut rest = input;
        while !rest.is_empty() {
            let (piece, after) = rest.split_at(sizes.next().unwrap_or(rest.len()).min(rest.len()));
            rest = after;
            f.push(Bytes::copy_from_slice(piece));
            while let Some(fr) = f.next_frame() {
                frames.push(fr);
            }
        }
        f.finish();
        while let Some(fr) = f.next_frame() {
            frames.push(fr);
        }
        frames
    }

    /// Lines as the pipeline sees them: a line over `max_line` that reached a block whole is
    /// rejected by the worker exactly as an [`Frame::Oversized`] one, so both read the same here.
    fn lines_of_limited(frames: &[Frame], max_line: usize) -> Vec<(u64, String)> {
        lines_of(frames)
            .into_iter()
            .map(|(n, l)| {
                if l.len() > max_line && !l.starts_with('<') {
                    (n, format!("<oversized {}>", l.len()))
                } else {
                    (n, l)
                }
            })
            .collect()
    }

    fn lines_of(frames: &[Frame]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for fr in frames {
            match fr {
                Frame::Block(b) => {
                    assert!(!b.data.is_empty());
                    // What the framer found of the block is what it holds (the workers do
                    // not look again).
                    assert_eq!(b.newlines.crs(), b.data.contains(&b'\r'));
                    let newlines = (0..b.data.len()).filter(|&i| b.data[i] == b'\n');
                    assert!(b.newlines.positions().eq(newlines));
                    let text = std::str::from_utf8(&b.data).unwrap();
                    let parts: Vec<&str> = text.split_inclusive('\n').collect();
                    if b.unterminated {
                        assert!(!parts.last().unwrap().ends_with('\n'));
                    } else {
                        assert!(text.ends_with('\n'));
                    }
                    for (i, p) in parts.into_iter().enumerate() {
                        out.push((b.first_line + i as u64, p.trim_end_matches('\n').to_owned()));
                    }
                }
                Frame::Oversized { line, bytes, .. } => {
                    out.push((*line, format!("<oversized {bytes}>")))
                }
            }
        }
        out
    }

    /// A long line completed by a large chunk is measured from its own start: the whole lines
    /// that small chunks gathered before it are not part of it (they were once dropped with it).
    #[test]
    fn lines_gathered_before_a_long_one_are_kept() {
        let long = "cc-a-line-over-the-limit-of-16-bytes";
        let input = format!("aaaa\nbbbb\n{long}\ndd\n");
        for first in 1..12 {
            let frames = frame_with(Framer::new(24, 16), input.as_bytes(), [first, 1 << 20]);
            let want = [
                (1, "aaaa".to_owned()),
                (2, "bbbb".to_owned()),
                (3, format!("<oversized {}>", long.len())),
                (4, "dd".to_owned()),
            ];
            assert_eq!(lines_of_limited(&frames, 16), want, "first chunk {first}");
        }
    }

    /// Bedrock's output with CR-only line endings: every record its own line, at any size of
    /// file and any chunking, with the line limit far below the file's size; a record over the
    /// limit is dropped alone.
    #[test]
    fn records_of_cr_only_endings_are_lines() {
        let record = |i: usize| format!(r#"{{"recordId":"r{i}","modelOutput":{{"t":"x\ry"}}}}"#);
        let mut records: Vec<String> = (0..40).map(record).collect();
        records[7] = format!(r#"{{"recordId":"r7","pad":"{}"}}"#, "p".repeat(300));
        let input = records.join("\r") + "\r";
        let want: Vec<(u64, String)> = records
            .iter()
            .enumerate()
            .map(|(i, r)| match r.len() > 200 {
                true => (i as u64 + 1, format!("<oversized {}>", r.len())),
                false => (i as u64 + 1, r.clone()),
            })
            .collect();
        for chunk in [1, 2, 7, 63, 100, 511, 4096, 1 << 20] {
            for block in [16, 256, 4096] {
                let f = Framer::new(block, 200).cutting_cr_records();
                let frames = frame_with(f, input.as_bytes(), std::iter::repeat(chunk));
                let got = lines_of_limited(&frames, 200);
                // A trailing CR is whitespace at the end of the last record, not a line.
                let got: Vec<_> = got
                    .into_iter()
                    .map(|(n, l)| (n, l.replace('\r', "")))
                    .collect();
                assert_eq!(got, want, "chunk {chunk} block {block}");
            }
        }
        // Without the option (a request file), the CRs are the line's whitespace.
        let frames = frame_all(input.as_bytes(), 64, 256, 1 << 20);
        assert_eq!(lines_of(&frames).len(), 1);
    }

    /// With CR-only endings, a chunk that ends inside the blanks after a record does not make
    /// the record over the limit, nor take the next record's leading blanks: every chunking
    /// frames the lines that the whole input, cut at once, holds.
    #[test]
    fn cr_records_framed_alike_whatever_the_chunking() {
        for input in [
            "{abc}\r{d}",
            "{abcdef}\r  {d}",
            "{abcdef}\r\r{d}\r",
            "\"\r   {",
            "{ab}\r \t\r {cd}\r\n{ef}\r[1]\r{g} \r{hijklmnop}\r{}",
            "{\"a\":\r{\"b\":[\r{}]}}\r \r{c}\r\r\r\r{}",
        ] {
            let mut whole = input.as_bytes().to_vec();
            let cuts = CrRecords::default().cuts(&whole);
            for i in cuts.within {
                whole[i] = b'\n';
            }
            for max_line in 1..12 {
                let want: Vec<(u64, String)> = String::from_utf8(whole.clone())
                    .unwrap()
                    .split('\n')
                    .enumerate()
                    .map(|(i, l)| match l.len() > max_line {
                        true => (i as u64 + 1, format!("<oversized {}>", l.len())),
                        false => (i as u64 + 1, l.to_owned()),
                    })
                    .collect();
                for chunk in 1..=input.len() {
                    for block in [2, 8, 64] {
                        let f = Framer::new(block, max_line).cutting_cr_records();
                        let frames = frame_with(f, input.as_bytes(), std::iter::repeat(chunk));
                        let at = format!("{input:?} max {max_line} chunk {chunk} block {block}");
                        assert_eq!(lines_of_limited(&frames, max_line), want, "{at}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_line_once_in_order_whatever_the_chunking() {
        let input = b"a\nbb\n\nccc\ndddd\ne";
        for chunk in 1..20 {
            for block in 1..12 {
                let got = lines_of(&frame_all(input, chunk, block, 100));
                let want: Vec<(u64, String)> = ["a", "bb", "", "ccc", "dddd", "e"]
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i as u64 + 1, s.to_string()))
                    .collect();
                assert_eq!(got, want, "chunk {chunk} block {block}");
            }
        }
    }

    /// An oversized line dropped by the framer keeps its first [`HEAD`] bytes (all of it when
    /// shorter), whatever the chunking: where it completes a carried partial line, where it
    /// outgrows the limit inside the pending bytes, and at the end of the input. (One that
    /// arrives whole in a large chunk stays in its block, all of it there to read.)
    #[test]
    fn oversized_lines_keep_their_head() {
        let long: Vec<u8> = (0..HEAD * 2 + 7).map(|i| b'a' + (i % 26) as u8).collect();
        let short = b"0123456789abcdef".to_vec();
        for (line, max_line) in [(&long, 1000), (&short, 5)] {
            let mut input = b"ok\n".to_vec();
            input.extend_from_slice(line);
            input.extend_from_slice(b"\nfine\n");
            input.extend_from_slice(line);
            for chunk in [1, 3, 64, 999, 4096, 70_000, 1 << 20] {
                for block in [16, 4096, 1 << 20] {
                    let mut heads: Vec<(u64, u64, Vec<u8>)> = Vec::new();
                    for f in frame_all(&input, chunk, block, max_line) {
                        match f {
                            Frame::Oversized {
                                line, bytes, head, ..
                            } => heads.push((line, bytes, head.to_vec())),
                            Frame::Block(b) => {
                                for (i, l) in b.data.split(|&c| c == b'\n').enumerate() {
                                    if l.len() > max_line {
                                        let head = l[..l.len().min(HEAD)].to_vec();
                                        heads.push((b.first_line + i as u64, l.len() as u64, head));
                                    }
                                }
                            }
                        }
                    }
                    let want = &line[..line.len().min(HEAD)];
                    let len = line.len() as u64;
                    let at = format!("chunk {chunk} block {block}");
                    assert_eq!(heads.len(), 2, "{at}");
                    assert_eq!((heads[0].0, heads[0].1), (2, len), "{at}");
                    assert_eq!((heads[1].0, heads[1].1), (4, len), "{at}");
                    assert!(heads.iter().all(|h| h.2 == want), "{at}");
                }
            }
        }
    }

    #[test]
    fn oversized_lines_are_dropped_and_numbered() {
        // A line that outgrows the limit before its newline arrives is dropped unbuffered.
        let frames = frame_all(b"ok\n0123456789\nfine\n", 2, 64, 5);
        assert!(frames.iter().any(|f| matches!(
            f,
            Frame::Oversized {
                line: 2,
                bytes: 10,
                ..
            }
        )));
        let input = b"ok\n0123456789\nfine\n0123456789";
        for chunk in 1..30 {
            for block in [1, 4, 8, 64] {
                let got = lines_of_limited(&frame_all(input, chunk, block, 5), 5);
                assert_eq!(
                    got,
                    vec![
                        (1, "ok".into()),
                        (2, "<oversized 10>".into()),
                        (3, "fine".into()),
                        (4, "<oversized 10>".into())
                    ],
                    "chunk {chunk} block {block}"
                );
            }
        }
    }

    #[test]
    fn large_chunks_are_framed_without_copying() {
        let chunk = Bytes::from_static(b"line one\nline two\npartial");
        let mut f = Framer::new(8, 100);
        f.push(chunk.clone());
        let Some(Frame::Block(b)) = f.next_frame() else {
            panic!("a block")
        };
        assert_eq!(
            b.data.as_ptr(),
            chunk.as_ptr(),
            "the block is a slice of the chunk"
        );
        assert_eq!(&b.data[..], b"line one\nline two\n");
    }

    #[test]
    fn one_huge_chunk_still_makes_many_blocks() {
        let mut input = Vec::new();
        for i in 0..1000 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let frames = frame_all(&input, input.len(), 100, 1000);
        assert!(frames.len() > 50, "{} blocks", frames.len());
        assert_eq!(lines_of(&frames).len(), 1000);
    }

    #[test]
    fn sequence_numbers_are_dense() {
        let frames = frame_all(b"a\n0123456789\nb\n", 3, 2, 4);
        let seqs: Vec<u64> = frames
            .iter()
            .map(|f| match f {
                Frame::Block(b) => b.seq,
                Frame::Oversized { seq, .. } => *seq,
            })
            .collect();
        assert_eq!(seqs, (0..frames.len() as u64).collect::<Vec<_>>());
    }
}
