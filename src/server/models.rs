//! `GET /v1/models` and `GET /v1/models/{id}`: the configured models the caller's key may use,
//! in OpenAI's Model shape, so a client can find out what it may batch.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::Id;
use super::{ok, Server};

/// The Model object of the configured name `name`.
fn model_object(server: &Server, name: &str) -> Value {
    json!({
        "id": name,
        "object": "model",
        "created": server.started_at,
        "owned_by": "bedrock-batch",
    })
}

/// `GET /v1/models`: the configured models the key may use, by name.
pub(crate) async fn list_models(
    State(server): State<Arc<Server>>,
    caller: Caller,
) -> ApiResult<Response> {
    let data: Vec<Value> = server
        .config
        .models
        .keys()
        .filter(|name| caller.0.allows(name))
        .map(|name| model_object(&server, name))
        .collect();
    Ok(ok(&json!({"object": "list", "data": data})))
}

/// `%XX` escapes decoded (a malformed one, or bytes that are no UTF-8, left as written).
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// `GET /v1/models/{id}`: one of them (404 for a model not configured or not the key's).
pub(crate) async fn get_model(
    State(server): State<Arc<Server>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Response> {
    // Configured names are the operator's: a client percent-encodes what a path cannot hold.
    let id = percent_decoded(&id);
    if !server.config.models.contains_key(&id) || !caller.0.allows(&id) {
        return Err(ApiError::not_found("model", &id).code("model_not_found"));
    }
    Ok(ok(&model_object(&server, &id)))
}

#[cfg(test)]
mod tests {
    use super::percent_decoded;

    #[test]
    fn escapes_are_decoded_and_malformed_ones_kept() {
        assert_eq!(percent_decoded("team%20a%2Fhaiku"), "team a/haiku");
        assert_eq!(percent_decoded("50%"), "50%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
        assert_eq!(percent_decoded("%FF"), "%FF");
        assert_eq!(percent_decoded("caf%C3%A9"), "café");
    }
}
