//! File → file throughput of the release binary, every family, both directions.
//!
//! ```sh
//! cargo build --release && cargo run --release --example throughput -- [--mb 256] [--runs 5]
//!     [--dir /tmp/bedrock-batch-throughput] [--only nova,titan-embed] [--bin target/release/bedrock-batch]
//! ```
//!
//! For each family it writes (once; kept in `--dir` for the next run) an OpenAI input file and a
//! Bedrock output file of about `--mb` MiB, shaped as real batches are: one model per file,
//! requests of 2.5–3.4 KB (a system prompt, a user text with non-ASCII prose), 45% of the lines
//! written the way Python's `json.dumps` writes them (`", "` and `": "` separators, non-ASCII as
//! `\uXXXX` escapes), tools in 30% of the Nova, Mistral-chat and gpt-oss lines; outputs echoing
//! a ~1 KB `modelInput`, 2% of them error records, Titan's answers a 1,024-float embedding. Then
//! it runs `to-bedrock` and `from-bedrock` on them `--runs` times each (file → file, output in
//! the same directory) and prints, per family and direction, the median GB/s (input bytes /
//! wall time; 1 GB = 10^9 bytes) with the slowest and fastest run, and the median peak RSS.
//! One warm-up run per file comes first and is not counted (the first read after writing a
//! file is often slower; the table is about the converter, not the page cache). The previous
//! run's output is removed before each run, untimed: every run writes new files.
//!
//! Each run alternates with a `cat` of the same input into a new file in the same directory:
//! the floor, a read and a write of every byte and nothing else, under the same load. The
//! last column is the converter's median over the copy's, the figure that changes least with
//! how busy the machine is.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bedrock_batch::sample::Rng;
use serde_json::{json, Value};

/// A family as the benchmark runs it: its name, the model id, extra arguments.
struct Family {
    name: &'static str,
    model: &'static str,
    args: &'static [&'static str],
    tools: bool,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "anthropic",
        model: "anthropic.claude-3-haiku-20240307-v1:0",
        args: &[],
        tools: false,
    },
    Family {
        name: "nova",
        model: "amazon.nova-lite-v1:0",
        args: &[],
        tools: true,
    },
    Family {
        name: "llama",
        model: "meta.llama3-1-8b-instruct-v1:0",
        args: &[],
        tools: false,
    },
    Family {
        name: "mistral-text",
        model: "mistral.mistral-7b-instruct-v0:2",
        args: &[],
        tools: false,
    },
    Family {
        name: "mistral-chat",
        model: "mistral.mistral-large-2407-v1:0",
        args: &[],
        tools: true,
    },
    Family {
        name: "gpt-oss",
        model: "openai.gpt-oss-20b-1:0",
        args: &[],
        tools: true,
    },
    Family {
        name: "titan-embed",
        model: "amazon.titan-embed-text-v2:0",
        args: &[],
        tools: false,
    },
    Family {
        name: "converse",
        model: "anthropic.claude-3-haiku-20240307-v1:0",
        args: &["--invocation-type", "converse"],
        tools: false,
    },
];

const WORDS: &[&str] = &[
    "the",
    "batch",
    "model",
    "résumé",
    "naïve",
    "data",
    "stream",
    "日本語",
    "quarterly",
    "report",
    "summarise",
    "customer",
    "ticket",
    "😀",
    "invoice",
    "über",
    "façade",
    "latency",
    "record",
    "order",
    "deliver",
    "analysis",
    "pipeline",
    "weather",
    "forecast",
    "straße",
    "Ελληνικά",
    "\"quoted\"",
    "line\nbreak",
    "tab\there",
];

fn prose(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        s.push(' ');
    }
    s
}

/// `json.dumps` with its defaults: `", "` / `": "` separators, everything outside ASCII as
/// `\uXXXX` (surrogate pairs beyond the BMP).
fn python_dumps(v: &Value) -> String {
    fn string(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    fn value(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => string(s, out),
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    value(x, out);
                }
                out.push(']');
            }
            Value::Object(o) => {
                out.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    string(k, out);
                    out.push_str(": ");
                    value(x, out);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    value(v, &mut out);
    out
}

/// Writes a line whose top-level members are in the order given (as OpenAI's and Bedrock's
/// files have them: `custom_id` / `recordId` first); nested objects in serde_json's order.
fn write_line(
    rng: &mut Rng,
    members: &[(&str, Value)],
    out: &mut impl Write,
) -> std::io::Result<usize> {
    let python = rng.below(100) < 45;
    let (comma, colon) = if python { (", ", ": ") } else { (",", ":") };
    let mut text = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            text.push_str(comma);
        }
        text.push_str(&format!("\"{key}\"{colon}"));
        text.push_str(&if python {
            python_dumps(value)
        } else {
            value.to_string()
        });
    }
    text.push('}');
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(text.len() + 1)
}

/// The top-level members of a request line.
fn envelope(i: u64, url: &str, body: Value) -> Vec<(&'static str, Value)> {
    vec![
        ("custom_id", json!(format!("req-{i}"))),
        ("method", json!("POST")),
        ("url", json!(url)),
        ("body", body),
    ]
}

/// One OpenAI request line for `family`.
fn request(rng: &mut Rng, family: &Family, i: u64) -> Vec<(&'static str, Value)> {
    let size = 2300 + rng.below(900) as usize;
    if family.name == "titan-embed" {
        return envelope(
            i,
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": prose(rng, size)}),
        );
    }
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": prose(rng, 200)},
            {"role": "user", "content": prose(rng, size - 200)}
        ],
        "max_tokens": 512,
        "temperature": 0.7
    });
    if family.tools && rng.below(100) < 30 {
        body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
            "description": "Weather for a city", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"]}}}]);
    }
    envelope(i, "/v1/chat/completions", body)
}

/// The `modelOutput` `family` answers with.
fn answer(rng: &mut Rng, family: &Family) -> Value {
    let text = prose(rng, 400);
    let (p, c) = (700 + rng.below(300), 100 + rng.below(50));
    match family.name {
        "anthropic" => json!({"id": "msg_bdrk_01", "type": "message", "role": "assistant",
            "model": "claude-3-haiku-20240307", "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": p, "output_tokens": c}}),
        "nova" | "converse" => json!({"output": {"message": {"role": "assistant",
            "content": [{"text": text}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": p, "outputTokens": c, "totalTokens": p + c}}),
        "llama" => json!({"generation": text, "prompt_token_count": p,
            "generation_token_count": c, "stop_reason": "stop"}),
        "mistral-text" => json!({"outputs": [{"text": text, "stop_reason": "stop"}]}),
        "mistral-chat" | "gpt-oss" => json!({"id": "chatcmpl-1", "object": "chat.completion",
            "created": 1_700_000_000, "model": family.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}),
        "titan-embed" => {
            let embedding: Vec<f64> = (0..1024)
                .map(|_| (rng.below(2_000_000) as f64 - 1_000_000.0) / 31_250_000.0)
                .collect();
            json!({"embedding": embedding, "inputTextTokenCount": p,
                "embeddingsByType": {"float": embedding}})
        }
        other => unreachable!("{other}"),
    }
}

/// One Bedrock output line for record `i`: a ~1 KB echoed `modelInput`, and the answer or
/// (2%) an error.
fn output_line(rng: &mut Rng, family: &Family, i: u64) -> Vec<(&'static str, Value)> {
    let input = match family.name {
        "titan-embed" => json!({"inputText": prose(rng, 1000), "normalize": true}),
        "llama" | "mistral-text" => json!({"prompt": prose(rng, 1000), "max_gen_len": 512}),
        _ => json!({"messages": [{"role": "user", "content": [{"text": prose(rng, 1000)}]}],
            "inferenceConfig": {"maxTokens": 512}}),
    };
    let mut line = vec![
        ("recordId", json!(format!("req-{i}"))),
        ("modelInput", input),
    ];
    if rng.below(100) < 2 {
        line.push((
            "error",
            json!({"errorCode": 400, "errorMessage": "Malformed input request"}),
        ));
    } else {
        line.push(("modelOutput", answer(rng, family)));
    }
    line
}

/// Writes `path` of about `mb` MiB with `line` unless it is there already.
fn ensure(
    path: &Path,
    mb: u64,
    mut line: impl FnMut(&mut Rng, u64) -> Vec<(&'static str, Value)>,
) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let tmp = path.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    let mut rng = Rng(0x5eed_0000_0000_0001 ^ mb);
    let (mut bytes, mut i) = (0u64, 0u64);
    while bytes < mb << 20 {
        let v = line(&mut rng, i);
        bytes += write_line(&mut rng, &v, &mut out)? as u64;
        i += 1;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, path)
}

/// Runs `command` once: wall seconds and peak RSS in MiB (from `wait4`).
fn time(command: &mut std::process::Command) -> (f64, f64) {
    let started = Instant::now();
    // Reaped by `wait4` below, which is what gives this child's own peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().expect("the command starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to pass for the kernel to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not waited for yet; the pointers are to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) <= 1,
        "{command:?}: exit status {status}"
    );
    (wall, usage.ru_maxrss as f64 / 1024.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut mb, mut runs) = (256u64, 5usize);
    let mut dir = PathBuf::from("/tmp/bedrock-batch-throughput");
    let mut bin = PathBuf::from("target/release/bedrock-batch");
    let mut only: Option<Vec<String>> = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--mb" => mb = value().parse().expect("--mb N"),
            "--runs" => runs = value().parse().expect("--runs N"),
            "--dir" => dir = value().into(),
            "--bin" => bin = value().into(),
            "--only" => only = Some(value().split(',').map(str::to_owned).collect()),
            other => panic!("unknown argument {other}"),
        }
    }
    std::fs::create_dir_all(&dir)?;
    println!("| family | direction | GB/s median | slowest–fastest | peak RSS MiB | input | `cat` GB/s median | median ÷ `cat` |");
    println!("|---|---|---|---|---|---|---|---|");
    for family in FAMILIES {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == family.name))
        {
            continue;
        }
        let requests = dir.join(format!("{}.requests-{mb}.jsonl", family.name));
        let outputs = dir.join(format!("{}.output-{mb}.jsonl.out", family.name));
        ensure(&requests, mb, |rng, i| request(rng, family, i))?;
        ensure(&outputs, mb, |rng, i| output_line(rng, family, i))?;
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let converted = dir.join("out.jsonl");
        let mut to: Vec<String> = vec![
            "to-bedrock".into(),
            s(&requests),
            s(&converted),
            "--model".into(),
            family.model.into(),
            "-q".into(),
        ];
        to.extend(family.args.iter().map(|a| a.to_string()));
        let from_family = if family.name == "converse" {
            "converse"
        } else {
            family.name
        };
        let from: Vec<String> = vec![
            "from-bedrock".into(),
            s(&outputs),
            s(&converted),
            "--errors".into(),
            s(&dir.join("errors.jsonl")),
            "--family".into(),
            from_family.into(),
            "--model".into(),
            family.model.into(),
            "-q".into(),
        ];
        for (direction, input, args) in [
            ("to-bedrock", &requests, &to),
            ("from-bedrock", &outputs, &from),
        ] {
            let bytes = std::fs::metadata(input)?.len() as f64;
            // Each run writes new files, as a batch's conversion does: renaming over the last
            // run's output would add the freeing of its pages to the run's time.
            let clear = || {
                let _ = std::fs::remove_file(&converted);
                let _ = std::fs::remove_file(dir.join("errors.jsonl"));
            };
            let convert = || {
                let mut c = std::process::Command::new(&bin);
                c.args(args).stdout(std::process::Stdio::null());
                c
            };
            let copy = || -> std::io::Result<std::process::Command> {
                let mut c = std::process::Command::new("cat");
                c.arg(input).stdout(std::fs::File::create(&converted)?);
                Ok(c)
            };
            clear();
            time(&mut convert());
            let (mut speeds, mut rss, mut copies) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..runs {
                clear();
                let (wall, _) = time(&mut copy()?);
                copies.push(bytes / wall / 1e9);
                clear();
                let (wall, peak) = time(&mut convert());
                speeds.push(bytes / wall / 1e9);
                rss.push(peak);
            }
            let m = median(&mut speeds);
            let floor = median(&mut copies);
            println!(
                "| {} | {direction} | {m:.2} | {:.2}–{:.2} | {:.0} | {:.0} MB | {floor:.2} | {:.2} |",
                family.name,
                speeds[0],
                speeds[speeds.len() - 1],
                median(&mut rss),
                bytes / 1e6,
                m / floor
            );
        }
        let _ = std::fs::remove_file(&converted);
    }
    Ok(())
}
