//! A small deterministic generator for synthetic test and benchmark media
//! (xorshift64*): sizes and payload bytes that are the same on every run.

/// xorshift64*, seeded by the caller (any non-zero seed).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Appends `n` bytes to `out`; with `nonzero`, none is 0 (so an H.264
    /// slice body never holds a start code or needs emulation prevention).
    pub fn append(&mut self, n: usize, nonzero: bool, out: &mut Vec<u8>) {
        let end = out.len() + n;
        while out.len() < end {
            let x = self.next_u64().to_le_bytes();
            let take = (end - out.len()).min(8);
            out.extend(x[..take].iter().map(|&b| if nonzero && b == 0 { 0x5a } else { b }));
        }
    }
}
