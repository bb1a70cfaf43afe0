//! Global gradient norm over a set of arena segments (`torch.nn.utils.clip_grad_norm_`'s total norm):
//! `sqrt(Σ g²)`, accumulated in f64 per segment in element order, then over segments in table order.

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::ArenaSegment;

/// Sum of squares of every segment, in table order.
pub fn segment_sumsq<T: Element>(segments: &[ArenaSegment], x: &[T]) -> Vec<f64> {
    segments
        .par_iter()
        .map(|s| {
            assert!(s.offset + s.len <= x.len(), "grad_norm: segment {}..{} is outside the arena of {}", s.offset, s.offset + s.len, x.len());
            x[s.offset..s.offset + s.len].iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>()
        })
        .collect()
}

pub fn fwd<T: Element>(segments: &[ArenaSegment], grads: &[T], norm: &mut [T]) {
    assert!(!norm.is_empty(), "grad_norm: norm needs one element");
    norm[0] = T::from_f64(segment_sumsq(segments, grads).iter().sum::<f64>().sqrt());
}
