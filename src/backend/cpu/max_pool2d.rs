//! 2-d max pooling with implicit `-inf` padding, PyTorch's rules: the first maximum in row-major window order wins
//! ties, and NaN counts as a maximum (so it propagates). The backward pass recomputes each window's argmax from
//! `x` instead of storing indices.

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::MaxPool2dGeom;

fn check(g: &MaxPool2dGeom, op: &str, x_len: usize, y_len: usize) {
    assert!(g.k > 0 && g.stride > 0, "{op}: degenerate geometry {g:?}");
    assert!(
        g.h + 2 * g.pad >= g.k
            && g.w + 2 * g.pad >= g.k
            && g.ho == (g.h + 2 * g.pad - g.k) / g.stride + 1
            && g.wo == (g.w + 2 * g.pad - g.k) / g.stride + 1,
        "{op}: output size inconsistent with the input, kernel, stride and padding: {g:?}"
    );
    assert_eq!(x_len, g.n * g.c * g.h * g.w, "{op}: x length for {g:?}");
    assert_eq!(y_len, g.n * g.c * g.ho * g.wo, "{op}: y/dy length for {g:?}");
}

/// Index (within one `h x w` plane) and value of the maximum of the window under output `(oh, ow)`.
fn window_argmax<T: Element>(g: &MaxPool2dGeom, plane: &[T], oh: usize, ow: usize) -> (usize, T) {
    // The window clipped to the real input; the padding is -inf and can never win.
    let h0 = (oh * g.stride).saturating_sub(g.pad);
    let h1 = (oh * g.stride + g.k).saturating_sub(g.pad).min(g.h);
    let w0 = (ow * g.stride).saturating_sub(g.pad);
    let w1 = (ow * g.stride + g.k).saturating_sub(g.pad).min(g.w);
    // As PyTorch: start from the first in-bounds element's index with value -inf, replace on `>` or NaN.
    let (mut best_i, mut best) = (h0 * g.w + w0, T::NEG_INFINITY);
    for ih in h0..h1 {
        for iw in w0..w1 {
            let i = ih * g.w + iw;
            let v = plane[i];
            if v > best || v.is_nan() {
                best = v;
                best_i = i;
            }
        }
    }
    (best_i, best)
}

pub fn fwd<T: Element>(g: &MaxPool2dGeom, x: &[T], y: &mut [T]) {
    check(g, "max_pool2d_fwd", x.len(), y.len());
    if y.is_empty() {
        return;
    }
    let (x_plane, y_plane) = (g.h * g.w, g.ho * g.wo);
    y.par_chunks_mut(y_plane).zip(x.par_chunks(x_plane)).for_each(|(y, x)| {
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                y[oh * g.wo + ow] = window_argmax(g, x, oh, ow).1;
            }
        }
    });
}

/// `dx` is written: zero, then each `dy` is added at its window's argmax (windows overlap when stride < k).
pub fn bwd<T: Element>(g: &MaxPool2dGeom, x: &[T], dy: &[T], dx: &mut [T]) {
    check(g, "max_pool2d_bwd", x.len(), dy.len());
    assert_eq!(dx.len(), x.len(), "max_pool2d_bwd: dx length");
    if dx.is_empty() {
        return;
    }
    let (x_plane, y_plane) = (g.h * g.w, g.ho * g.wo);
    dx.par_chunks_mut(x_plane).zip(x.par_chunks(x_plane)).zip(dy.par_chunks(y_plane.max(1))).for_each(|((dx, x), dy)| {
        dx.fill(T::ZERO);
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                dx[window_argmax(g, x, oh, ow).0] += dy[oh * g.wo + ow];
            }
        }
    });
}
