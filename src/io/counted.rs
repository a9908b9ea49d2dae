//! An [`ObjectWriter`] that counts the bytes written through it — how a file's size is known
//! without asking the storage afterwards — and can keep a copy of them in an anonymous local
//! temporary file, so that what was written can be read again locally (results split per
//! input) without reading the object back, and before it is committed.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{Committed, JournalEntry, JournalPlace, ObjectWriter};

/// A local copy being written: a buffered temporary file, or the error that stopped it.
type Spool = Arc<Mutex<io::Result<io::BufWriter<File>>>>;

/// Wraps a writer; [`Counted::counter`] reads how many bytes went through it, and
/// [`Counted::copy`] gives back the local copy of a writer made [`with_copy`](Counted::with_copy).
pub struct Counted {
    inner: Box<dyn ObjectWriter>,
    bytes: Arc<AtomicU64>,
    copy: Option<Spool>,
}

/// The local copy of what went through a [`Counted`] writer.
pub struct WrittenCopy(Spool);

impl Counted {
    /// Counts what is written to `inner`.
    pub fn new(inner: Box<dyn ObjectWriter>) -> Self {
        Counted {
            inner,
            bytes: Arc::default(),
            copy: None,
        }
    }

    /// Counts what is written to `inner` and copies it into a new temporary file.
    pub fn with_copy(inner: Box<dyn ObjectWriter>) -> io::Result<Self> {
        let file = io::BufWriter::with_capacity(1 << 20, tempfile::tempfile()?);
        Ok(Counted {
            copy: Some(Arc::new(Mutex::new(Ok(file)))),
            ..Counted::new(inner)
        })
    }

    /// The count, readable after the writer is handed on.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    /// The copy (of a writer made [`with_copy`](Counted::with_copy)), readable once the
    /// writing is done.
    pub fn copy(&self) -> Option<WrittenCopy> {
        self.copy.clone().map(WrittenCopy)
    }
}

impl WrittenCopy {
    /// The copy, from its start (call it once the writing is done); an error if writing it
    /// failed.
    pub fn into_file(self) -> io::Result<File> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let done = std::mem::replace(&mut *guard, Err(io::Error::other("the copy was taken")));
        let mut file = done?.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        Ok(file)
    }
}

impl ObjectWriter for Counted {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        if let Some(copy) = &self.copy {
            let mut copy = copy.lock().unwrap_or_else(|p| p.into_inner());
            // A local file's buffered write: the page cache takes it at once.
            if let Ok(file) = copy.as_mut() {
                if let Err(e) = file.write_all(&chunk) {
                    *copy = Err(e);
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Destination, MemoryDir};
    use std::io::Read;

    #[tokio::test]
    async fn the_copy_holds_what_was_written_and_the_count_its_size() {
        let dir = MemoryDir::default();
        let mut w = Counted::with_copy(dir.create("a").await.unwrap()).unwrap();
        let (copy, count) = (w.copy().unwrap(), w.counter());
        w.write(Bytes::from_static(b"one\n")).await.unwrap();
        w.write(Bytes::from_static(b"two\n")).await.unwrap();
        Box::new(w).finish().await.unwrap();
        let mut text = String::new();
        copy.into_file().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "one\ntwo\n");
        assert_eq!(count.load(Ordering::Relaxed), 8);
        assert_eq!(dir.read_small("a").await.unwrap().unwrap(), b"one\ntwo\n");
        assert!(Counted::new(dir.create("b").await.unwrap())
            .copy()
            .is_none());
    }
}
