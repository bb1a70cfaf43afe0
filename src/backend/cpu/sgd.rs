//! SGD with momentum and weight decay, PyTorch semantics, over a table of segments of the parameter arena:
//! `g = grad + wd * p; buf = has_momentum ? momentum * buf + g : g; p -= lr * buf`.
//! Elements outside every segment are left untouched.

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::SgdSegment;

/// Elements per rayon task; big segments are split, small ones are one task each.
const CHUNK: usize = 1 << 15;

/// One task: a piece of one segment, with disjoint windows into the three arenas.
struct Job<'a, T> {
    seg: &'a SgdSegment,
    params: &'a mut [T],
    grads: &'a [T],
    bufs: &'a mut [T],
}

pub fn step<T: Element>(segments: &[SgdSegment], momentum: f32, params: &mut [T], grads: &[T], bufs: &mut [T]) {
    let momentum = T::from_f32(momentum);
    assert!(
        grads.len() == params.len() && bufs.len() == params.len(),
        "sgd_step: params/grads/bufs hold {}/{}/{}",
        params.len(),
        grads.len(),
        bufs.len()
    );

    // Carve the arenas into disjoint per-segment windows, walking the segments in offset order.
    let mut order: Vec<&SgdSegment> = segments.iter().collect();
    order.sort_by_key(|s| s.offset);
    let mut jobs = Vec::new();
    let (mut p_rest, mut b_rest, mut cursor) = (params, bufs, 0usize);
    for seg in order {
        assert!(seg.offset >= cursor, "sgd_step: segment at {} overlaps the previous one (ends at {cursor})", seg.offset);
        assert!(
            seg.offset + seg.len <= grads.len(),
            "sgd_step: segment {}..{} is outside the arena of {}",
            seg.offset,
            seg.offset + seg.len,
            grads.len()
        );
        let skip = seg.offset - cursor;
        let (p_seg, p_tail) = std::mem::take(&mut p_rest)[skip..].split_at_mut(seg.len);
        let (b_seg, b_tail) = std::mem::take(&mut b_rest)[skip..].split_at_mut(seg.len);
        (p_rest, b_rest, cursor) = (p_tail, b_tail, seg.offset + seg.len);
        let g_seg = &grads[seg.offset..seg.offset + seg.len];
        for ((params, bufs), grads) in p_seg.chunks_mut(CHUNK).zip(b_seg.chunks_mut(CHUNK)).zip(g_seg.chunks(CHUNK)) {
            jobs.push(Job { seg, params, grads, bufs });
        }
    }

    jobs.into_par_iter().for_each(|Job { seg, params, grads, bufs }| {
        let (lr, wd, first) = (T::from_f32(seg.lr), T::from_f32(seg.weight_decay), seg.has_momentum == 0);
        for ((p, &gr), b) in params.iter_mut().zip(grads).zip(bufs.iter_mut()) {
            let g = gr + wd * *p;
            *b = if first { g } else { momentum * *b + g };
            *p -= lr * *b;
        }
    });
}
