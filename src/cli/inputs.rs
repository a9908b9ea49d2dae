//! INPUT arguments as one ordered list: a file, `-`, or many inputs — files, local directories
//! and `s3://bucket/prefix/`es of `.jsonl` files (`--input-glob`) — converted into one batch,
//! opened and read a few ahead of the conversion.

use std::io;

use anyhow::{bail, Context as _};
use futures::stream::BoxStream;
use futures::StreamExt;

use super::to_bedrock::input_identity;
use bedrock_batch::batch_folder::InputIdentity;
use bedrock_batch::io::{ChunkSource, Location, Peeked, Storage};
use bedrock_batch::record::MAX_INPUTS;

/// The files of an input folder or prefix that are read, unless `--input-glob` says otherwise.
pub const DEFAULT_GLOB: &str = "*.jsonl";

/// Inputs opened while the one before them converts: S3 round trips overlap the conversion.
const INPUTS_AHEAD: usize = 4;

/// Bytes of each input opened ahead that are read before its turn (a small input whole); with
/// [`INPUTS_AHEAD`] this bounds the memory read ahead to 16 MiB.
const BYTES_AHEAD: usize = 4 << 20;

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
    /// `glob` (`*` matches across `/`), in path order; `-` (stdin) only alone. Files inside
    /// `skip` (the batch folder being written) are left out, so a folder inside an input
    /// directory does not read itself.
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
                let inside_skip = skip.is_some_and(|s| at.relative_to(s).is_some());
                if pattern.matches(&entry.path) && !inside_skip {
                    list.push((at.to_string(), at));
                }
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
                    Peeked::ahead(opened.source, BYTES_AHEAD).await
                }
                .await;
                (
                    listed,
                    opened.map(|p| Box::new(p) as Box<dyn ChunkSource>),
                )
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
