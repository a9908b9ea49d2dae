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

use super::{
    ChunkSource, Committed, Destination, HeldLock, JournalEntry, JournalPlace, Listed, LockAttempt,
    LockTakenOver, ObjectWriter,
};

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

/// An `s3://` address without a bucket name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{uri}: no bucket name (expected s3://bucket/key)")]
pub struct NoBucket {
    /// The address given.
    pub uri: String,
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
    pub fn parse(s: &str) -> Option<Result<S3Uri, NoBucket>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(NoBucket { uri: s.to_owned() }));
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
    /// Objects larger than this are copied on the server range by range (S3 copies at most
    /// 5 GiB in one CopyObject); also the size of those ranges.
    pub copy_part_limit: u64,
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
            copy_part_limit: MAX_COPY,
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
    io::Error::new(kind, S3Failure { code, text })
}

/// An error S3 answered, as [`s3_error`] words it, with its AWS error code kept apart from the
/// words (a key may spell anything).
#[derive(Debug)]
struct S3Failure {
    code: Option<String>,
    text: String,
}

impl fmt::Display for S3Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for S3Failure {}

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

    /// The ETag the read is pinned to.
    pub fn etag(&self) -> &str {
        &self.etag
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

    /// Whether upload `id` is one of this process's, in progress.
    fn contains(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(_, i)| i == id)
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
    /// Where an object this one replaces is kept during a [`commit`](ObjectWriter::commit).
    backup: S3Uri,
    /// Where a group commit's journal naming it is kept (a folder's objects only).
    journal: Option<S3JournalPlace>,
    /// The size of the object at the name, once looked up (`Some(None)`: none there).
    probed: Option<Option<u64>>,
}

/// Where the journal of a group commit is kept on S3: a folder's temporary prefix.
#[derive(Clone)]
pub struct S3JournalPlace {
    client: Client,
    prefix: S3Uri,
    opts: S3Options,
}

impl S3JournalPlace {
    pub(crate) fn id(&self) -> String {
        self.prefix.to_string()
    }

    fn uri(&self, group: &str) -> S3Uri {
        S3Uri {
            bucket: self.prefix.bucket.clone(),
            key: format!("{}{group}.journal", self.prefix.key),
        }
    }

    pub(crate) async fn write(&self, group: &str, body: Bytes) -> io::Result<()> {
        let uri = self.uri(group);
        put_request(&self.client, &uri, body, &self.opts)
            .send()
            .await
            .map(drop)
            .map_err(|e| s3_error(&format!("writing {uri}"), e))
    }

    pub(crate) async fn remove(&self, group: &str) -> io::Result<()> {
        delete(
            &self.client,
            &self.uri(group),
            self.opts.expected_bucket_owner.clone(),
        )
        .await
    }
}

impl S3Writer {
    /// Starts writing `uri` (nothing is sent until a part is full or the writer finishes). A
    /// commit that replaces an object keeps it aside as `.NAME.bedrock-batch.PID.N.old` beside
    /// it until the commit is kept or undone.
    pub fn new(client: Client, uri: S3Uri, opts: &S3Options) -> S3Writer {
        let (dir, name) = uri
            .key
            .rsplit_once('/')
            .map_or(("", uri.key.as_str()), |(d, n)| (d, n));
        let backup = S3Uri {
            bucket: uri.bucket.clone(),
            key: format!(
                "{dir}{}.{name}.bedrock-batch.{}.old",
                if dir.is_empty() { "" } else { "/" },
                super::unique_name()
            ),
        };
        Self::with_backup(client, uri, backup, None, opts)
    }

    fn with_backup(
        client: Client,
        uri: S3Uri,
        backup: S3Uri,
        journal: Option<S3JournalPlace>,
        opts: &S3Options,
    ) -> S3Writer {
        S3Writer {
            backup,
            journal,
            probed: None,
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
            put_request(&self.client, &self.uri, data, &self.opts)
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

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, io::Result<Box<dyn Committed>>> {
        async move {
            let owner = self.opts.expected_bucket_owner.clone();
            let old = match self.probed.take() {
                Some(old) => old,
                None => match head_size(&self.client, &self.uri, owner.clone()).await {
                    Ok(old) => old,
                    Err(e) => {
                        let _ = self.abort_inner().await;
                        return Err(e);
                    }
                },
            };
            let backup = match old {
                Some(size) => {
                    if let Err(e) =
                        copy(&self.client, &self.uri, &self.backup, size, &self.opts).await
                    {
                        let _ = self.abort_inner().await;
                        return Err(e);
                    }
                    Some((self.backup.clone(), size))
                }
                None => None,
            };
            if let Err(e) = self.finish_inner().await {
                let _ = self.abort_inner().await;
                if let Some((b, _)) = &backup {
                    let _ = delete(&self.client, b, owner).await;
                }
                return Err(e);
            }
            self.done = true;
            Ok(Box::new(S3Committed {
                client: self.client.clone(),
                uri: self.uri.clone(),
                backup,
                opts: self.opts.clone(),
            }) as Box<dyn Committed>)
        }
        .boxed()
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async move { self.abort_inner().await }.boxed()
    }

    fn name(&self) -> String {
        self.uri.to_string()
    }

    fn journal_entry(&mut self) -> BoxFuture<'_, io::Result<Option<JournalEntry>>> {
        async move {
            if self.journal.is_none() {
                return Ok(None);
            }
            let old = head_size(
                &self.client,
                &self.uri,
                self.opts.expected_bucket_owner.clone(),
            )
            .await?;
            self.probed = Some(old);
            Ok(Some(JournalEntry {
                target: self.uri.to_string(),
                backup: self.backup.to_string(),
                existed: old.is_some(),
            }))
        }
        .boxed()
    }

    fn journal_place(&self) -> Option<JournalPlace> {
        self.journal.clone().map(JournalPlace::S3)
    }
}

/// A committed S3 object and, when it replaced one, the copy of the old one.
struct S3Committed {
    client: Client,
    uri: S3Uri,
    backup: Option<(S3Uri, u64)>,
    opts: S3Options,
}

impl Committed for S3Committed {
    fn undo(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async move {
            let owner = self.opts.expected_bucket_owner.clone();
            match &self.backup {
                Some((b, size)) => {
                    copy(&self.client, b, &self.uri, *size, &self.opts).await?;
                    delete(&self.client, b, owner).await
                }
                None => delete(&self.client, &self.uri, owner).await,
            }
        }
        .boxed()
    }

    fn keep(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async move {
            match &self.backup {
                Some((b, _)) => {
                    delete(&self.client, b, self.opts.expected_bucket_owner.clone()).await
                }
                None => Ok(()),
            }
        }
        .boxed()
    }
}

/// The size of the object at `uri`, or `None` when there is none.
async fn head_size(client: &Client, uri: &S3Uri, owner: Option<String>) -> io::Result<Option<u64>> {
    match client
        .head_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .set_expected_bucket_owner(owner)
        .send()
        .await
    {
        Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
        Err(e) => {
            let e = s3_error(&format!("looking at {uri}"), e);
            if object_gone(&e) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Removes the object at `uri` (one that does not exist is not an error).
async fn delete(client: &Client, uri: &S3Uri, owner: Option<String>) -> io::Result<()> {
    client
        .delete_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .set_expected_bucket_owner(owner)
        .send()
        .await
        .map(drop)
        .map_err(|e| s3_error(&format!("deleting {uri}"), e))
}

/// S3's largest object a single CopyObject copies.
const MAX_COPY: u64 = 5 << 30;

/// Copies the object at `from` (of `size` bytes) to `to` on the server: one CopyObject up to
/// 5 GiB, a multipart copy of 1 GiB ranges beyond.
async fn copy(
    client: &Client,
    from: &S3Uri,
    to: &S3Uri,
    size: u64,
    opts: &S3Options,
) -> io::Result<()> {
    let source = format!("{}/{}", from.bucket, encode_key(&from.key));
    let what = || format!("copying {from} to {to}");
    if size <= opts.copy_part_limit.min(MAX_COPY) {
        let mut request = client
            .copy_object()
            .bucket(&to.bucket)
            .key(&to.key)
            .copy_source(&source)
            .set_expected_bucket_owner(opts.expected_bucket_owner.clone());
        if let Some(kms) = &opts.kms_key_id {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        request.send().await.map_err(|e| s3_error(&what(), e))?;
        return Ok(());
    }
    let mut create = client
        .create_multipart_upload()
        .bucket(&to.bucket)
        .key(&to.key)
        .set_expected_bucket_owner(opts.expected_bucket_owner.clone());
    if let Some(kms) = &opts.kms_key_id {
        create = create
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(kms);
    }
    let id = create
        .send()
        .await
        .map_err(|e| s3_error(&what(), e))?
        .upload_id()
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other(format!("{}: no upload id", what())))?;
    opts.uploads.add(to, &id);
    let part = opts
        .copy_part_limit
        .clamp(1, MAX_COPY)
        .max(size.div_ceil(MAX_PARTS));
    let copied = async {
        let mut parts = Vec::new();
        let (mut start, mut n) = (0u64, 1i32);
        while start < size {
            let end = (start + part).min(size) - 1;
            let out = client
                .upload_part_copy()
                .bucket(&to.bucket)
                .key(&to.key)
                .upload_id(&id)
                .part_number(n)
                .copy_source(&source)
                .copy_source_range(format!("bytes={start}-{end}"))
                .set_expected_bucket_owner(opts.expected_bucket_owner.clone())
                .send()
                .await
                .map_err(|e| s3_error(&what(), e))?;
            let etag = out
                .copy_part_result()
                .and_then(|r| r.e_tag())
                .ok_or_else(|| io::Error::other(format!("{}: part {n} has no ETag", what())))?;
            parts.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
            start = end + 1;
            n += 1;
        }
        client
            .complete_multipart_upload()
            .bucket(&to.bucket)
            .key(&to.key)
            .upload_id(&id)
            .set_expected_bucket_owner(opts.expected_bucket_owner.clone())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error(&what(), e))?;
        Ok(())
    }
    .await;
    if copied.is_err() {
        let _ = abort_upload(client, to, &id, opts.expected_bucket_owner.clone()).await;
    }
    opts.uploads.remove(&id);
    copied
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

impl S3Dir {
    fn in_housekeeping(rel: &str) -> bool {
        rel.strip_prefix(super::HOUSEKEEPING)
            .is_some_and(|r| r.starts_with('/'))
    }

    /// Every object below `full` (a key prefix), with its size, as keys relative to the root.
    async fn list_all(&self, full: &S3Uri) -> io::Result<Vec<Listed>> {
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
                    found.push(Listed {
                        path: rel.to_owned(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Reads the lock object at `uri`: its bytes and ETag, or `None` when it is gone.
    async fn read_lock(&self, uri: &S3Uri) -> io::Result<Option<(Vec<u8>, String)>> {
        // A body cut off mid-way (a connection reset; an object replaced while it streams, on
        // some servers) is read again whole, a few times: the bytes and ETag must be one version.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.read_small_once(uri).await {
                Err(e) if attempt < 4 && e.kind() == io::ErrorKind::Interrupted => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    return Err(io::Error::other(e.to_string()))
                }
                other => return other,
            }
        }
    }

    async fn read_small_once(&self, uri: &S3Uri) -> io::Result<Option<(Vec<u8>, String)>> {
        match self
            .client
            .get_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_owned();
                let bytes = out.body.collect().await.map_err(|e| {
                    io::Error::new(io::ErrorKind::Interrupted, format!("reading {uri}: {e}"))
                })?;
                Ok(Some((bytes.to_vec(), etag)))
            }
            Err(e) => {
                let e = s3_error(&format!("reading {uri}"), e);
                if object_gone(&e) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// Whether an error of [`s3_error`] says the object is not there (its bucket is).
fn object_gone(e: &io::Error) -> bool {
    let code = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<S3Failure>())
        .and_then(|f| f.code.as_deref());
    e.kind() == io::ErrorKind::NotFound && code != Some("NoSuchBucket")
}

/// Whether an S3 error says a conditional write's condition did not hold.
fn precondition_failed<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    if matches!(
        e.code(),
        Some("PreconditionFailed" | "ConditionalRequestConflict")
    ) {
        return true;
    }
    e.raw_response()
        .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412))
}

impl Destination for S3Dir {
    fn create(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ObjectWriter>>> {
        let backup = self.root.join(&format!(
            "{}/tmp/{}.old.{}",
            super::HOUSEKEEPING,
            super::unique_name(),
            rel.replace('%', "%25").replace('/', "%2F")
        ));
        let journal = S3JournalPlace {
            client: self.client.clone(),
            prefix: self.root.join(&format!("{}/tmp/", super::HOUSEKEEPING)),
            opts: self.opts.clone(),
        };
        let w = S3Writer::with_backup(
            self.client.clone(),
            self.root.join(rel),
            backup,
            Some(journal),
            &self.opts,
        );
        async move { Ok(Box::new(w) as Box<dyn ObjectWriter>) }.boxed()
    }

    fn read_small(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        let uri = self.root.join(rel);
        async move { Ok(self.read_lock(&uri).await?.map(|(bytes, _)| bytes)) }.boxed()
    }

    fn uri(&self, rel: &str) -> String {
        self.root.join(rel).to_string()
    }

    fn read_versioned(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<super::Versioned>>> {
        let uri = self.root.join(rel);
        async move {
            Ok(self
                .read_lock(&uri)
                .await?
                .map(|(bytes, version)| super::Versioned { bytes, version }))
        }
        .boxed()
    }

    fn put_if(
        &self,
        rel: &str,
        bytes: Bytes,
        expect: super::Expect,
    ) -> BoxFuture<'_, io::Result<super::Swap>> {
        let uri = self.root.join(rel);
        async move {
            let put = put_request(&self.client, &uri, bytes, &self.opts);
            let put = match &expect {
                super::Expect::Absent => put.if_none_match("*"),
                super::Expect::Version(etag) => put.if_match(etag),
            };
            match put.send().await {
                Ok(out) => {
                    return Ok(super::Swap::Done(
                        out.e_tag().unwrap_or_default().to_owned(),
                    ))
                }
                Err(e) if precondition_failed(&e) => {}
                Err(e) => {
                    let e = s3_error(&format!("writing {uri}"), e);
                    // `If-Match` on an object deleted meanwhile: it is not as expected (as a
                    // local folder says it), not a failure.
                    let gone = object_gone(&e) && matches!(expect, super::Expect::Version(_));
                    if !gone {
                        return Err(e);
                    }
                }
            }
            Ok(super::Swap::Conflict)
        }
        .boxed()
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<Listed>>> {
        let full = self.root.join(prefix);
        async move {
            let mut found = self.list_all(&full).await?;
            found.retain(|l| !Self::in_housekeeping(&l.path));
            Ok(found)
        }
        .boxed()
    }

    fn children(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<String>>> {
        let full = self.root.join(prefix);
        async move {
            let mut names = Vec::new();
            let mut token = None;
            loop {
                let out = self
                    .client
                    .list_objects_v2()
                    .bucket(&full.bucket)
                    .prefix(&full.key)
                    .delimiter("/")
                    .set_continuation_token(token)
                    .set_expected_bucket_owner(self.opts.expected_bucket_owner.clone())
                    .send()
                    .await
                    .map_err(|e| s3_error(&format!("listing {full}"), e))?;
                let dirs = out.common_prefixes().iter().filter_map(|p| p.prefix());
                let objects = out.contents().iter().filter_map(|o| o.key());
                for key in dirs.chain(objects) {
                    if let Some(name) = key.strip_prefix(&full.key).filter(|n| !n.is_empty()) {
                        names.push(name.to_owned());
                    }
                }
                match out.next_continuation_token() {
                    Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            names.retain(|n| !n.starts_with(super::HOUSEKEEPING));
            names.sort();
            Ok(names)
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

    fn delete(&self, rel: &str) -> BoxFuture<'_, io::Result<()>> {
        let uri = self.root.join(rel);
        async move { delete(&self.client, &uri, self.opts.expected_bucket_owner.clone()).await }
            .boxed()
    }

    fn lock(
        &self,
        rel: &str,
        holder: Bytes,
        take_over: Option<String>,
    ) -> BoxFuture<'_, io::Result<LockAttempt>> {
        let uri = self.root.join(rel);
        async move {
            // A conditional PUT: created only if absent (If-None-Match: *), or replacing only the
            // very holder that was seen (If-Match): two takers can never both win.
            for _ in 0..5 {
                let put = put_request(&self.client, &uri, holder.clone(), &self.opts);
                let put = match &take_over {
                    Some(etag) => put.if_match(etag),
                    None => put.if_none_match("*"),
                };
                match put.send().await {
                    Ok(out) => return Ok(self.held_lock(&uri, out.e_tag().unwrap_or_default())),
                    Err(e) => {
                        // Refused, or unanswered: the write may still have landed (an answer
                        // lost after S3 acted, the SDK's retry of it refused), which the object
                        // holding exactly our bytes says. Another refusal's read must succeed: it
                        // tells who holds the lock. A take-over of an object deleted since it
                        // was read is refused too: S3 answers it 404, where some stores say 412.
                        let refused = precondition_failed(&e);
                        let e = s3_error(&format!("locking {uri}"), e);
                        let refused = refused || (take_over.is_some() && object_gone(&e));
                        let found = match self.read_lock(&uri).await {
                            Ok(found) => found,
                            Err(read) if refused => return Err(read),
                            Err(_) => None,
                        };
                        match found {
                            Some((found, etag)) if found == holder => {
                                return Ok(self.held_lock(&uri, &etag))
                            }
                            _ if !refused => return Err(e),
                            Some((holder, etag)) => {
                                return Ok(LockAttempt::Busy {
                                    holder,
                                    version: Some(etag),
                                })
                            }
                            // Released in between: try again.
                            None if take_over.is_none() => continue,
                            None => return Ok(LockAttempt::Released),
                        }
                    }
                }
            }
            Err(io::Error::other(format!(
                "locking {uri}: the lock kept changing hands"
            )))
        }
        .boxed()
    }

    fn clean_up(&self, owned: fn(&str) -> bool) -> BoxFuture<'_, io::Result<u64>> {
        async move {
            let owner = self.opts.expected_bucket_owner.clone();
            let mut removed = 0;
            // Incomplete multipart uploads of the folder's own objects (not those this process
            // is writing now).
            let mut key_marker = None;
            let mut id_marker = None;
            loop {
                let out = self
                    .client
                    .list_multipart_uploads()
                    .bucket(&self.root.bucket)
                    .prefix(&self.root.key)
                    .set_key_marker(key_marker)
                    .set_upload_id_marker(id_marker)
                    .set_expected_bucket_owner(owner.clone())
                    .send()
                    .await
                    .map_err(|e| s3_error(&format!("listing the uploads in {}", self.root), e))?;
                for upload in out.uploads() {
                    let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                        continue;
                    };
                    let Some(rel) = key.strip_prefix(&self.root.key) else {
                        continue;
                    };
                    let ours = owned(rel) || Self::in_housekeeping(rel);
                    if !ours || self.opts.uploads.contains(id) {
                        continue;
                    }
                    let uri = S3Uri {
                        bucket: self.root.bucket.clone(),
                        key: key.to_owned(),
                    };
                    abort_upload(&self.client, &uri, id, owner.clone()).await?;
                    removed += 1;
                }
                if out.is_truncated() == Some(true) {
                    key_marker = out.next_key_marker().map(str::to_owned);
                    id_marker = out.next_upload_id_marker().map(str::to_owned);
                    if key_marker.is_none() {
                        break;
                    }
                } else {
                    break;
                }
            }
            // Group commits a writer died in: every object put back as it was, first.
            let tmp = self.root.join(&format!("{}/tmp/", super::HOUSEKEEPING));
            let mut listing = self.list_all(&tmp).await?;
            listing.sort_by_key(|e| !e.path.ends_with(".journal"));
            let mut journals = Vec::new();
            for entry in &listing {
                if !entry.path.ends_with(".journal") {
                    continue;
                }
                let uri = self.root.join(&entry.path);
                let Some((text, _)) = self.read_lock(&uri).await? else {
                    continue;
                };
                for e in super::journal::decode(&text) {
                    let (Some(Ok(target)), Some(Ok(backup))) =
                        (S3Uri::parse(&e.target), S3Uri::parse(&e.backup))
                    else {
                        continue;
                    };
                    // Only the folder's own objects.
                    let inside = |u: &S3Uri| {
                        u.bucket == self.root.bucket && u.key.starts_with(&self.root.key)
                    };
                    if !inside(&target) || !inside(&backup) {
                        continue;
                    }
                    match head_size(&self.client, &backup, owner.clone()).await? {
                        Some(size) => {
                            copy(&self.client, &backup, &target, size, &self.opts).await?;
                            delete(&self.client, &backup, owner.clone()).await?;
                        }
                        None if !e.existed => delete(&self.client, &target, owner.clone()).await?,
                        None => {}
                    }
                }
                delete(&self.client, &uri, owner.clone()).await?;
                journals.push(entry.path.clone());
                removed += 1;
            }
            listing.retain(|e| !journals.contains(&e.path));
            // Backups of commits that did not finish: put back if their object is missing.
            for entry in listing {
                let name = entry.path.rsplit('/').next().unwrap_or_default();
                let from = self.root.join(&entry.path);
                if let Some((_, rel)) = name.split_once(".old.") {
                    let rel = rel.replace("%2F", "/").replace("%25", "%");
                    let target = self.root.join(&rel);
                    if !rel.split('/').any(|s| s == ".." || s == ".")
                        && head_size(&self.client, &target, owner.clone())
                            .await?
                            .is_none()
                    {
                        copy(&self.client, &from, &target, entry.size, &self.opts).await?;
                    }
                }
                delete(&self.client, &from, owner.clone()).await?;
                removed += 1;
            }
            Ok(removed)
        }
        .boxed()
    }
}

/// A PutObject of `body` to `uri` as every write of this module makes it: the expected bucket
/// owner checked, and encrypted with the KMS key when one is set.
fn put_request(
    client: &Client,
    uri: &S3Uri,
    body: Bytes,
    opts: &S3Options,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    let put = client
        .put_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .set_expected_bucket_owner(opts.expected_bucket_owner.clone())
        .content_length(body.len() as i64)
        .body(ByteStream::from(body));
    match &opts.kms_key_id {
        Some(kms) => put
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(kms),
        None => put,
    }
}

/// A lock object held on S3. Its ETag is what a renewal or a release checks against.
struct S3Lock {
    /// The folder's root, for reading the lock back.
    dir: S3Dir,
    uri: S3Uri,
    /// Held across a whole renewal, so that two (the background renewer's and the one before a
    /// commit) run one after the other: both sent with the same ETag, one would be refused as
    /// if another run had taken the lock.
    state: tokio::sync::Mutex<LockState>,
}

/// What an [`S3Lock`] knows of its object.
struct LockState {
    /// The ETag of the last write of it that was answered.
    etag: String,
    /// The bodies sent since, whose answers were lost: any of them may have landed, under an
    /// ETag never seen. No other run writes the same bytes ([`Destination::lock`]), so finding
    /// one in the object means the lock is still ours.
    unanswered: Vec<Bytes>,
}

impl S3Dir {
    fn held_lock(&self, uri: &S3Uri, etag: &str) -> LockAttempt {
        LockAttempt::Acquired(Arc::new(S3Lock {
            dir: self.clone(),
            uri: uri.clone(),
            state: tokio::sync::Mutex::new(LockState {
                etag: etag.to_owned(),
                unanswered: Vec::new(),
            }),
        }))
    }
}

/// How many times in a row a refused write of the lock may turn out to have been refused for a
/// write of our own and be sent again: past that, the renewal fails as a store out of reach
/// does (tried again while the lease runs), or as a takeover if the lock is no longer ours.
const ADOPTIONS: u32 = 4;

impl S3Lock {
    /// Writes `holder` over the version `etag`; its new ETag, or [`LockTakenOver`] when the
    /// object is no longer that version.
    async fn put_over(&self, holder: &Bytes, etag: &str) -> io::Result<String> {
        // Encrypted like the first write: a bucket policy that demands the key applies to
        // every renewal too.
        let out = put_request(&self.dir.client, &self.uri, holder.clone(), &self.dir.opts)
            .if_match(etag)
            .send()
            .await
            .map_err(|e| {
                if precondition_failed(&e) {
                    return LockTakenOver::error(&self.uri.to_string());
                }
                // None (another run took it, used it and let it go) is as good as changed.
                let e = s3_error(&format!("renewing the lock {}", self.uri), e);
                if object_gone(&e) {
                    LockTakenOver::error(&self.uri.to_string())
                } else {
                    e
                }
            })?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    /// The object's ETag now, if it is still this holder's: the version last answered, or one
    /// of the unanswered writes, landed. `None` when another run has it, or nobody.
    async fn ours_now(&self, state: &LockState) -> io::Result<Option<String>> {
        Ok(match self.dir.read_lock(&self.uri).await? {
            Some((body, etag))
                if unquote(&etag) == unquote(&state.etag)
                    || state.unanswered.iter().any(|sent| *sent == body) =>
            {
                Some(etag)
            }
            _ => None,
        })
    }

    /// Deletes the lock if it is still ours; one taken over by another run stays theirs.
    async fn delete_if_ours(&self, state: &LockState) -> io::Result<()> {
        for _ in 0..ADOPTIONS {
            let Some(etag) = self.ours_now(state).await? else {
                return Ok(());
            };
            // Conditional too, where the server honours it: a lock taken over between the read
            // and the delete stays with its new holder.
            let deleted = self
                .dir
                .client
                .delete_object()
                .bucket(&self.uri.bucket)
                .key(&self.uri.key)
                .if_match(&etag)
                .set_expected_bucket_owner(self.dir.opts.expected_bucket_owner.clone())
                .send()
                .await;
            match deleted {
                Ok(_) => return Ok(()),
                // Changed since it was read: taken over, or a renewal of ours landing late (one
                // the renewer sent before it was stopped). Read again.
                Err(e) if precondition_failed(&e) => {}
                Err(e) => {
                    let e = s3_error(&format!("releasing {}", self.uri), e);
                    // Gone since it was read (a store that answers a conditional delete of
                    // nothing 404): nothing of ours is left.
                    return if object_gone(&e) { Ok(()) } else { Err(e) };
                }
            }
        }
        // Still ours, by every read, and every delete refused: left for its lease to end.
        Err(io::Error::other(format!(
            "releasing {}: deleting it was refused {ADOPTIONS} times while it still read as this run's; it is left to expire with its lease",
            self.uri
        )))
    }
}

impl HeldLock for S3Lock {
    fn refresh(&self, holder: Bytes) -> BoxFuture<'_, io::Result<()>> {
        async move {
            let mut state = self.state.lock().await;
            if state.etag.is_empty() {
                return Err(io::Error::other(format!("{}: released", self.uri)));
            }
            // Counted as perhaps landed from when it is sent until it is answered: the answer
            // may be lost, or this future dropped (a renewal out of time) while it is on its way.
            state.unanswered.push(holder.clone());
            let mut over = state.etag.clone();
            let mut rounds = 0;
            let written = loop {
                match self.put_over(&holder, &over).await {
                    // Refused: perhaps only for a write of ours that landed unanswered — an
                    // earlier renewal, or this one's first attempt sent again by the SDK, and
                    // again after an adoption (a store whose ETags change with every write, as
                    // SSE-KMS's do, refuses the same bytes sent twice). A few rounds, each one
                    // a write of ours that landed; then the lock is read once more.
                    Err(e) if LockTakenOver::is(&e) => match self.ours_now(&state).await? {
                        Some(etag) if rounds < ADOPTIONS => {
                            over = etag;
                            rounds += 1;
                        }
                        // Ours still, but every write of it lost its answer: a store not
                        // answering, which the lease's own retries are for.
                        Some(_) => {
                            break Err(io::Error::other(format!(
                                "renewing the lock {}: the answers to {ADOPTIONS} writes in a row were lost",
                                self.uri
                            )))
                        }
                        None => break Err(e),
                    },
                    other => break other,
                }
            };
            state.etag = written?;
            state.unanswered.clear();
            Ok(())
        }
        .boxed()
    }

    fn needs_refresh(&self) -> bool {
        true
    }

    fn release(&self) -> BoxFuture<'_, io::Result<()>> {
        async move {
            let mut state = self.state.lock().await;
            if state.etag.is_empty() {
                return Ok(());
            }
            let released = self.delete_if_ours(&state).await;
            state.etag.clear();
            state.unanswered.clear();
            released
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
