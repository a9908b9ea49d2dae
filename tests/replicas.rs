//! Several `serve` processes on one staging prefix behave as one server, and one killed with
//! SIGKILL in the middle of its batches leaves nothing undone and nothing done twice. The
//! servers are the real binary, each a process of its own; S3 is the in-process server (moto in
//! CI), Bedrock the emulator.

mod bedrock_emulator;
mod common;
mod s3_server;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bedrock_batch::server::key_hash;
use common::http::{create_batches_at_once, send, the_one_made, upload_form, BOUNDARY};
use serde_json::{json, Value};

const KEY: &str = "sk-replicas";

/// A `serve` process, killed (SIGKILL) when dropped.
struct Replica {
    child: Child,
    addr: SocketAddr,
    /// Its log (stderr), shown when the test fails.
    log: std::path::PathBuf,
}

impl Replica {
    fn start(
        config: &std::path::Path,
        s3: &str,
        bedrock: &str,
        log: std::path::PathBuf,
    ) -> Replica {
        let child = Command::new(env!("CARGO_BIN_EXE_bedrock-batch"))
            .args([
                "--endpoint-url",
                s3,
                "--bedrock-endpoint-url",
                bedrock,
                "serve",
            ])
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Killed if it never says where it listens.
        let mut replica = Replica {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let mut out = BufReader::new(replica.child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "serve ended");
            if let Some(url) = line.trim().strip_prefix("listening on http://") {
                replica.addr = url.parse().unwrap();
                // Its later output is not read: drained, so it never blocks on a full pipe.
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                return replica;
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    rt: tokio::runtime::Runtime,
    s3: s3_server::TestS3,
    bucket: String,
    emu: bedrock_emulator::Emulator,
    replicas: Vec<Replica>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let s3 = s3_server::server();
        let emu = bedrock_emulator::start(&s3);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let bucket = rt.block_on(s3.bucket("replicas"));
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("serve.toml");
        std::fs::write(
            &config,
            format!(
                r#"
staging = "s3://{bucket}/serve/"
role_arn = "arn:aws:iam::123456789012:role/BedrockBatch"
poll_interval = "100ms"

[models.gpt-4o-mini]
model_id = "anthropic.claude-3-haiku-20240307-v1:0"

[[keys]]
name = "team"
sha256 = "{}"
models = ["gpt-4o-mini"]
"#,
                key_hash(KEY)
            ),
        )
        .unwrap();
        let replicas = (0..n)
            .map(|i| {
                let log = dir.path().join(format!("serve-{i}.log"));
                Replica::start(&config, &s3.endpoint, &emu.endpoint, log)
            })
            .collect();
        Cluster {
            rt,
            s3,
            bucket,
            emu,
            replicas,
            _dir: dir,
        }
    }

    fn json(&self, replica: usize, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let addr = self.replicas[replica].addr;
        let (headers, body): (&[(&str, &str)], _) = match body {
            Some(b) => (
                &[("content-type", "application/json")],
                b.to_string().into_bytes(),
            ),
            None => (&[], Vec::new()),
        };
        let (status, bytes) = self
            .rt
            .block_on(send(addr, method, path, Some(KEY), headers, body));
        (status, parse(&bytes))
    }

    fn upload(&self, replica: usize, content: &[u8]) -> Value {
        let ct = format!("multipart/form-data; boundary={BOUNDARY}");
        let (status, bytes) = self.rt.block_on(send(
            self.replicas[replica].addr,
            "POST",
            "/v1/files",
            Some(KEY),
            &[("content-type", &ct)],
            upload_form(content, &[]),
        ));
        let file = parse(&bytes);
        assert_eq!(status, 200, "{file}");
        file
    }

    /// The batch once it has ended, asked of `replica`.
    fn wait(&self, replica: usize, id: &str) -> Value {
        common::http::poll_until_ended(Duration::from_secs(120), || {
            self.json(replica, "GET", &format!("/v1/batches/{id}"), None)
        })
    }

    fn content(&self, replica: usize, id: &str) -> Vec<Value> {
        let (status, bytes) = self.rt.block_on(send(
            self.replicas[replica].addr,
            "GET",
            &format!("/v1/files/{id}/content"),
            Some(KEY),
            &[],
            Vec::new(),
        ));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        common::json_lines(&bytes)
    }

    /// The keys below `prefix` in the bucket.
    fn keys(&self, prefix: &str) -> Vec<String> {
        self.rt.block_on(async {
            let listed = self
                .s3
                .client()
                .await
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap();
            listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect()
        })
    }

    /// The holder named in the lease of batch `id`, if one was written.
    fn lease_holder(&self, id: &str) -> Option<String> {
        let key = format!("serve/leases/batch-{id}.json");
        let bytes = self.rt.block_on(async {
            let client = self.s3.client().await;
            let got = client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .ok()?;
            Some(got.body.collect().await.ok()?.into_bytes())
        })?;
        Some(parse(&bytes)["holder"].as_str()?.to_owned())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for r in &self.replicas {
                let log = std::fs::read_to_string(&r.log).unwrap_or_default();
                eprintln!("--- {} (pid {}):\n{log}", r.log.display(), r.child.id());
            }
        }
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(bytes)}))
}

/// Three replicas, requests spread across them (each batch asked of two at the same moment),
/// the one holding leases on running batches killed with SIGKILL: every batch is made once,
/// runs as one Bedrock job, ends `completed` through the survivors — the dead server's batches
/// taken over once their leases run out — with every custom_id once; and the survivors list
/// the same batches.
#[test]
fn three_replicas_one_killed_mid_batch_every_batch_once() {
    const FILES: usize = 9;
    const LINES: usize = 150;
    let mut c = Cluster::new(3);
    // Slow progress: the batches are still running when a server dies.
    c.emu.knobs.records_per_tick.store(5, Ordering::SeqCst);
    c.emu.knobs.tick_ms.store(100, Ordering::SeqCst);
    let mut files = Vec::new();
    for k in 0..FILES {
        let lines = String::from_utf8(common::sample(LINES as u64))
            .unwrap()
            .replace("\"request-", &format!("\"f{k}-"));
        files.push(
            c.upload(k % 3, lines.as_bytes())["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Every file is asked of two servers at the same moment: exactly one batch each.
    let asks = files
        .iter()
        .enumerate()
        .flat_map(|(k, id)| [k % 3, (k + 1) % 3].map(|r| (c.replicas[r].addr, id.clone())))
        .collect();
    let asked = c.rt.block_on(create_batches_at_once(KEY, asks));
    let batches: Vec<String> = asked.chunks(2).map(the_one_made).collect();

    // Wait until a server holds the lease of a batch whose job still runs, then kill it: another
    // server must take the batch over and finish it.
    let started = Instant::now();
    let (victim, running) = loop {
        let holder_of = |id: &String| {
            let holder = c.lease_holder(id)?;
            c.replicas
                .iter()
                .position(|r| holder.ends_with(&format!("-{}", r.child.id())))
        };
        let held: Vec<(usize, String)> = batches
            .iter()
            .filter_map(|id| Some((holder_of(id)?, id.clone())))
            .filter(|(_, id)| {
                let (_, b) = c.json(0, "GET", &format!("/v1/batches/{id}"), None);
                b["status"] == "in_progress" || b["status"] == "validating"
            })
            .collect();
        if let Some((victim, _)) = held.first() {
            let running: Vec<String> = held
                .iter()
                .filter(|(r, _)| r == victim)
                .map(|(_, id)| id.clone())
                .collect();
            break (*victim, running);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no server held a lease on a running batch"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(c.replicas.remove(victim));

    for (k, id) in batches.iter().enumerate() {
        let b = c.wait(k % 2, id);
        assert_eq!(b["status"], "completed", "{b}");
        assert_eq!(b["request_counts"]["total"], LINES as u64, "{b}");
        let output = c.content(k % 2, b["output_file_id"].as_str().unwrap());
        let ids: BTreeSet<String> = output
            .iter()
            .map(|l| l["custom_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!((output.len(), ids.len()), (LINES, LINES), "{id}");
        assert!(ids.iter().all(|i| i.starts_with(&format!("f{k}-"))), "{id}");
    }
    for id in &running {
        // Collected by a survivor, which removes the lease: the work is over.
        assert_eq!(c.lease_holder(id), None, "{id}");
    }
    assert_eq!(c.emu.job_ids().len(), FILES, "one Bedrock job per batch");
    // The survivors list the same batches, each once.
    for r in 0..2 {
        let (status, list) = c.json(r, "GET", "/v1/batches?limit=100", None);
        assert_eq!(status, 200, "{list}");
        let listed: BTreeSet<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, batches.iter().cloned().collect::<BTreeSet<_>>());
        assert_eq!(list["data"].as_array().unwrap().len(), FILES);
    }
    // Nothing of the batches' background work is left behind: no batch lease, and one index
    // entry per batch.
    let started = Instant::now();
    while !c.keys("serve/leases/batch-").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            c.keys("serve/leases/")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.keys("serve/index/batches/").len(), FILES);
    assert_eq!(c.keys("serve/batches/").len(), FILES);
}
