//! The OpenAI `chat.completion` body every chat family's response becomes, written in one place.

use super::anthropic::{CompletionContext, Usage};
use super::json::{write_str, Arr, Obj};
use super::Raw;

/// A tool call's `arguments`.
pub(crate) enum Arguments<'a> {
    /// A JSON object, to be written as a string.
    Object(Raw<'a>),
    /// Already the arguments string (a JSON string literal).
    Text(Raw<'a>),
}

/// One tool call.
pub(crate) struct Call<'a> {
    pub id: Raw<'a>,
    pub name: Raw<'a>,
    pub arguments: Arguments<'a>,
}

/// What the one choice of a completion says.
pub(crate) struct Choice<'a> {
    /// String literals, joined into `content` (null when none).
    pub texts: Vec<Raw<'a>>,
    /// The input of the forced `json_response` tool: the structured `content`.
    pub structured: Option<Raw<'a>>,
    /// String literals, joined into `reasoning_content`.
    pub reasoning: Vec<Raw<'a>>,
    pub calls: Vec<Call<'a>>,
    pub finish: &'static str,
}

/// Joins JSON string literals into one literal by splicing their insides (escapes stay as they
/// are, so nothing is unescaped and escaped again).
pub(crate) fn join_literals(parts: &[Raw<'_>], out: &mut Vec<u8>) {
    if let [one] = parts {
        out.extend_from_slice(one.get().as_bytes());
        return;
    }
    out.push(b'"');
    for p in parts {
        let t = p.get();
        out.extend_from_slice(&t.as_bytes()[1..t.len() - 1]);
    }
    out.push(b'"');
}

/// Writes `usage` (`null` when the model reports none).
pub(crate) fn write_usage(usage: Option<&Usage>, out: &mut Vec<u8>) {
    let Some(usage) = usage else {
        out.extend_from_slice(b"null");
        return;
    };
    let mut u = Obj::open(out);
    u.raw("prompt_tokens", &usage.prompt_tokens.to_string());
    u.raw("completion_tokens", &usage.completion_tokens.to_string());
    u.raw(
        "total_tokens",
        &(usage.prompt_tokens + usage.completion_tokens).to_string(),
    );
    let mut d = Obj::open(u.key("prompt_tokens_details"));
    d.raw("cached_tokens", &usage.cached_tokens.to_string());
    d.close();
    u.close();
}

/// Writes a `chat.completion` with one choice. `id` is the model's (a string literal) or
/// `ctx.fallback_id`.
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
    let mut o = Obj::open(out);
    match id {
        Some(id) => o.raw("id", id.get()),
        None => o.string("id", ctx.fallback_id),
    }
    o.raw("object", "\"chat.completion\"");
    o.raw("created", &ctx.created.to_string());
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
            m.raw("refusal", "null");
            if !choice.calls.is_empty() {
                let mut a = Arr::open(m.key("tool_calls"));
                for call in &choice.calls {
                    let mut t = Obj::open(a.next());
                    t.raw("id", call.id.get());
                    t.raw("type", "\"function\"");
                    let mut f = Obj::open(t.key("function"));
                    f.raw("name", call.name.get());
                    match call.arguments {
                        Arguments::Object(input) => write_str(f.key("arguments"), input.get()),
                        Arguments::Text(text) => f.raw("arguments", text.get()),
                    }
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
