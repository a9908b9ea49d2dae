//! A folder that fails on purpose: the `n`-th write-side operation (create, write, seal,
//! commit, finish) returns an error — or ends the whole process on the spot, as SIGKILL would —
//! so a test can break a conversion or a commit at every step and check what is left.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bedrock_batch::io::{
    ChunkSource, Committed, Destination, JournalEntry, JournalPlace, Listed, LockAttempt,
    ObjectWriter,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;

#[derive(Default)]
struct Counter {
    ops: AtomicU64,
    fail_at: AtomicU64,
    /// At the chosen step, end the process instead of failing the operation.
    crash: bool,
}

impl Counter {
    /// Counts one operation; fails it when it is the chosen one.
    fn step(&self, what: &str) -> io::Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            if self.crash {
                // No destructors, no flushing, no clean-up: what a kill leaves.
                std::process::abort();
            }
            return Err(io::Error::other(format!(
                "injected failure of {what} (step {n})"
            )));
        }
        Ok(())
    }
}

/// A destination whose `fail_at`-th write-side operation fails.
#[derive(Clone)]
pub struct FaultyDir {
    inner: Arc<dyn Destination>,
    counter: Arc<Counter>,
}

impl FaultyDir {
    pub fn new(inner: impl Destination + 'static, fail_at: u64) -> Self {
        Self::with(inner, fail_at, false)
    }

    /// One whose `crash_at`-th write-side operation ends the process.
    pub fn crashing(inner: impl Destination + 'static, crash_at: u64) -> Self {
        Self::with(inner, crash_at, true)
    }

    fn with(inner: impl Destination + 'static, at: u64, crash: bool) -> Self {
        let counter = Counter {
            crash,
            ..Counter::default()
        };
        counter.fail_at.store(at, Ordering::SeqCst);
        FaultyDir {
            inner: Arc::new(inner),
            counter: Arc::new(counter),
        }
    }

    /// `w` (a writer not made by this folder) with its steps counted, and failed or crashed, as
    /// this folder's are.
    pub fn wrap(&self, w: Box<dyn ObjectWriter>) -> Box<dyn ObjectWriter> {
        Box::new(FaultyWriter {
            inner: w,
            counter: Arc::clone(&self.counter),
        })
    }

    /// Operations counted so far.
    pub fn ops(&self) -> u64 {
        self.counter.ops.load(Ordering::SeqCst)
    }
}

impl Destination for FaultyDir {
    fn create(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ObjectWriter>>> {
        let rel = rel.to_owned();
        async move {
            self.counter.step(&format!("create {rel}"))?;
            let inner = self.inner.create(&rel).await?;
            Ok(Box::new(FaultyWriter {
                inner,
                counter: Arc::clone(&self.counter),
            }) as Box<dyn ObjectWriter>)
        }
        .boxed()
    }
    fn read_small(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        self.inner.read_small(rel)
    }
    fn uri(&self, rel: &str) -> String {
        self.inner.uri(rel)
    }
    fn list(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<Listed>>> {
        self.inner.list(prefix)
    }
    fn children(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<String>>> {
        self.inner.children(prefix)
    }
    fn open(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ChunkSource>>> {
        self.inner.open(rel)
    }
    fn delete(&self, rel: &str) -> BoxFuture<'_, io::Result<()>> {
        self.inner.delete(rel)
    }
    fn lock(
        &self,
        rel: &str,
        holder: Bytes,
        take_over: Option<String>,
    ) -> BoxFuture<'_, io::Result<LockAttempt>> {
        self.inner.lock(rel, holder, take_over)
    }
    fn clean_up(&self, owned: fn(&str) -> bool) -> BoxFuture<'_, io::Result<u64>> {
        self.inner.clean_up(owned)
    }
}

struct FaultyWriter {
    inner: Box<dyn ObjectWriter>,
    counter: Arc<Counter>,
}

impl ObjectWriter for FaultyWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        async move {
            self.counter.step(&format!("write {}", self.inner.name()))?;
            self.inner.write(chunk).await
        }
        .boxed()
    }
    fn seal(&mut self) -> BoxFuture<'_, io::Result<()>> {
        async move {
            self.counter.step(&format!("seal {}", self.inner.name()))?;
            self.inner.seal().await
        }
        .boxed()
    }
    fn finish(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async move {
            self.counter
                .step(&format!("finish {}", self.inner.name()))?;
            self.inner.finish().await
        }
        .boxed()
    }
    fn commit(self: Box<Self>) -> BoxFuture<'static, io::Result<Box<dyn Committed>>> {
        async move {
            self.counter
                .step(&format!("commit {}", self.inner.name()))?;
            self.inner.commit().await
        }
        .boxed()
    }
    fn abort(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        self.inner.abort()
    }
    fn journal_entry(&mut self) -> BoxFuture<'_, io::Result<Option<JournalEntry>>> {
        self.inner.journal_entry()
    }
    fn journal_place(&self) -> Option<JournalPlace> {
        self.inner.journal_place()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
}
