//! k-nearest-neighbour classification of frozen features (the SSL monitor users expect, ANCHORS.md §2.2 #7).
//!
//! solo-learn's `WeightedKNNClassifier` with its defaults: features are L2-normalised (`x / max(|x|, 1e-12)`, as
//! `F.normalize`), similarity is the cosine (dot product of normalised rows), each query takes its `k` most
//! similar reference rows, and each neighbour votes for its label with weight `exp(similarity / T)` (T = 0.07, as
//! in DINO and solo-learn), or with weight 1 ([`Vote::Majority`]). The prediction is the class with the largest
//! vote. Everything on the host in f64; ties are broken deterministically: among equally similar neighbours the
//! lower reference row wins, among equal votes the lower class index.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// How the `k` neighbours vote.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Vote {
    /// Weight `exp(cosine / temperature)` per neighbour (solo-learn, DINO).
    Weighted { temperature: f64 },
    /// One vote per neighbour.
    Majority,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KnnConfig {
    pub k: usize,
    pub vote: Vote,
}

impl Default for KnnConfig {
    /// k = 20, weighted voting with T = 0.07.
    fn default() -> Self {
        KnnConfig { k: 20, vote: Vote::Weighted { temperature: 0.07 } }
    }
}

/// The rows of `x` (`[n, dim]`) L2-normalised, in f64.
fn normalized_rows(x: &[f32], dim: usize) -> Vec<f64> {
    x.chunks_exact(dim)
        .flat_map(|row| {
            let norm = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt().max(1e-12);
            row.iter().map(move |&v| v as f64 / norm)
        })
        .collect()
}

/// Per-class votes `[queries, num_classes]` (row-major) of every query row of `queries` (`[m, dim]`) among the
/// reference rows `reference` (`[n, dim]`) labelled `labels`. `k` is capped at `n`.
pub fn knn_votes(reference: &[f32], labels: &[usize], queries: &[f32], dim: usize, num_classes: usize, cfg: &KnnConfig) -> Result<Vec<f64>> {
    let bad = |m: String| Error::Invalid(format!("knn: {m}"));
    if dim == 0 || num_classes == 0 {
        return Err(bad(format!("feature width {dim} and class count {num_classes} must be positive")));
    }
    if reference.len() % dim != 0 || queries.len() % dim != 0 {
        return Err(bad(format!("{} reference and {} query values are not whole rows of {dim} features", reference.len(), queries.len())));
    }
    let n = reference.len() / dim;
    if n == 0 {
        return Err(bad("the reference set is empty".into()));
    }
    if labels.len() != n {
        return Err(bad(format!("{} labels for {n} reference rows", labels.len())));
    }
    if let Some(&l) = labels.iter().find(|&&l| l >= num_classes) {
        return Err(bad(format!("label {l} out of range for {num_classes} classes")));
    }
    if cfg.k == 0 {
        return Err(bad("k must be at least 1".into()));
    }
    if let Vote::Weighted { temperature } = cfg.vote {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(bad(format!("temperature must be a positive number, got {temperature}")));
        }
    }
    if reference.iter().chain(queries).any(|v| !v.is_finite()) {
        return Err(bad("features contain NaN or infinity".into()));
    }
    let k = cfg.k.min(n);
    let reference = normalized_rows(reference, dim);
    let queries = normalized_rows(queries, dim);
    let votes: Vec<Vec<f64>> = queries
        .par_chunks_exact(dim)
        .map(|q| {
            let mut sims: Vec<(f64, usize)> =
                reference.chunks_exact(dim).enumerate().map(|(j, r)| (q.iter().zip(r).map(|(a, b)| a * b).sum::<f64>(), j)).collect();
            // Most similar first; equal similarities keep the lower reference row first.
            let by_similarity = |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            if k < sims.len() {
                sims.select_nth_unstable_by(k - 1, by_similarity);
                sims.truncate(k);
            }
            let mut v = vec![0.0; num_classes];
            for (sim, j) in sims {
                v[labels[j]] += match cfg.vote {
                    Vote::Weighted { temperature } => (sim / temperature).exp(),
                    Vote::Majority => 1.0,
                };
            }
            v
        })
        .collect();
    Ok(votes.into_iter().flatten().collect())
}

/// The predicted class of every query (see [`knn_votes`]); equal votes go to the lower class index.
pub fn knn_predict(reference: &[f32], labels: &[usize], queries: &[f32], dim: usize, num_classes: usize, cfg: &KnnConfig) -> Result<Vec<usize>> {
    let votes = knn_votes(reference, labels, queries, dim, num_classes, cfg)?;
    Ok(votes.chunks_exact(num_classes).map(|row| row.iter().enumerate().fold(0, |best, (c, &v)| if v > row[best] { c } else { best })).collect())
}

/// Fraction of `predictions` equal to `labels` (NaN for none).
pub fn top1(predictions: &[usize], labels: &[usize]) -> f64 {
    let hits = predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
    hits as f64 / predictions.len() as f64
}
