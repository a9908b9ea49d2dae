//! The routes: authentication, files, batches, and the errors in OpenAI's shape.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};

use super::config::ApiKey;
use super::state::{file_folder, new_id, now, BatchRecord, FileRecord};
use super::{Body, Server};
use crate::batch_folder::{FolderWriter, InputIdentity, LockOptions, Replace, Start};
use crate::driver::{
    timeout_hours, BatchError, BatchErrors, BatchFolder, BatchObject, BatchStatus, RequestCounts,
    SubmitSettings,
};
use crate::io::{ChunkSource, Location};
use crate::pipeline::{prepare_to_bedrock, BedrockOutput, PreparedConversion, ToBedrockOptions};

/// An error answered in OpenAI's shape.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind: if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            },
            code: None,
            param: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(what: &str, id: &str) -> Self {
        let mut e = Self::new(StatusCode::NOT_FOUND, format!("No such {what}: '{id}'"));
        e.code = Some("not_found");
        e
    }

    fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!("{message}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    fn response(&self) -> Response<Body> {
        json_response(
            self.status,
            &json!({"error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }}),
        )
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = Full::new(Bytes::from(value.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)
        .expect("a valid response")
}

fn ok(value: &Value) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

type Result<T> = std::result::Result<T, ApiError>;

impl Server {
    /// Answers one request; logs method, path, status and time (never the key).
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = std::time::Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let response = match self.route(req).await {
            Ok(r) => r,
            Err(e) => e.response(),
        };
        tracing::info!(
            %peer,
            %method,
            path,
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        response
    }

    fn authenticate(&self, req: &Request<Incoming>) -> Result<ApiKey> {
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let unauthorized = |message: &str| {
            let mut e = ApiError::new(StatusCode::UNAUTHORIZED, message);
            e.code = Some("invalid_api_key");
            e
        };
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(unauthorized(
                "You didn't provide an API key (Authorization: Bearer KEY).",
            ));
        };
        self.config
            .key(presented)
            .cloned()
            .ok_or_else(|| unauthorized("Incorrect API key provided."))
    }

    async fn route(self: &Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let Some(rest) = segments.strip_prefix(&["v1"]) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Unknown path {path}"),
            ));
        };
        let key = self.authenticate(&req)?;
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let method = req.method().clone();
        match (method, rest) {
            (Method::POST, ["files"]) => self.upload(req, &key).await,
            (Method::GET, ["files"]) => self.list_files(&key).await,
            (Method::GET, ["files", id]) => self.get_file(id, &key).await,
            (Method::DELETE, ["files", id]) => self.delete_file(id, &key).await,
            (Method::GET, ["files", id, "content"]) => self.file_content(id, &key).await,
            (Method::POST, ["batches"]) => {
                let body = read_json_body(req).await?;
                self.create_batch(body, &key).await
            }
            (Method::GET, ["batches"]) => self.list_batches(&query, &key).await,
            (Method::GET, ["batches", id]) => {
                let b = self.owned_batch(id, &key).await?;
                Ok(ok(&serde_json::to_value(self.batch_view(&b).await?)
                    .map_err(|e| ApiError::internal(e.to_string()))?))
            }
            (Method::POST, ["batches", id, "cancel"]) => self.cancel_batch(id, &key).await,
            (m, _) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Unknown request URL: {m} {path}"),
            )),
        }
    }

    // ---- files ----

    async fn upload(
        self: &Arc<Self>,
        req: Request<Incoming>,
        key: &ApiKey,
    ) -> Result<Response<Body>> {
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let boundary = multer::parse_boundary(&content_type).map_err(|_| {
            ApiError::bad("expected a multipart/form-data upload with `file` and `purpose`")
        })?;
        let stream = req.into_body().into_data_stream();
        let mut form = multer::Multipart::new(stream, boundary);
        // The converted upload is committed only once the whole request checks out: a refused
        // or broken upload leaves nothing in the staging prefix (dropping it, as when the client
        // goes away, aborts it too).
        let mut uploaded: Option<(FileRecord, PreparedConversion)> = None;
        let checked =
            async {
                let mut purpose = None;
                while let Some(field) = form
                    .next_field()
                    .await
                    .map_err(|e| ApiError::bad(format!("reading the upload: {e}")))?
                {
                    match field.name() {
                        Some("purpose") => {
                            purpose =
                                Some(field.text().await.map_err(|e| {
                                    ApiError::bad(format!("reading the upload: {e}"))
                                })?);
                        }
                        Some("file") => {
                            if uploaded.is_some() {
                                return Err(ApiError::bad("one file per upload").param("file"));
                            }
                            uploaded = Some(self.convert_upload(field, key).await?);
                        }
                        _ => {}
                    }
                }
                if uploaded.is_none() {
                    return Err(ApiError::bad("missing the `file` field").param("file"));
                }
                match purpose.as_deref() {
                    Some("batch") => Ok(()),
                    other => Err(ApiError::bad(format!(
                    "purpose {other:?}: this server stores batch input files only (purpose=batch)"
                ))
                    .param("purpose")),
                }
            }
            .await;
        let (mut file, prepared) = match (checked, uploaded) {
            (Ok(()), Some(u)) => u,
            (result, uploaded) => {
                if let Some((_, prepared)) = uploaded {
                    prepared.abort().await;
                }
                return Err(result
                    .err()
                    .unwrap_or_else(|| ApiError::bad("missing the `file` field")));
            }
        };
        // From here on the upload is stored whole or not at all, even if the client goes away
        // (which drops this future): the commit and the record run in a task of their own.
        let this = Arc::clone(self);
        let stored = tokio::spawn(async move {
            prepared
                .commit()
                .await
                .map_err(|e| ApiError::internal(format!("storing the upload: {e}")))?;
            file.purpose = "batch".into();
            if let Err(e) = this.save_file(&file).await {
                // A folder without its record would be a tenant's data no one can see or delete.
                this.remove_folder(&file.id).await;
                return Err(ApiError::internal(e));
            }
            Ok(file)
        });
        let file = stored
            .await
            .map_err(|e| ApiError::internal(format!("storing the upload: {e}")))??;
        Ok(ok(&file_object(&file)))
    }

    /// Removes everything of an upload's folder.
    async fn remove_folder(&self, id: &str) {
        let prefix = file_folder(id);
        match self.staging.list(&prefix).await {
            Ok(listing) => {
                for entry in listing {
                    if let Err(e) = self.staging.delete(&entry.path).await {
                        tracing::warn!("removing {}: {e}", self.staging.uri(&entry.path));
                    }
                }
            }
            Err(e) => tracing::warn!("listing {}: {e}", self.staging.uri(&prefix)),
        }
    }

    /// Streams one uploaded file through the converter into a new batch folder, written in full
    /// and not yet committed.
    async fn convert_upload(
        &self,
        mut field: multer::Field<'_>,
        key: &ApiKey,
    ) -> Result<(FileRecord, PreparedConversion)> {
        let filename = field.file_name().unwrap_or("upload.jsonl").to_owned();
        // The first line names the model, which decides the body format of every record.
        let mut head = Vec::new();
        while !head.contains(&b'\n') {
            match field
                .chunk()
                .await
                .map_err(|e| ApiError::bad(format!("reading the upload: {e}")))?
            {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => break,
            }
            if head.len() > 32 << 20 {
                return Err(ApiError::bad("the first line is longer than 32 MiB"));
            }
        }
        let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = first.strip_prefix(crate::record::BOM).unwrap_or(first);
        let line: Value = serde_json::from_slice(first)
            .map_err(|e| ApiError::bad(format!("line 1 is not JSON: {e}")))?;
        let model = line["body"]["model"].as_str().ok_or_else(|| {
            ApiError::bad(
                "line 1: body.model is missing; each request names one of the configured models",
            )
        })?;
        let endpoint = line["url"].as_str().unwrap_or_default().to_owned();
        let alias = self.config.models.get(model).ok_or_else(|| {
            let names: Vec<&str> = self.config.models.keys().map(String::as_str).collect();
            ApiError::bad(format!(
                "model '{model}' is not available here (configured: {})",
                names.join(", ")
            ))
            .param("model")
        })?;
        if !key.allows(model) {
            let mut e = ApiError::new(
                StatusCode::FORBIDDEN,
                format!("This API key may not use model '{model}'."),
            );
            e.code = Some("model_not_allowed");
            return Err(e);
        }
        let family = alias.family().map_err(ApiError::internal)?;
        let mut opts = ToBedrockOptions::with_family(&alias.model_id, family);
        opts.allow_small = true;
        opts.source = InputIdentity::named(&filename);
        let id = new_id("file-");
        let location =
            Location::parse(&self.staging.uri(&file_folder(&id))).map_err(ApiError::internal)?;
        let dest = self
            .storage
            .folder(&location)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let folder = FolderWriter::open(dest, &LockOptions::for_command("serve"))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let writer = match folder
            .start_generation(opts.conversion(), opts.source.clone(), Replace::Refuse)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
        {
            Start::New(writer) => writer,
            Start::Same(folder) => {
                folder.release().await;
                return Err(ApiError::internal(format!(
                    "{id}: a new file's folder is in use"
                )));
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Upload>(4);
        let conversion = tokio::spawn(async move {
            prepare_to_bedrock(ChannelSource(rx), BedrockOutput::Folder(writer), &opts).await
        });
        let mut bytes = head.len() as u64;
        let feed = async {
            if tx.send(Upload::Data(Bytes::from(head))).await.is_err() {
                return Ok(());
            }
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        bytes += chunk.len() as u64;
                        if tx.send(Upload::Data(chunk)).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(None) => {
                        let _ = tx.send(Upload::End).await;
                        return Ok(());
                    }
                    Err(e) => {
                        let message = format!("reading the upload: {e}");
                        let _ = tx.send(Upload::Broken(message.clone())).await;
                        return Err(ApiError::bad(message));
                    }
                }
            }
        };
        let fed = feed.await;
        drop(tx);
        let prepared = conversion
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::bad(format!("converting the upload: {e}")));
        let prepared = match (fed, prepared) {
            (Ok(()), Ok(p)) => p,
            (Err(e), prepared) => {
                if let Ok(p) = prepared {
                    p.abort().await;
                }
                return Err(e);
            }
            (Ok(()), Err(e)) => return Err(e),
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
            owner: key.name.clone(),
            model: model.to_owned(),
            endpoint,
            batch: None,
            deleted: false,
        };
        Ok((record, prepared))
    }

    async fn owned_file(&self, id: &str, key: &ApiKey) -> Result<FileRecord> {
        match self.file(id).await.map_err(ApiError::internal)? {
            Some(f) if f.owner == key.name => Ok(f),
            _ => Err(ApiError::not_found("file", id)),
        }
    }

    async fn list_files(&self, key: &ApiKey) -> Result<Response<Body>> {
        let mut files = self.files().await.map_err(ApiError::internal)?;
        files.retain(|f| f.owner == key.name);
        files.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let mut data: Vec<Value> = files.iter().map(file_object).collect();
        for b in self.batches().await.map_err(ApiError::internal)? {
            if b.owner == key.name {
                if let Some((out, err)) = self.result_files(&b).await? {
                    data.push(out);
                    data.push(err);
                }
            }
        }
        Ok(ok(
            &json!({"object": "list", "data": data, "has_more": false}),
        ))
    }

    async fn get_file(&self, id: &str, key: &ApiKey) -> Result<Response<Body>> {
        if let Some((batch_id, which)) = output_file(id) {
            let b = self
                .owned_batch(&batch_id, key)
                .await
                .map_err(|_| ApiError::not_found("file", id))?;
            let (out, err) = self
                .result_files(&b)
                .await?
                .ok_or_else(|| ApiError::not_found("file", id))?;
            return Ok(ok(if which == Output::Results { &out } else { &err }));
        }
        let f = self.owned_file(id, key).await?;
        Ok(ok(&file_object(&f)))
    }

    async fn delete_file(&self, id: &str, key: &ApiKey) -> Result<Response<Body>> {
        let _held = self.lock(id).lock_owned().await;
        let mut f = self.owned_file(id, key).await?;
        f.deleted = true;
        self.save_file(&f).await.map_err(ApiError::internal)?;
        Ok(ok(&json!({"id": id, "object": "file", "deleted": true})))
    }

    async fn file_content(&self, id: &str, key: &ApiKey) -> Result<Response<Body>> {
        let Some((batch_id, which)) = output_file(id) else {
            self.owned_file(id, key).await?;
            return Err(ApiError::bad(
                "input files are converted as they are uploaded and not kept; the content of a batch's output and error files can be downloaded",
            ));
        };
        let b = self
            .owned_batch(&batch_id, key)
            .await
            .map_err(|_| ApiError::not_found("file", id))?;
        let folder = self.folder_of(&b).await?;
        if folder.results_unsettled() {
            // Retried by clients (the OpenAI SDK retries a 503): the commit takes moments.
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the batch's results are being committed; try again in a moment",
            ));
        }
        let results = folder
            .results()
            .ok_or_else(|| ApiError::not_found("file", id))?;
        let (uri, name) = if which == Output::Results {
            (&results.output, "output.jsonl")
        } else {
            (&results.errors, "errors.jsonl")
        };
        // The record says where the files are; the server reads only its own place for them.
        let expected = self
            .staging
            .uri(&format!("{}results/{name}", file_folder(&b.input_file_id)));
        if *uri != expected {
            return Err(ApiError::internal(format!(
                "batch {}: its results record names {uri}, not {expected}; not served",
                b.id
            )));
        }
        let location = Location::parse(uri).map_err(ApiError::internal)?;
        let (source, _) = self
            .storage
            .open(&location)
            .await
            .map_err(|e| ApiError::internal(format!("{uri}: {e}")))?;
        let stream = futures::stream::unfold(source, |mut s: Box<dyn ChunkSource>| async move {
            match s.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(Frame::data(chunk)), s)),
                Ok(None) => None,
                Err(e) => Some((Err(e), s)),
            }
        });
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/octet-stream")
            .body(StreamBody::new(stream).boxed_unsync())
            .expect("a valid response"))
    }

    /// The File objects of a batch's output and error files, once collected.
    async fn result_files(&self, b: &BatchRecord) -> Result<Option<(Value, Value)>> {
        if b.failure.is_some() {
            return Ok(None);
        }
        let folder = self.folder_of(b).await?;
        let Some(r) = folder.results() else {
            return Ok(None);
        };
        let (out_id, err_id) = output_ids(&b.id);
        let object = |id: &str, name: &str, purpose: &str| {
            json!({"id": id, "object": "file", "bytes": Value::Null, "created_at": r.finished_at,
                   "filename": name, "purpose": purpose, "status": "processed", "status_details": null})
        };
        Ok(Some((
            object(&out_id, "batch_output.jsonl", "batch_output"),
            object(&err_id, "batch_errors.jsonl", "batch_output"),
        )))
    }

    // ---- batches ----

    async fn owned_batch(&self, id: &str, key: &ApiKey) -> Result<BatchRecord> {
        match self.batch(id).await.map_err(ApiError::internal)? {
            Some(b) if b.owner == key.name => Ok(b),
            _ => Err(ApiError::not_found("batch", id)),
        }
    }

    async fn folder_of(&self, b: &BatchRecord) -> Result<BatchFolder> {
        self.folder_of_file(&b.input_file_id).await
    }

    fn settings(&self, timeout_hours: i32) -> SubmitSettings {
        SubmitSettings {
            role_arn: self.config.role_arn.clone(),
            job_name: None,
            timeout_hours,
            kms_key_id: self.config.kms_key_id.clone(),
            ..Default::default()
        }
    }

    async fn create_batch(&self, body: Value, key: &ApiKey) -> Result<Response<Body>> {
        let field = |name: &'static str| {
            body[name].as_str().ok_or_else(|| {
                ApiError::bad(format!("Missing required parameter: '{name}'.")).param(name)
            })
        };
        let input_file_id = field("input_file_id")?.to_owned();
        let endpoint = field("endpoint")?.to_owned();
        let window = field("completion_window")?.to_owned();
        let hours = timeout_hours(&window)
            .map_err(|e| ApiError::bad(e.message).param("completion_window"))?;
        let metadata: Option<BTreeMap<String, String>> =
            match &body["metadata"] {
                Value::Null => None,
                v => Some(serde_json::from_value(v.clone()).map_err(|_| {
                    ApiError::bad("metadata: an object of strings").param("metadata")
                })?),
            };
        let _held = self.lock(&input_file_id).lock_owned().await;
        let mut file = self.owned_file(&input_file_id, key).await?;
        if file.endpoint != endpoint {
            return Err(ApiError::bad(format!(
                "endpoint {endpoint}: the file's requests are for {}",
                file.endpoint
            ))
            .param("endpoint"));
        }
        if let Some(existing) = &file.batch {
            return Err(ApiError::bad(format!(
                "file {input_file_id} already runs as batch {existing}; upload it again for another batch"
            ))
            .param("input_file_id"));
        }
        if !key.allows(&file.model) {
            let mut e = ApiError::new(
                StatusCode::FORBIDDEN,
                format!("This API key may not use model '{}'.", file.model),
            );
            e.code = Some("model_not_allowed");
            return Err(e);
        }
        let mut folder = self.folder_of_file(&input_file_id).await?;
        let mut record = BatchRecord {
            id: new_id("batch_"),
            input_file_id: input_file_id.clone(),
            owner: key.name.clone(),
            endpoint,
            completion_window: window,
            metadata,
            created_at: now(),
            failure: None,
            cancel_requested_at: None,
        };
        let counts = folder.manifest().counts.clone();
        let failure = if counts.rejected > 0 {
            Some(self.rejected_errors(&folder).await?)
        } else if counts.records < crate::pipeline::MIN_RECORDS_PER_JOB {
            Some(vec![BatchError {
                code: "too_few_requests".into(),
                message: format!(
                    "Bedrock batch inference needs at least {} requests in a batch; this file has {}.",
                    crate::pipeline::MIN_RECORDS_PER_JOB,
                    counts.records
                ),
                param: None,
                line: None,
            }])
        } else {
            None
        };
        match failure {
            Some(errors) => {
                record.failure = Some(failed_batch(&record, &file, counts.records, errors));
            }
            None => {
                folder
                    .submit(&self.driver, &self.settings(hours), 20)
                    .await
                    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
            }
        }
        self.save_batch(&record).await.map_err(ApiError::internal)?;
        file.batch = Some(record.id.clone());
        self.save_file(&file).await.map_err(ApiError::internal)?;
        let view = self.batch_view(&record).await?;
        Ok(ok(
            &serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?
        ))
    }

    async fn folder_of_file(&self, file_id: &str) -> Result<BatchFolder> {
        let location = Location::parse(&self.staging.uri(&file_folder(file_id)))
            .map_err(ApiError::internal)?;
        let dest = self
            .storage
            .folder(&location)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(BatchFolder::open(dest)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .with_lock_options(LockOptions::for_command("serve")))
    }

    /// The file's rejected lines as batch errors (the first 1,000), the way OpenAI reports a
    /// file that failed validation.
    async fn rejected_errors(&self, folder: &BatchFolder) -> Result<Vec<BatchError>> {
        let raw = folder
            .reader()
            .rejected()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
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

    /// The Batch object as a client sees it: our ids, its metadata, `finalizing` until the
    /// results are converted.
    pub(crate) async fn batch_view(&self, b: &BatchRecord) -> Result<BatchObject> {
        if let Some(failure) = &b.failure {
            return Ok(failure.clone());
        }
        let folder = self.folder_of(b).await?;
        let jobs = folder
            .jobs(&self.driver)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
        let ended = folder.pending() == 0 && jobs.iter().all(|j| j.status.is_terminal());
        let finalizing = (ended && folder.results().is_none()).then(now);
        let mut view = folder.batch_object(&jobs, finalizing);
        view.id = b.id.clone();
        view.input_file_id = b.input_file_id.clone();
        view.completion_window = b.completion_window.clone();
        view.created_at = b.created_at;
        view.metadata = b.metadata.clone().unwrap_or_default();
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

    async fn list_batches(
        &self,
        query: &BTreeMap<String, String>,
        key: &ApiKey,
    ) -> Result<Response<Body>> {
        let limit = match query.get("limit") {
            None => 20,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| ApiError::bad("limit: 1 to 100").param("limit"))?,
        };
        let mut all = self.batches().await.map_err(ApiError::internal)?;
        all.retain(|b| b.owner == key.name);
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let start = match query.get("after") {
            Some(after) => all
                .iter()
                .position(|b| &b.id == after)
                .map_or(all.len(), |i| i + 1),
            None => 0,
        };
        let page: Vec<&BatchRecord> = all.iter().skip(start).take(limit).collect();
        let has_more = start + page.len() < all.len();
        let mut data = Vec::with_capacity(page.len());
        for b in &page {
            data.push(
                serde_json::to_value(self.batch_view(b).await?)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
        Ok(ok(&json!({
            "object": "list",
            "data": data,
            "first_id": page.first().map(|b| &b.id),
            "last_id": page.last().map(|b| &b.id),
            "has_more": has_more,
        })))
    }

    async fn cancel_batch(&self, id: &str, key: &ApiKey) -> Result<Response<Body>> {
        let _held = self.lock(id).lock_owned().await;
        let mut b = self.owned_batch(id, key).await?;
        if b.failure.is_none() {
            let folder = self.folder_of(&b).await?;
            for rec in folder.job_records().iter().flatten() {
                self.driver
                    .stop(&rec.job_arn)
                    .await
                    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
            }
            if b.cancel_requested_at.is_none() {
                b.cancel_requested_at = Some(now());
                self.save_batch(&b).await.map_err(ApiError::internal)?;
            }
        }
        let view = self.batch_view(&b).await?;
        Ok(ok(
            &serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?
        ))
    }

    /// One round of the background task: for every batch still running, submit what waits for
    /// a slot; for every batch whose jobs have all ended, convert the results.
    pub(crate) async fn advance_all(&self) -> std::result::Result<(), String> {
        for b in self.batches().await? {
            if b.failure.is_some() {
                continue;
            }
            // One batch in trouble (Bedrock or S3 refusing it) must not hold up the others.
            if let Err(e) = self.advance(&b).await {
                tracing::warn!(batch = b.id, "{e}");
            }
        }
        Ok(())
    }

    async fn advance(&self, b: &BatchRecord) -> std::result::Result<(), String> {
        let _held = self.lock(&b.id).lock_owned().await;
        let mut folder = self.folder_of(b).await.map_err(|e| e.message)?;
        if folder.results().is_some() {
            return Ok(());
        }
        if folder.results_unsettled() {
            // Not "no results": a commit is under way, or a killed one waits to be put back.
            return folder.settle().await.map_err(|e| e.to_string());
        }
        if folder.pending() > 0 && b.cancel_requested_at.is_none() {
            let hours = timeout_hours(&b.completion_window).unwrap_or(24);
            folder
                .submit(&self.driver, &self.settings(hours), 20)
                .await
                .map_err(|e| e.to_string())?;
        }
        let jobs = folder.jobs(&self.driver).await.map_err(|e| e.to_string())?;
        if folder.pending() > 0 || !jobs.iter().all(|j| j.status.is_terminal()) {
            return Ok(());
        }
        let results = |name: &str| {
            Location::parse(
                &self
                    .staging
                    .uri(&format!("{}results/{name}", file_folder(&b.input_file_id))),
            )
        };
        let collected = folder
            .collect(
                &self.storage,
                &jobs,
                &results("output.jsonl")?,
                &results("errors.jsonl")?,
                &Default::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            batch = b.id,
            succeeded = collected.report.succeeded,
            failed = collected.report.failed,
            missing = collected.report.missing,
            "results ready"
        );
        Ok(())
    }
}

/// Which of a batch's files an output file id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Results,
    Errors,
}

/// The output and error file ids of a batch.
fn output_ids(batch_id: &str) -> (String, String) {
    let suffix = batch_id.trim_start_matches("batch_");
    (format!("file-out-{suffix}"), format!("file-err-{suffix}"))
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
        "status": "processed",
        "status_details": null,
    })
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

async fn read_json_body(req: Request<Incoming>) -> Result<Value> {
    let bytes = http_body_util::Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| ApiError::bad(format!("reading the request: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad(format!("the request is not JSON: {e}")))
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
