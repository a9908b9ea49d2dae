//! Why a conversion stopped, in either direction. Lines that cannot be converted are not errors:
//! each direction's report accounts for them.

use std::io;

use crate::batch_folder::FolderError;

/// Why a conversion stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input could not be read.
    #[error("reading {input} failed: {source}")]
    Read {
        /// Which input.
        input: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An output could not be written.
    #[error("writing {what} failed: {source}")]
    Write {
        /// Which output.
        what: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The batch folder could not be read or written, or refused the conversion (in use, holding
    /// another conversion, a job with too few records, …).
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// A bug: a converter thread panicked.
    #[error("internal error: a converter thread panicked")]
    Panicked,
    /// The worker pool could not start.
    #[error("cannot start {0} worker threads")]
    Pool(usize),
}

impl Error {
    /// Maps an I/O error on the output `what` into an [`Error::Write`].
    pub(crate) fn write(what: String) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Write { what, source }
    }
}
