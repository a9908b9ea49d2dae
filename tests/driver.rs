//! The job driver end to end: the `bedrock-batch` binary (and the library) against the Bedrock
//! emulator and the test S3 server, both started by the tests on 127.0.0.1.

mod bedrock_emulator;
mod common;
mod s3_server;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedrock_batch::driver::{
    BatchFolder, BedrockOptions, Driver, JobStatus, ListFilter, PollOptions, SubmitSettings,
};
use bedrock_batch::io::{Destination, S3Dir, S3Uri};
use bedrock_emulator::Emulator;
use common::{json_lines, rt, sample, MODEL};
use s3_server::TestS3;
use serde_json::Value;

const ROLE: &str = "arn:aws:iam::123456789012:role/BedrockBatch";

struct Env {
    s3: TestS3,
    emu: Emulator,
    bucket: String,
    dir: tempfile::TempDir,
}

fn env(hint: &str) -> Env {
    // The emulator and the binary share one S3 server: in-process, or moto in CI
    // (BEDROCK_BATCH_TEST_S3_ENDPOINT).
    let s3 = s3_server::server();
    let emu = bedrock_emulator::start(&s3);
    let bucket = rt().block_on(s3.bucket(hint));
    Env {
        s3,
        emu,
        bucket,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Env {
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bedrock-batch"));
        c.args([
            "--endpoint-url",
            &self.s3.endpoint,
            "--bedrock-endpoint-url",
            &self.emu.endpoint,
        ]);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn staging(&self, name: &str) -> String {
        format!("s3://{}/batches/{name}/", self.bucket)
    }

    /// Writes `n` sample requests to a local file.
    fn input(&self, name: &str, n: u64) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, sample(n)).unwrap();
        path.display().to_string()
    }

    fn object(&self, uri: &str) -> Vec<u8> {
        let uri = S3Uri::parse(uri).unwrap().unwrap();
        rt().block_on(self.s3.get(&uri.bucket, &uri.key))
    }

    /// Reads a finished batch's output and error files: see [`accounted`].
    fn results(&self, batch: &Value) -> (BTreeMap<String, u32>, BTreeMap<String, u64>) {
        accounted(
            &self.object(batch["output_file_id"].as_str().unwrap()),
            &self.object(batch["error_file_id"].as_str().unwrap()),
        )
    }

    fn folder(&self, staging: &str) -> Arc<dyn Destination> {
        let uri = S3Uri::parse(staging).unwrap().unwrap();
        let opts = self.s3.options();
        let client = rt().block_on(opts.client());
        Arc::new(S3Dir::new(client, uri, &opts))
    }

    /// The generation the batch folder at `staging` holds now.
    fn generation(&self, staging: &str) -> String {
        let m: Value =
            serde_json::from_slice(&self.object(&format!("{staging}batch.json"))).unwrap();
        m["generation"].as_str().unwrap().to_owned()
    }

    /// Jobs progress ten records a tick and stall after `records` each: still running when a
    /// test reaches in.
    fn slow_and_stalled_after(&self, records: u64) {
        self.emu.knobs.records_per_tick.store(10, Ordering::SeqCst);
        self.emu
            .knobs
            .stall_after_records
            .store(records, Ordering::SeqCst);
    }

    /// Waits until the batch's first job has processed `n` records: its ARN.
    fn first_job_once_processed(&self, n: u64) -> String {
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the job never ran"
            );
            if let Some(id) = self.emu.job_ids().first() {
                if self.emu.processed(id) == n {
                    return id.clone();
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn driver(&self) -> Driver {
        rt().block_on(Driver::connect(&BedrockOptions {
            endpoint_url: Some(self.emu.endpoint.clone()),
            ..Default::default()
        }))
    }
}

const FAST_POLL: [&str; 4] = ["--poll-interval", "20ms", "--max-poll-interval", "100ms"];

fn run_args<'a>(input: &'a str, staging: &'a str) -> Vec<&'a str> {
    let mut v = vec![
        "--json",
        "run",
        input,
        "--model",
        MODEL,
        "--role-arn",
        ROLE,
        "--staging",
        staging,
    ];
    v.extend(FAST_POLL);
    v
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn batch(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a Batch object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            stderr(o)
        )
    })
}

/// custom_id → how many times it came back, and the error code of each error line.
fn accounted(output: &[u8], errors: &[u8]) -> (BTreeMap<String, u32>, BTreeMap<String, u64>) {
    let mut seen = BTreeMap::new();
    let mut codes = BTreeMap::new();
    for line in json_lines(output) {
        assert_eq!(line["response"]["status_code"], 200, "{line}");
        *seen
            .entry(line["custom_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    for line in json_lines(errors) {
        *seen
            .entry(line["custom_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
        let code = line["error"]["code"]
            .as_str()
            .or(line["response"]["body"]["error"]["type"].as_str())
            .unwrap_or("?")
            .to_owned();
        *codes.entry(code).or_insert(0) += 1;
    }
    (seen, codes)
}

fn every_id_once(seen: &BTreeMap<String, u32>, n: u64) {
    assert_eq!(seen.len() as u64, n, "every custom_id comes back");
    for i in 0..n {
        assert_eq!(seen.get(&format!("request-{i}")), Some(&1), "request-{i}");
    }
}

#[test]
fn run_takes_a_file_to_openai_results_with_every_custom_id_once() {
    let e = env("run");
    // Every 7th record fails; every 50th is lost although Bedrock counts it as a success.
    e.emu.knobs.error_every.store(7, Ordering::SeqCst);
    e.emu.knobs.omit_every.store(50, Ordering::SeqCst);
    let input = e.input("requests.jsonl", 300);
    let staging = e.staging("run1");
    let o = e.run(&run_args(&input, &staging));
    assert_eq!(
        o.status.code(),
        Some(1),
        "some requests failed: {}",
        stderr(&o)
    );
    let b = batch(&o);
    assert_eq!(b["object"], "batch");
    assert_eq!(b["status"], "completed");
    assert_eq!(b["endpoint"], "/v1/chat/completions");
    assert_eq!(b["model"], "gpt-4o-mini");
    assert_eq!(b["input_file_id"], input.as_str());
    assert_eq!(b["completion_window"], "24h");
    assert_eq!(b["request_counts"]["total"], 300);
    assert_eq!(b["request_counts"]["failed"], 42 + 6);
    assert_eq!(b["request_counts"]["completed"], 300 - 42 - 6);
    assert!(
        stderr(&o).contains("successful records: the manifest says 258, the output lines say 252"),
        "the lost records are noticed: {}",
        stderr(&o)
    );
    assert!(b["usage"]["input_tokens"].as_u64().unwrap() > 0);
    for key in ["created_at", "completed_at", "finalizing_at", "expires_at"] {
        assert!(b[key].as_i64().is_some(), "{key}: {b}");
    }
    let arn = b["metadata"]["job_arn"].as_str().unwrap();
    assert_eq!(
        b["id"],
        format!("batch_{}", arn.rsplit('/').next().unwrap())
    );
    assert_eq!(
        e.emu.status(arn).as_deref(),
        Some("Completed"),
        "the job ran to the end"
    );
    // What the job was created with.
    let req = e.emu.request(arn).unwrap();
    assert_eq!(req["modelId"], MODEL);
    assert_eq!(req["roleArn"], ROLE);
    let generation = e.generation(&staging);
    assert_eq!(
        req["inputDataConfig"]["s3InputDataConfig"]["s3Uri"],
        format!("{staging}{generation}/input/job000/")
    );
    assert_eq!(
        req["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"],
        format!("{staging}{generation}/output/")
    );
    assert_eq!(req["timeoutDurationInHours"], 24);
    assert_eq!(req["modelInvocationType"], "InvokeModel");
    assert!(req["clientRequestToken"]
        .as_str()
        .unwrap()
        .starts_with("bedrock-batch-"));
    // The results, in the staging folder by default.
    let output = e.object(b["output_file_id"].as_str().unwrap());
    let errors = e.object(b["error_file_id"].as_str().unwrap());
    assert_eq!(
        b["output_file_id"],
        format!("{staging}results/output.jsonl")
    );
    let (seen, codes) = accounted(&output, &errors);
    every_id_once(&seen, 300);
    assert_eq!(codes.get("invalid_request_error"), Some(&42));
    assert_eq!(codes.get("result_missing"), Some(&6));
    let record: Value =
        serde_json::from_slice(&e.object(&format!("{staging}{generation}/jobs/job000.json")))
            .unwrap();
    assert_eq!(record["job_arn"], arn);

    // `status` needs only the folder, and says the same.
    let o = e.run(&["--json", "status", &staging]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = batch(&o);
    assert_eq!(again["status"], "completed");
    assert_eq!(again["request_counts"], b["request_counts"]);
    assert_eq!(again["output_file_id"], b["output_file_id"]);
    // The job alone, by id.
    let id = arn.rsplit('/').next().unwrap();
    let o = e.run(&["--json", "status", id]);
    let alone = batch(&o);
    assert_eq!(alone["status"], "completed");
    assert_eq!(alone["metadata"]["job_arn"], arn);
    // Human-readable status.
    let o = e.run(&["status", &staging]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("completed") && text.contains(id), "{text}");
}

#[test]
fn running_again_resumes_instead_of_starting_over() {
    let e = env("resume");
    let input = e.input("requests.jsonl", 150);
    let staging = e.staging("again");
    let out_path = e.dir.path().join("out.jsonl").display().to_string();
    let mut args = run_args(&input, &staging);
    args.extend(["--output", &out_path]);
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first = batch(&o);
    assert_eq!(e.emu.knobs.creates.load(Ordering::SeqCst), 1);
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    assert!(stderr(&o).contains("already submitted"), "{}", stderr(&o));
    let second = batch(&o);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(e.emu.job_ids().len(), 1, "no second job");
    assert_eq!(
        e.emu.knobs.creates.load(Ordering::SeqCst),
        1,
        "the recorded job was not even asked for again"
    );
    // Local results beside --output.
    let output = std::fs::read(&out_path).unwrap();
    let errors = std::fs::read(e.dir.path().join("out.errors.jsonl")).unwrap();
    let (seen, _) = accounted(&output, &errors);
    every_id_once(&seen, 150);
    // A cancel of a batch that has ended leaves it as it was.
    let o = e.run(&["--json", "cancel", &staging]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(batch(&o)["status"], "completed", "{}", stderr(&o));
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(batch(&o)["status"], "completed");
    // Another input under the same prefix is refused, not mixed in.
    let other = e.input("other.jsonl", 150);
    let o = e.run(&run_args(&other, &staging));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already holds"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
}

/// Where the results go is checked before anything is converted or submitted (and billed):
/// never over an input, never both into one file, inside the batch folder only below
/// results/. With the results on stdout, the Batch object goes to stderr.
#[test]
fn results_that_would_land_on_an_input_or_each_other_are_refused_before_anything_runs() {
    let e = env("targets");
    let input = e.input("requests.jsonl", 120);
    let before = std::fs::read(&input).unwrap();
    let staging = e.staging("targets");
    let other = e.dir.path().join("same.jsonl").display().to_string();
    let in_folder = format!("{staging}batch.json");
    let by_input = format!("{staging}results/by-input/mine.jsonl");
    let itself = staging.trim_end_matches('/').to_owned();
    for (flags, says) in [
        (vec!["--output", by_input.as_str()], "results/by-input/"),
        (vec!["--output", itself.as_str()], "staging folder itself"),
        (vec!["--output", input.as_str()], "same file"),
        (
            vec!["--output", "x.jsonl", "--errors", input.as_str()],
            "same file",
        ),
        (vec!["--output", &other, "--errors", &other], "same file"),
        (vec!["--output", &in_folder], "results/"),
    ] {
        let mut args = run_args(&input, &staging);
        args.extend(&flags);
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{flags:?}: {}", stderr(&o));
    }
    assert_eq!(
        std::fs::read(&input).unwrap(),
        before,
        "the input is as it was"
    );
    assert_eq!(
        e.emu.knobs.creates.load(Ordering::SeqCst),
        0,
        "nothing submitted"
    );
    let mut args = run_args(&input, &staging);
    args.extend(["--output", "-"]);
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (seen, _) = accounted(&o.stdout, b"");
    every_id_once(&seen, 120);
    assert!(stderr(&o).contains("\"request_counts\""), "{}", stderr(&o));
}

#[test]
fn a_repeated_submit_returns_the_same_job() {
    let e = env("idem");
    let input = e.input("requests.jsonl", 120);
    let staging = e.staging("twice");
    let o = e.run(&["to-bedrock", &input, &staging, "--model", MODEL]);
    assert!(o.status.success(), "{}", stderr(&o));
    let submit = ["--json", "submit", &staging, "--role-arn", ROLE];
    let o = e.run(&submit);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = batch(&o);
    let o = e.run(&submit);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(batch(&o)["id"], first["id"]);
    assert_eq!(e.emu.job_ids().len(), 1);

    // Even when the job record was lost (a crash between Bedrock's answer and the write), the
    // token derived from the folder makes Bedrock return the job it already has.
    let dest = e.folder(&staging);
    let generation = e.generation(&staging);
    rt().block_on(async {
        let client = e.s3.client().await;
        client
            .delete_object()
            .bucket(&e.bucket)
            .key(format!("batches/twice/{generation}/jobs/job000.json"))
            .send()
            .await
            .unwrap();
    });
    let creates = e.emu.knobs.creates.load(Ordering::SeqCst);
    let driver = e.driver();
    let mut folder = rt().block_on(BatchFolder::open(dest)).unwrap();
    assert_eq!(folder.pending(), 1);
    let settings = SubmitSettings {
        role_arn: ROLE.into(),
        timeout_hours: 24,
        ..Default::default()
    };
    let summary = rt()
        .block_on(folder.submit(&driver, &settings, 20))
        .unwrap();
    assert_eq!(e.emu.knobs.creates.load(Ordering::SeqCst), creates + 1);
    assert_eq!(
        summary.submitted[0].job_arn,
        first["metadata"]["job_arn"].as_str().unwrap()
    );
    assert_eq!(e.emu.job_ids().len(), 1, "still one job");

    // Other settings are another request: refused while the first job runs… (slow it down)
    let settings = SubmitSettings {
        role_arn: "arn:aws:iam::123456789012:role/Other".into(),
        timeout_hours: 24,
        ..Default::default()
    };
    let jobs = rt()
        .block_on(driver.wait(
            &[summary.submitted[0].job_arn.clone()],
            PollOptions {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(50),
            },
            |_| {},
        ))
        .unwrap();
    assert_eq!(jobs[0].status, JobStatus::Completed);
    // …and, once it has completed, kept: it ran and was billed; its results stand.
    let summary = rt()
        .block_on(folder.submit(&driver, &settings, 20))
        .unwrap();
    assert!(summary.submitted.is_empty());
    assert_eq!(summary.kept.len(), 1);
    assert_eq!(e.emu.job_ids().len(), 1, "not billed twice");
}

#[test]
fn a_stop_in_mid_run_cancels_the_batch_and_accounts_for_every_request() {
    let e = env("stop");
    // Slow progress that stalls after 100 of 400 records, so the stop lands in mid-run.
    e.slow_and_stalled_after(100);
    let input = e.input("requests.jsonl", 400);
    let staging = e.staging("stopped");
    let child = e.cmd().args(run_args(&input, &staging)).spawn().unwrap();
    // Wait until the job runs and has processed some records, then cancel it from outside.
    let arn = e.first_job_once_processed(100);
    let o = e.run(&["--json", "cancel", &staging]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        ["cancelling", "cancelled"].contains(&batch(&o)["status"].as_str().unwrap()),
        "{}",
        batch(&o)
    );
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = batch(&o);
    assert_eq!(b["status"], "cancelled");
    assert!(b["cancelled_at"].as_i64().is_some());
    assert_eq!(e.emu.status(&arn).as_deref(), Some("Stopped"));
    let (seen, codes) = e.results(&b);
    every_id_once(&seen, 400);
    assert_eq!(codes.get("batch_cancelled"), Some(&300));
    assert_eq!(b["request_counts"]["completed"], 100);
    assert_eq!(b["request_counts"]["failed"], 300);

    // Cancelling a batch that ended is not an error.
    let o = e.run(&["cancel", &staging]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("had already ended"), "{}", stderr(&o));
}

/// A cancel stops the batch, not only its running jobs: the jobs still waiting for a slot are
/// never submitted (by the run that is waiting, or a later one), and their requests come back
/// as batch_cancelled. Cancelling before anything was submitted keeps everything from running.
#[test]
fn a_cancel_keeps_the_jobs_still_waiting_from_ever_being_submitted() {
    let e = env("cancelwait");
    e.slow_and_stalled_after(50);
    let input = e.input("requests.jsonl", 300);
    let staging = e.staging("waiting");
    let mut args = run_args(&input, &staging);
    args.extend(["--records-per-job", "100", "--max-jobs", "1"]);
    let child = e.cmd().args(&args).spawn().unwrap();
    let arn = e.first_job_once_processed(50);
    let o = e.run(&["cancel", &staging]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 of the folder's jobs were not submitted yet"),
        "{}",
        stderr(&o)
    );
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = batch(&o);
    assert_eq!(b["status"], "cancelled", "{b}");
    assert_eq!(
        e.emu.job_ids(),
        vec![arn],
        "no job submitted after the cancel"
    );
    let (seen, codes) = e.results(&b);
    every_id_once(&seen, 300);
    assert_eq!(codes.get("batch_cancelled"), Some(&250));
    // Run again: nothing more is submitted; the same results, and a word on --overwrite.
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    assert_eq!(batch(&o)["status"], "cancelled");
    assert_eq!(e.emu.job_ids().len(), 1);

    // Cancelled before submitting: nothing ever runs.
    let staging = e.staging("early");
    let mut convert = vec![
        "to-bedrock",
        input.as_str(),
        staging.as_str(),
        "--model",
        MODEL,
    ];
    convert.extend(["--records-per-job", "100"]);
    let o = e.run(&convert);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = e.run(&["cancel", &staging]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut args = run_args(&input, &staging);
    args.extend(["--records-per-job", "100"]);
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = batch(&o);
    assert_eq!(b["status"], "cancelled", "{b}");
    assert_eq!(e.emu.job_ids().len(), 1, "nothing submitted");
    let (seen, codes) = e.results(&b);
    every_id_once(&seen, 300);
    assert_eq!(codes.get("batch_cancelled"), Some(&300));
    // Collected by hand, the records of a cancelled batch are cancelled too, not expired.
    let out = e.dir.path().join("early.jsonl").display().to_string();
    let o = e.run(&["from-bedrock", &staging, &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    let errors = std::fs::read(e.dir.path().join("early.errors.jsonl")).unwrap();
    let (seen, codes) = accounted(b"", &errors);
    every_id_once(&seen, 300);
    assert_eq!(codes.get("batch_cancelled"), Some(&300), "{codes:?}");
}

/// A cancel that lands while a run submits many jobs in one pass: every job the run submits
/// is stopped, whether it was submitted before the cancel was recorded or as it was.
#[test]
fn a_cancel_during_a_submission_pass_leaves_no_job_running() {
    let e = env("cancelpass");
    e.slow_and_stalled_after(20);
    let input = e.input("requests.jsonl", 2000);
    let staging = e.staging("pass");
    let mut args = run_args(&input, &staging);
    args.extend(["--records-per-job", "100"]);
    let child = e.cmd().args(&args).spawn().unwrap();
    e.first_job_once_processed(0);
    let o = e.run(&["cancel", &staging]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = batch(&o);
    assert_eq!(b["status"], "cancelled", "{b}");
    for id in e.emu.job_ids() {
        assert_eq!(e.emu.status(&id).as_deref(), Some("Stopped"), "{id}");
    }
    let (seen, _) = e.results(&b);
    every_id_once(&seen, 2000);
}

#[test]
fn a_job_that_fails_validation_fails_the_batch_with_bedrocks_reason() {
    let e = env("invalid");
    let input = e.input("requests.jsonl", 40);
    let staging = e.staging("small");
    let mut args = run_args(&input, &staging);
    args.push("--allow-small");
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let b = batch(&o);
    assert_eq!(b["status"], "failed");
    assert!(b["failed_at"].as_i64().is_some());
    let message = b["errors"]["data"][0]["message"].as_str().unwrap();
    assert!(message.contains("minimum of 100"), "{message}");
    // No request is lost even so: each one says the job failed.
    let (seen, codes) = e.results(&b);
    every_id_once(&seen, 40);
    assert_eq!(codes.get("batch_failed"), Some(&40));
    // A failed job ran nothing: with other settings, it is submitted anew.
    args.extend(["--tag", "fix=1"]);
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(e.emu.job_ids().len(), 2, "{}", stderr(&o));
}

#[test]
fn an_expired_job_gives_batch_expired_lines_for_what_it_did_not_do() {
    let e = env("expire");
    // The timeout strikes in mid-run, after 120 records.
    e.emu.knobs.records_per_tick.store(20, Ordering::SeqCst);
    e.emu
        .knobs
        .timeout_after_records
        .store(120, Ordering::SeqCst);
    let input = e.input("requests.jsonl", 300);
    let staging = e.staging("late");
    let o = e.run(&run_args(&input, &staging));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = batch(&o);
    assert_eq!(
        b["status"], "expired",
        "PartiallyCompleted is OpenAI's expired"
    );
    assert_eq!(b["metadata"]["bedrock_status"], "PartiallyCompleted");
    assert!(b["expired_at"].as_i64().is_some());
    let (seen, codes) = e.results(&b);
    every_id_once(&seen, 300);
    assert_eq!(codes.get("batch_expired"), Some(&180));
    assert_eq!(b["request_counts"]["completed"], 120);
    assert_eq!(b["request_counts"]["failed"], 180);

    // A job that never started before its timeout (an emulated hour of 1 ms: 24 ms, while it
    // waits 300 ms in Scheduled): Expired, every request batch_expired.
    e.emu.knobs.hour_ms.store(1, Ordering::SeqCst);
    e.emu.knobs.schedule_ms.store(300, Ordering::SeqCst);
    let staging = e.staging("never");
    let o = e.run(&run_args(&input, &staging));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let b = batch(&o);
    assert_eq!(b["status"], "expired");
    assert_eq!(b["metadata"]["bedrock_status"], "Expired");
    let (seen, codes) = e.results(&b);
    every_id_once(&seen, 300);
    assert_eq!(codes.get("batch_expired"), Some(&300));
}

#[test]
fn quota_breaches_fail_the_job_with_bedrocks_message() {
    let e = env("quotas");
    let input = e.input("requests.jsonl", 200);
    for (knob, value, says) in [
        (&e.emu.knobs.max_records, 150, "150 records per"),
        (&e.emu.knobs.max_file_bytes, 100_000, "bytes per input file"),
        (
            &e.emu.knobs.max_job_bytes,
            150_000,
            "bytes per batch inference job",
        ),
    ] {
        let saved = knob.swap(value, Ordering::SeqCst);
        let staging = e.staging(&format!("quota-{value}"));
        let mut args = run_args(&input, &staging);
        // Two files of 100 records, each ~105 kB.
        args.extend(["--records-per-file", "100"]);
        let o = e.run(&args);
        knob.store(saved, Ordering::SeqCst);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let b = batch(&o);
        assert_eq!(b["status"], "failed");
        let message = b["errors"]["data"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{says}: {message}");
        let (seen, codes) = e.results(&b);
        every_id_once(&seen, 200);
        assert_eq!(codes.get("batch_failed"), Some(&200));
    }
}

#[test]
fn throttling_is_retried() {
    let e = env("throttle");
    let input = e.input("requests.jsonl", 100);
    let staging = e.staging("busy");
    let o = e.run(&["to-bedrock", &input, &staging, "--model", MODEL]);
    assert!(o.status.success(), "{}", stderr(&o));
    e.emu.knobs.throttle_next.store(2, Ordering::SeqCst);
    let o = e.run(&["--json", "submit", &staging, "--role-arn", ROLE]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(e.emu.knobs.throttled.load(Ordering::SeqCst), 2);
    assert_eq!(e.emu.job_ids().len(), 1);
    assert!(batch(&o)["metadata"]["job_arn"].is_string());
}

#[test]
fn bad_requests_are_refused_with_the_field_at_fault() {
    let e = env("refuse");
    let input = e.input("requests.jsonl", 100);
    let staging = e.staging("checks");
    let o = e.run(&["to-bedrock", &input, &staging, "--model", MODEL]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Caught before anything is sent.
    for (flag, value, says) in [
        ("--role-arn", "BedrockBatch", "--role-arn"),
        ("--job-name", "bad name", "--job-name"),
        ("--completion-window", "12h", "24 to 168 hours"),
        ("--tag", "novalue", "KEY=VALUE"),
    ] {
        let mut args = vec!["submit", staging.as_str(), flag, value];
        if flag != "--role-arn" {
            args.extend(["--role-arn", ROLE]);
        }
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(2), "{flag}");
        assert!(stderr(&o).contains(says), "{flag}: {}", stderr(&o));
    }
    assert_eq!(e.emu.knobs.creates.load(Ordering::SeqCst), 0);
    // Refused by Bedrock (the emulator checks the KMS key pattern; the driver leaves it to
    // Bedrock): the error names Bedrock's code and the field.
    let o = e.run(&[
        "--kms-key-id",
        "not a key",
        "submit",
        &staging,
        "--role-arn",
        ROLE,
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("ValidationException") && err.contains("s3EncryptionKeyId"),
        "{err}"
    );
    // A job that does not exist.
    let o = e.run(&["status", "abcdefgh1234"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("ResourceNotFoundException"),
        "{}",
        stderr(&o)
    );
    // A folder that was never submitted.
    let o = e.run(&["status", &staging]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not submitted yet"), "{}", stderr(&o));
    // A staging prefix Bedrock could not read.
    let bad = format!("s3://{}/batches/with space/", e.bucket);
    let o = e.run(&run_args(&input, &bad));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("key names"), "{}", stderr(&o));
}

#[test]
fn many_jobs_run_a_few_at_a_time_within_the_quota() {
    let e = env("quota");
    e.emu.knobs.max_active.store(1, Ordering::SeqCst);
    let input = e.input("requests.jsonl", 350);
    let staging = e.staging("split");
    let mut args = run_args(&input, &staging);
    args.extend([
        "--records-per-job",
        "100",
        "--max-jobs",
        "2",
        "--allow-small",
    ]);
    let o = e.run(&args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the 50-record job fails validation: {}",
        stderr(&o)
    );
    let b = batch(&o);
    // Four jobs (100, 100, 100, 50 records), one at a time: Bedrock's quota said no to the second
    // in flight, and the run waited for a slot instead of failing.
    assert_eq!(e.emu.job_ids().len(), 4);
    assert_eq!(
        b["metadata"]["job_arns"]
            .as_str()
            .unwrap()
            .split(',')
            .count(),
        4
    );
    assert_eq!(
        b["metadata"]["bedrock_status"],
        "Completed,Completed,Completed,Failed"
    );
    assert_eq!(
        b["status"], "completed",
        "one failed job of four does not fail the batch"
    );
    let (seen, codes) = e.results(&b);
    every_id_once(&seen, 350);
    assert_eq!(codes.get("batch_failed"), Some(&50));
    assert_eq!(b["request_counts"]["completed"], 300);
    assert_eq!(b["request_counts"]["failed"], 50);
    // The failed job wrote no manifest; the others' totals agree with the lines.
    assert!(!stderr(&o).contains("the manifest says"), "{}", stderr(&o));
}

#[test]
fn list_filters_and_reads_every_page() {
    let e = env("list");
    e.emu.knobs.max_page.store(2, Ordering::SeqCst);
    let input = e.input("requests.jsonl", 100);
    for name in ["alpha", "beta", "gamma"] {
        let staging = e.staging(name);
        let o = e.run(&["to-bedrock", &input, &staging, "--model", MODEL]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = e.run(&["submit", &staging, "--role-arn", ROLE, "--job-name", name]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let driver = e.driver();
    let all = rt().block_on(driver.list(&ListFilter::default())).unwrap();
    let names: Vec<&str> = all.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["gamma", "beta", "alpha"], "all pages, newest first");
    assert!(!all.more);
    // A limit says whether it left jobs out: at it, below it and above it, across pages.
    for (limit, more) in [(1, true), (2, true), (3, false), (4, false)] {
        let filter = ListFilter {
            limit: Some(limit),
            ..ListFilter::default()
        };
        let found = rt().block_on(driver.list(&filter)).unwrap();
        assert_eq!(found.jobs.len(), limit.min(3), "--limit {limit}");
        assert_eq!(found.more, more, "--limit {limit}");
    }
    let o = e.run(&["--json", "list", "--name-contains", "et"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = batch(&o);
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["has_more"], false);
    let o = e.run(&["--json", "list", "--oldest-first", "--limit", "2"]);
    let list = batch(&o);
    assert_eq!(list["has_more"], true, "a third job was left out");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["metadata"]["job_arn"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        e.emu.job_ids()[..2]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    // Wait for them all, then filter by status.
    for id in e.emu.job_ids() {
        let mut args = vec!["wait", id.as_str()];
        args.extend(FAST_POLL);
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("completed"));
    }
    let o = e.run(&["--json", "list", "--status", "completed"]);
    assert_eq!(batch(&o)["data"].as_array().unwrap().len(), 3);
    let o = e.run(&["--json", "list", "--status", "InProgress"]);
    assert_eq!(batch(&o)["data"].as_array().unwrap().len(), 0);
    let o = e.run(&["list", "--status", "running"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("PartiallyCompleted"), "{}", stderr(&o));
    let future = "2100-01-01T00:00:00Z";
    let o = e.run(&["--json", "list", "--submitted-after", future]);
    assert_eq!(batch(&o)["data"].as_array().unwrap().len(), 0);
    let o = e.run(&["--json", "list", "--submitted-before", future]);
    assert_eq!(batch(&o)["data"].as_array().unwrap().len(), 3);
    // Human-readable: a header and one row per job.
    let o = e.run(&["list"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(!stderr(&o).contains("more jobs"), "{}", stderr(&o));
    let o = e.run(&["list", "--limit", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = e.run(&["list", "--limit", "1"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        stderr(&o).contains("raise --limit above 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_run_killed_while_its_job_runs_resumes_and_collects() {
    let e = env("killed");
    e.emu.knobs.records_per_tick.store(50, Ordering::SeqCst);
    e.emu.knobs.stall_after_records.store(100, Ordering::SeqCst);
    let input = e.input("requests.jsonl", 200);
    let staging = e.staging("interrupted");
    let mut child = e.cmd().args(run_args(&input, &staging)).spawn().unwrap();
    let started = Instant::now();
    while e
        .emu
        .job_ids()
        .first()
        .is_none_or(|id| e.emu.processed(id) < 100)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    e.emu.knobs.stall_after_records.store(0, Ordering::SeqCst);
    let o = e.run(&run_args(&input, &staging));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    assert_eq!(e.emu.knobs.creates.load(Ordering::SeqCst), 1, "one job");
    let b = batch(&o);
    assert_eq!(b["status"], "completed");
    let (seen, codes) = e.results(&b);
    every_id_once(&seen, 200);
    assert!(codes.is_empty(), "{codes:?}");
}

/// The emulator validates like Bedrock on its own: requests the driver would never send, sent
/// with the SDK directly.
#[test]
fn the_emulator_refuses_what_bedrock_refuses() {
    use aws_sdk_bedrock::types::{
        ModelInvocationJobInputDataConfig as In, ModelInvocationJobOutputDataConfig as Out,
        ModelInvocationJobS3InputDataConfig as S3In, ModelInvocationJobS3OutputDataConfig as S3Out,
    };
    let e = env("emulator");
    let client = rt().block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&e.emu.endpoint)
            .load()
            .await;
        aws_sdk_bedrock::Client::new(&conf)
    });
    let create = |name: &str, role: &str, uri: &str, hours: i32, token: &str| {
        let client = client.clone();
        let (name, role, uri, token) = (
            name.to_owned(),
            role.to_owned(),
            uri.to_owned(),
            token.to_owned(),
        );
        rt().block_on(async move {
            client
                .create_model_invocation_job()
                .job_name(name)
                .role_arn(role)
                .model_id(MODEL)
                .input_data_config(In::S3InputDataConfig(
                    S3In::builder().s3_uri(&uri).build().unwrap(),
                ))
                .output_data_config(Out::S3OutputDataConfig(
                    S3Out::builder().s3_uri(&uri).build().unwrap(),
                ))
                .timeout_duration_in_hours(hours)
                .client_request_token(token)
                .send()
                .await
                .map(|o| o.job_arn().to_owned())
                .map_err(|e| {
                    use aws_sdk_bedrock::error::ProvideErrorMetadata;
                    (
                        e.code().unwrap_or_default().to_owned(),
                        e.message().unwrap_or_default().to_owned(),
                    )
                })
        })
    };
    let uri = format!("s3://{}/nothing/", e.bucket);
    for (name, role, uri, hours, token, field) in [
        ("-x", ROLE, uri.as_str(), 24, "t1", "jobName"),
        ("x", "role", uri.as_str(), 24, "t2", "roleArn"),
        ("x", ROLE, "s3://B/x", 24, "t3", "s3Uri"),
        ("x", ROLE, uri.as_str(), 200, "t4", "timeoutDurationInHours"),
        (
            "x",
            ROLE,
            uri.as_str(),
            24,
            "bad token!",
            "clientRequestToken",
        ),
    ] {
        let (code, message) = create(name, role, uri, hours, token).unwrap_err();
        assert_eq!(code, "ValidationException", "{field}");
        assert!(message.contains(field), "{field}: {message}");
    }
    // A good request, twice with one token: one job. An input with no .jsonl fails the job.
    let first = create("x", ROLE, &uri, 24, "same-token").unwrap();
    assert_eq!(create("x", ROLE, &uri, 24, "same-token").unwrap(), first);
    assert_eq!(e.emu.job_ids().len(), 1);
    let driver = e.driver();
    let job = rt()
        .block_on(driver.wait(
            std::slice::from_ref(&first),
            PollOptions {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(50),
            },
            |_| {},
        ))
        .unwrap()
        .remove(0);
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.message.unwrap().contains("No .jsonl files"));
    assert_eq!(job.timeout_hours, Some(24));
    assert!(job.expires_at.unwrap() >= job.submitted_at + 24 * 3600);
    // Stopping a job that ended is Bedrock's ValidationException; the driver says so in words.
    let outcome = rt().block_on(driver.stop(&first)).unwrap();
    assert_eq!(
        outcome,
        bedrock_batch::driver::StopOutcome::AlreadyFinished(JobStatus::Failed)
    );
    // An ARN in the path (percent-encoded by the SDK) and a malformed identifier.
    assert_eq!(rt().block_on(driver.get(&first)).unwrap().arn, first);
    let err = rt().block_on(driver.get("not-a-job")).unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
}

#[test]
fn a_converse_job_runs_end_to_end() {
    let e = env("converse");
    let input = e.input("requests.jsonl", 160);
    let staging = e.staging("conv");
    let mut args = run_args(&input, &staging);
    // The sample's tool round trips cannot go in a Converse job; they are rejected up front.
    args.extend(["--invocation-type", "converse", "--allow-rejects"]);
    let o = e.run(&args);
    let b = batch(&o);
    assert_eq!(b["status"], "completed", "{}", stderr(&o));
    let arn = b["metadata"]["job_arn"].as_str().unwrap();
    assert_eq!(
        e.emu.request(arn).unwrap()["modelInvocationType"],
        "Converse"
    );
    let manifest: Value =
        serde_json::from_slice(&e.object(&format!("{staging}batch.json"))).unwrap();
    assert_eq!(manifest["conversion"]["family"], "converse");
    let rejected = manifest["counts"]["rejected"].as_u64().unwrap();
    assert!(rejected > 0);
    let output = e.object(b["output_file_id"].as_str().unwrap());
    let lines = json_lines(&output);
    assert_eq!(lines.len() as u64 + rejected, 160);
    for l in &lines {
        let content = l["response"]["body"]["choices"][0]["message"]["content"]
            .as_str()
            .unwrap();
        assert!(content.starts_with("Emulated answer to L"), "{content}");
    }
}

/// `--overwrite` replaces a folder only once its Bedrock jobs have ended, and then everything of
/// the old conversion goes: its inputs, ledger, job records, Bedrock's output and the results.
/// Every family's job runs end to end: the emulator answers in the family's own shape, and
/// every answer comes back as the model's text (an answer read with the wrong reader would be
/// refused, not emptied).
#[test]
fn every_chat_family_runs_end_to_end_and_its_answers_come_back() {
    let e = env("families");
    let mut plain = String::new();
    for i in 0..110 {
        plain.push_str(&format!(
            r#"{{"custom_id":"q-{i}","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"question {i}"}}],"max_tokens":50}}}}"#
        ));
        plain.push('\n');
    }
    let path = e.dir.path().join("plain.jsonl");
    std::fs::write(&path, plain).unwrap();
    let input = path.display().to_string();
    for model in [
        "meta.llama3-8b-instruct-v1:0",
        "mistral.mistral-7b-instruct-v0:2",
        "mistral.mistral-large-2407-v1:0",
        "openai.gpt-oss-20b-1:0",
        "amazon.nova-lite-v1:0",
    ] {
        let staging = e.staging(&model.replace([':', '.'], "-"));
        let mut args = run_args(&input, &staging);
        let at = args.iter().position(|a| *a == MODEL).unwrap();
        args[at] = model;
        let o = e.run(&args);
        let b = batch(&o);
        assert_eq!(b["status"], "completed", "{model}: {}", stderr(&o));
        assert_eq!(b["request_counts"]["completed"], 110, "{model}");
        let lines = json_lines(&e.object(b["output_file_id"].as_str().unwrap()));
        assert_eq!(lines.len(), 110, "{model}");
        for l in &lines {
            let content = l["response"]["body"]["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_else(|| panic!("{model}: {l}"));
            assert!(
                content.starts_with("Emulated answer to "),
                "{model}: {content}"
            );
        }
    }
}

#[test]
fn overwrite_waits_for_the_old_jobs_and_then_removes_all_of_them() {
    let e = env("overwrite");
    e.slow_and_stalled_after(50);
    let a = e.input("a.jsonl", 150);
    let b = e.input("b.jsonl", 160);
    let staging = e.staging("ow");
    let o = e.run(&["to-bedrock", &a, &staging, "--model", MODEL]);
    assert!(o.status.success(), "{}", stderr(&o));
    let old = e.generation(&staging);
    let o = e.run(&["--json", "submit", &staging, "--role-arn", ROLE]);
    assert!(o.status.success(), "{}", stderr(&o));
    let arn = batch(&o)["metadata"]["job_arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = arn.rsplit('/').next().unwrap().to_owned();
    let started = Instant::now();
    while e.emu.processed(&id) < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Results collected while the job still runs do not make it look ended.
    let o = e.run(&["from-bedrock", &staging]);
    assert!(o.status.code().is_some_and(|c| c < 2), "{}", stderr(&o));
    let o = e.run(&["to-bedrock", &b, &staging, "--model", MODEL, "--overwrite"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&id) && err.contains("cancel"), "{err}");
    assert_eq!(e.generation(&staging), old, "the old conversion stays");

    let o = e.run(&["cancel", &staging]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = e.run(&[
        "wait",
        &staging,
        "--poll-interval",
        "20ms",
        "--max-poll-interval",
        "100ms",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = e.run(&["from-bedrock", &staging]);
    assert!(o.status.code().is_some_and(|c| c < 2), "{}", stderr(&o));
    let o = e.run(&["to-bedrock", &b, &staging, "--model", MODEL, "--overwrite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let new = e.generation(&staging);
    assert_ne!(new, old);
    let keys: Vec<String> = rt().block_on(async {
        let out =
            e.s3.client()
                .await
                .list_objects_v2()
                .bucket(&e.bucket)
                .prefix("batches/ow/")
                .send()
                .await
                .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key())
            .map(str::to_owned)
            .collect()
    });
    for key in &keys {
        assert!(
            key == "batches/ow/batch.json" || key.starts_with(&format!("batches/ow/{new}/")),
            "{key} is left of the old conversion"
        );
    }
}

/// A prefix of many small inputs runs as one batch: a few full jobs (not one per file), at most
/// `--max-jobs` in flight, every custom_id once, and the results per input as well.
#[test]
fn a_prefix_of_small_inputs_runs_as_one_batch_of_full_jobs() {
    let e = env("prefix");
    e.emu.knobs.max_active.store(2, Ordering::SeqCst);
    for k in 0..40 {
        let body = String::from_utf8(sample(10))
            .unwrap()
            .replace("\"request-", &format!("\"request-{k}-"));
        rt().block_on(e.s3.put(&e.bucket, &format!("in/part-{k:02}.jsonl"), body));
    }
    let input = format!("s3://{}/in/", e.bucket);
    let staging = e.staging("prefix");
    let mut args = run_args(&input, &staging);
    args.extend([
        "--records-per-job",
        "100",
        "--max-jobs",
        "2",
        "--results-per-input",
    ]);
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let b = batch(&o);
    assert_eq!(e.emu.job_ids().len(), 4, "400 records in 4 jobs, not 40");
    assert_eq!(b["status"], "completed");
    let (seen, _) = e.results(&b);
    assert_eq!(seen.len(), 400);
    assert!(seen.values().all(|&n| n == 1));
    for k in 0..40 {
        let out = e.object(&format!(
            "{staging}results/by-input/{k:06}-part-{k:02}.output.jsonl"
        ));
        let ids: Vec<String> = json_lines(&out)
            .iter()
            .map(|l| l["custom_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 10, "part-{k:02}");
        assert!(ids.iter().all(|c| c.starts_with(&format!("request-{k}-"))));
    }
    // Again: the folder holds this batch; it is only collected.
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(e.emu.job_ids().len(), 4, "nothing submitted twice");
}
