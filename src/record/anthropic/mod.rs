//! Anthropic Claude on Bedrock: the Messages API body both ways.

mod request;
mod response;

pub(crate) use request::{write_body, JSON_RESPONSE_TOOL};
#[cfg(test)]
pub(crate) use response::parse_parts;
pub use response::write_chat_completion;
pub(crate) use response::{called_twice, scan_message, write_parts, Parts};
