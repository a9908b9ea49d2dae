//! Claude `modelOutput` → OpenAI `chat.completion` (formats.md B.3, B.5).
//!
//! - `content` ← the `text` blocks, joined (their JSON literals are spliced, not re-encoded); null
//!   when there are none.
//! - `tool_calls` ← the `tool_use` blocks (`input` as the JSON string `arguments`).
//! - A `tool_use` of [`JSON_RESPONSE_TOOL`] (the forced tool that carried a `response_format`)
//!   becomes the message `content` instead, with `finish_reason: "stop"`.
//! - `thinking` blocks are exposed as `message.reasoning_content` (the field OpenAI-compatible
//!   servers use for reasoning text); `redacted_thinking` blocks are dropped.
//! - `finish_reason` per the table in formats.md B.5; usage with cache tokens counted as prompt
//!   tokens and cache reads as `prompt_tokens_details.cached_tokens`.

use serde::Deserialize;

use super::JSON_RESPONSE_TOOL;
use crate::record::completion::{Arguments, Call, Choice, CompletionContext, Usage};
use crate::record::json::{self, Kind, Raw};
use crate::record::response_body;
use crate::record::scan::{Fallback, Scan, Scanner};
use crate::record::Reject;

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    /// Parsed on its own, so that errors name `modelOutput.content`.
    #[serde(borrow, default)]
    content: Option<Raw<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Raw<'a>>,
    #[serde(default)]
    usage: Option<ClaudeUsage>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Raw<'a>,
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    thinking: Option<Raw<'a>>,
    #[serde(borrow, default)]
    id: Option<Raw<'a>>,
    #[serde(borrow, default)]
    name: Option<Raw<'a>>,
    #[serde(borrow, default)]
    input: Option<Raw<'a>>,
}

#[derive(Deserialize, Default)]
struct ClaudeUsage {
    #[serde(default)]
    input_tokens: json::Count,
    #[serde(default)]
    output_tokens: json::Count,
    #[serde(default)]
    cache_creation_input_tokens: json::Count,
    #[serde(default)]
    cache_read_input_tokens: json::Count,
}

/// The OpenAI `finish_reason` for a Claude `stop_reason` literal.
fn finish_reason(stop_reason: Option<Raw<'_>>) -> &'static str {
    match stop_reason.and_then(json::as_text).as_deref() {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, and anything new.
        _ => "stop",
    }
}

/// Whether `stop_reason` is one Claude gives.
fn is_claude_stop(stop_reason: Option<Raw<'_>>) -> bool {
    matches!(
        stop_reason.and_then(json::as_text).as_deref(),
        Some(
            "end_turn"
                | "max_tokens"
                | "stop_sequence"
                | "tool_use"
                | "pause_turn"
                | "refusal"
                | "model_context_window_exceeded"
        )
    )
}

/// Writes a JSON string literal holding the concatenation of string literals `parts`, splicing
/// their escaped contents as they are.
fn block_field<'a>(
    v: Option<Raw<'a>>,
    i: usize,
    name: &str,
    kind: Kind,
) -> Result<Raw<'a>, Reject> {
    let v =
        v.ok_or_else(|| Reject::invalid(format!("modelOutput.content[{i}].{name}: missing")))?;
    json::expect(v, kind, format_args!("modelOutput.content[{i}].{name}"))
}

/// The forced [`JSON_RESPONSE_TOOL`] called a second time, at `at`: the answer would be one of
/// the two calls' inputs, and which is no reader's to guess.
pub(crate) fn called_twice(at: std::fmt::Arguments<'_>) -> Reject {
    Reject::invalid(format!(
        "{at}: a second call of the tool \"{JSON_RESPONSE_TOOL}\" (response_format's answer), \
         which of the two answers cannot be told"
    ))
}

/// A block's text, absent when missing or `null`, else it must be a string.
fn optional<'a>(v: Option<Raw<'a>>, i: usize, name: &str) -> Result<Option<Raw<'a>>, Reject> {
    v.filter(|v| Kind::of(*v) != Kind::Null)
        .map(|v| {
            json::expect(
                v,
                Kind::String,
                format_args!("modelOutput.content[{i}].{name}"),
            )
        })
        .transpose()
}

/// The parts of a Claude message the response needs, borrowed from `modelOutput`.
pub(crate) struct Parts<'a> {
    id: Option<Raw<'a>>,
    blocks: Vec<Block<'a>>,
    stop_reason: Option<Raw<'a>>,
    usage: ClaudeUsage,
}

/// Scans a Claude message at the scanner's position in one validating pass. Fails (for the serde
/// path to name the problem) when the shape is unexpected.
pub(crate) fn scan_message<'a>(s: &mut Scanner<'a>) -> Scan<(Raw<'a>, Parts<'a>)> {
    let mut parts = Parts {
        id: None,
        blocks: Vec::new(),
        stop_reason: None,
        usage: ClaudeUsage::default(),
    };
    let mut saw_content = false;
    // A member given twice falls back: serde's reader refuses it, in words.
    let raw = s.fields(&["id", "stop_reason", "content", "usage"], |s, i| {
        match i {
            0 => parts.id = s.optional()?,
            1 => parts.stop_reason = s.optional()?,
            2 => {
                saw_content = true;
                s.array(|s| {
                    let (mut kind, mut b) = (
                        None,
                        Block {
                            kind: Raw::validated("null"),
                            text: None,
                            thinking: None,
                            id: None,
                            name: None,
                            input: None,
                        },
                    );
                    let names = ["type", "text", "thinking", "id", "name", "input"];
                    s.fields(&names, |s, i| {
                        match i {
                            0 => kind = Some(s.value()?),
                            1 => b.text = s.optional()?,
                            2 => b.thinking = s.optional()?,
                            3 => b.id = s.optional()?,
                            4 => b.name = s.optional()?,
                            _ => b.input = s.optional()?,
                        }
                        Ok(())
                    })?;
                    // `type` is required.
                    b.kind = kind.ok_or(Fallback)?;
                    parts.blocks.push(b);
                    Ok(())
                })?;
            }
            _ => {
                // "usage": null is no usage.
                let u = &mut parts.usage;
                s.nullable_object(|s| {
                    let names = [
                        "input_tokens",
                        "output_tokens",
                        "cache_creation_input_tokens",
                        "cache_read_input_tokens",
                    ];
                    s.fields(&names, |s, i| {
                        let v = json::Count::of(s.value()?);
                        match i {
                            0 => u.input_tokens = v,
                            1 => u.output_tokens = v,
                            2 => u.cache_creation_input_tokens = v,
                            _ => u.cache_read_input_tokens = v,
                        }
                        Ok(())
                    })
                })?;
            }
        }
        Ok(())
    })?;
    if saw_content {
        Ok((raw, parts))
    } else {
        Err(Fallback)
    }
}

fn scan_parts(model_output: Raw<'_>) -> Option<Parts<'_>> {
    let mut s = Scanner::new(model_output.get());
    let (_, parts) = scan_message(&mut s).ok()?;
    s.end().ok()?;
    Some(parts)
}

/// The serde path: slower, and it says exactly what is wrong.
pub(crate) fn parse_parts(model_output: Raw<'_>) -> Result<Parts<'_>, Reject> {
    json::expect(model_output, Kind::Object, "modelOutput")?;
    let msg: Message<'_> = json::parse(model_output, "modelOutput")?;
    // No content, or null: a message that says nothing.
    let blocks = match msg.content.filter(|c| Kind::of(*c) != Kind::Null) {
        Some(content) => {
            json::expect(content, Kind::Array, "modelOutput.content")?;
            json::parse(content, "modelOutput.content")?
        }
        None => Vec::new(),
    };
    Ok(Parts {
        id: msg.id,
        blocks,
        stop_reason: msg.stop_reason,
        usage: msg.usage.unwrap_or_default(),
    })
}

/// Writes the OpenAI `chat.completion` for a Claude `modelOutput` into `out`.
pub fn write_chat_completion(
    model_output: Raw<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    let msg = match scan_parts(model_output) {
        Some(parts) => parts,
        None => parse_parts(model_output)?,
    };
    write_parts(msg, ctx, out)
}

/// [`write_chat_completion`] for a message already scanned by [`scan_message`].
pub(crate) fn write_parts(
    msg: Parts<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    let mut texts = Vec::new();
    let mut thinking = Vec::new();
    let mut calls = Vec::new();
    let mut json_response = None;
    for (i, b) in msg.blocks.iter().enumerate() {
        let field = |v, name, kind| block_field(v, i, name, kind);
        match json::as_text(b.kind).as_deref() {
            Some("text") => texts.extend(optional(b.text, i, "text")?),
            Some("thinking") => thinking.extend(optional(b.thinking, i, "thinking")?),
            Some("tool_use") => {
                let name = field(b.name, "name", Kind::String)?;
                let input = field(b.input, "input", Kind::Object)?;
                if json::as_text(name).as_deref() == Some(JSON_RESPONSE_TOOL) {
                    if json_response.replace(input).is_some() {
                        return Err(called_twice(format_args!("modelOutput.content[{i}]")));
                    }
                } else {
                    calls.push((field(b.id, "id", Kind::String)?, name, input));
                }
            }
            // redacted_thinking and block types added later carry nothing for a chat message.
            _ => {}
        }
    }
    // No content and none of Claude's stop reasons: another family's answer (records read with
    // the wrong --family or --model), refused, never an empty success.
    if msg.blocks.is_empty() && !is_claude_stop(msg.stop_reason) {
        return Err(Reject::invalid(
            "modelOutput: neither content nor a Claude stop_reason, so not a Claude answer (were the records written for another family?)",
        ));
    }
    let u = msg.usage;
    let totals = Usage::from_counts(
        u.input_tokens,
        u.output_tokens,
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
    );
    let calls = calls
        .into_iter()
        .map(|(id, name, input)| Call {
            id,
            name,
            arguments: Arguments::Object(input),
        })
        .collect();
    let choice = Choice {
        texts,
        structured: json_response,
        reasoning: thinking,
        refusal: Vec::new(),
        calls,
        finish: finish_reason(msg.stop_reason),
    };
    let id = msg.id.filter(|id| Kind::of(*id) == Kind::String);
    response_body::write(id, &choice, Some(&totals), ctx, out);
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn complete(output: Value) -> Result<(Value, Usage), Reject> {
        let text = output.to_string();
        let raw: Raw<'_> = serde_json::from_str(&text).unwrap();
        let ctx = CompletionContext {
            fallback_id: "chatcmpl-x",
            model: "\"m\"",
            created: 7,
            endpoint: crate::record::Endpoint::ChatCompletions,
        };
        let mut out = Vec::new();
        let usage = write_chat_completion(raw, &ctx, &mut out)?;
        Ok((serde_json::from_slice(&out).unwrap(), usage))
    }

    #[test]
    fn finish_reasons_follow_the_table() {
        for (stop, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("something_new", "stop"),
        ] {
            let (v, _) =
                complete(json!({"content": [{"type": "text", "text": "a"}], "stop_reason": stop}))
                    .unwrap();
            assert_eq!(v["choices"][0]["finish_reason"], want, "{stop}");
        }
    }

    #[test]
    fn texts_join_tools_become_calls_and_thinking_is_exposed() {
        let (v, usage) = complete(json!({
            "id": "msg_1",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "redacted_thinking", "data": "x"},
                {"type": "text", "text": "a\"b"},
                {"type": "text", "text": "c"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": [1, "y"]}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3}
        }))
        .unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "a\"bc");
        assert_eq!(m["reasoning_content"], "hmm");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(m["tool_calls"][0]["function"]["name"], "f");
        let args: Value = serde_json::from_str(
            m["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"x": [1, "y"]}));
        assert_eq!(v["id"], "msg_1");
        assert_eq!(v["created"], 7);
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 5, "total_tokens": 20, "prompt_tokens_details": {"cached_tokens": 3}})
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 15,
                completion_tokens: 5,
                cached_tokens: 3,
                cache_write_tokens: 2,
                reasoning_tokens: 0,
                adjusted: false
            }
        );
    }

    #[test]
    fn the_json_response_tool_becomes_content() {
        let (v, _) = complete(json!({
            "content": [{"type": "tool_use", "id": "t", "name": JSON_RESPONSE_TOOL, "input": {"name": "Ada"}}],
            "stop_reason": "tool_use"
        }))
        .unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(
            serde_json::from_str::<Value>(m["content"].as_str().unwrap()).unwrap(),
            json!({"name": "Ada"})
        );
        assert!(m.get("tool_calls").is_none());
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["id"], "chatcmpl-x");
    }

    #[test]
    fn shapes_that_are_not_claude_messages_are_rejected() {
        assert!(complete(json!({"content": "hi"}))
            .unwrap_err()
            .message
            .starts_with("modelOutput"));
        assert!(complete(json!([1])).is_err());
        let err = complete(json!({"content": [{"type": "tool_use", "name": "f"}]})).unwrap_err();
        assert_eq!(err.message, "modelOutput.content[0].input: missing");
    }
}
