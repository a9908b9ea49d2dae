//! Anthropic Claude on Bedrock: the Messages API body both ways.

mod request;
mod response;

pub use request::{thinking_budget, write_body, ANTHROPIC_VERSION, JSON_RESPONSE_TOOL};
#[cfg(test)]
pub(crate) use response::parse_parts;
pub(crate) use response::{scan_message, write_parts, Parts};
pub use response::{write_chat_completion, CompletionContext, Usage};
