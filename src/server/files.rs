//! The Files API: uploads streamed through the converter into a batch folder, the listing, one
//! file, deletion, and a finished batch's output and error files streamed from storage.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::expiry::Asked;
use super::extract::{limit, multipart_words, page, start_after, Id, RawPairs};
use super::state::{new_id, now, output_ids, BatchRecord, FileRecord, Staging, StateError};
use super::{ok, Server};
use crate::batch_folder::{
    FolderWriter, GenerationWriter, InputIdentity, LockOptions, Replace, Start,
};
use crate::io::{chunk_stream, ChunkSource, ObjectWriter};
use crate::pipeline::{prepare_to_bedrock, BedrockOutput, PreparedConversion, ToBedrockOptions};
use crate::record::endpoint::first_line;
use crate::record::Endpoint;

/// `POST /v1/files`: the upload is converted as it streams in, and committed only once the
/// whole request checks out — a refused or broken upload leaves nothing in the staging prefix
/// (dropping it, as when the client goes away, aborts it too).
pub(crate) async fn upload(
    State(server): State<Arc<Server>>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut form = form.map_err(|_| {
        ApiError::bad("expected a multipart/form-data upload with `file` and `purpose`")
    })?;
    let mut uploaded: Option<Staged> = None;
    let checked = read_form(&server, &caller, &mut form, &mut uploaded).await;
    let staged = match (checked, uploaded) {
        (Ok(()), Some(u)) => u,
        (result, uploaded) => {
            if let Some(staged) = uploaded {
                staged.abort().await;
            }
            return Err(result
                .err()
                .unwrap_or_else(|| ApiError::bad("missing the `file` field")));
        }
    };
    // From here on the upload is stored whole or not at all, even if the client goes away
    // (which drops this future): the commit and the record run in a task of their own.
    let stored = tokio::spawn(store(server, staged));
    let file = stored
        .await
        .map_err(|e| ApiError::internal(format!("storing the upload: {e}")))??;
    Ok(ok(&file_object(&file)))
}

/// Reads the form's fields: `purpose` must be `batch`, and there must be one `file`, which is
/// converted into `uploaded` as it arrives.
async fn read_form(
    server: &Server,
    caller: &Caller,
    form: &mut Multipart,
    uploaded: &mut Option<Staged>,
) -> ApiResult<()> {
    let broken = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad(format!("reading the upload: {}", multipart_words(&e)))
    };
    let (mut purpose, mut anchor, mut seconds) = (None, None, None);
    while let Some(field) = form.next_field().await.map_err(broken)? {
        let slot = match field.name() {
            Some("purpose") => &mut purpose,
            Some("expires_after[anchor]") => &mut anchor,
            Some("expires_after[seconds]") => &mut seconds,
            _ => &mut None,
        };
        if slot.is_some() {
            let name = field.name().unwrap_or_default().to_owned();
            let param = if name == "purpose" {
                "purpose"
            } else {
                "expires_after"
            };
            return Err(ApiError::bad(format!("{name} is given twice")).param(param));
        }
        match field.name() {
            Some("purpose" | "expires_after[anchor]" | "expires_after[seconds]") => {
                *slot = Some(field.text().await.map_err(broken)?)
            }
            Some("file") => {
                if uploaded.is_some() {
                    return Err(ApiError::bad("one file per upload").param("file"));
                }
                *uploaded = Some(convert_upload(server, field, caller).await?);
            }
            _ => {}
        }
    }
    let Some(staged) = uploaded else {
        return Err(ApiError::bad("missing the `file` field").param("file"));
    };
    let expiry = Asked {
        param: "expires_after",
        anchor: anchor.as_deref(),
        seconds: seconds.as_deref(),
    };
    let after = expiry.seconds(server.config.min_expires_after)?;
    staged.file.expires_at = Some(staged.file.created_at.saturating_add(after));
    match purpose.as_deref() {
        Some("batch") => Ok(()),
        other => Err(ApiError::bad(format!(
            "purpose {}: this server stores batch input files only (purpose=batch)",
            other.map_or_else(|| "missing".to_owned(), |p| format!("{p:?}"))
        ))
        .param("purpose")),
    }
}

/// An upload converted (and kept as sent, unless the server keeps none), nothing of it visible
/// yet.
struct Staged {
    file: FileRecord,
    prepared: PreparedConversion,
    original: Option<Box<dyn ObjectWriter>>,
}

impl Staged {
    /// Discards everything written.
    async fn abort(self) {
        self.prepared.abort().await;
        if let Some(w) = self.original {
            let _ = w.abort().await;
        }
    }
}

/// Commits a converted upload (the kept original first) and writes its record; a folder whose
/// conversion or record cannot be committed is removed (it would be a tenant's data no one can
/// see or delete).
async fn store(
    server: Arc<Server>,
    Staged {
        mut file,
        prepared,
        original,
    }: Staged,
) -> ApiResult<FileRecord> {
    if let Some(w) = original {
        if let Err(e) = w.finish().await {
            prepared.abort().await;
            return Err(ApiError::internal(format!("keeping the upload: {e}")));
        }
        file.kept = true;
    }
    file.purpose = "batch".into();
    // The record is written before the folder's lock is let go: a sweep never finds the
    // committed folder without its record and takes it for an upload a kill cut off.
    let stored = prepared
        .commit_then(server.staging.create_file(&file))
        .await;
    match stored {
        Ok((_, Ok(()))) => Ok(file),
        Ok((_, Err(e))) => {
            server.staging.remove_folder(&file.owner, &file.id).await;
            Err(e.into())
        }
        Err(e) => {
            server.staging.remove_folder(&file.owner, &file.id).await;
            Err(ApiError::internal(format!("storing the upload: {e}")))
        }
    }
}

/// What the first line of an upload says: the model (which decides the body format of every
/// record) and the endpoint.
struct Head {
    /// The bytes read so far: at least the first line, or the whole upload if it has none.
    bytes: Vec<u8>,
    model: String,
    endpoint: String,
}

/// Reads the upload up to the end of its first request line (blank lines before it are
/// skipped, as the converter skips them), and its model and endpoint from that line.
async fn read_head(field: &mut Field<'_>) -> ApiResult<Head> {
    let mut bytes = Vec::new();
    while first_line(&bytes).is_none() {
        match field
            .chunk()
            .await
            .map_err(|e| ApiError::bad(format!("reading the upload: {}", multipart_words(&e))))?
        {
            Some(chunk) => bytes.extend_from_slice(&chunk),
            None => break,
        }
        if bytes.len() > 32 << 20 {
            return Err(ApiError::bad("the first line is longer than 32 MiB"));
        }
    }
    // The whole upload when it has no complete line (a last line without its newline).
    let first = first_line(&bytes)
        .unwrap_or_else(|| bytes.strip_prefix(crate::record::BOM).unwrap_or(&bytes));
    let line: Value = serde_json::from_slice(first)
        .map_err(|e| ApiError::bad(format!("the first request line is not JSON: {e}")))?;
    let model = line["body"]["model"].as_str().ok_or_else(|| {
        ApiError::bad(
            "the first request line: body.model is missing; each request names one of the configured models",
        )
    })?;
    Ok(Head {
        model: model.to_owned(),
        endpoint: line["url"].as_str().unwrap_or_default().to_owned(),
        bytes,
    })
}

/// Streams one uploaded file through the converter into a new batch folder, written in full
/// and not yet committed.
async fn convert_upload(
    server: &Server,
    mut field: Field<'_>,
    caller: &Caller,
) -> ApiResult<Staged> {
    let filename = field.file_name().unwrap_or("upload.jsonl").to_owned();
    let head = read_head(&mut field).await?;
    let alias = server.config.models.get(&head.model).ok_or_else(|| {
        let names: Vec<&str> = server.config.models.keys().map(String::as_str).collect();
        ApiError::bad(format!(
            "model '{}' is not available here (configured: {})",
            head.model,
            names.join(", ")
        ))
        .param("model")
    })?;
    caller.may_use(&head.model)?;
    let table = server.config.model_table();
    let family = alias
        .family(table)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut opts = ToBedrockOptions::with_family(&alias.model_id, family);
    opts.map.limits = table.limits(family, &alias.model_id);
    opts.endpoint = Endpoint::from_url(&head.endpoint)
        .filter(|e| family.serves(*e))
        .ok_or_else(|| {
            let urls: Vec<&str> = family.endpoints().iter().map(|e| e.url()).collect();
            ApiError::bad(format!(
                "the first request line: url {:?} is not an endpoint the model '{}' serves here ({})",
                head.endpoint,
                head.model,
                urls.join(", ")
            ))
        })?;
    opts.allow_small = true;
    opts.source = InputIdentity::named(&filename);
    let id = new_id("file-");
    let writer = new_generation(server, &id, &opts).await?;
    let mut original = match server.config.keep_uploads {
        true => match server.staging.upload_writer(&id).await {
            Ok(w) => Some(w),
            Err(e) => {
                GenerationWriter::abort(*writer).await;
                return Err(e.into());
            }
        },
        false => None,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Upload>(4);
    let conversion = tokio::spawn(async move {
        prepare_to_bedrock(ChannelSource(rx), BedrockOutput::Folder(writer), &opts).await
    });
    let Head {
        bytes: first,
        model,
        endpoint,
    } = head;
    let fed = feed(first, &mut field, tx, original.as_deref_mut()).await;
    let prepared = conversion
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::bad(format!("converting the upload: {e}")));
    let (bytes, prepared) = match (fed, prepared) {
        (Ok(bytes), Ok(p)) => (bytes, p),
        (fed, prepared) => {
            let error = match prepared {
                Ok(p) => {
                    p.abort().await;
                    None
                }
                Err(e) => Some(e),
            };
            if let Some(w) = original {
                let _ = w.abort().await;
            }
            return Err(fed.err().or(error).expect("one failed"));
        }
    };
    let report = prepared.report();
    tracing::info!(
        file = id,
        lines = report.lines,
        records = report.records,
        rejected = report.rejected,
        "uploaded"
    );
    let record = FileRecord {
        id,
        bytes,
        created_at: now(),
        filename,
        purpose: "batch".into(),
        owner: caller.name().to_owned(),
        model,
        endpoint,
        batch: None,
        deleted: false,
        kept: false,
        expires_at: None,
        expired: false,
    };
    Ok(Staged {
        file: record,
        prepared,
        original,
    })
}

/// A new file's batch folder, its generation started.
async fn new_generation(
    server: &Server,
    id: &str,
    opts: &ToBedrockOptions,
) -> ApiResult<Box<GenerationWriter>> {
    let dest = server
        .storage
        .folder(&server.staging.file_folder(id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let folder = FolderWriter::open(dest, &LockOptions::for_command("serve")).await?;
    match folder
        .start_generation(opts.conversion(), opts.source.clone(), Replace::Refuse)
        .await?
    {
        Start::New(writer) => Ok(writer),
        Start::Same(folder) => {
            folder.release().await;
            Err(ApiError::internal(format!(
                "{id}: a new file's folder is in use"
            )))
        }
    }
}

/// Hands the upload to the converter: `first` (read already), then the rest of the field, then
/// an explicit end; each chunk also to `original`, when the upload is kept as sent. Returns the
/// bytes uploaded.
async fn feed(
    first: Vec<u8>,
    field: &mut Field<'_>,
    tx: tokio::sync::mpsc::Sender<Upload>,
    mut original: Option<&mut (dyn ObjectWriter + 'static)>,
) -> ApiResult<u64> {
    let mut bytes = first.len() as u64;
    let first = Bytes::from(first);
    keep(&mut original, &first).await?;
    if tx.send(Upload::Data(first)).await.is_err() {
        // The converter stopped; its error says why.
        return Ok(bytes);
    }
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                bytes += chunk.len() as u64;
                keep(&mut original, &chunk).await?;
                if tx.send(Upload::Data(chunk)).await.is_err() {
                    return Ok(bytes);
                }
            }
            Ok(None) => {
                let _ = tx.send(Upload::End).await;
                return Ok(bytes);
            }
            Err(e) => {
                let message = format!("reading the upload: {}", multipart_words(&e));
                let _ = tx.send(Upload::Broken(message.clone())).await;
                return Err(ApiError::bad(message));
            }
        }
    }
}

/// Writes `chunk` to the kept upload, if any.
async fn keep(
    original: &mut Option<&mut (dyn ObjectWriter + 'static)>,
    chunk: &Bytes,
) -> ApiResult<()> {
    match original {
        Some(w) => w
            .write(chunk.clone())
            .await
            .map_err(|e| ApiError::internal(format!("keeping the upload: {e}"))),
        None => Ok(()),
    }
}

/// `GET /v1/files`: the caller's uploads and its batches' result files, as OpenAI lists them:
/// newest first (or oldest, `order=asc`), of one `purpose` if asked, a page of `limit` (up to
/// 10,000, all of them by default) after the file `after`.
pub(crate) async fn list_files(
    State(server): State<Arc<Server>>,
    caller: Caller,
    RawPairs(query): RawPairs,
) -> ApiResult<Response> {
    let newest_first = match query.get("order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(
                ApiError::bad(format!("order: {other:?}; \"asc\" or \"desc\"")).param("order"),
            )
        }
    };
    let mut data: Vec<Value> = server
        .staging
        .files_of(caller.name())
        .await?
        .iter()
        .map(file_object)
        .collect();
    for b in server.staging.batches_of(caller.name()).await? {
        data.extend(result_files(&server, &b).await?);
    }
    if let Some(purpose) = query.get("purpose") {
        data.retain(|f| f["purpose"] == purpose.as_str());
    }
    data.sort_by_key(listing_key);
    if newest_first {
        data.reverse();
    }
    fn id(f: &Value) -> &str {
        f["id"].as_str().unwrap_or_default()
    }
    let limit = limit(&query, (10_000, 10_000))?;
    let start = match query.get("after") {
        None => 0,
        Some(after) => {
            let gone = match data.iter().any(|f| id(f) == after) {
                true => None,
                false => gone_file(&server, &caller, after).await?,
            };
            start_after(&data, after, (id, listing_key), gone, newest_first)?
        }
    };
    let (page, has_more) = page(&data, start, limit);
    Ok(ok(&json!({
        "object": "list",
        "data": page,
        "first_id": page.first().map(id),
        "last_id": page.last().map(id),
        "has_more": has_more,
    })))
}

/// What the files' listing sorts by: a File object's creation, then its id.
fn listing_key(f: &Value) -> (Option<i64>, Option<String>) {
    (
        f["created_at"].as_i64(),
        f["id"].as_str().map(str::to_owned),
    )
}

/// The [`listing_key`] of the caller's file `id` that is no longer listed — an upload deleted
/// or expired (its record kept while a batch uses it), or a batch's deleted or expired output
/// or error file — if it is known.
async fn gone_file(
    server: &Server,
    caller: &Caller,
    id: &str,
) -> ApiResult<Option<(Option<i64>, Option<String>)>> {
    let at = match output_file(id) {
        Some((batch_id, _)) => match caller.batch(server, &batch_id).await {
            Ok(b) if b.failure.is_none() => server
                .folder_of_file(&b.input_file_id)
                .await
                .ok()
                .and_then(|folder| folder.results().map(|r| r.finished_at as i64)),
            _ => None,
        },
        None => server
            .staging
            .file_record(id)
            .await?
            .filter(|f| f.owner == caller.name())
            .map(|f| f.created_at),
    };
    Ok(at.map(|at| (Some(at), Some(id.to_owned()))))
}

/// `GET /v1/files/{id}`: an upload, or a batch's output or error file.
pub(crate) async fn get_file(
    State(server): State<Arc<Server>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Response> {
    if let Some((batch_id, _)) = output_file(&id) {
        let b = caller
            .batch(&server, &batch_id)
            .await
            .map_err(|_| ApiError::not_found("file", &id))?;
        let file = result_files(&server, &b)
            .await?
            .into_iter()
            .find(|f| f["id"] == id.as_str())
            .ok_or_else(|| ApiError::not_found("file", &id))?;
        return Ok(ok(&file));
    }
    let f = caller.file(&server, &id).await?;
    Ok(ok(&file_object(&f)))
}

/// `DELETE /v1/files/{id}`: marks the upload's record deleted; or removes a batch's output or
/// error file, as OpenAI lets a client do (the batch keeps naming it).
pub(crate) async fn delete_file(
    State(server): State<Arc<Server>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Response> {
    if let Some((batch_id, which)) = output_file(&id) {
        return delete_output(&server, &caller, &batch_id, which, &id).await;
    }
    let _held = server.lock(&id).lock_owned().await;
    caller.file(&server, &id).await?;
    // Marked in one compare-and-swap: a batch made from it by another server at the same
    // moment is seen here (its folder then stays), or sees the file deleted.
    let f = server
        .staging
        .update_file(&id, |f| {
            f.deleted = true;
            Ok::<_, StateError>(true)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("file", &id))?;
    if f.batch.is_none() {
        // Nothing else needs its folder: it goes whole, record last (a removal cut short is
        // finished by the background task).
        server.staging.remove_folder(&f.owner, &id).await;
    } else {
        // What was uploaded goes with it; the batch made from it keeps its converted folder.
        server.staging.remove_upload(&id).await?;
    }
    Ok(ok(&json!({"id": id, "object": "file", "deleted": true})))
}

/// Deletes batch `batch_id`'s output or error file `id`: marked in the batch's record first
/// (from then on it answers 404), then its object removed (one a crash leaves goes with the
/// batch's other results when they expire).
async fn delete_output(
    server: &Server,
    caller: &Caller,
    batch_id: &str,
    which: Output,
    id: &str,
) -> ApiResult<Response> {
    let _held = server.lock(batch_id).lock_owned().await;
    let b = caller
        .batch(server, batch_id)
        .await
        .map_err(|_| ApiError::not_found("file", id))?;
    if !result_files(server, &b)
        .await?
        .iter()
        .any(|f| f["id"] == id)
    {
        return Err(ApiError::not_found("file", id));
    }
    let marked = server
        .staging
        .update_batch(batch_id, |b| {
            let first = !b.deleted_outputs.iter().any(|d| d == id);
            if first {
                b.deleted_outputs.push(id.to_owned());
            }
            Ok::<_, StateError>(first)
        })
        .await?;
    if marked.is_none() {
        return Err(ApiError::not_found("file", id));
    }
    server
        .staging
        .remove_result(&b.input_file_id, which.name())
        .await?;
    Ok(ok(&json!({"id": id, "object": "file", "deleted": true})))
}

/// `GET /v1/files/{id}/content`: an upload as it was sent, or a batch's output or error file,
/// streamed from storage.
pub(crate) async fn file_content(
    State(server): State<Arc<Server>>,
    caller: Caller,
    Id(id): Id,
) -> ApiResult<Response> {
    let Some((batch_id, which)) = output_file(&id) else {
        let f = caller.file(&server, &id).await?;
        if !f.kept {
            return Err(ApiError::bad(
                "this upload was converted as it arrived and not kept (the server runs with keep_uploads = false); the content of a batch's output and error files can be downloaded",
            ));
        }
        return stream(&server, &server.staging.upload_file(&id)).await;
    };
    let b = caller
        .batch(&server, &batch_id)
        .await
        .map_err(|_| ApiError::not_found("file", &id))?;
    let folder = server.folder_of_file(&b.input_file_id).await?;
    if folder.results_unsettled() {
        // Retried by clients (the OpenAI SDK retries a 503): the commit takes moments.
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the batch's results are being committed; try again in a moment",
        ));
    }
    let results = folder
        .results()
        .filter(|r| !b.outputs_gone(r.finished_at, now()))
        .filter(|_| !b.deleted_outputs.contains(&id))
        .ok_or_else(|| ApiError::not_found("file", &id))?;
    let name = which.name();
    let uri = if which == Output::Results {
        &results.output
    } else {
        &results.errors
    };
    // The record says where the files are; the server reads only its own place for them.
    let expected = server
        .staging
        .uri(&Staging::result_path(&b.input_file_id, name));
    if *uri != expected {
        return Err(ApiError::internal(format!(
            "batch {}: its results record names {uri}, not {expected}; not served",
            b.id
        )));
    }
    stream(&server, &server.staging.result_file(&b.input_file_id, name)).await
}

/// The object at `at`, streamed as the response body.
async fn stream(server: &Server, at: &crate::io::Location) -> ApiResult<Response> {
    let (source, _) = server
        .storage
        .open(at)
        .await
        .map_err(|e| ApiError::internal(format!("{at}: {e}")))?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from_stream(chunk_stream(source)))
        .expect("a valid response"))
}

/// The File objects of a batch's output and error files, once collected, but for those
/// expired or deleted.
pub(crate) async fn result_files(server: &Server, b: &BatchRecord) -> ApiResult<Vec<Value>> {
    if b.failure.is_some() {
        return Ok(Vec::new());
    }
    let folder = server.folder_of_file(&b.input_file_id).await?;
    let Some(r) = folder.results() else {
        return Ok(Vec::new());
    };
    if b.outputs_gone(r.finished_at, now()) {
        return Ok(Vec::new());
    }
    let (out_id, err_id) = output_ids(&b.id);
    let expires_at = b
        .output_expires_after
        .map(|s| (r.finished_at as i64).saturating_add(s));
    let object = |id: &str, name: &str, purpose: &str, bytes: Option<u64>| {
        json!({"id": id, "object": "file", "bytes": bytes, "created_at": r.finished_at,
               "expires_at": expires_at,
               "filename": name, "purpose": purpose, "status": "processed", "status_details": null})
    };
    let mut files = vec![
        object(
            &out_id,
            "batch_output.jsonl",
            "batch_output",
            r.output_bytes,
        ),
        object(
            &err_id,
            "batch_errors.jsonl",
            "batch_output",
            r.errors_bytes,
        ),
    ];
    files.retain(|f| !b.deleted_outputs.iter().any(|d| f["id"] == d.as_str()));
    Ok(files)
}

/// Which of a batch's files an output file id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Results,
    Errors,
}

impl Output {
    /// The results file's name in the batch's folder.
    fn name(self) -> &'static str {
        match self {
            Output::Results => "output.jsonl",
            Output::Errors => "errors.jsonl",
        }
    }
}

/// The batch and which of its files an output file id names.
fn output_file(id: &str) -> Option<(String, Output)> {
    if let Some(s) = id.strip_prefix("file-out-") {
        return Some((format!("batch_{s}"), Output::Results));
    }
    id.strip_prefix("file-err-")
        .map(|s| (format!("batch_{s}"), Output::Errors))
}

fn file_object(f: &FileRecord) -> Value {
    json!({
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
        "expires_at": f.expires_at,
        "status": "processed",
        "status_details": null,
    })
}

/// What the request handler hands the converter.
enum Upload {
    Data(Bytes),
    /// The file field ended: the input is complete.
    End,
    /// The upload broke off, with the reason.
    Broken(String),
}

/// The upload, handed over chunk by chunk to the converter. Only an explicit end is the end of
/// the input: a channel closed without one (the request was dropped) is a broken upload, never
/// a shorter file.
struct ChannelSource(tokio::sync::mpsc::Receiver<Upload>);

impl ChunkSource for ChannelSource {
    fn next_chunk(&mut self) -> futures::future::BoxFuture<'_, std::io::Result<Option<Bytes>>> {
        Box::pin(async move {
            match self.0.recv().await {
                Some(Upload::Data(chunk)) => Ok(Some(chunk)),
                Some(Upload::End) => Ok(None),
                Some(Upload::Broken(why)) => Err(std::io::Error::other(why)),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the upload ended before its last byte",
                )),
            }
        })
    }
}
