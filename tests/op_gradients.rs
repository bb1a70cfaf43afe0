//! Self-consistency of the CPU reference backend, without PyTorch:
//! - every backward pass against central finite differences of its own forward pass;
//! - convolution against a naive direct (7-loop) convolution, forward and backward;
//! - batch-norm statistics, running-stat updates and eval mode against hand-written f64 formulas;
//! - cross-entropy against a hand-written log-sum-exp, SGD against a hand-written PyTorch-semantics loop;
//! - the write/accumulate conventions: written outputs start as NaN (an element left unwritten, or added to,
//!   stays NaN and fails), accumulated parameter gradients start at random values that must be kept.
//!
//! Gradient-check method: random inputs with mixed signs from `fgssl::rng::Rng`, a random upstream gradient `r`,
//! the scalar `L = Σ y·r` accumulated in f64, and `dL/dx_i ≈ (L(x + e_i ε) - L(x - e_i ε)) / (x⁺_i - x⁻_i)` (the
//! denominator uses the actually representable perturbed values). An element passes when
//! `|analytic - numeric| <= rtol * max(|numeric|, max_j |numeric_j| / 10)`: relative for every element that is not
//! tiny compared with the largest, so a wrong factor, a missing term or a misrouted gradient fails. Ops that are
//! linear in the checked input (conv, linear, pools, concat) have no truncation error, so they get `rtol_linear`;
//! smooth nonlinear ops (batch norm, ELU, cross-entropy) get `rtol_smooth`. Piecewise ops (ReLU, max pools) use
//! inputs kept well away from kinks and ties (distinct values spaced far more than ε).
//!
//! Every finite-difference check runs twice, as `<test>::f32` on [`Cpu`] and `<test>::f64` on [`Cpu64`], with the
//! same inputs (drawn in f32) and per-precision steps and tolerances ([`Precision::TOL`]): f32 rounding limits the
//! first to ~1e-3, the second is tight to 1e-8..1e-7 and so catches errors far below what f32 could resolve.

use fgssl::backend::cpu::{Cpu, Cpu64, CpuBackend, Element};
use fgssl::backend::geom::*;
use fgssl::backend::{Backend, BnEpilogue, BnEpilogueGrad};
use fgssl::rng::Rng;
use fgssl::tensor::{DType, Format, Layout, Shape};

/// Finite-difference steps and tolerances of one precision.
struct Tol {
    /// Step for ops linear in the perturbed input: large, since there is no truncation error and rounding shrinks
    /// with it.
    eps_linear: f64,
    /// Step for smooth nonlinear ops: balances the O(ε²) truncation error against forward rounding divided by 2ε.
    eps_smooth: f64,
    /// Step for piecewise-linear ops (ReLU, max pools): far below the distance to any kink or tie.
    eps_kink: f64,
    /// Tolerance for ops linear in the perturbed input (only rounding in the forward pass remains).
    rtol_linear: f64,
    /// Tolerance for smooth nonlinear ops (adds the truncation error of central differences).
    rtol_smooth: f64,
}

/// An element type the finite-difference checks run in.
trait Precision: Element {
    const TOL: Tol;
}

impl Precision for f32 {
    /// With ε = 1e-2 the truncation error stays below 1e-4 relative, while f32 rounding of the forward pass
    /// (divided by 2ε) stays below ~2e-4.
    const TOL: Tol = Tol { eps_linear: 1e-2, eps_smooth: 1e-2, eps_kink: 1e-3, rtol_linear: 1e-3, rtol_smooth: 5e-3 };
}

impl Precision for f64 {
    /// f64 rounding of `L` (~1e-15 relative) divided by 2ε is ~1e-12 for linear ops with ε = 1e-3; smooth ops
    /// balance it against the O(ε²) truncation error with ε = 1e-5. Observed worst errors are 1e-10 (linear) and
    /// 2e-9 (smooth), so the tolerances leave a 50-100x margin while any wrong term shows up at 1e-2 or more.
    const TOL: Tol = Tol { eps_linear: 1e-3, eps_smooth: 1e-5, eps_kink: 1e-4, rtol_linear: 1e-8, rtol_smooth: 1e-7 };
}

/// Defines `<name>::f32` and `<name>::f64` tests running the generic function `name` in each precision.
macro_rules! in_both_precisions {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn f32() {
                super::$name::<f32>()
            }
            #[test]
            fn f64() {
                super::$name::<f64>()
            }
        }
    )*};
}

fn uniform(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    rng.vec_uniform(n, lo, hi)
}

/// f32 values (how every input is drawn) in the element type under test.
fn cast<T: Element>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f32(x)).collect()
}

fn nan<T: Element>(n: usize) -> Vec<T> {
    vec![T::NAN; n]
}

/// `Σ y·r` in f64.
fn dot<T: Element>(y: &[T], r: &[T]) -> f64 {
    assert_eq!(y.len(), r.len());
    y.iter().zip(r).map(|(&a, &b)| a.to_f64() * b.to_f64()).sum()
}

/// `n` distinct values `offset + step * k` (k = 0..n) in random order: no ties, no two values closer than `step`.
fn distinct(rng: &mut Rng, n: usize, offset: f32, step: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|k| offset + step * k as f32).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.below(i + 1));
    }
    v
}

/// Compares `analytic` with central differences of `loss` around `x` for every element (see the module docs).
fn grad_check<T: Element>(what: &str, x: &[T], analytic: &[T], eps: f64, rtol: f64, mut loss: impl FnMut(&[T]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let eps = T::from_f64(eps);
    let mut xp = x.to_vec();
    let numeric: Vec<f64> = (0..x.len())
        .map(|i| {
            let (hi, lo) = (x[i] + eps, x[i] - eps);
            xp[i] = hi;
            let l_hi = loss(&xp);
            xp[i] = lo;
            let l_lo = loss(&xp);
            xp[i] = x[i];
            (l_hi - l_lo) / (hi.to_f64() - lo.to_f64())
        })
        .collect();
    let scale = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-6, "{what}: numeric gradient is identically ~0; the check would be vacuous");
    let mut worst = (0.0f64, 0usize);
    for (i, (&a, &n)) in analytic.iter().zip(&numeric).enumerate() {
        let err = (a.to_f64() - n).abs() / n.abs().max(scale / 10.0);
        assert!(err.is_finite(), "{what}[{i}]: analytic {a:?} vs numeric {n}");
        if err > worst.0 {
            worst = (err, i);
        }
    }
    let (err, i) = worst;
    assert!(err <= rtol, "{what}[{i}]: analytic {:?} vs numeric {} (relative error {err:.2e} > {rtol:.0e})", analytic[i], numeric[i]);
}

/// `|got - want| <= rtol * max(|want|, max|want| / 10)` elementwise, with `want` computed in f64.
fn assert_close<T: Element>(what: &str, got: &[T], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g.to_f64() - w).abs() / w.abs().max(scale / 10.0);
        assert!(err <= rtol, "{what}[{i}]: got {g:?}, want {w} (relative error {err:.2e} > {rtol:.0e})");
    }
}

// ---- convolution ---------------------------------------------------------------------------------------------

/// Direct convolution in f64 straight from the definition: y[n,o,oh,ow] = b[o] + Σ x[n,c,oh*s+i-p,ow*s+j-p] w[o,c,i,j].
fn naive_conv_fwd(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f64> {
    let mut y = vec![0.0f64; g.y_len()];
    for n in 0..g.n {
        for o in 0..g.c_out {
            for oh in 0..g.ho {
                for ow in 0..g.wo {
                    let mut s = bias.map_or(0.0, |b| b[o] as f64);
                    for c in 0..g.c_in {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                let ih = (oh * g.stride + i) as isize - g.pad as isize;
                                let iw = (ow * g.stride + j) as isize - g.pad as isize;
                                if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                    continue;
                                }
                                let xv = x[((n * g.c_in + c) * g.h + ih as usize) * g.w + iw as usize] as f64;
                                s += xv * w[((o * g.c_in + c) * g.kh + i) * g.kw + j] as f64;
                            }
                        }
                    }
                    y[((n * g.c_out + o) * g.ho + oh) * g.wo + ow] = s;
                }
            }
        }
    }
    y
}

/// Direct backward in f64: (dx, dw, dbias) by scattering every product of the forward sum.
fn naive_conv_bwd(g: &Conv2dGeom, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut dx, mut dw, mut db) = (vec![0.0f64; g.x_len()], vec![0.0f64; g.w_len()], vec![0.0f64; g.c_out]);
    for n in 0..g.n {
        for o in 0..g.c_out {
            for oh in 0..g.ho {
                for ow in 0..g.wo {
                    let d = dy[((n * g.c_out + o) * g.ho + oh) * g.wo + ow] as f64;
                    db[o] += d;
                    for c in 0..g.c_in {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                let ih = (oh * g.stride + i) as isize - g.pad as isize;
                                let iw = (ow * g.stride + j) as isize - g.pad as isize;
                                if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                    continue;
                                }
                                let xi = ((n * g.c_in + c) * g.h + ih as usize) * g.w + iw as usize;
                                let wi = ((o * g.c_in + c) * g.kh + i) * g.kw + j;
                                dx[xi] += d * w[wi] as f64;
                                dw[wi] += d * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

/// (n, c_in, h, w, c_out, k, stride, pad).
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);

/// Odd sizes, every padding/stride regime, both the im2col and the pointwise (1x1, stride 1, pad 0) path, small
/// maps (several samples per GEMM block) and large ones (one sample per block), and batches that split into
/// several blocks and weight-gradient groups with short last ones.
const CONV_CASES: &[ConvCase] = &[
    (2, 3, 5, 7, 4, 3, 1, 1),    // 3x3 same padding
    (3, 3, 5, 7, 5, 3, 2, 1),    // 3x3 stride 2, odd maps
    (2, 2, 9, 11, 3, 7, 2, 3),   // 7x7 stem-style
    (2, 4, 5, 3, 6, 1, 1, 0),    // 1x1 pointwise, samples side by side
    (2, 3, 20, 21, 4, 1, 1, 0),  // 1x1 pointwise, one sample per block (input read in place, no im2col)
    (3, 4, 7, 5, 3, 1, 2, 0),    // 1x1 stride 2 (downsample shortcut)
    (2, 2, 6, 7, 3, 3, 2, 0),    // no padding, truncated last window
    (1, 1, 4, 4, 2, 5, 1, 2),    // kernel larger than half the map, padding on all sides
    (17, 2, 4, 3, 3, 3, 1, 1),   // 17 samples in one block
    (10, 2, 10, 10, 3, 3, 1, 1), // blocks of 4: 4 + 4 + 2
    (9, 2, 20, 20, 3, 3, 1, 1),  // one sample per block, 5 groups of 2 + 1
    (70, 1, 7, 7, 2, 3, 1, 1),   // 9 blocks of 8 (last 6) in 5 groups of 2 blocks (last 1)
];

fn conv_geom(c: ConvCase) -> Conv2dGeom {
    let (n, c_in, h, w, c_out, k, s, p) = c;
    Conv2dGeom::new(n, c_in, h, w, c_out, k, s, p)
}

#[test]
fn conv2d_fwd_matches_direct_convolution() {
    let b = Cpu::new();
    let mut rng = Rng::new(1);
    let mut cases = CONV_CASES.to_vec();
    // The shape named in the brief: batch 3, 5x7 maps, 3 -> 5 channels, 3x3 stride 2 pad 1 (already listed), plus
    // a stride-3 case whose windows skip input columns.
    cases.push((3, 3, 8, 7, 2, 2, 3, 1));
    for (ci, &c) in cases.iter().enumerate() {
        let g = conv_geom(c);
        let x = uniform(&mut rng, g.x_len(), -1.0, 1.0);
        let w = uniform(&mut rng, g.w_len(), -1.0, 1.0);
        let bias = uniform(&mut rng, g.c_out, -1.0, 1.0);
        for with_bias in [false, true] {
            let bias = with_bias.then_some(bias.as_slice());
            let mut y = nan(g.y_len());
            b.conv2d_fwd(&g, &x, &w, bias, &mut y);
            assert_close(&format!("conv case {ci} {g:?} bias={with_bias}: y"), &y, &naive_conv_fwd(&g, &x, &w, bias), 1e-5);
        }
    }
}

fn conv2d_bwd_matches_direct_convolution<T: Precision>() {
    let b = CpuBackend::<T>::new();
    let mut rng = Rng::new(2);
    for (ci, &c) in CONV_CASES.iter().enumerate() {
        let g = conv_geom(c);
        let x = uniform(&mut rng, g.x_len(), -1.0, 1.0);
        let w = uniform(&mut rng, g.w_len(), -1.0, 1.0);
        let dy = uniform(&mut rng, g.y_len(), -1.0, 1.0);
        let (ndx, ndw, ndb) = naive_conv_bwd(&g, &x, &w, &dy);
        // Parameter gradients accumulate onto what is there; the input gradient is written over NaN.
        let dw0 = uniform(&mut rng, g.w_len(), -1.0, 1.0);
        let db0 = uniform(&mut rng, g.c_out, -1.0, 1.0);
        let (mut dx, mut dw, mut db) = (nan(g.x_len()), cast::<T>(&dw0), cast::<T>(&db0));
        b.conv2d_bwd(&g, &cast(&x), &cast(&w), &cast(&dy), Some(&mut dx), &mut dw, Some(&mut db));
        let what = format!("conv case {ci} {g:?}");
        assert_close(&format!("{what}: dx"), &dx, &ndx, 1e-5);
        let want_dw: Vec<f64> = ndw.iter().zip(&dw0).map(|(d, &w0)| d + w0 as f64).collect();
        assert_close(&format!("{what}: dw"), &dw, &want_dw, 1e-5);
        let want_db: Vec<f64> = ndb.iter().zip(&db0).map(|(d, &b0)| d + b0 as f64).collect();
        assert_close(&format!("{what}: dbias"), &db, &want_db, 1e-5);

        // Without dx and bias gradient: the same weight gradient, bit for bit.
        let mut dw_only = cast::<T>(&dw0);
        b.conv2d_bwd(&g, &cast(&x), &cast(&w), &cast(&dy), None, &mut dw_only, None);
        assert_eq!(dw_only, dw, "{what}: dw differs when dx is not requested");
    }
}

in_both_precisions!(conv2d_bwd_matches_direct_convolution);

fn conv2d_gradients_match_finite_differences<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(3);
    for (ci, &c) in CONV_CASES.iter().enumerate() {
        let g = conv_geom(c);
        let x = cast::<T>(&uniform(&mut rng, g.x_len(), -1.0, 1.0));
        let w = cast::<T>(&uniform(&mut rng, g.w_len(), -1.0, 1.0));
        let bias = cast::<T>(&uniform(&mut rng, g.c_out, -1.0, 1.0));
        let r = cast::<T>(&uniform(&mut rng, g.y_len(), -1.0, 1.0));
        let loss = |x: &[T], w: &[T], bias: &[T]| {
            let mut y = vec![T::ZERO; g.y_len()];
            b.conv2d_fwd(&g, x, w, Some(bias), &mut y);
            dot(&y, &r)
        };
        let (mut dx, mut dw, mut db) = (nan(g.x_len()), vec![T::ZERO; g.w_len()], vec![T::ZERO; g.c_out]);
        b.conv2d_bwd(&g, &x, &w, &r, Some(&mut dx), &mut dw, Some(&mut db));
        let what = format!("conv case {ci} {g:?}");
        let (eps, rtol) = (tol.eps_linear, tol.rtol_linear);
        grad_check(&format!("{what}: dx"), &x, &dx, eps, rtol, |x| loss(x, &w, &bias));
        grad_check(&format!("{what}: dw"), &w, &dw, eps, rtol, |w| loss(&x, w, &bias));
        grad_check(&format!("{what}: dbias"), &bias, &db, eps, rtol, |bias| loss(&x, &w, bias));
    }
}

in_both_precisions!(conv2d_gradients_match_finite_differences);

/// The weight-gradient reduction has a fixed order: one thread or several, the result is bit-identical.
#[test]
fn conv2d_bwd_is_deterministic_across_thread_counts() {
    let b = Cpu::new();
    let mut rng = Rng::new(4);
    // Multi-sample blocks (9x9 maps) and single-sample blocks in several groups (20x20 maps).
    for g in [Conv2dGeom::new(13, 8, 9, 9, 16, 3, 1, 1), Conv2dGeom::new(11, 4, 20, 20, 8, 3, 1, 1)] {
        let x = uniform(&mut rng, g.x_len(), -1.0, 1.0);
        let w = uniform(&mut rng, g.w_len(), -1.0, 1.0);
        let dy = uniform(&mut rng, g.y_len(), -1.0, 1.0);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (mut y, mut dx, mut dw, mut db) = (nan(g.y_len()), nan(g.x_len()), vec![0.0; g.w_len()], vec![0.0; g.c_out]);
                b.conv2d_fwd(&g, &x, &w, None, &mut y);
                b.conv2d_bwd(&g, &x, &w, &dy, Some(&mut dx), &mut dw, Some(&mut db));
                (y, dx, dw, db)
            })
        };
        let one = run(1);
        for threads in [2, 3, 16] {
            assert!(run(threads) == one, "{g:?}: conv2d results with {threads} threads differ from one thread");
        }
    }
}

// ---- batch norm ----------------------------------------------------------------------------------------------

/// Biased mean and variance per channel of `[n, c, hw]`, in f64.
fn channel_stats(g: &BatchNormGeom, x: &[f32]) -> Vec<(f64, f64)> {
    (0..g.c)
        .map(|c| {
            let vals: Vec<f64> = (0..g.n).flat_map(|n| (0..g.hw).map(move |j| (n, j))).map(|(n, j)| x[(n * g.c + c) * g.hw + j] as f64).collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            (mean, var)
        })
        .collect()
}

/// 2-d (hw = 15) and 1-d (hw = 1) batch norm; momentum 0.1 so that swapping `m` and `1 - m` is visible, and small
/// counts so that biased and unbiased variances differ by 4-20 %.
fn bn_geoms() -> [BatchNormGeom; 2] {
    [BatchNormGeom { n: 3, c: 4, hw: 15, eps: 1e-5, momentum: 0.1 }, BatchNormGeom { n: 6, c: 5, hw: 1, eps: 1e-3, momentum: 0.1 }]
}

#[test]
fn batch_norm_train_forward_and_running_stats() {
    let b = Cpu::new();
    let mut rng = Rng::new(5);
    for g in bn_geoms() {
        // Channels with different offsets and spreads, one far from zero to exercise precision.
        let mut x = uniform(&mut rng, g.numel(), -2.0, 2.0);
        for (i, v) in x.iter_mut().enumerate() {
            let c = (i / g.hw) % g.c;
            *v = *v * (c + 1) as f32 + [0.0, 3.0, -1.0, 100.0, 0.5][c];
        }
        let gamma = uniform(&mut rng, g.c, 0.5, 1.5);
        let beta = uniform(&mut rng, g.c, -1.0, 1.0);
        let rm0 = uniform(&mut rng, g.c, -1.0, 1.0);
        let rv0 = uniform(&mut rng, g.c, 0.5, 2.0);
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let (mut y, mut sm, mut si) = (nan(g.numel()), nan(g.c), nan(g.c));
        b.batch_norm_fwd_train(&g, &x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut si, BnEpilogue::None);

        let stats = channel_stats(&g, &x);
        let count = (g.n * g.hw) as f64;
        let m = g.momentum as f64;
        let what = format!("{g:?}");
        let mean: Vec<f64> = stats.iter().map(|s| s.0).collect();
        let invstd: Vec<f64> = stats.iter().map(|s| 1.0 / (s.1 + g.eps as f64).sqrt()).collect();
        let want_rm: Vec<f64> = (0..g.c).map(|c| (1.0 - m) * rm0[c] as f64 + m * stats[c].0).collect();
        let want_rv: Vec<f64> = (0..g.c).map(|c| (1.0 - m) * rv0[c] as f64 + m * stats[c].1 * count / (count - 1.0)).collect();
        assert_close(&format!("{what}: saved_mean"), &sm, &mean, 1e-6);
        assert_close(&format!("{what}: saved_invstd"), &si, &invstd, 1e-6);
        assert_close(&format!("{what}: running_mean"), &rm, &want_rm, 1e-6);
        assert_close(&format!("{what}: running_var (unbiased)"), &rv, &want_rv, 1e-6);
        let want_y: Vec<f64> = (0..g.numel())
            .map(|i| {
                let c = (i / g.hw) % g.c;
                (x[i] as f64 - mean[c]) * invstd[c] * gamma[c] as f64 + beta[c] as f64
            })
            .collect();
        assert_close(&format!("{what}: y"), &y, &want_y, 1e-5);
    }
}

#[test]
fn batch_norm_eval_uses_running_stats() {
    let b = Cpu::new();
    let mut rng = Rng::new(6);
    for g in bn_geoms() {
        let x = uniform(&mut rng, g.numel(), -3.0, 3.0);
        let gamma = uniform(&mut rng, g.c, -1.5, 1.5);
        let beta = uniform(&mut rng, g.c, -1.0, 1.0);
        let rm = uniform(&mut rng, g.c, -1.0, 1.0);
        let rv = uniform(&mut rng, g.c, 0.1, 3.0);
        let mut y = nan(g.numel());
        b.batch_norm_fwd_eval(&g, &x, &gamma, &beta, &rm, &rv, &mut y, BnEpilogue::None);
        let want: Vec<f64> = (0..g.numel())
            .map(|i| {
                let c = (i / g.hw) % g.c;
                (x[i] as f64 - rm[c] as f64) / (rv[c] as f64 + g.eps as f64).sqrt() * gamma[c] as f64 + beta[c] as f64
            })
            .collect();
        assert_close(&format!("{g:?}: eval y"), &y, &want, 1e-5);
    }
}

fn batch_norm_gradients_match_finite_differences<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(7);
    for g in bn_geoms() {
        let x = cast::<T>(&uniform(&mut rng, g.numel(), -2.0, 2.0));
        let gamma = cast::<T>(&uniform(&mut rng, g.c, -1.5, 1.5));
        let beta = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
        let r = cast::<T>(&uniform(&mut rng, g.numel(), -1.0, 1.0));
        // Training-mode forward; running statistics go to scratch copies, so every evaluation is the same function.
        let fwd = |x: &[T], gamma: &[T], beta: &[T]| {
            let (mut rm, mut rv) = (vec![T::ZERO; g.c], vec![T::ONE; g.c]);
            let (mut y, mut sm, mut si) = (vec![T::ZERO; g.numel()], vec![T::ZERO; g.c], vec![T::ZERO; g.c]);
            b.batch_norm_fwd_train(&g, x, gamma, beta, &mut rm, &mut rv, &mut y, &mut sm, &mut si, BnEpilogue::None);
            (y, sm, si)
        };
        let loss = |x: &[T], gamma: &[T], beta: &[T]| dot(&fwd(x, gamma, beta).0, &r);
        let (_, sm, si) = fwd(&x, &gamma, &beta);
        let dg0 = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
        let db0 = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
        let (mut dx, mut dg, mut db) = (nan(g.numel()), dg0.clone(), db0.clone());
        b.batch_norm_bwd(&g, &x, &gamma, &sm, &si, &r, &mut dx, &mut dg, &mut db, BnEpilogueGrad::None);
        // Subtract the starting values to isolate this call's contribution (they must have been accumulated onto).
        let dg: Vec<T> = dg.iter().zip(&dg0).map(|(&a, &b)| a - b).collect();
        let db: Vec<T> = db.iter().zip(&db0).map(|(&a, &b)| a - b).collect();
        let what = format!("{g:?}");
        let (eps, rtol) = (tol.eps_smooth, tol.rtol_smooth);
        grad_check(&format!("{what}: dx"), &x, &dx, eps, rtol, |x| loss(x, &gamma, &beta));
        grad_check(&format!("{what}: dgamma"), &gamma, &dg, eps, rtol, |gm| loss(&x, gm, &beta));
        grad_check(&format!("{what}: dbeta"), &beta, &db, eps, rtol, |bt| loss(&x, &gamma, bt));
    }
}

in_both_precisions!(batch_norm_gradients_match_finite_differences);

// ---- fused batch norm epilogues (BN+ReLU, BN+add+ReLU) ------------------------------------------------------

/// Bitwise equality of two buffers (so `-0.0` vs `0.0` would fail too).
fn assert_bits<T: Element>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_f64().to_bits(), w.to_f64().to_bits(), "{what}[{i}]: fused {g:?} vs separate ops {w:?}");
    }
}

/// The fused epilogues are exactly the separate ops: train and eval forward against `batch_norm` -> (`add_fwd`) ->
/// `relu_fwd`, backward against `relu_bwd` -> `batch_norm_bwd` (and the residual's gradient against `relu_bwd`).
fn fused_batch_norm_equals_separate_ops<T: Precision>() {
    let b = CpuBackend::<T>::new();
    let mut rng = Rng::new(31);
    // Plus two ResNet-18 shapes at 64x64 (stem, layer4): several planes per rayon task, many channels.
    let resnet_shapes =
        [BatchNormGeom { n: 4, c: 64, hw: 1024, eps: 1e-5, momentum: 0.1 }, BatchNormGeom { n: 4, c: 512, hw: 4, eps: 1e-5, momentum: 0.1 }];
    for g in bn_geoms().into_iter().chain(resnet_shapes) {
        let n = g.numel();
        let x = cast::<T>(&uniform(&mut rng, n, -2.0, 2.0));
        let gamma = cast::<T>(&uniform(&mut rng, g.c, -1.5, 1.5));
        let beta = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
        let res = cast::<T>(&uniform(&mut rng, n, -1.0, 1.0));
        let dy = cast::<T>(&uniform(&mut rng, n, -1.0, 1.0));
        let rm0 = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
        let rv0 = cast::<T>(&uniform(&mut rng, g.c, 0.5, 2.0));
        let dg0 = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
        let db0 = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
        let what = format!("{g:?}");

        // Separate ops.
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let (mut bn, mut sm, mut si) = (nan(n), nan(g.c), nan(g.c));
        b.batch_norm_fwd_train(&g, &x, &gamma, &beta, &mut rm, &mut rv, &mut bn, &mut sm, &mut si, BnEpilogue::None);
        let (mut relu_out, mut sum, mut add_relu_out) = (nan(n), nan(n), nan(n));
        b.relu_fwd(n, &bn, &mut relu_out);
        b.add_fwd(n, &bn, &res, &mut sum);
        b.relu_fwd(n, &sum, &mut add_relu_out);
        assert!(relu_out.contains(&T::ZERO) && relu_out.iter().any(|&v| v > T::ZERO), "{what}: the ReLU mask is trivial");

        // Fused training forward: same output, statistics and running statistics.
        for (epilogue, want, name) in [(BnEpilogue::Relu, &relu_out, "relu"), (BnEpilogue::AddRelu(&res[..]), &add_relu_out, "add+relu")] {
            let (mut frm, mut frv) = (rm0.clone(), rv0.clone());
            let (mut y, mut fsm, mut fsi) = (nan(n), nan(g.c), nan(g.c));
            b.batch_norm_fwd_train(&g, &x, &gamma, &beta, &mut frm, &mut frv, &mut y, &mut fsm, &mut fsi, epilogue);
            assert_bits(&format!("{what} train {name}: y"), &y, want);
            assert_bits(&format!("{what} train {name}: saved_mean"), &fsm, &sm);
            assert_bits(&format!("{what} train {name}: saved_invstd"), &fsi, &si);
            assert_bits(&format!("{what} train {name}: running_mean"), &frm, &rm);
            assert_bits(&format!("{what} train {name}: running_var"), &frv, &rv);
        }

        // Fused evaluation forward.
        let mut bn_eval = nan(n);
        b.batch_norm_fwd_eval(&g, &x, &gamma, &beta, &rm0, &rv0, &mut bn_eval, BnEpilogue::None);
        let (mut want_relu, mut want_sum, mut want_add_relu) = (nan(n), nan(n), nan(n));
        b.relu_fwd(n, &bn_eval, &mut want_relu);
        b.add_fwd(n, &bn_eval, &res, &mut want_sum);
        b.relu_fwd(n, &want_sum, &mut want_add_relu);
        for (epilogue, want, name) in [(BnEpilogue::Relu, &want_relu, "relu"), (BnEpilogue::AddRelu(&res[..]), &want_add_relu, "add+relu")] {
            let mut y = nan(n);
            b.batch_norm_fwd_eval(&g, &x, &gamma, &beta, &rm0, &rv0, &mut y, epilogue);
            assert_bits(&format!("{what} eval {name}: y"), &y, want);
        }

        // Backward: relu_bwd then batch_norm_bwd, against the fused backward with the fused output as the mask.
        for (y, add) in [(&relu_out, false), (&add_relu_out, true)] {
            let name = if add { "add+relu" } else { "relu" };
            let mut d_pre = nan(n);
            b.relu_bwd(n, y, &dy, &mut d_pre);
            let (mut want_dx, mut want_dg, mut want_db) = (nan(n), dg0.clone(), db0.clone());
            b.batch_norm_bwd(&g, &x, &gamma, &sm, &si, &d_pre, &mut want_dx, &mut want_dg, &mut want_db, BnEpilogueGrad::None);
            let (mut dx, mut dg, mut db, mut dres) = (nan(n), dg0.clone(), db0.clone(), nan::<T>(n));
            let epilogue = if add { BnEpilogueGrad::AddRelu { y: &y[..], dresidual: &mut dres[..] } } else { BnEpilogueGrad::Relu { y: &y[..] } };
            b.batch_norm_bwd(&g, &x, &gamma, &sm, &si, &dy, &mut dx, &mut dg, &mut db, epilogue);
            assert_bits(&format!("{what} bwd {name}: dx"), &dx, &want_dx);
            assert_bits(&format!("{what} bwd {name}: dgamma"), &dg, &want_dg);
            assert_bits(&format!("{what} bwd {name}: dbeta"), &db, &want_db);
            if add {
                assert_bits(&format!("{what} bwd {name}: dresidual"), &dres, &d_pre);
            } else {
                assert!(dres.iter().all(|v| v.is_nan()), "{what} bwd relu: dresidual must not be touched");
            }
        }
    }
}

in_both_precisions!(fused_batch_norm_equals_separate_ops);

/// Central differences through the fused training forward `y = relu(bn(x) [+ residual])` against the fused
/// backward (dx, dgamma, dbeta and the residual's gradient). Inputs are moved so that every pre-activation is at
/// least `MARGIN` from the ReLU kink, far more than a finite-difference step moves it.
fn fused_batch_norm_gradients_match_finite_differences<T: Precision>() {
    const MARGIN: f64 = 0.1;
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(32);
    for g in bn_geoms() {
        for add in [false, true] {
            let n = g.numel();
            let mut x = cast::<T>(&uniform(&mut rng, n, -2.0, 2.0));
            let gamma = cast::<T>(&uniform(&mut rng, g.c, 0.5, 1.5));
            let beta = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
            let r = cast::<T>(&uniform(&mut rng, n, -1.0, 1.0));
            let mut res = if add { cast::<T>(&uniform(&mut rng, n, -1.0, 1.0)) } else { vec![T::ZERO; n] };
            let fwd = |x: &[T], gamma: &[T], beta: &[T], res: &[T], epilogue: bool| {
                let (mut rm, mut rv) = (vec![T::ZERO; g.c], vec![T::ONE; g.c]);
                let (mut y, mut sm, mut si) = (vec![T::ZERO; n], vec![T::ZERO; g.c], vec![T::ZERO; g.c]);
                let e = match (epilogue, add) {
                    (false, _) => BnEpilogue::None,
                    (true, false) => BnEpilogue::Relu,
                    (true, true) => BnEpilogue::AddRelu(res),
                };
                b.batch_norm_fwd_train(&g, x, gamma, beta, &mut rm, &mut rv, &mut y, &mut sm, &mut si, e);
                (y, sm, si)
            };
            // Away from the kink: shift the residual (it does not move the statistics), or without one nudge x
            // along the sign of its pre-activation until the statistics settle.
            for _ in 0..20 {
                let (bn, _, si) = fwd(&x, &gamma, &beta, &res, false);
                let near: Vec<usize> = (0..n).filter(|&i| (bn[i].to_f64() + res[i].to_f64()).abs() < MARGIN).collect();
                if near.is_empty() {
                    break;
                }
                for i in near {
                    let pre = bn[i].to_f64() + res[i].to_f64();
                    let sign = if pre < 0.0 { -1.0 } else { 1.0 };
                    if add {
                        res[i] = T::from_f64(res[i].to_f64() + sign * 2.0 * MARGIN);
                    } else {
                        let c = (i / g.hw) % g.c;
                        let k = gamma[c].to_f64() * si[c].to_f64();
                        x[i] = T::from_f64(x[i].to_f64() + sign * 3.0 * MARGIN / k);
                    }
                }
            }
            let (bn, _, _) = fwd(&x, &gamma, &beta, &res, false);
            let closest = (0..n).map(|i| (bn[i].to_f64() + res[i].to_f64()).abs()).fold(f64::INFINITY, f64::min);
            assert!(closest >= MARGIN, "{g:?}: a pre-activation stays {closest} from the kink");

            let (y, sm, si) = fwd(&x, &gamma, &beta, &res, true);
            assert!(y.contains(&T::ZERO) && y.iter().any(|&v| v > T::ZERO), "{g:?}: the ReLU mask is trivial");
            let loss = |x: &[T], gamma: &[T], beta: &[T], res: &[T]| dot(&fwd(x, gamma, beta, res, true).0, &r);
            let dg0 = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
            let db0 = cast::<T>(&uniform(&mut rng, g.c, -1.0, 1.0));
            let (mut dx, mut dg, mut db, mut dres) = (nan(n), dg0.clone(), db0.clone(), nan::<T>(n));
            let e = if add { BnEpilogueGrad::AddRelu { y: &y[..], dresidual: &mut dres[..] } } else { BnEpilogueGrad::Relu { y: &y[..] } };
            b.batch_norm_bwd(&g, &x, &gamma, &sm, &si, &r, &mut dx, &mut dg, &mut db, e);
            let dg: Vec<T> = dg.iter().zip(&dg0).map(|(&a, &b)| a - b).collect();
            let db: Vec<T> = db.iter().zip(&db0).map(|(&a, &b)| a - b).collect();
            let what = format!("{g:?} {}", if add { "add+relu" } else { "relu" });
            let (eps, rtol) = (tol.eps_smooth, tol.rtol_smooth);
            grad_check(&format!("{what}: dx"), &x, &dx, eps, rtol, |x| loss(x, &gamma, &beta, &res));
            grad_check(&format!("{what}: dgamma"), &gamma, &dg, eps, rtol, |gm| loss(&x, gm, &beta, &res));
            grad_check(&format!("{what}: dbeta"), &beta, &db, eps, rtol, |bt| loss(&x, &gamma, bt, &res));
            if add {
                // Linear in the residual away from the kink.
                grad_check(&format!("{what}: dresidual"), &res, &dres, tol.eps_kink, tol.rtol_linear, |rs| loss(&x, &gamma, &beta, rs));
            }
        }
    }
}

in_both_precisions!(fused_batch_norm_gradients_match_finite_differences);

// ---- activations ---------------------------------------------------------------------------------------------

fn relu_gradient_matches_finite_differences<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(8);
    let n = 200;
    // |x| >= 0.05 everywhere: the kink at 0 is at least 50 steps of ε away.
    let x: Vec<f32> = uniform(&mut rng, n, -1.0, 1.0).into_iter().map(|v| if v.abs() < 0.05 { v.signum() * 0.05 + v } else { v }).collect();
    let want: Vec<f64> = x.iter().map(|&v| v.max(0.0) as f64).collect();
    let (x, r) = (cast::<T>(&x), cast::<T>(&uniform(&mut rng, n, -1.0, 1.0)));
    let mut y = nan(n);
    b.relu_fwd(n, &x, &mut y);
    assert_close("relu y", &y, &want, 0.0);
    let mut dx = nan(n);
    b.relu_bwd(n, &y, &r, &mut dx);
    grad_check("relu dx", &x, &dx, tol.eps_kink, tol.rtol_linear, |x| {
        let mut y = vec![T::ZERO; n];
        b.relu_fwd(n, x, &mut y);
        dot(&y, &r)
    });
}

in_both_precisions!(relu_gradient_matches_finite_differences);

fn elu_gradient_matches_finite_differences<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(9);
    let n = 200;
    // alpha != 1 so that a dropped alpha fails; |x| >= 0.05 keeps ε away from the (C¹ but not C²) point at 0.
    let alpha = 0.7;
    let x: Vec<f32> = uniform(&mut rng, n, -3.0, 3.0).into_iter().map(|v| if v.abs() < 0.05 { v.signum() * 0.05 + v } else { v }).collect();
    let want: Vec<f64> = x.iter().map(|&v| if v > 0.0 { v as f64 } else { alpha as f64 * ((v as f64).exp() - 1.0) }).collect();
    let (x, r) = (cast::<T>(&x), cast::<T>(&uniform(&mut rng, n, -1.0, 1.0)));
    let mut y = nan(n);
    b.elu_fwd(n, alpha, &x, &mut y);
    assert_close("elu y", &y, &want, 1e-6);
    let mut dx = nan(n);
    b.elu_bwd(n, alpha, &x, &r, &mut dx);
    grad_check("elu dx", &x, &dx, tol.eps_smooth, tol.rtol_smooth, |x| {
        let mut y = vec![T::ZERO; n];
        b.elu_fwd(n, alpha, x, &mut y);
        dot(&y, &r)
    });
}

in_both_precisions!(elu_gradient_matches_finite_differences);

// ---- pooling -------------------------------------------------------------------------------------------------

/// Direct max pool with -inf padding, first maximum in row-major window order: (values, flat argmax per output).
fn naive_max_pool(g: &MaxPool2dGeom, x: &[f32]) -> (Vec<f64>, Vec<usize>) {
    let (mut y, mut arg) = (vec![], vec![]);
    for plane in 0..g.n * g.c {
        for oh in 0..g.ho {
            for ow in 0..g.wo {
                let (mut best, mut best_i) = (f32::NEG_INFINITY, usize::MAX);
                for i in 0..g.k {
                    for j in 0..g.k {
                        let ih = (oh * g.stride + i) as isize - g.pad as isize;
                        let iw = (ow * g.stride + j) as isize - g.pad as isize;
                        if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                            continue;
                        }
                        let idx = (plane * g.h + ih as usize) * g.w + iw as usize;
                        if best_i == usize::MAX || x[idx] > best {
                            (best, best_i) = (x[idx], idx);
                        }
                    }
                }
                y.push(best as f64);
                arg.push(best_i);
            }
        }
    }
    (y, arg)
}

/// 3x3/s2/p1 (ResNet's stem pool) on odd sizes, plus 2x2/s2 with a truncated edge and an overlapping 3x3/s1/p1.
fn pool_geoms() -> [MaxPool2dGeom; 3] {
    [MaxPool2dGeom::new(2, 3, 7, 9, 3, 2, 1), MaxPool2dGeom::new(2, 2, 5, 7, 2, 2, 0), MaxPool2dGeom::new(1, 2, 5, 4, 3, 1, 1)]
}

fn max_pool2d_forward_and_gradient<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(10);
    for g in pool_geoms() {
        let x_len = g.n * g.c * g.h * g.w;
        let y_len = g.n * g.c * g.ho * g.wo;
        // Distinct values 0.01 apart (ε <= 0.001 never reorders them), mixed signs.
        let x = distinct(&mut rng, x_len, -1.0, 0.01);
        let want = naive_max_pool(&g, &x).0;
        let (x, r) = (cast::<T>(&x), cast::<T>(&uniform(&mut rng, y_len, -1.0, 1.0)));
        let mut y = nan(y_len);
        b.max_pool2d_fwd(&g, &x, &mut y);
        assert_close(&format!("{g:?}: y"), &y, &want, 0.0);
        let mut dx = nan(x_len);
        b.max_pool2d_bwd(&g, &x, &r, &mut dx);
        grad_check(&format!("{g:?}: dx"), &x, &dx, tol.eps_kink, tol.rtol_linear, |x| {
            let mut y = vec![T::ZERO; y_len];
            b.max_pool2d_fwd(&g, x, &mut y);
            dot(&y, &r)
        });
    }
}

in_both_precisions!(max_pool2d_forward_and_gradient);

/// Padding is -inf, not 0: an all-negative input never yields 0 at the border.
#[test]
fn max_pool2d_pads_with_minus_infinity() {
    let b = Cpu::new();
    let mut rng = Rng::new(11);
    let g = MaxPool2dGeom::new(1, 2, 5, 5, 3, 2, 1);
    let x = uniform(&mut rng, 50, -3.0, -1.0);
    let mut y = nan(2 * g.ho * g.wo);
    b.max_pool2d_fwd(&g, &x, &mut y);
    assert!(y.iter().all(|&v| v < -0.5), "max pool border picked up padding: {y:?}");
    assert_close("all-negative max pool", &y, &naive_max_pool(&g, &x).0, 0.0);
}

/// Ties go to the first maximum in row-major window order (PyTorch), and overlapping windows add up.
#[test]
fn max_pool2d_ties_route_to_first_maximum() {
    let b = Cpu::new();
    let mut rng = Rng::new(12);
    for g in pool_geoms() {
        let x_len = g.n * g.c * g.h * g.w;
        let y_len = g.n * g.c * g.ho * g.wo;
        // Few distinct levels: many ties inside windows.
        let x: Vec<f32> = (0..x_len).map(|_| rng.below(3) as f32 - 1.0).collect();
        let dy = uniform(&mut rng, y_len, -1.0, 1.0);
        let mut want = vec![0.0f64; x_len];
        for (o, &i) in naive_max_pool(&g, &x).1.iter().enumerate() {
            want[i] += dy[o] as f64;
        }
        let mut dx = nan(x_len);
        b.max_pool2d_bwd(&g, &x, &dy, &mut dx);
        assert_close(&format!("{g:?}: tied dx"), &dx, &want, 1e-6);
    }
}

fn global_max_pool_forward_gradient_and_ties<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(13);
    let g = GlobalPoolGeom { n: 3, c: 4, hw: 10 };
    let x = distinct(&mut rng, 120, -0.6, 0.01);
    let want: Vec<f64> = x.chunks(10).map(|p| p.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64).collect();
    let (x, r) = (cast::<T>(&x), cast::<T>(&uniform(&mut rng, 12, -1.0, 1.0)));
    let mut y = nan(12);
    b.global_max_pool_fwd(&g, &x, &mut y);
    assert_close("global max y", &y, &want, 0.0);
    let mut dx = nan(120);
    b.global_max_pool_bwd(&g, &x, &r, &mut dx);
    grad_check("global max dx", &x, &dx, tol.eps_kink, tol.rtol_linear, |x| {
        let mut y = vec![T::ZERO; 12];
        b.global_max_pool_fwd(&g, x, &mut y);
        dot(&y, &r)
    });

    // A constant plane: the whole gradient goes to its first element.
    let g1 = GlobalPoolGeom { n: 1, c: 2, hw: 5 };
    let x = cast::<T>(&[2.0, 2.0, 2.0, 2.0, 2.0, -1.0, 3.0, 0.0, 3.0, 3.0]);
    let mut dx = nan(10);
    b.global_max_pool_bwd(&g1, &x, &cast(&[0.5, -2.0]), &mut dx);
    assert_eq!(dx, cast::<T>(&[0.5, 0.0, 0.0, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0]));
}

fn global_avg_pool_forward_and_gradient<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(14);
    let g = GlobalPoolGeom { n: 3, c: 4, hw: 10 };
    let x = uniform(&mut rng, 120, -1.0, 1.0);
    let want: Vec<f64> = x.chunks(10).map(|p| p.iter().map(|&v| v as f64).sum::<f64>() / 10.0).collect();
    let (x, r) = (cast::<T>(&x), cast::<T>(&uniform(&mut rng, 12, -1.0, 1.0)));
    let mut y = nan(12);
    b.global_avg_pool_fwd(&g, &x, &mut y);
    assert_close("global avg y", &y, &want, 1e-6);
    let mut dx = nan(120);
    b.global_avg_pool_bwd(&g, &r, &mut dx);
    grad_check("global avg dx", &x, &dx, tol.eps_linear, tol.rtol_linear, |x| {
        let mut y = vec![T::ZERO; 12];
        b.global_avg_pool_fwd(&g, x, &mut y);
        dot(&y, &r)
    });
}

in_both_precisions!(global_max_pool_forward_gradient_and_ties, global_avg_pool_forward_and_gradient);

// ---- linear --------------------------------------------------------------------------------------------------

fn linear_forward_and_gradients<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(15);
    let g = LinearGeom { n: 5, in_f: 7, out_f: 3 };
    let x = uniform(&mut rng, 35, -1.0, 1.0);
    let w = uniform(&mut rng, 21, -1.0, 1.0);
    let bias = uniform(&mut rng, 3, -1.0, 1.0);
    let r = cast::<T>(&uniform(&mut rng, 15, -1.0, 1.0));
    let want: Vec<f64> = (0..15)
        .map(|i| {
            let (n, o) = (i / 3, i % 3);
            bias[o] as f64 + (0..7).map(|k| x[n * 7 + k] as f64 * w[o * 7 + k] as f64).sum::<f64>()
        })
        .collect();
    let want_nobias: Vec<f64> = want.iter().enumerate().map(|(i, v)| v - bias[i % 3] as f64).collect();
    let (x, w, bias) = (cast::<T>(&x), cast::<T>(&w), cast::<T>(&bias));

    let mut y = nan(15);
    b.linear_fwd(&g, &x, &w, Some(&bias), &mut y);
    assert_close("linear y", &y, &want, 1e-6);
    let mut y_nobias = nan(15);
    b.linear_fwd(&g, &x, &w, None, &mut y_nobias);
    assert_close("linear y without bias", &y_nobias, &want_nobias, 1e-6);

    let loss = |x: &[T], w: &[T], bias: &[T]| {
        let mut y = vec![T::ZERO; 15];
        b.linear_fwd(&g, x, w, Some(bias), &mut y);
        dot(&y, &r)
    };
    let dw0 = cast::<T>(&uniform(&mut rng, 21, -1.0, 1.0));
    let db0 = cast::<T>(&uniform(&mut rng, 3, -1.0, 1.0));
    let (mut dx, mut dw, mut db) = (nan(35), dw0.clone(), db0.clone());
    b.linear_bwd(&g, &x, &w, &r, Some(&mut dx), &mut dw, Some(&mut db));
    let dw_delta: Vec<T> = dw.iter().zip(&dw0).map(|(&a, &b)| a - b).collect();
    let db_delta: Vec<T> = db.iter().zip(&db0).map(|(&a, &b)| a - b).collect();
    let (eps, rtol) = (tol.eps_linear, tol.rtol_linear);
    grad_check("linear dx", &x, &dx, eps, rtol, |x| loss(x, &w, &bias));
    grad_check("linear dw", &w, &dw_delta, eps, rtol, |w| loss(&x, w, &bias));
    grad_check("linear dbias", &bias, &db_delta, eps, rtol, |bias| loss(&x, &w, bias));

    let mut dw_only = dw0.clone();
    b.linear_bwd(&g, &x, &w, &r, None, &mut dw_only, None);
    assert_eq!(dw_only, dw, "linear dw differs when dx is not requested");
}

in_both_precisions!(linear_forward_and_gradients);

// ---- plumbing ------------------------------------------------------------------------------------------------

#[test]
fn add_and_fill() {
    let b = Cpu::new();
    let mut rng = Rng::new(16);
    let n = 100_003; // more than one parallel chunk
    let (x, z) = (uniform(&mut rng, n, -1.0, 1.0), uniform(&mut rng, n, -1.0, 1.0));
    let mut y = nan(n);
    b.add_fwd(n, &x, &z, &mut y);
    assert!(y.iter().zip(x.iter().zip(&z)).all(|(&y, (&a, &c))| y == a + c));
    let mut buf = vec![1.0f32; n + 5];
    b.fill(n, -3.5, &mut buf);
    assert!(buf[..n].iter().all(|&v| v == -3.5) && buf[n..].iter().all(|&v| v == 1.0));
}

fn concat_layout_and_gradient<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(17);
    let g = ConcatGeom { n: 2, hw: 5, channels: vec![2, 3, 1] };
    let xs: Vec<Vec<T>> = g.channels.iter().map(|&c| cast(&uniform(&mut rng, 2 * c * 5, -1.0, 1.0))).collect();
    let mut y = nan(2 * 6 * 5);
    b.concat_fwd(&g, &xs.iter().map(|x| x.as_slice()).collect::<Vec<_>>(), &mut y);
    // y[n, c, j] comes from input i at channel c - offset_i.
    let (offsets, ctot) = ([0, 2, 5], 6);
    for (i, x) in xs.iter().enumerate() {
        let ci = g.channels[i];
        for n in 0..2 {
            for c in 0..ci {
                for j in 0..5 {
                    assert_eq!(y[(n * ctot + offsets[i] + c) * 5 + j], x[(n * ci + c) * 5 + j], "concat y: input {i}, n {n}, c {c}, j {j}");
                }
            }
        }
    }
    let r = cast::<T>(&uniform(&mut rng, 60, -1.0, 1.0));
    let mut dxs: Vec<Vec<T>> = xs.iter().map(|x| nan(x.len())).collect();
    b.concat_bwd(&g, &r, dxs.iter_mut().map(|d| d.as_mut_slice()).collect());
    for i in 0..3 {
        let loss = |xi: &[T]| {
            let parts: Vec<&[T]> = (0..3).map(|k| if k == i { xi } else { xs[k].as_slice() }).collect();
            let mut y = vec![T::ZERO; 60];
            b.concat_fwd(&g, &parts, &mut y);
            dot(&y, &r)
        };
        grad_check(&format!("concat dx{i}"), &xs[i], &dxs[i], tol.eps_linear, tol.rtol_linear, loss);
    }
}

in_both_precisions!(concat_layout_and_gradient);

// ---- loss ----------------------------------------------------------------------------------------------------

#[test]
fn cross_entropy_value_matches_log_sum_exp() {
    let b = Cpu::new();
    let mut rng = Rng::new(18);
    let g = CrossEntropyGeom { n: 4, k: 6 };
    // Large logits: exp would overflow f32 without the max shift.
    for shift in [0.0f32, 1000.0] {
        let logits: Vec<f32> = uniform(&mut rng, 24, -4.0, 4.0).into_iter().map(|v| v + shift).collect();
        let labels = [3u32, 0, 5, 3];
        let (mut probs, mut loss) = (nan(24), nan(1));
        b.cross_entropy_fwd(&g, &logits, &labels, &mut probs, &mut loss);
        let mut want_loss = 0.0f64;
        let mut want_probs = vec![];
        for (n, row) in logits.chunks(6).enumerate() {
            let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            want_loss += (lse - row[labels[n] as usize] as f64) / 4.0;
            want_probs.extend(row.iter().map(|&v| (v as f64 - lse).exp()));
        }
        assert_close(&format!("cross-entropy loss (shift {shift})"), &loss, &[want_loss], 1e-6);
        assert_close(&format!("cross-entropy probs (shift {shift})"), &probs, &want_probs, 1e-5);
    }
}

fn cross_entropy_gradient_matches_finite_differences<T: Precision>() {
    let (b, tol) = (CpuBackend::<T>::new(), T::TOL);
    let mut rng = Rng::new(19);
    let g = CrossEntropyGeom { n: 3, k: 5 };
    let logits = cast::<T>(&uniform(&mut rng, 15, -2.0, 2.0));
    let labels = [4u32, 1, 1];
    // dloss != 1 (as when the loss is scaled): the gradient scales with it.
    let dloss = 2.5f32;
    let fwd = |z: &[T]| {
        let (mut probs, mut loss) = (vec![T::ZERO; 15], vec![T::ZERO; 1]);
        b.cross_entropy_fwd(&g, z, &labels, &mut probs, &mut loss);
        (probs, loss[0])
    };
    let (probs, _) = fwd(&logits);
    let mut dz = nan(15);
    b.cross_entropy_bwd(&g, &probs, &labels, dloss, &mut dz);
    // Half the step of the other smooth ops, as this check has always used in f32.
    grad_check("cross-entropy dlogits", &logits, &dz, tol.eps_smooth / 2.0, tol.rtol_smooth, |z| dloss as f64 * fwd(z).1.to_f64());
}

in_both_precisions!(cross_entropy_gradient_matches_finite_differences);

#[test]
#[should_panic(expected = "out of range")]
fn cross_entropy_rejects_out_of_range_labels() {
    let b = Cpu::new();
    let g = CrossEntropyGeom { n: 2, k: 3 };
    let (mut probs, mut loss) = (vec![0.0; 6], vec![0.0; 1]);
    b.cross_entropy_fwd(&g, &[0.0; 6], &[0, 3], &mut probs, &mut loss);
}

// ---- optimizer -----------------------------------------------------------------------------------------------

/// PyTorch's `torch.optim.SGD` step (dampening 0, no Nesterov) for one parameter tensor, written out by hand:
/// `d_p = grad + wd * p; buf = first ? d_p : momentum * buf + d_p; p = p - lr * buf`.
fn torch_sgd(p: &mut [f32], grad: &[f32], buf: &mut [f32], first: bool, lr: f32, wd: f32, momentum: f32) {
    for i in 0..p.len() {
        let d_p = grad[i] + wd * p[i];
        buf[i] = if first { d_p } else { momentum * buf[i] + d_p };
        p[i] -= lr * buf[i];
    }
}

#[test]
fn sgd_step_matches_torch_semantics() {
    let b = Cpu::new();
    let mut rng = Rng::new(20);
    let len = 100_000;
    // Out of offset order, with gaps (never updated), one segment spanning several parallel chunks, and one whose
    // momentum buffer already exists at the first step.
    let mut segs = vec![
        SgdSegment { offset: 50, len: 70_000, lr: 0.1, weight_decay: 5e-4, has_momentum: 0 },
        SgdSegment { offset: 0, len: 40, lr: 0.01, weight_decay: 0.0, has_momentum: 0 },
        SgdSegment { offset: 80_000, len: 999, lr: 0.5, weight_decay: 1e-2, has_momentum: 1 },
    ];
    let momentum = 0.9;
    let mut p = uniform(&mut rng, len, -1.0, 1.0);
    // Buffers of first-step segments hold NaN: the first step must not read them.
    let mut bufs = uniform(&mut rng, len, -1.0, 1.0);
    for s in &segs[..2] {
        bufs[s.offset..s.offset + s.len].fill(f32::NAN);
    }
    let (mut want_p, mut want_buf) = (p.clone(), bufs.clone());
    for step in 0..3 {
        let grads = uniform(&mut rng, len, -1.0, 1.0);
        b.sgd_step(&segs, momentum, &mut p, &grads, &mut bufs);
        for s in &segs {
            let r = s.offset..s.offset + s.len;
            torch_sgd(&mut want_p[r.clone()], &grads[r.clone()], &mut want_buf[r], s.has_momentum == 0, s.lr, s.weight_decay, momentum);
        }
        // Same f32 operations in the same order: bit-identical, including the untouched gaps.
        assert!(p == want_p, "sgd params differ from the PyTorch loop at step {step}");
        assert!(bufs.iter().zip(&want_buf).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())), "sgd buffers differ at step {step}");
        segs.iter_mut().for_each(|s| s.has_momentum = 1);
    }
    // The gaps really are untouched (and the loop above really moved the parameters).
    let p0 = Rng::new(20).vec_uniform(len, -1.0, 1.0);
    assert!(p[40..50] == p0[40..50] && p[70_050..80_000] == p0[70_050..80_000] && p[80_999..] == p0[80_999..]);
    assert!(p[50..70_050].iter().zip(&p0[50..70_050]).all(|(a, b)| a != b));
}

/// Momentum 0 is plain SGD with weight decay: `p -= lr * (grad + wd * p)`, checked with concrete numbers.
#[test]
fn sgd_without_momentum_is_plain_gradient_descent() {
    let b = Cpu::new();
    let seg = [SgdSegment { offset: 1, len: 2, lr: 0.5, weight_decay: 0.25, has_momentum: 1 }];
    let mut p = vec![7.0, 2.0, -4.0, 9.0];
    let mut bufs = vec![0.0, 100.0, 100.0, 0.0];
    b.sgd_step(&seg, 0.0, &mut p, &[1.0, 1.0, -2.0, 1.0], &mut bufs);
    // p1 = 2 - 0.5 * (1 + 0.5) = 1.25; p2 = -4 - 0.5 * (-2 - 1) = -2.5.
    assert_eq!(p, [7.0, 1.25, -2.5, 9.0]);
}

// ---- backend plumbing ----------------------------------------------------------------------------------------

#[test]
fn cpu_memory_plumbing() {
    let b = Cpu::new();
    assert_eq!(b.activation_format(), Format::NCHW_F32);
    assert_eq!(b.param_format(), Format::NCHW_F32);
    assert!(b.alloc(4, DType::F64).is_err());
    assert!(b.alloc(4, DType::Bf16).is_err());
    assert_eq!(b.alloc(4, DType::F32).unwrap().len(), 4);
    let shape = Shape(vec![1, 2, 1, 2]);
    let nhwc = Format { layout: Layout::Nhwc, dtype: DType::F32 };
    assert!(b.upload(&shape, nhwc, &[1.0; 4]).is_err());
    assert!(b.upload(&shape, Format::NCHW_F32, &[1.0; 3]).is_err());
    let buf = b.upload(&shape, Format::NCHW_F32, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!(b.download(&shape, nhwc, &buf).is_err());
    assert_eq!(b.download(&shape, Format::NCHW_F32, &buf).unwrap(), [1.0, 2.0, 3.0, 4.0]);

    let mut buf = vec![0.0f32; 10];
    for (first, second) in [(0..3, 5..10), (6..8, 1..4)] {
        let (a, c) = b.view_mut_pair(&mut buf, first.clone(), second.clone());
        assert_eq!((a.len(), c.len()), (first.len(), second.len()));
        a.fill(1.0);
        c.fill(2.0);
        assert!(buf[first].iter().all(|&v| v == 1.0) && buf[second].iter().all(|&v| v == 2.0));
    }
}

/// The f64 backend stores f64 and says so: its own format only, f32 host data in and out.
#[test]
fn cpu64_memory_plumbing() {
    let b = Cpu64::new();
    assert_eq!(b.activation_format(), Format::NCHW_F64);
    assert_eq!(b.param_format(), Format::NCHW_F64);
    assert!(b.name().starts_with("cpu (f64"), "{}", b.name());
    assert!(b.alloc(4, DType::F32).is_err() && b.alloc(4, DType::Bf16).is_err());
    assert_eq!(b.alloc(4, DType::F64).unwrap(), [0.0f64; 4]);
    let shape = Shape(vec![1, 2, 1, 2]);
    assert!(b.upload(&shape, Format::NCHW_F32, &[1.0; 4]).is_err());
    let host = [1.0f32, -2.5, 3.0e-8, f32::MAX];
    let buf = b.upload(&shape, Format::NCHW_F64, &host).unwrap();
    assert_eq!(buf, host.map(f64::from));
    assert!(b.download(&shape, Format::NCHW_F32, &buf).is_err());
    assert_eq!(b.download(&shape, Format::NCHW_F64, &buf).unwrap(), host);
}

#[test]
#[should_panic(expected = "overlap")]
fn view_mut_pair_rejects_overlap() {
    let mut buf = vec![0.0f32; 10];
    let _ = Cpu::new().view_mut_pair(&mut buf, 2..6, 5..8);
}
