//! An array of JSON numbers — an embedding — checked 64 bytes a step.
//!
//! A Titan answer is a thousand numbers or more (`-0.023570336,0.02538608,…`); read a byte at a
//! time by the grammar they took ~90 instructions each, well over half of Titan `from-bedrock`.
//! Here each step sorts its 64 bytes into masks (digits, `-`, `+`, `.`, `e`/`E`, `,`, `]`, space,
//! anything else) and checks each byte as what may follow the byte before it — the number
//! grammar as a table of successors, every byte's checked at once:
//!
//! - after a number's leading `-`, a `.` or an exponent's sign: a digit; after an `e`: a digit
//!   or a sign;
//! - after the integer part's digits: `.`, `e` or the number's end (`,` or `]`); after the
//!   fraction's: `e` or the end; after the exponent's: the end. Which run of digits is which
//!   part is told by the byte before it, and the byte after every run of a part is found at
//!   once by adding the runs' starts to the digit mask, the carry running through each run;
//! - after an integer part's first digit `0`: no digit;
//! - after a `,`: a number, or spaces then a number (the byte before the first number counts
//!   as a `,`). The first `]` ends the array.
//!
//! A `-` or `+` anywhere else, a `.` or `e` out of place, a `,` or `]` after no digit, a byte of
//! any other kind: each is what the byte before it may not be followed by.
//!
//! The step answers "valid, ends here" or "not sure": anything else — an empty array, a space
//! before a `,` or the `]`, a tab or a line break, a nested value, anything that is no number
//! — is left to the byte-at-a-time reading, which takes all of JSON. A test holds the two to
//! the same verdict.

/// Where the array of numbers opening at `bytes[open]` (a `[`) ends: the index past its `]`,
/// when it is numbers only written the common way; `None` when the caller must read it.
pub(super) fn end(bytes: &[u8], open: usize) -> Option<usize> {
    debug_assert_eq!(bytes.get(open), Some(&b'['));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, just detected.
        return unsafe { x86::end_avx2(bytes, open + 1) };
    }
    end_with(bytes, open + 1, classify_portable)
}

/// One step's bytes by kind: bit `i` of each mask for byte `i`.
#[derive(Clone, Copy, Default)]
struct Classes {
    digit: u64,
    zero: u64,
    minus: u64,
    plus: u64,
    dot: u64,
    exp: u64,
    comma: u64,
    close: u64,
    space: u64,
}

/// What a step needs of the bytes before it: for each mask, whether the step's previous byte
/// (the last of the step before) has it, in bit 0; and the runs of digits still open.
#[derive(Clone, Copy)]
struct Carry {
    number: u64,
    exp: u64,
    lead_minus: u64,
    exp_sign: u64,
    dot: u64,
    comma: u64,
    space: u64,
    int_zero: u64,
    /// A run of digits of the integer part, the fraction or the exponent runs on past the step.
    int_run: bool,
    frac_run: bool,
    exp_run: bool,
}

impl Carry {
    /// Before the first byte after the `[`: as if after a `,` (a number, after spaces if any).
    fn start() -> Self {
        Carry {
            number: 0,
            exp: 0,
            lead_minus: 0,
            exp_sign: 0,
            dot: 0,
            comma: 1,
            space: 0,
            int_zero: 0,
            int_run: false,
            frac_run: false,
            exp_run: false,
        }
    }
}

/// What one step found.
enum Step {
    /// Every byte is as it may be; the array goes on.
    More(Carry),
    /// The array ends at this byte of the step, its `]`.
    End(u32),
    /// Not sure: read the array byte by byte.
    Unsure,
}

/// The mask of the bytes right after each run of `digits` that starts at a bit of `starts`
/// (and after the one open since an earlier step, when `open`), and whether such a run is open
/// past the step: adding a run's start to it carries through the run to the byte after.
///
/// A run starts at most once (`open` only when the step's first byte goes on with a run of the
/// step before, which is then no start), so a run carries once. A run that starts in no part of
/// a number is checked by nothing here: the byte before it is bad already (a `+` or `-` where
/// none may be, or a byte of no kind here).
#[inline(always)]
fn after_runs(digits: u64, starts: u64, open: bool) -> (u64, bool) {
    let (sum, over1) = digits.overflowing_add(starts);
    let (sum, over2) = sum.overflowing_add(u64::from(open));
    (sum & !digits, over1 | over2)
}

/// Checks one step's bytes, given what came before.
#[inline(always)]
fn step(c: &Classes, before: &Carry) -> Step {
    // Each mask moved one byte on: bit `i` says what byte `i - 1` is.
    let prev = |mask: u64, carried: u64| mask << 1 | carried;
    let number = c.digit | c.minus | c.plus | c.dot | c.exp;
    let starts = number & !prev(number, before.number);
    let p_exp = prev(c.exp, before.exp);
    let lead_minus = c.minus & starts;
    let exp_sign = (c.minus | c.plus) & p_exp;
    let p_lead_minus = prev(lead_minus, before.lead_minus);
    let p_exp_sign = prev(exp_sign, before.exp_sign);
    let p_dot = prev(c.dot, before.dot);
    let p_comma = prev(c.comma, before.comma);
    let p_space = prev(c.space, before.space);

    let int_start = c.digit & (starts | p_lead_minus);
    let frac_start = c.digit & p_dot;
    let exp_start = c.digit & (p_exp | p_exp_sign);
    let int_zero = int_start & c.zero;
    let p_int_zero = prev(int_zero, before.int_zero);
    let (after_int, int_run) = after_runs(c.digit, int_start, before.int_run);
    let (after_frac, frac_run) = after_runs(c.digit, frac_start, before.frac_run);
    let (after_exp, exp_run) = after_runs(c.digit, exp_start, before.exp_run);

    // Each byte checked as what may follow the byte before it: any byte of no kind here follows
    // nothing.
    let mut bad = (p_lead_minus | p_dot | p_exp_sign) & !c.digit;
    bad |= p_exp & !(c.digit | c.minus | c.plus);
    bad |= after_int & !(c.dot | c.exp | c.comma | c.close);
    bad |= after_frac & !(c.exp | c.comma | c.close);
    bad |= after_exp & !(c.comma | c.close);
    bad |= p_int_zero & c.digit;
    bad |= p_comma & !(c.digit | c.minus | c.space);
    bad |= p_space & !(c.space | c.digit | c.minus);

    // Only the bytes up to the first `]` are the array's.
    let end = c.close & c.close.wrapping_neg();
    let mine = if end == 0 { u64::MAX } else { end | (end - 1) };
    if bad & mine != 0 {
        return Step::Unsure;
    }
    if end != 0 {
        return Step::End(end.trailing_zeros());
    }
    let top = |mask: u64| mask >> 63;
    Step::More(Carry {
        number: top(number),
        exp: top(c.exp),
        lead_minus: top(lead_minus),
        exp_sign: top(exp_sign),
        dot: top(c.dot),
        comma: top(c.comma),
        space: top(c.space),
        int_zero: top(int_zero),
        int_run,
        frac_run,
        exp_run,
    })
}

/// [`end`] from `from`, the byte after the `[`, given how to classify 64 bytes: the CPU's best
/// way, inlined into a function compiled for it.
#[inline(always)]
fn end_with(bytes: &[u8], from: usize, classify: impl Fn(&[u8; 64]) -> Classes) -> Option<usize> {
    let mut before = Carry::start();
    let mut base = from;
    // Whole steps in the loop; the last, short one after it in a padded copy (a copy inside
    // the loop would cost the loop its registers).
    while let Some(chunk) = bytes.get(base..).and_then(|rest| rest.first_chunk::<64>()) {
        match step(&classify(chunk), &before) {
            Step::More(carry) => before = carry,
            Step::End(at) => return Some(base + at as usize + 1),
            Step::Unsure => return None,
        }
        base += 64;
    }
    let rest = bytes.get(base..).unwrap_or_default();
    // Padded with bytes that are none of the array's: an array the line does not close is
    // left to the reader.
    let mut last = [0u8; 64];
    last[..rest.len()].copy_from_slice(rest);
    match step(&classify(&last), &before) {
        Step::End(at) => Some(base + at as usize + 1),
        Step::More(_) | Step::Unsure => None,
    }
}

/// Classifies 64 bytes one at a time (on CPUs without the vector code below).
fn classify_portable(chunk: &[u8; 64]) -> Classes {
    let mut c = Classes::default();
    for (i, &b) in chunk.iter().enumerate() {
        let bit = 1u64 << i;
        let mask = match b {
            b'0'..=b'9' => {
                if b == b'0' {
                    c.zero |= bit;
                }
                &mut c.digit
            }
            b'-' => &mut c.minus,
            b'+' => &mut c.plus,
            b'.' => &mut c.dot,
            b'e' | b'E' => &mut c.exp,
            b',' => &mut c.comma,
            b']' => &mut c.close,
            b' ' => &mut c.space,
            _ => continue,
        };
        *mask |= bit;
    }
    c
}

/// The classification in vector registers.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{end_with, Classes};
    use std::arch::x86_64::*;

    /// [`super::end`] compiled for AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) fn end_avx2(bytes: &[u8], from: usize) -> Option<usize> {
        // A closure, which takes the function's features, so that the masks are inlined.
        end_with(bytes, from, |chunk| classify_avx2(chunk))
    }

    /// Classifies 64 bytes in two 32-byte halves.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn classify_avx2(chunk: &[u8; 64]) -> Classes {
        let is = |v: __m256i, b: u8| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b as i8));
        let bits = |m: __m256i| u64::from(_mm256_movemask_epi8(m) as u32);
        let half = |v: __m256i| {
            // Signed compares: bytes from 0x80 up are negative, so never digits.
            let digit = _mm256_and_si256(
                _mm256_cmpgt_epi8(v, _mm256_set1_epi8(b'0' as i8 - 1)),
                _mm256_cmpgt_epi8(_mm256_set1_epi8(b'9' as i8 + 1), v),
            );
            // `E` is `e` but for the 0x20 bit.
            let lower = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            Classes {
                digit: bits(digit),
                zero: bits(is(v, b'0')),
                minus: bits(is(v, b'-')),
                plus: bits(is(v, b'+')),
                dot: bits(is(v, b'.')),
                exp: bits(is(lower, b'e')),
                comma: bits(is(v, b',')),
                close: bits(is(v, b']')),
                space: bits(is(v, b' ')),
            }
        };
        // SAFETY: the two loads read the chunk's 64 bytes.
        let (lo, hi) = unsafe {
            (
                half(_mm256_loadu_si256(chunk.as_ptr().cast())),
                half(_mm256_loadu_si256(chunk.as_ptr().add(32).cast())),
            )
        };
        let join = |a: u64, b: u64| a | b << 32;
        Classes {
            digit: join(lo.digit, hi.digit),
            zero: join(lo.zero, hi.zero),
            minus: join(lo.minus, hi.minus),
            plus: join(lo.plus, hi.plus),
            dot: join(lo.dot, hi.dot),
            exp: join(lo.exp, hi.exp),
            comma: join(lo.comma, hi.comma),
            close: join(lo.close, hi.close),
            space: join(lo.space, hi.space),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{classify_portable, end_with};
    use crate::record::scan::Scanner;
    use crate::record::test_rng::Rng;

    /// The byte-at-a-time reading's verdict: where the array ends, if it is numbers only.
    fn read(text: &str) -> Option<usize> {
        let mut s = Scanner::new(text);
        s.numbers_bytewise().ok().map(|raw| raw.get().len())
    }

    /// Every way this build can classify, each held to the reader.
    fn ends(text: &str) -> Vec<Option<usize>> {
        let bytes = text.as_bytes();
        let mut ends = vec![end_with(bytes, 1, classify_portable)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, just detected.
            ends.push(unsafe { super::x86::end_avx2(bytes, 1) });
        }
        ends
    }

    /// Holds the steps to the reader on `text`: what they accept, the reader accepts and ends
    /// at the same byte. Whether they accepted.
    fn agrees(text: &str) -> bool {
        let read = read(text);
        let ends = ends(text);
        for end in &ends {
            if end.is_some() {
                assert_eq!(*end, read, "{text:?}");
            }
        }
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{text:?}: {ends:?}");
        ends[0].is_some()
    }

    /// A number as an embedding has them, or as JSON allows them.
    fn number(rng: &mut Rng) -> String {
        let digits = |rng: &mut Rng, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect()
        };
        let mut n = String::new();
        if rng.below(2) == 0 {
            n.push('-');
        }
        match rng.below(4) {
            0 => n.push('0'),
            _ => {
                n.push(char::from(b'1' + rng.below(9) as u8));
                let more = rng.below(4);
                n += &digits(rng, more);
            }
        }
        if rng.below(4) != 0 {
            n.push('.');
            let more = 1 + rng.below(12);
            n += &digits(rng, more);
        }
        if rng.below(5) == 0 {
            n.push(if rng.below(2) == 0 { 'e' } else { 'E' });
            match rng.below(3) {
                0 => n.push('-'),
                1 => n.push('+'),
                _ => {}
            }
            let more = 1 + rng.below(3);
            n += &digits(rng, more);
        }
        n
    }

    /// An array of `count` numbers, `, ` or `,` apart, maybe with spaces after the `[`.
    fn array(rng: &mut Rng, count: usize) -> String {
        let mut text = String::from("[");
        text += &" ".repeat(rng.below(3) * rng.below(2));
        let spaced = rng.below(3) == 0;
        for i in 0..count {
            if i > 0 {
                text.push(',');
                if spaced {
                    text += &" ".repeat(1 + rng.below(2));
                }
            }
            text += &number(rng);
        }
        text.push(']');
        text
    }

    #[test]
    fn arrays_of_numbers_are_taken_whole() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for count in 1..300 {
            let text = array(&mut rng, count);
            assert!(agrees(&text), "{text}");
            // With what follows an array in a line.
            let line = format!("{text},\"inputTextTokenCount\":7}}");
            assert!(agrees(&line), "{line}");
            assert_eq!(ends(&line)[0], Some(text.len()));
        }
    }

    #[test]
    fn a_fault_anywhere_is_never_taken_for_valid() {
        // Each byte of valid arrays (across several steps) replaced by each byte a number or an
        // array may hold, and by a few it may not; deleted; doubled.
        const BYTES: &[u8] = b"0123456789-+.eE, ][\"\tx\x00\xc3";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for count in [1, 2, 5, 9, 20] {
            let text = array(&mut rng, count).into_bytes();
            for at in 0..text.len() {
                let mut variants = vec![];
                for &b in BYTES {
                    let mut v = text.clone();
                    v[at] = b;
                    variants.push(v);
                }
                let mut v = text.clone();
                v.remove(at);
                variants.push(v);
                let mut v = text.clone();
                v.insert(at, text[at]);
                variants.push(v);
                for v in variants {
                    if v.first() != Some(&b'[') {
                        continue;
                    }
                    let Ok(v) = String::from_utf8(v) else {
                        continue; // the scanner sees text only
                    };
                    accepted += usize::from(agrees(&v));
                }
            }
        }
        assert!(accepted > 1_000, "{accepted}");
    }

    #[test]
    fn random_bytes_are_never_taken_for_valid() {
        // Short runs of the bytes numbers are made of, at every length and alignment, against
        // the reader; then the same at the end of a long valid array (past a step).
        const BYTES: &[u8] = b"0019-.eE+,] ";
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut accepted = 0;
        for round in 0..200_000 {
            let len = 1 + rng.below(40);
            let body: String = (0..len)
                .map(|_| char::from(BYTES[rng.below(BYTES.len())]))
                .collect();
            let text = match round % 3 {
                0 => format!("[{body}"),
                1 => format!("[{body}]"),
                _ => format!("[{}{body}]", "1,".repeat(rng.below(70))),
            };
            accepted += usize::from(agrees(&text));
        }
        assert!(accepted > 5_000, "{accepted}");
    }

    #[test]
    fn what_is_left_to_the_reader() {
        for text in [
            "[]", "[ ]", "[1 ,2]", "[1 ]", "[1,\t2]", "[1,\n2]", "[[1]]", "[1,2", "[01]", "[1.]",
            "[.5]", "[1e]", "[+1]", "[1,,2]", "[-]", "[1e5.0]", "[1.2.3]", "[1ee5]", "[\"1\"]",
        ] {
            assert_eq!(ends(text)[0], None, "{text}");
            agrees(text);
        }
        for text in ["[0]", "[-0.0,1E+2,3e-4,5e6]", "[1, 2,  3]", "[  7]"] {
            assert_eq!(ends(text)[0], Some(text.len()), "{text}");
        }
    }
}
