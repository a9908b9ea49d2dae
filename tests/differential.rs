//! Both directions held against a conforming JSON parser (serde_json, without a depth limit, on a
//! large stack) on generated lines: keys escaped (`"custom_\u0069d"`), nesting hundreds and
//! thousands deep, surrogate pairs and lone surrogates (in values, and as a member's name), numbers in every spelling, duplicate
//! keys, odd whitespace, and random byte edits that may break the JSON.
//!
//! - A line the parser refuses is rejected as `invalid_json` (or `invalid_utf8`); a line it
//!   accepts is never rejected as such.
//! - A line whose only oddities are spellings (escaped keys, deep nesting where nothing is read,
//!   numbers written another way, whitespace, surrogate pairs) is converted, and its record
//!   reads back with the same ids and text.
//! - On the way back, a valid output line with a string recordId is never unreadable: it maps to
//!   an output line, or its answer is reported as unmappable (an error line for that custom_id).
//!   And a file of such lines, with a byte-order mark and CRLF endings, has every line accounted
//!   for.

mod common;

use bedrock_batch::record::bedrock_output::{
    parse_output_line, write_openai_line, LineIds, Outcome, ResponseOptions,
};
use bedrock_batch::record::{convert_line, Family, LineOptions, RejectCode};
use proptest::prelude::*;
use serde_json::Value;

/// Runs `f` on a stack deep enough for a recursive parser at any depth this file generates.
fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Whether `line` is JSON, as a conforming parser reads it: the grammar of RFC 8259, which lets
/// a `\u` escape name half a surrogate pair (serde_json checks only the grammar when it skips
/// a value; building a `String` of it, it refuses one).
fn is_json(line: &[u8]) -> bool {
    // JSON text is UTF-8 (RFC 8259, 8.1), which serde_json does not check in a value it skips.
    if std::str::from_utf8(line).is_err() {
        return false;
    }
    let line = line.to_vec();
    on_big_stack(move || {
        let mut de = serde_json::Deserializer::from_slice(&line);
        de.disable_recursion_limit();
        <serde::de::IgnoredAny as serde::Deserialize>::deserialize(&mut de).is_ok()
            && de.end().is_ok()
    })
}

/// The value of `line`, when it is JSON of Unicode text (`None` for a lone surrogate too).
fn oracle(line: &[u8]) -> Option<Value> {
    let line = line.to_vec();
    on_big_stack(move || {
        let mut de = serde_json::Deserializer::from_slice(&line);
        de.disable_recursion_limit();
        let v = serde::Deserialize::deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(v)
    })
}

/// Drops a deep value without recursing (serde_json's Value drops recursively).
fn forget_deep(v: Value) {
    on_big_stack(move || drop(v));
}

/// A tiny deterministic random source for the generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[(self.next() % of.len() as u64) as usize]
    }

    fn chance(&mut self, in_n: u64) -> bool {
        self.next().is_multiple_of(in_n)
    }
}

/// Writes JSON text with the spellings the generator chose.
struct Writer<'r> {
    rng: &'r mut Rng,
    escape_keys: bool,
    spaces: bool,
}

impl Writer<'_> {
    fn key(&mut self, k: &str) -> String {
        let mut out = String::from("\"");
        for (i, c) in k.chars().enumerate() {
            if self.escape_keys && (i == 0 || self.rng.chance(3)) {
                out.push_str(&format!("\\u{:04X}", c as u32));
            } else {
                out.push(c);
            }
        }
        out.push('"');
        out
    }

    fn sep(&mut self) -> &'static str {
        // (No CR or LF: in a JSONL file they would end the line.)
        if self.spaces && self.rng.chance(2) {
            " \t "
        } else {
            ""
        }
    }

    fn object(&mut self, members: &[(&str, String)]) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let (a, b, c) = (self.sep(), self.key(k), self.sep());
            out.push_str(&format!("{a}{b}{c}:{}{v}", self.sep()));
        }
        out.push_str(self.sep());
        out.push('}');
        out
    }
}

/// A value nested `depth` deep (arrays and objects in turn).
fn deep(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 8);
    for i in 0..depth {
        s.push_str(if i % 2 == 0 { "[" } else { "{\"d\":" });
    }
    s.push_str("null");
    for i in (0..depth).rev() {
        s.push(if i % 2 == 0 { ']' } else { '}' });
    }
    s
}

/// One generated request line: (line, the custom_id's value, whether it must convert).
fn request_line(rng: &mut Rng, i: u64) -> (String, String, bool) {
    let mut benign = true;
    let (id_literal, id_value) = match rng.next() % 6 {
        0 => (format!("\"r\\u00e9q-{i}\""), format!("réq-{i}")),
        1 => (format!("\"req-\\ud83d\\ude00-{i}\""), format!("req-😀-{i}")),
        2 => {
            benign = false; // a lone surrogate: refused as a custom_id Bedrock cannot carry
            (format!("\"req-\\ud800-{i}\""), String::new())
        }
        _ => (format!("\"req-{i}\""), format!("req-{i}")),
    };
    let url = rng.pick(&["\"/v1/chat/completions\"", "\"\\/v1\\/chat\\/completions\""]);
    let model = rng.pick(&["\"gpt-4o\"", "\"gpt\\u002d4o\""]);
    let max = rng.pick(&["100", "1e2", "100.0", "1.00E+2", "1.5", "-3"]);
    benign &= !["1.5", "-3"].contains(&max);
    let temperature = rng.pick(&["0", "0e0", "-0", "0.70", "7e-1", "2", "-1"]);
    benign &= temperature != "-1";
    let text = rng.pick(&[
        "\"Hello \\\"world\\\"\\n\"",
        "\"caf\\u00e9 \\ud83d\\ude00\"",
        "\"tab\\there\"",
    ]);
    let depth = [0, 3, 130, 3000][(rng.next() % 4) as usize];
    let escape_keys = rng.chance(2);
    let spaces = rng.chance(3);
    let dup = rng.chance(8);
    benign &= !dup;
    let mut w = Writer {
        rng,
        escape_keys,
        spaces,
    };
    // The content as a string, or as an array of one text part (escaped keys, whitespace and
    // all), now and then with a duplicate member.
    let content = if w.rng.chance(3) {
        let mut part = vec![("type", "\"text\"".to_owned()), ("text", text.to_owned())];
        if w.rng.chance(8) {
            part.push(("type", "\"text\"".to_owned()));
            benign = false;
        }
        format!("[{}]", w.object(&part))
    } else {
        text.to_owned()
    };
    let message = w.object(&[("role", "\"user\"".into()), ("content", content)]);
    let mut body = vec![
        ("model", model.to_owned()),
        ("messages", format!("[{message}]")),
        ("max_tokens", max.to_owned()),
        ("temperature", temperature.to_owned()),
    ];
    if depth > 0 {
        body.push(("metadata", format!("{{\"x\":{}}}", deep(depth))));
    }
    if dup {
        body.push(("model", "\"gpt-4o\"".to_owned()));
    }
    let body = w.object(&body);
    let line = w.object(&[
        ("custom_id", id_literal),
        ("method", "\"POST\"".into()),
        ("url", url.into()),
        ("body", body),
    ]);
    (odd_name(rng, line), id_value, benign)
}

/// Sometimes adds a member whose name is half a surrogate pair: valid JSON (RFC 8259 allows the
/// escape), skipped by the converter, and not a string serde can hold.
fn odd_name(rng: &mut Rng, line: String) -> String {
    if rng.chance(4) {
        format!("{{\"\\ud800\":1,{}", &line[1..])
    } else {
        line
    }
}

/// A custom_id for line `i`: (its literal, its value), the value empty for a lone surrogate (which
/// is refused: Bedrock cannot carry it).
fn custom_id(rng: &mut Rng, i: u64) -> (String, String) {
    match rng.next() % 4 {
        0 => (format!("\"r\\u00e9q-{i}\""), format!("réq-{i}")),
        1 => (format!("\"req-\\ud800-{i}\""), String::new()),
        _ => (format!("\"req-{i}\""), format!("req-{i}")),
    }
}

/// One generated embeddings line: (line, the custom_id's value, the input's literal, whether it
/// must convert). Its oddities are the chat line's: escaped keys, deep nesting (in `user`, which
/// the converter skips), duplicate members, whitespace.
fn embedding_line(rng: &mut Rng, i: u64) -> (String, String, String, bool) {
    let (id_literal, id_value) = custom_id(rng, i);
    let mut benign = !id_value.is_empty();
    let text = rng.pick(&[
        "\"Hello \\\"world\\\"\\n\"",
        "\"caf\\u00e9 \\ud83d\\ude00\"",
        "\"tab\\there\"",
    ]);
    let input = if rng.chance(3) {
        format!("[{text}]")
    } else {
        text.to_owned()
    };
    let depth = [0, 3, 130, 3000][(rng.next() % 4) as usize];
    let escape_keys = rng.chance(2);
    let spaces = rng.chance(3);
    let dup = rng.chance(6);
    benign &= !dup;
    let mut w = Writer {
        rng,
        escape_keys,
        spaces,
    };
    let mut body = vec![
        ("input", input),
        ("model", "\"titan\"".to_owned()),
        ("dimensions", "512".to_owned()),
    ];
    if depth > 0 {
        body.push(("user", deep(depth)));
    }
    if dup {
        body.push(("input", "\"another\"".to_owned()));
    }
    let body = w.object(&body);
    let line = w.object(&[
        ("custom_id", id_literal),
        ("method", "\"POST\"".into()),
        ("url", "\"/v1/embeddings\"".into()),
        ("body", body),
    ]);
    (odd_name(rng, line), id_value, text.to_owned(), benign)
}

/// One generated `/v1/responses` or `/v1/completions` line, which the converter rewrites as a
/// chat body: (line, whether it is a Responses line, the custom_id's value, the user text's
/// literal, the instructions' literal, whether it must convert). The chat line's oddities, in the
/// body's own members and in the input items: escaped keys, deep nesting where nothing is read,
/// duplicate members (at either level), whitespace, numbers in other spellings.
fn rewritten_line(rng: &mut Rng, i: u64) -> (String, bool, String, String, String, bool) {
    let (id_literal, id_value) = custom_id(rng, i);
    let benign = !id_value.is_empty();
    let texts = [
        "\"Hello \\\"world\\\"\\n\"",
        "\"caf\\u00e9 \\ud83d\\ude00\"",
        "\"tab\\there\"",
    ];
    let text = rng.pick(&texts).to_owned();
    let instructions = rng.pick(&texts).to_owned();
    let responses = rng.chance(2);
    let max = rng.pick(&["100", "1e2", "100.0"]);
    let temperature = rng.pick(&["0", "-0", "0.70", "7e-1"]);
    let depth = [0, 3, 130, 3000][(rng.next() % 4) as usize];
    let escape_keys = rng.chance(2);
    let spaces = rng.chance(3);
    // 0: a duplicate in the input part, 1: in the body, 2: in the message item.
    let dup = rng.next() % 10;
    let mut duplicate = dup <= 2;
    let mut w = Writer {
        rng,
        escape_keys,
        spaces,
    };
    let mut body = vec![("model", "\"gpt-4o\"".to_owned())];
    if responses {
        body.push(("instructions", instructions.clone()));
        let mut part = vec![
            ("type", "\"input_text\"".to_owned()),
            ("text", text.clone()),
        ];
        if dup == 0 {
            part.push(("text", "\"another\"".to_owned()));
        }
        let part = w.object(&part);
        let role = if dup == 2 {
            vec![
                ("role", "\"user\"".to_owned()),
                ("role", "\"user\"".to_owned()),
            ]
        } else {
            vec![("role", "\"user\"".to_owned())]
        };
        let (string, message) = match w.rng.next() % 3 {
            0 => (true, String::new()),
            1 => (
                false,
                w.object(&[role, vec![("content", text.clone())]].concat()),
            ),
            _ => {
                let members = [
                    vec![("type", "\"message\"".to_owned())],
                    role,
                    vec![("content", format!("[{part}]"))],
                ];
                (false, w.object(&members.concat()))
            }
        };
        let input = if string {
            text.clone()
        } else if w.rng.chance(3) {
            // A tool call and its result after the message: other item kinds, read alike.
            let call = w.object(&[
                ("type", "\"function_call\"".into()),
                ("call_id", "\"c1\"".into()),
                ("name", "\"f\"".into()),
                ("arguments", "\"{}\"".into()),
            ]);
            let output = w.object(&[
                ("type", "\"function_call_output\"".into()),
                ("call_id", "\"c1\"".into()),
                ("output", text.clone()),
            ]);
            format!("[{message},{call},{output}]")
        } else {
            format!("[{message}]")
        };
        // (A duplicate in an item or part that is not in the line is none.)
        duplicate &= match dup {
            0 => input.contains("input_text"),
            2 => !string,
            _ => true,
        };
        body.push(("input", input));
        body.push(("max_output_tokens", max.to_owned()));
    } else {
        let prompt = if w.rng.chance(2) {
            format!("[{text}]")
        } else {
            text.clone()
        };
        body.push(("prompt", prompt));
        body.push(("max_tokens", max.to_owned()));
        duplicate &= dup == 1;
    }
    body.push(("temperature", temperature.to_owned()));
    if depth > 0 {
        let ignored = if responses { "metadata" } else { "user" };
        body.push((ignored, deep(depth)));
    }
    if dup == 1 {
        body.push(("model", "\"gpt-4o\"".to_owned()));
    }
    let body = w.object(&body);
    let url = if responses {
        "\"/v1/responses\""
    } else {
        "\"\\/v1\\/completions\""
    };
    let line = w.object(&[
        ("custom_id", id_literal),
        ("method", "\"POST\"".into()),
        ("url", url.into()),
        ("body", body),
    ]);
    let benign = benign && !duplicate;
    (
        odd_name(rng, line),
        responses,
        id_value,
        text,
        instructions,
        benign,
    )
}

/// Applies random byte edits (which may or may not leave valid JSON).
fn mutate(line: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    const NOISE: &[u8] = b"{}[]\",:\\ 0-.eE\x01\x7fu\xc3";
    let mut bytes = line.as_bytes().to_vec();
    for &(at, op, b) in edits {
        let at = at % (bytes.len() + 1);
        let b = NOISE[b as usize % NOISE.len()];
        match op % 3 {
            0 if at < bytes.len() => bytes[at] = b,
            1 => bytes.insert(at, b),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    bytes
}

/// Holds a request line's fate to what a conforming parser says of it: not JSON, a syntax
/// reject; JSON (an object), never one, and a line that `must_convert` converts. Whether it
/// converted, for the caller to check the record.
fn agrees_on_syntax(
    bytes: &[u8],
    result: &Result<bedrock_batch::record::Converted<'_>, bedrock_batch::record::Rejected<'_>>,
    must_convert: bool,
) -> Result<bool, TestCaseError> {
    let json = is_json(bytes);
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let line = String::from_utf8_lossy(bytes);
    match (json, result) {
        (false, Ok(_)) => prop_assert!(false, "not JSON, yet converted: {line}"),
        (false, Err(r)) => prop_assert!(
            is_syntax(r.reject.code),
            "{:?} for invalid JSON: {line}",
            r.reject
        ),
        (true, Err(r)) => {
            prop_assert!(
                !(is_syntax(r.reject.code) && object),
                "valid JSON refused as {:?}: {line}",
                r.reject
            );
            prop_assert!(
                !must_convert,
                "a mere spelling refused: {:?}: {line}",
                r.reject
            );
        }
        (true, Ok(_)) => return Ok(true),
    }
    Ok(false)
}

/// Converts `line` after `edits` for `family` and holds its fate to a conforming parser (see
/// [`agrees_on_syntax`]); the unedited line converts exactly when it is `benign`. The record of
/// an unedited line, read back, its recordId checked against `id`, for the caller's checks.
fn record_of(
    line: &str,
    edits: &[(usize, u8, u8)],
    family: Family,
    id: &str,
    benign: bool,
) -> Result<Option<Value>, TestCaseError> {
    let bytes = mutate(line, edits);
    let mut out = Vec::new();
    let result = convert_line(&bytes, 1, &LineOptions::new(family), &mut out);
    if !agrees_on_syntax(&bytes, &result, benign && edits.is_empty())? {
        return Ok(None);
    }
    prop_assert!(is_json(&out), "the record is JSON");
    if !edits.is_empty() {
        return Ok(None);
    }
    prop_assert!(
        benign,
        "a duplicate member or a lone surrogate id taken: {line}"
    );
    let record = oracle(&out).expect("a record of Unicode text");
    prop_assert_eq!(record["recordId"].as_str(), Some(id));
    Ok(Some(record))
}

/// Where the object or array at `bytes[start]` ends, read a byte at a time by its structure
/// alone: a backslash escapes the byte after it, a quote not escaped opens or closes a string,
/// brackets outside strings nest and must match. `None` when there is none at `start`.
fn container_end_bytewise(bytes: &[u8], start: usize) -> Option<usize> {
    if !matches!(bytes.get(start), Some(b'{' | b'[')) {
        return None;
    }
    let mut owed = Vec::new();
    let (mut in_string, mut escaping) = (false, false);
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        let escaped = escaping;
        escaping = b == b'\\' && !escaped;
        if b == b'"' && !escaped {
            in_string = !in_string;
        } else if !in_string {
            match b {
                b'{' => owed.push(b'}'),
                b'[' => owed.push(b']'),
                b'}' | b']' => {
                    if owed.pop() != Some(b) {
                        return None;
                    }
                    if owed.is_empty() {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// `bytes` (an edited `line`) with its modelInput value put as `null`, when that makes it JSON.
/// Up to three edits move the value by as many bytes from where `line` has it.
fn model_input_nulled(line: &str, model_input: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let at = line
        .find(model_input)
        .expect("the line holds its modelInput");
    (at.saturating_sub(3)..=at + 3).find_map(|start| {
        let end = container_end_bytewise(bytes, start)?;
        let mut nulled = bytes[..start].to_vec();
        nulled.extend_from_slice(b"null");
        nulled.extend_from_slice(&bytes[end..]);
        is_json(&nulled).then_some(nulled)
    })
}

fn is_syntax(code: RejectCode) -> bool {
    matches!(code, RejectCode::InvalidJson | RejectCode::InvalidUtf8)
}

/// A Bedrock output line of `family` for record `rid` answering `text` (a literal), with an
/// echoed modelInput: (line, whether its answer must map, the modelInput as written).
fn output_line(rng: &mut Rng, family: Family, rid: &str, text: &str) -> (String, bool, String) {
    let escape_keys = rng.chance(2);
    let spaces = rng.chance(3);
    let depth = [0, 3, 200, 3000][(rng.next() % 4) as usize];
    let count = rng.pick(&["12", "12.0", "1.2e1", "0", "null"]);
    let mut w = Writer {
        rng,
        escape_keys,
        spaces,
    };
    let msg = w.object(&[("role", "\"user\"".into()), ("content", text.into())]);
    let mut input = vec![("messages", format!("[{msg}]"))];
    if depth > 0 {
        input.push(("tools", format!("[{{\"schema\":{}}}]", deep(depth))));
    }
    let model_input = w.object(&input);
    let model_output = match family {
        Family::Anthropic => {
            let block = w.object(&[("type", "\"text\"".into()), ("text", text.into())]);
            let usage = w.object(&[
                ("input_tokens", count.into()),
                ("output_tokens", count.into()),
            ]);
            w.object(&[
                ("id", "\"msg_1\"".into()),
                ("content", format!("[{block}]")),
                ("stop_reason", "\"end_turn\"".into()),
                ("stop_sequence", "null".into()),
                ("usage", usage),
            ])
        }
        Family::Nova | Family::Converse => {
            let block = w.object(&[("text", text.into())]);
            let message = w.object(&[
                ("role", "\"assistant\"".into()),
                ("content", format!("[{block}]")),
            ]);
            let output = w.object(&[("message", message)]);
            let usage = w.object(&[
                ("inputTokens", count.into()),
                ("outputTokens", count.into()),
            ]);
            w.object(&[
                ("output", output),
                ("stopReason", "\"end_turn\"".into()),
                ("usage", usage),
            ])
        }
        Family::Llama => w.object(&[
            ("generation", text.into()),
            ("prompt_token_count", count.into()),
            ("generation_token_count", count.into()),
            ("stop_reason", "\"stop\"".into()),
        ]),
        Family::MistralText => {
            let o = w.object(&[("text", text.into()), ("stop_reason", "\"stop\"".into())]);
            w.object(&[("outputs", format!("[{o}]"))])
        }
        _ => {
            let message = w.object(&[
                ("role", "\"assistant\"".into()),
                ("content", text.into()),
                ("tool_calls", "null".into()),
            ]);
            let choice = w.object(&[
                ("index", "0".into()),
                ("message", message),
                ("finish_reason", "\"stop\"".into()),
            ]);
            let usage = w.object(&[
                ("prompt_tokens", count.into()),
                ("completion_tokens", count.into()),
            ]);
            w.object(&[
                ("id", "\"c1\"".into()),
                ("choices", format!("[{choice}]")),
                ("usage", usage),
            ])
        }
    };
    let line = w.object(&[
        ("recordId", format!("\"{rid}\"")),
        ("modelInput", model_input.clone()),
        ("modelOutput", model_output),
    ]);
    (line, true, model_input)
}

const FAMILIES: [Family; 7] = [
    Family::Anthropic,
    Family::Nova,
    Family::Converse,
    Family::Llama,
    Family::MistralText,
    Family::MistralChat,
    Family::GptOss,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn requests_agree_with_a_conforming_parser(
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..3),
    ) {
        let mut rng = Rng(seed | 1);
        let (line, id, benign) = request_line(&mut rng, seed % 1000);
        let bytes = mutate(&line, &edits);
        let mut out = Vec::new();
        let result = convert_line(&bytes, 1, &LineOptions::new(Family::Anthropic), &mut out);
        if agrees_on_syntax(&bytes, &result, benign && edits.is_empty())? {
                prop_assert!(is_json(&out), "the record is JSON");
                if edits.is_empty() && benign {
                    let record = oracle(&out).expect("a record of Unicode text");
                    prop_assert_eq!(record["recordId"].as_str(), Some(id.as_str()));
                    // (Without the member named by half a surrogate pair, which a Value cannot hold.)
                    let want = oracle(line.replacen(r#""\ud800":1,"#, "", 1).as_bytes()).unwrap();
                    let content = &want["body"]["messages"][0]["content"];
                    let text = if content.is_array() { &content[0]["text"] } else { content };
                    prop_assert_eq!(
                        &record["modelInput"]["messages"][0]["content"][0]["text"],
                        text
                    );
                    forget_deep(want);
                    forget_deep(record);
                }
        }
    }

    #[test]
    fn responses_and_completions_requests_agree_with_a_conforming_parser(
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..3),
    ) {
        let mut rng = Rng(seed | 1);
        let (line, responses, id, text, instructions, benign) = rewritten_line(&mut rng, seed % 1000);
        if let Some(record) = record_of(&line, &edits, Family::Anthropic, &id, benign)? {
            let input = &record["modelInput"];
            let want: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&input["messages"][0]["content"][0]["text"], &want);
            if responses {
                let want: Value = serde_json::from_str(&instructions).unwrap();
                prop_assert_eq!(&input["system"][0]["text"], &want);
            }
            forget_deep(record);
        }
    }

    #[test]
    fn embedding_requests_agree_with_a_conforming_parser(
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..3),
    ) {
        let mut rng = Rng(seed | 1);
        let (line, id, text, benign) = embedding_line(&mut rng, seed % 1000);
        if let Some(record) = record_of(&line, &edits, Family::TitanEmbed, &id, benign)? {
            let want: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&record["modelInput"]["inputText"], &want);
            forget_deep(record);
        }
    }

    #[test]
    fn answers_agree_with_a_conforming_parser(
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..3),
    ) {
        let mut rng = Rng(seed | 1);
        let family = FAMILIES[(rng.next() % FAMILIES.len() as u64) as usize];
        let text = rng.pick(&["\"Hi \\\"there\\\"\\n\"", "\"caf\\u00e9 \\ud83d\\ude00\"", "\"lone \\udc00 half\""]);
        let (line, must_map, model_input) = output_line(&mut rng, family, "L0000000001", text);
        let bytes = mutate(&line, &edits);
        let json = is_json(&bytes);
        let opts = ResponseOptions { family, model: "\"gpt-4o\"".into(), created: 1, endpoint: family.endpoints()[0] };
        match (parse_output_line(&bytes, family), json) {
            // Not JSON, yet read (or refused for what it says) only when what breaks it lies
            // inside the echoed modelInput, which is passed over by its structure alone: the
            // line with that value put as `null` is JSON, and read the same.
            (Err(r), false) => {
                let nulled = model_input_nulled(&line, &model_input, &bytes);
                prop_assert!(
                    is_syntax(r.code)
                        || nulled.is_some_and(|n| parse_output_line(&n, family).err().map(|e| e.code) == Some(r.code)),
                    "{:?}: {}", r, String::from_utf8_lossy(&bytes)
                );
            }
            (Ok(read), false) => {
                let nulled = model_input_nulled(&line, &model_input, &bytes);
                prop_assert!(
                    nulled.is_some_and(|n| parse_output_line(&n, family).is_ok_and(|n| {
                        n.record_id.get() == read.record_id.get()
                            && n.model_output.map(|m| m.get()) == read.model_output.map(|m| m.get())
                    })),
                    "not JSON, yet read: {}", String::from_utf8_lossy(&bytes)
                );
            }
            (Err(r), true) => {
                // Valid JSON is unreadable only without a string recordId at the top.
                let has_id = oracle(&bytes).is_some_and(|v| {
                    let id = v["recordId"].is_string();
                    forget_deep(v);
                    id
                });
                prop_assert!(!(has_id && is_syntax(r.code)), "{:?}: {}", r, String::from_utf8_lossy(&bytes));
            }
            (Ok(read), true) => {
                let id = read.record_id.get().to_owned();
                let ids = LineIds::new("job", &id);
                let (mut ok, mut err) = (Vec::new(), Vec::new());
                match write_openai_line(read, "\"cid\"", &ids, &opts, &mut ok, &mut err) {
                    Ok(Outcome::Succeeded(_)) => {
                        prop_assert!(is_json(&ok), "the output line is JSON");
                        if edits.is_empty() && !text.contains("\\udc00") {
                            let out = oracle(&ok).expect("Unicode text");
                            prop_assert_eq!(&out["custom_id"], "cid");
                            let want: Value = serde_json::from_str(text).unwrap();
                            prop_assert_eq!(&out["response"]["body"]["choices"][0]["message"]["content"], &want);
                        }
                    }
                    Ok(other) => prop_assert!(false, "{other:?}"),
                    // Reported as an unmappable answer for this custom_id by the collection.
                    Err(r) => prop_assert!(!(must_map && edits.is_empty()), "{family}: {r:?}: {line}"),
                }
            }
        }
    }
}

/// A file of generated lines, with a byte-order mark and CRLF endings: every line is a record,
/// a reject or blank, the counts add up, and each line's fate is the one it has alone.
#[test]
fn a_file_of_generated_lines_accounts_for_every_line() {
    let mut rng = Rng(0x5eed);
    let mut file = bedrock_batch::record::BOM.to_vec();
    let mut fates = Vec::new();
    for i in 0..300 {
        let (line, _, _) = request_line(&mut rng, i);
        let bytes = if rng.chance(4) {
            mutate(
                &line,
                &[(rng.next() as usize, rng.next() as u8, rng.next() as u8)],
            )
        } else {
            line.into_bytes()
        };
        let mut out = Vec::new();
        let fate = convert_line(&bytes, 1, &LineOptions::new(Family::Anthropic), &mut out)
            .map(|c| c.custom_id.get().to_owned())
            .map_err(|r| r.reject.code);
        fates.push(fate);
        file.extend_from_slice(&bytes);
        file.extend_from_slice(if rng.chance(2) { b"\r\n" } else { b"\n" });
    }
    let mut opts = common::opts();
    opts.allow_small = true;
    let (records, rejects, report) = common::to_stream(&file, &opts);
    assert_eq!(report.lines, 300);
    assert_eq!(
        report.records + report.rejected + report.blank,
        report.lines
    );
    assert!(report.bom);
    // Duplicates of a custom_id are a file-level verdict; every other fate is the line's own.
    let alone_ok = fates.iter().filter(|f| f.is_ok()).count() as u64;
    let dup = report
        .rejects_by_code
        .get("duplicate_custom_id")
        .copied()
        .unwrap_or(0);
    assert_eq!(report.records + dup, alone_ok);
    assert_eq!(common::json_lines(&records).len() as u64, report.records);
    assert_eq!(common::json_lines(&rejects).len() as u64, report.rejected);
}

/// Found by an adversarial run: a line that is JSON, with a member named by half a surrogate pair,
/// that the careful path must read (a duplicate member sends it there) was refused as invalid
/// JSON. It is refused for what it asks, and a broken line is still invalid JSON.
#[test]
fn a_name_of_half_a_surrogate_pair_is_no_syntax_error() {
    for (family, line) in [
        (
            Family::TitanEmbed,
            r#"{"custom_id":"e3","method":"POST","url":"/v1/embeddings","body":{"input":"hi","model":"x","model":"y"},"\ud800":1}"#,
        ),
        (
            Family::Anthropic,
            r#"{"\uDC00":1,"custom_id":"c3","method":"POST","url":"/v1/chat/completions","body":{"model":"x","model":"y","messages":[{"role":"user","content":"hi"}]}}"#,
        ),
    ] {
        let mut out = Vec::new();
        let reject = convert_line(line.as_bytes(), 1, &LineOptions::new(family), &mut out)
            .expect_err("a duplicate member is refused")
            .reject;
        assert_eq!(reject.code, RejectCode::InvalidRequest, "{reject:?}");
        // The duplicate is named; or, where serde had to read the odd name, why it could not.
        assert!(
            reject.message.contains("duplicate") || reject.message.contains("surrogate"),
            "{reject:?}"
        );
        let broken = &line[..line.len() - 1];
        let reject = convert_line(broken.as_bytes(), 1, &LineOptions::new(family), &mut out)
            .expect_err("not JSON")
            .reject;
        assert_eq!(reject.code, RejectCode::InvalidJson, "{reject:?}");
    }
}

/// A lone surrogate in text that serde reads as text (a part's `type`) is refused as serde
/// refuses it, on every path and family, never read as other text.
#[test]
fn a_lone_surrogate_where_text_is_read_is_refused_as_serde_refuses_it() {
    for body in [
        r#"{"messages":[{"role":"user","content":[{"type":"te\ud800xt","text":"hi"}]}]}"#,
        r#"{"messages":[{"role":"system","content":[{"type":"te\ud800xt","text":"s"}]},{"role":"user","content":"hi"}]}"#,
    ] {
        let line = chat_line_with(body);
        for family in [
            Family::Anthropic,
            Family::MistralChat,
            Family::Nova,
            Family::Llama,
        ] {
            let reject = invalid_request(&line, family);
            assert!(reject.message.contains("escape"), "{family}: {reject:?}");
        }
    }
}

/// A chat completions line of custom_id `"a"` and this body.
fn chat_line_with(body: &str) -> String {
    format!(r#"{{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{body}}}"#)
}

/// Why `family` refuses `line`, which must be an invalid request of custom_id `"a"`.
fn invalid_request(line: &str, family: Family) -> bedrock_batch::record::Reject {
    let rejected = convert_line(
        line.as_bytes(),
        1,
        &LineOptions::new(family),
        &mut Vec::new(),
    )
    .expect_err("refused");
    let reject = rejected.reject;
    assert_eq!(
        reject.code,
        RejectCode::InvalidRequest,
        "{family}: {reject:?}"
    );
    assert_eq!(
        rejected.custom_id.map(|c| c.get()),
        Some(r#""a""#),
        "{family}"
    );
    reject
}

/// A message's `role` is read only to be compared with the roles a family knows: one holding a
/// lone surrogate is an unknown role where the role is read, and copied as written where the
/// messages are (gpt-oss, OpenAI chat). (serde's reading of the role is held to the same in
/// `openai`'s unit tests.)
#[test]
fn a_role_with_a_lone_surrogate_is_unknown_where_read_and_kept_where_copied() {
    for (body, role) in [
        (
            r#"{"model":"m","messages":[{"role":"us\udc00er","content":"hi"}]}"#,
            r#""us\udc00er""#,
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"hi"},{"content":"x","role":"\ud800"}]}"#,
            r#""\ud800""#,
        ),
    ] {
        let line = chat_line_with(body);
        for family in [
            Family::Anthropic,
            Family::MistralChat,
            Family::Nova,
            Family::Llama,
            Family::Converse,
        ] {
            let reject = invalid_request(&line, family);
            assert!(reject.message.contains("].role"), "{family}: {reject:?}");
        }
        for family in [Family::GptOss, Family::OpenAiChat] {
            let mut out = Vec::new();
            convert_line(line.as_bytes(), 1, &LineOptions::new(family), &mut out).expect("copied");
            let record = String::from_utf8(out).unwrap();
            assert!(
                record.contains(&format!(r#""role":{role}"#)),
                "{family}: {record}"
            );
        }
    }
}

/// The envelope is checked first, whatever the body holds: a line for another endpoint is refused
/// for its url, with its custom_id, though its body has a duplicate member and the line a member
/// named by half a surrogate pair.
#[test]
fn the_envelope_is_judged_before_the_body() {
    let line = r#"{"custom_id":"a","method":"POST","url":"/v1/responses","\ud800":0,"body":{"messages":[{"role":"user","content":"x"}],"foo":1,"foo":2}}"#;
    let mut opts = LineOptions::new(Family::Anthropic);
    opts.endpoint = Some(bedrock_batch::record::Endpoint::ChatCompletions);
    let rejected = convert_line(line.as_bytes(), 1, &opts, &mut Vec::new()).expect_err("refused");
    assert_eq!(rejected.reject.code, RejectCode::InvalidUrl, "{rejected:?}");
    assert_eq!(rejected.custom_id.map(|c| c.get()), Some(r#""a""#));
}

/// An object of 100,000 members is read in linear time (a duplicate check against every member
/// before would take minutes here), and a duplicate at its end is still found.
#[test]
fn an_object_of_many_members_is_read_and_its_duplicates_found() {
    let members: String = (0..100_000).map(|i| format!(r#","k{i}":1"#)).collect();
    let items = vec![r#"{"role":"user","content":"x"}"#; 100_000].join(",");
    for (url, body, refused_for) in [
        (
            "/v1/chat/completions",
            format!(r#"{{"model":"m"{members}}}"#),
            Some("messages"),
        ),
        (
            "/v1/responses",
            format!(r#"{{"input":"x"{members}}}"#),
            None,
        ),
        (
            "/v1/responses",
            format!(r#"{{"input":"x"{members},"k7":2}}"#),
            Some("duplicate member `k7`"),
        ),
        // As many input items as dropped members: each dropped name was once held against every
        // item's key paths.
        (
            "/v1/responses",
            format!(r#"{{"input":[{items}]{members}}}"#),
            None,
        ),
    ] {
        let line = format!(r#"{{"custom_id":"a","method":"POST","url":"{url}","body":{body}}}"#);
        let mut opts = LineOptions::new(Family::Anthropic);
        opts.map.drop_unsupported = true;
        let result = convert_line(line.as_bytes(), 1, &opts, &mut Vec::new());
        match (refused_for, result) {
            (Some(why), Err(r)) => assert!(r.reject.message.contains(why), "{url}: {r:?}"),
            (None, Ok(_)) => {}
            (_, result) => panic!("{url}: {:?}", result.map(drop)),
        }
    }
}
