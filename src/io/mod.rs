//! Sources and sinks: where bytes come from and go to.
//!
//! A source is a [`ChunkSource`] (any [`tokio::io::AsyncRead`] through [`reader`]); a sink is
//! an [`ObjectWriter`]; [`Storage`] opens either for a [`Location`]: a local path, `-`, or an
//! `s3://` object or prefix.
//! A sink is an [`ObjectWriter`] (one output object, made visible only by
//! [`ObjectWriter::finish`]) created by a [`Destination`] (a folder of objects). Local files and
//! stdout implement them here; other stores implement the same two traits.

mod local;
mod memory;
mod s3;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use tokio::io::AsyncRead;

pub use local::{FileSource, LocalDir, LocalFile, StdWriter};
pub use memory::{Discard, MemoryDir, MemoryWriter};
pub use s3::{S3Dir, S3Options, S3Source, S3Uri, S3Writer, UploadRegistry};

/// One output object being written.
///
/// Nothing is visible at the final name until [`finish`](ObjectWriter::finish) succeeds; a writer
/// that is aborted, or dropped without finishing, leaves nothing behind.
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
    /// Completes the object and makes it visible.
    fn finish(self: Box<Self>) -> BoxFuture<'static, io::Result<()>>;
    /// Discards everything written.
    fn abort(self: Box<Self>) -> BoxFuture<'static, io::Result<()>>;
    /// Where the object goes, for messages.
    fn name(&self) -> String;
}

/// A folder of objects (a local directory, later an S3 prefix).
pub trait Destination: Send + Sync {
    /// Starts writing the object at `rel` (a `/`-separated path below the folder).
    fn create(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ObjectWriter>>>;
    /// Moves a finished object from `from` to `to` (both below the folder).
    fn rename(&self, from: &str, to: &str) -> BoxFuture<'_, io::Result<()>>;
    /// Reads a whole small object (such as `batch.json`); `Ok(None)` when it does not exist.
    fn read_small(&self, rel: &str) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>>;
    /// The folder's URI or path with `rel` appended, for messages and manifests.
    fn uri(&self, rel: &str) -> String;
    /// The finished objects below `prefix` (relative paths, sorted; all levels).
    fn list(&self, prefix: &str) -> BoxFuture<'_, io::Result<Vec<String>>>;
    /// Opens the object at `rel` for reading.
    fn open(&self, rel: &str) -> BoxFuture<'_, io::Result<Box<dyn ChunkSource>>>;
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
    pub fn parse(arg: &str) -> Result<Location, String> {
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

    /// The object at `rel` inside this folder.
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Dir(dir) => {
                Location::File(rel.split('/').fold(dir.clone(), |p, s| p.join(s)))
            }
            Location::S3(uri) => Location::S3(uri.join(rel)),
            other => other.clone(),
        }
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

    /// The S3 client (built once).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        self.client.get_or_init(|| self.opts.client()).await.clone()
    }

    /// Opens an object for reading; also returns its size when known.
    pub async fn open(
        &self,
        location: &Location,
    ) -> io::Result<(Box<dyn ChunkSource>, Option<u64>)> {
        match location {
            Location::Std => Ok((Box::new(reader(tokio::io::stdin())), None)),
            Location::File(path) => {
                let file = FileSource::open(path).await?;
                let len = file.len();
                Ok((Box::new(file), Some(len)))
            }
            Location::S3(uri) if !uri.is_prefix() => {
                let source =
                    S3Source::open(self.s3_client().await, uri.clone(), &self.opts).await?;
                let len = source.len();
                Ok((Box::new(source), Some(len)))
            }
            folder => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{folder} is a folder; give one object"),
            )),
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
