//! Golden files: fixtures/openai/*.jsonl against their expected outputs, compared as JSON values.

mod common;

use bedrock_batch::record::{convert_line, Family, LineOptions};
use common::*;

#[test]
fn every_mapping_rule_matches_its_golden_record() {
    let input = std::fs::read(fixture("openai/mapping.jsonl")).unwrap();
    let expected = json_lines(&std::fs::read(fixture("openai/mapping.expected.jsonl")).unwrap());
    let opts = LineOptions::new(Family::Anthropic);
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), expected.len());
    for (i, (line, want)) in lines.iter().zip(&expected).enumerate() {
        let mut out = Vec::new();
        convert_line(line, i as u64 + 1, &opts, &mut out)
            .unwrap_or_else(|r| panic!("line {}: {}", i + 1, r.reject));
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one record is one line"
        );
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(&got, want, "line {}", i + 1);
    }
}

#[test]
fn message_text_is_copied_byte_for_byte() {
    // The fixture holds escapes (\u00e9, \/, surrogate pairs): they must come out as written, not
    // re-encoded.
    let input = std::fs::read_to_string(fixture("openai/mapping.jsonl")).unwrap();
    let line = input
        .lines()
        .find(|l| l.contains("\"unicode-escapes\""))
        .unwrap();
    let mut out = Vec::new();
    convert_line(
        line.as_bytes(),
        1,
        &LineOptions::new(Family::Anthropic),
        &mut out,
    )
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(r#""caf\u00e9 \/ \ud83d\ude00 \u65e5""#),
        "{out}"
    );
}

#[test]
fn bad_input_is_rejected_line_by_line_and_the_counts_add_up() {
    let input = std::fs::read(fixture("openai/bad.jsonl")).unwrap();
    let expected =
        json_lines(&std::fs::read(fixture("openai/bad.expected-rejects.jsonl")).unwrap());
    let mut opts = opts();
    opts.max_line_bytes = 2000;
    // The fixture is also the CLI's (tests/cli.rs), which names its flag.
    opts.max_line_hint = " (see --max-line-bytes)";
    let (records, rejects, report) = to_stream(&input, &opts);
    assert_eq!(json_lines(&rejects), expected);
    let ids: Vec<String> = json_lines(&records)
        .iter()
        .map(|r| r["recordId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["bom-first-line-ok", "crlf-ok", "dup"]);
    assert_eq!(report.lines, 31);
    assert_eq!(
        report.lines,
        report.records + report.rejected + report.blank
    );
    assert_eq!((report.records, report.rejected, report.blank), (3, 26, 2));
    assert_eq!(
        report.rejects_by_code.values().sum::<u64>(),
        report.rejected
    );
    assert!(report.bom);
    assert_eq!(report.crlf_lines, 1);
    // Every rejected line is named once, in order.
    let lines: Vec<u64> = expected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn drop_unsupported_drops_and_counts_instead_of_rejecting() {
    let mut lines = Vec::new();
    for (i, extra) in [
        r#""seed":1"#,
        r#""n":2"#,
        r#""logprobs":true,"top_logprobs":2"#,
        r#""seed":5,"frobnicate":{}"#,
    ]
    .iter()
    .enumerate()
    {
        lines.push(format!(
            r#"{{"custom_id":"c{i}","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"hi"}}],{extra}}}}}"#
        ));
    }
    let input = lines.join("\n");
    let (_, rejects, report) = to_stream(input.as_bytes(), &opts());
    assert_eq!(report.rejected, 4, "{}", String::from_utf8_lossy(&rejects));
    let mut o = opts();
    o.map.drop_unsupported = true;
    let (records, _, report) = to_stream(input.as_bytes(), &o);
    assert_eq!(report.records, 4);
    let counts: Vec<(&str, u64)> = report
        .dropped_fields
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        counts,
        [
            ("frobnicate", 1),
            ("logprobs", 1),
            ("n", 1),
            ("seed", 2),
            ("top_logprobs", 1)
        ]
    );
    for r in json_lines(&records) {
        let body = r["modelInput"].as_object().unwrap();
        for k in ["seed", "n", "logprobs", "top_logprobs", "frobnicate"] {
            assert!(!body.contains_key(k), "{k} dropped");
        }
    }
}
