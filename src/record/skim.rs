//! Passing over a JSON container by its structure alone, 64 bytes a step.
//!
//! Every line of Bedrock's output echoes the request it answers (`modelInput`), most of the
//! line's bytes, and `from-bedrock` never reads it. Reading it by the grammar, as the scanner
//! reads what it keeps (every escape judged, every number read), was a quarter of the
//! conversion's instructions. To find where it ends, only two things matter: which bytes are
//! inside strings, and the brackets outside them. Both come from bit masks of 64 bytes: the
//! quotes not escaped (a quote is escaped when an odd run of backslashes comes before it), a
//! running XOR of those quotes (set from an opening quote up to its closing one), and the
//! brackets left outside. The brackets are matched by kind, so a skimmed value is a tree of
//! objects and arrays whose strings are closed; what lies between — scalars, commas, colons,
//! the escapes themselves — is not judged. For valid JSON it ends exactly where the grammar does.

use super::scan::Closers;

/// Where the container opening at `bytes[start]` (a `{` or `[`) ends: the index past its closing
/// bracket. `None` when the bytes end first, or a closing bracket does not match the one it
/// closes.
pub(crate) fn container_end(bytes: &[u8], start: usize) -> Option<usize> {
    debug_assert!(matches!(bytes.get(start), Some(b'{' | b'[')));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
    {
        // SAFETY: the CPU has both features, just detected.
        return unsafe { x86::container_end_avx2(bytes, start) };
    }
    container_end_portable(bytes, start)
}

/// [`container_end`] on any CPU.
fn container_end_portable(bytes: &[u8], start: usize) -> Option<usize> {
    container_end_with(bytes, start, Masks::of_64, running_xor)
}

/// [`container_end`], given how to take a step's masks and a running XOR: the CPU's best ways,
/// inlined into a function compiled for them.
#[inline(always)]
fn container_end_with(
    bytes: &[u8],
    start: usize,
    masks_of: impl Fn(&[u8; 64]) -> Masks,
    running_xor: impl Fn(u64) -> u64,
) -> Option<usize> {
    // The last step's bytes, padded with spaces: copied before the walk, so that no call in the
    // loop makes the compiler give up the registers holding its constants.
    let whole_steps = (bytes.len() - start) / 64;
    let mut last = [b' '; 64];
    let tail = &bytes[start + 64 * whole_steps..];
    last[..tail.len()].copy_from_slice(tail);
    // The closing brackets owed, a bit each (set for `}`), the innermost in bit 0: the first 64
    // levels in a register, deeper nesting by the byte-at-a-time walk.
    let (mut owed, mut depth) = (0u64, 0u32);
    // The step before ended inside a string / in a backslash.
    let (mut open, mut after_backslash) = (false, 0u64);
    let mut base = start;
    while base < bytes.len() {
        let masks = masks_of(bytes[base..].first_chunk::<64>().unwrap_or(&last));
        let mut quotes = masks.quotes;
        // A quote after a backslash is escaped when the run of backslashes before it is odd.
        // Such quotes are few (`\"` in prose): each run is counted where it is.
        let mut after = quotes & (masks.backslashes << 1 | after_backslash);
        while after != 0 {
            let quote = base + after.trailing_zeros() as usize;
            after &= after - 1;
            let run = bytes[start..quote]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count();
            if run % 2 == 1 {
                quotes &= !(1 << (quote - base));
            }
        }
        after_backslash = masks.backslashes >> 63;
        // Bit i is set from an opening quote up to the byte before its closing one.
        let mut inside = running_xor(quotes);
        if open {
            inside = !inside;
        }
        open = inside >> 63 == 1;
        let mut brackets = masks.brackets & !inside;
        while brackets != 0 {
            let at = base + brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            let b = bytes[at];
            // `{` and `}` have the 0x20 bit, `[` and `]` do not; `}` and `]` the 0x04 bit.
            let brace = u64::from(b & 0x20 != 0);
            if b & 0x04 == 0 {
                if depth == 64 {
                    return container_end_deep(bytes, start);
                }
                owed = owed << 1 | brace;
                depth += 1;
            } else {
                if owed & 1 != brace {
                    return None;
                }
                owed >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
        }
        base += 64;
    }
    None
}

/// [`container_end`] a byte at a time, for nesting deeper than 64 levels: a backslash escapes
/// the byte after it (unless it is itself escaped), a quote not escaped opens or closes a
/// string, brackets outside strings nest and must match. (The tests hold the masks to it.)
#[cold]
#[inline(never)]
fn container_end_deep(bytes: &[u8], start: usize) -> Option<usize> {
    let mut owed = Closers::default();
    let (mut in_string, mut escaping) = (false, false);
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        let escaped = escaping;
        escaping = b == b'\\' && !escaped;
        if b == b'"' && !escaped {
            in_string = !in_string;
        } else if !in_string {
            match b {
                b'{' => owed.push(b'}'),
                b'[' => owed.push(b']'),
                b'}' | b']' => {
                    if owed.last() != Some(b) {
                        return None;
                    }
                    owed.pop();
                    if owed.depth() == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// Bit i of the result is the XOR of bits 0..=i of `x`.
#[inline(always)]
fn running_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// The bytes of one 64-byte step that matter to the structure, a bit each.
struct Masks {
    quotes: u64,
    backslashes: u64,
    /// `{`, `[`, `}` and `]`.
    brackets: u64,
}

impl Masks {
    /// Four 16-byte steps: SSE2, which every x86-64 has, or a byte at a time elsewhere.
    #[inline(always)]
    fn of_64(chunk: &[u8; 64]) -> Self {
        let mut masks = Masks {
            quotes: 0,
            backslashes: 0,
            brackets: 0,
        };
        for (k, part) in chunk.chunks_exact(16).enumerate() {
            let [quotes, backslashes, brackets] =
                masks_16(part.try_into().expect("chunks of 16 bytes")).map(u64::from);
            masks.quotes |= quotes << (16 * k);
            masks.backslashes |= backslashes << (16 * k);
            masks.brackets |= brackets << (16 * k);
        }
        masks
    }
}

/// Quotes, backslashes and brackets of 16 bytes.
#[inline(always)]
fn masks_16(chunk: &[u8; 16]) -> [u16; 3] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline, and the load reads exactly the 16 bytes.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            // `[` and `]` are `{` and `}` without the 0x20 bit; no other byte becomes either.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let brackets = _mm_or_si128(
                _mm_cmpeq_epi8(folded, _mm_set1_epi8(b'{' as i8)),
                _mm_cmpeq_epi8(folded, _mm_set1_epi8(b'}' as i8)),
            );
            [
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))) as u16,
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))) as u16,
                _mm_movemask_epi8(brackets) as u16,
            ]
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mask = |hit: fn(u8) -> bool| {
            chunk
                .iter()
                .enumerate()
                .filter(|(_, &b)| hit(b))
                .fold(0u16, |mask, (i, _)| mask | 1 << i)
        };
        [
            mask(|b| b == b'"'),
            mask(|b| b == b'\\'),
            mask(|b| matches!(b, b'{' | b'[' | b'}' | b']')),
        ]
    }
}

/// The step in two 32-byte halves and the running XOR as one carry-less multiplication, where
/// the CPU has them (detected once a call: the whole walk is compiled for them).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{container_end_with, Masks};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,pclmulqdq")]
    pub(super) fn container_end_avx2(bytes: &[u8], start: usize) -> Option<usize> {
        // Closures, which take the function's features, so that both are inlined into the walk.
        container_end_with(bytes, start, |c| masks_64(c), |x| running_xor(x))
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn masks_64(chunk: &[u8; 64]) -> Masks {
        let (quote, backslash) = (_mm256_set1_epi8(b'"' as i8), _mm256_set1_epi8(b'\\' as i8));
        let (open, close) = (_mm256_set1_epi8(b'{' as i8), _mm256_set1_epi8(b'}' as i8));
        let case = _mm256_set1_epi8(0x20);
        // SAFETY: the two loads read the chunk's 64 bytes.
        let (lo, hi) = unsafe {
            (
                _mm256_loadu_si256(chunk.as_ptr().cast()),
                _mm256_loadu_si256(chunk.as_ptr().add(32).cast()),
            )
        };
        let bits = |lo: __m256i, hi: __m256i| {
            u64::from(_mm256_movemask_epi8(lo) as u32)
                | u64::from(_mm256_movemask_epi8(hi) as u32) << 32
        };
        let (lo_folded, hi_folded) = (_mm256_or_si256(lo, case), _mm256_or_si256(hi, case));
        Masks {
            quotes: bits(_mm256_cmpeq_epi8(lo, quote), _mm256_cmpeq_epi8(hi, quote)),
            backslashes: bits(
                _mm256_cmpeq_epi8(lo, backslash),
                _mm256_cmpeq_epi8(hi, backslash),
            ),
            brackets: bits(
                _mm256_or_si256(
                    _mm256_cmpeq_epi8(lo_folded, open),
                    _mm256_cmpeq_epi8(lo_folded, close),
                ),
                _mm256_or_si256(
                    _mm256_cmpeq_epi8(hi_folded, open),
                    _mm256_cmpeq_epi8(hi_folded, close),
                ),
            ),
        }
    }

    #[target_feature(enable = "pclmulqdq")]
    #[inline]
    fn running_xor(x: u64) -> u64 {
        // Multiplying by all ones without carries XORs each bit into every bit above it.
        let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
        _mm_cvtsi128_si64(product) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`container_end`], checked against the portable walk where the CPU takes the other one.
    fn ends(bytes: &[u8], start: usize) -> Option<usize> {
        let end = container_end(bytes, start);
        assert_eq!(
            end,
            container_end_portable(bytes, start),
            "both walks agree"
        );
        end
    }

    /// Any JSON value, strings full of quotes, backslashes and brackets.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let text = prop::collection::vec(
            prop::sample::select(vec![
                "\"", "\\", "{", "}", "[", "]", "a", " ", "é", "\n", "\u{1}",
            ]),
            0..12,
        )
        .prop_map(|pieces| pieces.concat());
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            text.clone().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 60, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::vec((text.clone(), inner), 0..6)
                    .prop_map(|members| serde_json::Value::Object(members.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn valid_json_ends_where_the_grammar_ends() {
        for text in [
            r#"{}"#,
            r#"[]"#,
            r#"{"a":"}"}"#,
            r#"{"a":"\"}"}"#,
            r#"{"a":"\\"}"#,
            r#"{"a":"\\\"]"}"#,
            r#"{"a":["x",{"b":"\\\\"}],"c":{}}"#,
            r#"[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]"#,
        ] {
            for lead in 0..130 {
                let padded = format!("{}{text} , \"tail\" ]", " ".repeat(lead));
                assert_eq!(
                    ends(padded.as_bytes(), lead),
                    Some(lead + text.len()),
                    "{text} after {lead} spaces"
                );
            }
        }
    }

    #[test]
    fn backslash_runs_across_steps() {
        // A run of backslashes ending a 64-byte step escapes the next step's first byte when
        // its length is odd, however long it is.
        for run in 0..200 {
            for lead in 0..70 {
                let mut text = String::from("{\"");
                text.push_str(&"x".repeat(lead));
                text.push_str(&"\\".repeat(run));
                text.push_str("\"}\"}");
                let expected = container_end_deep(text.as_bytes(), 0);
                assert_eq!(ends(text.as_bytes(), 0), expected, "{text}");
                assert!(expected.is_some());
            }
        }
    }

    #[test]
    fn deep_nesting_and_mismatches() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(ends(deep.as_bytes(), 0), Some(2000));
        let objects = format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300));
        assert_eq!(ends(objects.as_bytes(), 0), Some(objects.len()));
        assert_eq!(ends(b"{]", 0), None);
        assert_eq!(ends(b"[{]}", 0), None);
        assert_eq!(ends(b"{\"a\":\"}", 0), None, "an open string");
        assert_eq!(ends(b"[[]", 0), None, "the bytes end first");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn agrees_with_a_byte_at_a_time_reading(
            pieces in prop::collection::vec(
                prop::sample::select(vec!["\"", "\\", "\\\\", "{", "}", "[", "]", "a", " ", "é", "\\\""]),
                0..300,
            ),
            open in prop::sample::select(vec!["{", "["]),
            // Past 64 levels the walk goes on a byte at a time: from its first bracket on.
            deep in 0usize..70,
        ) {
            let text = format!("{}{}", open.repeat(1 + deep), pieces.concat());
            prop_assert_eq!(
                ends(text.as_bytes(), 0),
                container_end_deep(text.as_bytes(), 0)
            );
        }

        #[test]
        fn a_json_container_ends_where_it_is_written_to_end(
            value in json_value(),
            lead in 0usize..80,
        ) {
            let written = serde_json::to_string(&value).expect("a value is written");
            let text = format!("{}{written},\"next\":[\"]\"]}}", " ".repeat(lead));
            if value.is_object() || value.is_array() {
                let end = ends(text.as_bytes(), lead);
                prop_assert_eq!(end, Some(lead + written.len()), "{}", text);
            }
        }
    }
}
