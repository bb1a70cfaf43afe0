//! Fully connected layer `y = x wᵀ + b` with PyTorch's `[out, in]` weight layout. All three products are single
//! GEMMs over the whole batch, threaded inside `gemm` (deterministic: it never splits the inner dimension).

use gemm::Parallelism;
use rayon::prelude::*;

use super::{matmul, Element, MatMut, MatRef};
use crate::backend::geom::LinearGeom;

fn check<T: Element>(g: &LinearGeom, op: &str, x: &[T], w: &[T], y_or_dy: &[T]) {
    assert_eq!(x.len(), g.n * g.in_f, "{op}: x length for {g:?}");
    assert_eq!(w.len(), g.out_f * g.in_f, "{op}: w length for {g:?}");
    assert_eq!(y_or_dy.len(), g.n * g.out_f, "{op}: y/dy length for {g:?}");
}

/// `y = x wᵀ + b`.
pub fn fwd<T: Element>(g: &LinearGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    check(g, "linear_fwd", x, w, y);
    if let Some(b) = bias {
        assert_eq!(b.len(), g.out_f, "linear_fwd: bias length");
        // Start every row at the bias and let the GEMM accumulate onto it.
        if g.out_f > 0 {
            y.chunks_exact_mut(g.out_f).for_each(|row| row.copy_from_slice(b));
        }
    }
    let wt = MatRef::row_major(w, g.out_f, g.in_f).t();
    matmul(MatMut::row_major(y, g.n, g.out_f), bias.is_some(), MatRef::row_major(x, g.n, g.in_f), wt, Parallelism::Rayon(0));
}

/// `dx = dy w` when `dx` is given (written), `dw += dyᵀ x`, `dbias += Σ_n dy` (accumulated).
pub fn bwd<T: Element>(g: &LinearGeom, x: &[T], w: &[T], dy: &[T], dx: Option<&mut [T]>, dw: &mut [T], dbias: Option<&mut [T]>) {
    check(g, "linear_bwd", x, w, dy);
    assert_eq!(dw.len(), w.len(), "linear_bwd: dw length");
    let dym = MatRef::row_major(dy, g.n, g.out_f);
    if let Some(dx) = dx {
        assert_eq!(dx.len(), x.len(), "linear_bwd: dx length");
        matmul(MatMut::row_major(dx, g.n, g.in_f), false, dym, MatRef::row_major(w, g.out_f, g.in_f), Parallelism::Rayon(0));
    }
    matmul(MatMut::row_major(dw, g.out_f, g.in_f), true, dym.t(), MatRef::row_major(x, g.n, g.in_f), Parallelism::Rayon(0));
    if let Some(db) = dbias {
        assert_eq!(db.len(), g.out_f, "linear_bwd: dbias length");
        // Column sums of dy in f64, rows in order: deterministic.
        db.par_iter_mut().enumerate().for_each(|(o, db)| {
            let s: f64 = (0..g.n).map(|i| dy[i * g.out_f + o].to_f64()).sum();
            *db += T::from_f64(s);
        });
    }
}
