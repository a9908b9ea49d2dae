//! Requests to a `serve` under test, over plain HTTP/1.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// One request to the server at `addr`: its status and body.
pub async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Bytes) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// The boundary of [`upload_form`]'s body.
pub const BOUNDARY: &str = "----bedrock-batch-test";

/// The multipart body of an upload of `content` (`purpose=batch`), with more form fields sent
/// after the file (as the OpenAI SDK sends `expires_after`).
pub fn upload_form(content: &[u8], fields: &[(&str, &str)]) -> Vec<u8> {
    let boundary = BOUNDARY;
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"requests.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n").as_bytes());
    body.extend_from_slice(content);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}").as_bytes(),
        );
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// Asks for a batch of each `(server, file id)` (chat completions, 24 h), all at the same
/// moment: each answer's status and body (JSON), in order.
pub async fn create_batches_at_once(
    key: &str,
    asks: Vec<(std::net::SocketAddr, String)>,
) -> Vec<(u16, serde_json::Value)> {
    let racing: Vec<_> = asks
        .into_iter()
        .map(|(addr, id)| {
            let body = serde_json::json!({"input_file_id": id,
                "endpoint": "/v1/chat/completions", "completion_window": "24h"});
            let key = key.to_owned();
            tokio::spawn(async move {
                let (status, bytes) = send(
                    addr,
                    "POST",
                    "/v1/batches",
                    Some(&key),
                    &[("content-type", "application/json")],
                    body.to_string().into_bytes(),
                )
                .await;
                (status, serde_json::from_slice(&bytes).unwrap())
            })
        })
        .collect();
    let mut out = Vec::new();
    for r in racing {
        out.push(r.await.unwrap());
    }
    out
}

/// The batch `get` answers with, asked again until it has ended (a test fails when it has not
/// after `limit`).
pub fn poll_until_ended(
    limit: std::time::Duration,
    mut get: impl FnMut() -> (u16, serde_json::Value),
) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let (status, b) = get();
        assert_eq!(status, 200, "{b}");
        if ["completed", "failed", "expired", "cancelled"].contains(&b["status"].as_str().unwrap())
        {
            return b;
        }
        assert!(started.elapsed() < limit, "still {b}");
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
}

/// Of the answers to asking several servers at once for a batch of one file, the id of the
/// batch made: exactly one answer is 200, every other a 400 naming that batch.
pub fn the_one_made(answers: &[(u16, serde_json::Value)]) -> String {
    let won: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(won.len(), 1, "exactly one batch: {answers:?}");
    let id = won[0]["id"].as_str().unwrap().to_owned();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("already runs as batch"), "{message}");
        assert!(message.contains(&id), "{message}");
    }
    id
}
