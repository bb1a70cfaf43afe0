//! ReLU. The backward pass reads the forward output (`y > 0` exactly where `x > 0`), so the input need not be kept.

use rayon::prelude::*;

use super::{Element, PAR_CHUNK};

/// `y = max(x, 0)`. NaN propagates, as in PyTorch.
pub fn fwd<T: Element>(n: usize, x: &[T], y: &mut [T]) {
    assert!(x.len() >= n && y.len() >= n, "relu_fwd: n = {n}, x holds {}, y holds {}", x.len(), y.len());
    y[..n].par_chunks_mut(PAR_CHUNK).zip(x[..n].par_chunks(PAR_CHUNK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            // `x > 0 ? x : 0` written so that NaN inputs stay NaN (`max` would drop them).
            *y = if x > T::ZERO || x.is_nan() { x } else { T::ZERO };
        }
    });
}

/// `dx = dy * (y > 0)`.
pub fn bwd<T: Element>(n: usize, y: &[T], dy: &[T], dx: &mut [T]) {
    assert!(y.len() >= n && dy.len() >= n && dx.len() >= n, "relu_bwd: n = {n}, y/dy/dx hold {}/{}/{}", y.len(), dy.len(), dx.len());
    dx[..n].par_chunks_mut(PAR_CHUNK).zip(y[..n].par_chunks(PAR_CHUNK)).zip(dy[..n].par_chunks(PAR_CHUNK)).for_each(|((dx, y), dy)| {
        for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
            *dx = if y > T::ZERO { dy } else { T::ZERO };
        }
    });
}
