//! Amazon S3 (and S3-compatible servers) as a source and a sink.
//!
//! - [`S3Source`]: an object as an ordered stream of chunks fed by concurrent ranged GETs, pinned
//!   to the ETag first seen (a replaced object is an error, never mixed data), a broken body resumed
//!   from its offset, transient failures retried with backoff and jitter.
//! - [`S3Writer`]: a streaming multipart upload with several parts in flight; parts of at least
//!   8 MiB, growing so that no object needs more than 10,000 parts; completed only by
//!   [`ObjectWriter::finish`], aborted on any error, on [`ObjectWriter::abort`] and on drop; an
//!   output smaller than one part goes up as one PutObject.
//! - [`S3Dir`]: a prefix as a [`Destination`], for batch folders.
//!
//! Configuration follows AWS conventions ([`S3Options::client`]): the default credential chain,
//! profile, region, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` or an explicit endpoint, and
//! path-style addressing (automatic with a custom endpoint).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::task::{JoinHandle, JoinSet};

use super::{ChunkSource, Destination, ObjectWriter};

/// S3's smallest part (all but the last).
const MIN_PART: u64 = 5 << 20;
/// S3's most parts in one upload.
const MAX_PARTS: u64 = 10_000;

/// `s3://bucket/key`; a key ending in `/` (or empty) is a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    /// The bucket.
    pub bucket: String,
    /// The key or prefix (no leading `/`).
    pub key: String,
}

impl S3Uri {
    /// Parses `s3://bucket/key`; `None` when `s` is not an `s3://` URI.
    ///
    /// ```
    /// use bedrock_batch::io::S3Uri;
    /// let u = S3Uri::parse("s3://my-bucket/batches/run1/").unwrap().unwrap();
    /// assert_eq!((u.bucket.as_str(), u.key.as_str()), ("my-bucket", "batches/run1/"));
    /// assert!(u.is_prefix());
    /// assert!(S3Uri::parse("s3://").unwrap().is_err());
    /// assert!(S3Uri::parse("local.jsonl").is_none());
    /// ```
    pub fn parse(s: &str) -> Option<Result<S3Uri, String>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(format!(
                "{s}: no bucket name (expected s3://bucket/key)"
            )));
        }
        Some(Ok(S3Uri {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }))
    }

    /// Whether this names a prefix (a folder) rather than one object.
    pub fn is_prefix(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }

    /// This URI with `rel` appended to its key.
    pub fn join(&self, rel: &str) -> S3Uri {
        S3Uri {
            bucket: self.bucket.clone(),
            key: format!("{}{rel}", self.key),
        }
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// How to reach S3 and how to read and write objects there.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// A named profile of the shared AWS config files.
    pub profile: Option<String>,
    /// The region (else the default chain, else `us-east-1`).
    pub region: Option<String>,
    /// A custom endpoint, e.g. `http://127.0.0.1:9000` (else `AWS_ENDPOINT_URL_S3` /
    /// `AWS_ENDPOINT_URL`, else AWS).
    pub endpoint_url: Option<String>,
    /// Path-style addressing; `None`: on with a custom endpoint, off for AWS.
    pub path_style: Option<bool>,
    /// SSE-KMS key for written objects.
    pub kms_key_id: Option<String>,
    /// The account that must own the bucket.
    pub expected_bucket_owner: Option<String>,
    /// Smallest part of a multipart upload (at least 5 MiB; default 8 MiB).
    pub part_size: u64,
    /// Parts uploaded at once.
    pub upload_concurrency: usize,
    /// Size of each ranged GET.
    pub range_size: u64,
    /// Ranged GETs at once.
    pub read_concurrency: usize,
    /// Attempts per request (the SDK's retries, and ours for broken bodies).
    pub max_attempts: u32,
    /// Multipart uploads not yet completed or aborted, for aborting them on Ctrl-C.
    pub uploads: UploadRegistry,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            profile: None,
            region: None,
            endpoint_url: None,
            path_style: None,
            kms_key_id: None,
            expected_bucket_owner: None,
            part_size: 8 << 20,
            upload_concurrency: 4,
            range_size: 8 << 20,
            read_concurrency: 4,
            max_attempts: 5,
            uploads: UploadRegistry::default(),
        }
    }
}

impl S3Options {
    /// Builds a client the AWS way: default credential chain, profile, region, endpoint.
    pub async fn client(&self) -> Client {
        let shared = crate::aws::load(crate::aws::ConfigSource {
            profile: self.profile.as_deref(),
            region: self.region.as_deref(),
            endpoint_url: self.endpoint_url.as_deref(),
            max_attempts: self.max_attempts,
        })
        .await;
        let custom_endpoint =
            shared.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(self.path_style.unwrap_or(custom_endpoint))
            .build();
        Client::from_conf(conf)
    }

    /// The part size for part `n` (1-based): the configured size, doubled every 1,000 parts, so
    /// that 10,000 parts hold more than S3's largest object.
    fn part_size_for(&self, n: u64) -> u64 {
        self.part_size.max(MIN_PART) << ((n.saturating_sub(1) / (MAX_PARTS / 10)).min(20))
    }
}

/// An S3 error in words a user can act on: what, the AWS error code and message, and a hint.
fn s3_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: fmt::Debug>(
    what: &str,
    e: SdkError<E, R>,
) -> io::Error {
    let code = e.code().map(str::to_owned);
    let kind = match code.as_deref() {
        Some("NoSuchKey" | "NoSuchBucket" | "NotFound" | "NoSuchUpload") => io::ErrorKind::NotFound,
        Some("AccessDenied" | "Forbidden" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
            io::ErrorKind::PermissionDenied
        }
        _ => io::ErrorKind::Other,
    };
    let hint = match code.as_deref() {
        Some("AccessDenied" | "Forbidden") => {
            " (check the credentials, --profile, and the bucket policy)"
        }
        Some("NoSuchBucket") => " (check the bucket name and --region)",
        Some("NoSuchKey" | "NotFound") => " (no such object)",
        Some("PreconditionFailed") => " (the object changed while it was being read)",
        Some("InvalidAccessKeyId" | "SignatureDoesNotMatch") => " (check the credentials)",
        _ => "",
    };
    let text = match (&code, e.message()) {
        (Some(code), Some(message)) => format!("{what}: {code}: {message}{hint}"),
        (Some(code), None) => format!("{what}: {code}{hint}"),
        _ => format!("{what}: {}", DisplayErrorContext(&e)),
    };
    io::Error::new(kind, text)
}

/// Sleeps before retry `attempt` (1-based): exponential backoff with full jitter, at most 5 s.
async fn backoff(attempt: u32) {
    let cap = (100u64 << attempt.min(6)).min(5_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    tokio::time::sleep(Duration::from_millis(nanos % cap.max(1))).await;
}

fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// One object read by concurrent ranged GETs, delivered in order.
pub struct S3Source {
    client: Client,
    uri: S3Uri,
    size: u64,
    etag: String,
    next_offset: u64,
    in_flight: VecDeque<JoinHandle<io::Result<Bytes>>>,
    opts: S3Options,
}

impl S3Source {
    /// Opens `uri`: one HeadObject for its size and ETag.
    pub async fn open(client: Client, uri: S3Uri, opts: &S3Options) -> io::Result<S3Source> {
        let head = client
            .head_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .set_expected_bucket_owner(opts.expected_bucket_owner.clone())
            .send()
            .await
            .map_err(|e| s3_error(&format!("reading {uri}"), e))?;
        let size = head.content_length().unwrap_or(0).max(0) as u64;
        let etag = head
            .e_tag()
            .map(|e| unquote(e).to_owned())
            .unwrap_or_default();
        Ok(S3Source {
            client,
            uri,
            size,
            etag,
            next_offset: 0,
            in_flight: VecDeque::new(),
            opts: opts.clone(),
        })
    }

    /// The object's size.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    fn fill(&mut self) {
        while self.in_flight.len() < self.opts.read_concurrency.max(1)
            && self.next_offset < self.size
        {
            let start = self.next_offset;
            let end = (start + self.opts.range_size.max(1)).min(self.size);
            self.next_offset = end;
            let (client, uri, etag, attempts) = (
                self.client.clone(),
                self.uri.clone(),
                self.etag.clone(),
                self.opts.max_attempts,
            );
            let owner = self.opts.expected_bucket_owner.clone();
            self.in_flight.push_back(tokio::spawn(fetch_range(
                client, uri, etag, owner, start, end, attempts,
            )));
        }
    }
}

/// GETs bytes `start..end` of an object pinned to `etag`, resuming a broken body where it broke.
async fn fetch_range(
    client: Client,
    uri: S3Uri,
    etag: String,
    owner: Option<String>,
    start: u64,
    end: u64,
    attempts: u32,
) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity((end - start) as usize);
    let mut failures = 0;
    while (buf.len() as u64) < end - start {
        let from = start + buf.len() as u64;
        let mut request = client
            .get_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .range(format!("bytes={from}-{}", end - 1))
            .set_expected_bucket_owner(owner.clone());
        if !etag.is_empty() {
            request = request.if_match(format!("\"{etag}\""));
        }
        let response = request
            .send()
            .await
            .map_err(|e| s3_error(&format!("reading {uri} bytes {from}-{}", end - 1), e))?;
        // A server that ignores If-Match still cannot slip another version past us.
        if let Some(got) = response.e_tag() {
            if !etag.is_empty() && unquote(got) != etag {
                return Err(io::Error::other(format!(
                    "{uri} changed while it was being read (ETag {etag}, now {}); nothing from the new version was used",
                    unquote(got)
                )));
            }
        }
        let mut body = response.body;
        let broke = loop {
            match body.next().await {
                Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        if let Some(e) = broke {
            failures += 1;
            tracing::debug!(%uri, offset = start + buf.len() as u64, failures, "body broke off; resuming: {e}");
            if failures >= attempts {
                return Err(io::Error::other(format!(
                    "reading {uri}: the body broke off {failures} times: {e}"
                )));
            }
            backoff(failures).await;
        } else if (buf.len() as u64) < end - start {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "reading {uri}: the object ended at {} before {end}",
                    start + buf.len() as u64
                ),
            ));
        }
    }
    Ok(buf.freeze())
}

impl ChunkSource for S3Source {
    fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        async move {
            self.fill();
            let Some(next) = self.in_flight.pop_front() else {
                return Ok(None);
            };
            let chunk = next.await.map_err(io::Error::other)??;
            self.fill();
            Ok(Some(chunk))
        }
        .boxed()
    }
}

impl Drop for S3Source {
    fn drop(&mut self) {
        for h in &self.in_flight {
            h.abort();
        }
    }
}

/// Sends AbortMultipartUpload for upload `id` of `uri`.
async fn abort_upload(
    client: &Client,
    uri: &S3Uri,
    id: &str,
    owner: Option<String>,
) -> io::Result<()> {
    client
        .abort_multipart_upload()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .upload_id(id)
        .set_expected_bucket_owner(owner)
        .send()
        .await
        .map(drop)
        .map_err(|e| s3_error(&format!("aborting the upload of {uri}"), e))
}

/// Multipart uploads in progress, so a cancelled run can abort them all.
#[derive(Debug, Clone, Default)]
pub struct UploadRegistry(Arc<Mutex<Vec<(S3Uri, String)>>>);

impl UploadRegistry {
    fn add(&self, uri: &S3Uri, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((uri.clone(), id.to_owned()));
    }

    fn remove(&self, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(_, i)| i != id);
    }

    /// Aborts every upload still registered (after a cancellation).
    pub async fn abort_all(&self, client: &Client) {
        let pending = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        for (uri, id) in pending {
            let _ = abort_upload(client, &uri, &id, None).await;
        }
    }
}

/// One object written by a streaming multipart upload.
pub struct S3Writer {
    client: Client,
    uri: S3Uri,
    opts: S3Options,
    buf: BytesMut,
    upload_id: Option<String>,
    next_part: u64,
    in_flight: JoinSet<io::Result<(i32, String)>>,
    parts: Vec<(i32, String)>,
    done: bool,
    /// Everything is uploaded; only CompleteMultipartUpload is left.
    sealed: bool,
}

impl S3Writer {
    /// Starts writing `uri` (nothing is sent until a part is full or the writer finishes).
    pub fn new(client: Client, uri: S3Uri, opts: &S3Options) -> S3Writer {
        S3Writer {
            client,
            uri,
            opts: opts.clone(),
            buf: BytesMut::new(),
            upload_id: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            parts: Vec::new(),
            done: false,
            sealed: false,
        }
    }

    async fn start_upload(&mut self) -> io::Result<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(&self.uri.bucket)
            .key(&self.uri.key)
            .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone());
        if let Some(kms) = &self.opts.kms_key_id {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        let out = request
            .send()
            .await
            .map_err(|e| s3_error(&format!("starting the upload of {}", self.uri), e))?;
        let id = out
            .upload_id()
            .ok_or_else(|| {
                io::Error::other(format!(
                    "{}: CreateMultipartUpload returned no upload id",
                    self.uri
                ))
            })?
            .to_owned();
        self.opts.uploads.add(&self.uri, &id);
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Sends one part, keeping at most `upload_concurrency` in flight.
    async fn send_part(&mut self, data: Bytes) -> io::Result<()> {
        let id = self.start_upload().await?;
        while self.in_flight.len() >= self.opts.upload_concurrency.max(1) {
            self.reap_one().await?;
        }
        let n = self.next_part as i32;
        self.next_part += 1;
        let (client, uri, owner) = (
            self.client.clone(),
            self.uri.clone(),
            self.opts.expected_bucket_owner.clone(),
        );
        self.in_flight.spawn(async move {
            let out = client
                .upload_part()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .upload_id(id)
                .part_number(n)
                .set_expected_bucket_owner(owner)
                .content_length(data.len() as i64)
                .body(ByteStream::from(data))
                .send()
                .await
                .map_err(|e| s3_error(&format!("uploading part {n} of {uri}"), e))?;
            let etag = out
                .e_tag()
                .ok_or_else(|| io::Error::other(format!("{uri}: part {n} has no ETag")))?;
            Ok((n, etag.to_owned()))
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> io::Result<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            self.parts.push(joined.map_err(io::Error::other)??);
        }
        Ok(())
    }

    async fn finish_inner(&mut self) -> io::Result<()> {
        if self.upload_id.is_none() {
            // Smaller than one part: a single PutObject.
            let data = self.buf.split().freeze();
            let mut request = self
                .client
                .put_object()
                .bucket(&self.uri.bucket)
                .key(&self.uri.key)
                .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone())
                .content_length(data.len() as i64)
                .body(ByteStream::from(data));
            if let Some(kms) = &self.opts.kms_key_id {
                request = request
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms);
            }
            request
                .send()
                .await
                .map_err(|e| s3_error(&format!("writing {}", self.uri), e))?;
            return Ok(());
        }
        if !self.buf.is_empty() {
            let last = self.buf.split().freeze();
            self.send_part(last).await?;
        }
        while !self.in_flight.is_empty() {
            self.reap_one().await?;
        }
        self.parts.sort_by_key(|p| p.0);
        let id = self.upload_id.clone().unwrap_or_default();
        let parts = self
            .parts
            .iter()
            .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.uri.bucket)
            .key(&self.uri.key)
            .upload_id(&id)
            .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error(&format!("completing the upload of {}", self.uri), e))?;
        self.opts.uploads.remove(&id);
        Ok(())
    }

    async fn abort_inner(&mut self) -> io::Result<()> {
        self.done = true;
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            abort_upload(
                &self.client,
                &self.uri,
                &id,
                self.opts.expected_bucket_owner.clone(),
            )
            .await?;
            self.opts.uploads.remove(&id);
        }
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        async move {
            if self.sealed {
                return Err(io::Error::other(format!(
                    "{}: written after it was sealed",
                    self.uri
                )));
            }
            self.buf.extend_from_slice(&chunk);
            loop {
                let size = self.opts.part_size_for(self.next_part) as usize;
                if self.buf.len() < size {
                    return Ok(());
                }
                let part = self.buf.split_to(size).freeze();
                if let Err(e) = self.send_part(part).await {
                    let _ = self.abort_inner().await;
                    return Err(e);
                }
            }
        }
        .boxed()
    }

    fn seal(&mut self) -> BoxFuture<'_, io::Result<()>> {
        async move {
            if self.sealed || self.done {
                return Ok(());
            }
            // The buffer becomes the last part (S3 allows the last part to be small), even for an
            // object that would otherwise have been one PutObject.
            let result = async {
                if !self.buf.is_empty() {
                    let last = std::mem::take(&mut self.buf).freeze();
                    self.send_part(last).await?;
                }
                while !self.in_flight.is_empty() {
                    self.reap_one().await?;
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    self.sealed = true;
                    Ok(())
                }
                Err(e) => {
                    let _ = self.abort_inner().await;
                    Err(e)
                }
            }
        }
        .boxed()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async move {
            match self.finish_inner().await {
                Ok(()) => {
                    self.done = true;
                    Ok(())
                }
                Err(e) => {
                    let _ = self.abort_inner().await;
                    Err(e)
                }
            }
        }
        .boxed()
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async move { self.abort_inner().await }.boxed()
    }

    fn name(&self) -> String {
        self.uri.to_string()
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Dropped unfinished (an error elsewhere, a cancellation): abort in the background if a
        // runtime is still there; the registry lets a cancelled run abort what is left.
        if self.done {
            return;
        }
        self.in_flight.abort_all();
        if let (Some(id), Ok(handle)) =
            (self.upload_id.take(), tokio::runtime::Handle::try_current())
        {
            let (client, uri, registry) = (
                self.client.clone(),
                self.uri.clone(),
                self.opts.uploads.clone(),
            );
            let owner = self.opts.expected_bucket_owner.clone();
            handle.spawn(async move {
                let sent = abort_upload(&client, &uri, &id, owner).await;
                if sent.is_ok() {
                    registry.remove(&id);
                }
            });
        }
    }
}

/// An S3 prefix as a [`Destination`].
#[derive(Clone)]
pub struct S3Dir {
    client: Client,
    root: S3Uri,
    opts: S3Options,
}

impl S3Dir {
    /// The prefix `root` (a trailing `/` is added if missing).
    pub fn new(client: Client, mut root: S3Uri, opts: &S3Options) -> S3Dir {
        if !root.key.is_empty() && !root.key.ends_with('/') {
            root.key.push('/');
        }
        S3Dir {
            client,
            root,
            opts: opts.clone(),
        }
    }
}

/// Percent-encodes an object key for `x-amz-copy-source` (keeps `/` and unreserved characters).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Destination for S3Dir {
    fn create(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ObjectWriter>>> {
        let w = S3Writer::new(self.client.clone(), self.root.join(rel), &self.opts);
        async move { Ok(Box::new(w) as Box<dyn ObjectWriter>) }.boxed()
    }

    fn rename(&self, from: &str, to: &str) -> BoxFuture<'_, io::Result<()>> {
        let (from, to) = (self.root.join(from), self.root.join(to));
        async move {
            let mut copy = self
                .client
                .copy_object()
                .bucket(&to.bucket)
                .key(&to.key)
                .copy_source(format!("{}/{}", from.bucket, encode_key(&from.key)))
                .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone());
            if let Some(kms) = &self.opts.kms_key_id {
                copy = copy
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms);
            }
            copy.send()
                .await
                .map_err(|e| s3_error(&format!("copying {from} to {to}"), e))?;
            self.client
                .delete_object()
                .bucket(&from.bucket)
                .key(&from.key)
                .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone())
                .send()
                .await
                .map_err(|e| s3_error(&format!("deleting {from}"), e))?;
            Ok(())
        }
        .boxed()
    }

    fn read_small(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        let uri = self.root.join(rel);
        async move {
            let out = self
                .client
                .get_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone())
                .send()
                .await;
            match out {
                Ok(out) => {
                    let bytes = out
                        .body
                        .collect()
                        .await
                        .map_err(|e| io::Error::other(format!("reading {uri}: {e}")))?;
                    Ok(Some(bytes.to_vec()))
                }
                Err(e) => {
                    let e = s3_error(&format!("reading {uri}"), e);
                    if e.kind() == io::ErrorKind::NotFound
                        && !e.to_string().contains("NoSuchBucket")
                    {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                }
            }
        }
        .boxed()
    }

    fn uri(&self, rel: &str) -> String {
        self.root.join(rel).to_string()
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<String>>> {
        let full = self.root.join(prefix);
        async move {
            let mut found = Vec::new();
            let mut token = None;
            loop {
                let out = self
                    .client
                    .list_objects_v2()
                    .bucket(&full.bucket)
                    .prefix(&full.key)
                    .set_continuation_token(token)
                    .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone())
                    .send()
                    .await
                    .map_err(|e| s3_error(&format!("listing {full}"), e))?;
                for object in out.contents() {
                    if let Some(rel) = object.key().and_then(|k| k.strip_prefix(&self.root.key)) {
                        found.push(rel.to_owned());
                    }
                }
                match out.next_continuation_token() {
                    Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            found.sort();
            Ok(found)
        }
        .boxed()
    }

    fn open(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ChunkSource>>> {
        let uri = self.root.join(rel);
        async move {
            let source = S3Source::open(self.client.clone(), uri, &self.opts).await?;
            Ok(Box::new(source) as Box<dyn ChunkSource>)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_s3_limits() {
        let o = S3Options::default();
        assert_eq!(o.part_size_for(1), 8 << 20);
        assert_eq!(o.part_size_for(1000), 8 << 20);
        assert_eq!(o.part_size_for(1001), 16 << 20);
        let total: u64 = (1..=MAX_PARTS).map(|n| o.part_size_for(n)).sum();
        assert!(
            total > 5 << 40,
            "10,000 parts hold more than S3's 5 TiB object limit"
        );
        let tiny = S3Options {
            part_size: 1,
            ..S3Options::default()
        };
        assert_eq!(tiny.part_size_for(1), MIN_PART, "never below S3's minimum");
    }

    #[test]
    fn keys_are_encoded_for_copy_sources() {
        assert_eq!(encode_key("a b/c+d=é"), "a%20b/c%2Bd%3D%C3%A9");
    }
}
