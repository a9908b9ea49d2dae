//! Why a line could not become a Bedrock record.

use std::fmt;

/// A machine-readable reason class for a rejected input line.
///
/// The string form (see [`RejectCode::as_str`]) is what appears as `error.code` in
/// `rejected.jsonl`, so it is stable across releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is not a valid JSON object.
    InvalidJson,
    /// The last line of the input has no newline and does not parse: the file was cut short.
    TruncatedLine,
    /// The line holds carriage returns that do not end CRLF endings: a file with CR-only line
    /// endings, which reads as one long line.
    CrLineEndings,
    /// The line is longer than the configured limit.
    LineTooLong,
    /// `custom_id` is missing, not a string, or empty.
    InvalidCustomId,
    /// `custom_id` was already used by an earlier line.
    DuplicateCustomId,
    /// `method` is not `POST`.
    InvalidMethod,
    /// `url` is not an endpoint the chosen model family serves.
    InvalidUrl,
    /// `body.model` differs from the model of the first line.
    ModelMismatch,
    /// The body uses a parameter the model cannot honour (see `--drop-unsupported`).
    UnsupportedParameter,
    /// The body is well-formed JSON but not a valid request for this model.
    InvalidRequest,
}

impl RejectCode {
    /// The stable snake_case name used in reject files and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InvalidUtf8 => "invalid_utf8",
            RejectCode::InvalidJson => "invalid_json",
            RejectCode::TruncatedLine => "truncated_line",
            RejectCode::CrLineEndings => "cr_line_endings",
            RejectCode::LineTooLong => "line_too_long",
            RejectCode::InvalidCustomId => "invalid_custom_id",
            RejectCode::DuplicateCustomId => "duplicate_custom_id",
            RejectCode::InvalidMethod => "invalid_method",
            RejectCode::InvalidUrl => "invalid_url",
            RejectCode::ModelMismatch => "model_mismatch",
            RejectCode::UnsupportedParameter => "unsupported_parameter",
            RejectCode::InvalidRequest => "invalid_request",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected line: a reason class and a message a person can act on.
///
/// The line number is not part of the reject; the pipeline knows it and writes it beside the
/// message in `rejected.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The reason class.
    pub code: RejectCode,
    /// What is wrong, naming the key at fault, e.g. `body.messages[2].content[0].image_url: …`.
    pub message: String,
}

impl Reject {
    /// Builds a reject from a code and a message.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Reject {
            code,
            message: message.into(),
        }
    }

    /// An [`RejectCode::InvalidRequest`] reject.
    pub fn invalid(message: impl Into<String>) -> Self {
        Reject::new(RejectCode::InvalidRequest, message)
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Reject {}
