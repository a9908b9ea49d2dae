//! A validating JSON scanner for the hot path: one pass over a batch line that checks it is valid
//! JSON and picks out the members the converters read, as borrowed [`Raw`] slices.
//!
//! It reads all of JSON: keys are compared by their value (`"custom_\u0069d"` is `custom_id`),
//! and values it does not descend into are skipped by an iterative loop, so nesting of any depth
//! costs a byte a level, never a stack frame. It gives up with [`Fallback`] only on what is not
//! valid JSON, and on what a converter cannot take (a duplicate member it reads, a shape it does
//! not expect); the caller then parses with serde_json, which words the error. A differential
//! test holds it to accepting exactly what a conforming parser accepts.
//!
//! Why not serde_json alone: skipping the long string literals that make up most of a request
//! is where the time goes, and here it is a 64-bytes-at-a-time search (see [`stops_64`]).

use std::borrow::Cow;

use super::json::Raw;

/// The scanner gave up; parse the line with serde_json instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fallback;

pub(crate) type Scan<T> = Result<T, Fallback>;

/// Where plain string content stops in 64 bytes: bit `i` is set when `chunk[i]` is `"`, `\\` or a
/// control character (below 0x20).
///
/// Python's `json.dumps` writes non-ASCII prose as runs of `\uXXXX` escapes, a stop every few
/// bytes: one mask serves every stop in 64 bytes, where a search per stop would load and compare
/// the same bytes again for each.
#[inline]
fn stops_64(chunk: &[u8; 64]) -> u64 {
    chunk
        .chunks_exact(16)
        .enumerate()
        .fold(0u64, |mask, (k, part)| {
            let part = part.try_into().expect("chunks of 16 bytes");
            mask | u64::from(stops_16(part)) << (16 * k)
        })
}

/// [`stops_64`] of 16 bytes: bit `i` is set when `chunk[i]` is `"`, `\\` or below 0x20.
#[inline]
fn stops_16(chunk: &[u8; 16]) -> u16 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline, and the load reads exactly the 16 bytes.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            // b <= 0x1f (unsigned) exactly when max(b, 0x1f) == 0x1f.
            let control_max = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, control_max), control_max);
            let hits = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                ),
                control,
            );
            _mm_movemask_epi8(hits) as u16
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        chunk
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'"' || b == b'\\' || b < 0x20)
            .fold(0u16, |mask, (i, _)| mask | 1 << i)
    }
}

/// How many of the 16 bytes, from the first, are ASCII digits.
#[inline]
fn digit_run(chunk: &[u8; 16]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads exactly the 16 bytes.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            // Signed compares: bytes from 0x80 up are negative, so never between '0' and '9'.
            let digits = _mm_and_si128(
                _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1)),
                _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1)),
            );
            let others = !(_mm_movemask_epi8(digits) as u32) & 0xffff;
            others.trailing_zeros().min(16) as usize
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        chunk.iter().take_while(|b| b.is_ascii_digit()).count()
    }
}

/// The length of an escape after its backslash, by the byte that follows it: 1 for the
/// one-letter escapes, 5 for `uXXXX`, 0 for what is no escape.
static ESCAPE_LENGTH: [u8; 256] = {
    let mut t = [0u8; 256];
    let ones = *b"\"\\/bfnrt";
    let mut i = 0;
    while i < ones.len() {
        t[ones[i] as usize] = 1;
        i += 1;
    }
    t[b'u' as usize] = 5;
    t
};

/// What an escape-dense step of 64 bytes holds, a bit a byte, for [`escape_run`].
#[derive(Clone, Copy)]
struct EscapeMasks {
    /// `"` and the control characters (below 0x20): where content ends unless escaped.
    ends: u64,
    backslashes: u64,
    /// `u`, the letter of a `\uXXXX`.
    us: u64,
    /// The ASCII hex digits.
    hex: u64,
}

impl EscapeMasks {
    /// The masks of 64 bytes, 16 at a time.
    #[inline]
    fn of_64(chunk: &[u8; 64]) -> Self {
        let mut masks = EscapeMasks {
            ends: 0,
            backslashes: 0,
            us: 0,
            hex: 0,
        };
        for (k, part) in chunk.chunks_exact(16).enumerate() {
            let [ends, backslashes, us, hex] =
                escape_masks_16(part.try_into().expect("chunks of 16 bytes"));
            masks.ends |= u64::from(ends) << (16 * k);
            masks.backslashes |= u64::from(backslashes) << (16 * k);
            masks.us |= u64::from(us) << (16 * k);
            masks.hex |= u64::from(hex) << (16 * k);
        }
        masks
    }

    /// Each mask moved down by `by` (less than 64) bits: bit 0 for the byte `by` into the step.
    #[inline]
    fn shifted(self, by: usize) -> Self {
        EscapeMasks {
            ends: self.ends >> by,
            backslashes: self.backslashes >> by,
            us: self.us >> by,
            hex: self.hex >> by,
        }
    }
}

/// [`EscapeMasks`] of 16 bytes: ends, backslashes, `u`s and hex digits.
#[inline]
fn escape_masks_16(chunk: &[u8; 16]) -> [u16; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline, and the load reads exactly the 16 bytes.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let control_max = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, control_max), control_max);
            let ends = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)), control);
            let backslashes = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            let us = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'u' as i8));
            // Signed compares: bytes from 0x80 up are negative, in no range here.
            let between = |v, low: u8, high: u8| {
                _mm_and_si128(
                    _mm_cmpgt_epi8(v, _mm_set1_epi8(low as i8 - 1)),
                    _mm_cmplt_epi8(v, _mm_set1_epi8(high as i8 + 1)),
                )
            };
            let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let hex = _mm_or_si128(between(v, b'0', b'9'), between(lower, b'a', b'f'));
            [ends, backslashes, us, hex].map(|m| _mm_movemask_epi8(m) as u16)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mask = |test: fn(u8) -> bool| {
            chunk
                .iter()
                .enumerate()
                .filter(|(_, &b)| test(b))
                .fold(0u16, |mask, (i, _)| mask | 1 << i)
        };
        [
            mask(|b| b == b'"' || b < 0x20),
            mask(|b| b == b'\\'),
            mask(|b| b == b'u'),
            mask(|b| b.is_ascii_hexdigit()),
        ]
    }
}

/// A run of escapes from the backslash at `bytes[at]`, judged 64 bytes at once: the index of
/// the first byte after it the walk must look at — the closing quote, a control character, an
/// escape too near the step's end to judge in it, or plain content 64 bytes on. [`Fallback`]
/// for an escape JSON has not.
///
/// Python's `json.dumps` writes non-ASCII prose as `\uXXXX`s every few bytes, back to back in
/// non-Latin scripts: judged one at a time, each cost a branch on its kind, four table lookups
/// and a trip round the walk; here one step of masks judges all of them in 64 bytes, and passes
/// the plain content between them too.
///
/// `bytes[at]` starts an escape, and so does every backslash of a run from it that is not
/// itself escaped: in a run of backslashes, every other one from the run's first. Past the
/// escapes' letters the masks tell the rest: a quote that no escape holds ends the literal, and
/// a `\uXXXX` holds four hex digits. Where a hex digit is missing the masks may misread what
/// follows, but that escape, before any byte misread, already fails.
#[inline(always)]
fn escape_run(
    bytes: &[u8],
    at: usize,
    masks_of: &impl Fn(&[u8; 64]) -> EscapeMasks,
) -> Scan<usize> {
    debug_assert!(bytes.len() >= 64 && bytes[at] == b'\\');
    // As a step of the walk: the line's last 64 bytes when fewer follow, shifted; the bits
    // past the line's end are clear (plain content that is no hex digit).
    let from = at.min(bytes.len() - 64);
    let chunk = bytes[from..]
        .first_chunk::<64>()
        .expect("64 bytes from the step");
    let masks = masks_of(chunk).shifted(at - from);
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslashes = masks.backslashes;
    let run_starts = backslashes & !(backslashes << 1);
    // Adding a run's first bit clears the run (the carry stops at the byte after it): what
    // adding the odd-placed firsts clears is the runs that start at odd bytes.
    let odd_runs = backslashes & !backslashes.wrapping_add(run_starts & !EVEN);
    let starts = (backslashes & !odd_runs & EVEN) | (odd_runs & !EVEN);
    // An escape starting in the last six bytes may end past them: the next run judges it.
    const LAST_SIX: u64 = !0 << 58;
    let bound = (masks.ends & !(starts << 1)) | (starts & LAST_SIX);
    let end = (bound.trailing_zeros() as usize).min(64);
    let before = if end == 64 { !0 } else { (1u64 << end) - 1 };
    let letters = (starts & before) << 1;
    let unicode = letters & masks.us;
    let mut others = letters & !unicode;
    while others != 0 {
        let letter = bytes
            .get(at + others.trailing_zeros() as usize)
            .ok_or(Fallback)?;
        if ESCAPE_LENGTH[usize::from(*letter)] != 1 {
            return Err(Fallback);
        }
        others &= others - 1;
    }
    let digits = unicode << 1 | unicode << 2 | unicode << 3 | unicode << 4;
    if digits & !masks.hex != 0 {
        return Err(Fallback);
    }
    Ok(at + end)
}

/// A position in one line of JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// The closing brackets a walk still owes, innermost last: one bit each (`}` or `]`), in a word
/// for the first 64 levels and in `deeper` past them. The usual depths cost no allocation (a
/// vector of brackets cost one a line); any depth stays iterative.
#[derive(Default)]
pub(super) struct Closers {
    /// The innermost up to 64, the innermost in bit 0; set for `}`.
    bits: u64,
    /// How many are owed.
    depth: usize,
    /// The full words of the outer levels, outermost first.
    deeper: Vec<u64>,
}

impl Closers {
    #[inline]
    pub(super) fn push(&mut self, close: u8) {
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.deeper.push(self.bits);
            self.bits = 0;
        }
        self.bits = self.bits << 1 | u64::from(close == b'}');
        self.depth += 1;
    }

    /// Whether the innermost container is an array.
    #[inline]
    fn in_array(&self) -> bool {
        self.depth > 0 && self.bits & 1 == 0
    }

    /// The innermost closing bracket owed.
    #[inline]
    pub(super) fn last(&self) -> Option<u8> {
        (self.depth > 0).then_some(if self.bits & 1 == 1 { b'}' } else { b']' })
    }

    #[inline]
    pub(super) fn pop(&mut self) {
        debug_assert!(self.depth > 0, "a pop matches a push");
        self.depth -= 1;
        self.bits >>= 1;
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.bits = self.deeper.pop().expect("a full word for each 64 levels");
        }
    }

    /// How many are owed.
    #[inline]
    pub(super) fn depth(&self) -> usize {
        self.depth
    }
}

/// The rest of a string literal whose content starts at `bytes[at]`: the index past its closing
/// quote, and whether it holds an escape. [`Fallback`] for a raw control character, an escape
/// JSON has not, or no closing quote.
///
/// On a CPU with AVX2 (detected once a literal) the whole walk is compiled for it, its masks
/// taken 32 bytes a step; called from inside the walk, the detected masks could not be inlined.
fn literal_rest(bytes: &[u8], at: usize) -> Scan<(usize, bool)> {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() >= 64 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, just detected.
        return unsafe { x86::literal_rest_avx2(bytes, at) };
    }
    literal_rest_portable(bytes, at)
}

/// [`literal_rest`] on any CPU.
fn literal_rest_portable(bytes: &[u8], at: usize) -> Scan<(usize, bool)> {
    if bytes.len() < 64 {
        // Shorter than a step: walked in a copy padded with spaces (plain content, no closing
        // quote), which ends the literal, or fails to, exactly where the line does.
        let mut padded = [b' '; 64];
        padded[..bytes.len()].copy_from_slice(bytes);
        return literal_rest_with(&padded, at, stops_64, EscapeMasks::of_64);
    }
    literal_rest_with(bytes, at, stops_64, EscapeMasks::of_64)
}

/// [`literal_rest`] in a line of 64 bytes or more, given how to take a 64-byte step's
/// [`stops_64`] and [`EscapeMasks`]: the CPU's best ways, inlined into a function compiled for
/// it.
#[inline(always)]
fn literal_rest_with(
    bytes: &[u8],
    mut at: usize,
    stops_of: impl Fn(&[u8; 64]) -> u64,
    escapes_of: impl Fn(&[u8; 64]) -> EscapeMasks,
) -> Scan<(usize, bool)> {
    // The callers hold lines of 64 bytes or more; said here in a form the compiler keeps, so
    // that it knows every step's 64 bytes lie within the line and checks none of them.
    let Some(last) = bytes.len().checked_sub(64) else {
        return Err(Fallback);
    };
    if at >= bytes.len() {
        return Err(Fallback); // the line ends at the opening quote
    }
    // The stops in the 64 bytes from `at`. The last step takes the line's last 64 bytes,
    // shifted: no call in the loop (around one, the compiler gives up the registers holding
    // its constants, and keeps a mask as 64 one-bit lanes). Every step's `at` is below
    // `bytes.len()`, so the shift is less than 64.
    let step = |at: usize| {
        let from = at.min(last);
        let chunk = bytes[from..]
            .first_chunk::<64>()
            .expect("64 bytes from the last step");
        stops_of(chunk) >> (at - from)
    };
    let mut escaped = false;
    loop {
        // Plain content up to the first stop, 64 bytes a step.
        let stops = step(at);
        if stops == 0 {
            at += 64;
            if at >= bytes.len() {
                return Err(Fallback); // no closing quote
            }
            continue;
        }
        let stop = at + stops.trailing_zeros() as usize;
        match bytes.get(stop) {
            Some(b'"') => return Ok((stop + 1, escaped)),
            Some(b'\\') => escaped = true,
            _ => return Err(Fallback), // a raw control character
        }
        // Escapes, and the plain content between them, 64 bytes a run until a run ends in
        // plain content.
        at = stop;
        loop {
            at = escape_run(bytes, at, &escapes_of)?;
            match bytes.get(at) {
                Some(b'"') => return Ok((at + 1, escaped)),
                Some(b'\\') => continue,
                Some(0..0x20) | None => return Err(Fallback),
                Some(_) => break,
            }
        }
    }
}

/// The string walk compiled for AVX2.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{literal_rest_with, EscapeMasks, Scan};
    use std::arch::x86_64::*;

    /// [`super::literal_rest`] in a line of 64 bytes or more.
    #[target_feature(enable = "avx2")]
    pub(super) fn literal_rest_avx2(bytes: &[u8], at: usize) -> Scan<(usize, bool)> {
        // A closure, which takes the function's features, so that the masks are inlined.
        literal_rest_with(
            bytes,
            at,
            |chunk| stops_64(chunk),
            |chunk| escape_masks_64(chunk),
        )
    }

    /// [`EscapeMasks::of_64`] in two 32-byte halves.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn escape_masks_64(chunk: &[u8; 64]) -> EscapeMasks {
        let (quote, backslash, u) = (
            _mm256_set1_epi8(b'"' as i8),
            _mm256_set1_epi8(b'\\' as i8),
            _mm256_set1_epi8(b'u' as i8),
        );
        let control_max = _mm256_set1_epi8(0x1f);
        // Signed compares: bytes from 0x80 up are negative, in no range here.
        let between = |v, low: u8, high: u8| {
            _mm256_and_si256(
                _mm256_cmpgt_epi8(v, _mm256_set1_epi8(low as i8 - 1)),
                _mm256_cmpgt_epi8(_mm256_set1_epi8(high as i8 + 1), v),
            )
        };
        let half = |v: __m256i| {
            let control = _mm256_cmpeq_epi8(_mm256_max_epu8(v, control_max), control_max);
            let ends = _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), control);
            let lower = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            let hex = _mm256_or_si256(between(v, b'0', b'9'), between(lower, b'a', b'f'));
            [
                ends,
                _mm256_cmpeq_epi8(v, backslash),
                _mm256_cmpeq_epi8(v, u),
                hex,
            ]
            .map(|m| u64::from(_mm256_movemask_epi8(m) as u32))
        };
        // SAFETY: the two loads read the chunk's 64 bytes.
        let (lo, hi) = unsafe {
            (
                half(_mm256_loadu_si256(chunk.as_ptr().cast())),
                half(_mm256_loadu_si256(chunk.as_ptr().add(32).cast())),
            )
        };
        EscapeMasks {
            ends: lo[0] | hi[0] << 32,
            backslashes: lo[1] | hi[1] << 32,
            us: lo[2] | hi[2] << 32,
            hex: lo[3] | hi[3] << 32,
        }
    }

    /// [`super::stops_64`] in two 32-byte halves.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn stops_64(chunk: &[u8; 64]) -> u64 {
        let (quote, backslash) = (_mm256_set1_epi8(b'"' as i8), _mm256_set1_epi8(b'\\' as i8));
        let control_max = _mm256_set1_epi8(0x1f);
        let half = |v: __m256i| {
            // b <= 0x1f (unsigned) exactly when max(b, 0x1f) == 0x1f.
            let control = _mm256_cmpeq_epi8(_mm256_max_epu8(v, control_max), control_max);
            let hits = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)),
                control,
            );
            u64::from(_mm256_movemask_epi8(hits) as u32)
        };
        // SAFETY: the two loads read the chunk's 64 bytes.
        let (lo, hi) = unsafe {
            (
                _mm256_loadu_si256(chunk.as_ptr().cast()),
                _mm256_loadu_si256(chunk.as_ptr().add(32).cast()),
            )
        };
        half(lo) | half(hi) << 32
    }
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Scan<u8> {
        self.ws();
        self.bytes.get(self.at).copied().ok_or(Fallback)
    }

    /// Whether the next value starts with `c` (after whitespace).
    pub(crate) fn peek_is(&mut self, c: u8) -> bool {
        self.peek() == Ok(c)
    }

    fn eat(&mut self, c: u8) -> Scan<()> {
        if self.peek()? == c {
            self.at += 1;
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// The rest of the line is whitespace.
    pub(crate) fn end(&mut self) -> Scan<()> {
        self.ws();
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    fn raw(&self, start: usize) -> Raw<'a> {
        Raw::validated(&self.text[start..self.at])
    }

    /// Where the scanner is, past any whitespace: the start of the next value.
    pub(crate) fn position(&mut self) -> usize {
        self.ws();
        self.at
    }

    /// The text from `start` (a [`Scanner::position`]) to here: the values read since.
    pub(crate) fn since(&self, start: usize) -> Raw<'a> {
        self.raw(start)
    }

    /// A string literal at the current position (after whitespace).
    pub(crate) fn string(&mut self) -> Scan<Raw<'a>> {
        self.literal_and_escapes().map(|(literal, _)| literal)
    }

    /// A string literal at the current position (after whitespace), and whether it holds an
    /// escape (a key without one is its own value).
    #[inline(always)]
    fn literal_and_escapes(&mut self) -> Scan<(Raw<'a>, bool)> {
        self.eat(b'"')?;
        let start = self.at - 1;
        // Most literals are short — keys, roles, ids, stop reasons —: one 16-byte probe ends
        // them, where the 64-byte mask below would cost four.
        if let Some(chunk) = self.bytes[self.at..].first_chunk::<16>() {
            let stops = stops_16(chunk);
            let first = stops.trailing_zeros() as usize;
            if first < 16 && chunk[first] == b'"' {
                self.at += first + 1;
                return Ok((self.raw(start), false));
            }
        }
        let (end, escaped) = literal_rest(self.bytes, self.at)?;
        self.at = end;
        Ok((self.raw(start), escaped))
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        // Embeddings are arrays of thousands of ten-digit fractions: sixteen bytes at a time.
        while let Some(chunk) = self.bytes[self.at..].first_chunk::<16>() {
            let run = digit_run(chunk);
            self.at += run;
            if run < 16 {
                return self.at - start;
            }
        }
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Scan<()> {
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Fallback),
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(Fallback);
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(Fallback);
            }
        }
        Ok(())
    }

    /// A number, and the numbers that follow it in the same array each right after a comma
    /// (and a space, as Python's `json.dumps` writes them): an embedding's thousand elements in
    /// one loop, not a trip through the walker each. Stops before the first comma that is not
    /// followed so by a number's first byte.
    fn number_run(&mut self) -> Scan<()> {
        loop {
            self.number()?;
            self.at += match self.bytes[self.at..] {
                [b',', b'-' | b'0'..=b'9', ..] => 1,
                [b',', b' ', b'-' | b'0'..=b'9', ..] => 2,
                _ => return Ok(()),
            };
        }
    }

    /// An array of numbers only, as an embedding is; a fallback for anything else in it.
    pub(crate) fn numbers(&mut self) -> Scan<Raw<'a>> {
        self.eat(b'[')?;
        let start = self.at - 1;
        // Written the common way, checked 64 bytes a step.
        if let Some(end) = super::number_array::end(self.bytes, start) {
            self.at = end;
            return Ok(self.raw(start));
        }
        self.numbers_after(start)
    }

    /// [`Scanner::numbers`] read a byte at a time, by the grammar.
    #[cfg(test)]
    pub(crate) fn numbers_bytewise(&mut self) -> Scan<Raw<'a>> {
        self.eat(b'[')?;
        let start = self.at - 1;
        self.numbers_after(start)
    }

    /// The rest of [`Scanner::numbers`] after its `[`, at `start`, read a byte at a time.
    fn numbers_after(&mut self, start: usize) -> Scan<Raw<'a>> {
        if self.peek()? != b']' {
            loop {
                self.number_run()?;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        self.ws(); // `, ` as Python writes it
                    }
                    b']' => break,
                    _ => return Err(Fallback),
                }
            }
        }
        self.at += 1;
        Ok(self.raw(start))
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// A scalar (string, number, `true`, `false`, `null`) at the current position.
    fn scalar(&mut self) -> Scan<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// Skips the object or array at the current position, nested to any depth, without
    /// recursion: the closing brackets still owed are kept on a stack.
    fn skip_container(&mut self) -> Scan<()> {
        self.walk(&mut Closers::default(), |_| Ok(()))
    }

    /// Reads the value at the current position, nested to any depth, without recursion (the
    /// closing brackets still owed are kept on `closers`), telling `objects` of each non-empty
    /// object it enters, each key it reads, and each such object it leaves.
    fn walk(
        &mut self,
        closers: &mut Closers,
        mut objects: impl FnMut(Walked<'a>) -> Scan<()>,
    ) -> Scan<()> {
        loop {
            // At the start of a value.
            let c = self.peek()?;
            if c == b'{' || c == b'[' {
                self.at += 1;
                let close = if c == b'{' { b'}' } else { b']' };
                if self.peek()? == close {
                    self.at += 1;
                } else {
                    closers.push(close);
                    if close == b'}' {
                        objects(Walked::Open)?;
                        let key = self.string()?;
                        self.eat(b':')?;
                        objects(Walked::Key(key))?;
                    }
                    continue;
                }
            } else if closers.in_array() && (c == b'-' || c.is_ascii_digit()) {
                self.number_run()?;
            } else {
                self.scalar()?;
            }
            // After a value: the next member or element, or the end of containers.
            loop {
                let Some(close) = closers.last() else {
                    return Ok(());
                };
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if close == b'}' {
                            let key = self.string()?;
                            self.eat(b':')?;
                            objects(Walked::Key(key))?;
                        }
                        break;
                    }
                    c if c == close => {
                        self.at += 1;
                        closers.pop();
                        if close == b'}' {
                            objects(Walked::Close)?;
                        }
                    }
                    _ => return Err(Fallback),
                }
            }
        }
    }

    /// Any value, validated and skipped.
    pub(crate) fn value(&mut self) -> Scan<Raw<'a>> {
        let c = self.peek()?;
        let start = self.at;
        match c {
            b'"' => return self.string(),
            b'{' | b'[' => self.skip_container()?,
            _ => self.scalar()?,
        }
        Ok(self.raw(start))
    }

    /// Skips the value at the current position without judging it: an object or array by its
    /// structure alone (strings closed, brackets matched: see [`super::skim`]), any other value
    /// as [`Self::value`] does. For a member whose value is never read; valid JSON is skipped
    /// exactly as [`Self::value`] skips it.
    pub(crate) fn pass_over(&mut self) -> Scan<()> {
        match self.peek()? {
            b'{' | b'[' => {
                self.at = super::skim::container_end(self.bytes, self.at).ok_or(Fallback)?;
                Ok(())
            }
            _ => self.value().map(drop),
        }
    }

    /// An object; `member` is called at each value with the key's value (`"\u0061"` is `a`).
    #[inline]
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Scan<()>,
    ) -> Scan<Raw<'a>> {
        self.eat(b'{')?;
        let start = self.at - 1;
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                let (literal, escaped) = self.literal_and_escapes()?;
                let literal = literal.get();
                let key = if escaped {
                    Cow::Owned(super::json::text_value(literal).into_owned())
                } else {
                    Cow::Borrowed(&literal[1..literal.len() - 1])
                };
                self.eat(b':')?;
                member(self, key)?;
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(Fallback),
                }
            }
        }
        Ok(self.raw(start))
    }

    /// An array; `element` is called at each element.
    pub(crate) fn array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Scan<()>,
    ) -> Scan<Raw<'a>> {
        self.eat(b'[')?;
        let start = self.at - 1;
        if self.peek()? == b']' {
            self.at += 1;
        } else {
            loop {
                element(self)?;
                match self.peek()? {
                    b',' => self.at += 1,
                    b']' => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(Fallback),
                }
            }
        }
        Ok(self.raw(start))
    }
}

impl<'a> Scanner<'a> {
    /// An object read the way serde reads a struct: `read` is called at the value of each member
    /// named in `names` (with the name's index), the other members are validated and skipped,
    /// and a member read twice falls back (serde rejects a duplicate field). At most 64 names.
    /// (Two names of one field, as serde's aliases, are two names here: `read` tells a second.)
    #[inline]
    pub(crate) fn fields(
        &mut self,
        names: &[&str],
        read: impl FnMut(&mut Self, usize) -> Scan<()>,
    ) -> Scan<Raw<'a>> {
        self.fields_refusing(false, names, read)
    }

    /// [`Scanner::fields`] for a reader that stands in for serde's struct reader, which refuses
    /// a key holding a lone surrogate (`"\ud800"`) even of a member it skips, where `fields`
    /// takes it as an unknown member: such a key — any key holding U+FFFD, the text a lone
    /// surrogate decodes to — falls back, and serde words it.
    #[inline]
    pub(crate) fn struct_fields(
        &mut self,
        names: &[&str],
        read: impl FnMut(&mut Self, usize) -> Scan<()>,
    ) -> Scan<Raw<'a>> {
        self.fields_refusing(true, names, read)
    }

    #[inline]
    fn fields_refusing(
        &mut self,
        replaced_keys: bool,
        names: &[&str],
        mut read: impl FnMut(&mut Self, usize) -> Scan<()>,
    ) -> Scan<Raw<'a>> {
        let mut seen = 0u64;
        self.object(|s, key| {
            if replaced_keys && key.contains('\u{FFFD}') {
                return Err(Fallback);
            }
            let Some(i) = names.iter().position(|n| *n == key) else {
                return s.value().map(drop);
            };
            if seen & (1 << i) != 0 {
                return Err(Fallback);
            }
            seen |= 1 << i;
            read(s, i)
        })
    }

    /// A value serde reads as `Option<Raw>`: `None` for `null`.
    pub(crate) fn optional(&mut self) -> Scan<Option<Raw<'a>>> {
        Ok(non_null(self.value()?))
    }

    /// A value serde reads as an optional struct: `None` for `null`, `read` for an object, and a
    /// fallback for anything else (which serde rejects, in words).
    pub(crate) fn nullable_object<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Scan<T>,
    ) -> Scan<Option<T>> {
        match self.peek()? {
            b'{' => read(self).map(Some),
            b'n' => self
                .value()
                .and_then(|v| non_null(v).map_or(Ok(None), |_| Err(Fallback))),
            _ => Err(Fallback),
        }
    }

    /// A value serde reads as a list that `null` leaves empty: `element` at each element of an
    /// array, nothing for `null`, and a fallback for anything else.
    pub(crate) fn nullable_array(
        &mut self,
        element: impl FnMut(&mut Self) -> Scan<()>,
    ) -> Scan<()> {
        match self.peek()? {
            b'[' => self.array(element).map(drop),
            b'n' => self
                .value()
                .and_then(|v| non_null(v).map_or(Ok(()), |_| Err(Fallback))),
            _ => Err(Fallback),
        }
    }
}

/// The elements of the array `text`, each raw, as serde reads a `Vec<Raw>`.
pub(crate) fn elements(text: &str) -> Scan<Vec<Raw<'_>>> {
    let mut s = Scanner::new(text);
    let mut list = Vec::new();
    s.array(|s| {
        list.push(s.value()?);
        Ok(())
    })?;
    s.end()?;
    Ok(list)
}

/// `Some` unless the value is `null` (serde's reading of `Option`).
pub(crate) fn non_null(raw: Raw<'_>) -> Option<Raw<'_>> {
    (raw.get() != "null").then_some(raw)
}

/// Whether `text` is exactly one JSON string literal (any escapes, lone surrogates included: the
/// grammar allows them).
pub(crate) fn is_string_literal(text: &str) -> bool {
    text.starts_with('"') && is_json(text)
}

/// What [`Scanner::walk`] tells of the objects it reads.
enum Walked<'a> {
    /// A non-empty object begins.
    Open,
    /// Its next key (a string literal).
    Key(Raw<'a>),
    /// It ends.
    Close,
}

/// Whether `text` is one JSON value, by the grammar alone (at any depth; a `\u` escape may be
/// half a surrogate pair).
pub(crate) fn is_json(text: &str) -> bool {
    let mut s = Scanner::new(text);
    s.value().and_then(|_| s.end()).is_ok()
}

/// The first key that an object in `text` (one JSON value) gives twice (as its second spelling
/// writes it), at any depth, compared by value (`"a"` and `"\u0061"` are one key, each lone
/// surrogate itself); `Err` when `text` is no JSON value. One pass, without recursion, holding a
/// byte per open array and the keys of the open objects: nesting may be as deep as the text is
/// long.
pub(crate) fn repeated_key(text: &str) -> Scan<Option<String>> {
    let mut s = Scanner::new(text);
    let mut twice = None;
    let walked = s.walk_for_repeats(&mut twice);
    if twice.is_some() {
        return Ok(twice);
    }
    walked?;
    s.end()?;
    Ok(None)
}

/// [`repeated_key`] outside the value at the member path `exempt` (`["function", "parameters"]`:
/// that member of that member of the top object), which is not looked into: a value a model
/// takes as written, where the model's own reader decides what a repeat means. The path is
/// followed through objects only (never into an array), so it names one value.
pub(crate) fn repeated_key_outside(text: &str, exempt: &[&str]) -> Scan<Option<String>> {
    let mut s = Scanner::new(text);
    let twice = s.repeats_outside(exempt)?;
    if twice.is_none() {
        s.end()?;
    }
    Ok(twice)
}

/// [`repeated_key_outside`] for each element of the array `text`, in one pass: the index of the
/// first element giving a key twice, and the key.
pub(crate) fn repeated_key_in_elements_outside(
    text: &str,
    exempt: &[&str],
) -> Scan<Option<(usize, String)>> {
    let mut s = Scanner::new(text);
    let (mut index, mut twice) = (0, None);
    let walked = s.array(|s| {
        if let Some(key) = s.repeats_outside(exempt)? {
            twice = Some((index, key));
            return Err(Fallback); // found: the walk stops here
        }
        index += 1;
        Ok(())
    });
    if twice.is_some() {
        return Ok(twice);
    }
    walked?;
    s.end()?;
    Ok(None)
}

impl<'a> Scanner<'a> {
    /// The first key given twice in the value at the current position, outside the value at
    /// `exempt` (see [`repeated_key_outside`]). Recurses once a segment of `exempt`, never
    /// deeper.
    fn repeats_outside(&mut self, exempt: &[&str]) -> Scan<Option<String>> {
        let Some((first, rest)) = exempt.split_first() else {
            self.value()?;
            return Ok(None);
        };
        if self.peek()? != b'{' {
            let mut twice = None;
            let walked = self.walk_for_repeats(&mut twice);
            return if twice.is_some() {
                Ok(twice)
            } else {
                walked.map(|_| None)
            };
        }
        self.at += 1;
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(None);
        }
        let mut keys = OpenKeys::default();
        keys.open();
        loop {
            let key = self.string()?.get();
            if let Some(twice) = keys.member(key) {
                return Ok(Some(twice));
            }
            self.eat(b':')?;
            let twice = if *super::json::decode_literal(key) == *first.as_bytes() {
                self.repeats_outside(rest)?
            } else {
                let mut twice = None;
                let walked = self.walk_for_repeats(&mut twice);
                if twice.is_none() {
                    walked?;
                }
                twice
            };
            if twice.is_some() {
                return Ok(twice);
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Ok(None);
                }
                _ => return Err(Fallback),
            }
        }
    }

    /// The value at the current position, as [`Scanner::value`] reads it, when no object in it
    /// gives a key twice; a fallback when one does (or it is no JSON value). One pass where
    /// reading the value and then [`repeated_key`] would be two.
    pub(crate) fn value_without_repeats(&mut self) -> Scan<Raw<'a>> {
        let start = self.position();
        self.walk_for_repeats(&mut None)?;
        Ok(self.since(start))
    }

    /// The value at the current position, as [`Scanner::value`] reads it, and whether it is an
    /// array none of whose elements gives a key twice outside the value at `exempt` (what
    /// [`repeated_key_in_elements_outside`] looks for). One pass where reading the value and
    /// then checking it would be two; an array with a repeat is read again (rare: a family that
    /// sends it as written refuses the line).
    pub(crate) fn value_with_elements_checked(&mut self, exempt: &[&str]) -> Scan<(Raw<'a>, bool)> {
        let start = self.position();
        if self.peek()? == b'[' {
            let mut repeat = false;
            let walked = self.array(|s| {
                repeat = s.repeats_outside(exempt)?.is_some();
                match repeat {
                    true => Err(Fallback), // found: the walk stops here
                    false => Ok(()),
                }
            });
            if !repeat {
                return walked.map(|raw| (raw, true));
            }
            self.at = start;
        }
        self.value().map(|raw| (raw, false))
    }

    /// Walks the value at the current position; the first key an object gives twice, as
    /// written, goes into `twice` (and the walk stops with a fallback).
    fn walk_for_repeats(&mut self, twice: &mut Option<String>) -> Scan<()> {
        let mut keys = OpenKeys::default();
        self.walk(&mut Closers::default(), |event| {
            match event {
                Walked::Open => keys.open(),
                Walked::Close => keys.close(),
                Walked::Key(key) => {
                    *twice = keys.member(key.get());
                    if twice.is_some() {
                        return Err(Fallback); // found: the walk stops here
                    }
                }
            }
            Ok(())
        })
    }
}

/// The keys of the objects [`repeated_key`] is inside, each object's after its outer one's.
#[derive(Default)]
struct OpenKeys<'a> {
    keys: Vec<Cow<'a, [u8]>>,
    /// Per open object: where its keys begin, and a set of them once it has many.
    objects: Vec<(usize, Option<Box<KeySet<'a>>>)>,
}

type KeySet<'a> = std::collections::HashSet<Cow<'a, [u8]>>;

impl<'a> OpenKeys<'a> {
    /// Up to this many keys, an object's are compared one by one.
    const LINEAR: usize = 16;

    fn open(&mut self) {
        self.objects.push((self.keys.len(), None));
    }

    fn close(&mut self) {
        if let Some((start, _)) = self.objects.pop() {
            self.keys.truncate(start);
        }
    }

    /// Adds the key `literal` to the innermost object: the key as written when the object
    /// already has it.
    fn member(&mut self, literal: &'a str) -> Option<String> {
        let key = super::json::decode_literal(literal);
        let (start, set) = self.objects.last_mut()?;
        let seen = match set {
            Some(set) => !set.insert(key.clone()),
            None => self.keys[*start..].contains(&key),
        };
        if seen {
            // As written: a lone surrogate has no other spelling.
            return Some(literal[1..literal.len() - 1].to_owned());
        }
        self.keys.push(key);
        if set.is_none() && self.keys.len() - *start > Self::LINEAR {
            *set = Some(Box::new(self.keys[*start..].iter().cloned().collect()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn valid(text: &str) -> bool {
        is_json(text)
    }

    #[test]
    fn accepts_what_json_allows() {
        for ok in [
            "0",
            "-0",
            "1.5e-3",
            "-12E+4",
            "true",
            "false",
            "null",
            r#""""#,
            r#""a\"b\\c\/\b\f\n\r\t\u00e9""#,
            "[]",
            "{}",
            r#" { "a" : [ 1 , { } , "x" ] } "#,
            "[[[[]]]]",
            // Arrays of numbers, read a run at a time.
            "[1,-2.5e3,0,-0.0,7E-1]",
            "[1 ,2, 3 , -4]",
            "[[1,2],[3],{\"a\":[4,5]},6]",
            "[1,\"a\",2,true,-3]",
        ] {
            assert!(valid(ok), "{ok}");
            assert!(
                serde_json::from_str::<serde_json::Value>(ok).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn refuses_what_json_does_not() {
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            r#""abc"#,
            r#""\x""#,
            r#""\u12""#,
            "\"a\u{1}b\"",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{a:1}",
            "[1 2]",
            "1 2",
            "{\"a\":1}}",
            "'a'",
            "[1,2,]",
            "[1,,2]",
            "[1,-]",
            "[1,01]",
            "[1,2.]",
            "[1,2e]",
            "[1,2",
            "[1,2 3]",
            "[1,-a]",
            "[1,2}",
        ] {
            assert!(!valid(bad), "{bad:?}");
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn numbers_of_any_shape_are_read_as_json_reads_them() {
        // Number-like strings of 1–24 bytes around the 16-byte fast path's edges, inside an
        // array and after a sign or digits of padding, against serde_json's verdict; commas and
        // spaces among them, as arrays written `, ` apart have.
        const BYTES: &[u8] = b"0019-.eE+,] ";
        let mut rng = crate::record::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = |n: usize| rng.below(n);
        let mut accepted = 0;
        for _ in 0..100_000 {
            let len = 1 + next(24);
            let mut body: String = (0..len)
                .map(|_| char::from(BYTES[next(BYTES.len())]))
                .collect();
            if next(2) == 0 {
                body.insert_str(0, &"7".repeat(next(17)));
            }
            for text in [format!("[{body}]"), body.clone(), format!("[1,{body},2]")] {
                assert_eq!(
                    valid(&text),
                    // IgnoredAny: the grammar alone (a Value refuses `1e901` as out of range).
                    serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok(),
                    "{text}"
                );
                accepted += usize::from(valid(&text));
            }
        }
        // Enough of them are numbers for the fast path to have been taken.
        assert!(accepted > 5_000, "{accepted}");
    }

    #[test]
    fn numbers_are_an_array_of_numbers_only() {
        let numbers = |text: &str| {
            let mut s = Scanner::new(text);
            s.numbers()
                .map(|raw| raw.get().len())
                .and_then(|n| s.end().map(|()| n))
        };
        for ok in [
            "[]",
            "[ ]",
            "[0]",
            "[1,-2.5e3,0.125]",
            "[ 1 , 2 ,3 ]",
            "[-0.0,1E+2]",
            "[1, -2, 0.5, 3]",
            "[1,  2, 3 ]",
        ] {
            assert_eq!(numbers(ok), Ok(ok.len()), "{ok}");
        }
        for bad in [
            "[1,\"2\"]",
            "[null]",
            "[[1]]",
            "[1,]",
            "[1, ]",
            "[1,,2]",
            "[1, , 2]",
            "[1, 2,]",
            "[01]",
            "[1",
            "1",
            "[1 2]",
        ] {
            assert_eq!(numbers(bad), Err(Fallback), "{bad}");
        }
    }

    #[test]
    fn any_depth_is_read_without_recursion() {
        for depth in [1, 127, 128, 129, 1_000, 200_000] {
            let arrays = "[".repeat(depth) + &"]".repeat(depth);
            assert!(valid(&arrays), "{depth}");
            let objects = r#"{"a":"#.repeat(depth) + "null" + &"}".repeat(depth);
            assert!(valid(&objects), "{depth}");
            let mixed = r#"{"k":[1,{"x":"#.repeat(depth) + "2" + &"}]}".repeat(depth);
            assert!(valid(&mixed), "{depth}");
            // One bracket short, or one too many: refused, at any depth.
            assert!(!valid(&arrays[1..]));
            assert!(!valid(&(arrays.clone() + "]")));
            assert!(!valid(&mixed[..mixed.len() - 1]));
        }
    }

    #[test]
    fn each_level_must_close_with_its_own_bracket_across_the_words_of_closers() {
        // Around the 64-level words the owed brackets are kept in: a wrong closer at any level
        // is refused, and the right ones are taken.
        for depth in [63, 64, 65, 127, 128, 129, 200] {
            let object = |level: usize| level.is_multiple_of(3) || level % 7 == 1;
            let open: String = (0..depth)
                .map(|l| if object(l) { r#"{"a":"# } else { "[" })
                .collect();
            let closers: Vec<char> = (0..depth)
                .rev()
                .map(|l| if object(l) { '}' } else { ']' })
                .collect();
            let text = |closers: &[char]| format!("{open}0{}", String::from_iter(closers));
            assert!(valid(&text(&closers)), "{depth}");
            for k in 0..depth {
                let mut wrong = closers.clone();
                wrong[k] = if wrong[k] == '}' { ']' } else { '}' };
                assert!(!valid(&text(&wrong)), "depth {depth}, closer {k}");
            }
        }
    }

    #[test]
    fn a_key_given_twice_is_found_in_any_object_at_any_depth() {
        use super::repeated_key;
        let twice = |text: &str| repeated_key(text).unwrap();
        for (text, key) in [
            (r#"{"a":1,"a":2}"#, Some("a")),
            (r#"{"a":1,"\u0061":2}"#, Some("\\u0061")),
            (r#"{"x":{"b":1,"c":[],"b":{}}}"#, Some("b")),
            (r#"[1,{"k":{"a":1}},{"z":0,"z":0}]"#, Some("z")),
            // The same key in different objects, or as a value: once each.
            (r#"{"x":[{"b":1},{"b":2}],"b":"b","y":{"x":1}}"#, None),
            (r#"{"\ud800":1,"\ud801":2,"\u00e9":3,"é ":4}"#, None),
            (r#"{"\ud800":1,"\ud800":2}"#, Some("\\ud800")),
            (r#"{}"#, None),
            (r#"[[],{},"a",-1.5e400]"#, None),
        ] {
            assert_eq!(twice(text).as_deref(), key, "{text}");
        }
        // Past the keys compared one by one, and back out of an inner object.
        let many: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{{"k{i}":0}}"#)).collect();
        let many = format!("{{{}}}", many.join(","));
        assert_eq!(twice(&many), None);
        let again = format!(r#"{}, "k39":1}}"#, &many[..many.len() - 1]);
        assert_eq!(twice(&again).as_deref(), Some("k39"));
        let deep = r#"{"k":[1,{"x":"#.repeat(100_000) + "2" + &"}]}".repeat(100_000);
        assert_eq!(twice(&deep), None);
        let deep_twice = "[".repeat(100_000) + r#"{"q":1,"q":2}"# + &"]".repeat(100_000);
        assert_eq!(twice(&deep_twice).as_deref(), Some("q"));
        for bad in [r#"{"a":1,"a""#, r#"{"a" 1}"#, "[1,]", r#"{"a":1}x"#, ""] {
            assert!(repeated_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_given_twice_is_found_outside_the_value_left_as_written() {
        use super::{repeated_key, repeated_key_outside};
        let path = ["function", "parameters"];
        let twice = |text: &str| repeated_key_outside(text, &path).unwrap();
        for (text, key) in [
            // Inside the exempt value: not looked into, at any depth.
            (r#"{"function":{"parameters":{"x":1,"x":2}}}"#, None),
            (
                r#"{"f\u0075nction":{"parameters":[{"y":[{"z":0,"z":0}]}]}}"#,
                None,
            ),
            (
                r#"{"function":{"name":"f","parameters":{"a":{"b":1,"b":2}},"strict":true}}"#,
                None,
            ),
            // Beside it, and in the objects that hold it.
            (
                r#"{"function":{"name":"f","name":"g","parameters":{}}}"#,
                Some("name"),
            ),
            (
                r#"{"function":{"parameters":{},"param\u0065ters":{}}}"#,
                Some("param\\u0065ters"),
            ),
            (
                r#"{"function":{"parameters":{}},"function":{}}"#,
                Some("function"),
            ),
            (
                r#"{"type":"function","function":{},"type":"x"}"#,
                Some("type"),
            ),
            (
                r#"{"function":{"description":{"parameters":{"x":1,"x":2}}}}"#,
                Some("x"),
            ),
            (r#"{"other":{"parameters":{"x":1,"x":2}}}"#, Some("x")),
            (
                r#"{"function":{"parameters":{}},"extra":[{"z":1,"z":2}]}"#,
                Some("z"),
            ),
            // The path goes through objects only: not into an array.
            (r#"{"function":[{"parameters":{"x":1,"x":2}}]}"#, Some("x")),
            (r#"[{"function":{"parameters":{"x":1,"x":2}}}]"#, Some("x")),
            (
                r#"{"\ud800":1,"\ud801":{"parameters":{"q":0,"q":0}}}"#,
                Some("q"),
            ),
            (r#"{"\ud800":1,"\ud800":2}"#, Some("\\ud800")),
            (r#"{}"#, None),
            (r#"{"function":null}"#, None),
        ] {
            // The same, as the elements of an array, read in one pass.
            let list = format!("[{{}},{text},{{}}]");
            let in_list = super::repeated_key_in_elements_outside(&list, &path).unwrap();
            assert_eq!(in_list, key.map(|k| (1, k.to_owned())), "{list}");
            assert_eq!(twice(text).as_deref(), key, "{text}");
        }
        // With no exempt path nothing is left: the whole value is as written.
        assert_eq!(repeated_key_outside(r#"{"a":1,"a":1}"#, &[]).unwrap(), None);
        // Deep nesting beside the exempt value is walked without recursion.
        let deep = format!(
            r#"{{"function":{{"parameters":{{}}}},"d":{}{{"w":0,"w":0}}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(twice(&deep).as_deref(), Some("w"));
        for bad in [
            r#"{"function":{"parameters":{"x"}}}"#,
            r#"{"function":{}"#,
            r#"{"a":1}x"#,
            "",
        ] {
            assert!(repeated_key_outside(bad, &path).is_err(), "{bad}");
            assert!(repeated_key(bad).is_err(), "{bad}");
        }
    }

    /// The stops in the 64 bytes from `at`, bytes past the end plain; the AVX2 masks checked
    /// against the portable ones where the CPU has AVX2.
    fn stops(bytes: &[u8], at: usize) -> u64 {
        let mut chunk = [b' '; 64];
        let rest = &bytes[at..bytes.len().min(at + 64)];
        chunk[..rest.len()].copy_from_slice(rest);
        let mask = stops_64(&chunk);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, just detected.
            assert_eq!(unsafe { x86::stops_64(&chunk) }, mask, "both masks agree");
        }
        mask
    }

    /// How long the string literal opening `text` is, by [`Scanner::string`]; its walk checked
    /// against the portable one where the CPU takes the other.
    fn string_len(text: &str) -> Option<usize> {
        let len = Scanner::new(text).string().ok().map(|r| r.get().len());
        if text.starts_with('"') {
            assert_eq!(
                literal_rest(text.as_bytes(), 1),
                literal_rest_portable(text.as_bytes(), 1),
                "both walks agree on {text:?}"
            );
        }
        len
    }

    #[test]
    fn stops_mark_every_stop_byte_at_any_offset() {
        for len in 0..140 {
            for at in 0..len {
                for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut v = vec![b'a'; len];
                    v[at] = stop;
                    if at + 1 < len {
                        v[at + 1] = b'"';
                    }
                    for from in [0, at.saturating_sub(63), at] {
                        let mask = stops(&v, from);
                        let first = mask.trailing_zeros() as usize;
                        if at - from < 64 {
                            assert_eq!(first, at - from, "len {len} at {at} from {from}");
                            let next = (mask >> first >> 1).trailing_zeros() as usize;
                            if at + 1 < len && at + 1 - from < 64 {
                                assert_eq!(next, 0, "the quote after it too");
                            }
                        }
                    }
                }
            }
            assert_eq!(stops(&vec![0x20; len], 0), 0);
            assert_eq!(
                stops(&vec![0xff; len], 0),
                0,
                "bytes above 0x7f are not controls"
            );
        }
    }

    /// The grammar of a JSON string, one byte at a time: where the literal that opens `text`
    /// ends, or `None` when it is no string literal.
    fn string_end(text: &[u8]) -> Option<usize> {
        let mut i = 1;
        loop {
            match *text.get(i)? {
                b'"' => return Some(i + 1),
                b'\\' => match *text.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' if text.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                    _ => return None,
                },
                0..0x20 => return None,
                _ => i += 1,
            }
        }
    }

    /// Pieces of string content, good and bad, that meet the 64-byte blocks at every offset.
    const PIECES: &[&str] = &[
        "a",
        "é",
        "😀",
        " ",
        "\\u00e9",
        "\\u00E9",
        "\\ud83d\\ude00",
        "\\ud800",
        "\\n",
        "\\t",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b\\f\\r",
        "\\",
        "\\x",
        "\\u12",
        "\\u12G4",
        "\\U0041",
        "\"",
        "\n",
        "\u{1}",
        "\u{7f}",
        "\\u",
        "\\u00",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn strings_are_read_as_the_grammar_reads_them(
            lead in 0usize..70,
            pieces in prop::collection::vec(0..PIECES.len(), 0..40),
            escapes in prop::collection::vec(0..7usize, 0..12),
            tail in prop::sample::select(vec!["\"", "\" ", "", "x\"", "\\\"\""]),
        ) {
            // Escape-dense runs first, often, so that many stops share a 64-byte mask.
            let mut text = String::from("\"");
            text.push_str(&"x".repeat(lead));
            for e in escapes {
                text.push_str(PIECES[4 + e]);
            }
            for p in pieces {
                text.push_str(PIECES[p]);
            }
            text.push_str(tail);
            prop_assert_eq!(string_len(&text), string_end(text.as_bytes()), "{:?}", text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// Backslash runs of every length and parity, `u`s, hex digits and quotes in any order:
        /// the bulk judging of escapes against the grammar's byte-at-a-time reading.
        #[test]
        fn any_mix_of_escape_bytes_is_read_as_the_grammar_reads_it(
            body in prop::collection::vec(
                prop::sample::select(vec![
                    "\\", "\\", "\\", "u", "u", "0", "9", "a", "F", "g", "\"", "n", "/",
                    "x", "é", "\n", "\u{1f}",
                ]),
                0..160,
            ),
            lead in 0usize..70,
        ) {
            let text = format!("\"{}{}", "x".repeat(lead), body.concat());
            prop_assert_eq!(string_len(&text), string_end(text.as_bytes()), "{:?}", text);
            let closed = format!("{text}\"");
            prop_assert_eq!(string_len(&closed), string_end(closed.as_bytes()), "{:?}", closed);
        }
    }

    #[test]
    fn escape_masks_agree_on_every_byte_at_every_place() {
        for byte in 0..=255u8 {
            for at in [0, 15, 16, 31, 32, 47, 63] {
                let mut chunk = [b' '; 64];
                chunk[at] = byte;
                let masks = EscapeMasks::of_64(&chunk);
                let bit = 1u64 << at;
                assert_eq!(masks.ends == bit, byte == b'"' || byte < 0x20, "{byte:#x}");
                assert_eq!(masks.backslashes == bit, byte == b'\\', "{byte:#x}");
                assert_eq!(masks.us == bit, byte == b'u', "{byte:#x}");
                assert_eq!(masks.hex == bit, byte.is_ascii_hexdigit(), "{byte:#x}");
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, just detected.
                    let avx2 = unsafe { x86::escape_masks_64(&chunk) };
                    assert_eq!(
                        [avx2.ends, avx2.backslashes, avx2.us, avx2.hex],
                        [masks.ends, masks.backslashes, masks.us, masks.hex],
                        "{byte:#x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_line_ending_at_an_opening_quote_holds_no_string() {
        // The walk past the 16-byte probe starts at the line's end: no step, no closing quote.
        for len in 1..200 {
            let text = format!("{}\"", " ".repeat(len - 1));
            let mut s = Scanner::new(&text);
            s.at = len - 1;
            assert_eq!(s.string().map(drop), Err(Fallback), "length {len}");
            assert_eq!(literal_rest(text.as_bytes(), len), Err(Fallback));
            assert_eq!(literal_rest_portable(text.as_bytes(), len), Err(Fallback));
        }
        let cut = format!("{{\"k\":\"{}\",\"", "x".repeat(55));
        assert_eq!(cut.len(), 64);
        assert!(!valid(&cut), "{cut}");
    }

    #[test]
    fn strings_are_read_to_the_last_byte_of_the_line() {
        // Every pair of pieces closing the line, quoted or not: escapes cut short by the line's
        // end, and escapes with fewer than five bytes after their backslash.
        for first in PIECES {
            for last in PIECES {
                for tail in ["", "\"", "x\"", r#"\u00e9""#, r"\u00e9"] {
                    let text = format!("\"{first}{last}{tail}");
                    assert_eq!(string_len(&text), string_end(text.as_bytes()), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn digit_runs_end_at_the_first_other_byte() {
        for len in 0..=16 {
            for other in [b'/', b':', b'.', b'e', b'-', 0x00, 0x80, 0xb0, 0xff] {
                let mut chunk = [b'7'; 16];
                if len < 16 {
                    chunk[len] = other;
                }
                assert_eq!(digit_run(&chunk), len, "{len} then {other:#x}");
            }
        }
        for (text, ok) in [
            ("-0.01234567890123456789012345", true),
            ("12345678901234567890123456789e+12345678901234567", true),
            ("0.12345678901234567890x", false),
            ("01234567890123456789", false),
            ("1.e5", false),
            ("1.5e", false),
        ] {
            assert_eq!(valid(text), ok, "{text}");
        }
    }

    #[test]
    fn escapes_are_what_serde_json_takes_byte_for_byte() {
        let serde_takes = |text: &str| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
        for c in (0x20u8..0x7f).map(char::from) {
            let text = format!("\"a\\{c}00af\"");
            assert_eq!(valid(&text), serde_takes(&text), "{text}");
            for at in 0..4 {
                let mut hex: Vec<char> = "00af".chars().collect();
                hex[at] = c;
                let hex: String = hex.into_iter().collect();
                let text = format!("\"\\u{hex}\"");
                assert_eq!(valid(&text), serde_takes(&text), "{text}");
            }
        }
    }

    #[test]
    fn strings_are_read_across_mask_boundaries_whatever_their_escapes() {
        // Every escape, at every offset around the 64-byte masks, and strings ending at each.
        let pieces = [r"\u00e9", r"\ud83d\ude00", r#"\""#, r"\\", r"\n", "a", "é"];
        for lead in 0..70 {
            for piece in pieces {
                for count in [1, 2, 11] {
                    let body = format!("{}{}", "x".repeat(lead), piece.repeat(count));
                    let text = format!("\"{body}\" ");
                    assert_eq!(string_len(&text), Some(body.len() + 2), "{text}");
                    let open = format!("\"{body}");
                    assert_eq!(string_len(&open), None, "{open}");
                    let broken = format!("\"{body}\\x\"");
                    assert_eq!(string_len(&broken), None, "{broken}");
                }
            }
        }
    }
}
