//! Bedrock output → OpenAI output and error files: golden files, the ledger round trip, bad input
//! and determinism.

mod common;

use std::collections::HashMap;

use bedrock_batch::io::{BytesSource, MemoryDir, MemoryWriter};
use bedrock_batch::pipeline::{
    convert_from_bedrock, FromBedrockOptions, FromBedrockReport, MissingReason, OutputFile,
};
use bedrock_batch::record::Family;
use common::*;
use proptest::prelude::*;

fn from_file(bytes: Vec<u8>, opts: &FromBedrockOptions) -> (Vec<u8>, Vec<u8>, FromBedrockReport) {
    let (ok, okd) = MemoryWriter::standalone("ok");
    let (err, errd) = MemoryWriter::standalone("err");
    let files = vec![OutputFile {
        name: "in.jsonl.out".into(),
        source: Box::new(BytesSource::new(bytes)),
    }];
    let report = rt()
        .block_on(convert_from_bedrock(
            files,
            None,
            Box::new(ok),
            Box::new(err),
            opts,
        ))
        .unwrap();
    (
        okd.get("ok").unwrap().to_vec(),
        errd.get("err").unwrap().to_vec(),
        report,
    )
}

/// Converts a batch folder's results (as the CLI does).
fn from_folder(dir: &MemoryDir, missing: MissingReason) -> (Vec<u8>, Vec<u8>, FromBedrockReport) {
    collect(dir, missing)
}

fn fixed_opts() -> FromBedrockOptions {
    let mut o = FromBedrockOptions::new(
        Family::Anthropic,
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        1_700_000_000,
    );
    o.id_salt = "fixtures/bedrock-output/claude.jsonl.out".into();
    o
}

#[test]
fn claude_outputs_match_their_golden_lines() {
    let input = std::fs::read(fixture("bedrock-output/claude.jsonl.out")).unwrap();
    let (ok, err, report) = from_file(input, &fixed_opts());
    assert_eq!(
        json_lines(&ok),
        json_lines(&std::fs::read(fixture("bedrock-output/claude.expected-output.jsonl")).unwrap())
    );
    assert_eq!(
        json_lines(&err),
        json_lines(&std::fs::read(fixture("bedrock-output/claude.expected-errors.jsonl")).unwrap())
    );
    assert_eq!((report.lines, report.succeeded, report.failed), (13, 9, 4));
    assert_eq!(
        (
            report.input_tokens,
            report.output_tokens,
            report.cached_tokens
        ),
        (5504, 1373, 4000)
    );
    assert!(report.clean());
}

#[test]
fn a_record_id_s_spelling_keeps_its_ids_and_a_lone_surrogate_is_told_apart() {
    let good = std::fs::read_to_string(fixture("bedrock-output/claude.jsonl.out")).unwrap();
    let first = good.lines().next().unwrap();
    // The same value in three spellings, and two values that differ only in a lone surrogate
    // (which a lossy decoding would make one), and the same text as an escaped backslash.
    let ids = [
        r#""ab""#,
        r#""a\u0062""#,
        r#""\u0061\u0062""#,
        r#""a\ud800""#,
        r#""a\udc00""#,
        r#""a\\ud800""#,
    ];
    // One run per line: the three spellings are one record, kept once in a run.
    let line_ids: Vec<String> = ids
        .iter()
        .map(|id| {
            let line = first.replacen(r#""plain-text""#, id, 1) + "\n";
            let (ok, _, report) = from_file(line.into_bytes(), &fixed_opts());
            assert_eq!(report.succeeded, 1, "{id}");
            // An output line begins `{"id":"batch_req_` and 32 hex digits.
            String::from_utf8(ok).unwrap()[7..7 + "batch_req_".len() + 32].to_owned()
        })
        .collect();
    assert_eq!(line_ids[0], line_ids[1]);
    assert_eq!(line_ids[0], line_ids[2]);
    for (i, a) in line_ids.iter().enumerate().skip(2) {
        for b in &line_ids[i + 1..] {
            assert_ne!(a, b, "{line_ids:?}");
        }
    }
}

#[test]
fn the_echoed_model_input_is_not_copied() {
    let input = std::fs::read(fixture("bedrock-output/claude.jsonl.out")).unwrap();
    let (ok, err, _) = from_file(input, &fixed_opts());
    for out in [ok, err] {
        assert!(
            !String::from_utf8(out).unwrap().contains("padding padding"),
            "modelInput leaked into the output"
        );
    }
}

#[test]
fn bad_lines_are_counted_with_file_and_line_and_the_run_goes_on() {
    let good = std::fs::read_to_string(fixture("bedrock-output/claude.jsonl.out")).unwrap();
    let first = good.lines().next().unwrap();
    let input = format!(
        "{first}\n{{\"recordId\":\"x\",\"modelOutput\":\n{{\"modelOutput\":{{}}}}\n[1,2]\n\n{{\"recordId\":\"y\",\"modelOutput\":{{\"content\":\"no\"}}}}\n{}\n",
        first.replace("plain-text", "second")
    );
    let (ok, err, report) = from_file(input.into_bytes(), &fixed_opts());
    assert_eq!(json_lines(&ok).len(), 2);
    assert_eq!(report.lines, 7);
    // A line that names its record is that record's result, even when its answer is broken
    // (line 2, cut short) or cannot be mapped (line 6): an error line, never a lost record.
    assert_eq!(
        (
            report.succeeded,
            report.failed,
            report.invalid_outputs,
            report.bad_lines,
            report.blank
        ),
        (2, 2, 2, 2, 1)
    );
    let errors = json_lines(&err);
    let by_id: HashMap<&str, &serde_json::Value> = errors
        .iter()
        .map(|e| (e["custom_id"].as_str().unwrap(), e))
        .collect();
    assert_eq!(by_id["x"]["error"]["code"], "invalid_model_output");
    assert!(by_id["x"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("EOF"));
    assert!(by_id["y"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("modelOutput.content"));
    assert_eq!(by_id["y"]["response"], serde_json::Value::Null);
    // Only lines with no readable recordId are unreadable.
    let lines: Vec<u64> = report.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [3, 4]);
    assert!(report.problems.iter().all(|p| p.file == "in.jsonl.out"));
    assert!(
        report.problems[0].message.contains("recordId"),
        "{:?}",
        report.problems[0]
    );
    assert!(!report.clean());
}

#[test]
fn a_batch_folder_round_trip_returns_every_custom_id_once() {
    let (dir, result) = to_folder(&sample(300), &opts());
    result.unwrap();
    let fates = simulate_bedrock(
        &dir,
        "abcdef123456",
        |i| match i % 10 {
            0 => Fate::Error,
            1 | 2 => Fate::Missing,
            3 => Fate::Twice,
            _ => Fate::Success,
        },
        7,
    );
    let (ok, err, report) = from_folder(&dir, MissingReason::expired());
    let ok = json_lines(&ok);
    let err = json_lines(&err);
    let mut count: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for line in ok.iter().chain(&err) {
        count
            .entry(line["custom_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(line);
    }
    assert_eq!(count.len(), 300);
    for (custom_id, fate) in &fates {
        let lines = &count[custom_id];
        assert_eq!(lines.len(), 1, "{custom_id} exactly once");
        let line = lines[0];
        match fate {
            Fate::Success | Fate::Twice => {
                assert_eq!(line["response"]["status_code"], 200);
                assert_eq!(
                    line["response"]["body"]["choices"][0]["message"]["content"],
                    format!("answer to {custom_id}")
                );
                assert_eq!(line["response"]["body"]["model"], "gpt-4o-mini");
            }
            Fate::Error => {
                assert_eq!(line["response"]["status_code"], 400);
                assert_eq!(
                    line["response"]["body"]["error"]["message"],
                    format!("bad {custom_id}")
                );
            }
            Fate::Missing => {
                assert_eq!(line["response"], serde_json::Value::Null);
                assert_eq!(line["error"]["code"], "batch_expired");
            }
        }
    }
    assert_eq!(report.records, Some(300));
    assert_eq!(report.succeeded + report.failed + report.missing, 300);
    assert_eq!(
        (report.failed, report.missing, report.duplicates),
        (30, 60, 30)
    );
    assert_eq!(
        report.lines,
        report.succeeded + report.failed + report.duplicates
    );
    assert!(
        report.disagreements.is_empty(),
        "{:?}",
        report.disagreements
    );
    assert_eq!(
        report.manifest.as_ref().unwrap().success_record_count,
        report.succeeded
    );
    assert_eq!(report.input_tokens, 10 * report.succeeded);

    // Re-running gives byte-identical files.
    let again = from_folder(&dir, MissingReason::expired());
    assert_eq!((json_lines(&again.0), json_lines(&again.1)), (ok, err));
}

#[test]
fn a_stopped_job_reports_cancelled_records_and_a_lying_manifest_is_noticed() {
    let (dir, result) = to_folder(&sample(120), &opts());
    result.unwrap();
    simulate_bedrock(
        &dir,
        "job1",
        |i| {
            if i < 100 {
                Fate::Success
            } else {
                Fate::Missing
            }
        },
        3,
    );
    dir.put(
        &format!("{}/output/job1/manifest.json.out", generation(&dir)),
        r#"{"totalRecordCount":120,"processedRecordCount":101,"successRecordCount":101,"errorRecordCount":0,"inputTokenCount":0,"outputTokenCount":0}"#,
    );
    let (_, err, report) = from_folder(&dir, MissingReason::cancelled());
    let err = json_lines(&err);
    assert_eq!(err.len(), 20);
    assert!(err.iter().all(|l| l["error"]["code"] == "batch_cancelled"));
    assert_eq!(
        report.disagreements,
        ["successful records: the manifest says 101, the output lines say 100"]
    );
}

#[test]
fn records_not_in_the_ledger_are_reported() {
    let (dir, result) = to_folder(&sample(100), &opts());
    result.unwrap();
    simulate_bedrock(&dir, "j", |_| Fate::Success, 1);
    let at = format!("{}/output/j/00000.jsonl.out", generation(&dir));
    let mut out = dir.get(&at).unwrap().to_vec();
    out.extend_from_slice(br#"{"recordId":"L9999999999","modelOutput":{"content":[]}}"#);
    out.push(b'\n');
    dir.put(&at, out);
    let (_, _, report) = from_folder(&dir, MissingReason::expired());
    assert_eq!(report.unknown_records, 1);
    assert!(report.problems[0].message.contains("L9999999999"));
    assert!(!report.clean());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// to-bedrock → a simulated Bedrock run (shuffled, some errors, some records missing or
    /// repeated) → from-bedrock: every custom_id exactly once across output and errors.
    #[test]
    fn every_custom_id_comes_back_exactly_once(
        n in 100u64..260,
        fates in prop::collection::vec(0u8..4, 1..50),
        seed in any::<u64>(),
        per_file in 40u64..200,
    ) {
        let mut o = opts();
        o.records_per_file = per_file;
        let (dir, result) = to_folder(&sample(n), &o);
        result.unwrap();
        let fates = simulate_bedrock(&dir, "job", |i| match fates[i % fates.len()] {
            0 => Fate::Success, 1 => Fate::Error, 2 => Fate::Missing, _ => Fate::Twice,
        }, seed);
        let (ok, err, report) = from_folder(&dir, MissingReason::expired());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for line in json_lines(&ok).iter().chain(&json_lines(&err)) {
            *seen.entry(line["custom_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        prop_assert_eq!(seen.len() as u64, n);
        prop_assert!(seen.values().all(|&c| c == 1));
        prop_assert!(fates.iter().all(|(c, _)| seen.contains_key(c)));
        prop_assert_eq!(report.succeeded + report.failed + report.missing, n);
        prop_assert!(report.clean());
    }
}
