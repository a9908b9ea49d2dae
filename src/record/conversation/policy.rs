//! The refuse-or-drop rule every family applies to request fields its body cannot carry: a
//! reject naming the field, or with `--drop-unsupported`, dropped and counted.

use crate::record::openai::{holds_something, ChatRequest, Message};
use crate::record::{MapOptions, Notes, Reject, RejectCode};

/// Rejects the first field no Bedrock model honours (`seed`, `logprobs`, …) or that this crate does
/// not know, naming it; with `--drop-unsupported`, drops them all and counts them in `notes`.
pub(crate) fn check_unsupported(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    family: &str,
) -> Result<(), Reject> {
    if req.unsupported.is_empty() && req.unknown.is_empty() {
        return Ok(()); // nearly every line
    }
    if let Some(field) = req
        .unsupported
        .first()
        .map(|u| u.0)
        .or(req.unknown.first().map(|u| u.as_ref()))
    {
        if !opts.drop_unsupported {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.{field}: not supported by {family} on Bedrock (use --drop-unsupported to drop it)"),
            ));
        }
    }
    notes
        .dropped
        .extend(req.unsupported.iter().map(|u| u.0.to_owned()));
    notes
        .dropped
        .extend(req.unknown.iter().map(|u| u.to_string()));
    Ok(())
}

/// The members of the messages beside their role, content, tool calls and tool call id
/// ([`crate::record::openai::Message::others`]: `name`, `refusal`, `audio`, the deprecated
/// `function_call`, a misspelt `content`) and those of the four a message's role never reads
/// ([`misplaced`]), which a family that reads the messages member by member has no place for:
/// the first rejected, naming it, or with `--drop-unsupported` all dropped and counted (as
/// `messages[].name`); then a system, developer, user or tool message with no content, refused.
/// Read past unnamed, a misspelt `content` would have sent the turn without its text, and a
/// `function_call` turn or a message without content would have vanished.
pub(crate) fn check_message_members(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    family: &str,
) -> Result<(), Reject> {
    for (i, m) in req.messages.iter().enumerate() {
        let misplaced = misplaced(m);
        // Nearly every message names nothing: then no iterator is built.
        if !m.others.is_empty() || misplaced != [None, None] {
            let named = m.others.iter().map(|name| name.as_ref());
            for name in misplaced.into_iter().flatten().chain(named) {
                if opts.drop_unsupported {
                    notes.dropped.push(format!("messages[].{name}"));
                    continue;
                }
                let instead = match name {
                    "function_call" => "; give the call as tool_calls",
                    _ => "",
                };
                return Err(Reject::new(
                    RejectCode::UnsupportedParameter,
                    format!(
                        "body.messages[{i}].{name}: not supported by {family} on Bedrock{instead} (use --drop-unsupported to drop it)"
                    ),
                ));
            }
        }
        // After the names, so that a misspelt `content` is named as such. OpenAI refuses such
        // a message too; read as nothing, it would vanish unsaid.
        if m.content.is_none()
            && matches!(m.role.as_ref(), "system" | "developer" | "user" | "tool")
        {
            return Err(Reject::invalid(format!(
                "body.messages[{i}].content: missing (a {} message says what it says in its content; null is no content)",
                m.role
            )));
        }
    }
    Ok(())
}

/// The members read by name that `m`'s role never reads: tool calls on any message but an
/// assistant's, a tool call id on any but a tool message's. Read past, calls on a user message
/// would have gone unsent even by a family that refuses tool calling.
fn misplaced(m: &Message<'_>) -> [Option<&'static str>; 2] {
    let calls = m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) && m.role != "assistant";
    let id = m.tool_call_id.is_some_and(holds_something) && m.role != "tool";
    [calls.then_some("tool_calls"), id.then_some("tool_call_id")]
}

/// Fields a family's body has no place for: each present one is rejected with `why`, or, with
/// `--drop-unsupported`, dropped and counted.
pub(crate) fn refuse_fields(
    present: &[(&str, bool)],
    opts: &MapOptions,
    notes: &mut Notes,
    why: &str,
) -> Result<(), Reject> {
    for (field, here) in present {
        if !here {
            continue;
        }
        if !opts.drop_unsupported {
            return Err(Reject::new(
                RejectCode::UnsupportedParameter,
                format!("body.{field}: {why} (use --drop-unsupported to drop it)"),
            ));
        }
        notes.dropped.push((*field).to_owned());
    }
    Ok(())
}
