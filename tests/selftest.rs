//! The self-test harness itself: it passes the f64 CPU backend against the f32 reference, it fails a backend with
//! one wrong op (for exactly that op), NaN poisoning catches an output that is not written, and
//! `fgssl selftest --device cuda` on a machine without a GPU exits with its own code, without panicking.

use std::ops::Range;

use fgssl::backend::cpu::{Cpu, Cpu64};
use fgssl::backend::geom::*;
use fgssl::backend::{Backend, BnEpilogue, BnEpilogueGrad, Precision};
use fgssl::error::Result;
use fgssl::selftest::{self, Options};
use fgssl::tensor::{DType, Format, Shape};

mod support;
use support::{assert_clean_failure, fgssl, stderr};

/// What the faulty backend gets wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// `relu_bwd` returns twice the gradient.
    ReluBwdTimesTwo,
    /// `global_avg_pool_bwd` leaves the last element of `dx` unwritten.
    GapBwdSkipsLast,
    /// `linear_bwd` overwrites `dw` instead of accumulating into it.
    LinearBwdOverwritesDw,
    /// Claims bf16 convolutions but multiplies unrounded fp32 operands.
    Bf16WithoutRounding,
}

/// The f32 CPU backend with one deliberate bug.
struct Faulty(Cpu, Fault);

impl Backend for Faulty {
    type Buf = Vec<f32>;
    type View<'a> = &'a [f32];
    type ViewMut<'a> = &'a mut [f32];
    type Bytes = Vec<u8>;
    type Mark = std::time::Instant;

    fn name(&self) -> String {
        format!("faulty cpu ({:?})", self.1)
    }
    fn activation_format(&self) -> Format {
        self.0.activation_format()
    }
    fn param_format(&self) -> Format {
        self.0.param_format()
    }
    fn precision(&self) -> Precision {
        if self.1 == Fault::Bf16WithoutRounding {
            Precision::Bf16
        } else {
            self.0.precision()
        }
    }
    fn alloc(&self, numel: usize, dtype: DType) -> Result<Vec<f32>> {
        self.0.alloc(numel, dtype)
    }
    fn upload(&self, shape: &Shape, format: Format, host: &[f32]) -> Result<Vec<f32>> {
        self.0.upload(shape, format, host)
    }
    fn download(&self, shape: &Shape, format: Format, buf: &Vec<f32>) -> Result<Vec<f32>> {
        self.0.download(shape, format, buf)
    }
    fn upload_bytes(&self, host: &[u8]) -> Result<Vec<u8>> {
        self.0.upload_bytes(host)
    }
    fn view<'a>(&self, buf: &'a Vec<f32>, range: Range<usize>) -> &'a [f32] {
        self.0.view(buf, range)
    }
    fn view_mut<'a>(&self, buf: &'a mut Vec<f32>, range: Range<usize>) -> &'a mut [f32] {
        self.0.view_mut(buf, range)
    }
    fn view_mut_pair<'a>(&self, buf: &'a mut Vec<f32>, first: Range<usize>, second: Range<usize>) -> (&'a mut [f32], &'a mut [f32]) {
        self.0.view_mut_pair(buf, first, second)
    }
    fn fill(&self, n: usize, value: f32, y: &mut [f32]) {
        self.0.fill(n, value, y)
    }
    fn conv2d_fwd(&self, g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        self.0.conv2d_fwd(g, x, w, bias, y)
    }
    fn conv2d_bwd(&self, g: &Conv2dGeom, x: &[f32], w: &[f32], dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32], dbias: Option<&mut [f32]>) {
        self.0.conv2d_bwd(g, x, w, dy, dx, dw, dbias)
    }
    fn batch_norm_fwd_train(
        &self,
        g: &BatchNormGeom,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        rm: &mut [f32],
        rv: &mut [f32],
        y: &mut [f32],
        sm: &mut [f32],
        si: &mut [f32],
        epilogue: BnEpilogue<&[f32]>,
    ) {
        self.0.batch_norm_fwd_train(g, x, gamma, beta, rm, rv, y, sm, si, epilogue)
    }
    fn batch_norm_fwd_eval(
        &self,
        g: &BatchNormGeom,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        rm: &[f32],
        rv: &[f32],
        y: &mut [f32],
        epilogue: BnEpilogue<&[f32]>,
    ) {
        self.0.batch_norm_fwd_eval(g, x, gamma, beta, rm, rv, y, epilogue)
    }
    fn batch_norm_bwd(
        &self,
        g: &BatchNormGeom,
        x: &[f32],
        gamma: &[f32],
        sm: &[f32],
        si: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
        epilogue: BnEpilogueGrad<&[f32], &mut [f32]>,
    ) {
        self.0.batch_norm_bwd(g, x, gamma, sm, si, dy, dx, dgamma, dbeta, epilogue)
    }
    fn relu_fwd(&self, n: usize, x: &[f32], y: &mut [f32]) {
        self.0.relu_fwd(n, x, y)
    }
    fn relu_bwd(&self, n: usize, y: &[f32], dy: &[f32], dx: &mut [f32]) {
        self.0.relu_bwd(n, y, dy, dx);
        if self.1 == Fault::ReluBwdTimesTwo {
            dx[..n].iter_mut().for_each(|v| *v *= 2.0);
        }
    }
    fn elu_fwd(&self, n: usize, alpha: f32, x: &[f32], y: &mut [f32]) {
        self.0.elu_fwd(n, alpha, x, y)
    }
    fn elu_bwd(&self, n: usize, alpha: f32, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        self.0.elu_bwd(n, alpha, x, dy, dx)
    }
    fn max_pool2d_fwd(&self, g: &MaxPool2dGeom, x: &[f32], y: &mut [f32]) {
        self.0.max_pool2d_fwd(g, x, y)
    }
    fn max_pool2d_bwd(&self, g: &MaxPool2dGeom, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        self.0.max_pool2d_bwd(g, x, dy, dx)
    }
    fn global_max_pool_fwd(&self, g: &GlobalPoolGeom, x: &[f32], y: &mut [f32]) {
        self.0.global_max_pool_fwd(g, x, y)
    }
    fn global_max_pool_bwd(&self, g: &GlobalPoolGeom, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        self.0.global_max_pool_bwd(g, x, dy, dx)
    }
    fn global_avg_pool_fwd(&self, g: &GlobalPoolGeom, x: &[f32], y: &mut [f32]) {
        self.0.global_avg_pool_fwd(g, x, y)
    }
    fn global_avg_pool_bwd(&self, g: &GlobalPoolGeom, dy: &[f32], dx: &mut [f32]) {
        if self.1 == Fault::GapBwdSkipsLast {
            // Compute into a scratch buffer and copy all but the last element: that one keeps whatever was there.
            let mut scratch = dx.to_vec();
            self.0.global_avg_pool_bwd(g, dy, &mut scratch);
            let n = dx.len() - 1;
            dx[..n].copy_from_slice(&scratch[..n]);
        } else {
            self.0.global_avg_pool_bwd(g, dy, dx)
        }
    }
    fn linear_fwd(&self, g: &LinearGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        self.0.linear_fwd(g, x, w, bias, y)
    }
    fn linear_bwd(&self, g: &LinearGeom, x: &[f32], w: &[f32], dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32], dbias: Option<&mut [f32]>) {
        if self.1 == Fault::LinearBwdOverwritesDw {
            dw.fill(0.0);
        }
        self.0.linear_bwd(g, x, w, dy, dx, dw, dbias)
    }
    fn add_fwd(&self, n: usize, a: &[f32], b: &[f32], y: &mut [f32]) {
        self.0.add_fwd(n, a, b, y)
    }
    fn concat_fwd(&self, g: &ConcatGeom, xs: &[&[f32]], y: &mut [f32]) {
        self.0.concat_fwd(g, xs, y)
    }
    fn concat_bwd(&self, g: &ConcatGeom, dy: &[f32], dxs: Vec<&mut [f32]>) {
        self.0.concat_bwd(g, dy, dxs)
    }
    fn cross_entropy_fwd(&self, g: &CrossEntropyGeom, logits: &[f32], labels: &[u32], probs: &mut [f32], loss: &mut [f32]) {
        self.0.cross_entropy_fwd(g, logits, labels, probs, loss)
    }
    fn cross_entropy_bwd(&self, g: &CrossEntropyGeom, probs: &[f32], labels: &[u32], dloss: f32, dlogits: &mut [f32]) {
        self.0.cross_entropy_bwd(g, probs, labels, dloss, dlogits)
    }
    fn sgd_step(&self, segments: &[SgdSegment], momentum: f32, params: &mut [f32], grads: &[f32], bufs: &mut [f32]) {
        self.0.sgd_step(segments, momentum, params, grads, bufs)
    }
    fn lars_step(&self, segments: &[LarsSegment], momentum: f32, eta: f32, params: &mut [f32], grads: &[f32], bufs: &mut [f32]) {
        self.0.lars_step(segments, momentum, eta, params, grads, bufs)
    }
    #[allow(clippy::too_many_arguments)]
    fn adamw_step(&self, segments: &[AdamwSegment], b1: f32, b2: f32, eps: f32, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        self.0.adamw_step(segments, b1, b2, eps, params, grads, m, v)
    }
    fn grad_norm(&self, segments: &[ArenaSegment], grads: &[f32], norm: &mut [f32]) {
        self.0.grad_norm(segments, grads, norm)
    }
    fn scale(&self, n: usize, alpha: f32, y: &mut [f32]) {
        self.0.scale(n, alpha, y)
    }
    #[allow(clippy::too_many_arguments)]
    fn barlow_twins_fwd(
        &self,
        g: &BarlowTwinsGeom,
        za: &[f32],
        zb: &[f32],
        za_hat: &mut [f32],
        zb_hat: &mut [f32],
        inv_std_a: &mut [f32],
        inv_std_b: &mut [f32],
        c: &mut [f32],
        terms: &mut [f32],
    ) {
        self.0.barlow_twins_fwd(g, za, zb, za_hat, zb_hat, inv_std_a, inv_std_b, c, terms)
    }
    #[allow(clippy::too_many_arguments)]
    fn barlow_twins_bwd(
        &self,
        g: &BarlowTwinsGeom,
        za_hat: &[f32],
        zb_hat: &[f32],
        inv_std_a: &[f32],
        inv_std_b: &[f32],
        c: &[f32],
        dloss: f32,
        dza: &mut [f32],
        dzb: &mut [f32],
    ) {
        self.0.barlow_twins_bwd(g, za_hat, zb_hat, inv_std_a, inv_std_b, c, dloss, dza, dzb)
    }
    fn l2_normalized_std_fwd(&self, g: &L2NormalizedStdGeom, z: &[f32], out: &mut [f32]) {
        self.0.l2_normalized_std_fwd(g, z, out)
    }
    fn augment_fwd(&self, g: &AugmentGeom, images: &Vec<u8>, params: &[SampleAug], perms: &[u32], ys: Vec<&mut [f32]>) {
        self.0.augment_fwd(g, images, params, perms, ys)
    }
    fn jigsaw_fwd(&self, g: &JigsawGeom, perms: &[u32], x: &[f32], y: &mut [f32]) {
        self.0.jigsaw_fwd(g, perms, x, y)
    }
    fn mark(&self) -> Result<std::time::Instant> {
        self.0.mark()
    }
    fn elapsed_ms(&self, from: &std::time::Instant, to: &std::time::Instant) -> Result<f64> {
        self.0.elapsed_ms(from, to)
    }
}

fn opts(seed: u64, quick: bool) -> Options {
    Options { seed, quick, live: false }
}

/// Every trait op appears in the table.
const OPS: &[&str] = &[
    "fill",
    "conv2d_fwd",
    "conv2d_bwd",
    "batch_norm_fwd_train",
    "batch_norm_fwd_eval",
    "batch_norm_bwd",
    "relu_fwd",
    "relu_bwd",
    "elu_fwd",
    "elu_bwd",
    "max_pool2d_fwd",
    "max_pool2d_bwd",
    "global_max_pool_fwd",
    "global_max_pool_bwd",
    "global_avg_pool_fwd",
    "global_avg_pool_bwd",
    "linear_fwd",
    "linear_bwd",
    "add_fwd",
    "concat_fwd",
    "concat_bwd",
    "cross_entropy_fwd",
    "cross_entropy_bwd",
    "sgd_step",
];

#[test]
fn cpu64_passes_against_the_f32_reference() {
    let report = selftest::run(&Cpu64::new(), &opts(7, false));
    println!("{report}");
    assert!(report.passed(), "{}", report.summary());
    for op in OPS {
        assert!(report.ops.iter().any(|r| r.op == *op), "op {op} is not tested");
    }
    assert_eq!(report.resnet.steps.len(), 4);
    assert_eq!(report.fgssl.steps.len(), 12);
    // f64 vs f32 differs somewhere, so the comparison is not vacuous.
    assert!(report.ops.iter().any(|r| r.max_abs > 0.0));
}

/// Runs the quick harness on `fault` and returns the ops that failed.
fn failed_ops(fault: Fault) -> Vec<String> {
    let report = selftest::run(&Faulty(Cpu::new(), fault), &opts(3, true));
    println!("{report}");
    let mut ops: Vec<String> = report.ops_failed().iter().map(|r| r.op.clone()).collect();
    ops.dedup();
    ops
}

#[test]
fn a_wrong_op_fails_exactly_that_op() {
    assert_eq!(failed_ops(Fault::ReluBwdTimesTwo), ["relu_bwd"]);
    assert_eq!(failed_ops(Fault::LinearBwdOverwritesDw), ["linear_bwd"]);
}

#[test]
fn cpu64_with_bf16_convolutions_passes_against_the_bf16_emulating_reference() {
    let report = selftest::run(&Cpu64::with_precision(Precision::Bf16), &opts(21, true));
    println!("{report}");
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.precision, Precision::Bf16);
    assert!(report.reference.contains("bf16") && report.header().contains("bf16 convolutions"), "{}", report.header());
    // The conv cases compare something (f64 vs f32 sums of the same rounded operands).
    assert!(report.ops.iter().any(|r| r.op == "conv2d_bwd" && r.max_abs > 0.0));
    assert_eq!(report.resnet.steps.len(), 2);
    assert!(report.resnet.what.contains("5e-2 * max(1, |loss|)"), "{}", report.resnet.what);
    assert!(report.fgssl.what.contains("6e-2 * max(1, |loss|)"), "{}", report.fgssl.what);
}

#[test]
fn a_device_that_claims_bf16_but_does_not_round_fails_the_convolutions_only() {
    let report = selftest::run(&Faulty(Cpu::new(), Fault::Bf16WithoutRounding), &opts(4, true));
    let mut failed: Vec<String> = report.ops_failed().iter().map(|r| r.op.clone()).collect();
    failed.sort();
    failed.dedup();
    assert!(failed.iter().any(|op| op == "conv2d_fwd") && failed.iter().any(|op| op == "conv2d_bwd"), "{failed:?}");
    assert!(failed.iter().all(|op| op.starts_with("conv2d")), "{failed:?}");
}

#[test]
fn nan_poisoning_catches_an_unwritten_output() {
    let report = selftest::run(&Faulty(Cpu::new(), Fault::GapBwdSkipsLast), &opts(5, true));
    let failed = report.ops_failed();
    assert_eq!(failed.len(), 1, "{}", report.summary());
    assert_eq!(failed[0].op, "global_avg_pool_bwd");
    assert!(failed[0].note.contains("unwritten"), "{}", failed[0].note);
    assert!(!report.passed());
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let a = selftest::run(&Cpu64::new(), &opts(11, true));
    let b = selftest::run(&Cpu64::new(), &opts(11, true));
    assert_eq!(a.ops.iter().map(|r| r.max_abs).collect::<Vec<_>>(), b.ops.iter().map(|r| r.max_abs).collect::<Vec<_>>());
    assert_eq!(a.resnet.steps.iter().map(|s| s.device).collect::<Vec<_>>(), b.resnet.steps.iter().map(|s| s.device).collect::<Vec<_>>());
    assert_eq!(a.fgssl.steps.iter().map(|s| s.device).collect::<Vec<_>>(), b.fgssl.steps.iter().map(|s| s.device).collect::<Vec<_>>());
}

#[test]
fn cli_cuda_without_a_gpu_exits_with_its_own_code() {
    let o = fgssl(&["selftest", "--device", "cuda", "--quick", "--seed", "1"]);
    if !fgssl::backend::cuda::probe::driver_present() {
        assert_clean_failure(&o, Some(3), "no CUDA driver on this machine");
    } else {
        // A GPU machine: either the backend is missing (4) or the run finished (0 or 1); never a panic or usage error.
        let code = o.status.code();
        assert!(matches!(code, Some(0 | 1 | 3 | 4)), "exit {code:?}:\n{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked at src/cli"), "{}", stderr(&o));
    }
}

#[test]
fn cli_cpu64_runs_the_harness_and_cpu_is_a_usage_error() {
    let o = fgssl(&["selftest", "--device", "cpu64", "--quick", "--seed", "2"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", stderr(&o));
    assert!(out.contains("seed 2") && out.contains("relu_bwd") && out.contains("selftest PASSED"), "{out}");
    let o = fgssl(&["selftest", "--device", "cpu"]);
    assert_clean_failure(&o, Some(2), "cpu64");
    let o = fgssl(&["selftest", "--device", "tpu"]);
    assert_clean_failure(&o, Some(2), "tpu");
    let o = fgssl(&["selftest", "--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("3  no CUDA driver"));
}

#[test]
fn cli_selftest_takes_a_precision() {
    let o = fgssl(&["selftest", "--device", "cpu64", "--precision", "bf16", "--quick", "--seed", "3"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", stderr(&o));
    assert!(out.contains("bf16 convolutions, seed 3") && out.contains("selftest PASSED"), "{out}");
    assert_clean_failure(&fgssl(&["selftest", "--device", "cpu64", "--precision", "fp16"]), Some(2), "fp16");
}

#[test]
fn cli_lab_conv_without_a_gpu_exits_with_the_selftest_code() {
    let o = fgssl(&["lab", "conv", "--batch", "2", "--shapes", "conv1"]);
    if !fgssl::backend::cuda::probe::driver_present() {
        assert_clean_failure(&o, Some(3), "no CUDA driver on this machine");
    } else {
        let code = o.status.code();
        assert!(matches!(code, Some(0 | 1 | 3)), "exit {code:?}:\n{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    assert_clean_failure(&fgssl(&["lab", "conv", "--arch", "vgg"]), Some(2), "--arch vgg");
    let o = fgssl(&["lab", "conv", "--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("3  no CUDA driver"));
}
