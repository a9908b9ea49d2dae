//! The Converse shape, both ways: Converse batch jobs for any model (formats.md A.5.0), and Amazon
//! Nova's native `messages-v1` body, which is the Converse schema with a few additions (A.5.2).
//!
//! Request rules:
//! - `system` ← every `system`/`developer` message as `{"text":…}`; `messages` ← the turns, with
//!   text, image (`format` from the media type, base64 `source.bytes`) and — in Converse jobs
//!   only, as Nova's InvokeModel body takes none — document blocks.
//! - `inferenceConfig`: `maxTokens` ← `max_completion_tokens` / `max_tokens` / the default;
//!   `temperature` (above 1 clamped to 1 and counted), `topP`, `stopSequences`; Nova also `topK`.
//! - Nova: `schemaVersion: "messages-v1"`; `tools` → `toolConfig.tools[].toolSpec`, `tool_choice`
//!   → `toolConfig.toolChoice` (`auto`/`any`/`tool`; `none` leaves the tools out); assistant
//!   `tool_calls` → `toolUse`, `tool` messages → `toolResult` in a user turn; `response_format` →
//!   the forced `json_response` tool, as for Claude.
//! - Nova 2 (the model table's `reasoning`): `reasoning_effort` → `inferenceConfig.reasoningConfig`
//!   (`low`/`medium`/`high` enabled at that effort, `none`/`minimal` disabled), as the Nova 2
//!   request schema places it; at `high` no sampling setting is written (a request's own are
//!   refused, or dropped and counted), per AWS's Nova 2 guides. Other Nova models refuse it.
//! - Converse jobs: Bedrock batch does not run tool calling there, so `tools` and tool messages are
//!   rejected with that reason; so are `response_format` and `reasoning_effort`, whose Converse
//!   form depends on the model.
//!
//! Response: `output.message.content` text blocks joined → `content`; `toolUse` → `tool_calls`
//! (the `json_response` tool → `content`); `reasoningContent.reasoningText.text` →
//! `reasoning_content`; `stopReason` → `finish_reason`; `usage` with cache reads.

use std::borrow::Cow;

use serde::Deserialize;

use super::anthropic::JSON_RESPONSE_TOOL;
use super::completion::{Arguments, Call, Choice};
use super::completion::{CompletionContext, Usage};
use super::conversation::{
    check_message_members, check_unsupported, conversation, function_tools, refuse_fields,
    response_tool, tool_name, Block, MediaPolicy, ResponseTool, Role, ToolResultContent, Turn,
};
use super::json::{
    as_text, expect, null_default, parse, str_value, text_value, Arr, Count, Kind, Obj,
};
use super::openai::ChatRequest;
use super::response_body;
use super::scan::{Fallback, Scan, Scanner};
use super::{MapOptions, Notes, Raw, Reject, RejectCode};

/// Which body: a Converse request (any model) or Nova's native one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// A Converse batch job.
    Converse,
    /// Amazon Nova, InvokeModel.
    Nova,
}

const IMAGES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
const DOCUMENTS: &[&str] = &[
    "application/pdf",
    "text/csv",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "text/html",
    "text/plain",
    "text/markdown",
];

/// Converse's `format` for a media type.
fn format_of(media_type: &str) -> &'static str {
    match media_type {
        "image/png" => "png",
        "image/jpeg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/markdown" => "md",
        _ => "txt",
    }
}

impl Dialect {
    fn media(self) -> MediaPolicy {
        match self {
            Dialect::Converse => MediaPolicy {
                family: "a Converse job",
                images: IMAGES,
                documents: DOCUMENTS,
                elsewhere: "",
            },
            // Nova user guide, "Using the Invoke API": document understanding is a Converse
            // feature; the InvokeModel body has no document block.
            Dialect::Nova => MediaPolicy {
                family: "Nova",
                images: IMAGES,
                documents: &[],
                elsewhere: " in its InvokeModel body (documents are Converse-only); run a Converse job for these lines (--invocation-type converse)",
            },
        }
    }

    fn unsupported(self, what: &str, why: &str) -> Reject {
        Reject::new(RejectCode::UnsupportedParameter, format!("{what}: {why}"))
    }
}

/// Writes the Converse (or Nova) body for `req` into `out`.
pub fn write_body(
    dialect: Dialect,
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    let (system, turns) = conversation(&req.messages, &dialect.media())?;
    let has_tool_blocks = turns.iter().any(|t| {
        t.blocks
            .iter()
            .any(|b| matches!(b, Block::ToolUse { .. } | Block::ToolResult { .. }))
    });
    if dialect == Dialect::Converse {
        let no_tools = "Bedrock batch does not support tool calling in Converse jobs; run this model family's native InvokeModel job instead (no --invocation-type converse)";
        if req.tools.is_some() || req.tool_choice.is_some() || has_tool_blocks {
            let what = if req.tools.is_some() {
                "body.tools"
            } else {
                "body.messages"
            };
            return Err(dialect.unsupported(what, no_tools));
        }
        for (field, present) in [
            ("body.response_format", structured_output(req)?),
            ("body.reasoning_effort", req.reasoning_effort.is_some()),
            ("body.top_k", req.top_k.is_some()),
            (
                "body.parallel_tool_calls",
                req.parallel_tool_calls.is_some(),
            ),
        ] {
            if present && !opts.drop_unsupported {
                return Err(dialect.unsupported(field, "its Converse form depends on the model, so Converse jobs do not take it (use --drop-unsupported to drop it)"));
            } else if present {
                notes
                    .dropped
                    .push(field.trim_start_matches("body.").to_owned());
            }
        }
    }
    let limits = &opts.limits;
    let effort = match dialect {
        Dialect::Nova => nova_reasoning(req, opts, notes)?,
        Dialect::Converse => None,
    };
    // At effort high, Nova 2 refuses the sampling settings (AWS's Nova 2 samples): none is written.
    let sampling = effort != Some("high");
    // (At high, a request's own max tokens was refused or dropped above: not read again.)
    let max_tokens = sampling
        .then(|| limits.max_tokens(req, opts.default_max_tokens, notes))
        .transpose()?;
    let forced = match dialect {
        Dialect::Nova => response_tool(req)?,
        Dialect::Converse => None,
    };
    let mut o = Obj::open(out);
    if dialect == Dialect::Nova {
        o.string("schemaVersion", "messages-v1");
    }
    if !system.is_empty() {
        let mut a = Arr::open(o.key("system"));
        for text in &system {
            text_block(*text, a.next());
        }
        a.close();
    }
    write_turns(o.key("messages"), &turns)?;
    {
        let mut c = Obj::open(o.key("inferenceConfig"));
        if let Some(max_tokens) = max_tokens {
            c.uint("maxTokens", max_tokens);
            if let Some(raw) = req.temperature {
                c.raw("temperature", &limits.temperature(raw, notes)?);
            }
            if let Some(raw) = req.top_p {
                c.raw("topP", limits.top_p(raw)?);
            }
            if let (Some(raw), Dialect::Nova) = (req.top_k, dialect) {
                c.uint("topK", limits.top_k(raw, notes)?);
            }
        }
        if let Some(raw) = req.stop {
            limits.stop(raw, notes, c.key("stopSequences"))?;
        }
        match effort {
            Some("disabled") => c.raw("reasoningConfig", r#"{"type":"disabled"}"#),
            Some(level) => c.raw(
                "reasoningConfig",
                &format!(r#"{{"type":"enabled","maxReasoningEffort":"{level}"}}"#),
            ),
            None => {}
        }
        c.close();
    }
    if dialect == Dialect::Nova {
        write_tool_config(req, forced.as_ref(), &mut o)?;
    }
    o.close();
    check_message_members(req, opts, notes, dialect.media().family)?;
    check_unsupported(req, opts, notes, dialect.media().family)
}

/// Nova's `reasoningConfig` for `reasoning_effort`: the effort (`low`, `medium`, `high`) or
/// `disabled` (`none`, `minimal`), for a model the table says takes one. At `high`, a request's
/// own sampling settings are refused (or dropped with `--drop-unsupported`): AWS's Nova 2 guides
/// say Bedrock refuses them then. Other Nova models have no reasoning setting: refused or dropped.
fn nova_reasoning(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
) -> Result<Option<&'static str>, Reject> {
    let Some(raw) = req.reasoning_effort else {
        return Ok(None);
    };
    let value = str_value(raw, "body.reasoning_effort")?;
    if !opts.limits.reasoning {
        if !opts.drop_unsupported {
            return Err(Dialect::Nova.unsupported("body.reasoning_effort", "this Nova model takes no reasoning setting (Nova 2 does; use --drop-unsupported to drop it)"));
        }
        notes.dropped.push("reasoning_effort".to_owned());
        return Ok(None);
    }
    let effort = match value.as_ref() {
        "none" | "minimal" => "disabled",
        "low" => "low",
        "medium" => "medium",
        "high" => "high",
        other => {
            return Err(Reject::invalid(format!(
                "body.reasoning_effort: {other:?} is not an effort (none, minimal, low, medium or high)"
            )))
        }
    };
    if effort == "high" {
        refuse_fields(
            &[
                ("max_completion_tokens", req.max_completion_tokens.is_some()),
                ("max_tokens", req.max_tokens.is_some()),
                ("temperature", req.temperature.is_some()),
                ("top_p", req.top_p.is_some()),
                ("top_k", req.top_k.is_some()),
            ],
            opts,
            notes,
            "Nova 2 takes no sampling settings at reasoning effort high",
        )?;
    }
    Ok(Some(effort))
}

fn text_block(text: Raw<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"text\":");
    out.extend_from_slice(text.get().as_bytes());
    out.push(b'}');
}

/// Checks a tool-use id against Converse's pattern `[a-zA-Z0-9_.:-]{1,64}`.
fn tool_use_id<'a>(id: Raw<'a>) -> Result<Raw<'a>, Reject> {
    let text = str_value(id, "tool call id")?;
    if text.is_empty()
        || text.len() > 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        return Err(Reject::invalid(format!(
            "tool call id \"{text}\" is not one Bedrock accepts (1-64 of a-z A-Z 0-9 _ . : -)"
        )));
    }
    Ok(id)
}

fn write_turns(out: &mut Vec<u8>, turns: &[Turn<'_>]) -> Result<(), Reject> {
    let mut a = Arr::open(out);
    let mut documents = 0;
    for turn in turns {
        let mut o = Obj::open(a.next());
        o.raw(
            "role",
            if turn.role == Role::User {
                "\"user\""
            } else {
                "\"assistant\""
            },
        );
        let mut blocks = Arr::open(o.key("content"));
        for block in &turn.blocks {
            let b = blocks.next();
            match block {
                Block::Text(t) => text_block(*t, b),
                Block::Base64 {
                    kind,
                    media_type,
                    data,
                } => {
                    let format = format_of(media_type);
                    if *kind == "image" {
                        for part in [
                            "{\"image\":{\"format\":\"",
                            format,
                            "\",\"source\":{\"bytes\":\"",
                            data,
                            "\"}}}",
                        ] {
                            b.extend_from_slice(part.as_bytes());
                        }
                    } else {
                        documents += 1;
                        let name = format!("document-{documents}");
                        for part in [
                            "{\"document\":{\"format\":\"",
                            format,
                            "\",\"name\":\"",
                            &name,
                            "\",\"source\":{\"bytes\":\"",
                            data,
                            "\"}}}",
                        ] {
                            b.extend_from_slice(part.as_bytes());
                        }
                    }
                }
                Block::ToolUse { id, name, input } => {
                    let mut t = Obj::open(b);
                    let mut u = Obj::open(t.key("toolUse"));
                    u.raw("toolUseId", tool_use_id(*id)?.get());
                    u.raw("name", name.get());
                    u.raw("input", input);
                    u.close();
                    t.close();
                }
                Block::ToolResult { id, content } => {
                    let mut t = Obj::open(b);
                    let mut r = Obj::open(t.key("toolResult"));
                    r.raw("toolUseId", tool_use_id(*id)?.get());
                    let mut c = Arr::open(r.key("content"));
                    match content {
                        ToolResultContent::Raw(raw) => text_block(*raw, c.next()),
                        ToolResultContent::Texts(texts) => {
                            for t in texts {
                                text_block(*t, c.next());
                            }
                        }
                    }
                    c.close();
                    r.close();
                    t.close();
                }
            }
        }
        blocks.close();
        o.close();
    }
    a.close();
    Ok(())
}

/// Whether the request asks for structured output (a `response_format` other than `text`).
fn structured_output(req: &ChatRequest<'_>) -> Result<bool, Reject> {
    Ok(response_tool(req)?.is_some())
}

fn write_tool_config(
    req: &ChatRequest<'_>,
    forced: Option<&ResponseTool<'_>>,
    o: &mut Obj<'_>,
) -> Result<(), Reject> {
    let tools = function_tools(req, Some(JSON_RESPONSE_TOOL))?;
    let choice = match req.tool_choice {
        None => None,
        Some(raw) if Kind::of(raw) == Kind::String => Some(match &*text_value(raw.get()) {
            "auto" => Cow::Borrowed("{\"auto\":{}}"),
            "required" => Cow::Borrowed("{\"any\":{}}"),
            "none" => Cow::Borrowed("none"),
            _ => {
                return Err(Reject::invalid(format!(
                "body.tool_choice: unknown value {} (expected auto, required, none or a function)",
                raw.get()
            )))
            }
        }),
        Some(raw) => {
            #[derive(Deserialize)]
            struct Named<'a> {
                #[serde(borrow)]
                function: Option<NamedFn<'a>>,
            }
            #[derive(Deserialize)]
            struct NamedFn<'a> {
                #[serde(borrow)]
                name: Raw<'a>,
            }
            let named: Named<'_> = parse(raw, "body.tool_choice")?;
            let f = named
                .function
                .ok_or_else(|| Reject::invalid("body.tool_choice.function: missing"))?;
            tool_name(f.name, "body.tool_choice.function.name")?;
            Some(Cow::Owned(format!(
                "{{\"tool\":{{\"name\":{}}}}}",
                f.name.get()
            )))
        }
    };
    if forced.is_some() && choice.is_some() {
        return Err(Reject::invalid(
            "body.tool_choice: cannot be combined with response_format json_schema/json_object",
        ));
    }
    if choice.as_deref() == Some("none") || (tools.is_empty() && forced.is_none()) {
        // No tools, or none allowed: Nova gets no toolConfig at all.
        return Ok(());
    }
    let mut c = Obj::open(o.key("toolConfig"));
    let mut a = Arr::open(c.key("tools"));
    for tool in &tools {
        let mut t = Obj::open(a.next());
        let mut spec = Obj::open(t.key("toolSpec"));
        spec.raw("name", tool.name.get());
        if let Some(d) = tool.description {
            spec.raw("description", d.get());
        }
        let mut s = Obj::open(spec.key("inputSchema"));
        s.raw("json", tool.parameters);
        s.close();
        spec.close();
        t.close();
    }
    if let Some(f) = forced {
        let mut t = Obj::open(a.next());
        let mut spec = Obj::open(t.key("toolSpec"));
        spec.string("name", JSON_RESPONSE_TOOL);
        match f.description {
            Some(d) => spec.raw("description", d.get()),
            None => spec.string(
                "description",
                "Respond with a JSON object as the input of this tool.",
            ),
        }
        let mut s = Obj::open(spec.key("inputSchema"));
        s.raw(
            "json",
            f.schema.map_or("{\"type\":\"object\"}", |s| s.get()),
        );
        s.close();
        spec.close();
        t.close();
    }
    a.close();
    match (forced, choice) {
        (Some(_), _) => c.raw(
            "toolChoice",
            &format!("{{\"tool\":{{\"name\":\"{JSON_RESPONSE_TOOL}\"}}}}"),
        ),
        (None, Some(choice)) => c.raw("toolChoice", &choice),
        (None, None) => {}
    }
    c.close();
    Ok(())
}

// ---- response ----

#[derive(Deserialize, Default)]
pub(crate) struct Response<'a> {
    #[serde(borrow, default)]
    output: Option<Output<'a>>,
    #[serde(rename = "stopReason", borrow, default)]
    stop_reason: Option<Raw<'a>>,
    #[serde(default)]
    usage: Option<ConverseUsage>,
}

#[derive(Deserialize, Default)]
struct Output<'a> {
    #[serde(borrow, default)]
    message: Option<OutMessage<'a>>,
}

#[derive(Deserialize, Default)]
struct OutMessage<'a> {
    #[serde(borrow, default, deserialize_with = "null_default")]
    content: Vec<OutBlock<'a>>,
}

#[derive(Deserialize, Default)]
struct OutBlock<'a> {
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
    #[serde(rename = "toolUse", borrow, default)]
    tool_use: Option<ToolUse<'a>>,
    #[serde(rename = "reasoningContent", borrow, default)]
    reasoning: Option<Reasoning<'a>>,
}

#[derive(Deserialize, Clone, Copy)]
struct ToolUse<'a> {
    #[serde(rename = "toolUseId", borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    input: Raw<'a>,
}

#[derive(Deserialize, Default)]
struct Reasoning<'a> {
    #[serde(rename = "reasoningText", borrow, default)]
    text: Option<ReasoningText<'a>>,
}

#[derive(Deserialize, Default)]
struct ReasoningText<'a> {
    #[serde(borrow, default)]
    text: Option<Raw<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConverseUsage {
    #[serde(default)]
    input_tokens: Count,
    #[serde(default)]
    output_tokens: Count,
    #[serde(default, alias = "cacheReadInputTokenCount")]
    cache_read_input_tokens: Count,
    #[serde(default, alias = "cacheWriteInputTokenCount")]
    cache_write_input_tokens: Count,
}

/// The OpenAI `finish_reason` for a Converse (or Nova) `stopReason`.
pub fn finish_reason(stop_reason: Option<Raw<'_>>) -> &'static str {
    match stop_reason.and_then(as_text).as_deref() {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        // end_turn, stop_sequence, malformed_* and anything new.
        _ => "stop",
    }
}

/// Reads a Converse (or Nova) `modelOutput` at the scanner, as serde reads [`Response`] (or
/// falls back).
pub(crate) fn scan_response<'a>(s: &mut Scanner<'a>) -> Scan<Response<'a>> {
    let mut r = Response::default();
    s.fields(&["output", "stopReason", "usage"], |s, i| {
        match i {
            0 => {
                r.output = s.nullable_object(|s| {
                    let mut o = Output::default();
                    s.fields(&["message"], |s, _| {
                        o.message = s.nullable_object(scan_message)?;
                        Ok(())
                    })?;
                    Ok(o)
                })?
            }
            1 => r.stop_reason = s.optional()?,
            _ => r.usage = s.nullable_object(scan_usage)?,
        }
        Ok(())
    })?;
    Ok(r)
}

fn scan_message<'a>(s: &mut Scanner<'a>) -> Scan<OutMessage<'a>> {
    let mut m = OutMessage::default();
    s.fields(&["content"], |s, _| {
        s.nullable_array(|s| {
            m.content.push(scan_block(s)?);
            Ok(())
        })
    })?;
    Ok(m)
}

fn scan_block<'a>(s: &mut Scanner<'a>) -> Scan<OutBlock<'a>> {
    let mut b = OutBlock::default();
    s.fields(&["text", "toolUse", "reasoningContent"], |s, i| {
        match i {
            0 => b.text = s.optional()?,
            1 => b.tool_use = s.nullable_object(scan_tool_use)?,
            _ => {
                b.reasoning = s.nullable_object(|s| {
                    let mut r = Reasoning::default();
                    s.fields(&["reasoningText"], |s, _| {
                        r.text = s.nullable_object(|s| {
                            let mut t = ReasoningText::default();
                            s.fields(&["text"], |s, _| {
                                t.text = s.optional()?;
                                Ok(())
                            })?;
                            Ok(t)
                        })?;
                        Ok(())
                    })?;
                    Ok(r)
                })?
            }
        }
        Ok(())
    })?;
    Ok(b)
}

fn scan_tool_use<'a>(s: &mut Scanner<'a>) -> Scan<ToolUse<'a>> {
    let mut v = [None; 3];
    s.fields(&["toolUseId", "name", "input"], |s, i| {
        v[i] = Some(s.value()?);
        Ok(())
    })?;
    // All three are required.
    match v {
        [Some(id), Some(name), Some(input)] => Ok(ToolUse { id, name, input }),
        _ => Err(Fallback),
    }
}

fn scan_usage(s: &mut Scanner<'_>) -> Scan<ConverseUsage> {
    let mut u = ConverseUsage::default();
    // Nova's InvokeModel names (…TokenCount) are aliases: one field either way, and both at once
    // a field given twice (as serde's aliases make them).
    let names = [
        "inputTokens",
        "outputTokens",
        "cacheReadInputTokens",
        "cacheReadInputTokenCount",
        "cacheWriteInputTokens",
        "cacheWriteInputTokenCount",
    ];
    let mut seen = [false; 4];
    s.fields(&names, |s, i| {
        let field = [0, 1, 2, 2, 3, 3][i];
        if std::mem::replace(&mut seen[field], true) {
            return Err(Fallback);
        }
        let count = Count::of(s.value()?);
        match field {
            0 => u.input_tokens = count,
            1 => u.output_tokens = count,
            2 => u.cache_read_input_tokens = count,
            _ => u.cache_write_input_tokens = count,
        }
        Ok(())
    })?;
    Ok(u)
}

/// Writes the OpenAI `chat.completion` for a Converse (or Nova) response, read by its scanner
/// or by serde.
pub(crate) fn write_response(
    r: Response<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    // An answer with neither a message nor a stop reason is none (or another family's, records
    // read with the wrong --family or --model): refused, never written as an empty success.
    let stop = r.stop_reason.filter(|s| Kind::of(*s) != Kind::Null);
    let message = r.output.and_then(|o| o.message);
    if message.is_none() && stop.is_none() {
        return Err(Reject::invalid(
            "modelOutput: neither output.message nor stopReason, so not a Converse or Nova answer (were the records written for another family?)",
        ));
    }
    let blocks = message.map(|m| m.content).unwrap_or_default();
    let mut texts = Vec::new();
    let mut reasoning = Vec::new();
    let mut calls = Vec::new();
    let mut structured = None;
    for (i, b) in blocks.iter().enumerate() {
        let at = format_args!("modelOutput.output.message.content[{i}]");
        if let Some(t) = b.text.filter(|t| Kind::of(*t) != Kind::Null) {
            texts.push(expect(t, Kind::String, format_args!("{at}.text"))?);
        }
        if let Some(t) = b
            .reasoning
            .as_ref()
            .and_then(|r| r.text.as_ref())
            .and_then(|t| t.text)
            .filter(|t| Kind::of(*t) != Kind::Null)
        {
            reasoning.push(expect(
                t,
                Kind::String,
                format_args!("{at}.reasoningContent.reasoningText.text"),
            )?);
        }
        if let Some(u) = &b.tool_use {
            let at = format_args!("{at}.toolUse");
            let name = expect(u.name, Kind::String, format_args!("{at}.name"))?;
            let input = expect(u.input, Kind::Object, format_args!("{at}.input"))?;
            if as_text(name).as_deref() == Some(JSON_RESPONSE_TOOL) {
                if structured.replace(input).is_some() {
                    return Err(super::anthropic::called_twice(format_args!("{at}")));
                }
            } else {
                calls.push(ToolUse {
                    id: expect(u.id, Kind::String, format_args!("{at}.toolUseId"))?,
                    name,
                    input,
                });
            }
        }
    }
    let u = r.usage.unwrap_or_default();
    let usage = Usage::from_counts(
        u.input_tokens,
        u.output_tokens,
        u.cache_read_input_tokens,
        u.cache_write_input_tokens,
    );
    let choice = Choice {
        texts,
        structured,
        reasoning,
        refusal: Vec::new(),
        calls: calls
            .into_iter()
            .map(|u| Call {
                id: u.id,
                name: u.name,
                arguments: Arguments::Object(u.input),
            })
            .collect(),
        finish: finish_reason(r.stop_reason),
    };
    response_body::write(None, &choice, Some(&usage), ctx, out);
    Ok(usage)
}
