//! Identity keys of string values (custom_ids, recordIds), and sets and maps keyed by them: the
//! keys are hashes already, so the tables use them as they are, with no second hashing.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::OnceLock;

use siphasher::sip128::SipHasher13;

use crate::record::json::decode_literal;

/// The identity key of a value: see [`value_key`].
pub(crate) type Key = u128;

/// A set of [`Key`]s.
pub(crate) type KeySet = HashSet<Key, BuildHasherDefault<KeyHasher>>;

/// A map from [`Key`]s.
pub(crate) type KeyMap<V> = HashMap<Key, V, BuildHasherDefault<KeyHasher>>;

/// The identity key of a string literal's value (`"a"` and `"\u0061"` are one value, one key; a
/// lone surrogate counts as itself): the 128-bit SipHash-1-3 of the value under a key drawn at
/// random for each process. Two different values share a key by a chance of about n²/2¹²⁹
/// among n values (nil for any batch), and, the key being secret, no one can choose two that
/// do — where one 64-bit hash under a known key let a chosen pair of custom_ids pass for one.
pub(crate) fn value_key(literal: &str) -> Key {
    static HASHER: OnceLock<SipHasher13> = OnceLock::new();
    let hasher = HASHER.get_or_init(|| {
        // The key: two outputs of the standard library's per-process random hasher.
        let random = RandomState::new();
        SipHasher13::new_with_keys(random.hash_one(0u8), random.hash_one(1u8))
    });
    hasher.hash(&decode_literal(literal)).as_u128()
}

/// The identity "hasher" of [`KeySet`] and [`KeyMap`].
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u128(&mut self, n: u128) {
        // Either half is a hash; the low one places the key in the table.
        self.0 = n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::value_key;

    #[test]
    fn one_value_is_one_key_however_spelled_and_two_values_are_two() {
        assert_eq!(value_key(r#""a""#), value_key(r#""\u0061""#));
        assert_eq!(value_key(r#""😀""#), value_key(r#""\ud83d\ude00""#));
        for (a, b) in [
            (r#""a""#, r#""b""#),
            (r#""""#, r#"" ""#),
            // A lone surrogate is itself: not the replacement character, not another half.
            (r#""\ud800""#, r#""\ud801""#),
            (r#""\ud800""#, r#""\ufffd""#),
        ] {
            assert_ne!(value_key(a), value_key(b), "{a} {b}");
        }
    }
}
