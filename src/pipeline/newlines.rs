//! Where a block's lines end, found once: one pass over its bytes on the reading task marks
//! every newline (a bit a byte) and notes whether the block holds a carriage return. The framer
//! numbers lines by the count of the marks, and the workers cut lines at them: no worker
//! searches a line for its end, nor a block that holds no CR for one. (The framer still looks
//! back from a block's cut for the last newline, over the partial line only; and `from-bedrock`
//! searches each chunk for the CRs that end records before it is framed.)

/// The newlines of one block, and whether it holds a carriage return.
#[derive(Debug, Clone, Default)]
pub struct Newlines {
    /// Bit `i % 64` of word `i / 64` is set when byte `i` is `\n`.
    words: Vec<u64>,
    count: usize,
    crs: bool,
}

impl Newlines {
    /// The newlines of `data`.
    ///
    /// On a CPU with AVX2 and POPCNT (detected once a block) the pass is compiled for them, 32
    /// bytes a compare; SSE2, part of every x86-64, otherwise.
    pub fn of(data: &[u8]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the CPU has AVX2 and POPCNT, just detected.
            return unsafe { x86::of_avx2(data) };
        }
        of_with(data, masks_64)
    }

    /// How many newlines.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether the bytes hold a carriage return.
    pub fn crs(&self) -> bool {
        self.crs
    }

    /// The positions of the newlines, in order.
    pub fn positions(&self) -> Positions<'_> {
        Positions {
            words: &self.words,
            word: 0,
            bits: self.words.first().copied().unwrap_or(0),
        }
    }
}

/// The positions of a block's newlines, in order ([`Newlines::positions`]).
#[derive(Debug, Clone)]
pub struct Positions<'a> {
    words: &'a [u64],
    /// The index of the word `bits` is left of.
    word: usize,
    /// The marks of word `word` not yet handed out.
    bits: u64,
}

impl Iterator for Positions<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.bits == 0 {
            // Lines run to kilobytes, so most words hold no mark: they are passed eight at a
            // time, then the next mark is in one of the eight after (or in the last few words).
            let rest = self.words.get(self.word + 1..)?;
            let empty = 8 * rest
                .chunks_exact(8)
                .take_while(|eight| eight.iter().fold(0, |any, w| any | w) == 0)
                .count();
            let next = empty + rest[empty..].iter().position(|&w| w != 0)?;
            self.word += 1 + next;
            self.bits = rest[next];
        }
        let at = self.word * 64 + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(at)
    }
}

/// The pass, given how to take a 64-byte step's masks (newlines, CRs): the CPU's best way,
/// inlined into a function compiled for it. The words are written in place, not pushed or
/// collected, so no call sits in the loop: around one (a vector's growth, an iterator's
/// `collect` not compiled for the CPU), the compiler gives up the registers holding the masks'
/// constants, or calls the masks a step.
#[inline(always)]
fn of_with(data: &[u8], masks_of: impl Fn(&[u8; 64]) -> (u64, u64)) -> Newlines {
    let mut words = vec![0u64; data.len().div_ceil(64)];
    let mut count = 0;
    let mut crs = 0;
    let steps = data.chunks_exact(64);
    let rest = steps.remainder();
    for (word, step) in words.iter_mut().zip(steps) {
        let (newlines, cr) = masks_of(step.try_into().expect("steps of 64 bytes"));
        *word = newlines;
        count += newlines.count_ones() as usize;
        crs |= cr;
    }
    if let Some(last) = words.last_mut().filter(|_| !rest.is_empty()) {
        // The last bytes, in a copy padded with zeros (neither newline nor CR).
        let mut padded = [0u8; 64];
        padded[..rest.len()].copy_from_slice(rest);
        let (newlines, cr) = masks_of(&padded);
        *last = newlines;
        count += newlines.count_ones() as usize;
        crs |= cr;
    }
    Newlines {
        words,
        count,
        crs: crs != 0,
    }
}

/// The newline and CR masks of 64 bytes: bit `i` set when `step[i]` is one.
#[inline]
fn masks_64(step: &[u8; 64]) -> (u64, u64) {
    step.chunks_exact(16)
        .enumerate()
        .fold((0, 0), |(newlines, crs), (k, part)| {
            let (n, c) = masks_16(part.try_into().expect("parts of 16 bytes"));
            (
                newlines | u64::from(n) << (16 * k),
                crs | u64::from(c) << (16 * k),
            )
        })
}

/// [`masks_64`] of 16 bytes.
#[inline]
fn masks_16(part: &[u8; 16]) -> (u16, u16) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline, and the load reads exactly the 16 bytes.
        unsafe {
            let v = _mm_loadu_si128(part.as_ptr().cast());
            let newlines = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
            let crs = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8));
            (
                _mm_movemask_epi8(newlines) as u16,
                _mm_movemask_epi8(crs) as u16,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        part.iter().enumerate().fold((0, 0), |(n, c), (i, &b)| {
            (
                n | u16::from(b == b'\n') << i,
                c | u16::from(b == b'\r') << i,
            )
        })
    }
}

/// The pass compiled for AVX2 and POPCNT.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{of_with, Newlines};
    use std::arch::x86_64::*;

    /// [`Newlines::of`] on a CPU with AVX2 and POPCNT.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) fn of_avx2(data: &[u8]) -> Newlines {
        // A closure, which takes the function's features, so that the masks are inlined.
        of_with(data, |step| masks_64(step))
    }

    /// [`super::masks_64`] in two 32-byte halves. The CR mask is only tested for being zero, so
    /// its halves are joined as vectors, one `movemask` for both.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn masks_64(step: &[u8; 64]) -> (u64, u64) {
        // SAFETY: the two loads read the step's 64 bytes.
        let (lo, hi) = unsafe {
            (
                _mm256_loadu_si256(step.as_ptr().cast()),
                _mm256_loadu_si256(step.as_ptr().add(32).cast()),
            )
        };
        let (newline, cr) = (_mm256_set1_epi8(b'\n' as i8), _mm256_set1_epi8(b'\r' as i8));
        let newlines = |v| u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, newline)) as u32);
        let crs = _mm256_or_si256(_mm256_cmpeq_epi8(lo, cr), _mm256_cmpeq_epi8(hi, cr));
        (
            newlines(lo) | newlines(hi) << 32,
            u64::from(_mm256_movemask_epi8(crs) as u32),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The newlines of `data` found both ways the CPU allows, checked against a plain reading.
    fn check(data: &[u8]) {
        let newlines: Vec<usize> = (0..data.len()).filter(|&i| data[i] == b'\n').collect();
        let crs = data.contains(&b'\r');
        let mut found = vec![Newlines::of(data), of_with(data, masks_64)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the CPU has AVX2 and POPCNT, just detected.
            found.push(unsafe { x86::of_avx2(data) });
        }
        for n in found {
            assert_eq!(n.positions().collect::<Vec<_>>(), newlines, "{data:?}");
            assert_eq!(n.count(), newlines.len());
            assert_eq!(n.crs(), crs);
        }
    }

    #[test]
    fn every_length_and_place_of_a_newline_and_a_cr() {
        for len in 0..200 {
            check(&vec![b'a'; len]);
            for at in 0..len {
                let mut data = vec![b'a'; len];
                data[at] = b'\n';
                check(&data);
                data[at] = b'\r';
                check(&data);
                // A line end with a CR before it, and newlines at both ends.
                data[at] = b'\n';
                data[at.saturating_sub(1)] = b'\r';
                data[0] = b'\n';
                data[len - 1] = b'\n';
                check(&data);
            }
        }
    }

    #[test]
    fn lines_kilobytes_apart_and_runs_of_newlines() {
        // Marks with runs of empty words between them of every length around the eight skipped
        // at a time.
        for gap in 0..20 {
            let mut data = Vec::new();
            for _ in 0..7 {
                data.extend(std::iter::repeat_n(b'x', gap * 64 + 3));
                data.push(b'\n');
            }
            check(&data);
        }
        check(&[b'\n'; 1000]);
        check(&[b'\r'; 1000]);
        check(&b"\r\n".repeat(500));
    }

    proptest! {
        #[test]
        fn any_bytes(data in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..2000)) {
            check(&data);
        }
    }
}
