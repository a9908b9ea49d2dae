//! The fast path of an OpenAI batch line: one pass of the [`Scanner`] that reads the envelope,
//! the request and its messages into the same types serde fills, and gives up ([`Fallback`]) on
//! anything serde would read differently (a duplicate member, an unexpected shape).

use std::borrow::Cow;

use super::members::Members;
use super::{
    holds_something, BatchLine, ChatLine, ChatRequest, ContentPart, FunctionCall, FunctionDef,
    Message, Tool, ToolCall, TOOL_AS_WRITTEN,
};
use crate::record::endpoint::Endpoint;
use crate::record::scan::{non_null, Fallback, Scan, Scanner};
use crate::record::{json, Raw};

/// Sets `slot` once; a second value falls back (serde_json rejects duplicate fields).
fn once<T>(slot: &mut Option<T>, value: T) -> Scan<()> {
    if slot.is_some() {
        return Err(Fallback);
    }
    *slot = Some(value);
    Ok(())
}

/// Scans a whole batch line with a chat request body.
pub(crate) fn chat_line(text: &str, check_tools: bool) -> Scan<ChatLine<'_>> {
    let mut s = Scanner::new(text);
    let (mut custom_id, mut method, mut url, mut body) = (None, None, None, None);
    let (mut seen_id, mut seen_method, mut seen_url) = (false, false, false);
    s.object(|s, key| {
        let (slot, seen) = match &*key {
            "custom_id" => (&mut custom_id, &mut seen_id),
            "method" => (&mut method, &mut seen_method),
            "url" => (&mut url, &mut seen_url),
            // A url already read that names another endpoint: the body is no chat request, and
            // reading it as one would be a wasted pass over most of the line.
            "body" if url.is_some_and(|u| !names_chat(u)) => return Err(Fallback),
            "body" => return once(&mut body, chat_request(s, check_tools)?),
            _ => return s.value().map(drop),
        };
        if std::mem::replace(seen, true) {
            return Err(Fallback);
        }
        *slot = non_null(s.value()?);
        Ok(())
    })?;
    s.end()?;
    Ok(ChatLine {
        custom_id,
        method,
        url,
        body,
    })
}

/// Scans a whole batch line whose body is read member by member (an embeddings line): the
/// envelope as [`BatchLine::parse`] reads it and, when the body is an object, its members as
/// [`Members::of`] reads them — unless a url before the body names chat completions.
pub(crate) fn members_line(text: &str) -> Scan<(BatchLine<'_>, Option<Members<'_>>)> {
    envelope(text, true)
}

/// Scans a whole batch line for its envelope alone, the body as one value: for a body
/// [`members_line`] gives up on (a duplicate member in it is the body's reader's to word).
pub(crate) fn envelope_line(text: &str) -> Scan<BatchLine<'_>> {
    envelope(text, false).map(|(line, _)| line)
}

fn envelope(text: &str, body_members: bool) -> Scan<(BatchLine<'_>, Option<Members<'_>>)> {
    let mut s = Scanner::new(text);
    let (mut custom_id, mut method, mut url, mut body) = (None, None, None, None);
    let mut members = None;
    let mut seen = [false; 4];
    s.object(|s, key| {
        // A chat body is read by the chat reader, whose list of members this would only
        // duplicate; the url is known here when it comes first, as it almost always does.
        let read_members = body_members && !url.is_some_and(names_chat);
        let (slot, i) = match &*key {
            "custom_id" => (&mut custom_id, 0),
            "method" => (&mut method, 1),
            "url" => (&mut url, 2),
            "body" => (&mut body, 3),
            _ => return s.value().map(drop),
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(Fallback);
        }
        if i == 3 && read_members && s.peek_is(b'{') {
            let (raw, list) = object_members(s)?;
            *slot = Some(raw);
            members = Some(list);
            return Ok(());
        }
        *slot = non_null(s.value()?);
        Ok(())
    })?;
    s.end()?;
    let line = BatchLine {
        custom_id,
        method,
        url,
        body,
    };
    Ok((line, members))
}

/// A string literal's text as serde reads it into a `Cow<str>`; a lone surrogate, which serde
/// refuses (in words), falls back.
fn text_of(raw: Raw<'_>) -> Scan<std::borrow::Cow<'_, str>> {
    if json::lone_surrogate(raw.get()).is_some() {
        return Err(Fallback);
    }
    Ok(json::text_value(raw.get()))
}

/// Whether a `url` literal names the chat completions endpoint.
fn names_chat(url: Raw<'_>) -> bool {
    json::as_text(url).and_then(|u| Endpoint::from_url(&u)) == Some(Endpoint::ChatCompletions)
}

/// The object at the scanner, with its members as [`Members::of`] reads them: a key written
/// twice, in any spelling, falls back (serde words the refusal).
fn object_members<'a>(s: &mut Scanner<'a>) -> Scan<(Raw<'a>, Members<'a>)> {
    let mut list: Vec<(std::borrow::Cow<'a, str>, Raw<'a>)> = Vec::new();
    let mut names = super::members::Names::default();
    let raw = s.object(|s, key| {
        if !names.insert(&list, &key) {
            return Err(Fallback);
        }
        list.push((key, s.value()?));
        Ok(())
    })?;
    Ok((raw, Members(list)))
}

/// The elements of the array `text`, each raw and, when it is an object, with its members as
/// [`Members::of`] reads them: one pass where the two readings would take two.
pub(crate) fn elements_with_members(text: &str) -> Scan<Vec<(Raw<'_>, Option<Members<'_>>)>> {
    let mut s = Scanner::new(text);
    let mut list = Vec::new();
    s.array(|s| {
        list.push(if s.peek_is(b'{') {
            let (raw, members) = object_members(s)?;
            (raw, Some(members))
        } else {
            (s.value()?, None)
        });
        Ok(())
    })?;
    s.end()?;
    Ok(list)
}

/// The members of the object `text`, as [`Members::of`] reads them.
pub(crate) fn members(text: &str) -> Scan<Members<'_>> {
    let mut s = Scanner::new(text);
    let (_, members) = object_members(&mut s)?;
    s.end()?;
    Ok(members)
}

/// The chat request `text`, as [`ChatRequest::parse`] reads it.
pub(crate) fn chat_body(text: &str) -> Scan<ChatRequest<'_>> {
    let mut s = Scanner::new(text);
    let request = chat_request(&mut s, false)?;
    s.end()?;
    Ok(request)
}

/// The parts of an array `content`, as serde reads them; a part with an image or a file falls
/// back (serde reads those, which are rare and mostly one long literal).
pub(crate) fn content_parts(text: &str) -> Scan<Vec<ContentPart<'_>>> {
    each_element(text, |s| {
        let (mut kind, mut text, mut refusal) = (None, None, None);
        s.struct_fields(&["type", "text", "refusal", "image_url", "file"], |s, i| {
            match i {
                0 => kind = Some(text_of(s.string()?)?),
                1 => text = s.optional()?,
                2 => refusal = s.optional()?,
                _ => {
                    if s.optional()?.is_some() {
                        return Err(Fallback);
                    }
                }
            }
            Ok(())
        })?;
        Ok(ContentPart {
            kind: kind.ok_or(Fallback)?,
            text,
            refusal,
            image_url: None,
            file: None,
        })
    })
}

/// The elements of the array `text`, each read by `element`; a fallback when `text` is not
/// one array or `element` gives up on one.
fn each_element<'a, T>(
    text: &'a str,
    mut element: impl FnMut(&mut Scanner<'a>) -> Scan<T>,
) -> Scan<Vec<T>> {
    let mut s = Scanner::new(text);
    let mut list = Vec::new();
    s.array(|s| {
        list.push(element(s)?);
        Ok(())
    })?;
    s.end()?;
    Ok(list)
}

/// A chat request's body; with `check_tools` (a family that sends `tools` as written), its
/// tools are checked for a member given twice as they are read (`tools_checked`).
fn chat_request<'a>(s: &mut Scanner<'a>, check_tools: bool) -> Scan<ChatRequest<'a>> {
    let mut req = ChatRequest::default();
    let mut messages = None;
    s.object(|s, key| {
        if key == "messages" {
            let mut list = Vec::new();
            let mut checked = true;
            let raw = s.array(|s| {
                list.push(message(s, &mut checked)?);
                Ok(())
            })?;
            req.messages_raw = Some(raw);
            req.messages_checked = checked;
            return once(&mut messages, list);
        }
        // The flag first: the other families pay no comparison a member.
        let value = if check_tools && key == "tools" {
            let (value, checked) = s.value_with_elements_checked(&TOOL_AS_WRITTEN)?;
            req.tools_checked = checked;
            value
        } else {
            s.value()?
        };
        if req.member(key, value) {
            Ok(())
        } else {
            Err(Fallback)
        }
    })?;
    req.messages = messages.ok_or(Fallback)?;
    Ok(req)
}

/// One message; `checked` is cleared when the message holds what was not read member by member
/// here (a member skipped, a `content` or `tool_call_id` that is no string, `tool_calls`), so a
/// repeat in it may be unseen.
fn message<'a>(s: &mut Scanner<'a>, checked: &mut bool) -> Scan<Message<'a>> {
    let (mut role, mut content, mut tool_calls, mut tool_call_id) = (None, None, None, None);
    let (mut seen_content, mut seen_calls, mut seen_id) = (false, false, false);
    let mut others = Vec::new();
    s.object(|s, key| {
        let (slot, seen) = match &*key {
            "role" => {
                // Read as serde reads it (`json::lossy_text`): a lone surrogate is U+FFFD.
                let role_text = json::text_value(s.string()?.get());
                return once(&mut role, role_text);
            }
            "content" => (&mut content, &mut seen_content),
            "tool_calls" => (&mut tool_calls, &mut seen_calls),
            "tool_call_id" => (&mut tool_call_id, &mut seen_id),
            // serde's struct reader refuses a key holding a lone surrogate (U+FFFD here, or a
            // real U+FFFD: serde tells the two apart, and words the refusal).
            _ if key.contains('\u{FFFD}') => return Err(Fallback),
            _ => {
                *checked = false;
                if holds_something(s.value()?) {
                    others.push(key);
                }
                return Ok(());
            }
        };
        if std::mem::replace(seen, true) {
            return Err(Fallback);
        }
        *slot = non_null(s.value()?);
        Ok(())
    })?;
    // Anything but a string (or null) was read as a whole here, not member by member.
    let not_text = |v: Option<Raw<'_>>| v.is_some_and(|v| !v.get().starts_with('"'));
    if tool_calls.is_some() || not_text(content) || not_text(tool_call_id) {
        *checked = false;
    }
    let tool_calls = match tool_calls {
        // What the scanner does not take, serde reads (and words).
        Some(raw) => Some(match self::tool_calls(raw.get()) {
            Ok(calls) => calls,
            Err(Fallback) => {
                json::from_str::<Vec<ToolCall<'a>>>(raw.get()).map_err(|_| Fallback)?
            }
        }),
        None => None,
    };
    Ok(Message {
        role: role.ok_or(Fallback)?,
        content,
        tool_calls,
        tool_call_id,
        others,
    })
}

/// An assistant message's `tool_calls` read as serde reads a `Vec<ToolCall>` (members other
/// than `id`, `type` and `function`'s `name` and `arguments` skipped), or a fallback.
pub(crate) fn tool_calls(text: &str) -> Scan<Vec<ToolCall<'_>>> {
    each_element(text, |s| {
        let (mut id, mut kind, mut function) = (None, None, None);
        s.struct_fields(&["id", "type", "function"], |s, i| {
            match i {
                0 => id = Some(s.value()?),
                1 => kind = s.optional()?,
                _ => {
                    let (mut name, mut arguments) = (None, None);
                    s.struct_fields(&["name", "arguments"], |s, i| {
                        match i {
                            0 => name = Some(s.value()?),
                            _ => arguments = s.optional()?,
                        }
                        Ok(())
                    })?;
                    let name = name.ok_or(Fallback)?;
                    function = Some(FunctionCall { name, arguments });
                }
            }
            Ok(())
        })?;
        Ok(ToolCall {
            id: id.ok_or(Fallback)?,
            kind,
            function: function.ok_or(Fallback)?,
        })
    })
}

/// A request's `tools` read as serde reads a `Vec<Tool>` (members other than `type` and
/// `function`'s `name`, `description` and `parameters` skipped), or a fallback. A `type` with
/// an escape falls back too: serde decides what its text is; and so do `parameters` in which
/// an object gives a key twice (serde's reading is then checked for that, and worded).
pub(crate) fn tools(text: &str) -> Scan<Vec<Tool<'_>>> {
    each_element(text, |s| {
        let (mut kind, mut function) = (None, None);
        s.struct_fields(&["type", "function"], |s, i| {
            match i {
                0 => {
                    let literal = s.string()?.get();
                    let text = &literal[1..literal.len() - 1];
                    if text.contains('\\') {
                        return Err(Fallback);
                    }
                    kind = Some(Cow::Borrowed(text));
                }
                _ => function = s.nullable_object(function_def)?,
            }
            Ok(())
        })?;
        Ok(Tool {
            kind: kind.ok_or(Fallback)?,
            function,
        })
    })
}

fn function_def<'a>(s: &mut Scanner<'a>) -> Scan<FunctionDef<'a>> {
    let (mut name, mut description, mut parameters) = (None, None, None);
    s.struct_fields(&["name", "description", "parameters"], |s, i| {
        match i {
            0 => name = Some(s.value()?),
            1 => description = s.optional()?,
            _ => parameters = non_null(s.value_without_repeats()?),
        }
        Ok(())
    })?;
    Ok(FunctionDef {
        name: name.ok_or(Fallback)?,
        description,
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn a_chat_line_is_picked_apart() {
        let line = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","x":[1],"body":{"model":"m","messages":[{"role":"user","content":"hi","name":"n"}],"seed":3,"wat":{}}}"#;
        let l = chat_line(line, false).unwrap();
        assert_eq!(l.custom_id.unwrap().get(), "\"a\"");
        let body = l.body.unwrap();
        assert_eq!(body.messages.len(), 1);
        assert_eq!(body.messages[0].role, "user");
        assert_eq!(body.messages[0].content.unwrap().get(), "\"hi\"");
        assert_eq!(body.unsupported.len(), 1);
        assert_eq!(body.unknown, vec![Cow::Borrowed("wat")]);
        // Duplicates go to serde_json; escaped keys are read by their value.
        assert!(chat_line(
            r#"{"custom_id":"a","custom_id":"b","body":{"messages":[]}}"#,
            false
        )
        .is_err());
        let escaped = chat_line(
            r#"{"custom_\u0069d":"a","b\u006fdy":{"messages":[{"r\u006fle":"\u0075ser"}]}}"#,
            false,
        )
        .unwrap();
        assert_eq!(escaped.custom_id.unwrap().get(), "\"a\"");
        assert_eq!(escaped.body.unwrap().messages[0].role, "user");
        assert!(chat_line(
            r#"{"custom_id":"a","body":{"messages":[{"content":"x"}]}}"#,
            false
        )
        .is_err());
    }

    use proptest::prelude::*;

    /// JSON-significant bytes, for mutations that are likely to matter.
    const NOISE: &[u8] = b"\"\\{}[],:0123456789eE+-. \t\x01ntfu/abc";

    fn mutate(line: &str, edits: &[(usize, u8, u8)]) -> String {
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
        String::from_utf8_lossy(&bytes).into_owned()
    }

    const TOOLS: &[&str] = &[
        r#"[{"type":"function","function":{"name":"get_weather","description":"The weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}}]"#,
        r#"[ {"function": {"parameters": null, "name": "a", "description": null}, "type": "function", "x": [1, {"y": "z"}]}, {"type": "function"}, {"type": "custom", "function": null} ]"#,
        r#"[{"typ\u0065":"function","function":{"n\u0061me":"b"}}]"#,
        "[]",
    ];

    const CALLS: &[&str] = &[
        r#"[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]"#,
        r#"[ {"function": {"arguments": null, "name": "a", "extra": 1}, "id": "c", "type": null}, {"id": 7, "function": {"name": ["odd"]}} ]"#,
        r#"[{"\u0069d":"c","function":{"name":"b","arguments":"{}"}}]"#,
    ];

    /// What a reader of tools keeps of each, to compare two readings.
    type ToolSeen<'a> = (
        Cow<'a, str>,
        Option<(Raw<'a>, Option<Raw<'a>>, Option<Raw<'a>>)>,
    );

    fn seen_tools<'a>(tools: &[Tool<'a>]) -> Vec<ToolSeen<'a>> {
        let f = |f: &FunctionDef<'a>| (f.name, f.description, f.parameters);
        tools
            .iter()
            .map(|t| (t.kind.clone(), t.function.as_ref().map(f)))
            .collect()
    }

    type CallSeen<'a> = (Raw<'a>, Option<Raw<'a>>, Raw<'a>, Option<Raw<'a>>);

    fn seen_calls<'a>(calls: &[ToolCall<'a>]) -> Vec<CallSeen<'a>> {
        let c = |c: &ToolCall<'a>| (c.id, c.kind, c.function.name, c.function.arguments);
        calls.iter().map(c).collect()
    }

    #[test]
    fn tools_and_tool_calls_are_read_as_serde_reads_them() {
        for text in TOOLS {
            let slow = json::from_str::<Vec<Tool<'_>>>(text).unwrap();
            assert_eq!(
                seen_tools(&tools(text).unwrap()),
                seen_tools(&slow),
                "{text}"
            );
        }
        for text in CALLS {
            let slow = json::from_str::<Vec<ToolCall<'_>>>(text).unwrap();
            assert_eq!(
                seen_calls(&tool_calls(text).unwrap()),
                seen_calls(&slow),
                "{text}"
            );
        }
        // What serde refuses, the scanner does not take (serde then words it).
        for bad in [
            r#"[{"type":"function","type":"function"}]"#,
            r#"[{"function":{"name":"a"}}]"#,
            r#"[{"type":"function","function":{"description":"no name"}}]"#,
            r#"[{"type":"function","function":["a"]}]"#,
            r#"[{"type":1}]"#,
            r#"{"type":"function"}"#,
        ] {
            assert!(tools(bad).is_err(), "{bad}");
            assert!(json::from_str::<Vec<Tool<'_>>>(bad).is_err(), "{bad}");
        }
        // Parameters that give a key twice, at any depth: serde's reading is checked for that.
        for twice in [
            r#"[{"type":"function","function":{"name":"a","parameters":{"type":"object","t\u0079pe":"x"}}}]"#,
            r#"[{"type":"function","function":{"name":"a","parameters":{"p":[{"q":1,"q":2}]}}}]"#,
        ] {
            assert!(tools(twice).is_err(), "{twice}");
            assert!(json::from_str::<Vec<Tool<'_>>>(twice).is_ok(), "{twice}");
        }
        // A key that is a lone surrogate, even of a member skipped: serde's struct reader
        // refuses it (the scanner once took it for an unknown member and let the line through).
        for bad in [
            r#"[{"type":"function","\ud800":1,"function":{"name":"f"}}]"#,
            r#"[{"type":"function","function":{"name":"f","\udc00":1}}]"#,
            r#"[{"type":"function","function":{"name":"f","x\ud83dy":1}}]"#,
        ] {
            assert!(tools(bad).is_err(), "{bad}");
            assert!(json::from_str::<Vec<Tool<'_>>>(bad).is_err(), "{bad}");
        }
        for bad in [
            r#"[{"id":"c","\ud800":1,"function":{"name":"f","arguments":"{}"}}]"#,
            r#"[{"id":"c","function":{"name":"f","\ud800":1}}]"#,
        ] {
            assert!(tool_calls(bad).is_err(), "{bad}");
            assert!(json::from_str::<Vec<ToolCall<'_>>>(bad).is_err(), "{bad}");
        }
        for bad in [
            r#"[{"id":"c","function":{"name":"a"},"id":"d"}]"#,
            r#"[{"id":"c"}]"#,
            r#"[{"id":"c","function":null}]"#,
            r#"[{"function":{"name":"a"}}]"#,
        ] {
            assert!(tool_calls(bad).is_err(), "{bad}");
            assert!(json::from_str::<Vec<ToolCall<'_>>>(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

        /// Whatever tools and tool calls the scanner takes, serde reads the same way.
        #[test]
        fn tools_never_laxer_than_serde_json(
            i in 0usize..7,
            edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
        ) {
            let base = TOOLS.iter().chain(CALLS).nth(i).unwrap();
            let text = mutate(base, &edits);
            if let Ok(fast) = tools(&text) {
                let slow = json::from_str::<Vec<Tool<'_>>>(&text).expect("serde_json agrees");
                prop_assert_eq!(seen_tools(&fast), seen_tools(&slow));
            }
            if let Ok(fast) = tool_calls(&text) {
                let slow = json::from_str::<Vec<ToolCall<'_>>>(&text).expect("serde_json agrees");
                prop_assert_eq!(seen_calls(&fast), seen_calls(&slow));
            }
        }

        /// Whatever the scanner accepts, serde_json accepts too, and reads the same way.
        #[test]
        fn never_laxer_than_serde_json(
            i in 0u64..200,
            edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
        ) {
            let line = mutate(&crate::sample::chat_line(5, i), &edits);
            let mut s = Scanner::new(&line);
            let valid = s.value().and_then(|_| s.end()).is_ok();
            let serde_ok = serde_json::from_str::<serde_json::Value>(&line).is_ok();
            prop_assert!(!valid || serde_ok, "scanner accepted invalid JSON: {line}");
            // Both ways of reading tools: as written (checked for repeats), and to be converted.
            if let Ok(fast) = chat_line(&line, i % 2 == 0) {
                let slow: ChatLine<'_> = serde_json::from_str(&line).expect("serde_json agrees");
                prop_assert_eq!(fast.custom_id, slow.custom_id);
                prop_assert_eq!(fast.method, slow.method);
                prop_assert_eq!(fast.url, slow.url);
                prop_assert_eq!(fast.body.is_some(), slow.body.is_some());
                let (Some(f), Some(s)) = (fast.body, slow.body) else { return Ok(()) };
                prop_assert_eq!(f.messages.len(), s.messages.len());
                for (a, b) in f.messages.iter().zip(&s.messages) {
                    prop_assert_eq!(&a.role, &b.role);
                    prop_assert_eq!(a.content, b.content);
                    prop_assert_eq!(a.tool_call_id, b.tool_call_id);
                }
                prop_assert_eq!((f.model, f.max_tokens, f.temperature), (s.model, s.max_tokens, s.temperature));
                prop_assert_eq!(f.tools, s.tools);
                prop_assert_eq!(f.unknown, s.unknown);
                prop_assert_eq!(f.unsupported, s.unsupported);
            }
        }
    }
}
