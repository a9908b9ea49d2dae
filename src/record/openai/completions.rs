//! Legacy `/v1/completions` request bodies (`prompt`), read into the chat request every family
//! writes: the prompt is one user turn. The text-prompt families (Llama, Mistral's text models)
//! take the prompt as it is, with no chat template around it (see
//! [`super::ChatRequest::prompt`]).
//!
//! One prompt per line: several prompts (or token arrays) would give several results for one
//! `custom_id`, so they are refused with that reason, as are `suffix`, `echo` and `best_of` above
//! one, which no Bedrock model does.

use crate::record::json::{self, elements, expect, whole_number, Arr, Kind, Obj};
use crate::record::{MapOptions, Notes, Raw, Reject, RejectCode};

use super::members::{Members, Sorting, Translated};

/// Members copied under the same name (the chat path reads and checks them).
const SAME_NAME: &[&str] = &[
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
];

/// Chat completions members a completions body does not have: refused by name (or dropped).
const CHAT_ONLY: &[&str] = &[
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "max_completion_tokens",
];

/// How the other members are sorted.
const SORTING: Sorting<'static> = Sorting {
    same_name: SAME_NAME,
    ignored: IGNORED,
    chat_only: CHAT_ONLY,
    why: "a chat completions member; a completions line has only its prompt and sampling settings",
};

/// Members that describe the call.
const IGNORED: &[&str] = &["model", "prompt", "stream", "stream_options", "user"];

/// Rewrites a `/v1/completions` body as a chat body with the prompt as its one user message.
pub(crate) fn to_chat<'a>(
    members: Members<'a>,
    opts: &MapOptions,
    notes: &mut Notes,
) -> Result<Translated<'a>, Reject> {
    let mut t = Translated::new(&members);
    let prompt = prompt(members.get("prompt"))?;
    let refuse = |why: String| Err(Reject::new(RejectCode::UnsupportedParameter, why));
    if let Some(suffix) = members.get("suffix") {
        if suffix.get() != "\"\"" {
            return refuse(
                "body.suffix: no Bedrock model writes text to fit before a suffix".into(),
            );
        }
    }
    if let Some(echo) = members.get("echo") {
        if expect(echo, Kind::Bool, "body.echo")?.get() == "true" {
            return refuse(
                "body.echo: a Bedrock model does not repeat the prompt in its answer".into(),
            );
        }
    }
    if let Some(best_of) = members.get("best_of") {
        if whole_number(best_of.get()) != Some(1) {
            return refuse(format!(
                "body.best_of: {}: a Bedrock batch record gives one answer (best_of 1)",
                best_of.get()
            ));
        }
    }
    let mut out = Vec::with_capacity(members.values_len() + 64);
    let mut o = Obj::open(&mut out);
    if let Some(model) = members.get("model") {
        o.raw("model", model.get());
    }
    {
        let mut a = Arr::open(o.key("messages"));
        let mut m = Obj::open(a.next());
        m.raw("role", "\"user\"");
        m.raw("content", prompt.get());
        m.close();
        a.close();
    }
    for (key, value) in &members.0 {
        match key.as_ref() {
            _ if value.get() == "null" => {}
            "suffix" | "echo" | "best_of" => {}
            name => SORTING.member(&mut o, name, *value, opts, notes)?,
        }
    }
    o.close();
    t.set_body(out);
    t.renames.extend([
        ("body.messages[0].content".into(), "body.prompt".into()),
        ("body.messages[0]".into(), "body.prompt".into()),
        ("body.messages".into(), "body.prompt".into()),
    ]);
    Ok(t)
}

/// The one prompt of the line: a string, or an array of one string.
fn prompt(raw: Option<Raw<'_>>) -> Result<Raw<'_>, Reject> {
    let Some(raw) = raw else {
        return Err(Reject::invalid("body.prompt: missing"));
    };
    let one = match Kind::of(raw) {
        Kind::String => raw,
        Kind::Array => match elements(raw, "body.prompt")?.as_slice() {
            [one] if Kind::of(*one) == Kind::String => *one,
            [] => return Err(Reject::invalid("body.prompt: an empty array")),
            list if list.iter().all(|p| Kind::of(*p) == Kind::String) => {
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    format!("body.prompt: {} prompts in one line would give as many answers for one custom_id; write one line per prompt", list.len()),
                ))
            }
            _ => {
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    "body.prompt: token arrays are OpenAI's tokenizer's; Bedrock models take text",
                ))
            }
        },
        other => {
            return Err(Reject::invalid(format!(
                "body.prompt: expected a string, found {}",
                other.name()
            )))
        }
    };
    // (By its literal: decoding a long prompt only to see whether it is empty showed in profiles.)
    if json::is_empty_string(one) {
        return Err(Reject::invalid("body.prompt: empty"));
    }
    Ok(one)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<serde_json::Value, Reject> {
        let raw: Raw<'_> = serde_json::from_str(body).unwrap();
        let opts = MapOptions::new(crate::record::Family::Anthropic, "");
        let t = to_chat(Members::of(raw, "body")?, &opts, &mut Notes::default())?;
        Ok(serde_json::from_str(&t.body).unwrap())
    }

    #[test]
    fn the_prompt_is_one_user_turn() {
        let c = chat(r#"{"model":"m","prompt":["Once upon"],"max_tokens":9,"stop":"\n","user":"u","echo":false,"suffix":null}"#).unwrap();
        assert_eq!(
            c,
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"Once upon"}],"max_tokens":9,"stop":"\n"})
        );
    }

    #[test]
    fn what_no_bedrock_model_does_is_refused() {
        for (body, says) in [
            (r#"{"prompt":["a","b"]}"#, "2 prompts"),
            (r#"{"prompt":[1,2]}"#, "token arrays"),
            (r#"{"prompt":"a","suffix":"z"}"#, "body.suffix"),
            (r#"{"prompt":"a","echo":true}"#, "body.echo"),
            (r#"{"prompt":"a","best_of":3}"#, "body.best_of"),
            (r#"{"max_tokens":3}"#, "body.prompt: missing"),
            (r#"{"prompt":""}"#, "body.prompt: empty"),
            (
                r#"{"prompt":"a","echo":1}"#,
                "body.echo: expected a boolean",
            ),
            (
                r#"{"prompt":"a","tools":[]}"#,
                "body.tools: a chat completions member",
            ),
            (
                r#"{"prompt":"a","messages":[]}"#,
                "body.messages: a chat completions member",
            ),
        ] {
            let e = chat(body).unwrap_err();
            assert!(e.message.contains(says), "{body}: {}", e.message);
        }
    }
}
