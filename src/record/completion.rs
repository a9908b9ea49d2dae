//! What every chat family reads its answer into — the one [`Choice`], its usage and context —
//! for [`super::response_body`] to write as the endpoint's body.

use std::borrow::Cow;

use serde::Deserialize;

use super::json::{as_text, elements, expect, null_default, parse, Count, Kind, Obj};
use super::scan::{Fallback, Scan, Scanner};
use super::{Endpoint, Raw, Reject};

/// What the response body needs besides `modelOutput`.
#[derive(Debug, Clone, Copy)]
pub struct CompletionContext<'c> {
    /// `id` when `modelOutput` has none.
    pub fallback_id: &'c str,
    /// The `model` to report, as a JSON string literal.
    pub model: &'c str,
    /// `created`, Unix seconds.
    pub created: u64,
    /// The endpoint the request was for: it decides the body's shape (`chat.completion`,
    /// `response` or `text_completion`).
    pub endpoint: Endpoint,
}

/// Token counts of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens, cache reads and writes included.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cached_tokens: u64,
    /// Prompt tokens written to the cache.
    pub cache_write_tokens: u64,
    /// Generated tokens spent on reasoning, when the model says (else 0).
    pub reasoning_tokens: u64,
    /// A count the model reported could not be a count (negative, fractional, beyond 2^64−1),
    /// or the counts add up to more than 2^64−1: the numbers are the nearest ones in range.
    pub adjusted: bool,
}

impl Usage {
    /// The usage of a response that reported `input`, `output` and cache `read` and `write`
    /// tokens: the prompt counts all three inputs. Sums that would pass 2^64−1 stop there, and
    /// say so.
    pub(crate) fn from_counts(input: Count, output: Count, read: Count, write: Count) -> Usage {
        let prompt = input
            .n
            .checked_add(read.n)
            .and_then(|p| p.checked_add(write.n));
        let mut u = Usage {
            prompt_tokens: prompt.unwrap_or(u64::MAX),
            completion_tokens: output.n,
            cached_tokens: read.n,
            cache_write_tokens: write.n,
            reasoning_tokens: 0,
            adjusted: prompt.is_none()
                || input.adjusted
                || output.adjusted
                || read.adjusted
                || write.adjusted,
        };
        u.adjusted |= u.prompt_tokens.checked_add(u.completion_tokens).is_none();
        u
    }

    /// Prompt and completion tokens together (at most 2^64−1).
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

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
    /// String literals, joined into the message's `refusal` (null when none): the model's own
    /// words declining, which OpenAI keeps apart from `content`.
    pub refusal: Vec<Raw<'a>>,
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
    u.uint("prompt_tokens", usage.prompt_tokens);
    u.uint("completion_tokens", usage.completion_tokens);
    u.uint("total_tokens", usage.total_tokens());
    let mut d = Obj::open(u.key("prompt_tokens_details"));
    d.uint("cached_tokens", usage.cached_tokens);
    d.close();
    if usage.reasoning_tokens > 0 {
        // Only where the model counts them apart (within the completion tokens, as OpenAI's).
        let mut d = Obj::open(u.key("completion_tokens_details"));
        d.uint("reasoning_tokens", usage.reasoning_tokens);
        d.close();
    }
    u.close();
}

/// The string literals of a `content` given as an array of parts, by kind.
#[derive(Default)]
pub(crate) struct ContentParts<'a> {
    pub texts: Vec<Raw<'a>>,
    pub refusals: Vec<Raw<'a>>,
}

/// A response already in OpenAI's shape (Mistral's chat models, gpt-oss), read for its first
/// choice.
#[derive(Deserialize, Default)]
pub(crate) struct OpenAiShaped<'a> {
    #[serde(borrow, default)]
    pub id: Option<Raw<'a>>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    choices: Vec<ShapedChoice<'a>>,
    #[serde(default)]
    usage: Option<ShapedUsage>,
}

#[derive(Deserialize, Default)]
struct ShapedChoice<'a> {
    #[serde(borrow, default)]
    message: Option<ShapedMessage<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Raw<'a>>,
    /// Mistral's name for it.
    #[serde(borrow, default)]
    stop_reason: Option<Raw<'a>>,
}

#[derive(Deserialize, Default)]
struct ShapedMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Raw<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Raw<'a>>,
    #[serde(borrow, default)]
    reasoning: Option<Raw<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Raw<'a>>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    tool_calls: Vec<ShapedCall<'a>>,
}

#[derive(Deserialize)]
struct ShapedCall<'a> {
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    function: ShapedFunction<'a>,
}

#[derive(Deserialize)]
struct ShapedFunction<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    arguments: Raw<'a>,
}

#[derive(Deserialize, Default)]
struct ShapedUsage {
    #[serde(default)]
    prompt_tokens: Count,
    #[serde(default)]
    completion_tokens: Count,
    #[serde(default)]
    prompt_tokens_details: Option<ShapedDetails>,
    #[serde(default)]
    completion_tokens_details: Option<ShapedDetails>,
}

/// `prompt_tokens_details` or `completion_tokens_details`: each reads its own count.
#[derive(Deserialize, Default)]
struct ShapedDetails {
    #[serde(default)]
    cached_tokens: Count,
    #[serde(default)]
    reasoning_tokens: Count,
}

impl<'a> OpenAiShaped<'a> {
    /// Parses `modelOutput`, which must have a choice.
    pub fn parse(model_output: Raw<'a>) -> Result<Self, Reject> {
        let r: OpenAiShaped<'a> = parse(model_output, "modelOutput")?;
        if r.choices.is_empty() {
            return Err(Reject::invalid("modelOutput.choices: empty"));
        }
        Ok(r)
    }

    /// Reads `modelOutput` at the scanner as [`OpenAiShaped::parse`] does, or falls back (also
    /// for no choice, which the parse words).
    pub fn scan(s: &mut Scanner<'a>) -> Scan<Self> {
        let mut r = OpenAiShaped::default();
        s.fields(&["id", "choices", "usage"], |s, i| {
            match i {
                0 => r.id = s.optional()?,
                1 => s.nullable_array(|s| {
                    r.choices.push(scan_choice(s)?);
                    Ok(())
                })?,
                _ => r.usage = s.nullable_object(scan_usage)?,
            }
            Ok(())
        })?;
        if r.choices.is_empty() {
            return Err(Fallback);
        }
        Ok(r)
    }

    fn message(&self) -> Option<&ShapedMessage<'a>> {
        self.choices[0].message.as_ref()
    }

    /// The message's `content`, when it is a string.
    pub fn content(&self) -> Option<Raw<'a>> {
        self.message()
            .and_then(|m| m.content)
            .filter(|c| Kind::of(*c) == Kind::String)
    }

    /// The texts and refusals of a `content` given as an array of parts (`[{"type": "text",
    /// "text": …}]`, `{"type": "refusal", "refusal": …}`, as OpenAI-compatible servers may write
    /// it); both empty for any other `content`. A part of another kind is refused rather than
    /// lost.
    pub fn content_parts(&self) -> Result<ContentParts<'a>, Reject> {
        #[derive(Deserialize)]
        struct Part<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(borrow, default)]
            text: Option<Raw<'a>>,
            #[serde(borrow, default)]
            refusal: Option<Raw<'a>>,
        }
        let Some(content) = self
            .message()
            .and_then(|m| m.content)
            .filter(|c| Kind::of(*c) == Kind::Array)
        else {
            return Ok(ContentParts::default());
        };
        let at = "modelOutput.choices[0].message.content";
        let parts = elements(content, at)?;
        let mut found = ContentParts::default();
        for (i, raw) in parts.into_iter().enumerate() {
            let part: Part<'a> = parse(raw, format_args!("{at}[{i}]"))?;
            let string = |v: Option<Raw<'a>>| v.filter(|v| Kind::of(*v) == Kind::String);
            match part.kind.as_ref() {
                "text" if string(part.text).is_some() => found.texts.extend(part.text),
                "refusal" if string(part.refusal).is_some() => found.refusals.extend(part.refusal),
                kind => {
                    return Err(Reject::invalid(format!(
                        "{at}[{i}]: a {kind:?} part is not one this tool maps (text and refusal parts with their string are)"
                    )))
                }
            }
        }
        Ok(found)
    }

    /// The first choice as the one [`Choice`] every family fills: `content` a string or an
    /// array of text and refusal parts, `reasoning_content` (or `reasoning`), `refusal`, the tool
    /// calls and the finish reason.
    pub fn choice(&self) -> Result<Choice<'a>, Reject> {
        let (texts, mut refusal) = match self.content() {
            Some(text) => (vec![text], Vec::new()),
            None => {
                let parts = self.content_parts()?;
                (parts.texts, parts.refusals)
            }
        };
        refusal.extend(self.refusal()?);
        Ok(Choice {
            texts,
            structured: None,
            reasoning: self.reasoning().into_iter().collect(),
            refusal,
            calls: self.calls()?,
            finish: self.finish(),
        })
    }

    /// The message's `refusal`: a string, or none when absent or null (anything else is refused
    /// rather than dropped).
    pub fn refusal(&self) -> Result<Option<Raw<'a>>, Reject> {
        match self.message().and_then(|m| m.refusal) {
            Some(r) if Kind::of(r) != Kind::Null => {
                expect(r, Kind::String, "modelOutput.choices[0].message.refusal").map(Some)
            }
            _ => Ok(None),
        }
    }

    /// A `reasoning_content` (or `reasoning`) string, if the message has one.
    pub fn reasoning(&self) -> Option<Raw<'a>> {
        self.message()
            .and_then(|m| m.reasoning_content.or(m.reasoning))
            .filter(|r| Kind::of(*r) == Kind::String)
    }

    /// The tool calls; `arguments` as given (a string) or, when an object, stringified.
    pub fn calls(&self) -> Result<Vec<Call<'a>>, Reject> {
        let calls = self
            .message()
            .map(|m| m.tool_calls.as_slice())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(calls.len());
        for (j, c) in calls.iter().enumerate() {
            let at = format!("modelOutput.choices[0].message.tool_calls[{j}]");
            out.push(Call {
                id: expect(c.id, Kind::String, format_args!("{at}.id"))?,
                name: expect(
                    c.function.name,
                    Kind::String,
                    format_args!("{at}.function.name"),
                )?,
                arguments: match Kind::of(c.function.arguments) {
                    Kind::String => Arguments::Text(c.function.arguments),
                    _ => Arguments::Object(expect(
                        c.function.arguments,
                        Kind::Object,
                        format_args!("{at}.function.arguments"),
                    )?),
                },
            });
        }
        Ok(out)
    }

    /// `finish_reason` (or Mistral's `stop_reason`), mapped onto OpenAI's values.
    pub fn finish(&self) -> &'static str {
        let c = &self.choices[0];
        match c
            .finish_reason
            .or(c.stop_reason)
            .and_then(as_text)
            .as_deref()
        {
            Some("length" | "model_length") => "length",
            Some("tool_calls") => "tool_calls",
            Some("content_filter") => "content_filter",
            _ => "stop",
        }
    }

    /// The usage, if reported. (OpenAI's `prompt_tokens` already include the cached ones.)
    pub fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(|u| {
            let cached = u
                .prompt_tokens_details
                .as_ref()
                .map_or(Count::default(), |d| d.cached_tokens);
            let mut usage = Usage::from_counts(
                u.prompt_tokens,
                u.completion_tokens,
                Count::default(),
                Count::default(),
            );
            let reasoning = u
                .completion_tokens_details
                .as_ref()
                .map_or(Count::default(), |d| d.reasoning_tokens);
            usage.cached_tokens = cached.n;
            usage.reasoning_tokens = reasoning.n;
            usage.adjusted |= cached.adjusted || reasoning.adjusted;
            usage
        })
    }

    /// The response's own id, when a string.
    pub fn own_id(&self) -> Option<Raw<'a>> {
        self.id.filter(|id| Kind::of(*id) == Kind::String)
    }
}

fn scan_choice<'a>(s: &mut Scanner<'a>) -> Scan<ShapedChoice<'a>> {
    let mut c = ShapedChoice::default();
    s.fields(&["message", "finish_reason", "stop_reason"], |s, i| {
        match i {
            0 => c.message = s.nullable_object(scan_message)?,
            1 => c.finish_reason = s.optional()?,
            _ => c.stop_reason = s.optional()?,
        }
        Ok(())
    })?;
    Ok(c)
}

fn scan_message<'a>(s: &mut Scanner<'a>) -> Scan<ShapedMessage<'a>> {
    let mut m = ShapedMessage::default();
    let names = [
        "content",
        "reasoning_content",
        "reasoning",
        "refusal",
        "tool_calls",
    ];
    s.fields(&names, |s, i| {
        match i {
            0 => m.content = s.optional()?,
            1 => m.reasoning_content = s.optional()?,
            2 => m.reasoning = s.optional()?,
            3 => m.refusal = s.optional()?,
            _ => s.nullable_array(|s| {
                m.tool_calls.push(scan_call(s)?);
                Ok(())
            })?,
        }
        Ok(())
    })?;
    Ok(m)
}

fn scan_call<'a>(s: &mut Scanner<'a>) -> Scan<ShapedCall<'a>> {
    let (mut id, mut function) = (None, None);
    s.fields(&["id", "function"], |s, i| {
        if i == 0 {
            id = Some(s.value()?);
            return Ok(());
        }
        let (mut name, mut arguments) = (None, None);
        s.fields(&["name", "arguments"], |s, i| {
            let v = Some(s.value()?);
            if i == 0 {
                name = v;
            } else {
                arguments = v;
            }
            Ok(())
        })?;
        // Both are required, as `id` and `function` are.
        function = Some(ShapedFunction {
            name: name.ok_or(Fallback)?,
            arguments: arguments.ok_or(Fallback)?,
        });
        Ok(())
    })?;
    Ok(ShapedCall {
        id: id.ok_or(Fallback)?,
        function: function.ok_or(Fallback)?,
    })
}

fn scan_usage(s: &mut Scanner<'_>) -> Scan<ShapedUsage> {
    let mut u = ShapedUsage::default();
    let names = [
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    ];
    let details = |s: &mut Scanner<'_>| {
        s.nullable_object(|s| {
            let mut d = ShapedDetails::default();
            s.fields(&["cached_tokens", "reasoning_tokens"], |s, i| {
                let n = Count::of(s.value()?);
                match i {
                    0 => d.cached_tokens = n,
                    _ => d.reasoning_tokens = n,
                }
                Ok(())
            })?;
            Ok(d)
        })
    };
    s.fields(&names, |s, i| {
        match i {
            0 => u.prompt_tokens = Count::of(s.value()?),
            1 => u.completion_tokens = Count::of(s.value()?),
            2 => u.prompt_tokens_details = details(s)?,
            _ => u.completion_tokens_details = details(s)?,
        }
        Ok(())
    })?;
    Ok(u)
}
