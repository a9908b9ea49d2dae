//! Sources and sinks: where bytes come from and go to.
//!
//! It owns bytes and places — reading, writing, committing several objects together, locks —
//! and must not know what the bytes mean (no JSON, no batch-folder layout).
//!
//! A source is a [`ChunkSource`] (any [`tokio::io::AsyncRead`] through [`reader`]); a sink is
//! an [`ObjectWriter`]; [`Storage`] opens either for a [`Location`]: a local path, `-`, or an
//! `s3://` object or prefix.
//! A sink is an [`ObjectWriter`] (one output object, made visible only by
//! [`ObjectWriter::finish`]) created by a [`Destination`] (a folder of objects). Local files and
//! stdout implement them here; other stores implement the same two traits.

mod counted;
mod journal;
mod local;
mod memory;
mod peeked;
mod run;
mod s3;
mod sized;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use tokio::io::AsyncRead;

pub use counted::{Counted, WrittenCopy};
pub use journal::JournalEntry;
pub(crate) use local::{host_name, pid_alive};
pub use local::{FileSource, LocalDir, LocalFile, StdWriter};

/// The folder every [`Destination`] keeps its own housekeeping in (its lock, and a local folder's
/// temporary files), hidden from [`Destination::list`].
pub const HOUSEKEEPING: &str = ".bedrock-batch";
pub use memory::{Discard, MemoryDir, MemoryWriter};
pub use peeked::Peeked;
pub use run::PendingRun;
pub use s3::{NoBucket, S3Dir, S3Options, S3Source, S3Uri, S3Writer, UploadRegistry};
pub use sized::SizedSource;

/// One output object being written.
///
/// Nothing is visible at the final name until [`finish`](ObjectWriter::finish) or
/// [`commit`](ObjectWriter::commit) succeeds; a writer that is aborted, or dropped without
/// finishing, leaves nothing behind.
pub trait ObjectWriter: Send {
    /// Appends `chunk`.
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>>;
    /// Sends everything written so far on its way, leaving only the commit for
    /// [`finish`](ObjectWriter::finish); nothing becomes visible, and nothing more may be
    /// written. A writer that holds data in memory (an S3 upload's last part) lets go of it here,
    /// so many finished-but-uncommitted objects cost no memory. The default does nothing.
    fn seal(&mut self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Completes the object and makes it visible, replacing whatever was at its name.
    fn finish(self: Box<Self>) -> BoxFuture<'static, io::Result<()>>;
    /// Completes the object like [`finish`](ObjectWriter::finish), but keeps what it replaced
    /// until the returned [`Committed`] is told to [`keep`](Committed::keep) the new object or to
    /// [`undo`](Committed::undo) the commit: how several objects become visible together
    /// ([`commit_all`]).
    fn commit(self: Box<Self>) -> BoxFuture<'static, io::Result<Box<dyn Committed>>>;
    /// Discards everything written.
    fn abort(self: Box<Self>) -> BoxFuture<'static, io::Result<()>>;
    /// Where the object goes, for messages.
    fn name(&self) -> String;
    /// This object's line in the journal of a group commit (see [`commit_all`]): where it goes,
    /// where what it replaces will be kept, and whether something is there now. `None` for
    /// objects no later run can put back (streams, memory).
    fn journal_entry(&mut self) -> BoxFuture<'_, io::Result<Option<JournalEntry>>> {
        Box::pin(async { Ok(None) })
    }
    /// Where a journal naming this object is kept, so that the next run on its folder (or its
    /// name) finds it.
    fn journal_place(&self) -> Option<JournalPlace> {
        None
    }
}

/// Where the journal of a group commit is kept.
#[derive(Clone)]
pub enum JournalPlace {
    /// A local file `DIR/PREFIX<group>.journal`.
    Local {
        /// The directory.
        dir: PathBuf,
        /// What the file name starts with.
        prefix: String,
    },
    /// An S3 object `KEY_PREFIX<group>.journal`.
    S3(s3::S3JournalPlace),
}

impl JournalPlace {
    fn id(&self) -> String {
        match self {
            JournalPlace::Local { dir, prefix } => format!("{}/{prefix}", dir.display()),
            JournalPlace::S3(p) => p.id(),
        }
    }

    async fn write(&self, group: &str, body: Bytes) -> io::Result<()> {
        match self {
            JournalPlace::Local { dir, prefix } => {
                let path = dir.join(format!("{prefix}{group}.journal"));
                tokio::task::spawn_blocking(move || {
                    if let Some(d) = path.parent() {
                        std::fs::create_dir_all(d)?;
                    }
                    std::fs::write(&path, &body)
                })
                .await
                .map_err(io::Error::other)?
            }
            JournalPlace::S3(p) => p.write(group, body).await,
        }
    }

    async fn remove(&self, group: &str) -> io::Result<()> {
        match self {
            JournalPlace::Local { dir, prefix } => {
                match tokio::fs::remove_file(dir.join(format!("{prefix}{group}.journal"))).await {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
            JournalPlace::S3(p) => p.remove(group).await,
        }
    }
}

/// An object made visible by [`ObjectWriter::commit`], with what it replaced still kept aside.
pub trait Committed: Send {
    /// Puts back what was at the name before the commit (or removes the object when there was
    /// nothing).
    fn undo(self: Box<Self>) -> BoxFuture<'static, io::Result<()>>;
    /// Keeps the new object and lets go of what it replaced.
    fn keep(self: Box<Self>) -> BoxFuture<'static, io::Result<()>>;
}

/// A [`Committed`] with nothing kept aside: for streams, which cannot be taken back, and for
/// objects that replaced nothing and need only be removed.
pub(crate) struct NothingToUndo;

impl Committed for NothingToUndo {
    fn undo(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn keep(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Makes several objects visible as one: either all of them are committed, or — when one cannot
/// be — the ones already committed are undone and the rest aborted, so every name holds what it
/// held before. Every writer is sealed first, so the commits themselves are the short, last step.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use bedrock_batch::io::{commit_all, Destination, MemoryDir};
/// let dir = MemoryDir::default();
/// let mut a = dir.create("a").await.unwrap();
/// let mut b = dir.create("b").await.unwrap();
/// a.write("1".into()).await.unwrap();
/// b.write("2".into()).await.unwrap();
/// commit_all(vec![a, b]).await.unwrap();
/// assert_eq!(dir.names(), ["a", "b"]);
/// # });
/// ```
pub async fn commit_all(mut writers: Vec<Box<dyn ObjectWriter>>) -> io::Result<()> {
    for i in 0..writers.len() {
        if let Err(e) = writers[i].seal().await {
            abort_all(writers).await;
            return Err(e);
        }
    }
    let journal = match write_journal(&mut writers).await {
        Ok(j) => j,
        Err(e) => {
            abort_all(writers).await;
            return Err(e);
        }
    };
    let Some(last) = writers.pop() else {
        return Ok(());
    };
    let mut done: Vec<Box<dyn Committed>> = Vec::with_capacity(writers.len());
    let mut rest = writers.into_iter();
    let mut failed = None;
    for w in rest.by_ref() {
        match w.commit().await {
            Ok(c) => done.push(c),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let mut failed = match failed {
        Some(e) => {
            abort_all(rest.chain(std::iter::once(last)).collect()).await;
            Some(e)
        }
        // The last needs no backup: nothing after it can fail.
        None => last.finish().await.err(),
    };
    // The commit point: once the journal is gone, the group stands. (If it cannot be removed,
    // the group is undone here, as a later clean-up would.)
    if failed.is_none() {
        if let Some((group, places)) = &journal {
            for p in places {
                if let Err(e) = p.remove(group).await {
                    failed = Some(io::Error::new(
                        e.kind(),
                        format!("removing a commit's journal: {e}"),
                    ));
                    break;
                }
            }
        }
    }
    match failed {
        None => {
            for c in done {
                // The new objects are in place; a backup that cannot be removed is only clutter.
                if let Err(e) = c.keep().await {
                    tracing::warn!("removing a replaced object's backup: {e}");
                }
            }
            Ok(())
        }
        Some(e) => {
            let mut undo_failed = Vec::new();
            for c in done.into_iter().rev() {
                if let Err(u) = c.undo().await {
                    undo_failed.push(u.to_string());
                }
            }
            if undo_failed.is_empty() {
                if let Some((group, places)) = &journal {
                    for p in places {
                        let _ = p.remove(group).await;
                    }
                }
                Err(e)
            } else {
                // The journal stays: the next clean-up puts back what could not be now.
                Err(io::Error::new(
                    e.kind(),
                    format!(
                        "{e}; and putting back what was there before failed too: {}",
                        undo_failed.join("; ")
                    ),
                ))
            }
        }
    }
}

/// Writes the journal of a group of two or more objects where each one's folder keeps it;
/// returns its name and places.
async fn write_journal(
    writers: &mut [Box<dyn ObjectWriter>],
) -> io::Result<Option<(String, Vec<JournalPlace>)>> {
    if writers.len() < 2 {
        return Ok(None);
    }
    let mut entries = Vec::new();
    let mut places: Vec<JournalPlace> = Vec::new();
    for w in writers.iter_mut() {
        entries.extend(w.journal_entry().await?);
        if let Some(p) = w.journal_place() {
            if !places.iter().any(|q| q.id() == p.id()) {
                places.push(p);
            }
        }
    }
    if entries.is_empty() || places.is_empty() {
        return Ok(None);
    }
    let group = unique_name();
    let body = Bytes::from(journal::encode(&entries));
    for (i, p) in places.iter().enumerate() {
        if let Err(e) = p.write(&group, body.clone()).await {
            for q in &places[..i] {
                let _ = q.remove(&group).await;
            }
            return Err(e);
        }
    }
    Ok(Some((group, places)))
}

/// Aborts every writer, ignoring errors (they are reported by whoever failed first).
pub async fn abort_all(writers: Vec<Box<dyn ObjectWriter>>) {
    for w in writers {
        let _ = w.abort().await;
    }
}

/// An object found by [`Destination::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its path relative to the folder (`/`-separated).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A small object and its version (see [`Destination::read_versioned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its version: opaque, compared whole.
    pub version: String,
}

/// The version of a small object kept where nothing versions it (a local file, memory): a
/// digest of its content, so a compare-and-swap succeeds exactly when the content is still what
/// was read.
pub(crate) fn content_version(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an object whose version is `current` (`None`: absent) is as `expect` says.
pub(crate) fn as_expected(expect: &Expect, current: Option<&str>) -> bool {
    match (expect, current) {
        (Expect::Absent, None) => true,
        (Expect::Version(v), Some(c)) => v == c,
        _ => false,
    }
}

/// What a [`Destination::put_if`] expects to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: the object is created.
    Absent,
    /// The object at this version (as read).
    Version(String),
}

/// What a [`Destination::put_if`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// Written; the object's new version.
    Done(String),
    /// Not written: the object was not as expected (another writer came first).
    Conflict,
}

/// What [`Destination::lock`] found.
pub enum LockAttempt {
    /// The lock is ours until released.
    Acquired(Arc<dyn HeldLock>),
    /// Someone holds it: what they wrote in it, and its version (for a conditional take-over).
    Busy {
        /// The holder's description, as it wrote it.
        holder: Vec<u8>,
        /// An opaque version (an ETag), `None` where taking over is not possible (a local lock
        /// is held by a live process, and ends with it).
        version: Option<String>,
    },
    /// A take-over found no lock: its holder let go of it after it was seen. Nothing was
    /// written; the lock is free to be taken afresh.
    Released,
}

/// What [`HeldLock::refresh`] fails with when another run has taken the lock over, as opposed
/// to a store that could not be reached, which a later renewal may get past.
#[derive(Debug)]
pub struct LockTakenOver(pub String);

impl std::fmt::Display for LockTakenOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LockTakenOver {}

impl LockTakenOver {
    /// `what` (a lock's name), taken over, as an I/O error.
    pub fn error(what: &str) -> io::Error {
        io::Error::other(LockTakenOver(format!(
            "{what}: the lock was taken over by another run"
        )))
    }

    /// Whether `e` says the lock was taken over.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<LockTakenOver>())
    }
}

/// A lock object held by this process.
pub trait HeldLock: Send + Sync {
    /// Rewrites the holder's description (a lease renewal); fails with [`LockTakenOver`] when
    /// the lock was taken over. A renewal whose answer was lost but which landed still counts
    /// as this holder's: a later one is not refused for it.
    fn refresh(&self, holder: Bytes) -> BoxFuture<'_, io::Result<()>>;
    /// Whether [`refresh`](HeldLock::refresh) is needed to keep the lock (a lease on S3; a local
    /// lock lasts as long as the process).
    fn needs_refresh(&self) -> bool;
    /// Lets go of the lock (once; later calls do nothing).
    fn release(&self) -> BoxFuture<'_, io::Result<()>>;
}

/// A folder of objects: a local directory, an S3 prefix, or memory.
pub trait Destination: Send + Sync {
    /// Starts writing the object at `rel` (a `/`-separated path below the folder).
    fn create(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ObjectWriter>>>;
    /// Reads a whole small object (such as `batch.json`); `Ok(None)` when it does not exist.
    fn read_small(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>>;
    /// The folder's URI or path with `rel` appended, for messages and manifests.
    fn uri(&self, rel: &str) -> String;
    /// The finished objects below `prefix` (sorted; all levels), without the folder's own
    /// housekeeping (its lock and temporary files).
    fn list(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<Listed>>>;
    /// The names directly below `prefix` (a `/`-ended folder path, or `""`): objects as they
    /// are, sub-folders with a trailing `/`; sorted, without the folder's housekeeping.
    fn children(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<String>>>;
    /// Opens the object at `rel` for reading.
    fn open(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ChunkSource>>>;
    /// Removes the object at `rel`; one that does not exist is not an error.
    fn delete(&self, rel: &str) -> BoxFuture<'_, io::Result<()>>;
    /// Removes every object below `prefix` (a `/`-ended folder path); returns how many.
    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, io::Result<u64>> {
        let prefix = prefix.to_owned();
        Box::pin(async move {
            use futures::StreamExt;
            let listing = self.list(&prefix).await?;
            let n = listing.len() as u64;
            let mut deletes = futures::stream::iter(listing)
                .map(|entry| async move { self.delete(&entry.path).await })
                .buffer_unordered(16);
            while let Some(result) = deletes.next().await {
                result?;
            }
            Ok(n)
        })
    }
    /// Takes the lock object at `rel`, writing `holder` into it: exclusively (created only if
    /// absent), or — with `take_over` — replacing the holder whose version was seen, and only if
    /// it is still that one ([`LockAttempt::Released`] if there is none any more).
    ///
    /// `holder`, and every body a renewal writes, must be bytes no other run writes (name the
    /// acquisition): a write whose answer was lost is known to have landed by finding them.
    fn lock(
        &self,
        rel: &str,
        holder: Bytes,
        take_over: Option<String>,
    ) -> BoxFuture<'_, io::Result<LockAttempt>>;
    /// Reads a whole small object (a record) with its version — what
    /// [`put_if`](Destination::put_if) compares: an S3 ETag, a local file's content digest;
    /// `Ok(None)` when it does not exist.
    fn read_versioned(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<Versioned>>> {
        let _ = rel;
        Box::pin(async { Err(io::Error::from(io::ErrorKind::Unsupported)) })
    }
    /// Writes the small object at `rel` only if it is as `expect` says — absent, or at the
    /// version read — in one atomic step (S3: `If-None-Match: *` / `If-Match`): a
    /// compare-and-swap, so that of two writers that read the same version, one wins and the
    /// other learns of it ([`Swap::Conflict`]) instead of overwriting it.
    fn put_if(&self, rel: &str, bytes: Bytes, expect: Expect) -> BoxFuture<'_, io::Result<Swap>> {
        let _ = (rel, bytes, expect);
        Box::pin(async { Err(io::Error::from(io::ErrorKind::Unsupported)) })
    }
    /// Removes what writers that died left behind below the folder: temporary files, the
    /// backups of a commit they did not finish (put back when the object they replaced is
    /// missing), and incomplete S3 multipart uploads of the objects `owned` says are the
    /// folder's own (not, say, those another service is writing into it). Call it only while
    /// holding the folder's lock. Returns how many were removed.
    fn clean_up(&self, owned: fn(&str) -> bool) -> BoxFuture<'_, io::Result<u64>>;
}

/// A name for a temporary object that no other writer, in this process or another, uses:
/// `PID.N`.
pub(crate) fn unique_name() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Where an input or output lives, parsed from a command-line argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `-`: stdin or stdout.
    Std,
    /// A local file.
    File(PathBuf),
    /// A local directory (written with a trailing `/`), for batch folders.
    Dir(PathBuf),
    /// An S3 object, or a prefix when the key ends in `/`.
    S3(S3Uri),
}

impl Location {
    /// Parses `-`, `s3://bucket/key`, a path, or a path ending in `/` (a folder).
    ///
    /// ```
    /// use bedrock_batch::io::Location;
    /// assert_eq!(Location::parse("-").unwrap(), Location::Std);
    /// assert!(matches!(Location::parse("out/").unwrap(), Location::Dir(_)));
    /// assert!(matches!(Location::parse("out.jsonl").unwrap(), Location::File(_)));
    /// assert!(Location::parse("s3://bucket/run/").unwrap().is_folder());
    /// assert!(Location::parse("s3:///key").is_err());
    /// ```
    pub fn parse(arg: &str) -> Result<Location, NoBucket> {
        if let Some(uri) = S3Uri::parse(arg) {
            return uri.map(Location::S3);
        }
        Ok(if arg == "-" {
            Location::Std
        } else if arg.ends_with('/') || arg.ends_with(std::path::MAIN_SEPARATOR) {
            Location::Dir(PathBuf::from(arg))
        } else {
            Location::File(PathBuf::from(arg))
        })
    }

    /// Whether this names a folder (a directory or an S3 prefix) rather than one object.
    pub fn is_folder(&self) -> bool {
        match self {
            Location::Dir(_) => true,
            Location::S3(uri) => uri.is_prefix(),
            _ => false,
        }
    }

    /// The object at `rel` inside this folder; a folder when `rel` ends in `/`.
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Dir(dir) => {
                let path = rel
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .fold(dir.clone(), |p, s| p.join(s));
                if rel.ends_with('/') {
                    Location::Dir(path)
                } else {
                    Location::File(path)
                }
            }
            Location::S3(uri) => Location::S3(uri.join(rel)),
            other => other.clone(),
        }
    }
}

impl Location {
    /// Whether `self` and `other` name the same object: the same S3 object, or the same local
    /// file (by path, or through a link: the same device and inode). `-` is never the same as
    /// anything (stdin and stdout are different streams).
    pub fn same_object(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::S3(a), Location::S3(b)) => a == b,
            (Location::File(a), Location::File(b)) => same_file(a, b),
            _ => false,
        }
    }

    /// The path of `self` relative to `folder`, when it lies inside it (`None` otherwise).
    pub fn relative_to(&self, folder: &Location) -> Option<String> {
        match (self, folder) {
            (Location::S3(o), Location::S3(f)) if o.bucket == f.bucket => {
                let prefix = if f.key.is_empty() || f.key.ends_with('/') {
                    f.key.clone()
                } else {
                    format!("{}/", f.key)
                };
                // `.` and `..` segments taken as a path would take them, in case a client or
                // server does.
                let mut key: Vec<&str> = Vec::new();
                for seg in o.key.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            key.pop();
                        }
                        s => key.push(s),
                    }
                }
                key.join("/").strip_prefix(&prefix).map(str::to_owned)
            }
            (Location::File(p) | Location::Dir(p), Location::Dir(d)) => {
                let d = canonical_maybe_missing(d)?;
                let p = resolved_until_inside(p, &d)?;
                let rel = p.strip_prefix(&d).ok()?;
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                Some(parts.join("/"))
            }
            _ => None,
        }
    }
}

/// Where `path` leads: absolute, its links resolved and its `.` and `..` taken as the system
/// takes them, even through parts that do not exist yet (which a writer would create).
fn canonical_maybe_missing(path: &std::path::Path) -> Option<PathBuf> {
    resolve(path, None)
}

/// Where `path` leads, as [`canonical_maybe_missing`] says — except that once it is inside
/// `folder` (itself resolved), the rest is taken as written: a link inside the folder is one of
/// the folder's own names (which a writer replaces), not a way out of it.
fn resolved_until_inside(path: &std::path::Path, folder: &std::path::Path) -> Option<PathBuf> {
    resolve(path, Some(folder))
}

/// The walk both of the above take, component by component from the current directory; below
/// `literal_inside` (when given) nothing is resolved any more.
fn resolve(path: &std::path::Path, literal_inside: Option<&std::path::Path>) -> Option<PathBuf> {
    use std::path::Component;
    let mut cur = std::env::current_dir().ok()?;
    for c in path.components() {
        let inside = literal_inside.is_some_and(|folder| cur.starts_with(folder));
        match c {
            Component::Prefix(_) | Component::RootDir => cur = PathBuf::from(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir if inside => {
                cur.pop();
            }
            Component::ParentDir => {
                // `..` of an existing path is its real parent (a link's target's parent).
                cur = match std::fs::canonicalize(&cur) {
                    Ok(real) => real.parent().map(PathBuf::from).unwrap_or(real),
                    Err(_) => {
                        cur.pop();
                        cur
                    }
                };
            }
            Component::Normal(name) => {
                cur.push(name);
                if !inside {
                    if let Ok(real) = std::fs::canonicalize(&cur) {
                        cur = real;
                    }
                }
            }
        }
    }
    Some(cur)
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    match (canonical_maybe_missing(a), canonical_maybe_missing(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Std => f.write_str("-"),
            Location::File(p) | Location::Dir(p) => write!(f, "{}", p.display()),
            Location::S3(uri) => write!(f, "{uri}"),
        }
    }
}

/// A local file's identity: its canonical path, size and modification time (ns). A FIFO or a
/// device is a stream: nothing tells one read of it from another.
fn file_identity(
    path: &std::path::Path,
    len: u64,
    modified_ns: Option<u128>,
    regular: bool,
) -> ObjectIdentity {
    match modified_ns.filter(|_| regular) {
        Some(ns) => ObjectIdentity {
            location: std::fs::canonicalize(path)
                .ok()
                .map(|p| p.display().to_string()),
            size: Some(len),
            version: Some(format!("mtime:{ns}")),
        },
        None => ObjectIdentity::default(),
    }
}

/// An object opened for reading.
pub struct Opened {
    /// Its bytes.
    pub source: Box<dyn ChunkSource>,
    /// What identifies it.
    pub identity: ObjectIdentity,
}

/// What identifies an object's content, as far as it can be known before reading it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectIdentity {
    /// Where it is, canonically (an absolute path, an `s3://` URI); `None` for a stream.
    pub location: Option<String>,
    /// Its size.
    pub size: Option<u64>,
    /// What changes with its content: a file's modification time, an object's ETag.
    pub version: Option<String>,
}

/// Opens locations of every kind (local paths, `-`, `s3://`), building the S3 client on first
/// use.
pub struct Storage {
    opts: S3Options,
    client: tokio::sync::OnceCell<aws_sdk_s3::Client>,
}

impl Storage {
    /// Storage that reaches S3 with `opts`.
    pub fn new(opts: S3Options) -> Self {
        Storage {
            opts,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// The AWS Region the commands work in, where known before any client is built: `--region`,
    /// else `AWS_REGION`, else `AWS_DEFAULT_REGION` (a profile's region is read only by the SDK).
    pub fn region(&self) -> Option<&str> {
        static FROM_ENV: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        self.opts.region.as_deref().or_else(|| {
            FROM_ENV
                .get_or_init(|| {
                    ["AWS_REGION", "AWS_DEFAULT_REGION"]
                        .iter()
                        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
                })
                .as_deref()
        })
    }

    /// The S3 client (built once).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        self.client.get_or_init(|| self.opts.client()).await.clone()
    }

    /// Opens an object for reading; also returns its size when known.
    pub async fn open(
        &self,
        location: &Location,
    ) -> io::Result<(Box<dyn ChunkSource>, Option<u64>)> {
        let opened = self.open_identified(location).await?;
        Ok((opened.source, opened.identity.size))
    }

    /// Opens an object for reading, with what identifies its content.
    pub async fn open_identified(&self, location: &Location) -> io::Result<Opened> {
        match location {
            Location::Std => Ok(Opened {
                source: Box::new(reader(tokio::io::stdin())),
                identity: ObjectIdentity::default(),
            }),
            Location::File(path) => {
                let file = FileSource::open(path).await?;
                let identity = file_identity(path, file.len(), file.modified(), file.is_regular());
                Ok(Opened {
                    source: Box::new(file),
                    identity,
                })
            }
            Location::S3(uri) if !uri.is_prefix() => {
                let source =
                    S3Source::open(self.s3_client().await, uri.clone(), &self.opts).await?;
                let identity = ObjectIdentity {
                    location: Some(uri.to_string()),
                    size: Some(source.len()),
                    version: Some(format!("etag:{}", source.etag())).filter(|v| v.len() > 5),
                };
                Ok(Opened {
                    source: Box::new(source),
                    identity,
                })
            }
            folder => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{folder} is a folder; give one object"),
            )),
        }
    }

    /// What identifies an object's content, without reading any of it: for a local file one
    /// `stat` (the same identity [`open_identified`](Self::open_identified) gives), for an S3
    /// object its HEAD.
    pub async fn identify(&self, location: &Location) -> io::Result<ObjectIdentity> {
        match location {
            Location::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let meta = std::fs::metadata(&path).map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
                    })?;
                    if meta.is_dir() {
                        return Err(io::Error::new(
                            io::ErrorKind::IsADirectory,
                            format!("cannot open {}: a directory, not a file", path.display()),
                        ));
                    }
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos());
                    Ok(file_identity(&path, meta.len(), modified, meta.is_file()))
                })
                .await
                .map_err(io::Error::other)?
            }
            other => Ok(self.open_identified(other).await?.identity),
        }
    }

    /// Starts writing an object; `std` picks stdout or stderr for `-`.
    pub async fn writer(
        &self,
        location: &Location,
        std: fn() -> StdWriter,
    ) -> io::Result<Box<dyn ObjectWriter>> {
        match location {
            Location::Std => Ok(Box::new(std())),
            Location::File(path) => Ok(Box::new(LocalFile::create(path.clone()).await?)),
            Location::S3(uri) if !uri.is_prefix() => Ok(Box::new(S3Writer::new(
                self.s3_client().await,
                uri.clone(),
                &self.opts,
            ))),
            folder => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{folder} is a folder; give a file, an s3://bucket/key object or -"),
            )),
        }
    }

    /// A folder (a directory or an S3 prefix) as a [`Destination`].
    pub async fn folder(&self, location: &Location) -> io::Result<Arc<dyn Destination>> {
        match location {
            Location::Dir(dir) => Ok(Arc::new(LocalDir::new(dir))),
            Location::S3(uri) if uri.is_prefix() => Ok(Arc::new(S3Dir::new(
                self.s3_client().await,
                uri.clone(),
                &self.opts,
            ))),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{other} is not a folder (end it with /)"),
            )),
        }
    }

    /// Aborts the S3 multipart uploads still open, after a cancellation.
    pub async fn abort_open_uploads(&self) {
        if let Some(client) = self.client.get() {
            self.opts.uploads.abort_all(client).await;
        }
    }
}

/// The default size of the chunks sources read.
pub const CHUNK_SIZE: usize = 4 << 20;

/// An input as a sequence of byte chunks.
///
/// Chunks are handed to the framer as they are: a source that reads into fresh buffers lets the
/// pipeline convert straight out of them, without another copy.
pub trait ChunkSource: Send {
    /// The next chunk; `Ok(None)` at the end of the input.
    fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>>;
}

impl<S: ChunkSource + ?Sized> ChunkSource for Box<S> {
    fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        (**self).next_chunk()
    }
}

/// A [`ChunkSource`] as a stream of chunks (for an HTTP response body), ending after the last
/// chunk or the first error.
pub fn chunk_stream(
    source: Box<dyn ChunkSource>,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send {
    futures::stream::unfold(Some(source), |source| async move {
        let mut source = source?;
        match source.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(source))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// Any [`AsyncRead`] as a [`ChunkSource`].
pub struct ReaderSource<R> {
    reader: R,
    chunk: usize,
}

/// Reads `reader` in chunks of [`CHUNK_SIZE`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use bedrock_batch::io::{reader, ChunkSource};
/// let mut src = reader(&b"a\nb\n"[..]);
/// assert_eq!(src.next_chunk().await.unwrap().unwrap(), "a\nb\n");
/// assert_eq!(src.next_chunk().await.unwrap(), None);
/// # });
/// ```
pub fn reader<R: AsyncRead + Unpin + Send>(reader: R) -> ReaderSource<R> {
    ReaderSource {
        reader,
        chunk: CHUNK_SIZE,
    }
}

impl<R: AsyncRead + Unpin + Send> ChunkSource for ReaderSource<R> {
    fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        use futures::FutureExt;
        use tokio::io::AsyncReadExt;
        async move {
            let mut buf = BytesMut::with_capacity(self.chunk);
            // Fill the chunk: a pipe hands out 64 KiB at a time.
            while buf.len() < self.chunk {
                if self.reader.read_buf(&mut buf).await? == 0 {
                    break;
                }
            }
            Ok((!buf.is_empty()).then(|| buf.freeze()))
        }
        .boxed()
    }
}

/// Bytes already in memory, handed out as they are, in one chunk.
pub struct BytesSource(Option<Bytes>);

impl BytesSource {
    /// A source of `bytes`.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        BytesSource(Some(bytes.into()).filter(|b: &Bytes| !b.is_empty()))
    }
}

impl ChunkSource for BytesSource {
    fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        let next = self.0.take();
        Box::pin(async move { Ok(next) })
    }
}
