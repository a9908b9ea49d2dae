//! Local files and stdout.
//!
//! Every file is written to a temporary file and renamed into place when finished. A folder
//! ([`LocalDir`]) keeps its temporary files in one place, `DIR/.bedrock-batch/tmp/`, which
//! [`Destination::clean_up`] empties; a file on its own ([`LocalFile::create`]) keeps its
//! temporary file beside it as `.NAME.bedrock-batch.PID.N.tmp`, and the next writer of that name
//! removes the ones whose process is gone. A commit that replaces a file keeps the old one aside
//! (`….old`) until the commit is kept or undone; a process killed in between leaves it, and the
//! next clean-up puts it back if the file is missing, or removes it.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::task::JoinHandle;

use super::{
    Committed, Destination, HeldLock, JournalEntry, JournalPlace, Listed, LockAttempt,
    NothingToUndo, ObjectWriter,
};

/// A local directory as a [`Destination`]. Objects are written to temporary files in
/// `DIR/.bedrock-batch/tmp/` and renamed into place on finish.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// A destination rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `rel`, which must stay inside the folder.
    fn path(&self, rel: &str) -> io::Result<PathBuf> {
        let mut path = self.root.clone();
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            if seg == "." || seg == ".." || seg.contains('\\') || seg.contains('\0') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{rel}: not a path inside {}", self.root.display()),
                ));
            }
            path.push(seg);
        }
        Ok(path)
    }

    fn housekeeping(&self) -> PathBuf {
        self.root.join(super::HOUSEKEEPING)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.housekeeping().join("tmp")
    }
}

/// Whether process `pid` is running on this machine.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // 0 and negative numbers name process groups, not a process.
    let Ok(pid) =
        libc::pid_t::try_from(pid)
            .map_err(drop)
            .and_then(|p| if p > 0 { Ok(p) } else { Err(()) })
    else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Encodes a relative path into one file name (for backups kept in the temporary folder).
fn encode_rel(rel: &str) -> String {
    rel.replace('%', "%25").replace('/', "%2F")
}

fn decode_rel(name: &str) -> String {
    name.replace("%2F", "/").replace("%25", "%")
}

/// Removes `dir` and its parents up to (not including) `stop` while they are empty.
fn prune_empty(mut dir: &Path, stop: &Path) {
    while dir != stop && dir.starts_with(stop) {
        if fs::remove_dir(dir).is_err() {
            break;
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
}

/// Makes `dir` (below `root`) a directory of the folder's own: each part of it that is missing is
/// created, and each that is a symbolic link is replaced by a directory — a folder's files are
/// never written through a link out of the folder. (`root` itself, the user's choice, may be a
/// link.)
fn real_dirs(root: &Path, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    let Ok(rel) = dir.strip_prefix(root) else {
        return fs::create_dir_all(dir);
    };
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => continue,
            Ok(m) if m.file_type().is_symlink() => fs::remove_file(&at)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is in the way: not a directory", at.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match fs::create_dir(&at) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `path` (below `root`) is reached through a symbolic link between the two: then it is
/// not one of the folder's objects, whatever its name, and nothing there is removed.
fn through_link(root: &Path, path: &Path) -> bool {
    let (Ok(rel), Some(parent)) = (path.strip_prefix(root), path.parent()) else {
        return false;
    };
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if at.as_path() == path || !parent.starts_with(&at) {
            break;
        }
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> BoxFuture<'static, io::Result<T>> {
    async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(io::Error::other)?
    }
    .boxed()
}

impl Destination for LocalDir {
    fn create(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ObjectWriter>>> {
        let (path, rel) = (self.path(rel), rel.to_owned());
        let (tmp, root) = (self.tmp_dir(), self.root.clone());
        async move {
            let path = path?;
            let w = LocalFile::create_in(
                path,
                tmp.join(format!("{}.tmp", super::unique_name())),
                &rel,
                root,
            )
            .await?;
            Ok(Box::new(w) as Box<dyn ObjectWriter>)
        }
        .boxed()
    }

    fn read_small(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        let path = self.path(rel);
        async move {
            match tokio::fs::read(&path?).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn read_versioned(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<super::Versioned>>> {
        let read = self.read_small(rel);
        async move {
            Ok(read.await?.map(|bytes| super::Versioned {
                version: super::content_version(&bytes),
                bytes,
            }))
        }
        .boxed()
    }

    fn put_if(
        &self,
        rel: &str,
        bytes: Bytes,
        expect: super::Expect,
    ) -> BoxFuture<'_, io::Result<super::Swap>> {
        let (path, root) = (self.path(rel), self.root.clone());
        let (cas_lock, tmp) = (
            self.housekeeping().join("cas.lock"),
            self.tmp_dir().join(format!("{}.cas", super::unique_name())),
        );
        blocking(move || {
            let path = path?;
            // Every conditional write to this folder, from any process, takes turns on one
            // advisory lock: read, compare and replace are one step to the others.
            real_dirs(&root, tmp.parent().expect("in the housekeeping folder"))?;
            let lock = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&cas_lock)?;
            // SAFETY: flock on a descriptor this function owns; released when `lock` closes.
            if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let current = match fs::read(&path) {
                Ok(b) => Some(super::content_version(&b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            if !super::as_expected(&expect, current.as_deref()) {
                return Ok(super::Swap::Conflict);
            }
            fs::write(&tmp, &bytes)?;
            fs::File::open(&tmp)?.sync_all()?;
            if let Some(dir) = path.parent() {
                real_dirs(&root, dir)?;
            }
            if let Err(e) = fs::rename(&tmp, &path) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            drop(lock);
            Ok(super::Swap::Done(super::content_version(&bytes)))
        })
    }

    fn uri(&self, rel: &str) -> String {
        let mut uri = rel
            .split('/')
            .filter(|s| !s.is_empty())
            .fold(self.root.clone(), |p, s| p.join(s))
            .display()
            .to_string();
        if (rel.is_empty() || rel.ends_with('/')) && !uri.ends_with('/') {
            uri.push('/');
        }
        uri
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<Listed>>> {
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        blocking(move || {
            let mut found = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name();
                    // The folder's housekeeping, and hidden files, are not objects.
                    if name.to_string_lossy().starts_with('.') {
                        continue;
                    }
                    let path = entry.path();
                    let kind = entry.file_type()?;
                    if kind.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    let rel = rel.join("/");
                    if rel.starts_with(&prefix) {
                        let size = entry.metadata()?.len();
                        found.push(Listed { path: rel, size });
                    }
                }
            }
            found.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(found)
        })
    }

    fn children(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<String>>> {
        let dir = self.path(prefix);
        async move {
            let dir = dir?;
            blocking(move || {
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue;
                    }
                    if entry.file_type()?.is_dir() {
                        names.push(format!("{name}/"));
                    } else {
                        names.push(name);
                    }
                }
                names.sort();
                Ok(names)
            })
            .await
        }
        .boxed()
    }

    fn open(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn super::ChunkSource>>> {
        let path = self.path(rel);
        async move { Ok(Box::new(FileSource::open(&path?).await?) as Box<dyn super::ChunkSource>) }
            .boxed()
    }

    fn delete(&self, rel: &str) -> BoxFuture<'_, io::Result<()>> {
        let (path, root) = (self.path(rel), self.root.clone());
        async move {
            let path = path?;
            blocking(move || {
                if through_link(&root, &path) {
                    return Ok(());
                }
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("cannot remove {}: {e}", path.display()),
                        ))
                    }
                    _ => {}
                }
                if let Some(dir) = path.parent() {
                    prune_empty(dir, &root);
                }
                Ok(())
            })
            .await
        }
        .boxed()
    }

    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, io::Result<u64>> {
        let (dir, root) = (self.path(prefix), self.root.clone());
        async move {
            let dir = dir?;
            if dir == root {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "refusing to remove the whole folder",
                ));
            }
            blocking(move || {
                if through_link(&root, &dir) {
                    return Ok(0);
                }
                let mut n = 0;
                let mut stack = vec![dir.clone()];
                while let Some(d) = stack.pop() {
                    let entries = match fs::read_dir(&d) {
                        Ok(e) => e,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    for entry in entries {
                        let entry = entry?;
                        if entry.file_type()?.is_dir() {
                            stack.push(entry.path());
                        } else {
                            n += 1;
                        }
                    }
                }
                match fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("cannot remove {}: {e}", dir.display()),
                        ))
                    }
                    _ => {}
                }
                if let Some(parent) = dir.parent() {
                    prune_empty(parent, &root);
                }
                Ok(n)
            })
            .await
        }
        .boxed()
    }

    fn lock(
        &self,
        rel: &str,
        holder: Bytes,
        _take_over: Option<String>,
    ) -> BoxFuture<'_, io::Result<LockAttempt>> {
        // A local lock is an advisory lock on an open file: the kernel lets go of it when the
        // process ends, however it ends, so it is never stale and never needs taking over.
        let (path, root) = (self.path(rel), self.root.clone());
        async move {
            let path = path?;
            blocking(move || lock_file(&root, &path, &holder)).await
        }
        .boxed()
    }

    fn clean_up(&self, _owned: fn(&str) -> bool) -> BoxFuture<'_, io::Result<u64>> {
        let (tmp, me) = (self.tmp_dir(), self.clone());
        blocking(move || {
            // Temporary files live in a directory of the folder's own: a link in its place
            // (or in `.bedrock-batch`'s) is removed, never followed into someone's files.
            for dir in [me.housekeeping(), tmp.clone()] {
                if fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                    fs::remove_file(&dir)?;
                    return Ok(0);
                }
            }
            let entries = match fs::read_dir(&tmp) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            let mut removed = 0;
            let mut entries: Vec<fs::DirEntry> = entries.collect::<io::Result<_>>()?;
            // Journals first: a group commit a writer died in is put back as it was, before the
            // rules below remove what it kept aside.
            entries.sort_by_key(|e| !e.file_name().to_string_lossy().ends_with(".journal"));
            let root = std::path::absolute(&me.root).unwrap_or_else(|_| me.root.clone());
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                let pid = name.split('.').next().and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|p| p != std::process::id() && process_alive(p)) {
                    continue;
                }
                if let Some(group) = name.strip_suffix(".journal") {
                    if let Ok(text) = fs::read(entry.path()) {
                        for e in super::journal::decode(&text) {
                            let (target, backup) = (Path::new(&e.target), Path::new(&e.backup));
                            if target.starts_with(&root) && backup.starts_with(&root) {
                                super::journal::roll_back_local(&e)?;
                                continue;
                            }
                            // An output of the same commit outside the folder (`from-bedrock
                            // DEST/ OUT`) is put back only when its own directory holds this
                            // group's journal beside it — proof that this commit wrote there —
                            // and its backup is beside it too.
                            let Some(copy) = sibling_journal(target, group) else {
                                continue;
                            };
                            if copy.exists() && backup.parent() == target.parent() {
                                super::journal::roll_back_local(&e)?;
                                let _ = fs::remove_file(copy);
                            }
                        }
                    }
                    fs::remove_file(entry.path())?;
                    removed += 1;
                    continue;
                }
                if fs::symlink_metadata(entry.path()).is_err() {
                    // A journal above put it back already.
                    continue;
                }
                if let Some((_, rel)) = name.split_once(".old.") {
                    let target = me.path(&decode_rel(rel)).ok();
                    if let Some(target) = target.filter(|t| !t.exists()) {
                        // Killed between moving the old object aside and putting the new one in
                        // place: the old one goes back.
                        if let Some(parent) = target.parent() {
                            fs::create_dir_all(parent)?;
                        }
                        fs::rename(entry.path(), &target)?;
                        removed += 1;
                        continue;
                    }
                }
                fs::remove_file(entry.path())?;
                removed += 1;
            }
            Ok(removed)
        })
    }
}

/// The local lock: an exclusive advisory lock on `path`, with `holder` written in it.
fn lock_file(root: &Path, path: &Path, holder: &[u8]) -> io::Result<LockAttempt> {
    let root_existed = root.exists();
    let dir = path.parent().unwrap_or(root);
    loop {
        real_dirs(root, dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
        // The lock is the folder's own file: a link in its place is removed, never followed.
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(path)?;
        }
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        let mut file = match options.open(path) {
            // A link put there since the check above: round again.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => continue,
            other => other.map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?,
        };
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut held = Vec::new();
                file.read_to_end(&mut held)?;
                return Ok(LockAttempt::Busy {
                    holder: held,
                    version: None,
                });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot lock {}: {e}", path.display()),
                ))
            }
        }
        // The holder before us may have removed the file between our open and our lock: then
        // we hold a lock on a file nobody else will look at. Start again.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let same = fs::symlink_metadata(path)
                .map(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0))
                .unwrap_or(false);
            if !same {
                continue;
            }
        }
        file.set_len(0)?;
        file.write_all(holder)?;
        return Ok(LockAttempt::Acquired(Arc::new(LocalLock {
            file: Mutex::new(Some(file)),
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            root_existed,
        })));
    }
}

struct LocalLock {
    file: Mutex<Option<fs::File>>,
    path: PathBuf,
    root: PathBuf,
    root_existed: bool,
}

impl HeldLock for LocalLock {
    fn refresh(&self, _holder: Bytes) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn needs_refresh(&self) -> bool {
        false
    }

    fn release(&self) -> BoxFuture<'_, io::Result<()>> {
        self.unlock();
        Box::pin(async { Ok(()) })
    }
}

impl LocalLock {
    fn unlock(&self) {
        let Some(file) = self
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        // Removed while still locked, so a newcomer either finds no file or one it can lock.
        let _ = fs::remove_file(&self.path);
        drop(file);
        // The folder's housekeeping goes with the lock when it is empty, and so does the folder
        // itself when this run made it and left nothing in it.
        if let Some(dir) = self.path.parent() {
            let _ = fs::remove_dir(dir.join("tmp"));
            let stop = if self.root_existed {
                self.root.clone()
            } else {
                self.root
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            };
            prune_empty(dir, &stop);
        }
    }
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        self.unlock();
    }
}

/// A local file written through a temporary file and renamed into place on finish.
///
/// One write is in flight on the blocking pool while the caller prepares the next, so the disk and
/// the converter overlap. Nothing appears at the final name, nor any directory on its way, until
/// the file is finished or committed.
pub struct LocalFile {
    path: PathBuf,
    tmp: PathBuf,
    /// Where a replaced file is kept aside during a [`commit`](ObjectWriter::commit).
    backup: PathBuf,
    file: Option<fs::File>,
    in_flight: Option<JoinHandle<(fs::File, io::Result<()>)>>,
    /// Renamed into place, or written in place from the start (a device or FIFO): there is no
    /// temporary file to remove or rename.
    finished: bool,
    /// Written in place (a device or FIFO).
    direct: bool,
    /// Sealed: written in full and closed (so that many sealed files hold no descriptors).
    sealed: bool,
    /// The folder it belongs to, whose emptied directories go when the file is taken back.
    root: Option<PathBuf>,
    /// Where a group commit's journal naming it is kept.
    journal: JournalPlace,
}

impl LocalFile {
    /// Creates the temporary file for `path`, beside it, first removing what earlier writers of
    /// `path` whose process is gone left there (and putting back what they had moved aside).
    ///
    /// A path that exists and is not a regular file (`/dev/null`, a FIFO, a terminal) is written
    /// in place: renaming over it would replace the device with a file. A directory is refused.
    pub async fn create(path: PathBuf) -> io::Result<LocalFile> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let id = super::unique_name();
        let tmp = path.with_file_name(format!(".{name}.bedrock-batch.{id}.tmp"));
        let backup = path.with_file_name(format!(".{name}.bedrock-batch.{id}.old"));
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let journal = JournalPlace::Local {
            dir,
            prefix: format!(".{name}.bedrock-batch."),
        };
        let p = path.clone();
        tokio::task::spawn_blocking(move || sweep_siblings(&p))
            .await
            .map_err(io::Error::other)?;
        Self::open(path, tmp, backup, None, journal).await
    }

    /// Creates the file for `path` in the folder `root`, with its temporary file at `tmp` (in the
    /// folder's temporary folder); `rel` names it there, for putting back a backup after a crash.
    /// Whatever is at `path`, the file replaces it on commit: a folder's objects are never
    /// written into a device.
    async fn create_in(
        path: PathBuf,
        tmp: PathBuf,
        rel: &str,
        root: PathBuf,
    ) -> io::Result<LocalFile> {
        let backup = tmp.with_file_name(format!(
            "{}.old.{}",
            tmp.file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default(),
            encode_rel(rel)
        ));
        let journal = JournalPlace::Local {
            dir: tmp.parent().map(Path::to_path_buf).unwrap_or_default(),
            prefix: String::new(),
        };
        Self::open(path, tmp, backup, Some(root), journal).await
    }

    async fn open(
        path: PathBuf,
        tmp: PathBuf,
        backup: PathBuf,
        root: Option<PathBuf>,
        journal: JournalPlace,
    ) -> io::Result<LocalFile> {
        let (p, t, in_folder) = (path.clone(), tmp.clone(), root.is_some());
        let root_dir = root.clone();
        let (file, direct) = tokio::task::spawn_blocking(move || {
            let root = root_dir;
            // A folder's object replaces what is there; a file on its own writes into a device
            // it names (following links to it).
            let found = if in_folder {
                fs::symlink_metadata(&p)
            } else {
                fs::metadata(&p)
            };
            match found {
                Ok(m) if m.is_dir() => {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "a directory is in the way",
                    ))
                }
                Ok(m) if !in_folder && !m.is_file() => {
                    return Ok((fs::OpenOptions::new().write(true).open(&p)?, true))
                }
                _ => {}
            }
            if let Some(dir) = t.parent().filter(|d| !d.as_os_str().is_empty()) {
                match &root {
                    Some(root) => real_dirs(root, dir)?,
                    None => fs::create_dir_all(dir)?,
                }
            }
            Ok::<_, io::Error>((fs::File::create(&t)?, false))
        })
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))?;
        Ok(LocalFile {
            path,
            tmp,
            backup,
            file: Some(file),
            in_flight: None,
            finished: direct,
            direct,
            sealed: false,
            root,
            journal,
        })
    }

    async fn settle(&mut self) -> io::Result<()> {
        if let Some(handle) = self.in_flight.take() {
            let (file, result) = handle.await.map_err(io::Error::other)?;
            self.file = Some(file);
            result.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot write {}: {e}", self.path.display()),
                )
            })?;
        }
        Ok(())
    }

    fn cannot_finish(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("cannot finish {}: {e}", self.path.display()),
        )
    }

    /// Moves the written file into place, keeping what it replaces at `backup` when asked;
    /// returns whether something was kept.
    async fn put_in_place(&mut self, keep_old: bool) -> io::Result<Option<PathBuf>> {
        self.settle().await?;
        let file = self.file.take();
        let (tmp, path, backup) = (self.tmp.clone(), self.path.clone(), self.backup.clone());
        let root = self.root.clone();
        let kept = tokio::task::spawn_blocking(move || {
            // No fsync: the rename makes the object appear whole to readers, which is the
            // contract; flushing gigabytes to the disk is the OS's business, not the run's.
            drop(file);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                match &root {
                    Some(root) => real_dirs(root, dir)?,
                    None => fs::create_dir_all(dir)?,
                }
            }
            let kept = if keep_old {
                match fs::rename(&path, &backup) {
                    Ok(()) => Some(backup),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            if let Err(e) = fs::rename(&tmp, &path) {
                if let Some(b) = &kept {
                    let _ = fs::rename(b, &path);
                }
                return Err(e);
            }
            Ok(kept)
        })
        .await
        .map_err(io::Error::other)?
        .map_err(|e| self.cannot_finish(e))?;
        self.finished = true;
        Ok(kept)
    }
}

/// Where a group commit's journal is kept beside a file written on its own (see
/// [`LocalFile::create`]): `.<name>.bedrock-batch.<group>.journal`.
fn sibling_journal(target: &Path, group: &str) -> Option<PathBuf> {
    let name = target.file_name()?.to_string_lossy();
    Some(target.with_file_name(format!(".{name}.bedrock-batch.{group}.journal")))
}

/// Removes what dead writers of `path` left beside it: it puts back the files of a group commit
/// they died in (their journal says which), then removes their temporary files.
fn sweep_siblings(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.bedrock-batch.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut dead: Vec<(PathBuf, String)> = Vec::new();
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = entry_name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_none_or(process_alive) {
            continue;
        }
        dead.push((entry.path(), rest.to_owned()));
    }
    // Journals first: they may put back files the other rules would remove.
    dead.sort_by_key(|(_, rest)| !rest.ends_with(".journal"));
    let abs_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    for (file, rest) in dead {
        if let Some(group) = rest.strip_suffix(".journal") {
            let Ok(text) = fs::read(&file) else {
                continue;
            };
            for e in super::journal::decode(&text) {
                let (t, b) = (Path::new(&e.target), Path::new(&e.backup));
                // Only this directory's files, named as this module names them.
                if t.parent() != Some(abs_dir.as_path()) || b.parent() != Some(abs_dir.as_path()) {
                    continue;
                }
                let _ = super::journal::roll_back_local(&e);
                if let Some(copy) = sibling_journal(t, group) {
                    let _ = fs::remove_file(copy);
                }
            }
            let _ = fs::remove_file(&file);
        } else if rest.ends_with(".old") && !path.exists() {
            let _ = fs::rename(&file, path);
        } else {
            let _ = fs::remove_file(&file);
        }
    }
}

impl ObjectWriter for LocalFile {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        async move {
            if self.sealed {
                return Err(io::Error::other(format!(
                    "{}: written after it was sealed",
                    self.path.display()
                )));
            }
            self.settle().await?;
            let mut file = self
                .file
                .take()
                .ok_or_else(|| io::Error::other("write after failure"))?;
            self.in_flight = Some(tokio::task::spawn_blocking(move || {
                let result = file.write_all(&chunk);
                (file, result)
            }));
            Ok(())
        }
        .boxed()
    }

    fn seal(&mut self) -> BoxFuture<'_, io::Result<()>> {
        async move {
            self.settle().await?;
            if !self.direct {
                // Closed now: a folder of many shards holds no descriptor for the sealed ones.
                self.file.take();
            }
            self.sealed = true;
            Ok(())
        }
        .boxed()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async move {
            if self.finished {
                self.settle().await?;
                return Ok(());
            }
            self.put_in_place(false).await.map(drop)
        }
        .boxed()
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, io::Result<Box<dyn Committed>>> {
        async move {
            if self.direct {
                self.settle().await?;
                return Ok(Box::new(NothingToUndo) as Box<dyn Committed>);
            }
            let kept = self.put_in_place(true).await?;
            Ok(Box::new(LocalCommitted {
                path: self.path.clone(),
                backup: kept,
                root: self.root.clone(),
            }) as Box<dyn Committed>)
        }
        .boxed()
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        async move {
            let _ = self.settle().await;
            self.file.take();
            if self.finished {
                return Ok(());
            }
            let tmp = self.tmp.clone();
            match tokio::fs::remove_file(&tmp).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
        .boxed()
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn journal_entry(&mut self) -> BoxFuture<'_, io::Result<Option<JournalEntry>>> {
        async move {
            if self.direct {
                return Ok(None);
            }
            let absolute = |p: &Path| std::path::absolute(p).map(|a| a.display().to_string());
            Ok(Some(JournalEntry {
                target: absolute(&self.path)?,
                backup: absolute(&self.backup)?,
                existed: fs::symlink_metadata(&self.path).is_ok(),
            }))
        }
        .boxed()
    }

    fn journal_place(&self) -> Option<JournalPlace> {
        (!self.direct).then(|| self.journal.clone())
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        // Not finished (an error or a cancellation): leave nothing behind.
        if !self.finished {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A committed local file and, when it replaced one, the old file kept aside.
struct LocalCommitted {
    path: PathBuf,
    backup: Option<PathBuf>,
    root: Option<PathBuf>,
}

impl Committed for LocalCommitted {
    fn undo(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        blocking(move || {
            let result = match &self.backup {
                Some(b) => fs::rename(b, &self.path),
                None => fs::remove_file(&self.path),
            };
            result.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot put back {}: {e}", self.path.display()),
                )
            })?;
            if let (None, Some(root), Some(dir)) = (&self.backup, &self.root, self.path.parent()) {
                prune_empty(dir, root);
            }
            Ok(())
        })
    }

    fn keep(self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        blocking(move || match &self.backup {
            Some(b) => fs::remove_file(b),
            None => Ok(()),
        })
    }
}

/// A local file read in [`CHUNK_SIZE`](super::CHUNK_SIZE) chunks on the blocking pool, one read
/// ahead of the consumer, straight into the buffers the pipeline converts.
pub struct FileSource {
    len: u64,
    regular: bool,
    /// Modification time, in nanoseconds since the Unix epoch.
    modified: Option<u128>,
    path: PathBuf,
    next: Option<JoinHandle<(fs::File, io::Result<Bytes>)>>,
}

impl FileSource {
    /// Opens `path` and starts reading it.
    pub async fn open(path: &Path) -> io::Result<FileSource> {
        let p = path.to_path_buf();
        let (file, len) = tokio::task::spawn_blocking(move || {
            let file = fs::File::open(&p)?;
            let meta = file.metadata()?;
            if meta.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "a directory, not a file",
                ));
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos());
            Ok::<_, io::Error>((file, (meta.len(), modified, meta.is_file())))
        })
        .await
        .map_err(io::Error::other)?
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
        let (len, modified, regular) = len;
        let mut source = FileSource {
            regular,
            modified,
            len,
            path: path.to_path_buf(),
            next: None,
        };
        source.read_ahead(file);
        Ok(source)
    }

    /// The file's size when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it is a regular file (not a FIFO or a device).
    pub fn is_regular(&self) -> bool {
        self.regular
    }

    /// The file's modification time when it was opened, in nanoseconds since the Unix epoch.
    pub fn modified(&self) -> Option<u128> {
        self.modified
    }

    fn read_ahead(&mut self, mut file: fs::File) {
        self.next = Some(tokio::task::spawn_blocking(move || {
            // `read_to_end` fills the spare capacity directly: no zeroing, no second copy.
            let mut buf = Vec::with_capacity(super::CHUNK_SIZE);
            let result = std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut file, super::CHUNK_SIZE as u64),
                &mut buf,
            );
            (file, result.map(|_| Bytes::from(buf)))
        }));
    }
}

impl super::ChunkSource for FileSource {
    fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        async move {
            let Some(handle) = self.next.take() else {
                return Ok(None);
            };
            let (file, result) = handle.await.map_err(io::Error::other)?;
            let chunk = result.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", self.path.display()),
                )
            })?;
            if chunk.is_empty() {
                return Ok(None);
            }
            self.read_ahead(file);
            Ok(Some(chunk))
        }
        .boxed()
    }
}

/// Standard output or standard error as an [`ObjectWriter`]: bytes go out as they come (a
/// stream cannot be atomic).
pub struct StdWriter {
    out: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    name: &'static str,
}

impl StdWriter {
    /// The process's stdout.
    pub fn stdout() -> Self {
        StdWriter {
            out: Box::pin(tokio::io::stdout()),
            name: "stdout",
        }
    }

    /// The process's stderr.
    pub fn stderr() -> Self {
        StdWriter {
            out: Box::pin(tokio::io::stderr()),
            name: "stderr",
        }
    }
}

impl ObjectWriter for StdWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        use tokio::io::AsyncWriteExt;
        async move { self.out.write_all(&chunk).await }.boxed()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        use tokio::io::AsyncWriteExt;
        async move { self.out.flush().await }.boxed()
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, io::Result<Box<dyn Committed>>> {
        async move {
            self.finish().await?;
            Ok(Box::new(NothingToUndo) as Box<dyn Committed>)
        }
        .boxed()
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, io::Result<()>> {
        use tokio::io::AsyncWriteExt;
        async move { self.out.flush().await }.boxed()
    }

    fn name(&self) -> String {
        self.name.to_owned()
    }
}

/// The name a host goes by, for lock holders' descriptions.
pub(crate) fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether `pid` runs on this host (for locks held by this host's processes).
pub(crate) fn pid_alive(pid: u32) -> bool {
    process_alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_small_and_large_read_back_whole() {
        use crate::io::ChunkSource;
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            4095,
            crate::io::CHUNK_SIZE - 1,
            crate::io::CHUNK_SIZE,
            crate::io::CHUNK_SIZE * 2 + 7,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            fs::write(&path, &bytes).unwrap();
            let mut source = FileSource::open(&path).await.unwrap();
            assert_eq!(source.len(), len as u64);
            let mut read = Vec::new();
            while let Some(chunk) = source.next_chunk().await.unwrap() {
                assert!(!chunk.is_empty(), "no empty chunks");
                read.extend_from_slice(&chunk);
            }
            assert_eq!(read, bytes, "{len} bytes");
            assert!(
                source.next_chunk().await.unwrap().is_none(),
                "and nothing after the end"
            );
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn nothing_is_visible_until_finish_and_abort_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = LocalDir::new(dir.path());
        let mut w = dest.create("a/b.jsonl").await.unwrap();
        w.write(Bytes::from_static(b"one\n")).await.unwrap();
        w.write(Bytes::from_static(b"two\n")).await.unwrap();
        assert!(!dir.path().join("a/b.jsonl").exists());
        w.finish().await.unwrap();
        assert_eq!(
            fs::read(dir.path().join("a/b.jsonl")).unwrap(),
            b"one\ntwo\n"
        );

        let mut w = dest.create("c.jsonl").await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        w.abort().await.unwrap();
        let mut w = dest.create("d.jsonl").await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        drop(w);
        assert_eq!(
            dest.clean_up(|_| true).await.unwrap(),
            0,
            "nothing left to clean"
        );
        let _ = fs::remove_dir_all(dir.path().join(crate::io::HOUSEKEEPING));
        assert_eq!(
            names(dir.path()),
            ["a"],
            "only the finished object's folder remains"
        );

        let listed = dest.list("").await.unwrap();
        assert_eq!(
            listed,
            vec![Listed {
                path: "a/b.jsonl".into(),
                size: 8
            }]
        );
        assert_eq!(
            dest.read_small("a/b.jsonl").await.unwrap().unwrap(),
            b"one\ntwo\n"
        );
        assert_eq!(dest.read_small("nope").await.unwrap(), None);
        dest.delete("a/b.jsonl").await.unwrap();
        dest.delete("a/b.jsonl").await.unwrap();
        assert!(names(dir.path()).is_empty(), "emptied folders go too");
        assert!(dest.read_small("../x").await.is_err(), "no way out");
    }

    #[tokio::test]
    async fn a_commit_can_be_undone_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dest = LocalDir::new(dir.path());
        let put = |name: &'static str, text: &'static str| {
            let dest = dest.clone();
            async move {
                let mut w = dest.create(name).await.unwrap();
                w.write(Bytes::from_static(text.as_bytes())).await.unwrap();
                w
            }
        };
        put("f", "old").await.finish().await.unwrap();
        let c = put("f", "new").await.commit().await.unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"new");
        c.undo().await.unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"old");
        let c = put("g", "fresh").await.commit().await.unwrap();
        c.undo().await.unwrap();
        assert!(
            !dir.path().join("g").exists(),
            "undoing a new object removes it"
        );
        let c = put("f", "newer").await.commit().await.unwrap();
        c.keep().await.unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"newer");
        assert_eq!(dest.clean_up(|_| true).await.unwrap(), 0, "no backup left");
    }

    #[tokio::test]
    async fn clean_up_puts_back_a_file_a_dead_commit_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let dest = LocalDir::new(dir.path());
        let tmp = dir.path().join(".bedrock-batch/tmp");
        fs::create_dir_all(&tmp).unwrap();
        // pid 0 is never a user process: these were left by a dead writer.
        fs::write(tmp.join("0.1.old.results%2Fout.jsonl"), b"old").unwrap();
        fs::write(tmp.join("0.2.tmp"), b"partial").unwrap();
        fs::write(tmp.join("0.3.old.kept"), b"older").unwrap();
        fs::write(dir.path().join("kept"), b"new").unwrap();
        assert_eq!(dest.clean_up(|_| true).await.unwrap(), 3);
        assert_eq!(
            fs::read(dir.path().join("results/out.jsonl")).unwrap(),
            b"old"
        );
        assert_eq!(fs::read(dir.path().join("kept")).unwrap(), b"new");
        assert!(names(&tmp).is_empty());
    }

    #[tokio::test]
    async fn a_lone_file_removes_what_dead_writers_left_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        fs::write(dir.path().join(".out.jsonl.bedrock-batch.0.7.tmp"), b"x").unwrap();
        fs::write(dir.path().join(".out.jsonl.bedrock-batch.0.8.old"), b"old").unwrap();
        let live = format!(".out.jsonl.bedrock-batch.{}.99.tmp", std::process::id());
        fs::write(dir.path().join(&live), b"mine").unwrap();
        let mut w = Box::new(LocalFile::create(out.clone()).await.unwrap());
        assert_eq!(
            fs::read(&out).unwrap(),
            b"old",
            "the moved-aside file is back"
        );
        w.write(Bytes::from_static(b"new")).await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(names(dir.path()), [live.as_str(), "out.jsonl"]);
    }

    #[tokio::test]
    async fn one_lock_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("f");
        let dest = LocalDir::new(&root);
        let LockAttempt::Acquired(held) = dest
            .lock(".bedrock-batch/lock", Bytes::from_static(b"me"), None)
            .await
            .unwrap()
        else {
            panic!("the first taker gets it");
        };
        match dest
            .lock(".bedrock-batch/lock", Bytes::from_static(b"you"), None)
            .await
            .unwrap()
        {
            LockAttempt::Busy { holder, version } => {
                assert_eq!(holder, b"me");
                assert_eq!(version, None);
            }
            LockAttempt::Acquired(_) => panic!("a second holder"),
            LockAttempt::Released => panic!("a lock held by a live process"),
        }
        held.release().await.unwrap();
        assert!(!root.exists(), "a folder made for the lock goes with it");
        assert!(matches!(
            dest.lock(".bedrock-batch/lock", Bytes::from_static(b"you"), None)
                .await
                .unwrap(),
            LockAttempt::Acquired(_)
        ));
    }

    /// Regression: writing to /dev/null once renamed a temporary file over the device.
    #[cfg(unix)]
    #[tokio::test]
    async fn devices_are_written_in_place() {
        let null = PathBuf::from("/dev/null");
        let mut w = Box::new(LocalFile::create(null.clone()).await.unwrap());
        w.write(Bytes::from_static(b"discarded")).await.unwrap();
        w.finish().await.unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::metadata(&null).unwrap().file_type().is_char_device());
    }
}
