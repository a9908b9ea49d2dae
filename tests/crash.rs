//! A collection killed at every step of writing and committing its results, on a real local
//! folder: whatever step the process dies at, the folder's results afterwards are either the
//! last complete ones or the new ones — output, errors and `results/report.json` always from
//! the same collection — and no reader is shown a mix in between.
//!
//! The process must really die (no destructors, no undo), so this test runs itself: the parent
//! starts a copy of this binary that collects through a folder whose `k`-th write step aborts
//! the process, for k = 1, 2, … until a collection runs through.

#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bedrock_batch::batch_folder::{FolderError, FolderReader, FolderWriter, LockOptions};
use bedrock_batch::io::{Destination, LocalDir, LocalFile, ObjectWriter};
use bedrock_batch::pipeline::{collect_folder, FolderResults, FromBedrockOptions};
use common::faulty::FaultyDir;
use common::{json_lines, rt, sample, MODEL};

const CHILD: &str = "--collect-crashing-at";
const RECORDS: u64 = 120;
/// The signal `std::process::abort` ends the process with.
const SIGABRT: i32 = 6;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == CHILD) {
        let outside = args.get(i + 3).map(PathBuf::from);
        collect_crashing(
            Path::new(&args[i + 1]),
            args[i + 2].parse().unwrap(),
            outside.as_deref(),
        );
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("a_collection_killed_at_any_step_leaves_whole_results: test");
        return;
    }
    a_collection_killed_at_any_step_leaves_whole_results(false);
    a_collection_killed_at_any_step_leaves_whole_results(true);
    println!("test a_collection_killed_at_any_step_leaves_whole_results ... ok");
}

/// The output and error files: the folder's `results/` ones, or `out.jsonl` and `err.jsonl` in
/// `outside`.
fn results_of(folder: &Path, outside: Option<&Path>) -> (PathBuf, PathBuf) {
    match outside {
        Some(dir) => (dir.join("out.jsonl"), dir.join("err.jsonl")),
        None => (
            folder.join("results/output.jsonl"),
            folder.join("results/errors.jsonl"),
        ),
    }
}

/// The child: collects `folder`'s results (into `outside`, when given), dying at write step `k`.
fn collect_crashing(folder: &Path, k: u64, outside: Option<&Path>) {
    let faulty = FaultyDir::crashing(LocalDir::new(folder), k);
    let dest: Arc<dyn Destination> = Arc::new(faulty.clone());
    rt().block_on(async {
        let writer = FolderWriter::open(dest, &LockOptions::default())
            .await
            .unwrap();
        let opts = FromBedrockOptions::for_folder(writer.current().unwrap().manifest()).unwrap();
        let results = match outside {
            None => FolderResults {
                ok: writer.create("results/output.jsonl").await.unwrap(),
                err: writer.create("results/errors.jsonl").await.unwrap(),
                output: "results/output.jsonl".into(),
                errors: "results/errors.jsonl".into(),
                by_input: false,
            },
            // Files of their own, as `from-bedrock DEST/ OUT --errors ERR` writes them; their
            // steps are counted (and crashed) with the folder's.
            Some(dir) => {
                let (out, err) = results_of(folder, Some(dir));
                let file = |p: PathBuf| async {
                    let w: Box<dyn ObjectWriter> = Box::new(LocalFile::create(p).await.unwrap());
                    faulty.wrap(w)
                };
                FolderResults {
                    ok: file(out.clone()).await,
                    err: file(err.clone()).await,
                    output: out.display().to_string(),
                    errors: err.display().to_string(),
                    by_input: false,
                }
            }
        };
        collect_folder(&writer, results, &opts).await.unwrap();
        writer.release().await;
    });
}

fn bin(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_bedrock-batch"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The custom_ids of an OpenAI results file.
fn ids(path: &Path) -> BTreeSet<String> {
    json_lines(&std::fs::read(path).unwrap())
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids of the results (succeeded, failed), after checking that the output file, the error
/// file and `results/report.json` belong together.
fn settled_results(folder: &Path, outside: Option<&Path>) -> (BTreeSet<String>, BTreeSet<String>) {
    let (out, err) = results_of(folder, outside);
    let (ok, err) = (ids(&out), ids(&err));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("results/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["succeeded"], ok.len() as u64, "{report}");
    assert_eq!(
        report["failed"].as_u64().unwrap() + report["missing"].as_u64().unwrap(),
        err.len() as u64,
        "{report}"
    );
    assert!(ok.is_disjoint(&err));
    assert_eq!(ok.len() + err.len(), RECORDS as usize);
    (ok, err)
}

/// No temporary file, backup or journal is left anywhere below `dir`.
fn no_leftovers(dir: &Path) {
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                assert!(
                    !name.contains(".tmp") && !name.contains(".old") && !name.ends_with(".journal"),
                    "left behind: {}",
                    e.path().display()
                );
            }
        }
    }
}

fn a_collection_killed_at_any_step_leaves_whole_results(outside: bool) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, sample(RECORDS)).unwrap();
    let template = dir.path().join("template");
    let t = format!("{}/", template.display());
    bin(&["to-bedrock", input.to_str().unwrap(), &t, "-m", MODEL]);
    // A first collection with half the answers in; then the rest arrive.
    common::answer_local_folder(&template, "early", |n| n % 2 == 0);
    let ext = dir.path().join("ext");
    std::fs::create_dir(&ext).unwrap();
    let (out, err) = results_of(&template, outside.then_some(ext.as_path()));
    let (out, err) = (out.display().to_string(), err.display().to_string());
    let mut first = vec!["from-bedrock", &t, "-q"];
    if outside {
        first.extend([out.as_str(), "--errors", err.as_str()]);
    }
    bin(&first);
    let (old_ok, _) = settled_results(&template, outside.then_some(ext.as_path()));
    assert_eq!(old_ok.len() as u64, RECORDS / 2);
    common::answer_local_folder(&template, "late", |n| n % 2 == 1);
    let old_ext: Vec<(PathBuf, Vec<u8>)> = ["out.jsonl", "err.jsonl"]
        .iter()
        .filter_map(|n| Some((ext.join(n), std::fs::read(ext.join(n)).ok()?)))
        .collect();

    let mut finished_at = None;
    for k in 1..200u64 {
        let folder = dir.path().join(format!("k{k}"));
        copy_tree(&template, &folder);
        // The outside files as the first collection left them.
        for (p, bytes) in &old_ext {
            std::fs::write(p, bytes).unwrap();
        }
        let here = outside.then_some(ext.as_path());
        let mut child = Command::new(std::env::current_exe().unwrap());
        child.args([CHILD, folder.to_str().unwrap(), &k.to_string()]);
        if outside {
            child.arg(&ext);
        }
        let status = child.status().unwrap();
        // Before any writer repairs it, a reader sees the old results, the new ones, or is told
        // that they are between two — never a mix.
        let seen = rt().block_on(async {
            let reader = FolderReader::open(Arc::new(LocalDir::new(&folder)))
                .await
                .unwrap()
                .expect("a batch folder");
            reader.results().await
        });
        match seen {
            Ok(_) => {
                let (ok, _) = settled_results(&folder, here);
                assert!(
                    ok == old_ok || ok.len() as u64 == RECORDS,
                    "step {k}: a mix"
                );
            }
            Err(FolderError::ResultsUnsettled { .. }) => {}
            Err(e) => panic!("step {k}: {e}"),
        }
        // The next writer puts the folder — and the files outside it — back together.
        rt().block_on(async {
            let w = FolderWriter::open(Arc::new(LocalDir::new(&folder)), &LockOptions::default())
                .await
                .unwrap();
            w.release().await;
        });
        let (ok, _) = settled_results(&folder, here);
        no_leftovers(&folder);
        if outside {
            // A dead run's temporary files beside a file of its own go when the file is next
            // written (this test's next round writes the same two).
            let (out, err) = results_of(&folder, here);
            rt().block_on(async {
                for p in [out, err] {
                    Box::new(LocalFile::create(p).await.unwrap())
                        .abort()
                        .await
                        .unwrap();
                }
            });
            no_leftovers(&ext);
        }
        if status.success() {
            assert_eq!(ok.len() as u64, RECORDS, "a finished collection's results");
            finished_at = Some(k);
            break;
        }
        assert_eq!(status.signal(), Some(SIGABRT), "step {k}: {status}");
        assert!(
            ok == old_ok || ok.len() as u64 == RECORDS,
            "step {k}: results are a mix of two collections"
        );
        std::fs::remove_dir_all(&folder).unwrap();
    }
    let steps = finished_at.expect("the collection finishes once no step kills it");
    // Writing both files and the report, sealing and committing each: every one tried.
    assert!(steps > 8, "only {steps} steps");
}
