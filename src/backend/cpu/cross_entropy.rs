//! Softmax cross-entropy with integer labels, mean over the batch. Softmax is computed stably (shifted by the row
//! maximum) in f64; the probabilities are kept for the backward pass.

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::CrossEntropyGeom;

fn check(g: &CrossEntropyGeom, op: &str, logits_len: usize, labels: &[u32]) {
    assert_eq!(logits_len, g.n * g.k, "{op}: logits/probs length for {g:?}");
    assert_eq!(labels.len(), g.n, "{op}: {} labels for a batch of {}", labels.len(), g.n);
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= g.k) {
        panic!("{op}: label {l} of sample {i} is out of range for {} classes", g.k);
    }
}

/// `probs = softmax(logits)` per row; `loss[0] = mean_n(-log probs[n, label_n])`.
pub fn fwd<T: Element>(g: &CrossEntropyGeom, logits: &[T], labels: &[u32], probs: &mut [T], loss: &mut [T]) {
    check(g, "cross_entropy_fwd", logits.len(), labels);
    assert_eq!(probs.len(), logits.len(), "cross_entropy_fwd: probs length");
    assert!(!loss.is_empty(), "cross_entropy_fwd: loss needs one element");
    assert!(g.k > 0, "cross_entropy_fwd: no classes");
    if g.n == 0 {
        // PyTorch's mean over an empty batch.
        loss[0] = T::NAN;
        return;
    }
    // Per row: -log p[label] = logsumexp(row) - row[label].
    let nll: Vec<f64> = probs
        .par_chunks_mut(g.k)
        .zip(logits.par_chunks(g.k))
        .zip(labels.par_iter())
        .map(|((p, z), &label)| {
            let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v.to_f64()));
            let sum: f64 = z.iter().map(|&v| (v.to_f64() - max).exp()).sum();
            let lse = max + sum.ln();
            for (p, &v) in p.iter_mut().zip(z) {
                *p = T::from_f64((v.to_f64() - lse).exp());
            }
            lse - z[label as usize].to_f64()
        })
        .collect();
    // Summed in sample order after the parallel part, so the loss does not depend on scheduling.
    loss[0] = T::from_f64(nll.iter().sum::<f64>() / g.n as f64);
}

/// `dlogits = dloss * (probs - onehot(labels)) / n`, written.
pub fn bwd<T: Element>(g: &CrossEntropyGeom, probs: &[T], labels: &[u32], dloss: f32, dlogits: &mut [T]) {
    check(g, "cross_entropy_bwd", probs.len(), labels);
    assert_eq!(dlogits.len(), probs.len(), "cross_entropy_bwd: dlogits length");
    if g.n == 0 || g.k == 0 {
        return;
    }
    let scale = dloss as f64 / g.n as f64;
    dlogits.par_chunks_mut(g.k).zip(probs.par_chunks(g.k)).zip(labels.par_iter()).for_each(|((d, p), &label)| {
        for (j, (d, &p)) in d.iter_mut().zip(p).enumerate() {
            let target = if j == label as usize { 1.0 } else { 0.0 };
            *d = T::from_f64((p.to_f64() - target) * scale);
        }
    });
}
