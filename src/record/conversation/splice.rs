//! Prompt splicing for the families whose body is one templated string (Llama, Mistral text):
//! string literals of the input spliced into one output literal, escapes intact, never decoded
//! and encoded again.

use super::{Block, Turn};
use crate::record::{Raw, Reject, RejectCode};

/// Builds one JSON string literal from pieces: constant text (already JSON-escaped) and the insides
/// of string literals from the input, spliced as they are.
pub(crate) struct Spliced<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Spliced<'o> {
    /// Opens the literal.
    pub fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'"');
        Spliced { out }
    }

    /// Appends escaped constant text.
    pub fn escaped(&mut self, text: &str) -> &mut Self {
        self.out.extend_from_slice(text.as_bytes());
        self
    }

    /// Appends the inside of a string literal.
    pub fn literal(&mut self, lit: Raw<'_>) -> &mut Self {
        let t = lit.get();
        self.out.extend_from_slice(&t.as_bytes()[1..t.len() - 1]);
        self
    }

    /// Appends the insides of `lits`, `sep` (escaped) between them.
    pub fn joined(&mut self, lits: &[Raw<'_>], sep: &str) -> &mut Self {
        for (i, l) in lits.iter().enumerate() {
            if i > 0 {
                self.escaped(sep);
            }
            self.literal(*l);
        }
        self
    }

    /// Closes the literal.
    pub fn close(self) {
        self.out.push(b'"');
    }
}

/// The text literals of a turn; anything else (images, documents, tool blocks) is refused as what
/// `body` (the family's prompt) cannot express, with `media_hint` after an image or a document
/// (where a Converse job takes it).
pub(crate) fn turn_texts<'a>(
    turn: &Turn<'a>,
    body: &str,
    media_hint: &str,
) -> Result<Vec<Raw<'a>>, Reject> {
    turn.blocks
        .iter()
        .map(|b| match b {
            Block::Text(t) => Ok(*t),
            Block::Base64 { kind, .. } => Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.messages: {kind} content cannot be expressed in {body}{media_hint}"),
            )),
            Block::ToolUse { .. } | Block::ToolResult { .. } => Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.messages: tool calls and tool results cannot be expressed in {body}, and Bedrock batch does not run tool calling in Converse jobs either"),
            )),
        })
        .collect()
}
