//! ReLU. The backward pass reads the forward output (`y > 0` exactly where `x > 0`), so the input need not be kept.

use rayon::prelude::*;

use super::PAR_CHUNK;

/// `y = max(x, 0)`. NaN propagates, as in PyTorch.
pub fn fwd(n: usize, x: &[f32], y: &mut [f32]) {
    assert!(x.len() >= n && y.len() >= n, "relu_fwd: n = {n}, x holds {}, y holds {}", x.len(), y.len());
    y[..n].par_chunks_mut(PAR_CHUNK).zip(x[..n].par_chunks(PAR_CHUNK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            // `x > 0 ? x : 0` written so that NaN inputs stay NaN (`f32::max` would drop them).
            *y = if x > 0.0 || x.is_nan() { x } else { 0.0 };
        }
    });
}

/// `dx = dy * (y > 0)`.
pub fn bwd(n: usize, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(y.len() >= n && dy.len() >= n && dx.len() >= n, "relu_bwd: n = {n}, y/dy/dx hold {}/{}/{}", y.len(), dy.len(), dx.len());
    dx[..n].par_chunks_mut(PAR_CHUNK).zip(y[..n].par_chunks(PAR_CHUNK)).zip(dy[..n].par_chunks(PAR_CHUNK)).for_each(|((dx, y), dy)| {
        for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
            *dx = if y > 0.0 { dy } else { 0.0 };
        }
    });
}
