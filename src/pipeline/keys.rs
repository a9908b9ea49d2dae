//! Sets and maps keyed by 64-bit hashes that are hashes already: the tables use them as they
//! are, with no second hashing.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A set of 64-bit keys that are hashes already.
pub(crate) type KeySet = HashSet<u64, BuildHasherDefault<KeyHasher>>;

/// A map from 64-bit keys that are hashes already.
pub(crate) type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

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
}
