//! `bedrock-batch serve`: the OpenAI Files and Batches API over Bedrock batch inference, so the
//! official OpenAI SDK runs batches on Bedrock unchanged.
//!
//! - `POST /v1/files` streams the upload (multipart, `purpose=batch`) through the to-bedrock
//!   pipeline straight into a batch folder under the staging prefix; the first line's
//!   `body.model` picks the configured model. `GET /v1/files`, `GET /v1/files/{id}`,
//!   `DELETE /v1/files/{id}`, and `GET /v1/files/{id}/content` for a finished batch's output and
//!   error files.
//! - `POST /v1/batches` submits the file's Bedrock jobs (a file with rejected lines makes a
//!   `failed` batch whose `errors` name each line, as OpenAI does), `GET /v1/batches/{id}`,
//!   `GET /v1/batches` (`after`, `limit`, `has_more`), `POST /v1/batches/{id}/cancel`. A
//!   background task submits jobs left waiting for a slot and converts finished batches'
//!   results (`finalizing` meanwhile).
//! - `Authorization: Bearer KEY`, checked against SHA-256 hashes in the configuration; a key sees
//!   only its own files and batches and may use only its models.
//! - All state is in the staging prefix (`files/<id>/file.json` beside the batch folder,
//!   `batches/<id>.json`, an index per key, leases), so a restarted server carries on where it
//!   was, and any number of servers on one prefix behave as one: records change by
//!   compare-and-swap, and background work is done under leases by one server at a time.
//!
//! The rooms: this module builds the router (axum; tower layers for body limits, timeouts and
//! request logs) and runs it; [`auth`] says who calls, [`files`] and [`batches`] answer the
//! routes ([`models`] lists the models a key may use), [`expiry`] reads and enforces expiry
//! policies, [`worker`] moves batches along in the background, [`state`] reads and writes the
//! records, [`error`] turns every error into OpenAI's shape, [`config`] reads the configuration.
//! The server must not convert lines or build batch-folder paths itself: uploads go through the
//! pipeline into a folder the batch-folder module writes, and batches through the driver.

mod auth;
mod batches;
mod config;
mod error;
mod expiry;
mod extract;
mod files;
mod models;
mod state;
mod worker;

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::Layer as _;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::timeout::TimeoutLayer;

pub use config::{key_hash, AliasError, ApiKey, ConfigError, ModelAlias, ServerConfig};
pub use state::{BatchRecord, FileRecord, StateError};

use crate::batch_folder::LockOptions;
use crate::driver::{BatchFolder, Driver, SubmitSettings};
use crate::io::{Location, Storage};
use auth::Caller;
use error::ApiError;
use state::Staging;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The staging prefix is no address.
    #[error(transparent)]
    StagingAddress(#[from] crate::io::NoBucket),
    /// The staging prefix cannot be reached.
    #[error("staging {uri}: {why}")]
    Staging {
        /// The prefix.
        uri: String,
        /// Why (said in the message, not again as a source).
        why: std::io::Error,
    },
}

/// The server's shared state.
pub struct Server {
    config: ServerConfig,
    storage: Arc<Storage>,
    driver: Driver,
    staging: Staging,
    /// Unix seconds when the server started: the `created` of its Model objects.
    started_at: i64,
    /// One lock per file or batch id: two requests racing on one batch take turns.
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This server's name in the leases it takes (unique to this run of it).
    holder: String,
    /// The leases it took, given up when it shuts down.
    leases: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// JSON requests (a batch to create) are small; more is refused.
const JSON_BODY_LIMIT: usize = 1 << 20;

/// How long a request that is not a transfer may take (listing batches asks Bedrock about each
/// one's jobs).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How long requests in flight may finish after a shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Server {
    /// A server over `storage` (S3) and `driver` (Bedrock) with `config`.
    pub async fn new(
        config: ServerConfig,
        storage: Arc<Storage>,
        driver: Driver,
    ) -> Result<Arc<Server>, ServeError> {
        config.check()?;
        let location = Location::parse(&config.staging)?;
        let staging =
            Staging::open(&storage, location)
                .await
                .map_err(|why| ServeError::Staging {
                    uri: config.staging.clone(),
                    why,
                })?;
        Ok(Arc::new(Server {
            config,
            storage,
            driver,
            staging,
            started_at: state::now(),
            locks: Default::default(),
            holder: format!("{}-{}", state::new_id("server-"), std::process::id()),
            leases: Default::default(),
        }))
    }

    /// Notes that this server took the lease `name`.
    fn held(&self, name: &str) {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned());
    }

    /// Notes that this server gave up the lease `name`.
    fn not_held(&self, name: &str) {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
    }

    /// Gives up every lease this server took, so that other servers take its work over at
    /// once instead of when the leases run out.
    async fn release_leases(&self) {
        let names = std::mem::take(
            &mut *self
                .leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for name in names {
            if let Err(e) = self.staging.release_lease(&name, &self.holder).await {
                tracing::warn!(lease = name, "{e}");
            }
        }
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(id.to_owned()).or_default())
    }

    /// The job settings of a batch with a completion window of `timeout_hours`.
    fn settings(&self, timeout_hours: i32) -> SubmitSettings {
        SubmitSettings {
            role_arn: self.config.role_arn.clone(),
            job_name: None,
            timeout_hours,
            kms_key_id: self.config.kms_key_id.clone(),
            ..Default::default()
        }
    }

    /// The batch folder of uploaded file `id`.
    async fn folder_of_file(&self, id: &str) -> Result<BatchFolder, StateError> {
        let location = self.staging.file_folder(id);
        let dest = self
            .storage
            .folder(&location)
            .await
            .map_err(|source| StateError::Io {
                doing: "opening",
                uri: self.staging.uri(&format!("files/{id}/")),
                source,
            })?;
        Ok(BatchFolder::open(dest)
            .await?
            .with_lock_options(LockOptions::for_command("serve")))
    }

    /// The routes and their layers.
    fn router(self: &Arc<Self>) -> Router {
        let json_routes = Router::new()
            .route("/v1/files", get(files::list_files))
            .route(
                "/v1/files/{id}",
                get(files::get_file).delete(files::delete_file),
            )
            .route(
                "/v1/batches",
                post(batches::create_batch).get(batches::list_batches),
            )
            .route("/v1/batches/{id}", get(batches::get_batch))
            .route("/v1/batches/{id}/cancel", post(batches::cancel_batch))
            .route("/v1/models", get(models::list_models))
            .route("/v1/models/{id}", get(models::get_model))
            .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            ));
        // Transfers stream any size for as long as they take.
        let transfers = Router::new()
            .route(
                "/v1/files",
                post(files::upload).layer(DefaultBodyLimit::disable()),
            )
            .route("/v1/files/{id}/content", get(files::file_content));
        json_routes
            .merge(transfers)
            .fallback(unknown_route)
            .method_not_allowed_fallback(unknown_route)
            .layer(middleware::from_fn_with_state(
                Arc::clone(self),
                only_routed_methods,
            ))
            .with_state(Arc::clone(self))
    }

    /// Serves on `listener` until `shutdown` is cancelled, then stops accepting and lets
    /// requests in flight finish (for a while). The background task that moves batches along
    /// runs meanwhile.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let worker = tokio::spawn(worker::advance_forever(
            Arc::clone(&self),
            shutdown.child_token(),
        ));
        // Paths with a trailing slash are the same routes; messages and logs quote the path as
        // the client wrote it.
        let app = NormalizePathLayer::trim_trailing_slash().layer(self.router());
        let app = middleware::from_fn(log_request).layer(app);
        let app =
            axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
        let stopping = shutdown.clone();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopping.cancelled().await })
            .into_future();
        tokio::pin!(served);
        let result = tokio::select! {
            result = &mut served => result,
            // Requests in flight get a while to finish once the shutdown is asked for.
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => Ok(()),
        };
        // Work cut off here is taken up again (every step can be), by this server's next run
        // or, as its leases are given up, by another server at once.
        worker.abort();
        let _ = worker.await;
        self.release_leases().await;
        result
    }
}

/// The path as the client wrote it (before trailing slashes are trimmed for routing).
#[derive(Clone)]
struct WrittenPath(String);

/// Any other path: under `/v1/` the caller is checked first (as on a real route), then told.
async fn unknown_route(State(server): State<Arc<Server>>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let written = parts
        .extensions
        .get::<WrittenPath>()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.0.clone());
    let path = written.trim_end_matches('/');
    if path.trim_start_matches('/').split('/').next() != Some("v1") {
        return ApiError::new(StatusCode::NOT_FOUND, format!("Unknown path {path}"))
            .into_response();
    }
    if let Err(e) = Caller::from_request_parts(&mut parts, &server).await {
        return e.into_response();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Unknown request URL: {} {path}", parts.method),
    )
    .into_response()
}

/// Only the methods routed are answered: HEAD (which axum would answer from a GET route) is an
/// unknown request like any other.
async fn only_routed_methods(
    State(server): State<Arc<Server>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::HEAD {
        return unknown_route(State(server), request).await;
    }
    next.run(request).await
}

/// Logs each request at info: peer, method, path, status and time (never the key); keeps the
/// path as written for messages.
async fn log_request(mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    request.extensions_mut().insert(WrittenPath(path.clone()));
    let mut response = next.run(request).await;
    if response.status() == StatusCode::NOT_FOUND {
        // A method a path does not take is an unknown request, not one with allowed methods.
        response.headers_mut().remove(header::ALLOW);
    }
    tracing::info!(
        peer = peer.map(tracing::field::display),
        %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// A JSON response.
fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A 200 JSON response.
fn ok(value: &Value) -> Response {
    json_response(StatusCode::OK, value)
}
