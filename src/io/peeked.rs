//! A source read a little ahead — to look at its first line before the conversion starts — whose
//! bytes read ahead are given again, so the conversion reads the whole input as if nothing had
//! looked.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::ChunkSource;

/// The chunks read ahead, then the rest of the source.
pub struct Peeked {
    ahead: VecDeque<Bytes>,
    rest: Box<dyn ChunkSource>,
    /// The source has ended: it is not asked again.
    ended: bool,
}

impl Peeked {
    /// Reads `source` until `enough` says the bytes so far suffice, `limit` bytes are read, or
    /// the source ends; returns the source to read from the start again, and a copy of the bytes
    /// read ahead.
    pub async fn read(
        mut source: Box<dyn ChunkSource>,
        limit: usize,
        enough: impl Fn(&[u8]) -> bool,
    ) -> io::Result<(Peeked, Vec<u8>)> {
        let (mut ahead, mut head) = (VecDeque::new(), Vec::new());
        let mut ended = false;
        while head.len() < limit && !enough(&head) {
            match source.next_chunk().await? {
                Some(chunk) => {
                    head.extend_from_slice(&chunk);
                    ahead.push_back(chunk);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let peeked = Peeked {
            ahead,
            rest: source,
            ended,
        };
        Ok((peeked, head))
    }

    /// Reads `source` ahead until at least `limit` bytes are read or it ends, keeping the chunks
    /// as they came (no copy): an input opened while another one converts is ready when its
    /// turn comes, and a small one has been read whole.
    pub async fn ahead(mut source: Box<dyn ChunkSource>, limit: usize) -> io::Result<Peeked> {
        let (mut ahead, mut read, mut ended) = (VecDeque::new(), 0, false);
        while read < limit {
            match source.next_chunk().await? {
                Some(chunk) => {
                    read += chunk.len();
                    ahead.push_back(chunk);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        Ok(Peeked {
            ahead,
            rest: source,
            ended,
        })
    }
}

impl ChunkSource for Peeked {
    fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        match self.ahead.pop_front() {
            Some(chunk) => Box::pin(async move { Ok(Some(chunk)) }),
            None if self.ended => Box::pin(async { Ok(None) }),
            None => self.rest.next_chunk(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::BytesSource;

    struct Chunks(VecDeque<Bytes>);
    impl ChunkSource for Chunks {
        fn next_chunk(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
            let next = self.0.pop_front();
            Box::pin(async move { Ok(next) })
        }
    }

    #[tokio::test]
    async fn what_was_read_ahead_is_read_again() {
        let chunks = ["ab", "c\nd", "ef\n", "g"].map(|s| Bytes::from_static(s.as_bytes()));
        let source = Box::new(Chunks(chunks.iter().cloned().collect()));
        let (mut p, head) = Peeked::read(source, 1 << 20, |h| h.contains(&b'\n'))
            .await
            .unwrap();
        assert_eq!(head, b"abc\nd");
        let mut all = Vec::new();
        while let Some(c) = p.next_chunk().await.unwrap() {
            all.extend_from_slice(&c);
        }
        assert_eq!(all, b"abc\ndef\ng");

        // Read ahead whole: the source is not asked again after its end.
        let source = Box::new(Chunks(chunks.iter().cloned().collect()));
        let mut p = Peeked::ahead(source, 1 << 20).await.unwrap();
        assert_eq!(p.ahead.len(), 4);
        assert!(p.ended);
        let mut all = Vec::new();
        while let Some(c) = p.next_chunk().await.unwrap() {
            all.extend_from_slice(&c);
        }
        assert_eq!(all, b"abc\ndef\ng");
        // Read ahead in part: the rest comes from the source.
        let source = Box::new(Chunks(chunks.iter().cloned().collect()));
        let mut p = Peeked::ahead(source, 3).await.unwrap();
        assert_eq!((p.ahead.len(), p.ended), (2, false));
        let mut all = Vec::new();
        while let Some(c) = p.next_chunk().await.unwrap() {
            all.extend_from_slice(&c);
        }
        assert_eq!(all, b"abc\ndef\ng");
        // The limit and the end stop it too.
        let (_, head) = Peeked::read(Box::new(BytesSource::new("xyz")), 1, |_| false)
            .await
            .unwrap();
        assert_eq!(head, b"xyz");
    }
}
