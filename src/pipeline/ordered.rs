//! The streaming engine shared by both directions: read → frame → convert blocks in parallel on
//! rayon → hand results on in input order. A direction plugs in what a block becomes
//! ([`BlockJob`], usually the line loop of [`super::lines`]) and what is done with it, in order
//! ([`Commit`]).
//!
//! A run reads one input or many, one after the other: the blocks of consecutive inputs are in
//! flight together (a thousand small files keep every core busy, as one large file does), and
//! the commit stage is told where each input begins and ends. Blocks never span two inputs.
//!
//! At most `in_flight` blocks are read but not yet committed, which bounds memory to about
//! `in_flight × (block size + its output)` whatever the input size or count, and gives
//! backpressure: a slow sink stops the reading.

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
    /// Accounts for a line dropped for its length, of which `head` is the start.
    fn oversized(&self, line: u64, bytes: u64, head: bytes::Bytes) -> Self::Output;
}

/// Engine settings.
#[derive(Clone)]
pub(crate) struct EngineConfig {
    pub block_size: usize,
    pub max_line: usize,
    /// Lines also end at a carriage return that ends a record (Bedrock's output: see
    /// [`Framer::cutting_cr_records`]).
    pub cr_records: bool,
    pub pool: Option<Arc<rayon::ThreadPool>>,
    /// Called with the bytes read so far, across inputs.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

/// One input of a run.
pub(crate) struct EngineInput<J, S, M> {
    /// Its name, for messages.
    pub name: String,
    /// What its blocks become.
    pub job: Arc<J>,
    /// Its bytes, or why it could not be opened (which ends the run with [`Error::Read`]).
    pub source: std::io::Result<S>,
    /// What the commit stage is told as the input begins.
    pub meta: M,
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

enum Pending<T, M> {
    Ready(T),
    Running(oneshot::Receiver<std::thread::Result<T>>),
    /// An input begins: what the commit stage is told.
    Begin(M),
    /// The input begun last ended after this many bytes.
    End(u64),
}

/// The in-order stage that receives each block's output. A trait with a boxed `Send` future
/// rather than an async closure, so that a whole conversion is a `Send` future: callers can spawn
/// it on a multi-threaded runtime.
pub(crate) trait Commit<O>: Send {
    /// What the stage is told of each input as it begins.
    type Input: Send;
    /// Takes the next block's output, in input order.
    fn commit(&mut self, output: O) -> futures::future::BoxFuture<'_, Result<(), Error>>;
    /// An input begins: its blocks come next.
    fn begin_input(&mut self, input: Self::Input);
    /// The input begun last ended, after `bytes` bytes.
    fn end_input(&mut self, bytes: u64);
}

/// The input being read.
struct Reading<S, J> {
    name: String,
    source: S,
    job: Arc<J>,
    framer: Framer,
    bytes: u64,
    eof: bool,
}

/// Streams each of `inputs` in turn through its job, calling `committer` with each block's
/// output in input order, and with where each input begins and ends. Returns the number of
/// bytes read.
pub(crate) async fn run<J, C, S, I>(
    mut inputs: I,
    cfg: &EngineConfig,
    committer: &mut C,
) -> Result<u64, Error>
where
    J: BlockJob,
    C: Commit<J::Output>,
    S: ChunkSource,
    I: futures::Stream<Item = EngineInput<J, S, C::Input>> + Unpin + Send,
{
    use futures::StreamExt;
    // Memory follows the blocks in flight, so more threads than the machine can run buy nothing
    // but memory: count at most four per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let in_flight = cfg.threads().clamp(1, cores * 4) * 2 + 2;
    let mut pending: VecDeque<Pending<J::Output, C::Input>> = VecDeque::new();
    // Outputs (not input markers) pending: what memory follows.
    let mut outputs = 0usize;
    let mut reading: Option<Reading<S, J>> = None;
    let mut exhausted = false;
    let mut bytes_in = 0u64;
    loop {
        // Keep the pool busy: frame and dispatch until enough blocks are in flight (empty inputs
        // add markers only; those are bounded too).
        while outputs < in_flight && pending.len() < in_flight * 8 {
            let Some(r) = reading.as_mut() else {
                if exhausted {
                    break;
                }
                match inputs.next().await {
                    None => exhausted = true,
                    Some(input) => {
                        let source = input.source.map_err(|source| Error::Read {
                            input: input.name.clone(),
                            source,
                        })?;
                        pending.push_back(Pending::Begin(input.meta));
                        reading = Some(Reading {
                            name: input.name,
                            source,
                            job: input.job,
                            framer: match cfg.cr_records {
                                true => {
                                    Framer::new(cfg.block_size, cfg.max_line).cutting_cr_records()
                                }
                                false => Framer::new(cfg.block_size, cfg.max_line),
                            },
                            bytes: 0,
                            eof: false,
                        });
                    }
                }
                continue;
            };
            match r.framer.next_frame() {
                Some(Frame::Block(block)) => {
                    pending.push_back(dispatch(&r.job, block, cfg));
                    outputs += 1;
                }
                Some(Frame::Oversized {
                    line, bytes, head, ..
                }) => {
                    pending.push_back(Pending::Ready(r.job.oversized(line, bytes, head)));
                    outputs += 1;
                }
                None if r.eof => {
                    pending.push_back(Pending::End(r.bytes));
                    reading = None;
                }
                None => match r.source.next_chunk().await.map_err(|source| Error::Read {
                    input: r.name.clone(),
                    source,
                })? {
                    Some(chunk) => {
                        r.bytes += chunk.len() as u64;
                        bytes_in += chunk.len() as u64;
                        if let Some(progress) = &cfg.progress {
                            progress(bytes_in);
                        }
                        r.framer.push(chunk);
                    }
                    None => {
                        r.eof = true;
                        r.framer.finish();
                    }
                },
            }
        }
        let Some(front) = pending.pop_front() else {
            break;
        };
        let output = match front {
            Pending::Begin(meta) => {
                committer.begin_input(meta);
                continue;
            }
            Pending::End(bytes) => {
                committer.end_input(bytes);
                continue;
            }
            Pending::Ready(output) => output,
            Pending::Running(rx) => match rx.await {
                Ok(Ok(output)) => output,
                _ => return Err(Error::Panicked),
            },
        };
        outputs -= 1;
        committer.commit(output).await?;
    }
    Ok(bytes_in)
}

fn dispatch<J: BlockJob, M>(
    job: &Arc<J>,
    block: Block,
    cfg: &EngineConfig,
) -> Pending<J::Output, M> {
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
