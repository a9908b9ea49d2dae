//! The streaming engine shared by both directions: read → frame → convert blocks in parallel on
//! rayon → hand results on in input order. A direction plugs in what a block becomes
//! ([`BlockJob`], usually the line loop of [`super::lines`]) and what is done with it, in order
//! ([`Commit`]).
//!
//! At most `in_flight` blocks are read but not yet committed, which bounds memory to about
//! `in_flight × (block size + its output)` whatever the input size, and gives backpressure: a slow
//! sink stops the reading.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::framer::{Block, Frame, Framer};
use super::Error;
use crate::io::ChunkSource;

/// Per-block work, run on the rayon pool. Must be pure: it sees one block and nothing else.
pub(crate) trait BlockJob: Send + Sync + 'static {
    /// The converted block.
    type Output: Send + 'static;
    /// Converts whole lines.
    fn convert(&self, block: Block) -> Self::Output;
    /// Accounts for a line dropped for its length.
    fn oversized(&self, line: u64, bytes: u64) -> Self::Output;
}

/// Engine settings.
#[derive(Clone)]
pub(crate) struct EngineConfig {
    /// The input's name, for messages.
    pub input: String,
    pub block_size: usize,
    pub max_line: usize,
    pub pool: Option<Arc<rayon::ThreadPool>>,
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

/// A dedicated worker pool of `threads` threads, or `None` for rayon's global pool.
pub(crate) fn worker_pool(threads: Option<usize>) -> Result<Option<Arc<rayon::ThreadPool>>, Error> {
    match threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("convert-{i}"))
            .build()
            .map(|p| Some(Arc::new(p)))
            .map_err(|_| Error::Pool(n)),
        None => Ok(None),
    }
}

impl EngineConfig {
    fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
    }
}

enum Pending<T> {
    Ready(T),
    Running(oneshot::Receiver<std::thread::Result<T>>),
}

/// The in-order stage that receives each block's output. A trait with a boxed `Send` future
/// rather than an async closure, so that a whole conversion is a `Send` future: callers can spawn
/// it on a multi-threaded runtime.
pub(crate) trait Commit<O>: Send {
    /// Takes the next block's output, in input order.
    fn commit(&mut self, output: O) -> futures::future::BoxFuture<'_, Result<(), Error>>;
}

/// Streams `source` through `job`, calling `commit` with each block's output in input order.
/// Returns the number of bytes read.
pub(crate) async fn run<J, C>(
    mut source: impl ChunkSource,
    job: Arc<J>,
    cfg: &EngineConfig,
    committer: &mut C,
) -> Result<u64, Error>
where
    J: BlockJob,
    C: Commit<J::Output>,
{
    // Memory follows the blocks in flight, so more threads than the machine can run buy nothing
    // but memory: count at most four per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let in_flight = cfg.threads().clamp(1, cores * 4) * 2 + 2;
    let mut framer = Framer::new(cfg.block_size, cfg.max_line);
    let mut pending: VecDeque<Pending<J::Output>> = VecDeque::with_capacity(in_flight);
    let mut bytes_in = 0u64;
    let mut eof = false;
    loop {
        // Keep the pool busy: frame and dispatch until enough blocks are in flight.
        while pending.len() < in_flight {
            match framer.next_frame() {
                Some(Frame::Block(block)) => pending.push_back(dispatch(&job, block, cfg)),
                Some(Frame::Oversized { line, bytes, .. }) => {
                    pending.push_back(Pending::Ready(job.oversized(line, bytes)))
                }
                None if eof => break,
                None => match source.next_chunk().await.map_err(|source| Error::Read {
                    input: cfg.input.clone(),
                    source,
                })? {
                    Some(chunk) => {
                        bytes_in += chunk.len() as u64;
                        if let Some(progress) = &cfg.progress {
                            progress(bytes_in);
                        }
                        framer.push(chunk);
                    }
                    None => {
                        eof = true;
                        framer.finish();
                    }
                },
            }
        }
        let Some(front) = pending.pop_front() else {
            break;
        };
        let output = match front {
            Pending::Ready(output) => output,
            Pending::Running(rx) => match rx.await {
                Ok(Ok(output)) => output,
                _ => return Err(Error::Panicked),
            },
        };
        committer.commit(output).await?;
    }
    Ok(bytes_in)
}

fn dispatch<J: BlockJob>(job: &Arc<J>, block: Block, cfg: &EngineConfig) -> Pending<J::Output> {
    let (tx, rx) = oneshot::channel();
    let job = Arc::clone(job);
    let work = move || {
        // A panic here is a bug; catch it so the run fails cleanly instead of aborting the process.
        let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(|| {
            job.convert(block)
        })));
    };
    match &cfg.pool {
        Some(pool) => pool.spawn(work),
        None => rayon::spawn(work),
    }
    Pending::Running(rx)
}
