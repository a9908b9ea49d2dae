//! The formats and the pure, synchronous record transforms (no I/O, no async).
//!
//! It owns what a line means, both ways; it must not read or write files, know of batch
//! folders, jobs or servers, or keep state between lines (the pipeline's ordered stage does the
//! cross-line checks).
//!
//! [`convert_line`] turns one OpenAI batch input line into one Bedrock batch record, or a
//! [`Reject`] saying why it cannot. The model family (see [`Family`]) decides how the request body
//! is mapped into `modelInput`.
//!
//! ```
//! use bedrock_batch::record::{convert_line, Family, LineOptions, RecordIdStyle};
//!
//! let opts = LineOptions::new(Family::Anthropic);
//! let line = br#"{"custom_id":"q1","method":"POST","url":"/v1/chat/completions",
//!   "body":{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"max_tokens":64}}"#;
//! let mut out = Vec::new();
//! convert_line(line, 1, &opts, &mut out).unwrap();
//! let record: serde_json::Value = serde_json::from_slice(&out).unwrap();
//! assert_eq!(record["recordId"], "q1");
//! assert_eq!(record["modelInput"]["max_tokens"], 64);
//! assert_eq!(record["modelInput"]["messages"][0]["content"][0]["text"], "Hi");
//! ```

pub(crate) mod anthropic;
pub mod bedrock_output;
pub(crate) mod completion;
pub(crate) mod conversation;
pub(crate) mod converse;
pub(crate) mod data_url;
pub mod endpoint;
mod family;
pub(crate) mod gpt_oss;
pub(crate) mod json;
pub(crate) mod limits;
pub(crate) mod llama;
pub(crate) mod mistral;
pub mod model_table;
pub(crate) mod nova_embed;
mod number_array;
pub(crate) mod openai;
mod reject;
pub(crate) mod response_body;
pub(crate) mod scan;
mod skim;
mod strict;
#[cfg(test)]
mod test_rng;
pub(crate) mod titan;

use std::io::Write as _;

pub use completion::{CompletionContext, Usage};
pub use endpoint::Endpoint;
pub use family::Family;
pub(crate) use family::{bare_model_id, ParsedOutput};
pub use json::Raw;
pub use limits::Limits;
pub use model_table::{ModelTable, UnknownModel};
pub use reject::{Reject, RejectCode};

use openai::members::Members;
use openai::{check_envelope, BatchLine, ChatLine, ChatRequest};

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How a model family maps a request body.
#[derive(Debug, Clone, PartialEq)]
pub struct MapOptions {
    /// `max_tokens` for requests that set neither `max_completion_tokens` nor `max_tokens`
    /// (Claude requires one); lowered to the model's documented maximum where that is less.
    pub default_max_tokens: u64,
    /// Drop (and count) request fields the model cannot honour instead of rejecting the line.
    pub drop_unsupported: bool,
    /// The model's documented ranges of the sampling settings (see [`limits`]).
    pub limits: Limits,
}

impl MapOptions {
    /// The default options for `model_id` (empty when not known: then the family's limits) of
    /// `family`: 4096 default max tokens, nothing dropped.
    pub fn new(family: Family, model_id: &str) -> Self {
        MapOptions {
            default_max_tokens: 4096,
            drop_unsupported: false,
            limits: Limits::of(family, model_id),
        }
    }
}

/// What a mapping changed on the way, for the run's report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    /// Fields dropped because of [`MapOptions::drop_unsupported`].
    pub dropped: Vec<String>,
    /// Settings clamped to the model's documented range (`max_tokens`, `temperature`, `top_k`,
    /// `stop`), each once.
    pub clamped: Vec<&'static str>,
}

/// Which `recordId` a Bedrock record gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordIdStyle {
    /// The OpenAI `custom_id`, verbatim: for one Bedrock JSONL stream meant for piping.
    CustomId,
    /// [`line_record_id`]: `L`, the input line number in ten digits, `G` and the tag of the
    /// batch folder's generation (`L0000000042G3f9a2c1d`), for batch folders, where the `ids/`
    /// ledger maps it back to the `custom_id`. Unique by construction, alphanumeric (the
    /// strictest reading of Bedrock's docs), and it points at the input line; the tag makes a
    /// record of another conversion into the same folder unknown to this one's ledger.
    LineNumber {
        /// The generation's tag.
        generation: RecordTag,
        /// The input's index when the batch is made of several inputs (files): `I` and the
        /// index in six digits come first (`I000003L0000000042G3f9a2c1d`), so that the record
        /// names its file as well as its line.
        input: Option<u32>,
    },
}

/// Most inputs one batch folder is made of: an input's index is six digits of its records' ids.
pub const MAX_INPUTS: usize = 1_000_000;

/// Eight lowercase hex digits that name a batch folder's generation inside its recordIds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordTag([u8; 8]);

impl RecordTag {
    /// The tag of the generation named `name` (a 32-bit FNV-1a hash of it, in hex).
    pub fn of(name: &str) -> RecordTag {
        let h = name.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let mut tag = [0u8; 8];
        for (i, t) in tag.iter_mut().enumerate() {
            *t = b"0123456789abcdef"[((h >> (28 - 4 * i)) & 0xf) as usize];
        }
        RecordTag(tag)
    }

    /// The eight hex digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits")
    }
}

/// Everything [`convert_line`] needs to know besides the line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineOptions {
    /// The model family that decides the `modelInput` body.
    pub family: Family,
    /// How the body is mapped.
    pub map: MapOptions,
    /// Which `recordId` records get.
    pub record_id: RecordIdStyle,
    /// The one endpoint lines may be for; `None`: any the family serves (see
    /// [`Family::endpoints`]), the pipeline holding a file to the first one.
    pub endpoint: Option<Endpoint>,
}

impl LineOptions {
    /// The endpoints a line may name.
    pub fn accepts(&self) -> &[Endpoint] {
        match &self.endpoint {
            Some(one) => std::slice::from_ref(one),
            None => self.family.endpoints(),
        }
    }
}

impl LineOptions {
    /// Options for `family` (its limits where they do not depend on the model) with default
    /// mapping options and `recordId = custom_id`.
    pub fn new(family: Family) -> Self {
        LineOptions {
            family,
            map: MapOptions::new(family, ""),
            record_id: RecordIdStyle::CustomId,
            endpoint: None,
        }
    }
}

/// What a converted line carried that the pipeline checks across lines.
#[derive(Debug, Clone, Copy)]
pub struct Converted<'a> {
    /// The `custom_id` string literal, escapes intact.
    pub custom_id: Raw<'a>,
    /// The `body.model` string literal, if any.
    pub model: Option<Raw<'a>>,
    /// The endpoint the line's `url` names.
    pub endpoint: Endpoint,
}

/// The count a JSON number says, by its exact value (`12`, `12.0`, `1.2e1`); `None` for anything
/// no count can be (negative, fractional, past 2^64−1, not a number).
pub fn count_value(text: &str) -> Option<u64> {
    let raw = Raw::validated(text);
    if json::Kind::of(raw) != json::Kind::Number
        || serde_json::from_str::<serde_json::Number>(text).is_err()
    {
        return None;
    }
    let c = json::Count::of(raw);
    (!c.adjusted).then_some(c.n)
}

/// Reads a chat line the way [`convert_line`] does — UTF-8 checked, validated, its members picked
/// out — without mapping it; true when it reads. For the benchmarks' side-by-side of JSON
/// readers, not for use.
#[doc(hidden)]
pub fn read_chat_line(line: &[u8]) -> bool {
    simdutf8::basic::from_utf8(line).is_ok_and(|text| openai::chat_line(text, false).is_ok())
}

/// A rejected line, with the `custom_id` when it could be read.
#[derive(Debug, Clone)]
pub struct Rejected<'a> {
    /// Why.
    pub reject: Reject,
    /// The `custom_id` string literal, if the line got that far.
    pub custom_id: Option<Raw<'a>>,
}

impl From<Reject> for Rejected<'_> {
    fn from(reject: Reject) -> Self {
        Rejected {
            reject,
            custom_id: None,
        }
    }
}

/// The `recordId` of the record made from input line `line_no` of the batch folder generation
/// tagged `generation` (see [`RecordIdStyle::LineNumber`]): for a batch of several inputs `I` and
/// the input's index in six digits, then `L`, the line number in ten digits (more for line
/// numbers of eleven digits), `G` and the tag. The one definition of the format;
/// [`parse_line_record_id`] reads it back.
///
/// ```
/// use bedrock_batch::record::{line_record_id, parse_line_record_id, RecordTag};
/// let tag = RecordTag::of("gen-20261129T181256Z-3f9a2c");
/// let id = line_record_id(None, 42, tag);
/// assert_eq!(&id[..12], "L0000000042G");
/// assert_eq!(id.len(), 20);
/// assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
/// let id = line_record_id(Some(3), 42, tag);
/// assert_eq!(&id[..19], "I000003L0000000042G");
/// assert_eq!(parse_line_record_id(&id), Some((Some(3), 42)));
/// ```
pub fn line_record_id(input: Option<u32>, line_no: u64, generation: RecordTag) -> String {
    let mut out = Vec::with_capacity(27);
    write_line_record_id(&mut out, input, line_no, generation);
    String::from_utf8(out).expect("ASCII")
}

/// Appends [`line_record_id`] to `out`.
pub fn write_line_record_id(
    out: &mut Vec<u8>,
    input: Option<u32>,
    line_no: u64,
    generation: RecordTag,
) {
    if let Some(input) = input {
        let _ = write!(out, "I{input:06}");
    }
    let _ = write!(out, "L{line_no:010}G");
    out.extend_from_slice(&generation.0);
}

/// The input index (for a batch of several inputs) and line number a [`line_record_id`] names;
/// `None` for any other text.
pub fn parse_line_record_id(id: &str) -> Option<(Option<u32>, u64)> {
    fn digits(s: &str) -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }
    let (input, rest) = match id.strip_prefix('I') {
        Some(rest) => {
            let (index, rest) = rest.split_at_checked(6)?;
            (Some(u32::try_from(digits(index)?).ok()?), rest)
        }
        None => (None, id),
    };
    let (line, tag) = rest.strip_prefix('L')?.split_once('G')?;
    if line.len() < 10 || tag.len() != 8 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((input, digits(line)?))
}

/// Converts one OpenAI batch input line (without its newline) into one Bedrock record line
/// (`{"recordId":…,"modelInput":{…}}\n`) appended to `out`.
///
/// `line_no` is 1-based; it names the record under [`RecordIdStyle::LineNumber`]. On a reject,
/// `out` is left as it was. Notes on what the mapping changed are discarded; see
/// [`convert_line_noted`].
pub fn convert_line<'a>(
    line: &'a [u8],
    line_no: u64,
    opts: &LineOptions,
    out: &mut Vec<u8>,
) -> Result<Converted<'a>, Rejected<'a>> {
    convert_line_noted(line, line_no, opts, &mut Notes::default(), out)
}

/// [`convert_line`], recording in `notes` what the mapping dropped or clamped.
pub fn convert_line_noted<'a>(
    line: &'a [u8],
    line_no: u64,
    opts: &LineOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
) -> Result<Converted<'a>, Rejected<'a>> {
    if line.starts_with(BOM) {
        return Err(Reject::new(
            RejectCode::InvalidJson,
            "the line starts with a byte-order mark (allowed only at the start of the file)",
        )
        .into());
    }
    let text = match simdutf8::basic::from_utf8(line) {
        Ok(text) => text,
        Err(_) => {
            // The fast validator does not say where; the standard one does, and this path is rare.
            let at = std::str::from_utf8(line)
                .err()
                .map_or(0, |e| e.valid_up_to())
                + 1;
            return Err(Reject::new(
                RejectCode::InvalidUtf8,
                format!("invalid UTF-8 at byte {at} of the line"),
            )
            .into());
        }
    };
    let accepts = opts.accepts();
    if opts.family.endpoints() == [Endpoint::Embeddings] {
        return convert_embedding_line(text, line_no, opts, notes, out, accepts);
    }
    // The fast path: a chat line read in one pass.
    if let Ok(ChatLine {
        custom_id,
        method,
        url,
        body: Some(request),
    }) = openai::chat_line(text, opts.family.sends_tools_as_written())
    {
        match check_envelope(custom_id, method, url, accepts, opts.family.endpoints()) {
            Ok((custom_id, Endpoint::ChatCompletions)) => {
                let model = request.model_literal();
                return write_record(custom_id, line_no, opts, notes, out, |o, n, out| {
                    opts.family.write_model_input(&request, o, n, out)?;
                    Ok((model, Endpoint::ChatCompletions))
                });
            }
            // Another endpoint's body: read below, the careful way.
            Ok(_) => {}
            Err(reject) => return Err(with_id(reject, custom_id)),
        }
    }
    // Something is wrong, or the line is not a chat line: the envelope first, for a precise
    // message with the custom_id.
    let (envelope, members) = read_envelope(text, opts, accepts)?;
    let (custom_id, body) = (envelope.custom_id, envelope.body);
    let members = || members.map_or_else(|| Members::of(body, "body"), Ok);
    write_record(custom_id, line_no, opts, notes, out, |o, n, out| {
        let family = opts.family;
        let chat = |request: ChatRequest<'_>, out: &mut Vec<u8>, n: &mut Notes| {
            family.write_model_input(&request, o, n, out)
        };
        match envelope.endpoint {
            Endpoint::ChatCompletions => {
                let request = ChatRequest::parse(body)?;
                let model = request.model_literal();
                chat(request, out, n)?;
                Ok((model, Endpoint::ChatCompletions))
            }
            Endpoint::Responses => {
                let t = openai::responses_to_chat(members()?, o, n)?;
                let request =
                    ChatRequest::parse(Raw::validated(&t.body)).map_err(|r| t.rephrase(r))?;
                let from = n.dropped.len();
                chat(request, out, n).map_err(|r| t.rephrase(r))?;
                t.rephrase_names(&mut n.dropped[from..]);
                Ok((t.model, Endpoint::Responses))
            }
            Endpoint::Completions => {
                let t = openai::completions_to_chat(members()?, o, n)?;
                let mut request =
                    ChatRequest::parse(Raw::validated(&t.body)).map_err(|r| t.rephrase(r))?;
                request.prompt = request.messages.first().and_then(|m| m.content);
                chat(request, out, n).map_err(|r| t.rephrase(r))?;
                Ok((t.model, Endpoint::Completions))
            }
            Endpoint::Embeddings => Err(Reject::new(
                RejectCode::InvalidUrl,
                format!(
                    "url \"{}\": {} is a chat model family",
                    Endpoint::Embeddings,
                    family
                ),
            )),
        }
    })
}

/// Writes one record — its head, the `modelInput` `body` writes (returning the line's model
/// literal and endpoint), its end — or leaves `out` as it was and says why not.
fn write_record<'a>(
    custom_id: Raw<'a>,
    line_no: u64,
    opts: &LineOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
    body: impl FnOnce(
        &MapOptions,
        &mut Notes,
        &mut Vec<u8>,
    ) -> Result<(Option<Raw<'a>>, Endpoint), Reject>,
) -> Result<Converted<'a>, Rejected<'a>> {
    let start = out.len();
    record_head(custom_id, line_no, opts, out);
    match body(&opts.map, notes, out) {
        Ok((model, endpoint)) => {
            out.extend_from_slice(b"}\n");
            Ok(Converted {
                custom_id,
                model,
                endpoint,
            })
        }
        Err(reject) => {
            out.truncate(start);
            Err(Rejected {
                reject,
                custom_id: Some(custom_id),
            })
        }
    }
}

/// Writes `{"recordId":…,"modelInput":` for the line.
fn record_head(custom_id: Raw<'_>, line_no: u64, opts: &LineOptions, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"recordId\":");
    match opts.record_id {
        RecordIdStyle::CustomId => out.extend_from_slice(custom_id.get().as_bytes()),
        RecordIdStyle::LineNumber { generation, input } => {
            out.push(b'"');
            write_line_record_id(out, input, line_no, generation);
            out.push(b'"');
        }
    }
    out.extend_from_slice(b",\"modelInput\":");
}

/// [`convert_line_noted`] for an `/v1/embeddings` line: read in one pass by the scanner, or, for
/// what it gives up on, by serde in two steps, for a precise message with the custom_id.
fn convert_embedding_line<'a>(
    text: &'a str,
    line_no: u64,
    opts: &LineOptions,
    notes: &mut Notes,
    out: &mut Vec<u8>,
    accepts: &[Endpoint],
) -> Result<Converted<'a>, Rejected<'a>> {
    let (envelope, members) = read_envelope(text, opts, accepts)?;
    write_record(
        envelope.custom_id,
        line_no,
        opts,
        notes,
        out,
        |o, n, out| {
            let request = match members {
                Some(members) => titan::EmbeddingRequest::from_members(members)?,
                None => titan::EmbeddingRequest::parse(envelope.body)?,
            };
            opts.family.write_embedding_input(&request, o, n, out)?;
            Ok((request.model, Endpoint::Embeddings))
        },
    )
}

/// A line's envelope, checked, and its body's members when the body is an object: read in one
/// pass by the scanner or, for what it gives up on, by serde, which words the reject.
fn read_envelope<'a>(
    text: &'a str,
    opts: &LineOptions,
    accepts: &[Endpoint],
) -> Result<(openai::Envelope<'a>, Option<Members<'a>>), Rejected<'a>> {
    // The envelope alone when the body's members are what the scanner gave up on, so that the
    // envelope's checks come first as on every other path; serde for the rest, for its words.
    let (line, members) = match openai::members_line(text) {
        Ok(scanned) => scanned,
        Err(_) => match openai::envelope_line(text) {
            Ok(line) => (line, None),
            Err(_) => match BatchLine::parse(text) {
                Ok(line) => (line, None),
                Err(reject) => return Err(with_id(reject, lone_custom_id(text))),
            },
        },
    };
    let envelope = line
        .check(accepts, opts.family.endpoints())
        .map_err(|reject| with_id(reject, line.custom_id))?;
    Ok((envelope, members))
}

/// The `custom_id` of a line serde refused though it is valid JSON (a member given twice, the
/// envelope of another shape): the line's one top-level `custom_id`, for the reject to name. Not
/// when it is given twice (it names no one), nor when the line is no JSON.
fn lone_custom_id(text: &str) -> Option<Raw<'_>> {
    match top_level_custom_ids(text) {
        (found, true) if found.len() == 1 => Some(found[0]),
        _ => None,
    }
}

/// The `custom_id` of a line known by its first bytes only (a line too long to read): a string
/// given once among the top-level members readable before the bytes end (or break), unless a
/// second one is given there too.
pub(crate) fn leading_custom_id(head: &[u8]) -> Option<Raw<'_>> {
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut inside a character, or broken: what comes before.
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    match top_level_custom_ids(text).0[..] {
        [one] if one.get().starts_with('"') && one.get().len() > 2 => Some(one),
        _ => None,
    }
}

/// The values of the `custom_id` members of the object `text` readable before it ends or
/// breaks, and whether it is one whole JSON object.
fn top_level_custom_ids(text: &str) -> (Vec<Raw<'_>>, bool) {
    let mut scanner = scan::Scanner::new(text);
    let mut found = Vec::new();
    let read = scanner.object(|scanner, key| {
        let value = scanner.value()?;
        if key == "custom_id" {
            found.push(value);
        }
        Ok(())
    });
    let whole = read.is_ok() && scanner.end().is_ok();
    (found, whole)
}

/// A reject that names the line's `custom_id` when it is a usable string.
fn with_id<'a>(reject: Reject, custom_id: Option<Raw<'a>>) -> Rejected<'a> {
    let usable = custom_id.filter(|c| c.get().len() > 2 && c.get().starts_with('"'));
    Rejected {
        reject,
        custom_id: usable,
    }
}
