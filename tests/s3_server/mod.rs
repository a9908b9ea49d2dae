//! S3 servers for the tests: s3s-fs in-process on 127.0.0.1 (with fault injection), or an external
//! S3-compatible server (moto in CI) named by `BEDROCK_BATCH_TEST_S3_ENDPOINT`.
#![allow(dead_code)]

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Poll};

use bedrock_batch::io::S3Options;
use bytes::Bytes;
use http_body::{Body, Frame};

/// One request as the wrapper saw it: `"METHOD query"`, the KMS key id header, the expected
/// bucket owner header.
pub type Seen = (String, Option<String>, Option<String>);

/// Requests to fail on purpose.
#[derive(Default)]
pub struct Faults {
    /// UploadPart requests to answer with 503 SlowDown (retried by the SDK).
    pub upload_part_503: AtomicU32,
    /// From this many UploadParts on, answer 403 AccessDenied (not retryable); 0 = never.
    pub upload_part_403_after: AtomicU32,
    /// Ranged GETs to answer with 503.
    pub get_503: AtomicU32,
    /// Ranged GETs whose body is cut off after 1000 bytes.
    pub get_cut: AtomicU32,
    /// UploadParts seen.
    pub upload_parts: AtomicU32,
    /// Delay every UploadPart by this many milliseconds (a slow network).
    pub part_delay_ms: AtomicU64,
    /// Delay every request of this method (`GET`, `PUT` …) for a key ending so, by this many
    /// milliseconds (a server that stalls just there).
    pub delay: std::sync::Mutex<Option<(http::Method, String, u64)>>,
    /// Requests of this method for a key ending so wait until this semaphore has a permit (one
    /// opens the gate for good) before they reach the store: a request held in flight while
    /// the test acts.
    #[allow(clippy::type_complexity)]
    pub gate: std::sync::Mutex<Option<(http::Method, String, Arc<tokio::sync::Semaphore>)>>,
    /// Ranged GETs seen.
    pub gets: AtomicU64,
    /// Renewals of a folder's lock (conditional PUTs of `.bedrock-batch/lock`) to answer with
    /// 403 (not retried by the SDK: the store out of reach past its retries).
    pub lock_renewal_403: AtomicU32,
    /// Conditional writes of a folder's lock (taking it, renewing it) to carry out and then
    /// answer with 503 (the SDK sends them again) / with 403 (it does not): writes that landed,
    /// whose answers were lost.
    pub lock_landed_503: AtomicU32,
    pub lock_landed_403: AtomicU32,
    /// Conditional writes of a folder's lock that were carried out (only those: a refused one
    /// is answered as it is) to answer with 503 all the same, while this lasts.
    pub lock_written_503: AtomicU32,
    /// Objects written by PutObject get ETags as S3 gives SSE-KMS objects: not the MD5 of the
    /// content, a new one for every write, so the same bytes written twice differ. (Set just
    /// after s3s-fs has written the object: a read at that moment may see its MD5 ETag, and a
    /// copy keeps its source's. For requests one at a time.)
    pub kms_etags: AtomicBool,
    /// The ETags made up so far.
    pub etags_made: AtomicU64,
    /// Conditional writes (`If-Match`) of a folder's lock find it gone: the object is deleted
    /// just before, as its holder letting go of it would.
    pub lock_let_go: AtomicU32,
    /// Conditional deletes (`If-Match`) of a folder's lock to refuse with 412, as if it had
    /// changed since it was read.
    pub lock_delete_412: AtomicU32,
    /// Refuse everything (the server "goes away").
    pub down: AtomicBool,
    /// Multipart uploads created and not yet completed or aborted: (bucket, key, upload id).
    /// s3s-fs does not implement ListMultipartUploads, so the wrapper answers it from this.
    pub uploads: std::sync::Mutex<Vec<(String, String, String)>>,
    /// Every request's method, and the value of headers the tests check
    /// (`x-amz-server-side-encryption-aws-kms-key-id`, `x-amz-expected-bucket-owner`).
    pub seen: std::sync::Mutex<Vec<Seen>>,
    /// The requests that make an object visible — CompleteMultipartUpload, PutObject (but for
    /// lock and lease objects), CopyObject — counted; the one with this number (from 1) is refused with
    /// 403. 0 = never.
    pub fail_commit_at: AtomicU32,
    /// Those requests seen so far.
    pub commit_steps: AtomicU32,
    /// Conditional writes (If-None-Match / If-Match) run one at a time: s3s-fs checks the
    /// condition and then writes, and two racing writers could both pass the check.
    pub conditional: tokio::sync::Mutex<()>,
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

pub struct TestS3 {
    pub endpoint: String,
    pub faults: Arc<Faults>,
    /// Whether this is the in-process server (faults work only there).
    pub in_process: bool,
    _root: Option<tempfile::TempDir>,
}

fn hermetic_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Credentials for the test servers, and nothing read from this machine's AWS setup or
        // the instance metadata service: the tests never leave 127.0.0.1.
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "testsecret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/bedrock-batch-test-config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/bedrock-batch-test-credentials",
            ),
        ] {
            std::env::set_var(k, v);
        }
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_ENDPOINT_URL");
        std::env::remove_var("AWS_ENDPOINT_URL_S3");
    });
}

/// The server the S3 suite runs against: external when `BEDROCK_BATCH_TEST_S3_ENDPOINT` is set,
/// else a fresh in-process one.
pub fn server() -> TestS3 {
    hermetic_env();
    match std::env::var("BEDROCK_BATCH_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => TestS3 {
            endpoint,
            faults: Arc::default(),
            in_process: false,
            _root: None,
        },
        _ => in_process(),
    }
}

/// Always the in-process server, for fault injection.
pub fn in_process() -> TestS3 {
    hermetic_env();
    let root = tempfile::tempdir().unwrap();
    let faults: Arc<Faults> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
    let fs_root = root.path().to_owned();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single("test", "testsecret"));
    let service = builder.build();
    let f = Arc::clone(&faults);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let svc = Faulty {
                    inner: service.clone(),
                    faults: Arc::clone(&f),
                    root: fs_root.clone(),
                };
                tokio::spawn(async move {
                    let builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), svc)
                        .await;
                });
            }
        });
    });
    TestS3 {
        endpoint,
        faults,
        in_process: true,
        _root: Some(root),
    }
}

impl TestS3 {
    /// Options pointing at this server.
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint_url: Some(self.endpoint.clone()),
            max_attempts: 4,
            ..S3Options::default()
        }
    }

    /// A client for setting up and checking.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        self.options().client().await
    }

    /// The bytes of an object (which must exist).
    ///
    /// Read again when its body fails its checksum: s3s-fs rewrites an object's file in place, so
    /// a read that races a rewrite (a lease a running server renews) can see half of each
    /// version, where S3 would give one whole version or the other. Two rewrites racing can
    /// also leave the object torn until the next one (CI at 6f95cc6: eleven reads over ~0.3 s
    /// saw the same mismatch), so the reads go on for 5 s, past the 2 s a test server's lease
    /// lasts before it is renewed.
    pub async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let client = self.client().await;
        let mut torn = 0;
        loop {
            let out = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"));
            match out.body.collect().await {
                Ok(body) => return body.into_bytes().to_vec(),
                Err(e) if torn < 100 => {
                    torn += 1;
                    eprintln!("s3://{bucket}/{key} read torn ({e:?}), reading it again");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("s3://{bucket}/{key}: {e:?}"),
            }
        }
    }

    /// Writes an object.
    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<bytes::Bytes>) {
        self.client()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"));
    }

    /// Creates a bucket with a unique name.
    pub async fn bucket(&self, hint: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t-{hint}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        self.client()
            .await
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap();
        name
    }
}

#[derive(Clone)]
struct Faulty {
    inner: s3s::service::S3Service,
    faults: Arc<Faults>,
    /// s3s-fs's directory, where it keeps each object's ETag.
    root: std::path::PathBuf,
}

/// A key as the request's path spells it (percent-encoded), decoded.
fn decoded(key: &str) -> String {
    let mut decoded = Vec::new();
    let mut bytes = key.bytes();
    while let Some(b) = bytes.next() {
        let hex = |b: Option<u8>| char::from(b.unwrap_or(b'?')).to_digit(16).unwrap() as u8;
        decoded.push(if b == b'%' {
            hex(bytes.next()) << 4 | hex(bytes.next())
        } else {
            b
        });
    }
    String::from_utf8(decoded).unwrap()
}

/// Where s3s-fs 0.14 keeps the object `bucket`/`key` (the key as the request spells it).
fn object_path(root: &std::path::Path, bucket: &str, key: &str) -> std::path::PathBuf {
    root.join(bucket).join(decoded(key))
}

/// s3s-fs's own record of the object `bucket`/`key` (its `.bucket-….object-….internal.json`,
/// names in unpadded URL-safe base64; s3s-fs 0.14), whose ETag its answers and its `If-Match`
/// checks go by. It outlives a deleted object.
fn record_path(root: &std::path::Path, bucket: &str, key: &str) -> std::path::PathBuf {
    fn base64(text: &str) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for group in text.as_bytes().chunks(3) {
            let n = group
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..=group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }
    root.join(format!(
        ".bucket-{}.object-{}.internal.json",
        base64(bucket),
        base64(&decoded(key))
    ))
}

/// The ETag s3s-fs answers for the object `bucket`/`key` (one that exists), if it has a record.
fn recorded_etag(root: &std::path::Path, bucket: &str, key: &str) -> Option<String> {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record_path(root, bucket, key)).ok()?).ok()?;
    record["e_tag"].as_str().map(str::to_owned)
}

/// Gives the object `bucket`/`key` the ETag `etag` in s3s-fs's own record of it.
fn set_etag(root: &std::path::Path, bucket: &str, key: &str, etag: &str) {
    let info = record_path(root, bucket, key);
    // No record (s3s-fs keeps none for a key ending in `/`): the ETag stays its own.
    let Ok(bytes) = std::fs::read(&info) else {
        return;
    };
    let mut record: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).unwrap();
    record.insert("e_tag".into(), etag.into());
    // Replaced whole, never seen half written.
    let new = info.with_extension("made-up");
    std::fs::write(&new, serde_json::to_vec(&record).unwrap()).unwrap();
    std::fs::rename(&new, &info).unwrap();
}

fn error(status: u16, code: &str) -> http::Response<s3s::Body> {
    let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test</Message></Error>");
    http::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(Bytes::from(xml)))
        .unwrap()
}

/// An injected error, sent once the request's body is read, as S3 reads it before it answers:
/// an answer sent before would close the connection under the client's upload, which the client
/// sees as a broken pipe (now and then, by who is faster), not as the error.
fn refuse(
    req: http::Request<hyper::body::Incoming>,
    status: u16,
    code: &'static str,
) -> <Faulty as hyper::service::Service<http::Request<hyper::body::Incoming>>>::Future {
    Box::pin(async move {
        use http_body_util::BodyExt;
        let _ = req.into_body().collect().await;
        Ok(error(status, code))
    })
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Faulty {
    type Response = http::Response<s3s::Body>;
    type Error = s3s::HttpError;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let f = Arc::clone(&self.faults);
        let query = req.uri().query().unwrap_or("").to_owned();
        let path = req.uri().path().trim_start_matches('/').to_owned();
        let (bucket, key) = path
            .split_once('/')
            .map_or((path.clone(), String::new()), |(b, k)| {
                (b.to_owned(), k.to_owned())
            });
        let has = |q: &str| {
            query
                .split('&')
                .any(|p| p == q || p.starts_with(&format!("{q}=")))
        };
        let method = req.method().clone();
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        f.seen.lock().unwrap().push((
            format!("{method} {query}"),
            header("x-amz-server-side-encryption-aws-kms-key-id"),
            header("x-amz-expected-bucket-owner"),
        ));
        if method == http::Method::GET && has("uploads") {
            let uploads = f.uploads.lock().unwrap();
            let mut xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{bucket}</Bucket><IsTruncated>false</IsTruncated>");
            for (b, k, id) in uploads.iter().filter(|u| u.0 == bucket) {
                let _ = b;
                xml.push_str(&format!(
                    "<Upload><Key>{k}</Key><UploadId>{id}</UploadId></Upload>"
                ));
            }
            xml.push_str("</ListMultipartUploadsResult>");
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/xml")
                .body(s3s::Body::from(Bytes::from(xml)))
                .unwrap();
            return Box::pin(async move { Ok(resp) });
        }
        let creating = method == http::Method::POST && has("uploads");
        let ending =
            (method == http::Method::POST || method == http::Method::DELETE) && has("uploadId");
        let upload_id = query
            .split('&')
            .find_map(|p| p.strip_prefix("uploadId="))
            .map(str::to_owned);
        let upload_part = req.method() == http::Method::PUT && query.contains("partNumber=");
        // S3 honours `If-Match` on DELETE, and answers a PUT or a DELETE with `If-Match` on a
        // missing object 404 NoSuchKey; s3s-fs ignores the one and answers 412 (PUT) or 204
        // (DELETE) to the other. Done here as S3 does them.
        let if_match = header("if-match").map(|v| v.trim_matches('"').to_owned());
        let put_if_match = method == http::Method::PUT && !upload_part && if_match.is_some();
        let delete_if_match = method == http::Method::DELETE && !ending && if_match.is_some();
        let conditional = (req.method() == http::Method::PUT
            && (req.headers().contains_key("if-none-match")
                || req.headers().contains_key("if-match")))
            || delete_if_match;
        let commit_step = (ending && method == http::Method::POST)
            || (method == http::Method::PUT
                && !upload_part
                && !key.is_empty()
                && !key.ends_with(".bedrock-batch/lock")
                // A server's leases are renewed in the background, at times of their own: counted,
                // they would move which step fails.
                && !key.contains("leases/"));
        if commit_step && !f.down.load(Ordering::SeqCst) {
            let n = f.commit_steps.fetch_add(1, Ordering::SeqCst) + 1;
            if n == f.fail_commit_at.load(Ordering::SeqCst) {
                return refuse(req, 403, "AccessDenied");
            }
        }
        let ranged_get = req.method() == http::Method::GET && req.headers().contains_key("range");
        let renewal = method == http::Method::PUT
            && key.ends_with(".bedrock-batch/lock")
            && req.headers().contains_key("if-match");
        if renewal && take(&f.lock_renewal_403) {
            return refuse(req, 403, "AccessDenied");
        }
        if renewal && take(&f.lock_let_go) {
            let _ = std::fs::remove_file(object_path(&self.root, &bucket, &key));
        }
        let lock_delete = delete_if_match && key.ends_with(".bedrock-batch/lock");
        if lock_delete && take(&f.lock_delete_412) {
            return refuse(req, 412, "PreconditionFailed");
        }
        let lock_write = method == http::Method::PUT
            && key.ends_with(".bedrock-batch/lock")
            && (req.headers().contains_key("if-match")
                || req.headers().contains_key("if-none-match"));
        let answer_lost = if !lock_write {
            None
        } else if take(&f.lock_landed_503) {
            Some((503, "SlowDown"))
        } else if take(&f.lock_landed_403) {
            Some((403, "AccessDenied"))
        } else {
            None
        };
        if f.down.load(Ordering::SeqCst) {
            return refuse(req, 403, "AccessDenied");
        }
        if upload_part {
            let n = f.upload_parts.fetch_add(1, Ordering::SeqCst) + 1;
            let after = f.upload_part_403_after.load(Ordering::SeqCst);
            if after > 0 && n > after {
                return refuse(req, 403, "AccessDenied");
            }
            if take(&f.upload_part_503) {
                return refuse(req, 503, "SlowDown");
            }
        }
        let mut cut = false;
        if ranged_get {
            f.gets.fetch_add(1, Ordering::SeqCst);
            if take(&f.get_503) {
                return refuse(req, 503, "SlowDown");
            }
            cut = take(&f.get_cut);
        }
        let delay = match &*f.delay.lock().unwrap() {
            Some((m, suffix, ms)) if req.method() == m && key.ends_with(suffix.as_str()) => *ms,
            _ => 0,
        };
        let delay = if upload_part {
            f.part_delay_ms.load(Ordering::SeqCst)
        } else {
            delay
        };
        let made_up_etag = f.kms_etags.load(Ordering::SeqCst)
            && method == http::Method::PUT
            && !upload_part
            && !key.is_empty()
            && !req.headers().contains_key("x-amz-copy-source");
        let gate = match &*f.gate.lock().unwrap() {
            Some((m, suffix, gate)) if method == m && key.ends_with(suffix.as_str()) => {
                Some(Arc::clone(gate))
            }
            _ => None,
        };
        let root = self.root.clone();
        let inner = self.inner.clone();
        let work = async move {
            if let Some(gate) = gate {
                let _ = gate.acquire().await;
            }
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            let serialized = if conditional {
                Some(f.conditional.lock().await)
            } else {
                None
            };
            let refused = if (put_if_match || delete_if_match)
                && !object_path(&root, &bucket, &key).is_file()
            {
                Some((404, "NoSuchKey"))
            } else if delete_if_match
                && recorded_etag(&root, &bucket, &key).is_some_and(|e| Some(e) != if_match)
            {
                Some((412, "PreconditionFailed"))
            } else {
                None
            };
            if let Some((status, code)) = refused {
                use http_body_util::BodyExt;
                let _ = req.into_body().collect().await;
                return Ok(error(status, code));
            }
            let mut resp = hyper::service::Service::call(&inner, req).await?;
            if made_up_etag && resp.status().is_success() {
                let n = f.etags_made.fetch_add(1, Ordering::SeqCst);
                let etag = format!("{:032x}", 0xfeed_u128 << 64 | u128::from(n));
                set_etag(&root, &bucket, &key, &etag);
                let header = http::HeaderValue::from_str(&format!("\"{etag}\"")).unwrap();
                resp.headers_mut().insert("etag", header);
            }
            drop(serialized);
            if let Some((status, code)) = answer_lost {
                return Ok(error(status, code));
            }
            if lock_write && resp.status().is_success() && take(&f.lock_written_503) {
                return Ok(error(503, "SlowDown"));
            }
            if creating && resp.status().is_success() {
                use http_body_util::BodyExt;
                let (parts, body) = resp.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                if let Some(id) = text
                    .split("<UploadId>")
                    .nth(1)
                    .and_then(|r| r.split("</UploadId>").next())
                {
                    f.uploads.lock().unwrap().push((bucket, key, id.to_owned()));
                }
                return Ok(http::Response::from_parts(parts, s3s::Body::from(bytes)));
            }
            if ending && resp.status().is_success() {
                if let Some(id) = upload_id {
                    f.uploads.lock().unwrap().retain(|u| u.2 != id);
                }
            }
            if !cut {
                return Ok(resp);
            }
            let (parts, body) = resp.into_parts();
            Ok(http::Response::from_parts(
                parts,
                s3s::Body::http_body(CutBody {
                    inner: body,
                    left: 1000,
                }),
            ))
        };
        // Carried to its end on a task of its own, even when the client goes away (a server
        // killed with SIGKILL mid-request): s3s-fs renames an object's new file into place and
        // then writes its record (ETag, checksums), and a request dropped between the two left
        // an object whose body and record disagree — every later GET failing its checksum, so
        // a killed server's lease could never be read again — where S3 writes an object whole
        // or not at all.
        Box::pin(async move { tokio::spawn(work).await.expect("a request's task ends") })
    }
}

/// A body that breaks off after `left` bytes.
struct CutBody {
    inner: s3s::Body,
    left: usize,
}

impl Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "cut by the test",
            ))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() > self.left {
                        data.truncate(self.left);
                    }
                    self.left -= data.len();
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
