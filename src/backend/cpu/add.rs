//! `y = a + b`: the residual add, and the sum of two gradients where a residual branch starts.
//! Its backward pass is the identity for both inputs, so there is no `bwd`.

use rayon::prelude::*;

use super::{Element, PAR_CHUNK};

pub fn fwd<T: Element>(n: usize, a: &[T], b: &[T], y: &mut [T]) {
    assert!(a.len() >= n && b.len() >= n && y.len() >= n, "add_fwd: n = {n}, a/b/y hold {}/{}/{}", a.len(), b.len(), y.len());
    y[..n].par_chunks_mut(PAR_CHUNK).zip(a[..n].par_chunks(PAR_CHUNK)).zip(b[..n].par_chunks(PAR_CHUNK)).for_each(|((y, a), b)| {
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            *y = a + b;
        }
    });
}
