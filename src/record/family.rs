//! Model families: which body format a Bedrock model takes, both ways.

use std::fmt;

use super::anthropic;
use super::completion::{CompletionContext, OpenAiShaped, Usage};
use super::converse::{self, Dialect};
use super::json::parse;
use super::model_table::{ModelTable, UnknownModel};
use super::openai::ChatRequest;
use super::reject::Reject;
use super::scan::{Scan, Scanner};
use super::titan::{self, EmbeddingRequest};
use super::Endpoint;
use super::{gpt_oss, llama, mistral, nova_embed, Raw};
use super::{MapOptions, Notes};

/// A family of Bedrock models that share one `modelInput` / `modelOutput` body format (or, for
/// [`Family::Converse`], a Converse batch job for any model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Family {
    /// Anthropic Claude (Messages API, `anthropic.claude-*`).
    Anthropic,
    /// Amazon Nova (`messages-v1`, `amazon.nova-*`).
    Nova,
    /// Meta Llama 3.x (a templated prompt, `meta.llama3-*`).
    Llama,
    /// Mistral's text-completion models (`[INST]` prompts: 7B, Mixtral, Large 2402, Small 2402).
    MistralText,
    /// Mistral's chat models (Mistral Large 2407 and later, Pixtral).
    MistralChat,
    /// OpenAI gpt-oss (an OpenAI chat body, `openai.gpt-oss-*`).
    GptOss,
    /// An OpenAI chat body for an open-weight model whose card lists the Chat Completions API
    /// (chosen with `--family openai-chat`; the model table says for which models).
    OpenAiChat,
    /// Amazon Titan Text Embeddings V2 (`/v1/embeddings`).
    TitanEmbed,
    /// Amazon Titan Multimodal Embeddings G1 (`/v1/embeddings`, text or an image).
    TitanEmbedImage,
    /// Amazon Nova Multimodal Embeddings (`/v1/embeddings`, text or an image).
    NovaEmbed,
    /// A Converse batch job, for any chat model (`--invocation-type converse`).
    Converse,
}

/// Geographic prefixes of cross-Region inference profile ids (`us.anthropic.claude-…`).
const PROFILE_PREFIXES: &[&str] = &[
    "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.",
];

impl Family {
    /// Every family, for listings.
    pub const ALL: &'static [Family] = &[
        Family::Anthropic,
        Family::Nova,
        Family::Llama,
        Family::MistralText,
        Family::MistralChat,
        Family::GptOss,
        Family::OpenAiChat,
        Family::TitanEmbed,
        Family::TitanEmbedImage,
        Family::NovaEmbed,
        Family::Converse,
    ];

    /// The family of a Bedrock model id, inference profile id, or model/profile ARN, per the
    /// built-in model table ([`ModelTable::resolve`]).
    ///
    /// ```
    /// use bedrock_batch::record::Family;
    /// assert_eq!(Family::for_model("us.anthropic.claude-sonnet-4-20250514-v1:0").unwrap(), Family::Anthropic);
    /// assert_eq!(Family::for_model("amazon.nova-lite-v1:0").unwrap(), Family::Nova);
    /// assert!(Family::for_model("cohere.command-r-v1:0").is_err());
    /// ```
    pub fn for_model(model_id: &str) -> Result<Family, UnknownModel> {
        ModelTable::builtin().resolve(model_id).map(|r| r.family)
    }

    /// The family's short name, as stored in `batch.json` and given to `--family`.
    pub fn name(self) -> &'static str {
        self.codec().name
    }

    /// The family with that short name.
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The job's `modelInvocationType`: `Converse` for Converse jobs, else `InvokeModel`.
    pub fn invocation_type(self) -> &'static str {
        self.codec().invocation_type
    }

    /// The OpenAI endpoints whose requests this family takes, the usual one first.
    pub fn endpoints(self) -> &'static [Endpoint] {
        match self.codec().input {
            Input::Chat(_) => Endpoint::CHAT,
            Input::Embeddings(_) => &[Endpoint::Embeddings],
        }
    }

    /// Whether requests to this OpenAI endpoint can be mapped to this family.
    pub fn serves(self, endpoint: Endpoint) -> bool {
        self.endpoints().contains(&endpoint)
    }

    /// Whether the family sends a request's `tools` to the model as written (not converted), so
    /// that a member given twice in them must be refused.
    pub(crate) fn sends_tools_as_written(self) -> bool {
        self.codec().tools_as_written
    }

    /// Writes the `modelInput` body for a chat `request` into `out`.
    pub(crate) fn write_model_input(
        self,
        request: &ChatRequest<'_>,
        opts: &MapOptions,
        notes: &mut Notes,
        out: &mut Vec<u8>,
    ) -> Result<(), Reject> {
        match self.codec().input {
            Input::Chat(write) => write(request, opts, notes, out),
            Input::Embeddings(_) => Err(Reject::invalid(
                "a chat request cannot go to an embeddings model",
            )),
        }
    }

    /// Writes the `modelInput` body for an embeddings `request` into `out`.
    pub(crate) fn write_embedding_input(
        self,
        request: &EmbeddingRequest<'_>,
        opts: &MapOptions,
        notes: &mut Notes,
        out: &mut Vec<u8>,
    ) -> Result<(), Reject> {
        match self.codec().input {
            Input::Embeddings(write) => write(request, opts, notes, out),
            Input::Chat(_) => Err(Reject::invalid(
                "an embeddings request cannot go to a chat model",
            )),
        }
    }

    /// Writes the OpenAI response body (a `chat.completion`, or an embeddings list) for a Bedrock
    /// `modelOutput` into `out`.
    ///
    /// ```
    /// use bedrock_batch::record::{CompletionContext, Endpoint, Family};
    /// let output = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],
    ///   "stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
    /// let raw = serde_json::from_str(output).unwrap();
    /// let ctx = CompletionContext { fallback_id: "x", model: "\"gpt-4o\"", created: 1, endpoint: Endpoint::ChatCompletions };
    /// let mut out = Vec::new();
    /// let usage = Family::Anthropic.write_completion(raw, &ctx, &mut out).unwrap();
    /// let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    /// assert_eq!(v["choices"][0]["message"]["content"], "Hi");
    /// assert_eq!(v["usage"]["total_tokens"], 4);
    /// assert_eq!(usage.prompt_tokens, 3);
    /// ```
    pub fn write_completion(
        self,
        model_output: Raw<'_>,
        ctx: &CompletionContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Usage, Reject> {
        (self.codec().write_completion)(model_output, ctx, out)
    }

    /// Scans this family's `modelOutput` at the scanner's position, reading what the family's
    /// response needs as it validates; falls back on anything its serde reader would treat
    /// differently (which then reads the delimited value and words any error).
    pub(crate) fn scan_output<'a>(self, s: &mut Scanner<'a>) -> Scan<(Raw<'a>, ParsedOutput<'a>)> {
        (self.codec().scan_output)(s)
    }

    /// The family's entry in [`CODECS`].
    fn codec(self) -> &'static Codec {
        let codec = &CODECS[self as usize];
        debug_assert_eq!(codec.family, self, "CODECS is in the order of Family");
        codec
    }
}

/// How a family writes a request's `modelInput`.
#[derive(Clone, Copy)]
pub(crate) enum Input {
    /// From a `/v1/chat/completions` request.
    Chat(fn(&ChatRequest<'_>, &MapOptions, &mut Notes, &mut Vec<u8>) -> Result<(), Reject>),
    /// From a `/v1/embeddings` request.
    Embeddings(
        fn(&EmbeddingRequest<'_>, &MapOptions, &mut Notes, &mut Vec<u8>) -> Result<(), Reject>,
    ),
}

/// One family's body format, both ways: what [`Family`] dispatches to. Adding a family is a
/// module of its own providing these functions, a [`Family`] variant, its model ids in
/// [`Family::for_model`], and one row here (its limits, if documented, in [`super::limits`]).
pub(crate) struct Codec {
    /// The family this row is for (the rows are in the order of the enum).
    pub family: Family,
    /// The short name, as stored in `batch.json` and given to `--family`.
    pub name: &'static str,
    /// The job's `modelInvocationType`.
    pub invocation_type: &'static str,
    /// Writes a request's `modelInput`.
    pub input: Input,
    /// The request's `tools` go to the model as written, not converted.
    pub tools_as_written: bool,
    /// Scans `modelOutput` in the line's pass: its extent, and what the response needs.
    pub scan_output: for<'a> fn(&mut Scanner<'a>) -> Scan<(Raw<'a>, ParsedOutput<'a>)>,
    /// Reads `modelOutput` the careful way (serde, exact errors) and writes the response (the
    /// same writer the scanned response goes to).
    pub write_completion:
        fn(Raw<'_>, &CompletionContext<'_>, &mut Vec<u8>) -> Result<Usage, Reject>,
}

/// Every family's row, in the order of [`Family`].
pub(crate) const CODECS: [Codec; 11] = [
    Codec {
        family: Family::Anthropic,
        name: "anthropic",
        invocation_type: "InvokeModel",
        input: Input::Chat(anthropic::write_body),
        tools_as_written: false,
        scan_output: |s| anthropic::scan_message(s).map(|(raw, p)| (raw, ParsedOutput::Claude(p))),
        write_completion: anthropic::write_chat_completion,
    },
    Codec {
        family: Family::Nova,
        name: "nova",
        invocation_type: "InvokeModel",
        input: Input::Chat(|r, o, n, out| converse::write_body(Dialect::Nova, r, o, n, out)),
        tools_as_written: false,
        scan_output: |s| {
            spanned(s, |s| {
                Ok(ParsedOutput::Converse(converse::scan_response(s)?))
            })
        },
        write_completion: |raw, ctx, out| {
            converse::write_response(parse(raw, "modelOutput")?, ctx, out)
        },
    },
    Codec {
        family: Family::Llama,
        name: "llama",
        invocation_type: "InvokeModel",
        input: Input::Chat(llama::write_body),
        tools_as_written: false,
        scan_output: |s| spanned(s, |s| Ok(ParsedOutput::Llama(llama::scan_response(s)?))),
        write_completion: |raw, ctx, out| {
            llama::write_response(parse(raw, "modelOutput")?, ctx, out)
        },
    },
    Codec {
        family: Family::MistralText,
        name: "mistral-text",
        invocation_type: "InvokeModel",
        input: Input::Chat(mistral::write_text_body),
        tools_as_written: false,
        scan_output: |s| {
            spanned(s, |s| {
                Ok(ParsedOutput::MistralText(mistral::scan_text_response(s)?))
            })
        },
        write_completion: |raw, ctx, out| {
            mistral::write_text_response(parse(raw, "modelOutput")?, ctx, out)
        },
    },
    Codec {
        family: Family::MistralChat,
        name: "mistral-chat",
        invocation_type: "InvokeModel",
        input: Input::Chat(mistral::write_chat_body),
        tools_as_written: false,
        scan_output: |s| spanned(s, |s| Ok(ParsedOutput::MistralChat(OpenAiShaped::scan(s)?))),
        write_completion: |raw, ctx, out| {
            mistral::write_chat_response(OpenAiShaped::parse(raw)?, ctx, out)
        },
    },
    Codec {
        family: Family::GptOss,
        name: "gpt-oss",
        invocation_type: "InvokeModel",
        input: Input::Chat(gpt_oss::write_body),
        tools_as_written: true,
        scan_output: |s| spanned(s, |s| Ok(ParsedOutput::GptOss(OpenAiShaped::scan(s)?))),
        write_completion: |raw, ctx, out| {
            gpt_oss::write_response(OpenAiShaped::parse(raw)?, ctx, out)
        },
    },
    Codec {
        family: Family::OpenAiChat,
        name: "openai-chat",
        invocation_type: "InvokeModel",
        input: Input::Chat(gpt_oss::write_openai_chat_body),
        tools_as_written: true,
        scan_output: |s| spanned(s, |s| Ok(ParsedOutput::GptOss(OpenAiShaped::scan(s)?))),
        write_completion: |raw, ctx, out| {
            gpt_oss::write_response(OpenAiShaped::parse(raw)?, ctx, out)
        },
    },
    Codec {
        family: Family::TitanEmbed,
        name: "titan-embed",
        invocation_type: "InvokeModel",
        input: Input::Embeddings(titan::write_body),
        tools_as_written: false,
        scan_output: |s| spanned(s, |s| Ok(ParsedOutput::Titan(titan::scan_response(s)?))),
        write_completion: titan::write_embeddings,
    },
    Codec {
        family: Family::TitanEmbedImage,
        name: "titan-embed-image",
        invocation_type: "InvokeModel",
        input: Input::Embeddings(titan::write_image_body),
        tools_as_written: false,
        scan_output: |s| spanned(s, |s| Ok(ParsedOutput::Titan(titan::scan_response(s)?))),
        write_completion: titan::write_embeddings,
    },
    Codec {
        family: Family::NovaEmbed,
        name: "nova-embed",
        invocation_type: "InvokeModel",
        input: Input::Embeddings(nova_embed::write_body),
        tools_as_written: false,
        scan_output: |s| {
            spanned(s, |s| {
                Ok(ParsedOutput::NovaEmbed(nova_embed::scan_response(s)?))
            })
        },
        write_completion: nova_embed::write_embeddings,
    },
    Codec {
        family: Family::Converse,
        name: "converse",
        invocation_type: "Converse",
        input: Input::Chat(|r, o, n, out| converse::write_body(Dialect::Converse, r, o, n, out)),
        tools_as_written: false,
        scan_output: |s| {
            spanned(s, |s| {
                Ok(ParsedOutput::Converse(converse::scan_response(s)?))
            })
        },
        write_completion: |raw, ctx, out| {
            converse::write_response(parse(raw, "modelOutput")?, ctx, out)
        },
    },
];

/// Runs a family's scanner and adds the extent of what it read.
fn spanned<'a>(
    s: &mut Scanner<'a>,
    scan: impl FnOnce(&mut Scanner<'a>) -> Scan<ParsedOutput<'a>>,
) -> Scan<(Raw<'a>, ParsedOutput<'a>)> {
    let start = s.position();
    let parsed = scan(s)?;
    Ok((s.since(start), parsed))
}

/// A `modelOutput` already picked apart by the family's scanner, in the same pass as its line
/// (so it is never parsed a second time); it writes its own response.
pub(crate) enum ParsedOutput<'a> {
    Claude(anthropic::Parts<'a>),
    /// Nova and Converse.
    Converse(converse::Response<'a>),
    Llama(llama::Response<'a>),
    MistralText(mistral::TextResponse<'a>),
    MistralChat(OpenAiShaped<'a>),
    GptOss(OpenAiShaped<'a>),
    Titan(titan::Response<'a>),
    NovaEmbed(nova_embed::Response<'a>),
}

impl ParsedOutput<'_> {
    /// Writes the OpenAI response body for what was scanned.
    pub(crate) fn write(
        self,
        ctx: &CompletionContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Usage, Reject> {
        match self {
            ParsedOutput::Claude(parts) => anthropic::write_parts(parts, ctx, out),
            ParsedOutput::Converse(r) => converse::write_response(r, ctx, out),
            ParsedOutput::Llama(r) => llama::write_response(r, ctx, out),
            ParsedOutput::MistralText(r) => mistral::write_text_response(r, ctx, out),
            ParsedOutput::MistralChat(r) => mistral::write_chat_response(r, ctx, out),
            ParsedOutput::GptOss(r) => gpt_oss::write_response(r, ctx, out),
            ParsedOutput::Titan(r) => titan::write_response(r, ctx, out),
            ParsedOutput::NovaEmbed(r) => nova_embed::write_response(r, ctx, out),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The model id inside a model or inference-profile id or ARN: `anthropic.claude-…` for
/// `arn:…/us.anthropic.claude-…`.
pub(crate) fn bare_model_id(model_id: &str) -> &str {
    // An ARN ends in `…/<model or profile id>`.
    let id = model_id.rsplit('/').next().unwrap_or(model_id);
    match profile_prefix(id) {
        Some(p) => &id[p.len() + 1..],
        None => id,
    }
}

/// The cross-Region profile prefix of an id (`us` for `us.anthropic.claude-…`), if it has one.
pub(crate) fn profile_prefix(id: &str) -> Option<&'static str> {
    PROFILE_PREFIXES
        .iter()
        .find(|p| id.starts_with(**p))
        .map(|p| p.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_its_row_in_order() {
        assert_eq!(CODECS.len(), Family::ALL.len());
        for (row, &family) in CODECS.iter().zip(Family::ALL) {
            assert_eq!(row.family, family);
            assert_eq!(
                family as usize,
                Family::ALL.iter().position(|&f| f == family).unwrap()
            );
            assert_eq!(Family::from_name(family.name()), Some(family));
        }
    }

    #[test]
    fn model_ids_pick_their_family() {
        for (id, family) in [
            ("anthropic.claude-3-haiku-20240307-v1:0", Family::Anthropic),
            ("us.anthropic.claude-sonnet-4-20250514-v1:0", Family::Anthropic),
            ("amazon.nova-lite-v1:0", Family::Nova),
            ("global.amazon.nova-2-lite-v1:0", Family::Nova),
            ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0", Family::Nova),
            ("meta.llama3-1-70b-instruct-v1:0", Family::Llama),
            ("us.meta.llama3-2-11b-instruct-v1:0", Family::Llama),
            ("mistral.mistral-7b-instruct-v0:2", Family::MistralText),
            ("mistral.mixtral-8x7b-instruct-v0:1", Family::MistralText),
            ("mistral.mistral-small-2402-v1:0", Family::MistralText),
            ("mistral.mistral-large-2407-v1:0", Family::MistralChat),
            ("openai.gpt-oss-120b-1:0", Family::GptOss),
            ("amazon.titan-embed-text-v2:0", Family::TitanEmbed),
            ("amazon.titan-embed-image-v1", Family::TitanEmbedImage),
            ("amazon.nova-2-multimodal-embeddings-v1:0", Family::NovaEmbed),
            ("meta.llama4-scout-17b-instruct-v1:0", Family::Converse),
            ("qwen.qwen3-32b-v1:0", Family::Converse),
            ("us.deepseek.r1-v1:0", Family::Converse),
            ("mistral.mistral-large-3-675b-instruct", Family::Converse),
            (
                "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0",
                Family::Anthropic,
            ),
        ] {
            assert_eq!(Family::for_model(id), Ok(family), "{id}");
        }
        for (id, says) in [
            ("amazon.nova-canvas-v1:0", "Canvas"),
            ("google.gemma-4-31b", "bedrock-mantle"),
            (
                "anthropic.claud-3-haiku-20240307-v1:0",
                "anthropic.claude-3-haiku…",
            ),
            ("amazon.nvoa-lite-v1:0", "amazon.nova-lite…"),
            ("cohere.command-r-v1:0", "no batch inference quotas"),
            (
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
                "--family",
            ),
        ] {
            let e = Family::for_model(id).unwrap_err().to_string();
            assert!(e.contains(says), "{id}: {e}");
        }
    }

    #[test]
    fn names_round_trip_and_say_the_job_type_and_endpoint() {
        for f in Family::ALL {
            assert_eq!(Family::from_name(f.name()), Some(*f));
        }
        assert_eq!(Family::Converse.invocation_type(), "Converse");
        assert_eq!(Family::Nova.invocation_type(), "InvokeModel");
        assert!(Family::TitanEmbed.serves(Endpoint::Embeddings));
        assert!(!Family::TitanEmbed.serves(Endpoint::ChatCompletions));
        assert!(Family::GptOss.serves(Endpoint::ChatCompletions));
        assert!(Family::Llama.serves(Endpoint::Completions));
        assert!(Family::Nova.serves(Endpoint::Responses));
    }
}

/// Each family's scanner against its serde reader: on generated `modelOutput`s — every member
/// present, absent, null, of another type, duplicated, under an escaped key, with numbers in any
/// spelling and deep junk beside them — whenever the scanner reads a value, the OpenAI body it
/// leads to is byte for byte the one serde's reading leads to (or the same reject).
#[cfg(test)]
mod scan_parity {
    use super::*;
    use crate::record::scan::Scanner;
    use proptest::prelude::*;

    /// A value for a member that is meant to hold `kind`.
    fn value(kind: &str, pick: u8, depth: u32) -> String {
        let wrong = match pick % 7 {
            0 => "null".to_owned(),
            1 => "17".to_owned(),
            2 => "\"x\\u00e9\\ud800\"".to_owned(),
            3 => "[[[[[[[[[[[[[[[[[[[[{\"a\":[1,2,{\"b\":null}]}]]]]]]]]]]]]]]]]]]]]".to_owned(),
            4 => "{}".to_owned(),
            5 => "true".to_owned(),
            _ => String::new(),
        };
        if !wrong.is_empty() && pick.is_multiple_of(3) {
            return wrong;
        }
        match kind {
            "text" => ["\"Hello \\\"world\\\"\\n\"", "\"\"", "\"caf\\u00e9\""][pick as usize % 3]
                .to_owned(),
            "count" => [
                "12",
                "12.0",
                "1.2e1",
                "-3",
                "18446744073709551616",
                "0.5",
                "0",
            ][pick as usize % 7]
                .to_owned(),
            "numbers" => {
                ["[0.5,-1e-3,2]", "[]", "[0.5,\"x\",null]", "[1,[2]]"][pick as usize % 4].to_owned()
            }
            "object" if depth > 0 => "{\"k\":1}".to_owned(),
            "object" => "{\"city\":\"Paris\"}".to_owned(),
            "reason" => [
                "\"end_turn\"",
                "\"length\"",
                "\"tool_use\"",
                "\"max_tokens\"",
                "\"stop\"",
            ][pick as usize % 5]
                .to_owned(),
            "block" => [
                "\"text\"",
                "\"tool_use\"",
                "\"thinking\"",
                "\"redacted_thinking\"",
            ][pick as usize % 4]
                .to_owned(),
            _ => "null".to_owned(),
        }
    }

    /// An object of `members` (name, kind, or a nested shape), each perturbed by the next byte.
    fn object(
        members: &[(&str, Shape)],
        noise: &mut impl Iterator<Item = u8>,
        depth: u32,
    ) -> String {
        let mut parts = Vec::new();
        for (name, shape) in members {
            let n = noise.next().unwrap_or(0);
            if n.is_multiple_of(11) {
                continue; // absent
            }
            let key = if n % 13 == 1 {
                // The same key, escaped.
                let mut k = String::new();
                for (i, c) in name.chars().enumerate() {
                    if i == 0 {
                        k.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        k.push(c);
                    }
                }
                k
            } else {
                (*name).to_owned()
            };
            let v = match shape {
                Shape::Leaf(kind) => value(kind, n, depth),
                Shape::Obj(inner) if n % 17 != 3 => object(inner, noise, depth + 1),
                Shape::Arr(inner) if n % 17 != 3 => {
                    let k = (n % 3) as usize;
                    let items: Vec<String> =
                        (0..k).map(|_| object(inner, noise, depth + 1)).collect();
                    format!("[{}]", items.join(","))
                }
                _ => value("other", n, depth),
            };
            parts.push(format!("\"{key}\":{v}"));
            if n % 19 == 2 {
                parts.push(format!("\"{key}\":{}", value("text", n, depth)));
            }
            if n % 23 == 4 {
                parts.push("\"extra\":{\"deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}".to_owned());
            }
        }
        format!("{{{}}}", parts.join(","))
    }

    enum Shape {
        Leaf(&'static str),
        Obj(&'static [(&'static str, Shape)]),
        Arr(&'static [(&'static str, Shape)]),
    }

    use Shape::{Arr, Leaf, Obj};

    const CLAUDE: &[(&str, Shape)] = &[
        ("id", Leaf("text")),
        (
            "content",
            Arr(&[
                ("type", Leaf("block")),
                ("text", Leaf("text")),
                ("thinking", Leaf("text")),
                ("id", Leaf("text")),
                ("name", Leaf("text")),
                ("input", Leaf("object")),
            ]),
        ),
        ("stop_reason", Leaf("reason")),
        (
            "usage",
            Obj(&[
                ("input_tokens", Leaf("count")),
                ("output_tokens", Leaf("count")),
                ("cache_creation_input_tokens", Leaf("count")),
                ("cache_read_input_tokens", Leaf("count")),
            ]),
        ),
    ];
    const LLAMA: &[(&str, Shape)] = &[
        ("generation", Leaf("text")),
        ("prompt_token_count", Leaf("count")),
        ("generation_token_count", Leaf("count")),
        ("stop_reason", Leaf("reason")),
    ];
    const MISTRAL_TEXT: &[(&str, Shape)] = &[(
        "outputs",
        Arr(&[("text", Leaf("text")), ("stop_reason", Leaf("reason"))]),
    )];
    const SHAPED: &[(&str, Shape)] = &[
        ("id", Leaf("text")),
        (
            "choices",
            Arr(&[
                (
                    "message",
                    Obj(&[
                        ("content", Leaf("text")),
                        ("reasoning_content", Leaf("text")),
                        ("reasoning", Leaf("text")),
                        ("refusal", Leaf("text")),
                        (
                            "tool_calls",
                            Arr(&[
                                ("id", Leaf("text")),
                                (
                                    "function",
                                    Obj(&[("name", Leaf("text")), ("arguments", Leaf("text"))]),
                                ),
                            ]),
                        ),
                    ]),
                ),
                ("finish_reason", Leaf("reason")),
                ("stop_reason", Leaf("reason")),
            ]),
        ),
        (
            "usage",
            Obj(&[
                ("prompt_tokens", Leaf("count")),
                ("completion_tokens", Leaf("count")),
                (
                    "prompt_tokens_details",
                    Obj(&[("cached_tokens", Leaf("count"))]),
                ),
                (
                    "completion_tokens_details",
                    Obj(&[("reasoning_tokens", Leaf("count"))]),
                ),
            ]),
        ),
    ];
    const CONVERSE: &[(&str, Shape)] = &[
        (
            "output",
            Obj(&[(
                "message",
                Obj(&[(
                    "content",
                    Arr(&[
                        ("text", Leaf("text")),
                        (
                            "toolUse",
                            Obj(&[
                                ("toolUseId", Leaf("text")),
                                ("name", Leaf("text")),
                                ("input", Leaf("object")),
                            ]),
                        ),
                        (
                            "reasoningContent",
                            Obj(&[("reasoningText", Obj(&[("text", Leaf("text"))]))]),
                        ),
                    ]),
                )]),
            )]),
        ),
        ("stopReason", Leaf("reason")),
        (
            "usage",
            Obj(&[
                ("inputTokens", Leaf("count")),
                ("outputTokens", Leaf("count")),
                ("cacheReadInputTokens", Leaf("count")),
                // The same member by its other name: present with the first, a duplicate.
                ("cacheReadInputTokenCount", Leaf("count")),
                ("cacheWriteInputTokenCount", Leaf("count")),
            ]),
        ),
    ];
    const TITAN: &[(&str, Shape)] = &[
        ("embedding", Leaf("numbers")),
        ("inputTextTokenCount", Leaf("count")),
    ];

    /// Compares the two readings of `text`; says whether the scanner read it (and so whether
    /// anything was compared).
    fn check(family: Family, text: &str) -> Result<bool, TestCaseError> {
        let ctx = CompletionContext {
            fallback_id: "chatcmpl-x",
            model: "\"m\"",
            created: 1,
            endpoint: Endpoint::ChatCompletions,
        };
        let mut slow = Vec::new();
        let by_serde = match family {
            // Claude's public reader tries the scanner first: hold it to serde's reading alone.
            Family::Anthropic => anthropic::parse_parts(Raw::validated(text))
                .and_then(|parts| anthropic::write_parts(parts, &ctx, &mut slow)),
            _ => family.write_completion(Raw::validated(text), &ctx, &mut slow),
        }
        .map_err(|r| r.message);
        let mut s = Scanner::new(text);
        let Ok((raw, parsed)) = family.scan_output(&mut s) else {
            return Ok(false); // the scanner declined: serde reads it, as above
        };
        prop_assert!(s.end().is_ok());
        prop_assert_eq!(raw.get(), text);
        let mut fast = Vec::new();
        let by_scan = parsed.write(&ctx, &mut fast).map_err(|r| r.message);
        prop_assert_eq!(&by_scan, &by_serde, "{}", text);
        if by_scan.is_ok() {
            prop_assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&slow),
                "{}",
                text
            );
        }
        Ok(true)
    }

    const NOVA_EMBED: &[(&str, Shape)] = &[(
        "embeddings",
        Arr(&[
            ("embeddingType", Leaf("text")),
            ("embedding", Leaf("numbers")),
        ]),
    )];

    const FAMILIES: [(Family, &[(&str, Shape)]); 11] = [
        (Family::Anthropic, CLAUDE),
        (Family::Llama, LLAMA),
        (Family::MistralText, MISTRAL_TEXT),
        (Family::MistralChat, SHAPED),
        (Family::GptOss, SHAPED),
        (Family::Nova, CONVERSE),
        (Family::Converse, CONVERSE),
        (Family::OpenAiChat, SHAPED),
        (Family::TitanEmbed, TITAN),
        (Family::TitanEmbedImage, TITAN),
        (Family::NovaEmbed, NOVA_EMBED),
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        #[test]
        fn every_scanner_reads_what_serde_reads(noise in prop::collection::vec(any::<u8>(), 64)) {
            for (family, shape) in FAMILIES {
                let text = object(shape, &mut noise.iter().copied().cycle(), 0);
                check(family, &text)?;
            }
        }
    }

    /// The generated answers are not all ones the scanners decline: for every family, a good
    /// share is read by the scanner and so compared.
    #[test]
    fn the_generator_reaches_the_scanners() {
        for (family, shape) in FAMILIES {
            let mut rng = crate::record::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
            let mut compared = 0;
            for _ in 0..400 {
                let noise: Vec<u8> = (0..64).map(|_| rng.next_u64() as u8).collect();
                let text = object(shape, &mut noise.iter().copied().cycle(), 0);
                compared += usize::from(check(family, &text).unwrap());
            }
            assert!(compared >= 40, "{family}: only {compared} of 400 compared");
        }
    }

    /// The generator reaches the happy path too (a test that only ever compares fallbacks
    /// would prove nothing).
    #[test]
    fn the_scanners_read_well_formed_answers() {
        for (family, text) in [
            (
                Family::Llama,
                r#"{"generation":"hi","prompt_token_count":3,"generation_token_count":1,"stop_reason":"stop"}"#,
            ),
            (
                Family::MistralText,
                r#"{"outputs":[{"text":"hi","stop_reason":"length"}]}"#,
            ),
            (
                Family::GptOss,
                r#"{"id":"c","choices":[{"message":{"content":"hi","tool_calls":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            ),
            (
                Family::Nova,
                r#"{"output":{"message":{"content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1}}"#,
            ),
            (
                Family::TitanEmbed,
                r#"{"embedding":[0.5,1e-3],"inputTextTokenCount":4}"#,
            ),
            (
                Family::NovaEmbed,
                r#"{"embeddings":[{"embeddingType":"TEXT","embedding":[0.5,-2]}]}"#,
            ),
        ] {
            let mut s = Scanner::new(text);
            assert!(family.scan_output(&mut s).is_ok(), "{family}: {text}");
            assert!(check(family, text).unwrap());
        }
    }
}
