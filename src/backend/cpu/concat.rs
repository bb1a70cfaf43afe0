//! Channel concatenation of `[n, c_i, hw]` tensors into `[n, Σc_i, hw]`, and its backward (the split of `dy`).
//! Within one sample, input `i` is one contiguous run of `c_i * hw` elements of the output.

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::ConcatGeom;

fn check(g: &ConcatGeom, op: &str, parts: &[usize], whole: usize) {
    assert_eq!(parts.len(), g.channels.len(), "{op}: {} tensors for {} channel counts", parts.len(), g.channels.len());
    for (i, (&len, &c)) in parts.iter().zip(&g.channels).enumerate() {
        assert_eq!(len, g.n * c * g.hw, "{op}: tensor {i} length for {g:?}");
    }
    assert_eq!(whole, g.n * g.c_total() * g.hw, "{op}: concatenated length for {g:?}");
}

pub fn fwd<T: Element>(g: &ConcatGeom, xs: &[&[T]], y: &mut [T]) {
    check(g, "concat_fwd", &xs.iter().map(|x| x.len()).collect::<Vec<_>>(), y.len());
    let per_sample = g.c_total() * g.hw;
    if per_sample == 0 {
        return;
    }
    y.par_chunks_mut(per_sample).enumerate().for_each(|(ni, y)| {
        let mut off = 0;
        for (x, &c) in xs.iter().zip(&g.channels) {
            let run = c * g.hw;
            y[off..off + run].copy_from_slice(&x[ni * run..][..run]);
            off += run;
        }
    });
}

/// Each `dxs[i]` is written with its slice of `dy`.
pub fn bwd<T: Element>(g: &ConcatGeom, dy: &[T], dxs: Vec<&mut [T]>) {
    check(g, "concat_bwd", &dxs.iter().map(|x| x.len()).collect::<Vec<_>>(), dy.len());
    let per_sample = g.c_total() * g.hw;
    // Channel offset of each input within a sample.
    let offsets: Vec<usize> = g.channels.iter().scan(0, |acc, &c| Some(std::mem::replace(acc, *acc + c * g.hw))).collect();
    dxs.into_par_iter().zip(offsets).zip(g.channels.par_iter()).for_each(|((dx, off), &c)| {
        let run = c * g.hw;
        if run == 0 {
            return;
        }
        for (ni, dx) in dx.chunks_exact_mut(run).enumerate() {
            dx.copy_from_slice(&dy[ni * per_sample + off..][..run]);
        }
    });
}
