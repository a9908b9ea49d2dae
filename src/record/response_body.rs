//! The response bodies every chat family's answer becomes, written from the one [`Choice`] the
//! family fills: a `chat.completion`, or for the `/v1/responses` and `/v1/completions` endpoints a
//! `response` or a `text_completion` (so no family maps those).

use super::completion::{join_literals, write_usage, Arguments, Choice, CompletionContext, Usage};
use super::json::{write_str, Arr, Obj};
use super::{Endpoint, Raw};

/// The hex part of the context's fallback id (`chatcmpl-<hex>`): the ids of the objects and
/// items written here are made from it, so a re-run writes the same ids.
fn hex<'c>(ctx: &CompletionContext<'c>) -> &'c str {
    ctx.fallback_id
        .split_once(['-', '_'])
        .map_or(ctx.fallback_id, |(_, h)| h)
}

/// Writes the response body for the endpoint of `ctx`: a `chat.completion` with one choice
/// (`id` is the model's, a string literal, or `ctx.fallback_id`), a `response` or a
/// `text_completion` (both written below).
pub(crate) fn write(
    id: Option<Raw<'_>>,
    choice: &Choice<'_>,
    usage: Option<&Usage>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) {
    // A structured response answered by the forced tool alone is a plain stop.
    let finish = if choice.structured.is_some()
        && choice.calls.is_empty()
        && choice.finish == "tool_calls"
    {
        "stop"
    } else {
        choice.finish
    };
    match ctx.endpoint {
        Endpoint::Responses => return write_response(choice, finish, usage, ctx, out),
        Endpoint::Completions => return write_text_completion(choice, finish, usage, ctx, out),
        Endpoint::ChatCompletions | Endpoint::Embeddings => {}
    }
    let mut o = Obj::open(out);
    match id {
        Some(id) => o.raw("id", id.get()),
        None => o.string("id", ctx.fallback_id),
    }
    o.raw("object", "\"chat.completion\"");
    o.uint("created", ctx.created);
    o.raw("model", ctx.model);
    {
        let mut choices = Arr::open(o.key("choices"));
        let mut c = Obj::open(choices.next());
        c.raw("index", "0");
        {
            let mut m = Obj::open(c.key("message"));
            m.raw("role", "\"assistant\"");
            match (choice.structured, choice.texts.as_slice()) {
                (Some(input), _) => write_str(m.key("content"), input.get()),
                (None, []) => m.raw("content", "null"),
                (None, texts) => join_literals(texts, m.key("content")),
            }
            match choice.refusal.as_slice() {
                [] => m.raw("refusal", "null"),
                refusal => join_literals(refusal, m.key("refusal")),
            }
            if !choice.calls.is_empty() {
                let mut a = Arr::open(m.key("tool_calls"));
                for call in &choice.calls {
                    let mut t = Obj::open(a.next());
                    t.raw("id", call.id.get());
                    t.raw("type", "\"function\"");
                    let mut f = Obj::open(t.key("function"));
                    f.raw("name", call.name.get());
                    write_arguments(&call.arguments, f.key("arguments"));
                    f.close();
                    t.close();
                }
                a.close();
            }
            if !choice.reasoning.is_empty() {
                join_literals(&choice.reasoning, m.key("reasoning_content"));
            }
            m.close();
        }
        c.raw("logprobs", "null");
        c.string("finish_reason", finish);
        c.close();
        choices.close();
    }
    write_usage(usage, o.key("usage"));
    o.raw("system_fingerprint", "null");
    o.close();
}

/// Writes a Responses API `response` object.
pub(crate) fn write_response(
    choice: &Choice<'_>,
    finish: &str,
    usage: Option<&Usage>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) {
    let hex = hex(ctx);
    let incomplete = match finish {
        "length" => Some("max_output_tokens"),
        "content_filter" => Some("content_filter"),
        _ => None,
    };
    let status = if incomplete.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let mut o = Obj::open(out);
    o.string("id", &format!("resp_{hex}"));
    o.raw("object", "\"response\"");
    o.uint("created_at", ctx.created);
    o.string("status", status);
    o.raw("background", "false");
    o.raw("error", "null");
    match incomplete {
        Some(reason) => {
            let mut d = Obj::open(o.key("incomplete_details"));
            d.string("reason", reason);
            d.close();
        }
        None => o.raw("incomplete_details", "null"),
    }
    o.raw("instructions", "null");
    o.raw("max_output_tokens", "null");
    o.raw("model", ctx.model);
    {
        let mut items = Arr::open(o.key("output"));
        if !choice.reasoning.is_empty() {
            let mut r = Obj::open(items.next());
            r.string("id", &format!("rs_{hex}"));
            r.raw("type", "\"reasoning\"");
            let mut summary = Arr::open(r.key("summary"));
            let mut s = Obj::open(summary.next());
            s.raw("type", "\"summary_text\"");
            join_literals(&choice.reasoning, s.key("text"));
            s.close();
            summary.close();
            r.close();
        }
        let refused = !choice.refusal.is_empty();
        if choice.structured.is_some()
            || !choice.texts.is_empty()
            || refused
            || choice.calls.is_empty()
        {
            let mut m = Obj::open(items.next());
            m.string("id", &format!("msg_{hex}"));
            m.raw("type", "\"message\"");
            m.string("status", status);
            m.raw("role", "\"assistant\"");
            let mut content = Arr::open(m.key("content"));
            if choice.structured.is_some() || !choice.texts.is_empty() {
                let mut t = Obj::open(content.next());
                t.raw("type", "\"output_text\"");
                write_text(choice, t.key("text"));
                t.raw("annotations", "[]");
                t.raw("logprobs", "[]");
                t.close();
            }
            if refused {
                let mut r = Obj::open(content.next());
                r.raw("type", "\"refusal\"");
                join_literals(&choice.refusal, r.key("refusal"));
                r.close();
            }
            content.close();
            m.close();
        }
        for (i, call) in choice.calls.iter().enumerate() {
            let mut f = Obj::open(items.next());
            f.string("id", &format!("fc_{hex}_{i}"));
            f.raw("type", "\"function_call\"");
            f.string("status", "completed");
            f.raw("call_id", call.id.get());
            f.raw("name", call.name.get());
            write_arguments(&call.arguments, f.key("arguments"));
            f.close();
        }
        items.close();
    }
    o.raw("parallel_tool_calls", "true");
    o.raw("previous_response_id", "null");
    {
        let mut r = Obj::open(o.key("reasoning"));
        r.raw("effort", "null");
        r.raw("summary", "null");
        r.close();
    }
    o.raw("store", "false");
    o.raw("temperature", "null");
    o.raw("text", "{\"format\":{\"type\":\"text\"}}");
    o.raw("tool_choice", "\"auto\"");
    o.raw("tools", "[]");
    o.raw("top_p", "null");
    o.raw("truncation", "\"disabled\"");
    match usage {
        Some(u) => {
            let mut w = Obj::open(o.key("usage"));
            w.uint("input_tokens", u.prompt_tokens);
            w.raw(
                "input_tokens_details",
                &format!(
                    "{{\"cached_tokens\":{},\"cache_write_tokens\":{}}}",
                    u.cached_tokens, u.cache_write_tokens
                ),
            );
            w.uint("output_tokens", u.completion_tokens);
            w.raw(
                "output_tokens_details",
                &format!("{{\"reasoning_tokens\":{}}}", u.reasoning_tokens),
            );
            w.uint("total_tokens", u.total_tokens());
            w.close();
        }
        None => o.raw("usage", "null"),
    }
    o.raw("metadata", "{}");
    o.close();
}

/// Writes a legacy `text_completion` object: the answer's text in its one choice.
pub(crate) fn write_text_completion(
    choice: &Choice<'_>,
    finish: &str,
    usage: Option<&Usage>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) {
    let mut o = Obj::open(out);
    o.string("id", &format!("cmpl-{}", hex(ctx)));
    o.raw("object", "\"text_completion\"");
    o.uint("created", ctx.created);
    o.raw("model", ctx.model);
    {
        let mut choices = Arr::open(o.key("choices"));
        let mut c = Obj::open(choices.next());
        if choice.structured.is_none() && !choice.refusal.is_empty() {
            // The legacy object has no place for a refusal's words but its text, after any
            // text the model gave before refusing.
            let said: Vec<Raw<'_>> = choice
                .texts
                .iter()
                .chain(&choice.refusal)
                .copied()
                .collect();
            join_literals(&said, c.key("text"));
        } else {
            write_text(choice, c.key("text"));
        }
        c.raw("index", "0");
        c.raw("logprobs", "null");
        // A completions request carries no tools; a call the model made anyway ends the text
        // like a stop (the legacy object has no place for calls).
        c.string(
            "finish_reason",
            if finish == "tool_calls" {
                "stop"
            } else {
                finish
            },
        );
        c.close();
        choices.close();
    }
    write_usage(usage, o.key("usage"));
    o.close();
}

/// The answer's text as one string literal: the structured answer, or the texts joined.
fn write_text(choice: &Choice<'_>, out: &mut Vec<u8>) {
    match (choice.structured, choice.texts.as_slice()) {
        (Some(input), _) => write_str(out, input.get()),
        (None, []) => out.extend_from_slice(b"\"\""),
        (None, texts) => join_literals(texts, out),
    }
}

/// A tool call's arguments as the string OpenAI writes.
pub(crate) fn write_arguments(arguments: &Arguments<'_>, out: &mut Vec<u8>) {
    match arguments {
        Arguments::Object(input) => write_str(out, input.get()),
        Arguments::Text(text) => out.extend_from_slice(Raw::get(*text).as_bytes()),
    }
}
