//! The OpenAI endpoints a batch line can be for, and what each one's response body is.

use std::fmt;

/// An OpenAI endpoint a batch input line names in its `url`. One batch file holds lines for one
/// endpoint (as OpenAI requires); the endpoint is recorded with the batch and decides the shape
/// of the responses written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/v1/chat/completions`: responses are `chat.completion` objects.
    ChatCompletions,
    /// `/v1/responses`: responses are `response` objects.
    Responses,
    /// `/v1/completions` (legacy): responses are `text_completion` objects.
    Completions,
    /// `/v1/embeddings`: responses are `list`s of embeddings.
    Embeddings,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::ChatCompletions,
        Endpoint::Responses,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ];

    /// The endpoints a chat model family serves, the usual one first.
    pub const CHAT: &'static [Endpoint] = &[
        Endpoint::ChatCompletions,
        Endpoint::Responses,
        Endpoint::Completions,
    ];

    /// The URL path, as batch lines and Batch objects write it.
    pub fn url(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }

    /// The endpoint with that URL path.
    ///
    /// ```
    /// use bedrock_batch::record::Endpoint;
    /// assert_eq!(Endpoint::from_url("/v1/responses"), Some(Endpoint::Responses));
    /// assert_eq!(Endpoint::from_url("/v1/moderations"), None);
    /// ```
    pub fn from_url(url: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.url() == url)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url())
    }
}

/// The first line of `head` (a file's first bytes) that is not blank, once it is there whole
/// (ended by a newline); a byte-order mark at the start is skipped.
pub fn first_line(head: &[u8]) -> Option<&[u8]> {
    let head = head.strip_prefix(super::BOM).unwrap_or(head);
    let mut lines = head.split_inclusive(|&b| b == b'\n');
    lines
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .filter(|l| l.ends_with(b"\n"))
}

/// The endpoint a batch line's `url` names, if the line is JSON with a `url` naming one.
///
/// ```
/// use bedrock_batch::record::endpoint::named_by;
/// use bedrock_batch::record::Endpoint;
/// let line = br#"{"custom_id":"a","method":"POST","url":"/v1/responses","body":{"input":"hi"}}"#;
/// assert_eq!(named_by(line), Some(Endpoint::Responses));
/// assert_eq!(named_by(b"not json"), None);
/// ```
pub fn named_by(line: &[u8]) -> Option<Endpoint> {
    #[derive(serde::Deserialize)]
    struct Url {
        url: Option<String>,
    }
    let url: Url = serde_json::from_slice(line).ok()?;
    Endpoint::from_url(url.url.as_deref()?)
}

/// Lists URLs for messages: `"/v1/chat/completions", "/v1/responses" or "/v1/completions"`.
pub(crate) fn list(endpoints: &[Endpoint]) -> String {
    let quoted: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}
