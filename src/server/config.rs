//! `serve`'s configuration: a TOML file, with a few values overridable by flags.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! staging = "s3://my-bucket/bedrock-batch/"
//! role_arn = "arn:aws:iam::123456789012:role/BedrockBatch"
//! # kms_key_id = "alias/batch"
//! # poll_interval = "30s"
//!
//! [models.gpt-4o-mini]                 # the name clients put in body.model
//! model_id = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
//! # family = "anthropic"              # for an application inference profile
//! # invocation_type = "converse"
//!
//! [[keys]]
//! name = "team-a"
//! sha256 = "…"                         # printf %s "$KEY" | sha256sum
//! models = ["gpt-4o-mini"]             # or ["*"]
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::driver::InvalidRequest;
use crate::pricing::{Prices, PricesError};
use std::sync::Arc;

use crate::record::{Family, ModelTable, UnknownModel};

/// What is wrong with a configuration, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, or not the configuration's shape (an unknown field, a missing one).
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// The staging prefix is no S3 prefix.
    #[error("staging = {0:?}: an s3://bucket/prefix/ (ending in /) that Bedrock can read")]
    Staging(String),
    /// The service role is no role ARN.
    #[error("{0}")]
    RoleArn(#[from] InvalidRequest),
    /// A model alias names nothing this version maps.
    #[error("models.{name}: {why}")]
    Model {
        /// The alias.
        name: String,
        /// Why.
        why: AliasError,
    },
    /// A key's hash is not a SHA-256 in hex.
    #[error("keys {0:?}: sha256 must be 64 hex digits (printf %s \"$KEY\" | sha256sum)")]
    KeyHash(String),
    /// The poll interval is no duration.
    #[error("poll_interval = {0:?}: a duration such as 30s or 500ms")]
    PollInterval(String),
    /// A price is not one.
    #[error("prices.{0}")]
    Prices(#[from] PricesError),
    /// The shortest expiry is out of range.
    #[error("min_expires_after = {0}: seconds from 1 to 2592000 (30 days)")]
    MinExpiresAfter(u64),
    /// The model table file cannot be read, or is not a model table.
    #[error("model_table = {path:?}: {why}")]
    ModelTable {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// Why a model alias maps to no family.
#[derive(Debug, thiserror::Error)]
pub enum AliasError {
    /// `family` names no family.
    #[error("family {0:?} is not one this version knows")]
    UnknownFamily(String),
    /// The model id says no family.
    #[error(transparent)]
    Model(#[from] UnknownModel),
}

/// A model clients may name, and what it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelAlias {
    /// The Bedrock model id, inference profile or ARN.
    pub model_id: String,
    /// The family, when the id does not say (an application inference profile).
    #[serde(default)]
    pub family: Option<String>,
    /// `invoke-model` (default) or `converse`.
    #[serde(default)]
    pub invocation_type: Option<String>,
}

impl ModelAlias {
    /// The family the alias's records are written for, per `table`.
    pub fn family(&self, table: &ModelTable) -> Result<Family, AliasError> {
        crate::record::model_table::check_model_id(&self.model_id)?;
        table.check_batchable(&self.model_id)?;
        if self.invocation_type.as_deref() == Some("converse") {
            return Ok(Family::Converse);
        }
        match &self.family {
            Some(name) => {
                Family::from_name(name).ok_or_else(|| AliasError::UnknownFamily(name.clone()))
            }
            None => Ok(table.resolve(&self.model_id)?.family),
        }
    }
}

/// An API key: its name, its SHA-256 (never the key itself), and the models it may use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who it belongs to; it owns the files and batches made with it.
    pub name: String,
    /// The key's SHA-256, in hex.
    pub sha256: String,
    /// Model names it may use (`*` for all).
    pub models: Vec<String>,
}

impl ApiKey {
    /// Whether the key may use `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == "*" || m == model)
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_poll() -> String {
    "30s".to_owned()
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where files and batches live: an `s3://bucket/prefix/` Bedrock can read.
    pub staging: String,
    /// The service role Bedrock assumes.
    pub role_arn: String,
    /// KMS key for what is written (S3 objects, Bedrock's output).
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// How often running batches are checked (`30s`, `500ms`).
    #[serde(default = "default_poll")]
    pub poll_interval: String,
    /// Model names clients may use.
    #[serde(default)]
    pub models: BTreeMap<String, ModelAlias>,
    /// API keys.
    #[serde(default)]
    pub keys: Vec<ApiKey>,
    /// Keep each upload as it was sent, beside its conversion (written in the same pass), so
    /// that its content can be downloaded as OpenAI allows; `false` halves an upload's writes.
    #[serde(default = "default_keep_uploads")]
    pub keep_uploads: bool,
    /// The shortest `expires_after` / `output_expires_after` a client may ask for, in seconds:
    /// OpenAI's one hour unless set lower (for a scratch environment, or tests).
    #[serde(default = "default_min_expires_after")]
    pub min_expires_after: u64,
    /// Prices by Bedrock model id, for the estimated cost a batch's `metadata` shows (see
    /// [`crate::pricing`]); none built in.
    #[serde(default)]
    pub prices: Prices,
    /// A model table file whose lines take precedence over the built-in table's (see
    /// [`crate::record::model_table`]), read when the configuration is parsed.
    #[serde(default)]
    pub model_table: Option<String>,
    /// The model table in force (the built-in one with `model_table`'s lines over it).
    #[serde(skip)]
    pub table: Option<Arc<ModelTable>>,
}

fn default_min_expires_after() -> u64 {
    3600
}

fn default_keep_uploads() -> bool {
    true
}

/// The SHA-256 of a key, in hex, as the configuration stores it.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ServerConfig {
    /// Parses and checks a configuration file's text.
    pub fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        let mut config: ServerConfig = toml::from_str(text)?;
        if let Some(path) = &config.model_table {
            let fault = |why: String| ConfigError::ModelTable {
                path: path.clone(),
                why,
            };
            let text = std::fs::read_to_string(path).map_err(|e| fault(e.to_string()))?;
            let table = ModelTable::with_file(&text).map_err(|e| fault(e.to_string()))?;
            config.table = Some(Arc::new(table));
        }
        config.check()?;
        Ok(config)
    }

    /// The model table in force.
    pub fn model_table(&self) -> &ModelTable {
        self.table
            .as_deref()
            .unwrap_or_else(|| ModelTable::builtin())
    }

    /// Checks what parsing cannot: the staging prefix, the models, the keys.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.staging.starts_with("s3://") || !self.staging.ends_with('/') {
            return Err(ConfigError::Staging(self.staging.clone()));
        }
        crate::driver::check_role_arn(&self.role_arn)?;
        for (name, alias) in &self.models {
            alias
                .family(self.model_table())
                .map_err(|why| ConfigError::Model {
                    name: name.clone(),
                    why,
                })?;
        }
        if let Some(key) = self
            .keys
            .iter()
            .find(|k| k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError::KeyHash(key.name.clone()));
        }
        self.poll()?;
        if !(1..=2_592_000).contains(&self.min_expires_after) {
            return Err(ConfigError::MinExpiresAfter(self.min_expires_after));
        }
        self.prices.check()?;
        Ok(())
    }

    /// The poll interval (checked by [`parse`](Self::parse); 30 s if unchecked and wrong).
    pub fn poll_interval(&self) -> Duration {
        self.poll().unwrap_or(Duration::from_secs(30))
    }

    /// The poll interval, or why it is no duration.
    pub fn poll(&self) -> Result<Duration, ConfigError> {
        let s = self.poll_interval.trim();
        let (n, ms) = if let Some(n) = s.strip_suffix("ms") {
            (n, 1)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1000)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60_000)
        } else {
            (s, 1000)
        };
        n.parse::<u64>()
            .map(|n| Duration::from_millis(n * ms))
            .map_err(|_| ConfigError::PollInterval(s.to_owned()))
    }

    /// The key whose hash matches `presented`'s, if any.
    pub fn key(&self, presented: &str) -> Option<&ApiKey> {
        let hash = key_hash(presented);
        // Compare every byte, so the time taken does not say how much matched.
        self.keys.iter().find(|k| {
            k.sha256.len() == hash.len()
                && k.sha256
                    .to_ascii_lowercase()
                    .bytes()
                    .zip(hash.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
staging = "s3://bucket/p/"
role_arn = "arn:aws:iam::123456789012:role/R"
poll_interval = "250ms"

[models.gpt-4o-mini]
model_id = "anthropic.claude-3-haiku-20240307-v1:0"

[models.any]
model_id = "meta.llama3-1-8b-instruct-v1:0"
invocation_type = "converse"

[[keys]]
name = "a"
sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
models = ["gpt-4o-mini"]
"#;

    #[test]
    fn a_config_parses_with_defaults_and_finds_keys_by_hash() {
        let c = ServerConfig::parse(CONFIG).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.poll().unwrap(), Duration::from_millis(250));
        let t = c.model_table();
        assert_eq!(c.models["any"].family(t).unwrap(), Family::Converse);
        assert_eq!(
            c.models["gpt-4o-mini"].family(t).unwrap(),
            Family::Anthropic
        );
        // sha256("secret")
        let key = c.key("secret").unwrap();
        assert_eq!(key.name, "a");
        assert!(key.allows("gpt-4o-mini") && !key.allows("any"));
        assert!(c.key("Secret").is_none());
    }

    #[test]
    fn a_model_table_file_adds_models_the_aliases_may_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.toml");
        std::fs::write(
            &path,
            "models = [ { id = \"acme.chat\", name = \"Acme\", family = \"openai-chat\", source = [\"acme\"] } ]\n[sources]\nacme = \"https://example.com\"\n",
        )
        .unwrap();
        let acme = CONFIG.replace(
            "meta.llama3-1-8b-instruct-v1:0\"\ninvocation_type = \"converse\"",
            "acme.chat-v2\"",
        );
        assert!(ServerConfig::parse(&acme)
            .unwrap_err()
            .to_string()
            .contains("models.any"));
        let with_table = format!("model_table = {:?}\n{acme}", path.display().to_string());
        let c = ServerConfig::parse(&with_table).unwrap();
        assert_eq!(
            c.models["any"].family(c.model_table()).unwrap(),
            Family::OpenAiChat
        );
        let missing = with_table.replace("models.toml", "nowhere.toml");
        let e = ServerConfig::parse(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with("model_table = ") && e.contains("nowhere.toml"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (bad, says) in [
            (CONFIG.replace("s3://bucket/p/", "/tmp/x/"), "staging"),
            (CONFIG.replace("role/R", "user/R"), "--role-arn"),
            (
                CONFIG.replace("anthropic.claude-3-haiku", "cohere.command"),
                "models.gpt-4o-mini",
            ),
            (CONFIG.replace("2bb80d", "zz"), "sha256"),
            (
                CONFIG.replace("poll_interval = \"250ms\"", "poll_interval = \"soon\""),
                "poll_interval",
            ),
            (CONFIG.replace("[[keys]]", "[[keys]]\nextra = 1"), "extra"),
        ] {
            let e = ServerConfig::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
