//! Barlow Twins loss (METHOD.md §6), forward and backward, on embeddings `za`, `zb` `[n, f]`.
//!
//! Per column: `ẑ = (z − mean) / σ` with `σ = sqrt(biased var + 1e-5)` (standard form) or the unbiased std without
//! eps (reference form); `C = ẑAᵀ ẑB / n`. Statistics are computed in f64 in row order; the three products are
//! GEMMs (`gemm` never splits the inner dimension, so results do not depend on threading).
//!
//! Backward: `G = dloss · ∂ℒ/∂C / n` (`G_ii = −2(1 − C_ii)`, `G_ij = 2λ C_ij` standard; `2λ²(C − I)` reference),
//! `∂ẑA = ẑB Gᵀ`, `∂ẑB = ẑA G`, then per column `∂z = (∂ẑ − mean_b ∂ẑ − ẑ · Σ_b(∂ẑ ẑ) / d) / σ` with
//! `d = n` (standard, exact with eps) or `n − 1` (reference).

use gemm::Parallelism;

use super::{matmul, Element, MatMut, MatRef};
use crate::backend::geom::{BarlowTwinsGeom, BT_FORM_REFERENCE, BT_FORM_STANDARD};

fn check_form(g: &BarlowTwinsGeom, op: &str) {
    assert!(g.form == BT_FORM_STANDARD || g.form == BT_FORM_REFERENCE, "{op}: unknown form {}", g.form);
    assert!(g.n >= 2, "{op}: needs at least 2 samples for batch statistics, got {}", g.n);
}

/// Standardises every column of `z` into `z_hat`; `inv_std[j] = 1/σ_j`.
fn standardize<T: Element>(g: &BarlowTwinsGeom, z: &[T], z_hat: &mut [T], inv_std: &mut [T]) {
    let (n, f) = (g.n, g.f);
    let mut mean = vec![0f64; f];
    for row in z.chunks_exact(f) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v.to_f64());
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut ss = vec![0f64; f];
    for row in z.chunks_exact(f) {
        for ((s, &m), &v) in ss.iter_mut().zip(&mean).zip(row) {
            let d = v.to_f64() - m;
            *s += d * d;
        }
    }
    let inv: Vec<f64> = ss
        .iter()
        .map(|&s| if g.form == BT_FORM_STANDARD { 1.0 / (s / n as f64 + BarlowTwinsGeom::EPS).sqrt() } else { 1.0 / (s / (n - 1) as f64).sqrt() })
        .collect();
    for (out, row) in z_hat.chunks_exact_mut(f).zip(z.chunks_exact(f)) {
        for (((o, &v), &m), &k) in out.iter_mut().zip(row).zip(&mean).zip(&inv) {
            *o = T::from_f64((v.to_f64() - m) * k);
        }
    }
    inv_std.iter_mut().zip(&inv).for_each(|(o, &k)| *o = T::from_f64(k));
}

/// `[loss, on_diag, off_diag]` of the cross-correlation `c` `[f, f]`, summed in f64 in row-major order.
pub fn terms_of<T: Element>(g: &BarlowTwinsGeom, c: &[T]) -> [f64; 3] {
    let (mut on, mut off) = (0f64, 0f64);
    for (i, row) in c.chunks_exact(g.f).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let v = v.to_f64();
            if i == j {
                on += (1.0 - v) * (1.0 - v);
            } else {
                off += v * v;
            }
        }
    }
    let lambda = g.lambda as f64;
    let (on, off) = if g.form == BT_FORM_STANDARD { (on, lambda * off) } else { (lambda * lambda * on, lambda * lambda * off) };
    [on + off, on, off]
}

#[allow(clippy::too_many_arguments)]
pub fn fwd<T: Element>(
    g: &BarlowTwinsGeom,
    za: &[T],
    zb: &[T],
    za_hat: &mut [T],
    zb_hat: &mut [T],
    inv_std_a: &mut [T],
    inv_std_b: &mut [T],
    c: &mut [T],
    terms: &mut [T],
) {
    const OP: &str = "barlow_twins_fwd";
    check_form(g, OP);
    let (n, f) = (g.n, g.f);
    for (name, len, want) in [
        ("za", za.len(), n * f),
        ("zb", zb.len(), n * f),
        ("za_hat", za_hat.len(), n * f),
        ("zb_hat", zb_hat.len(), n * f),
        ("inv_std_a", inv_std_a.len(), f),
        ("inv_std_b", inv_std_b.len(), f),
        ("c", c.len(), f * f),
        ("terms", terms.len(), 3),
    ] {
        assert_eq!(len, want, "{OP}: {name} length for {g:?}");
    }
    standardize(g, za, za_hat, inv_std_a);
    standardize(g, zb, zb_hat, inv_std_b);
    matmul(MatMut::row_major(c, f, f), false, MatRef::row_major(za_hat, n, f).t(), MatRef::row_major(zb_hat, n, f), Parallelism::Rayon(0));
    let inv_n = T::from_f64(1.0 / n as f64);
    c.iter_mut().for_each(|v| *v = *v * inv_n);
    for (t, v) in terms.iter_mut().zip(terms_of(g, c)) {
        *t = T::from_f64(v);
    }
}

/// `G = dloss · ∂ℒ/∂C / n` `[f, f]`.
fn loss_grad_wrt_c<T: Element>(g: &BarlowTwinsGeom, c: &[T], dloss: f32) -> Vec<T> {
    let (f, lambda) = (g.f, g.lambda as f64);
    let scale = dloss as f64 / g.n as f64;
    let mut gm = vec![T::ZERO; f * f];
    for (idx, (o, &v)) in gm.iter_mut().zip(c).enumerate() {
        let (v, diag) = (v.to_f64(), idx / f == idx % f);
        let d = if g.form == BT_FORM_STANDARD {
            if diag {
                -2.0 * (1.0 - v)
            } else {
                2.0 * lambda * v
            }
        } else {
            2.0 * lambda * lambda * (v - if diag { 1.0 } else { 0.0 })
        };
        *o = T::from_f64(scale * d);
    }
    gm
}

/// Backward of the per-column standardisation, in place: `dz_hat` becomes `dz`.
fn unstandardize_grad<T: Element>(g: &BarlowTwinsGeom, z_hat: &[T], inv_std: &[T], dz: &mut [T]) {
    let (n, f) = (g.n, g.f);
    let (mut s1, mut s2) = (vec![0f64; f], vec![0f64; f]);
    for (drow, zrow) in dz.chunks_exact(f).zip(z_hat.chunks_exact(f)) {
        for j in 0..f {
            let d = drow[j].to_f64();
            s1[j] += d;
            s2[j] += d * zrow[j].to_f64();
        }
    }
    let div = if g.form == BT_FORM_STANDARD { n } else { n - 1 } as f64;
    for (drow, zrow) in dz.chunks_exact_mut(f).zip(z_hat.chunks_exact(f)) {
        for j in 0..f {
            let v = drow[j].to_f64() - s1[j] / n as f64 - zrow[j].to_f64() * (s2[j] / div);
            drow[j] = T::from_f64(v * inv_std[j].to_f64());
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn bwd<T: Element>(
    g: &BarlowTwinsGeom,
    za_hat: &[T],
    zb_hat: &[T],
    inv_std_a: &[T],
    inv_std_b: &[T],
    c: &[T],
    dloss: f32,
    dza: &mut [T],
    dzb: &mut [T],
) {
    const OP: &str = "barlow_twins_bwd";
    check_form(g, OP);
    let (n, f) = (g.n, g.f);
    for (name, len, want) in [
        ("za_hat", za_hat.len(), n * f),
        ("zb_hat", zb_hat.len(), n * f),
        ("inv_std_a", inv_std_a.len(), f),
        ("inv_std_b", inv_std_b.len(), f),
        ("c", c.len(), f * f),
        ("dza", dza.len(), n * f),
        ("dzb", dzb.len(), n * f),
    ] {
        assert_eq!(len, want, "{OP}: {name} length for {g:?}");
    }
    let gm = loss_grad_wrt_c(g, c, dloss);
    let gmat = MatRef::row_major(&gm, f, f);
    matmul(MatMut::row_major(dza, n, f), false, MatRef::row_major(zb_hat, n, f), gmat.t(), Parallelism::Rayon(0));
    matmul(MatMut::row_major(dzb, n, f), false, MatRef::row_major(za_hat, n, f), gmat, Parallelism::Rayon(0));
    unstandardize_grad(g, za_hat, inv_std_a, dza);
    unstandardize_grad(g, zb_hat, inv_std_b, dzb);
}
