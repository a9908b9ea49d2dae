//! The streaming engine end to end: order, determinism across thread counts, sharding, the batch
//! folder and its ledger, and all-or-nothing output.

mod common;

use bedrock_batch::batch_folder::{BatchManifest, FolderError};
use bedrock_batch::pipeline::Error as PipelineError;
use common::*;

/// A few thousand sample lines with bad ones sprinkled in.
fn mixed(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let line = bedrock_batch::sample::chat_line(9, i);
        match i % 97 {
            13 => out.extend_from_slice(&line.as_bytes()[..line.len() / 2]),
            29 => out.extend_from_slice(b""),
            41 => out.extend_from_slice(line.replace("gpt-4o-mini", "other-model").as_bytes()),
            53 => out.extend_from_slice(bedrock_batch::sample::chat_line(9, i - 1).as_bytes()),
            _ => out.extend_from_slice(line.as_bytes()),
        }
        out.push(b'\n');
    }
    out
}

#[test]
fn many_blocks_convert_identically_on_one_thread_and_on_many() {
    let input = mixed(3000);
    let mut one = opts();
    one.block_size = 997; // many blocks, cut at odd places
    one.threads = Some(1);
    let mut many = one.clone();
    many.threads = Some(4);
    let a = to_stream(&input, &one);
    let b = to_stream(&input, &many);
    assert_eq!(a.0, b.0, "records");
    assert_eq!(a.1, b.1, "rejects");
    assert_eq!(a.2, b.2, "report");
    let report = a.2;
    assert_eq!(report.lines, 3000);
    assert_eq!(
        report.lines,
        report.records + report.rejected + report.blank
    );
    assert!(report.rejected > 60 && report.blank > 20, "{report:?}");
    // In input order.
    let ids: Vec<u64> = json_lines(&a.0)
        .iter()
        .map(|r| {
            r["recordId"]
                .as_str()
                .unwrap()
                .trim_start_matches("request-")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // Same as one big block.
    let mut whole = opts();
    whole.block_size = 64 << 20;
    assert_eq!(to_stream(&input, &whole).0, a.0);
}

#[test]
fn a_batch_folder_has_shards_ledgers_rejects_and_a_manifest_that_add_up() {
    let mut input = sample(250);
    input.extend_from_slice(b"{oops\n");
    let mut o = opts();
    o.records_per_file = 100;
    o.block_size = 5000;
    let (dir, result) = to_folder(&input, &o);
    let report = result.unwrap();
    assert_eq!(
        names(&dir),
        [
            "GEN/ids/00000.ids",
            "GEN/ids/00001.ids",
            "GEN/ids/00002.ids",
            "GEN/input/job000/00000.jsonl",
            "GEN/input/job000/00001.jsonl",
            "GEN/input/job000/00002.jsonl",
            "GEN/rejected.jsonl",
            "batch.json",
        ]
    );
    let generation = generation(&dir);
    let manifest: BatchManifest = serde_json::from_slice(&dir.get("batch.json").unwrap()).unwrap();
    assert_eq!(manifest.counts.lines, 251);
    assert_eq!(manifest.counts.records, 250);
    assert_eq!(manifest.counts.rejected, 1);
    assert_eq!(manifest.conversion.family, "anthropic");
    assert_eq!(manifest.openai_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(manifest.jobs.len(), 1);
    assert_eq!(
        manifest.jobs[0].input_prefix,
        format!("{generation}/input/job000/")
    );
    assert_eq!(manifest.jobs[0].records, 250);
    assert_eq!(report.shards, 3);

    let mut seen = 0;
    for shard in &manifest.shards {
        let records = json_lines(&dir.get(&shard.path).unwrap());
        let ledger = String::from_utf8(dir.get(&shard.ids).unwrap().to_vec()).unwrap();
        assert_eq!(records.len() as u64, shard.records);
        assert_eq!(dir.get(&shard.path).unwrap().len() as u64, shard.bytes);
        for (record, entry) in records.iter().zip(ledger.lines()) {
            let (record_id, custom_id) = entry.split_once('\t').unwrap();
            assert_eq!(record["recordId"], record_id);
            let line: u64 = record_id[1..11].parse().unwrap();
            let custom_id: String = serde_json::from_str(custom_id).unwrap();
            assert_eq!(custom_id, format!("request-{}", line - 1));
            seen += 1;
        }
        assert_eq!(ledger.lines().count() as u64, shard.records);
    }
    assert_eq!(seen, 250);
    let rejects = json_lines(&dir.get(&format!("{generation}/rejected.jsonl")).unwrap());
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["line"], 251);
}

#[test]
fn more_records_than_one_job_takes_make_one_folder_per_job() {
    let mut o = opts();
    o.records_per_job = 100;
    o.records_per_file = 60;
    let (dir, result) = to_folder(&sample(250), &o);
    match result {
        Err(PipelineError::Folder(FolderError::TooFewRecords {
            job: 2,
            records: 50,
        })) => {}
        other => panic!("expected a too-small last job, got {other:?}"),
    }
    assert!(dir.names().is_empty(), "nothing written: {:?}", dir.names());

    o.allow_small = true;
    let (dir, result) = to_folder(&sample(250), &o);
    let report = result.unwrap();
    assert_eq!(report.jobs, 3);
    let manifest: BatchManifest = serde_json::from_slice(&dir.get("batch.json").unwrap()).unwrap();
    let g = &manifest.generation;
    let jobs: Vec<(String, u64)> = manifest
        .jobs
        .iter()
        .map(|j| (j.input_prefix.replace(g.as_str(), "GEN"), j.records))
        .collect();
    assert_eq!(
        jobs,
        [
            ("GEN/input/job000/".into(), 100),
            ("GEN/input/job001/".into(), 100),
            ("GEN/input/job002/".into(), 50)
        ]
    );
    let shards: Vec<(String, u32, u64)> = manifest
        .shards
        .iter()
        .map(|s| (s.path.replace(g.as_str(), "GEN"), s.job, s.records))
        .collect();
    assert_eq!(
        shards,
        [
            ("GEN/input/job000/00000.jsonl".into(), 0, 60),
            ("GEN/input/job000/00001.jsonl".into(), 0, 40),
            ("GEN/input/job001/00002.jsonl".into(), 1, 60),
            ("GEN/input/job001/00003.jsonl".into(), 1, 40),
            ("GEN/input/job002/00004.jsonl".into(), 2, 50),
        ]
    );
    for s in &manifest.shards {
        assert_eq!(
            json_lines(&dir.get(&s.path).unwrap()).len() as u64,
            s.records,
            "{}",
            s.path
        );
    }
}

#[test]
fn bytes_per_file_cuts_files_below_the_limit() {
    let mut o = opts();
    o.bytes_per_file = 20_000;
    let (dir, result) = to_folder(&sample(120), &o);
    result.unwrap();
    let manifest: BatchManifest = serde_json::from_slice(&dir.get("batch.json").unwrap()).unwrap();
    assert!(manifest.shards.len() > 3);
    for s in &manifest.shards {
        assert!(s.bytes <= 20_000, "{s:?}");
        assert!(s.records > 0);
    }
    assert_eq!(manifest.shards.iter().map(|s| s.records).sum::<u64>(), 120);
}

/// A record no file or job of the folder can hold is refused, naming the limit — never
/// written into a file or job over its quota, which Bedrock would refuse (and the batch with it).
#[test]
fn a_record_larger_than_a_file_or_a_job_takes_is_refused() {
    let big = |id: &str| {
        format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}}}"#,
            "x".repeat(30_000)
        )
    };
    for (per_file, per_job, flag) in [
        (20_000, 5_000_000, "--bytes-per-file"),
        (1_000_000, 20_000, "--bytes-per-job"),
    ] {
        let mut input = sample(150);
        input.extend_from_slice(format!("{}\n", big("big-1")).as_bytes());
        input.extend_from_slice(format!("{}\n", big("big-2")).as_bytes());
        let mut o = opts();
        o.bytes_per_file = per_file;
        o.bytes_per_job = per_job;
        o.allow_small = true;
        let (dir, result) = to_folder(&input, &o);
        let report = result.unwrap();
        assert_eq!(
            (report.lines, report.records, report.rejected),
            (152, 150, 2)
        );
        let manifest: BatchManifest =
            serde_json::from_slice(&dir.get("batch.json").unwrap()).unwrap();
        for s in &manifest.shards {
            assert!(s.bytes <= per_file.min(per_job), "{s:?}");
        }
        for j in &manifest.jobs {
            assert!(j.bytes <= per_job, "{j:?}");
        }
        let generation = generation(&dir);
        let rejects = json_lines(&dir.get(&format!("{generation}/rejected.jsonl")).unwrap());
        let ids: Vec<&str> = rejects
            .iter()
            .map(|r| r["custom_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["big-1", "big-2"]);
        for r in &rejects {
            assert_eq!(r["error"]["code"], "line_too_long");
            let message = r["error"]["message"].as_str().unwrap();
            assert!(message.contains(flag), "{message}");
        }
    }
}

#[test]
fn too_few_records_writes_nothing_and_says_why() {
    let (dir, result) = to_folder(&sample(10), &opts());
    let err = result.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("at least 100 records"), "{msg}");
    assert!(msg.contains("--allow-small"), "{msg}");
    assert!(dir.names().is_empty());
}

#[test]
fn oversized_lines_are_rejected_without_buffering_them() {
    let mut input = sample(3);
    input.extend_from_slice(&vec![b'x'; 50_000]);
    input.push(b'\n');
    input.extend_from_slice(&sample(2)); // same custom_ids as the first lines: duplicates
    let mut o = opts();
    o.max_line_bytes = 4096;
    o.block_size = 1024;
    let (records, rejects, report) = to_stream(&input, &o);
    let rejects = json_lines(&rejects);
    assert_eq!(rejects[0]["line"], 4);
    assert_eq!(rejects[0]["error"]["code"], "line_too_long");
    // No flag is named where none was given (the server has none).
    let message = rejects[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with("over the limit of 4096 bytes"),
        "{message}"
    );
    assert!(rejects[1..]
        .iter()
        .all(|r| r["error"]["code"] == "duplicate_custom_id"));
    assert_eq!((report.lines, report.records, report.rejected), (6, 3, 3));
    assert_eq!(json_lines(&records).len(), 3);
}

/// A line too long to read still names its custom_id where its first bytes give it once,
/// however the input is cut into blocks (the line read whole, or dropped unbuffered).
#[test]
fn a_line_too_long_to_read_names_its_custom_id() {
    let long = |custom_id: &str| {
        format!(
            r#"{{"custom_id":{custom_id},"method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"{}"}}]}}}}"#,
            "é".repeat(40_000)
        )
    };
    let lines = [
        long(r#""big""#),
        long(r#""big-é""#),
        long("7").replacen(
            r#""custom_id":7,"method":"POST""#,
            r#""method":"POST","custom_id":"later""#,
            1,
        ),
        long("7"),
        long(r#""a","custom_id":"b""#),
    ];
    let mut input = sample(3);
    for line in &lines {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    for block_size in [1 << 10, 1 << 20] {
        let mut o = opts();
        o.max_line_bytes = 4096;
        o.block_size = block_size;
        let (_, rejects, report) = to_stream(&input, &o);
        let rejects = json_lines(&rejects);
        let ids: Vec<&serde_json::Value> = rejects.iter().map(|r| &r["custom_id"]).collect();
        let null = serde_json::Value::Null;
        assert_eq!(
            ids,
            [
                &serde_json::json!("big"),
                &serde_json::json!("big-é"),
                &serde_json::json!("later"),
                &null,
                &null
            ]
        );
        for r in &rejects {
            assert_eq!(r["error"]["code"], "line_too_long");
        }
        assert_eq!((report.lines, report.records, report.rejected), (8, 3, 5));
    }
}

#[test]
fn an_input_without_a_final_newline_keeps_its_last_line() {
    let mut input = sample(2);
    input.pop();
    let (records, _, report) = to_stream(&input, &opts());
    assert_eq!(report.records, 2);
    assert_eq!(json_lines(&records)[1]["recordId"], "request-1");
}

/// Both conversions are `Send` futures: a library user can spawn them on a multi-threaded
/// runtime (the server does). Checked by the compiler.
#[test]
fn conversions_can_be_spawned() {
    use bedrock_batch::io::{BytesSource, Discard, MemoryWriter};
    use bedrock_batch::pipeline::{
        convert_from_bedrock, convert_to_bedrock, BedrockOutput, FromBedrockOptions,
    };
    fn spawnable<F: std::future::Future + Send + 'static>(f: F) -> F {
        f
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let opts = opts();
    let to = spawnable(async move {
        let out = BedrockOutput::Stream {
            records: Box::new(Discard::default()),
            rejects: Box::new(Discard::default()),
        };
        convert_to_bedrock(BytesSource::new(sample(10)), out, &opts).await
    });
    assert_eq!(rt.block_on(rt.spawn(to)).unwrap().unwrap().records, 10);
    let fb = FromBedrockOptions::new(bedrock_batch::record::Family::Anthropic, "m", 1);
    let from = spawnable(async move {
        let (ok, _) = MemoryWriter::standalone("ok");
        let (err, _) = MemoryWriter::standalone("err");
        convert_from_bedrock(Vec::new(), None, Box::new(ok), Box::new(err), &fb).await
    });
    assert_eq!(rt.block_on(rt.spawn(from)).unwrap().unwrap().lines, 0);
}
