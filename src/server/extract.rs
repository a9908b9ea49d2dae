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

/// The `limit` of a list's page that `query` asks for: 1 to `max` (digits only), `default`
/// when not given.
pub(crate) fn limit(
    query: &BTreeMap<String, String>,
    (default, max): (usize, usize),
) -> ApiResult<usize> {
    let Some(text) = query.get("limit") else {
        return Ok(default);
    };
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<usize>().ok())
        .flatten()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ApiError::bad(format!("limit: 1 to {max}")).param("limit"))
}

/// Where the page after the item `after` starts in `all`, which is sorted by `key` (descending
/// when `newest_first`): just past the item when it is listed. An item no longer listed (deleted
/// or expired while the client paged) is placed by its key `gone`, which the caller looked up:
/// the page starts at the first item past it, so no item is skipped. With neither, the cursor
/// is refused rather than taken for the end of the list.
pub(crate) fn start_after<T, K: Ord>(
    all: &[T],
    after: &str,
    (id, key): (impl Fn(&T) -> &str, impl Fn(&T) -> K),
    gone: Option<K>,
    newest_first: bool,
) -> ApiResult<usize> {
    if let Some(i) = all.iter().position(|item| id(item) == after) {
        return Ok(i + 1);
    }
    let gone = gone.ok_or_else(|| {
        ApiError::bad(format!(
            "after: {after:?} is no item of this list; list again without it"
        ))
        .param("after")
    })?;
    let past = |item: &T| {
        let k = key(item);
        if newest_first {
            k < gone
        } else {
            k > gone
        }
    };
    Ok(all.iter().position(past).unwrap_or(all.len()))
}

/// At most `limit` items of `all` from `start`, and whether more follow them.
pub(crate) fn page<T>(all: &[T], start: usize, limit: usize) -> (&[T], bool) {
    let start = start.min(all.len());
    let end = start.saturating_add(limit).min(all.len());
    (&all[start..end], end < all.len())
}
