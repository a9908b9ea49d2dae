//! `/v1/embeddings` on Amazon Titan Text Embeddings V2 (formats.md A.5.5), both ways.
//!
//! Request: `input` → `inputText` (a string, or an array of exactly one string); `dimensions` →
//! `dimensions` (256, 512 or 1024); `normalize: true` always (OpenAI's embeddings are unit
//! length). Titan embeds one text per record, so a request with several inputs is rejected with
//! that reason rather than split (splitting would turn one `custom_id` into several results);
//! token-array inputs and `encoding_format: "base64"` are rejected too.
//!
//! Response: `embedding` → `data[0].embedding` (copied as written), `inputTextTokenCount` →
//! `usage.prompt_tokens` and `total_tokens`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::completion::{CompletionContext, Usage};
use super::json::{as_text, expect, parse, Arr, Count, Kind, Obj};
use super::scan::{Fallback, Scan, Scanner};
use super::{MapOptions, Notes, Raw, Reject, RejectCode};

/// An embeddings request body, member by member.
#[derive(Debug)]
pub struct EmbeddingRequest<'a> {
    /// `input`.
    pub input: Raw<'a>,
    /// `model`, if a string.
    pub model: Option<Raw<'a>>,
    /// `dimensions`.
    pub dimensions: Option<Raw<'a>>,
    /// `encoding_format`.
    pub encoding_format: Option<Raw<'a>>,
    /// Other members, by name.
    pub other: Vec<Cow<'a, str>>,
}

impl<'a> EmbeddingRequest<'a> {
    /// Parses a body object.
    pub fn parse(body: Raw<'a>) -> Result<Self, Reject> {
        let mut members: BTreeMap<Cow<'a, str>, Raw<'a>> = parse(body, "body")?;
        let input = members
            .remove("input")
            .ok_or_else(|| Reject::invalid("body.input: missing"))?;
        let model = members
            .remove("model")
            .filter(|m| Kind::of(*m) == Kind::String);
        let dimensions = members.remove("dimensions");
        let encoding_format = members.remove("encoding_format");
        // Describe the call, not the embedding.
        members.remove("user");
        Ok(EmbeddingRequest {
            input,
            model,
            dimensions,
            encoding_format,
            other: members.into_keys().collect(),
        })
    }
}

/// Writes the Titan body for `req` into `out`.
pub fn write_body(
    req: &EmbeddingRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    let text = match Kind::of(req.input) {
        Kind::String => req.input,
        Kind::Array => {
            let items: Vec<Raw<'_>> = parse(req.input, "body.input")?;
            match items.as_slice() {
                [one] if Kind::of(*one) == Kind::String => *one,
                [_] => {
                    return Err(Reject::new(
                        RejectCode::UnsupportedParameter,
                        "body.input: Titan embeds text, not token arrays",
                    ))
                }
                many => {
                    return Err(Reject::new(
                        RejectCode::UnsupportedParameter,
                        format!("body.input: {} inputs in one request; Titan embeds one text per record, so give each input its own line (and custom_id)", many.len()),
                    ))
                }
            }
        }
        other => {
            return Err(Reject::invalid(format!(
                "body.input: expected a string or an array of strings, found {}",
                other.name()
            )))
        }
    };
    if text.get() == "\"\"" {
        return Err(Reject::invalid("body.input: empty"));
    }
    if let Some(f) = req.encoding_format {
        match as_text(f).as_deref() {
            Some("float") => {}
            Some("base64") => {
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    "body.encoding_format: base64 is not supported; use float",
                ))
            }
            _ => {
                return Err(Reject::invalid(format!(
                    "body.encoding_format: unknown value {} (expected float)",
                    f.get()
                )))
            }
        }
    }
    let mut o = Obj::open(out);
    o.raw("inputText", text.get());
    if let Some(d) = req.dimensions {
        expect(d, Kind::Number, "body.dimensions")?;
        // By value: `256.0` and `2.56e2` are 256.
        let n = super::json::whole_number(d.get()).filter(|n| matches!(n, 256 | 512 | 1024));
        let Some(n) = n else {
            return Err(Reject::invalid(format!(
                "body.dimensions: Titan Text Embeddings V2 makes 256, 512 or 1024 dimensions, not {}",
                d.get()
            )));
        };
        o.raw("dimensions", &n.to_string());
    }
    o.raw("normalize", "true");
    o.close();
    if let Some(field) = req.other.first() {
        if !opts.drop_unsupported {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.{field}: not supported by Titan embeddings on Bedrock (use --drop-unsupported to drop it)"),
            ));
        }
        notes
            .dropped
            .extend(req.other.iter().map(|f| f.to_string()));
    }
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct Response<'a> {
    #[serde(borrow)]
    embedding: Raw<'a>,
    #[serde(rename = "inputTextTokenCount", default)]
    tokens: Count,
}

/// Reads a Titan `modelOutput` at the scanner, as serde reads [`Response`] (or falls back).
pub(crate) fn scan_response<'a>(s: &mut Scanner<'a>) -> Scan<Response<'a>> {
    let (mut embedding, mut tokens) = (None, Count::default());
    s.fields(&["embedding", "inputTextTokenCount"], |s, i| {
        match i {
            // A list of numbers (anything else is worded by the careful path).
            0 => {
                embedding = Some(s.array(|s| {
                    let v = s.value()?;
                    (Kind::of(v) == Kind::Number).then_some(()).ok_or(Fallback)
                })?)
            }
            _ => tokens = Count::of(s.value()?),
        }
        Ok(())
    })?;
    // `embedding` is required.
    let embedding = embedding.ok_or(Fallback)?;
    Ok(Response { embedding, tokens })
}

/// Writes the OpenAI embeddings response (`{"object":"list","data":[…],"model","usage"}`).
pub fn write_embeddings(
    model_output: Raw<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    let r: Response<'_> = parse(model_output, "modelOutput")?;
    expect(r.embedding, Kind::Array, "modelOutput.embedding")?;
    let values: Vec<Raw<'_>> = parse(r.embedding, "modelOutput.embedding")?;
    if let Some(i) = values.iter().position(|v| Kind::of(*v) != Kind::Number) {
        return Err(Reject::invalid(format!(
            "modelOutput.embedding[{i}]: expected a number, found {}",
            Kind::of(values[i]).name()
        )));
    }
    write_response(r, ctx, out)
}

/// [`write_embeddings`] for a response already read.
pub(crate) fn write_response(
    r: Response<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    expect(r.embedding, Kind::Array, "modelOutput.embedding")?;
    let mut o = Obj::open(out);
    o.raw("object", "\"list\"");
    {
        let mut a = Arr::open(o.key("data"));
        let mut e = Obj::open(a.next());
        e.raw("object", "\"embedding\"");
        e.raw("index", "0");
        e.raw("embedding", r.embedding.get());
        e.close();
        a.close();
    }
    o.raw("model", ctx.model);
    let usage = Usage::from_counts(
        r.tokens,
        Count::default(),
        Count::default(),
        Count::default(),
    );
    {
        let mut u = Obj::open(o.key("usage"));
        u.raw("prompt_tokens", &usage.prompt_tokens.to_string());
        u.raw("total_tokens", &usage.total_tokens().to_string());
        u.close();
    }
    o.close();
    Ok(usage)
}
