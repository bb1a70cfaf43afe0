//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the Random123 library),
//! the counter-based generator behind every random draw of augmentation and jigsaw.
//!
//! Design: a draw is a pure function of `(seed, step, sample, op)` and a draw index, never of how many numbers were
//! drawn before or by which thread. The 64-bit seed is the Philox key; the 128-bit counter holds
//! `[draw index, op, sample, step]`. So the parameters of sample 17's blur at step 40 are the same whether the batch
//! holds 8 or 256 images, whatever the order the samples are processed in, and on every backend.
//!
//! The per-sample parameters (crop box, flips, jitter factors, blur sigma, jigsaw permutations) are drawn here, on
//! the host, with [`Stream`]; the backends then apply those deterministic per-sample parameters
//! ([`crate::backend::geom::SampleAug`], permutation arrays). CPU reference and CUDA kernels therefore consume
//! exactly the same numbers and their outputs can be compared element by element. (Drawing on the host costs a few
//! dozen Philox blocks per image, nothing next to the pixel work.)

/// Philox4x32 round multipliers and Weyl key increments (Random123's `PHILOX_M4x32_*`, `PHILOX_W32_*`).
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// One Philox4x32-10 block: 10 rounds on `ctr` under `key`.
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// A stream of random numbers keyed by `(seed, step, sample, op)`: the numbers it yields are the words of the
/// Philox blocks with counters `[0, op, sample, step]`, `[1, op, sample, step]`, ... in order.
#[derive(Clone, Debug)]
pub struct Stream {
    key: [u32; 2],
    ctr: [u32; 4],
    block: [u32; 4],
    /// Words of `block` already handed out (4: the next draw computes a new block).
    used: usize,
}

impl Stream {
    /// `step`: the batch counter; `sample`: the sample's index in its data set; `op`: which random decision
    /// (see [`super::policy::op`] and [`super::jigsaw`]).
    pub fn new(seed: u64, step: u32, sample: u32, op: u32) -> Stream {
        Stream { key: [seed as u32, (seed >> 32) as u32], ctr: [0, op, sample, step], block: [0; 4], used: 4 }
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        if self.used == 4 {
            self.block = philox4x32_10(self.ctr, self.key);
            self.ctr[0] = self.ctr[0].wrapping_add(1);
            self.used = 0;
        }
        self.used += 1;
        self.block[self.used - 1]
    }

    pub fn next_u64(&mut self) -> u64 {
        let lo = self.next_u32() as u64;
        ((self.next_u32() as u64) << 32) | lo
    }

    /// Uniform in [0, 1) with 24 random bits (every value exactly representable).
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform_f64()
    }

    /// `true` with probability `p` (never for p <= 0, always for p >= 1).
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform_f64() < p
    }

    /// Uniform integer in `0..n` without modulo bias (rejection sampling); `n` must be at least 1.
    pub fn below(&mut self, n: u32) -> u32 {
        assert!(n > 0, "Stream::below(0)");
        // Accept r < n * floor(2^32 / n): the largest multiple of n that fits, so every residue is equally likely.
        let zone = u32::MAX - (u32::MAX - n + 1) % n;
        loop {
            let r = self.next_u32();
            if r <= zone {
                return r % n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123 (`kat_vectors`, philox4x32 with 10 rounds).
    #[test]
    fn random123_known_answers() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn stream_yields_block_words_in_order() {
        let mut s = Stream::new(0, 0, 0, 0);
        let words: Vec<u32> = (0..8).map(|_| s.next_u32()).collect();
        assert_eq!(&words[..4], &philox4x32_10([0, 0, 0, 0], [0, 0]));
        assert_eq!(&words[4..], &philox4x32_10([1, 0, 0, 0], [0, 0]));
    }
}
