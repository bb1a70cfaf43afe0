//! `y[i] *= alpha` over the first `n` elements (the gradient arena times the clipping factor).

use rayon::prelude::*;

use super::{Element, PAR_CHUNK};

pub fn fwd<T: Element>(n: usize, alpha: f32, y: &mut [T]) {
    assert!(y.len() >= n, "scale: y holds {} elements, n is {n}", y.len());
    let a = T::from_f32(alpha);
    y[..n].par_chunks_mut(PAR_CHUNK).for_each(|c| c.iter_mut().for_each(|v| *v = *v * a));
}
