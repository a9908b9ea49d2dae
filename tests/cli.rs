//! The `bedrock-batch` binary as a user runs it.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bedrock-batch"))
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The folder of a batch folder's current generation.
fn generation_dir(folder: &std::path::Path) -> std::path::PathBuf {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("batch.json")).unwrap()).unwrap();
    folder.join(m["generation"].as_str().unwrap())
}

#[test]
fn a_file_becomes_a_batch_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, sample(120)).unwrap();
    let dest = format!("{}/", dir.path().join("batch").display());
    let o = run(
        &[
            "to-bedrock",
            input.to_str().unwrap(),
            &dest,
            "--model",
            MODEL,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "nothing on stdout for a folder");
    let err = stderr(&o);
    assert!(
        err.contains("lines 120: records 120 + rejected 0 + blank 0"),
        "{err}"
    );
    let generation = generation_dir(&dir.path().join("batch"));
    assert!(dir.path().join("batch/batch.json").exists());
    for f in [
        "input/job000/00000.jsonl",
        "ids/00000.ids",
        "rejected.jsonl",
    ] {
        assert!(generation.join(f).exists(), "{f}");
    }
    let records = json_lines(&std::fs::read(generation.join("input/job000/00000.jsonl")).unwrap());
    assert_eq!(records.len(), 120);
    let record_id = records[0]["recordId"].as_str().unwrap();
    assert!(record_id.starts_with("L0000000001G"), "{record_id}");
    assert_eq!(record_id.len(), 20);
}

#[test]
fn stdin_to_stdout_carries_only_records_and_rejects_go_to_stderr() {
    let mut input = sample(3);
    input.extend_from_slice(b"not json\n");
    let o = run(&["to-bedrock", "-", "-", "--model", MODEL], Some(&input));
    assert_eq!(o.status.code(), Some(1), "rejects make exit status 1");
    let records = json_lines(&o.stdout);
    assert_eq!(records.len(), 3);
    assert_eq!(records[2]["recordId"], "request-2");
    let err = stderr(&o);
    assert!(err.contains("\"line\":4"), "{err}");
    assert!(err.contains("invalid_json"), "{err}");

    let o = run(
        &[
            "to-bedrock",
            "-",
            "-",
            "--model",
            MODEL,
            "--allow-rejects",
            "--quiet",
        ],
        Some(&input),
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn rejects_default_beside_the_output_file_and_the_summary_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let summary = dir.path().join("summary.json");
    let o = run(
        &[
            "to-bedrock",
            fixture("openai/bad.jsonl").to_str().unwrap(),
            out.to_str().unwrap(),
            "-m",
            MODEL,
            "--max-line-bytes",
            "2000",
            "--summary",
            summary.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let rejects = json_lines(&std::fs::read(dir.path().join("out.jsonl.rejected.jsonl")).unwrap());
    let expected =
        json_lines(&std::fs::read(fixture("openai/bad.expected-rejects.jsonl")).unwrap());
    assert_eq!(rejects, expected);
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["lines"], 31);
    assert_eq!(s["records"], 3);
    assert_eq!(s["rejected"], 26);
    assert_eq!(s["blank"], 2);
}

#[test]
fn too_few_records_for_bedrock_fails_with_advice_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("{}/", dir.path().join("b").display());
    let fixture = fixture("openai/mapping.jsonl");
    let o = run(
        &[
            "to-bedrock",
            fixture.to_str().unwrap(),
            &dest,
            "--model",
            MODEL,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("at least 100 records"), "{err}");
    assert!(!dir.path().join("b/batch.json").exists());
    let o = run(
        &[
            "to-bedrock",
            fixture.to_str().unwrap(),
            &dest,
            "--model",
            MODEL,
            "--allow-small",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.path().join("b/batch.json").exists());
}

#[test]
fn unknown_models_and_missing_files_are_clear_errors() {
    let o = run(
        &["to-bedrock", "-", "-", "--model", "cohere.command-r-v1:0"],
        Some(b""),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("Cohere cannot run in a batch job"),
        "{}",
        stderr(&o)
    );
    // A near miss names the ids it may have meant.
    let o = run(
        &[
            "to-bedrock",
            "-",
            "-",
            "--model",
            "antropic.claude-3-haiku-20240307-v1:0",
        ],
        Some(b""),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("close matches: anthropic.claude-3-haiku…"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &["to-bedrock", "/nonexistent/in.jsonl", "-", "--model", MODEL],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot open /nonexistent/in.jsonl"),
        "{}",
        stderr(&o)
    );
    // No job could ever be in flight with --max-jobs 0: refused, not taken as 1.
    let o = run(
        &[
            "submit",
            "/nonexistent/",
            "--role-arn",
            "r",
            "--max-jobs",
            "0",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--max-jobs"), "{}", stderr(&o));
}

#[test]
fn help_explains_the_command() {
    let o = run(&["to-bedrock", "--help"], None);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "--model",
        "batch folder",
        "Exit status",
        "Examples",
        "--drop-unsupported",
    ] {
        assert!(help.contains(needle), "{needle} in help");
    }
}

/// Writes Bedrock-style results for every record of a batch folder on disk except every
/// `skip`-th one.
fn fake_bedrock_run(folder: &std::path::Path, skip: usize) {
    let generation = generation_dir(folder);
    let records = json_lines(&std::fs::read(generation.join("input/job000/00000.jsonl")).unwrap());
    let mut out = String::new();
    for (i, r) in records.iter().enumerate().rev() {
        if i % skip == 0 {
            continue;
        }
        let line = serde_json::json!({"recordId": r["recordId"], "modelInput": r["modelInput"], "modelOutput": {
            "id": format!("msg_{i}"), "content": [{"type": "text", "text": format!("reply {i}")}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}}});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::create_dir_all(generation.join("output/job123")).unwrap();
    std::fs::write(generation.join("output/job123/00000.jsonl.out"), out).unwrap();
}

#[test]
fn a_batch_folder_comes_back_as_openai_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, sample(150)).unwrap();
    let folder = dir.path().join("b");
    let dest = format!("{}/", folder.display());
    let o = run(
        &["to-bedrock", input.to_str().unwrap(), &dest, "-m", MODEL],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    fake_bedrock_run(&folder, 10);

    let o = run(&["from-bedrock", &dest], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("records 150: succeeded 135 + failed 0 + missing 15"),
        "{err}"
    );
    let ok = std::fs::read(folder.join("results/output.jsonl")).unwrap();
    let errors = json_lines(&std::fs::read(folder.join("results/errors.jsonl")).unwrap());
    assert_eq!(json_lines(&ok).len(), 135);
    assert_eq!(errors.len(), 15);
    assert_eq!(errors[0]["custom_id"], "request-0");
    assert_eq!(errors[0]["error"]["code"], "batch_expired");

    // Deterministic: the same files again.
    let o = run(
        &["from-bedrock", &dest, "--missing", "cancelled", "-q"],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read(folder.join("results/output.jsonl")).unwrap(),
        ok
    );
    let errors = json_lines(&std::fs::read(folder.join("results/errors.jsonl")).unwrap());
    assert!(errors
        .iter()
        .all(|e| e["error"]["code"] == "batch_cancelled"));
}

#[test]
fn a_bedrock_output_file_converts_through_pipes() {
    let input = std::fs::read(fixture("bedrock-output/claude.jsonl.out")).unwrap();
    let o = run(
        &[
            "from-bedrock",
            "-",
            "-",
            "--errors",
            "/dev/null",
            "-q",
            "--created",
            "1700000000",
        ],
        Some(&input),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines = json_lines(&o.stdout);
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[0]["custom_id"], "plain-text");
    assert_eq!(lines[0]["response"]["body"]["created"], 1_700_000_000);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("res.jsonl");
    let mut bad = input.clone();
    bad.extend_from_slice(b"{broken\n");
    let o = run(&["from-bedrock", "-", out.to_str().unwrap()], Some(&bad));
    assert_eq!(
        o.status.code(),
        Some(1),
        "an unreadable line makes the exit status 1"
    );
    assert!(stderr(&o).contains("-:14: invalid_json"), "{}", stderr(&o));
    assert_eq!(
        json_lines(&std::fs::read(dir.path().join("res.errors.jsonl")).unwrap()).len(),
        4
    );
}

#[test]
fn prices_give_the_estimated_cost_and_bad_tables_stop_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("bedrock-output/claude.jsonl.out");
    let prices = dir.path().join("prices.toml");
    // A profile id in the table's key is not needed: the model inside it is priced.
    std::fs::write(
        &prices,
        "[\"anthropic.claude-3-haiku-20240307-v1:0\"]\ninput = 3\noutput = 15\ncache_read = 0.3\ncache_write = 3.75\nbatch_discount = 0.5\n",
    )
    .unwrap();
    let (out, summary) = (
        dir.path().join("out.jsonl"),
        dir.path().join("summary.json"),
    );
    // The output, and the summary, of a collection priced for `model`.
    let priced = |model: &str| {
        let o = run(
            &[
                "from-bedrock",
                input.to_str().unwrap(),
                out.to_str().unwrap(),
                "-m",
                model,
                "--prices",
                prices.to_str().unwrap(),
                "--summary",
                summary.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
        (o, s)
    };
    let (o, s) = priced("us.anthropic.claude-3-haiku-20240307-v1:0");
    assert!(stderr(&o).contains("estimated cost: $"), "{}", stderr(&o));
    let n = |k: &str| s[k].as_f64().unwrap();
    assert!(
        n("cached_tokens") > 0.0 && n("cache_write_tokens") > 0.0,
        "{s}"
    );
    let plain = n("input_tokens") - n("cached_tokens") - n("cache_write_tokens");
    let want = (plain * 3.0
        + n("cached_tokens") * 0.3
        + n("cache_write_tokens") * 3.75
        + n("output_tokens") * 15.0)
        / 1e6
        * 0.5;
    assert!((n("estimated_cost_usd") - want).abs() < 1e-9, "{s}");

    // A table the model is not in: a warning, no figure.
    std::fs::write(&prices, "[\"other\"]\ninput = 1\noutput = 1\n").unwrap();
    let (o, s) = priced("anthropic.claude-3-haiku-20240307-v1:0");
    assert!(stderr(&o).contains("no price for"), "{}", stderr(&o));
    assert!(s.get("estimated_cost_usd").is_none(), "{s}");

    // A bad table: refused, naming the setting, and nothing is written.
    std::fs::write(&prices, "[\"m\"]\ninput = -3\noutput = 1\n").unwrap();
    let fresh = dir.path().join("fresh.jsonl");
    let o = run(
        &[
            "from-bedrock",
            input.to_str().unwrap(),
            fresh.to_str().unwrap(),
            "-m",
            "m",
            "--prices",
            prices.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("input = -3"), "{}", stderr(&o));
    assert!(!fresh.exists());
}

#[test]
fn the_first_line_names_the_endpoint_unless_endpoint_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let line = |id: usize| {
        format!(
            r#"{{"custom_id":"r{id}","method":"POST","url":"/v1/responses","body":{{"model":"m","input":"Hi {id}","max_output_tokens":9}}}}"#
        )
    };
    // A BOM and blank lines before the first request; one line for another endpoint.
    let mut input = String::from("\u{feff}\n  \n");
    for i in 0..120 {
        input += &line(i);
        input.push('\n');
    }
    input += r#"{"custom_id":"r999","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"Hi"}]}}"#;
    input.push('\n');
    let path = dir.path().join("responses.jsonl");
    std::fs::write(&path, &input).unwrap();
    let folder = dir.path().join("batch/");
    let model = "anthropic.claude-3-haiku-20240307-v1:0";
    let o = run(
        &[
            "to-bedrock",
            path.to_str().unwrap(),
            folder.to_str().unwrap(),
            "-m",
            model,
            "--allow-rejects",
            "-q",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("batch.json")).unwrap()).unwrap();
    assert_eq!(m["conversion"]["endpoint"], "/v1/responses");
    assert_eq!(
        (&m["counts"]["records"], &m["counts"]["rejected"]),
        (&serde_json::json!(120), &serde_json::json!(1))
    );
    let rejected = std::fs::read_to_string(generation_dir(&folder).join("rejected.jsonl")).unwrap();
    assert!(
        rejected.contains("\"r999\"") && rejected.contains("invalid_url"),
        "{rejected}"
    );

    // From a pipe the same; --endpoint overrides what the first line says.
    let o = run(
        &["to-bedrock", "-", "-", "-m", model, "--allow-rejects", "-q"],
        Some(input.as_bytes()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_lines(&o.stdout).len(), 120);
    let o = run(
        &[
            "to-bedrock",
            "-",
            "-",
            "-m",
            model,
            "--endpoint",
            "/v1/chat/completions",
            "--allow-rejects",
            "-q",
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_lines(&o.stdout).len(),
        1,
        "only the chat line is a record"
    );
}

/// The model table decides the family, says when it chose a Converse job, refuses a bare id
/// that batches only through a profile in the Region (naming the profile), and takes a
/// `--models FILE` whose lines win.
#[test]
fn the_model_table_picks_warns_and_names_the_profile() {
    let line = br#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}
"#;
    // Qwen: no documented InvokeModel body, so a Converse record, with a notice.
    let o = run(
        &["to-bedrock", "-", "-", "--model", "qwen.qwen3-32b-v1:0"],
        Some(line),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("Converse job"), "{}", stderr(&o));
    let record: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(record["modelInput"]["inferenceConfig"]["maxTokens"].is_number());
    // --family openai-chat writes the OpenAI body instead.
    let o = run(
        &[
            "to-bedrock",
            "-",
            "-",
            "--model",
            "qwen.qwen3-32b-v1:0",
            "--family",
            "openai-chat",
        ],
        Some(line),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let record: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(record["modelInput"]["max_tokens"], 4096);
    // Nova Lite's bare id batches in us-east-1 only; elsewhere its profile is named.
    let o = run(
        &[
            "to-bedrock",
            "-",
            "-",
            "--model",
            "amazon.nova-lite-v1:0",
            "--region",
            "eu-west-3",
        ],
        Some(line),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("eu.amazon.nova-lite-v1:0"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &[
            "to-bedrock",
            "-",
            "-",
            "--model",
            "eu.amazon.nova-lite-v1:0",
            "--region",
            "eu-west-3",
        ],
        Some(line),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(
        &["to-bedrock", "-", "-", "--model", "amazon.nova-2-lite-v1:0"],
        Some(line),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("global.amazon.nova-2-lite-v1:0"),
        "{}",
        stderr(&o)
    );

    // A model Bedrock cannot batch stays refused with a Converse job or a --family.
    for extra in [["--invocation-type", "converse"], ["--family", "anthropic"]] {
        let mut args = vec!["to-bedrock", "-", "-", "--model", "cohere.command-r-v1:0"];
        args.extend(extra);
        let o = run(&args, Some(line));
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        assert!(
            stderr(&o).contains("cannot run in a batch job"),
            "{}",
            stderr(&o)
        );
    }
    // `models` lists the table, as JSON too, and looks one id up.
    let o = run(&["--json", "models"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(lines
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == "amazon.nova-premier"));
    let o = run(
        &["models", "amazon.nova-lite-v1:0", "--region", "eu-west-3"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("refused here") && text.contains("eu.amazon.nova-lite-v1:0"),
        "{text}"
    );

    // A table file adds a model (and says which line is wrong when it is).
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("models.toml");
    std::fs::write(
        &table,
        r#"models = [
  { id = "acme.chat", name = "Acme Chat", family = "openai-chat", max_tokens = 50, source = ["acme"] },
]
[sources]
acme = "https://example.com/acme-models"
"#,
    )
    .unwrap();
    let o = run(
        &[
            "to-bedrock",
            "-",
            "-",
            "--model",
            "acme.chat-v1",
            "--models",
            table.to_str().unwrap(),
        ],
        Some(line),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let record: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(record["modelInput"]["max_tokens"], 50);
    std::fs::write(
        &table,
        "models = [ { id = \"acme.chat\", name = \"A\", family = \"acme\", source = [\"x\"] } ]\n",
    )
    .unwrap();
    let o = run(
        &[
            "to-bedrock",
            "-",
            "-",
            "--model",
            "acme.chat-v1",
            "--models",
            table.to_str().unwrap(),
        ],
        Some(line),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("model \"acme.chat\": no family is called \"acme\""),
        "{}",
        stderr(&o)
    );
}

/// `--overwrite` of a local folder whose conversion was never submitted asks nothing of AWS:
/// no configuration is loaded (before, the region chain went as far as the instance metadata
/// service, and a page of its failure was logged).
#[test]
fn overwriting_a_folder_never_submitted_asks_nothing_of_aws() {
    let dir = tempfile::tempdir().unwrap();
    let folder = format!("{}/", dir.path().join("batch").display());
    let input = dir.path().join("in.jsonl");
    let lines = |text: &str| -> String {
        (0..120)
            .map(|i| format!(r#"{{"custom_id":"c{i}","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"{text}"}}]}}}}"#) + "\n")
            .collect()
    };
    let no_aws = |args: &[&str]| {
        bin()
            .args(args)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-credentials"),
            )
            // Were it asked, the metadata service is a closed local port: a quick refusal.
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    let convert = |overwrite: bool| {
        let mut args = vec!["to-bedrock", input.to_str().unwrap(), &folder, "-m", MODEL];
        if overwrite {
            args.push("--overwrite");
        }
        no_aws(&args)
    };
    std::fs::write(&input, lines("first")).unwrap();
    let o = convert(false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(&input, lines("second")).unwrap();
    let o = convert(true);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(!said.contains("IMDS") && !said.contains("WARN"), "{said}");
}
