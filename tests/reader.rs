//! Every billed answer comes back: output lines no valid JSON defeats (escaped keys, any depth,
//! nulls), ids and values compared by meaning, counts that never wrap, manifests that only
//! inform, a success that beats an earlier error, and line endings that say what is wrong.

mod common;

use std::collections::HashMap;

use bedrock_batch::io::{BytesSource, MemoryWriter};
use bedrock_batch::pipeline::{
    convert_from_bedrock, FromBedrockOptions, FromBedrockReport, MissingReason, OutputFile,
};
use bedrock_batch::record::{convert_line, Family, LineOptions, RejectCode};
use common::*;
use serde_json::{json, Value};

/// Converts one Bedrock output file of `family` (recordId = custom_id).
fn from_file(family: Family, text: &str) -> (Vec<Value>, Vec<Value>, FromBedrockReport) {
    from_bytes(family, text.as_bytes())
}

/// [`from_file`] for any bytes.
fn from_bytes(family: Family, bytes: &[u8]) -> (Vec<Value>, Vec<Value>, FromBedrockReport) {
    let source = Box::new(BytesSource::new(bytes.to_vec()));
    let (ok, err, report) = convert(source, &FromBedrockOptions::new(family, "gpt-4o", 1));
    (json_lines(&ok), json_lines(&err), report)
}

/// Converts one Bedrock output file read from `source`: the output and error files' bytes.
fn convert(
    source: Box<dyn bedrock_batch::io::ChunkSource>,
    opts: &FromBedrockOptions,
) -> (Vec<u8>, Vec<u8>, FromBedrockReport) {
    let (ok, okd) = MemoryWriter::standalone("ok");
    let (err, errd) = MemoryWriter::standalone("err");
    let files = vec![OutputFile {
        name: "x.jsonl.out".into(),
        source,
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

/// Asserts that `line` is an `invalid_model_output` error line whose message says `words`.
fn unmappable_saying(line: &Value, words: &str) {
    assert_eq!(line["error"]["code"], "invalid_model_output", "{line}");
    let message = line["error"]["message"].as_str().unwrap();
    assert!(message.contains(words), "{line}");
}

fn claude_answer(text: &str) -> Value {
    json!({"id": "msg", "type": "message", "role": "assistant", "content": [{"type": "text", "text": text}],
           "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 2}})
}

/// A Python `json.dumps` spelling: spaces after separators and every non-ASCII character escaped,
/// keys included.
fn python_dumps(v: &Value) -> String {
    let compact = serde_json::to_string(v).unwrap();
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in compact.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            if !c.is_ascii() {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
                continue;
            }
            out.push(c);
        } else {
            match c {
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                ',' => out.push_str(", "),
                ':' => out.push_str(": "),
                _ => out.push(c),
            }
        }
    }
    out
}

#[test]
fn escaped_keys_anywhere_in_a_line_do_not_make_it_unreadable() {
    let model_input = json!({"messages": [{"role": "user", "content": "hi"}], "tools": [
        {"name": "f", "input_schema": {"type": "object", "properties": {"größe": {"type": "number"}, "say \"hi\"": {"type": "string"}}}}]});
    let line =
        json!({"recordId": "r1", "modelInput": model_input, "modelOutput": claude_answer("Grüße")});
    let spelled = python_dumps(&line);
    assert!(spelled.contains(r#""gr\u00f6\u00dfe""#), "{spelled}");
    // The envelope's own keys escaped too.
    let envelope = spelled
        .replacen(r#""recordId""#, r#""rec\u006frdId""#, 1)
        .replacen(r#""modelOutput""#, r#""model\u004futput""#, 1);
    for text in [spelled, envelope] {
        let (ok, err, report) = from_file(Family::Anthropic, &format!("{text}\n"));
        assert_eq!((report.succeeded, report.bad_lines), (1, 0), "{text}");
        assert!(err.is_empty());
        assert_eq!(ok[0]["custom_id"], "r1");
        assert_eq!(
            ok[0]["response"]["body"]["choices"][0]["message"]["content"],
            "Grüße"
        );
    }
}

/// Nesting of any depth, both ways: `to-bedrock` takes a deep tool schema, and the answer that
/// echoes it (with a deep tool input of its own) comes back.
#[test]
fn nesting_of_any_depth_is_read_both_ways() {
    for depth in [119, 121, 129, 2_000] {
        // Built as text: a serde_json::Value this deep would overflow the test's own stack.
        let deep_text = r#"{"type":"object","properties":{"x":"#.repeat(depth)
            + r#"{"type":"string"}"#
            + &"}}".repeat(depth);
        let line = format!(
            r#"{{"custom_id":"deep","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{deep_text}}}}}]}}}}"#
        );
        let mut record = Vec::new();
        let opts = LineOptions::new(Family::Anthropic);
        convert_line(line.as_bytes(), 1, &opts, &mut record)
            .unwrap_or_else(|r| panic!("depth {depth}: {}", r.reject));
        let record = String::from_utf8(record).unwrap();
        let model_input = &record[record.find("\"modelInput\":").unwrap() + 13..record.len() - 2];
        let mut input = "1".to_owned();
        for _ in 0..depth {
            input = format!("{{\"a\":[{input}]}}");
        }
        let output = format!(
            r#"{{"recordId":"deep","modelInput":{model_input},"modelOutput":{{"content":[{{"type":"tool_use","id":"t","name":"f","input":{input}}}],"stop_reason":"tool_use","usage":{{"input_tokens":1,"output_tokens":1}}}}}}"#
        );
        let (ok, _, report) = from_file(Family::Anthropic, &format!("{output}\n"));
        assert_eq!(
            (report.succeeded, report.bad_lines),
            (1, 0),
            "depth {depth}"
        );
        let args = ok[0]["response"]["body"]["choices"][0]["message"]["tool_calls"][0]["function"]
            ["arguments"]
            .as_str()
            .unwrap();
        assert_eq!(args, input, "the deep input is copied as it was");
    }
}

#[test]
fn null_means_absent_in_every_family() {
    let cases: [(Family, Value); 8] = [
        (
            Family::GptOss,
            json!({"choices": [{"message": {"role": "assistant", "content": "A", "tool_calls": null, "reasoning_content": null, "refusal": null}, "finish_reason": null}], "usage": {"prompt_tokens": null, "completion_tokens": 2, "prompt_tokens_details": null}}),
        ),
        (
            Family::MistralChat,
            json!({"choices": [{"message": {"role": "assistant", "content": "A", "tool_calls": null}, "stop_reason": null}], "usage": null}),
        ),
        (
            Family::MistralText,
            json!({"outputs": [{"text": "A", "stop_reason": null}]}),
        ),
        (
            Family::Llama,
            json!({"generation": "A", "prompt_token_count": null, "generation_token_count": 2, "stop_reason": null}),
        ),
        (
            Family::Nova,
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "A", "reasoningContent": null, "toolUse": null}]}}, "stopReason": null, "usage": {"inputTokens": 1, "outputTokens": null, "cacheReadInputTokens": null}}),
        ),
        (
            Family::Converse,
            json!({"output": {"message": {"content": [{"text": "A"}]}}, "stopReason": "end_turn", "usage": null}),
        ),
        (
            Family::Anthropic,
            json!({"id": null, "content": [{"type": "text", "text": "A"}, {"type": "thinking", "thinking": null}], "stop_reason": null, "usage": {"input_tokens": 1, "output_tokens": 1, "cache_read_input_tokens": null, "cache_creation_input_tokens": null}}),
        ),
        (
            Family::Anthropic,
            json!({"content": null, "stop_reason": "end_turn", "usage": null}),
        ),
    ];
    for (i, (family, output)) in cases.iter().enumerate() {
        let line = json!({"recordId": format!("r{i}"), "modelInput": {}, "modelOutput": output});
        let (ok, err, report) = from_file(*family, &format!("{line}\n"));
        assert_eq!(report.succeeded, 1, "{family}: {err:?}");
        let content = &ok[0]["response"]["body"]["choices"][0]["message"]["content"];
        assert!(content == "A" || content.is_null(), "{family}: {content}");
    }
}

#[test]
fn a_record_whose_answer_cannot_be_mapped_is_an_error_line_never_expired() {
    let (dir, result) = to_folder(&sample(120), &opts());
    result.unwrap();
    simulate_bedrock(&dir, "j", |_| Fate::Success, 7);
    // Spoil one answer: its content is no list of blocks.
    let g = generation(&dir);
    let at = format!("{g}/output/j/00000.jsonl.out");
    let text = String::from_utf8(dir.get(&at).unwrap().to_vec()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut spoiled: Value = serde_json::from_str(&lines[5]).unwrap();
    spoiled["modelOutput"]["content"] = json!("not blocks");
    let record_id = spoiled["recordId"].clone();
    lines[5] = spoiled.to_string();
    dir.put(&at, lines.join("\n") + "\n");
    let (ok, err, report) = collect(&dir, MissingReason::expired());
    let err = json_lines(&err);
    assert_eq!(json_lines(&ok).len(), 119);
    assert_eq!(err.len(), 1);
    unmappable_saying(&err[0], "modelOutput.content");
    assert_eq!(
        (
            report.succeeded,
            report.failed,
            report.missing,
            report.bad_lines
        ),
        (119, 1, 0, 0)
    );
    assert_ne!(record_id, Value::Null);
}

#[test]
fn custom_ids_and_record_ids_are_compared_by_value() {
    let line = |id: &str| {
        format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"x"}}]}}}}"#
        )
    };
    let mut input = String::new();
    for id in [
        "a",
        r"\u0061",
        r"x\ud800",
        r"x\udbff",
        r"\ud83d\ude00",
        "😀",
        r"\udc00",
    ] {
        input.push_str(&line(id));
        input.push('\n');
    }
    let (records, rejects, report) = to_stream(input.as_bytes(), &opts());
    assert_eq!(json_lines(&records).len(), 2, "a and 😀");
    let rejects = json_lines(&rejects);
    let codes: Vec<(&str, u64)> = rejects
        .iter()
        .map(|r| {
            (
                r["error"]["code"].as_str().unwrap(),
                r["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("duplicate_custom_id", 2),
            ("invalid_custom_id", 3),
            ("invalid_custom_id", 4),
            ("duplicate_custom_id", 6),
            ("invalid_custom_id", 7),
        ]
    );
    assert!(rejects[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains(r"\ud800"));
    assert_eq!(report.rejected, 5);

    // From a plain file, two spellings of one recordId are one record.
    let answer = claude_answer("A");
    let text = format!(
        "{}\n{}\n",
        json!({"recordId": "a", "modelOutput": answer}),
        json!({"recordId": "a", "modelOutput": answer})
            .to_string()
            .replace(r#""a""#, r#""\u0061""#)
    );
    let (ok, _, report) = from_file(Family::Anthropic, &text);
    assert_eq!((ok.len(), report.duplicates), (1, 1));
}

/// Two different ids are two records, also when a 64-bit hash under known keys cannot tell
/// them apart: these two share SipHash-1-3 with zero keys (`DefaultHasher::new()`), which keyed
/// identity before, and the second was refused as a duplicate going in and its billed answer
/// dropped as a repeat coming back.
#[test]
fn two_ids_whose_64_bit_hashes_collide_are_two_records() {
    let ids = ["c1140db05efdfb29e", "c0cba6857f2f1bfc8"];
    let old_key = |id: &str| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.as_bytes().hash(&mut h);
        h.finish()
    };
    assert_eq!(
        old_key(ids[0]),
        old_key(ids[1]),
        "the pair collides as found"
    );
    let mut input = String::new();
    for id in ids {
        input.push_str(&format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"x"}}]}}}}"#
        ));
        input.push('\n');
    }
    let (records, rejects, _) = to_stream(input.as_bytes(), &opts());
    assert_eq!(
        json_lines(&records).len(),
        2,
        "{}",
        String::from_utf8_lossy(&rejects)
    );
    let text: String = ids
        .iter()
        .map(|id| json!({"recordId": id, "modelOutput": claude_answer(id)}).to_string() + "\n")
        .collect();
    let (ok, err, report) = from_file(Family::Anthropic, &text);
    assert_eq!((ok.len(), err.len(), report.duplicates), (2, 0, 0));
    for (line, id) in ok.iter().zip(ids) {
        assert_eq!(line["custom_id"], id);
        assert_eq!(
            line["response"]["body"]["choices"][0]["message"]["content"],
            id
        );
    }
}

#[test]
fn values_are_compared_by_meaning_not_spelling() {
    let body = |extra: &str| {
        format!(r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"x"}}]{extra}}}"#)
    };
    let line = |id: u32, method: &str, url: &str, body: String| {
        format!(r#"{{"custom_id":"c{id}","method":"{method}","url":"{url}","body":{body}}}"#)
    };
    let lines = [
        line(1, "POST", "/v1/chat/completions", body("")),
        line(2, "POST", r"\/v1\/chat\/completions", body("")),
        line(3, r"P\u004fST", "/v1/chat/completions", body("")),
        line(
            4,
            "POST",
            "/v1/chat/completions",
            body(r#","frequency_penalty":0.00,"presence_penalty":0e0"#),
        ),
        line(
            5,
            "POST",
            "/v1/chat/completions",
            body(r#","frequency_penalty":-0,"n":1.0,"logit_bias":{ },"logprobs":false"#),
        ),
        line(
            6,
            "POST",
            "/v1/chat/completions",
            body("").replace(r#""gpt-4o""#, r#""gpt\u002d4o""#),
        ),
        line(
            7,
            "POST",
            "/v1/chat/completions",
            body(r#","n":1e0,"presence_penalty":0E-5"#),
        ),
    ];
    let input = lines.join("\n") + "\n";
    let (records, rejects, report) = to_stream(input.as_bytes(), &opts());
    assert_eq!(
        (json_lines(&records).len(), report.rejected),
        (7, 0),
        "{}",
        String::from_utf8_lossy(&rejects)
    );
    // A real difference still counts.
    let input = [
        line(1, "POST", "/v1/chat/completions", body("")),
        line(
            2,
            "POST",
            "/v1/chat/completions",
            body(r#","frequency_penalty":0.5"#),
        ),
        line(
            3,
            "POST",
            "/v1/chat/completions",
            body("").replace("gpt-4o", "gpt-4o-mini"),
        ),
    ]
    .join("\n");
    let (_, rejects, _) = to_stream(input.as_bytes(), &opts());
    let codes: Vec<Value> = json_lines(&rejects)
        .iter()
        .map(|r| r["error"]["code"].clone())
        .collect();
    assert_eq!(codes, ["unsupported_parameter", "model_mismatch"]);
}

#[test]
fn token_counts_never_wrap() {
    let cases = [
        (
            json!({"input_tokens": u64::MAX, "output_tokens": 5, "cache_read_input_tokens": 7}),
            u64::MAX,
            5,
            true,
        ),
        (
            json!({"input_tokens": 1e30, "output_tokens": 1}),
            u64::MAX,
            1,
            true,
        ),
        (
            json!({"input_tokens": -4, "output_tokens": 2.5}),
            0,
            2,
            true,
        ),
        (
            json!({"input_tokens": 12.0, "output_tokens": 1.5e1}),
            12,
            15,
            false,
        ),
    ];
    for (usage, prompt, completion, adjusted) in cases {
        let mut answer = claude_answer("A");
        answer["usage"] = usage.clone();
        let line = json!({"recordId": "r", "modelOutput": answer});
        let (ok, _, report) = from_file(Family::Anthropic, &format!("{line}\n"));
        let u = &ok[0]["response"]["body"]["usage"];
        assert_eq!(u["prompt_tokens"], prompt, "{usage}");
        assert_eq!(u["completion_tokens"], completion, "{usage}");
        assert_eq!(
            u["total_tokens"].as_u64(),
            Some(prompt.saturating_add(completion)),
            "{usage}"
        );
        assert_eq!(report.counts_adjusted, u64::from(adjusted), "{usage}");
        assert_eq!(
            !report.warnings.is_empty(),
            adjusted,
            "{usage}: {:?}",
            report.warnings
        );
    }
    // Totals across lines stop at 2^64−1 too, and say so.
    let mut text = String::new();
    for i in 0..3 {
        let mut answer = claude_answer("A");
        answer["usage"] = json!({"input_tokens": u64::MAX / 2, "output_tokens": 1});
        text.push_str(&json!({"recordId": format!("r{i}"), "modelOutput": answer}).to_string());
        text.push('\n');
    }
    let (_, _, report) = from_file(Family::Anthropic, &text);
    assert_eq!(report.input_tokens, u64::MAX);
    assert!(
        report.warnings.iter().any(|w| w.contains("2^64")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn a_success_beats_an_earlier_error_for_the_same_record() {
    let answer = claude_answer("A");
    let error = json!({"errorCode": 500, "errorMessage": "try again"});
    let text = [
        json!({"recordId": "a", "error": error}),
        json!({"recordId": "b", "modelOutput": answer}),
        json!({"recordId": "a", "modelOutput": answer}),
        json!({"recordId": "b", "error": error}),
        json!({"recordId": "c", "error": error}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let (ok, err, report) = from_file(Family::Anthropic, &text);
    let ok_ids: Vec<&str> = ok
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    let err_ids: Vec<&str> = err
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ok_ids, ["b", "a"]);
    assert_eq!(err_ids, ["c"]);
    assert_eq!(
        (report.succeeded, report.failed, report.duplicates),
        (2, 1, 2)
    );
    assert_eq!(
        report.failed_by_status,
        [(500u16, 1u64)].into_iter().collect()
    );

    // The same in a batch folder: every custom_id once, the counts add up.
    let (dir, result) = to_folder(&sample(120), &opts());
    result.unwrap();
    simulate_bedrock(
        &dir,
        "j",
        |i| {
            if i % 3 == 0 {
                Fate::Error
            } else {
                Fate::Success
            }
        },
        3,
    );
    let g = generation(&dir);
    let at = format!("{g}/output/j/00000.jsonl.out");
    let mut text = String::from_utf8(dir.get(&at).unwrap().to_vec()).unwrap();
    // Bedrock ran the failed ones again, and they succeeded.
    let retried: Vec<String> = text
        .lines()
        .filter(|l| l.contains("\"error\""))
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("error");
            v["modelOutput"] = claude_answer("second try");
            v.to_string()
        })
        .collect();
    for r in &retried {
        text.push_str(r);
        text.push('\n');
    }
    dir.put(&at, text);
    let (ok, err, report) = collect(&dir, MissingReason::expired());
    assert_eq!((json_lines(&ok).len(), json_lines(&err).len()), (120, 0));
    assert_eq!(
        report.records,
        Some(report.succeeded + report.failed + report.missing)
    );
    assert_eq!(report.duplicates, retried.len() as u64);
}

#[test]
fn the_manifest_only_informs() {
    for manifest in [
        "".to_owned(),
        "not json".to_owned(),
        "[1,2]".to_owned(),
        r#"{"totalRecordCount":-3,"successRecordCount":"many","errorRecordCount":1e40}"#.to_owned(),
    ] {
        let (dir, result) = to_folder(&sample(100), &opts());
        result.unwrap();
        simulate_bedrock(&dir, "j", |_| Fate::Success, 2);
        let g = generation(&dir);
        dir.put(&format!("{g}/output/j/manifest.json.out"), manifest.clone());
        let (ok, _, report) = collect(&dir, MissingReason::expired());
        assert_eq!(json_lines(&ok).len(), 100, "{manifest}");
        assert!(!report.warnings.is_empty(), "{manifest}");
        assert!(report.clean());
        // What a manifest could not say is not held against the lines.
        assert!(
            report.disagreements.is_empty(),
            "{manifest}: {:?}",
            report.disagreements
        );
        if !manifest.starts_with('{') {
            assert_eq!(report.manifest, None, "{manifest}: no made-up totals");
        }
    }
    // Counts by value: 1e2 is a hundred.
    let (dir, result) = to_folder(&sample(100), &opts());
    result.unwrap();
    simulate_bedrock(&dir, "j", |_| Fate::Success, 2);
    let g = generation(&dir);
    dir.put(
        &format!("{g}/output/j/manifest.json.out"),
        r#"{"totalRecordCount":1e2,"successRecordCount":100.0,"errorRecordCount":0}"#,
    );
    let (_, _, report) = collect(&dir, MissingReason::expired());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        report.disagreements.is_empty(),
        "{:?}",
        report.disagreements
    );
    assert_eq!(report.manifest.unwrap().total_record_count, 100);
}

/// JSON that means something else is never read as an answer: a struct is an object, never an
/// array read by position; tool calls name themselves with strings; a member given twice is
/// ambiguous. Each such answer is an error line for its custom_id (`invalid_model_output`), in
/// every family alike.
#[test]
fn answers_of_another_shape_are_reported_not_guessed_at() {
    let cases: &[(Family, Value)] = &[
        (Family::Nova, json!([])),
        (
            Family::Nova,
            json!([{"message": {"content": [{"text": "from an array"}]}}, "max_tokens", {"inputTokens": 7}]),
        ),
        (
            Family::Nova,
            json!({"output": [{"content": [{"text": "t"}]}]}),
        ),
        // No message and no stop reason: no answer at all, never an empty success.
        (
            Family::Converse,
            json!({"output": {"message": null}, "stopReason": null}),
        ),
        (Family::Nova, json!({"output": {}})),
        (Family::Llama, json!(["t", 7, 8, "length"])),
        (Family::MistralText, json!({"outputs": [["t", "stop"]]})),
        (
            Family::MistralChat,
            json!(["id", [[["t", null, null, null], "length"]], [7, 8]]),
        ),
        (Family::GptOss, json!({"choices": [{"message": ["t"]}]})),
        (Family::TitanEmbed, json!([[0.5], 7])),
        (
            Family::TitanEmbed,
            json!({"embedding": ["x", null, {"a": 1}]}),
        ),
        (Family::Anthropic, json!([[{"type": "text", "text": "t"}]])),
        (
            Family::Nova,
            json!({"output": {"message": {"content": [{"toolUse": {"toolUseId": {"x": 1}, "name": 5, "input": [1, 2]}}]}}, "stopReason": "tool_use"}),
        ),
        (
            Family::Converse,
            json!({"output": {"message": {"content": [{"toolUse": {"toolUseId": "t1", "name": null, "input": {}}}]}}}),
        ),
        // response_format's tool called twice: which call is the answer cannot be told.
        (
            Family::Anthropic,
            json!({"content": [{"type": "tool_use", "id": "a", "name": "json_response", "input": {"n": 1}},
                               {"type": "tool_use", "id": "b", "name": "json_response", "input": {"n": 2}}],
                   "stop_reason": "tool_use"}),
        ),
        (
            Family::Nova,
            json!({"output": {"message": {"content": [{"toolUse": {"toolUseId": "a", "name": "json_response", "input": {}}},
                                                      {"toolUse": {"toolUseId": "b", "name": "json_response", "input": {}}}]}},
                   "stopReason": "tool_use"}),
        ),
    ];
    for (family, answer) in cases {
        let line = json!({"recordId": "r1", "modelInput": {}, "modelOutput": answer}).to_string();
        let (ok, err, report) = from_file(*family, &format!("{line}\n"));
        assert!(ok.is_empty(), "{family} {answer}: read as {ok:?}");
        assert_eq!(err.len(), 1, "{family} {answer}");
        assert_eq!(
            err[0]["error"]["code"], "invalid_model_output",
            "{family} {answer}"
        );
        assert_eq!(report.invalid_outputs, 1);
    }
    // A member given twice, even when both say the same: never concatenated, never a guess.
    let twice = r#"{"recordId":"r1","modelOutput":{"content":[{"type":"text","text":"a"}],"content":[{"type":"text","text":"b"}],"stop_reason":"end_turn"}}"#;
    let (ok, err, _) = from_file(Family::Anthropic, &format!("{twice}\n"));
    assert!(ok.is_empty(), "{ok:?}");
    unmappable_saying(&err[0], "content");
    let twice = r#"{"recordId":"r1","modelOutput":{"output":{"message":{"content":[{"text":"a"}]}},"usage":{"inputTokens":1,"inputTokens":2}}}"#;
    let (_, err, _) = from_file(Family::Nova, &format!("{twice}\n"));
    assert_eq!(err[0]["error"]["code"], "invalid_model_output");
}

/// A line broken by one bad byte (in the echoed `modelInput`, or in the answer), or led by a
/// byte-order mark in mid-file, still says whose it is: that record's answer came back and could
/// not be read (`invalid_model_output`), never "expired". A bad byte in the recordId itself
/// leaves the line no owner.
#[test]
fn a_bad_byte_after_the_record_id_does_not_hide_whose_line_it_is() {
    let answer = claude_answer("ANSWER").to_string();
    let (head, tail) = answer.split_at(answer.find("WER").unwrap());
    let lines: [&[&[u8]]; 5] = [
        // In the echo, in the answer, after a byte-order mark, in the recordId.
        &[
            br#"{"recordId":"r0","modelInput":{"x":""#,
            b"\xff",
            br#""},"modelOutput":"#,
            answer.as_bytes(),
            b"}",
        ],
        &[
            br#"{"recordId":"r1","modelInput":{},"modelOutput":"#,
            head.as_bytes(),
            b"\xff",
            tail.as_bytes(),
            b"}",
        ],
        &[
            b"\xef\xbb\xbf",
            br#"{"recordId":"r2","modelOutput":"#,
            answer.as_bytes(),
            b"}",
        ],
        &[
            br#"{"recordId":"r"#,
            b"\xff",
            br#"3","modelOutput":"#,
            answer.as_bytes(),
            b"}",
        ],
        // A second recordId before the bad byte: the line names no one.
        &[
            br#"{"recordId":"r4","modelOutput":"#,
            answer.as_bytes(),
            br#","record\u0049d":"r5","x":""#,
            b"\xff",
            b"\"}",
        ],
    ];
    let text: Vec<u8> = lines
        .iter()
        .flat_map(|parts| [parts.concat(), b"\n".to_vec()].concat())
        .collect();
    let (ok, err, report) = from_bytes(Family::Anthropic, &text);
    assert!(ok.is_empty(), "{ok:?}");
    let ids: Vec<&str> = err
        .iter()
        .map(|e| e["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r0", "r1", "r2"]);
    for e in &err {
        assert_eq!(e["error"]["code"], "invalid_model_output", "{e}");
    }
    assert_eq!(
        (
            report.lines,
            report.failed,
            report.invalid_outputs,
            report.bad_lines
        ),
        (5, 3, 3, 2)
    );
}

/// A line that gives `recordId`, `modelOutput` or `error` twice is refused, whichever spelling
/// each is written in: two recordIds name no one (the line is unreadable, and no record is
/// credited with it), two answers are no answer (`invalid_model_output` for the record).
#[test]
fn a_line_that_says_twice_whose_or_what_it_is_is_refused() {
    let answer = claude_answer("A").to_string();
    let (ok, err, report) = from_file(
        Family::Anthropic,
        &format!(
            r#"{{"recordId":"a","modelOutput":{answer},"record\u0049d":"b"}}
{{"recordId":"c","modelOutput":{answer},"modelOutput":"junk"}}
{{"recordId":"d","modelOutput":{answer},"modelOutput":{answer}}}
{{"recordId":"e","error":{{"errorCode":400,"errorMessage":"x"}},"err\u006fr":null}}
{{"recordId":"f","modelOutput":{answer}}}
{{"recordId":"g","modelOutput":{answer},"modelOutput":{answer},"recordId":"h"}}
{{"recordId":"i","modelOutput":{answer},"error":{{"errorCode":400,"errorMessage":"x"}}}}
{{"recordId":"j","error":"x","modelOutput":{answer}}}
{{"recordId":"k","modelOutput":null,"error":{{"errorCode":429,"errorMessage":"x"}}}}
{{"recordId":"l","modelOutput":{answer},"error":null}}
"#
        ),
    );
    let failed: Vec<(&str, &str)> = err
        .iter()
        .map(|e| {
            (
                e["custom_id"].as_str().unwrap(),
                // This tool's error, or Bedrock's (by its type).
                e["error"]["code"]
                    .as_str()
                    .or(e["response"]["body"]["error"]["type"].as_str())
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("c", "invalid_model_output"),
            ("d", "invalid_model_output"),
            ("e", "invalid_model_output"),
            // An answer and an error: no guess either way.
            ("i", "invalid_model_output"),
            ("j", "invalid_model_output"),
            // A null is an absent member.
            ("k", "rate_limit_exceeded"),
        ]
    );
    unmappable_saying(&err[0], "modelOutput is given twice");
    unmappable_saying(&err[3], "both modelOutput and error");
    unmappable_saying(&err[4], "both modelOutput and error");
    let ok: Vec<&str> = ok
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ok, ["f", "l"]);
    assert_eq!((report.lines, report.bad_lines), (10, 2));
}

/// A request line whose envelope gives a member twice is refused, naming the member, and the
/// reject names the line's custom_id when the line gives exactly one; never when it gives two.
#[test]
fn a_request_giving_an_envelope_member_twice_is_refused_under_its_custom_id() {
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let url = r#""url":"/v1/chat/completions""#;
    let input = format!(
        r#"{{"custom_id":"m1","method":"POST","method":"GET",{url},"body":{body}}}
{{"custom_id":"m2","method":"POST",{url},{url},"body":{body}}}
{{"method":"POST",{url},"body":{body},"body":{body},"custom_\u0069d":"m3"}}
{{"custom_id":"m4","custom_id":"m5","method":"POST",{url},"body":{body}}}
{{"custom_id":"ok","method":"POST",{url},"body":{body}}}
"#
    );
    let (records, rejects, report) = to_stream(input.as_bytes(), &opts());
    assert_eq!(report.records, 1, "{}", String::from_utf8_lossy(&rejects));
    assert!(String::from_utf8_lossy(&records).contains("\"ok\""));
    let rejects = json_lines(&rejects);
    let named: Vec<(Value, String)> = rejects
        .iter()
        .map(|r| {
            let message = r["error"]["message"].as_str().unwrap().to_owned();
            (r["custom_id"].clone(), message)
        })
        .collect();
    assert_eq!(named.len(), 4, "{named:?}");
    for (i, (id, member)) in [("m1", "method"), ("m2", "url"), ("m3", "body")]
        .iter()
        .enumerate()
    {
        assert_eq!(named[i].0, json!(id), "{named:?}");
        assert!(named[i].1.contains(member), "{named:?}");
    }
    assert_eq!(
        named[3].0,
        Value::Null,
        "two custom_ids name no one: {named:?}"
    );
}

/// A reasoning model's tags are found by what the content means, however it is spelled
/// (`<\/reasoning>` as PHP writes a slash, `\u003c` as HTML-safe encoders write `<`).
#[test]
fn reasoning_tags_are_read_by_meaning_not_spelling() {
    for content in [
        r#"<reasoning>r</reasoning>The answer"#,
        r#"<reasoning>r<\/reasoning>The answer"#,
        r#"\u003creasoning\u003er\u003c/reasoning\u003e\nThe answer"#,
        r#" \u003cre\u0061soning>r<\u002freasoning>   The answer"#,
    ] {
        let line = format!(
            r#"{{"recordId":"r","modelOutput":{{"choices":[{{"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":2}}}}}}"#
        );
        let (ok, err, _) = from_file(Family::GptOss, &format!("{line}\n"));
        assert!(err.is_empty(), "{content}: {err:?}");
        let message = &ok[0]["response"]["body"]["choices"][0]["message"];
        assert_eq!(message["content"], "The answer", "{content}");
        assert_eq!(message["reasoning_content"], "r", "{content}");
    }
}

/// Bedrock's error codes are read by value: a number in any spelling, a name however escaped;
/// what is no error status is the service's failure (500).
#[test]
fn error_codes_are_read_by_value() {
    for (code, status, echoed) in [
        ("429", 429, "429"),
        ("429.0", 429, "429"),
        ("4.29e2", 429, "429"),
        ("4290e-1", 429, "429"),
        (r#""429""#, 429, "429"),
        (r#""ThrottlingException""#, 429, "ThrottlingException"),
        (r#""Throttling\u0045xception""#, 429, "ThrottlingException"),
        ("0", 500, "0"),
        ("200", 500, "200"),
        ("99999", 500, "99999"),
        ("-400", 500, "-400"),
        ("429.5", 500, "429.5"),
    ] {
        let line = format!(
            r#"{{"recordId":"r1","modelInput":{{}},"error":{{"errorCode":{code},"errorMessage":"m"}}}}"#
        );
        let (_, err, _) = from_file(Family::Anthropic, &format!("{line}\n"));
        assert_eq!(err[0]["response"]["status_code"], status, "{line}");
        assert_eq!(
            err[0]["response"]["body"]["error"]["code"], echoed,
            "{line}"
        );
    }
}

/// A source handing out its bytes `n` at a time.
struct Chunks(Vec<u8>, usize);

impl bedrock_batch::io::ChunkSource for Chunks {
    fn next_chunk(
        &mut self,
    ) -> futures::future::BoxFuture<'_, std::io::Result<Option<bytes::Bytes>>> {
        let n = self.1.min(self.0.len());
        let chunk: Vec<u8> = self.0.drain(..n).collect();
        Box::pin(async move { Ok((!chunk.is_empty()).then(|| chunk.into())) })
    }
}

/// An answer on a line over the length limit is not read, but the recordId it begins with is:
/// that record's error line says the line was too long, never "expired" — however the input
/// is cut into chunks, with a BOM before it, and for a line dropped unbuffered or one read
/// whole. A long line that does not begin with its recordId is a line no one owns.
#[test]
fn an_answer_on_a_line_over_the_limit_is_its_records_error_never_expired() {
    let answer = |id: &str| json!({"recordId": id, "modelOutput": claude_answer("A")}).to_string();
    let long = |id: &str| {
        format!(
            r#"{{ "recordI\u0064" : "{id}", "modelInput": {{"messages": [{{"role": "user", "content": "{}"}}]}}, "modelOutput": {}}}"#,
            "\\u00e9x".repeat(2000),
            claude_answer("A")
        )
    };
    let unowned = format!(
        r#"{{"modelInput": {{"pad": "{}"}}, "recordId": "u", "modelOutput": {}}}"#,
        "y".repeat(9000),
        claude_answer("A")
    );
    let text = format!(
        "\u{feff}{}\n{}\n{unowned}\n{}\r\n{}",
        long("first"),
        answer("a"),
        answer("b"),
        long("last")
    );
    for chunk in [1 << 20, 4096, 1000, 333, 64] {
        let mut opts = FromBedrockOptions::new(Family::Anthropic, "gpt-4o", 1);
        opts.max_line_bytes = 2048;
        opts.block_size = 4096;
        let source = Box::new(Chunks(text.clone().into_bytes(), chunk));
        let (ok, err, report) = convert(source, &opts);
        let (ok, err) = (json_lines(&ok), json_lines(&err));
        let ids = |lines: &[Value]| {
            let mut ids: Vec<String> = lines
                .iter()
                .map(|l| l["custom_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&ok), ["a", "b"], "chunks of {chunk}");
        assert_eq!(ids(&err), ["first", "last"], "chunks of {chunk}");
        for line in &err {
            // Said so that it holds under `run` and `serve` too, which have no such flag.
            unmappable_saying(
                line,
                "over the limit of 2048 bytes (`from-bedrock --max-line-bytes` reads longer lines)",
            );
        }
        assert_eq!(
            (
                report.succeeded,
                report.failed,
                report.bad_lines,
                report.problems.len()
            ),
            (2, 2, 1, 1),
            "chunks of {chunk}: {:?}",
            report.problems
        );
        assert_eq!(report.problems[0].line, 3, "{:?}", report.problems);
    }
}

/// A CR written as whitespace between tokens is valid JSON, and a value copied as the input
/// spelled it (an embedding, a tool's parameters) would carry it into an output line, which
/// readers that end lines at a CR too would cut in two. No output line holds one, in either
/// direction, with LF or CRLF line endings; the values are unchanged.
#[test]
fn carriage_returns_between_tokens_never_reach_an_output_line() {
    let no_cr = |what: &str, bytes: &[u8]| {
        assert!(
            !bytes.contains(&b'\r'),
            "{what}: {}",
            String::from_utf8_lossy(bytes)
        );
    };
    for ending in ["\n", "\r\n"] {
        let embedding = format!(
            "{{\r\"recordId\":\r\"a\",\"modelInput\":{{\r}},\"modelOutput\":{{\"embedding\":[0.5,\r0.25\r,\r-1\r],\r\"inputTextTokenCount\":2}}\r}}{ending}"
        );
        let source = Box::new(BytesSource::new(embedding.into_bytes()));
        let from = FromBedrockOptions::new(Family::TitanEmbed, "text-embedding-3-small", 1);
        let (ok, err, report) = convert(source, &from);
        assert_eq!(report.succeeded, 1, "{:?}", report.problems);
        no_cr("embedding", &ok);
        no_cr("embedding errors", &err);
        let ok = json_lines(&ok);
        let vector = &ok[0]["response"]["body"]["data"][0]["embedding"];
        assert_eq!(vector, &json!([0.5, 0.25, -1]), "{}", ok[0]);

        let tools = format!(
            "{{\"custom_id\":\"t\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"model\":\"gpt-4o\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}],\"tools\":[{{\"type\":\"function\",\"function\":{{\"name\":\"f\",\"parameters\":{{\"type\":\r\"object\",\r\"properties\":{{\"x\":\r{{\"type\":\"string\"}}\r}}}}}}}}]}}}}{ending}"
        );
        let (records, rejects, report) = to_stream(tools.as_bytes(), &opts());
        assert_eq!(report.records, 1, "{}", String::from_utf8_lossy(&rejects));
        no_cr("records", &records);
        let record: Value = serde_json::from_slice(&records).unwrap();
        let schema = &record["modelInput"]["tools"][0]["input_schema"];
        assert_eq!(
            schema,
            &json!({"type": "object", "properties": {"x": {"type": "string"}}}),
            "{record}"
        );
    }
}

#[test]
fn a_bom_at_the_start_of_an_output_file_is_accepted() {
    let line = json!({"recordId": "r", "modelOutput": claude_answer("A")});
    let (ok, _, report) = from_file(
        Family::Anthropic,
        &format!(
            "\u{feff}{line}\n{}\n",
            line.to_string().replace("\"r\"", "\"s\"")
        ),
    );
    assert_eq!((ok.len(), report.bad_lines), (2, 0));
}

#[test]
fn cr_only_line_endings_are_named_as_such() {
    let mut input = String::from_utf8(sample(3)).unwrap().replace('\n', "\r");
    input.push('\n');
    let (_, rejects, _) = to_stream(input.as_bytes(), &opts());
    let rejects = json_lines(&rejects);
    assert_eq!(
        rejects[0]["error"]["code"],
        RejectCode::CrLineEndings.as_str()
    );
    assert!(rejects[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("CR-only"));
    // Bedrock's output with CR-only endings: each record is read, never "expired" — also
    // beside one that is broken (its error says why), and with blanks around the CRs.
    let line = |id: &str| json!({"recordId": id, "modelOutput": claude_answer(id)}).to_string();
    let broken = r#"{"recordId":"b","modelOutput":{"content":[{"type":"text","text":"B"}],"stop_reason":"end_turn""#;
    for (text, good, bad) in [
        (
            format!("{}\r{}\r{}\r", line("a"), line("b"), line("c")),
            vec!["a", "b", "c"],
            vec![],
        ),
        (
            format!("{} \r\t{}\r{}", line("a"), line("b"), line("c")),
            vec!["a", "b", "c"],
            vec![],
        ),
        (
            format!("{}\r{broken}\r{}\r\n", line("a"), line("c")),
            vec!["a", "c"],
            vec!["b"],
        ),
    ] {
        let (ok, err, report) = from_file(Family::Anthropic, &text);
        let ids = |lines: &[Value]| -> Vec<String> {
            lines
                .iter()
                .map(|l| l["custom_id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ids(&ok), good, "{text:?}");
        assert_eq!(ids(&err), bad, "{text:?}");
        for line in &ok {
            let id = line["custom_id"].as_str().unwrap();
            assert_eq!(
                line["response"]["body"]["choices"][0]["message"]["content"],
                id
            );
        }
        for line in &err {
            unmappable_saying(line, "EOF while parsing");
        }
        assert_eq!(report.lines, 3, "{text:?}");
        assert_eq!(report.bad_lines, 0, "{text:?}");
    }
    // Far longer than a line may be, the file is still read a record at a time: every answer
    // is there, at any chunking; a record over the limit itself is the only one refused.
    let text: String = (0..20)
        .map(|i| {
            let answer = match i {
                9 => claude_answer(&"A".repeat(2000)),
                _ => claude_answer("A"),
            };
            format!(r#"{{"recordId":"r{i}","modelOutput":{answer}}}"#) + "\r"
        })
        .collect();
    let mut opts = FromBedrockOptions::new(Family::Anthropic, "gpt-4o", 1);
    opts.max_line_bytes = 1024;
    for block_size in [1 << 10, 4 << 10, 2 << 20] {
        opts.block_size = block_size;
        let source = BytesSource::new(text.clone().into_bytes());
        let (ok, err, report) = convert(Box::new(source), &opts);
        let (ok, err) = (json_lines(&ok), json_lines(&err));
        assert_eq!(ok.len(), 19, "block {block_size}");
        assert!(ok.iter().all(|l| l["custom_id"] != "r9"));
        assert_eq!(err.len(), 1);
        assert_eq!(err[0]["custom_id"], "r9");
        unmappable_saying(&err[0], "--max-line-bytes` reads longer lines");
        assert_eq!(report.lines, 20);
    }
    // Parted where they cannot be told apart as they stream by (a byte-order mark before each,
    // as files concatenated whole give), they are one line; over the limit, the first record's
    // error says why the others are missing, and what reads them.
    let text = text.replace('\r', "\r\u{feff}");
    let (_, err, _) = convert(Box::new(BytesSource::new(text.into_bytes())), &opts);
    let err = json_lines(&err);
    assert_eq!(err[0]["custom_id"], "r0");
    unmappable_saying(&err[0], "CR-only line endings");
    unmappable_saying(&err[0], "raise --max-line-bytes");
}

/// The ledger reads back exactly what it wrote, for any custom_id a JSON string can hold.
mod ledger_round_trip {
    use super::*;
    use proptest::prelude::*;

    fn escape(c: char, style: u8) -> String {
        match (c, style % 3) {
            ('"', _) => "\\\"".into(),
            ('\\', _) => "\\\\".into(),
            (c, _) if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32),
            (c, 1) => {
                let mut buf = [0u16; 2];
                c.encode_utf16(&mut buf)
                    .iter()
                    .map(|u| format!("\\u{u:04X}"))
                    .collect()
            }
            (c, _) => c.to_string(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        #[test]
        fn custom_id_to_ledger_to_result(
            ids in prop::collection::vec(
                (prop::collection::vec((any::<char>(), any::<u8>()), 1..40), any::<bool>()),
                100..110,
            ),
            long in 0usize..3,
        ) {
            let mut wanted = Vec::new();
            let mut input = String::new();
            for (i, (chars, _)) in ids.iter().enumerate() {
                let mut value: String = chars.iter().map(|(c, _)| *c).collect();
                value.push_str(&format!("#{i}"));
                if i == long {
                    value.push_str(&"\t\u{1f600}\"\\".repeat(2000));
                }
                let literal: String = value.chars().zip(chars.iter().map(|(_, s)| *s).chain(std::iter::repeat(0)))
                    .map(|(c, s)| escape(c, s))
                    .collect();
                input.push_str(&format!(
                    r#"{{"custom_id":"{literal}","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"x"}}]}}}}"#
                ));
                input.push('\n');
                wanted.push(value);
            }
            let (dir, result) = to_folder(input.as_bytes(), &opts());
            let report = result.unwrap();
            prop_assert_eq!(report.records, wanted.len() as u64);
            simulate_bedrock(&dir, "j", |i| if i % 4 == 0 { Fate::Error } else { Fate::Success }, 9);
            let (ok, err, report) = collect(&dir, MissingReason::expired());
            prop_assert!(report.clean());
            let mut got: HashMap<String, usize> = HashMap::new();
            for l in json_lines(&ok).iter().chain(&json_lines(&err)) {
                *got.entry(l["custom_id"].as_str().unwrap().to_owned()).or_default() += 1;
            }
            prop_assert_eq!(got.len(), wanted.len());
            for w in &wanted {
                prop_assert_eq!(got.get(w), Some(&1), "{:?}", w);
            }
        }
    }
}

/// A fault serde finds is named by its path down to the member or element at fault, in JSON's
/// words (an object, an array), both ways.
#[test]
fn a_fault_is_named_by_its_whole_path() {
    let request = |messages: &str| {
        format!(
            r#"{{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{{"messages":{messages}}}}}"#
        ) + "\n"
    };
    for (messages, said) in [
        (
            r#"[{"role":"user","content":[5]}]"#,
            "body.messages[0].content[0]: invalid type: integer `5`, expected an object",
        ),
        (
            r#"[{"role":"user","content":"a"},{"role":"user","role":"user","content":"b"}]"#,
            "body.messages[1]: duplicate member `role`",
        ),
        (
            r#"{"role":"user"}"#,
            "body.messages: invalid type: an object, expected an array",
        ),
    ] {
        let (_, rejects, _) = to_stream(request(messages).as_bytes(), &opts());
        let rejects = json_lines(&rejects);
        assert_eq!(rejects[0]["error"]["message"], said, "{messages}");
    }
    for (family, answer, said) in [
        (
            Family::GptOss,
            json!({"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"name": "f"}}]}}]}),
            "modelOutput.choices[0].message.tool_calls[0].function: missing field `arguments`",
        ),
        (
            Family::Anthropic,
            serde_json::from_str::<serde_json::Value>(r#"{"stop_reason":"end_turn","content":[{"type":"text","text":"a"},{"type":"text","text":5}]}"#).unwrap(),
            "modelOutput.content[1].text",
        ),
    ] {
        let line = json!({"recordId": "r", "modelOutput": answer}).to_string();
        let (_, err, _) = from_file(family, &format!("{line}\n"));
        unmappable_saying(&err[0], said);
    }
}
