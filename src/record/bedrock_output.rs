//! Bedrock batch output lines → OpenAI batch output and error lines (formats.md A.3, B.2).
//!
//! A success line `{"recordId","modelInput","modelOutput"}` becomes an output line whose
//! `response.body` is the family's chat completion; an error line `{"recordId","modelInput",
//! "error":{"errorCode","errorMessage"}}` becomes an error-file line with the HTTP-like status and
//! an OpenAI error body. The echoed `modelInput`, often most of a line's bytes and never read, is
//! passed over by its structure alone (its strings closed, its brackets matched: see
//! [`super::skim`]), not judged by the grammar: a line whose echo alone breaks JSON's grammar —
//! an escape or a number Bedrock could not have written — still gives its answer.

use super::completion::{CompletionContext, Usage};
use super::json::{write_str, Kind, Obj, Raw};
use super::scan::{Fallback, Scanner};
use super::{Endpoint, Family, ParsedOutput, Reject, RejectCode};

/// The members of one Bedrock output line.
pub struct OutputLine<'a> {
    /// `recordId` (a string literal).
    pub record_id: Raw<'a>,
    /// `modelOutput`, on success.
    pub model_output: Option<Raw<'a>>,
    /// `error`, on failure.
    pub error: Option<Raw<'a>>,
    /// `modelOutput` already scanned by the family (in the same pass as the line).
    parsed: Option<ParsedOutput<'a>>,
    /// A member of `recordId`, `modelOutput` and `error` the line gives twice (`recordId` when it
    /// is one of them: the line then has no owner): which of the two holds is no reader's to
    /// guess.
    twice: Option<&'static str>,
}

/// Parses one Bedrock output line (UTF-8 checked here), scanning `modelOutput` as `family`'s
/// response in the same pass.
pub fn parse_output_line(line: &[u8], family: Family) -> Result<OutputLine<'_>, Reject> {
    let text = simdutf8::basic::from_utf8(line).map_err(|_| {
        let at = std::str::from_utf8(line)
            .err()
            .map_or(0, |e| e.valid_up_to())
            + 1;
        Reject::new(
            RejectCode::InvalidUtf8,
            format!("invalid UTF-8 at byte {at} of the line"),
        )
    })?;
    // First try: one pass, modelOutput picked apart as it is read. Anything unexpected in it sends
    // the line to the second try, which only delimits modelOutput and leaves the diagnosis to the
    // family's careful path.
    let line = match scan_envelope(text, Some(family)) {
        Ok(line) => line,
        Err(Fallback) => scan_envelope(text, None).map_err(|Fallback| {
            let message = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Err(e) => format!("invalid JSON: {e}"),
                Ok(_) => "not a JSON object with plain keys".to_owned(),
            };
            Reject::new(RejectCode::InvalidJson, message)
        })?,
    };
    if let Some(member) = line.twice {
        // A recordId given twice leaves the line no owner; the other two, no answer.
        let code = match member {
            "recordId" => RejectCode::InvalidCustomId,
            _ => RejectCode::InvalidJson,
        };
        return Err(Reject::new(code, format!("{member} is given twice")));
    }
    if Kind::of(line.record_id) != Kind::String {
        return Err(Reject::new(
            RejectCode::InvalidCustomId,
            "recordId is missing or not a string",
        ));
    }
    Ok(line)
}

/// The recordId a line begins with, read however broken the rest of the line is: `{`, then the
/// member `recordId` (its key in any spelling) with a string value, as Bedrock writes its lines.
/// `None` when the members readable before the break give `recordId` again: such a line names
/// no one.
pub(crate) fn leading_record_id(text: &str) -> Option<Raw<'_>> {
    let mut s = Scanner::new(text);
    let mut found = None;
    let mut again = false;
    // Read on until the line breaks (or ends), for a second recordId.
    let _ = s.object(|s, key| {
        if key == "recordId" {
            if found.is_some() {
                again = true;
                return Err(Fallback);
            }
            if !s.peek_is(b'"') {
                return Err(Fallback);
            }
            found = Some(s.value()?);
        } else if found.is_none() {
            return Err(Fallback); // not led by its recordId
        } else {
            s.value()?;
        }
        Ok(())
    });
    found.filter(|_| !again)
}

/// The members of a line's envelope that say whose answer it is and what it is.
const ENVELOPE: [&str; 3] = ["recordId", "modelOutput", "error"];

fn scan_envelope(text: &str, family: Option<Family>) -> Result<OutputLine<'_>, Fallback> {
    let mut s = Scanner::new(text);
    let mut line = OutputLine {
        record_id: Raw::validated("null"),
        model_output: None,
        error: None,
        parsed: None,
        twice: None,
    };
    let mut seen = [false; 3];
    s.object(|s, key| {
        if let Some(i) = ENVELOPE.iter().position(|m| *m == key) {
            if std::mem::replace(&mut seen[i], true) && (line.twice.is_none() || i == 0) {
                line.twice = Some(ENVELOPE[i]);
            }
        }
        match (&*key, family) {
            ("modelOutput", Some(f)) if s.peek_is(b'{') => {
                let (raw, parsed) = f.scan_output(s)?;
                line.model_output = Some(raw);
                line.parsed = Some(parsed);
            }
            // Bedrock's echo of the request: most of the line, and never read.
            ("modelInput", _) => s.pass_over()?,
            _ => {
                let v = s.value()?;
                match &*key {
                    "recordId" => line.record_id = v,
                    "modelOutput" => line.model_output = Some(v).filter(|m| m.get() != "null"),
                    "error" => line.error = Some(v).filter(|e| e.get() != "null"),
                    _ => {}
                }
            }
        }
        Ok(())
    })?;
    s.end()?;
    Ok(line)
}

/// The ids of one OpenAI output line: deterministic, so re-runs give identical files. Held in
/// place, not in `String`s: two allocations a line showed in profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIds {
    /// `batch_req_` and 32 hex digits.
    id: [u8; ID_PREFIX.len() + 32],
    /// `req_` and 32 hex digits.
    request_id: [u8; REQUEST_ID_PREFIX.len() + 32],
}

const ID_PREFIX: &[u8] = b"batch_req_";
const REQUEST_ID_PREFIX: &[u8] = b"req_";
/// The prefix of the id a chat completion gets when the model's answer names none.
const COMPLETION_ID_PREFIX: &[u8] = b"chatcmpl-";

/// FNV-1a, 64-bit: a hash whose values never change between builds (unlike std's).
pub(crate) fn fnv(seed: u64, parts: &[&[u8]]) -> u64 {
    parts.iter().fold(seed, |h, part| fnv_part(h, part))
}

/// [`fnv`] on from `h` over one part, and the part's end.
fn fnv_part(mut h: u64, part: &[u8]) -> u64 {
    for &b in part {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= 0xff;
    h.wrapping_mul(0x0000_0100_0000_01b3)
}

/// Where the ids of one job's lines start from: its name hashed once, not once a line (it is
/// most of the bytes hashed for a line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSeed([u64; 2]);

impl IdSeed {
    /// The seed of job `job`.
    pub fn new(job: &str) -> Self {
        IdSeed([
            fnv_part(0xcbf2_9ce4_8422_2325, job.as_bytes()),
            fnv_part(0x6c62_272e_07bb_0142, job.as_bytes()),
        ])
    }

    /// The ids for `record_id` (its literal, or the bytes standing for it).
    pub fn ids(&self, record_id: impl AsRef<[u8]>) -> LineIds {
        let record_id = record_id.as_ref();
        let (a, b) = (
            fnv_part(self.0[0], record_id),
            fnv_part(self.0[1], record_id),
        );
        LineIds {
            id: hex_id(ID_PREFIX, a, b),
            request_id: hex_id(REQUEST_ID_PREFIX, b, a),
        }
    }
}

impl LineIds {
    /// The ids for `record_id` (its literal, or the bytes standing for it) of job `job`; for
    /// many lines of one job, [`IdSeed::ids`].
    pub fn new(job: &str, record_id: impl AsRef<[u8]>) -> Self {
        IdSeed::new(job).ids(record_id)
    }

    /// `batch_req_…`: the output line's `id`.
    pub fn id(&self) -> &str {
        ascii(&self.id)
    }

    /// `req_…`: the response's `request_id`.
    pub fn request_id(&self) -> &str {
        ascii(&self.request_id)
    }

    /// `chatcmpl-` and the hex digits of [`LineIds::id`]: the id of a chat completion whose
    /// model named none.
    fn completion_id(&self) -> [u8; COMPLETION_ID_PREFIX.len() + 32] {
        let mut id = [0u8; COMPLETION_ID_PREFIX.len() + 32];
        id[..COMPLETION_ID_PREFIX.len()].copy_from_slice(COMPLETION_ID_PREFIX);
        id[COMPLETION_ID_PREFIX.len()..].copy_from_slice(&self.id[ID_PREFIX.len()..]);
        id
    }
}

/// An id made of ASCII prefixes and hex digits as text.
fn ascii(id: &[u8]) -> &str {
    std::str::from_utf8(id).expect("ids are ASCII")
}

/// Each byte's two lower-case hex digits.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

/// `prefix` and then `a` and `b` in 16 lower-case hex digits each: what `format!` with `{:016x}`
/// writes, without its machinery (twice an output line, it showed in profiles), two digits a
/// lookup.
fn hex_id<const N: usize>(prefix: &[u8], a: u64, b: u64) -> [u8; N] {
    let mut id = [0u8; N];
    let (head, digits) = id.split_at_mut(prefix.len());
    assert_eq!(
        digits.len(),
        32,
        "room for exactly 32 digits after the prefix"
    );
    head.copy_from_slice(prefix);
    let bytes = a.to_be_bytes().into_iter().chain(b.to_be_bytes());
    for (pair, byte) in digits.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    id
}

/// Everything the line writers need besides the line.
#[derive(Debug, Clone)]
pub struct ResponseOptions {
    /// The model family of the records.
    pub family: Family,
    /// The `model` reported in responses, as a JSON string literal.
    pub model: String,
    /// `created` of responses, Unix seconds.
    pub created: u64,
    /// The endpoint the requests were for: it decides the responses' shape.
    pub endpoint: Endpoint,
}

/// How a line came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written to the output file, with its usage.
    Succeeded(Usage),
    /// Written to the error file, with its status code.
    Failed(u16),
    /// Bedrock answered, but the answer could not be mapped: written to the error file as
    /// `invalid_model_output`.
    Unmappable,
}

/// The HTTP-like status for a Bedrock `errorCode` (a number, or an exception name).
pub fn error_status(code: Raw<'_>) -> u16 {
    // By value: `429`, `429.0` and `"429"` alike; a name however it is escaped.
    let text = match Kind::of(code) {
        Kind::String => super::json::text_value(code.get()),
        _ => std::borrow::Cow::Borrowed(code.get()),
    };
    let number = serde_json::from_str::<serde_json::Number>(text.trim()).is_ok();
    if let Some(n) = number
        .then(|| super::json::whole_number(text.trim()))
        .flatten()
    {
        // Only an error status is one: anything else (0, 200, 99999) is the service's failure.
        return u16::try_from(n)
            .ok()
            .filter(|n| (400..=599).contains(n))
            .unwrap_or(500);
    }
    match text.as_ref() {
        "ValidationException" => 400,
        "AccessDeniedException" => 403,
        "ResourceNotFoundException" => 404,
        "ModelTimeoutException" => 408,
        "ModelErrorException" => 424,
        "ThrottlingException" | "ServiceQuotaExceededException" => 429,
        "ServiceUnavailableException" | "ModelNotReadyException" => 503,
        _ => 500,
    }
}

/// The OpenAI error `type` for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        // 408 (model timeout) and 424 (model error) are the service's trouble, not the request's.
        400..=407 | 409..=423 | 425..=428 | 430..=499 => "invalid_request_error",
        429 => "rate_limit_exceeded",
        _ => "server_error",
    }
}

/// Writes the OpenAI line for a parsed Bedrock line: an output line into `ok`, or an error line
/// into `err`, with `custom_id` (a JSON string literal).
pub fn write_openai_line(
    mut line: OutputLine<'_>,
    custom_id: &str,
    ids: &LineIds,
    opts: &ResponseOptions,
    ok: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> Result<Outcome, Reject> {
    if line.error.is_some() && line.model_output.is_some() {
        // An answer and an error: whether the record succeeded is no reader's to guess (null
        // for either means it is absent).
        return Err(Reject::invalid(
            "the line gives both modelOutput and error: whether the request succeeded is not for this tool to guess",
        ));
    }
    if let Some(error) = line.error {
        #[derive(serde::Deserialize, Default)]
        struct BedrockError<'a> {
            #[serde(rename = "errorCode", borrow, default)]
            code: Option<Raw<'a>>,
            #[serde(rename = "errorMessage", borrow, default)]
            message: Option<Raw<'a>>,
        }
        let e: BedrockError<'_> = match Kind::of(error) {
            // An error said in words only.
            Kind::String => BedrockError {
                code: None,
                message: Some(error),
            },
            _ => super::json::parse(error, "error")?,
        };
        let status = e.code.map_or(500, error_status);
        let start = err.len();
        let mut o = Obj::open(err);
        o.string("id", ids.id());
        o.raw("custom_id", custom_id);
        {
            let mut r = Obj::open(o.key("response"));
            r.uint("status_code", status);
            r.string("request_id", ids.request_id());
            let mut b = Obj::open(r.key("body"));
            let mut eo = Obj::open(b.key("error"));
            match e.message.filter(|m| Kind::of(*m) == Kind::String) {
                Some(m) => eo.raw("message", m.get()),
                None => eo.string("message", "Bedrock reported an error without a message"),
            }
            eo.string("type", error_type(status));
            eo.raw("param", "null");
            match e.code {
                Some(c) if Kind::of(c) == Kind::String => eo.raw("code", c.get()),
                // A number by its value (`429.0` and `4.29e2` are "429"); one that is no whole
                // number as Bedrock spelled it.
                Some(c) => match super::json::whole_number(c.get().trim()) {
                    Some(n) => write_str(eo.key("code"), itoa::Buffer::new().format(n)),
                    None => write_str(eo.key("code"), c.get()),
                },
                None => eo.raw("code", "null"),
            }
            eo.close();
            b.close();
            r.close();
        }
        o.raw("error", "null");
        o.close();
        err.push(b'\n');
        debug_assert!(err.len() > start);
        return Ok(Outcome::Failed(status));
    }
    let Some(output) = line.model_output else {
        return Err(Reject::invalid(
            "the line has neither modelOutput nor error",
        ));
    };
    let start = ok.len();
    // The ids are a prefix and hex digits: literals as they are, nothing to escape.
    ok.extend_from_slice(b"{\"id\":\"");
    ok.extend_from_slice(&ids.id);
    ok.extend_from_slice(b"\",\"custom_id\":");
    ok.extend_from_slice(custom_id.as_bytes());
    ok.extend_from_slice(b",\"response\":{\"status_code\":200,\"request_id\":\"");
    ok.extend_from_slice(&ids.request_id);
    ok.extend_from_slice(b"\",\"body\":");
    let fallback_id = ids.completion_id();
    let ctx = CompletionContext {
        fallback_id: ascii(&fallback_id),
        model: &opts.model,
        created: opts.created,
        endpoint: opts.endpoint,
    };
    let written = match line.parsed.take() {
        Some(parsed) => parsed.write(&ctx, ok),
        None => opts.family.write_completion(output, &ctx, ok),
    };
    let usage = written.inspect_err(|_| ok.truncate(start))?;
    ok.extend_from_slice(b"},\"error\":null}\n");
    Ok(Outcome::Succeeded(usage))
}

/// Writes the error-file line for a record Bedrock answered with something that could not be
/// mapped to an OpenAI response (`message` names the key at fault): the record came back, so it
/// is neither missing nor expired.
pub fn write_invalid_output_line(custom_id: &str, ids: &LineIds, message: &str, err: &mut Vec<u8>) {
    write_missing_line(
        custom_id,
        ids,
        "invalid_model_output",
        &format!("Bedrock returned a result for this request that could not be read as a response: {message}"),
        err,
    );
}

/// Writes the error-file line for a record Bedrock never returned.
pub fn write_missing_line(
    custom_id: &str,
    ids: &LineIds,
    code: &str,
    message: &str,
    err: &mut Vec<u8>,
) {
    let mut o = Obj::open(err);
    o.string("id", ids.id());
    o.raw("custom_id", custom_id);
    o.raw("response", "null");
    let mut e = Obj::open(o.key("error"));
    e.string("code", code);
    e.string("message", message);
    e.close();
    o.close();
    err.push(b'\n');
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_ids_are_what_format_writes() {
        for (a, b) in [
            (0, 0),
            (1, u64::MAX),
            (0x0123_4567_89ab_cdef, 0xf0),
            (u64::MAX / 3, 7),
        ] {
            let id: [u8; 34] = hex_id(b"p_", a, b);
            assert_eq!(ascii(&id), format!("p_{a:016x}{b:016x}"));
        }
    }

    use super::*;
    use serde_json::{json, Value};

    fn opts() -> ResponseOptions {
        ResponseOptions {
            family: Family::Anthropic,
            model: "\"gpt-4o\"".into(),
            created: 9,
            endpoint: Endpoint::ChatCompletions,
        }
    }

    fn convert(line: &str) -> Result<(Option<Value>, Option<Value>, Outcome), Reject> {
        let parsed = parse_output_line(line.as_bytes(), Family::Anthropic)?;
        let (mut ok, mut err) = (Vec::new(), Vec::new());
        let ids = LineIds::new("job1", parsed.record_id.get());
        let outcome = write_openai_line(parsed, "\"cid\"", &ids, &opts(), &mut ok, &mut err)?;
        let parse = |b: &[u8]| (!b.is_empty()).then(|| serde_json::from_slice::<Value>(b).unwrap());
        Ok((parse(&ok), parse(&err), outcome))
    }

    #[test]
    fn a_success_line_becomes_an_output_line() {
        let line = json!({"recordId": "L1", "modelInput": {"messages": [{"role": "user", "content": "x\"y"}]},
            "modelOutput": {"id": "msg", "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 2}}});
        let (ok, err, outcome) = convert(&line.to_string()).unwrap();
        let ok = ok.unwrap();
        assert!(err.is_none());
        assert_eq!(ok["custom_id"], "cid");
        assert_eq!(ok["error"], Value::Null);
        assert_eq!(ok["response"]["status_code"], 200);
        assert!(ok["id"].as_str().unwrap().starts_with("batch_req_"));
        assert!(ok["response"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_"));
        assert_eq!(ok["response"]["body"]["model"], "gpt-4o");
        assert_eq!(
            ok["response"]["body"]["choices"][0]["message"]["content"],
            "hello"
        );
        assert_eq!(
            outcome,
            Outcome::Succeeded(Usage {
                prompt_tokens: 1,
                completion_tokens: 2,
                cached_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
                adjusted: false
            })
        );
    }

    #[test]
    fn error_lines_keep_status_message_and_code() {
        for (code, status, kind) in [
            (json!(400), 400, "invalid_request_error"),
            (json!(429), 429, "rate_limit_exceeded"),
            (json!(500), 500, "server_error"),
            (json!("ThrottlingException"), 429, "rate_limit_exceeded"),
            (json!("ValidationException"), 400, "invalid_request_error"),
            (json!("Weird"), 500, "server_error"),
        ] {
            let line = json!({"recordId": "L2", "modelInput": {}, "error": {"errorCode": code, "errorMessage": "bad \"thing\""}});
            let (ok, err, outcome) = convert(&line.to_string()).unwrap();
            assert!(ok.is_none());
            let err = err.unwrap();
            assert_eq!(outcome, Outcome::Failed(status));
            assert_eq!(err["response"]["status_code"], status);
            assert_eq!(err["response"]["body"]["error"]["message"], "bad \"thing\"");
            assert_eq!(err["response"]["body"]["error"]["type"], kind);
            assert_eq!(
                err["response"]["body"]["error"]["code"],
                code.as_str().map_or(code.to_string(), str::to_owned)
            );
            assert_eq!(err["custom_id"], "cid");
        }
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(
            convert("{\"recordId\":").unwrap_err().code,
            RejectCode::InvalidJson
        );
        assert_eq!(
            convert(r#"{"modelOutput":{}}"#).unwrap_err().code,
            RejectCode::InvalidCustomId
        );
        assert!(convert(r#"{"recordId":"a","modelInput":{}}"#)
            .unwrap_err()
            .message
            .contains("neither"));
        assert_eq!(
            leading_record_id(r#"{ "rec\u006frdId" : "L1", "modelOutput": {"content": [tr"#)
                .map(|r| r.get()),
            Some("\"L1\"")
        );
        assert_eq!(
            leading_record_id(r#"{"modelInput":{},"recordId":"L1""#),
            None
        );
        assert_eq!(leading_record_id(r#"{"recordId":7}"#), None);
        assert!(convert(r#"{"recordId":"a","modelOutput":{"content":7}}"#).is_err());
    }

    #[test]
    fn the_echoed_request_is_passed_over_by_its_structure() {
        let answer = r#""modelOutput":{"id":"msg","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}"#;
        let line = |input: &str| format!(r#"{{"recordId":"L1","modelInput":{input},{answer}}}"#);
        // What the grammar refuses but the structure holds: the answer is given.
        for input in [
            r#"{"m":"bad \x escape"}"#,
            "{\"m\":\"a raw \u{1} control\"}",
            r#"{"n":01.e}"#,
            r#"{"a" "b",,}"#,
            r#"[tru, nul]"#,
            r#"{"s":"a \\\" quote and brackets ]}[{ in a string"}"#,
        ] {
            let (ok, err, _) = convert(&line(input)).unwrap_or_else(|e| panic!("{input}: {e:?}"));
            let content = &ok.unwrap()["response"]["body"]["choices"][0]["message"]["content"];
            assert_eq!(content, "hi", "{input}");
            assert!(err.is_none());
        }
        // What breaks the structure is no line: its answer cannot be told from its echo.
        for input in [r#"{"m":[}"#, r#"{"m":"open}"#, r#"{"m":"\"}"#, r#"{"m":{}"#] {
            assert_eq!(
                convert(&line(input)).unwrap_err().code,
                RejectCode::InvalidJson,
                "{input}"
            );
        }
        // Deep, as an echoed tool schema may be.
        let deep = format!("{{\"t\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(convert(&line(&deep)).unwrap().0.is_some());
    }

    #[test]
    fn titans_embeddings_by_type_are_passed_over_by_their_structure() {
        let opts = ResponseOptions {
            family: Family::TitanEmbed,
            model: "\"text-embedding-3-small\"".into(),
            created: 9,
            endpoint: Endpoint::Embeddings,
        };
        let convert = |by_type: &str| {
            let line = format!(
                r#"{{"recordId":"L1","modelInput":{{"inputText":"hi"}},"modelOutput":{{"embedding":[0.5,-0.25],"embeddingsByType":{by_type},"inputTextTokenCount":3}}}}"#
            );
            let parsed = parse_output_line(line.as_bytes(), Family::TitanEmbed)?;
            let (mut ok, mut err) = (Vec::new(), Vec::new());
            let ids = LineIds::new("job1", parsed.record_id.get());
            write_openai_line(parsed, "\"cid\"", &ids, &opts, &mut ok, &mut err)?;
            Ok::<_, Reject>(serde_json::from_slice::<Value>(&ok).unwrap())
        };
        for by_type in [
            r#"{"float":[0.5,-0.25]}"#,
            r#"{"float":[0.5,-0.25],"binary":[1,0]}"#,
            // Broken only by the grammar: never read, so the embedding still comes back.
            r#"{"float":[0.5,-.25,01]}"#,
            r#"{"float":[0.5 -0.25]}"#,
        ] {
            let out = convert(by_type).unwrap_or_else(|e| panic!("{by_type}: {e:?}"));
            let data = &out["response"]["body"]["data"][0];
            assert_eq!(data["embedding"], json!([0.5, -0.25]), "{by_type}");
            assert_eq!(out["response"]["body"]["usage"]["prompt_tokens"], 3);
        }
        for broken in [r#"{"float":[0.5,-0.25}"#, r#"{"float":"[}"#] {
            assert_eq!(
                convert(broken).unwrap_err().code,
                RejectCode::InvalidJson,
                "{broken}"
            );
        }
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = LineIds::new("job", "\"L1\"");
        assert_eq!(a, LineIds::new("job", "\"L1\""));
        assert_eq!(a, IdSeed::new("job").ids("\"L1\""));
        // The values of the two-part FNV-1a chains the ids were always made of: files written
        // before keep their ids.
        let chain = |seed: u64| {
            b"job\xff\"L1\"\xff".iter().fold(seed, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        };
        let (h0, h1) = (chain(0xcbf2_9ce4_8422_2325), chain(0x6c62_272e_07bb_0142));
        assert_eq!(a.id(), format!("batch_req_{h0:016x}{h1:016x}"));
        assert_eq!(a.request_id(), format!("req_{h1:016x}{h0:016x}"));
        assert_ne!(a.id(), LineIds::new("job", "\"L2\"").id());
        assert_ne!(a.id(), LineIds::new("job2", "\"L1\"").id());
        assert_eq!(a.id.len(), "batch_req_".len() + 32);
    }
}
