//! Mistral on Bedrock (formats.md A.5.4), both ways, in its two body formats.
//!
//! Text completion (Mistral 7B Instruct, Mixtral 8x7B, Mistral Large 2402, Mistral Small 2402):
//! `prompt` ← `<s>[INST] q1 [/INST] a1</s>[INST] q2 [/INST]`, the system texts leading the first
//! instruction; `max_tokens`, `stop`, `temperature` (above 1 clamped and counted), `top_p`,
//! `top_k`. No images or tools. Response: `outputs[0].text` → `content`, `stop_reason` →
//! `finish_reason`; the body has no token counts, so `usage` is null.
//!
//! Chat completion (Mistral Large 2407 and later): `messages` with `system`, `user`, `assistant`
//! (with `tool_calls`) and `tool` roles, text content; tool-call ids that are not Mistral's nine
//! characters `[a-zA-Z0-9]` (OpenAI's `call_…`) replaced by ones that are, the same in the
//! assistant's `tool_calls` and the `tool` turns; `tools` and `tool_choice` (`required` → `any`;
//! a named function is not supported); `max_tokens`, `temperature`, `top_p`. Response:
//! `choices[0].message` → the message, `stop_reason` → `finish_reason`, usage when present.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::bedrock_output::fnv;
use super::completion::{Choice, OpenAiShaped};
use super::completion::{CompletionContext, Usage};
use super::conversation::{
    call_arguments, check_message_members, check_unsupported, conversation, function_tools,
    refuse_fields, texts, tool_name, turn_texts, MediaPolicy, MsgPath, Role, Spliced,
};
use super::json::{as_text, decode_literal, expect, null_default, Arr, Kind, Obj};
use super::openai::{ChatRequest, ToolCall};
use super::response_body;
use super::scan::{Scan, Scanner};
use super::{MapOptions, Notes, Raw, Reject, RejectCode};

const TEXT_MEDIA: MediaPolicy = MediaPolicy {
    family: "Mistral",
    images: &[],
    documents: &[],
    elsewhere: "",
};

/// Writes the text-completion body for `req` into `out`.
pub fn write_text_body(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    if req.tools.is_some() {
        return Err(Reject::new(
            RejectCode::UnsupportedParameter,
            "body.tools: this Mistral model's text-completion body has no tools (Mistral Large 2407 and later take them)",
        ));
    }
    let (system, turns) = conversation(&req.messages, &TEXT_MEDIA)?;
    let limits = &opts.limits;
    let max = limits.max_tokens(req, opts.default_max_tokens, notes)?;
    refuse_fields(
        &[
            ("tool_choice", req.tool_choice.is_some()),
            ("parallel_tool_calls", req.parallel_tool_calls.is_some()),
            ("response_format", req.response_format.is_some()),
            ("reasoning_effort", req.reasoning_effort.is_some()),
        ],
        opts,
        notes,
        "a Mistral text-completion body has no such setting",
    )?;
    if turns.first().map(|t| t.role) != Some(Role::User) {
        return Err(Reject::invalid(
            "body.messages: a Mistral prompt starts with a user message",
        ));
    }
    let mut o = Obj::open(out);
    if let Some(prompt) = req.prompt {
        o.raw("prompt", prompt.get());
    } else {
        let mut p = Spliced::open(o.key("prompt"));
        p.escaped("<s>");
        for (i, turn) in turns.iter().enumerate() {
            let texts = turn_texts(turn, "a Mistral text-completion prompt", "")?;
            match turn.role {
                Role::User => {
                    p.escaped("[INST] ");
                    if i == 0 && !system.is_empty() {
                        p.joined(&system, "\\n\\n").escaped("\\n\\n");
                    }
                    p.joined(&texts, "\\n\\n").escaped(" [/INST]");
                }
                Role::Assistant => {
                    p.escaped(" ").joined(&texts, "\\n\\n");
                    if i + 1 < turns.len() {
                        p.escaped("</s>");
                    }
                }
            }
        }
        p.close();
    }
    o.uint("max_tokens", max);
    if let Some(raw) = req.stop {
        limits.stop(raw, notes, o.key("stop"))?;
    }
    if let Some(raw) = req.temperature {
        o.raw("temperature", &limits.temperature(raw, notes)?);
    }
    if let Some(raw) = req.top_p {
        o.raw("top_p", limits.top_p(raw)?);
    }
    if let Some(raw) = req.top_k {
        o.uint("top_k", limits.top_k(raw, notes)?);
    }
    o.close();
    check_message_members(req, opts, notes, "Mistral")?;
    check_unsupported(req, opts, notes, "Mistral")
}

/// Mistral's API takes tool-call ids of exactly nine characters `[a-zA-Z0-9]`, while OpenAI
/// histories carry ids like `call_…`. Each id of a conversation that is not already of that form
/// gets one that is, derived from its value alone (so the assistant's `tool_calls` and the `tool`
/// turns answering them agree, and a re-run writes the same), and never one another id of the
/// conversation has.
struct ToolCallIds {
    /// Each id's value (decoded) → its Mistral id.
    map: HashMap<Vec<u8>, String>,
}

/// How long Mistral's tool-call ids are.
const TOOL_CALL_ID_LEN: usize = 9;

impl ToolCallIds {
    fn of(req: &ChatRequest<'_>) -> Result<ToolCallIds, Reject> {
        let mut all: Vec<Vec<u8>> = Vec::new();
        for (i, m) in req.messages.iter().enumerate() {
            for (j, call) in m.tool_calls.iter().flatten().enumerate() {
                let id = expect(
                    call.id,
                    Kind::String,
                    format_args!("body.messages[{i}].tool_calls[{j}].id"),
                )?;
                all.push(decode_literal(id.get()).into_owned());
            }
            if let Some(id) = m.tool_call_id.filter(|id| Kind::of(*id) == Kind::String) {
                all.push(decode_literal(id.get()).into_owned());
            }
        }
        let valid =
            |v: &[u8]| v.len() == TOOL_CALL_ID_LEN && v.iter().all(u8::is_ascii_alphanumeric);
        let mut map = HashMap::new();
        let mut taken: HashSet<String> = HashSet::new();
        for id in all.iter().filter(|v| valid(v)) {
            let own = String::from_utf8_lossy(id).into_owned();
            taken.insert(own.clone());
            map.insert(id.clone(), own);
        }
        // In sorted order, so that which of two colliding ids moves on does not depend on where
        // they appear.
        all.sort();
        all.dedup();
        for id in all.into_iter().filter(|v| !valid(v)) {
            let mistral = (0u64..)
                .map(|attempt| base62_id(fnv(attempt, &[&id])))
                .find(|c| !taken.contains(c))
                .expect("a free id");
            taken.insert(mistral.clone());
            map.insert(id, mistral);
        }
        Ok(ToolCallIds { map })
    }

    /// The Mistral id of `id` (a string literal `of` saw).
    fn get(&self, id: Raw<'_>) -> &str {
        self.map
            .get(decode_literal(id.get()).as_ref())
            .map_or("", String::as_str)
    }
}

/// Nine base-62 digits of `h`.
fn base62_id(mut h: u64) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..TOOL_CALL_ID_LEN)
        .map(|_| {
            let d = DIGITS[(h % 62) as usize] as char;
            h /= 62;
            d
        })
        .collect()
}

/// Writes the chat-completion body (Mistral Large 2407 and later) for `req` into `out`.
pub fn write_chat_body(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    let limits = &opts.limits;
    let max = limits.max_tokens(req, opts.default_max_tokens, notes)?;
    refuse_fields(
        &[
            ("stop", req.stop.is_some()),
            ("top_k", req.top_k.is_some()),
            ("parallel_tool_calls", req.parallel_tool_calls.is_some()),
            ("response_format", req.response_format.is_some()),
            ("reasoning_effort", req.reasoning_effort.is_some()),
        ],
        opts,
        notes,
        "Mistral's chat body on Bedrock has no such setting",
    )?;
    let ids = ToolCallIds::of(req)?;
    let mut o = Obj::open(out);
    write_chat_messages(req, &ids, o.key("messages"))?;
    o.uint("max_tokens", max);
    if let Some(raw) = req.temperature {
        o.raw("temperature", &limits.temperature(raw, notes)?);
    }
    if let Some(raw) = req.top_p {
        o.raw("top_p", limits.top_p(raw)?);
    }
    if req.tools.is_some() {
        write_chat_tools(req, o.key("tools"))?;
    }
    if let Some(raw) = req.tool_choice {
        o.raw("tool_choice", chat_tool_choice(raw)?);
    }
    o.close();
    check_message_members(req, opts, notes, "Mistral")?;
    check_unsupported(req, opts, notes, "Mistral")
}

/// Writes the `messages` array of a chat body: each OpenAI message with its role, its texts
/// joined, and its tool calls or tool result under Mistral's ids.
fn write_chat_messages(
    req: &ChatRequest<'_>,
    ids: &ToolCallIds,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    let mut a = Arr::open(out);
    let mut any = false;
    for (i, m) in req.messages.iter().enumerate() {
        let path = |rest: &'static str| MsgPath(i, rest);
        let role = match m.role.as_ref() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            other => {
                return Err(Reject::invalid(format!(
                    "{}: role \"{other}\" is not supported",
                    path(".role")
                )))
            }
        };
        let mut content = Vec::new();
        texts(m.content, path(".content"), &mut content).map_err(|e| {
            if e.message.contains("only text parts") {
                Reject::new(
                    RejectCode::UnsupportedParameter,
                    format!(
                        "{}: Mistral's chat body on Bedrock takes text only",
                        path(".content")
                    ),
                )
            } else {
                e
            }
        })?;
        let mut w = Obj::open(a.next());
        w.string("role", role);
        let mut c = Spliced::open(w.key("content"));
        c.joined(&content, "\\n\\n");
        c.close();
        if role == "assistant" {
            if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
                write_tool_calls(i, calls, ids, w.key("tool_calls"))?;
            }
        }
        if role == "tool" {
            let id = m
                .tool_call_id
                .ok_or_else(|| Reject::invalid(format!("{}: missing", path(".tool_call_id"))))?;
            expect(id, Kind::String, path(".tool_call_id"))?;
            w.string("tool_call_id", ids.get(id));
        }
        any |= role != "system";
        w.close();
    }
    a.close();
    if !any {
        return Err(Reject::invalid(
            "body.messages: no user or assistant message (Mistral needs at least one)",
        ));
    }
    Ok(())
}

/// Writes message `i`'s tool calls, under Mistral's ids.
fn write_tool_calls(
    i: usize,
    calls: &[ToolCall<'_>],
    ids: &ToolCallIds,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    let mut t = Arr::open(out);
    for (j, call) in calls.iter().enumerate() {
        let at = format!("body.messages[{i}].tool_calls[{j}]");
        expect(call.id, Kind::String, format_args!("{at}.id"))?;
        tool_name(call.function.name, format_args!("{at}.function.name"))?;
        let mut x = Obj::open(t.next());
        x.string("id", ids.get(call.id));
        let mut f = Obj::open(x.key("function"));
        f.raw("name", call.function.name.get());
        match call.function.arguments {
            Some(args) => {
                // Sent as written (Mistral takes the string), once it is known to be one object
                // giving each member once, as for every other family that reads it.
                call_arguments(Some(args), &at)?;
                f.raw("arguments", args.get());
            }
            None => f.raw("arguments", "\"{}\""),
        }
        f.close();
        x.close();
    }
    t.close();
    Ok(())
}

/// Writes the `tools` array of a chat body.
fn write_chat_tools(req: &ChatRequest<'_>, out: &mut Vec<u8>) -> Result<(), Reject> {
    let mut a = Arr::open(out);
    for tool in function_tools(req, None)? {
        let mut t = Obj::open(a.next());
        t.raw("type", "\"function\"");
        let mut d = Obj::open(t.key("function"));
        d.raw("name", tool.name.get());
        if let Some(desc) = tool.description {
            d.raw("description", desc.get());
        }
        d.raw("parameters", tool.parameters);
        d.close();
        t.close();
    }
    a.close();
    Ok(())
}

/// Mistral's `tool_choice` for OpenAI's (`required` is `any`; no named function).
fn chat_tool_choice(raw: Raw<'_>) -> Result<&'static str, Reject> {
    match as_text(raw).as_deref() {
        Some("auto") => Ok("\"auto\""),
        Some("required") => Ok("\"any\""),
        Some("none") => Ok("\"none\""),
        _ if Kind::of(raw) == Kind::Object => Err(Reject::new(
            RejectCode::UnsupportedParameter,
            "body.tool_choice: Mistral on Bedrock cannot be made to call one named function (use \"required\")",
        )),
        _ => Err(Reject::invalid(format!(
            "body.tool_choice: unknown value {} (expected auto, required or none)",
            raw.get()
        ))),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct TextResponse<'a> {
    #[serde(borrow, default, deserialize_with = "null_default")]
    outputs: Vec<TextOutput<'a>>,
}

#[derive(Deserialize, Default)]
struct TextOutput<'a> {
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Raw<'a>>,
}

/// Reads a Mistral text-completion `modelOutput` at the scanner, as serde reads
/// [`TextResponse`] (or falls back).
pub(crate) fn scan_text_response<'a>(s: &mut Scanner<'a>) -> Scan<TextResponse<'a>> {
    let mut r = TextResponse::default();
    s.fields(&["outputs"], |s, _| {
        s.nullable_array(|s| {
            let mut o = TextOutput::default();
            s.fields(&["text", "stop_reason"], |s, i| {
                match i {
                    0 => o.text = s.optional()?,
                    _ => o.stop_reason = s.optional()?,
                }
                Ok(())
            })?;
            r.outputs.push(o);
            Ok(())
        })
    })?;
    Ok(r)
}

fn finish(stop_reason: Option<Raw<'_>>) -> &'static str {
    match stop_reason.and_then(as_text).as_deref() {
        Some("length" | "model_length") => "length",
        Some("tool_calls") => "tool_calls",
        _ => "stop",
    }
}

/// Writes the OpenAI `chat.completion` for a Mistral text-completion response, read by its
/// scanner or by serde.
pub(crate) fn write_text_response(
    r: TextResponse<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    // No outputs: another family's answer (records read with the wrong --family or --model),
    // refused, never an empty success.
    let Some(first) = r.outputs.first() else {
        return Err(Reject::invalid(
            "modelOutput.outputs: missing or empty, so not a Mistral text answer (were the records written for another family?)",
        ));
    };
    let text = first
        .text
        .filter(|t| Kind::of(*t) != Kind::Null)
        .map(|t| expect(t, Kind::String, "modelOutput.outputs[0].text"))
        .transpose()?;
    let choice = Choice {
        texts: text.into_iter().collect(),
        structured: None,
        reasoning: Vec::new(),
        refusal: Vec::new(),
        calls: Vec::new(),
        finish: finish(first.stop_reason),
    };
    response_body::write(None, &choice, None, ctx, out);
    Ok(Usage::default())
}

/// Writes the OpenAI `chat.completion` for a Mistral chat response, read by its scanner or by
/// serde.
pub(crate) fn write_chat_response(
    r: OpenAiShaped<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    let usage = r.usage();
    let mut choice = r.choice()?;
    // An empty content beside tool calls is no content (OpenAI says null).
    choice.texts.retain(|t| t.get() != "\"\"");
    response_body::write(r.own_id(), &choice, usage.as_ref(), ctx, out);
    Ok(usage.unwrap_or_default())
}
