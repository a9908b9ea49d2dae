//! Model families: which body format a Bedrock model takes, both ways.

use std::fmt;

use super::anthropic;
use super::converse::{self, Dialect};
use super::openai::{ChatRequest, CHAT_COMPLETIONS};
use super::reject::Reject;
use super::scan::{Scan, Scanner};
use super::titan::{self, EmbeddingRequest, EMBEDDINGS};
use super::{gpt_oss, llama, mistral, Raw};
use super::{MapOptions, Notes};

/// A family of Bedrock models that share one `modelInput` / `modelOutput` body format (or, for
/// [`Family::Converse`], a Converse batch job for any model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Amazon Titan Text Embeddings V2 (`/v1/embeddings`).
    TitanEmbed,
    /// A Converse batch job, for any chat model (`--invocation-type converse`).
    Converse,
}

/// The model id names no family this crate can map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model {model:?}: {reason}; supported: {SUPPORTED}")]
pub struct UnknownModel {
    /// The model id given.
    pub model: String,
    /// Why it is not mapped.
    pub reason: String,
}

/// What is supported, for messages.
pub const SUPPORTED: &str = "Anthropic Claude (anthropic.claude-*), Amazon Nova (amazon.nova-micro/lite/pro/premier/2-*), \
Meta Llama 3 (meta.llama3-*), Mistral (mistral.*), OpenAI gpt-oss (openai.gpt-oss-*), Titan Text Embeddings V2 \
(amazon.titan-embed-text-v2:0), each also behind an inference profile (us., eu., apac., global. …) or an ARN; \
any chat model in a Converse job (--invocation-type converse); --family NAME for an application inference profile";

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
        Family::TitanEmbed,
        Family::Converse,
    ];

    /// The family of a Bedrock model id, inference profile id, or model/profile ARN, for an
    /// InvokeModel job.
    ///
    /// ```
    /// use bedrock_batch::record::Family;
    /// assert_eq!(Family::for_model("us.anthropic.claude-sonnet-4-20250514-v1:0").unwrap(), Family::Anthropic);
    /// assert_eq!(Family::for_model("amazon.nova-lite-v1:0").unwrap(), Family::Nova);
    /// assert!(Family::for_model("cohere.command-r-v1:0").is_err());
    /// ```
    pub fn for_model(model_id: &str) -> Result<Family, UnknownModel> {
        let id = bare_model_id(model_id);
        let not = |reason: &str| UnknownModel {
            model: model_id.to_owned(),
            reason: reason.to_owned(),
        };
        let family = if id.starts_with("anthropic.claude") {
            Family::Anthropic
        } else if let Some(nova) = id.strip_prefix("amazon.nova-") {
            if ["canvas", "reel", "sonic"]
                .iter()
                .any(|k| nova.starts_with(k))
            {
                return Err(not(
                    "Nova Canvas, Reel and Sonic make images, video and speech, not batch text",
                ));
            }
            Family::Nova
        } else if id.starts_with("meta.llama3") {
            Family::Llama
        } else if id.starts_with("meta.llama") {
            return Err(not("this Llama's native prompt format is not mapped; run it in a Converse job (--invocation-type converse)"));
        } else if id.starts_with("mistral.mistral-large-2407")
            || id.starts_with("mistral.mistral-large-2411")
            || id.starts_with("mistral.pixtral")
        {
            Family::MistralChat
        } else if id.starts_with("mistral.") {
            Family::MistralText
        } else if id.starts_with("openai.gpt-oss") {
            Family::GptOss
        } else if id.starts_with("amazon.titan-embed-text-v2") {
            Family::TitanEmbed
        } else if id.starts_with("cohere.") || id.starts_with("amazon.titan-text") {
            return Err(not("Bedrock lists no batch inference quotas for it"));
        } else {
            return Err(not("not a model family this version maps"));
        };
        Ok(family)
    }

    /// The family's short name, as stored in `batch.json` and given to `--family`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Anthropic => "anthropic",
            Family::Nova => "nova",
            Family::Llama => "llama",
            Family::MistralText => "mistral-text",
            Family::MistralChat => "mistral-chat",
            Family::GptOss => "gpt-oss",
            Family::TitanEmbed => "titan-embed",
            Family::Converse => "converse",
        }
    }

    /// The family with that short name.
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The job's `modelInvocationType`: `Converse` for Converse jobs, else `InvokeModel`.
    pub fn invocation_type(self) -> &'static str {
        match self {
            Family::Converse => "Converse",
            _ => "InvokeModel",
        }
    }

    /// The OpenAI endpoint whose requests this family takes.
    pub fn endpoint(self) -> &'static str {
        match self {
            Family::TitanEmbed => EMBEDDINGS,
            _ => CHAT_COMPLETIONS,
        }
    }

    /// Whether requests to this OpenAI endpoint can be mapped to this family.
    pub fn serves(self, url: &str) -> bool {
        url == self.endpoint()
    }

    /// Writes the `modelInput` body for a chat `request` into `out`.
    pub fn write_model_input(
        self,
        request: &ChatRequest<'_>,
        opts: &MapOptions,
        notes: &mut Notes,
        out: &mut Vec<u8>,
    ) -> Result<(), Reject> {
        match self {
            Family::Anthropic => anthropic::write_body(request, opts, notes, out),
            Family::Nova => converse::write_body(Dialect::Nova, request, opts, notes, out),
            Family::Converse => converse::write_body(Dialect::Converse, request, opts, notes, out),
            Family::Llama => llama::write_body(request, opts, notes, out),
            Family::MistralText => mistral::write_text_body(request, opts, notes, out),
            Family::MistralChat => mistral::write_chat_body(request, opts, notes, out),
            Family::GptOss => gpt_oss::write_body(request, opts, notes, out),
            Family::TitanEmbed => Err(Reject::invalid(
                "a chat request cannot go to an embeddings model",
            )),
        }
    }

    /// Writes the `modelInput` body for an embeddings `request` into `out`.
    pub fn write_embedding_input(
        self,
        request: &EmbeddingRequest<'_>,
        opts: &MapOptions,
        notes: &mut Notes,
        out: &mut Vec<u8>,
    ) -> Result<(), Reject> {
        match self {
            Family::TitanEmbed => titan::write_body(request, opts, notes, out),
            _ => Err(Reject::invalid(
                "an embeddings request cannot go to a chat model",
            )),
        }
    }

    /// Writes the OpenAI response body (a `chat.completion`, or an embeddings list) for a Bedrock
    /// `modelOutput` into `out`.
    pub fn write_completion(
        self,
        model_output: Raw<'_>,
        ctx: &anthropic::CompletionContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<anthropic::Usage, Reject> {
        match self {
            Family::Anthropic => anthropic::write_chat_completion(model_output, ctx, out),
            Family::Nova | Family::Converse => {
                converse::write_chat_completion(model_output, ctx, out)
            }
            Family::Llama => llama::write_chat_completion(model_output, ctx, out),
            Family::MistralText => mistral::write_text_completion(model_output, ctx, out),
            Family::MistralChat => mistral::write_chat_completion(model_output, ctx, out),
            Family::GptOss => gpt_oss::write_chat_completion(model_output, ctx, out),
            Family::TitanEmbed => titan::write_embeddings(model_output, ctx, out),
        }
    }
}

/// A `modelOutput` already picked apart by the family's scanner, in the same pass as its line.
pub(crate) enum ParsedOutput<'a> {
    Claude(anthropic::Parts<'a>),
    /// Delimited only; the family parses it when writing.
    Raw(Raw<'a>),
}

impl Family {
    /// Scans this family's `modelOutput` at the scanner's position.
    pub(crate) fn scan_output<'a>(self, s: &mut Scanner<'a>) -> Scan<(Raw<'a>, ParsedOutput<'a>)> {
        match self {
            Family::Anthropic => {
                anthropic::scan_message(s).map(|(raw, parts)| (raw, ParsedOutput::Claude(parts)))
            }
            _ => s.value().map(|raw| (raw, ParsedOutput::Raw(raw))),
        }
    }

    /// Writes the OpenAI response body for a scanned `modelOutput`.
    pub(crate) fn write_parsed(
        self,
        parsed: ParsedOutput<'_>,
        ctx: &anthropic::CompletionContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<anthropic::Usage, Reject> {
        match parsed {
            ParsedOutput::Claude(parts) => anthropic::write_parts(parts, ctx, out),
            ParsedOutput::Raw(raw) => self.write_completion(raw, ctx, out),
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
    PROFILE_PREFIXES
        .iter()
        .find_map(|p| id.strip_prefix(p))
        .unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (
                "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0",
                Family::Anthropic,
            ),
        ] {
            assert_eq!(Family::for_model(id), Ok(family), "{id}");
        }
        for (id, says) in [
            ("meta.llama4-scout-17b-instruct-v1:0", "Converse"),
            ("amazon.nova-canvas-v1:0", "Canvas"),
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
        assert!(Family::TitanEmbed.serves("/v1/embeddings"));
        assert!(!Family::TitanEmbed.serves("/v1/chat/completions"));
        assert!(Family::GptOss.serves("/v1/chat/completions"));
    }
}
