//! In-memory objects: for embedding the converter where the bytes stay in the process, and for
//! tests.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Committed, Destination, HeldLock, Listed, LockAttempt, LockTakenOver, ObjectWriter};

type Objects = Arc<Mutex<BTreeMap<String, Bytes>>>;

/// A [`Destination`] that keeps finished objects in a map, by relative path.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use bedrock_batch::io::{Destination, MemoryDir};
/// let dir = MemoryDir::default();
/// let mut w = dir.create("a.txt").await.unwrap();
/// w.write(bytes::Bytes::from_static(b"hi")).await.unwrap();
/// assert_eq!(dir.get("a.txt"), None, "not visible before finish");
/// w.finish().await.unwrap();
/// assert_eq!(dir.get("a.txt").unwrap(), "hi");
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryDir {
    objects: Objects,
}

impl MemoryDir {
    /// A finished object's bytes.
    pub fn get(&self, rel: &str) -> Option<Bytes> {
        self.lock().get(rel).cloned()
    }

    /// Stores a finished object directly (for tests and for preparing inputs).
    pub fn put(&self, rel: &str, bytes: impl Into<Bytes>) {
        self.lock().insert(rel.to_owned(), bytes.into());
    }

    /// The relative paths of all finished objects, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Destination for MemoryDir {
    fn create(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ObjectWriter>>> {
        let w = MemoryWriter {
            objects: Arc::clone(&self.objects),
            name: rel.to_owned(),
            buf: BytesMut::new(),
        };
        async move { Ok(Box::new(w) as Box<dyn ObjectWriter>) }.boxed()
    }

    fn read_small(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        let found = self.get(rel).map(|b| b.to_vec());
        async move { Ok(found) }.boxed()
    }

    fn uri(&self, rel: &str) -> String {
        format!("memory:{rel}")
    }

    fn read_versioned(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<super::Versioned>>> {
        let found = self.get(rel).map(|b| super::Versioned {
            version: super::content_version(&b),
            bytes: b.to_vec(),
        });
        async move { Ok(found) }.boxed()
    }

    fn put_if(
        &self,
        rel: &str,
        bytes: Bytes,
        expect: super::Expect,
    ) -> BoxFuture<'_, io::Result<super::Swap>> {
        let swap = {
            let mut objects = self.lock();
            let current = objects.get(rel).map(|b| super::content_version(b));
            if super::as_expected(&expect, current.as_deref()) {
                let version = super::content_version(&bytes);
                objects.insert(rel.to_owned(), bytes);
                super::Swap::Done(version)
            } else {
                super::Swap::Conflict
            }
        };
        async move { Ok(swap) }.boxed()
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<Listed>>> {
        let found: Vec<Listed> = self
            .lock()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && !k.starts_with(super::HOUSEKEEPING))
            .map(|(k, v)| Listed {
                path: k.clone(),
                size: v.len() as u64,
            })
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn children(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<String>>> {
        let mut names: Vec<String> = self
            .lock()
            .keys()
            .filter(|k| !k.starts_with(super::HOUSEKEEPING))
            .filter_map(|k| k.strip_prefix(prefix))
            .map(|rest| match rest.split_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => rest.to_owned(),
            })
            .collect();
        names.dedup();
        async move { Ok(names) }.boxed()
    }

    fn open(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn super::ChunkSource>>> {
        let found = self.get(rel);
        let rel = rel.to_owned();
        async move {
            match found {
                Some(bytes) => {
                    Ok(Box::new(super::BytesSource::new(bytes)) as Box<dyn super::ChunkSource>)
                }
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no object {rel}"),
                )),
            }
        }
        .boxed()
    }

    fn delete(&self, rel: &str) -> BoxFuture<'_, io::Result<()>> {
        self.lock().remove(rel);
        async { Ok(()) }.boxed()
    }

    fn lock(
        &self,
        rel: &str,
        holder: Bytes,
        take_over: Option<String>,
    ) -> BoxFuture<'_, io::Result<LockAttempt>> {
        let mut objects = self.lock();
        let version = |b: &Bytes| format!("{:p}", b.as_ptr());
        let attempt = match (objects.get(rel), &take_over) {
            (Some(held), Some(seen)) if version(held) == *seen => None,
            (Some(held), _) => Some(LockAttempt::Busy {
                holder: held.to_vec(),
                version: Some(version(held)),
            }),
            (None, None) => None,
            (None, Some(_)) => Some(LockAttempt::Released),
        };
        let attempt = attempt.unwrap_or_else(|| {
            // A copy, so its address (the version) is its own.
            let held = Bytes::copy_from_slice(&holder);
            let v = version(&held);
            objects.insert(rel.to_owned(), held);
            LockAttempt::Acquired(Arc::new(MemoryLock {
                objects: Arc::clone(&self.objects),
                rel: rel.to_owned(),
                version: Mutex::new(v),
            }))
        });
        async move { Ok(attempt) }.boxed()
    }

    fn clean_up(&self, _owned: fn(&str) -> bool) -> BoxFuture<'_, io::Result<u64>> {
        // Memory writers leave nothing behind.
        async { Ok(0) }.boxed()
    }
}

/// A lock held in a [`MemoryDir`].
struct MemoryLock {
    objects: Objects,
    rel: String,
    version: Mutex<String>,
}

impl HeldLock for MemoryLock {
    fn refresh(&self, holder: Bytes) -> BoxFuture<'_, io::Result<()>> {
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        let mut version = self.version.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match objects.get(&self.rel) {
            Some(b) if format!("{:p}", b.as_ptr()) == *version => {
                let held = Bytes::copy_from_slice(&holder);
                *version = format!("{:p}", held.as_ptr());
                objects.insert(self.rel.clone(), held);
                Ok(())
            }
            _ => Err(LockTakenOver::error(&self.rel)),
        };
        async move { result }.boxed()
    }

    fn needs_refresh(&self) -> bool {
        false
    }

    fn release(&self) -> BoxFuture<'_, io::Result<()>> {
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        let version = self.version.lock().unwrap_or_else(PoisonError::into_inner);
        if objects
            .get(&self.rel)
            .is_some_and(|b| format!("{:p}", b.as_ptr()) == *version)
        {
            objects.remove(&self.rel);
        }
        async { Ok(()) }.boxed()
    }
}

/// One object being written into a [`MemoryDir`], or on its own with [`MemoryWriter::standalone`].
#[derive(Debug)]
pub struct MemoryWriter {
    objects: Objects,
    name: String,
    buf: BytesMut,
}

impl MemoryWriter {
    /// A writer whose finished bytes can be read from the returned [`MemoryDir`] under `name`.
    pub fn standalone(name: &str) -> (MemoryWriter, MemoryDir) {
        let dir = MemoryDir::default();
        let w = MemoryWriter {
            objects: Arc::clone(&dir.objects),
            name: name.to_owned(),
            buf: BytesMut::new(),
        };
        (w, dir)
    }
}

impl ObjectWriter for MemoryWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        self.buf.extend_from_slice(&chunk);
        async { Ok(()) }.boxed()
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        let me = *self;
        me.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(me.name, me.buf.freeze());
        async { Ok(()) }.boxed()
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, io::Result<Box<dyn Committed>>> {
        let me = *self;
        let before = me
            .objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(me.name.clone(), me.buf.freeze());
        let committed = MemoryCommitted {
            objects: me.objects,
            name: me.name,
            before,
        };
        async move { Ok(Box::new(committed) as Box<dyn Committed>) }.boxed()
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn name(&self) -> String {
        format!("memory:{}", self.name)
    }
}

/// A committed [`MemoryWriter`] and what it replaced.
struct MemoryCommitted {
    objects: Objects,
    name: String,
    before: Option<Bytes>,
}

impl Committed for MemoryCommitted {
    fn undo(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        match self.before {
            Some(b) => objects.insert(self.name, b),
            None => objects.remove(&self.name),
        };
        async { Ok(()) }.boxed()
    }

    fn keep(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async { Ok(()) }.boxed()
    }
}

/// An [`ObjectWriter`] that drops what it is given and counts the bytes: for dry runs and for
/// measuring conversion alone.
#[derive(Debug, Default, Clone)]
pub struct Discard {
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl Discard {
    /// Bytes written so far (through any clone).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ObjectWriter for Discard {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        self.bytes
            .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        async { Ok(()) }.boxed()
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, io::Result<Box<dyn Committed>>> {
        async { Ok(Box::new(super::NothingToUndo) as Box<dyn Committed>) }.boxed()
    }

    fn abort(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn name(&self) -> String {
        "discard".to_owned()
    }
}
