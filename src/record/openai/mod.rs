//! The OpenAI side: batch input lines and chat completion requests, parsed without copying.
//!
//! Every value the converters pass through unchanged (message text, schemas, ids) stays a borrowed
//! [`RawValue`]: a slice of the input line with its escapes intact.

mod completions;
pub(crate) mod members;
mod responses;
mod scan;

pub(crate) use scan::{chat_line, envelope_line, members_line, tools as scan_tools};

/// Rewrites a `/v1/completions` body as a chat body.
pub(crate) use completions::to_chat as completions_to_chat;
/// Rewrites a `/v1/responses` body as a chat body.
pub(crate) use responses::to_chat as responses_to_chat;

use std::borrow::Cow;
use std::fmt;

use crate::record::Raw;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::endpoint::{self, Endpoint};
use super::json::{self, Kind};
use super::reject::{Reject, RejectCode};

/// One line of an OpenAI batch input file, with every member borrowed from the line.
#[derive(Debug, Deserialize)]
pub struct BatchLine<'a> {
    /// The caller's id for the request (a raw JSON value: validated by [`BatchLine::check`]).
    #[serde(borrow, default)]
    pub custom_id: Option<Raw<'a>>,
    /// Must be `"POST"`.
    #[serde(borrow, default)]
    pub method: Option<Raw<'a>>,
    /// The endpoint, e.g. `"/v1/chat/completions"`.
    #[serde(borrow, default)]
    pub url: Option<Raw<'a>>,
    /// The endpoint's request body.
    #[serde(borrow, default)]
    pub body: Option<Raw<'a>>,
}

/// The validated envelope of a batch line.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The `custom_id` string literal, exactly as written in the line (escapes intact).
    pub custom_id: Raw<'a>,
    /// The request body (an object).
    pub body: Raw<'a>,
    /// The endpoint `url` names.
    pub endpoint: Endpoint,
}

impl<'a> BatchLine<'a> {
    /// Parses a line (already known to be UTF-8) into its envelope members.
    pub fn parse(line: &'a str) -> Result<Self, Reject> {
        let first = line.trim_start().as_bytes().first().copied();
        if first != Some(b'{') {
            return Err(Reject::new(
                RejectCode::InvalidJson,
                "invalid JSON: a batch line must be a JSON object",
            ));
        }
        json::from_str(line).map_err(|e| {
            if e.is_data() {
                return Reject::new(
                    RejectCode::InvalidRequest,
                    format!("invalid JSON: {}", column_only(&e)),
                );
            }
            // serde_json refuses, as a syntax error, a name or text it must hold as a string when
            // a `\u` escape in it is half a surrogate pair, which JSON's grammar allows: such a
            // line is JSON, and is refused for what it asks, not as invalid JSON.
            if crate::record::scan::is_json(line) {
                let why = if names_a_surrogate(line) {
                    "a name or text that must be read holds half a surrogate pair (a \\u escape in \
                     D800–DFFF without its other half)"
                } else {
                    "valid JSON that cannot be read"
                };
                return Reject::new(
                    RejectCode::InvalidRequest,
                    format!("{why}: {}", column_only(&e)),
                );
            }
            Reject::new(
                RejectCode::InvalidJson,
                format!("invalid JSON: {}", column_only(&e)),
            )
        })
    }

    /// Checks `custom_id`, `method` and `url` (which must name one of `accepts`, of the family's
    /// `served`) and that `body` is an object.
    pub fn check(&self, accepts: &[Endpoint], served: &[Endpoint]) -> Result<Envelope<'a>, Reject> {
        let (custom_id, endpoint) =
            check_envelope(self.custom_id, self.method, self.url, accepts, served)?;
        let body = match self.body {
            Some(raw) if Kind::of(raw) == Kind::Object => raw,
            Some(raw) => {
                return Err(Reject::invalid(format!(
                    "body must be an object, found {}",
                    Kind::of(raw).name()
                )))
            }
            None => return Err(Reject::invalid("body is missing")),
        };
        Ok(Envelope {
            custom_id,
            body,
            endpoint,
        })
    }
}

/// A batch line parsed in one pass, body included: the fast path for well-formed lines.
///
/// Any error sends the caller to [`BatchLine`], which parses in two steps so that a reject can name
/// the `custom_id` and the key at fault.
#[derive(Debug, Deserialize)]
pub struct ChatLine<'a> {
    /// See [`BatchLine::custom_id`].
    #[serde(borrow, default)]
    pub custom_id: Option<Raw<'a>>,
    /// See [`BatchLine::method`].
    #[serde(borrow, default)]
    pub method: Option<Raw<'a>>,
    /// See [`BatchLine::url`].
    #[serde(borrow, default)]
    pub url: Option<Raw<'a>>,
    /// The parsed chat request.
    #[serde(borrow, default)]
    pub body: Option<ChatRequest<'a>>,
}

/// Checks the envelope members of a batch line; returns the `custom_id` literal and the endpoint
/// `url` names, which must be one of `accepts` (of the family's `served`, which a reject names).
pub fn check_envelope<'a>(
    custom_id: Option<Raw<'a>>,
    method: Option<Raw<'a>>,
    url: Option<Raw<'a>>,
    accepts: &[Endpoint],
    served: &[Endpoint],
) -> Result<(Raw<'a>, Endpoint), Reject> {
    let custom_id = match custom_id {
        None => {
            return Err(Reject::new(
                RejectCode::InvalidCustomId,
                "custom_id is missing",
            ))
        }
        Some(raw) if Kind::of(raw) != Kind::String => {
            return Err(Reject::new(
                RejectCode::InvalidCustomId,
                format!("custom_id must be a string, found {}", Kind::of(raw).name()),
            ))
        }
        Some(raw) if json::is_empty_string(raw) => {
            return Err(Reject::new(
                RejectCode::InvalidCustomId,
                "custom_id is empty",
            ))
        }
        Some(raw) => {
            if let Some(escape) = json::lone_surrogate(raw.get()) {
                return Err(Reject::new(
                    RejectCode::InvalidCustomId,
                    format!("custom_id {} holds {escape}, half of a UTF-16 surrogate pair without its other half: no Unicode text, and most JSON parsers refuse or alter it (Bedrock's among them); use another custom_id", raw.get()),
                ));
            }
            raw
        }
    };
    match method {
        Some(raw) if json::as_text(raw).as_deref() == Some("POST") => {}
        Some(raw) => {
            return Err(Reject::new(
                RejectCode::InvalidMethod,
                format!("method must be \"POST\", found {}", raw.get()),
            ))
        }
        None => {
            return Err(Reject::new(
                RejectCode::InvalidMethod,
                "method is missing (must be \"POST\")",
            ))
        }
    }
    let Some(url) = url else {
        return Err(Reject::new(RejectCode::InvalidUrl, "url is missing"));
    };
    let named = json::str_value(url, "url")
        .ok()
        .and_then(|text| Endpoint::from_url(&text));
    match named {
        Some(endpoint) if accepts.contains(&endpoint) => Ok((custom_id, endpoint)),
        Some(endpoint) if served.contains(&endpoint) => Err(Reject::new(
            RejectCode::InvalidUrl,
            format!(
                "url {} differs from this batch's endpoint {} (one batch file holds lines for one endpoint; the CLI's --endpoint names it)",
                url.get(),
                endpoint::list(accepts)
            ),
        )),
        _ => Err(Reject::new(
            RejectCode::InvalidUrl,
            format!(
                "url {} is not served by this model family (expected {})",
                url.get(),
                endpoint::list(accepts)
            ),
        )),
    }
}

/// serde_json's message with "at line 1 column N" shortened to "at column N": a batch line is
/// one line, and the file line number is reported beside the message anyway.
/// Whether `text` has a `\u` escape in D800–DFFF (for a message: an escaped backslash followed
/// by such letters counts too).
fn names_a_surrogate(text: &str) -> bool {
    text.as_bytes().windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && w[2].eq_ignore_ascii_case(&b'd')
            && matches!(w[3].to_ascii_lowercase(), b'8'..=b'9' | b'a'..=b'f')
    })
}

fn column_only(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line 1 column ") {
        Some(i) => format!("{} at column {}", &s[..i], e.column()),
        None => s,
    }
}

/// One message of a chat request.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    /// `system`, `developer`, `user`, `assistant` or `tool`. A lone surrogate in it reads as
    /// U+FFFDs: a family that copies the messages as written (gpt-oss) never needs the role as
    /// text, and one that reads it refuses the role as unknown.
    #[serde(borrow, deserialize_with = "json::lossy_text")]
    pub role: Cow<'a, str>,
    /// A string, an array of content parts, or null.
    #[serde(borrow, default)]
    pub content: Option<Raw<'a>>,
    /// Tool calls of an assistant message.
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// The call a `tool` message answers.
    #[serde(borrow, default)]
    pub tool_call_id: Option<Raw<'a>>,
    /// The names of the other members that hold something ([`holds_something`]): OpenAI's
    /// `name`, `refusal`, `audio` or deprecated `function_call`, or a misspelt `content`. A
    /// family that reads the messages member by member has no place for them, and refuses or
    /// drops them by name; one that sends the messages as written sends them too.
    #[serde(skip)]
    pub others: Vec<Cow<'a, str>>,
}

/// The members of a message read by name; any other is one of [`Message::others`].
const MESSAGE_MEMBERS: [&str; 4] = ["role", "content", "tool_calls", "tool_call_id"];

/// Whether a member's value says anything: not `null`, `""`, `[]` or `{}` (whatever the
/// whitespace). A reply replayed as written (`"refusal": null`, `"annotations": []`) says nothing
/// beside its content.
pub(crate) fn holds_something(raw: Raw<'_>) -> bool {
    let t = raw.get();
    match t.as_bytes().first() {
        Some(b'n') => false,
        Some(b'"') => t.len() > 2,
        Some(b'[' | b'{') => !t[1..t.len() - 1]
            .trim_matches([' ', '\t', '\n', '\r'])
            .is_empty(),
        _ => true,
    }
}

/// Fills each message's [`Message::others`] from the array `raw` the messages were read from
/// (serde's struct reader skips them unnamed; the scanner names them as it reads).
fn name_others<'a>(messages: &mut [Message<'a>], raw: Raw<'a>) -> Result<(), Reject> {
    let elements = members::Members::of_elements(raw, "body.messages")?;
    for (i, (message, element)) in messages.iter_mut().zip(elements).enumerate() {
        let members = members::Members::of_element(element, format_args!("body.messages[{i}]"))?;
        message.others = members
            .0
            .into_iter()
            .filter(|(name, value)| {
                !MESSAGE_MEMBERS.contains(&name.as_ref()) && holds_something(*value)
            })
            .map(|(name, _)| name)
            .collect();
    }
    Ok(())
}

/// One tool call of an assistant message.
#[derive(Debug, Deserialize)]
pub struct ToolCall<'a> {
    /// The call id (a string literal).
    #[serde(borrow)]
    pub id: Raw<'a>,
    /// `function` (the only kind a chat model can replay); a string literal.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Raw<'a>>,
    /// The function called.
    #[serde(borrow)]
    pub function: FunctionCall<'a>,
}

/// The function of a tool call.
#[derive(Debug, Deserialize)]
pub struct FunctionCall<'a> {
    /// The function name (a string literal).
    #[serde(borrow)]
    pub name: Raw<'a>,
    /// The arguments: a string literal holding a JSON object.
    #[serde(borrow, default)]
    pub arguments: Option<Raw<'a>>,
}

/// One part of an array `content`.
#[derive(Debug, Deserialize)]
pub struct ContentPart<'a> {
    /// `text`, `image_url`, `file`, `input_audio`, `refusal`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The text of a `text` part.
    #[serde(borrow, default)]
    pub text: Option<Raw<'a>>,
    /// The refusal text of an assistant `refusal` part.
    #[serde(borrow, default)]
    pub refusal: Option<Raw<'a>>,
    /// The image of an `image_url` part.
    #[serde(borrow, default)]
    pub image_url: Option<ImageUrl<'a>>,
    /// The file of a `file` part.
    #[serde(borrow, default)]
    pub file: Option<FilePart<'a>>,
}

impl<'a> ContentPart<'a> {
    /// The parts of the array `raw` (at `path`, for messages): read by the scanner, or by serde
    /// for what the scanner leaves to it (image and file parts) or gives up on, for its words.
    pub fn list(raw: Raw<'a>, path: impl fmt::Display + Copy) -> Result<Vec<Self>, Reject> {
        match scan::content_parts(raw.get()) {
            Ok(parts) => Ok(parts),
            Err(_) => json::parse(raw, path),
        }
    }
}

/// `image_url` of a content part.
#[derive(Debug, Deserialize)]
pub struct ImageUrl<'a> {
    /// An http(s) URL or a `data:` URL (a string literal).
    #[serde(borrow)]
    pub url: Raw<'a>,
}

/// `file` of a content part.
#[derive(Debug, Deserialize)]
pub struct FilePart<'a> {
    /// A `data:` URL with the file's bytes (a string literal).
    #[serde(borrow, default)]
    pub file_data: Option<Raw<'a>>,
    /// An uploaded file's id (not resolvable in a batch). Declared so that serde checks it like
    /// any other member (a duplicate is refused); the request is refused without `file_data`.
    #[serde(borrow, default)]
    #[allow(dead_code)]
    pub file_id: Option<Raw<'a>>,
}

/// The member path, in one entry of `tools`, of the value a model takes as written: its
/// function's `parameters` (a JSON Schema, whose reader decides what a repeated key means).
pub(crate) const TOOL_AS_WRITTEN: [&str; 2] = ["function", "parameters"];

/// One entry of `tools`.
#[derive(Debug, Deserialize)]
pub struct Tool<'a> {
    /// `function` (custom tools are not mapped).
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The function definition.
    #[serde(borrow, default)]
    pub function: Option<FunctionDef<'a>>,
}

/// A function tool definition.
#[derive(Debug, Deserialize)]
pub struct FunctionDef<'a> {
    /// The function name (a string literal).
    #[serde(borrow)]
    pub name: Raw<'a>,
    /// What the function does.
    #[serde(borrow, default)]
    pub description: Option<Raw<'a>>,
    /// Its parameters as a JSON Schema object.
    #[serde(borrow, default)]
    pub parameters: Option<Raw<'a>>,
}

/// `response_format` of a chat request.
#[derive(Debug, Deserialize)]
pub struct ResponseFormat<'a> {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The schema of a `json_schema` format.
    #[serde(borrow, default)]
    pub json_schema: Option<JsonSchema<'a>>,
}

/// `response_format.json_schema`.
#[derive(Debug, Deserialize)]
pub struct JsonSchema<'a> {
    /// The schema's name.
    #[serde(borrow, default)]
    pub name: Option<Raw<'a>>,
    /// What the response is.
    #[serde(borrow, default)]
    pub description: Option<Raw<'a>>,
    /// The JSON Schema.
    #[serde(borrow, default)]
    pub schema: Option<Raw<'a>>,
}

/// Chat request fields that no Bedrock model family honours. Each is a per-line reject, or, with
/// `--drop-unsupported`, dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// `n` other than 1.
    N,
    /// `logprobs: true`.
    Logprobs,
    /// `top_logprobs`.
    TopLogprobs,
    /// `logit_bias`.
    LogitBias,
    /// A non-zero `frequency_penalty`.
    FrequencyPenalty,
    /// A non-zero `presence_penalty`.
    PresencePenalty,
    /// `seed`.
    Seed,
}

/// Fields that describe the call rather than the generation; never copied into a Bedrock body.
const IGNORED: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];

/// A chat completions request body, split into the members the mappings read.
///
/// Members other than `messages` stay raw until a mapping asks for them. Members the mappings do not
/// know are kept by name in `unknown`, so a family can reject or drop them explicitly.
#[derive(Debug, Default)]
pub struct ChatRequest<'a> {
    /// `model` (a raw value; the Bedrock model comes from the command line).
    pub model: Option<Raw<'a>>,
    /// The conversation.
    pub messages: Vec<Message<'a>>,
    /// The `messages` array as written (for the families that take it as it is).
    pub messages_raw: Option<Raw<'a>>,
    /// Whether every member of every message was read and none is given twice: set by the fast
    /// scanner for messages of string `content` and no members it skips unread (most lines);
    /// a family that sends `messages` as written checks the rest for repeats itself.
    pub messages_checked: bool,
    /// `max_completion_tokens`.
    pub max_completion_tokens: Option<Raw<'a>>,
    /// `max_tokens` (deprecated spelling).
    pub max_tokens: Option<Raw<'a>>,
    /// `temperature`.
    pub temperature: Option<Raw<'a>>,
    /// `top_p`.
    pub top_p: Option<Raw<'a>>,
    /// `top_k` (not OpenAI's, but accepted by several Bedrock models).
    pub top_k: Option<Raw<'a>>,
    /// `stop`: a string or an array of strings.
    pub stop: Option<Raw<'a>>,
    /// `tools`.
    pub tools: Option<Raw<'a>>,
    /// Whether `tools` was checked as it was read (by the fast scanner, for a family that sends
    /// them as written) and no tool in it gives a member twice outside its
    /// `function.parameters` (which models take as written); such a family checks them itself
    /// when this is not set.
    pub tools_checked: bool,
    /// `tool_choice`.
    pub tool_choice: Option<Raw<'a>>,
    /// `parallel_tool_calls`.
    pub parallel_tool_calls: Option<Raw<'a>>,
    /// `response_format`.
    pub response_format: Option<Raw<'a>>,
    /// `reasoning_effort`.
    pub reasoning_effort: Option<Raw<'a>>,
    /// The prompt of a `/v1/completions` line (also its one user message): the text-prompt
    /// families send it as it is, with no chat template around it.
    pub prompt: Option<Raw<'a>>,
    /// Members set to values no family supports (see [`Unsupported`]).
    pub unsupported: Vec<(&'static str, Unsupported)>,
    /// Members this crate does not know, by name.
    pub unknown: Vec<Cow<'a, str>>,
}

impl<'a> ChatRequest<'a> {
    /// Parses a body object.
    pub fn parse(body: Raw<'a>) -> Result<Self, Reject> {
        // The fast path's scanner first: it reads a body as serde does, or gives up, and then
        // serde words the refusal.
        if let Ok(request) = scan::chat_body(body.get()) {
            return Ok(request);
        }
        json::read(body.get()).map_err(|(below, why)| {
            // The visitor words a fault in the messages from their top (`messages[2].role: …`).
            let message = match why.strip_prefix("messages") {
                Some(rest) if below.is_empty() && rest.starts_with(['[', ':']) => {
                    format!("body.messages{rest}")
                }
                _ => format!("body{below}: {why}"),
            };
            Reject::invalid(message)
        })
    }

    /// The `model` string, if present and a string.
    pub fn model_literal(&self) -> Option<Raw<'a>> {
        self.model.filter(|m| Kind::of(*m) == Kind::String)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ChatRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ChatVisitor(std::marker::PhantomData))
    }
}

struct ChatVisitor<'a>(std::marker::PhantomData<&'a ()>);

/// Zero (any spelling: `0`, `0.00`, `0e0`, `-0`) or null.
fn is_zero(raw: Raw<'_>) -> bool {
    raw.get() == "null" || json::number_value(raw) == Some(0.0)
}

/// An object with no members, whatever its whitespace, or null.
fn is_empty_object(raw: Raw<'_>) -> bool {
    let t = raw.get();
    t == "null"
        || (t.starts_with('{')
            && t[1..t.len() - 1]
                .trim_matches([' ', '\t', '\n', '\r'])
                .is_empty())
}

impl<'de: 'a, 'a> Visitor<'de> for ChatVisitor<'a> {
    type Value = ChatRequest<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chat completions request object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut req = ChatRequest::default();
        let mut saw_messages = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "messages" {
                if saw_messages {
                    return Err(de::Error::duplicate_field("messages"));
                }
                saw_messages = true;
                let raw: Raw<'de> = map.next_value()?;
                req.messages = json::read(raw.get()).map_err(|(below, why)| {
                    de::Error::custom(format_args!("messages{below}: {why}"))
                })?;
                name_others(&mut req.messages, raw).map_err(|r| de::Error::custom(r.message))?;
                req.messages_raw = Some(raw);
                continue;
            }
            let value: Raw<'de> = map.next_value()?;
            if !req.member(key.clone(), value) {
                return Err(de::Error::custom(format_args!("duplicate member `{key}`")));
            }
        }
        if !saw_messages {
            return Err(de::Error::missing_field("messages"));
        }
        Ok(req)
    }
}

impl<'a> ChatRequest<'a> {
    /// Files one body member other than `messages`; false for a duplicate of a known member.
    ///
    /// Shared by the serde path and the fast scanner, so both sort members the same way.
    pub(crate) fn member(&mut self, key: Cow<'a, str>, value: Raw<'a>) -> bool {
        let slot = match key.as_ref() {
            "model" => &mut self.model,
            "max_completion_tokens" => &mut self.max_completion_tokens,
            "max_tokens" => &mut self.max_tokens,
            "temperature" => &mut self.temperature,
            "top_p" => &mut self.top_p,
            "top_k" => &mut self.top_k,
            "stop" => &mut self.stop,
            "tools" => &mut self.tools,
            "tool_choice" => &mut self.tool_choice,
            "parallel_tool_calls" => &mut self.parallel_tool_calls,
            "response_format" => &mut self.response_format,
            "reasoning_effort" => &mut self.reasoning_effort,
            other => {
                let v = value.get();
                let unsupported = match other {
                    "n" if !(v == "null" || json::number_value(value) == Some(1.0)) => {
                        Some(("n", Unsupported::N))
                    }
                    "logprobs" if !matches!(v, "false" | "null") => {
                        Some(("logprobs", Unsupported::Logprobs))
                    }
                    // None asked for: OpenAI's reading of 0.
                    "top_logprobs" if !is_zero(value) => {
                        Some(("top_logprobs", Unsupported::TopLogprobs))
                    }
                    "logit_bias" if !is_empty_object(value) => {
                        Some(("logit_bias", Unsupported::LogitBias))
                    }
                    "frequency_penalty" if !is_zero(value) => {
                        Some(("frequency_penalty", Unsupported::FrequencyPenalty))
                    }
                    "presence_penalty" if !is_zero(value) => {
                        Some(("presence_penalty", Unsupported::PresencePenalty))
                    }
                    "seed" if v != "null" => Some(("seed", Unsupported::Seed)),
                    "n" | "logprobs" | "top_logprobs" | "logit_bias" | "frequency_penalty"
                    | "presence_penalty" | "seed" => None,
                    name if IGNORED.contains(&name) => None,
                    _ => {
                        self.unknown.push(key);
                        None
                    }
                };
                self.unsupported.extend(unsupported);
                return true;
            }
        };
        if slot.is_some() {
            return false;
        }
        // An explicit null means "not set", as in OpenAI's API.
        *slot = (value.get() != "null").then_some(value);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_checks_name_the_key_at_fault() {
        let check = |line: &str| {
            BatchLine::parse(line).and_then(|l| {
                l.check(&[Endpoint::ChatCompletions], Endpoint::CHAT)
                    .map(|_| ())
            })
        };
        let ok = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[]}}"#;
        assert!(check(ok).is_ok());
        let cases = [
            (
                r#"{"method":"POST","url":"/v1/chat/completions","body":{}}"#,
                RejectCode::InvalidCustomId,
            ),
            (
                r#"{"custom_id":7,"method":"POST","url":"/v1/chat/completions","body":{}}"#,
                RejectCode::InvalidCustomId,
            ),
            (
                r#"{"custom_id":"","method":"POST","url":"/v1/chat/completions","body":{}}"#,
                RejectCode::InvalidCustomId,
            ),
            (
                r#"{"custom_id":"a","method":"GET","url":"/v1/chat/completions","body":{}}"#,
                RejectCode::InvalidMethod,
            ),
            (
                r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{}}"#,
                RejectCode::InvalidUrl,
            ),
            (
                r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":[]}"#,
                RejectCode::InvalidRequest,
            ),
            (
                r#"{"custom_id":"a","method":"POST""#,
                RejectCode::InvalidJson,
            ),
            ("[1,2]", RejectCode::InvalidJson),
        ];
        for (line, code) in cases {
            assert_eq!(check(line).unwrap_err().code, code, "{line}");
        }
    }

    /// The scanner and serde name the same members beside the four read by name: those that
    /// hold something, by their decoded names, in order.
    #[test]
    fn serde_names_a_message_s_other_members_as_the_scanner_does() {
        for (text, others) in [
            (r#"{"role":"user","content":"a"}"#, vec![]),
            (
                r#"{"role":"user","name":"b","content":"a","x":1}"#,
                vec!["name", "x"],
            ),
            (r#"{"role":"user","n\u0061me":"b"}"#, vec!["name"]),
            (
                r#"{"role":"assistant","refusal":null,"annotations":[ ],"audio":{},"name":"","x":" "}"#,
                vec!["x"],
            ),
            (
                r#"{"role":"assistant","tool_calls":[],"function_call":{"name":"f"},"y":false,"z":[[]]}"#,
                vec!["function_call", "y", "z"],
            ),
            (
                r#"{"role":"user","content":"a","\ufffd":0}"#,
                vec!["\u{FFFD}"],
            ),
        ] {
            let body = format!(r#"{{"messages":[{text}]}}"#);
            // A key holding U+FFFD is serde's to read (the scanner cannot tell it from a lone
            // surrogate, which serde refuses).
            match super::scan::chat_body(&body) {
                Ok(scanned) => assert_eq!(scanned.messages[0].others, others, "{text}"),
                Err(_) => assert!(text.contains("ufffd"), "{text}"),
            }
            let read: ChatRequest<'_> = json::from_str(&body).unwrap();
            assert_eq!(read.messages[0].others, others, "{text}");
        }
        for (text, holds) in [
            ("null", false),
            ("\"\"", false),
            ("[]", false),
            ("[ \n\t\r]", false),
            ("{}", false),
            ("{ }", false),
            ("0", true),
            ("false", true),
            ("\" \"", true),
            ("[null]", true),
            ("{\"a\":null}", true),
        ] {
            let raw: Raw<'_> = serde_json::from_str(text).unwrap();
            assert_eq!(holds_something(raw), holds, "{text}");
        }
    }

    /// serde reads a role as the scanner does: a lone surrogate is replaced, not a refusal of the
    /// line; escapes are decoded; any other kind than a string is refused.
    #[test]
    fn serde_reads_a_role_as_the_scanner_does() {
        for (text, role) in [
            // Its three WTF-8 bytes, each replaced.
            (r#"{"role":"us\udc00er"}"#, "us\u{FFFD}\u{FFFD}\u{FFFD}er"),
            (r#"{"role":"\ud800"}"#, "\u{FFFD}\u{FFFD}\u{FFFD}"),
            (r#"{"role":"\u0075ser"}"#, "user"),
            (r#"{"role":"user"}"#, "user"),
        ] {
            let m: Message<'_> = json::from_str(text).unwrap();
            assert_eq!(m.role, role, "{text}");
            let body = format!(r#"{{"messages":[{text}]}}"#);
            let scanned = super::scan::chat_body(&body).unwrap();
            assert_eq!(scanned.messages[0].role, m.role, "{text}");
        }
        for text in [r#"{"role":5}"#, r#"{"role":null}"#, r#"{"role":["u"]}"#] {
            let e = json::from_str::<Message<'_>>(text).unwrap_err().to_string();
            assert!(e.contains("expected a string"), "{text}: {e}");
        }
    }

    #[test]
    fn chat_request_sorts_members() {
        let body: Raw<'_> = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":1,"seed":3,"user":"u","wat":1,"temperature":null}"#,
        )
        .unwrap();
        let req = ChatRequest::parse(body).unwrap();
        assert_eq!(req.messages.len(), 1);
        assert_eq!(req.unsupported, vec![("seed", Unsupported::Seed)]);
        assert_eq!(req.unknown, vec![Cow::Borrowed("wat")]);
        assert!(req.temperature.is_none());
        assert_eq!(req.model_literal().unwrap().get(), "\"m\"");
        // Settings at the value that asks for nothing are no unsupported ones.
        let body: Raw<'_> = serde_json::from_str(
            r#"{"messages":[],"top_logprobs":0,"logprobs":false,"n":1.0,"seed":null,"logit_bias":{ },"frequency_penalty":0e0}"#,
        )
        .unwrap();
        assert_eq!(ChatRequest::parse(body).unwrap().unsupported, vec![]);
        let body: Raw<'_> = serde_json::from_str(r#"{"messages":[],"top_logprobs":2}"#).unwrap();
        assert_eq!(
            ChatRequest::parse(body).unwrap().unsupported,
            vec![("top_logprobs", Unsupported::TopLogprobs)]
        );
    }

    #[test]
    fn chat_request_rejects_duplicates_and_missing_messages() {
        let dup: Raw<'_> =
            serde_json::from_str(r#"{"messages":[],"top_p":1,"top_p":0.5}"#).unwrap();
        assert!(ChatRequest::parse(dup)
            .unwrap_err()
            .message
            .contains("duplicate member `top_p`"));
        let none: Raw<'_> = serde_json::from_str(r#"{"model":"x"}"#).unwrap();
        assert!(ChatRequest::parse(none)
            .unwrap_err()
            .message
            .contains("missing field `messages`"));
    }
}
