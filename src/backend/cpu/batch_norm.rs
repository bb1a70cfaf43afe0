//! Batch normalisation over `[n, c, hw]`: 2-d batch norm has `hw = H * W`, 1-d batch norm (on `[N, F]`) has
//! `hw = 1`. PyTorch's conventions: normalise with the biased batch variance, update the running variance with the
//! unbiased one, `running = (1 - momentum) * running + momentum * batch_stat`.
//!
//! Every op is two passes: per-channel statistics (one rayon task per channel, f64 sums in a fixed order, so
//! results are deterministic), then an elementwise pass over `hw`-sized planes with a per-channel affine map.

#![allow(clippy::too_many_arguments)]

use rayon::prelude::*;

use crate::backend::geom::BatchNormGeom;

/// Elements per task in the elementwise pass (planes are grouped until they reach this size).
const MIN_TASK: usize = 1 << 14;

fn count(g: &BatchNormGeom) -> usize {
    g.n * g.hw
}

/// The elements of channel `c` of a `[n, c, hw]` tensor, as `n` contiguous runs of `hw`.
fn channel<'a>(g: &BatchNormGeom, t: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
    let (cc, hw) = (g.c, g.hw);
    (0..g.n).map(move |i| &t[(i * cc + c) * hw..][..hw])
}

/// `y = (x - center[c]) * scale[c] + shift[c]` over every plane, in parallel. Centring first keeps f32 precision
/// when a channel's mean is large compared with its spread.
fn affine(g: &BatchNormGeom, x: &[f32], center: &[f32], scale: &[f32], shift: &[f32], y: &mut [f32]) {
    if y.is_empty() {
        return;
    }
    let min_planes = (MIN_TASK / g.hw.max(1)).max(1);
    y.par_chunks_mut(g.hw).zip(x.par_chunks(g.hw)).enumerate().with_min_len(min_planes).for_each(|(plane, (y, x))| {
        let c = plane % g.c;
        let (m, a, b) = (center[c], scale[c], shift[c]);
        for (y, &x) in y.iter_mut().zip(x) {
            *y = (x - m) * a + b;
        }
    });
}

/// Per-channel biased mean and variance in f64 (two-pass, so large means do not swamp the variance).
fn batch_stats(g: &BatchNormGeom, x: &[f32]) -> Vec<(f64, f64)> {
    let cnt = count(g) as f64;
    (0..g.c)
        .into_par_iter()
        .map(|c| {
            let mean = channel(g, x, c).flatten().map(|&v| v as f64).sum::<f64>() / cnt;
            let var = channel(g, x, c).flatten().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cnt;
            (mean, var)
        })
        .collect()
}

fn check_params(g: &BatchNormGeom, op: &str, per_channel: &[&[f32]]) {
    for (i, p) in per_channel.iter().enumerate() {
        assert_eq!(p.len(), g.c, "{op}: per-channel argument {i} has length {}, expected c = {}", p.len(), g.c);
    }
}

/// Training-mode forward: normalise with the batch statistics, save `mean` and `1/sqrt(var + eps)` for backward,
/// update the running statistics in place.
pub fn fwd_train(
    g: &BatchNormGeom,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    saved_mean: &mut [f32],
    saved_invstd: &mut [f32],
) {
    assert_eq!(x.len(), g.len(), "batch_norm_fwd_train: x length for {g:?}");
    assert_eq!(y.len(), g.len(), "batch_norm_fwd_train: y length for {g:?}");
    check_params(g, "batch_norm_fwd_train", &[gamma, beta, running_mean, running_var, saved_mean, saved_invstd]);
    // PyTorch refuses training-mode batch norm with one value per channel (the unbiased variance is undefined).
    assert!(count(g) > 1, "batch_norm_fwd_train: expected more than 1 value per channel when training, got {g:?}");

    let stats = batch_stats(g, x);
    let (m, cnt) = (g.momentum as f64, count(g) as f64);
    let mut scale = vec![0.0f32; g.c];
    for (c, &(mean, var)) in stats.iter().enumerate() {
        let invstd = 1.0 / (var + g.eps as f64).sqrt();
        saved_mean[c] = mean as f32;
        saved_invstd[c] = invstd as f32;
        running_mean[c] = ((1.0 - m) * running_mean[c] as f64 + m * mean) as f32;
        running_var[c] = ((1.0 - m) * running_var[c] as f64 + m * var * cnt / (cnt - 1.0)) as f32;
        scale[c] = (invstd * gamma[c] as f64) as f32;
    }
    affine(g, x, saved_mean, &scale, beta, y);
}

/// Evaluation-mode forward: normalise with the running statistics.
pub fn fwd_eval(g: &BatchNormGeom, x: &[f32], gamma: &[f32], beta: &[f32], running_mean: &[f32], running_var: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), g.len(), "batch_norm_fwd_eval: x length for {g:?}");
    assert_eq!(y.len(), g.len(), "batch_norm_fwd_eval: y length for {g:?}");
    check_params(g, "batch_norm_fwd_eval", &[gamma, beta, running_mean, running_var]);
    let scale: Vec<f32> = (0..g.c).map(|c| (gamma[c] as f64 / (running_var[c] as f64 + g.eps as f64).sqrt()) as f32).collect();
    affine(g, x, running_mean, &scale, beta, y);
}

/// Backward of the training-mode forward, with `xhat = (x - mean) * invstd` and `count = n * hw`:
/// `dx = gamma * invstd / count * (count * dy - Σdy - xhat * Σ(dy * xhat))` (written),
/// `dgamma += Σ dy * xhat`, `dbeta += Σ dy` (accumulated).
pub fn bwd(
    g: &BatchNormGeom,
    x: &[f32],
    gamma: &[f32],
    saved_mean: &[f32],
    saved_invstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    assert_eq!(x.len(), g.len(), "batch_norm_bwd: x length for {g:?}");
    assert_eq!(dy.len(), g.len(), "batch_norm_bwd: dy length for {g:?}");
    assert_eq!(dx.len(), g.len(), "batch_norm_bwd: dx length for {g:?}");
    check_params(g, "batch_norm_bwd", &[gamma, saved_mean, saved_invstd, dgamma, dbeta]);

    // Per channel: Σ dy and Σ dy * xhat, in f64.
    let sums: Vec<(f64, f64)> = (0..g.c)
        .into_par_iter()
        .map(|c| {
            let (mean, invstd) = (saved_mean[c] as f64, saved_invstd[c] as f64);
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for (xs, dys) in channel(g, x, c).zip(channel(g, dy, c)) {
                for (&xv, &d) in xs.iter().zip(dys) {
                    sum_dy += d as f64;
                    sum_dy_xhat += d as f64 * (xv as f64 - mean) * invstd;
                }
            }
            (sum_dy, sum_dy_xhat)
        })
        .collect();

    // dx = k * (dy - Σdy/count - xhat * Σ(dy xhat)/count) with k = gamma * invstd, expanded per channel into
    // dx = dy * k + (x - mean) * a + b.
    let cnt = count(g) as f64;
    let mut coef = vec![(0.0f32, 0.0f32, 0.0f32, 0.0f32); g.c];
    for c in 0..g.c {
        let (sum_dy, sum_dy_xhat) = sums[c];
        dgamma[c] += sum_dy_xhat as f32;
        dbeta[c] += sum_dy as f32;
        let (mean, invstd) = (saved_mean[c] as f64, saved_invstd[c] as f64);
        let k = gamma[c] as f64 * invstd;
        let a = -k * invstd * sum_dy_xhat / cnt;
        let b = -k * sum_dy / cnt;
        coef[c] = (mean as f32, k as f32, a as f32, b as f32);
    }
    if dx.is_empty() {
        return;
    }
    let min_planes = (MIN_TASK / g.hw.max(1)).max(1);
    dx.par_chunks_mut(g.hw).zip(x.par_chunks(g.hw)).zip(dy.par_chunks(g.hw)).enumerate().with_min_len(min_planes).for_each(
        |(plane, ((dx, x), dy))| {
            let (m, k, a, b) = coef[plane % g.c];
            for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                *dx = dy * k + (x - m) * a + b;
            }
        },
    );
}
