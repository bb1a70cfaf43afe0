//! LARS, Barlow Twins' optimizer (facebookresearch/barlowtwins `main.py`), over a table of arena segments:
//! `d = grad + wd * p`; for adapted segments `d *= trust` with `trust = eta ‖p‖ / ‖d‖` when both norms are
//! positive, else 1; `buf = has_momentum ? momentum * buf + d : d`; `p -= lr * buf`. Norms are taken over the
//! whole segment in f64 (element order), the trust ratio is rounded to the element type once.

use rayon::prelude::*;

use super::segments::carve;
use super::Element;
use crate::backend::geom::LarsSegment;

/// The trust ratio of one segment from its sums of squares (BT's `torch.where` chain).
pub fn trust_ratio(eta: f32, p_sumsq: f64, d_sumsq: f64) -> f64 {
    let (pn, dn) = (p_sumsq.sqrt(), d_sumsq.sqrt());
    if pn > 0.0 && dn > 0.0 {
        eta as f64 * pn / dn
    } else {
        1.0
    }
}

pub fn step<T: Element>(segments: &[LarsSegment], momentum: f32, eta: f32, params: &mut [T], grads: &[T], bufs: &mut [T]) {
    const OP: &str = "lars_step";
    assert!(
        grads.len() == params.len() && bufs.len() == params.len(),
        "{OP}: params/grads/bufs hold {}/{}/{}",
        params.len(),
        grads.len(),
        bufs.len()
    );
    let ranges: Vec<(usize, usize)> = segments.iter().map(|s| (s.offset, s.len)).collect();
    let p_win = carve(OP, &ranges, params);
    let b_win = carve(OP, &ranges, bufs);
    let momentum = T::from_f32(momentum);
    segments.par_iter().zip(p_win).zip(b_win).for_each(|((s, p), b)| {
        let g = &grads[s.offset..s.offset + s.len];
        let wd = T::from_f32(s.weight_decay);
        let q = if s.adapt != 0 {
            let p_ss: f64 = p.iter().map(|&v| v.to_f64() * v.to_f64()).sum();
            let d_ss: f64 = p.iter().zip(g).map(|(&pv, &gv)| (gv + wd * pv).to_f64().powi(2)).sum();
            Some(T::from_f64(trust_ratio(eta, p_ss, d_ss)))
        } else {
            None
        };
        let lr = T::from_f32(s.lr);
        for i in 0..s.len {
            let d = g[i] + wd * p[i];
            let di = match q {
                Some(q) => d * q,
                None => d,
            };
            b[i] = if s.has_momentum != 0 { momentum * b[i] + di } else { di };
            p[i] -= lr * b[i];
        }
    });
}
