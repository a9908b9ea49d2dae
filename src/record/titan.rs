//! `/v1/embeddings` on Amazon Titan Text Embeddings V2 and Titan Multimodal Embeddings G1
//! (formats.md A.5.5), both ways; the one-input rule every embeddings family shares.
//!
//! Request: `input` → `inputText` (a string, or an array of exactly one string); for the
//! multimodal model a `data:image/png;base64,…` string → `inputImage` (OpenAI's embeddings take
//! text only; a data URL is how gateways pass an image). `dimensions` → V2's `dimensions` or G1's
//! `embeddingConfig.outputEmbeddingLength`, one of the sizes the model table lists;
//! `normalize: true` always for V2 (OpenAI's embeddings are unit length; G1 has no such
//! setting). Titan embeds one input per record, so a request with several inputs is rejected
//! with that reason rather than split (splitting would turn one `custom_id` into several
//! results); token-array inputs and `encoding_format: "base64"` are rejected too.
//!
//! Response (both models): `embedding` → `data[0].embedding` (copied as written),
//! `inputTextTokenCount` → `usage.prompt_tokens` and `total_tokens`.

use std::borrow::Cow;

use serde::Deserialize;

use super::completion::{CompletionContext, Usage};
use super::data_url;
use super::json::{as_text, elements, expect, parse, Arr, Count, Kind, Obj};
use super::openai::members::Members;
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
    /// Parses a body object; a member written twice (in any spelling) is refused, as on the
    /// chat path.
    pub fn parse(body: Raw<'a>) -> Result<Self, Reject> {
        Self::from_members(Members::of(body, "body")?)
    }

    /// The request with these body members.
    pub(crate) fn from_members(Members(members): Members<'a>) -> Result<Self, Reject> {
        let (mut input, mut model, mut dimensions, mut encoding_format) = (None, None, None, None);
        let mut other = Vec::new();
        for (key, value) in members {
            match key.as_ref() {
                "input" => input = Some(value),
                "model" => model = Some(value).filter(|m| Kind::of(*m) == Kind::String),
                "dimensions" => dimensions = Some(value),
                "encoding_format" => encoding_format = Some(value),
                // Describes the call, not the embedding.
                "user" => {}
                _ => other.push(key),
            }
        }
        let input = input.ok_or_else(|| Reject::invalid("body.input: missing"))?;
        Ok(EmbeddingRequest {
            input,
            model,
            dimensions,
            encoding_format,
            other,
        })
    }
}

/// One embeddings input: a text, or an image given as a `data:image/…;base64,` URL.
pub(crate) enum Input<'a> {
    /// The text, as the literal written.
    Text(Raw<'a>),
    /// An image: its format (`png`, `jpeg`, `gif`, `webp`) and its base64 bytes.
    Image {
        /// The format, as the models name it.
        format: &'static str,
        /// The base64 payload (its alphabet only, so it is a JSON string body as it is).
        base64: String,
    },
}

/// The one input of `req` (`model` names the model in messages): a string or an array of one
/// string; with `images`, a `data:image/…;base64,` string is an image. The request's other
/// members are checked here too: `encoding_format` float, the rest dropped or refused.
pub(crate) fn one_input<'a>(
    req: &EmbeddingRequest<'a>,
    model: &str,
    images: bool,
    opts: &MapOptions,
    notes: &mut Notes,
) -> Result<Input<'a>, Reject> {
    let text = match Kind::of(req.input) {
        Kind::String => req.input,
        Kind::Array => {
            let items = elements(req.input, "body.input")?;
            match items.as_slice() {
                [] => return Err(Reject::invalid("body.input: empty")),
                [one] if Kind::of(*one) == Kind::String => *one,
                tokens if tokens.iter().all(|t| Kind::of(*t) == Kind::Number) => {
                    return Err(Reject::new(
                        RejectCode::UnsupportedParameter,
                        format!("body.input: {model} embeds text, not token arrays"),
                    ))
                }
                [_] => {
                    return Err(Reject::new(
                        RejectCode::UnsupportedParameter,
                        format!("body.input: {model} embeds text, not token arrays"),
                    ))
                }
                many => {
                    return Err(Reject::new(
                        RejectCode::UnsupportedParameter,
                        format!("body.input: {} inputs in one request; {model} embeds one input per record, so give each input its own line (and custom_id)", many.len()),
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
    if let Some(field) = req.other.first() {
        if !opts.drop_unsupported {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.{field}: not supported by {model} on Bedrock (use --drop-unsupported to drop it)"),
            ));
        }
        notes
            .dropped
            .extend(req.other.iter().map(|f| f.to_string()));
    }
    if images {
        // A data URL of an image (its scheme and `;base64` in any case, as RFC 2397 allows);
        // any other text, `data:` or not, is text.
        let value = as_text(text).unwrap_or_default();
        if let Some(image) = data_url::image(&value) {
            let (format, base64) =
                image.map_err(|why| Reject::invalid(format!("body.input: {why}")))?;
            return Ok(Input::Image {
                format,
                base64: base64.to_owned(),
            });
        }
    }
    Ok(Input::Text(text))
}

/// The request's `dimensions`, if one of the sizes the model makes (`limits.dimensions`).
pub(crate) fn dimensions(
    req: &EmbeddingRequest<'_>,
    model: &str,
    opts: &MapOptions,
) -> Result<Option<u64>, Reject> {
    let Some(d) = req.dimensions else {
        return Ok(None);
    };
    expect(d, Kind::Number, "body.dimensions")?;
    let sizes = &opts.limits.dimensions;
    // By value: `256.0` and `2.56e2` are 256.
    match super::json::whole_number(d.get()).filter(|n| sizes.is_empty() || sizes.contains(n)) {
        Some(n) => Ok(Some(n)),
        None => {
            let list: Vec<String> = sizes.iter().map(u64::to_string).collect();
            Err(Reject::invalid(format!(
                "body.dimensions: {model} makes {} dimensions, not {}",
                or_list(&list),
                d.get()
            )))
        }
    }
}

/// `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Writes the Titan Text Embeddings V2 body for `req` into `out`.
pub fn write_body(
    req: &EmbeddingRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    const MODEL: &str = "Titan Text Embeddings V2";
    let Input::Text(text) = one_input(req, MODEL, false, opts, notes)? else {
        unreachable!("no images asked for");
    };
    let dims = dimensions(req, MODEL, opts)?;
    let mut o = Obj::open(out);
    o.raw("inputText", text.get());
    if let Some(n) = dims {
        o.uint("dimensions", n);
    }
    o.raw("normalize", "true");
    o.close();
    Ok(())
}

/// Writes the Titan Multimodal Embeddings G1 body for `req` into `out`: `inputText`, or
/// `inputImage` for a `data:image/…;base64,` input; `dimensions` →
/// `embeddingConfig.outputEmbeddingLength`.
pub fn write_image_body(
    req: &EmbeddingRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    const MODEL: &str = "Titan Multimodal Embeddings G1";
    let input = one_input(req, MODEL, true, opts, notes)?;
    let dims = dimensions(req, MODEL, opts)?;
    let mut o = Obj::open(out);
    match &input {
        Input::Text(text) => o.raw("inputText", text.get()),
        Input::Image { base64, .. } => o.raw("inputImage", &format!("\"{base64}\"")),
    }
    if let Some(n) = dims {
        let mut c = Obj::open(o.key("embeddingConfig"));
        c.uint("outputEmbeddingLength", n);
        c.close();
    }
    o.close();
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
    s.fields(
        &["embedding", "inputTextTokenCount", "embeddingsByType"],
        |s, i| {
            match i {
                // A list of numbers (anything else is worded by the careful path).
                0 => embedding = Some(s.numbers()?),
                1 => tokens = Count::of(s.value()?),
                // Titan V2's copy of the embedding by type, as many bytes again, never read:
                // passed over by its structure alone, as the echoed request is.
                _ => s.pass_over()?,
            }
            Ok(())
        },
    )?;
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
    let values = elements(r.embedding, "modelOutput.embedding")?;
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
    Ok(write_list(r.embedding, r.tokens, ctx, out))
}

/// Writes OpenAI's embeddings list for one embedding (an array literal, copied as written) and
/// the input's token count; returns the usage.
pub(crate) fn write_list(
    embedding: Raw<'_>,
    tokens: Count,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Usage {
    let mut o = Obj::open(out);
    o.raw("object", "\"list\"");
    {
        let mut a = Arr::open(o.key("data"));
        let mut e = Obj::open(a.next());
        e.raw("object", "\"embedding\"");
        e.raw("index", "0");
        e.raw("embedding", embedding.get());
        e.close();
        a.close();
    }
    o.raw("model", ctx.model);
    let usage = Usage::from_counts(tokens, Count::default(), Count::default(), Count::default());
    {
        let mut u = Obj::open(o.key("usage"));
        u.uint("prompt_tokens", usage.prompt_tokens);
        u.uint("total_tokens", usage.total_tokens());
        u.close();
    }
    o.close();
    usage
}
