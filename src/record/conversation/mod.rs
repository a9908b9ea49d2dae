//! An OpenAI chat conversation read once into model-neutral turns and blocks, which each model
//! family then writes in its own body format. Every value the output keeps (message text, ids,
//! base64 data, tool inputs) stays a slice of the input line, escapes intact.
//!
//! The request side's neutral pieces: this module (turns, blocks, tools, structured output),
//! [`params`] (sampling values read by value), [`policy`] (refuse or drop what a body cannot
//! carry), [`splice`] (templated prompts). Nothing here writes a family's body.

mod params;
mod policy;
mod splice;

pub(crate) use params::{number, positive_int, write_stop_list};
pub(crate) use policy::{check_message_members, check_unsupported, refuse_fields};
pub(crate) use splice::{turn_texts, Spliced};

use std::borrow::Cow;

use super::json::{self, expect, parse, str_value, Kind};
use super::openai::{ChatRequest, ContentPart, Message, ResponseFormat, Tool};
use super::{Raw, Reject, RejectCode};

/// What a family accepts of images and documents, and its name for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MediaPolicy {
    /// The family as messages name it ("Claude").
    pub family: &'static str,
    /// Image media types it takes as base64.
    pub images: &'static [&'static str],
    /// Document media types it takes as base64 (`file` parts).
    pub documents: &'static [&'static str],
    /// Added to the message when it takes no images or documents at all: where to go instead.
    pub elsewhere: &'static str,
}

/// A content block of a message, borrowing from the input line.
pub(crate) enum Block<'a> {
    /// `{"type":"text","text":<raw>}`
    Text(Raw<'a>),
    /// `{"type":"image"|"document","source":{"type":"base64","media_type":…,"data":…}}`
    Base64 {
        kind: &'static str,
        media_type: Cow<'a, str>,
        data: Cow<'a, str>,
    },
    /// `{"type":"tool_use","id":…,"name":…,"input":…}`; `input` is JSON text without raw newlines.
    ToolUse {
        id: Raw<'a>,
        name: Raw<'a>,
        input: Cow<'a, str>,
    },
    /// `{"type":"tool_result","tool_use_id":…,"content":…}`; content is a string literal or blocks.
    ToolResult {
        id: Raw<'a>,
        content: ToolResultContent<'a>,
    },
}

pub(crate) enum ToolResultContent<'a> {
    Raw(Raw<'a>),
    Texts(Vec<Raw<'a>>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Assistant,
}

pub(crate) struct Turn<'a> {
    pub role: Role,
    pub blocks: Vec<Block<'a>>,
}

/// Splits the OpenAI messages into system texts and alternating turns (consecutive messages of
/// one role merged, empty texts left out).
pub(crate) fn conversation<'a>(
    messages: &'a [Message<'a>],
    media: &MediaPolicy,
) -> Result<(Vec<Raw<'a>>, Vec<Turn<'a>>), Reject> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'a>> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let path = |rest: &'static str| MsgPath(i, rest);
        let (role, blocks) = match m.role.as_ref() {
            "system" | "developer" => {
                texts(m.content, path(".content"), &mut system)?;
                continue;
            }
            "user" => (Role::User, user_blocks(m.content, path(".content"), media)?),
            "assistant" => (Role::Assistant, assistant_blocks(m, path(""))?),
            "tool" => (Role::User, vec![tool_result(m, path(""))?]),
            "function" => {
                return Err(Reject::invalid(format!(
                    "{}: the deprecated \"function\" role is not supported; use tool messages",
                    path(".role")
                )))
            }
            other => {
                return Err(Reject::invalid(format!(
                    "{}: unknown role \"{other}\"",
                    path(".role")
                )))
            }
        };
        if blocks.is_empty() {
            // Nothing to say (empty text): Claude rejects empty turns, and leaving this one out
            // loses nothing.
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }
    if turns.is_empty() {
        return Err(Reject::invalid(format!(
            "body.messages: no user or assistant message ({} needs at least one)",
            media.family
        )));
    }
    Ok((system, turns))
}

/// Collects the non-empty texts of a string or text-part content (system, developer, tool).
pub(crate) fn texts<'a>(
    content: Option<Raw<'a>>,
    path: impl std::fmt::Display + Copy,
    into: &mut Vec<Raw<'a>>,
) -> Result<(), Reject> {
    let Some(raw) = content else { return Ok(()) };
    match Kind::of(raw) {
        Kind::String => {
            if !json::is_empty_string(raw) {
                into.push(raw);
            }
        }
        Kind::Array => {
            let parts = ContentPart::list(raw, path)?;
            for (j, p) in parts.iter().enumerate() {
                match (p.kind.as_ref(), p.text) {
                    ("text", Some(t)) => {
                        expect(t, Kind::String, format_args!("{path}[{j}].text"))?;
                        if !json::is_empty_string(t) {
                            into.push(t);
                        }
                    }
                    (kind, _) => {
                        return Err(Reject::invalid(format!(
                            "{path}[{j}]: only text parts are allowed here, found \"{kind}\""
                        )))
                    }
                }
            }
        }
        other => {
            return Err(Reject::invalid(format!(
                "{path}: expected a string or an array, found {}",
                other.name()
            )))
        }
    }
    Ok(())
}

fn user_blocks<'a>(
    content: Option<Raw<'a>>,
    path: impl std::fmt::Display + Copy,
    media: &MediaPolicy,
) -> Result<Vec<Block<'a>>, Reject> {
    let Some(raw) = content else {
        return Err(Reject::invalid(format!("{path}: missing")));
    };
    match Kind::of(raw) {
        Kind::String => Ok(if json::is_empty_string(raw) {
            vec![]
        } else {
            vec![Block::Text(raw)]
        }),
        Kind::Array => {
            let parts = ContentPart::list(raw, path)?;
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, p) in parts.into_iter().enumerate() {
                let at = format!("{path}[{j}]");
                if let Some(block) = user_block(p, &at, media)? {
                    blocks.push(block);
                }
            }
            Ok(blocks)
        }
        other => Err(Reject::invalid(format!(
            "{path}: expected a string or an array, found {}",
            other.name()
        ))),
    }
}

/// One content part of a user message (at `at`), as a block; `None` for an empty text.
fn user_block<'a>(
    p: ContentPart<'a>,
    at: &str,
    media: &MediaPolicy,
) -> Result<Option<Block<'a>>, Reject> {
    match p.kind.as_ref() {
        "text" => {
            let t = p
                .text
                .ok_or_else(|| Reject::invalid(format!("{at}.text: missing")))?;
            expect(t, Kind::String, format_args!("{at}.text"))?;
            Ok((!json::is_empty_string(t)).then_some(Block::Text(t)))
        }
        "image_url" => {
            let url = p
                .image_url
                .ok_or_else(|| Reject::invalid(format!("{at}.image_url: missing")))?
                .url;
            let path = format!("{at}.image_url.url");
            if media.images.is_empty() {
                return Err(no_media(at, media, "images"));
            }
            let (media_type, data) = data_url(str_value(url, &path)?, &path, media)?;
            if !media.images.contains(&media_type.as_ref()) {
                return Err(Reject::invalid(format!(
                    "{at}.image_url.url: media type {media_type} is not one {} accepts ({})",
                    media.family,
                    media.images.join(", ")
                )));
            }
            Ok(Some(Block::Base64 {
                kind: "image",
                media_type,
                data,
            }))
        }
        "file" => {
            let file = p
                .file
                .ok_or_else(|| Reject::invalid(format!("{at}.file: missing")))?;
            let Some(url) = file.file_data else {
                return Err(Reject::invalid(format!(
                    "{at}.file: only inline file_data is supported in a batch (a file_id cannot be resolved)"
                )));
            };
            let path = format!("{at}.file.file_data");
            if media.documents.is_empty() {
                return Err(no_media(at, media, "documents"));
            }
            let (media_type, data) = data_url(str_value(url, &path)?, &path, media)?;
            if !media.documents.contains(&media_type.as_ref()) {
                return Err(Reject::invalid(format!(
                    "{at}.file.file_data: {} documents must be {}, found {media_type}",
                    media.family,
                    media.documents.join(" or ")
                )));
            }
            Ok(Some(Block::Base64 {
                kind: "document",
                media_type,
                data,
            }))
        }
        other => Err(Reject::invalid(format!(
            "{at}: content part type \"{other}\" is not supported by {} on Bedrock",
            media.family
        ))),
    }
}

/// The reject for media (`images`, `documents`) a family takes none of.
fn no_media(at: &str, media: &MediaPolicy, what: &str) -> Reject {
    Reject::new(
        RejectCode::UnsupportedParameter,
        format!(
            "{at}: {} on Bedrock takes no {what}{}",
            media.family, media.elsewhere
        ),
    )
}

/// Splits `data:<media type>;base64,<data>`, borrowing both parts when the URL had no escapes.
fn data_url<'a>(
    url: Cow<'a, str>,
    path: impl std::fmt::Display + Copy,
    media: &MediaPolicy,
) -> Result<(Cow<'a, str>, Cow<'a, str>), Reject> {
    let (media_type, data) = {
        let u: &str = &url;
        if u.starts_with("http://") || u.starts_with("https://") {
            return Err(Reject::invalid(format!(
                "{path}: Bedrock {} accepts base64 data only, not URLs; inline the image as a data: URL",
                media.family
            )));
        }
        let rest = u
            .strip_prefix("data:")
            .ok_or_else(|| Reject::invalid(format!("{path}: expected a data: URL")))?;
        let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
            Reject::invalid(format!(
                "{path}: expected a data:<media type>;base64,<data> URL"
            ))
        })?;
        // Both parts are written unescaped into the output, so their alphabets are checked here.
        if data.is_empty()
            || !data
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(Reject::invalid(format!("{path}: the data is not base64")));
        }
        if !media_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'+' | b'-'))
        {
            return Err(Reject::invalid(format!("{path}: invalid media type")));
        }
        (
            5..5 + media_type.len(),
            5 + media_type.len() + ";base64,".len()..u.len(),
        )
    };
    Ok(match url {
        Cow::Borrowed(u) => (Cow::Borrowed(&u[media_type]), Cow::Borrowed(&u[data])),
        // Escaped (e.g. `\/`, as PHP writes slashes): owned copies, on those lines only.
        Cow::Owned(u) => (
            Cow::Owned(u[media_type].to_owned()),
            Cow::Owned(u[data].to_owned()),
        ),
    })
}

fn assistant_blocks<'a>(
    m: &'a Message<'a>,
    path: impl std::fmt::Display + Copy,
) -> Result<Vec<Block<'a>>, Reject> {
    let mut blocks = Vec::new();
    if let Some(raw) = m.content {
        match Kind::of(raw) {
            Kind::String => {
                if !json::is_empty_string(raw) {
                    blocks.push(Block::Text(raw));
                }
            }
            Kind::Array => {
                let parts = ContentPart::list(raw, format_args!("{path}.content"))?;
                for (j, p) in parts.iter().enumerate() {
                    let text = match p.kind.as_ref() {
                        "text" => p.text,
                        "refusal" => p.refusal,
                        other => {
                            return Err(Reject::invalid(format!(
                                "{path}.content[{j}]: assistant content part type \"{other}\" is not supported"
                            )))
                        }
                    };
                    let t = text.ok_or_else(|| {
                        Reject::invalid(format!("{path}.content[{j}]: missing text"))
                    })?;
                    expect(t, Kind::String, format_args!("{path}.content[{j}]"))?;
                    if !json::is_empty_string(t) {
                        blocks.push(Block::Text(t));
                    }
                }
            }
            other => {
                return Err(Reject::invalid(format!(
                    "{path}.content: expected a string, an array or null, found {}",
                    other.name()
                )))
            }
        }
    }
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let at = format!("{path}.tool_calls[{j}]");
        if let Some(kind) = call.kind {
            if json::as_text(kind).as_deref() != Some("function") {
                return Err(Reject::invalid(format!(
                    "{at}.type: only function calls are supported, found {}",
                    kind.get()
                )));
            }
        }
        expect(call.id, Kind::String, format_args!("{at}.id"))?;
        tool_name(call.function.name, format_args!("{at}.function.name"))?;
        let input = call_arguments(call.function.arguments, &at)?;
        blocks.push(Block::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
        });
    }
    Ok(blocks)
}

/// The `arguments` of the tool call at `at` as the text of one JSON object, single-line: none, or
/// a blank string, means no arguments (`{}`); any other string must be one object giving each
/// member once (the rule of every family, those that send the string as written too).
pub(crate) fn call_arguments<'t>(
    arguments: Option<Raw<'t>>,
    at: &str,
) -> Result<Cow<'t, str>, Reject> {
    let Some(raw) = arguments else {
        return Ok(Cow::Borrowed("{}"));
    };
    Ok(
        match str_value(raw, format_args!("{at}.function.arguments"))? {
            args if args.trim().is_empty() => Cow::Borrowed("{}"),
            Cow::Borrowed(args) => object_text(args, at)?,
            Cow::Owned(args) => Cow::Owned(object_text(&args, at)?.into_owned()),
        },
    )
}

/// The text of tool-call arguments, checked to be one JSON object and made single-line.
fn object_text<'t>(text: &'t str, at: &str) -> Result<Cow<'t, str>, Reject> {
    let parsed: Raw<'_> = serde_json::from_str(text).map_err(|e| {
        Reject::invalid(format!(
            "{at}.function.arguments: not valid JSON: {}",
            json::strip_position(&e)
        ))
    })?;
    expect(
        parsed,
        Kind::Object,
        format_args!("{at}.function.arguments"),
    )?;
    each_member_once(parsed, format_args!("{at}.function.arguments"))?;
    Ok(one_line(parsed.get()))
}

/// Refuses `value` (at `path`) where an object in it, at any depth, gives a member twice: copied
/// as written, it would hand the model one of the two, and which one would be its parser's guess.
fn each_member_once(value: Raw<'_>, path: impl std::fmt::Display) -> Result<(), Reject> {
    match super::scan::repeated_key(value.get()) {
        Ok(Some(key)) => Err(Reject::invalid(format!("{path}: duplicate member `{key}`"))),
        _ => Ok(()),
    }
}

/// JSON text with its raw newlines (possible only as whitespace between tokens) turned into spaces,
/// so it can sit inside one JSONL line.
pub(crate) fn one_line(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b == b'\n' || b == b'\r') {
        Cow::Owned(text.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(text)
    }
}

fn tool_result<'a>(
    m: &'a Message<'a>,
    path: impl std::fmt::Display + Copy,
) -> Result<Block<'a>, Reject> {
    let id = m.tool_call_id.ok_or_else(|| {
        Reject::invalid(format!(
            "{path}.tool_call_id: missing (a tool message must name the call it answers)"
        ))
    })?;
    expect(id, Kind::String, format_args!("{path}.tool_call_id"))?;
    let content = match m.content {
        None => ToolResultContent::Texts(Vec::new()),
        Some(raw) if Kind::of(raw) == Kind::String => ToolResultContent::Raw(raw),
        Some(raw) => {
            let mut t = Vec::new();
            texts(Some(raw), format_args!("{path}.content"), &mut t)?;
            ToolResultContent::Texts(t)
        }
    };
    Ok(Block::ToolResult { id, content })
}

/// Checks a tool name against Claude's pattern `^[a-zA-Z0-9_-]{1,64}$`.
pub(crate) fn tool_name<'a>(
    raw: Raw<'a>,
    path: impl std::fmt::Display + Copy,
) -> Result<Cow<'a, str>, Reject> {
    let name = str_value(raw, path)?;
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Reject::invalid(format!(
            "{path}: \"{name}\" is not a valid tool name (1-64 of a-z A-Z 0-9 _ -)"
        )));
    }
    Ok(name)
}

/// `body.messages[i]` and a suffix, formatted only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) struct MsgPath(pub usize, pub &'static str);

impl std::fmt::Display for MsgPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "body.messages[{}]{}", self.0, self.1)
    }
}

/// `body.tools[i]`, formatted only when an error needs it.
#[derive(Clone, Copy)]
struct ToolPath(usize);

impl std::fmt::Display for ToolPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "body.tools[{}]", self.0)
    }
}

/// The JSON Schema of a function that declares no parameters.
pub(crate) const EMPTY_SCHEMA: &str = "{\"type\":\"object\",\"properties\":{}}";

/// One function tool of a request, checked.
pub(crate) struct FunctionTool<'a> {
    /// A valid tool name literal.
    pub name: Raw<'a>,
    /// A string literal.
    pub description: Option<Raw<'a>>,
    /// The parameters' JSON Schema (an object), or [`EMPTY_SCHEMA`].
    pub parameters: &'a str,
}

/// The request's `tools`, checked: function tools only, valid names (not `reserved`, the name
/// a family keeps for its own use: every call of it comes back as the answer's content, so a
/// function of that name could never be called), string descriptions, object schemas.
pub(crate) fn function_tools<'a>(
    req: &ChatRequest<'a>,
    reserved: Option<&str>,
) -> Result<Vec<FunctionTool<'a>>, Reject> {
    let Some(raw) = req.tools else {
        return Ok(Vec::new());
    };
    // The scanner reads what it can, its parameters checked for repeated keys as it goes;
    // serde reads the rest, and words what is wrong.
    let (tools, checked): (Vec<Tool<'a>>, bool) = match super::openai::scan_tools(raw.get()) {
        Ok(tools) => (tools, true),
        Err(_) => (parse(raw, "body.tools")?, false),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let at = ToolPath(i);
        if tool.kind != "function" {
            return Err(Reject::invalid(format!(
                "{at}.type: only function tools are supported, found \"{}\"",
                tool.kind
            )));
        }
        let f = tool
            .function
            .ok_or_else(|| Reject::invalid(format!("{at}.function: missing")))?;
        let name = tool_name(f.name, format_args!("{at}.function.name"))?;
        if reserved.is_some_and(|r| r == name) {
            return Err(Reject::invalid(format!(
                "{at}.function.name: \"{name}\" is reserved: it names the tool that carries response_format, and every call of it is read back as the answer's content; rename the function"
            )));
        }
        let description = f
            .description
            .map(|d| expect(d, Kind::String, format_args!("{at}.function.description")))
            .transpose()?;
        let parameters = match f.parameters {
            Some(p) => {
                let at = format_args!("{at}.function.parameters");
                let p = expect(p, Kind::Object, at)?;
                if !checked {
                    each_member_once(p, at)?;
                }
                p.get()
            }
            None => EMPTY_SCHEMA,
        };
        out.push(FunctionTool {
            name: f.name,
            description,
            parameters,
        });
    }
    Ok(out)
}

/// A structured-output request (`response_format` json_schema / json_object), carried by a tool
/// the model is forced to call (Claude, Nova).
pub(crate) struct ResponseTool<'a> {
    pub description: Option<Raw<'a>>,
    pub schema: Option<Raw<'a>>,
}

pub(crate) fn response_tool<'a>(req: &ChatRequest<'a>) -> Result<Option<ResponseTool<'a>>, Reject> {
    let Some(raw) = req.response_format else {
        return Ok(None);
    };
    let rf: ResponseFormat<'a> = parse(raw, "body.response_format")?;
    match rf.kind.as_ref() {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseTool { description: None, schema: None })),
        "json_schema" => {
            let js = rf
                .json_schema
                .ok_or_else(|| Reject::invalid("body.response_format.json_schema: missing"))?;
            if let Some(n) = js.name {
                expect(n, Kind::String, "body.response_format.json_schema.name")?;
            }
            if let Some(d) = js.description {
                expect(d, Kind::String, "body.response_format.json_schema.description")?;
            }
            let at = "body.response_format.json_schema.schema";
            let schema = js.schema.map(|s| expect(s, Kind::Object, at)).transpose()?;
            if let Some(schema) = schema {
                each_member_once(schema, at)?;
            }
            Ok(Some(ResponseTool { description: js.description, schema }))
        }
        other => Err(Reject::invalid(format!(
            "body.response_format.type: unknown value \"{other}\" (expected text, json_object or json_schema)"
        ))),
    }
}
