//! INPUT arguments as one ordered list: a file, `-`, or many inputs — files, local directories
//! and `s3://bucket/prefix/`es of `.jsonl` files (`--input-glob`) — converted into one batch,
//! opened and read a few ahead of the conversion.

use std::io;

use anyhow::{bail, Context as _};
use futures::stream::BoxStream;
use futures::StreamExt;

use super::to_bedrock::input_identity;
use bedrock_batch::batch_folder::{owned_prefixes, InputIdentity};
use bedrock_batch::io::{ChunkSource, Location, Peeked, SizedSource, Storage, HOUSEKEEPING};
use bedrock_batch::record::MAX_INPUTS;

/// The files of an input folder or prefix that are read, unless `--input-glob` says otherwise.
pub const DEFAULT_GLOB: &str = "*.jsonl";

/// Inputs opened while the one before them converts: S3 round trips overlap the conversion.
const INPUTS_AHEAD: usize = 4;

/// Bytes of each input opened ahead that are read before its turn (a small input whole: at
/// least this, at most one chunk more). With the [`INPUTS_AHEAD`] being opened and the two
/// opened inputs waiting in the conversion's queue, at most six inputs are read ahead.
const BYTES_AHEAD: usize = 4 << 20;

/// Whether `at` is one of the batch folder `folder`'s own files (its generations, results,
/// `batch.json`, housekeeping), which a listing of an input folder around it leaves out.
fn owned_by(at: &Location, folder: &Location) -> bool {
    at.relative_to(folder).is_some_and(|rel| {
        owned_prefixes().iter().any(|p| rel.starts_with(p.as_str()))
            || rel.starts_with(HOUSEKEEPING)
    })
}

/// Whether a listed local file is one to read: a regular file (or a link to one). A FIFO, a
/// socket or a device in an input folder is left out with a warning (opening a FIFO waits for a
/// writer), and so is a link to a directory (not followed: a link can loop). A name that is not
/// UTF-8 cannot be named again, and is refused.
fn regular_file(path: &std::path::Path) -> anyhow::Result<bool> {
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(true),
        Ok(m) if m.is_dir() => {
            tracing::warn!("{shown}: a link to a directory, not followed; give it as an INPUT of its own to read it");
            Ok(false)
        }
        Ok(_) => {
            tracing::warn!("{shown}: not a regular file (a FIFO, socket or device), left out");
            Ok(false)
        }
        Err(_) if shown.contains('\u{fffd}') => {
            bail!("{shown}: its name is not UTF-8; rename it, or give the files one by one")
        }
        Err(e) => Err(e).with_context(|| format!("reading {shown}")),
    }
}

/// `source`, read to the end only if it is `size` bytes long (when known): an input appended to
/// or cut short while it is read fails the conversion.
pub fn sized(source: Box<dyn ChunkSource>, size: Option<u64>) -> Box<dyn ChunkSource> {
    match size {
        Some(size) => Box::new(SizedSource::new(source, size)),
        None => source,
    }
}

/// Each input: what it is and where (the conversion opens it again when its turn comes).
pub type InputStream<'a> = BoxStream<'a, (InputIdentity, io::Result<Box<dyn ChunkSource>>)>;

/// The inputs INPUT... names, in order.
pub struct Inputs {
    /// As the user gave them, for messages and `batch.json`.
    pub name: String,
    /// Each input: its name (as given, or the folder's location joined with its path below it)
    /// and location.
    pub list: Vec<(String, Location)>,
}

impl Inputs {
    /// Expands INPUT... : a file or `s3://` object is itself; a local directory (with or without
    /// a trailing `/`) or an `s3://…/` prefix is every file below it whose path below it matches
    /// `glob` (`*` matches across `/`), in path order; `-` (stdin) only alone. The own files of
    /// `skip` (the batch folder being written: its generations, results, `batch.json`) are left
    /// out, so a folder inside an input directory does not read itself; so are local entries
    /// that are not regular files.
    pub async fn resolve(
        storage: &Storage,
        args: &[String],
        glob: Option<&str>,
        skip: Option<&Location>,
    ) -> anyhow::Result<Inputs> {
        let pattern = glob::Pattern::new(glob.unwrap_or(DEFAULT_GLOB))
            .with_context(|| format!("--input-glob {}", glob.unwrap_or(DEFAULT_GLOB)))?;
        let mut list = Vec::new();
        let mut folders = 0;
        for arg in args {
            let location = Location::parse(arg).map_err(anyhow::Error::msg)?;
            let folder = match &location {
                Location::Std if args.len() > 1 => {
                    bail!("INPUT -: stdin can only be the one input")
                }
                Location::File(path) if path.is_dir() => Location::Dir(path.clone()),
                Location::Dir(_) => location.clone(),
                Location::S3(uri) if uri.is_prefix() => location.clone(),
                _ => {
                    list.push((arg.clone(), location));
                    continue;
                }
            };
            folders += 1;
            let dir = storage
                .folder(&folder)
                .await
                .with_context(|| format!("INPUT {arg}"))?;
            let listed = dir
                .list("")
                .await
                .with_context(|| format!("listing INPUT {arg}"))?;
            let before = list.len();
            for entry in listed {
                let at = folder.join(&entry.path);
                if skip.is_some_and(|s| owned_by(&at, s)) {
                    continue;
                }
                if let Location::File(path) = &at {
                    if !pattern.matches(&entry.path) {
                        // A linked directory is said whatever its name: its files are not read.
                        if path.is_dir() {
                            regular_file(path)?;
                        }
                        continue;
                    }
                    if !regular_file(path)? {
                        continue;
                    }
                } else if !pattern.matches(&entry.path) {
                    continue;
                }
                list.push((at.to_string(), at));
            }
            if list.len() == before {
                bail!(
                    "INPUT {arg} holds no file matching {} (see --input-glob)",
                    pattern.as_str()
                );
            }
        }
        if let (Some(glob), 0) = (glob, folders) {
            bail!(
                "--input-glob {glob}: no INPUT is a directory or s3://…/ prefix to pick files from"
            );
        }
        if list.len() > MAX_INPUTS {
            bail!(
                "{} inputs: one batch takes at most {MAX_INPUTS}",
                list.len()
            );
        }
        // Each input once: by device and inode for local files (links and `..` included), by
        // URI for S3 objects; one pass, so ten thousand inputs cost ten thousand `stat`s.
        let mut seen = std::collections::HashMap::new();
        for (name, location) in &list {
            let key = match location {
                Location::File(path) => match std::fs::metadata(path) {
                    Ok(m) => {
                        use std::os::unix::fs::MetadataExt;
                        format!("inode:{}:{}", m.dev(), m.ino())
                    }
                    Err(_) => format!("path:{}", path.display()),
                },
                other => other.to_string(),
            };
            if let Some(first) = seen.insert(key, name) {
                bail!("INPUT {first} and {name} are the same file: a batch reads each input once");
            }
        }
        Ok(Inputs {
            name: args.join(" "),
            list,
        })
    }

    /// Whether the batch is made of several inputs.
    pub fn several(&self) -> bool {
        self.list.len() > 1
    }

    /// Opens the inputs in order — several at once, each a few MiB ahead — checking that each is
    /// what `identities` (from [`identify`](Self::identify)) found.
    pub fn stream<'a>(
        &'a self,
        storage: &'a Storage,
        identities: Vec<InputIdentity>,
    ) -> InputStream<'a> {
        futures::stream::iter(self.list.iter().zip(identities))
            .map(move |((name, location), listed)| async move {
                let opened = async {
                    let opened = storage.open_identified(location).await?;
                    let now = input_identity(name, opened.identity);
                    if !now.same_as(&listed) && listed.version.is_some() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{name} changed since the conversion began: every input is read as it was then"),
                        ));
                    }
                    let ahead = Peeked::ahead(opened.source, BYTES_AHEAD).await?;
                    Ok(sized(Box::new(ahead), listed.bytes))
                }
                .await;
                (listed, opened)
            })
            .buffered(INPUTS_AHEAD)
            .boxed()
    }

    /// What identifies each input (size and version: a file's modification time, an object's
    /// ETag), asked for several at once.
    pub async fn identify(&self, storage: &Storage) -> anyhow::Result<Vec<InputIdentity>> {
        futures::stream::iter(&self.list)
            .map(|(name, location)| async move {
                let identity = storage
                    .identify(location)
                    .await
                    .with_context(|| format!("opening {name}"))?;
                Ok::<_, anyhow::Error>(input_identity(name, identity))
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }
}
