//! Every model family both ways against golden files in fixtures/families/:
//! `requests.jsonl` (chat) or `embeddings.jsonl` → `<family>.expected-input.json` (each line's
//! `modelInput`, or its reject), and `<family>.jsonl.out` → `<family>.expected-output.json` (each
//! line's OpenAI output or error line). Compared as JSON values.
//!
//! After a deliberate change to a mapping, `BEDROCK_BATCH_BLESS=1 cargo test --test families`
//! rewrites the expected files; review the diff before committing it.

mod common;

use bedrock_batch::record::bedrock_output::{
    parse_output_line, write_openai_line, LineIds, ResponseOptions,
};
use bedrock_batch::record::{convert_line, Family, LineOptions};
use common::fixture;
use serde_json::{json, Map, Value};

const CHAT_FAMILIES: [Family; 7] = [
    Family::Anthropic,
    Family::Nova,
    Family::Llama,
    Family::MistralText,
    Family::MistralChat,
    Family::GptOss,
    Family::Converse,
];

fn check(name: &str, got: Value) {
    let path = fixture(&format!("families/{name}"));
    if std::env::var_os("BEDROCK_BATCH_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    let (got, want) = (got.as_object().unwrap(), want.as_object().unwrap());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{name}"
    );
    for (k, v) in got {
        assert_eq!(v, &want[k], "{name}: {k}");
    }
}

/// Each line of `input` converted for `family`: its `modelInput`, or its reject.
fn inputs(family: Family, input: &str) -> Value {
    let opts = LineOptions::new(family);
    let mut all = Map::new();
    for (i, line) in input.lines().enumerate() {
        let id: Value = serde_json::from_str::<Value>(line).unwrap()["custom_id"].clone();
        let mut out = Vec::new();
        let v = match convert_line(line.as_bytes(), i as u64 + 1, &opts, &mut out) {
            Ok(_) => {
                assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
                let record: Value = serde_json::from_slice(&out).unwrap();
                assert_eq!(record["recordId"], id);
                record["modelInput"].clone()
            }
            Err(r) => {
                json!({"rejected": {"code": r.reject.code.as_str(), "message": r.reject.message}})
            }
        };
        all.insert(id.as_str().unwrap().to_owned(), v);
    }
    Value::Object(all)
}

/// Each line of a `.jsonl.out` as the OpenAI line it becomes.
fn outputs(family: Family, output: &str) -> Value {
    let opts = ResponseOptions {
        family,
        model: "\"gpt-4o-mini\"".into(),
        created: 1_700_000_000,
    };
    let mut all = Map::new();
    for line in output.lines() {
        let parsed = parse_output_line(line.as_bytes(), family).unwrap();
        let record_id = parsed.record_id.get().to_owned();
        let ids = LineIds::new("golden", &record_id);
        let (mut ok, mut err) = (Vec::new(), Vec::new());
        write_openai_line(parsed, &record_id, &ids, &opts, &mut ok, &mut err)
            .unwrap_or_else(|r| panic!("{family}: {record_id}: {}", r.message));
        let written = if ok.is_empty() { err } else { ok };
        let v: Value = serde_json::from_slice(&written).unwrap();
        all.insert(serde_json::from_str::<String>(&record_id).unwrap(), v);
    }
    Value::Object(all)
}

#[test]
fn every_chat_family_maps_the_same_requests_its_own_way() {
    let requests = std::fs::read_to_string(fixture("families/requests.jsonl")).unwrap();
    for family in CHAT_FAMILIES {
        check(
            &format!("{family}.expected-input.json"),
            inputs(family, &requests),
        );
    }
}

#[test]
fn titan_embeds_one_text_per_record() {
    let requests = std::fs::read_to_string(fixture("families/embeddings.jsonl")).unwrap();
    check(
        "titan-embed.expected-input.json",
        inputs(Family::TitanEmbed, &requests),
    );
}

#[test]
fn every_family_answers_in_openai_shape() {
    for family in CHAT_FAMILIES
        .into_iter()
        .skip(1)
        .chain([Family::TitanEmbed])
    {
        let out =
            std::fs::read_to_string(fixture(&format!("families/{family}.jsonl.out"))).unwrap();
        check(
            &format!("{family}.expected-output.json"),
            outputs(family, &out),
        );
    }
}

fn body(family: Family, drop: bool, line_body: &str) -> Result<Value, (String, String)> {
    let line = format!(
        r#"{{"custom_id":"c","method":"POST","url":"{}","body":{line_body}}}"#,
        family.endpoint()
    );
    let mut opts = LineOptions::new(family);
    opts.map.drop_unsupported = drop;
    let mut out = Vec::new();
    convert_line(line.as_bytes(), 1, &opts, &mut out)
        .map(|_| serde_json::from_slice::<Value>(&out).unwrap()["modelInput"].clone())
        .map_err(|r| (r.reject.code.as_str().to_owned(), r.reject.message))
}

const USER: &str = r#""messages":[{"role":"user","content":"hi"}]"#;

#[test]
fn llama_caps_generation_at_2048_and_drops_only_when_asked() {
    let e = body(
        Family::Llama,
        false,
        &format!(r#"{{{USER},"max_tokens":4096}}"#),
    )
    .unwrap_err();
    assert!(e.1.contains("2048"), "{e:?}");
    let e = body(Family::Llama, false, &format!(r#"{{{USER},"stop":"x"}}"#)).unwrap_err();
    assert_eq!(e.0, "unsupported_parameter");
    let b = body(
        Family::Llama,
        true,
        &format!(r#"{{{USER},"stop":"x","seed":1}}"#),
    )
    .unwrap();
    assert!(b.get("stop").is_none() && b.get("seed").is_none(), "{b}");
}

#[test]
fn converse_jobs_refuse_tool_history_but_take_plain_text_format() {
    let history = r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"ok"}]}"#;
    let e = body(Family::Converse, true, history).unwrap_err();
    assert!(e.1.contains("tool calling"), "{e:?}");
    let b = body(
        Family::Converse,
        false,
        &format!(r#"{{{USER},"response_format":{{"type":"text"}}}}"#),
    )
    .unwrap();
    assert!(b.get("outputConfig").is_none());
    // A schema with a property called "text" is still structured output.
    let schema = r#""response_format":{"type":"json_schema","json_schema":{"name":"t","schema":{"type":"object","properties":{"text":{"type":"string"}}}}}"#;
    assert!(body(Family::Converse, false, &format!("{{{USER},{schema}}}")).is_err());
}

#[test]
fn nova_tool_choice_follows_openai() {
    let tools = r#""tools":[{"type":"function","function":{"name":"f"}}]"#;
    let b = body(
        Family::Nova,
        false,
        &format!(r#"{{{USER},{tools},"tool_choice":"none"}}"#),
    )
    .unwrap();
    assert!(b.get("toolConfig").is_none(), "none: no tools at all: {b}");
    let b = body(
        Family::Nova,
        false,
        &format!(r#"{{{USER},{tools},"tool_choice":"required"}}"#),
    )
    .unwrap();
    assert_eq!(b["toolConfig"]["toolChoice"], json!({"any": {}}));
    let b = body(
        Family::Nova,
        false,
        &format!(
            r#"{{{USER},{tools},"tool_choice":{{"type":"function","function":{{"name":"f"}}}}}}"#
        ),
    )
    .unwrap();
    assert_eq!(
        b["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "f"}})
    );
    assert_eq!(
        b["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object", "properties": {}})
    );
}

#[test]
fn mistral_chat_maps_required_and_refuses_a_named_tool() {
    let tools = r#""tools":[{"type":"function","function":{"name":"f"}}]"#;
    let b = body(
        Family::MistralChat,
        false,
        &format!(r#"{{{USER},{tools},"tool_choice":"required"}}"#),
    )
    .unwrap();
    assert_eq!(b["tool_choice"], "any");
    let e = body(
        Family::MistralChat,
        false,
        &format!(
            r#"{{{USER},{tools},"tool_choice":{{"type":"function","function":{{"name":"f"}}}}}}"#
        ),
    )
    .unwrap_err();
    assert_eq!(e.0, "unsupported_parameter");
}

#[test]
fn gpt_oss_leaves_out_what_describes_the_call() {
    let b = body(
        Family::GptOss,
        false,
        &format!(r#"{{"model":"gpt-4o","stream":false,"user":"u1","store":true,{USER}}}"#),
    )
    .unwrap();
    for k in ["model", "stream", "user", "store"] {
        assert!(b.get(k).is_none(), "{k}: {b}");
    }
    assert_eq!(b["max_completion_tokens"], 4096);
}

/// A batch folder records its family and invocation type, so the way back needs no flags.
#[test]
fn a_folder_remembers_its_family_for_the_way_back() {
    use bedrock_batch::io::{BytesSource, MemoryDir};
    use bedrock_batch::pipeline::{
        convert_to_bedrock, BedrockOutput, FromBedrockOptions, MissingReason, ToBedrockOptions,
    };
    use std::sync::Arc;
    let rt = common::rt();
    for (family, answer) in [
        (
            Family::Converse,
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"A"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4}}"#,
        ),
        (
            Family::Llama,
            r#"{"generation":"A","prompt_token_count":3,"generation_token_count":1,"stop_reason":"stop"}"#,
        ),
    ] {
        let dir = MemoryDir::default();
        let mut opts = ToBedrockOptions::with_family("meta.llama3-1-8b-instruct-v1:0", family);
        opts.allow_small = true;
        let input = common::sample(20);
        rt.block_on(async {
            let out = BedrockOutput::new_folder(Arc::new(dir.clone()), &opts).await?;
            convert_to_bedrock(BytesSource::new(input), out, &opts).await
        })
        .unwrap();
        let manifest: Value = serde_json::from_slice(&dir.get("batch.json").unwrap()).unwrap();
        assert_eq!(manifest["conversion"]["family"], family.name());
        assert_eq!(
            manifest["conversion"]["invocation_type"],
            family.invocation_type()
        );
        // Bedrock answers every record.
        let generation = common::generation(&dir);
        let records = String::from_utf8(
            dir.get(&format!("{generation}/input/job000/00000.jsonl"))
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        let mut out = String::new();
        for r in records.lines() {
            let id = serde_json::from_str::<Value>(r).unwrap()["recordId"].clone();
            out.push_str(&format!(
                r#"{{"recordId":{id},"modelInput":{{}},"modelOutput":{answer}}}"#
            ));
            out.push('\n');
        }
        dir.put(
            &format!("{generation}/output/job1/00000.jsonl.out"),
            out.into_bytes(),
        );
        let m: bedrock_batch::batch_folder::BatchManifest =
            serde_json::from_value(manifest.clone()).unwrap();
        let fb = FromBedrockOptions::for_folder(&m).unwrap();
        assert_eq!(fb.response.family, family);
        let (ok, err, report) = common::collect(&dir, MissingReason::expired());
        // The sample's tool round trips are rejected by both (no tool calling there).
        let records = manifest["counts"]["records"].as_u64().unwrap();
        assert_eq!(
            records + manifest["counts"]["rejected"].as_u64().unwrap(),
            20
        );
        assert_eq!(
            (report.succeeded, report.failed, report.missing),
            (records, 0, 0)
        );
        assert!(err.is_empty());
        for line in common::json_lines(&ok) {
            assert_eq!(
                line["response"]["body"]["choices"][0]["message"]["content"],
                "A"
            );
        }
    }
}
