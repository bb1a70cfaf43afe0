//! `y[..n] = value`: zeroing gradient arenas and initialising buffers.

use rayon::prelude::*;

use super::{Element, PAR_CHUNK};

pub fn fill<T: Element>(n: usize, value: f32, y: &mut [T]) {
    let value = T::from_f32(value);
    assert!(y.len() >= n, "fill: {n} elements requested, view holds {}", y.len());
    y[..n].par_chunks_mut(PAR_CHUNK).for_each(|c| c.fill(value));
}
