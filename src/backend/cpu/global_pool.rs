//! Pooling over the whole spatial extent, `[n, c, hw] -> [n, c]`: global max (first maximum wins ties, NaN
//! propagates, as in PyTorch) and global average.

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::GlobalPoolGeom;

fn check(g: &GlobalPoolGeom, op: &str, x_len: usize, y_len: usize) {
    assert!(g.hw > 0, "{op}: empty spatial extent in {g:?}");
    assert_eq!(x_len, g.n * g.c * g.hw, "{op}: x/dx length for {g:?}");
    assert_eq!(y_len, g.n * g.c, "{op}: y/dy length for {g:?}");
}

/// Index and value of the first maximum of a plane.
fn argmax<T: Element>(plane: &[T]) -> (usize, T) {
    let (mut best_i, mut best) = (0, T::NEG_INFINITY);
    for (i, &v) in plane.iter().enumerate() {
        if v > best || v.is_nan() {
            best = v;
            best_i = i;
        }
    }
    (best_i, best)
}

pub fn max_fwd<T: Element>(g: &GlobalPoolGeom, x: &[T], y: &mut [T]) {
    check(g, "global_max_pool_fwd", x.len(), y.len());
    y.par_iter_mut().zip(x.par_chunks(g.hw)).for_each(|(y, plane)| *y = argmax(plane).1);
}

/// `dx` is written: each plane gets its `dy` at the argmax and zero elsewhere.
pub fn max_bwd<T: Element>(g: &GlobalPoolGeom, x: &[T], dy: &[T], dx: &mut [T]) {
    check(g, "global_max_pool_bwd", x.len(), dy.len());
    assert_eq!(dx.len(), x.len(), "global_max_pool_bwd: dx length");
    dx.par_chunks_mut(g.hw).zip(x.par_chunks(g.hw)).zip(dy.par_iter()).for_each(|((dx, plane), &d)| {
        dx.fill(T::ZERO);
        dx[argmax(plane).0] = d;
    });
}

/// Mean of each plane, summed in f64.
pub fn avg_fwd<T: Element>(g: &GlobalPoolGeom, x: &[T], y: &mut [T]) {
    check(g, "global_avg_pool_fwd", x.len(), y.len());
    let inv = 1.0 / g.hw as f64;
    y.par_iter_mut().zip(x.par_chunks(g.hw)).for_each(|(y, plane)| *y = T::from_f64(plane.iter().map(|&v| v.to_f64()).sum::<f64>() * inv));
}

/// `dx` is written: every element of a plane gets `dy / hw`.
pub fn avg_bwd<T: Element>(g: &GlobalPoolGeom, dy: &[T], dx: &mut [T]) {
    check(g, "global_avg_pool_bwd", dx.len(), dy.len());
    let hw = T::from_f64(g.hw as f64);
    dx.par_chunks_mut(g.hw).zip(dy.par_iter()).for_each(|(dx, &d)| dx.fill(d / hw));
}
