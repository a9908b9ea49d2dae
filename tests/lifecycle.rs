//! The batch folder's lifecycle through the real binary on local folders: a re-run into a used
//! folder, `--overwrite`, a run killed with SIGKILL and run again, two runs racing for one
//! folder, a commit that cannot finish, outputs that name the input, and arguments out of range.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{json_lines, sample, MODEL};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bedrock-batch"));
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn folder_arg(p: &Path) -> String {
    format!("{}/", p.display())
}

/// Every file below `dir` (hidden ones too) and its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                out.insert(
                    format!("{}/", p.strip_prefix(dir).unwrap().display()),
                    Vec::new(),
                );
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// `n` sample lines whose custom_ids start with `prefix`.
fn lines(n: u64, prefix: &str) -> Vec<u8> {
    String::from_utf8(sample(n))
        .unwrap()
        .replace("\"request-", &format!("\"{prefix}"))
        .into_bytes()
}

fn generation_dir(folder: &Path) -> PathBuf {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("batch.json")).unwrap()).unwrap();
    folder.join(m["generation"].as_str().unwrap())
}

/// Plays Bedrock for every shard of the folder's current generation: each record answered.
fn fake_bedrock(folder: &Path) {
    common::answer_local_folder(folder, "abcdefgh1234", |_| true);
}

/// A temporary directory holding `in.jsonl` (120 sample requests) converted into the batch
/// folder `F/`: (the directory, the input, the folder).
fn converted_folder() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, sample(120)).unwrap();
    let f = dir.path().join("F");
    let o = run(&["to-bedrock", s(&input), &folder_arg(&f), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (dir, input, f)
}

fn custom_ids(folder: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for f in ["results/output.jsonl", "results/errors.jsonl"] {
        for l in json_lines(&std::fs::read(folder.join(f)).unwrap()) {
            ids.push(l["custom_id"].as_str().unwrap().to_owned());
        }
    }
    ids.sort();
    ids
}

#[test]
fn a_rerun_into_a_used_folder_is_refused_and_overwrite_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&a, lines(6, "old-")).unwrap();
    std::fs::write(&b, lines(6, "new-")).unwrap();
    let f = dir.path().join("F");
    let to = |input: &Path, extra: &[&str]| {
        let mut args = vec![
            "to-bedrock",
            s(input),
            "F/",
            "-m",
            MODEL,
            "--records-per-file",
            "2",
            "--allow-small",
        ];
        args.extend(extra);
        bin().current_dir(dir.path()).args(&args).output().unwrap()
    };
    let o = to(&a, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = tree(&f);

    // Another input: refused, and the folder is untouched.
    let o = to(&b, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("already holds") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(tree(&f), before);

    // The same input and options: nothing to do.
    let o = to(&a, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to do"), "{}", stderr(&o));
    assert_eq!(tree(&f), before);

    // The same file, rewritten: refused.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&a, lines(6, "old-")).unwrap();
    let o = to(&a, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("changed"), "{}", stderr(&o));

    // Collect the old one, then replace it.
    fake_bedrock(&f);
    let o = run(&["from-bedrock", &folder_arg(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = to(&b, &["--overwrite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names: Vec<String> = tree(&f).into_keys().collect();
    let g = generation_dir(&f);
    let g = g.file_name().unwrap().to_string_lossy();
    assert!(
        names
            .iter()
            .all(|n| n == "batch.json" || n.starts_with(&*g)),
        "{names:?}"
    );
    fake_bedrock(&f);
    let o = run(&["from-bedrock", &folder_arg(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ids = custom_ids(&f);
    assert_eq!(ids, (0..6).map(|i| format!("new-{i}")).collect::<Vec<_>>());
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes in the folder's temporary files.
fn temporary_bytes(folder: &Path) -> u64 {
    std::fs::read_dir(folder.join(".bedrock-batch/tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// Starts `to-bedrock` reading a FIFO; returns the child and the FIFO's writing end.
fn start_on_fifo(dir: &Path, folder: &Path, extra: &[&str]) -> (Child, std::fs::File) {
    let fifo = dir.join(format!("in-{}.fifo", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    mkfifo(&fifo);
    let child = bin()
        .args([
            "to-bedrock",
            s(&fifo),
            &folder_arg(folder),
            "-m",
            MODEL,
            "--allow-small",
        ])
        .args(extra)
        .spawn()
        .unwrap();
    // Opening the writing end waits for the reader.
    let w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    (child, w)
}

#[test]
fn a_run_killed_mid_conversion_leaves_nothing_the_next_run_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("F");
    // An earlier conversion the killed run was replacing.
    let a = dir.path().join("a.jsonl");
    std::fs::write(&a, lines(150, "old-")).unwrap();
    let o = run(&["to-bedrock", s(&a), &folder_arg(&f), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = tree(&f);

    let (mut child, mut w) = start_on_fifo(dir.path(), &f, &["--overwrite"]);
    // Distinct requests (repeats would be rejected as duplicates, not written).
    w.write_all(&lines(16_000, "new-")).unwrap();
    // Records are on their way into the folder's temporary files when the run dies.
    wait_until("records written", || temporary_bytes(&f) > 1 << 20);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(w);
    assert!(
        temporary_bytes(&f) > 0,
        "the killed run left its temporary files"
    );
    // The folder still holds the old conversion, whole.
    for (name, bytes) in &before {
        assert_eq!(tree(&f).get(name), Some(bytes), "{name}");
    }
    let o = run(&["status", &folder_arg(&f)]);
    let _ = o; // (needs Bedrock; the folder reads fine below)
    fake_bedrock(&f);
    let o = run(&["from-bedrock", &folder_arg(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(custom_ids(&f).len(), 150);

    // The next run on the folder removes what the killed one left, and converts.
    let b = dir.path().join("b.jsonl");
    std::fs::write(&b, lines(200, "new-")).unwrap();
    let o = run(&[
        "to-bedrock",
        s(&b),
        &folder_arg(&f),
        "-m",
        MODEL,
        "--overwrite",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names: Vec<String> = tree(&f).into_keys().collect();
    let g = generation_dir(&f);
    let g = g.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!f.join(".bedrock-batch").exists(), "{names:?}");
    assert!(
        names.iter().all(|n| n == "batch.json" || n.starts_with(&g)),
        "only the new generation: {names:?}"
    );
}

#[test]
fn a_second_run_on_a_folder_being_written_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("F");
    let (child, mut w) = start_on_fifo(dir.path(), &f, &[]);
    w.write_all(&lines(50, "a-")).unwrap();
    let lock = f.join(".bedrock-batch/lock");
    let pid = child.id();
    wait_until("the lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&format!("\"pid\":{pid}")))
    });
    let b = dir.path().join("b.jsonl");
    std::fs::write(&b, lines(150, "b-")).unwrap();
    let started = Instant::now();
    let o = run(&["to-bedrock", s(&b), &folder_arg(&f), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("being written by another run"), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains("`to-bedrock`"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "refused at once"
    );
    // Nor may results be written meanwhile.
    let o = run(&["from-bedrock", &folder_arg(&f)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The first run is unaffected.
    w.write_all(&lines(100, "c-")).unwrap();
    drop(w);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(f.join("batch.json").exists());
    assert!(!lock.exists(), "released");
}

#[test]
fn a_commit_that_cannot_finish_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut bytes = sample(3);
    bytes.extend_from_slice(b"not json\n");
    std::fs::write(&input, &bytes).unwrap();

    // --rejects naming a directory: no OUTPUT either.
    let out = dir.path().join("out.jsonl");
    let o = run(&[
        "to-bedrock",
        s(&input),
        s(&out),
        "-m",
        MODEL,
        "--rejects",
        s(dir.path()),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists());

    // A directory where the rejects go by default.
    std::fs::create_dir(dir.path().join("out.jsonl.rejected.jsonl")).unwrap();
    let o = run(&["to-bedrock", s(&input), s(&out), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("directory"), "{}", stderr(&o));
    assert!(!out.exists());

    // A full disk under the records: the rejects are not left either.
    let rejects = dir.path().join("r.jsonl");
    let o = run(&[
        "to-bedrock",
        s(&input),
        "/dev/full",
        "-m",
        MODEL,
        "--rejects",
        s(&rejects),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!rejects.exists());

    // from-bedrock: a directory in the way of the error file leaves the results as they were.
    let f = dir.path().join("F");
    let many = dir.path().join("many.jsonl");
    std::fs::write(&many, sample(120)).unwrap();
    let o = run(&["to-bedrock", s(&many), &folder_arg(&f), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["from-bedrock", &folder_arg(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let results = tree(&f.join("results"));
    std::fs::remove_file(f.join("results/errors.jsonl")).unwrap();
    std::fs::create_dir(f.join("results/errors.jsonl")).unwrap();
    let before = tree(&f.join("results"));
    fake_bedrock(&f);
    let o = run(&["from-bedrock", &folder_arg(&f)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(tree(&f.join("results")), before);
    assert_eq!(
        before.get("output.jsonl"),
        results.get("output.jsonl"),
        "the old output is still there"
    );

    // from-bedrock on a file: --errors naming a directory, no OUTPUT.
    let src = dir.path().join("x.jsonl.out");
    std::fs::write(
        &src,
        std::fs::read(common::fixture("bedrock-output/claude.jsonl.out")).unwrap(),
    )
    .unwrap();
    let res = dir.path().join("res.jsonl");
    let o = run(&["from-bedrock", s(&src), s(&res), "--errors", s(dir.path())]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!res.exists());
}

#[test]
fn an_output_that_is_the_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, sample(3)).unwrap();
    let original = std::fs::read(&input).unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let hard = dir.path().join("hard.jsonl");
    std::fs::hard_link(&input, &hard).unwrap();
    let dotted = format!("{}/./in.jsonl", dir.path().display());
    for args in [
        vec!["to-bedrock", s(&input), s(&input)],
        vec!["to-bedrock", s(&input), s(&link)],
        vec!["to-bedrock", s(&input), s(&hard)],
        vec!["to-bedrock", s(&input), &dotted],
        vec!["to-bedrock", s(&link), "-", "--rejects", s(&input)],
        vec!["to-bedrock", s(&input), s(&hard), "--rejects", s(&hard)],
    ] {
        let mut args = args.clone();
        args.extend(["-m", MODEL]);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("are the same file"), "{}", stderr(&o));
        assert_eq!(std::fs::read(&input).unwrap(), original, "{args:?}");
    }
    let out_file = dir.path().join("b.jsonl.out");
    std::fs::write(
        &out_file,
        std::fs::read(common::fixture("bedrock-output/claude.jsonl.out")).unwrap(),
    )
    .unwrap();
    let before = std::fs::read(&out_file).unwrap();
    for args in [
        vec!["from-bedrock", s(&out_file), s(&out_file)],
        vec![
            "from-bedrock",
            s(&out_file),
            "x.jsonl",
            "--errors",
            s(&out_file),
        ],
        vec!["from-bedrock", s(&out_file), "-", "--errors", "-"],
    ] {
        let o = bin().current_dir(dir.path()).args(&args).output().unwrap();
        if args.contains(&"-") {
            // stdout and stderr are two streams: allowed.
            assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
            continue;
        }
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(std::fs::read(&out_file).unwrap(), before);
    }
    // An input among a folder's own files, which --overwrite replaces.
    let f = dir.path().join("F");
    let many = dir.path().join("many.jsonl");
    let mut bytes = sample(120);
    bytes.extend_from_slice(b"oops\n");
    std::fs::write(&many, bytes).unwrap();
    let o = run(&["to-bedrock", s(&many), &folder_arg(&f), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let rejected = generation_dir(&f).join("rejected.jsonl");
    let o = run(&[
        "to-bedrock",
        s(&rejected),
        &folder_arg(&f),
        "-m",
        MODEL,
        "--overwrite",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("own files"), "{}", stderr(&o));
    assert!(rejected.exists());
}

#[test]
fn arguments_out_of_range_are_refused_by_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, sample(3)).unwrap();
    let out = dir.path().join("out/");
    for (flag, value) in [
        ("--records-per-file", "0"),
        ("--records-per-job", "0"),
        ("--bytes-per-file", "0"),
        ("--bytes-per-job", "0"),
        ("--bytes-per-file", "2GB"),
        ("--threads", "0"),
        ("--threads", "20000"),
        ("--max-tokens", "0"),
        ("--max-line-bytes", "0"),
        ("--block-size", "1"),
        ("--s3-concurrency", "0"),
        ("--s3-part-size", "1MiB"),
    ] {
        let o = run(&[
            "to-bedrock",
            s(&input),
            s(&out),
            "-m",
            MODEL,
            "--allow-small",
            flag,
            value,
        ]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}");
        let err = stderr(&o);
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(
            err.contains("range") || err.contains("..="),
            "{flag} {value}: {err}"
        );
        assert!(!out.exists(), "{flag} {value}: nothing written");
    }
}

#[test]
fn a_tampered_manifest_cannot_lead_outside_the_folder() {
    let (dir, _, f) = converted_folder();
    let secret = dir.path().join("secret.ids");
    std::fs::write(&secret, "L0000000001\t\"stolen\"\n").unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.join("batch.json")).unwrap()).unwrap();
    m["shards"][0]["ids"] = "../secret.ids".into();
    std::fs::write(f.join("batch.json"), m.to_string()).unwrap();
    for args in [
        vec!["from-bedrock", &folder_arg(&f) as &str],
        vec!["status", &folder_arg(&f)],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains("refusing to follow") && err.contains("../secret.ids"),
            "{err}"
        );
    }
    assert!(!f.join("results").exists());
}

/// Outputs and summaries are checked where they resolve to, through `..` over missing
/// directories and symlinks: none may land on the folder's own files or on an input.
#[test]
fn an_output_or_summary_resolving_onto_the_folders_files_is_refused() {
    let (dir, input, f) = converted_folder();
    fake_bedrock(&f);
    let before = tree(&f);
    let ff = folder_arg(&f);
    let through_missing = format!("{}/nope/deeper/../../batch.json", f.display());
    let report = format!("{}/results/report.json", f.display());
    let gen_file = generation_dir(&f).join("ids/00000.ids");
    let lock_ish = format!("{}/.bedrock-batch/x.jsonl", f.display());
    let outside = dir.path().join("ok.jsonl");
    for args in [
        vec!["from-bedrock", &ff, &through_missing],
        vec!["from-bedrock", &ff, &report],
        vec!["from-bedrock", &ff, s(&gen_file)],
        vec!["from-bedrock", &ff, &lock_ish],
        vec![
            "from-bedrock",
            &ff,
            s(&outside),
            "--errors",
            &through_missing,
        ],
        vec!["from-bedrock", &ff, "--summary", &through_missing],
        vec!["from-bedrock", &ff, "--summary", s(&gen_file)],
        vec!["from-bedrock", &ff, "--summary", &report],
        vec![
            "to-bedrock",
            s(&input),
            "-",
            "-m",
            MODEL,
            "--summary",
            s(&input),
        ],
        vec!["from-bedrock", &ff, s(&outside), "--summary", s(&outside)],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        // The reason once, not repeated by the error's chain.
        let err = stderr(&o);
        let said = err.matches("results go below results/").count();
        assert!(said <= 1, "{err}");
        assert_eq!(tree(&f), before, "{args:?} left the folder as it was");
        assert_eq!(std::fs::read(&input).unwrap(), sample(120), "{args:?}");
        assert!(!outside.exists(), "{args:?} wrote nothing");
    }
    // Under results/ (but not the report) is the folder's own place for outputs.
    let mine = format!("{}/results/mine.jsonl", f.display());
    let summary = dir.path().join("summary.json");
    let o = run(&["from-bedrock", &ff, &mine, "--summary", s(&summary)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_lines(&std::fs::read(&mine).unwrap()).len(), 120);
    let sum: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(sum["succeeded"], 120, "{sum}");
}

/// A file of the folder replaced by a symlink (to a device, or out of the folder) is replaced
/// by the commit, never written through.
#[test]
fn a_folder_file_replaced_by_a_symlink_is_replaced_not_written_through() {
    let (dir, input, f) = converted_folder();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    std::fs::remove_file(f.join("batch.json")).unwrap();
    std::os::unix::fs::symlink("/dev/null", f.join("batch.json")).unwrap();
    let o = run(&[
        "to-bedrock",
        s(&input),
        &folder_arg(&f),
        "-m",
        MODEL,
        "--overwrite",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let meta = std::fs::symlink_metadata(f.join("batch.json")).unwrap();
    assert!(meta.is_file(), "batch.json is a file again");
    assert_eq!(custom_ids_of_manifest(&f), 120);

    fake_bedrock(&f);
    std::fs::create_dir_all(f.join("results")).unwrap();
    std::os::unix::fs::symlink(&victim, f.join("results/output.jsonl")).unwrap();
    let o = run(&["from-bedrock", &folder_arg(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(f.join("results/output.jsonl"))
        .unwrap()
        .is_file());
    assert_eq!(custom_ids(&f).len(), 120);

    // The same for the folder's directories and its lock: a link in their place is replaced
    // (or removed), and nothing is written, created or removed where it points.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep.txt"), "keep me too").unwrap();
    let before = tree(&elsewhere);
    std::fs::remove_dir_all(f.join("results")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, f.join("results")).unwrap();
    std::fs::remove_dir_all(f.join(".bedrock-batch")).ok();
    std::fs::create_dir(f.join(".bedrock-batch")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, f.join(".bedrock-batch/tmp")).unwrap();
    std::os::unix::fs::symlink(&victim, f.join(".bedrock-batch/lock")).unwrap();
    let o = run(&["from-bedrock", &folder_arg(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after: Vec<String> = tree(&elsewhere).into_keys().collect();
    assert_eq!(
        after,
        before.keys().cloned().collect::<Vec<_>>(),
        "nothing written through the links"
    );
    assert_eq!(tree(&elsewhere), before);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    for d in ["results", ".bedrock-batch/tmp"] {
        let m = std::fs::symlink_metadata(f.join(d));
        assert!(
            m.is_err() || m.unwrap().is_dir(),
            "{d} is the folder's own again"
        );
    }
    assert_eq!(custom_ids(&f).len(), 120);
}

fn custom_ids_of_manifest(folder: &Path) -> u64 {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("batch.json")).unwrap()).unwrap();
    m["counts"]["records"].as_u64().unwrap()
}

/// A run that fails before its commit leaves no directories behind either.
#[test]
fn a_failed_run_leaves_no_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    // Too few records for Bedrock's minimum and no --allow-small: refused.
    std::fs::write(&input, sample(3)).unwrap();
    let f = dir.path().join("F");
    let o = run(&["to-bedrock", s(&input), &folder_arg(&f), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let left = tree(&f);
    assert!(
        left.keys().all(|k| !k.starts_with("gen-")),
        "no generation skeleton: {left:?}"
    );
    // A file path whose parents do not exist, failing on the input: no parents made.
    let out = dir.path().join("a/b/c/out.jsonl");
    let o = run(&["to-bedrock", "/nonexistent.jsonl", s(&out), "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!dir.path().join("a").exists());
}

/// Each shard's file is closed when it is sealed: a folder of far more shards than the process
/// may hold open at once is written.
#[test]
fn many_shards_do_not_need_many_open_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, sample(400)).unwrap();
    let f = dir.path().join("F");
    let cmd = format!(
        "ulimit -n 64 && exec '{}' to-bedrock '{}' '{}' -m {MODEL} --records-per-file 1 --allow-small --threads 1",
        env!("CARGO_BIN_EXE_bedrock-batch"),
        input.display(),
        folder_arg(&f),
    );
    let o = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(custom_ids_of_manifest(&f), 400);
    let shards = std::fs::read_dir(generation_dir(&f).join("ids"))
        .unwrap()
        .count();
    assert_eq!(shards, 400);
}
