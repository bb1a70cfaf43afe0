//! `y[..n] = value`: zeroing gradient arenas and initialising buffers.

use rayon::prelude::*;

use super::PAR_CHUNK;

pub fn fill(n: usize, value: f32, y: &mut [f32]) {
    assert!(y.len() >= n, "fill: {n} elements requested, view holds {}", y.len());
    y[..n].par_chunks_mut(PAR_CHUNK).for_each(|c| c.fill(value));
}
