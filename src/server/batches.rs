//! The Batches API: a batch made from an uploaded file (its Bedrock jobs submitted, or a
//! `failed` batch naming its bad lines), one batch as the client sees it, the listing, and
//! cancelling.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::expiry::Asked;
use super::extract::{cause, limit, page, start_after, Id, RawPairs};
use super::state::{new_id, now, output_ids, BatchRecord, FileRecord, StateError};
use super::{ok, Server};
use crate::batch_folder::FolderError;
use crate::driver::DriverError;
use crate::driver::{
    timeout_hours, BatchError, BatchErrors, BatchFolder, BatchObject, BatchStatus, RequestCounts,
};
use crate::pipeline::MIN_RECORDS_PER_JOB;
use crate::pricing::Tokens;

/// What `POST /v1/batches` asks for.
struct NewBatch {
    input_file_id: String,
    endpoint: String,
    window: String,
    hours: i32,
    metadata: Option<BTreeMap<String, String>>,
    /// `output_expires_after` as the body gave it: anchor and seconds.
    expiry: (Option<String>, Option<String>),
}

impl NewBatch {
    /// Reads the request body (JSON), naming the parameter at fault.
    fn parse(body: &[u8]) -> ApiResult<NewBatch> {
        let body: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad(format!("the request is not JSON: {e}")))?;
        let field = |name: &'static str| match &body[name] {
            Value::String(s) => Ok(s.clone()),
            Value::Null => {
                Err(ApiError::bad(format!("Missing required parameter: '{name}'.")).param(name))
            }
            other => Err(ApiError::bad(format!(
                "Invalid type for '{name}': expected a string, but got {}.",
                json_type(other)
            ))
            .param(name)),
        };
        let (input_file_id, endpoint, window) = (
            field("input_file_id")?,
            field("endpoint")?,
            field("completion_window")?,
        );
        let hours = timeout_hours(&window)
            .map_err(|e| ApiError::bad(e.message).param("completion_window"))?;
        let metadata = match &body["metadata"] {
            Value::Null => None,
            v => Some(check_metadata(serde_json::from_value(v.clone()).map_err(
                |_| ApiError::bad("metadata: an object of strings").param("metadata"),
            )?)?),
        };
        let policy = &body["output_expires_after"];
        if !(policy.is_null() || policy.is_object()) {
            return Err(ApiError::bad(
                "output_expires_after: an object {\"anchor\": \"created_at\", \"seconds\": N}",
            )
            .param("output_expires_after"));
        }
        // As JSON text: a number's digits, anything else (a string too) refused by the check.
        let text = |v: &Value| (!v.is_null()).then(|| v.to_string());
        Ok(NewBatch {
            input_file_id,
            endpoint,
            window,
            hours,
            metadata,
            expiry: (
                policy["anchor"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| text(&policy["anchor"])),
                text(&policy["seconds"]),
            ),
        })
    }
}

/// OpenAI's limits on a batch's `metadata`: at most 16 pairs, keys of at most 64 characters,
/// values of at most 512.
fn check_metadata(metadata: BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    let refuse = |why: String| Err(ApiError::bad(format!("metadata: {why}")).param("metadata"));
    if metadata.len() > 16 {
        return refuse(format!("{} pairs; at most 16", metadata.len()));
    }
    for (key, value) in &metadata {
        if key.chars().count() > 64 {
            return refuse(format!("key {key:?} is longer than 64 characters"));
        }
        if value.chars().count() > 512 {
            return refuse(format!(
                "the value of {key:?} is longer than 512 characters"
            ));
        }
    }
    Ok(metadata)
}

/// A JSON value's type, as a message names it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `POST /v1/batches`.
pub(crate) async fn create_batch(
    State(server): State<Arc<Server>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|e| ApiError::bad(format!("reading the request: {}", cause(&e))))?;
    let asked = NewBatch::parse(&body)?;
    let output_expires_after = Asked {
        param: "output_expires_after",
        anchor: asked.expiry.0.as_deref(),
        seconds: asked.expiry.1.as_deref(),
    }
    .seconds(server.config.min_expires_after)?;
    let _held = server.lock(&asked.input_file_id).lock_owned().await;
    let file = caller.file(&server, &asked.input_file_id).await?;
    if let Some(existing) = &file.batch {
        let retried = (&asked, output_expires_after, caller.name());
        if let Some(made) = made_by(&server, existing, retried, &headers).await? {
            return batch_response(&batch_view(&server, &made).await?);
        }
    }
    check_file(&file, &asked, &caller)?;
    let mut folder = match server.folder_of_file(&asked.input_file_id).await {
        Ok(folder) => folder,
        Err(e) => return Err(gone_or(&server, &file.id, e.into()).await),
    };
    let mut record = BatchRecord {
        id: new_id("batch_"),
        input_file_id: asked.input_file_id.clone(),
        owner: caller.name().to_owned(),
        endpoint: asked.endpoint,
        completion_window: asked.window,
        metadata: asked.metadata,
        created_at: now(),
        failure: None,
        cancel_requested_at: None,
        output_expires_after: Some(output_expires_after),
        outputs_expired: false,
        collected: false,
        deleted_outputs: Vec::new(),
    };
    let records = folder.manifest().counts.records;
    let refused = match refusal(&folder).await {
        Ok(refused) => refused,
        Err(e) => return Err(gone_or(&server, &file.id, e).await),
    };
    if let Some(errors) = refused {
        record.failure = Some(failed_batch(&record, &file, records, errors));
    }
    // The batch is recorded and the file made its own before anything is submitted: in one
    // compare-and-swap, so that of two servers making a batch of one file at once, exactly one
    // wins; the other's record goes and its client is told.
    server.staging.create_batch(&record).await?;
    if let Err(e) = attach(&server, &file.id, &record.id).await {
        // (An attach whose write went through but whose answer was lost leaves the file ours:
        // it is let go first.)
        undo(&server, &file.id, &record).await;
        return Err(e);
    }
    if server.staging.batch(&record.id).await?.is_none() {
        // This request stalled so long that the sweep took the record for one whose making a
        // kill cut off, and removed it: the file is let go again.
        undo(&server, &file.id, &record).await;
        return Err(ApiError::internal(
            "making the batch took too long; try again",
        ));
    }
    if record.failure.is_none() {
        let submitted = folder
            .submit(&server.driver, &server.settings(asked.hours), 20)
            .await;
        let busy = matches!(
            &submitted,
            Err(DriverError::Folder(FolderError::Locked { .. }))
        );
        if busy {
            // Another server's background task is submitting this very batch (it saw the
            // record): the jobs are the folder's, submitted once, whoever submits them.
            tracing::debug!(batch = record.id, "submitted by another server");
        } else if let Err(e) = submitted {
            // Jobs the folder records (this call's before it failed, or another server's)
            // run: the batch stays, and the background task goes on with it.
            let running = server
                .folder_of_file(&file.id)
                .await
                .map(|f| f.job_records().iter().any(Option::is_some))
                .unwrap_or(true);
            if !running {
                // Nothing runs: the file is free again, and the batch is gone.
                undo(&server, &file.id, &record).await;
                return Err(ApiError::bedrock(&e));
            }
            tracing::warn!(
                batch = record.id,
                "submitting: {e}; the background task goes on"
            );
        }
    }
    batch_response(&batch_view(&server, &record).await?)
}

/// The batch `existing` when this request is a retry of the one that made it: the OpenAI SDK
/// sends a request again (`x-stainless-retry-count` above 0) when the answer was lost, and the
/// batch it asked for is what it must get, not a refusal for the batch it made. Asked with any
/// other parameter, or not as a retry, a second batch of one file is refused as before.
async fn made_by(
    server: &Server,
    existing: &str,
    (asked, output_expires_after, owner): (&NewBatch, i64, &str),
    headers: &axum::http::HeaderMap,
) -> ApiResult<Option<BatchRecord>> {
    let retry = headers
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|n| n > 0);
    if !retry {
        return Ok(None);
    }
    Ok(server.staging.batch(existing).await?.filter(|b| {
        b.input_file_id == asked.input_file_id
            && b.owner == owner
            && b.endpoint == asked.endpoint
            && b.completion_window == asked.window
            && b.metadata == asked.metadata
            && b.output_expires_after == Some(output_expires_after)
    }))
}

/// `error`, met reading file `id`'s folder — or, when the file was deleted meanwhile (by
/// another server: its folder goes with it), the 404 of a file that is not there.
async fn gone_or(server: &Server, id: &str, error: ApiError) -> ApiError {
    match server.staging.file(id).await {
        Ok(None) => ApiError::not_found("file", id),
        _ => error,
    }
}

/// Takes back a batch that could not start: file `file_id` no longer names `batch` (if it
/// does), then the batch's record goes. What cannot be undone is logged.
async fn undo(server: &Server, file_id: &str, batch: &BatchRecord) {
    let batch_id = batch.id.as_str();
    let detached = server
        .staging
        .update_file(file_id, |f| {
            let ours = f.batch.as_deref() == Some(batch_id);
            if ours {
                f.batch = None;
            }
            Ok::<_, StateError>(ours)
        })
        .await;
    if let Err(e) = detached {
        // The record stays: a batch the file may still name.
        tracing::warn!(batch = batch_id, "{e}");
    } else if let Err(e) = server
        .staging
        .remove_batch(batch, &super::worker::batch_lease(batch_id))
        .await
    {
        tracing::warn!(batch = batch_id, "{e}");
    }
}

/// Makes file `file_id` batch `batch_id`'s, in one compare-and-swap of its record: refused when
/// it is deleted, expired, or already another batch's.
async fn attach(server: &Server, file_id: &str, batch_id: &str) -> ApiResult<()> {
    let attached = server
        .staging
        .update_file(file_id, |f| {
            if !f.visible(now()) {
                return Err(ApiError::not_found("file", &f.id));
            }
            match &f.batch {
                Some(existing) if existing != batch_id => Err(already_a_batch(&f.id, existing)),
                Some(_) => Ok(false),
                None => {
                    f.batch = Some(batch_id.to_owned());
                    Ok(true)
                }
            }
        })
        .await?;
    attached
        .map(drop)
        .ok_or_else(|| ApiError::not_found("file", file_id))
}

/// Whether `file` can run as the batch `asked` for.
fn check_file(file: &FileRecord, asked: &NewBatch, caller: &Caller) -> ApiResult<()> {
    if file.endpoint != asked.endpoint {
        return Err(ApiError::bad(format!(
            "endpoint {}: the file's requests are for {}",
            asked.endpoint, file.endpoint
        ))
        .param("endpoint"));
    }
    if let Some(existing) = &file.batch {
        return Err(already_a_batch(&file.id, existing));
    }
    caller.may_use(&file.model)
}

/// The refusal of a second batch of file `id`, which runs as batch `existing`.
fn already_a_batch(id: &str, existing: &str) -> ApiError {
    ApiError::bad(format!(
        "file {id} already runs as batch {existing}; upload it again for another batch"
    ))
    .param("input_file_id")
}

/// Why a file's batch fails before any job runs, as batch errors: its rejected lines, or too
/// few requests for Bedrock.
async fn refusal(folder: &BatchFolder) -> ApiResult<Option<Vec<BatchError>>> {
    let counts = &folder.manifest().counts;
    Ok(if counts.rejected > 0 {
        Some(rejected_errors(folder).await?)
    } else if counts.records < MIN_RECORDS_PER_JOB {
        Some(vec![BatchError {
            code: "too_few_requests".into(),
            message: format!(
                "Bedrock batch inference needs at least {MIN_RECORDS_PER_JOB} requests in a batch; this file has {}.",
                counts.records
            ),
            param: None,
            line: None,
        }])
    } else {
        None
    })
}

/// The file's rejected lines as batch errors (the first 1,000), the way OpenAI reports a file
/// that failed validation.
async fn rejected_errors(folder: &BatchFolder) -> ApiResult<Vec<BatchError>> {
    let raw = folder.reader().rejected().await?;
    Ok(raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(1000)
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .map(|v| BatchError {
            code: v["error"]["code"]
                .as_str()
                .unwrap_or("invalid_request")
                .to_owned(),
            message: v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            param: None,
            line: v["line"].as_u64(),
        })
        .collect())
}

/// `GET /v1/batches/{id}`.
pub(crate) async fn get_batch(
    State(server): State<Arc<Server>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Response> {
    let b = caller.batch(&server, &id).await?;
    batch_response(&batch_view(&server, &b).await?)
}

/// The Batch object as a client sees it: our ids, its metadata, `finalizing` until the results
/// are converted, `cancelling` once a cancel was asked for.
async fn batch_view(server: &Server, b: &BatchRecord) -> ApiResult<BatchObject> {
    if let Some(failure) = &b.failure {
        return Ok(failure.clone());
    }
    let folder = server.folder_of_file(&b.input_file_id).await?;
    let jobs = folder
        .jobs(&server.driver)
        .await
        .map_err(|e| ApiError::bedrock(&e))?;
    let ended = folder.pending() == 0 && jobs.iter().all(|j| j.status.is_terminal());
    let finalizing = (ended && folder.results().is_none()).then(now);
    let mut view = folder.batch_object(&jobs, finalizing);
    view.id = b.id.clone();
    view.input_file_id = b.input_file_id.clone();
    view.completion_window = b.completion_window.clone();
    view.created_at = b.created_at;
    view.metadata = b.metadata.clone().unwrap_or_default();
    if let Some(r) = folder.results() {
        let tokens = Tokens {
            input: r.input_tokens,
            cached: r.cached_tokens,
            cache_write: r.cache_write_tokens,
            output: r.output_tokens,
        };
        if let Some(usd) = server
            .config
            .prices
            .cost(folder.manifest().model_id(), &tokens)
        {
            view.metadata
                .insert("estimated_cost_usd".to_owned(), format!("{usd:.6}"));
        }
    }
    if view.output_file_id.is_some() {
        let (out, err) = output_ids(&b.id);
        view.output_file_id = Some(out);
        view.error_file_id = Some(err);
    }
    if let (Some(at), BatchStatus::InProgress | BatchStatus::Validating) =
        (b.cancel_requested_at, view.status)
    {
        view.status = BatchStatus::Cancelling;
        view.cancelling_at = Some(at);
    }
    Ok(view)
}

fn batch_value(view: &BatchObject) -> ApiResult<Value> {
    serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))
}

fn batch_response(view: &BatchObject) -> ApiResult<Response> {
    Ok(ok(&batch_value(view)?))
}

/// `GET /v1/batches`: newest first, `after` and `limit` (1–100, default 20), `has_more`.
pub(crate) async fn list_batches(
    State(server): State<Arc<Server>>,
    caller: Caller,
    RawPairs(query): RawPairs,
) -> ApiResult<Response> {
    let mut all = server.staging.batches_of(caller.name()).await?;
    all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let limit = limit(&query, (20, 100))?;
    let start = match query.get("after") {
        None => 0,
        Some(after) => {
            let key = |b: &BatchRecord| (b.created_at, b.id.clone());
            let listed = all.iter().any(|b| &b.id == after);
            // A batch record is kept for good; one of another key is no cursor of this list.
            let gone = match listed {
                true => None,
                false => server
                    .staging
                    .batch(after)
                    .await?
                    .filter(|b| b.owner == caller.name())
                    .map(|b| key(&b)),
            };
            start_after(
                &all,
                after,
                (|b: &BatchRecord| b.id.as_str(), key),
                gone,
                true,
            )?
        }
    };
    let (page, has_more) = page(&all, start, limit);
    let mut data = Vec::with_capacity(page.len());
    for b in page {
        data.push(batch_value(&batch_view(&server, b).await?)?);
    }
    Ok(ok(&json!({
        "object": "list",
        "data": data,
        "first_id": page.first().map(|b| &b.id),
        "last_id": page.last().map(|b| &b.id),
        "has_more": has_more,
    })))
}

/// `POST /v1/batches/{id}/cancel`: stops the batch's Bedrock jobs.
pub(crate) async fn cancel_batch(
    State(server): State<Arc<Server>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Response> {
    let _held = server.lock(&id).lock_owned().await;
    let mut b = caller.batch(&server, &id).await?;
    if b.failure.is_none() {
        // The cancel is recorded first, then the jobs the folder records stop: a job another
        // server's background task submits meanwhile is stopped by that task, which reads the
        // cancel again after submitting.
        if let Some(now) = server
            .staging
            .update_batch(&b.id, |b| {
                let first = b.cancel_requested_at.is_none();
                if first {
                    b.cancel_requested_at = Some(now());
                }
                Ok::<_, StateError>(first)
            })
            .await?
        {
            b = now;
        }
        let folder = server.folder_of_file(&b.input_file_id).await?;
        for rec in folder.job_records().iter().flatten() {
            server
                .driver
                .stop(&rec.job_arn)
                .await
                .map_err(|e| ApiError::bedrock(&e))?;
        }
    }
    batch_response(&batch_view(&server, &b).await?)
}

/// A batch that failed before any job ran, with its errors.
fn failed_batch(
    b: &BatchRecord,
    f: &FileRecord,
    records: u64,
    errors: Vec<BatchError>,
) -> BatchObject {
    let mut view = BatchObject::new(&[], Default::default());
    view.id = b.id.clone();
    view.endpoint = b.endpoint.clone();
    view.model = Some(f.model.clone());
    view.input_file_id = b.input_file_id.clone();
    view.completion_window = b.completion_window.clone();
    view.status = BatchStatus::Failed;
    view.created_at = b.created_at;
    view.failed_at = Some(b.created_at);
    view.errors = Some(BatchErrors {
        object: "list".into(),
        data: errors,
    });
    view.request_counts = RequestCounts {
        total: records,
        completed: 0,
        failed: 0,
    };
    view.metadata = b.metadata.clone().unwrap_or_default();
    view
}
