//! An OpenAI chat conversation read once into model-neutral turns and blocks, which each model
//! family then writes in its own body format. Every value the output keeps (message text, ids,
//! base64 data, tool inputs) stays a slice of the input line, escapes intact.

use std::borrow::Cow;

use super::json::{self, expect, parse, str_value, Kind};
use super::openai::{ChatRequest, ContentPart, Message, ResponseFormat, Tool};
use super::{MapOptions, Notes, Raw, Reject, RejectCode};

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

pub(crate) fn number(raw: Raw<'_>, path: impl std::fmt::Display + Copy) -> Result<f64, Reject> {
    expect(raw, Kind::Number, path)?;
    // A validated JSON number is valid Rust float syntax.
    raw.get()
        .parse::<f64>()
        .map_err(|_| Reject::invalid(format!("{path}: {} is not a number", raw.get())))
}

pub(crate) fn positive_int(
    raw: Raw<'_>,
    path: impl std::fmt::Display + Copy,
) -> Result<u64, Reject> {
    expect(raw, Kind::Number, path)?;
    match whole_number(raw.get()) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(Reject::invalid(format!(
            "{path}: expected a positive integer, found {}",
            raw.get()
        ))),
    }
}

/// The value of a (validated) JSON number when it is a whole number of at least zero, however
/// it is spelled — `4096`, `4096.0`, `4.096e3`, `-0` — saturating at `u64::MAX`; `None` for a
/// fraction or a negative number. Exact: `1.0000000000000001` is not whole.
pub(crate) fn whole_number(text: &str) -> Option<u64> {
    exact_whole_number(text).map(|(n, _)| n)
}

/// [`whole_number`], and whether it saturated (the number is past `u64::MAX`).
pub(crate) fn exact_whole_number(text: &str) -> Option<(u64, bool)> {
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => {
            let far = if e.starts_with('-') {
                -(1 << 40)
            } else {
                1 << 40
            };
            (m, e.parse::<i64>().unwrap_or(far))
        }
        None => (text, 0),
    };
    let negative = mantissa.starts_with('-');
    let mantissa = mantissa.trim_start_matches('-');
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // Where the decimal point falls among the written digits.
    let point = (int.len() as i64).saturating_add(exp);
    let (mut value, mut saturated) = (0u64, false);
    let mut push =
        |d: u64, value: &mut u64| match value.checked_mul(10).and_then(|v| v.checked_add(d)) {
            Some(v) => *value = v,
            None => {
                saturated = true;
                *value = u64::MAX;
            }
        };
    for (i, d) in int.bytes().chain(frac.bytes()).enumerate() {
        let d = u64::from(d.wrapping_sub(b'0'));
        if d > 9 {
            return None;
        }
        if (i as i64) < point {
            push(d, &mut value);
        } else if d != 0 {
            return None;
        }
    }
    // Zeros the exponent adds past the written digits (a few more than u64 holds are enough).
    let written = (int.len() + frac.len()) as i64;
    for _ in 0..(point - written).clamp(0, 40) {
        if value != 0 {
            push(0, &mut value);
        }
    }
    (!negative || value == 0).then_some((value, saturated))
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
            let parts: Vec<ContentPart<'a>> = parse(raw, path)?;
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
            let parts: Vec<ContentPart<'a>> = parse(raw, path)?;
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, p) in parts.into_iter().enumerate() {
                let at = || format!("{path}[{j}]");
                match p.kind.as_ref() {
                    "text" => {
                        let t = p
                            .text
                            .ok_or_else(|| Reject::invalid(format!("{}.text: missing", at())))?;
                        expect(t, Kind::String, format_args!("{}.text", at()))?;
                        if !json::is_empty_string(t) {
                            blocks.push(Block::Text(t));
                        }
                    }
                    "image_url" => {
                        let url = p
                            .image_url
                            .ok_or_else(|| Reject::invalid(format!("{}.image_url: missing", at())))?
                            .url;
                        let path = at() + ".image_url.url";
                        if media.images.is_empty() {
                            return Err(Reject::new(
                                RejectCode::UnsupportedParameter,
                                format!(
                                    "{}: {} on Bedrock takes no images{}",
                                    at(),
                                    media.family,
                                    media.elsewhere
                                ),
                            ));
                        }
                        let (media_type, data) = data_url(str_value(url, &path)?, &path, media)?;
                        if !media.images.contains(&media_type.as_ref()) {
                            return Err(Reject::invalid(format!(
                                "{}.image_url.url: media type {media_type} is not one {} accepts ({})",
                                at(),
                                media.family,
                                media.images.join(", ")
                            )));
                        }
                        blocks.push(Block::Base64 {
                            kind: "image",
                            media_type,
                            data,
                        });
                    }
                    "file" => {
                        let file = p
                            .file
                            .ok_or_else(|| Reject::invalid(format!("{}.file: missing", at())))?;
                        let Some(url) = file.file_data else {
                            return Err(Reject::invalid(format!(
                                "{}.file: only inline file_data is supported in a batch (a file_id cannot be resolved)",
                                at()
                            )));
                        };
                        let path = at() + ".file.file_data";
                        if media.documents.is_empty() {
                            return Err(Reject::new(
                                RejectCode::UnsupportedParameter,
                                format!(
                                    "{}: {} on Bedrock takes no documents{}",
                                    at(),
                                    media.family,
                                    media.elsewhere
                                ),
                            ));
                        }
                        let (media_type, data) = data_url(str_value(url, &path)?, &path, media)?;
                        if !media.documents.contains(&media_type.as_ref()) {
                            return Err(Reject::invalid(format!(
                                "{}.file.file_data: {} documents must be {}, found {media_type}",
                                at(),
                                media.family,
                                if media.documents.is_empty() {
                                    "absent".to_owned()
                                } else {
                                    media.documents.join(" or ")
                                }
                            )));
                        }
                        blocks.push(Block::Base64 {
                            kind: "document",
                            media_type,
                            data,
                        });
                    }
                    other => {
                        return Err(Reject::invalid(format!(
                            "{}: content part type \"{other}\" is not supported by {} on Bedrock",
                            at(),
                            media.family
                        )))
                    }
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
                let parts: Vec<ContentPart<'a>> = parse(raw, format_args!("{path}.content"))?;
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
        let arguments = call
            .function
            .arguments
            .map(|a| str_value(a, format_args!("{at}.function.arguments")))
            .transpose()?;
        let input = match arguments {
            None => Cow::Borrowed("{}"),
            Some(args) if args.trim().is_empty() => Cow::Borrowed("{}"),
            Some(Cow::Borrowed(args)) => object_text(args, &at)?,
            Some(Cow::Owned(args)) => Cow::Owned(object_text(&args, &at)?.into_owned()),
        };
        blocks.push(Block::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
        });
    }
    Ok(blocks)
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
    Ok(one_line(parsed.get()))
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

/// Writes `stop` (a string, or an array of non-empty strings) as an array of at most `max`
/// stop sequences, the first ones; says whether some were left out.
pub(crate) fn write_stop_list(raw: Raw<'_>, max: usize, out: &mut Vec<u8>) -> Result<bool, Reject> {
    match Kind::of(raw) {
        Kind::String => {
            if json::is_empty_string(raw) {
                return Err(Reject::invalid("body.stop: empty stop sequence"));
            }
            out.push(b'[');
            out.extend_from_slice(raw.get().as_bytes());
            out.push(b']');
            Ok(false)
        }
        Kind::Array => {
            let items: Vec<Raw<'_>> = parse(raw, "body.stop")?;
            for (i, item) in items.iter().enumerate() {
                expect(*item, Kind::String, format_args!("body.stop[{i}]"))?;
                if json::is_empty_string(*item) {
                    return Err(Reject::invalid(format!(
                        "body.stop[{i}]: empty stop sequence"
                    )));
                }
            }
            if items.len() <= max {
                out.extend_from_slice(raw.get().as_bytes());
                return Ok(false);
            }
            let mut a = json::Arr::open(out);
            for item in &items[..max] {
                a.next().extend_from_slice(item.get().as_bytes());
            }
            a.close();
            Ok(true)
        }
        other => Err(Reject::invalid(format!(
            "body.stop: expected a string or an array, found {}",
            other.name()
        ))),
    }
}

/// `body.messages[i]` and a suffix, formatted only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) struct MsgPath(pub usize, pub &'static str);

impl std::fmt::Display for MsgPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "body.messages[{}]{}", self.0, self.1)
    }
}

/// Rejects the first field no Bedrock model honours (`seed`, `logprobs`, …) or that this crate does
/// not know, naming it; with `--drop-unsupported`, drops them all and counts them in `notes`.
pub(crate) fn check_unsupported(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    family: &str,
) -> Result<(), Reject> {
    if let Some(field) = req
        .unsupported
        .first()
        .map(|u| u.0)
        .or(req.unknown.first().map(|u| u.as_ref()))
    {
        if !opts.drop_unsupported {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.{field}: not supported by {family} on Bedrock (use --drop-unsupported to drop it)"),
            ));
        }
    }
    notes
        .dropped
        .extend(req.unsupported.iter().map(|u| u.0.to_owned()));
    notes
        .dropped
        .extend(req.unknown.iter().map(|u| u.to_string()));
    Ok(())
}

/// Fields a family's body has no place for: each present one is rejected with `why`, or, with
/// `--drop-unsupported`, dropped and counted.
pub(crate) fn refuse_fields(
    present: &[(&str, bool)],
    opts: &MapOptions,
    notes: &mut Notes,
    why: &str,
) -> Result<(), Reject> {
    for (field, here) in present {
        if !here {
            continue;
        }
        if !opts.drop_unsupported {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.{field}: {why} (use --drop-unsupported to drop it)"),
            ));
        }
        notes.dropped.push((*field).to_owned());
    }
    Ok(())
}

/// Builds one JSON string literal from pieces: constant text (already JSON-escaped) and the insides
/// of string literals from the input, spliced as they are.
pub(crate) struct Spliced<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Spliced<'o> {
    /// Opens the literal.
    pub fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'"');
        Spliced { out }
    }

    /// Appends escaped constant text.
    pub fn escaped(&mut self, text: &str) -> &mut Self {
        self.out.extend_from_slice(text.as_bytes());
        self
    }

    /// Appends the inside of a string literal.
    pub fn literal(&mut self, lit: Raw<'_>) -> &mut Self {
        let t = lit.get();
        self.out.extend_from_slice(&t.as_bytes()[1..t.len() - 1]);
        self
    }

    /// Appends the insides of `lits`, `sep` (escaped) between them.
    pub fn joined(&mut self, lits: &[Raw<'_>], sep: &str) -> &mut Self {
        for (i, l) in lits.iter().enumerate() {
            if i > 0 {
                self.escaped(sep);
            }
            self.literal(*l);
        }
        self
    }

    /// Closes the literal.
    pub fn close(self) {
        self.out.push(b'"');
    }
}

/// The text literals of a turn; anything else (images, documents, tool blocks) is refused with
/// `why`.
pub(crate) fn turn_texts<'a>(turn: &Turn<'a>, why: &str) -> Result<Vec<Raw<'a>>, Reject> {
    turn.blocks
        .iter()
        .map(|b| match b {
            Block::Text(t) => Ok(*t),
            Block::Base64 { kind, .. } => Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.messages: {kind} content {why}"),
            )),
            Block::ToolUse { .. } | Block::ToolResult { .. } => Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.messages: tool calls and tool results {why}"),
            )),
        })
        .collect()
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
/// a family keeps for its own use), string descriptions, object schemas.
pub(crate) fn function_tools<'a>(
    req: &ChatRequest<'a>,
    reserved: Option<&str>,
) -> Result<Vec<FunctionTool<'a>>, Reject> {
    let Some(raw) = req.tools else {
        return Ok(Vec::new());
    };
    let tools: Vec<Tool<'a>> = parse(raw, "body.tools")?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let at = format!("body.tools[{i}]");
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
                "{at}.function.name: \"{name}\" is reserved for response_format when both are given"
            )));
        }
        let description = f
            .description
            .map(|d| expect(d, Kind::String, format_args!("{at}.function.description")))
            .transpose()?;
        let parameters = match f.parameters {
            Some(p) => expect(p, Kind::Object, format_args!("{at}.function.parameters"))?.get(),
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
            let schema = js
                .schema
                .map(|s| expect(s, Kind::Object, "body.response_format.json_schema.schema"))
                .transpose()?;
            Ok(Some(ResponseTool { description: js.description, schema }))
        }
        other => Err(Reject::invalid(format!(
            "body.response_format.type: unknown value \"{other}\" (expected text, json_object or json_schema)"
        ))),
    }
}
