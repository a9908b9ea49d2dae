//! Ranges of one buffer that follow each other, written as one piece: the converters place
//! records one at a time, and most records of a block sit back to back in its output buffer, so
//! one write (one `Bytes` slice, no copy) per run instead of one per record.

use std::io;
use std::ops::Range;

use bytes::Bytes;

use super::ObjectWriter;

/// A contiguous range of the current block's buffer waiting to be written.
#[derive(Debug, Default)]
pub struct PendingRun(Option<Range<usize>>);

impl PendingRun {
    /// Whether `r` would extend the pending run without a gap (true when nothing is pending).
    pub fn continues(&self, r: &Range<usize>) -> bool {
        self.0.as_ref().is_none_or(|run| run.end == r.start)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Adds `r`. When it does not continue the run, the run starts over at `r`: callers
    /// [`flush`](Self::flush) first whenever [`continues`](Self::continues) says no.
    pub fn extend(&mut self, r: Range<usize>) {
        match &mut self.0 {
            Some(run) if run.end == r.start => run.end = r.end,
            _ => self.0 = Some(r),
        }
    }

    /// Forgets what is pending.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Writes the pending run of `buf` to `w` and forgets it.
    pub async fn flush(&mut self, buf: &Bytes, w: &mut dyn ObjectWriter) -> io::Result<()> {
        match self.0.take() {
            Some(run) => w.write(buf.slice(run)).await,
            None => Ok(()),
        }
    }

    /// Adds `r`, first writing what is pending when `r` does not follow it.
    pub async fn add(
        &mut self,
        r: Range<usize>,
        buf: &Bytes,
        w: &mut dyn ObjectWriter,
    ) -> io::Result<()> {
        if !self.continues(&r) {
            self.flush(buf, w).await?;
        }
        self.extend(r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Destination, MemoryDir};

    #[tokio::test]
    async fn runs_merge_until_a_gap() {
        let dir = MemoryDir::default();
        let mut w = dir.create("out").await.unwrap();
        let buf = Bytes::from_static(b"aabbccdd");
        let mut run = PendingRun::default();
        assert!(run.is_empty() && run.continues(&(4..6)));
        run.add(0..2, &buf, &mut *w).await.unwrap();
        run.add(2..4, &buf, &mut *w).await.unwrap();
        // A gap: the first run (aabb) goes out, cc is skipped, dd starts the next.
        assert!(!run.continues(&(6..8)));
        run.add(6..8, &buf, &mut *w).await.unwrap();
        run.flush(&buf, &mut *w).await.unwrap();
        assert!(run.is_empty());
        w.finish().await.unwrap();
        assert_eq!(dir.get("out").unwrap(), &b"aabbdd"[..]);
    }
}
