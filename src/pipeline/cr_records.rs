//! Where the records of a file with CR-only line endings part, found as its chunks stream by.
//!
//! JSONL ends lines with `\n`; a file whose lines end in a lone `\r` reads as one line as long
//! as the file. `from-bedrock` must still read every record of it (each is a billed answer), at
//! any size: over the line limit, the one line would be dropped whole and its records reported
//! missing. So the framer turns each carriage return that ends a record into a newline before it
//! frames the bytes, with this state machine, which sees each chunk once and carries what a cut
//! needs across chunk boundaries.
//!
//! A cut is a run of blanks holding a CR and no LF, after a byte that can end a JSON value (not
//! `:`, `[`, `,` or the start of the input) and before a `{`: no JSON text holds that sequence
//! (a `{` begins a value, and a value only follows `:`, `[`, `,` or nothing), and a CR inside a
//! string is no raw byte but `\r`. So no valid line is ever cut. Cuts this misses (a byte-order
//! mark before the next record, a record cut off after a `:`) stay within one line, which
//! `from-bedrock` cuts when it reads it.

/// The state carried from one chunk to the next.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CrRecords {
    /// The last byte seen that is no blank (`None` before the first).
    last: Option<u8>,
    /// The run of blanks after it, as far as it has come.
    run: Run,
    /// Bytes seen so far.
    seen: u64,
}

/// The blanks after the last byte that is no blank.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Spaces and tabs only (or nothing).
    #[default]
    Plain,
    /// Its first CR is at this position of the input (counted from its start); no LF.
    Cr(u64),
    /// It holds a LF: the line has ended already.
    Lf,
}

/// The cuts found in one chunk.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Cuts {
    /// A CR of an earlier chunk ends a record: it is this many bytes before the chunk.
    pub before: Option<usize>,
    /// Positions in the chunk of CRs that end a record.
    pub within: Vec<usize>,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl CrRecords {
    /// The CRs that end records up to the end of `chunk`, the next bytes of the input. One
    /// search for `\r` when the chunk holds none and no run is open, as in any file with LF
    /// endings; a look at the bytes around each CR otherwise.
    pub(crate) fn cuts(&mut self, chunk: &[u8]) -> Cuts {
        let start = self.seen;
        let first_cr = memchr::memchr(b'\r', chunk);
        let mut cuts = Cuts::default();
        // The open run of blanks, and the byte that ends it.
        let mut at = 0;
        if self.run != Run::Plain {
            at = self.blanks(chunk, 0, start);
            if at == chunk.len() {
                self.seen += chunk.len() as u64;
                return cuts;
            }
            self.end_run(chunk[at], start, &mut cuts);
            at += 1;
        }
        // `at` follows a byte that is no blank: each CR after it opens a run, read to its end.
        let crs_after = |at: usize| match first_cr {
            Some(first) if first >= at => Some(first - at),
            Some(_) => memchr::memchr(b'\r', &chunk[at..]),
            None => None,
        };
        while let Some(i) = crs_after(at) {
            let cr = at + i;
            let mut first = cr;
            while first > at && is_blank(chunk[first - 1]) {
                first -= 1;
            }
            if first > at {
                self.last = Some(chunk[first - 1]);
            }
            self.run = Run::Plain;
            at = self.blanks(chunk, first, start);
            if at == chunk.len() {
                self.seen += chunk.len() as u64;
                return cuts;
            }
            self.end_run(chunk[at], start, &mut cuts);
            at += 1;
        }
        // No CR after `at`: only the last byte that is no blank, and a LF after it, matter.
        let tail = &chunk[at..];
        match tail.iter().rposition(|&b| !is_blank(b)) {
            Some(i) => {
                self.last = Some(tail[i]);
                self.run = if tail[i..].contains(&b'\n') {
                    Run::Lf
                } else {
                    Run::Plain
                };
            }
            None if tail.contains(&b'\n') => self.run = Run::Lf,
            None => {}
        }
        self.seen += chunk.len() as u64;
        cuts
    }

    /// When the input seen so far ends in a run of blanks that may yet end a record at its
    /// first CR (no LF in it, the byte after it still to come): how many bytes it has, from
    /// that CR on.
    pub(crate) fn open_run(&self) -> Option<u64> {
        match (self.run, self.last) {
            (Run::Cr(cr), Some(last)) if !matches!(last, b':' | b'[' | b',') => {
                Some(self.seen - cr)
            }
            _ => None,
        }
    }

    /// Reads the blanks of `chunk` from `from` into the open run; where they end.
    fn blanks(&mut self, chunk: &[u8], from: usize, start: u64) -> usize {
        let mut at = from;
        while let Some(&b) = chunk.get(at) {
            match b {
                b'\n' => self.run = Run::Lf,
                b'\r' if self.run == Run::Plain => self.run = Run::Cr(start + at as u64),
                b' ' | b'\t' | b'\r' => {}
                _ => break,
            }
            at += 1;
        }
        at
    }

    /// The run of blanks ends at `next`, a byte that is no blank: a cut when a CR in it parts
    /// two records.
    fn end_run(&mut self, next: u8, start: u64, cuts: &mut Cuts) {
        if let (Run::Cr(cr), Some(last), b'{') = (self.run, self.last, next) {
            if !matches!(last, b':' | b'[' | b',') {
                match cr.checked_sub(start) {
                    Some(within) => cuts.within.push(within as usize),
                    None => cuts.before = Some((start - cr) as usize),
                }
            }
        }
        self.last = Some(next);
        self.run = Run::Plain;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `input` with the cuts made, fed in pieces of `chunk` bytes.
    fn cut(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut state = CrRecords::default();
        let mut out: Vec<u8> = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            let cuts = state.cuts(piece);
            if let Some(back) = cuts.before {
                let at = out.len() - back;
                assert_eq!(out[at], b'\r');
                out[at] = b'\n';
            }
            let from = out.len();
            out.extend_from_slice(piece);
            for i in cuts.within {
                assert_eq!(out[from + i], b'\r');
                out[from + i] = b'\n';
            }
        }
        out
    }

    fn cut_whole(input: &str) -> String {
        String::from_utf8(cut(input.as_bytes(), input.len())).unwrap()
    }

    #[test]
    fn records_part_at_a_cr_between_a_value_and_a_brace() {
        for (input, want) in [
            ("{}\r{}\r{}\r", "{}\n{}\n{}\r"),
            ("{\"a\":1} \r\t{}", "{\"a\":1} \n\t{}"),
            // The first CR of a run is the one cut.
            ("{}\r\r {}", "{}\n\r {}"),
            // "1", "x", true and ] end values too.
            ("[1]\r{}", "[1]\n{}"),
            ("\"x\"\r{}", "\"x\"\n{}"),
            // CRLF endings and LF endings are lines already.
            ("{}\r\n{}\r\n", "{}\r\n{}\r\n"),
            ("{}\n\r{}", "{}\n\r{}"),
            ("{}\r\n\r{}", "{}\r\n\r{}"),
            // Whitespace in JSON: a `{` after `:`, `[` or `,`, or at the start.
            ("{\"a\":\r{}}", "{\"a\":\r{}}"),
            ("[\r{},\r{}]", "[\r{},\r{}]"),
            ("\r{}", "\r{}"),
            // No `{` after the run.
            ("{}\r[]", "{}\r[]"),
            ("{}\r\u{feff}{}", "{}\r\u{feff}{}"),
        ] {
            assert_eq!(cut_whole(input), want, "{input:?}");
            for chunk in 1..input.len() {
                assert_eq!(
                    cut(input.as_bytes(), chunk),
                    want.as_bytes(),
                    "{input:?} by {chunk}"
                );
            }
        }
    }

    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("1".to_owned()),
            Just("true".to_owned()),
            Just("\"s\\r{\"".to_owned()),
            Just("{}".to_owned()),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            // No LF: a record is one line of the file.
            let ws = "[ \t\r]{0,2}";
            prop_oneof![
                (prop::collection::vec((inner.clone(), ws, ws), 0..4)).prop_map(|items| {
                    let body: Vec<String> = items
                        .into_iter()
                        .map(|(v, a, b)| format!("{a}{v}{b}"))
                        .collect();
                    format!("[{}]", body.join(","))
                }),
                (prop::collection::vec((inner, ws, ws), 0..4)).prop_map(|items| {
                    let body: Vec<String> = items
                        .into_iter()
                        .enumerate()
                        .map(|(i, (v, a, b))| format!("\"k{i}\"{a}:{b}{v}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    proptest! {
        /// Objects parted by runs of blanks with a CR come out one a line, whatever their
        /// whitespace and whatever the chunking; a CR inside one is never cut.
        #[test]
        fn every_record_and_only_records(
            records in prop::collection::vec(json_value(), 1..6),
            seps in prop::collection::vec("[ \t]{0,2}\r[ \t\r]{0,2}", 6),
            chunk in 1usize..40,
        ) {
            let records: Vec<String> =
                records.into_iter().map(|v| format!("{{\"r\":{v}}}")).collect();
            let mut input = String::new();
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    input.push_str(&seps[i]);
                }
                input.push_str(r);
            }
            let out = String::from_utf8(cut(input.as_bytes(), chunk)).unwrap();
            let lines: Vec<&str> = out.split('\n').collect();
            prop_assert_eq!(lines.len(), records.len());
            for (line, record) in lines.iter().zip(&records) {
                let got: serde_json::Value = serde_json::from_str(line).unwrap();
                let want: serde_json::Value = serde_json::from_str(record).unwrap();
                prop_assert_eq!(got, want);
            }
        }
    }
}
