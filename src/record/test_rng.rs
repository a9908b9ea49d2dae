//! The tests' pseudo-random numbers: xorshift64, so that a seed gives the same inputs on every
//! run and machine.

/// A xorshift64 generator; its seed must not be zero.
pub(crate) struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
