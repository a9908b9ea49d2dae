//! `/v1/embeddings` on Amazon Nova Multimodal Embeddings
//! (`amazon.nova-2-multimodal-embeddings-v1:0`), both ways, as its schema page documents the
//! synchronous InvokeModel body (<https://docs.aws.amazon.com/nova/latest/userguide/embeddings-schema.html>).
//!
//! Request: `{"schemaVersion": "nova-multimodal-embed-v1", "taskType": "SINGLE_EMBEDDING",
//! "singleEmbeddingParams": {"embeddingPurpose": "GENERIC_INDEX", "embeddingDimension": N,
//! "text": {"truncationMode": "NONE", "value": …}}}`, or `"image": {"format", "source":
//! {"bytes": base64}}` for a `data:image/…;base64,` input. `GENERIC_INDEX` because the schema says
//! to use it "irrespective of the modality you are indexing" and OpenAI's request says nothing of
//! a purpose; `truncationMode: NONE` because OpenAI refuses an input beyond the model's limit
//! rather than cutting it, and so does NONE. One input per record, as for Titan.
//!
//! Response: `{"embeddings": [{"embeddingType": "TEXT", "embedding": […]}]}` → `data[0].embedding`
//! (copied as written). The model reports no token counts, so `usage` is 0 (the model table says
//! so).

use serde::Deserialize;

use super::completion::{CompletionContext, Usage};
use super::json::{elements, expect, parse, Count, Kind, Obj};
use super::scan::{Fallback, Scan, Scanner};
use super::titan::{self, EmbeddingRequest, Input};
use super::{MapOptions, Notes, Raw, Reject};

const MODEL: &str = "Nova Multimodal Embeddings";

/// Writes the Nova Multimodal Embeddings body for `req` into `out`.
pub fn write_body(
    req: &EmbeddingRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<(), Reject> {
    let input = titan::one_input(req, MODEL, true, opts, notes)?;
    let dims = titan::dimensions(req, MODEL, opts)?;
    let mut o = Obj::open(out);
    o.raw("schemaVersion", "\"nova-multimodal-embed-v1\"");
    o.raw("taskType", "\"SINGLE_EMBEDDING\"");
    let mut p = Obj::open(o.key("singleEmbeddingParams"));
    p.raw("embeddingPurpose", "\"GENERIC_INDEX\"");
    if let Some(n) = dims {
        p.uint("embeddingDimension", n);
    }
    match &input {
        Input::Text(text) => {
            let mut t = Obj::open(p.key("text"));
            t.raw("truncationMode", "\"NONE\"");
            t.raw("value", text.get());
            t.close();
        }
        Input::Image { format, base64 } => {
            let mut i = Obj::open(p.key("image"));
            i.raw("format", &format!("\"{format}\""));
            let mut s = Obj::open(i.key("source"));
            s.raw("bytes", &format!("\"{base64}\""));
            s.close();
            i.close();
        }
    }
    p.close();
    o.close();
    Ok(())
}

/// A Nova embeddings `modelOutput`: the first embedding.
#[derive(Deserialize)]
pub(crate) struct Response<'a> {
    #[serde(borrow)]
    embeddings: Raw<'a>,
}

#[derive(Deserialize)]
struct Embedding<'a> {
    #[serde(borrow)]
    embedding: Option<Raw<'a>>,
}

/// Reads a Nova embeddings `modelOutput` at the scanner, as serde reads [`Response`] (or falls
/// back).
pub(crate) fn scan_response<'a>(s: &mut Scanner<'a>) -> Scan<Response<'a>> {
    let mut embeddings = None;
    s.fields(&["embeddings"], |s, _| {
        embeddings = Some(s.value()?);
        Ok(())
    })?;
    let embeddings = embeddings.ok_or(Fallback)?;
    // Anything but an array of objects is worded by the careful path.
    if Kind::of(embeddings) != Kind::Array {
        return Err(Fallback);
    }
    Ok(Response { embeddings })
}

/// Writes the OpenAI embeddings response for a `modelOutput` read the careful way.
pub fn write_embeddings(
    model_output: Raw<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    write_response(parse(model_output, "modelOutput")?, ctx, out)
}

/// [`write_embeddings`] for a response already read.
pub(crate) fn write_response(
    r: Response<'_>,
    ctx: &CompletionContext<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Reject> {
    expect(r.embeddings, Kind::Array, "modelOutput.embeddings")?;
    let items = elements(r.embeddings, "modelOutput.embeddings")?;
    let first = items
        .first()
        .ok_or_else(|| Reject::invalid("modelOutput.embeddings: empty"))?;
    expect(*first, Kind::Object, "modelOutput.embeddings[0]")?;
    let e: Embedding<'_> = parse(*first, "modelOutput.embeddings[0]")?;
    let embedding = e
        .embedding
        .ok_or_else(|| Reject::invalid("modelOutput.embeddings[0].embedding: missing"))?;
    expect(
        embedding,
        Kind::Array,
        "modelOutput.embeddings[0].embedding",
    )?;
    let values = elements(embedding, "modelOutput.embeddings[0].embedding")?;
    if let Some(i) = values.iter().position(|v| Kind::of(*v) != Kind::Number) {
        return Err(Reject::invalid(format!(
            "modelOutput.embeddings[0].embedding[{i}]: expected a number, found {}",
            Kind::of(values[i]).name()
        )));
    }
    // The model reports no token counts.
    Ok(titan::write_list(embedding, Count::default(), ctx, out))
}
