//! The batch folder's lifecycle, tried the way things go wrong: a used folder, a replacement,
//! a failure at every step of a commit, a run that died half-way, a second writer, and paths in
//! the folder's own files that try to lead elsewhere.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bedrock_batch::batch_folder::{
    FolderError, FolderReader, FolderWriter, InputIdentity, JobCheck, JobCheckError, JobRecord,
    LockOptions, Replace, Start,
};
use bedrock_batch::io::{BytesSource, Destination, MemoryDir};
use bedrock_batch::pipeline::{
    collect_folder, prepare_to_bedrock, BedrockOutput, Error as PipelineError, FolderResults,
    FromBedrockOptions, MissingReason, ToBedrockOptions,
};
use bytes::Bytes;
use common::faulty::FaultyDir;
use common::*;
use futures::future::BoxFuture;

/// Every object of the folder and its bytes.
fn snapshot(dir: &MemoryDir) -> BTreeMap<String, Bytes> {
    dir.names()
        .into_iter()
        .map(|n| {
            let b = dir.get(&n).unwrap();
            (n, b)
        })
        .collect()
}

/// `n` sample lines whose custom_ids start with `prefix` instead of `request-`.
fn lines(n: u64, prefix: &str) -> Vec<u8> {
    String::from_utf8(sample(n))
        .unwrap()
        .replace("\"request-", &format!("\"{prefix}"))
        .into_bytes()
}

fn small_opts(input: &str) -> ToBedrockOptions {
    let mut o = opts();
    o.allow_small = true;
    o.records_per_file = 2;
    o.source = InputIdentity {
        name: input.to_owned(),
        location: Some(format!("/data/{input}")),
        bytes: Some(1),
        version: Some("v1".into()),
    };
    o
}

/// Converts `input` into `dest` with `replace`, committing.
async fn convert_into(
    dest: Arc<dyn Destination>,
    input: Vec<u8>,
    o: &ToBedrockOptions,
    replace: Replace<'_>,
) -> Result<Option<u64>, PipelineError> {
    let folder = FolderWriter::open(dest, &LockOptions::default()).await?;
    match folder
        .start_generation(o.conversion(), o.source.clone(), replace)
        .await?
    {
        Start::Same(folder) => {
            folder.release().await;
            Ok(None)
        }
        Start::New(writer) => {
            let prepared =
                prepare_to_bedrock(BytesSource::new(input), BedrockOutput::Folder(writer), o)
                    .await?;
            Ok(Some(prepared.commit().await?.records))
        }
    }
}

/// A job check that says nothing runs.
struct NoneRunning;
impl JobCheck for NoneRunning {
    fn running<'a>(&'a self, _: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, JobCheckError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A job check that must not be asked.
struct MustNotAsk;
impl JobCheck for MustNotAsk {
    fn running<'a>(&'a self, _: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, JobCheckError>> {
        panic!("the jobs were asked about although none was recorded")
    }
}

struct Running(Result<Vec<String>, String>);
impl JobCheck for Running {
    fn running<'a>(&'a self, _: &'a [String]) -> BoxFuture<'a, Result<Vec<String>, JobCheckError>> {
        let r = self.0.clone().map_err(JobCheckError::from);
        Box::pin(async move { r })
    }
}

/// The custom_ids in the output and error files, with how often each appears.
fn custom_ids(ok: &[u8], err: &[u8]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in json_lines(ok).iter().chain(&json_lines(err)) {
        *seen
            .entry(line["custom_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    seen
}

#[test]
fn a_used_folder_is_refused_and_left_as_it_was() {
    let dir = MemoryDir::default();
    let dest: Arc<dyn Destination> = Arc::new(dir.clone());
    rt().block_on(async {
        let n = convert_into(
            dest.clone(),
            lines(6, "old-"),
            &small_opts("a.jsonl"),
            Replace::Refuse,
        )
        .await
        .unwrap();
        assert_eq!(n, Some(6));
        let before = snapshot(&dir);
        // Other lines, another input: refused, whatever the shard count.
        let e = convert_into(
            dest.clone(),
            lines(5, "new-"),
            &small_opts("b.jsonl"),
            Replace::Refuse,
        )
        .await
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("already holds"), "{msg}");
        assert!(msg.contains("--overwrite"), "{msg}");
        assert!(msg.contains("a.jsonl") && msg.contains("b.jsonl"), "{msg}");
        assert_eq!(snapshot(&dir), before, "nothing changed");
        // The same input, changed since: refused too.
        let mut changed = small_opts("a.jsonl");
        changed.source.version = Some("v2".into());
        let e = convert_into(dest.clone(), lines(6, "old-"), &changed, Replace::Refuse)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("has changed since"), "{e}");
        // The same input with other options: refused.
        let mut other = small_opts("a.jsonl");
        other.records_per_file = 3;
        let e = convert_into(dest.clone(), lines(6, "old-"), &other, Replace::Refuse)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("other conversion options"), "{e}");
        // A stream can never be told to be the same input.
        let mut stream = small_opts("-");
        stream.source = InputIdentity::named("-");
        let e = convert_into(dest.clone(), lines(6, "old-"), &stream, Replace::Refuse)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("(stdin: a stream"), "{e}");
        assert_eq!(snapshot(&dir), before);
        // The very same conversion: a no-op.
        let again = convert_into(
            dest.clone(),
            lines(6, "old-"),
            &small_opts("a.jsonl"),
            Replace::Refuse,
        )
        .await
        .unwrap();
        assert_eq!(again, None);
        assert_eq!(snapshot(&dir), before);
    });
}

#[test]
fn overwrite_replaces_every_file_of_the_old_generation() {
    let dir = MemoryDir::default();
    let dest: Arc<dyn Destination> = Arc::new(dir.clone());
    let mut a = small_opts("a.jsonl");
    a.records_per_file = 40;
    let mut b = small_opts("b.jsonl");
    b.records_per_file = 40;
    rt().block_on(convert_into(
        dest.clone(),
        lines(150, "old-"),
        &a,
        Replace::Refuse,
    ))
    .unwrap();
    let old = generation(&dir);
    simulate_bedrock(&dir, "jobold", |_| Fate::Success, 1);
    let (ok, err, _) = collect(&dir, MissingReason::expired());
    assert_eq!(custom_ids(&ok, &err).len(), 150);
    assert!(dir.get("results/report.json").is_some());

    // No job was recorded (the test played Bedrock): Bedrock need not be asked.
    rt().block_on(convert_into(
        dest.clone(),
        lines(120, "new-"),
        &b,
        Replace::Overwrite(&MustNotAsk),
    ))
    .unwrap();
    let new = generation(&dir);
    assert_ne!(new, old);
    for name in dir.names() {
        assert!(
            name == "batch.json" || name.starts_with(&format!("{new}/")),
            "{name} is left of the old generation"
        );
    }
    // Bedrock runs the new input; even an old output dropped into the new generation's output
    // cannot bring an old custom_id back: the old records are unknown to the new ledger.
    let old_output = dir.get(&format!("{old}/output/jobold/00000.jsonl.out"));
    assert!(old_output.is_none(), "removed with its generation");
    simulate_bedrock(&dir, "jobnew", |_| Fate::Success, 2);
    let stale = {
        let scratch = MemoryDir::default();
        let scratch_dest: Arc<dyn Destination> = Arc::new(scratch.clone());
        rt().block_on(convert_into(
            scratch_dest,
            lines(150, "old-"),
            &a,
            Replace::Refuse,
        ))
        .unwrap();
        simulate_bedrock(&scratch, "jobold", |_| Fate::Success, 1);
        let g = generation(&scratch);
        scratch
            .get(&format!("{g}/output/jobold/00000.jsonl.out"))
            .unwrap()
    };
    dir.put(
        &format!("{new}/output/jobnew/zz-stale.jsonl.out"),
        stale.clone(),
    );
    let (ok, err, report) = collect(&dir, MissingReason::expired());
    let seen = custom_ids(&ok, &err);
    assert_eq!(seen.len(), 120);
    assert!(seen.keys().all(|k| k.starts_with("new-")), "{seen:?}");
    assert!(seen.values().all(|&c| c == 1));
    assert_eq!(report.duplicates, 0);
    assert_eq!(
        report.unknown_records,
        json_lines(&stale).len() as u64,
        "every stale record is reported as not in the ledger"
    );
}

#[test]
fn overwrite_is_refused_while_the_old_jobs_run() {
    let dir = MemoryDir::default();
    let dest: Arc<dyn Destination> = Arc::new(dir.clone());
    rt().block_on(async {
        convert_into(
            dest.clone(),
            lines(6, "old-"),
            &small_opts("a.jsonl"),
            Replace::Refuse,
        )
        .await
        .unwrap();
        // A job was submitted for it.
        let folder = FolderWriter::open(dest.clone(), &LockOptions::default())
            .await
            .unwrap();
        let reader = folder.current().unwrap().clone();
        let g = reader.generation();
        let record = JobRecord {
            generation: g.to_string(),
            index: 0,
            job_arn: "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefgh1234"
                .into(),
            job_name: "n".into(),
            client_request_token: "t".into(),
            submitted_at: 1,
            model_id: MODEL.into(),
            role_arn: "r".into(),
            input_uri: reader.uri(&g.job_input_prefix(0)),
            output_uri: reader.uri(&g.output_prefix()),
            timeout_hours: 24,
            invocation_type: "InvokeModel".into(),
        };
        folder.write_job_record(&record).await.unwrap();
        folder.release().await;
        let before = snapshot(&dir);
        let running = Running(Ok(vec!["abcdefgh1234 (InProgress)".into()]));
        let e = convert_into(
            dest.clone(),
            lines(6, "new-"),
            &small_opts("b.jsonl"),
            Replace::Overwrite(&running),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("abcdefgh1234 (InProgress)"), "{e}");
        assert!(e.to_string().contains("cancel"), "{e}");
        let unknown = Running(Err("no credentials".into()));
        let e = convert_into(
            dest.clone(),
            lines(6, "new-"),
            &small_opts("b.jsonl"),
            Replace::Overwrite(&unknown),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("no credentials"), "{e}");
        assert_eq!(snapshot(&dir), before);
        // Once they have ended, it goes.
        convert_into(
            dest.clone(),
            lines(6, "new-"),
            &small_opts("b.jsonl"),
            Replace::Overwrite(&NoneRunning),
        )
        .await
        .unwrap();
        assert!(
            !dir.names().iter().any(|n| n.contains("jobs/")),
            "{:?}",
            dir.names()
        );
    });
}

/// Breaks a conversion at each of its write steps in turn: every time, the folder is exactly as
/// it was, and the lock is free again.
#[test]
fn a_failure_at_any_step_of_a_conversion_leaves_the_folder_as_it_was() {
    for existing in [false, true] {
        let mut steps = 0;
        for k in 1.. {
            let dir = MemoryDir::default();
            if existing {
                rt().block_on(convert_into(
                    Arc::new(dir.clone()),
                    lines(7, "old-"),
                    &small_opts("a.jsonl"),
                    Replace::Refuse,
                ))
                .unwrap();
                simulate_bedrock(&dir, "j", |_| Fate::Success, 1);
                collect(&dir, MissingReason::expired());
            }
            let before = snapshot(&dir);
            let faulty = FaultyDir::new(dir.clone(), k);
            let result = rt().block_on(convert_into(
                Arc::new(faulty.clone()),
                lines(9, "new-"),
                &small_opts("b.jsonl"),
                Replace::Overwrite(&NoneRunning),
            ));
            match result {
                Ok(_) => {
                    steps = k - 1;
                    assert_ne!(snapshot(&dir), before);
                    break;
                }
                Err(e) => {
                    assert!(e.to_string().contains("injected failure"), "step {k}: {e}");
                    assert_eq!(snapshot(&dir), before, "step {k} ({e}) changed the folder");
                }
            }
        }
        // Shards, ledgers, rejects, batch.json: many steps, each tried.
        assert!(steps > 15, "only {steps} steps");
    }
}

/// The same for a collection of results: output, errors and record all, or none.
#[test]
fn a_failure_at_any_step_of_a_collection_leaves_the_results_as_they_were() {
    let dir = MemoryDir::default();
    rt().block_on(convert_into(
        Arc::new(dir.clone()),
        lines(7, "x-"),
        &small_opts("a.jsonl"),
        Replace::Refuse,
    ))
    .unwrap();
    simulate_bedrock(
        &dir,
        "j",
        |i| {
            if i % 2 == 0 {
                Fate::Success
            } else {
                Fate::Error
            }
        },
        1,
    );
    collect(&dir, MissingReason::expired());
    // Bedrock's output changes (a late file), so a new collection writes other results.
    let g = generation(&dir);
    dir.put(&format!("{g}/output/j/late.jsonl.out"), "{\"recordId\":\"L0000000001\",\"modelOutput\":{\"content\":[],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n");
    // Then again with the results per input as well: more files, committed with the others.
    for by_input in [false, true] {
        let before = snapshot(&dir);
        for k in 1.. {
            let faulty = FaultyDir::new(dir.clone(), k);
            let result = rt().block_on(async {
                let dest: Arc<dyn Destination> = Arc::new(faulty.clone());
                let folder = FolderWriter::open(dest, &LockOptions::default()).await?;
                let opts = FromBedrockOptions::for_folder(folder.current()?.manifest())?;
                let results = async {
                    Ok::<_, PipelineError>(FolderResults {
                        ok: folder.create("results/output.jsonl").await?,
                        err: folder.create("results/errors.jsonl").await?,
                        output: "o".into(),
                        errors: "e".into(),
                        by_input,
                    })
                }
                .await;
                let r = match results {
                    Ok(results) => collect_folder(&folder, results, &opts).await.map(drop),
                    Err(e) => Err(e),
                };
                folder.release().await;
                r
            });
            match result {
                Ok(()) => {
                    assert!(k > 6, "only {k} steps");
                    let after = snapshot(&dir);
                    assert_ne!(after, before);
                    let per_input = after.keys().filter(|p| p.starts_with("results/by-input/"));
                    assert_eq!(per_input.count(), if by_input { 2 } else { 0 });
                    break;
                }
                Err(e) => assert_eq!(snapshot(&dir), before, "step {k} ({e})"),
            }
        }
    }
}

#[test]
fn what_a_dead_run_left_is_removed_by_the_next_writer() {
    let dir = MemoryDir::default();
    let dest: Arc<dyn Destination> = Arc::new(dir.clone());
    rt().block_on(async {
        convert_into(dest.clone(), lines(6, "a-"), &small_opts("a.jsonl"), Replace::Refuse)
            .await
            .unwrap();
        let current = generation(&dir);
        let kept = snapshot(&dir);
        // A run that died after writing some of a new generation, and results of another one.
        dir.put("gen-20200101T000000Z-abcdef/input/job000/00000.jsonl", "x");
        dir.put("gen-20200101T000000Z-abcdef/ids/00000.ids", "x");
        dir.put("results/output.jsonl", "stale");
        dir.put(
            "results/report.json",
            serde_json::json!({"generation": "gen-20200101T000000Z-abcdef", "output": "memory:results/output.jsonl",
                "errors": "memory:results/errors.jsonl", "started_at": 0, "finished_at": 0, "succeeded": 0,
                "failed": 0, "missing": 0, "input_tokens": 0, "cached_tokens": 0, "output_tokens": 0}).to_string(),
        );
        // Not the folder's own: left alone.
        dir.put("notes.txt", "mine");
        dir.put("gen-not-a-generation/x", "mine");
        let folder = FolderWriter::open(dest.clone(), &LockOptions::default()).await.unwrap();
        folder.release().await;
        let mut expected = kept;
        expected.insert("notes.txt".into(), Bytes::from("mine"));
        expected.insert("gen-not-a-generation/x".into(), Bytes::from("mine"));
        assert_eq!(snapshot(&dir), expected, "current: {current}");
    });
}

#[test]
fn a_second_writer_is_refused_naming_the_holder() {
    let dir = MemoryDir::default();
    let dest: Arc<dyn Destination> = Arc::new(dir.clone());
    rt().block_on(async {
        let first = FolderWriter::open(dest.clone(), &LockOptions::for_command("first"))
            .await
            .unwrap();
        let e = FolderWriter::open(dest.clone(), &LockOptions::for_command("second"))
            .await
            .err()
            .expect("refused");
        let msg = e.to_string();
        assert!(matches!(e, FolderError::Locked { .. }), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("`first`"), "{msg}");
        first.release().await;
        FolderWriter::open(dest.clone(), &LockOptions::default())
            .await
            .unwrap()
            .release()
            .await;
        assert!(
            dir.names().is_empty(),
            "the lock is gone with its holder: {:?}",
            dir.names()
        );
    });
}

#[test]
fn a_dead_holders_lock_is_taken_over_and_a_live_ones_is_not() {
    let mine = common::lock_holder_here();
    let host = mine["host"].as_str().unwrap().to_owned();
    let machine = mine["machine"].as_str().unwrap().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let holder_on = |host: &str, machine: &str, pid: u32, expires_at: u64| {
        serde_json::json!({"host": host, "machine": machine, "pid": pid, "command": "run",
            "started_at": now - 10, "expires_at": expires_at})
        .to_string()
    };
    let holder = |host: &str, pid: u32, expires_at: u64| {
        let machine = if host == "elsewhere" {
            "other-boot/ns"
        } else {
            machine.as_str()
        };
        holder_on(host, machine, pid, expires_at)
    };
    // (holder, --break-lock, taken)
    let cases = [
        (holder(&host, 0, now + 3600), false, true), // this host, process gone
        (holder("elsewhere", 7, now - 3600), false, true), // lease long expired
        (holder("elsewhere", 7, now + 3600), false, false), // alive, as far as anyone knows
        (holder(&host, std::process::id(), now + 3600), false, false), // alive here
        (holder("elsewhere", 7, now + 3600), true, true), // --break-lock
        ("not json".to_owned(), false, false),
        // Same host name, another machine or container: its pid means nothing here.
        (
            holder_on(&host, "other-boot/ns", 0, now + 3600),
            false,
            false,
        ),
        // A holder that does not say which machine: judged by its lease only.
        (
            serde_json::json!({"host": host, "pid": 0, "command": "run",
                "started_at": now - 10, "expires_at": now + 3600})
            .to_string(),
            false,
            false,
        ),
    ];
    for (held, break_lock, taken) in cases {
        let dir = MemoryDir::default();
        dir.put(".bedrock-batch/lock", held.clone());
        let dest: Arc<dyn Destination> = Arc::new(dir.clone());
        let opts = LockOptions {
            break_lock,
            ..LockOptions::default()
        };
        let result = rt().block_on(async {
            let w = FolderWriter::open(dest, &opts).await?;
            w.release().await;
            Ok::<_, FolderError>(())
        });
        match result {
            Ok(()) => assert!(taken, "{held} was taken over"),
            Err(e) => {
                assert!(!taken, "{held}: {e}");
                assert!(e.to_string().contains("another run"), "{e}");
                if held.contains("elsewhere") {
                    assert!(e.to_string().contains("--break-lock"), "{e}");
                }
            }
        }
    }
}

#[test]
fn paths_in_the_folders_files_must_be_where_the_layout_puts_them() {
    let dir = MemoryDir::default();
    let dest: Arc<dyn Destination> = Arc::new(dir.clone());
    rt().block_on(convert_into(
        dest.clone(),
        lines(6, "a-"),
        &small_opts("a.jsonl"),
        Replace::Refuse,
    ))
    .unwrap();
    let good: serde_json::Value = serde_json::from_slice(&dir.get("batch.json").unwrap()).unwrap();
    let g = good["generation"].as_str().unwrap().to_owned();
    let tamper = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m = good.clone();
        edit(&mut m);
        dir.put("batch.json", m.to_string());
        rt().block_on(FolderReader::open(dest.clone())).err()
    };
    let other = "gen-20200101T000000Z-abcdef";
    for bad in [
        "../../somewhere/x.ids".to_owned(),
        "/etc/passwd".to_owned(),
        format!("{g}/ids/../../../x.ids"),
        format!("{other}/ids/00000.ids"),
        "s3://other-bucket/ids/00000.ids".to_owned(),
        format!("{g}/ids/00001.ids"),
    ] {
        let e = tamper(&|m| m["shards"][0]["ids"] = bad.clone().into()).expect("refused");
        let msg = e.to_string();
        assert!(matches!(e, FolderError::Outside { .. }), "{bad}: {msg}");
        assert!(msg.contains("shards[0].ids") && msg.contains(&bad), "{msg}");
    }
    for (field, bad) in [("path", "../input/00000.jsonl"), ("job", "7")] {
        let e =
            tamper(&|m| m["shards"][1][field] = if field == "job" { 7.into() } else { bad.into() });
        assert!(e.is_some(), "{field} = {bad}");
    }
    let e = tamper(&|m| m["jobs"][0]["input_prefix"] = "input/".into()).unwrap();
    assert!(e.to_string().contains("jobs[0].input_prefix"), "{e}");
    let e = tamper(&|m| m["rejected"] = "../rejected.jsonl".into()).unwrap();
    assert!(e.to_string().contains("rejected"), "{e}");
    let e = tamper(&|m| m["generation"] = "../gen".into()).unwrap();
    assert!(e.to_string().contains("not a generation name"), "{e}");
    let e = tamper(&|m| m["counts"]["records"] = 7.into()).unwrap();
    assert!(e.to_string().contains("do not add up"), "{e}");

    // Job records: the job's input and output must be this folder's; its id a job id.
    dir.put("batch.json", good.to_string());
    let reader = rt()
        .block_on(FolderReader::open(dest.clone()))
        .unwrap()
        .unwrap();
    let record = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut r = serde_json::json!({"generation": g, "index": 0,
            "job_arn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefgh1234",
            "job_name": "n", "client_request_token": "t", "submitted_at": 1, "model_id": MODEL, "role_arn": "r",
            "input_uri": reader.uri(&format!("{g}/input/job000/")), "output_uri": reader.uri(&format!("{g}/output/")),
            "timeout_hours": 24, "invocation_type": "InvokeModel"});
        edit(&mut r);
        dir.put(&format!("{g}/jobs/job000.json"), r.to_string());
        rt().block_on(reader.job_records())
    };
    assert!(record(&|_| {}).unwrap()[0].is_some());
    for (field, bad) in [
        ("input_uri", "s3://other/input/".to_owned()),
        ("output_uri", "s3://other/output/".to_owned()),
        (
            "job_arn",
            "arn:aws:bedrock:x:1:model-invocation-job/../../../etc".to_owned(),
        ),
        ("generation", other.to_owned()),
    ] {
        let e = record(&|r| r[field] = bad.clone().into()).err();
        assert!(e.is_some(), "{field} = {bad}");
    }
    let e = record(&|r| r["index"] = 5.into()).unwrap_err();
    assert!(e.to_string().contains("not a job of this folder"), "{e}");
}

/// Conditional writes as a compare-and-swap, on a local folder (any process) and in memory.
#[test]
fn conditional_writes_make_a_compare_and_swap_locally() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        check_compare_and_swap(Arc::new(bedrock_batch::io::LocalDir::new(dir.path()))).await;
        check_compare_and_swap(Arc::new(MemoryDir::default())).await;
    });
    // The housekeeping (the lock, temporary files) is not among the folder's objects.
    let listed = rt
        .block_on(bedrock_batch::io::LocalDir::new(dir.path()).list(""))
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(names, ["r/a.json", "r/n"]);
}
