//! An [`ObjectWriter`] that counts the bytes written through it: how a file's size is known
//! without asking the storage afterwards.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{Committed, JournalEntry, JournalPlace, ObjectWriter};

/// Wraps a writer; [`Counted::counter`] reads how many bytes went through it.
pub struct Counted {
    inner: Box<dyn ObjectWriter>,
    bytes: Arc<AtomicU64>,
}

impl Counted {
    /// Counts what is written to `inner`.
    pub fn new(inner: Box<dyn ObjectWriter>) -> Self {
        Counted {
            inner,
            bytes: Arc::default(),
        }
    }

    /// The count, readable after the writer is handed on.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }
}

impl ObjectWriter for Counted {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        let n = chunk.len() as u64;
        Box::pin(async move {
            self.inner.write(chunk).await?;
            self.bytes.fetch_add(n, Ordering::Relaxed);
            Ok(())
        })
    }
    fn seal(&mut self) -> BoxFuture<'_, io::Result<()>> {
        self.inner.seal()
    }
    fn finish(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        self.inner.finish()
    }
    fn commit(self: Box<Self>) -> BoxFuture<'static, io::Result<Box<dyn Committed>>> {
        self.inner.commit()
    }
    fn abort(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        self.inner.abort()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn journal_entry(&mut self) -> BoxFuture<'_, io::Result<Option<JournalEntry>>> {
        self.inner.journal_entry()
    }
    fn journal_place(&self) -> Option<JournalPlace> {
        self.inner.journal_place()
    }
}
