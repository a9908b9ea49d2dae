//! A Bedrock batch-inference emulator for the tests: the four control-plane operations at their
//! real paths with the botocore shapes (`shared/reference/bedrock-batch-shapes.json`), validation
//! like Bedrock's, and jobs that really run against the test S3 server: they read every `.jsonl`
//! under the input prefix, answer each record with a deterministic `modelOutput` in the shape its
//! body's family answers in (Claude, Converse and Nova, Llama, Mistral text, the OpenAI-shaped
//! chat bodies, Titan and Nova embeddings), and write `<output>/<job-id>/<file>.jsonl.out` in shuffled order plus
//! `manifest.json.out`, walking Submitted → Validating → Scheduled → InProgress → Completed /
//! PartiallyCompleted, honouring Stop and expiry.
//!
//! It is written from the API model, independently of the driver (its own patterns, its own
//! JSON), so the two check each other. Deliberate errors are 4xx (the SDK retries 5xx).
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use regex::Regex;
use serde_json::{json, Value};

use crate::s3_server::TestS3;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// Behaviour the tests can change at any time.
pub struct Knobs {
    /// Milliseconds between status changes (Submitted → Validating → Scheduled → InProgress).
    pub step_ms: AtomicU64,
    /// Records processed per tick while InProgress.
    pub records_per_tick: AtomicU64,
    /// Milliseconds per tick.
    pub tick_ms: AtomicU64,
    /// Every n-th record of a job gets an error line instead of a result (0: none).
    pub error_every: AtomicU64,
    /// Every n-th record of a job is processed but left out of the output (0: none).
    pub omit_every: AtomicU64,
    /// The job stops making progress (still InProgress) once it has processed this many records
    /// (0: never), until it is stopped or times out.
    pub stall_after_records: AtomicU64,
    /// The job times out once it has processed this many records (0: never): a deterministic
    /// PartiallyCompleted.
    pub timeout_after_records: AtomicU64,
    /// How many milliseconds an emulated hour lasts (a job's timeout is hours × this).
    pub hour_ms: AtomicU64,
    /// Milliseconds a job waits in Scheduled before it starts.
    pub schedule_ms: AtomicU64,
    /// Answer the next n requests with 429 ThrottlingException.
    pub throttle_next: AtomicU32,
    /// "Sum of in-progress and submitted batch inference jobs" quota.
    pub max_active: AtomicU64,
    /// "Minimum number of records per batch inference job".
    pub min_records: AtomicU64,
    /// "Records per batch inference job" (and per input file).
    pub max_records: AtomicU64,
    /// "Batch inference input file size (in GB)", in bytes.
    pub max_file_bytes: AtomicU64,
    /// "Batch inference job size (in GB)", in bytes.
    pub max_job_bytes: AtomicU64,
    /// Most summaries per ListModelInvocationJobs page, whatever maxResults says.
    pub max_page: AtomicU64,
    /// CreateModelInvocationJob requests seen (answered or not).
    pub creates: AtomicU32,
    /// Requests answered with 429.
    pub throttled: AtomicU32,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            step_ms: AtomicU64::new(20),
            records_per_tick: AtomicU64::new(u64::MAX),
            tick_ms: AtomicU64::new(10),
            error_every: AtomicU64::new(0),
            omit_every: AtomicU64::new(0),
            stall_after_records: AtomicU64::new(0),
            timeout_after_records: AtomicU64::new(0),
            hour_ms: AtomicU64::new(3_600_000),
            schedule_ms: AtomicU64::new(20),
            throttle_next: AtomicU32::new(0),
            max_active: AtomicU64::new(20),
            min_records: AtomicU64::new(100),
            max_records: AtomicU64::new(50_000),
            max_file_bytes: AtomicU64::new(1_000_000_000),
            max_job_bytes: AtomicU64::new(5_000_000_000),
            max_page: AtomicU64::new(1000),
            creates: AtomicU32::new(0),
            throttled: AtomicU32::new(0),
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::SeqCst)
}

#[derive(Debug, Clone)]
struct Job {
    id: String,
    arn: String,
    request: Value,
    status: &'static str,
    message: Option<String>,
    submit_time: SystemTime,
    last_modified: SystemTime,
    end_time: Option<SystemTime>,
    total: Option<u64>,
    processed: u64,
    success: u64,
    error: u64,
    stop_requested: bool,
}

impl Job {
    fn timeout_hours(&self) -> u64 {
        self.request["timeoutDurationInHours"]
            .as_u64()
            .unwrap_or(24)
    }
    fn terminal(&self) -> bool {
        matches!(
            self.status,
            "Completed" | "PartiallyCompleted" | "Failed" | "Stopped" | "Expired"
        )
    }
}

#[derive(Default)]
struct State {
    jobs: Vec<Job>,
    tokens: HashMap<String, String>,
    next: u64,
}

/// A running emulator.
pub struct Emulator {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its behaviour.
    pub knobs: Arc<Knobs>,
    state: Arc<Mutex<State>>,
}

impl Emulator {
    /// Bedrock's status of a job (by id or ARN), as the emulator holds it.
    pub fn status(&self, job: &str) -> Option<String> {
        let id = job.rsplit('/').next().unwrap_or(job);
        let s = self.state.lock().unwrap();
        s.jobs
            .iter()
            .find(|j| j.id == id)
            .map(|j| j.status.to_owned())
    }

    /// Records a job has processed so far.
    pub fn processed(&self, job: &str) -> u64 {
        let id = job.rsplit('/').next().unwrap_or(job);
        let s = self.state.lock().unwrap();
        s.jobs
            .iter()
            .find(|j| j.id == id)
            .map_or(0, |j| j.processed)
    }

    /// Every job's id, oldest first.
    pub fn job_ids(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.jobs.iter().map(|j| j.id.clone()).collect()
    }

    /// The create request a job was made from.
    pub fn request(&self, job: &str) -> Option<Value> {
        let id = job.rsplit('/').next().unwrap_or(job);
        let s = self.state.lock().unwrap();
        s.jobs
            .iter()
            .find(|j| j.id == id)
            .map(|j| j.request.clone())
    }
}

/// Starts an emulator whose jobs read and write through `s3`.
pub fn start(s3: &TestS3) -> Emulator {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let knobs: Arc<Knobs> = Arc::default();
    let state: Arc<Mutex<State>> = Arc::default();
    let s3_opts = s3.options();
    let (k, st) = (Arc::clone(&knobs), Arc::clone(&state));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let s3 = s3_opts.client().await;
            let server = Arc::new(Server {
                knobs: k,
                state: st,
                s3,
                patterns: Patterns::new(),
            });
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let server = Arc::clone(&server);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let server = Arc::clone(&server);
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), svc)
                    .await;
                });
            }
        });
    });
    Emulator {
        endpoint,
        knobs,
        state,
    }
}

/// The botocore patterns, anchored.
struct Patterns {
    job_name: Regex,
    role_arn: Regex,
    token: Regex,
    model_id: Regex,
    s3_uri: Regex,
    kms_key: Regex,
    tag: Regex,
    vpc_id: Regex,
    job_identifier: Regex,
    account: Regex,
}

fn anchored(p: &str) -> Regex {
    Regex::new(&format!("^(?:{p})$")).unwrap()
}

impl Patterns {
    fn new() -> Self {
        Patterns {
            job_name: anchored(r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}"),
            role_arn: anchored(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+"),
            token: anchored(r"[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}"),
            model_id: anchored(concat!(
                r"(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:(([0-9]{12}:custom-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-:]{1,63}/[a-z0-9]{12}$)",
                r"|(:foundation-model/([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)$)",
                r"|([0-9]{12}:(inference-profile|application-inference-profile)/[a-zA-Z0-9-:.]+$)))",
                r"|([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)"
            )),
            s3_uri: anchored(
                r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?",
            ),
            kms_key: anchored(concat!(
                r"(arn:aws(-[^:]+)?:kms:[a-zA-Z0-9-]*:[0-9]{12}:((key/[a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)))",
                r"|([a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)"
            )),
            tag: anchored(r"[a-zA-Z0-9\s._:/=+@-]*"),
            vpc_id: anchored(r"[-0-9a-zA-Z]+"),
            job_identifier: anchored(
                r"((arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:model-invocation-job/)?[a-z0-9]{12})",
            ),
            account: anchored(r"[0-9]{12}"),
        }
    }
}

type Response = http::Response<Full<Bytes>>;

fn reply(status: u16, body: Value) -> Response {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-requestid", "emulator-request")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header(
            "x-amzn-ErrorType",
            format!("{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        )
        .header("x-amzn-requestid", "emulator-request")
        .body(Full::new(Bytes::from(
            json!({ "message": message }).to_string(),
        )))
        .unwrap()
}

fn validation(field: &str, value: &str, constraint: &str) -> Box<Response> {
    Box::new(error(
        400,
        "ValidationException",
        format!("1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"),
    ))
}

fn timestamp(t: SystemTime) -> String {
    DateTime::from(t).fmt(DateTimeFormat::DateTime).unwrap()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

struct Server {
    knobs: Arc<Knobs>,
    state: Arc<Mutex<State>>,
    s3: aws_sdk_s3::Client,
    patterns: Patterns,
}

impl Server {
    async fn handle(self: &Arc<Self>, req: http::Request<hyper::body::Incoming>) -> Response {
        // Every request is signed with SigV4 for the "bedrock" service, like the real one wants.
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !auth.starts_with("AWS4-HMAC-SHA256 ") || !auth.contains("/bedrock/aws4_request") {
            return error(
                403,
                "AccessDeniedException",
                "request not signed for bedrock",
            );
        }
        let throttle = self
            .knobs
            .throttle_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        if method == http::Method::POST && path == "/model-invocation-job" {
            self.knobs.creates.fetch_add(1, Ordering::SeqCst);
        }
        if throttle {
            self.knobs.throttled.fetch_add(1, Ordering::SeqCst);
            return error(
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            );
        }
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return error(400, "ValidationException", "unreadable body"),
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["model-invocation-job"]) => self.create(&body),
            ("GET", ["model-invocation-job", id]) => self.get(&percent_decode(id)),
            ("POST", ["model-invocation-job", id, "stop"]) => self.stop(&percent_decode(id)),
            ("GET", ["model-invocation-jobs"]) => self.list(&query),
            _ => error(404, "UnknownOperationException", format!("{method} {path}")),
        }
    }

    fn check_create(&self, r: &Value) -> Result<(), Box<Response>> {
        let p = &self.patterns;
        let string = |field: &str| -> Result<&str, Box<Response>> {
            r[field]
                .as_str()
                .ok_or_else(|| validation(field, "null", "Member must not be null"))
        };
        let matches = |field: &str, v: &str, re: &Regex, min: usize, max: usize| {
            if v.len() < min || v.len() > max {
                Err(validation(
                    field,
                    v,
                    &format!("Member must have length between {min} and {max}"),
                ))
            } else if !re.is_match(v) {
                Err(validation(
                    field,
                    v,
                    &format!(
                        "Member must satisfy regular expression pattern: {}",
                        re.as_str()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        matches("jobName", string("jobName")?, &p.job_name, 1, 63)?;
        matches("roleArn", string("roleArn")?, &p.role_arn, 0, 2048)?;
        matches("modelId", string("modelId")?, &p.model_id, 1, 2048)?;
        if let Some(token) = r.get("clientRequestToken") {
            let token = token.as_str().unwrap_or_default();
            matches("clientRequestToken", token, &p.token, 1, 256)?;
        }
        let input = &r["inputDataConfig"]["s3InputDataConfig"];
        let uri = input["s3Uri"].as_str().ok_or_else(|| {
            validation(
                "inputDataConfig.s3InputDataConfig.s3Uri",
                "null",
                "Member must not be null",
            )
        })?;
        matches(
            "inputDataConfig.s3InputDataConfig.s3Uri",
            uri,
            &p.s3_uri,
            1,
            1024,
        )?;
        if let Some(f) = input.get("s3InputFormat") {
            if f != "JSONL" {
                return Err(validation(
                    "s3InputFormat",
                    &f.to_string(),
                    "Member must satisfy enum value set: [JSONL]",
                ));
            }
        }
        if let Some(owner) = input.get("s3BucketOwner").and_then(Value::as_str) {
            matches("s3BucketOwner", owner, &p.account, 12, 12)?;
        }
        let output = &r["outputDataConfig"]["s3OutputDataConfig"];
        let uri = output["s3Uri"].as_str().ok_or_else(|| {
            validation(
                "outputDataConfig.s3OutputDataConfig.s3Uri",
                "null",
                "Member must not be null",
            )
        })?;
        matches(
            "outputDataConfig.s3OutputDataConfig.s3Uri",
            uri,
            &p.s3_uri,
            1,
            1024,
        )?;
        if let Some(key) = output.get("s3EncryptionKeyId") {
            matches(
                "s3EncryptionKeyId",
                key.as_str().unwrap_or_default(),
                &p.kms_key,
                1,
                2048,
            )?;
        }
        if let Some(hours) = r.get("timeoutDurationInHours") {
            let h = hours.as_i64().unwrap_or(-1);
            if !(24..=168).contains(&h) {
                return Err(validation(
                    "timeoutDurationInHours",
                    &hours.to_string(),
                    "Member must have value between 24 and 168",
                ));
            }
        }
        if let Some(t) = r.get("modelInvocationType") {
            if t != "InvokeModel" && t != "Converse" {
                return Err(validation(
                    "modelInvocationType",
                    &t.to_string(),
                    "Member must satisfy enum value set: [InvokeModel, Converse]",
                ));
            }
        }
        if let Some(tags) = r.get("tags") {
            let tags = tags.as_array().cloned().unwrap_or_default();
            if tags.len() > 200 {
                return Err(validation(
                    "tags",
                    "[...]",
                    "Member must have length less than or equal to 200",
                ));
            }
            for tag in &tags {
                matches(
                    "tags.member.key",
                    tag["key"].as_str().unwrap_or_default(),
                    &p.tag,
                    1,
                    128,
                )?;
                matches(
                    "tags.member.value",
                    tag["value"].as_str().unwrap_or_default(),
                    &p.tag,
                    0,
                    256,
                )?;
            }
        }
        if let Some(vpc) = r.get("vpcConfig") {
            for (field, max) in [("subnetIds", 16), ("securityGroupIds", 5)] {
                let ids = vpc[field].as_array().cloned().unwrap_or_default();
                if ids.is_empty() || ids.len() > max {
                    return Err(validation(
                        &format!("vpcConfig.{field}"),
                        "[...]",
                        &format!("Member must have length between 1 and {max}"),
                    ));
                }
                for id in &ids {
                    matches(
                        &format!("vpcConfig.{field}.member"),
                        id.as_str().unwrap_or_default(),
                        &p.vpc_id,
                        0,
                        32,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn create(self: &Arc<Self>, body: &[u8]) -> Response {
        let Ok(r) = serde_json::from_slice::<Value>(body) else {
            return error(400, "ValidationException", "the body is not JSON");
        };
        if let Err(resp) = self.check_create(&r) {
            return *resp;
        }
        let mut state = self.state.lock().unwrap();
        let token = r["clientRequestToken"].as_str().map(str::to_owned);
        if let Some(arn) = token.as_ref().and_then(|t| state.tokens.get(t)) {
            // "If this token matches a previous request, Amazon Bedrock ignores the request".
            return reply(200, json!({ "jobArn": arn }));
        }
        let active = state.jobs.iter().filter(|j| !j.terminal()).count() as u64;
        if active >= get(&self.knobs.max_active) {
            return error(400, "ServiceQuotaExceededException", format!(
                "You have reached the maximum number of in-progress and submitted batch inference jobs ({active}) for this model."
            ));
        }
        state.next += 1;
        let id = format!("emu{:09}", state.next);
        let arn = format!("arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{id}");
        let now = SystemTime::now();
        state.jobs.push(Job {
            id: id.clone(),
            arn: arn.clone(),
            request: r,
            status: "Submitted",
            message: None,
            submit_time: now,
            last_modified: now,
            end_time: None,
            total: None,
            processed: 0,
            success: 0,
            error: 0,
            stop_requested: false,
        });
        if let Some(t) = token {
            state.tokens.insert(t, arn.clone());
        }
        drop(state);
        let server = Arc::clone(self);
        tokio::spawn(async move { server.run(id).await });
        reply(200, json!({ "jobArn": arn }))
    }

    fn find(&self, identifier: &str) -> Result<Job, Box<Response>> {
        if !self.patterns.job_identifier.is_match(identifier) {
            return Err(validation(
                "jobIdentifier",
                identifier,
                "Member must satisfy regular expression pattern",
            ));
        }
        let id = identifier.rsplit('/').next().unwrap_or(identifier);
        let state = self.state.lock().unwrap();
        state
            .jobs
            .iter()
            .find(|j| j.id == id)
            .cloned()
            .ok_or_else(|| {
                Box::new(error(
                    404,
                    "ResourceNotFoundException",
                    format!("Could not find job {identifier}"),
                ))
            })
    }

    fn describe(&self, j: &Job) -> Value {
        let r = &j.request;
        let mut v = json!({
            "jobArn": j.arn,
            "jobName": r["jobName"],
            "modelId": r["modelId"],
            "roleArn": r["roleArn"],
            "status": j.status,
            "submitTime": timestamp(j.submit_time),
            "lastModifiedTime": timestamp(j.last_modified),
            "inputDataConfig": r["inputDataConfig"],
            "outputDataConfig": r["outputDataConfig"],
            "timeoutDurationInHours": j.timeout_hours(),
            "jobExpirationTime": timestamp(j.submit_time + Duration::from_secs(j.timeout_hours() * 3600)),
            "modelInvocationType": r.get("modelInvocationType").cloned().unwrap_or(json!("InvokeModel")),
            "processedRecordCount": j.processed,
            "successRecordCount": j.success,
            "errorRecordCount": j.error,
        });
        let o = v.as_object_mut().unwrap();
        if let Some(t) = r.get("clientRequestToken") {
            o.insert("clientRequestToken".into(), t.clone());
        }
        if let Some(vpc) = r.get("vpcConfig") {
            o.insert("vpcConfig".into(), vpc.clone());
        }
        if let Some(m) = &j.message {
            o.insert("message".into(), json!(m));
        }
        if let Some(e) = j.end_time {
            o.insert("endTime".into(), json!(timestamp(e)));
        }
        if let Some(t) = j.total {
            o.insert("totalRecordCount".into(), json!(t));
        }
        v
    }

    fn get(&self, identifier: &str) -> Response {
        match self.find(identifier) {
            Ok(j) => reply(200, self.describe(&j)),
            Err(resp) => *resp,
        }
    }

    fn stop(&self, identifier: &str) -> Response {
        let job = match self.find(identifier) {
            Ok(j) => j,
            Err(resp) => return *resp,
        };
        let mut state = self.state.lock().unwrap();
        let j = state.jobs.iter_mut().find(|j| j.id == job.id).unwrap();
        if j.terminal() {
            return error(
                400,
                "ValidationException",
                format!("Job {} is already in a terminal state ({})", j.id, j.status),
            );
        }
        if !j.stop_requested {
            j.stop_requested = true;
            j.status = "Stopping";
            j.last_modified = SystemTime::now();
        }
        reply(200, json!({}))
    }

    fn list(&self, query: &str) -> Response {
        let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let time = |k: &str| -> Result<Option<SystemTime>, Box<Response>> {
            match params.get(k) {
                None => Ok(None),
                Some(s) => DateTime::from_str(s, DateTimeFormat::DateTime)
                    .ok()
                    .and_then(|d| SystemTime::try_from(d).ok())
                    .map(Some)
                    .ok_or_else(|| validation(k, s, "Member must be an ISO-8601 date-time")),
            }
        };
        let after = match time("submitTimeAfter") {
            Ok(t) => t,
            Err(r) => return *r,
        };
        let before = match time("submitTimeBefore") {
            Ok(t) => t,
            Err(r) => return *r,
        };
        let max = match params.get("maxResults").map(|m| m.parse::<usize>()) {
            None => 1000,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => {
                return *validation(
                    "maxResults",
                    &params["maxResults"],
                    "Member must have value between 1 and 1000",
                )
            }
        };
        let start = match params.get("nextToken").map(|t| t.parse::<usize>()) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return *validation(
                    "nextToken",
                    &params["nextToken"],
                    "invalid pagination token",
                )
            }
        };
        let max = max.min(get(&self.knobs.max_page).max(1) as usize);
        let state = self.state.lock().unwrap();
        let mut jobs: Vec<&Job> = state
            .jobs
            .iter()
            .filter(|j| params.get("statusEquals").is_none_or(|s| s == j.status))
            .filter(|j| {
                params.get("nameContains").is_none_or(|n| {
                    j.request["jobName"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(n.as_str())
                })
            })
            .filter(|j| after.is_none_or(|t| j.submit_time > t))
            .filter(|j| before.is_none_or(|t| j.submit_time < t))
            .collect();
        if params.get("sortOrder").map(String::as_str) != Some("Ascending") {
            jobs.reverse();
        }
        let page: Vec<Value> = jobs
            .iter()
            .skip(start)
            .take(max)
            .map(|j| self.describe(j))
            .collect();
        let mut body = json!({ "invocationJobSummaries": page });
        if start + max < jobs.len() {
            body["nextToken"] = json!((start + max).to_string());
        }
        reply(200, body)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) -> Job {
        let mut state = self.state.lock().unwrap();
        let j = state.jobs.iter_mut().find(|j| j.id == id).unwrap();
        f(j);
        j.last_modified = SystemTime::now();
        j.clone()
    }

    fn finish(&self, id: &str, status: &'static str, message: Option<String>) {
        self.update(id, |j| {
            j.status = status;
            j.message = message;
            j.end_time = Some(SystemTime::now());
        });
    }

    /// Moves to `status` unless a stop was asked for; returns whether it did.
    fn advance(&self, id: &str, status: &'static str) -> bool {
        let job = self.update(id, |j| {
            if !j.stop_requested {
                j.status = status;
            }
        });
        !job.stop_requested
    }

    async fn run(self: Arc<Self>, id: String) {
        let step = || Duration::from_millis(get(&self.knobs.step_ms));
        let job = self.update(&id, |_| {});
        let deadline =
            job.submit_time + Duration::from_millis(job.timeout_hours() * get(&self.knobs.hour_ms));
        tokio::time::sleep(step()).await;
        if !self.advance(&id, "Validating") {
            return self.finish(&id, "Stopped", None);
        }
        tokio::time::sleep(step()).await;
        let files = match self.read_input(&job).await {
            Ok(files) => files,
            Err(message) => return self.finish(&id, "Failed", Some(message)),
        };
        let total: u64 = files.iter().map(|f| f.records.len() as u64).sum();
        self.update(&id, |j| j.total = Some(total));
        if !self.advance(&id, "Scheduled") {
            return self.finish(&id, "Stopped", None);
        }
        tokio::time::sleep(Duration::from_millis(get(&self.knobs.schedule_ms))).await;
        if SystemTime::now() > deadline {
            self.write_output(&job, &files, &[]).await;
            return self.finish(
                &id,
                "Expired",
                Some("The job was not started before its timeout.".into()),
            );
        }
        if !self.advance(&id, "InProgress") {
            self.write_output(&job, &files, &[]).await;
            return self.finish(&id, "Stopped", None);
        }
        let all: Vec<(usize, usize)> = files
            .iter()
            .enumerate()
            .flat_map(|(f, file)| (0..file.records.len()).map(move |r| (f, r)))
            .collect();
        let mut done = Vec::new();
        let mut ended = "Completed";
        let mut chunks = all
            .chunks(get(&self.knobs.records_per_tick).clamp(1, usize::MAX as u64) as usize)
            .peekable();
        while let Some(&chunk) = chunks.peek() {
            let job_now = self.update(&id, |_| {});
            if job_now.stop_requested {
                ended = "Stopped";
                break;
            }
            let out_of_records = get(&self.knobs.timeout_after_records);
            if SystemTime::now() > deadline
                || (out_of_records > 0 && done.len() as u64 >= out_of_records)
            {
                ended = "PartiallyCompleted";
                break;
            }
            let stall = get(&self.knobs.stall_after_records);
            if stall > 0 && done.len() as u64 >= stall {
                tokio::time::sleep(Duration::from_millis(get(&self.knobs.tick_ms))).await;
                continue;
            }
            chunks.next();
            let error_every = get(&self.knobs.error_every);
            let mut errors = 0;
            for &(f, r) in chunk {
                let n = done.len() as u64 + 1;
                let failed = error_every > 0 && n.is_multiple_of(error_every);
                errors += failed as u64;
                done.push((f, r, failed));
            }
            let count = chunk.len() as u64;
            self.update(&id, |j| {
                j.processed += count;
                j.error += errors;
                j.success += count - errors;
            });
            if chunk.len() < all.len() {
                tokio::time::sleep(Duration::from_millis(get(&self.knobs.tick_ms))).await;
            }
        }
        self.write_output(&job, &files, &done).await;
        let message = (ended == "PartiallyCompleted")
            .then(|| "Not all of your records could be processed in time.".to_owned());
        self.finish(&id, ended, message);
    }

    async fn read_input(&self, job: &Job) -> Result<Vec<InputFile>, String> {
        let uri = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (bucket, prefix) = split_uri(&uri);
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| format!("Bedrock could not list {uri}: {e}"))?;
            for o in page.contents() {
                keys.push(o.key().unwrap_or_default().to_owned());
            }
        }
        if prefix.ends_with(".jsonl") || !prefix.ends_with('/') && !prefix.is_empty() {
            keys.retain(|k| *k == prefix);
        }
        keys.retain(|k| k.ends_with(".jsonl"));
        keys.sort();
        if keys.is_empty() {
            return Err(format!("No .jsonl files were found at {uri}."));
        }
        let max = get(&self.knobs.max_records);
        let mut files = Vec::new();
        let mut job_bytes = 0u64;
        for key in keys {
            let obj = self
                .s3
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| format!("Bedrock could not read s3://{bucket}/{key}: {e}"))?;
            let bytes = obj
                .body
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .into_bytes();
            let max_file = get(&self.knobs.max_file_bytes);
            if bytes.len() as u64 > max_file {
                return Err(format!(
                    "s3://{bucket}/{key} is {} bytes; the quota is {max_file} bytes per input file.",
                    bytes.len()
                ));
            }
            job_bytes += bytes.len() as u64;
            let mut records = Vec::new();
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v: Value = serde_json::from_slice(line).map_err(|_| {
                    format!("Line {} of s3://{bucket}/{key} is not valid JSON.", i + 1)
                })?;
                if !v.get("modelInput").is_some_and(Value::is_object) {
                    return Err(format!(
                        "Line {} of s3://{bucket}/{key} is not a record with a modelInput object.",
                        i + 1
                    ));
                }
                records.push(v);
            }
            if records.len() as u64 > max {
                return Err(format!(
                    "s3://{bucket}/{key} has {} records; the quota is {max} per file.",
                    records.len()
                ));
            }
            let name = key[prefix.rfind('/').map_or(0, |i| i + 1)..].to_owned();
            files.push(InputFile { name, records });
        }
        let max_job = get(&self.knobs.max_job_bytes);
        if job_bytes > max_job {
            return Err(format!(
                "The job's input is {job_bytes} bytes; the quota is {max_job} bytes per batch inference job."
            ));
        }
        let total: u64 = files.iter().map(|f| f.records.len() as u64).sum();
        let min = get(&self.knobs.min_records);
        if total < min {
            return Err(format!(
                "The job has {total} records, fewer than the minimum of {min} records per batch inference job."
            ));
        }
        if total > max {
            return Err(format!(
                "The job has {total} records; the quota is {max} records per batch inference job."
            ));
        }
        Ok(files)
    }

    /// Writes `<output>/<job-id>/<file>.out` for the records in `done` (shuffled) and
    /// `manifest.json.out`.
    async fn write_output(&self, job: &Job, files: &[InputFile], done: &[(usize, usize, bool)]) {
        let uri = job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
            .as_str()
            .unwrap_or_default();
        let (bucket, prefix) = split_uri(uri);
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix
        } else {
            format!("{prefix}/")
        };
        let converse = job.request["modelInvocationType"] == "Converse";
        let model = job.request["modelId"].as_str().unwrap_or_default();
        let omit_every = get(&self.knobs.omit_every);
        let mut per_file: Vec<Vec<(u64, String)>> = vec![Vec::new(); files.len()];
        let (mut input_tokens, mut output_tokens) = (0u64, 0u64);
        for (n, &(f, r, failed)) in done.iter().enumerate() {
            if omit_every > 0 && (n as u64 + 1).is_multiple_of(omit_every) {
                continue;
            }
            let record = &files[f].records[r];
            let record_id = record["recordId"].as_str().unwrap_or_default();
            let input = &record["modelInput"];
            let mut line = json!({ "recordId": record_id, "modelInput": input });
            if failed {
                line["error"] = json!({
                    "errorCode": 400,
                    "errorMessage": format!("Malformed input request: emulated failure of {record_id}")
                });
            } else {
                let prompt = (input.to_string().len() / 4) as u64 + 1;
                let text = format!("Emulated answer to {record_id}.");
                input_tokens += prompt;
                // Embeddings models answer by the shape of their body (Titan, Nova
                // multimodal); they make no output tokens, and Nova reports no input tokens.
                let titan = input.get("inputText").is_some() || input.get("inputImage").is_some();
                let nova_embed = input.get("taskType").is_some();
                if !(titan || nova_embed) {
                    output_tokens += 6;
                }
                line["modelOutput"] = if titan {
                    json!({"embedding": [0.25, -0.5, 0.125], "inputTextTokenCount": prompt})
                } else if nova_embed {
                    json!({"embeddings": [{"embeddingType": "TEXT", "embedding": [0.5, 0.25, -1.0]}]})
                } else if converse || input["schemaVersion"] == "messages-v1" {
                    // Converse jobs, and Nova's InvokeModel body, answer in Converse's shape.
                    json!({
                        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                        "stopReason": "end_turn",
                        "usage": {"inputTokens": prompt, "outputTokens": 6, "totalTokens": prompt + 6}
                    })
                } else if input.get("max_gen_len").is_some() {
                    json!({
                        "generation": text,
                        "prompt_token_count": prompt,
                        "generation_token_count": 6,
                        "stop_reason": "stop"
                    })
                } else if input.get("prompt").is_some() {
                    json!({"outputs": [{"text": text, "stop_reason": "stop"}]})
                } else if input.get("anthropic_version").is_none() {
                    // The OpenAI-shaped chat bodies (gpt-oss, Mistral's chat models, open-weight).
                    json!({
                        "id": format!("chatcmpl-emu-{record_id}"),
                        "object": "chat.completion",
                        "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": 6, "total_tokens": prompt + 6}
                    })
                } else {
                    json!({
                        "id": format!("msg_emu_{record_id}"),
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [{"type": "text", "text": text}],
                        "stop_reason": "end_turn",
                        "stop_sequence": null,
                        "usage": {"input_tokens": prompt, "output_tokens": 6}
                    })
                };
            }
            per_file[f].push((fnv(record_id.as_bytes()), line.to_string()));
        }
        for (file, mut lines) in files.iter().zip(per_file) {
            // Bedrock does not keep the input order.
            lines.sort();
            let mut body = String::new();
            for (_, l) in lines {
                body.push_str(&l);
                body.push('\n');
            }
            self.put(
                &bucket,
                &format!("{prefix}{}/{}.out", job.id, file.name),
                body,
            )
            .await;
        }
        let job_now = self.update(&job.id, |_| {});
        let manifest = json!({
            "totalRecordCount": job_now.total.unwrap_or(0),
            "processedRecordCount": job_now.processed,
            "successRecordCount": job_now.success,
            "errorRecordCount": job_now.error,
            "inputTokenCount": input_tokens,
            "outputTokenCount": output_tokens,
        });
        self.put(
            &bucket,
            &format!("{prefix}{}/manifest.json.out", job.id),
            manifest.to_string(),
        )
        .await;
    }

    async fn put(&self, bucket: &str, key: &str, body: String) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("emulator writing s3://{bucket}/{key}: {e:?}"));
    }
}

struct InputFile {
    name: String,
    records: Vec<Value>,
}

fn split_uri(uri: &str) -> (String, String) {
    let rest = uri.strip_prefix("s3://").unwrap_or(uri);
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (bucket.to_owned(), key.to_owned())
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
