//! What a batch cost, estimated from its token counts and a price table the user gives: none is
//! built in, because prices change (see the README for where AWS publishes them).
//!
//! A table maps Bedrock model ids to USD per million input, output, cache-read and cache-write
//! tokens, and the fraction batch inference takes off the prices given (`0.5` when the prices
//! are on-demand ones; `0`, the default, when they are already the batch prices):
//!
//! ```
//! use bedrock_batch::pricing::{Prices, Tokens};
//! let prices = Prices::parse(r#"
//!     ["anthropic.claude-3-5-haiku-20241022-v1:0"]
//!     input = 0.80
//!     output = 4.00
//!     cache_read = 0.08
//!     cache_write = 1.00
//!     batch_discount = 0.5
//! "#).unwrap();
//! let tokens = Tokens { input: 2_000_000, cached: 1_000_000, cache_write: 0, output: 500_000 };
//! // A cross-Region profile is priced as its model.
//! let cost = prices.cost("us.anthropic.claude-3-5-haiku-20241022-v1:0", &tokens).unwrap();
//! assert!((cost - (0.80 + 0.08 + 2.00) * 0.5).abs() < 1e-9);
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// One model's prices, USD per million tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input tokens not read from or written to the cache.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens read from the cache (default: `input`).
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Input tokens written to the cache (default: `input`).
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// The fraction batch inference takes off these prices, 0 to 1 (default 0: they are batch
    /// prices already).
    #[serde(default)]
    pub batch_discount: f64,
}

/// Token counts to price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens, cache reads and writes included.
    pub input: u64,
    /// Of `input`, read from the cache.
    pub cached: u64,
    /// Of `input`, written to the cache.
    pub cache_write: u64,
    /// Generated tokens.
    pub output: u64,
}

/// A price table, by Bedrock model id.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Prices(pub BTreeMap<String, Price>);

/// A price table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    /// Not TOML of the expected shape.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A price is negative or not a number, or a discount outside 0–1.
    #[error("{model}: {what} = {value} (prices are USD per million tokens, at least 0; batch_discount is from 0 to 1)")]
    Value {
        /// The model id.
        model: String,
        /// The setting.
        what: &'static str,
        /// Its value.
        value: f64,
    },
}

impl Prices {
    /// Reads a table (TOML: one `["model-id"]` table per model) and checks its values.
    pub fn parse(text: &str) -> Result<Prices, PricesError> {
        let prices: Prices = toml::from_str(text)?;
        prices.check()?;
        Ok(prices)
    }

    /// Checks that every price is a number of at least 0 and every discount from 0 to 1.
    pub fn check(&self) -> Result<(), PricesError> {
        for (model, p) in &self.0 {
            let values = [
                ("input", Some(p.input)),
                ("output", Some(p.output)),
                ("cache_read", p.cache_read),
                ("cache_write", p.cache_write),
            ];
            for (what, value) in values {
                if let Some(v) = value.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                    return Err(PricesError::Value {
                        model: model.clone(),
                        what,
                        value: v,
                    });
                }
            }
            if !(0.0..=1.0).contains(&p.batch_discount) {
                return Err(PricesError::Value {
                    model: model.clone(),
                    what: "batch_discount",
                    value: p.batch_discount,
                });
            }
        }
        Ok(())
    }

    /// The price of `model_id`: its own entry, else that of the model inside it (an inference
    /// profile or an ARN is priced as its model).
    pub fn price(&self, model_id: &str) -> Option<&Price> {
        self.0
            .get(model_id)
            .or_else(|| self.0.get(crate::record::bare_model_id(model_id)))
    }

    /// The estimated cost in USD of `tokens` on `model_id`, if the table prices it.
    pub fn cost(&self, model_id: &str, tokens: &Tokens) -> Option<f64> {
        self.price(model_id).map(|p| p.cost(tokens))
    }
}

impl Price {
    /// The cost in USD of `tokens` at these prices, the batch discount taken off.
    pub fn cost(&self, t: &Tokens) -> f64 {
        let plain = t
            .input
            .saturating_sub(t.cached)
            .saturating_sub(t.cache_write);
        let usd = plain as f64 * self.input
            + t.cached as f64 * self.cache_read.unwrap_or(self.input)
            + t.cache_write as f64 * self.cache_write.unwrap_or(self.input)
            + t.output as f64 * self.output;
        usd / 1e6 * (1.0 - self.batch_discount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tables_are_refused_by_name() {
        for (text, says) in [
            ("[m]\ninput = -1\noutput = 1", "m: input = -1"),
            (
                "[m]\ninput = 1\noutput = 1\nbatch_discount = 2",
                "batch_discount = 2",
            ),
            ("[m]\ninput = 1\noutput = nan", "output = NaN"),
            ("[m]\ninput = 1", "missing field `output`"),
            ("[m]\ninput = 1\noutput = 1\nwat = 3", "unknown field `wat`"),
        ] {
            let e = Prices::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn cache_prices_default_to_input_and_counts_never_underflow() {
        let p = Prices::parse("[m]\ninput = 2\noutput = 10").unwrap();
        let t = Tokens {
            input: 1_000_000,
            cached: 600_000,
            cache_write: 400_000,
            output: 1_000_000,
        };
        assert!((p.cost("m", &t).unwrap() - 12.0).abs() < 1e-9);
        // More cached than input (a model's odd report) prices nothing below zero.
        let odd = Tokens {
            input: 1,
            cached: 5,
            ..Tokens::default()
        };
        assert!(p.cost("m", &odd).unwrap() >= 0.0);
        assert_eq!(p.cost("other", &t), None);
        assert!(p
            .cost("arn:aws:bedrock:us-east-1:1:inference-profile/eu.m", &t)
            .is_some());
    }
}
