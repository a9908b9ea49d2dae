//! Who is calling: `Authorization: Bearer KEY`, checked against the SHA-256 hashes of the
//! configured keys. Every `/v1/` handler takes a [`Caller`], so no route runs unauthenticated,
//! and reaches files and batches through it, so none sees another key's.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::config::ApiKey;
use super::error::ApiError;
use super::state::{BatchRecord, FileRecord};
use super::Server;

/// The configured key the request presented.
pub(crate) struct Caller(pub ApiKey);

impl Caller {
    /// The key's name: what owns files and batches.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The file record `id`, when the caller owns it (404 otherwise, as if it did not exist).
    pub async fn file(&self, server: &Server, id: &str) -> Result<FileRecord, ApiError> {
        match server.staging.file(id).await? {
            Some(f) if f.owner == self.name() => Ok(f),
            _ => Err(ApiError::not_found("file", id)),
        }
    }

    /// The batch record `id`, when the caller owns it and it was [made] (404 otherwise).
    ///
    /// [made]: super::state::Staging::made
    pub async fn batch(&self, server: &Server, id: &str) -> Result<BatchRecord, ApiError> {
        match server.staging.batch(id).await? {
            Some(b) if b.owner == self.name() && server.staging.made(&b).await? => Ok(b),
            _ => Err(ApiError::not_found("batch", id)),
        }
    }

    /// Refuses a model the key may not use (403).
    pub fn may_use(&self, model: &str) -> Result<(), ApiError> {
        if self.0.allows(model) {
            Ok(())
        } else {
            Err(ApiError::model_not_allowed(model))
        }
    }
}

impl FromRequestParts<Arc<Server>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        server: &Arc<Server>,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty());
        let unauthorized = |message: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, message).code("invalid_api_key")
        };
        let Some(presented) = presented else {
            return Err(unauthorized(
                "You didn't provide an API key (Authorization: Bearer KEY).",
            ));
        };
        server
            .config
            .key(presented)
            .cloned()
            .map(Caller)
            .ok_or_else(|| unauthorized("Incorrect API key provided."))
    }
}
