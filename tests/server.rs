//! `serve` over HTTP, in process, against the Bedrock emulator and the test S3 server: the paths
//! the OpenAI SDK takes (the SDK itself drives the same server in `.ci/run`).

mod bedrock_emulator;
mod common;
mod s3_server;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedrock_batch::driver::{BedrockOptions, Driver};
use bedrock_batch::io::Storage;
use bedrock_batch::server::{key_hash, Server, ServerConfig};
use bytes::Bytes;
use common::http::send;
use http_body_util::Full;
use serde_json::{json, Value};

const ALICE: &str = "sk-alice";
const BOB: &str = "sk-bob";

struct Env {
    s3: s3_server::TestS3,
    bucket: String,
    emu: bedrock_emulator::Emulator,
    config: ServerConfig,
    rt: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    stop: Option<tokio_util::sync::CancellationToken>,
    done: Option<tokio::task::JoinHandle<()>>,
}

fn config(bucket: &str) -> ServerConfig {
    let text = format!(
        r#"
staging = "s3://{bucket}/serve/"
role_arn = "arn:aws:iam::123456789012:role/BedrockBatch"
poll_interval = "50ms"

[models.gpt-4o-mini]
model_id = "anthropic.claude-3-haiku-20240307-v1:0"

[models.other]
model_id = "amazon.nova-lite-v1:0"

[[keys]]
name = "alice"
sha256 = "{}"
models = ["gpt-4o-mini"]

[[keys]]
name = "bob"
sha256 = "{}"
models = ["other"]
"#,
        key_hash(ALICE),
        key_hash(BOB)
    );
    ServerConfig::parse(&text).unwrap()
}

impl Env {
    fn new(hint: &str) -> Env {
        let s3 = s3_server::server();
        let emu = bedrock_emulator::start(&s3);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let bucket = rt.block_on(s3.bucket(hint));
        let mut env = Env {
            config: config(&bucket),
            bucket: bucket.clone(),
            s3,
            emu,
            rt,
            addr: "127.0.0.1:0".parse().unwrap(),
            stop: None,
            done: None,
        };
        env.start();
        env
    }

    /// Starts a server (again) on the same staging prefix.
    fn start(&mut self) {
        let storage = Arc::new(Storage::new(self.s3.options()));
        let endpoint = self.emu.endpoint.clone();
        let config = self.config.clone();
        let (server, listener) = self.rt.block_on(async move {
            let driver = Driver::connect(&BedrockOptions {
                endpoint_url: Some(endpoint),
                ..Default::default()
            })
            .await;
            let server = Server::new(config, storage, driver).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            (server, listener)
        });
        self.addr = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        self.stop = Some(stop.clone());
        self.done = Some(self.rt.spawn(async move {
            server.serve(listener, stop).await.unwrap();
        }));
    }

    /// Stops the server (gracefully).
    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
        if let Some(done) = self.done.take() {
            self.rt.block_on(done).unwrap();
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Bytes) {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        self.rt
            .block_on(send(self.addr, method, path, key, &headers, body))
    }

    /// [`json`](Self::json) of a POST with these headers too.
    fn post_with(
        &self,
        path: &str,
        key: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        let (status, bytes) = self.rt.block_on(send(
            self.addr,
            "POST",
            path,
            Some(key),
            &all,
            body.to_string().into_bytes(),
        ));
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// The status and headers of an empty request.
    fn head_of(&self, method: &str, path: &str, key: &str) -> (u16, http::HeaderMap) {
        let addr = self.addr;
        let (method, path, key) = (method.to_owned(), path.to_owned(), key.to_owned());
        self.rt.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = http::Request::builder()
                .method(method.as_str())
                .uri(path.as_str())
                .header("host", addr.to_string())
                .header("authorization", format!("Bearer {key}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            (resp.status().as_u16(), resp.headers().clone())
        })
    }

    fn json(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let (status, bytes) = match body {
            Some(b) => self.request(
                method,
                path,
                Some(key),
                Some("application/json"),
                b.to_string().into_bytes(),
            ),
            None => self.request(method, path, Some(key), None, Vec::new()),
        };
        (
            status,
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)})),
        )
    }

    /// The ids `GET /v1/files` lists for `key`.
    fn file_ids(&self, key: &str) -> Vec<String> {
        let (status, list) = self.json("GET", "/v1/files", key, None);
        assert_eq!(status, 200, "{list}");
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn upload(&self, key: &str, content: &[u8]) -> (u16, Value) {
        self.upload_with(key, content, &[])
    }

    /// [`upload`](Self::upload) with more form fields, sent after the file (as the OpenAI SDK
    /// sends `expires_after`).
    fn upload_with(&self, key: &str, content: &[u8], fields: &[(&str, &str)]) -> (u16, Value) {
        let body = common::http::upload_form(content, fields);
        let boundary = common::http::BOUNDARY;
        let (status, bytes) = self.request(
            "POST",
            "/v1/files",
            Some(key),
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body,
        );
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn create_batch(&self, key: &str, file_id: &str) -> (u16, Value) {
        self.create_batch_for(key, file_id, "/v1/chat/completions")
    }

    fn create_batch_for(&self, key: &str, file_id: &str, endpoint: &str) -> (u16, Value) {
        self.json(
            "POST",
            "/v1/batches",
            key,
            Some(json!({"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", "metadata": {"run": "test"}})),
        )
    }

    /// Polls a batch until it reaches a final status.
    fn wait(&self, key: &str, id: &str) -> Value {
        common::http::poll_until_ended(Duration::from_secs(60), || {
            self.json("GET", &format!("/v1/batches/{id}"), key, None)
        })
    }

    fn content(&self, key: &str, id: &str) -> Vec<Value> {
        let (status, bytes) = self.request(
            "GET",
            &format!("/v1/files/{id}/content"),
            Some(key),
            None,
            Vec::new(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        common::json_lines(&bytes)
    }
}

impl Env {
    fn s3_get(&self, key: &str) -> Vec<u8> {
        self.rt.block_on(self.s3.get(&self.bucket, key))
    }

    fn s3_put(&self, key: &str, body: Vec<u8>) {
        self.rt.block_on(self.s3.put(&self.bucket, key, body));
    }

    /// Every object and open multipart upload in the bucket.
    fn stored(&self) -> (Vec<String>, usize) {
        self.rt.block_on(async {
            let client = self.s3.client().await;
            let listed = client
                .list_objects_v2()
                .bucket(&self.bucket)
                .send()
                .await
                .unwrap();
            let keys = listed
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .map(str::to_owned)
                .collect();
            let uploads = client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .send()
                .await
                .unwrap()
                .uploads()
                .len();
            (keys, uploads)
        })
    }

    /// Sends `head` and the first `cut` bytes of `body` on a raw connection, then hangs up.
    fn hang_up_mid_upload(&self, head: &str, body: &[u8], cut: usize) {
        use tokio::io::AsyncWriteExt;
        let addr = self.addr;
        let (head, part) = (head.to_owned(), body[..cut].to_vec());
        self.rt.block_on(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&part).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(stream);
        });
    }
}

/// A multipart body with the given fields (`(name, filename, content)`).
fn form(boundary: &str, fields: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in fields {
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn every_id_once(output: &[Value], errors: &[Value], n: u64) {
    let mut seen = std::collections::BTreeMap::new();
    for l in output.iter().chain(errors) {
        *seen
            .entry(l["custom_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len() as u64, n);
    assert!(seen.values().all(|&c| c == 1));
}

#[test]
fn upload_create_poll_download_every_custom_id_once() {
    let e = Env::new("srv");
    e.emu.knobs.error_every.store(10, Ordering::SeqCst);
    let (status, file) = e.upload(ALICE, &common::sample(150));
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["object"], "file");
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["filename"], "requests.jsonl");
    assert_eq!(file["bytes"], common::sample(150).len());
    let file_id = file["id"].as_str().unwrap();
    let (status, got) = e.json("GET", &format!("/v1/files/{file_id}"), ALICE, None);
    assert_eq!((status, &got["id"]), (200, &file["id"]));

    // A batch Bedrock no longer knows (its job is gone), listed first, must not hold up the
    // others: the background task goes on to the next batch.
    let (_, other) = e.upload(ALICE, &common::sample(100));
    let other_id = other["id"].as_str().unwrap();
    let bucket = e
        .config
        .staging
        .trim_start_matches("s3://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let job = json!({"index": 0, "job_arn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/zzzzzzzzzzzz",
        "job_name": "gone", "client_request_token": "t", "submitted_at": 1, "model_id": "m",
        "role_arn": "arn:aws:iam::123456789012:role/R", "input_uri": "s3://x/", "output_uri": "s3://x/",
        "timeout_hours": 24, "invocation_type": "InvokeModel"});
    let stuck = json!({"id": "batch_0000", "input_file_id": other_id, "owner": "alice",
        "endpoint": "/v1/chat/completions", "completion_window": "24h", "created_at": 1});
    e.rt.block_on(async {
        let client = e.s3.client().await;
        for (key, value) in [
            (format!("serve/files/{other_id}/jobs/job000.json"), job),
            ("serve/batches/batch_0000.json".to_owned(), stuck),
        ] {
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .body(value.to_string().into_bytes().into())
                .send()
                .await
                .unwrap();
        }
    });
    let (status, batch) = e.create_batch(ALICE, file_id);
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["object"], "batch");
    assert_eq!(batch["input_file_id"], file_id);
    assert_eq!(batch["metadata"], json!({"run": "test"}));
    // Not ended yet — unless the (fast) emulator already finished the job, in which case the
    // results are being converted.
    assert!(
        ["validating", "in_progress", "finalizing"].contains(&batch["status"].as_str().unwrap()),
        "{batch}"
    );
    let id = batch["id"].as_str().unwrap();

    let done = e.wait(ALICE, id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["request_counts"],
        json!({"total": 150, "completed": 135, "failed": 15})
    );
    let output = e.content(ALICE, done["output_file_id"].as_str().unwrap());
    let errors = e.content(ALICE, done["error_file_id"].as_str().unwrap());
    assert_eq!((output.len(), errors.len()), (135, 15));
    every_id_once(&output, &errors, 150);
    // A results record that names another object (tampered with, or of another folder) is not
    // followed: the server serves results only from the batch's own results/.
    let report_key = format!("serve/files/{file_id}/results/report.json");
    let put = |body: Vec<u8>| e.s3_put(&report_key, body);
    let original = e.s3_get(&report_key);
    let mut tampered: Value = serde_json::from_slice(&original).unwrap();
    let elsewhere = format!("s3://{}/serve/files/{file_id}/batch.json", e.bucket);
    tampered["output"] = elsewhere.clone().into();
    put(tampered.to_string().into_bytes());
    let (status, body) = e.request(
        "GET",
        &format!(
            "/v1/files/{}/content",
            done["output_file_id"].as_str().unwrap()
        ),
        Some(ALICE),
        None,
        Vec::new(),
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("not served") && !body.contains("\"generation\""),
        "{body}"
    );
    put(original);
    assert_eq!(
        e.content(ALICE, done["output_file_id"].as_str().unwrap())
            .len(),
        135
    );
    // The output files are files too.
    let (status, f) = e.json(
        "GET",
        &format!("/v1/files/{}", done["output_file_id"].as_str().unwrap()),
        ALICE,
        None,
    );
    assert_eq!((status, f["purpose"].as_str()), (200, Some("batch_output")));
    // A file runs one batch.
    let (status, err) = e.create_batch(ALICE, file_id);
    assert_eq!(status, 400, "{err}");
    // The list holds the upload and the batch's two result files.
    let ids = e.file_ids(ALICE);
    for want in [
        file_id,
        done["output_file_id"].as_str().unwrap(),
        done["error_file_id"].as_str().unwrap(),
    ] {
        assert!(ids.iter().any(|id| id == want), "{want} in {ids:?}");
    }
    // The upload comes back byte for byte as it was sent.
    let (status, body) = e.request(
        "GET",
        &format!("/v1/files/{file_id}/content"),
        Some(ALICE),
        None,
        Vec::new(),
    );
    assert_eq!(status, 200);
    assert_eq!(body, common::sample(150));
    // Result files say their size.
    for id in [&done["output_file_id"], &done["error_file_id"]] {
        let id = id.as_str().unwrap();
        let (_, f) = e.json("GET", &format!("/v1/files/{id}"), ALICE, None);
        let (_, content) = e.request(
            "GET",
            &format!("/v1/files/{id}/content"),
            Some(ALICE),
            None,
            Vec::new(),
        );
        assert_eq!(f["bytes"], content.len(), "{id}");
    }
    // Deleted: gone for good.
    let (status, del) = e.json("DELETE", &format!("/v1/files/{file_id}"), ALICE, None);
    assert_eq!((status, &del["deleted"]), (200, &json!(true)));
    let (status, _) = e.json("GET", &format!("/v1/files/{file_id}"), ALICE, None);
    assert_eq!(status, 404);
}

#[test]
fn keys_see_only_their_own_and_use_only_their_models() {
    let e = Env::new("keys");
    let (status, err) = e.json("GET", "/v1/batches", "sk-wrong", None);
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "invalid_api_key");
    let (status, _) = e.request("GET", "/v1/batches", None, None, Vec::new());
    assert_eq!(status, 401);
    // Bob may not use gpt-4o-mini.
    let (status, err) = e.upload(BOB, &common::sample(120));
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["code"], "model_not_allowed");
    // Alice's file and batch are not Bob's to see.
    let (_, file) = e.upload(ALICE, &common::sample(120));
    let file_id = file["id"].as_str().unwrap();
    let (_, batch) = e.create_batch(ALICE, file_id);
    let id = batch["id"].as_str().unwrap();
    let (status, err) = e.json("GET", &format!("/v1/batches/{id}"), BOB, None);
    assert_eq!(status, 404, "{err}");
    let (status, _) = e.json("GET", &format!("/v1/files/{file_id}"), BOB, None);
    assert_eq!(status, 404);
    let (status, _) = e.json("POST", &format!("/v1/batches/{id}/cancel"), BOB, None);
    assert_eq!(status, 404);
    let (_, list) = e.json("GET", "/v1/batches", BOB, None);
    assert_eq!(list["data"], json!([]));
    // An unknown model is named.
    let line = br#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}}"#;
    let (status, err) = e.upload(ALICE, line);
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"].as_str().unwrap().contains("gpt-9"),
        "{err}"
    );
}

#[test]
fn a_file_with_bad_lines_makes_a_failed_batch_naming_them() {
    let e = Env::new("badlines");
    let mut content = common::sample(120);
    content.extend_from_slice(b"{not json\n");
    content.extend_from_slice(br#"{"custom_id":"request-0","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"dup"}]}}"#);
    content.push(b'\n');
    let (status, file) = e.upload(ALICE, &content);
    assert_eq!(status, 200, "{file}");
    let (status, batch) = e.create_batch(ALICE, file["id"].as_str().unwrap());
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["status"], "failed");
    let errors = batch["errors"]["data"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [121, 122]);
    assert_eq!(errors[0]["code"], "invalid_json");
    assert_eq!(errors[1]["code"], "duplicate_custom_id");
    assert_eq!(e.emu.job_ids().len(), 0, "nothing was submitted");
    // And it stays failed.
    let (_, again) = e.json(
        "GET",
        &format!("/v1/batches/{}", batch["id"].as_str().unwrap()),
        ALICE,
        None,
    );
    assert_eq!(again["status"], "failed");
}

#[test]
fn list_pages_newest_first() {
    let e = Env::new("paging");
    let (mut uploads, mut ids) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (_, file) = e.upload(ALICE, &common::sample(100));
        let (_, batch) = e.create_batch(ALICE, file["id"].as_str().unwrap());
        uploads.push(file["id"].as_str().unwrap().to_owned());
        ids.push(batch["id"].as_str().unwrap().to_owned());
        std::thread::sleep(Duration::from_millis(1100)); // created_at is in seconds
    }
    let list = |path: &str| -> (Vec<String>, Value) {
        let (status, page) = e.json("GET", path, ALICE, None);
        assert_eq!(status, 200, "{path}: {page}");
        let ids = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, page)
    };
    let (got, page) = list("/v1/batches?limit=2");
    assert_eq!(got, [ids[2].clone(), ids[1].clone()]);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["last_id"], ids[1]);
    let (got, page) = list(&format!("/v1/batches?limit=2&after={}", ids[1]));
    assert_eq!(got, [ids[0].clone()]);
    assert_eq!(page["has_more"], false);

    // Files page the same way, as OpenAI's list does: newest first or, with order=asc,
    // oldest first; of one purpose if asked.
    let (got, page) = list("/v1/files?purpose=batch&limit=2");
    assert_eq!(got, [uploads[2].clone(), uploads[1].clone()]);
    assert_eq!(
        (&page["has_more"], &page["last_id"]),
        (&json!(true), &json!(uploads[1]))
    );
    let (got, page) = list(&format!(
        "/v1/files?purpose=batch&limit=2&after={}",
        uploads[1]
    ));
    assert_eq!(got, [uploads[0].clone()]);
    assert_eq!(page["has_more"], false);
    let (got, page) = list("/v1/files?purpose=batch&order=asc");
    assert_eq!(got, uploads);
    assert_eq!(page["first_id"], uploads[0]);
    // Every file of every purpose pages through to the whole list, one at a time.
    let (all, _) = list("/v1/files");
    let (mut paged, mut after) = (Vec::new(), String::new());
    loop {
        let (got, page) = list(&format!("/v1/files?limit=1{after}"));
        paged.extend(got);
        if page["has_more"] == false {
            break;
        }
        after = format!("&after={}", page["last_id"].as_str().unwrap());
    }
    assert_eq!(paged, all);
    let (outputs, page) = list("/v1/files?purpose=batch_output");
    assert!(page["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["purpose"] == "batch_output"));
    assert_eq!(
        outputs.len(),
        all.len() - 3,
        "{all:?}: the rest are the results"
    );
    assert!(list("/v1/files?purpose=fine-tune").0.is_empty());
    // A cursor deleted while the client pages: the next page starts past where it stood, in
    // either order; a cursor that names nothing of the caller's is refused, not taken for the
    // end of the list.
    let (status, _) = e.json("DELETE", &format!("/v1/files/{}", uploads[1]), ALICE, None);
    assert_eq!(status, 200);
    let after = |order: &str| format!("/v1/files?purpose=batch&order={order}&after={}", uploads[1]);
    assert_eq!(list(&after("desc")).0, [uploads[0].clone()]);
    assert_eq!(list(&after("asc")).0, [uploads[2].clone()]);
    for path in [
        "/v1/files?after=file-000000000000000000000000".to_owned(),
        "/v1/batches?after=batch_000000000000000000000000".to_owned(),
    ] {
        let (status, err) = e.json("GET", &path, ALICE, None);
        assert_eq!(
            (status, &err["error"]["param"]),
            (400, &json!("after")),
            "{path}: {err}"
        );
    }
    let (status, err) = e.json("GET", &format!("/v1/batches?after={}", ids[0]), BOB, None);
    assert_eq!(
        (status, &err["error"]["param"]),
        (400, &json!("after")),
        "{err}"
    );
    let (status, err) = e.json("GET", &format!("/v1/files?after={}", uploads[0]), BOB, None);
    assert_eq!(
        (status, &err["error"]["param"]),
        (400, &json!("after")),
        "{err}"
    );
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=+1", "limit"),
        ("order=up", "order"),
    ] {
        let (status, err) = e.json("GET", &format!("/v1/files?{query}"), ALICE, None);
        assert_eq!(status, 400, "{query}: {err}");
        assert_eq!(err["error"]["param"], param, "{query}: {err}");
    }
}

#[test]
fn cancel_and_restart_mid_batch() {
    let mut e = Env::new("restart");
    e.emu.knobs.records_per_tick.store(20, Ordering::SeqCst);
    e.emu.knobs.stall_after_records.store(60, Ordering::SeqCst);
    let (_, f1) = e.upload(ALICE, &common::sample(150));
    let (_, b1) = e.create_batch(ALICE, f1["id"].as_str().unwrap());
    let (_, f2) = e.upload(ALICE, &common::sample(150));
    let (_, b2) = e.create_batch(ALICE, f2["id"].as_str().unwrap());
    let (id1, id2) = (
        b1["id"].as_str().unwrap().to_owned(),
        b2["id"].as_str().unwrap().to_owned(),
    );
    // Both jobs run, and stall part way.
    let started = Instant::now();
    while e
        .emu
        .job_ids()
        .iter()
        .filter(|j| e.emu.processed(j) >= 60)
        .count()
        < 2
    {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Cancel the first.
    let (status, c) = e.json("POST", &format!("/v1/batches/{id1}/cancel"), ALICE, None);
    assert_eq!(status, 200, "{c}");
    assert!(
        ["cancelling", "cancelled"].contains(&c["status"].as_str().unwrap()),
        "{c}"
    );
    // Restart the server while the second runs; it carries on from the staging prefix. Its
    // leases are given up as it shuts down: another server would take the batch over at once.
    let leases = |e: &Env| -> Vec<Value> {
        let (keys, _) = e.stored();
        keys.iter()
            .filter(|k| k.starts_with("serve/leases/"))
            .map(|k| serde_json::from_slice(&e.s3_get(k)).unwrap())
            .collect()
    };
    assert!(
        leases(&e).iter().any(|l| l["until_ms"].as_u64() > Some(0)),
        "a lease held while the batch runs"
    );
    e.shut_down();
    let after = leases(&e);
    assert!(after.iter().all(|l| l["until_ms"] == 0), "{after:?}");
    e.emu.knobs.stall_after_records.store(0, Ordering::SeqCst);
    e.start();
    let done = e.wait(ALICE, &id2);
    assert_eq!(done["status"], "completed", "{done}");
    every_id_once(
        &e.content(ALICE, done["output_file_id"].as_str().unwrap()),
        &e.content(ALICE, done["error_file_id"].as_str().unwrap()),
        150,
    );
    let cancelled = e.wait(ALICE, &id1);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let errors = e.content(ALICE, cancelled["error_file_id"].as_str().unwrap());
    let output = e.content(ALICE, cancelled["output_file_id"].as_str().unwrap());
    every_id_once(&output, &errors, 150);
    assert_eq!(output.len(), 60);
    assert!(errors
        .iter()
        .all(|l| l["error"]["code"] == "batch_cancelled"));
}

/// An upload refused or broken at any point leaves nothing under the staging prefix: no batch
/// folder, no record, no lock, no open upload.
#[test]
fn refused_and_broken_uploads_leave_nothing_in_the_staging_prefix() {
    let e = Env::new("refused");
    let b = "----bedrock-batch-test";
    let ct = format!("multipart/form-data; boundary={b}");
    let lines = common::sample(150);
    let post = |body: Vec<u8>| e.request("POST", "/v1/files", Some(ALICE), Some(&ct), body);
    let nothing_left = |what: &str| {
        let start = Instant::now();
        loop {
            let (mut keys, uploads) = e.stored();
            // The background task's lease on its sweep is the server's, not an upload's.
            keys.retain(|k| !k.starts_with("serve/leases/"));
            if keys.is_empty() && uploads == 0 {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what} left {keys:?} and {uploads} uploads"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // The purpose comes after the file, and is not batch.
    let (status, body) = post(form(
        b,
        &[
            ("file", Some("r.jsonl"), &lines),
            ("purpose", None, b"fine-tune"),
        ],
    ));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    nothing_left("a refused purpose");
    // No purpose at all.
    let (status, _) = post(form(b, &[("file", Some("r.jsonl"), &lines)]));
    assert_eq!(status, 400);
    nothing_left("a missing purpose");
    // Two files.
    let (status, body) = post(form(
        b,
        &[
            ("purpose", None, b"batch"),
            ("file", Some("a.jsonl"), &lines),
            ("file", Some("b.jsonl"), &lines),
        ],
    ));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    nothing_left("a second file field");
    // A body cut short: the closing boundary never comes.
    let whole = form(
        b,
        &[
            ("purpose", None, b"batch"),
            ("file", Some("r.jsonl"), &lines),
        ],
    );
    let (status, _) = post(whole[..whole.len() / 2].to_vec());
    assert_eq!(status, 400);
    nothing_left("a truncated body");
    // The client goes away in the middle.
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ALICE}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\n\r\n",
        e.addr,
        whole.len()
    );
    e.hang_up_mid_upload(&head, &whole, whole.len() * 2 / 3);
    nothing_left("a client that hung up");
    // The store refuses the commit.
    if e.s3.in_process {
        e.s3.faults.commit_steps.store(0, Ordering::SeqCst);
        e.s3.faults.fail_commit_at.store(2, Ordering::SeqCst);
        let (status, _) = post(whole.clone());
        e.s3.faults.fail_commit_at.store(0, Ordering::SeqCst);
        assert_eq!(status, 500);
        nothing_left("a commit S3 refused");
    }
    // And a good upload still works.
    let (status, file) = e.upload(ALICE, &lines);
    assert_eq!(status, 200, "{file}");
    let (keys, _) = e.stored();
    assert!(keys.iter().any(|k| k.ends_with("/file.json")), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.ends_with(".bedrock-batch/lock")),
        "{keys:?}"
    );
}

/// A batch's body is checked as OpenAI checks it: a parameter of the wrong type is named as
/// such, and `metadata` keeps to OpenAI's limits (16 pairs, keys of 64 characters, values of
/// 512), counted in characters, not bytes.
#[test]
fn a_batch_body_is_checked_as_openai_checks_it() {
    let e = Env::new("body");
    let (_, file) = e.upload(ALICE, &common::sample(120));
    let id = file["id"].as_str().unwrap();
    let create = |body: Value| e.json("POST", "/v1/batches", ALICE, Some(body));
    let asked = |metadata: Value| {
        json!({"input_file_id": id, "endpoint": "/v1/chat/completions",
               "completion_window": "24h", "metadata": metadata})
    };
    let (status, err) = create(
        json!({"input_file_id": 123, "endpoint": "/v1/chat/completions",
                                      "completion_window": "24h"}),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "input_file_id");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expected a string, but got a number"),
        "{err}"
    );
    let (status, err) =
        create(json!({"endpoint": "/v1/chat/completions", "completion_window": "24h"}));
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Missing"),
        "{err}"
    );
    let pairs = |n: usize, key: usize, value: usize| -> Value {
        (0..n)
            .map(|i| (format!("{i:0>key$}"), json!("é".repeat(value))))
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    for (metadata, why) in [
        (pairs(17, 2, 1), "17 pairs"),
        (pairs(1, 65, 1), "longer than 64"),
        (pairs(1, 2, 513), "longer than 512"),
    ] {
        let (status, err) = create(asked(metadata));
        assert_eq!(status, 400, "{why}: {err}");
        assert_eq!(err["error"]["param"], "metadata", "{why}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(why),
            "{err}"
        );
    }
    // At the limits (the values 1,024 bytes each): taken, and given back as asked.
    let (status, batch) = create(asked(pairs(16, 64, 512)));
    assert_eq!(status, 200, "{batch}");
    let metadata = batch["metadata"].as_object().unwrap();
    for (key, value) in pairs(16, 64, 512).as_object().unwrap() {
        assert_eq!(metadata.get(key), Some(value), "{key}");
    }
}

/// The OpenAI SDK sends a create again when its answer was lost (`x-stainless-retry-count`);
/// the retry gets the batch the first request made, not a refusal for it, while a second
/// batch of the file asked for otherwise is still refused.
#[test]
fn a_retried_create_gets_the_batch_it_made() {
    let e = Env::new("retried");
    let (_, file) = e.upload(ALICE, &common::sample(120));
    let id = file["id"].as_str().unwrap();
    let body = json!({"input_file_id": id, "endpoint": "/v1/chat/completions",
                      "completion_window": "24h", "metadata": {"run": "a"}});
    let (status, first) = e.post_with("/v1/batches", ALICE, body.clone(), &[]);
    assert_eq!(status, 200, "{first}");
    let retry = [("x-stainless-retry-count", "1")];
    let (status, again) = e.post_with("/v1/batches", ALICE, body.clone(), &retry);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);
    // Not a retry, or a retry asking for something else: refused.
    let (status, err) = e.post_with("/v1/batches", ALICE, body.clone(), &[]);
    assert_eq!(status, 400, "{err}");
    let (status, err) = e.post_with(
        "/v1/batches",
        ALICE,
        body.clone(),
        &[("x-stainless-retry-count", "0")],
    );
    assert_eq!(status, 400, "{err}");
    let mut other = body.clone();
    other["metadata"]["run"] = json!("b");
    let (status, err) = e.post_with("/v1/batches", ALICE, other, &retry);
    assert_eq!(status, 400, "{err}");
    let mut other = body.clone();
    other["output_expires_after"] = json!({"anchor": "created_at", "seconds": 7200});
    let (status, err) = e.post_with("/v1/batches", ALICE, other, &retry);
    assert_eq!(status, 400, "{err}");
    // One batch in all.
    let (_, list) = e.json("GET", "/v1/batches", ALICE, None);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}

/// A batch's output or error file can be deleted, as on OpenAI: it answers 404 from then on
/// and its object goes, while the batch and its other file stay.
#[test]
fn a_batch_output_file_can_be_deleted() {
    let e = Env::new("delete-output");
    let (_, file) = e.upload(ALICE, &common::sample(150));
    let (_, b) = e.create_batch(ALICE, file["id"].as_str().unwrap());
    let done = e.wait(ALICE, b["id"].as_str().unwrap());
    assert_eq!(done["status"], "completed", "{done}");
    let out = done["output_file_id"].as_str().unwrap();
    let err = done["error_file_id"].as_str().unwrap();
    let results = |e: &Env| -> Vec<String> {
        e.stored()
            .0
            .into_iter()
            .filter(|k| {
                k.ends_with("/results/output.jsonl") || k.ends_with("/results/errors.jsonl")
            })
            .collect()
    };
    assert_eq!(results(&e).len(), 2, "{:?}", results(&e));
    // Not another key's to delete.
    let (status, _) = e.json("DELETE", &format!("/v1/files/{out}"), BOB, None);
    assert_eq!(status, 404);
    let (status, deleted) = e.json("DELETE", &format!("/v1/files/{out}"), ALICE, None);
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({"id": out, "object": "file", "deleted": true})
    );
    for path in [
        format!("/v1/files/{out}"),
        format!("/v1/files/{out}/content"),
    ] {
        let (status, _) = e.json("GET", &path, ALICE, None);
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = e.json("DELETE", &format!("/v1/files/{out}"), ALICE, None);
    assert_eq!(status, 404, "deleted once");
    let ids = e.file_ids(ALICE);
    assert!(!ids.iter().any(|id| id == out), "{ids:?}");
    assert!(ids.iter().any(|id| id == err), "{ids:?}");
    // A client paging as it deletes goes on past the deleted file (the error file is listed
    // right after the output file: the same second, and its id sorts before).
    let (status, page) = e.json(
        "GET",
        &format!("/v1/files?limit=1&after={out}"),
        ALICE,
        None,
    );
    assert_eq!(
        (status, &page["data"][0]["id"]),
        (200, &json!(err)),
        "{page}"
    );
    let left = results(&e);
    assert!(
        left.len() == 1 && left[0].ends_with("errors.jsonl"),
        "{left:?}"
    );
    // The error file and the batch stay as they were.
    let (status, _) = e.request(
        "GET",
        &format!("/v1/files/{err}/content"),
        Some(ALICE),
        None,
        Vec::new(),
    );
    assert_eq!(status, 200);
    let (status, again) = e.json(
        "GET",
        &format!("/v1/batches/{}", b["id"].as_str().unwrap()),
        ALICE,
        None,
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["status"].as_str(), again["output_file_id"].as_str()),
        (Some("completed"), Some(out))
    );
}

/// Requests are read as the client wrote them (regression: ids and query strings were
/// percent-decoded, HEAD was answered from GET routes, parser errors lost their words).
#[test]
fn requests_are_read_as_written() {
    let e = Env::new("written");
    let (_, file) = e.upload(ALICE, &common::sample(120));
    let (_, batch) = e.create_batch(ALICE, file["id"].as_str().unwrap());
    let id = batch["id"].as_str().unwrap();
    // An id is what it says, not what it decodes to.
    let encoded = id.replacen('_', "%5F", 1);
    let (status, err) = e.json("GET", &format!("/v1/batches/{encoded}"), ALICE, None);
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        err["error"]["message"],
        format!("No such batch: '{encoded}'")
    );
    for path in ["/v1/files/%FF", "/v1/files/%FF/content", "/v1/batches/%FF"] {
        let (status, err) = e.json("GET", path, ALICE, None);
        assert_eq!(status, 404, "{path}: {err}");
        assert_eq!(err["error"]["code"], "not_found", "{path}");
    }
    // Query strings too: `limit` without a value is no limit, an encoded one no number.
    let (status, list) = e.json("GET", "/v1/batches?limit", ALICE, None);
    assert_eq!(status, 200, "{list}");
    let (status, _) = e.json("GET", "/v1/batches?limit=%32", ALICE, None);
    assert_eq!(status, 400);
    // Only routed methods: HEAD is no GET, and a 404 names no allowed methods.
    let (status, _) = e.request("HEAD", "/v1/files", Some(ALICE), None, Vec::new());
    assert_eq!(status, 404);
    let (status, headers) = e.head_of("PUT", "/v1/files", ALICE);
    assert_eq!(status, 404);
    assert!(headers.get("allow").is_none(), "{headers:?}");
    // Messages quote the path as written.
    let (_, err) = e.json("GET", "//other//", ALICE, None);
    assert_eq!(err["error"]["message"], "Unknown path //other");
    // A JSON body over the limit, and a broken upload, in the parsers' own words.
    let big = vec![b' '; (1 << 20) + 1];
    let (status, bytes) = e.request(
        "POST",
        "/v1/batches",
        Some(ALICE),
        Some("application/json"),
        big,
    );
    assert_eq!(status, 400);
    let err: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        err["error"]["message"],
        "reading the request: length limit exceeded"
    );
    let boundary = "XBOUNDARYX";
    let unclosed = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n{{}}\n");
    let (status, bytes) = e.request(
        "POST",
        "/v1/files",
        Some(ALICE),
        Some(&format!("multipart/form-data; boundary={boundary}")),
        unclosed.into_bytes(),
    );
    assert_eq!(status, 400);
    let err: Value = serde_json::from_slice(&bytes).unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("reading the upload: ") && message.contains("incomplete"),
        "{message}"
    );
}

#[test]
fn models_are_the_ones_the_key_may_use() {
    let e = Env::new("models");
    let (status, list) = e.json("GET", "/v1/models", ALICE, None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini"]);
    let (status, m) = e.json("GET", "/v1/models/gpt-4o-mini", ALICE, None);
    assert_eq!((status, &m["object"]), (200, &json!("model")));
    // Another key's model, and one not configured, do not exist for this key.
    for name in ["other", "gpt-5"] {
        let (status, err) = e.json("GET", &format!("/v1/models/{name}"), ALICE, None);
        assert_eq!(status, 404, "{name}: {err}");
        assert_eq!(err["error"]["code"], "model_not_found");
    }
    let (status, _) = e.json("GET", "/v1/models", "sk-wrong", None);
    assert_eq!(status, 401);
}

#[test]
fn a_server_keeping_no_uploads_says_so_and_writes_none() {
    let mut e = Env::new("nokeep");
    e.shut_down();
    e.config.keep_uploads = false;
    e.start();
    let (status, file) = e.upload(ALICE, &common::sample(150));
    assert_eq!(status, 200, "{file}");
    let id = file["id"].as_str().unwrap();
    let (status, body) = e.request(
        "GET",
        &format!("/v1/files/{id}/content"),
        Some(ALICE),
        None,
        Vec::new(),
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("keep_uploads = false"));
    let (keys, _) = e.stored();
    assert!(
        !keys.iter().any(|k| k.ends_with("upload.jsonl")),
        "{keys:?}"
    );
}

/// Polls `what` until it holds (the background task runs on its own clock).
fn eventually(what: &str, mut holds: impl FnMut() -> bool) {
    let started = Instant::now();
    while !holds() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{what}: not within a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn expired_uploads_and_outputs_are_deleted_and_the_batch_stays() {
    let mut e = Env::new("expiry");
    e.shut_down();
    e.config.min_expires_after = 1;
    e.config.prices = bedrock_batch::pricing::Prices::parse(
        "[\"anthropic.claude-3-haiku-20240307-v1:0\"]\ninput = 0.25\noutput = 1.25\nbatch_discount = 0.5",
    )
    .unwrap();
    e.start();
    let expiring = |s: &'static str| {
        [
            ("expires_after[anchor]", "created_at"),
            ("expires_after[seconds]", s),
        ]
    };
    // Beyond OpenAI's 30 days, or with another anchor: refused by name, and nothing is kept.
    for fields in [
        expiring("2592001"),
        [
            ("expires_after[anchor]", "last_active_at"),
            ("expires_after[seconds]", "60"),
        ],
    ] {
        let (status, err) = e.upload_with(ALICE, &common::sample(150), &fields);
        assert_eq!(
            (status, &err["error"]["param"]),
            (400, &json!("expires_after")),
            "{err}"
        );
    }
    assert!(
        e.stored().0.iter().all(|k| !k.contains("/files/")),
        "{:?}",
        e.stored()
    );
    // Not asked: 30 days, as OpenAI keeps batch files.
    let (_, plain) = e.upload(ALICE, &common::sample(150));
    assert_eq!(
        plain["expires_at"],
        plain["created_at"].as_i64().unwrap() + 2_592_000
    );

    // An upload no batch uses goes whole; one a batch runs loses its upload, not its batch.
    let (status, lone) = e.upload_with(ALICE, &common::sample(150), &expiring("1"));
    assert_eq!(status, 200, "{lone}");
    assert_eq!(lone["expires_at"], lone["created_at"].as_i64().unwrap() + 1);
    let lone = lone["id"].as_str().unwrap().to_owned();
    let (_, used) = e.upload_with(ALICE, &common::sample(150), &expiring("3"));
    let used = used["id"].as_str().unwrap().to_owned();
    let (status, err) = e.json(
        "POST",
        "/v1/batches",
        ALICE,
        Some(json!({"input_file_id": used, "endpoint": "/v1/chat/completions", "completion_window": "24h",
                    "output_expires_after": {"anchor": "created_at", "seconds": "soon"}})),
    );
    assert_eq!(
        (status, &err["error"]["param"]),
        (400, &json!("output_expires_after")),
        "{err}"
    );
    let (status, b) = e.json(
        "POST",
        "/v1/batches",
        ALICE,
        Some(json!({"input_file_id": used, "endpoint": "/v1/chat/completions", "completion_window": "24h",
                    "output_expires_after": {"anchor": "created_at", "seconds": 1}})),
    );
    assert_eq!(status, 200, "{b}");
    let batch_id = b["id"].as_str().unwrap().to_owned();
    let done = e.wait(ALICE, &batch_id);
    assert_eq!(done["status"], "completed", "{done}");
    // The estimated cost of what ran, from the configured prices and the batch's own usage.
    let usage = &done["usage"];
    let want = (usage["input_tokens"].as_f64().unwrap() * 0.25
        + usage["output_tokens"].as_f64().unwrap() * 1.25)
        / 1e6
        * 0.5;
    let got: f64 = done["metadata"]["estimated_cost_usd"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(want > 0.0 && (got - want).abs() < 1e-6, "{got} vs {want}");
    let out_id = done["output_file_id"].as_str().unwrap().to_owned();

    // Gone for the API once expired, and from storage once the background task has been round.
    eventually("everything expired", || {
        [&lone, &used, &out_id]
            .iter()
            .all(|id| e.json("GET", &format!("/v1/files/{id}"), ALICE, None).0 == 404)
    });
    eventually("the expired objects removed", || {
        let keys = e.stored().0;
        !keys.iter().any(|k| {
            k.contains(&format!("/files/{lone}/"))
                || k.ends_with(&format!("/files/{used}/upload.jsonl"))
                || k.ends_with(&format!("/files/{used}/results/output.jsonl"))
        })
    });
    let (status, _) = e.request(
        "GET",
        &format!("/v1/files/{out_id}/content"),
        Some(ALICE),
        None,
        Vec::new(),
    );
    assert_eq!(status, 404);
    let (keys, _) = e.stored();
    assert!(
        !keys.iter().any(|k| k.contains(&format!("/files/{lone}/"))),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(&format!("/files/{used}/upload.jsonl"))),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(&format!("/files/{used}/results/output.jsonl"))),
        "{keys:?}"
    );
    // Every request and answer of the batch went with its outputs: its record stays.
    for data in ["/input/", "/ids/", "/output/", "rejected.jsonl"] {
        assert!(
            !keys
                .iter()
                .any(|k| k.contains(&format!("/files/{used}/gen-")) && k.contains(data)),
            "{data}: {keys:?}"
        );
    }
    assert!(keys
        .iter()
        .any(|k| k.ends_with(&format!("/files/{used}/batch.json"))));
    // The batch stays, as on OpenAI; so does the upload nothing expired.
    let (status, again) = e.json("GET", &format!("/v1/batches/{batch_id}"), ALICE, None);
    assert_eq!((status, &again["status"]), (200, &json!("completed")));
    let (status, _) = e.json(
        "GET",
        &format!("/v1/files/{}", plain["id"].as_str().unwrap()),
        ALICE,
        None,
    );
    assert_eq!(status, 200);
}

#[test]
fn expired_is_gone_at_once_and_deleted_is_removed() {
    let mut e = Env::new("expiry-at-once");
    e.shut_down();
    e.config.min_expires_after = 1;
    // The background task looks for expired files when it starts and then only every 30 s:
    // what this test sees between is the API's own judgement.
    e.config.poll_interval = "30s".into();
    e.start();
    let (status, f) = e.upload_with(
        ALICE,
        &common::sample(150),
        &[
            ("expires_after[anchor]", "created_at"),
            ("expires_after[seconds]", "2"),
        ],
    );
    assert_eq!(status, 200, "{f}");
    let id = f["id"].as_str().unwrap().to_owned();
    let expires_at = f["expires_at"].as_i64().unwrap();
    eventually("the clock passing expires_at", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            > expires_at
    });
    let (status, _) = e.json("GET", &format!("/v1/files/{id}"), ALICE, None);
    assert_eq!(status, 404);
    let (status, err) = e.create_batch(ALICE, &id);
    assert_eq!(status, 404, "{err}");
    let (_, list) = e.json("GET", "/v1/files", ALICE, None);
    assert!(!list.to_string().contains(&id), "{list}");
    assert!(
        e.stored()
            .0
            .iter()
            .any(|k| k.contains(&format!("/files/{id}/"))),
        "not swept yet: the 404 is the API's"
    );

    // A file no batch uses, deleted, goes whole at once.
    let (_, f) = e.upload(ALICE, &common::sample(150));
    let id = f["id"].as_str().unwrap().to_owned();
    let (status, _) = e.json("DELETE", &format!("/v1/files/{id}"), ALICE, None);
    assert_eq!(status, 200);
    let (keys, uploads) = e.stored();
    assert!(
        !keys.iter().any(|k| k.contains(&format!("/files/{id}/"))),
        "{keys:?}"
    );
    assert_eq!(uploads, 0);
    // Fields given twice are refused, naming them.
    let (status, err) = e.upload_with(
        ALICE,
        &common::sample(150),
        &[
            ("expires_after[seconds]", "3600"),
            ("expires_after[seconds]", "1"),
        ],
    );
    assert_eq!(
        (status, &err["error"]["param"]),
        (400, &json!("expires_after")),
        "{err}"
    );
}

#[test]
fn an_upload_cut_off_by_a_kill_is_removed_by_the_next_server() {
    let e = Env::new("orphans");
    // What a server killed mid-upload leaves: objects and an incomplete upload below a file's
    // folder, and no record.
    let folder = "serve/files/file-0123456789abcdef01234567/";
    e.s3_put(
        &format!("{folder}gen-20261130T000000Z-abcdef/input/job000/00000.jsonl"),
        b"{}\n".to_vec(),
    );
    e.rt.block_on(async {
        let client = e.s3.client().await;
        client
            .create_multipart_upload()
            .bucket(&e.bucket)
            .key(format!("{folder}upload.jsonl"))
            .send()
            .await
            .unwrap();
    });
    // A file with its record stays.
    let (status, kept) = e.upload(ALICE, &common::sample(150));
    assert_eq!(status, 200, "{kept}");
    eventually("the cut-off upload removed", || {
        let (keys, uploads) = e.stored();
        uploads == 0 && !keys.iter().any(|k| k.starts_with(folder))
    });
    let (status, _) = e.json(
        "GET",
        &format!("/v1/files/{}", kept["id"].as_str().unwrap()),
        ALICE,
        None,
    );
    assert_eq!(status, 200);
}

/// An embeddings batch on each multimodal embeddings model: its Batch object says
/// `/v1/embeddings`, every custom_id comes back once as an embeddings list, and Titan's token
/// counts reach the usage (Nova's model reports none).
#[test]
fn embeddings_batches_run_on_the_multimodal_models() {
    let mut e = Env::new("embed");
    e.shut_down();
    for (name, model_id) in [
        ("embed-titan", "amazon.titan-embed-image-v1"),
        ("embed-nova", "amazon.nova-2-multimodal-embeddings-v1:0"),
    ] {
        e.config.models.insert(
            name.to_owned(),
            bedrock_batch::server::ModelAlias {
                model_id: model_id.to_owned(),
                family: None,
                invocation_type: None,
            },
        );
        e.config.keys[0].models.push(name.to_owned());
    }
    e.start();
    for (name, usage) in [("embed-titan", true), ("embed-nova", false)] {
        let mut lines = String::new();
        for i in 0..120 {
            let input = if i % 3 == 0 {
                json!("data:image/png;base64,iVBORw0KGgo=")
            } else {
                json!(format!("text number {i}"))
            };
            lines +=
                &json!({"custom_id": format!("e{i}"), "method": "POST", "url": "/v1/embeddings",
                "body": {"model": name, "input": input, "dimensions": 256}})
                .to_string();
            lines.push('\n');
        }
        let (status, file) = e.upload(ALICE, lines.as_bytes());
        assert_eq!(status, 200, "{name}: {file}");
        let (status, batch) =
            e.create_batch_for(ALICE, file["id"].as_str().unwrap(), "/v1/embeddings");
        assert_eq!(status, 200, "{name}: {batch}");
        assert_eq!(batch["endpoint"], "/v1/embeddings");
        let done = e.wait(ALICE, batch["id"].as_str().unwrap());
        assert_eq!(done["status"], "completed", "{name}: {done}");
        assert_eq!(done["endpoint"], "/v1/embeddings");
        let output = e.content(ALICE, done["output_file_id"].as_str().unwrap());
        every_id_once(&output, &[], 120);
        for line in &output {
            let body = &line["response"]["body"];
            assert_eq!(body["object"], "list", "{line}");
            assert!(
                body["data"][0]["embedding"].as_array().unwrap().len() == 3,
                "{line}"
            );
            let tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
            assert_eq!(tokens > 0, usage, "{name}: {line}");
        }
        assert_eq!(
            done["usage"]["input_tokens"].as_u64().unwrap() > 0,
            usage,
            "{done}"
        );
    }
}

/// Two servers on one staging prefix behave as one: a batch of one file asked of both at the
/// same moment is made once (the other is told the file already runs as that batch), each
/// batch's job is submitted once, and every batch ends with every custom_id once, while both
/// servers' background tasks move the batches along.
#[test]
fn two_servers_on_one_prefix_make_each_batch_once() {
    let mut e = Env::new("replicas");
    let first = e.addr;
    // The first server keeps running; a second one starts on the same prefix.
    let (first_stop, first_done) = (e.stop.take(), e.done.take());
    e.start();
    let second = e.addr;
    let mut files = Vec::new();
    for k in 0..6u64 {
        e.addr = if k % 2 == 0 { first } else { second };
        let lines = String::from_utf8(common::sample(110))
            .unwrap()
            .replace("\"request-", &format!("\"f{k}-"));
        let (status, f) = e.upload(ALICE, lines.as_bytes());
        assert_eq!(status, 200, "{f}");
        files.push(f["id"].as_str().unwrap().to_owned());
    }
    let asks = files
        .iter()
        .flat_map(|id| [first, second].map(|addr| (addr, id.clone())))
        .collect();
    let asked =
        e.rt.block_on(common::http::create_batches_at_once(ALICE, asks));
    let batches: Vec<String> = asked.chunks(2).map(common::http::the_one_made).collect();
    // Listed once each, through either server.
    for addr in [first, second] {
        e.addr = addr;
        let (status, list) = e.json("GET", "/v1/batches?limit=100", ALICE, None);
        assert_eq!(status, 200, "{list}");
        let mut listed: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        listed.sort();
        let mut expected = batches.clone();
        expected.sort();
        assert_eq!(listed, expected);
    }
    for (k, id) in batches.iter().enumerate() {
        e.addr = if k % 2 == 0 { second } else { first };
        let b = e.wait(ALICE, id);
        assert_eq!(b["status"], "completed", "{b}");
        let output = e.content(ALICE, b["output_file_id"].as_str().unwrap());
        let ids: std::collections::BTreeSet<String> = output
            .iter()
            .map(|l| l["custom_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!((output.len(), ids.len()), (110, 110), "{id}");
    }
    assert_eq!(e.emu.job_ids().len(), 6, "one Bedrock job per batch");
    if let Some(stop) = first_stop {
        stop.cancel();
    }
    if let Some(done) = first_done {
        e.rt.block_on(done).unwrap();
    }
}

/// A server that stalls between committing an upload and writing its record (here: S3 takes
/// 2.5 s to store the record, while the sweep runs every 0.5 s) keeps its upload: the sweep
/// does not take the committed folder for one a kill cut off before its record.
#[test]
fn an_upload_whose_record_is_slow_to_write_is_kept() {
    let e = Env::new("late-record");
    assert!(
        e.s3.in_process,
        "fault injection needs the in-process S3 server"
    );
    *e.s3.faults.delay.lock().unwrap() = Some((http::Method::PUT, "/file.json".to_owned(), 2500));
    let (status, f) = e.upload(ALICE, &common::sample(150));
    *e.s3.faults.delay.lock().unwrap() = None;
    assert_eq!(status, 200, "{f}");
    let id = f["id"].as_str().unwrap();
    // Two sweeps more, for a removal to happen if it were to.
    std::thread::sleep(Duration::from_millis(1200));
    let (status, list) = e.json("GET", "/v1/files", ALICE, None);
    assert_eq!(status, 200, "{list}");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id),
        "{list}"
    );
    let (status, b) = e.json(
        "POST",
        "/v1/batches",
        ALICE,
        Some(
            json!({"input_file_id": id, "endpoint": "/v1/chat/completions",
            "completion_window": "24h"}),
        ),
    );
    assert_eq!(status, 200, "{b}");
    let done = e.wait(ALICE, b["id"].as_str().unwrap());
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        e.content(ALICE, done["output_file_id"].as_str().unwrap())
            .len(),
        150
    );
}

/// A cancel recorded whose job was not stopped — the job another server's background task
/// submitted after the cancel read the folder's jobs, or a server killed between recording the
/// cancel and stopping the jobs — is stopped by the background task, which stops every job of
/// a cancelled batch that still runs.
#[test]
fn a_cancelled_batch_whose_job_still_runs_is_stopped_by_the_background_task() {
    let e = Env::new("cancel-late");
    e.emu.knobs.records_per_tick.store(20, Ordering::SeqCst);
    e.emu.knobs.stall_after_records.store(60, Ordering::SeqCst);
    let (_, f) = e.upload(ALICE, &common::sample(150));
    let (status, b) = e.create_batch(ALICE, f["id"].as_str().unwrap());
    assert_eq!(status, 200, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    while !e.emu.job_ids().iter().any(|j| e.emu.processed(j) >= 60) {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    // The cancel as recorded, and no job stopped.
    let key = format!("serve/batches/{id}.json");
    let mut record: Value = serde_json::from_slice(&e.s3_get(&key)).unwrap();
    record["cancel_requested_at"] = json!(1);
    e.s3_put(&key, serde_json::to_vec(&record).unwrap());
    let done = e.wait(ALICE, &id);
    assert_eq!(done["status"], "cancelled", "{done}");
    let job = e.emu.job_ids().pop().unwrap();
    assert_eq!(e.emu.status(&job).as_deref(), Some("Stopped"));
    every_id_once(
        &e.content(ALICE, done["output_file_id"].as_str().unwrap()),
        &e.content(ALICE, done["error_file_id"].as_str().unwrap()),
        150,
    );
}

/// A batch record whose making a kill cut off before its file was attached (the file names no
/// batch) is removed by the sweep once it is old, index entry too; the file can still become a
/// batch.
#[test]
fn a_batch_whose_making_was_cut_off_is_removed() {
    let e = Env::new("unmade");
    let (_, f) = e.upload(ALICE, &common::sample(150));
    let file_id = f["id"].as_str().unwrap();
    let id = "batch_0123456789abcdef01234567";
    let record = json!({"id": id, "input_file_id": file_id, "owner": "alice",
        "endpoint": "/v1/chat/completions", "completion_window": "24h", "created_at": 1});
    let index = format!("serve/index/batches/{}/{id}", "616c696365");
    e.s3_put(&index, Vec::new());
    e.s3_put(
        &format!("serve/batches/{id}.json"),
        serde_json::to_vec(&record).unwrap(),
    );
    eventually("the unmade batch removed", || {
        let (keys, _) = e.stored();
        !keys.iter().any(|k| k.contains(id))
    });
    let (status, list) = e.json("GET", "/v1/batches", ALICE, None);
    assert_eq!((status, list["data"].as_array().unwrap().len()), (200, 0));
    let (status, b) = e.create_batch(ALICE, file_id);
    assert_eq!(status, 200, "{b}");
}

/// A file deleted through one server while another makes a batch of it: the batch is refused
/// as of a file that is not there (404), not with the error of its folder gone (500).
#[test]
fn a_file_deleted_while_another_server_makes_its_batch_is_not_found() {
    let mut e = Env::new("delete-race");
    let first = e.addr;
    let (first_stop, first_done) = (e.stop.take(), e.done.take());
    e.start();
    let second = e.addr;
    assert!(
        e.s3.in_process,
        "fault injection needs the in-process S3 server"
    );
    let (_, f) = e.upload(ALICE, &common::sample(150));
    let id = f["id"].as_str().unwrap().to_owned();
    // The first server stalls reading the file's folder; the second deletes the file meanwhile.
    *e.s3.faults.delay.lock().unwrap() = Some((http::Method::GET, "/batch.json".to_owned(), 1500));
    let create = e.rt.spawn(common::http::create_batches_at_once(
        ALICE,
        vec![(first, id.clone())],
    ));
    std::thread::sleep(Duration::from_millis(500));
    e.addr = second;
    let (status, deleted) = e.json("DELETE", &format!("/v1/files/{id}"), ALICE, None);
    assert_eq!(status, 200, "{deleted}");
    let answers = e.rt.block_on(create).unwrap();
    *e.s3.faults.delay.lock().unwrap() = None;
    let (status, body) = &answers[0];
    assert_eq!(*status, 404, "{body}");
    let (_, list) = e.json("GET", "/v1/batches", ALICE, None);
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    if let Some(stop) = first_stop {
        stop.cancel();
    }
    if let Some(done) = first_done {
        e.rt.block_on(done).unwrap();
    }
}

/// A batch record whose making a kill cut off, beside the batch a retry then made of the same
/// file: it is no batch — not listed, not found, and a cancel of it does not reach the real
/// batch through the folder they share.
#[test]
fn a_record_left_by_a_cut_off_create_is_no_batch() {
    let e = Env::new("leftover");
    e.emu.knobs.records_per_tick.store(20, Ordering::SeqCst);
    let (_, f) = e.upload(ALICE, &common::sample(150));
    let file_id = f["id"].as_str().unwrap();
    let leftover = "batch_0123456789abcdef0badc0de";
    let record = json!({"id": leftover, "input_file_id": file_id, "owner": "alice",
        "endpoint": "/v1/chat/completions", "completion_window": "24h",
        "created_at": common::now_secs()});
    e.s3_put(
        &format!("serve/batches/{leftover}.json"),
        serde_json::to_vec(&record).unwrap(),
    );
    e.s3_put(
        &format!("serve/index/batches/616c696365/{leftover}"),
        Vec::new(),
    );
    let (status, real) = e.create_batch(ALICE, file_id);
    assert_eq!(status, 200, "{real}");
    let real = real["id"].as_str().unwrap().to_owned();
    for (method, path) in [
        ("GET", format!("/v1/batches/{leftover}")),
        ("POST", format!("/v1/batches/{leftover}/cancel")),
    ] {
        let (status, body) = e.json(method, &path, ALICE, None);
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let (_, list) = e.json("GET", "/v1/batches", ALICE, None);
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [real.as_str()]);
    let done = e.wait(ALICE, &real);
    assert_eq!(done["status"], "completed", "{done}");
}
