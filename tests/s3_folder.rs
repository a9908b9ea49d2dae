//! Batch folders on S3 tried the way things go wrong: conditional writes, a re-run, a run
//! killed mid-upload, two runs racing, a lock whose holder is gone, a lock lost mid-run, and a
//! failure at every commit step. Against the in-process server, and against moto in CI
//! (`BEDROCK_BATCH_TEST_S3_ENDPOINT`; the fault-injecting tests need the in-process one).
#![cfg(unix)]

mod common;
mod s3_server;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedrock_batch::batch_folder::{
    FolderError, FolderWriter, GenerationWriter, LockOptions, Replace, Start,
};
use bedrock_batch::io::{ChunkSource, Destination, S3Dir, S3Uri};
use bedrock_batch::pipeline::{
    prepare_to_bedrock, BedrockOutput, Error as PipelineError, ToBedrockOptions,
};
use bytes::Bytes;
use common::{rt, sample, MODEL};
use s3_server::{in_process, server, TestS3};

fn lines(n: u64, prefix: &str) -> Vec<u8> {
    String::from_utf8(sample(n))
        .unwrap()
        .replace("\"request-", &format!("\"{prefix}"))
        .into_bytes()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Env {
    s3: TestS3,
    bucket: String,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(s3: TestS3, hint: &str) -> Env {
        let bucket = rt().block_on(s3.bucket(hint));
        Env {
            s3,
            bucket,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bedrock-batch"));
        c.args(["--endpoint-url", &self.s3.endpoint]);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn folder(&self, name: &str) -> String {
        format!("s3://{}/{name}/", self.bucket)
    }

    fn input(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }

    fn dest(&self, name: &str) -> Arc<dyn Destination> {
        let opts = self.s3.options();
        let uri = S3Uri {
            bucket: self.bucket.clone(),
            key: format!("{name}/"),
        };
        Arc::new(S3Dir::new(rt().block_on(opts.client()), uri, &opts))
    }

    /// Every object of the bucket and its bytes (lock objects included).
    fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        rt().block_on(async {
            let client = self.s3.client().await;
            let out = client
                .list_objects_v2()
                .bucket(&self.bucket)
                .send()
                .await
                .unwrap();
            let mut all = BTreeMap::new();
            for o in out.contents() {
                let key = o.key().unwrap().to_owned();
                let body = client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap()
                    .body
                    .collect()
                    .await
                    .unwrap()
                    .to_vec();
                all.insert(key, body);
            }
            all
        })
    }

    fn open_uploads(&self) -> usize {
        rt().block_on(async {
            self.s3
                .client()
                .await
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .send()
                .await
                .unwrap()
                .uploads()
                .len()
        })
    }

    fn put(&self, key: &str, body: &str) {
        rt().block_on(self.s3.put(&self.bucket, key, body.to_owned()));
    }
}

fn generation_of(objects: &BTreeMap<String, Vec<u8>>, folder: &str) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&objects[&format!("{folder}/batch.json")]).unwrap();
    m["generation"].as_str().unwrap().to_owned()
}

/// The server enforces conditional writes, so the lock means something: of many writers that
/// create one object at once, exactly one succeeds; a replacement needs the ETag it replaces.
#[test]
fn conditional_writes_are_enforced() {
    let e = Env::new(server(), "cond");
    rt().block_on(async {
        let client = e.s3.client().await;
        let mut tasks = Vec::new();
        for i in 0..12 {
            let (client, bucket) = (client.clone(), e.bucket.clone());
            tasks.push(tokio::spawn(async move {
                client
                    .put_object()
                    .bucket(bucket)
                    .key("race/lock")
                    .if_none_match("*")
                    .body(Bytes::from(format!("writer {i}")).into())
                    .send()
                    .await
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            if let Ok(out) = t.await.unwrap() {
                won.push(out.e_tag().unwrap().to_owned());
            }
        }
        assert_eq!(won.len(), 1, "exactly one creator wins");
        let replace = |etag: &str| {
            client
                .put_object()
                .bucket(&e.bucket)
                .key("race/lock")
                .if_match(etag)
                .body(Bytes::from_static(b"taken over").into())
                .send()
        };
        assert!(replace("\"0123456789abcdef0123456789abcdef\"")
            .await
            .is_err());
        assert!(replace(&won[0]).await.is_ok());
        assert!(replace(&won[0]).await.is_err(), "the ETag changed");
    });
}

#[test]
fn a_rerun_on_s3_is_refused_and_overwrite_replaces_it() {
    let e = Env::new(server(), "rerun");
    let a = e.input("a.jsonl", &lines(120, "old-"));
    let b = e.input("b.jsonl", &lines(130, "new-"));
    let f = e.folder("F");
    let o = e.run(&[
        "to-bedrock",
        &a,
        &f,
        "-m",
        MODEL,
        "--records-per-file",
        "50",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = e.objects();
    let o = e.run(&["to-bedrock", &b, &f, "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already holds"), "{}", stderr(&o));
    assert_eq!(e.objects(), before);
    let o = e.run(&[
        "to-bedrock",
        &a,
        &f,
        "-m",
        MODEL,
        "--records-per-file",
        "50",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to do"), "{}", stderr(&o));
    assert_eq!(e.objects(), before);
    let o = e.run(&["to-bedrock", &b, &f, "-m", MODEL, "--overwrite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = e.objects();
    let g = generation_of(&after, "F");
    for key in after.keys() {
        assert!(
            key == "F/batch.json" || key.starts_with(&format!("F/{g}/")),
            "{key} left of the old generation"
        );
    }
    assert_eq!(e.open_uploads(), 0);
}

fn mkfifo(path: &std::path::Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_run_killed_mid_upload_leaves_nothing_the_next_run_keeps() {
    let e = Env::new(server(), "killed");
    let f = e.folder("F");
    let fifo = e.dir.path().join("in.fifo");
    mkfifo(&fifo);
    let mut child = e
        .cmd()
        .args([
            "--s3-part-size",
            "5MiB",
            "to-bedrock",
            fifo.to_str().unwrap(),
            &f,
            "-m",
            MODEL,
        ])
        .spawn()
        .unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    // Distinct requests (repeats would be rejected as duplicates, not written).
    w.write_all(&lines(16_000, "k-")).unwrap();
    wait_until("an upload in flight", || {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the run ended ({status}) before it was killed: {err}");
        }
        e.open_uploads() > 0
    });
    child.kill().unwrap();
    child.wait().unwrap();
    drop(w);
    let left = e.objects();
    assert!(!left.contains_key("F/batch.json"), "nothing was committed");
    assert!(e.open_uploads() > 0, "the killed run left its uploads");

    let b = e.input("b.jsonl", &lines(150, "b-"));
    let o = e.run(&["to-bedrock", &b, &f, "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(e.open_uploads(), 0, "the next run aborted them");
    let after = e.objects();
    let g = generation_of(&after, "F");
    for key in after.keys() {
        assert!(
            key == "F/batch.json" || key.starts_with(&format!("F/{g}/")),
            "{key}"
        );
    }

    // An upload Bedrock has in progress into the generation's output/ is Bedrock's: a writer's
    // clean-up leaves it alone, while one of the folder's own objects left by a dead run goes.
    let bedrocks = format!("F/{g}/output/abcdefghij12/00000.jsonl.out");
    let dead_runs = format!("F/{g}/ids/00099.ids");
    let upload_id = |key: String| {
        rt().block_on(async {
            let client = e.s3.client().await;
            let out = client
                .create_multipart_upload()
                .bucket(&e.bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            out.upload_id().unwrap().to_owned()
        })
    };
    let kept = upload_id(bedrocks.clone());
    upload_id(dead_runs);
    let o = e.run(&["from-bedrock", &f]);
    assert!(o.status.code().is_some_and(|c| c < 2), "{}", stderr(&o));
    let open: Vec<(String, String)> = rt().block_on(async {
        let client = e.s3.client().await;
        let out = client
            .list_multipart_uploads()
            .bucket(&e.bucket)
            .send()
            .await
            .unwrap();
        out.uploads()
            .iter()
            .map(|u| {
                (
                    u.key().unwrap().to_owned(),
                    u.upload_id().unwrap().to_owned(),
                )
            })
            .collect()
    });
    assert_eq!(open, [(bedrocks, kept)]);
}

#[test]
fn two_runs_racing_for_one_s3_folder() {
    let e = Env::new(server(), "race");
    let f = e.folder("F");
    let fifo = e.dir.path().join("in.fifo");
    mkfifo(&fifo);
    let child = e
        .cmd()
        .args([
            "to-bedrock",
            fifo.to_str().unwrap(),
            &f,
            "-m",
            MODEL,
            "--allow-small",
        ])
        .spawn()
        .unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&lines(20, "a-")).unwrap();
    wait_until("the lock", || {
        e.objects().contains_key("F/.bedrock-batch/lock")
    });
    let b = e.input("b.jsonl", &lines(150, "b-"));
    let o = e.run(&["to-bedrock", &b, &f, "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("being written by another run"), "{err}");
    assert!(err.contains(&format!("pid {}", child.id())), "{err}");
    assert!(err.contains("--break-lock"), "{err}");
    w.write_all(&lines(20, "c-")).unwrap();
    drop(w);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = e.objects();
    assert!(after.contains_key("F/batch.json"));
    assert!(!after.contains_key("F/.bedrock-batch/lock"), "released");
}

/// Now, in Unix seconds.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A lock object's body: a run of `host` with `pid`, its lease ending at `expires`.
fn holder(host: &str, pid: u32, expires: u64) -> String {
    serde_json::json!({"host": host, "pid": pid, "command": "run",
        "started_at": expires.min(now()) - 5, "expires_at": expires})
    .to_string()
}

#[test]
fn a_gone_holders_lock_is_taken_over_and_a_live_ones_only_with_break_lock() {
    let e = Env::new(server(), "stale");
    let input = e.input("in.jsonl", &lines(120, "s-"));
    let now = now();
    // Someone on another machine, renewing its lease.
    e.put("A/.bedrock-batch/lock", &holder("elsewhere", 42, now + 600));
    let o = e.run(&["to-bedrock", &input, &e.folder("A"), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("host elsewhere, pid 42"), "{err}");
    assert!(err.contains("--break-lock"), "{err}");
    let o = e.run(&[
        "--break-lock",
        "to-bedrock",
        &input,
        &e.folder("A"),
        "-m",
        MODEL,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A lease that ran out long ago.
    e.put(
        "B/.bedrock-batch/lock",
        &holder("elsewhere", 42, now - 3600),
    );
    let o = e.run(&["to-bedrock", &input, &e.folder("B"), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A process of this machine that no longer exists.
    let mut here = common::lock_holder_here();
    here["pid"] = 0.into();
    here["expires_at"] = (now + 600).into();
    e.put("C/.bedrock-batch/lock", &here.to_string());
    let o = e.run(&["to-bedrock", &input, &e.folder("C"), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = e.objects();
    assert!(after.keys().all(|k| !k.ends_with(".bedrock-batch/lock")));
}

/// A source that hands out its bytes slowly.
struct Slow(Vec<Bytes>, Duration);

impl ChunkSource for Slow {
    fn next_chunk(&mut self) -> futures::future::BoxFuture<'_, std::io::Result<Option<Bytes>>> {
        Box::pin(async move {
            tokio::time::sleep(self.1).await;
            Ok(if self.0.is_empty() {
                None
            } else {
                Some(self.0.remove(0))
            })
        })
    }
}

/// A run into the folder `dest` under a lease of `lease`, as far as its new generation: the
/// generation's writer, the options, and `n` lines that come one every `every_ms`.
async fn slow_run(
    dest: &Arc<dyn Destination>,
    lease: Duration,
    n: u64,
    every_ms: u64,
) -> Result<(Box<GenerationWriter>, ToBedrockOptions, Slow), FolderError> {
    let lock = LockOptions {
        lease,
        ..LockOptions::default()
    };
    let folder = FolderWriter::open(Arc::clone(dest), &lock).await?;
    let mut o = common::opts();
    o.allow_small = true;
    let Start::New(writer) = folder
        .start_generation(o.conversion(), o.source.clone(), Replace::Refuse)
        .await?
    else {
        panic!("a new folder");
    };
    let pieces: Vec<Bytes> = lines(n, "x-")
        .split_inclusive(|&b| b == b'\n')
        .map(Bytes::copy_from_slice)
        .collect();
    Ok((writer, o, Slow(pieces, Duration::from_millis(every_ms))))
}

/// A writer that stalls past its lease and finds its lock taken over — or gone, taken over and
/// let go — commits nothing.
#[test]
fn a_lock_lost_mid_run_commits_nothing() {
    for taken in [true, false] {
        let e = Env::new(server(), "lost");
        let dest = e.dest("F");
        let result = rt().block_on(async {
            let (writer, o, source) = slow_run(&dest, Duration::from_millis(800), 10, 150).await?;
            // Another run takes the lock meanwhile, or deletes it.
            let (client, bucket) = (e.s3.client().await, e.bucket.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let key = "F/.bedrock-batch/lock";
                if taken {
                    let body = Bytes::from_static(b"{}").into();
                    let put = client.put_object().bucket(bucket).key(key).body(body);
                    put.send().await.unwrap();
                } else {
                    let delete = client.delete_object().bucket(bucket).key(key);
                    delete.send().await.unwrap();
                }
            });
            let prepared = prepare_to_bedrock(source, BedrockOutput::Folder(writer), &o).await?;
            prepared.commit().await
        });
        match result {
            Err(PipelineError::Folder(FolderError::LockLost { .. })) => {}
            other => panic!("expected a lost lock (taken: {taken}), got {other:?}"),
        }
        let after = e.objects();
        assert!(!after.contains_key("F/batch.json"));
        assert_eq!(
            after
                .keys()
                .filter(|k| !k.ends_with(".bedrock-batch/lock"))
                .count(),
            0,
            "{after:?}"
        );
        if taken {
            assert_eq!(
                after["F/.bedrock-batch/lock"], b"{}",
                "the new holder's lock stays"
            );
        } else {
            assert!(
                !after.contains_key("F/.bedrock-batch/lock"),
                "not written again"
            );
        }
    }
}

/// Renewals of the lock that fail (the store out of reach, past the SDK's retries) are tried
/// again while the lease runs: a run slower than its lease keeps its folder, renewed, and
/// commits. Renewals failing for longer than the lease lose the lock, and the run commits
/// nothing even when the store is back for its commit.
#[test]
fn a_failed_lock_renewal_is_tried_again_while_the_lease_runs() {
    for (refused, kept) in [(3, true), (1_000, false)] {
        let e = Env::new(in_process(), "renewal");
        let dest = e.dest("F");
        let faults = Arc::clone(&e.s3.faults);
        let (client, bucket) = (rt().block_on(e.s3.client()), e.bucket.clone());
        let result = rt().block_on(async {
            // Renewed every second (after a failure, every quarter second); 12 lines half a
            // second apart: past the lease, and past the refused renewals.
            faults.lock_renewal_403.store(refused, Ordering::SeqCst);
            let (writer, o, source) = slow_run(&dest, Duration::from_secs(4), 12, 500).await?;
            let prepared = prepare_to_bedrock(source, BedrockOutput::Folder(writer), &o).await?;
            if kept {
                // Renewed past the refusals: the lease written runs well beyond the first one.
                let lock = client
                    .get_object()
                    .bucket(&bucket)
                    .key("F/.bedrock-batch/lock")
                    .send()
                    .await
                    .expect("the lock is there")
                    .body
                    .collect()
                    .await
                    .unwrap()
                    .into_bytes();
                let holder: serde_json::Value = serde_json::from_slice(&lock).unwrap();
                let (started, expires) =
                    (holder["started_at"].as_u64(), holder["expires_at"].as_u64());
                assert!(expires >= started.map(|s| s + 4 + 2), "renewed: {holder}");
            }
            // Only the renewer's verdict counts: the renewal right before the commit is let
            // through.
            faults.lock_renewal_403.store(0, Ordering::SeqCst);
            prepared.commit().await
        });
        kept_or_lost(&e, result, kept);
    }
}

/// A run's commit `result`, and the folder `F` after it: committed when the lock was `kept`;
/// else refused for a lost lock, with nothing committed.
fn kept_or_lost<T: std::fmt::Debug>(e: &Env, result: Result<T, PipelineError>, kept: bool) {
    if kept {
        result.unwrap_or_else(|err| panic!("the run keeps its lock: {err}"));
        assert!(e.objects().contains_key("F/batch.json"));
    } else {
        assert!(
            matches!(
                result,
                Err(PipelineError::Folder(FolderError::LockLost { .. }))
            ),
            "a lock not renewed for a lease is lost: {result:?}"
        );
        assert!(!e.objects().contains_key("F/batch.json"));
    }
}

/// A write of the lock that S3 carried out but whose answer was lost — answered 503 and sent
/// again by the SDK, or answered 403 and left to the next renewal — is still this run's: the
/// next write, refused because the lock changed, finds its own body there and goes on from it;
/// a create answered so reads the lock back and finds it. The run keeps its folder, commits,
/// and lets the lock go.
#[test]
fn a_lock_write_that_landed_unanswered_is_still_ours() {
    for status in [503, 403] {
        let e = Env::new(in_process(), "landed");
        let faults = Arc::clone(&e.s3.faults);
        let landed = match status {
            503 => &faults.lock_landed_503,
            _ => &faults.lock_landed_403,
        };
        // Taking the lock.
        landed.store(1, Ordering::SeqCst);
        let input = e.input("in.jsonl", &lines(20, "t-"));
        let o = e.run(&[
            "to-bedrock",
            &input,
            &e.folder("T"),
            "-m",
            MODEL,
            "--allow-small",
        ]);
        assert_eq!(
            landed.load(Ordering::SeqCst),
            0,
            "the fault was met: {}",
            stderr(&o)
        );
        // Sent again by the SDK and refused, or not sent again: either way the lock is read
        // back and found to hold this run's body.
        assert_eq!(o.status.code(), Some(0), "taken: {}", stderr(&o));
        assert!(e.objects().contains_key("T/batch.json"));
        assert!(
            !e.objects().contains_key("T/.bedrock-batch/lock"),
            "released"
        );
        // Renewing it, on a lease of 4 s (renewed every second) over a run of 6 s. (One 503
        // only: the SDK backs off up to a second, then two, before its later attempts.)
        let dest = e.dest("F");
        let result = rt().block_on(async {
            let (writer, o, source) = slow_run(&dest, Duration::from_secs(4), 12, 500).await?;
            landed.store(if status == 503 { 1 } else { 2 }, Ordering::SeqCst);
            let prepared = prepare_to_bedrock(source, BedrockOutput::Folder(writer), &o).await?;
            assert_eq!(landed.load(Ordering::SeqCst), 0, "the fault was met");
            prepared.commit().await
        });
        result.unwrap_or_else(|err| panic!("the run keeps its lock ({status}): {err}"));
        let after = e.objects();
        assert!(after.contains_key("F/batch.json"));
        assert!(!after.contains_key("F/.bedrock-batch/lock"), "released");
    }
}

/// The renewal right before a commit is tried again, as the renewer's are, while the lease
/// runs: a store refusing it twice does not cost the run its commit; one refusing it for longer
/// than the lease does, with nothing committed.
#[test]
fn the_renewal_before_a_commit_is_tried_again_while_the_lease_runs() {
    for (refused, kept) in [(2, true), (1_000, false)] {
        let e = Env::new(in_process(), "confirm");
        let dest = e.dest("F");
        let faults = Arc::clone(&e.s3.faults);
        let result = rt().block_on(async {
            let (writer, o, source) = slow_run(&dest, Duration::from_secs(4), 3, 10).await?;
            let prepared = prepare_to_bedrock(source, BedrockOutput::Folder(writer), &o).await?;
            faults.lock_renewal_403.store(refused, Ordering::SeqCst);
            prepared.commit().await
        });
        kept_or_lost(&e, result, kept);
        if kept {
            assert_eq!(
                faults.lock_renewal_403.load(Ordering::SeqCst),
                0,
                "refused twice"
            );
        }
    }
}

/// The lock of the new folder `F`, taken with `holder` written in it.
fn take_lock(e: &Env, holder: &'static [u8]) -> Arc<dyn bedrock_batch::io::HeldLock> {
    let dest = e.dest("F");
    let taking = dest.lock(".bedrock-batch/lock", Bytes::from_static(holder), None);
    match rt().block_on(taking).unwrap() {
        bedrock_batch::io::LockAttempt::Acquired(held) => held,
        _ => panic!("a new folder"),
    }
}

/// A stale lock whose holder lets go of it just before this run takes it over — S3 answers
/// the take-over 404, the object being gone — is taken afresh, not reported as held by
/// another run. Also in a folder whose name spells an S3 error code (`NoSuchBucket`): an
/// object gone is told from a bucket missing by the code S3 answered, not by the words.
#[test]
fn a_stale_lock_let_go_just_before_its_takeover_is_taken_afresh() {
    let e = Env::new(in_process(), "let-go");
    let input = e.input("in.jsonl", &lines(120, "g-"));
    let stale = holder("elsewhere", 42, now() - 3600);
    for folder in ["A", "NoSuchBucket"] {
        e.put(&format!("{folder}/.bedrock-batch/lock"), &stale);
        let faults = Arc::clone(&e.s3.faults);
        faults.lock_let_go.store(1, Ordering::SeqCst);
        let o = e.run(&["to-bedrock", &input, &e.folder(folder), "-m", MODEL]);
        assert_eq!(faults.lock_let_go.load(Ordering::SeqCst), 0, "a take-over");
        assert_eq!(o.status.code(), Some(0), "{folder}: {}", stderr(&o));
        let after = e.objects();
        let lock = format!("{folder}/.bedrock-batch/lock");
        assert!(!after.contains_key(&lock), "let go at the end");
        let written: Vec<_> = after
            .keys()
            .filter(|k| k.starts_with(&format!("{folder}/")) && k.ends_with(".jsonl"))
            .collect();
        assert!(!written.is_empty(), "{:?}", after.keys());
    }
}

/// Releases `held` on a thread of its own, its DELETE of the lock held in flight until the
/// gate returned is opened.
fn release_at_a_gate(
    e: &Env,
    held: Arc<dyn bedrock_batch::io::HeldLock>,
) -> (
    std::thread::JoinHandle<std::io::Result<()>>,
    Arc<tokio::sync::Semaphore>,
) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *e.s3.faults.gate.lock().unwrap() = Some((
        http::Method::DELETE,
        ".bedrock-batch/lock".into(),
        Arc::clone(&gate),
    ));
    (
        std::thread::spawn(move || rt().block_on(held.release())),
        gate,
    )
}

/// Waits until a DELETE has reached the test server.
fn wait_for_a_delete(e: &Env) {
    wait_until("the delete", || {
        let seen = e.s3.faults.seen.lock().unwrap();
        seen.iter().any(|s| s.0.starts_with("DELETE"))
    });
}

/// A release whose conditional delete is refused as if the lock had changed reads it again and
/// deletes it while it is still this run's; refused every time, it says the lock is left to
/// expire rather than letting go silently. Another run's lock is never deleted.
#[test]
fn a_refused_release_deletes_the_lock_while_it_is_still_ours() {
    let e = Env::new(in_process(), "release");
    let faults = Arc::clone(&e.s3.faults);
    let held = take_lock(&e, b"{\"acquisition\":\"mine\"}");
    faults.lock_delete_412.store(2, Ordering::SeqCst);
    rt().block_on(held.release())
        .unwrap_or_else(|err| panic!("let go after two refusals: {err}"));
    assert_eq!(faults.lock_delete_412.load(Ordering::SeqCst), 0);
    assert!(!e.objects().contains_key("F/.bedrock-batch/lock"));

    let held = take_lock(&e, b"{\"acquisition\":\"mine again\"}");
    faults.lock_delete_412.store(100, Ordering::SeqCst);
    let err = rt().block_on(held.release()).expect_err("never deleted");
    faults.lock_delete_412.store(0, Ordering::SeqCst);
    assert!(err.to_string().contains("left to expire"), "{err}");
    assert_eq!(
        e.objects()["F/.bedrock-batch/lock"],
        b"{\"acquisition\":\"mine again\"}"
    );

    // Let go of (deleted) between the release's read and its delete, which S3 answers 404:
    // nothing is left, and the release says nothing went wrong.
    let e = Env::new(in_process(), "release-gone");
    let faults = Arc::clone(&e.s3.faults);
    let held = take_lock(&e, b"{\"acquisition\":\"mine\"}");
    let (release, gate) = release_at_a_gate(&e, held);
    wait_for_a_delete(&e);
    *faults.gate.lock().unwrap() = None;
    rt().block_on(async {
        let client = e.s3.client().await;
        let gone = client.delete_object().bucket(&e.bucket);
        gone.key("F/.bedrock-batch/lock").send().await.unwrap();
    });
    gate.add_permits(1);
    release
        .join()
        .unwrap()
        .unwrap_or_else(|err| panic!("gone is let go: {err}"));
    assert!(!e.objects().contains_key("F/.bedrock-batch/lock"));

    // Taken over by another run before the release reads the lock, or between that read and
    // the delete (which is conditional on the version read): the other run's lock stays.
    for between in [false, true] {
        let e = Env::new(in_process(), "release-theirs");
        let held = take_lock(&e, b"{\"acquisition\":\"mine\"}");
        let theirs = "{\"acquisition\":\"theirs\"}";
        if !between {
            e.put("F/.bedrock-batch/lock", theirs);
        }
        let (release, gate) = release_at_a_gate(&e, held);
        if between {
            wait_for_a_delete(&e);
            e.put("F/.bedrock-batch/lock", theirs);
        }
        gate.add_permits(100);
        release.join().unwrap().unwrap();
        assert_eq!(
            e.objects()["F/.bedrock-batch/lock"],
            theirs.as_bytes(),
            "{between}"
        );
    }
}

/// Two renewals of one lock at once (the renewer's and a commit's) both keep it: neither is
/// refused as if another run had written the lock.
#[test]
fn two_renewals_at_once_both_keep_the_lock() {
    let e = Env::new(server(), "renewals");
    let held = take_lock(&e, b"{\"n\":0}");
    for round in 1..6 {
        let a = Bytes::from(format!("{{\"n\":{round},\"by\":\"a\"}}"));
        let b = Bytes::from(format!("{{\"n\":{round},\"by\":\"b\"}}"));
        let (ra, rb) =
            rt().block_on(async { tokio::join!(held.refresh(a.clone()), held.refresh(b.clone())) });
        ra.unwrap_or_else(|err| panic!("round {round}, the first: {err}"));
        rb.unwrap_or_else(|err| panic!("round {round}, the second: {err}"));
        let now = e.objects()["F/.bedrock-batch/lock"].clone();
        assert!(now == a || now == b, "one of the two: {now:?}");
    }
    rt().block_on(held.release()).unwrap();
    assert!(!e.objects().contains_key("F/.bedrock-batch/lock"));
}

/// Where every write gets a new ETag (SSE-KMS objects), the same bytes sent twice are refused
/// the second time: a renewal that lands unanswered, is found and written again, and lands
/// unanswered again (three times over) is still found to be ours each time, and the lock is
/// let go at the end.
#[test]
fn a_renewal_whose_answers_are_lost_again_and_again_is_still_ours() {
    let e = Env::new(in_process(), "again");
    let faults = Arc::clone(&e.s3.faults);
    faults.kms_etags.store(true, Ordering::SeqCst);
    let held = take_lock(&e, b"{\"n\":0,\"acquisition\":\"this one\"}");
    faults.lock_written_503.store(3, Ordering::SeqCst);
    let renewal = Bytes::from_static(b"{\"n\":1,\"acquisition\":\"this one\"}");
    let result = rt().block_on(held.refresh(renewal.clone()));
    assert_eq!(
        faults.lock_written_503.load(Ordering::SeqCst),
        0,
        "{result:?}"
    );
    result.unwrap_or_else(|err| panic!("the lock is still ours: {err}"));
    assert_eq!(e.objects()["F/.bedrock-batch/lock"], renewal);
    // Lost five times in a row (past the four sendings again), the renewal fails as a store out
    // of reach does — to be tried again while the lease runs —, not as a lock taken over.
    faults.lock_written_503.store(5, Ordering::SeqCst);
    let later = Bytes::from_static(b"{\"n\":2,\"acquisition\":\"this one\"}");
    let err = rt()
        .block_on(held.refresh(later.clone()))
        .expect_err("no write answered");
    assert_eq!(faults.lock_written_503.load(Ordering::SeqCst), 0, "{err}");
    assert!(!bedrock_batch::io::LockTakenOver::is(&err), "{err}");
    assert_eq!(e.objects()["F/.bedrock-batch/lock"], later);
    let last = Bytes::from_static(b"{\"n\":3,\"acquisition\":\"this one\"}");
    rt().block_on(held.refresh(last.clone()))
        .unwrap_or_else(|err| panic!("tried again: {err}"));
    assert_eq!(e.objects()["F/.bedrock-batch/lock"], last);
    rt().block_on(held.release()).unwrap();
    assert!(!e.objects().contains_key("F/.bedrock-batch/lock"));
}

/// A create or a takeover that fails while another run holds the lock never counts as taken:
/// the lock read back after a failed write is taken only when it holds exactly this run's bytes.
#[test]
fn a_failed_create_or_takeover_never_takes_another_runs_lock() {
    let e = Env::new(in_process(), "theirs");
    let faults = Arc::clone(&e.s3.faults);
    let theirs = b"{\"run\":\"x\",\"acquisition\":\"x\"}";
    let _held = take_lock(&e, theirs);
    let version = rt().block_on(async {
        let head = e.s3.client().await.head_object().bucket(&e.bucket);
        let head = head.key("F/.bedrock-batch/lock").send().await.unwrap();
        head.e_tag().unwrap().to_owned()
    });
    let dest = e.dest("F");
    let ours = Bytes::from_static(b"{\"run\":\"y\",\"acquisition\":\"y\"}");
    for (what, take_over, fault) in [
        // A create refused (the lock is there), answered 403.
        ("create", None, &faults.lock_landed_403),
        // A takeover of the version seen, refused before it reached the store.
        ("takeover", Some(version.clone()), &faults.lock_renewal_403),
        // A takeover of a version gone since (refused), answered 403.
        (
            "stale takeover",
            Some("\"gone\"".to_owned()),
            &faults.lock_landed_403,
        ),
    ] {
        fault.store(1, Ordering::SeqCst);
        let attempt = rt().block_on(dest.lock(".bedrock-batch/lock", ours.clone(), take_over));
        assert_eq!(fault.load(Ordering::SeqCst), 0, "{what}: the fault was met");
        assert!(
            !matches!(attempt, Ok(bedrock_batch::io::LockAttempt::Acquired(_))),
            "{what}: another run's lock taken"
        );
        assert_eq!(e.objects()["F/.bedrock-batch/lock"], theirs);
    }
}

/// S3 refusing any one of the commit's requests (CompleteMultipartUpload, PutObject,
/// CopyObject) leaves the folder exactly as it was, with no upload left open.
#[test]
fn a_refusal_at_any_commit_step_on_s3_leaves_the_folder_as_it_was() {
    let e = Env::new(in_process(), "commit");
    let dest = e.dest("F");
    let first = e.input("a.jsonl", &lines(7, "old-"));
    let o = e.run(&[
        "to-bedrock",
        &first,
        &e.folder("F"),
        "-m",
        MODEL,
        "--allow-small",
        "--records-per-file",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = e.run(&["from-bedrock", &e.folder("F")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = e.objects();
    let faults = Arc::clone(&e.s3.faults);
    let mut k = 1;
    loop {
        faults.commit_steps.store(0, Ordering::SeqCst);
        faults.fail_commit_at.store(k, Ordering::SeqCst);
        let result = rt().block_on(async {
            let folder = FolderWriter::open(dest.clone(), &LockOptions::default()).await?;
            let mut o = common::opts();
            o.allow_small = true;
            o.records_per_file = 3;
            struct NoJobs;
            impl bedrock_batch::batch_folder::JobCheck for NoJobs {
                fn running<'a>(
                    &'a self,
                    _: &'a [String],
                ) -> futures::future::BoxFuture<
                    'a,
                    Result<Vec<String>, bedrock_batch::batch_folder::JobCheckError>,
                > {
                    Box::pin(async { Ok(Vec::new()) })
                }
            }
            let Start::New(writer) = folder
                .start_generation(
                    o.conversion(),
                    o.source.clone(),
                    Replace::Overwrite(&NoJobs),
                )
                .await?
            else {
                panic!("a new generation");
            };
            let source = bedrock_batch::io::BytesSource::new(lines(9, "new-"));
            let prepared = prepare_to_bedrock(source, BedrockOutput::Folder(writer), &o).await?;
            prepared.commit().await
        });
        faults.fail_commit_at.store(0, Ordering::SeqCst);
        match result {
            Ok(_) => {
                assert!(k > 8, "only {k} commit steps");
                break;
            }
            Err(err) => {
                assert!(err.to_string().contains("AccessDenied"), "step {k}: {err}");
                assert_eq!(e.objects(), before, "step {k}: {err}");
                assert_eq!(e.open_uploads(), 0, "step {k}");
            }
        }
        k += 1;
    }
}

/// A prefix of many small objects is one batch folder on S3: only the `.jsonl` objects read,
/// in key order, jobs filled across them, a re-run recognised; and the results come back per
/// input as well as together.
#[test]
fn an_s3_prefix_of_inputs_becomes_one_batch_and_comes_back_per_input() {
    let e = Env::new(server(), "many");
    let mut expected = Vec::new();
    for k in 0..24 {
        let key = format!("exports/day1/part-{k:03}.jsonl");
        let body = String::from_utf8(lines(9, &format!("p{k}-"))).unwrap();
        e.put(&key, &body);
        expected.push(format!("s3://{}/{key}", e.bucket));
    }
    e.put("exports/day1/_SUCCESS", "");
    e.put("exports/day1/schema.json", "{}");
    let input = format!("s3://{}/exports/day1/", e.bucket);
    let f = e.folder("F");
    let args = [
        "to-bedrock",
        &input,
        &f,
        "-m",
        MODEL,
        "--records-per-job",
        "110",
    ];
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let objects = e.objects();
    let m: serde_json::Value = serde_json::from_slice(&objects["F/batch.json"]).unwrap();
    let names: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, expected);
    let jobs: Vec<u64> = m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["records"].as_u64().unwrap())
        .collect();
    assert_eq!(jobs, vec![110, 106], "216 records in two jobs, not 24");
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to do"), "{}", stderr(&o));

    // Bedrock answers every record.
    let g = generation_of(&objects, "F");
    for shard in m["shards"].as_array().unwrap() {
        let path = shard["path"].as_str().unwrap();
        let mut out = String::new();
        for r in common::json_lines(&objects[&format!("F/{path}")]) {
            let line = serde_json::json!({"recordId": r["recordId"], "modelInput": {}, "modelOutput": {
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 1, "output_tokens": 1}}});
            out.push_str(&format!("{line}\n"));
        }
        let name = path.rsplit('/').next().unwrap();
        e.put(&format!("F/{g}/output/job-x/{name}.out"), &out);
    }
    let o = e.run(&["from-bedrock", &f, "--results-per-input"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let objects = e.objects();
    assert_eq!(
        common::json_lines(&objects["F/results/output.jsonl"]).len(),
        216
    );
    for k in 0..24 {
        let ok = &objects[&format!("F/results/by-input/{k:06}-part-{k:03}.output.jsonl")];
        let ids: Vec<String> = common::json_lines(ok)
            .iter()
            .map(|l| l["custom_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 9);
        assert!(
            ids.iter().all(|c| c.starts_with(&format!("p{k}-"))),
            "{ids:?}"
        );
        assert!(objects[&format!("F/results/by-input/{k:06}-part-{k:03}.errors.jsonl")].is_empty());
    }
    assert_eq!(e.open_uploads(), 0);
}
