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
//!   `batches/<id>.json`), so a restarted server carries on where it was.

mod config;
mod handlers;
mod state;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

pub use config::{key_hash, ApiKey, ModelAlias, ServerConfig};
pub use state::{BatchRecord, FileRecord};

use crate::driver::Driver;
use crate::io::{Destination, Location, Storage};

/// A response body: JSON, or a file streamed from S3.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The server's shared state.
pub struct Server {
    config: ServerConfig,
    storage: Arc<Storage>,
    driver: Driver,
    staging: Arc<dyn Destination>,
    /// One lock per file or batch id: two requests racing on one batch take turns.
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Server {
    /// A server over `storage` (S3) and `driver` (Bedrock) with `config`.
    pub async fn new(
        config: ServerConfig,
        storage: Arc<Storage>,
        driver: Driver,
    ) -> Result<Arc<Server>, String> {
        config.check()?;
        let location = Location::parse(&config.staging)?;
        let staging = storage
            .folder(&location)
            .await
            .map_err(|e| format!("staging {}: {e}", config.staging))?;
        Ok(Arc::new(Server {
            config,
            storage,
            driver,
            staging,
            locks: Default::default(),
        }))
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(id.to_owned()).or_default())
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting and lets requests in
    /// flight finish. The background task that moves batches along runs meanwhile.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let worker = tokio::spawn(Arc::clone(&self).advance_forever());
        // Each connection task holds a clone; the strong count says how many are open.
        let connections = Arc::new(());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((socket, peer)) = accepted else { continue };
                    let server = Arc::clone(&self);
                    let guard = connections.clone();
                    tokio::spawn(async move {
                        let _guard = guard;
                        let svc = hyper::service::service_fn(move |req| {
                            let server = Arc::clone(&server);
                            async move { Ok::<_, Infallible>(server.handle(req, peer).await) }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), svc)
                        .await;
                    });
                }
                _ = &mut shutdown => break,
            }
        }
        worker.abort();
        // Wait (a little) for the requests in flight.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&connections) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The background task: every poll interval, submits jobs waiting for a slot and collects
    /// the results of batches whose jobs have all ended.
    async fn advance_forever(self: Arc<Self>) {
        let every = self
            .config
            .poll()
            .unwrap_or(std::time::Duration::from_secs(30));
        loop {
            if let Err(e) = self.advance_all().await {
                tracing::warn!("moving batches along: {e}");
            }
            tokio::time::sleep(every).await;
        }
    }
}
