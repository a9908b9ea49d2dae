//! Models that take an OpenAI chat request as their InvokeModel body and answer with an OpenAI
//! `chat.completion`: OpenAI gpt-oss on Bedrock (formats.md A.5.7), and — as the `openai-chat`
//! family, chosen with `--family openai-chat` — open-weight models whose cards list the Chat
//! Completions API (the model table says which, and that their InvokeModel body is unverified).
//! Both ways are near pass-throughs.
//!
//! Request: `messages` (gpt-oss: text only, as documented; `openai-chat`: image parts too where
//! the model table says the model takes images), max tokens (gpt-oss: `max_completion_tokens`;
//! `openai-chat`: `max_tokens`, the name every OpenAI-compatible server reads), and
//! `temperature`, `top_p`, `stop`, `tools`, `tool_choice`, `parallel_tool_calls`,
//! `response_format`, `reasoning_effort` copied as they are; `model`, `stream` and the other
//! call-describing fields are left out (Bedrock refuses a `model` that differs from the job's,
//! and streaming).
//!
//! Response: the choice's message, with the reasoning a model puts in front of the text
//! (`<reasoning>…</reasoning>` for gpt-oss on InvokeModel, `<think>…</think>` for the open-weight
//! reasoning models) moved to `reasoning_content` (as a `reasoning` or `reasoning_content`
//! member is); `model` and `created` as for every family; usage as given.

use super::completion::OpenAiShaped;
use super::completion::{CompletionContext, Usage};
use super::conversation::{check_unsupported, refuse_fields, MsgPath};
use super::data_url;
use super::json::{as_text, elements, expect, parse, Kind, Obj};
use super::model_table::Media;
use super::openai::{ChatRequest, ContentPart, TOOL_AS_WRITTEN};
use super::response_body;
use super::scan::{repeated_key, repeated_key_in_elements_outside, repeated_key_outside};
use super::{MapOptions, Notes, Raw, Reject, RejectCode};

/// Which OpenAI-chat-bodied model a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAI gpt-oss, as AWS documents it.
    GptOss,
    /// An open-weight model whose InvokeModel body is taken to be OpenAI's chat request.
    OpenAiChat,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::GptOss => "gpt-oss",
            Dialect::OpenAiChat => "this model",
        }
    }
}

/// Writes the gpt-oss body for `req` into `out`.
pub fn write_body(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    write_body_as(Dialect::GptOss, req, opts, notes, out)
}

/// Writes the `openai-chat` body for `req` into `out`.
pub fn write_openai_chat_body(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    write_body_as(Dialect::OpenAiChat, req, opts, notes, out)
}

fn write_body_as(
    dialect: Dialect,
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    if req.messages.is_empty() {
        return Err(Reject::invalid("body.messages: empty"));
    }
    // Images go through where the model table says the model takes them (never for gpt-oss,
    // documented as text only).
    let images = dialect == Dialect::OpenAiChat && opts.limits.media.contains(&Media::Image);
    for (i, m) in req.messages.iter().enumerate() {
        if let Some(raw) = m.content.filter(|c| Kind::of(*c) == Kind::Array) {
            let parts: Vec<ContentPart<'_>> = parse(raw, MsgPath(i, ".content"))?;
            if let Some((j, p)) = parts
                .iter()
                .enumerate()
                .find(|(_, p)| match p.kind.as_ref() {
                    "text" | "refusal" => false,
                    "image_url" => !images,
                    _ => true,
                })
            {
                let takes = if images {
                    "text and images"
                } else {
                    "text only"
                };
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    format!(
                        "body.messages[{i}].content[{j}]: {} on Bedrock takes {takes}, found \"{}\"",
                        dialect.name(),
                        p.kind
                    ),
                ));
            }
            // An image goes as written, so it must be one the model can take: inline base64
            // (a batch job fetches no URL) of a format the models read.
            for (j, p) in parts.iter().enumerate() {
                let Some(image) = &p.image_url else { continue };
                let at = format!("body.messages[{i}].content[{j}].image_url.url");
                let url = as_text(image.url)
                    .ok_or_else(|| Reject::invalid(format!("{at}: expected a string")))?;
                match data_url::image(&url) {
                    Some(Ok(_)) => {}
                    Some(Err(why)) => return Err(Reject::invalid(format!("{at}: {why}"))),
                    None => {
                        return Err(Reject::invalid(format!(
                            "{at}: {} on Bedrock takes images as base64 data: URLs only (a batch job fetches no URL)",
                            dialect.name()
                        )))
                    }
                }
            }
        }
    }
    let limits = &opts.limits;
    let max = limits.max_tokens(req, opts.default_max_tokens, notes)?;
    refuse_fields(
        &[("top_k", req.top_k.is_some())],
        opts,
        notes,
        &format!("{} takes no top_k", dialect.name()),
    )?;
    let messages = message_array(req)?;
    let mut o = Obj::open(out);
    o.raw("messages", messages);
    let max_key = match dialect {
        Dialect::GptOss => "max_completion_tokens",
        Dialect::OpenAiChat => "max_tokens",
    };
    o.uint(max_key, max);
    if let Some(raw) = req.temperature {
        o.raw("temperature", &limits.temperature(raw, notes)?);
    }
    if let Some(raw) = req.top_p {
        o.raw("top_p", limits.top_p(raw)?);
    }
    if let Some(raw) = req.stop {
        limits.stop(raw, notes, o.key("stop"))?;
    }
    for (key, value, kind) in [
        ("tools", req.tools, Kind::Array),
        ("parallel_tool_calls", req.parallel_tool_calls, Kind::Bool),
        ("response_format", req.response_format, Kind::Object),
        ("reasoning_effort", req.reasoning_effort, Kind::String),
    ] {
        if let Some(raw) = value {
            let raw = expect(raw, kind, format_args!("body.{key}"))?;
            // The reader checked most lines' tools as it read them.
            if !(key == "tools" && req.tools_checked) {
                each_member_once_as_written(key, raw)?;
            }
            o.raw(key, raw.get());
        }
    }
    if let Some(raw) = req.tool_choice {
        if !matches!(Kind::of(raw), Kind::String | Kind::Object) {
            return Err(Reject::invalid(
                "body.tool_choice: expected a string or an object",
            ));
        }
        each_member_once_as_written("tool_choice", raw)?;
        o.raw("tool_choice", raw.get());
    }
    o.close();
    check_unsupported(req, opts, notes, dialect.name())
}

/// Refuses a member given twice in the body member `key`, copied as written, outside what OpenAI
/// takes as written too (a tool's `parameters`, a `json_schema`'s `schema`): the model would
/// get one of the two, and which one would be its parser's guess.
fn each_member_once_as_written(key: &str, raw: Raw<'_>) -> Result<(), Reject> {
    let twice = |text: &str, exempt: &[&str]| repeated_key_outside(text, exempt).ok().flatten();
    let found = match key {
        "tools" => repeated_key_in_elements_outside(raw.get(), &TOOL_AS_WRITTEN)
            .ok()
            .flatten()
            .map(|(i, k)| (format!("[{i}]"), k)),
        "response_format" => {
            twice(raw.get(), &["json_schema", "schema"]).map(|k| (String::new(), k))
        }
        _ => repeated_key(raw.get())
            .ok()
            .flatten()
            .map(|k| (String::new(), k)),
    };
    match found {
        Some((at, k)) => Err(Reject::invalid(format!(
            "body.{key}{at}: duplicate member `{k}`"
        ))),
        None => Ok(()),
    }
}

/// The request's `messages` array, exactly as written, once no member in it is given twice
/// (the model would get one of the two, and which one would be its parser's guess). The reader
/// has checked most lines' messages as it read them; the rest are walked here.
fn message_array<'a>(req: &ChatRequest<'a>) -> Result<&'a str, Reject> {
    let raw = req
        .messages_raw
        .ok_or_else(|| Reject::invalid("body.messages: missing"))?;
    if !req.messages_checked && repeated_key(raw.get()).ok().flatten().is_some() {
        for (i, message) in elements(raw, "body.messages")?.into_iter().enumerate() {
            if let Ok(Some(key)) = repeated_key(message.get()) {
                return Err(Reject::invalid(format!(
                    "body.messages[{i}]: duplicate member `{key}`"
                )));
            }
        }
    }
    Ok(raw.get())
}

/// The tags a model's reasoning is wrapped in, in front of its answer.
const TAGS: [(&str, &str); 2] = [("<reasoning>", "</reasoning>"), ("<think>", "</think>")];

/// Splits a content literal into the `<reasoning>…</reasoning>` (or `<think>…</think>`) in front
/// and the text after it; both halves are valid literals, cut between two characters of the
/// literal. Tags are found by what the literal means: `<\/think>` and `\u003cthink\u003e` are
/// tags as `</think>` and `<think>` are.
fn split_reasoning(content: &str) -> Option<(String, String)> {
    let inner = content.strip_prefix('"')?.strip_suffix('"')?;
    // A tag can only open the text: most answers are told apart by their first character.
    let (_, first) = literal_chars(inner).find(|c| !is_blank(c.1))?;
    if first != Some(b'<') {
        return None;
    }
    if escapes_ascii(inner) {
        split_chars(inner)
    } else {
        split_plain(inner)
    }
}

/// Whether `inner` (a literal's inside) writes an ASCII character other than with its own byte
/// or a one-letter escape: `\/`, or `\u00XX` below 0x80. Where it does not, the tags and blanks
/// are plain bytes, found by plain search (and no plain `<` or `/` is ever part of an escape).
fn escapes_ascii(inner: &str) -> bool {
    memchr::memmem::find(inner.as_bytes(), b"\\/").is_some()
        || memchr::memmem::find_iter(inner.as_bytes(), b"\\u00")
            .any(|at| matches!(inner.as_bytes().get(at + 4), Some(b'0'..=b'7')))
}

/// [`split_reasoning`] where tags and blanks are written as plain bytes and one-letter escapes.
fn split_plain(inner: &str) -> Option<(String, String)> {
    let inner = skip_blank(inner);
    let (rest, close) = TAGS
        .iter()
        .find_map(|(open, close)| Some((inner.strip_prefix(open)?, *close)))?;
    // An answer cut off while reasoning has no closing tag: all of it is reasoning.
    let Some(end) = rest.find(close) else {
        return Some((format!("\"{rest}\""), "\"\"".to_owned()));
    };
    let reasoning = &rest[..end];
    let mut text = &rest[end + close.len()..];
    loop {
        let t = text.trim_start_matches(' ');
        match t.strip_prefix("\\n") {
            Some(after) => text = after,
            None => {
                text = t;
                break;
            }
        }
    }
    Some((format!("\"{reasoning}\""), format!("\"{text}\"")))
}

/// The literal's text after leading blanks: spaces and tabs, and `\n`, `\r`, `\t` escapes.
fn skip_blank(mut text: &str) -> &str {
    loop {
        let t = text.trim_start_matches([' ', '\t']);
        match ["\\n", "\\r", "\\t"].iter().find_map(|e| t.strip_prefix(e)) {
            Some(after) => text = after,
            None => return t,
        }
    }
}

/// [`split_reasoning`] for any spelling: character by character, by what each stands for (in
/// one pass, holding no more than the offsets of the cuts).
fn split_chars(inner: &str) -> Option<(String, String)> {
    let mut chars = literal_chars(inner).peekable();
    let offset =
        |chars: &mut std::iter::Peekable<_>| chars.peek().map_or(inner.len(), |c: &(usize, _)| c.0);
    while chars.next_if(|c| is_blank(c.1)).is_some() {}
    let (open, close) = TAGS.iter().find(|(open, _)| spells(chars.clone(), open))?;
    chars.nth(open.len() - 1);
    let from = offset(&mut chars);
    loop {
        if chars.peek().is_none() {
            // An answer cut off while reasoning has no closing tag: all of it is reasoning.
            return Some((format!("\"{}\"", &inner[from..]), "\"\"".to_owned()));
        }
        if spells(chars.clone(), close) {
            break;
        }
        chars.next();
    }
    let end = offset(&mut chars);
    chars.nth(close.len() - 1);
    while chars
        .next_if(|c| matches!(c.1, Some(b' ' | b'\n')))
        .is_some()
    {}
    let text = offset(&mut chars);
    Some((
        format!("\"{}\"", &inner[from..end]),
        format!("\"{}\"", &inner[text..]),
    ))
}

/// Whether `chars` begin with the characters of `word`.
fn spells(chars: impl Iterator<Item = (usize, Option<u8>)>, word: &str) -> bool {
    let mut chars = chars.map(|c| c.1);
    word.bytes().all(|b| chars.next() == Some(Some(b)))
}

/// Whether a character of [`literal_chars`] is a blank a reasoning tag may follow.
fn is_blank(ascii: Option<u8>) -> bool {
    matches!(ascii, Some(b' ' | b'\t' | b'\n' | b'\r'))
}

/// The characters of a string literal's inside `inner` (escapes complete, as in any valid
/// literal): each one's offset, and the ASCII byte it stands for (`None` when it is none). A
/// surrogate pair is two characters standing for none.
fn literal_chars(inner: &str) -> impl Iterator<Item = (usize, Option<u8>)> + Clone + '_ {
    let bytes = inner.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = i;
        let ascii = match *bytes.get(i)? {
            b'\\' => {
                let escape = *bytes.get(i + 1)?;
                if escape == b'u' {
                    let unit = inner.get(i + 2..i + 6)?;
                    i += 6;
                    u8::from_str_radix(unit, 16).ok().filter(u8::is_ascii)
                } else {
                    i += 2;
                    Some(match escape {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        other => other,
                    })
                }
            }
            b if b.is_ascii() => {
                i += 1;
                Some(b)
            }
            _ => {
                i += inner[i..].chars().next()?.len_utf8();
                None
            }
        };
        Some((start, ascii))
    })
}

/// Writes the OpenAI `chat.completion` for a gpt-oss response, read by its scanner or by serde.
pub(crate) fn write_response(
    r: OpenAiShaped<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    // Reasoning in tags in front of a string content is split off into its own place, before
    // any the message gives apart.
    let split = r.content().and_then(|c| split_reasoning(c.get()));
    let mut choice = r.choice()?;
    if let Some((reasoning, text)) = &split {
        choice.texts.clear();
        if text != "\"\"" {
            choice.texts.push(Raw::validated(text));
        }
        choice.reasoning.insert(0, Raw::validated(reasoning));
    }
    let usage = r.usage();
    response_body::write(r.own_id(), &choice, usage.as_ref(), ctx, out);
    Ok(usage.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::{split_reasoning, TAGS};
    use crate::record::completion::CompletionContext;
    use crate::record::{Endpoint, Family, Raw};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// The body `family` writes for `answer` as a `endpoint` response.
    fn body(family: Family, answer: &str, endpoint: Endpoint) -> Result<Value, String> {
        let ctx = CompletionContext {
            fallback_id: "chatcmpl-ab",
            model: "\"m\"",
            created: 1,
            endpoint,
        };
        let mut out = Vec::new();
        family
            .write_completion(Raw::validated(answer), &ctx, &mut out)
            .map_err(|r| r.message)?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    /// A model's refusal is kept where OpenAI keeps it — the message's `refusal`, a `refusal`
    /// part of a Responses message, the only text of a legacy completion — never dropped, in
    /// every family whose answers are OpenAI-shaped; given as a string or as parts.
    #[test]
    fn a_refusal_is_kept_in_every_endpoint() {
        let given = [
            r#"{"choices":[{"message":{"content":null,"refusal":"I can\u0027t help."},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"message":{"content":[{"type":"refusal","refusal":"I can't help."}]},"finish_reason":"stop"}]}"#,
        ];
        for family in [Family::GptOss, Family::MistralChat, Family::OpenAiChat] {
            for answer in given {
                let chat = body(family, answer, Endpoint::ChatCompletions).unwrap();
                let message = &chat["choices"][0]["message"];
                assert_eq!(message["refusal"], "I can't help.", "{family}: {answer}");
                assert_eq!(message["content"], Value::Null, "{family}: {answer}");
                let response = body(family, answer, Endpoint::Responses).unwrap();
                assert_eq!(
                    response["output"][0]["content"],
                    json!([{"type": "refusal", "refusal": "I can't help."}]),
                    "{family}: {answer}"
                );
                let legacy = body(family, answer, Endpoint::Completions).unwrap();
                assert_eq!(legacy["choices"][0]["text"], "I can't help.");
            }
            // Beside text, the legacy completion's text holds both, the refusal after.
            let both = r#"{"choices":[{"message":{"content":[{"type":"text","text":"Part. "},{"type":"refusal","refusal":"No more."}]}}]}"#;
            let legacy = body(family, both, Endpoint::Completions).unwrap();
            assert_eq!(legacy["choices"][0]["text"], "Part. No more.", "{family}");
            let chat = body(family, both, Endpoint::ChatCompletions).unwrap();
            assert_eq!(chat["choices"][0]["message"]["content"], "Part. ");
            assert_eq!(chat["choices"][0]["message"]["refusal"], "No more.");
            // No refusal: null, as OpenAI writes it.
            let plain = r#"{"choices":[{"message":{"content":"hi","refusal":null}}]}"#;
            let chat = body(family, plain, Endpoint::ChatCompletions).unwrap();
            assert_eq!(chat["choices"][0]["message"]["refusal"], Value::Null);
            assert_eq!(chat["choices"][0]["message"]["content"], "hi");
            // A refusal of another kind is refused, naming it, not dropped.
            let odd = r#"{"choices":[{"message":{"content":"hi","refusal":7}}]}"#;
            let e = body(family, odd, Endpoint::ChatCompletions).unwrap_err();
            assert!(e.contains("message.refusal"), "{family}: {e}");
        }
    }

    /// Reasoning tokens counted apart are kept: `completion_tokens_details` in a chat
    /// completion, `output_tokens_details` in a response; none is written where none is given.
    #[test]
    fn reasoning_tokens_are_kept_where_the_model_counts_them() {
        let answer = r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":9,"completion_tokens_details":{"reasoning_tokens":7}}}"#;
        for family in [Family::GptOss, Family::OpenAiChat, Family::MistralChat] {
            let chat = body(family, answer, Endpoint::ChatCompletions).unwrap();
            assert_eq!(
                chat["usage"]["completion_tokens_details"]["reasoning_tokens"],
                7
            );
            assert_eq!(chat["usage"]["completion_tokens"], 9);
            let response = body(family, answer, Endpoint::Responses).unwrap();
            assert_eq!(
                response["usage"]["output_tokens_details"]["reasoning_tokens"],
                7
            );
            let plain =
                answer.replace(r#","completion_tokens_details":{"reasoning_tokens":7}"#, "");
            let chat = body(family, &plain, Endpoint::ChatCompletions).unwrap();
            assert!(
                chat["usage"].get("completion_tokens_details").is_none(),
                "{chat}"
            );
        }
    }

    /// Mistral's chat answers are read as gpt-oss's are: text parts joined, reasoning kept, a
    /// part of a kind no OpenAI message carries refused (before, all three were dropped).
    #[test]
    fn mistral_chat_answers_keep_parts_and_reasoning() {
        let answer = r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"reasoning_content":"why"},"finish_reason":"stop"}]}"#;
        let chat = body(Family::MistralChat, answer, Endpoint::ChatCompletions).unwrap();
        let message = &chat["choices"][0]["message"];
        assert_eq!(message["content"], "ab");
        assert_eq!(message["reasoning_content"], "why");
        let odd = r#"{"choices":[{"message":{"content":[{"type":"image","url":"x"}]}}]}"#;
        let e = body(Family::MistralChat, odd, Endpoint::ChatCompletions).unwrap_err();
        assert!(e.contains("content[0]"), "{e}");
    }

    /// What [`split_reasoning`] means, on the decoded text.
    fn split_text(text: &str) -> Option<(String, String)> {
        let text = text.trim_start_matches([' ', '\t', '\n', '\r']);
        let (rest, close) = TAGS
            .iter()
            .find_map(|(open, close)| Some((text.strip_prefix(open)?, *close)))?;
        Some(match rest.find(close) {
            None => (rest.to_owned(), String::new()),
            Some(end) => (
                rest[..end].to_owned(),
                rest[end + close.len()..]
                    .trim_start_matches([' ', '\n'])
                    .to_owned(),
            ),
        })
    }

    /// `text` as a literal, each character written as `how` picks: 0 as itself where JSON lets
    /// it, 1 as its one-letter escape where it has one, 2 and 3 as `\uXXXX` in lower / upper case.
    fn literal(text: &str, how: &[u8]) -> String {
        let mut out = String::from("\"");
        for (i, c) in text.chars().enumerate() {
            let pick = how.get(i).copied().unwrap_or(0);
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\n' => Some("\\n"),
                '\t' => Some("\\t"),
                '\r' => Some("\\r"),
                _ => None,
            };
            let plain = !matches!(c, '"' | '\\') && c >= ' ';
            match (pick, short) {
                (0, _) if plain => out.push(c),
                (0 | 1, Some(e)) => out.push_str(e),
                _ => {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        out.push_str(&if pick == 3 {
                            format!("\\u{unit:04X}")
                        } else {
                            format!("\\u{unit:04x}")
                        });
                    }
                }
            }
        }
        out.push('"');
        out
    }

    const PIECES: &[&str] = &[
        "<think>",
        "</think>",
        "<reasoning>",
        "</reasoning>",
        " ",
        "\n",
        "\t",
        "\r",
        "a",
        "é",
        "😀",
        "/",
        "<",
        ">",
        "\\",
        "\"",
        "think",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// However the literal spells its text, the split is the text's, cut between characters
        /// of the literal (both halves literals of the text's halves).
        #[test]
        fn reasoning_is_split_by_what_the_literal_means(
            pieces in prop::collection::vec(0..PIECES.len(), 0..16),
            how in prop::collection::vec(0u8..4, 0..64),
            plain_first in any::<bool>(),
        ) {
            let text: String = pieces.iter().map(|&p| PIECES[p]).collect();
            let how = if plain_first { vec![0; 64] } else { how };
            let lit = literal(&text, &how);
            let got = split_reasoning(&lit).map(|(r, t)| {
                let decode = |l: &str| serde_json::from_str::<String>(l).expect(l);
                (decode(&r), decode(&t))
            });
            prop_assert_eq!(got, split_text(&text), "{}", lit);
        }
    }

    #[test]
    fn reasoning_in_front_of_the_text_is_split_off() {
        assert_eq!(
            split_reasoning(r#""<reasoning>Think \"hard\".</reasoning>\n\nThe answer.""#),
            Some((r#""Think \"hard\".""#.into(), r#""The answer.""#.into()))
        );
        assert_eq!(
            split_reasoning(r#""<think>Step 1.</think>\nDone.""#),
            Some((r#""Step 1.""#.into(), r#""Done.""#.into()))
        );
        assert_eq!(
            split_reasoning(r#""\n <think>r</think>\n\nanswer""#),
            Some((r#""r""#.into(), r#""answer""#.into()))
        );
        // Cut off while thinking: everything is reasoning.
        assert_eq!(
            split_reasoning(r#""<think>a</reasoning>b""#),
            Some((r#""a</reasoning>b""#.into(), r#""""#.into()))
        );
        assert_eq!(split_reasoning(r#""No tags.""#), None);
        assert_eq!(
            split_reasoning(r#""<reasoning>unclosed""#),
            Some((r#""unclosed""#.into(), r#""""#.into()))
        );
    }
}
