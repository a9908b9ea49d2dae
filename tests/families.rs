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
use bedrock_batch::record::{convert_line, Endpoint, Family, LineOptions};
use common::fixture;
use serde_json::{json, Map, Value};

const CHAT_FAMILIES: [Family; 8] = [
    Family::Anthropic,
    Family::Nova,
    Family::Llama,
    Family::MistralText,
    Family::MistralChat,
    Family::GptOss,
    Family::OpenAiChat,
    Family::Converse,
];

/// The chat families that read the messages member by member (the others send them as
/// written).
const MESSAGE_READERS: [Family; 6] = [
    Family::Anthropic,
    Family::Nova,
    Family::Converse,
    Family::Llama,
    Family::MistralText,
    Family::MistralChat,
];

/// The embeddings families besides Titan Text V2, and the requests they share.
const MULTIMODAL_EMBEDDINGS: [Family; 2] = [Family::TitanEmbedImage, Family::NovaEmbed];

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
    inputs_for(family, family.endpoints()[0], input)
}

/// [`inputs`] for a file of `endpoint` lines.
fn inputs_for(family: Family, endpoint: Endpoint, input: &str) -> Value {
    let mut opts = LineOptions::new(family);
    opts.endpoint = Some(endpoint);
    inputs_with(&opts, input)
}

/// Each line of `input` converted with `opts`.
fn inputs_with(opts: &LineOptions, input: &str) -> Value {
    let mut all = Map::new();
    for (i, line) in input.lines().enumerate() {
        let id: Value = serde_json::from_str::<Value>(line).unwrap()["custom_id"].clone();
        let mut out = Vec::new();
        let v = match convert_line(line.as_bytes(), i as u64 + 1, opts, &mut out) {
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
    outputs_for(family, family.endpoints()[0], output)
}

/// [`outputs`] for requests that were `endpoint` lines.
fn outputs_for(family: Family, endpoint: Endpoint, output: &str) -> Value {
    let opts = ResponseOptions {
        family,
        model: "\"gpt-4o-mini\"".into(),
        created: 1_700_000_000,
        endpoint,
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
fn the_multimodal_embeddings_models_take_text_or_one_image() {
    let requests =
        std::fs::read_to_string(fixture("families/embeddings-multimodal.jsonl")).unwrap();
    for family in MULTIMODAL_EMBEDDINGS {
        check(
            &format!("{family}.expected-input.json"),
            inputs(family, &requests),
        );
    }
}

#[test]
fn every_family_answers_in_openai_shape() {
    for family in CHAT_FAMILIES
        .into_iter()
        .skip(1)
        .chain([Family::TitanEmbed])
        .chain(MULTIMODAL_EMBEDDINGS)
    {
        let out =
            std::fs::read_to_string(fixture(&format!("families/{family}.jsonl.out"))).unwrap();
        check(
            &format!("{family}.expected-output.json"),
            outputs(family, &out),
        );
    }
}

#[test]
fn every_chat_family_maps_responses_and_completions_lines_through_the_chat_path() {
    for (endpoint, name) in [
        (Endpoint::Responses, "responses"),
        (Endpoint::Completions, "completions"),
    ] {
        let requests = std::fs::read_to_string(fixture(&format!("families/{name}.jsonl"))).unwrap();
        for family in CHAT_FAMILIES {
            check(
                &format!("{family}.expected-{name}-input.json"),
                inputs_for(family, endpoint, &requests),
            );
        }
    }
}

#[test]
fn every_chat_family_answers_responses_and_completions_in_their_shape() {
    for (endpoint, name) in [
        (Endpoint::Responses, "responses"),
        (Endpoint::Completions, "completions"),
    ] {
        for family in CHAT_FAMILIES {
            let out = match family {
                Family::Anthropic => fixture("bedrock-output/claude.jsonl.out"),
                _ => fixture(&format!("families/{family}.jsonl.out")),
            };
            let out = std::fs::read_to_string(out).unwrap();
            let got = outputs_for(family, endpoint, &out);
            for (id, line) in got.as_object().unwrap() {
                let Some(body) = line["response"]["body"].as_object() else {
                    continue;
                };
                if body.contains_key("error") {
                    continue;
                }
                let object = if endpoint == Endpoint::Responses {
                    "response"
                } else {
                    "text_completion"
                };
                assert_eq!(body["object"], object, "{family} {id}");
            }
            check(&format!("{family}.expected-output.{name}.json"), got);
        }
    }
}

fn body(family: Family, drop: bool, line_body: &str) -> Result<Value, (String, String)> {
    body_text(family, drop, line_body)
        .map(|line| serde_json::from_str::<Value>(&line).unwrap()["modelInput"].clone())
}

/// The record line `body` maps `line_body` into, as written (a `Value` would keep one of two
/// members given twice).
fn body_text(family: Family, drop: bool, line_body: &str) -> Result<String, (String, String)> {
    let line = format!(
        r#"{{"custom_id":"c","method":"POST","url":"{}","body":{line_body}}}"#,
        family.endpoints()[0]
    );
    let mut opts = LineOptions::new(family);
    opts.map.drop_unsupported = drop;
    let mut out = Vec::new();
    convert_line(line.as_bytes(), 1, &opts, &mut out)
        .map(|_| String::from_utf8(out).unwrap())
        .map_err(|r| (r.reject.code.as_str().to_owned(), r.reject.message))
}

/// The fields dropped, by the names they are counted under, when `line_body` is mapped with
/// `--drop-unsupported` (the mapping must succeed).
fn dropped(family: Family, line_body: &str) -> Vec<String> {
    let line = format!(
        r#"{{"custom_id":"c","method":"POST","url":"{}","body":{line_body}}}"#,
        family.endpoints()[0]
    );
    let mut opts = LineOptions::new(family);
    opts.map.drop_unsupported = true;
    let mut notes = bedrock_batch::record::Notes::default();
    bedrock_batch::record::convert_line_noted(
        line.as_bytes(),
        1,
        &opts,
        &mut notes,
        &mut Vec::new(),
    )
    .unwrap_or_else(|r| panic!("{family:?} {line_body}: {}", r.reject.message));
    notes.dropped
}

const USER: &str = r#""messages":[{"role":"user","content":"hi"}]"#;

#[test]
fn llama_caps_generation_at_2048_and_drops_only_when_asked() {
    // Beyond the documented 2048: clamped (and counted, see limits_are_one_rule_for_all).
    let b = body(
        Family::Llama,
        false,
        &format!(r#"{{{USER},"max_tokens":4096}}"#),
    )
    .unwrap();
    assert_eq!(b["max_gen_len"], 2048, "{b}");
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

/// One rule in every family: a value beyond the model's documented range is clamped to it and
/// counted; a value that is no value of the setting at all is rejected.
#[test]
fn limits_are_one_rule_for_all() {
    let notes_of = |family: Family, model: &str, body: &str| {
        let line = format!(
            r#"{{"custom_id":"c","method":"POST","url":"{}","body":{body}}}"#,
            family.endpoints()[0]
        );
        let mut opts = LineOptions::new(family);
        opts.map = bedrock_batch::record::MapOptions::new(family, model);
        let mut out = Vec::new();
        let mut notes = bedrock_batch::record::Notes::default();
        bedrock_batch::record::convert_line_noted(line.as_bytes(), 1, &opts, &mut notes, &mut out)
            .map(|_| {
                let v: Value = serde_json::from_slice(&out).unwrap();
                (v["modelInput"].clone(), notes.clamped.clone())
            })
            .map_err(|r| r.reject.message)
    };
    for (family, model, field) in [
        (
            Family::Anthropic,
            "anthropic.claude-3-haiku-20240307-v1:0",
            "/max_tokens",
        ),
        (
            Family::Nova,
            "amazon.nova-lite-v1:0",
            "/inferenceConfig/maxTokens",
        ),
        (
            Family::Llama,
            "meta.llama3-1-8b-instruct-v1:0",
            "/max_gen_len",
        ),
        (
            Family::MistralText,
            "mistral.mixtral-8x7b-instruct-v0:1",
            "/max_tokens",
        ),
    ] {
        let (b, clamped) = notes_of(
            family,
            model,
            &format!(r#"{{{USER},"max_completion_tokens":1e6}}"#),
        )
        .unwrap_or_else(|e| panic!("{family}: {e}"));
        let limit = bedrock_batch::record::Limits::of(family, model)
            .max_tokens
            .unwrap();
        assert_eq!(b.pointer(field).unwrap(), limit, "{family}: {b}");
        assert_eq!(clamped, ["max_tokens"], "{family}");
        // Within the range: as asked, by value.
        let (b, clamped) = notes_of(
            family,
            model,
            &format!(r#"{{{USER},"max_completion_tokens":1.0e2}}"#),
        )
        .unwrap();
        assert_eq!(b.pointer(field).unwrap(), 100, "{family}: {b}");
        assert!(clamped.is_empty());
        // Not a value of the setting at all: rejected, in every family alike.
        for bad in ["0", "-5", "2.5", "\"10\""] {
            let e =
                notes_of(family, model, &format!(r#"{{{USER},"max_tokens":{bad}}}"#)).unwrap_err();
            assert!(e.contains("body.max_tokens"), "{family} {bad}: {e}");
        }
        let (_, clamped) =
            notes_of(family, model, &format!(r#"{{{USER},"temperature":1.7}}"#)).unwrap();
        assert_eq!(clamped, ["temperature"], "{family}");
        assert!(notes_of(family, model, &format!(r#"{{{USER},"temperature":-1}}"#)).is_err());
    }
    // gpt-oss takes OpenAI's own temperature range.
    let (b, clamped) = notes_of(
        Family::GptOss,
        "openai.gpt-oss-20b-1:0",
        &format!(r#"{{{USER},"temperature":1.7}}"#),
    )
    .unwrap();
    assert_eq!((b["temperature"].as_f64(), clamped.len()), (Some(1.7), 0));
    // Nova 2's documented temperature starts above 0.
    let (b, clamped) = notes_of(
        Family::Nova,
        "amazon.nova-2-lite-v1:0",
        &format!(r#"{{{USER},"temperature":0,"top_k":1000}}"#),
    )
    .unwrap();
    assert_eq!(b["inferenceConfig"]["temperature"].as_f64(), Some(0.00001));
    assert_eq!(b["inferenceConfig"]["topK"], 128);
    assert_eq!(clamped, ["temperature", "top_k"]);
    // Claude with extended thinking takes temperature 1 only: 1.5 is clamped to it, and taken.
    let haiku = "anthropic.claude-3-7-sonnet-20250219-v1:0";
    let (b, clamped) = notes_of(
        Family::Anthropic,
        haiku,
        &format!(r#"{{{USER},"temperature":1.5,"reasoning_effort":"low","max_tokens":8000}}"#),
    )
    .unwrap();
    assert_eq!(
        (b["temperature"].as_f64(), clamped),
        (Some(1.0), vec!["temperature"])
    );
    assert!(notes_of(
        Family::Anthropic,
        haiku,
        &format!(r#"{{{USER},"temperature":0.5,"reasoning_effort":"low","max_tokens":8000}}"#)
    )
    .is_err());
    // A Converse job for a model the table knows is bounded by that model's maximum.
    let (b, clamped) = notes_of(
        Family::Converse,
        "anthropic.claude-3-haiku-20240307-v1:0",
        &format!(r#"{{{USER},"max_tokens":1e9}}"#),
    )
    .unwrap();
    assert_eq!(
        (b["inferenceConfig"]["maxTokens"].clone(), clamped),
        (json!(4096), vec!["max_tokens"])
    );
    // Titan's dimensions by value.
    let embed = |dims: &str| {
        let line = format!(
            r#"{{"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{{"model":"m","input":"hi","dimensions":{dims}}}}}"#
        );
        let mut out = Vec::new();
        convert_line(
            line.as_bytes(),
            1,
            &LineOptions::new(Family::TitanEmbed),
            &mut out,
        )
        .map(|_| serde_json::from_slice::<Value>(&out).unwrap()["modelInput"]["dimensions"].clone())
        .map_err(|r| r.reject.message)
    };
    for dims in ["256", "256.0", "2.56e2"] {
        assert_eq!(embed(dims), Ok(json!(256)), "{dims}");
    }
    for dims in ["300", "256.5", "-256"] {
        assert!(embed(dims).is_err(), "{dims}");
    }
}

/// Nova's InvokeModel body takes no documents (they are Converse-only): a PDF part is refused
/// with the way to run it, and goes through in a Converse job.
#[test]
fn nova_documents_go_through_converse_jobs_only() {
    let pdf = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"sum up"},{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQK"}}]}]}"#;
    let (code, message) = body(Family::Nova, false, pdf).unwrap_err();
    assert_eq!(code, "unsupported_parameter");
    assert!(
        message.contains("messages[0].content[1]")
            && message.contains("--invocation-type converse"),
        "{message}"
    );
    // --drop-unsupported does not drop content: the line is still refused.
    assert!(body(Family::Nova, true, pdf).is_err());
    let b = body(Family::Converse, false, pdf).unwrap();
    assert_eq!(b["messages"][0]["content"][1]["document"]["format"], "pdf");
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

/// Mistral takes tool-call ids of nine characters [a-zA-Z0-9]: OpenAI's `call_…` ids are mapped
/// to such ids, the same for a call and the tool turn answering it, distinct, and stable.
#[test]
fn mistral_tool_call_ids_are_nine_alphanumerics_matched_across_turns() {
    let history = r#"{"messages":[{"role":"user","content":"hi"},
        {"role":"assistant","content":null,"tool_calls":[
            {"id":"call_abc","type":"function","function":{"name":"f","arguments":"{}"}},
            {"id":"call_abd","type":"function","function":{"name":"f","arguments":"{}"}},
            {"id":"abcDEF123","type":"function","function":{"name":"f","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_abc","content":"1"},
        {"role":"tool","tool_call_id":"call_abd","content":"2"},
        {"role":"tool","tool_call_id":"abcDEF123","content":"3"}]}"#
        .replace('\n', "");
    let b = body(Family::MistralChat, false, &history).unwrap();
    let calls: Vec<String> = b["messages"][1]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let answers: Vec<String> = (2..5)
        .map(|i| {
            b["messages"][i]["tool_call_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(calls, answers, "{b}");
    for id in &calls {
        assert!(
            id.len() == 9 && id.bytes().all(|c| c.is_ascii_alphanumeric()),
            "{id}"
        );
    }
    assert_eq!(calls[2], "abcDEF123", "an id Mistral takes is kept");
    assert!(calls[0] != calls[1] && calls[1] != calls[2] && calls[0] != calls[2]);
    assert_eq!(body(Family::MistralChat, false, &history).unwrap(), b);
}

/// A tool call's `arguments` that Mistral is sent as written are checked as for every family
/// that reads them: one JSON object giving each member once (blank means none); anything else
/// is refused, naming the key, as Claude, Nova and Llama refuse it.
#[test]
fn mistral_tool_call_arguments_are_one_object_giving_each_member_once() {
    let history = |arguments: &str| {
        format!(
            r#"{{"messages":[{{"role":"user","content":"hi"}},{{"role":"assistant","content":null,"tool_calls":[{{"id":"call_abc","type":"function","function":{{"name":"f","arguments":{}}}}}]}},{{"role":"tool","tool_call_id":"call_abc","content":"1"}}]}}"#,
            serde_json::to_string(arguments).unwrap()
        )
    };
    for bad in [
        r#"{"x":1,"x":2}"#,
        r#"{"x":"#,
        "[1]",
        r#"{"a":{"y":1,"y":1}}"#,
    ] {
        for family in [Family::MistralChat, Family::Anthropic, Family::Llama] {
            let e = body(family, false, &history(bad)).unwrap_err();
            assert_eq!(e.0, "invalid_request", "{family:?} {bad}: {e:?}");
            assert!(
                e.1.contains("body.messages[1].tool_calls[0].function.arguments"),
                "{family:?} {bad}: {e:?}"
            );
        }
    }
    for good in [r#"{"x":1,"y":[1,1]}"#, "{}", "", "  "] {
        let b = body(Family::MistralChat, false, &history(good)).unwrap();
        let sent = &b["messages"][1]["tool_calls"][0]["function"]["arguments"];
        assert_eq!(sent, good, "sent as written: {b}");
    }
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

/// gpt-oss and openai-chat are sent `messages`, `tools`, `response_format` and `tool_choice` as
/// written, so a member given twice in them is refused, naming it — except inside a tool's `parameters` and a
/// `json_schema`'s `schema`, which OpenAI takes as written too (the README's rule).
#[test]
fn gpt_oss_refuses_a_member_given_twice_in_what_it_copies() {
    let with = |members: &str| format!(r#"{{{USER},{members}}}"#);
    let tool = |function: &str| {
        format!(
            r#""tools":[{{"type":"function","function":{{"name":"f","parameters":{{"type":"object"}}}}}},{{"type":"function","function":{function}}}]"#
        )
    };
    for (bad, at, key) in [
        (tool(r#"{"name":"g","name":"h"}"#), "body.tools[1]", "name"),
        (tool(r#"{"name":"g","description":"a","description":"b"}"#), "body.tools[1]", "description"),
        (tool(r#"{"name":"g","parameters":{"properties":{}},"parameters":{}}"#), "body.tools[1]", "parameters"),
        (tool(r#"{"name":"g","strict":{"a":1,"a":2}}"#), "body.tools[1]", "a"),
        (r#""tools":[{"type":"function","type":"custom","function":{"name":"g"}}]"#.to_owned(), "body.tools[0]", "type"),
        (r#""response_format":{"type":"json_object","type":"text"}"#.to_owned(), "body.response_format", "type"),
        (r#""response_format":{"type":"json_schema","json_schema":{"name":"a","name":"b","schema":{}}}"#.to_owned(), "body.response_format", "name"),
        (r#""tool_choice":{"type":"function","function":{"name":"f","name":"g"}}"#.to_owned(), "body.tool_choice", "name"),
    ] {
        for family in [Family::GptOss, Family::OpenAiChat] {
            let e = body(family, false, &with(&bad)).unwrap_err();
            assert_eq!(e.0, "invalid_request", "{family:?} {bad}: {e:?}");
            assert!(
                e.1.contains(at) && e.1.contains(&format!("duplicate member `{key}`")),
                "{family:?} {bad}: {e:?}"
            );
        }
    }
    // The messages go as written too: a repeat in a member the reader does not read itself.
    let call = r#"{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}"#;
    for (messages, key) in [
        (r#"{"role":"user","content":"a","name":"x","name":"y"}"#.to_owned(), "name"),
        (r#"{"role":"user","content":"a","n\u0061me":"x","name":"y"}"#.to_owned(), "name"),
        (r#"{"role":"user","content":"a","extra":{"k":[{"z":1,"z":2}]}}"#.to_owned(), "z"),
        (r#"{"role":"user","content":{"a":1,"a":2}}"#.to_owned(), "a"),
        (r#"{"role":"tool","tool_call_id":[{"a":1,"a":2}],"content":"x"}"#.to_owned(), "a"),
        (r#"{"role":"user","content":"x","tool_call_id":{"a":{"b":1,"b":2}}}"#.to_owned(), "b"),
        (r#"{"role":"user","content":[{"type":"text","text":"a","cache_control":{"t":1,"t":2}}]}"#.to_owned(), "t"),
        (format!(r#"{{"role":"assistant","content":null,"tool_calls":[{call},"x":1,"x":2}}]}}"#), "x"),
    ] {
        let line = format!(r#"{{"messages":[{{"role":"system","content":"s"}},{messages}]}}"#);
        for family in [Family::GptOss, Family::OpenAiChat] {
            let e = body(family, false, &line).unwrap_err();
            assert_eq!(e.0, "invalid_request", "{family:?} {line}: {e:?}");
            assert!(
                e.1.contains("body.messages[1]") && e.1.contains(&format!("member `{key}`")),
                "{family:?} {line}: {e:?}"
            );
        }
    }
    let once = format!(
        r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"a","cache_control":{{"t":1}}}}],"name":"x"}},{{"role":"assistant","content":null,"tool_calls":[{call}}}]}}]}}"#
    );
    for family in [Family::GptOss, Family::OpenAiChat] {
        let b = body(family, false, &once).unwrap();
        assert_eq!(b["messages"][0]["name"], "x", "{family:?}: {b}");
    }
    // Inside the parameters and the schema, as written (OpenAI's own rule), byte for byte.
    let parameters =
        r#"{"type":"object","properties":{"x":{"type":"string"},"x":{"type":"number"}}}"#;
    let schema = r#"{"type":"object","type":"array"}"#;
    let good = with(&format!(
        r#""tools":[{{"type":"function","function":{{"name":"f","parameters":{parameters}}}}}],"response_format":{{"type":"json_schema","json_schema":{{"name":"a","schema":{schema}}}}}"#
    ));
    for family in [Family::GptOss, Family::OpenAiChat] {
        let b = body_text(family, false, &good).unwrap();
        assert!(
            b.contains(parameters) && b.contains(schema),
            "{family:?}: {b}"
        );
    }
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

/// Every line of the model table that Bedrock can batch has a golden pair for its body shape
/// (its `golden` stem: `<stem>.expected-input.json` from requests, `<stem>.jsonl.out` →
/// `<stem>.expected-output.json`), and so does every `native` family it names; the stems that
/// are not a family's own are converted here with the first model that names them, so the
/// model's own settings (Nova 2's reasoning) are what the golden holds.
#[test]
fn every_model_in_the_table_has_a_golden_pair() {
    use bedrock_batch::record::ModelTable;
    let table = ModelTable::builtin();
    let mut stems: Vec<(String, Family, String)> = Vec::new();
    for e in table.entries() {
        let Some(family) = e.family else { continue };
        for (stem, family) in [(e.golden.clone(), family)]
            .into_iter()
            .chain(e.native.map(|n| (n.name().to_owned(), n)))
        {
            if !stems.iter().any(|(s, _, _)| *s == stem) {
                stems.push((stem, family, e.id.clone()));
            }
        }
    }
    assert!(stems.len() >= 10, "{stems:?}");
    for (stem, family, model) in &stems {
        let answers = match stem.as_str() {
            // Claude's answers have their own folder (from_bedrock.rs holds them to it).
            "anthropic" => [
                "bedrock-output/claude.jsonl.out".to_owned(),
                "bedrock-output/claude.expected-output.jsonl".to_owned(),
            ],
            _ => [
                format!("families/{stem}.jsonl.out"),
                format!("families/{stem}.expected-output.json"),
            ],
        };
        for file in [format!("families/{stem}.expected-input.json")]
            .iter()
            .chain(&answers)
        {
            let blessing = std::env::var_os("BEDROCK_BATCH_BLESS").is_some();
            assert!(
                blessing || fixture(file).exists(),
                "{model}: fixtures/{file} is missing"
            );
        }
        if Family::from_name(stem).is_some() {
            continue; // a family's own goldens: the tests above
        }
        let requests =
            std::fs::read_to_string(fixture(&format!("families/{stem}.requests.jsonl"))).unwrap();
        let mut opts = LineOptions::new(*family);
        opts.map = bedrock_batch::record::MapOptions::new(*family, model);
        opts.endpoint = None;
        check(
            &format!("{stem}.expected-input.json"),
            inputs_with(&opts, &requests),
        );
        let out = std::fs::read_to_string(fixture(&format!("families/{stem}.jsonl.out"))).unwrap();
        check(
            &format!("{stem}.expected-output.json"),
            outputs(*family, &out),
        );
    }
}

/// Records read as the wrong family are refused, never written as empty successes: an OpenAI
/// chat answer read as a Converse one (records written with `--family openai-chat`, read back
/// without it), and an answer with no member the family knows.
#[test]
fn an_answer_of_another_family_is_refused_not_emptied() {
    use bedrock_batch::record::CompletionContext;
    let ctx = CompletionContext {
        fallback_id: "x",
        model: "\"m\"",
        created: 1,
        endpoint: Endpoint::ChatCompletions,
    };
    let openai = r#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
    let claude = r#"{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
    let llama = r#"{"generation":"Hi","prompt_token_count":3,"generation_token_count":1,"stop_reason":"stop"}"#;
    let mistral = r#"{"outputs":[{"text":"Hi","stop_reason":"stop"}]}"#;
    for (family, answer) in [
        (Family::Converse, openai),
        (Family::Nova, openai),
        (Family::Nova, r#"{"foo":1}"#),
        (Family::Llama, claude),
        (Family::Llama, mistral),
        (Family::Llama, r#"{}"#),
        (Family::MistralText, claude),
        (Family::MistralText, llama),
        (Family::MistralText, r#"{"outputs":null}"#),
        (Family::Anthropic, llama),
        (Family::Anthropic, mistral),
        (Family::Anthropic, openai),
        (Family::Anthropic, r#"{}"#),
        (Family::MistralChat, claude),
        (
            Family::OpenAiChat,
            r#"{"output":{"message":{"content":[{"text":"Hi"}]}},"stopReason":"end_turn"}"#,
        ),
    ] {
        let raw = serde_json::from_str(answer).unwrap();
        let mut out = Vec::new();
        let got = family.write_completion(raw, &ctx, &mut out);
        assert!(
            got.is_err(),
            "{family}: {answer} -> {}",
            String::from_utf8_lossy(&out)
        );
    }
    // An answer with only a stop reason (a filtered or empty answer) is still an answer.
    for (family, answer) in [
        (Family::Nova, r#"{"stopReason":"content_filtered"}"#),
        (
            Family::Anthropic,
            r#"{"content":null,"stop_reason":"refusal"}"#,
        ),
        (
            Family::Anthropic,
            r#"{"content":[],"stop_reason":"end_turn"}"#,
        ),
        (
            Family::Llama,
            r#"{"generation":null,"stop_reason":"length"}"#,
        ),
        (Family::Llama, r#"{"generation":""}"#),
        (
            Family::MistralText,
            r#"{"outputs":[{"text":null,"stop_reason":"length"}]}"#,
        ),
    ] {
        let raw = serde_json::from_str(answer).unwrap();
        let got = family.write_completion(raw, &ctx, &mut Vec::new());
        assert!(got.is_ok(), "{family}: {answer}: {got:?}");
    }
}

/// `--family openai-chat` passes images as written, so only inline base64 images of a format
/// the models read, and only for a model the table says takes images.
#[test]
fn openai_chat_images_are_base64_data_for_models_that_take_them() {
    let body = |model: &str, url: &str| {
        let line = format!(
            r#"{{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":[{{"type":"text","text":"what is it?"}},{{"type":"image_url","image_url":{{"url":"{url}"}}}}]}}]}}}}"#
        );
        let mut opts = LineOptions::new(Family::OpenAiChat);
        opts.map = bedrock_batch::record::MapOptions::new(Family::OpenAiChat, model);
        let mut out = Vec::new();
        convert_line(line.as_bytes(), 1, &opts, &mut out)
            .map(|_| ())
            .map_err(|r| r.reject.message)
    };
    let vl = "qwen.qwen3-vl-235b-a22b";
    assert_eq!(body(vl, "data:image/png;base64,iVBORw0KGgo="), Ok(()));
    for (url, says) in [
        ("https://example.com/a.png", "base64 data: URLs only"),
        (
            "data:image/svg+xml;base64,PHN2Zz4=",
            "png, jpeg, gif or webp",
        ),
        ("data:image/png;base64,A", "not base64"),
    ] {
        let e = body(vl, url).unwrap_err();
        assert!(
            e.contains(says) && e.contains("image_url.url"),
            "{url}: {e}"
        );
    }
    let e = body("qwen.qwen3-32b-v1:0", "data:image/png;base64,iVBORw0KGgo=").unwrap_err();
    assert!(e.contains("takes text only"), "{e}");
}

/// At Nova 2's reasoning effort high, a request's own max tokens is dropped when asked — and
/// only dropped: not also counted as clamped, and not read (so not refused) either.
#[test]
fn nova_2_at_effort_high_drops_sampling_settings_once() {
    for max in ["99999", "-5", "\"lots\""] {
        let line = format!(
            r#"{{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"x"}}],"reasoning_effort":"high","max_completion_tokens":{max},"temperature":"hot"}}}}"#
        );
        let mut opts = LineOptions::new(Family::Nova);
        opts.map =
            bedrock_batch::record::MapOptions::new(Family::Nova, "global.amazon.nova-2-lite-v1:0");
        opts.map.drop_unsupported = true;
        let (mut out, mut notes) = (Vec::new(), bedrock_batch::record::Notes::default());
        bedrock_batch::record::convert_line_noted(line.as_bytes(), 1, &opts, &mut notes, &mut out)
            .unwrap_or_else(|r| panic!("{max}: {}", r.reject.message));
        assert!(notes.clamped.is_empty(), "{max}: {notes:?}");
        let mut dropped = notes.dropped.clone();
        dropped.sort();
        assert_eq!(dropped, ["max_completion_tokens", "temperature"], "{max}");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["modelInput"]["inferenceConfig"],
            json!({"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "high"}})
        );
    }
}

/// A key holding half a surrogate pair (`"\ud800"`) is no Unicode text: refused, saying so,
/// wherever it sits in the messages and whichever reader reads the line (the scanner took it
/// as an unknown member of a message or a text part, where serde refused it).
#[test]
fn a_key_holding_a_lone_surrogate_is_refused_by_every_reader() {
    let image = r#"{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}"#;
    for (message, at) in [
        (
            r#"{"role":"user","content":"a","\ud800":1}"#.to_owned(),
            "body",
        ),
        (
            r#"{"role":"user","content":"a","x\udc00y":1}"#.to_owned(),
            "body",
        ),
        (
            r#"{"role":"user","content":[{"type":"text","text":"a","\ud800":1}]}"#.to_owned(),
            "body.messages[0].content",
        ),
        (
            format!(
                r#"{{"role":"user","content":[{image},{{"type":"text","text":"a","\ud800":1}}]}}"#
            ),
            "body.messages[0].content",
        ),
    ] {
        let line = format!(r#"{{"messages":[{message}]}}"#);
        for family in [Family::Anthropic, Family::GptOss, Family::Nova] {
            let e = body(family, false, &line).unwrap_err();
            assert_eq!(e.0, "invalid_request", "{family:?} {line}: {e:?}");
            assert!(
                e.1.starts_with(at) && e.1.contains("half a UTF-16 surrogate pair"),
                "{family:?} {line}: {e:?}"
            );
        }
    }
    // A real U+FFFD in a key is text like any other: a member of a part read past, and a
    // message's member refused by its name (or dropped), as any unknown one is.
    let line = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a","\ufffd":1}],"\ufffd":2}]}"#;
    for family in [Family::Anthropic, Family::Nova] {
        let e = body(family, false, line).unwrap_err();
        assert_eq!(e.0, "unsupported_parameter", "{family:?}: {e:?}");
        assert!(
            e.1.starts_with("body.messages[0].\u{FFFD}: "),
            "{family:?}: {e:?}"
        );
        body(family, true, line).unwrap();
    }
}

/// A system, developer, user or tool message without content (absent or null) is refused —
/// as OpenAI refuses it — by every family that reads the messages: read as nothing, it vanished
/// from the conversation. A misspelt `content` is named first; dropped, the message is still
/// refused for what it lacks.
#[test]
fn a_message_without_content_is_refused_not_left_out() {
    let families = MESSAGE_READERS;
    for message in [
        r#"{"role":"system"}"#,
        r#"{"role":"developer","content":null}"#,
        r#"{"role":"user"}"#,
        r#"{"role":"user","content":null,"name":null}"#,
    ] {
        let line = format!(
            r#"{{"messages":[{{"role":"user","content":"q"}},{message},{{"role":"user","content":"again"}}]}}"#
        );
        for family in families {
            for drop in [false, true] {
                let e = body(family, drop, &line).unwrap_err();
                assert_eq!(e.0, "invalid_request", "{family:?} {line}: {e:?}");
                assert!(
                    e.1.starts_with("body.messages[1].content: missing"),
                    "{family:?} {line}: {e:?}"
                );
            }
        }
    }
    let misspelt =
        r#"{"messages":[{"role":"system","contnet":"be terse"},{"role":"user","content":"q"}]}"#;
    for family in families {
        let e = body(family, false, misspelt).unwrap_err();
        assert!(
            e.1.starts_with("body.messages[0].contnet: not supported"),
            "{family:?}: {e:?}"
        );
        let e = body(family, true, misspelt).unwrap_err();
        assert!(
            e.1.starts_with("body.messages[0].content: missing"),
            "{family:?}: {e:?}"
        );
    }
    // An empty text is content: left out as before (Claude refuses empty turns).
    let empty = r#"{"messages":[{"role":"system","content":""},{"role":"user","content":"q"}]}"#;
    for family in families {
        body(family, false, empty).unwrap_or_else(|e| panic!("{family:?}: {e:?}"));
    }
}

/// A message member beside `role`, `content`, `tool_calls` and `tool_call_id` that holds
/// something — OpenAI's `name`, `refusal`, `audio`, the deprecated `function_call`, a misspelt
/// `content` — is refused naming it, or dropped and counted with `--drop-unsupported`, by every
/// family that reads the messages member by member: read past unnamed, a misspelt system
/// `content` sent the request without its system prompt, and a `function_call` turn vanished
/// (its neighbours merged). Members that say nothing, as in a reply replayed as written, pass;
/// the families that send the messages as written send them too.
#[test]
fn a_message_member_no_family_carries_is_refused_by_name_or_dropped_and_counted() {
    let by_name = [
        (
            r#"{"role":"system","content":"be","contnet":"terse"}"#,
            "contnet",
        ),
        (r#"{"role":"user","content":"hi","name":"bob"}"#, "name"),
        (
            r#"{"role":"user","content":"hi","n\u0061me":"bob"}"#,
            "name",
        ),
        (
            r#"{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}}"#,
            "function_call",
        ),
        (
            r#"{"role":"assistant","content":"no","refusal":"I won't"}"#,
            "refusal",
        ),
        (
            r#"{"role":"assistant","content":"a","audio":{"id":"au_1"}}"#,
            "audio",
        ),
        (r#"{"role":"user","content":"hi","x":[0]}"#, "x"),
        (r#"{"role":"user","content":"hi","x":0}"#, "x"),
        (r#"{"role":"user","content":"hi","x":false}"#, "x"),
        (r#"{"role":"user","content":"hi","x":{ "a" :1}}"#, "x"),
        (r#"{"role":"user","content":"hi","x":" "}"#, "x"),
        // Read by name, but never on this role: calls on a user or system message, a call id
        // on any but a tool message (Llama and Converse, which refuse tool calling, sent the
        // line without them).
        (
            r#"{"role":"user","content":"hi","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]}"#,
            "tool_calls",
        ),
        (
            r#"{"role":"system","content":"s","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]}"#,
            "tool_calls",
        ),
        (
            r#"{"role":"user","content":"hi","tool_call_id":"t"}"#,
            "tool_call_id",
        ),
        (
            r#"{"role":"assistant","content":"a","tool_call_id":5}"#,
            "tool_call_id",
        ),
    ];
    let families = MESSAGE_READERS;
    for (message, name) in by_name {
        let line = format!(
            r#"{{"messages":[{{"role":"user","content":"q"}},{message},{{"role":"user","content":"again"}}]}}"#
        );
        for family in families {
            let e = body(family, false, &line).unwrap_err();
            assert_eq!(e.0, "unsupported_parameter", "{family:?} {line}: {e:?}");
            assert!(
                e.1.starts_with(&format!("body.messages[1].{name}: not supported by ")),
                "{family:?} {line}: {e:?}"
            );
            assert!(e.1.contains("--drop-unsupported"), "{family:?}: {e:?}");
            assert_eq!(
                dropped(family, &line),
                vec![format!("messages[].{name}")],
                "{family:?} {line}"
            );
        }
        // Sent as written, the member goes with its message.
        let b = body_text(Family::GptOss, false, &line).unwrap();
        assert!(b.contains(message), "{b}");
    }
    // Read by serde (an image part the scanner leaves to it): the same rule.
    let image = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"text","text":"hi"}],"name":"bob"}]}"#;
    for family in [Family::Anthropic, Family::Nova, Family::Converse] {
        let e = body(family, false, image).unwrap_err();
        assert!(
            e.1.starts_with("body.messages[0].name: "),
            "{family:?}: {e:?}"
        );
        body(family, true, image).unwrap();
    }
    // A reply replayed as written says nothing beside its content and calls.
    let replayed = r#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a","refusal":null,"annotations":[],"audio":null,"function_call":null,"name":"","x":{ },"y":[ ],"tool_call_id":null},{"role":"user","content":"again","tool_calls":[],"tool_call_id":""}]}"#;
    for family in families {
        body(family, false, replayed).unwrap_or_else(|e| panic!("{family:?}: {e:?}"));
    }
    // The first member at fault is named; dropped, each is counted.
    let two = r#"{"messages":[{"role":"user","content":"q","name":"a"},{"role":"user","content":"r","name":"b","refusal":"c"}]}"#;
    let e = body(Family::Anthropic, false, two).unwrap_err();
    assert!(e.1.starts_with("body.messages[0].name: "), "{e:?}");
    let mut names = dropped(Family::Anthropic, two);
    names.sort();
    assert_eq!(
        names,
        ["messages[].name", "messages[].name", "messages[].refusal"]
    );
}

/// A prompt-template family refuses tool turns saying that no batch job runs tool calling, and
/// images saying where they go: each reject gives the advice that fits it.
#[test]
fn template_families_refuse_tool_turns_and_images_with_advice_that_fits() {
    let tools = r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}]}"#;
    let image = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}"#;
    for family in [Family::Llama, Family::MistralText] {
        let e = body(family, false, tools).unwrap_err();
        assert_eq!(e.0, "unsupported_parameter", "{family:?}: {e:?}");
        assert!(
            e.1.contains("tool calling in Converse jobs"),
            "{family:?}: {e:?}"
        );
        assert!(!e.1.contains("takes images"), "{family:?}: {e:?}");
    }
    let e = body(Family::Llama, false, image).unwrap_err();
    assert!(
        e.1.contains("--invocation-type converse, takes them"),
        "{e:?}"
    );
}
