//! AdamW with PyTorch's semantics (`torch.optim.AdamW`, decoupled weight decay), over a table of arena segments:
//! `p *= 1 − lr·wd; m = β1 m + (1 − β1) g; v = β2 v + (1 − β2) g²; p −= step_size · m / (sqrt(v) / bc2_sqrt + eps)`.
//! The per-tensor bias corrections arrive precomputed in each [`AdamwSegment`].

use rayon::prelude::*;

use super::segments::carve;
use super::Element;
use crate::backend::geom::AdamwSegment;

#[allow(clippy::too_many_arguments)]
pub fn step<T: Element>(segments: &[AdamwSegment], beta1: f32, beta2: f32, eps: f32, params: &mut [T], grads: &[T], m: &mut [T], v: &mut [T]) {
    const OP: &str = "adamw_step";
    assert!(
        grads.len() == params.len() && m.len() == params.len() && v.len() == params.len(),
        "{OP}: params/grads/exp_avg/exp_avg_sq hold {}/{}/{}/{}",
        params.len(),
        grads.len(),
        m.len(),
        v.len()
    );
    let ranges: Vec<(usize, usize)> = segments.iter().map(|s| (s.offset, s.len)).collect();
    let (pw, mw, vw) = (carve(OP, &ranges, params), carve(OP, &ranges, m), carve(OP, &ranges, v));
    let (b1, b2, eps) = (T::from_f32(beta1), T::from_f32(beta2), T::from_f32(eps));
    let (one_b1, one_b2) = (T::from_f32(1.0 - beta1), T::from_f32(1.0 - beta2));
    segments.par_iter().zip(pw).zip(mw).zip(vw).for_each(|(((s, p), m), v)| {
        let g = &grads[s.offset..s.offset + s.len];
        // PyTorch forms `1 - lr * wd` as a Python float (f64), then multiplies.
        let decay = T::from_f64(1.0 - s.lr as f64 * s.weight_decay as f64);
        let (step_size, bc2) = (T::from_f32(s.step_size), T::from_f32(s.bias_correction2_sqrt));
        for i in 0..s.len {
            let gi = g[i];
            m[i] = b1 * m[i] + one_b1 * gi;
            v[i] = b2 * v[i] + one_b2 * gi * gi;
            let denom = T::from_f64(v[i].to_f64().sqrt()) / bc2 + eps;
            p[i] = p[i] * decay - step_size * m[i] / denom;
        }
    });
}
