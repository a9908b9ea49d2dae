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
use bedrock_batch::io::{Destination, LocalDir};
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
        collect_crashing(Path::new(&args[i + 1]), args[i + 2].parse().unwrap());
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("a_collection_killed_at_any_step_leaves_whole_results: test");
        return;
    }
    a_collection_killed_at_any_step_leaves_whole_results();
    println!("test a_collection_killed_at_any_step_leaves_whole_results ... ok");
}

/// The child: collects `folder`'s results, dying at write step `k`.
fn collect_crashing(folder: &Path, k: u64) {
    let dest: Arc<dyn Destination> = Arc::new(FaultyDir::crashing(LocalDir::new(folder), k));
    rt().block_on(async {
        let writer = FolderWriter::open(dest, &LockOptions::default())
            .await
            .unwrap();
        let opts = FromBedrockOptions::for_folder(writer.current().unwrap().manifest()).unwrap();
        let results = FolderResults {
            ok: writer.create("results/output.jsonl").await.unwrap(),
            err: writer.create("results/errors.jsonl").await.unwrap(),
            output: "results/output.jsonl".into(),
            errors: "results/errors.jsonl".into(),
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

/// What `results/` says, as (succeeded ids, error ids, the report's counts), after checking
/// that the three files belong together.
fn settled_results(folder: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let ok = ids(&folder.join("results/output.jsonl"));
    let err = ids(&folder.join("results/errors.jsonl"));
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

/// No temporary file, backup or journal is left anywhere in the folder.
fn no_leftovers(folder: &Path) {
    let mut stack = vec![PathBuf::from(folder)];
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

fn a_collection_killed_at_any_step_leaves_whole_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, sample(RECORDS)).unwrap();
    let template = dir.path().join("template");
    let t = format!("{}/", template.display());
    bin(&["to-bedrock", input.to_str().unwrap(), &t, "-m", MODEL]);
    // A first collection with half the answers in; then the rest arrive.
    common::answer_local_folder(&template, "early", |n| n % 2 == 0);
    bin(&["from-bedrock", &t, "-q"]);
    let (old_ok, _) = settled_results(&template);
    assert_eq!(old_ok.len() as u64, RECORDS / 2);
    common::answer_local_folder(&template, "late", |n| n % 2 == 1);

    let mut finished_at = None;
    for k in 1..200u64 {
        let folder = dir.path().join(format!("k{k}"));
        copy_tree(&template, &folder);
        let status = Command::new(std::env::current_exe().unwrap())
            .args([CHILD, folder.to_str().unwrap(), &k.to_string()])
            .status()
            .unwrap();
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
                let (ok, _) = settled_results(&folder);
                assert!(
                    ok == old_ok || ok.len() as u64 == RECORDS,
                    "step {k}: a mix"
                );
            }
            Err(FolderError::ResultsUnsettled { .. }) => {}
            Err(e) => panic!("step {k}: {e}"),
        }
        // The next writer puts the folder back together.
        rt().block_on(async {
            let w = FolderWriter::open(Arc::new(LocalDir::new(&folder)), &LockOptions::default())
                .await
                .unwrap();
            w.release().await;
        });
        let (ok, _) = settled_results(&folder);
        no_leftovers(&folder);
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
