//! Batch normalisation over `[n, c, hw]`: 2-d batch norm has `hw = H * W`, 1-d batch norm (on `[N, F]`) has
//! `hw = 1`. PyTorch's conventions: normalise with the biased batch variance, update the running variance with the
//! unbiased one, `running = (1 - momentum) * running + momentum * batch_stat`.
//!
//! Every op is two passes: per-channel statistics (one rayon task per channel, f64 sums in a fixed order, so
//! results are deterministic), then an elementwise pass over `hw`-sized planes with a per-channel affine map.

#![allow(clippy::too_many_arguments)]

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::BatchNormGeom;
use crate::backend::{BnEpilogue, BnEpilogueGrad};

/// Elements per task in the elementwise pass (planes are grouped until they reach this size).
const MIN_TASK: usize = 1 << 14;

fn count(g: &BatchNormGeom) -> usize {
    g.n * g.hw
}

/// The elements of channel `c` of a `[n, c, hw]` tensor, as `n` contiguous runs of `hw`.
fn channel<'a, T: Element>(g: &BatchNormGeom, t: &'a [T], c: usize) -> impl Iterator<Item = &'a [T]> + 'a {
    let (cc, hw) = (g.c, g.hw);
    (0..g.n).map(move |i| &t[(i * cc + c) * hw..][..hw])
}

/// `y = (x - center[c]) * scale[c] + shift[c]` over every plane, in parallel, then the epilogue (`+ residual`,
/// ReLU) on the same value. Centring first keeps precision when a channel's mean is large compared with its
/// spread. The fused forms round exactly as the separate ops do (`add_fwd` computes `a + b`, `relu_fwd` keeps
/// NaN), so fusing changes no bit.
fn affine<T: Element>(g: &BatchNormGeom, x: &[T], center: &[T], scale: &[T], shift: &[T], epilogue: BnEpilogue<&[T]>, y: &mut [T]) {
    if y.is_empty() {
        return;
    }
    let (residual, relu) = match epilogue {
        BnEpilogue::None => (None, false),
        BnEpilogue::Relu => (None, true),
        BnEpilogue::AddRelu(r) => {
            assert_eq!(r.len(), g.numel(), "batch_norm: residual length for {g:?}");
            (Some(r), true)
        }
    };
    let min_planes = (MIN_TASK / g.hw.max(1)).max(1);
    y.par_chunks_mut(g.hw).zip(x.par_chunks(g.hw)).enumerate().with_min_len(min_planes).for_each(|(plane, (y, x))| {
        let c = plane % g.c;
        let (m, a, b) = (center[c], scale[c], shift[c]);
        let r = residual.map(|r| &r[plane * g.hw..][..g.hw]);
        for (j, (y, &x)) in y.iter_mut().zip(x).enumerate() {
            let mut v = (x - m) * a + b;
            if let Some(r) = r {
                v += r[j];
            }
            if relu && !(v > T::ZERO || v.is_nan()) {
                v = T::ZERO;
            }
            *y = v;
        }
    });
}

/// Independent accumulators of the per-channel f64 sums: element `j` of each contiguous run goes to lane
/// `j % LANES`, and the lanes are combined in a fixed order at the end. The order depends only on the shape, so the
/// sums stay deterministic, but the adds no longer wait on each other: one serial f64 chain per channel was most of
/// batch norm's time in the ResNet-18 step (perf, docs/PERF.md).
const LANES: usize = 8;

/// Σ over the lanes, in a fixed pairwise order.
fn lanes_total(acc: [f64; LANES]) -> f64 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `Σ f(v)` over the elements of `runs`, in lanes.
fn lane_sum<'a, T: Element>(runs: impl Iterator<Item = &'a [T]>, f: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    for run in runs {
        let mut chunks = run.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (a, &v) in acc.iter_mut().zip(chunk) {
                *a += f(v);
            }
        }
        for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
            *a += f(v);
        }
    }
    lanes_total(acc)
}

/// Per-channel biased mean and variance in f64 (two-pass, so large means do not swamp the variance).
fn batch_stats<T: Element>(g: &BatchNormGeom, x: &[T]) -> Vec<(f64, f64)> {
    let cnt = count(g) as f64;
    (0..g.c)
        .into_par_iter()
        .map(|c| {
            let mean = lane_sum(channel(g, x, c), |v| v.to_f64()) / cnt;
            let var = lane_sum(channel(g, x, c), |v| (v.to_f64() - mean).powi(2)) / cnt;
            (mean, var)
        })
        .collect()
}

fn check_params<T: Element>(g: &BatchNormGeom, op: &str, per_channel: &[&[T]]) {
    for (i, p) in per_channel.iter().enumerate() {
        assert_eq!(p.len(), g.c, "{op}: per-channel argument {i} has length {}, expected c = {}", p.len(), g.c);
    }
}

/// Training-mode forward: normalise with the batch statistics, save `mean` and `1/sqrt(var + eps)` for backward,
/// update the running statistics in place.
pub fn fwd_train<T: Element>(
    g: &BatchNormGeom,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &mut [T],
    running_var: &mut [T],
    y: &mut [T],
    saved_mean: &mut [T],
    saved_invstd: &mut [T],
    epilogue: BnEpilogue<&[T]>,
) {
    assert_eq!(x.len(), g.numel(), "batch_norm_fwd_train: x length for {g:?}");
    assert_eq!(y.len(), g.numel(), "batch_norm_fwd_train: y length for {g:?}");
    check_params(g, "batch_norm_fwd_train", &[gamma, beta, running_mean, running_var, saved_mean, saved_invstd]);
    // PyTorch refuses training-mode batch norm with one value per channel (the unbiased variance is undefined).
    assert!(count(g) > 1, "batch_norm_fwd_train: expected more than 1 value per channel when training, got {g:?}");

    let stats = batch_stats(g, x);
    let (m, cnt) = (g.momentum as f64, count(g) as f64);
    let mut scale = vec![T::ZERO; g.c];
    for (c, &(mean, var)) in stats.iter().enumerate() {
        let invstd = 1.0 / (var + g.eps as f64).sqrt();
        saved_mean[c] = T::from_f64(mean);
        saved_invstd[c] = T::from_f64(invstd);
        running_mean[c] = T::from_f64((1.0 - m) * running_mean[c].to_f64() + m * mean);
        running_var[c] = T::from_f64((1.0 - m) * running_var[c].to_f64() + m * var * cnt / (cnt - 1.0));
        scale[c] = T::from_f64(invstd * gamma[c].to_f64());
    }
    affine(g, x, saved_mean, &scale, beta, epilogue, y);
}

/// Evaluation-mode forward: normalise with the running statistics, then the epilogue.
pub fn fwd_eval<T: Element>(
    g: &BatchNormGeom,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
    y: &mut [T],
    epilogue: BnEpilogue<&[T]>,
) {
    assert_eq!(x.len(), g.numel(), "batch_norm_fwd_eval: x length for {g:?}");
    assert_eq!(y.len(), g.numel(), "batch_norm_fwd_eval: y length for {g:?}");
    check_params(g, "batch_norm_fwd_eval", &[gamma, beta, running_mean, running_var]);
    let scale: Vec<T> = (0..g.c).map(|c| T::from_f64(gamma[c].to_f64() / (running_var[c].to_f64() + g.eps as f64).sqrt())).collect();
    affine(g, x, running_mean, &scale, beta, epilogue, y);
}

/// Backward of the training-mode forward, with `xhat = (x - mean) * invstd` and `count = n * hw`:
/// `dx = gamma * invstd / count * (count * dy - Σdy - xhat * Σ(dy * xhat))` (written),
/// `dgamma += Σ dy * xhat`, `dbeta += Σ dy` (accumulated).
///
/// With a fused epilogue, `dy` is first masked with the fused output, `dy * (y > 0)` (exactly `relu_bwd`), and
/// for `AddRelu` the masked gradient is also written to `dresidual`; the mask is applied on the fly, so the sums
/// see the same values in the same order as an unfused `relu_bwd` followed by this op.
pub fn bwd<T: Element>(
    g: &BatchNormGeom,
    x: &[T],
    gamma: &[T],
    saved_mean: &[T],
    saved_invstd: &[T],
    dy: &[T],
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    epilogue: BnEpilogueGrad<&[T], &mut [T]>,
) {
    assert_eq!(x.len(), g.numel(), "batch_norm_bwd: x length for {g:?}");
    assert_eq!(dy.len(), g.numel(), "batch_norm_bwd: dy length for {g:?}");
    assert_eq!(dx.len(), g.numel(), "batch_norm_bwd: dx length for {g:?}");
    check_params(g, "batch_norm_bwd", &[gamma, saved_mean, saved_invstd, dgamma, dbeta]);
    let (mask, dresidual) = match epilogue {
        BnEpilogueGrad::None => (None, None),
        BnEpilogueGrad::Relu { y } => (Some(y), None),
        BnEpilogueGrad::AddRelu { y, dresidual } => (Some(y), Some(dresidual)),
    };
    if let Some(y) = mask {
        assert_eq!(y.len(), g.numel(), "batch_norm_bwd: fused output y length for {g:?}");
    }
    if let Some(dr) = &dresidual {
        assert_eq!(dr.len(), g.numel(), "batch_norm_bwd: dresidual length for {g:?}");
    }
    // The gradient reaching the affine map at flat index i.
    let grad = |i: usize| -> T {
        match mask {
            Some(y) if y[i] > T::ZERO => dy[i],
            Some(_) => T::ZERO,
            None => dy[i],
        }
    };

    // Per channel: Σ dy and Σ dy * xhat, in f64.
    let sums: Vec<(f64, f64)> = (0..g.c)
        .into_par_iter()
        .map(|c| {
            let (mean, invstd) = (saved_mean[c].to_f64(), saved_invstd[c].to_f64());
            // In lanes, as `lane_sum`.
            let (mut sum_dy, mut sum_dy_xhat) = ([0.0f64; LANES], [0.0f64; LANES]);
            for s in 0..g.n {
                let base = (s * g.c + c) * g.hw;
                let (xs, dys, ys) = (&x[base..][..g.hw], &dy[base..][..g.hw], mask.map(|y| &y[base..][..g.hw]));
                for j0 in (0..g.hw).step_by(LANES) {
                    for j in j0..(j0 + LANES).min(g.hw) {
                        // `grad(base + j)` on the run's slices (no bounds checks in the loop).
                        let d = match ys {
                            Some(ys) if ys[j] > T::ZERO => dys[j],
                            Some(_) => T::ZERO,
                            None => dys[j],
                        }
                        .to_f64();
                        sum_dy[j - j0] += d;
                        sum_dy_xhat[j - j0] += d * (xs[j].to_f64() - mean) * invstd;
                    }
                }
            }
            (lanes_total(sum_dy), lanes_total(sum_dy_xhat))
        })
        .collect();

    // dx = k * (dy - Σdy/count - xhat * Σ(dy xhat)/count) with k = gamma * invstd, expanded per channel into
    // dx = dy * k + (x - mean) * a + b.
    let cnt = count(g) as f64;
    let mut coef = vec![(T::ZERO, T::ZERO, T::ZERO, T::ZERO); g.c];
    for c in 0..g.c {
        let (sum_dy, sum_dy_xhat) = sums[c];
        dgamma[c] += T::from_f64(sum_dy_xhat);
        dbeta[c] += T::from_f64(sum_dy);
        let (mean, invstd) = (saved_mean[c].to_f64(), saved_invstd[c].to_f64());
        let k = gamma[c].to_f64() * invstd;
        let a = -k * invstd * sum_dy_xhat / cnt;
        let b = -k * sum_dy / cnt;
        coef[c] = (T::from_f64(mean), T::from_f64(k), T::from_f64(a), T::from_f64(b));
    }
    if dx.is_empty() {
        return;
    }
    let min_planes = (MIN_TASK / g.hw.max(1)).max(1);
    dx.par_chunks_mut(g.hw).zip(x.par_chunks(g.hw)).enumerate().with_min_len(min_planes).for_each(|(plane, (dx, x))| {
        let (m, k, a, b) = coef[plane % g.c];
        let base = plane * g.hw;
        for (j, (dx, &x)) in dx.iter_mut().zip(x).enumerate() {
            *dx = grad(base + j) * k + (x - m) * a + b;
        }
    });
    if let Some(dr) = dresidual {
        dr.par_chunks_mut(g.hw).enumerate().with_min_len(min_planes).for_each(|(plane, dr)| {
            let base = plane * g.hw;
            for (j, dr) in dr.iter_mut().enumerate() {
                *dr = grad(base + j);
            }
        });
    }
}
