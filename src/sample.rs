//! Synthetic but realistic OpenAI batch input, for benchmarks and load tests.
//!
//! Lines average about 1 KB: a system prompt, a user message of prose with JSON escapes (`\n`,
//! `\"`, `\u00e9`) and non-ASCII text, and now and then a tool round trip. Output is deterministic
//! for a given seed.
//!
//! ```
//! let mut buf = Vec::new();
//! bedrock_batch::sample::write_chat_lines(&mut buf, 10, 7).unwrap();
//! assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 10);
//! ```

use std::io::{self, Write};

const WORDS: &[&str] = &[
    "the",
    "batch",
    "model",
    "résumé",
    "naïve",
    "data",
    "stream",
    "日本語",
    "テキスト",
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
    "throughput",
    "Ελληνικά",
    "record",
    "order",
    "deliver",
    "analysis",
    "コード",
    "pipeline",
    "weather",
    "forecast",
    "straße",
];

/// A small deterministic generator (xorshift64*), so samples need no extra dependency; also
/// the benchmark programs' (`examples/throughput.rs`). Seed it with any odd number.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn prose(rng: &mut Rng, out: &mut String, bytes: usize) {
    while out.len() < bytes {
        match rng.below(40) {
            0 => out.push_str("\\n"),
            1 => out.push_str("\\\"quoted\\\" "),
            2 => out.push_str("caf\\u00e9 "),
            3 => out.push_str("\\tcol "),
            _ => {
                out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
                out.push(' ');
            }
        }
    }
}

/// Writes one chat line for request number `i`.
pub fn chat_line(rng_seed: u64, i: u64) -> String {
    let mut rng = Rng(rng_seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut user = String::with_capacity(900);
    let len = 550 + rng.below(400) as usize;
    prose(&mut rng, &mut user, len);
    let mut line = String::with_capacity(1200);
    line.push_str(&format!(
        "{{\"custom_id\":\"request-{i}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"system\",\"content\":\"You are a helpful assistant. Answer briefly and cite the record id.\"}},{{\"role\":\"user\",\"content\":\"{user}\"}}"
    ));
    if rng.below(8) == 0 {
        line.push_str(",{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"arguments\":\"{\\\"city\\\":\\\"Zürich\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"12 °C, cloudy\"}");
    }
    line.push_str(&format!(
        "],\"max_tokens\":{},\"temperature\":0.{}}}}}",
        256 + rng.below(768),
        rng.below(10)
    ));
    line
}

/// One Bedrock batch output line (about 2 KB) for request number `i`: the Claude record of
/// [`chat_line`] echoed as `modelInput`, and a Claude `modelOutput` (one in eight a tool call,
/// one in fifty an error record instead).
pub fn bedrock_output_line(rng_seed: u64, i: u64) -> String {
    let request = chat_line(rng_seed, i);
    let mut record = Vec::new();
    let opts = crate::record::LineOptions {
        record_id: crate::record::RecordIdStyle::LineNumber {
            generation: crate::record::RecordTag::of("sample"),
            input: None,
        },
        ..crate::record::LineOptions::new(crate::record::Family::Anthropic)
    };
    crate::record::convert_line(request.as_bytes(), i + 1, &opts, &mut record)
        .expect("samples convert");
    record.truncate(record.len() - 2); // the closing brace and the newline
    let mut line = String::from_utf8(record).expect("UTF-8");
    let mut rng = Rng(rng_seed.rotate_left(17) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    if rng.below(50) == 0 {
        line.push_str(r#","error":{"errorCode":400,"errorMessage":"Malformed input request, please reformat your input and try again."}}"#);
        return line;
    }
    let mut text = String::with_capacity(900);
    let len = 600 + rng.below(400) as usize;
    prose(&mut rng, &mut text, len);
    let content = if rng.below(8) == 0 {
        format!(
            r#"[{{"type":"text","text":"Checking."}},{{"type":"tool_use","id":"toolu_bdrk_{i}","name":"lookup","input":{{"city":"Zürich","days":3}}}}]"#
        )
    } else {
        format!(r#"[{{"type":"text","text":"{text}"}}]"#)
    };
    line.push_str(&format!(
        r#","modelOutput":{{"id":"msg_bdrk_{i:08}","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":{content},"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":{},"output_tokens":{}}}}}}}"#,
        200 + rng.below(300),
        100 + rng.below(400)
    ));
    line
}

/// Writes `lines` chat lines (each ending in `\n`) to `out`.
pub fn write_chat_lines(out: &mut impl Write, lines: u64, seed: u64) -> io::Result<u64> {
    let mut bytes = 0;
    for i in 0..lines {
        let line = chat_line(seed, i);
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        bytes += line.len() as u64 + 1;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{convert_line, Family, LineOptions};

    #[test]
    fn bedrock_output_samples_are_valid_and_about_two_kilobytes() {
        let mut total = 0;
        for i in 0..200 {
            let line = bedrock_output_line(1, i);
            total += line.len();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                v["recordId"],
                crate::record::line_record_id(None, i + 1, crate::record::RecordTag::of("sample"))
            );
            assert!(v.get("modelOutput").is_some() || v.get("error").is_some());
        }
        let avg = total / 200;
        assert!((1500..2800).contains(&avg), "average line {avg} bytes");
    }

    #[test]
    fn samples_are_valid_and_about_a_kilobyte() {
        let opts = LineOptions::new(Family::Anthropic);
        let mut total = 0;
        for i in 0..200 {
            let line = chat_line(1, i);
            total += line.len();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["custom_id"], format!("request-{i}"));
            let mut out = Vec::new();
            convert_line(line.as_bytes(), i + 1, &opts, &mut out).unwrap();
        }
        let avg = total / 200;
        assert!((700..1400).contains(&avg), "average line {avg} bytes");
    }
}
