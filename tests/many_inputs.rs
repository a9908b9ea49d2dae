//! Many inputs, one batch: files, directories and globs packed into one batch folder of full
//! jobs, every custom_id once across them, every reject and missing answer naming its input and
//! line, and a re-run that knows the set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bedrock-batch"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` chat lines whose custom_ids are `{prefix}{i}`.
fn lines(n: u64, prefix: &str) -> String {
    String::from_utf8(sample(n))
        .unwrap()
        .replace("\"request-", &format!("\"{prefix}"))
}

fn manifest(folder: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(folder.join("batch.json")).unwrap()).unwrap()
}

/// Every `(recordId, custom_id)` of the folder's ledger, in record order.
fn ledger(folder: &Path) -> Vec<(String, String)> {
    let m = manifest(folder);
    let mut all = Vec::new();
    for shard in m["shards"].as_array().unwrap() {
        let text = std::fs::read_to_string(folder.join(shard["ids"].as_str().unwrap())).unwrap();
        for line in text.lines() {
            let (r, c) = line.split_once('\t').unwrap();
            all.push((r.to_owned(), serde_json::from_str::<String>(c).unwrap()));
        }
    }
    all
}

/// `files` input files of `per_file` lines each in `dir/in/` (file `k` holds custom_ids
/// `f{k}-{i}`), named so that their path order is their number order.
fn inputs(dir: &Path, files: usize, per_file: u64) -> PathBuf {
    let at = dir.join("in");
    std::fs::create_dir_all(&at).unwrap();
    for k in 0..files {
        std::fs::write(
            at.join(format!("part-{k:05}.jsonl")),
            lines(per_file, &format!("f{k}-")),
        )
        .unwrap();
    }
    at
}

/// A directory of 500 small files is one batch folder: its jobs full across file boundaries,
/// every custom_id once, each record naming its file and line; and back from Bedrock, every
/// custom_id once, the missing ones naming their file and line.
#[test]
fn five_hundred_small_inputs_become_one_folder_of_full_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let input = inputs(dir.path(), 500, 37);
    let folder = dir.path().join("batch");
    let dest = format!("{}/", folder.display());
    let o = run(&[
        "to-bedrock",
        s(&input),
        &dest,
        "-m",
        MODEL,
        "--records-per-job",
        "5000",
        "--records-per-file",
        "2500",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("inputs 500: 0 with rejected lines"), "{err}");
    assert!(
        err.contains("lines 18500: records 18500 + rejected 0 + blank 0"),
        "{err}"
    );

    let m = manifest(&folder);
    // 18,500 records: three full jobs of 5,000 and the rest, not 500 jobs of 37.
    let jobs: Vec<u64> = m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["records"].as_u64().unwrap())
        .collect();
    assert_eq!(jobs, vec![5000, 5000, 5000, 3500]);
    let listed = m["inputs"].as_array().unwrap();
    assert_eq!(listed.len(), 500);
    for (k, i) in listed.iter().enumerate() {
        let name = i["name"].as_str().unwrap();
        assert!(name.ends_with(&format!("part-{k:05}.jsonl")), "{name}");
        assert_eq!(i["counts"]["lines"], 37);
        assert_eq!(i["counts"]["records"], 37);
    }

    // The ledger: every custom_id once, each recordId naming the file and line it came from.
    let ledger = ledger(&folder);
    assert_eq!(ledger.len(), 18500);
    let ids: BTreeSet<&str> = ledger.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(ids.len(), 18500);
    for (record_id, custom_id) in &ledger {
        let (input, line) = bedrock_batch::record::parse_line_record_id(record_id).unwrap();
        let (k, i) = custom_id[1..].split_once('-').unwrap();
        assert_eq!(input, Some(k.parse::<u32>().unwrap()), "{record_id}");
        assert_eq!(line, i.parse::<u64>().unwrap() + 1, "{record_id}");
    }

    // Bedrock answers all but every tenth record of each shard.
    answer_local_folder(&folder, "job1", |n| n % 10 != 3);
    let o = run(&["from-bedrock", &dest, "--results-per-input"]);
    let err = stderr(&o);
    let output = json_lines(&std::fs::read(folder.join("results/output.jsonl")).unwrap());
    let errors = json_lines(&std::fs::read(folder.join("results/errors.jsonl")).unwrap());
    assert_eq!(output.len() + errors.len(), 18500, "{err}");
    let mut seen = BTreeMap::new();
    for l in output.iter().chain(&errors) {
        *seen
            .entry(l["custom_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 18500);
    assert!(seen.values().all(|&n| n == 1));
    assert!(!errors.is_empty());

    // And per input: each pair holds exactly its input's 37 custom_ids, in the combined
    // files' order; results/report.json lists the pairs.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("results/report.json")).unwrap())
            .unwrap();
    let pairs = report["by_input"].as_array().unwrap();
    assert_eq!(pairs.len(), 500);
    let order = |lines: &[serde_json::Value], k: usize| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["custom_id"].as_str().unwrap().to_owned())
            .filter(|c| c.starts_with(&format!("f{k}-")))
            .collect()
    };
    for (k, pair) in pairs.iter().enumerate() {
        let name = pair["name"].as_str().unwrap();
        assert!(name.ends_with(&format!("part-{k:05}.jsonl")), "{name}");
        let out_rel = pair["output"].as_str().unwrap();
        assert_eq!(
            out_rel,
            format!("results/by-input/{k:06}-part-{k:05}.output.jsonl")
        );
        let ok = json_lines(&std::fs::read(folder.join(out_rel)).unwrap());
        let bad =
            json_lines(&std::fs::read(folder.join(pair["errors"].as_str().unwrap())).unwrap());
        assert_eq!(ok.len() + bad.len(), 37, "{name}");
        assert_eq!(pair["succeeded"], ok.len());
        assert_eq!(pair["errors_lines"], bad.len());
        assert_eq!(
            order(&ok, k),
            order(&output, k),
            "{name}: all of its own, in order"
        );
        assert_eq!(order(&bad, k), order(&errors, k), "{name}");
    }
    // Collected again without them: the earlier pairs, which the record no longer lists, go.
    let o = run(&["from-bedrock", &dest, "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!folder.join("results/by-input").exists());
    assert!(folder.join("results/output.jsonl").exists());
}

/// Rejects name their input and line; a custom_id is unique across the inputs; a second model
/// in another file names where the first was set; each input's BOM, CRLF endings and missing
/// last newline are its own.
#[test]
fn rejects_name_their_input_and_line_and_custom_ids_are_unique_across_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("in");
    std::fs::create_dir_all(&at).unwrap();
    // a: no newline at the end; its last line must not run into b's first.
    let a = lines(3, "a-");
    std::fs::write(at.join("a.jsonl"), a.trim_end()).unwrap();
    // b: a BOM (at the start of this input, not of the batch), CRLF endings, a duplicate of a's.
    let b = format!("\u{feff}{}", lines(3, "b-").replace('\n', "\r\n")) + &lines(1, "a-");
    std::fs::write(at.join("b.jsonl"), b).unwrap();
    // c: another model than a's; a broken line.
    let c = lines(2, "c-").replace("\"model\":\"gpt-4o-mini\"", "\"model\":\"other\"")
        + "{\"custom_id\": \"c-x\", broken\n";
    std::fs::write(at.join("c.jsonl"), c).unwrap();
    std::fs::write(at.join("0.jsonl"), lines(2, "m-")).unwrap();
    std::fs::write(at.join("notes.txt"), "not an input").unwrap();

    let folder = dir.path().join("batch");
    let dest = format!("{}/", folder.display());
    let o = run(&["to-bedrock", s(&at), &dest, "-m", MODEL, "--allow-small"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let m = manifest(&folder);
    let names: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "notes.txt is not read: {names:?}");
    assert!(names[0].ends_with("/0.jsonl") && names[3].ends_with("/c.jsonl"));
    // 2 + 3 + 4 + 3 lines; rejected: a's duplicate in b, c's two model lines and its broken one.
    assert_eq!(m["counts"]["lines"], 12);
    assert_eq!(m["counts"]["rejected"], 4);
    let b_counts = &m["inputs"][2]["counts"];
    assert_eq!(
        (b_counts["lines"].as_u64(), b_counts["rejected"].as_u64()),
        (Some(4), Some(1))
    );

    let generation = folder.join(m["generation"].as_str().unwrap());
    let rejects = json_lines(&std::fs::read(generation.join("rejected.jsonl")).unwrap());
    let found: Vec<(String, u64, String)> = rejects
        .iter()
        .map(|r| {
            let input = r["input"].as_str().unwrap();
            (
                input[input.rfind('/').unwrap() + 1..].to_owned(),
                r["line"].as_u64().unwrap(),
                r["error"]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |f: &str, l: u64, c: &str| (f.to_owned(), l, c.to_owned());
    assert_eq!(
        found,
        vec![
            expect("b.jsonl", 4, "duplicate_custom_id"),
            expect("c.jsonl", 1, "model_mismatch"),
            expect("c.jsonl", 2, "model_mismatch"),
            expect("c.jsonl", 3, "invalid_json"),
        ]
    );
    let mismatch = rejects[1]["error"]["message"].as_str().unwrap();
    assert!(mismatch.contains("since line 1 of"), "{mismatch}");
    assert!(mismatch.contains("0.jsonl"), "{mismatch}");
    // a's last line, without its newline, is a record of its own.
    let ids: BTreeSet<String> = ledger(&folder).into_iter().map(|(_, c)| c).collect();
    for id in ["a-2", "b-0", "b-2", "m-1"] {
        assert!(ids.contains(id), "{id}");
    }
}

/// The same set again is this conversion (nothing to do); a changed, added or removed file is
/// another one (refused without --overwrite). A batch folder inside the input directory is not
/// read as input; a glob picks files; a glob matching nothing, stdin among others and one file
/// twice are refused.
#[test]
fn a_rerun_knows_the_set_and_globs_pick_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = inputs(dir.path(), 4, 30);
    // The folder inside the input directory: its own .jsonl files are not inputs.
    let folder = input.join("batch");
    let dest = format!("{}/", folder.display());
    let convert = |extra: &[&str]| {
        let mut args = vec!["to-bedrock", s(&input), &dest, "-m", MODEL];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = convert(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(manifest(&folder)["counts"]["records"], 120);
    let o = convert(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to do"), "{}", stderr(&o));

    std::fs::write(input.join("part-00099.jsonl"), lines(5, "late-")).unwrap();
    let o = convert(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already holds"), "{}", stderr(&o));
    std::fs::remove_file(input.join("part-00099.jsonl")).unwrap();
    let o = convert(&[]);
    assert!(stderr(&o).contains("nothing to do"), "{}", stderr(&o));
    std::fs::write(input.join("part-00001.jsonl"), lines(30, "again-")).unwrap();
    let o = convert(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = convert(&[
        "--overwrite",
        "--input-glob",
        "part-0000[02].jsonl",
        "--allow-small",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = manifest(&folder);
    assert_eq!(m["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(m["counts"]["records"], 60);

    let o = convert(&["--input-glob", "*.csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("holds no file matching *.csv"),
        "{}",
        stderr(&o)
    );
    let one = input.join("part-00000.jsonl");
    for args in [
        vec!["to-bedrock", s(&one), "-", &dest, "-m", MODEL],
        vec!["to-bedrock", s(&one), s(&one), &dest, "-m", MODEL],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = run(&["to-bedrock", s(&one), "-", &dest, "-m", MODEL]);
    assert!(
        stderr(&o).contains("stdin can only be the one input"),
        "{}",
        stderr(&o)
    );
    let o = run(&["to-bedrock", s(&one), s(&one), &dest, "-m", MODEL]);
    assert!(stderr(&o).contains("are the same file"), "{}", stderr(&o));
}

/// Several inputs into one Bedrock JSONL stream: the records of all, in order, and the rejects
/// naming their input.
#[test]
fn several_inputs_make_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    std::fs::write(&a, lines(2, "a-")).unwrap();
    std::fs::write(&b, lines(2, "b-") + "nope\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let o = run(&["to-bedrock", s(&a), s(&b), s(&out), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let ids: Vec<String> = json_lines(&std::fs::read(&out).unwrap())
        .iter()
        .map(|r| r["recordId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["a-0", "a-1", "b-0", "b-1"]);
    let rejects = json_lines(&std::fs::read(dir.path().join("out.jsonl.rejected.jsonl")).unwrap());
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["input"], s(&b));
    assert_eq!(rejects[0]["line"], 3);
}

/// Converts `items` (what each input is, and its source or why it cannot be opened) into a
/// batch folder in memory, expecting the conversion to fail with an error containing every one
/// of `said`; checks that nothing was committed.
fn fails_committing_nothing<S: bedrock_batch::io::ChunkSource>(
    items: Vec<(
        bedrock_batch::batch_folder::InputIdentity,
        std::io::Result<S>,
    )>,
    said: &[&str],
) {
    use bedrock_batch::io::MemoryDir;
    use bedrock_batch::pipeline::{prepare_to_bedrock_inputs, BedrockOutput};
    use std::sync::Arc;

    let dir = MemoryDir::default();
    rt().block_on(async {
        let opts = opts();
        let out = BedrockOutput::new_folder(Arc::new(dir.clone()), &opts)
            .await
            .unwrap();
        match prepare_to_bedrock_inputs(futures::stream::iter(items), true, out, &opts).await {
            Ok(_) => panic!("the conversion must fail"),
            Err(e) => {
                let text = e.to_string();
                assert!(said.iter().all(|s| text.contains(s)), "{text}");
            }
        }
    });
    let left: Vec<String> = dir
        .names()
        .into_iter()
        .filter(|n| n == "batch.json" || n.starts_with("gen-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// An input that cannot be opened midway fails the whole conversion, naming it: nothing is
/// committed, and the inputs opened ahead are let go (the conversion does not hang on them).
#[test]
fn an_input_that_fails_midway_commits_nothing() {
    use bedrock_batch::batch_folder::InputIdentity;
    use bedrock_batch::io::BytesSource;
    let items = (0..40)
        .map(|k| {
            let identity = InputIdentity::named(&format!("in-{k}.jsonl"));
            let source = if k == 3 {
                Err(std::io::Error::other("it is gone"))
            } else {
                Ok(BytesSource::new(lines(50, &format!("k{k}-"))))
            };
            (identity, source)
        })
        .collect();
    fails_committing_nothing(items, &["in-3.jsonl", "it is gone"]);
}

/// An input whose size at its end is not its size when it was listed (appended to, or cut short,
/// while it was read) fails the conversion: nothing is committed.
#[test]
fn an_input_that_changes_while_it_is_read_commits_nothing() {
    use bedrock_batch::batch_folder::InputIdentity;
    use bedrock_batch::io::{BytesSource, SizedSource};
    let items = (0..3)
        .map(|k| {
            let bytes = lines(50, &format!("k{k}-"));
            // Input 1 was listed shorter than it turns out to be.
            let size = bytes.len() as u64 - if k == 1 { 10 } else { 0 };
            let source = SizedSource::new(BytesSource::new(bytes), size);
            (InputIdentity::named(&format!("in-{k}.jsonl")), Ok(source))
        })
        .collect();
    fails_committing_nothing(items, &["in-1.jsonl", "changed while it was read"]);
}

/// Runs the binary, failing (not hanging) after `secs` seconds.
fn run_within(secs: u64, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bedrock-batch"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() > secs {
            child.kill().unwrap();
            panic!("{args:?} still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// What an input folder holds besides files to read: a FIFO and a socket-like special file are
/// left out (a FIFO would wait for a writer forever), a link to a directory is not followed, a
/// link to a file is; a name that is not UTF-8 is refused, naming it.
#[test]
fn only_regular_files_of_a_folder_are_read() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("in");
    std::fs::create_dir_all(&at).unwrap();
    std::fs::write(at.join("a.jsonl"), lines(2, "a-")).unwrap();
    let fifo = at.join("b.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("o.jsonl"), lines(2, "o-")).unwrap();
    std::os::unix::fs::symlink(&other, at.join("linked")).unwrap();
    std::fs::write(dir.path().join("target.jsonl"), lines(2, "t-")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("target.jsonl"), at.join("c.jsonl")).unwrap();
    let out = dir.path().join("out.jsonl");
    let o = run_within(60, &["to-bedrock", s(&at), s(&out), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ids: Vec<String> = json_lines(&std::fs::read(&out).unwrap())
        .iter()
        .map(|r| r["recordId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["a-0", "a-1", "t-0", "t-1"]);
    let err = stderr(&o);
    assert!(err.contains("not a regular file"), "{err}");
    assert!(err.contains("a link to a directory, not followed"), "{err}");

    let bad = at.join(std::ffi::OsStr::from_bytes(b"d\xff.jsonl"));
    std::fs::write(&bad, lines(1, "d-")).unwrap();
    let o = run_within(60, &["to-bedrock", s(&at), s(&out), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("its name is not UTF-8"),
        "{}",
        stderr(&o)
    );
}

/// The batch's first request line names the endpoint, past an empty first input (an export's
/// empty first part).
#[test]
fn an_empty_first_input_does_not_decide_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("part-0.jsonl");
    std::fs::write(&empty, "").unwrap();
    let blank = dir.path().join("part-1.jsonl");
    std::fs::write(&blank, "\n \n").unwrap();
    let responses = dir.path().join("part-2.jsonl");
    std::fs::write(
        &responses,
        "{\"custom_id\":\"r1\",\"method\":\"POST\",\"url\":\"/v1/responses\",\"body\":{\"model\":\"gpt-4o\",\"input\":\"hi\"}}\n",
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let o = run(&[
        "to-bedrock",
        s(&empty),
        s(&blank),
        s(&responses),
        s(&out),
        "-m",
        MODEL,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_lines(&std::fs::read(&out).unwrap()).len(), 1);
}

/// The batch folder's own files are left out of an input folder around it — and only those: an
/// input folder inside the output folder is read.
#[test]
fn an_input_folder_inside_the_output_folder_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let input = inputs(dir.path(), 2, 60);
    let dest = format!("{}/", dir.path().display());
    let o = run(&["to-bedrock", s(&input), &dest, "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(manifest(dir.path())["counts"]["records"], 120);
}

/// Results per input for 1,500 inputs under a soft limit of 128 open files: the command raises
/// its own limit.
#[test]
fn results_per_input_work_under_a_low_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let input = inputs(dir.path(), 1500, 1);
    let folder = dir.path().join("batch");
    let dest = format!("{}/", folder.display());
    let o = run(&["to-bedrock", s(&input), &dest, "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    answer_local_folder(&folder, "job1", |_| true);
    let script = format!(
        "ulimit -Sn 128 && exec {} -q from-bedrock {dest} --results-per-input",
        env!("CARGO_BIN_EXE_bedrock-batch")
    );
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("results/report.json")).unwrap())
            .unwrap();
    let pairs = report["by_input"].as_array().unwrap();
    assert_eq!(pairs.len(), 1500);
    assert!(pairs
        .iter()
        .all(|p| p["succeeded"] == 1 && p["errors_lines"] == 0));
}

/// An error is reported at once: not after the inputs being opened ahead have been opened (here
/// the next one never opens).
#[test]
fn an_error_does_not_wait_for_the_inputs_opened_ahead() {
    use bedrock_batch::batch_folder::InputIdentity;
    use bedrock_batch::io::{BytesSource, MemoryDir};
    use bedrock_batch::pipeline::{prepare_to_bedrock_inputs, BedrockOutput};
    use futures::StreamExt;
    use std::sync::Arc;

    let dir = MemoryDir::default();
    rt().block_on(async {
        let opts = opts();
        let out = BedrockOutput::new_folder(Arc::new(dir.clone()), &opts)
            .await
            .unwrap();
        let first = (
            InputIdentity::named("a.jsonl"),
            Ok(BytesSource::new(lines(3, "a-"))),
        );
        let broken = (
            InputIdentity::named("b.jsonl"),
            Err(std::io::Error::other("it is gone")),
        );
        let inputs = futures::stream::iter([first, broken]).chain(futures::stream::pending());
        let converting = prepare_to_bedrock_inputs(inputs.boxed(), true, out, &opts);
        match tokio::time::timeout(std::time::Duration::from_secs(30), converting).await {
            Ok(Err(e)) => assert!(e.to_string().contains("b.jsonl"), "{e}"),
            Ok(Ok(_)) => panic!("b.jsonl failed: the conversion must fail"),
            Err(_) => panic!("the error waited for an input that never opens"),
        }
    });
}
