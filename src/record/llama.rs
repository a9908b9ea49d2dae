//! Meta Llama 3.x on Bedrock (InvokeModel, formats.md A.5.3): a prompt in the Llama 3 chat
//! template, both ways.
//!
//! Request: `prompt` ← `<|begin_of_text|>`, the system texts as a `system` header block, each turn
//! as a `user` / `assistant` header block ending in `<|eot_id|>`, then an open `assistant` header
//! (a trailing assistant turn is left open instead: a prefill); message text is spliced into the
//! prompt literal as it is, escapes intact. `max_gen_len` ← max tokens, `temperature`, `top_p`,
//! within Llama's documented ranges (see [`super::limits`]: `max_gen_len` at most 2048). The body has no place for images, tools,
//! stop sequences, `top_k` or structured output: those lines are rejected with the reason (images
//! can go through a Converse job).
//!
//! Response: `generation` → `content`; `stop_reason` `length` → `length`, else `stop`;
//! `prompt_token_count` / `generation_token_count` → usage.

use serde::Deserialize;

use super::completion::Choice;
use super::completion::{CompletionContext, Usage};
use super::conversation::{
    check_message_members, check_unsupported, conversation, refuse_fields, turn_texts, MediaPolicy,
    Role, Spliced,
};
use super::json::{as_text, expect, Count, Kind, Obj};
use super::openai::ChatRequest;
use super::response_body;
use super::scan::{Scan, Scanner};
use super::{MapOptions, Notes, Raw, Reject};

const MEDIA: MediaPolicy = MediaPolicy {
    family: "Llama",
    images: &[],
    documents: &[],
    elsewhere: " in its native body (a Converse job, --invocation-type converse, takes them)",
};

/// Writes the Llama body for `req` into `out`.
pub fn write_body(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    if req.tools.is_some() {
        return Err(super::Reject::new(
            super::RejectCode::UnsupportedParameter,
            "body.tools: Llama's native batch body has no tools, and Bedrock batch does not run tool calling in Converse jobs either",
        ));
    }
    let (system, turns) = conversation(&req.messages, &MEDIA)?;
    let limits = &opts.limits;
    let max = limits.max_tokens(req, opts.default_max_tokens, notes)?;
    refuse_fields(
        &[
            ("stop", req.stop.is_some()),
            ("top_k", req.top_k.is_some()),
            ("tool_choice", req.tool_choice.is_some()),
            ("parallel_tool_calls", req.parallel_tool_calls.is_some()),
            ("response_format", req.response_format.is_some()),
            ("reasoning_effort", req.reasoning_effort.is_some()),
        ],
        opts,
        notes,
        "Llama's native batch body has no such setting",
    )?;
    let mut o = Obj::open(out);
    if let Some(prompt) = req.prompt {
        o.raw("prompt", prompt.get());
    } else {
        let mut p = Spliced::open(o.key("prompt"));
        p.escaped("<|begin_of_text|>");
        if !system.is_empty() {
            p.escaped("<|start_header_id|>system<|end_header_id|>\\n\\n")
                .joined(&system, "\\n\\n")
                .escaped("<|eot_id|>");
        }
        let mut open_assistant = false;
        for (i, turn) in turns.iter().enumerate() {
            let texts = turn_texts(
                turn,
                "Llama's native batch body",
                " (a Converse job, --invocation-type converse, takes images)",
            )?;
            let role = if turn.role == Role::User {
                "user"
            } else {
                "assistant"
            };
            p.escaped("<|start_header_id|>")
                .escaped(role)
                .escaped("<|end_header_id|>\\n\\n")
                .joined(&texts, "\\n\\n");
            if turn.role == Role::Assistant && i + 1 == turns.len() {
                open_assistant = true;
            } else {
                p.escaped("<|eot_id|>");
            }
        }
        if !open_assistant {
            p.escaped("<|start_header_id|>assistant<|end_header_id|>\\n\\n");
        }
        p.close();
    }
    o.uint("max_gen_len", max);
    if let Some(raw) = req.temperature {
        o.raw("temperature", &limits.temperature(raw, notes)?);
    }
    if let Some(raw) = req.top_p {
        o.raw("top_p", limits.top_p(raw)?);
    }
    o.close();
    check_message_members(req, opts, notes, "Llama")?;
    check_unsupported(req, opts, notes, "Llama")
}

#[derive(Deserialize, Default)]
pub(crate) struct Response<'a> {
    #[serde(borrow, default)]
    generation: Option<Raw<'a>>,
    #[serde(default)]
    prompt_token_count: Count,
    #[serde(default)]
    generation_token_count: Count,
    #[serde(borrow, default)]
    stop_reason: Option<Raw<'a>>,
}

/// Reads a Llama `modelOutput` at the scanner, as serde reads [`Response`] (or falls back).
pub(crate) fn scan_response<'a>(s: &mut Scanner<'a>) -> Scan<Response<'a>> {
    let mut r = Response::default();
    let names = [
        "generation",
        "prompt_token_count",
        "generation_token_count",
        "stop_reason",
    ];
    s.fields(&names, |s, i| {
        match i {
            0 => r.generation = s.optional()?,
            1 => r.prompt_token_count = Count::of(s.value()?),
            2 => r.generation_token_count = Count::of(s.value()?),
            _ => r.stop_reason = s.optional()?,
        }
        Ok(())
    })?;
    Ok(r)
}

/// Writes the OpenAI `chat.completion` for a Llama response, read by its scanner or by serde.
pub(crate) fn write_response(
    r: Response<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    let text = r
        .generation
        .filter(|g| Kind::of(*g) != Kind::Null)
        .map(|g| expect(g, Kind::String, "modelOutput.generation"))
        .transpose()?;
    // Neither a generation nor one of Llama's stop reasons: another family's answer (records
    // read with the wrong --family or --model), refused, never an empty success.
    let stop = r.stop_reason.and_then(as_text);
    if text.is_none() && !matches!(stop.as_deref(), Some("stop" | "length")) {
        return Err(Reject::invalid(
            "modelOutput: neither generation nor a Llama stop_reason (stop, length), so not a Llama answer (were the records written for another family?)",
        ));
    }
    let usage = Usage::from_counts(
        r.prompt_token_count,
        r.generation_token_count,
        Count::default(),
        Count::default(),
    );
    let choice = Choice {
        texts: text.into_iter().collect(),
        structured: None,
        reasoning: Vec::new(),
        refusal: Vec::new(),
        calls: Vec::new(),
        finish: match stop.as_deref() {
            Some("length") => "length",
            _ => "stop",
        },
    };
    response_body::write(None, &choice, Some(&usage), ctx, out);
    Ok(usage)
}
