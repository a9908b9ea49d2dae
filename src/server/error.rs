//! Errors answered in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`), and
//! where the errors of the layers below become them: once, here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::StateError;
use crate::batch_folder::FolderError;
use crate::driver::DriverError;

/// An error answered in OpenAI's shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    kind: &'static str,
    code: Option<&'static str>,
    pub param: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind: if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            },
            code: None,
            param: None,
        }
    }

    /// 400: the request is at fault.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 for a `what` the caller does not own or that does not exist (the two are not told
    /// apart: no existence leak).
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("No such {what}: '{id}'")).code("not_found")
    }

    /// 500, logged: the server or its storage is at fault.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!("{message}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 502: Bedrock refused or failed.
    pub fn bedrock(e: &DriverError) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, e.to_string())
    }

    /// 403 for a model the key may not use.
    pub fn model_not_allowed(model: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("This API key may not use model '{model}'."),
        )
        .code("model_not_allowed")
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        super::json_response(self.status, &body)
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            // Other servers on the prefix kept changing the record: worth trying again.
            StateError::Contended { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).code("contended")
            }
            StateError::Exists { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<FolderError> for ApiError {
    fn from(e: FolderError) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// A driver error while reading the server's own folders; where Bedrock is asked, the
/// handler says so with [`ApiError::bedrock`].
impl From<DriverError> for ApiError {
    fn from(e: DriverError) -> Self {
        ApiError::internal(e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
