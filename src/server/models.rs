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

/// `GET /v1/models/{id}`: one of them (404 for a model not configured or not the key's).
pub(crate) async fn get_model(
    State(server): State<Arc<Server>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Response> {
    if !server.config.models.contains_key(&id) || !caller.0.allows(&id) {
        return Err(ApiError::not_found("model", &id).code("model_not_found"));
    }
    Ok(ok(&model_object(&server, &id)))
}
