//! Anthropic Claude on Bedrock: OpenAI chat request → Messages API body (formats.md A.5.1, B.5).
//!
//! Rules, in the order a body is written:
//! - `anthropic_version` is always `bedrock-2023-05-31`.
//! - `max_tokens` ← `max_completion_tokens`, else `max_tokens`, else the configured default.
//! - `system` ← every `system` and `developer` message, wherever it stands, as text blocks in order.
//! - `messages`: user/assistant/tool turns; `tool` messages become `tool_result` blocks of a user
//!   turn; consecutive turns of one role merge into one; empty text is left out (Claude rejects it).
//! - `temperature` above 1 (OpenAI allows up to 2, Claude up to 1) is clamped to 1 and counted.
//! - `reasoning_effort` → `thinking` with a token budget (see [`thinking_budget`]).
//! - `response_format` `json_schema` / `json_object` → a tool named [`JSON_RESPONSE_TOOL`] that
//!   Claude is forced to call; the reverse conversion turns its input back into message content.

use std::borrow::Cow;

use crate::record::Raw;

use crate::record::conversation::{
    check_message_members, check_unsupported, conversation, function_tools, number, response_tool,
    tool_name, Block, MediaPolicy, ResponseTool, Role, ToolResultContent, Turn,
};
use crate::record::json::{self, parse, str_value, Arr, Kind, Obj};
use crate::record::openai::ChatRequest;
use crate::record::{MapOptions, Notes};
use crate::record::{Reject, RejectCode};

/// The Bedrock Messages API version every Claude body carries.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// The name of the tool that carries a `response_format` schema. Claude is forced to call it, and
/// its input is the structured response.
pub const JSON_RESPONSE_TOOL: &str = "json_response";

/// What Bedrock Claude takes as base64: four image types, and PDF documents.
const CLAUDE_MEDIA: MediaPolicy = MediaPolicy {
    family: "Claude",
    images: &["image/jpeg", "image/png", "image/gif", "image/webp"],
    documents: &["application/pdf"],
    elsewhere: "",
};

/// The thinking budget (tokens) for an OpenAI `reasoning_effort`; `None` for no thinking.
///
/// Claude's minimum budget is 1024 tokens; the budget is also capped below `max_tokens` when the
/// body is written.
pub fn thinking_budget(effort: &str) -> Result<Option<u64>, Reject> {
    Ok(match effort {
        "none" => None,
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16384),
        "xhigh" | "max" => Some(32768),
        other => {
            return Err(Reject::invalid(format!(
                "body.reasoning_effort: unknown value \"{other}\" (expected none, minimal, low, medium, high, xhigh or max)"
            )))
        }
    })
}

/// Writes the Claude Messages body for `req` into `out`.
///
/// On a reject, `out` may hold a partial body; the caller truncates it.
pub fn write_body(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    let (system, turns) = conversation(&req.messages, &CLAUDE_MEDIA)?;
    let limits = &opts.limits;
    let max_tokens = limits.max_tokens(req, opts.default_max_tokens, notes)?;

    let forced = response_tool(req)?;
    let thinking = thinking_for(req, max_tokens)?;

    let mut o = Obj::open(out);
    o.string("anthropic_version", ANTHROPIC_VERSION);
    o.uint("max_tokens", max_tokens);
    if !system.is_empty() {
        let mut a = Arr::open(o.key("system"));
        for text in &system {
            let b = a.next();
            b.extend_from_slice(b"{\"type\":\"text\",\"text\":");
            b.extend_from_slice(text.get().as_bytes());
            b.push(b'}');
        }
        a.close();
    }
    write_turns(o.key("messages"), &turns);
    write_sampling(req, opts, thinking.is_some(), notes, &mut o)?;
    write_tools(req, forced.as_ref(), thinking.is_some(), &mut o)?;
    if let Some(budget) = thinking {
        let b = o.key("thinking");
        b.extend_from_slice(b"{\"type\":\"enabled\",\"budget_tokens\":");
        b.extend_from_slice(itoa::Buffer::new().format(budget).as_bytes());
        b.push(b'}');
    }
    o.close();

    check_message_members(req, opts, notes, CLAUDE_MEDIA.family)?;
    check_unsupported(req, opts, notes, CLAUDE_MEDIA.family)
}

/// The extended-thinking budget `reasoning_effort` asks for, below `max_tokens`; `None` for no
/// thinking.
fn thinking_for(req: &ChatRequest<'_>, max_tokens: u64) -> Result<Option<u64>, Reject> {
    let Some(raw) = req.reasoning_effort else {
        return Ok(None);
    };
    let Some(budget) = thinking_budget(&str_value(raw, "body.reasoning_effort")?)? else {
        return Ok(None);
    };
    let budget = budget.min(max_tokens.saturating_sub(1));
    if budget < 1024 {
        return Err(Reject::invalid(format!(
            "body.reasoning_effort: Claude needs a thinking budget of at least 1024 tokens below max_tokens, but max_tokens is {max_tokens}"
        )));
    }
    Ok(Some(budget))
}

/// Writes `temperature`, `top_p`, `top_k` and `stop_sequences`, within the model's ranges and
/// what extended thinking allows.
fn write_sampling(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    thinking: bool,
    notes: &mut Notes,
    o: &mut Obj<'_>,
) -> Result<(), Reject> {
    let limits = &opts.limits;
    if let Some(raw) = req.temperature {
        let t = limits.temperature(raw, notes)?;
        // Judged as clamped: 1.5 is Claude's 1, which extended thinking takes.
        if thinking && t.parse::<f64>().ok() != Some(1.0) {
            return Err(Reject::invalid("body.temperature: Claude does not accept a temperature with extended thinking (reasoning_effort); remove one of them"));
        }
        o.raw("temperature", &t);
    }
    if let Some(raw) = req.top_p {
        let p = limits.top_p(raw)?;
        if thinking && number(raw, "body.top_p")? < 0.95 {
            return Err(Reject::invalid("body.top_p: with extended thinking (reasoning_effort) Claude accepts top_p only from 0.95 to 1"));
        }
        o.raw("top_p", p);
    }
    if let Some(raw) = req.top_k {
        let k = limits.top_k(raw, notes)?;
        if thinking {
            return Err(Reject::invalid("body.top_k: Claude does not accept top_k with extended thinking (reasoning_effort)"));
        }
        o.uint("top_k", k);
    }
    if let Some(raw) = req.stop {
        limits.stop(raw, notes, o.key("stop_sequences"))?;
    }
    Ok(())
}

/// Writes `tools` and `tool_choice`: the request's function tools, and the forced
/// [`JSON_RESPONSE_TOOL`] that carries a `response_format`.
fn write_tools(
    req: &ChatRequest<'_>,
    forced: Option<&ResponseTool<'_>>,
    thinking: bool,
    o: &mut Obj<'_>,
) -> Result<(), Reject> {
    let tools = function_tools(req, Some(JSON_RESPONSE_TOOL))?;
    if tools.is_empty() && forced.is_none() {
        return Ok(());
    }
    let mut a = Arr::open(o.key("tools"));
    for tool in &tools {
        let mut t = Obj::open(a.next());
        t.raw("name", tool.name.get());
        if let Some(d) = tool.description {
            t.raw("description", d.get());
        }
        t.raw("input_schema", tool.parameters);
        t.close();
    }
    if let Some(f) = forced {
        write_response_tool(f, a.next());
    }
    a.close();
    let choice = tool_choice(req, forced.is_some())?;
    if thinking
        && matches!(choice, Some(ref c) if c.starts_with("{\"type\":\"any\"") || c.starts_with("{\"type\":\"tool\""))
    {
        return Err(Reject::invalid(
            "body.reasoning_effort: Claude cannot be forced to call a tool (tool_choice required or named, or response_format) with extended thinking",
        ));
    }
    if let Some(choice) = choice {
        o.raw("tool_choice", &choice);
    }
    Ok(())
}

fn write_turns(out: &mut Vec<u8>, turns: &[Turn<'_>]) {
    let mut a = Arr::open(out);
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
            write_block(block, blocks.next());
        }
        blocks.close();
        o.close();
    }
    a.close();
}

fn write_block(block: &Block<'_>, out: &mut Vec<u8>) {
    match block {
        Block::Text(t) => {
            out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
            out.extend_from_slice(t.get().as_bytes());
            out.push(b'}');
        }
        Block::Base64 {
            kind,
            media_type,
            data,
        } => {
            for part in [
                "{\"type\":\"",
                kind,
                "\",\"source\":{\"type\":\"base64\",\"media_type\":\"",
                media_type,
                "\",\"data\":\"",
                data,
                "\"}}",
            ] {
                out.extend_from_slice(part.as_bytes());
            }
        }
        Block::ToolUse { id, name, input } => {
            let mut o = Obj::open(out);
            o.raw("type", "\"tool_use\"");
            o.raw("id", id.get());
            o.raw("name", name.get());
            o.raw("input", input);
            o.close();
        }
        Block::ToolResult { id, content } => {
            let mut o = Obj::open(out);
            o.raw("type", "\"tool_result\"");
            o.raw("tool_use_id", id.get());
            match content {
                ToolResultContent::Raw(raw) => o.raw("content", raw.get()),
                ToolResultContent::Texts(texts) => {
                    let mut a = Arr::open(o.key("content"));
                    for t in texts {
                        write_block(&Block::Text(*t), a.next());
                    }
                    a.close();
                }
            }
            o.close();
        }
    }
}

fn write_response_tool(tool: &ResponseTool<'_>, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    o.string("name", JSON_RESPONSE_TOOL);
    match tool.description {
        Some(d) => o.raw("description", d.get()),
        None => o.string(
            "description",
            "Respond with a JSON object as the input of this tool.",
        ),
    }
    o.raw(
        "input_schema",
        tool.schema.map_or("{\"type\":\"object\"}", |s| s.get()),
    );
    o.close();
}

/// The Claude `tool_choice` object for the request, if one is needed.
fn tool_choice(req: &ChatRequest<'_>, forced: bool) -> Result<Option<String>, Reject> {
    let no_parallel = match req.parallel_tool_calls {
        None => false,
        Some(raw) => match raw.get() {
            "true" => false,
            "false" => true,
            other => {
                return Err(Reject::invalid(format!(
                    "body.parallel_tool_calls: expected a boolean, found {other}"
                )))
            }
        },
    };
    let suffix = if no_parallel {
        ",\"disable_parallel_tool_use\":true}"
    } else {
        "}"
    };
    let choice = match req.tool_choice {
        None => None,
        Some(raw) if Kind::of(raw) == Kind::String => Some(match &*json::text_value(raw.get()) {
            "auto" => "auto",
            "required" => "any",
            "none" => "none",
            _ => {
                return Err(Reject::invalid(format!(
                "body.tool_choice: unknown value {} (expected auto, required, none or a function)",
                raw.get()
            )))
            }
        }),
        Some(raw) => {
            #[derive(serde::Deserialize)]
            struct Named<'a> {
                #[serde(rename = "type", borrow)]
                kind: Cow<'a, str>,
                #[serde(borrow)]
                function: Option<NamedFn<'a>>,
            }
            #[derive(serde::Deserialize)]
            struct NamedFn<'a> {
                #[serde(borrow)]
                name: Raw<'a>,
            }
            let named: Named<'_> = parse(raw, "body.tool_choice")?;
            match (named.kind.as_ref(), named.function) {
                ("function", Some(f)) => {
                    tool_name(f.name, "body.tool_choice.function.name")?;
                    if forced {
                        return Err(Reject::invalid("body.tool_choice: a named tool choice cannot be combined with response_format json_schema/json_object"));
                    }
                    return Ok(Some(format!(
                        "{{\"type\":\"tool\",\"name\":{}{suffix}",
                        f.name.get()
                    )));
                }
                (kind, _) => {
                    return Err(Reject::new(
                        RejectCode::UnsupportedParameter,
                        format!(
                        "body.tool_choice: type \"{kind}\" is not supported by Claude on Bedrock"
                    ),
                    ))
                }
            }
        }
    };
    if forced {
        if matches!(choice, Some("any") | Some("none")) {
            return Err(Reject::invalid(
                "body.tool_choice: \"required\"/\"none\" cannot be combined with response_format json_schema/json_object",
            ));
        }
        return Ok(Some(format!(
            "{{\"type\":\"tool\",\"name\":\"{JSON_RESPONSE_TOOL}\"}}"
        )));
    }
    Ok(match choice {
        // Claude's "none" takes no disable_parallel_tool_use.
        Some("none") => Some("{\"type\":\"none\"}".to_owned()),
        Some(kind) => Some(format!("{{\"type\":\"{kind}\"{suffix}")),
        None if no_parallel => Some(format!("{{\"type\":\"auto\"{suffix}")),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn map_with(body: Value, opts: &MapOptions) -> Result<(Value, Notes), Reject> {
        map_text(&body.to_string(), opts)
    }

    /// [`map_with`] for a body as written (a `Value` keeps one of two members of a name).
    fn map_text(text: &str, opts: &MapOptions) -> Result<(Value, Notes), Reject> {
        let raw: Raw<'_> = serde_json::from_str(text).unwrap();
        let req = ChatRequest::parse(raw)?;
        let mut notes = Notes::default();
        let mut out = Vec::new();
        write_body(&req, opts, &mut notes, &mut out)?;
        Ok((serde_json::from_slice(&out).unwrap(), notes))
    }

    fn map(body: Value) -> Result<Value, Reject> {
        map_with(body, &MapOptions::new(crate::record::Family::Anthropic, "")).map(|(v, _)| v)
    }

    fn user(extra: Value) -> Value {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    }

    #[test]
    fn version_and_max_tokens_are_always_set() {
        let v = map(user(json!({}))).unwrap();
        assert_eq!(v["anthropic_version"], ANTHROPIC_VERSION);
        assert_eq!(v["max_tokens"], 4096);
        let opts = MapOptions {
            default_max_tokens: 77,
            ..MapOptions::new(crate::record::Family::Anthropic, "")
        };
        assert_eq!(
            map_with(user(json!({})), &opts).unwrap().0["max_tokens"],
            77
        );
        assert_eq!(
            map(user(json!({"max_tokens": 5}))).unwrap()["max_tokens"],
            5
        );
        assert_eq!(
            map(user(json!({"max_tokens": 5, "max_completion_tokens": 6}))).unwrap()["max_tokens"],
            6
        );
        assert!(map(user(json!({"max_tokens": 1.5}))).is_err());
    }

    #[test]
    fn tool_choice_table() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let cases = [
            (json!("auto"), None, json!({"type": "auto"})),
            (json!("required"), None, json!({"type": "any"})),
            (json!("none"), None, json!({"type": "none"})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                None,
                json!({"type": "tool", "name": "f"}),
            ),
            (
                json!("auto"),
                Some(false),
                json!({"type": "auto", "disable_parallel_tool_use": true}),
            ),
            (json!("required"), Some(true), json!({"type": "any"})),
            (json!("none"), Some(false), json!({"type": "none"})),
        ];
        for (choice, parallel, want) in cases {
            let mut extra = json!({"tools": tools, "tool_choice": choice});
            if let Some(p) = parallel {
                extra["parallel_tool_calls"] = json!(p);
            }
            assert_eq!(
                map(user(extra.clone())).unwrap()["tool_choice"],
                want,
                "{extra}"
            );
        }
        // Without tools there is nothing to choose from: no tool_choice is sent.
        let v = map(user(json!({"tool_choice": "required"}))).unwrap();
        assert!(v.get("tool_choice").is_none() && v.get("tools").is_none());
        let err = map(user(
            json!({"tools": tools, "tool_choice": {"type": "allowed_tools"}}),
        ))
        .unwrap_err();
        assert_eq!(err.code, RejectCode::UnsupportedParameter);
    }

    #[test]
    fn temperature_above_one_is_clamped_and_noted() {
        let (v, notes) = map_with(
            user(json!({"temperature": 1.7})),
            &MapOptions::new(crate::record::Family::Anthropic, ""),
        )
        .unwrap();
        assert_eq!(v["temperature"], 1);
        assert_eq!(notes.clamped, ["temperature"]);
        let (v, notes) = map_with(
            user(json!({"temperature": 0.3})),
            &MapOptions::new(crate::record::Family::Anthropic, ""),
        )
        .unwrap();
        assert_eq!(v["temperature"], 0.3);
        assert!(notes.clamped.is_empty());
        assert!(map(user(json!({"temperature": "hot"}))).is_err());
        assert!(map(user(json!({"top_p": 1.5}))).is_err());
    }

    #[test]
    fn response_format_forces_the_json_tool_and_conflicts_are_rejected() {
        let schema = json!({"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}});
        let v = map(user(json!({"response_format": schema}))).unwrap();
        assert_eq!(v["tools"][0]["name"], JSON_RESPONSE_TOOL);
        assert_eq!(
            v["tool_choice"],
            json!({"type": "tool", "name": JSON_RESPONSE_TOOL})
        );
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let v = map(user(json!({"response_format": schema, "tools": tools}))).unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), 2);
        assert!(map(user(
            json!({"response_format": schema, "tools": tools, "tool_choice": "required"})
        ))
        .is_err());
        let clash = json!([{"type": "function", "function": {"name": JSON_RESPONSE_TOOL}}]);
        assert!(map(user(json!({"response_format": schema, "tools": clash}))).is_err());
        // Reserved without a response_format too: every call of it comes back as content.
        let refused = map(user(json!({"tools": clash}))).unwrap_err();
        assert!(refused.message.contains("reserved"), "{}", refused.message);

        assert!(map(user(json!({"response_format": {"type": "yaml"}}))).is_err());
    }

    #[test]
    fn reasoning_effort_becomes_a_thinking_budget_below_max_tokens() {
        let v = map(user(json!({"reasoning_effort": "low", "max_tokens": 5000}))).unwrap();
        assert_eq!(
            v["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        let v = map(user(
            json!({"reasoning_effort": "high", "max_tokens": 5000}),
        ))
        .unwrap();
        assert_eq!(v["thinking"]["budget_tokens"], 4999);
        assert!(map(user(json!({"reasoning_effort": "low", "max_tokens": 1000}))).is_err());
        assert!(map(user(json!({"reasoning_effort": "none"})))
            .unwrap()
            .get("thinking")
            .is_none());
        assert!(map(user(json!({"reasoning_effort": "low", "top_k": 5}))).is_err());
        assert!(map(user(json!({"reasoning_effort": "extreme"}))).is_err());
    }

    #[test]
    fn images_must_be_inline_base64_of_a_claude_type() {
        let img = |url: &str| json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]});
        let v = map(img("data:image/webp;base64,AAAA")).unwrap();
        assert_eq!(
            v["messages"][0]["content"][0]["source"],
            json!({"type": "base64", "media_type": "image/webp", "data": "AAAA"})
        );
        for bad in [
            "https://x/y.png",
            "data:image/tiff;base64,AAAA",
            "data:image/png,AAAA",
            "data:image/png;base64,A\"A",
        ] {
            let err = map(img(bad)).unwrap_err();
            assert!(
                err.message
                    .starts_with("body.messages[0].content[0].image_url.url"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn tool_messages_become_tool_results_in_a_user_turn() {
        let v = map(json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":[1,\n2]}"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "r"},
            {"role": "user", "content": "more"}
        ]}))
        .unwrap();
        let turns = v["messages"].as_array().unwrap();
        assert_eq!(turns.len(), 3);
        assert_eq!(
            turns[1]["content"][0],
            json!({"type": "tool_use", "id": "a", "name": "f", "input": {"x": [1, 2]}})
        );
        assert_eq!(turns[2]["role"], "user");
        assert_eq!(
            turns[2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "a", "content": "r"})
        );
        assert_eq!(
            turns[2]["content"][1],
            json!({"type": "text", "text": "more"})
        );
        let missing = map(json!({"messages": [{"role": "tool", "content": "r"}]})).unwrap_err();
        assert!(missing.message.contains("tool_call_id"), "{missing}");
        let not_object = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "[1]"}}]}]});
        assert!(map(not_object)
            .unwrap_err()
            .message
            .contains("expected an object"));
        // A member given twice, at any depth and in any spelling, is refused as anywhere else.
        for (arguments, key) in [
            (r#"{"a":1,"a":2}"#, "a"),
            (r#"{"x":{"b":[],"\u0062":0}}"#, "\\u0062"),
            (r#"{"x":[{"c":1},{"d":1,"d":1}]}"#, "d"),
        ] {
            let twice = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": arguments}}]}]});
            let reject = map(twice).unwrap_err();
            assert!(
                reject
                    .message
                    .contains(&format!("duplicate member `{key}`")),
                "{arguments}: {reject}"
            );
        }
        let once = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": r#"{"x":[{"c":1},{"c":1}],"c":{"x":2}}"#}}]}]});
        assert!(map(once).is_ok());
        // And in the schemas copied as written: a tool's parameters, response_format's schema.
        let twice = |at: &str, schema: &str| {
            let body = format!(
                r#"{{"messages":[{{"role":"user","content":"hi"}}],{}}}"#,
                at.replace("SCHEMA", schema)
            );
            map_text(
                &body,
                &MapOptions::new(crate::record::Family::Anthropic, ""),
            )
            .map(drop)
        };
        for at in [
            r#""tools":[{"type":"function","function":{"name":"f","parameters":SCHEMA}}]"#,
            r#""response_format":{"type":"json_schema","json_schema":{"name":"n","schema":SCHEMA}}"#,
        ] {
            let schema =
                r#"{"type":"object","properties":{"a":{"type":"string"},"a":{"type":"number"}}}"#;
            let reject = twice(at, schema).unwrap_err();
            assert!(reject.message.contains("duplicate member `a`"), "{reject}");
            let fine =
                r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#;
            assert!(twice(at, fine).is_ok(), "{at}");
        }
    }
}
