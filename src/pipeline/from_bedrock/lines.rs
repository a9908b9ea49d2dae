//! The from-Bedrock [`LineMap`]: each line of Bedrock's output read (its `modelOutput` in the
//! same pass), its recordId mapped back to its custom_id through the ledger, and the OpenAI
//! output or error line written into the block's buffers. Pure: which of a record's lines
//! stands (a success beats an error) is the commit stage's call.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use super::super::keys::{value_key, Key};
use super::super::lines::{stray_carriage_returns, Line, LineMap};
use crate::batch_folder::RecordLedger;
use crate::record::bedrock_output::{
    parse_output_line, write_invalid_output_line, write_openai_line, IdSeed, Outcome, OutputLine,
    ResponseOptions,
};
use crate::record::json::{decode_literal, text_value};
use crate::record::{Reject, RejectCode, BOM};

/// What became of one line of Bedrock's output.
#[derive(Debug)]
pub(super) enum Item {
    /// A line for a record: to the output file (`ok`) or the error file.
    Written {
        line: u64,
        ok: bool,
        range: Range<usize>,
        /// Ledger index, or the identity key of the recordId's value without a ledger.
        who: Key,
        outcome: Outcome,
    },
    Unknown {
        line: u64,
        record_id: String,
    },
    Bad {
        line: u64,
        reject: Reject,
    },
    Blank,
}

/// One block of Bedrock's output, mapped.
pub(super) struct Answers {
    /// Output-file lines, back to back.
    pub ok: Vec<u8>,
    /// Error-file lines, back to back.
    pub err: Vec<u8>,
    /// What became of each line.
    pub items: Vec<Item>,
}

/// The from-Bedrock [`LineMap`].
pub(super) struct OutputLines {
    pub ledger: Option<Arc<RecordLedger>>,
    pub response: ResponseOptions,
    /// The job's id seed (its salt, hashed once).
    pub ids: IdSeed,
}

impl OutputLines {
    /// Maps one line of Bedrock's output into `ok` or `err`, and says what became of it; a line
    /// holding several records separated by carriage returns (a file with CR-only line
    /// endings), each of them.
    fn answers(&self, line_no: u64, line: &[u8], out: &mut Answers) {
        let reject = match self.answer(line_no, line, out) {
            Ok(()) => return,
            Err(reject) => reject,
        };
        match cr_separated(line) {
            Some(records) => {
                for record in records {
                    if let Err(reject) = self.answer(line_no, record, out) {
                        self.unread(line_no, record, reject, out);
                    }
                }
            }
            None => self.unread(line_no, line, reject, out),
        }
    }

    /// Maps one record's line, or says why it cannot be read.
    fn answer(&self, line_no: u64, line: &[u8], out: &mut Answers) -> Result<(), Reject> {
        let parsed = parse_output_line(line, self.response.family)?;
        let item = self.write(line_no, Ok(parsed), &mut out.ok, &mut out.err);
        out.items.push(item);
        Ok(())
    }

    /// A record's line that cannot be read, reported under the recordId it begins with, if any.
    fn unread(&self, line_no: u64, line: &[u8], reject: Reject, out: &mut Answers) {
        // (Not when the recordId is what is broken: given twice, it names no one.)
        let owner = salvage_record_id(line).filter(|_| reject.code != RejectCode::InvalidCustomId);
        let item = self.broken(
            line_no,
            owner,
            stray_carriage_returns(line, reject),
            &mut out.err,
        );
        out.items.push(item);
    }

    /// A line that cannot be read: if it says whose it is, that record came back, broken (its
    /// error line says so, never "expired"); if not, the line alone is reported.
    fn broken(
        &self,
        line_no: u64,
        owner: Option<crate::record::Raw<'_>>,
        reject: Reject,
        err: &mut Vec<u8>,
    ) -> Item {
        match owner {
            Some(record_id) => self.write(line_no, Err((record_id, reject)), &mut Vec::new(), err),
            None => Item::Bad {
                line: line_no,
                reject,
            },
        }
    }

    /// Writes the line of the record a line is for: its answer, or why it has none.
    fn write(
        &self,
        line_no: u64,
        line: Result<OutputLine<'_>, (crate::record::Raw<'_>, Reject)>,
        ok: &mut Vec<u8>,
        err: &mut Vec<u8>,
    ) -> Item {
        let literal = match &line {
            Ok(p) => p.record_id.get(),
            Err((r, _)) => r.get(),
        };
        let value = text_value(literal);
        let (custom_id, who) = match &self.ledger {
            Some(ledger) => match ledger.get(&value) {
                Some((index, custom_id)) => (custom_id, Key::from(index)),
                None => {
                    return Item::Unknown {
                        line: line_no,
                        record_id: literal.to_owned(),
                    }
                }
            },
            None => (literal, value_key(literal)),
        };
        // Ids follow the recordId's value, so its spelling does not change them. A lone
        // surrogate counts as itself (its generalized UTF-8 bytes, which no text has): decoded
        // lossily, two recordIds that differ only there would share their ids.
        let canonical = if literal.contains('\\') {
            Cow::Owned([&b"\""[..], &decode_literal(literal), b"\""].concat())
        } else {
            Cow::Borrowed(literal.as_bytes())
        };
        let ids = self.ids.ids(&canonical);
        let (ok_start, err_start) = (ok.len(), err.len());
        let written = match line {
            Ok(parsed) => write_openai_line(parsed, custom_id, &ids, &self.response, ok, err),
            Err((_, reject)) => Err(reject),
        };
        match written {
            Ok(outcome @ Outcome::Succeeded(_)) => Item::Written {
                line: line_no,
                ok: true,
                range: ok_start..ok.len(),
                who,
                outcome,
            },
            Ok(outcome) => Item::Written {
                line: line_no,
                ok: false,
                range: err_start..err.len(),
                who,
                outcome,
            },
            Err(reject) => {
                // Bedrock answered, and the answer cannot be mapped: the record's error line
                // says so, never "expired".
                ok.truncate(ok_start);
                err.truncate(err_start);
                write_invalid_output_line(custom_id, &ids, &reject.message, err);
                Item::Written {
                    line: line_no,
                    ok: false,
                    range: err_start..err.len(),
                    who,
                    outcome: Outcome::Unmappable,
                }
            }
        }
    }
}

/// The records of a line that holds several one after another, separated by carriage returns
/// (a file with CR-only line endings reads as one line): cut at each run of blanks holding a CR
/// that is followed by a `{` (after a byte-order mark, if one leads the next record) and either
/// preceded by anything but the `:`, `[` or `,` a `{` can follow in JSON — a cut no JSON text
/// holds (a CR in one is whitespace between tokens) — or followed by `{"recordId"`, as Bedrock
/// begins its lines (so a record cut off after a `[` still ends where the next begins). One pass,
/// whatever the runs of blanks. `None` when there is no such cut.
fn cr_separated(line: &[u8]) -> Option<Vec<&[u8]>> {
    let mut records = Vec::new();
    let mut start = 0;
    // The last byte that is no blank, and whether a CR came among the blanks after it.
    let (mut last, mut cr) = (None::<usize>, false);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b.is_ascii_whitespace() {
            cr |= b == b'\r';
            i += 1;
            continue;
        }
        let brace = if line[i..].starts_with(BOM) {
            i + BOM.len()
        } else {
            i
        };
        if let (true, Some(end), Some(b'{')) = (cr, last, line.get(brace)) {
            let after = line[brace + 1..].trim_ascii_start();
            if !matches!(line[end], b':' | b'[' | b',') || after.starts_with(b"\"recordId\"") {
                records.push(line[start..=end].trim_ascii_start());
                start = i;
            }
        }
        cr = false;
        last = Some(i);
        i += 1;
    }
    if records.is_empty() {
        return None;
    }
    records.push(line[start..].trim_ascii());
    Some(records)
}

/// The recordId of a line that is not valid JSON, when it begins as Bedrock writes its lines:
/// `{"recordId":"…"` (any spacing, the key in any spelling). Read from the line's valid UTF-8
/// prefix, after a byte-order mark if it has one: a bad byte further on (in the echoed
/// `modelInput`, or the answer's text) breaks the line, not whose it is.
fn salvage_record_id(line: &[u8]) -> Option<crate::record::Raw<'_>> {
    let line = line.strip_prefix(BOM).unwrap_or(line);
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&line[..e.valid_up_to()]).ok()?,
    };
    crate::record::bedrock_output::leading_record_id(text)
}

impl LineMap for OutputLines {
    type Block = Answers;

    fn start(&self, input_len: usize, lines: usize) -> Answers {
        Answers {
            // Outputs are smaller than inputs: the echoed modelInput is not carried over. They
            // come to 0.49–0.53 of them: room for 5/8 spares most blocks a copy as it grows.
            ok: Vec::with_capacity(input_len / 8 * 5),
            err: Vec::new(),
            items: Vec::with_capacity(lines),
        }
    }

    fn line(&self, _data: &[u8], line_no: u64, line: Line<'_>, out: &mut Answers) {
        let item = match line {
            Line::Blank => Item::Blank,
            // Its head still says whose answer it is.
            Line::TooLong { mut reject, head } => {
                if cr_separated(head).is_some() {
                    // Records the framer could not part as it read them (a byte-order mark before
                    // one, or one cut off after a `:`, `[` or `,`): the ones after the first are not
                    // read. Say why, and what reads them.
                    reject.message.push_str(
                        "; it holds several records separated by carriage returns (CR-only line endings) that could not be told apart as they were read: convert the endings to \\n, or raise --max-line-bytes above the line's length",
                    );
                }
                self.broken(line_no, salvage_record_id(head), reject, &mut out.err)
            }
            Line::Text { bytes, .. } => return self.answers(line_no, bytes, out),
        };
        out.items.push(item);
    }

    fn blank_carriage_returns(&self, out: &mut Answers) {
        super::super::lines::blank_carriage_returns(&mut out.ok);
        super::super::lines::blank_carriage_returns(&mut out.err);
    }
}

#[cfg(test)]
mod tests {
    use super::cr_separated;

    /// `text` with a CR (and a blank) at every place JSON allows whitespace, between tokens.
    fn with_crs(text: &str) -> String {
        let mut out = String::new();
        let mut in_string = false;
        let mut escaped = false;
        for c in text.chars() {
            let between = !in_string && matches!(c, '{' | '}' | '[' | ']' | ':' | ',');
            if between {
                out.push_str("\r ");
            }
            out.push(c);
            if between {
                out.push_str(" \r");
            }
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                _ => {}
            }
        }
        out
    }

    /// A record holding CRs between all its tokens is one record, never cut; records one after
    /// another behind CRs are cut apart, whole and broken ones alike.
    #[test]
    fn records_are_cut_where_one_ends_and_the_next_begins() {
        let records = [
            r#"{"recordId":"a","modelInput":{"m":[{"x":"}\r{"},[],{}]},"modelOutput":{"k":[1,{"z":null}]}}"#,
            r#"{"recordId":"b","modelOutput":{"content":[{"text":"B"}],"stop_reason":"end_turn""#,
            r#"{"recordId":"c","modelOutput":[{"a":{}},{}]}"#,
        ];
        for record in records {
            let spaced = with_crs(record);
            assert!(
                serde_json::from_str::<serde_json::Value>(&spaced).is_ok()
                    || record.contains("\"b\"")
            );
            assert_eq!(cr_separated(spaced.as_bytes()), None, "{spaced:?}");
        }
        let joined = records.map(with_crs).join("\r");
        let cut = cr_separated(joined.as_bytes()).expect("cut");
        let cut: Vec<String> = cut
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert_eq!(cut, records.map(|r| with_crs(r).trim().to_owned()));
    }

    /// A record cut off right after a `[`, `:` or `,` still ends where the next begins (Bedrock
    /// begins each with its recordId), and a byte-order mark may lead the next record.
    #[test]
    fn records_are_cut_after_a_truncated_record_and_before_a_byte_order_mark() {
        let cut = |line: &str| -> Vec<String> {
            cr_separated(line.as_bytes())
                .unwrap_or_default()
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect()
        };
        for end in ["[", ":", ","] {
            let broken = format!(r#"{{"recordId":"b","modelOutput":{{"choices"{end}"#);
            let line = format!("{broken}\r{{ \"recordId\":\"c\"}}\r\n{{\"recordId\":\"d\"}}");
            assert_eq!(
                cut(&line),
                [
                    broken.as_str(),
                    r#"{ "recordId":"c"}"#,
                    r#"{"recordId":"d"}"#
                ]
            );
        }
        let line = "{\"recordId\":\"a\"}\r\u{feff}{\"recordId\":\"b\"}";
        assert_eq!(
            cut(line),
            ["{\"recordId\":\"a\"}", "\u{feff}{\"recordId\":\"b\"}"]
        );
        // Inside a record, `[` CR `{` is whitespace between tokens: no cut.
        assert!(cut("{\"a\":[\r{\"b\":1}]}").is_empty());
    }

    /// Long runs of blanks and CRs are read once: the pass is linear (a run of CRs once took
    /// time quadratic in its length).
    #[test]
    fn runs_of_carriage_returns_are_read_in_one_pass() {
        let line = format!("x{}{{\"recordId\":\"a\"}}", "\r ".repeat(500_000));
        let records = cr_separated(line.as_bytes()).expect("cut");
        assert_eq!(records.len(), 2);
        let line = format!(
            "{{\"recordId\":\"a\",\"modelOutput\":{}x}}",
            "\r".repeat(500_000)
        );
        assert_eq!(cr_separated(line.as_bytes()), None);
    }
}
