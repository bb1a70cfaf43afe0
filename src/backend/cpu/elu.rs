//! ELU: `y = x > 0 ? x : alpha * (exp(x) - 1)`. The backward pass reads the input `x`.

use rayon::prelude::*;

use super::{Element, PAR_CHUNK};

pub fn fwd<T: Element>(n: usize, alpha: f32, x: &[T], y: &mut [T]) {
    let alpha = T::from_f32(alpha);
    assert!(x.len() >= n && y.len() >= n, "elu_fwd: n = {n}, x holds {}, y holds {}", x.len(), y.len());
    y[..n].par_chunks_mut(PAR_CHUNK).zip(x[..n].par_chunks(PAR_CHUNK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            // `exp_m1` keeps precision for small |x|, as PyTorch's kernel does.
            *y = if x > T::ZERO { x } else { alpha * x.exp_m1() };
        }
    });
}

/// `dx = dy * (x > 0 ? 1 : alpha * exp(x))`.
pub fn bwd<T: Element>(n: usize, alpha: f32, x: &[T], dy: &[T], dx: &mut [T]) {
    let alpha = T::from_f32(alpha);
    assert!(x.len() >= n && dy.len() >= n && dx.len() >= n, "elu_bwd: n = {n}, x/dy/dx hold {}/{}/{}", x.len(), dy.len(), dx.len());
    dx[..n].par_chunks_mut(PAR_CHUNK).zip(x[..n].par_chunks(PAR_CHUNK)).zip(dy[..n].par_chunks(PAR_CHUNK)).for_each(|((dx, x), dy)| {
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            *dx = if x > T::ZERO { dy } else { dy * alpha * x.exp() };
        }
    });
}
