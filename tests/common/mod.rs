//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod faulty;
pub mod http;

use std::path::PathBuf;

use bedrock_batch::batch_folder::{FolderWriter, LockOptions};
use bedrock_batch::io::{BytesSource, Destination, MemoryDir, MemoryWriter};
use bedrock_batch::pipeline::{
    collect_folder, convert_to_bedrock, BedrockOutput, Error as PipelineError, FolderResults,
    FromBedrockOptions, FromBedrockReport, MissingReason, Report, ToBedrockOptions,
};

pub const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

pub fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l)))
        })
        .collect()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Converts `input` to one stream; returns (records, rejects, report).
pub fn to_stream(input: &[u8], opts: &ToBedrockOptions) -> (Vec<u8>, Vec<u8>, Report) {
    let (records, rdir) = MemoryWriter::standalone("records");
    let (rejects, jdir) = MemoryWriter::standalone("rejects");
    let out = BedrockOutput::Stream {
        records: Box::new(records),
        rejects: Box::new(rejects),
    };
    let report = rt()
        .block_on(convert_to_bedrock(
            bedrock_batch::io::reader(input),
            out,
            opts,
        ))
        .expect("conversion runs");
    (
        rdir.get("records").unwrap().to_vec(),
        jdir.get("rejects").unwrap().to_vec(),
        report,
    )
}

/// Converts `input` to a batch folder in memory.
pub fn to_folder(
    input: &[u8],
    opts: &ToBedrockOptions,
) -> (MemoryDir, Result<Report, PipelineError>) {
    let dir = MemoryDir::default();
    let result = rt().block_on(async {
        let out = BedrockOutput::new_folder(std::sync::Arc::new(dir.clone()), opts).await?;
        convert_to_bedrock(BytesSource::new(input.to_vec()), out, opts).await
    });
    (dir, result)
}

/// Collects a batch folder's results the way `from-bedrock DEST/` does (records Bedrock did not
/// return are `missing`); returns the output file, the error file and the report.
pub fn collect(dir: &MemoryDir, missing: MissingReason) -> (Vec<u8>, Vec<u8>, FromBedrockReport) {
    rt().block_on(async {
        let dest: std::sync::Arc<dyn Destination> = std::sync::Arc::new(dir.clone());
        let folder = FolderWriter::open(dest, &LockOptions::default())
            .await
            .unwrap();
        let mut opts =
            FromBedrockOptions::for_folder(folder.current().unwrap().manifest()).unwrap();
        opts.missing = missing;
        opts.block_size = 4096;
        let results = FolderResults {
            ok: folder.create("results/output.jsonl").await.unwrap(),
            err: folder.create("results/errors.jsonl").await.unwrap(),
            output: "memory:results/output.jsonl".into(),
            errors: "memory:results/errors.jsonl".into(),
            by_input: false,
        };
        let collected = collect_folder(&folder, results, &opts).await.unwrap();
        folder.release().await;
        (
            dir.get("results/output.jsonl").unwrap().to_vec(),
            dir.get("results/errors.jsonl").unwrap().to_vec(),
            collected.report,
        )
    })
}

/// The folder's current generation (from its `batch.json`).
pub fn generation(dir: &MemoryDir) -> String {
    let manifest: bedrock_batch::batch_folder::BatchManifest =
        serde_json::from_slice(&dir.get("batch.json").expect("a batch.json")).unwrap();
    manifest.generation
}

/// The folder's objects, with the current generation's name shown as `GEN`.
pub fn names(dir: &MemoryDir) -> Vec<String> {
    let generation = dir.get("batch.json").map(|_| generation(dir));
    let mut names: Vec<String> = dir
        .names()
        .into_iter()
        .map(|n| match &generation {
            Some(g) => n.replace(g.as_str(), "GEN"),
            None => n,
        })
        .collect();
    names.sort();
    names
}

pub fn opts() -> ToBedrockOptions {
    ToBedrockOptions::new(MODEL).unwrap()
}

/// `n` sample chat lines.
pub fn sample(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    bedrock_batch::sample::write_chat_lines(&mut v, n, 3).unwrap();
    v
}

/// What a simulated Bedrock job did with each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Success,
    Error,
    Missing,
    Twice,
}

/// Plays Bedrock for a batch folder in memory: answers each record of `input/` with a
/// Claude-shaped success line or an error line, leaves some out, repeats some, shuffles, and writes
/// `output/<job>/<file>.out` and `manifest.json.out`. Returns each record's custom_id and fate.
pub fn simulate_bedrock(
    dir: &MemoryDir,
    job: &str,
    fate: impl Fn(usize) -> Fate,
    seed: u64,
) -> Vec<(String, Fate)> {
    let manifest: bedrock_batch::batch_folder::BatchManifest =
        serde_json::from_slice(&dir.get("batch.json").unwrap()).unwrap();
    let mut fates = Vec::new();
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut success, mut errors, mut input_tokens, mut output_tokens) = (0u64, 0u64, 0u64, 0u64);
    for shard in &manifest.shards {
        let records = json_lines(&dir.get(&shard.path).unwrap());
        let ids = String::from_utf8(dir.get(&shard.ids).unwrap().to_vec()).unwrap();
        let mut out_lines = Vec::new();
        for (record, entry) in records.iter().zip(ids.lines()) {
            let custom_id: String =
                serde_json::from_str(entry.split_once('\t').unwrap().1).unwrap();
            let n = fates.len();
            let f = fate(n);
            fates.push((custom_id.clone(), f));
            let rid = record["recordId"].clone();
            let line = match f {
                Fate::Error => {
                    errors += 1;
                    serde_json::json!({"recordId": rid, "modelInput": record["modelInput"], "error": {"errorCode": 400, "errorMessage": format!("bad {custom_id}")}})
                }
                Fate::Missing => continue,
                Fate::Success | Fate::Twice => {
                    success += 1;
                    input_tokens += 10;
                    output_tokens += 5;
                    serde_json::json!({"recordId": rid, "modelInput": record["modelInput"], "modelOutput": {
                        "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": "claude",
                        "content": [{"type": "text", "text": format!("answer to {custom_id}")}],
                        "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 5}}})
                }
            };
            if f == Fate::Twice {
                out_lines.push(line.to_string());
            }
            out_lines.push(line.to_string());
        }
        // Bedrock does not keep input order.
        for i in (1..out_lines.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            out_lines.swap(i, j);
        }
        let name = shard.path.rsplit('/').next().unwrap();
        let mut body = out_lines.join("\n");
        body.push('\n');
        dir.put(
            &format!("{}/output/{job}/{name}.out", manifest.generation),
            body,
        );
    }
    let manifest_out = serde_json::json!({
        "totalRecordCount": fates.len(), "processedRecordCount": success + errors,
        "successRecordCount": success, "errorRecordCount": errors,
        "inputTokenCount": input_tokens, "outputTokenCount": output_tokens});
    dir.put(
        &format!("{}/output/{job}/manifest.json.out", manifest.generation),
        manifest_out.to_string(),
    );
    fates
}

/// The lock holder this process writes (host, machine, pid, ...), read back from a lock it takes
/// and releases, so tests can forge holders that differ from it in one field.
pub fn lock_holder_here() -> serde_json::Value {
    let dir = MemoryDir::default();
    let dest: std::sync::Arc<dyn Destination> = std::sync::Arc::new(dir.clone());
    rt().block_on(async {
        let w = FolderWriter::open(dest, &LockOptions::default())
            .await
            .unwrap();
        let raw = dir.get(".bedrock-batch/lock").unwrap();
        w.release().await;
        serde_json::from_slice(&raw).unwrap()
    })
}

/// Plays Bedrock for a local batch folder: writes `output/<job>/<shard>.out` for each shard of
/// its current generation, answering (with a short Claude message) the records whose line
/// number in their shard passes `answered`.
pub fn answer_local_folder(folder: &std::path::Path, job: &str, answered: impl Fn(u64) -> bool) {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("batch.json")).unwrap()).unwrap();
    let out_dir = folder
        .join(m["generation"].as_str().unwrap())
        .join("output")
        .join(job);
    std::fs::create_dir_all(&out_dir).unwrap();
    for shard in m["shards"].as_array().unwrap() {
        let path = folder.join(shard["path"].as_str().unwrap());
        let mut out = String::new();
        for (n, r) in json_lines(&std::fs::read(&path).unwrap())
            .iter()
            .enumerate()
        {
            if !answered(n as u64) {
                continue;
            }
            let line = serde_json::json!({"recordId": r["recordId"], "modelInput": {}, "modelOutput": {
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 1, "output_tokens": 1}}});
            out.push_str(&line.to_string());
            out.push('\n');
        }
        let name = path.file_name().unwrap().to_string_lossy();
        std::fs::write(out_dir.join(format!("{name}.out")), out).unwrap();
    }
}

/// Compare-and-swap as the records of several processes need it, on any destination: create
/// only if absent, replace only the version read, and sixteen writers incrementing one counter
/// (each re-reading on a conflict) lose no increment.
pub async fn check_compare_and_swap(dest: std::sync::Arc<dyn Destination>) {
    use bedrock_batch::io::{Expect, Swap};
    use bytes::Bytes;
    assert_eq!(dest.read_versioned("r/a.json").await.unwrap(), None);
    let put = |body: &'static str, expect: Expect| {
        let dest = dest.clone();
        async move {
            dest.put_if("r/a.json", Bytes::from_static(body.as_bytes()), expect)
                .await
                .unwrap()
        }
    };
    let Swap::Done(v1) = put("1", Expect::Absent).await else {
        panic!("created when absent")
    };
    assert_eq!(put("x", Expect::Absent).await, Swap::Conflict, "present");
    let read = dest.read_versioned("r/a.json").await.unwrap().unwrap();
    assert_eq!((read.bytes.as_slice(), &read.version), (&b"1"[..], &v1));
    let Swap::Done(v2) = put("2", Expect::Version(v1.clone())).await else {
        panic!("replaced at the version read")
    };
    assert_ne!(v1, v2);
    assert_eq!(
        put("3", Expect::Version(v1)).await,
        Swap::Conflict,
        "stale version"
    );
    assert_eq!(
        put("3", Expect::Version("\"nope\"".into())).await,
        Swap::Conflict
    );
    assert_eq!(dest.read_small("r/a.json").await.unwrap().unwrap(), b"2");
    // Deleted meanwhile: not as expected (S3 answers If-Match on a missing key with a 404).
    dest.delete("r/a.json").await.unwrap();
    assert_eq!(put("4", Expect::Version(v2)).await, Swap::Conflict, "gone");
    assert_eq!(dest.read_small("r/a.json").await.unwrap(), None);
    let Swap::Done(_) = put("2", Expect::Absent).await else {
        panic!("created again")
    };

    let writers: Vec<_> = (0..16)
        .map(|_| {
            let dest = dest.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let (n, expect) = match dest.read_versioned("r/n").await.unwrap() {
                        None => (0u64, Expect::Absent),
                        Some(v) => (
                            String::from_utf8(v.bytes).unwrap().parse().unwrap(),
                            Expect::Version(v.version),
                        ),
                    };
                    let body = Bytes::from((n + 1).to_string());
                    match dest.put_if("r/n", body, expect).await.unwrap() {
                        Swap::Done(_) => return conflicts,
                        Swap::Conflict => conflicts += 1,
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(dest.read_small("r/n").await.unwrap().unwrap(), b"16");
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
