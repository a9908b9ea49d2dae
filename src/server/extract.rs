//! What handlers take from a request the way the client wrote it: the `{id}` of a route and the
//! query string are not percent-decoded (ids are ours — letters, digits, `-`, `_` — so anything
//! else names nothing and is answered 404 as given), and errors keep their cause's own words.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::{ApiError, ApiResult};

/// The `{id}` of `/v1/files/{id}…` or `/v1/batches/{id}…`, as written.
pub(crate) struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path().trim_end_matches('/');
        let id = path
            .trim_start_matches('/')
            .split('/')
            .nth(2)
            .unwrap_or_default();
        Ok(Id(id.to_owned()))
    }
}

/// The query string's `key=value` pairs, as written (a pair without `=` is ignored).
pub(crate) struct RawPairs(pub BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for RawPairs {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let pairs = parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(RawPairs(pairs))
    }
}

/// An error's innermost cause, in its own words (`length limit exceeded`, not the wrappers'
/// `Failed to buffer the request body: …`).
pub(crate) fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// A multipart error in the parser's own words (`field "file" received with incomplete data`),
/// not axum's wrapper (`Error parsing multipart/form-data request`).
pub(crate) fn multipart_words(e: &axum::extract::multipart::MultipartError) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string())
}

/// The page of a list that `query` asks for: at most `limit` items (1 to `max`; `default` when
/// not given) after the one whose id is `after` (none when no item has that id), and whether
/// more follow it. `all` is in the list's order; `id` gives an item's id.
pub(crate) fn page<'a, T>(
    query: &BTreeMap<String, String>,
    all: &'a [T],
    id: impl Fn(&T) -> &str,
    (default, max): (usize, usize),
) -> ApiResult<(&'a [T], bool)> {
    let limit = match query.get("limit") {
        None => default,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad(format!("limit: 1 to {max}")).param("limit"))?,
    };
    let start = match query.get("after") {
        Some(after) => all
            .iter()
            .position(|item| id(item) == after)
            .map_or(all.len(), |i| i + 1),
        None => 0,
    };
    let end = start.saturating_add(limit).min(all.len());
    Ok((&all[start..end], end < all.len()))
}
