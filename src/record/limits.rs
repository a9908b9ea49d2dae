//! What each model takes of the sampling settings, as the model table states them (see
//! [`super::model_table`]) — and the one rule every family applies to a value beyond them.
//!
//! **The rule.** A value that is not a value of the setting at all (not a number, a negative
//! temperature, `top_p` outside 0–1, `max_tokens` or `top_k` not a positive integer) is
//! rejected. A real value beyond what the model's documentation allows is *clamped* to the
//! documented limit and *counted* (the summary says how many requests had which setting
//! clamped): a `max_tokens` of 10,000 for Llama becomes 2,048, a temperature of 1.5 becomes 1,
//! a temperature of 0 for Nova 2 becomes its documented minimum, 0.00001, a list of stop
//! sequences longer than the model takes keeps its first ones. Where the documentation states no
//! limit, or the model is not in the table, the value goes to Bedrock as it is (Bedrock's own
//! refusal then comes back as that record's error line).
//!
//! Integers are read by value: `1.0` and `1e3` are integers, `1.5` is not.

use std::borrow::Cow;

use super::conversation::{number, positive_int, write_stop_list};
use super::json::Raw;
use super::model_table::{Media, ModelTable, Settings};
use super::{Family, Notes, Reject};

/// The documented ranges of one model's (or family's) settings, from the model table (see
/// [`super::model_table`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The largest `max_tokens` (or its name in the body: `max_gen_len`, `maxTokens`), if one is
    /// documented.
    pub max_tokens: Option<u64>,
    /// The smallest and largest `temperature`.
    pub temperature: (f64, f64),
    /// The largest `top_k`, if one is documented.
    pub top_k: Option<u64>,
    /// The most stop sequences, if a number is documented.
    pub stop: Option<usize>,
    /// The embedding sizes the model makes (empty: not documented).
    pub dimensions: Vec<u64>,
    /// The inputs the model takes (empty: not documented).
    pub media: Vec<Media>,
    /// Whether the model takes a reasoning effort.
    pub reasoning: bool,
}

impl Limits {
    /// The limits of `model_id` (a model or inference-profile id, or an ARN; empty when unknown:
    /// then the family's own) in `family`, from the built-in model table.
    pub fn of(family: Family, model_id: &str) -> Limits {
        ModelTable::builtin().limits(family, model_id)
    }

    /// The limits stated by a table's settings (temperature 0–1 where it states none).
    pub fn from_settings(s: &Settings) -> Limits {
        Limits {
            max_tokens: s.max_tokens,
            temperature: s.temperature.map_or((0.0, 1.0), |[lo, hi]| (lo, hi)),
            top_k: s.top_k,
            stop: s.stop,
            dimensions: s.dimensions.clone().unwrap_or_default(),
            media: s.media.clone().unwrap_or_default(),
            reasoning: s.reasoning.unwrap_or(false),
        }
    }

    /// Whether the model is documented to take `media` (true where its inputs are not stated).
    pub fn takes(&self, media: Media) -> bool {
        self.media.is_empty() || self.media.contains(&media)
    }

    /// The request's `max_completion_tokens` (or `max_tokens`), or `default`, within the limit.
    pub(crate) fn max_tokens(
        &self,
        req: &super::openai::ChatRequest<'_>,
        default: u64,
        notes: &mut Notes,
    ) -> Result<u64, Reject> {
        let cap = self.max_tokens.unwrap_or(u64::MAX);
        let Some(raw) = req.max_completion_tokens.or(req.max_tokens) else {
            return Ok(default.min(cap));
        };
        let field = if req.max_completion_tokens.is_some() {
            "body.max_completion_tokens"
        } else {
            "body.max_tokens"
        };
        let n = positive_int(raw, field)?;
        Ok(notes.clamp("max_tokens", n, 1, cap))
    }

    /// `temperature`, within the model's range. Returns the value to write.
    pub(crate) fn temperature<'a>(
        &self,
        raw: Raw<'a>,
        notes: &mut Notes,
    ) -> Result<Cow<'a, str>, Reject> {
        let t = number(raw, "body.temperature")?;
        if t < 0.0 {
            return Err(Reject::invalid(format!("body.temperature: {t} is below 0")));
        }
        let (lo, hi) = self.temperature;
        Ok(if t < lo || t > hi {
            notes.clamped("temperature");
            Cow::Owned(float_text(t.clamp(lo, hi)))
        } else {
            Cow::Borrowed(raw.get())
        })
    }

    /// `top_p`, which every model takes from 0 to 1.
    pub(crate) fn top_p<'a>(&self, raw: Raw<'a>) -> Result<&'a str, Reject> {
        let p = number(raw, "body.top_p")?;
        if !(0.0..=1.0).contains(&p) {
            return Err(Reject::invalid(format!("body.top_p: {p} is outside 0..1")));
        }
        Ok(raw.get())
    }

    /// `top_k` (not OpenAI's, but taken by several models), within the model's range, as the
    /// integer to write.
    pub(crate) fn top_k(&self, raw: Raw<'_>, notes: &mut Notes) -> Result<u64, Reject> {
        let k = positive_int(raw, "body.top_k")?;
        Ok(notes.clamp("top_k", k, 1, self.top_k.unwrap_or(u64::MAX)))
    }

    /// Writes `stop` (a string or an array of non-empty strings) as an array of at most as
    /// many stop sequences as the model takes.
    pub(crate) fn stop(
        &self,
        raw: Raw<'_>,
        notes: &mut Notes,
        out: &mut Vec<u8>,
    ) -> Result<(), Reject> {
        let max = self.stop.unwrap_or(usize::MAX);
        if write_stop_list(raw, max, out)? {
            notes.clamped("stop");
        }
        Ok(())
    }
}

impl Notes {
    /// Records that `setting` was clamped to the model's limits.
    pub(crate) fn clamped(&mut self, setting: &'static str) {
        if !self.clamped.contains(&setting) {
            self.clamped.push(setting);
        }
    }

    /// `n` within `lo..=hi`, noting `setting` when it was not.
    fn clamp(&mut self, setting: &'static str, n: u64, lo: u64, hi: u64) -> u64 {
        if n < lo || n > hi {
            self.clamped(setting);
        }
        n.clamp(lo, hi.max(lo))
    }
}

/// A float as JSON: `1` for 1.0, `1e-5` for 0.00001.
fn float_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Raw<'_> {
        Raw::validated(s)
    }

    #[test]
    fn the_table_picks_the_model_then_the_family() {
        let max = |f, id| Limits::of(f, id).max_tokens;
        assert_eq!(
            max(Family::Anthropic, "anthropic.claude-3-haiku-20240307-v1:0"),
            Some(4096)
        );
        assert_eq!(
            max(
                Family::Anthropic,
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
            ),
            Some(8192)
        );
        assert_eq!(
            max(Family::Anthropic, "anthropic.claude-opus-4-1-20250805-v1:0"),
            Some(32_000)
        );
        assert_eq!(
            max(
                Family::Anthropic,
                "global.anthropic.claude-opus-4-5-20251101-v1:0"
            ),
            Some(64_000)
        );
        assert_eq!(
            max(
                Family::Anthropic,
                "anthropic.claude-sonnet-4-5-20250929-v1:0"
            ),
            Some(64_000)
        );
        assert_eq!(max(Family::Anthropic, "anthropic.claude-future-9"), None);
        assert_eq!(
            max(Family::MistralText, "mistral.mixtral-8x7b-instruct-v0:1"),
            Some(4096)
        );
        assert_eq!(
            max(Family::MistralText, "mistral.mistral-7b-instruct-v0:2"),
            Some(8192)
        );
        assert_eq!(
            max(
                Family::Llama,
                "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-8b-instruct-v1:0"
            ),
            Some(2048)
        );
        assert_eq!(max(Family::Nova, "amazon.nova-premier-v1:0"), Some(25_000));
        assert_eq!(max(Family::Nova, ""), Some(5000));
        assert_eq!(Limits::of(Family::GptOss, "").temperature, (0.0, 2.0));
    }

    #[test]
    fn integers_are_read_by_value() {
        for (text, n) in [
            ("1", 1),
            ("1.0", 1),
            ("4.096e3", 4096),
            ("1E2", 100),
            ("99999999999999999999999", u64::MAX),
            ("1e300", u64::MAX),
        ] {
            assert_eq!(positive_int(raw(text), "x").ok(), Some(n), "{text}");
        }
        for text in [
            "0",
            "0.0",
            "-1",
            "1.5",
            "1.0000000000000001",
            "-0",
            "1e-3",
            "-2e3",
        ] {
            assert!(positive_int(raw(text), "x").is_err(), "{text}");
        }
    }

    #[test]
    fn values_beyond_the_documented_range_are_clamped_and_counted() {
        let nova2 = Limits::of(Family::Nova, "amazon.nova-2-lite-v1:0");
        let mut notes = Notes::default();
        assert_eq!(nova2.temperature(raw("0"), &mut notes).unwrap(), "0.00001");
        assert_eq!(notes.clamped, ["temperature"]);
        let mut notes = Notes::default();
        assert_eq!(nova2.temperature(raw("0.5"), &mut notes).unwrap(), "0.5");
        assert_eq!(nova2.top_k(raw("500"), &mut notes).unwrap(), 128);
        assert_eq!(notes.clamped, ["top_k"]);
        assert!(nova2.temperature(raw("-0.1"), &mut notes).is_err());
        let claude = Limits::of(Family::Anthropic, "anthropic.claude-3-haiku-20240307-v1:0");
        let mut notes = Notes::default();
        assert_eq!(claude.temperature(raw("1.5"), &mut notes).unwrap(), "1");
        assert_eq!(claude.temperature(raw("2.5"), &mut notes).unwrap(), "1");
        assert_eq!(notes.clamped, ["temperature"]);
        let converse = Limits {
            stop: Some(2),
            ..Limits::of(Family::Converse, "")
        };
        let mut out = Vec::new();
        let mut notes = Notes::default();
        converse
            .stop(raw(r#"["a","b","c"]"#), &mut notes, &mut out)
            .unwrap();
        assert_eq!(out, br#"["a","b"]"#);
        assert_eq!(notes.clamped, ["stop"]);
    }
}
