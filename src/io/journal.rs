//! The journal of a group commit ([`commit_all`](super::commit_all)): which objects the group
//! replaces, where each one's old version is kept, and whether it had one. Written before the
//! first object is committed and removed once the last one is: a journal that is still there
//! afterwards belongs to a group a process died in the middle of, and the next clean-up puts
//! every object of it back the way it was.

use std::io;

use serde::{Deserialize, Serialize};

/// One object of a group commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Where the object goes: an absolute path, or an `s3://` URI.
    pub target: String,
    /// Where what it replaces is kept during the commit.
    pub backup: String,
    /// Whether something was at `target` before the commit.
    pub existed: bool,
}

/// A journal as written: one entry a line.
pub(crate) fn encode(entries: &[JournalEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&serde_json::to_vec(e).expect("an entry serializes"));
        out.push(b'\n');
    }
    out
}

/// The entries of a journal (lines that are not entries are skipped: a journal cut short by the
/// crash it records names fewer objects, and those it names are still put back).
pub(crate) fn decode(bytes: &[u8]) -> Vec<JournalEntry> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// Puts one local object back the way it was before its group commit: its old version from the
/// backup, or — when there was none — no object at all.
pub(crate) fn roll_back_local(entry: &JournalEntry) -> io::Result<()> {
    use std::fs;
    let (target, backup) = (
        std::path::Path::new(&entry.target),
        std::path::Path::new(&entry.backup),
    );
    if fs::symlink_metadata(backup).is_ok() {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        return fs::rename(backup, target);
    }
    if !entry.existed {
        match fs::remove_file(target) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    // It existed and has no backup: the commit never reached it, and it is as it was.
    Ok(())
}
