//! A source that must be as long as it was when it was opened or listed: a file appended to or
//! cut short while it is read is an error at its end, not a conversion of bytes no identity
//! describes.

use std::io;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::ChunkSource;

/// Reads `inner`, which must hold exactly `size` bytes.
pub struct SizedSource<S> {
    inner: S,
    size: u64,
    read: u64,
}

impl<S: ChunkSource> SizedSource<S> {
    /// `inner`, expected to be `size` bytes long.
    pub fn new(inner: S, size: u64) -> Self {
        SizedSource {
            inner,
            size,
            read: 0,
        }
    }

    fn changed(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it changed while it was read: {} bytes when it was opened, {} read",
                self.size, self.read
            ),
        )
    }
}

impl<S: ChunkSource> ChunkSource for SizedSource<S> {
    fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        async move {
            let chunk = self.inner.next_chunk().await?;
            match &chunk {
                Some(c) => {
                    self.read += c.len() as u64;
                    if self.read > self.size {
                        return Err(self.changed());
                    }
                }
                None if self.read != self.size => return Err(self.changed()),
                None => {}
            }
            Ok(chunk)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::BytesSource;

    async fn read_all(mut s: impl ChunkSource) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(c) = s.next_chunk().await? {
            all.extend_from_slice(&c);
        }
        Ok(all)
    }

    #[tokio::test]
    async fn another_length_is_an_error() {
        let ok = SizedSource::new(BytesSource::new(&b"abc\n"[..]), 4);
        assert_eq!(read_all(ok).await.unwrap(), b"abc\n");
        for size in [3, 5, 0] {
            let s = SizedSource::new(BytesSource::new(&b"abc\n"[..]), size);
            let e = read_all(s).await.unwrap_err();
            assert!(e.to_string().contains("changed while it was read"), "{e}");
        }
        let empty = SizedSource::new(BytesSource::new(&b""[..]), 0);
        assert!(read_all(empty).await.unwrap().is_empty());
    }
}
