//! Throughput of both directions: the per-line transforms on one core, and the whole pipelines
//! over in-memory multi-MB inputs.

use std::hint::black_box;

use bedrock_batch::io::{BytesSource, Discard};
use bedrock_batch::pipeline::{convert_to_bedrock, BedrockOutput, ToBedrockOptions};
use bedrock_batch::record::{convert_line, Family, LineOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The allocator the binary ships with, so the figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn lines(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| bedrock_batch::sample::chat_line(1, i))
        .collect()
}

fn per_line(c: &mut Criterion) {
    let lines = lines(2000);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let opts = LineOptions::new(Family::Anthropic);
    let mut out = Vec::with_capacity(bytes * 2);
    let mut g = c.benchmark_group("to_bedrock_line");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("claude_1k_chat_lines", |b| {
        b.iter(|| {
            out.clear();
            for (i, l) in lines.iter().enumerate() {
                let _ = black_box(convert_line(l.as_bytes(), i as u64 + 1, &opts, &mut out));
            }
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut input = Vec::new();
    bedrock_batch::sample::write_chat_lines(&mut input, 32_000, 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("to_bedrock_pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(input.len() as u64));
    for threads in [1, 2] {
        let mut opts = ToBedrockOptions::new(MODEL).unwrap();
        opts.threads = Some(threads);
        g.bench_function(
            format!("claude_{}MB_{threads}_threads", input.len() >> 20),
            |b| {
                b.iter(|| {
                    let out = BedrockOutput::Stream {
                        records: Box::new(Discard::default()),
                        rejects: Box::new(Discard::default()),
                    };
                    rt.block_on(convert_to_bedrock(
                        BytesSource::new(input.clone()),
                        out,
                        &opts,
                    ))
                    .unwrap()
                })
            },
        );
    }
    g.finish();
}

fn from_bedrock_line(c: &mut Criterion) {
    use bedrock_batch::record::bedrock_output::{
        parse_output_line, write_openai_line, LineIds, ResponseOptions,
    };
    let lines: Vec<String> = (0..1000)
        .map(|i| bedrock_batch::sample::bedrock_output_line(1, i))
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let opts = ResponseOptions {
        family: Family::Anthropic,
        model: "\"gpt-4o-mini\"".into(),
        created: 1,
        endpoint: bedrock_batch::record::Endpoint::ChatCompletions,
    };
    let (mut ok, mut err) = (Vec::with_capacity(bytes), Vec::new());
    let mut g = c.benchmark_group("from_bedrock_line");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("claude_2k_output_lines", |b| {
        b.iter(|| {
            ok.clear();
            err.clear();
            for l in &lines {
                let parsed = parse_output_line(l.as_bytes(), Family::Anthropic).unwrap();
                let id = parsed.record_id.get();
                let ids = LineIds::new("job", id);
                let _ = black_box(write_openai_line(
                    parsed, id, &ids, &opts, &mut ok, &mut err,
                ));
            }
        })
    });
    g.finish();
}

fn from_bedrock_pipeline(c: &mut Criterion) {
    use bedrock_batch::pipeline::{convert_from_bedrock, FromBedrockOptions, OutputFile};
    let mut input = Vec::new();
    for i in 0..16_000 {
        input.extend_from_slice(bedrock_batch::sample::bedrock_output_line(1, i).as_bytes());
        input.push(b'\n');
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("from_bedrock_pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(input.len() as u64));
    for threads in [1, 2] {
        let mut opts = FromBedrockOptions::new(Family::Anthropic, "gpt-4o-mini", 1);
        opts.threads = Some(threads);
        g.bench_function(
            format!("claude_{}MB_{threads}_threads", input.len() >> 20),
            |b| {
                b.iter(|| {
                    let files = vec![OutputFile {
                        name: "bench".into(),
                        source: Box::new(BytesSource::new(input.clone())),
                    }];
                    let ok = Box::new(Discard::default());
                    let err = Box::new(Discard::default());
                    rt.block_on(convert_from_bedrock(files, None, ok, err, &opts))
                        .unwrap()
                })
            },
        );
    }
    g.finish();
}

/// The same chat lines (those without tool round trips, which some families refuse) through
/// every family's request mapping, one core.
fn families_to_bedrock(c: &mut Criterion) {
    let lines: Vec<String> = (0..4000)
        .map(|i| bedrock_batch::sample::chat_line(1, i))
        .filter(|l| !l.contains("tool_calls"))
        .take(2000)
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut out = Vec::with_capacity(bytes * 2);
    let mut g = c.benchmark_group("families_to_bedrock_line");
    g.throughput(Throughput::Bytes(bytes as u64));
    for &family in Family::ALL {
        if family == Family::TitanEmbed {
            continue;
        }
        let opts = LineOptions::new(family);
        // Every line must convert, or the figure would time rejections.
        out.clear();
        for (i, l) in lines.iter().enumerate() {
            convert_line(l.as_bytes(), i as u64 + 1, &opts, &mut out)
                .unwrap_or_else(|r| panic!("{family}: {}", r.reject));
        }
        g.bench_function(family.name(), |b| {
            b.iter(|| {
                out.clear();
                for (i, l) in lines.iter().enumerate() {
                    let _ = black_box(convert_line(l.as_bytes(), i as u64 + 1, &opts, &mut out));
                }
            })
        });
    }
    let embeddings: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                r#"{{"custom_id":"e{i}","method":"POST","url":"/v1/embeddings","body":{{"model":"text-embedding-3-small","input":"Record {i}: the quick brown fox jumps over the lazy dog. caf\u00e9 \"quoted\" and a second sentence of ordinary length to embed.","dimensions":512}}}}"#
            )
        })
        .collect();
    let bytes: usize = embeddings.iter().map(|l| l.len() + 1).sum();
    g.throughput(Throughput::Bytes(bytes as u64));
    let opts = LineOptions::new(Family::TitanEmbed);
    g.bench_function("titan-embed", |b| {
        b.iter(|| {
            out.clear();
            for (i, l) in embeddings.iter().enumerate() {
                convert_line(l.as_bytes(), i as u64 + 1, &opts, &mut out).unwrap();
            }
        })
    });
    g.finish();
}

/// A `modelOutput` of `family` answering with `text` (a JSON string literal, ~1 KB).
fn family_output(family: Family, text: &str, i: u64) -> String {
    match family {
        Family::Anthropic => format!(
            r#"{{"id":"msg_{i}","type":"message","role":"assistant","model":"claude","content":[{{"type":"text","text":{text}}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":250,"output_tokens":240}}}}"#
        ),
        Family::Nova | Family::Converse => format!(
            r#"{{"output":{{"message":{{"role":"assistant","content":[{{"text":{text}}}]}}}},"stopReason":"end_turn","usage":{{"inputTokens":250,"outputTokens":240,"totalTokens":490}}}}"#
        ),
        Family::Llama => format!(
            r#"{{"generation":{text},"prompt_token_count":250,"generation_token_count":240,"stop_reason":"stop"}}"#
        ),
        Family::MistralText => format!(r#"{{"outputs":[{{"text":{text},"stop_reason":"stop"}}]}}"#),
        Family::MistralChat | Family::GptOss => format!(
            r#"{{"id":"chatcmpl-{i}","choices":[{{"index":0,"message":{{"role":"assistant","content":{text}}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":250,"completion_tokens":240,"total_tokens":490}}}}"#
        ),
        Family::TitanEmbed => {
            let v: Vec<String> = (0..512)
                .map(|k| {
                    format!(
                        "{:.6}",
                        ((k * 37 + i as usize) % 1000) as f64 / 1000.0 - 0.5
                    )
                })
                .collect();
            format!(
                r#"{{"embedding":[{}],"inputTextTokenCount":24}}"#,
                v.join(",")
            )
        }
        _ => unreachable!("every family is listed"),
    }
}

/// Bedrock output lines of every family (each echoing the same ~1 KB modelInput, as Bedrock
/// does, and answering the same ~1 KB text) back to OpenAI lines, one core.
fn families_from_bedrock(c: &mut Criterion) {
    use bedrock_batch::record::bedrock_output::{
        parse_output_line, write_openai_line, LineIds, ResponseOptions,
    };
    let text = serde_json::to_string(
        &"The answer, with a list:\n1. caf\u{e9} \"one\"\n2. two\n".repeat(16),
    )
    .unwrap();
    let mut g = c.benchmark_group("families_from_bedrock_line");
    for &family in Family::ALL {
        let lines: Vec<String> = (0..1000)
            .map(|i| {
                // Every family answers the same request with the same text, so the figures
                // compare the readers, not the data.
                format!(
                    r#"{{"recordId":"L{i:010}","modelInput":{{"messages":[{{"role":"user","content":[{{"text":{text}}}]}}]}},"modelOutput":{}}}"#,
                    family_output(family, &text, i)
                )
            })
            .collect();
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        let opts = ResponseOptions {
            family,
            model: "\"gpt-4o-mini\"".into(),
            created: 1,
            endpoint: family.endpoints()[0],
        };
        let (mut ok, mut err) = (Vec::with_capacity(bytes), Vec::new());
        g.bench_function(family.name(), |b| {
            b.iter(|| {
                ok.clear();
                err.clear();
                for l in &lines {
                    let parsed = parse_output_line(l.as_bytes(), family).unwrap();
                    let id = parsed.record_id.get();
                    let ids = LineIds::new("job", id);
                    write_openai_line(parsed, id, &ids, &opts, &mut ok, &mut err).unwrap();
                }
            })
        });
    }
    g.finish();
}

/// The JSON readers side by side on one path each (README, "JSON readers"): this crate's
/// validating scanner, serde_json and simd-json, each reading what the converter needs from the
/// same lines, one core. Bedrock → OpenAI: the Nova lines of `families_from_bedrock` (recordId,
/// the answer's text, stop reason, token counts; the echoed modelInput validated and skipped).
/// OpenAI → Bedrock: 2,000 ~1 KB chat lines (custom_id, url, model, messages' roles and
/// contents); for this crate the figure includes writing the Bedrock record, the others only
/// read.
// The readers' structs are only handed to black_box, never read.
#[allow(dead_code)]
fn json_readers(c: &mut Criterion) {
    use bedrock_batch::record::bedrock_output::parse_output_line;
    use serde::Deserialize;
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    #[derive(Deserialize)]
    struct Text<'a> {
        #[serde(borrow)]
        text: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        content: Vec<Text<'a>>,
    }
    #[derive(Deserialize)]
    struct Output<'a> {
        #[serde(borrow)]
        message: Message<'a>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Usage {
        input_tokens: u64,
        output_tokens: u64,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer<'a> {
        #[serde(borrow)]
        output: Output<'a>,
        #[serde(borrow)]
        stop_reason: &'a RawValue,
        usage: Usage,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Line<'a> {
        #[serde(borrow)]
        record_id: &'a RawValue,
        #[serde(borrow)]
        model_output: Answer<'a>,
    }
    // simd-json has no RawValue: strings are read as (unescaped) text.
    #[derive(Deserialize)]
    struct SText<'a> {
        #[serde(borrow)]
        text: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct SMessage<'a> {
        #[serde(borrow)]
        content: Vec<SText<'a>>,
    }
    #[derive(Deserialize)]
    struct SOutput<'a> {
        #[serde(borrow)]
        message: SMessage<'a>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct SAnswer<'a> {
        #[serde(borrow)]
        output: SOutput<'a>,
        #[serde(borrow)]
        stop_reason: Cow<'a, str>,
        usage: Usage,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct SLine<'a> {
        #[serde(borrow)]
        record_id: Cow<'a, str>,
        #[serde(borrow)]
        model_output: SAnswer<'a>,
    }

    let text = serde_json::to_string(
        &"The answer, with a list:\n1. caf\u{e9} \"one\"\n2. two\n".repeat(16),
    )
    .unwrap();
    let out_lines: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"recordId":"L{i:010}","modelInput":{{"messages":[{{"role":"user","content":[{{"text":{text}}}]}}]}},"modelOutput":{}}}"#,
                family_output(Family::Nova, &text, i)
            )
        })
        .collect();
    let bytes: usize = out_lines.iter().map(|l| l.len() + 1).sum();
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut g = c.benchmark_group("json_readers_from_bedrock");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("scanner (this crate, one pass)", |b| {
        b.iter(|| {
            for l in &out_lines {
                black_box(parse_output_line(l.as_bytes(), Family::Nova).unwrap());
            }
        })
    });
    // from_slice: UTF-8 checked as it reads, as the scanner's figure includes checking it.
    g.bench_function("serde_json (borrowed, RawValue)", |b| {
        b.iter(|| {
            for l in &out_lines {
                black_box(serde_json::from_slice::<Line<'_>>(l.as_bytes()).unwrap());
            }
        })
    });
    g.bench_function("simd-json (serde, borrowed)", |b| {
        b.iter(|| {
            for l in &out_lines {
                buf.clear();
                buf.extend_from_slice(l.as_bytes());
                black_box(simd_json::serde::from_slice::<SLine<'_>>(&mut buf).unwrap());
            }
        })
    });
    g.bench_function("simd-json (borrowed value)", |b| {
        b.iter(|| {
            for l in &out_lines {
                buf.clear();
                buf.extend_from_slice(l.as_bytes());
                black_box(simd_json::to_borrowed_value(&mut buf).unwrap());
            }
        })
    });
    g.finish();

    #[derive(Deserialize)]
    struct ChatMessage<'a> {
        #[serde(borrow)]
        role: Cow<'a, str>,
        #[serde(borrow)]
        content: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct ChatBody<'a> {
        #[serde(borrow)]
        model: Cow<'a, str>,
        #[serde(borrow)]
        messages: Vec<ChatMessage<'a>>,
    }
    #[derive(Deserialize)]
    struct ChatLine<'a> {
        #[serde(borrow)]
        custom_id: Cow<'a, str>,
        #[serde(borrow)]
        url: Cow<'a, str>,
        #[serde(borrow)]
        body: ChatBody<'a>,
    }
    #[derive(Deserialize)]
    struct SChatMessage<'a> {
        #[serde(borrow)]
        role: Cow<'a, str>,
        // Read and dropped (simd-json keeps no raw text): a little less work than the others.
        content: serde::de::IgnoredAny,
    }
    #[derive(Deserialize)]
    struct SChatBody<'a> {
        #[serde(borrow)]
        model: Cow<'a, str>,
        #[serde(borrow)]
        messages: Vec<SChatMessage<'a>>,
    }
    #[derive(Deserialize)]
    struct SChatLine<'a> {
        #[serde(borrow)]
        custom_id: Cow<'a, str>,
        #[serde(borrow)]
        url: Cow<'a, str>,
        #[serde(borrow)]
        body: SChatBody<'a>,
    }
    let chat = lines(2000);
    let bytes: usize = chat.iter().map(|l| l.len() + 1).sum();
    let opts = LineOptions::new(Family::Anthropic);
    let mut out = Vec::with_capacity(bytes * 2);
    let mut g = c.benchmark_group("json_readers_to_bedrock");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("scanner (this crate: read and write the record)", |b| {
        b.iter(|| {
            out.clear();
            for (i, l) in chat.iter().enumerate() {
                let _ = black_box(convert_line(l.as_bytes(), i as u64 + 1, &opts, &mut out));
            }
        })
    });
    g.bench_function("scanner (this crate, read only)", |b| {
        b.iter(|| {
            for l in &chat {
                assert!(black_box(bedrock_batch::record::read_chat_line(
                    l.as_bytes()
                )));
            }
        })
    });
    g.bench_function("serde_json (borrowed, read only)", |b| {
        b.iter(|| {
            for l in &chat {
                black_box(serde_json::from_slice::<ChatLine<'_>>(l.as_bytes()).unwrap());
            }
        })
    });
    g.bench_function("simd-json (serde, borrowed, read only)", |b| {
        b.iter(|| {
            for l in &chat {
                buf.clear();
                buf.extend_from_slice(l.as_bytes());
                black_box(simd_json::serde::from_slice::<SChatLine<'_>>(&mut buf).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    per_line,
    pipeline,
    from_bedrock_line,
    from_bedrock_pipeline,
    families_to_bedrock,
    families_from_bedrock,
    json_readers
);
criterion_main!(benches);
