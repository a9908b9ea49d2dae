//! `/v1/responses` request bodies, read into the chat request every family already writes.
//!
//! A Responses body says what a chat body says in other words: `input` items are messages,
//! `instructions` a system message, `function_call` / `function_call_output` items an assistant
//! tool call and its tool result, `text.format` the response format, `max_output_tokens` the
//! maximum. [`to_chat`] rewrites the body member by member into a chat body (values copied as
//! written, escapes intact), so the one model-neutral conversation and every family's writer
//! serve it with no mapping of their own; [`Translated::rephrase`] turns the chat body's key
//! paths in a reject back into the line's own (`body.messages[2]` → `body.input[1]`).
//!
//! What a batch line cannot carry is refused with the reason: built-in tools (they run inside
//! OpenAI), `previous_response_id` and `conversation` (a batch line has no earlier response),
//! stored prompts, item references; a `reasoning` item of an earlier response is refused, or
//! with `--drop-unsupported` dropped and counted. Members that describe the call (`store`,
//! `metadata`, `stream`, `background`, `include`, `truncation`, …) are ignored, as on the chat
//! path; members this crate does not know go through by name, so the chat path's rule (refuse,
//! or drop with `--drop-unsupported`) applies to them alike.

use crate::record::json::{as_text, expect, Arr, Kind, Obj};
use crate::record::{MapOptions, Notes, Raw, Reject, RejectCode};

use super::holds_something;
use super::members::{unknown, Members, Sorting, Translated};
use crate::record::conversation::refuse_fields;

/// Members that describe the call, not the generation: ignored as the chat path ignores its own.
const IGNORED: &[&str] = &[
    "store",
    "metadata",
    "stream",
    "stream_options",
    "background",
    "include",
    "truncation",
    "service_tier",
    "user",
    "safety_identifier",
    "prompt_cache_key",
];

/// Members copied into the chat body under the same name (the chat path reads and checks them).
const SAME_NAME: &[&str] = &[
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "top_logprobs",
];

/// Chat completions members a Responses body says otherwise: refused by name (or dropped), never
/// honoured on the quiet.
const CHAT_ONLY: &[&str] = &[
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "response_format",
    "reasoning_effort",
];

/// How the other members are sorted.
const SORTING: Sorting<'static> = Sorting {
    same_name: SAME_NAME,
    ignored: IGNORED,
    chat_only: CHAT_ONLY,
    why: "a chat completions member, not a Responses one (input, max_output_tokens, text.format, reasoning.effort say it here)",
};

/// Rewrites a `/v1/responses` body as a chat completions body (see the module doc).
pub(crate) fn to_chat<'a>(
    members: Members<'a>,
    opts: &MapOptions,
    notes: &mut Notes,
) -> Result<Translated<'a>, Reject> {
    let mut t = Translated::new(&members);
    let mut messages: Vec<Vec<u8>> = Vec::new();
    if let Some(instructions) = members.get("instructions") {
        expect(instructions, Kind::String, "body.instructions")?;
        let mut m = Vec::new();
        let mut o = Obj::open(&mut m);
        o.raw("role", "\"system\"");
        o.raw("content", instructions.get());
        o.close();
        t.renames.push((
            format!("body.messages[{}]", messages.len()),
            "body.instructions".into(),
        ));
        messages.push(m);
    }
    let Some(input) = members.get("input") else {
        return Err(Reject::invalid("body.input: missing"));
    };
    match Kind::of(input) {
        Kind::String => {
            let mut m = Vec::new();
            let mut o = Obj::open(&mut m);
            o.raw("role", "\"user\"");
            o.raw("content", input.get());
            o.close();
            t.renames.push((
                format!("body.messages[{}]", messages.len()),
                "body.input".into(),
            ));
            messages.push(m);
        }
        Kind::Array => {
            let items = Members::of_elements(input, "body.input")?;
            // Function calls in a row are one assistant turn (as a chat model made them).
            let mut calls: Vec<(Vec<u8>, String)> = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let at = format!("body.input[{i}]");
                // A message lands after the calls pending before it.
                let index = messages.len() + usize::from(!calls.is_empty());
                match input_item(item, &at, index, opts, notes, &mut t.renames)? {
                    Some(Item::Call(call)) => calls.push((call, at)),
                    Some(Item::Message(message)) => {
                        flush_calls(&mut calls, &mut messages, &mut t.renames);
                        messages.push(message);
                    }
                    None => {}
                }
            }
            flush_calls(&mut calls, &mut messages, &mut t.renames);
        }
        other => {
            return Err(Reject::invalid(format!(
                "body.input: expected a string or an array of items, found {}",
                other.name()
            )))
        }
    }
    t.renames
        .push(("body.messages".into(), "body.input".into()));

    let mut out = Vec::with_capacity(members.values_len() + 64);
    let mut o = Obj::open(&mut out);
    if let Some(model) = members.get("model") {
        o.raw("model", model.get());
    }
    {
        let mut a = Arr::open(o.key("messages"));
        for m in &messages {
            a.next().extend_from_slice(m);
        }
        a.close();
    }
    for (key, value) in &members.0 {
        if value.get() == "null" {
            continue;
        }
        match key.as_ref() {
            "model" | "input" | "instructions" => {}
            "max_output_tokens" => {
                o.raw("max_completion_tokens", value.get());
                t.renames.push((
                    "body.max_completion_tokens".into(),
                    "body.max_output_tokens".into(),
                ));
            }
            "tools" => tools(*value, &mut o, &mut t.renames)?,
            "tool_choice" => tool_choice(*value, &mut o, &mut t.renames)?,
            "text" => text(*value, &mut o, &mut t.renames)?,
            "reasoning" => reasoning(*value, &mut o, &mut t.renames)?,
            "previous_response_id" | "conversation" => {
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    format!("body.{key}: a batch line has no earlier response or conversation to continue; send the whole conversation in input"),
                ))
            }
            "prompt" => {
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    "body.prompt: a stored prompt lives in OpenAI's account; write its text into instructions and input",
                ))
            }
            // Unknown ones go to the chat path, which refuses them by name (or drops them).
            name => SORTING.member(&mut o, name, *value, opts, notes)?,
        }
    }
    o.close();
    t.set_body(out);
    // What the rewrite named otherwise, wherever a message or a dropped field's name says it.
    t.renames.extend(
        [
            (".image_url.url", ".image_url"),
            (".file.file_data", ".file_data"),
            (".file.file_id", ".file_id"),
            ("max_completion_tokens", "max_output_tokens"),
            ("response_format", "text.format"),
            ("reasoning_effort", "reasoning.effort"),
        ]
        .map(|(chat, line)| (chat.to_owned(), line.to_owned())),
    );
    Ok(t)
}

/// What an `input` item becomes.
enum Item {
    /// A chat message.
    Message(Vec<u8>),
    /// A tool call of an assistant turn (`function_call`), to be grouped with its neighbours.
    Call(Vec<u8>),
}

/// Writes the function calls in a row as one assistant message, with their key paths.
fn flush_calls(
    calls: &mut Vec<(Vec<u8>, String)>,
    messages: &mut Vec<Vec<u8>>,
    renames: &mut Vec<(String, String)>,
) {
    if calls.is_empty() {
        return;
    }
    let chat = format!("body.messages[{}]", messages.len());
    let mut out = Vec::new();
    let mut o = Obj::open(&mut out);
    o.raw("role", "\"assistant\"");
    o.raw("content", "null");
    let mut a = Arr::open(o.key("tool_calls"));
    for (k, (call, at)) in calls.iter().enumerate() {
        a.next().extend_from_slice(call);
        let call = format!("{chat}.tool_calls[{k}]");
        renames.extend([
            (
                format!("{call}.function.arguments"),
                format!("{at}.arguments"),
            ),
            (format!("{call}.function.name"), format!("{at}.name")),
            (format!("{call}.function"), at.clone()),
            (format!("{call}.id"), format!("{at}.call_id")),
            (call, at.clone()),
        ]);
    }
    a.close();
    o.close();
    renames.push((chat, calls[0].1.clone()));
    messages.push(out);
    calls.clear();
}

/// One `input` item as a chat message or tool call (`None` for a dropped one); `index` is the
/// position a message takes in the chat body.
fn input_item(
    item: (Raw<'_>, Option<Members<'_>>),
    at: &str,
    index: usize,
    opts: &MapOptions,
    notes: &mut Notes,
    renames: &mut Vec<(String, String)>,
) -> Result<Option<Item>, Reject> {
    let m = Members::of_element(item, at)?;
    let chat = format!("body.messages[{index}]");
    let kind = match m.get("type") {
        Some(raw) => as_text(expect(raw, Kind::String, format_args!("{at}.type"))?)
            .unwrap_or_default()
            .into_owned(),
        None => "message".to_owned(),
    };
    // The members each kind of item is read by, and `id` and `status`, which describe the
    // response an item was given back from; any other that holds something would be lost on the
    // way to the chat body, so it is refused by name (or dropped and counted).
    let known: &[&str] = match kind.as_str() {
        "message" => &["type", "role", "content", "id", "status"],
        "function_call" => &["type", "call_id", "name", "arguments", "id", "status"],
        "function_call_output" => &["type", "call_id", "output", "id", "status"],
        // Refused or dropped whole below.
        _ => &[],
    };
    if !known.is_empty() {
        for (name, value) in &m.0 {
            if !known.contains(&name.as_ref()) && holds_something(*value) {
                let field = format!("{}.{name}", &at["body.".len()..]);
                refuse_fields(
                    &[(&field, true)],
                    opts,
                    notes,
                    "no Bedrock model takes this member of an input item",
                )?;
            }
        }
    }
    let mut out = Vec::new();
    let mut o = Obj::open(&mut out);
    match kind.as_str() {
        "message" => {
            let Some(role) = m.get("role") else {
                return Err(Reject::invalid(format!("{at}.role: missing")));
            };
            let role_text = as_text(expect(role, Kind::String, format_args!("{at}.role"))?);
            if !matches!(
                role_text.as_deref(),
                Some("user" | "assistant" | "system" | "developer")
            ) {
                return Err(Reject::invalid(format!(
                    "{at}.role: expected \"user\", \"assistant\", \"system\" or \"developer\", found {}",
                    role.get()
                )));
            }
            o.raw("role", role.get());
            let Some(content) = m.get("content") else {
                return Err(Reject::invalid(format!("{at}.content: missing")));
            };
            content_parts(content, &format!("{at}.content"), o.key("content"))?;
        }
        "function_call" => {
            let (call_id, name, arguments) = (
                required(&m, "call_id", at, Kind::String)?,
                required(&m, "name", at, Kind::String)?,
                required(&m, "arguments", at, Kind::String)?,
            );
            let mut call = Vec::new();
            let mut c = Obj::open(&mut call);
            c.raw("id", call_id.get());
            c.raw("type", "\"function\"");
            let mut f = Obj::open(c.key("function"));
            f.raw("name", name.get());
            f.raw("arguments", arguments.get());
            f.close();
            c.close();
            return Ok(Some(Item::Call(call)));
        }
        "function_call_output" => {
            let call_id = required(&m, "call_id", at, Kind::String)?;
            let Some(output) = m.get("output") else {
                return Err(Reject::invalid(format!("{at}.output: missing")));
            };
            o.raw("role", "\"tool\"");
            o.raw("tool_call_id", call_id.get());
            content_parts(output, &format!("{at}.output"), o.key("content"))?;
            renames.extend([
                (format!("{chat}.tool_call_id"), format!("{at}.call_id")),
                (format!("{chat}.content"), format!("{at}.output")),
            ]);
        }
        "reasoning" => {
            if !opts.drop_unsupported {
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    format!("{at}: a reasoning item of an earlier response cannot be given back to a Bedrock model (use --drop-unsupported to drop it)"),
                ));
            }
            notes.dropped.push(format!("{}:reasoning", &at["body.".len()..]));
            return Ok(None);
        }
        "item_reference" => {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("{at}: an item reference points into OpenAI's stored items, which a batch job cannot read; send the item itself"),
            ))
        }
        other => {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("{at}: items of type \"{other}\" are not supported (messages, function_call and function_call_output items are)"),
            ))
        }
    }
    o.close();
    renames.push((chat, at.to_owned()));
    Ok(Some(Item::Message(out)))
}

/// A member that must be there, of kind `kind`.
fn required<'a>(m: &Members<'a>, key: &str, at: &str, kind: Kind) -> Result<Raw<'a>, Reject> {
    match m.get(key) {
        Some(raw) => expect(raw, kind, format_args!("{at}.{key}")),
        None => Err(Reject::invalid(format!("{at}.{key}: missing"))),
    }
}

/// Writes a message's `content` (or a tool result's `output`) as chat content: a string as it
/// is, parts one for one (so their indexes stay the same).
fn content_parts(raw: Raw<'_>, at: &str, out: &mut Vec<u8>) -> Result<(), Reject> {
    match Kind::of(raw) {
        Kind::String => {
            out.extend_from_slice(raw.get().as_bytes());
            return Ok(());
        }
        Kind::Array => {}
        other => {
            return Err(Reject::invalid(format!(
                "{at}: expected a string or an array of content parts, found {}",
                other.name()
            )))
        }
    }
    let parts = Members::of_elements(raw, at)?;
    let mut a = Arr::open(out);
    for (j, part) in parts.into_iter().enumerate() {
        let at = format!("{at}[{j}]");
        let p = Members::of_element(part, &at)?;
        let kind = match p.get("type") {
            Some(t) => as_text(expect(t, Kind::String, format_args!("{at}.type"))?)
                .unwrap_or_default()
                .into_owned(),
            None => return Err(Reject::invalid(format!("{at}.type: missing"))),
        };
        let mut o = Obj::open(a.next());
        match kind.as_str() {
            "input_text" | "output_text" | "text" => {
                o.raw("type", "\"text\"");
                o.raw("text", required(&p, "text", &at, Kind::String)?.get());
            }
            "refusal" => {
                o.raw("type", "\"refusal\"");
                o.raw("refusal", required(&p, "refusal", &at, Kind::String)?.get());
            }
            "input_image" => {
                let Some(url) = p.get("image_url") else {
                    return Err(Reject::new(
                        RejectCode::UnsupportedParameter,
                        format!("{at}: an image by file_id lives in OpenAI's file store, which a batch job cannot read; send it as a data: URL in image_url"),
                    ));
                };
                o.raw("type", "\"image_url\"");
                let mut i = Obj::open(o.key("image_url"));
                i.raw("url", expect(url, Kind::String, format_args!("{at}.image_url"))?.get());
                i.close();
            }
            "input_file" => {
                if p.get("file_url").is_some() {
                    return Err(Reject::new(
                        RejectCode::UnsupportedParameter,
                        format!("{at}.file_url: a batch job does not fetch URLs; send the file as a data: URL in file_data"),
                    ));
                }
                o.raw("type", "\"file\"");
                let mut f = Obj::open(o.key("file"));
                for key in ["file_data", "file_id", "filename"] {
                    if let Some(v) = p.get(key) {
                        f.raw(key, v.get());
                    }
                }
                f.close();
            }
            other => {
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    format!("{at}: content parts of type \"{other}\" are not supported (input_text, input_image and input_file are)"),
                ))
            }
        }
        o.close();
    }
    a.close();
    Ok(())
}

/// `tools`: function tools in the chat shape (`{"type":"function","function":{…}}`).
fn tools(raw: Raw<'_>, o: &mut Obj<'_>, renames: &mut Vec<(String, String)>) -> Result<(), Reject> {
    let list = Members::of_elements(expect(raw, Kind::Array, "body.tools")?, "body.tools")?;
    let mut a = Arr::open(o.key("tools"));
    for (i, tool) in list.into_iter().enumerate() {
        let at = format!("body.tools[{i}]");
        let t = Members::of_element(tool, &at)?;
        let kind = as_text(required(&t, "type", &at, Kind::String)?).unwrap_or_default();
        if kind != "function" {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("{at}: the built-in tool \"{kind}\" runs inside OpenAI; a Bedrock model takes function tools only"),
            ));
        }
        let mut w = Obj::open(a.next());
        w.raw("type", "\"function\"");
        let mut f = Obj::open(w.key("function"));
        for (key, value) in &t.0 {
            if key != "type" {
                f.raw(key, value.get());
            }
        }
        f.close();
        w.close();
        renames.push((format!("{at}.function"), at));
    }
    a.close();
    Ok(())
}

/// `tool_choice`: the modes as they are; `{"type":"function","name":…}` in the chat shape.
fn tool_choice(
    raw: Raw<'_>,
    o: &mut Obj<'_>,
    renames: &mut Vec<(String, String)>,
) -> Result<(), Reject> {
    if Kind::of(raw) != Kind::Object {
        o.raw("tool_choice", raw.get());
        return Ok(());
    }
    let c = Members::of(raw, "body.tool_choice")?;
    let kind = as_text(required(&c, "type", "body.tool_choice", Kind::String)?).unwrap_or_default();
    if kind != "function" {
        return Err(Reject::new(
            RejectCode::UnsupportedParameter,
            format!("body.tool_choice: a choice of type \"{kind}\" is not supported (\"auto\", \"none\", \"required\" and a function are)"),
        ));
    }
    let name = required(&c, "name", "body.tool_choice", Kind::String)?;
    let mut w = Obj::open(o.key("tool_choice"));
    w.raw("type", "\"function\"");
    let mut f = Obj::open(w.key("function"));
    f.raw("name", name.get());
    f.close();
    w.close();
    renames.push((
        "body.tool_choice.function".into(),
        "body.tool_choice".into(),
    ));
    Ok(())
}

/// `text`: its `format` as the chat `response_format`; `verbosity` goes to the chat path as an
/// unknown member (refused or dropped by name).
fn text(raw: Raw<'_>, o: &mut Obj<'_>, renames: &mut Vec<(String, String)>) -> Result<(), Reject> {
    let t = Members::of(raw, "body.text")?;
    for (key, value) in &t.0 {
        if value.get() == "null" {
            continue;
        }
        if key != "format" {
            unknown(o, &format!("text.{key}"), *value);
            continue;
        }
        let f = Members::of(*value, "body.text.format")?;
        let kind = as_text(required(&f, "type", "body.text.format", Kind::String)?)
            .unwrap_or_default()
            .into_owned();
        let mut w = Obj::open(o.key("response_format"));
        w.raw("type", f.get("type").expect("checked").get());
        if kind == "json_schema" {
            let mut s = Obj::open(w.key("json_schema"));
            for (key, value) in &f.0 {
                if key != "type" {
                    s.raw(key, value.get());
                }
            }
            s.close();
        }
        w.close();
    }
    renames.extend([
        (
            "body.response_format.json_schema".into(),
            "body.text.format".into(),
        ),
        ("body.response_format".into(), "body.text.format".into()),
    ]);
    Ok(())
}

/// `reasoning.effort` as `reasoning_effort`; `summary` describes the output (reasoning text
/// comes back as a summary whenever the model gives it).
fn reasoning(
    raw: Raw<'_>,
    o: &mut Obj<'_>,
    renames: &mut Vec<(String, String)>,
) -> Result<(), Reject> {
    let r = Members::of(raw, "body.reasoning")?;
    for (key, value) in &r.0 {
        match key.as_ref() {
            _ if value.get() == "null" => {}
            "effort" => o.raw("reasoning_effort", value.get()),
            "summary" | "generate_summary" => {}
            other => unknown(o, &format!("reasoning.{other}"), *value),
        }
    }
    renames.push((
        "body.reasoning_effort".into(),
        "body.reasoning.effort".into(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Family, MapOptions};

    fn chat(body: &str) -> Result<serde_json::Value, Reject> {
        let raw: Raw<'_> = serde_json::from_str(body).unwrap();
        let opts = MapOptions::new(Family::Anthropic, "");
        let t = to_chat(Members::of(raw, "body")?, &opts, &mut Notes::default())?;
        Ok(serde_json::from_str(&t.body).unwrap())
    }

    #[test]
    fn input_items_become_chat_messages() {
        let c = chat(r#"{"model":"m","instructions":"Be brief.","input":[
            {"role":"user","content":[{"type":"input_text","text":"Weather?"},{"type":"input_image","image_url":"data:image/png;base64,AA=="}]},
            {"type":"function_call","call_id":"c1","name":"get","arguments":"{\"q\":1}"},
            {"type":"function_call_output","call_id":"c1","output":"sunny"},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Sunny."}]}],
            "max_output_tokens":50,"text":{"format":{"type":"json_schema","name":"w","schema":{"type":"object"},"strict":true}},
            "reasoning":{"effort":"low","summary":"auto"},"tools":[{"type":"function","name":"get","parameters":{"type":"object"}}],
            "tool_choice":{"type":"function","name":"get"},"store":false,"metadata":{"a":"b"}}"#).unwrap();
        assert_eq!(c["model"], "m");
        let m = &c["messages"];
        assert_eq!(
            m[0],
            serde_json::json!({"role":"system","content":"Be brief."})
        );
        assert_eq!(
            m[1]["content"][0],
            serde_json::json!({"type":"text","text":"Weather?"})
        );
        assert_eq!(
            m[1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AA=="
        );
        assert_eq!(m[2]["tool_calls"][0]["id"], "c1");
        assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"q\":1}");
        assert_eq!(
            m[3],
            serde_json::json!({"role":"tool","tool_call_id":"c1","content":"sunny"})
        );
        assert_eq!(m[4]["content"][0]["text"], "Sunny.");
        assert_eq!(c["max_completion_tokens"], 50);
        assert_eq!(c["response_format"]["type"], "json_schema");
        assert_eq!(c["response_format"]["json_schema"]["name"], "w");
        assert_eq!(c["reasoning_effort"], "low");
        assert_eq!(c["tools"][0]["function"]["name"], "get");
        assert_eq!(c["tool_choice"]["function"]["name"], "get");
        assert!(c.get("store").is_none() && c.get("metadata").is_none());
    }

    #[test]
    fn what_a_batch_line_cannot_carry_is_refused_with_the_reason() {
        for (body, says) in [
            (
                r#"{"input":"x","previous_response_id":"resp_1"}"#,
                "body.previous_response_id",
            ),
            (
                r#"{"input":"x","tools":[{"type":"web_search"}]}"#,
                "built-in tool \"web_search\"",
            ),
            (
                r#"{"input":[{"type":"item_reference","id":"x"}]}"#,
                "body.input[0]",
            ),
            (
                r#"{"input":[{"type":"reasoning","summary":[]}]}"#,
                "--drop-unsupported",
            ),
            (
                r#"{"input":[{"role":"user","content":[{"type":"input_file","file_url":"https://x"}]}]}"#,
                "body.input[0].content[0].file_url",
            ),
            (
                r#"{"input":[{"role":"robot","content":"x"}]}"#,
                "body.input[0].role",
            ),
            (r#"{"model":"m"}"#, "body.input: missing"),
            (r#"{"input":"x","input":"y"}"#, "duplicate member `input`"),
            (
                r#"{"input":"x","max_tokens":5}"#,
                "body.max_tokens: a chat completions member",
            ),
            (
                r#"{"input":"x","messages":[]}"#,
                "body.messages: a chat completions member",
            ),
            (
                r#"{"input":"x","response_format":{"type":"json_object"}}"#,
                "body.response_format",
            ),
            (
                r#"{"input":[{"type":"function_call","name":"f","arguments":"{}"}]}"#,
                "body.input[0].call_id: missing",
            ),
            // Items are judged in turn: a duplicate member in a later item (which the one-pass
            // reading gives up on) does not hide an earlier item's fault, and is named itself.
            (
                r#"{"input":[{"type":"item_reference","id":"x"},{"role":"user","r\u006fle":"user"}]}"#,
                "body.input[0]: an item reference",
            ),
            (
                r#"{"input":[{"role":"user","content":"x"},7,{"role":"user","role":"user"}]}"#,
                "body.input[1]: expected an object",
            ),
            (
                r#"{"input":[{"role":"user","content":"x"},{"role":"user","role":"user"}]}"#,
                "duplicate member `role`",
            ),
            (
                r#"{"input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_audio"},{"type":"input_text","type":"x"}]}]}"#,
                "body.input[0].content[1]: content parts of type \"input_audio\"",
            ),
            (
                r#"{"input":"x","tools":[{"type":"function","name":"f"},{"type":"function","type":"function"}]}"#,
                "duplicate member `type`",
            ),
        ] {
            let e = chat(body).unwrap_err();
            assert!(e.message.contains(says), "{body}: {}", e.message);
        }
    }

    /// An item member beside the ones its kind is read by (and `id`, `status`) that holds
    /// something is refused by name, or dropped and counted; one that says nothing passes.
    #[test]
    fn an_item_member_the_chat_body_cannot_carry_is_refused_or_dropped() {
        for (body, says) in [
            (
                r#"{"input":[{"role":"user","content":"x","name":"bob"}]}"#,
                "input[0].name",
            ),
            (
                r#"{"input":[{"role":"user","content":"x"},{"type":"message","role":"user","content":"y","contnet":"z"}]}"#,
                "input[1].contnet",
            ),
            (
                r#"{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}","x":[1]},{"type":"function_call_output","call_id":"c","output":"o"}]}"#,
                "input[0].x",
            ),
            (
                r#"{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"o","n\u0061me":"f"}]}"#,
                "input[1].name",
            ),
        ] {
            let e = chat(body).unwrap_err();
            assert_eq!(e.code, RejectCode::UnsupportedParameter, "{body}");
            assert!(
                e.message
                    .starts_with(&format!("body.{says}: no Bedrock model takes")),
                "{body}: {}",
                e.message
            );
            let raw: Raw<'_> = serde_json::from_str(body).unwrap();
            let mut opts = MapOptions::new(Family::Anthropic, "");
            opts.drop_unsupported = true;
            let mut notes = Notes::default();
            to_chat(Members::of(raw, "body").unwrap(), &opts, &mut notes).unwrap();
            assert_eq!(notes.dropped, vec![says.to_owned()], "{body}");
        }
        // Given back as a response wrote them: ids, statuses and members that say nothing.
        let c = chat(
            r#"{"input":[{"role":"user","content":"x","name":null},
            {"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"y"}],"x":[]},
            {"id":"fc_1","type":"function_call","status":"completed","call_id":"c","name":"f","arguments":"{}","y":""},
            {"id":"fco_1","type":"function_call_output","status":"completed","call_id":"c","output":"o","z":{}}]}"#,
        )
        .unwrap();
        assert_eq!(c["messages"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn reasoning_items_drop_when_asked() {
        let raw: Raw<'_> = serde_json::from_str(
            r#"{"input":[{"type":"reasoning","summary":[]},{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let mut opts = MapOptions::new(Family::Anthropic, "");
        opts.drop_unsupported = true;
        let mut notes = Notes::default();
        let t = to_chat(Members::of(raw, "body").unwrap(), &opts, &mut notes).unwrap();
        assert_eq!(notes.dropped, vec!["input[0]:reasoning".to_owned()]);
        let c: serde_json::Value = serde_json::from_str(&t.body).unwrap();
        assert_eq!(c["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn rejects_name_the_line_keys() {
        let raw: Raw<'_> = serde_json::from_str(
            r#"{"instructions":"s","input":[{"type":"function_call_output","call_id":"c","output":"o"},{"role":"user","content":"x"}],"max_output_tokens":5}"#,
        )
        .unwrap();
        let t = to_chat(
            Members::of(raw, "body").unwrap(),
            &MapOptions::new(Family::Anthropic, ""),
            &mut Notes::default(),
        )
        .unwrap();
        let said = |m: &str| t.rephrase(Reject::invalid(m)).message;
        assert_eq!(
            said("body.messages[1].content: bad"),
            "body.input[0].output: bad"
        );
        assert_eq!(
            said("body.messages[2].content[0]: bad"),
            "body.input[1].content[0]: bad"
        );
        assert_eq!(said("body.messages[0]: bad"), "body.instructions: bad");
        assert_eq!(
            said("body.max_completion_tokens: 0"),
            "body.max_output_tokens: 0"
        );
        assert_eq!(said("body.messages: none"), "body.input: none");
        assert_eq!(
            said("tool_choice cannot be combined with response_format json_schema"),
            "tool_choice cannot be combined with text.format json_schema"
        );
        assert_eq!(
            said("body.messages[2].content[0].image_url.url: not base64"),
            "body.input[1].content[0].image_url: not base64"
        );
        let mut dropped = vec!["reasoning_effort".to_owned(), "seed".to_owned()];
        t.rephrase_names(&mut dropped);
        assert_eq!(dropped, ["reasoning.effort", "seed"]);
    }

    #[test]
    fn function_calls_in_a_row_are_one_assistant_turn() {
        let c = chat(
            r#"{"input":[{"role":"user","content":"x"},
            {"type":"function_call","call_id":"a","name":"f","arguments":"{}"},
            {"type":"function_call","call_id":"b","name":"g","arguments":"{}"},
            {"type":"function_call_output","call_id":"b","output":"B"},
            {"type":"function_call_output","call_id":"a","output":"A"}]}"#,
        )
        .unwrap();
        let m = c["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[1]["tool_calls"][0]["id"], "a");
        assert_eq!(m[1]["tool_calls"][1]["id"], "b");
        assert_eq!(m[2]["tool_call_id"], "b");
        let raw: Raw<'_> = serde_json::from_str(
            r#"{"input":[{"type":"function_call","call_id":"a","name":"f","arguments":"{}"},{"type":"function_call","call_id":"b","name":"g","arguments":"{}"},{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        let t = to_chat(
            Members::of(raw, "body").unwrap(),
            &MapOptions::new(Family::Anthropic, ""),
            &mut Notes::default(),
        )
        .unwrap();
        let said = |m: &str| t.rephrase(Reject::invalid(m)).message;
        assert_eq!(
            said("body.messages[0].tool_calls[1].function.arguments: x"),
            "body.input[1].arguments: x"
        );
        assert_eq!(
            said("body.messages[1].content: x"),
            "body.input[2].content: x"
        );
    }
}
