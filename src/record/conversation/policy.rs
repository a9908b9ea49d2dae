//! The refuse-or-drop rule every family applies to request fields its body cannot carry: a
//! reject naming the field, or with `--drop-unsupported`, dropped and counted.

use crate::record::openai::ChatRequest;
use crate::record::{MapOptions, Notes, Reject, RejectCode};

/// Rejects the first field no Bedrock model honours (`seed`, `logprobs`, …) or that this crate does
/// not know, naming it; with `--drop-unsupported`, drops them all and counts them in `notes`.
pub(crate) fn check_unsupported(
    req: &ChatRequest<'_>,
    opts: &MapOptions,
    notes: &mut Notes,
    family: &str,
) -> Result<(), Reject> {
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
