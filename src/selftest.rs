//! Self-test of a backend against the CPU reference: every op of [`Backend`], forward and backward, on fresh
//! seeded random inputs at several shapes (odd sizes, not multiples of any tile), then two short trainings on both
//! devices from the same weights (../shared/docs/CUDA.md §11): a few SGD steps of a small ResNet-18 classifier, and
//! FG-SSL iterations of a ResNet-18 FG-SSL model fed from u8 images the way `fgssl pretrain` feeds it (upload,
//! augmentation and jigsaw on the device, the four progressive steps, SGD).
//!
//! The harness is generic over the device under test `D: Backend`; the reference is always [`Cpu`] (f32), with the
//! device's [`Precision`] (bf16 convolutions are emulated, operands rounded exactly as the device rounds them). Every
//! output buffer starts as NaN (uploaded as a NaN-filled buffer), so an element the device never writes fails.
//! Accumulated outputs (parameter gradients, running statistics, momentum buffers, parameters in an SGD step) start
//! from random non-zero values, so `+=` is checked against `=`. A panic inside one op is caught and reported as a
//! FAIL of that op; the run goes on.
//!
//! Error measure, per output and then the worst over a case's outputs: `max abs = max|got - ref|` and the
//! scale-relative `max rel = max|got - ref| / max|ref|` (as in tests/common). A case passes when every element is
//! finite where the reference is, and `max rel <= tol`. Tolerances (fp32): [`TOL_ELEMENTWISE`] for elementwise ops
//! and data movement, [`TOL_REDUCTION`] for reductions, GEMMs and convolutions. Each training check compares the
//! losses step by step: `|loss_dev - loss_ref| <= tol * max(1, |loss_ref|)` ([`TOL_LOSS`], [`TOL_SSL_LOSS`]; with bf16
//! convolutions [`TOL_LOSS_BF16`], [`TOL_SSL_LOSS_BF16`]), and, on a backend that counts its
//! device allocations (CUDA), fails if any step (ResNet) or iteration (FG-SSL) after the first allocates device
//! memory: steady-state training must reuse its memory, the per-batch image upload included.

pub mod conv_bf16;

mod augmix;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::augment::{self, Grids, ImageBatch, SslViewConfig};
use crate::backend::cpu::Cpu;
use crate::backend::geom::*;
use crate::backend::{Backend, BnEpilogue, BnEpilogueGrad, Precision};
use crate::error::{Error, Result};
use crate::metrics::softmax_rows;
use crate::model::fgssl::{Fgssl, FgsslConfig};
use crate::model::resnet::{Arch, ResNet};
use crate::model::{HostState, State};
use crate::ops::{cross_entropy, Mode};
use crate::rng::Rng;
use crate::tensor::{Shape, Tensor};
use crate::training::optim::{Optimizer, OptimizerKind};
use crate::training::phases::NoPhases;
use crate::training::ssl::{ssl_iteration, SslBatch, SslConfig};

mod conv_cases;

/// Scale-relative tolerance of elementwise ops and pure data movement (fp32).
pub const TOL_ELEMENTWISE: f64 = 1e-5;
/// Scale-relative tolerance of reductions, GEMMs and convolutions (fp32).
pub const TOL_REDUCTION: f64 = 1e-4;
/// Relative tolerance on the ResNet training losses, step by step. Losses of different summation orders drift apart
/// over SGD steps: a max-pool argmax or ReLU decision that flips between two orders changes a gradient discretely.
/// Measured, `fgssl selftest --device cpu64` (f64 against the f32 reference), seeds 1-16, on this check's setup (8
/// images, lr 0.002): up to 5.0e-4 (seed 10). The earlier setup (4 images, lr 0.01) memorised its batch down to a
/// loss of 0.04 and differed by up to 4.5e-3, failing the old 1e-3 on 4 of 16 seeds. The fp32 CUDA backend agreed
/// with the CPU within 1.4e-6 on an H200 (docs/GPU-STATUS.md). Set at 10x the largest measured; a wrong kernel moves
/// step 0 alone by far more, and the op cases check every op tightly.
pub const TOL_LOSS: f64 = 5e-3;
/// Relative tolerance on the FG-SSL training losses, step by step. Looser than [`TOL_LOSS`] because the Barlow
/// Twins loss of a freshly initialised model on a batch of 8 has enormous gradients (an SGD step of lr 1e-6 changes
/// the loss by several percent), so fp32 rounding differences in one step's gradients show up in the later steps'
/// losses: f32 against f64 (`--device cpu64`) differs by up to 3.6e-3 relative over 12 steps (seeds 1-16), while a
/// wrong kernel moves a loss by far more.
pub const TOL_SSL_LOSS: f64 = 1e-2;
/// Relative tolerance on the ResNet training losses when the convolutions are bf16 ([`Precision::Bf16`]; the op
/// cases keep the fp32 tolerances: with the reference emulating the rounding, f32 against f64 differs by at most
/// 9.4e-7 scale-relative on every conv case, seeds 1-16). The losses are another matter: a summation-order
/// difference of one f32 ulp before a rounding flips a bf16 operand by 2^-8 relative, and such flips compound through
/// the layers, batch norm and the SGD updates. Measured, `fgssl selftest --device cpu64 --precision bf16` (f64 with
/// bf16 against f32 with bf16), seeds 1-16, this check's setup: up to 1.5e-2 relative (seed 4; the setup of 4 images at lr
/// 0.01 that memorised its batch reached 5.5e-2). A GPU run differs from the f32 CPU by summation
/// order too, the same seed for flips. Set at about 3x the largest measured; a wrong kernel moves the losses by
/// far more, and the op cases check every convolution at 1e-4.
pub const TOL_LOSS_BF16: f64 = 0.05;
/// [`TOL_SSL_LOSS`] with bf16 convolutions: measured as [`TOL_LOSS_BF16`], up to 2.4e-2 relative over the 12 FG-SSL
/// steps (seeds 1-16); set at 2.5x that.
pub const TOL_SSL_LOSS_BF16: f64 = 0.06;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Seed of every random input and of the ResNet's weights.
    pub seed: u64,
    /// One shape per op, two ResNet steps and two FG-SSL iterations instead of every shape, four steps and three
    /// iterations.
    pub quick: bool,
    /// Print each row to stdout as soon as it is measured (useful when a device crashes the process mid-run).
    pub live: bool,
}

impl Options {
    pub fn new(seed: u64) -> Self {
        Options { seed, quick: false, live: false }
    }
}

/// A seed from the clock, for fresh inputs on every run (print it: `--seed` reproduces the run).
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    nanos % 1_000_000_007
}

/// One (op, shape) comparison.
#[derive(Clone, Debug)]
pub struct OpRow {
    pub op: String,
    pub shape: String,
    pub max_abs: f64,
    pub max_rel: f64,
    pub tol: f64,
    pub pass: bool,
    /// On failure: the worst output, the first mismatching element, or the panic / error message.
    pub note: String,
}

/// One training step: the loss before the update on both devices.
#[derive(Clone, Debug)]
pub struct StepRow {
    pub step: usize,
    pub reference: f32,
    pub device: f32,
    pub abs_diff: f64,
    pub tol: f64,
    pub pass: bool,
}

/// Everything a self-test measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub device: String,
    pub reference: String,
    /// What the device's convolutions multiply in (the reference emulates the same, see [`run`]).
    pub precision: Precision,
    pub ops: Vec<OpRow>,
    /// A few SGD steps of a ResNet-18 classifier.
    pub resnet: TrainingCheck,
    /// FG-SSL iterations (4 steps each) from u8 images.
    pub fgssl: TrainingCheck,
}

/// One short training run on both devices, compared step by step.
#[derive(Clone, Debug, Default)]
pub struct TrainingCheck {
    /// Its name in the summary ("resnet steps", "fgssl steps").
    pub name: &'static str,
    /// What it ran (model, input, steps, optimizer).
    pub what: String,
    pub steps: Vec<StepRow>,
    /// An error or panic that stopped it (a FAIL).
    pub error: Option<String>,
    /// The device backend's allocation counter ([`Backend::device_allocations`]) after each step (ResNet) or
    /// iteration (FG-SSL); empty when the backend does not count (the CPU). Any growth after the first is a FAIL.
    pub allocations: Vec<u64>,
}

impl TrainingCheck {
    fn new(name: &'static str, what: String) -> Self {
        TrainingCheck { name, what, ..TrainingCheck::default() }
    }

    pub fn failed(&self) -> usize {
        self.steps.iter().filter(|s| !s.pass).count() + usize::from(self.error.is_some()) + usize::from(self.allocations_grew())
    }

    /// Whether the device allocated memory after the first step or iteration.
    pub fn allocations_grew(&self) -> bool {
        self.allocations.windows(2).any(|w| w[1] > w[0])
    }

    /// One line on the allocation check.
    pub fn allocation_line(&self) -> String {
        match (self.allocations.first(), self.allocations.last()) {
            (Some(first), Some(last)) => format!(
                "{}: device allocations after each: {:?}: {}",
                self.name,
                self.allocations,
                if self.allocations_grew() {
                    format!("FAIL ({} allocations after the first)", last - first)
                } else {
                    "PASS (none after the first)".to_string()
                }
            ),
            _ => format!("{}: device allocations not counted by this backend", self.name),
        }
    }

    /// `"resnet steps: 4 of 4 passed"`, with the error that stopped it.
    fn count_line(&self) -> String {
        format!(
            "{}: {} of {} passed{}",
            self.name,
            self.steps.len() - self.steps.iter().filter(|s| !s.pass).count(),
            self.steps.len(),
            self.error.as_ref().map(|e| format!(" (stopped: {e})")).unwrap_or_default()
        )
    }

    /// Records the device's losses against the reference's, step by step (relative tolerance `tol`), and the
    /// device's allocation counts.
    fn compare(
        &mut self,
        live: bool,
        tol: f64,
        reference: std::result::Result<(Vec<f32>, Vec<u64>), String>,
        got: std::result::Result<(Vec<f32>, Vec<u64>), String>,
    ) {
        match (reference, got) {
            (Err(e), _) => self.error = Some(format!("the CPU reference failed: {e}")),
            (_, Err(e)) => self.error = Some(e),
            (Ok((r, _)), Ok((g, allocations))) => {
                self.allocations = allocations;
                if live {
                    println!("{STEP_HEADER}");
                }
                for (i, (&r, &g)) in r.iter().zip(&g).enumerate() {
                    let diff = if g.is_finite() { (g as f64 - r as f64).abs() } else { f64::INFINITY };
                    let tol = tol * (r.abs() as f64).max(1.0);
                    let row = StepRow { step: i, reference: r, device: g, abs_diff: diff, tol, pass: diff <= tol };
                    if live {
                        println!("{}", step_line(&row));
                    }
                    self.steps.push(row);
                }
            }
        }
        if live {
            if let Some(e) = &self.error {
                println!("{}: FAIL: {e}", self.name);
            }
            println!("{}", self.allocation_line());
        }
    }
}

impl Report {
    /// The first line of a run: devices, precision, seed.
    pub fn header(&self) -> String {
        format!("selftest: device {} vs reference {}, {} convolutions, seed {}", self.device, self.reference, self.precision, self.seed)
    }

    pub fn ops_failed(&self) -> Vec<&OpRow> {
        self.ops.iter().filter(|r| !r.pass).collect()
    }

    /// Failed training steps, stopped checks and allocation failures of both training checks.
    pub fn steps_failed(&self) -> usize {
        self.resnet.failed() + self.fgssl.failed()
    }

    pub fn passed(&self) -> bool {
        self.ops_failed().is_empty() && self.steps_failed() == 0
    }

    /// The closing lines: counts and the overall verdict.
    pub fn summary(&self) -> String {
        let failed = self.ops_failed();
        let mut s = format!(
            "ops: {} of {} cases passed; {}; {}\n",
            self.ops.len() - failed.len(),
            self.ops.len(),
            self.resnet.count_line(),
            self.fgssl.count_line()
        );
        for r in &failed {
            s += &format!("FAIL {} [{}]: {}\n", r.op, r.shape, r.note);
        }
        for check in [&self.resnet, &self.fgssl] {
            if check.allocations_grew() {
                s += &format!("FAIL {}\n", check.allocation_line());
            }
        }
        s += &format!("selftest {} (seed {}; rerun with --seed {})", if self.passed() { "PASSED" } else { "FAILED" }, self.seed, self.seed);
        s
    }
}

const OP_HEADER: &str = "op                     shape                              max abs err  max rel err  tolerance  result";

fn op_line(r: &OpRow) -> String {
    let note = if r.pass || r.note.is_empty() { String::new() } else { format!("  {}", r.note) };
    format!(
        "{:<22} {:<34} {:>11.3e}  {:>11.3e}  {:>9.0e}  {}{}",
        r.op,
        r.shape,
        r.max_abs,
        r.max_rel,
        r.tol,
        if r.pass { "PASS" } else { "FAIL" },
        note
    )
}

const STEP_HEADER: &str = "step  loss (reference)  loss (device)   |diff|       tolerance  result";

fn step_line(s: &StepRow) -> String {
    format!("{:<5} {:<17.8} {:<15.8} {:<12.3e} {:<10.1e} {}", s.step, s.reference, s.device, s.abs_diff, s.tol, if s.pass { "PASS" } else { "FAIL" })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.header())?;
        writeln!(f, "{OP_HEADER}")?;
        for r in &self.ops {
            writeln!(f, "{}", op_line(r))?;
        }
        for check in [&self.resnet, &self.fgssl] {
            writeln!(f, "{}", check.what)?;
            writeln!(f, "{STEP_HEADER}")?;
            for s in &check.steps {
                writeln!(f, "{}", step_line(s))?;
            }
            writeln!(f, "{}", check.allocation_line())?;
        }
        write!(f, "{}", self.summary())
    }
}

// ---- cases ---------------------------------------------------------------------------------------------------

/// Which format a buffer is uploaded in: the backend's activation format or its parameter-arena format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Act,
    Param,
}

#[derive(Clone, Debug)]
struct HostBuf {
    name: &'static str,
    shape: Vec<usize>,
    role: Role,
    init: Vec<f32>,
    /// Compared after the call.
    out: bool,
}

#[derive(Clone, Debug)]
enum Kind {
    Fill(f32),
    Conv2dFwd(Conv2dGeom, bool),
    Conv2dBwd(Conv2dGeom, bool, bool),
    /// The implicit GEMM with tile `TILES[.1]` forced (fwd with bias flag; bwd with a wgrad split request and a dx
    /// flag, no bias), and the direct baseline kernels: launched directly on CUDA (`conv_cases::run_on_cuda`), the
    /// trait's convolution on any other backend.
    Conv2dTiledFwd(Conv2dGeom, usize, bool),
    Conv2dTiledBwd(Conv2dGeom, usize, usize, bool),
    Conv2dDirectFwd(Conv2dGeom, bool),
    Conv2dDirectBwd(Conv2dGeom, bool, bool),
    BnTrain(BatchNormGeom),
    BnEval(BatchNormGeom),
    BnBwd(BatchNormGeom),
    /// Fused BN+ReLU (`false`) or BN+add+ReLU (`true`) epilogues of the three batch-norm ops.
    BnTrainFused(BatchNormGeom, bool),
    BnEvalFused(BatchNormGeom, bool),
    BnBwdFused(BatchNormGeom, bool),
    ReluFwd,
    ReluBwd,
    EluFwd(f32),
    EluBwd(f32),
    MaxPoolFwd(MaxPool2dGeom),
    MaxPoolBwd(MaxPool2dGeom),
    GmpFwd(GlobalPoolGeom),
    GmpBwd(GlobalPoolGeom),
    GapFwd(GlobalPoolGeom),
    GapBwd(GlobalPoolGeom),
    LinearFwd(LinearGeom, bool),
    LinearBwd(LinearGeom, bool, bool),
    Add,
    ConcatFwd(ConcatGeom),
    ConcatBwd(ConcatGeom),
    CeFwd(CrossEntropyGeom, Vec<u32>),
    CeBwd(CrossEntropyGeom, Vec<u32>, f32),
    Sgd(Vec<SgdSegment>, f32),
    BtFwd(BarlowTwinsGeom),
    BtBwd(BarlowTwinsGeom, f32),
    L2Std(L2NormalizedStdGeom),
    Lars(Vec<LarsSegment>, f32, f32),
    Adamw(Vec<AdamwSegment>, f32, f32, f32),
    GradNorm(Vec<ArenaSegment>),
    Scale(f32),
    /// u8 images (uploaded with `upload_bytes`), per-sample parameters, permutations; outputs are the views.
    AugmentFwd(AugmentGeom, Vec<u8>, Vec<SampleAug>, Vec<u32>),
    JigsawFwd(JigsawGeom, Vec<u32>),
}

#[derive(Clone, Debug)]
struct Case {
    op: &'static str,
    shape: String,
    tol: f64,
    kind: Kind,
    bufs: Vec<HostBuf>,
}

impl Case {
    fn new(op: &'static str, shape: impl Into<String>, tol: f64, kind: Kind) -> Self {
        Case { op, shape: shape.into(), tol, kind, bufs: Vec::new() }
    }
    fn buf(mut self, name: &'static str, shape: &[usize], role: Role, init: Vec<f32>, out: bool) -> Self {
        assert_eq!(shape.iter().product::<usize>(), init.len(), "selftest case {} buffer {name}", self.op);
        self.bufs.push(HostBuf { name, shape: shape.to_vec(), role, init, out });
        self
    }
    /// Read-only input.
    fn input(self, name: &'static str, shape: &[usize], role: Role, init: Vec<f32>) -> Self {
        self.buf(name, shape, role, init, false)
    }
    /// Written output, poisoned with NaN.
    fn output(self, name: &'static str, shape: &[usize], role: Role) -> Self {
        let n = shape.iter().product();
        self.buf(name, shape, role, vec![f32::NAN; n], true)
    }
    /// Read-modify-write output (accumulated gradient, running statistic), starting from `init`.
    fn inout(self, name: &'static str, shape: &[usize], role: Role, init: Vec<f32>) -> Self {
        self.buf(name, shape, role, init, true)
    }
    /// A buffer the op must not touch in this variant (an optional output passed as `None`); not compared.
    fn unused(self, name: &'static str, shape: &[usize], role: Role) -> Self {
        let n = shape.iter().product();
        self.buf(name, shape, role, vec![f32::NAN; n], false)
    }
}

use Role::{Act, Param};

fn u(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    rng.vec_uniform(n, lo, hi)
}

/// Random values of mixed sign and magnitude: uniform in [-1, 1) times a per-element scale of 10^[-2, 1).
fn mixed(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform_in(-1.0, 1.0) * 10f32.powf(rng.uniform_in(-2.0, 1.0))).collect()
}

/// The fused epilogues of batch norm (BN+ReLU, BN+add+ReLU) for one geometry: training and evaluation forward and
/// the backward. The residual is the buffer `residual` (unused without the add), the backward's ReLU mask a random
/// fused output with about half its elements exactly zero.
#[allow(clippy::too_many_arguments)]
fn bn_fused_cases(
    rng: &mut Rng,
    cs: &mut Vec<Case>,
    g: &BatchNormGeom,
    xd: &[usize],
    desc: &str,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    invstd: &[f32],
) {
    let (c, n) = (g.c, g.numel());
    for add in [false, true] {
        let (train_op, eval_op, bwd_op) = if add {
            ("batch_norm_fwd_train+add+relu", "batch_norm_fwd_eval+add+relu", "batch_norm_bwd+add+relu")
        } else {
            ("batch_norm_fwd_train+relu", "batch_norm_fwd_eval+relu", "batch_norm_bwd+relu")
        };
        let residual = |c: Case, rng: &mut Rng| if add { c.input("residual", xd, Act, u(rng, n, -1.0, 1.0)) } else { c.unused("residual", xd, Act) };
        let beta = u(rng, c, -0.5, 0.5);
        let train = Case::new(train_op, desc, TOL_REDUCTION, Kind::BnTrainFused(*g, add))
            .input("x", xd, Act, x.to_vec())
            .input("gamma", &[c], Param, gamma.to_vec())
            .input("beta", &[c], Param, beta.clone());
        cs.push(
            residual(train, rng)
                .inout("running_mean", &[c], Param, u(rng, c, -0.5, 0.5))
                .inout("running_var", &[c], Param, u(rng, c, 0.5, 1.5))
                .output("y", xd, Act)
                .output("saved_mean", &[c], Param)
                .output("saved_invstd", &[c], Param),
        );
        let eval = Case::new(eval_op, desc, TOL_ELEMENTWISE, Kind::BnEvalFused(*g, add))
            .input("x", xd, Act, x.to_vec())
            .input("gamma", &[c], Param, gamma.to_vec())
            .input("beta", &[c], Param, beta)
            .input("running_mean", &[c], Param, u(rng, c, -0.5, 0.5))
            .input("running_var", &[c], Param, u(rng, c, 0.5, 1.5));
        cs.push(residual(eval, rng).output("y", xd, Act));
        let y_fused: Vec<f32> = u(rng, n, -1.0, 1.0).into_iter().map(|v| v.max(0.0)).collect();
        let bwd = Case::new(bwd_op, desc, TOL_REDUCTION, Kind::BnBwdFused(*g, add))
            .input("x", xd, Act, x.to_vec())
            .input("gamma", &[c], Param, gamma.to_vec())
            .input("saved_mean", &[c], Param, mean.to_vec())
            .input("saved_invstd", &[c], Param, invstd.to_vec())
            .input("y", xd, Act, y_fused)
            .input("dy", xd, Act, u(rng, n, -1.0, 1.0))
            .output("dx", xd, Act)
            .inout("dgamma", &[c], Param, u(rng, c, -1.0, 1.0))
            .inout("dbeta", &[c], Param, u(rng, c, -1.0, 1.0));
        cs.push(if add { bwd.output("dresidual", xd, Act) } else { bwd.unused("dresidual", xd, Act) });
    }
}

/// Per-channel batch mean and 1/sqrt(biased var + eps) of `x` `[n, c, hw]`, in f64.
fn bn_stats(x: &[f32], g: &BatchNormGeom) -> (Vec<f32>, Vec<f32>) {
    let m = (g.n * g.hw) as f64;
    let (mut mean, mut invstd) = (vec![0.0; g.c], vec![0.0; g.c]);
    for ch in 0..g.c {
        let vals = || (0..g.n).flat_map(move |i| (0..g.hw).map(move |j| x[(i * g.c + ch) * g.hw + j] as f64));
        let mu = vals().sum::<f64>() / m;
        let var = vals().map(|v| (v - mu) * (v - mu)).sum::<f64>() / m;
        mean[ch] = mu as f32;
        invstd[ch] = (1.0 / (var + g.eps as f64).sqrt()) as f32;
    }
    (mean, invstd)
}

/// Dims of an elementwise case: NCHW when given four, else flat.
fn elementwise_shapes(quick: bool) -> Vec<Vec<usize>> {
    let all = vec![vec![3, 5, 7, 7], vec![67, 129], vec![1, 1, 1, 1]];
    if quick {
        all.into_iter().take(1).collect()
    } else {
        all
    }
}

fn take<T>(v: Vec<T>, quick: bool) -> Vec<T> {
    if quick {
        v.into_iter().take(1).collect()
    } else {
        v
    }
}

fn dims(d: &[usize]) -> String {
    d.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("x")
}

/// Every case, inputs drawn from `rng`.
fn cases(rng: &mut Rng, quick: bool) -> Vec<Case> {
    let mut cs = Vec::new();

    // fill
    for d in elementwise_shapes(quick) {
        cs.push(Case::new("fill", dims(&d), TOL_ELEMENTWISE, Kind::Fill(-0.375)).output("y", &d, Act));
    }

    // convolution: (n, c_in, h, w, c_out, k, stride, pad)
    let convs = take(vec![(3, 5, 7, 7, 6, 3, 1, 1), (2, 3, 15, 13, 8, 7, 2, 3), (3, 5, 7, 7, 7, 1, 2, 0), (2, 16, 9, 9, 33, 3, 2, 1)], quick);
    for (i, &(n, ci, h, w, co, k, s, p)) in convs.iter().enumerate() {
        let g = Conv2dGeom::new(n, ci, h, w, co, k, s, p);
        let desc = format!("n{n} c{ci} {h}x{w} -> c{co} k{k} s{s} p{p}");
        let (xd, wd, yd) = ([n, ci, h, w], [co, ci, k, k], [n, co, g.ho, g.wo]);
        let with_bias = i % 2 == 0;
        cs.push(
            Case::new("conv2d_fwd", format!("{desc}{}", if with_bias { " +bias" } else { "" }), TOL_REDUCTION, Kind::Conv2dFwd(g, with_bias))
                .input("x", &xd, Act, u(rng, g.x_len(), -1.0, 1.0))
                .input("w", &wd, Param, u(rng, g.w_len(), -0.3, 0.3))
                .input("bias", &[co], Param, u(rng, co, -0.5, 0.5))
                .output("y", &yd, Act),
        );
        for (with_dx, with_db) in [(true, with_bias), (false, !with_bias)] {
            let mut c = Case::new(
                "conv2d_bwd",
                format!("{desc}{}{}", if with_dx { " +dx" } else { "" }, if with_db { " +dbias" } else { "" }),
                TOL_REDUCTION,
                Kind::Conv2dBwd(g, with_dx, with_db),
            )
            .input("x", &xd, Act, u(rng, g.x_len(), -1.0, 1.0))
            .input("w", &wd, Param, u(rng, g.w_len(), -0.3, 0.3))
            .input("dy", &yd, Act, u(rng, g.y_len(), -1.0, 1.0));
            c = if with_dx { c.output("dx", &xd, Act) } else { c.unused("dx", &xd, Act) };
            c = c.inout("dw", &wd, Param, u(rng, g.w_len(), -1.0, 1.0));
            c = if with_db { c.inout("dbias", &[co], Param, u(rng, co, -1.0, 1.0)) } else { c.unused("dbias", &[co], Param) };
            cs.push(c);
            if quick {
                break;
            }
        }
    }
    // convolution at the ResNet / FG-SSL layer shapes, every implicit-GEMM tile and split-K, the direct kernels
    cs.extend(conv_cases::conv_cases(rng, quick));

    // batch norm: (n, c, h, w); w == 0 marks 1-d batch norm on [n, c]
    for (n, c, h, w) in take(vec![(3, 5, 7, 7), (7, 67, 0, 0), (2, 16, 15, 15), (3, 129, 1, 1)], quick) {
        let hw = if w == 0 { 1 } else { h * w };
        let g = BatchNormGeom { n, c, hw, eps: 1e-5, momentum: 0.1 };
        let xd: Vec<usize> = if w == 0 { vec![n, c] } else { vec![n, c, h, w] };
        let desc = if w == 0 { format!("1d n{n} f{c}") } else { format!("2d n{n} c{c} {h}x{w}") };
        let x: Vec<f32> = u(rng, g.numel(), -2.0, 3.0);
        let gamma = u(rng, c, 0.5, 1.5);
        let beta = u(rng, c, -0.5, 0.5);
        cs.push(
            Case::new("batch_norm_fwd_train", desc.clone(), TOL_REDUCTION, Kind::BnTrain(g))
                .input("x", &xd, Act, x.clone())
                .input("gamma", &[c], Param, gamma.clone())
                .input("beta", &[c], Param, beta.clone())
                .inout("running_mean", &[c], Param, u(rng, c, -0.5, 0.5))
                .inout("running_var", &[c], Param, u(rng, c, 0.5, 1.5))
                .output("y", &xd, Act)
                .output("saved_mean", &[c], Param)
                .output("saved_invstd", &[c], Param),
        );
        cs.push(
            Case::new("batch_norm_fwd_eval", desc.clone(), TOL_ELEMENTWISE, Kind::BnEval(g))
                .input("x", &xd, Act, x.clone())
                .input("gamma", &[c], Param, gamma.clone())
                .input("beta", &[c], Param, beta)
                .input("running_mean", &[c], Param, u(rng, c, -0.5, 0.5))
                .input("running_var", &[c], Param, u(rng, c, 0.5, 1.5))
                .output("y", &xd, Act),
        );
        let (mean, invstd) = bn_stats(&x, &g);
        cs.push(
            Case::new("batch_norm_bwd", desc.clone(), TOL_REDUCTION, Kind::BnBwd(g))
                .input("x", &xd, Act, x.clone())
                .input("gamma", &[c], Param, gamma.clone())
                .input("saved_mean", &[c], Param, mean.clone())
                .input("saved_invstd", &[c], Param, invstd.clone())
                .input("dy", &xd, Act, u(rng, g.numel(), -1.0, 1.0))
                .output("dx", &xd, Act)
                .inout("dgamma", &[c], Param, u(rng, c, -1.0, 1.0))
                .inout("dbeta", &[c], Param, u(rng, c, -1.0, 1.0)),
        );
        bn_fused_cases(rng, &mut cs, &g, &xd, &desc, &x, &gamma, &mean, &invstd);
    }

    // activations and the residual add
    for d in elementwise_shapes(quick) {
        let n: usize = d.iter().product();
        let x = mixed(rng, n);
        let y: Vec<f32> = x.iter().map(|&v| v.max(0.0)).collect();
        cs.push(Case::new("relu_fwd", dims(&d), TOL_ELEMENTWISE, Kind::ReluFwd).input("x", &d, Act, x.clone()).output("y", &d, Act));
        cs.push(
            Case::new("relu_bwd", dims(&d), TOL_ELEMENTWISE, Kind::ReluBwd)
                .input("y", &d, Act, y)
                .input("dy", &d, Act, mixed(rng, n))
                .output("dx", &d, Act),
        );
        for alpha in [1.0, 0.3] {
            let shape = format!("{} alpha {alpha}", dims(&d));
            cs.push(Case::new("elu_fwd", shape.clone(), TOL_ELEMENTWISE, Kind::EluFwd(alpha)).input("x", &d, Act, x.clone()).output("y", &d, Act));
            cs.push(
                Case::new("elu_bwd", shape, TOL_ELEMENTWISE, Kind::EluBwd(alpha))
                    .input("x", &d, Act, x.clone())
                    .input("dy", &d, Act, mixed(rng, n))
                    .output("dx", &d, Act),
            );
        }
        cs.push(
            Case::new("add_fwd", dims(&d), TOL_ELEMENTWISE, Kind::Add)
                .input("a", &d, Act, mixed(rng, n))
                .input("b", &d, Act, mixed(rng, n))
                .output("y", &d, Act),
        );
    }

    // windowed max pool: (n, c, h, w, k, stride, pad)
    for (n, c, h, w, k, s, p) in take(vec![(3, 5, 7, 7, 3, 2, 1), (2, 3, 8, 9, 3, 2, 1), (3, 5, 7, 7, 2, 2, 0), (2, 64, 16, 16, 3, 2, 1)], quick) {
        let g = MaxPool2dGeom::new(n, c, h, w, k, s, p);
        let (xd, yd) = ([n, c, h, w], [n, c, g.ho, g.wo]);
        let desc = format!("n{n} c{c} {h}x{w} k{k} s{s} p{p}");
        let x = mixed(rng, n * c * h * w);
        cs.push(
            Case::new("max_pool2d_fwd", desc.clone(), TOL_ELEMENTWISE, Kind::MaxPoolFwd(g)).input("x", &xd, Act, x.clone()).output("y", &yd, Act),
        );
        cs.push(
            Case::new("max_pool2d_bwd", desc, TOL_ELEMENTWISE, Kind::MaxPoolBwd(g))
                .input("x", &xd, Act, x)
                .input("dy", &yd, Act, mixed(rng, n * c * g.ho * g.wo))
                .output("dx", &xd, Act),
        );
    }

    // global pools: (n, c, h, w)
    for (n, c, h, w) in take(vec![(3, 5, 7, 7), (7, 67, 1, 1), (2, 64, 15, 15), (3, 129, 3, 5)], quick) {
        let g = GlobalPoolGeom { n, c, hw: h * w };
        let (xd, yd) = ([n, c, h, w], [n, c]);
        let desc = format!("n{n} c{c} {h}x{w}");
        let x = mixed(rng, n * c * h * w);
        cs.push(
            Case::new("global_max_pool_fwd", desc.clone(), TOL_ELEMENTWISE, Kind::GmpFwd(g)).input("x", &xd, Act, x.clone()).output("y", &yd, Act),
        );
        cs.push(
            Case::new("global_max_pool_bwd", desc.clone(), TOL_ELEMENTWISE, Kind::GmpBwd(g))
                .input("x", &xd, Act, x.clone())
                .input("dy", &yd, Act, mixed(rng, n * c))
                .output("dx", &xd, Act),
        );
        cs.push(Case::new("global_avg_pool_fwd", desc.clone(), TOL_REDUCTION, Kind::GapFwd(g)).input("x", &xd, Act, x).output("y", &yd, Act));
        cs.push(
            Case::new("global_avg_pool_bwd", desc, TOL_ELEMENTWISE, Kind::GapBwd(g)).input("dy", &yd, Act, mixed(rng, n * c)).output("dx", &xd, Act),
        );
    }

    // linear: (n, in, out)
    for (i, &(n, fi, fo)) in take(vec![(3, 67, 129), (7, 129, 67), (2, 512, 10), (1, 1, 1), (33, 65, 17)], quick).iter().enumerate() {
        let g = LinearGeom { n, in_f: fi, out_f: fo };
        let desc = format!("n{n} in{fi} out{fo}");
        let with_bias = i % 2 == 0;
        cs.push(
            Case::new("linear_fwd", format!("{desc}{}", if with_bias { " +bias" } else { "" }), TOL_REDUCTION, Kind::LinearFwd(g, with_bias))
                .input("x", &[n, fi], Act, u(rng, n * fi, -1.0, 1.0))
                .input("w", &[fo, fi], Param, u(rng, fo * fi, -0.3, 0.3))
                .input("bias", &[fo], Param, u(rng, fo, -0.5, 0.5))
                .output("y", &[n, fo], Act),
        );
        for (with_dx, with_db) in [(true, with_bias), (false, !with_bias)] {
            let mut c = Case::new(
                "linear_bwd",
                format!("{desc}{}{}", if with_dx { " +dx" } else { "" }, if with_db { " +dbias" } else { "" }),
                TOL_REDUCTION,
                Kind::LinearBwd(g, with_dx, with_db),
            )
            .input("x", &[n, fi], Act, u(rng, n * fi, -1.0, 1.0))
            .input("w", &[fo, fi], Param, u(rng, fo * fi, -0.3, 0.3))
            .input("dy", &[n, fo], Act, u(rng, n * fo, -1.0, 1.0));
            c = if with_dx { c.output("dx", &[n, fi], Act) } else { c.unused("dx", &[n, fi], Act) };
            c = c.inout("dw", &[fo, fi], Param, u(rng, fo * fi, -1.0, 1.0));
            c = if with_db { c.inout("dbias", &[fo], Param, u(rng, fo, -1.0, 1.0)) } else { c.unused("dbias", &[fo], Param) };
            cs.push(c);
            if quick {
                break;
            }
        }
    }

    // concat: (n, h, w, channels)
    for (n, h, w, channels) in take(vec![(3, 7, 7, vec![5, 3, 2]), (2, 1, 1, vec![64, 67]), (1, 5, 3, vec![1])], quick) {
        let g = ConcatGeom { n, hw: h * w, channels: channels.clone() };
        let desc = format!("n{n} {h}x{w} c{}", channels.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("+"));
        let yd = [n, g.c_total(), h, w];
        let mut fwd = Case::new("concat_fwd", desc.clone(), TOL_ELEMENTWISE, Kind::ConcatFwd(g.clone()));
        for &c in &channels {
            fwd = fwd.input("x", &[n, c, h, w], Act, mixed(rng, n * c * h * w));
        }
        cs.push(fwd.output("y", &yd, Act));
        let mut bwd =
            Case::new("concat_bwd", desc, TOL_ELEMENTWISE, Kind::ConcatBwd(g.clone())).input("dy", &yd, Act, mixed(rng, yd.iter().product()));
        for &c in &channels {
            bwd = bwd.output("dx", &[n, c, h, w], Act);
        }
        cs.push(bwd);
    }

    // softmax cross-entropy: (n, k)
    for (n, k) in take(vec![(3, 10), (7, 67), (2, 1000), (1, 1)], quick) {
        let g = CrossEntropyGeom { n, k };
        let labels: Vec<u32> = (0..n).map(|_| rng.below(k) as u32).collect();
        let desc = format!("n{n} k{k}");
        let logits: Vec<f32> = u(rng, n * k, -8.0, 8.0);
        cs.push(
            Case::new("cross_entropy_fwd", desc.clone(), TOL_REDUCTION, Kind::CeFwd(g, labels.clone()))
                .input("logits", &[n, k], Act, logits.clone())
                .output("probs", &[n, k], Act)
                .output("loss", &[1], Act),
        );
        cs.push(
            Case::new("cross_entropy_bwd", format!("{desc} dloss 0.7"), TOL_ELEMENTWISE, Kind::CeBwd(g, labels, 0.7))
                .input("probs", &[n, k], Act, softmax_rows(&logits, k))
                .output("dlogits", &[n, k], Act),
        );
    }

    // SGD over an arena of segments with different settings; a first update (has_momentum = 0) must not read its
    // momentum buffer, which therefore starts as NaN there.
    let lens = if quick { vec![5 * 3 * 3 * 3, 67] } else { vec![5 * 3 * 3 * 3, 67, 1, 129 * 67, 1000] };
    let mut segs = Vec::new();
    let mut offset = 0;
    for (i, &len) in lens.iter().enumerate() {
        segs.push(SgdSegment {
            offset,
            len,
            lr: [0.1, 0.01, 0.5, 0.03, 0.2][i],
            weight_decay: [5e-4, 0.0, 1e-2, 5e-4, 0.0][i],
            has_momentum: (i % 2 == 0) as u32,
        });
        offset += len;
    }
    let total = offset;
    let mut bufs = u(rng, total, -1.0, 1.0);
    for s in segs.iter().filter(|s| s.has_momentum == 0) {
        bufs[s.offset..s.offset + s.len].fill(f32::NAN);
    }
    let desc = format!("{} segments, {total} params", segs.len());
    for momentum in [0.9, 0.0] {
        cs.push(
            Case::new("sgd_step", format!("{desc} momentum {momentum}"), TOL_ELEMENTWISE, Kind::Sgd(segs.clone(), momentum))
                .inout("params", &[total], Param, u(rng, total, -1.0, 1.0))
                .input("grads", &[total], Param, mixed(rng, total))
                .inout("bufs", &[total], Param, bufs.clone()),
        );
    }
    cs.extend(augment_cases(rng, quick));
    cs
}

/// Augmentation (several policies, odd sizes, up to four views with jigsaw) and the jigsaw gather. The jigsaw is a
/// pure gather, so its tolerance is 0; augmentation is elementwise f32 work with bit-identical pre-solarize values
/// (see `backend::cpu::augment`), so [`TOL_ELEMENTWISE`].
fn augment_cases(rng: &mut Rng, quick: bool) -> Vec<Case> {
    use crate::augment::jigsaw::batch_permutations;
    use crate::augment::policy::{draw_batch, Jitter, Recipe};
    use crate::augment::{Jigsaw, Policy};
    let everything = Recipe {
        hflip: 1.0,
        vflip: 0.5,
        jitter: Some(Jitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, p: 1.0 }),
        grayscale: 0.3,
        blur: 1.0,
        solarize: 1.0,
        ..Policy::BarlowTwins { second_view: true }.recipe()
    };
    // (name, recipe, n, src, out, grids of the views)
    let setups = vec![
        ("barlow-twins-2", Policy::BarlowTwins { second_view: true }.recipe(), 3, 37, 30, vec![0, 5, 3, 2]),
        ("all ops", everything, 4, 41, 36, vec![0, 9, 4, 6]),
        ("ssl-original", Policy::SslOriginal.recipe(), 2, 24, 24, vec![0, 8, 4, 2]),
        ("finetune-isic", Policy::FinetuneIsic.recipe(), 3, 40, 35, vec![7, 5, 1, 0]),
        ("ssl-distorted", Policy::SslDistorted.recipe(), 2, 33, 33, vec![0]),
        ("test", Policy::Test.recipe(), 2, 256, 224, vec![0]),
    ];
    let mut cs = Vec::new();
    for (name, recipe, n, src, out, grids) in take(setups, quick) {
        let seed = rng.next_u64();
        let samples: Vec<u32> = (0..n as u32).map(|i| i * 7 + 1).collect();
        let params = match draw_batch(&recipe, src, out, seed, 3, &samples, 1) {
            Ok(p) => p,
            Err(e) => panic!("selftest augment case {name}: {e}"),
        };
        let perms: Vec<u32> = grids
            .iter()
            .enumerate()
            .filter(|(_, &g)| g > 0)
            .flat_map(|(k, &g)| batch_permutations(Jigsaw::Uniform, g, seed, 3, &samples, k as u32))
            .collect();
        let images: Vec<u8> = (0..n * src * src * 3).map(|_| rng.below(256) as u8).collect();
        let mut g = AugmentGeom {
            n,
            src,
            out,
            views: grids.len(),
            grids: [0; AUGMENT_MAX_VIEWS],
            mean: crate::ops::augment::IMAGENET_MEAN,
            std: crate::ops::augment::IMAGENET_STD,
        };
        g.grids[..grids.len()].copy_from_slice(&grids);
        let desc = format!("{name} n{n} {src}->{out} grids {grids:?}");
        let mut case = Case::new("augment_fwd", desc, TOL_ELEMENTWISE, Kind::AugmentFwd(g, images, params, perms));
        for _ in &grids {
            case = case.output("y", &[n, 3, out, out], Act);
        }
        cs.push(case);
    }
    for (n, c, h, w, grid) in take(vec![(3, 5, 12, 18, 3), (2, 64, 28, 28, 7), (1, 1, 1, 1, 1)], quick) {
        let samples: Vec<u32> = (0..n as u32).collect();
        let perms = batch_permutations(Jigsaw::SwapLoop, grid, rng.next_u64(), 0, &samples, 0);
        let d = [n, c, h, w];
        cs.push(
            Case::new("jigsaw_fwd", format!("{} grid {grid}", dims(&d)), 0.0, Kind::JigsawFwd(JigsawGeom { n, c, h, w, grid }, perms))
                .input("x", &d, Act, mixed(rng, n * c * h * w))
                .output("y", &d, Act),
        );
    }
    cs.extend(augmix::augmix_cases(rng, quick));
    cs.extend(training_cases(rng, quick));
    cs
}

/// Cases of the training ops: Barlow Twins loss (both forms), its collapse monitor, LARS, AdamW, the gradient norm
/// and the gradient scale. Odd sizes throughout; f = 512 with n = 16 is the FG-SSL embedding.
fn training_cases(rng: &mut Rng, quick: bool) -> Vec<Case> {
    let mut cs = Vec::new();

    // Barlow Twins: (n, f, lambda); correlated views so C has structure on and off the diagonal.
    for (n, f, lambda) in take(vec![(16, 512, 5e-3), (5, 7, 0.3), (37, 65, 5e-3), (2, 3, 1.0)], quick) {
        for (form, form_name) in [(BT_FORM_STANDARD, "standard"), (BT_FORM_REFERENCE, "reference")] {
            let g = BarlowTwinsGeom { n, f, lambda, form };
            let desc = format!("n{n} f{f} {form_name} l{lambda}");
            let za = u(rng, n * f, -2.0, 2.0);
            let zb: Vec<f32> = za.iter().map(|&a| 0.6 * a + rng.uniform_in(-1.0, 1.0)).collect();
            cs.push(
                Case::new("barlow_twins_fwd", desc.clone(), TOL_REDUCTION, Kind::BtFwd(g))
                    .input("za", &[n, f], Act, za.clone())
                    .input("zb", &[n, f], Act, zb.clone())
                    .output("za_hat", &[n, f], Act)
                    .output("zb_hat", &[n, f], Act)
                    .output("inv_std_a", &[f], Act)
                    .output("inv_std_b", &[f], Act)
                    .output("c", &[f, f], Act)
                    .output("terms", &[3], Act),
            );
            // The backward's inputs are what the CPU forward saves.
            let (mut ah, mut bh, mut ia, mut ib, mut c, mut t) =
                (vec![0f32; n * f], vec![0f32; n * f], vec![0f32; f], vec![0f32; f], vec![0f32; f * f], vec![0f32; 3]);
            crate::backend::cpu::barlow_twins::fwd(&g, &za, &zb, &mut ah, &mut bh, &mut ia, &mut ib, &mut c, &mut t);
            cs.push(
                Case::new("barlow_twins_bwd", format!("{desc} dloss 2"), TOL_REDUCTION, Kind::BtBwd(g, 2.0))
                    .input("za_hat", &[n, f], Act, ah)
                    .input("zb_hat", &[n, f], Act, bh)
                    .input("inv_std_a", &[f], Act, ia)
                    .input("inv_std_b", &[f], Act, ib)
                    .input("c", &[f, f], Act, c)
                    .output("dza", &[n, f], Act)
                    .output("dzb", &[n, f], Act),
            );
            if quick {
                break;
            }
        }
    }

    // collapse monitor: (n, f)
    for (n, f) in take(vec![(16, 512), (5, 7), (200, 65), (2, 1)], quick) {
        let g = L2NormalizedStdGeom { n, f };
        cs.push(
            Case::new("l2_normalized_std_fwd", format!("n{n} f{f}"), TOL_REDUCTION, Kind::L2Std(g))
                .input("z", &[n, f], Act, mixed(rng, n * f))
                .output("out", &[1], Act),
        );
    }

    // Optimizers over arenas with gaps between segments; segments longer than one reduction chunk (8192) check the
    // chunked norms. A first LARS update (has_momentum = 0) must not read its buffer (NaN there); segment 3 of LARS
    // starts at zero (‖p‖ = 0: trust 1).
    let lens = if quick { vec![5 * 3 * 3 * 3, 67, 20_001] } else { vec![5 * 3 * 3 * 3, 67, 1, 129 * 67, 1000, 20_001, 0] };
    let mut offsets = Vec::new();
    let mut end = 0;
    for &len in &lens {
        end += 3; // a gap the ops must not touch
        offsets.push(end);
        end += len;
    }
    let total = end + 2;
    let pick = |i: usize, v: &[f32]| v[i % v.len()];

    let lars: Vec<LarsSegment> = (0..lens.len())
        .map(|i| LarsSegment {
            offset: offsets[i],
            len: lens[i],
            lr: pick(i, &[0.1, 0.02, 0.5, 0.3, 0.2]),
            weight_decay: pick(i, &[1e-2, 0.0, 5e-4]),
            has_momentum: (i % 2 == 0) as u32,
            adapt: (i % 3 != 1) as u32,
        })
        .collect();
    let mut params = u(rng, total, -1.0, 1.0);
    if let Some(s) = lars.get(3) {
        params[s.offset..s.offset + s.len].fill(0.0);
    }
    let mut bufs = u(rng, total, -1.0, 1.0);
    for s in lars.iter().filter(|s| s.has_momentum == 0) {
        bufs[s.offset..s.offset + s.len].fill(f32::NAN);
    }
    let desc = format!("{} segs {total} params", lars.len());
    cs.push(
        Case::new("lars_step", format!("{desc} eta 0.5"), TOL_REDUCTION, Kind::Lars(lars, 0.9, 0.5))
            .inout("params", &[total], Param, params)
            .input("grads", &[total], Param, mixed(rng, total))
            .inout("bufs", &[total], Param, bufs),
    );

    let adamw: Vec<AdamwSegment> = (0..lens.len())
        .map(|i| {
            let (lr, t) = (pick(i, &[1e-2, 3e-3, 0.1]), [1, 3, 10, 1000][i % 4]);
            let (bc1, bc2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
            AdamwSegment {
                offset: offsets[i],
                len: lens[i],
                lr,
                weight_decay: pick(i, &[1e-2, 0.0, 0.05]),
                step_size: (lr as f64 / bc1) as f32,
                bias_correction2_sqrt: bc2.sqrt() as f32,
            }
        })
        .collect();
    cs.push(
        Case::new("adamw_step", desc.clone(), TOL_ELEMENTWISE, Kind::Adamw(adamw, 0.9, 0.999, 1e-8))
            .inout("params", &[total], Param, u(rng, total, -1.0, 1.0))
            .input("grads", &[total], Param, mixed(rng, total))
            .inout("exp_avg", &[total], Param, u(rng, total, -0.1, 0.1))
            .inout("exp_avg_sq", &[total], Param, u(rng, total, 0.0, 0.01)),
    );

    // gradient norm over a subset of the segments, in table order different from arena order
    let mut norm_segs: Vec<ArenaSegment> =
        (0..lens.len()).filter(|i| i % 3 != 2).map(|i| ArenaSegment { offset: offsets[i], len: lens[i] }).collect();
    norm_segs.reverse();
    cs.push(
        Case::new("grad_norm", format!("{} of {} segs {total} params", norm_segs.len(), lens.len()), TOL_REDUCTION, Kind::GradNorm(norm_segs))
            .input("grads", &[total], Param, mixed(rng, total))
            .output("norm", &[1], Param),
    );

    for d in elementwise_shapes(quick) {
        let n: usize = d.iter().product();
        cs.push(Case::new("scale", format!("{} alpha 0.37", dims(&d)), TOL_ELEMENTWISE, Kind::Scale(0.37)).inout("y", &d, Param, mixed(rng, n)));
    }
    cs
}

// ---- running one case on one backend -------------------------------------------------------------------------

/// A device buffer and its length in elements.
type DevBuf<B> = (<B as Backend>::Buf, usize);

fn v<'a, B: Backend>(b: &B, e: &'a DevBuf<B>) -> B::View<'a> {
    b.view(&e.0, 0..e.1)
}

fn vm<'a, B: Backend>(b: &B, e: &'a mut DevBuf<B>) -> B::ViewMut<'a> {
    b.view_mut(&mut e.0, 0..e.1)
}

fn bad_case(case: &Case) -> Error {
    Error::Backend { backend: "selftest".into(), reason: format!("case {} has an unexpected buffer list", case.op) }
}

/// Uploads the case's buffers to `b`, runs the op, downloads the compared outputs (in buffer order).
fn run_case<B: Backend + 'static>(b: &B, case: &Case) -> Result<Vec<Vec<f32>>> {
    if let Some(outs) = conv_cases::as_cuda(b).and_then(|cx| conv_cases::run_on_cuda(cx, case)) {
        return outs;
    }
    let mut bufs: Vec<DevBuf<B>> = Vec::with_capacity(case.bufs.len());
    for hb in &case.bufs {
        let format = if hb.role == Act { b.activation_format() } else { b.param_format() };
        bufs.push((b.upload(&Shape(hb.shape.clone()), format, &hb.init)?, hb.init.len()));
    }
    let bad = || bad_case(case);
    match &case.kind {
        Kind::Fill(value) => {
            let [y] = &mut bufs[..] else { return Err(bad()) };
            let n = y.1;
            b.fill(n, *value, vm(b, y));
        }
        Kind::Conv2dFwd(g, with_bias) => {
            let [x, w, bias, y] = &mut bufs[..] else { return Err(bad()) };
            b.conv2d_fwd(g, v(b, x), v(b, w), with_bias.then(|| v(b, bias)), vm(b, y));
        }
        Kind::Conv2dBwd(g, with_dx, with_db) | Kind::Conv2dDirectBwd(g, with_dx, with_db) => {
            let [x, w, dy, dx, dw, db] = &mut bufs[..] else { return Err(bad()) };
            b.conv2d_bwd(g, v(b, x), v(b, w), v(b, dy), with_dx.then(|| vm(b, dx)), vm(b, dw), with_db.then(|| vm(b, db)));
        }
        Kind::Conv2dTiledFwd(g, _, with_bias) | Kind::Conv2dDirectFwd(g, with_bias) => {
            let [x, w, bias, y] = &mut bufs[..] else { return Err(bad()) };
            b.conv2d_fwd(g, v(b, x), v(b, w), with_bias.then(|| v(b, bias)), vm(b, y));
        }
        Kind::Conv2dTiledBwd(g, _, _, with_dx) => {
            let [x, w, dy, dx, dw] = &mut bufs[..] else { return Err(bad()) };
            b.conv2d_bwd(g, v(b, x), v(b, w), v(b, dy), with_dx.then(|| vm(b, dx)), vm(b, dw), None);
        }
        Kind::BnTrain(g) => {
            let [x, gamma, beta, rm, rv, y, sm, si] = &mut bufs[..] else { return Err(bad()) };
            b.batch_norm_fwd_train(g, v(b, x), v(b, gamma), v(b, beta), vm(b, rm), vm(b, rv), vm(b, y), vm(b, sm), vm(b, si), BnEpilogue::None);
        }
        Kind::BnEval(g) => {
            let [x, gamma, beta, rm, rv, y] = &mut bufs[..] else { return Err(bad()) };
            b.batch_norm_fwd_eval(g, v(b, x), v(b, gamma), v(b, beta), v(b, rm), v(b, rv), vm(b, y), BnEpilogue::None);
        }
        Kind::BnBwd(g) => {
            let [x, gamma, sm, si, dy, dx, dg, db] = &mut bufs[..] else { return Err(bad()) };
            b.batch_norm_bwd(g, v(b, x), v(b, gamma), v(b, sm), v(b, si), v(b, dy), vm(b, dx), vm(b, dg), vm(b, db), BnEpilogueGrad::None);
        }
        Kind::BnTrainFused(g, add) => {
            let [x, gamma, beta, res, rm, rv, y, sm, si] = &mut bufs[..] else { return Err(bad()) };
            let e = if *add { BnEpilogue::AddRelu(v(b, res)) } else { BnEpilogue::Relu };
            b.batch_norm_fwd_train(g, v(b, x), v(b, gamma), v(b, beta), vm(b, rm), vm(b, rv), vm(b, y), vm(b, sm), vm(b, si), e);
        }
        Kind::BnEvalFused(g, add) => {
            let [x, gamma, beta, rm, rv, res, y] = &mut bufs[..] else { return Err(bad()) };
            let e = if *add { BnEpilogue::AddRelu(v(b, res)) } else { BnEpilogue::Relu };
            b.batch_norm_fwd_eval(g, v(b, x), v(b, gamma), v(b, beta), v(b, rm), v(b, rv), vm(b, y), e);
        }
        Kind::BnBwdFused(g, add) => {
            let [x, gamma, sm, si, y, dy, dx, dg, db, dres] = &mut bufs[..] else { return Err(bad()) };
            let e = if *add { BnEpilogueGrad::AddRelu { y: v(b, y), dresidual: vm(b, dres) } } else { BnEpilogueGrad::Relu { y: v(b, y) } };
            b.batch_norm_bwd(g, v(b, x), v(b, gamma), v(b, sm), v(b, si), v(b, dy), vm(b, dx), vm(b, dg), vm(b, db), e);
        }
        Kind::ReluFwd => {
            let [x, y] = &mut bufs[..] else { return Err(bad()) };
            b.relu_fwd(x.1, v(b, x), vm(b, y));
        }
        Kind::ReluBwd => {
            let [y, dy, dx] = &mut bufs[..] else { return Err(bad()) };
            b.relu_bwd(y.1, v(b, y), v(b, dy), vm(b, dx));
        }
        Kind::EluFwd(alpha) => {
            let [x, y] = &mut bufs[..] else { return Err(bad()) };
            b.elu_fwd(x.1, *alpha, v(b, x), vm(b, y));
        }
        Kind::EluBwd(alpha) => {
            let [x, dy, dx] = &mut bufs[..] else { return Err(bad()) };
            b.elu_bwd(x.1, *alpha, v(b, x), v(b, dy), vm(b, dx));
        }
        Kind::MaxPoolFwd(g) => {
            let [x, y] = &mut bufs[..] else { return Err(bad()) };
            b.max_pool2d_fwd(g, v(b, x), vm(b, y));
        }
        Kind::MaxPoolBwd(g) => {
            let [x, dy, dx] = &mut bufs[..] else { return Err(bad()) };
            b.max_pool2d_bwd(g, v(b, x), v(b, dy), vm(b, dx));
        }
        Kind::GmpFwd(g) => {
            let [x, y] = &mut bufs[..] else { return Err(bad()) };
            b.global_max_pool_fwd(g, v(b, x), vm(b, y));
        }
        Kind::GmpBwd(g) => {
            let [x, dy, dx] = &mut bufs[..] else { return Err(bad()) };
            b.global_max_pool_bwd(g, v(b, x), v(b, dy), vm(b, dx));
        }
        Kind::GapFwd(g) => {
            let [x, y] = &mut bufs[..] else { return Err(bad()) };
            b.global_avg_pool_fwd(g, v(b, x), vm(b, y));
        }
        Kind::GapBwd(g) => {
            let [dy, dx] = &mut bufs[..] else { return Err(bad()) };
            b.global_avg_pool_bwd(g, v(b, dy), vm(b, dx));
        }
        Kind::LinearFwd(g, with_bias) => {
            let [x, w, bias, y] = &mut bufs[..] else { return Err(bad()) };
            b.linear_fwd(g, v(b, x), v(b, w), with_bias.then(|| v(b, bias)), vm(b, y));
        }
        Kind::LinearBwd(g, with_dx, with_db) => {
            let [x, w, dy, dx, dw, db] = &mut bufs[..] else { return Err(bad()) };
            b.linear_bwd(g, v(b, x), v(b, w), v(b, dy), with_dx.then(|| vm(b, dx)), vm(b, dw), with_db.then(|| vm(b, db)));
        }
        Kind::Add => {
            let [a, c, y] = &mut bufs[..] else { return Err(bad()) };
            b.add_fwd(a.1, v(b, a), v(b, c), vm(b, y));
        }
        Kind::ConcatFwd(g) => {
            let Some((y, xs)) = bufs.split_last_mut() else { return Err(bad()) };
            let views: Vec<B::View<'_>> = xs.iter().map(|e| v(b, e)).collect();
            b.concat_fwd(g, &views, vm(b, y));
        }
        Kind::ConcatBwd(g) => {
            let Some((dy, dxs)) = bufs.split_first_mut() else { return Err(bad()) };
            let views: Vec<B::ViewMut<'_>> = dxs.iter_mut().map(|e| vm(b, e)).collect();
            b.concat_bwd(g, v(b, dy), views);
        }
        Kind::CeFwd(g, labels) => {
            let [logits, probs, loss] = &mut bufs[..] else { return Err(bad()) };
            b.cross_entropy_fwd(g, v(b, logits), labels, vm(b, probs), vm(b, loss));
        }
        Kind::CeBwd(g, labels, dloss) => {
            let [probs, dlogits] = &mut bufs[..] else { return Err(bad()) };
            b.cross_entropy_bwd(g, v(b, probs), labels, *dloss, vm(b, dlogits));
        }
        Kind::Sgd(segs, momentum) => {
            let [params, grads, mbufs] = &mut bufs[..] else { return Err(bad()) };
            b.sgd_step(segs, *momentum, vm(b, params), v(b, grads), vm(b, mbufs));
        }
        Kind::BtFwd(g) => {
            let [za, zb, ah, bh, ia, ib, c, t] = &mut bufs[..] else { return Err(bad()) };
            b.barlow_twins_fwd(g, v(b, za), v(b, zb), vm(b, ah), vm(b, bh), vm(b, ia), vm(b, ib), vm(b, c), vm(b, t));
        }
        Kind::BtBwd(g, dloss) => {
            let [ah, bh, ia, ib, c, dza, dzb] = &mut bufs[..] else { return Err(bad()) };
            b.barlow_twins_bwd(g, v(b, ah), v(b, bh), v(b, ia), v(b, ib), v(b, c), *dloss, vm(b, dza), vm(b, dzb));
        }
        Kind::L2Std(g) => {
            let [z, out] = &mut bufs[..] else { return Err(bad()) };
            b.l2_normalized_std_fwd(g, v(b, z), vm(b, out));
        }
        Kind::Lars(segs, momentum, eta) => {
            let [params, grads, mbufs] = &mut bufs[..] else { return Err(bad()) };
            b.lars_step(segs, *momentum, *eta, vm(b, params), v(b, grads), vm(b, mbufs));
        }
        Kind::Adamw(segs, beta1, beta2, eps) => {
            let [params, grads, m, s] = &mut bufs[..] else { return Err(bad()) };
            b.adamw_step(segs, *beta1, *beta2, *eps, vm(b, params), v(b, grads), vm(b, m), vm(b, s));
        }
        Kind::GradNorm(segs) => {
            let [grads, norm] = &mut bufs[..] else { return Err(bad()) };
            b.grad_norm(segs, v(b, grads), vm(b, norm));
        }
        Kind::Scale(alpha) => {
            let [y] = &mut bufs[..] else { return Err(bad()) };
            b.scale(y.1, *alpha, vm(b, y));
        }
        Kind::AugmentFwd(g, images, params, perms) => {
            let bytes = b.upload_bytes(images)?;
            let views: Vec<B::ViewMut<'_>> = bufs.iter_mut().map(|e| vm(b, e)).collect();
            b.augment_fwd(g, &bytes, params, perms, views);
        }
        Kind::JigsawFwd(g, perms) => {
            let [x, y] = &mut bufs[..] else { return Err(bad()) };
            b.jigsaw_fwd(g, perms, v(b, x), vm(b, y));
        }
    }
    let mut outs = Vec::new();
    for (hb, (buf, _)) in case.bufs.iter().zip(&bufs) {
        if hb.out {
            let format = if hb.role == Act { b.activation_format() } else { b.param_format() };
            outs.push(b.download(&Shape(hb.shape.clone()), format, buf)?);
        }
    }
    Ok(outs)
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "panic".into())
}

/// `run_case`, with a panic turned into an error message.
fn run_guarded<B: Backend + 'static>(b: &B, case: &Case) -> std::result::Result<Vec<Vec<f32>>, String> {
    match catch_unwind(AssertUnwindSafe(|| run_case(b, case))) {
        Ok(Ok(outs)) => Ok(outs),
        Ok(Err(e)) => Err(format!("error: {e}")),
        Err(p) => Err(format!("panicked: {}", panic_message(p))),
    }
}

/// Error of one output: (max abs, scale-relative max, first mismatch description).
fn compare(name: &str, got: &[f32], reference: &[f32], tol: f64) -> (f64, f64, Option<String>) {
    if got.len() != reference.len() {
        return (f64::INFINITY, f64::INFINITY, Some(format!("{name}: {} values, reference has {}", got.len(), reference.len())));
    }
    let scale = reference.iter().filter(|r| r.is_finite()).fold(0f64, |a, &r| a.max((r as f64).abs()));
    let denom = if scale > 0.0 { scale } else { 1.0 };
    let mut max_abs = 0f64;
    let mut first = None;
    for (i, (&g, &r)) in got.iter().zip(reference).enumerate() {
        let d = if r.is_finite() {
            if g.is_finite() {
                (g as f64 - r as f64).abs()
            } else {
                f64::INFINITY
            }
        } else if g.is_nan() == r.is_nan() && (r.is_nan() || g == r) {
            0.0
        } else {
            f64::INFINITY
        };
        if d > tol * denom && first.is_none() {
            let what = if g.is_nan() && !r.is_nan() { " (unwritten: still NaN)" } else { "" };
            first = Some(format!("{name}[{i}] = {g} vs {r}{what}"));
        }
        max_abs = max_abs.max(d);
    }
    (max_abs, max_abs / denom, first)
}

fn measure<D: Backend + 'static>(dev: &D, cpu: &Cpu, case: &Case) -> OpRow {
    let mut row = OpRow { op: case.op.into(), shape: case.shape.clone(), max_abs: 0.0, max_rel: 0.0, tol: case.tol, pass: true, note: String::new() };
    let fail = |mut row: OpRow, note: String| {
        row.max_abs = f64::INFINITY;
        row.max_rel = f64::INFINITY;
        row.pass = false;
        row.note = note;
        row
    };
    let reference = match run_guarded(cpu, case) {
        Ok(o) => o,
        Err(e) => return fail(row, format!("the CPU reference failed: {e}")),
    };
    let got = match run_guarded(dev, case) {
        Ok(o) => o,
        Err(e) => return fail(row, e),
    };
    let names = case.bufs.iter().filter(|b| b.out).map(|b| b.name);
    let mut worst_rel = -1.0;
    for ((name, g), r) in names.zip(&got).zip(&reference) {
        let (abs, rel, first) = compare(name, g, r, case.tol);
        row.max_abs = row.max_abs.max(abs);
        if rel > worst_rel {
            worst_rel = rel;
            row.max_rel = rel;
        }
        if let Some(f) = first {
            if row.pass {
                row.note = format!("first mismatch {f}");
            }
            row.pass = false;
        }
    }
    row
}

// ---- ResNet steps --------------------------------------------------------------------------------------------

struct StepSetup {
    arch: Arch,
    classes: usize,
    n: usize,
    size: usize,
    steps: usize,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

/// Losses of `steps` SGD steps (each loss measured before its update) from the weights in `host`, and the
/// backend's device-allocation count after each step (empty when it does not count).
fn train_losses<B: Backend>(
    b: &B,
    s: &StepSetup,
    net: &ResNet,
    reg: &crate::model::Registry,
    host: &HostState,
    input: &[f32],
    labels: &[u32],
) -> Result<(Vec<f32>, Vec<u64>)> {
    let mut st = State::upload(b, reg, host)?;
    let mut losses = Vec::with_capacity(s.steps);
    let mut allocations = Vec::with_capacity(s.steps);
    for _ in 0..s.steps {
        let x = Tensor::from_host(b, [s.n, 3, s.size, s.size], input)?;
        st.params.zero_grad(b);
        let acts = net.forward(b, &mut st, &x, Mode::Train, 4)?;
        let pooled = net.pooled_features(b, &acts)?;
        let logits = net.logits(b, &st, &pooled)?;
        let (loss, saved) = cross_entropy::forward(b, &logits, labels)?;
        let dlogits = cross_entropy::backward(b, &saved, labels, 1.0)?;
        let d4 = net.logits_backward(b, &mut st, &acts.output().shape, &pooled, &dlogits)?;
        net.backward(b, &mut st, &x, &acts, vec![None, None, None, Some(d4)], false)?;
        st.params.sgd_step(b, s.lr, s.momentum, s.weight_decay, |_| true);
        losses.push(loss);
        allocations.extend(b.device_allocations());
    }
    Ok((losses, allocations))
}

/// `train()`, with an error or a panic turned into the message that stops the check.
fn guarded(train: impl FnOnce() -> Result<(Vec<f32>, Vec<u64>)>) -> std::result::Result<(Vec<f32>, Vec<u64>), String> {
    match catch_unwind(AssertUnwindSafe(train)) {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(e)) => Err(format!("error: {e}")),
        Err(p) => Err(format!("panicked: {}", panic_message(p))),
    }
}

// ---- FG-SSL iterations ---------------------------------------------------------------------------------------

struct SslSetup {
    n: usize,
    /// Side of the u8 images (the cache's size).
    src: usize,
    /// Side of the views.
    out: usize,
    grids: (usize, usize, usize),
    iterations: usize,
    lr: f32,
}

/// The step losses of `iterations` FG-SSL iterations, fed as `fgssl pretrain` feeds them: the same u8 batch
/// uploaded every iteration, views and jigsaw puzzles made on the backend, the four progressive steps with an SGD
/// update after each; and the backend's device-allocation count after each iteration.
fn ssl_losses<B: Backend>(b: &B, f: &SslSetup, seed: u64) -> Result<(Vec<f32>, Vec<u64>)> {
    let (model, reg) = Fgssl::new(FgsslConfig::new(Arch::ResNet18), 0.1);
    let mut st = State::upload(b, &reg, &HostState::init(&reg, seed))?;
    let mut opt = Optimizer::new(OptimizerKind::SGD_DEFAULT);
    let views = SslViewConfig::new(f.out, Grids([f.grids.0, f.grids.1, f.grids.2]));
    let mut rng = Rng::new(seed.wrapping_add(2));
    let images: Vec<u8> = (0..f.n * f.src * f.src * 3).map(|_| rng.below(256) as u8).collect();
    let samples: Vec<u32> = (0..f.n as u32).collect();
    let mut losses = Vec::with_capacity(4 * f.iterations);
    let mut allocations = Vec::with_capacity(f.iterations);
    for iteration in 0..f.iterations {
        let batch = ImageBatch::upload(b, &images, f.n, f.src)?;
        let v = augment::ssl_views(b, &views, &batch, seed, iteration as u32, &samples)?;
        let inputs = SslBatch { x1: &v.x1, jigsaw: [&v.jig[0], &v.jig[1], &v.jig[2]], x2: &v.x2 };
        let logs = ssl_iteration(b, &model, &mut st, &mut opt, f.lr, &SslConfig::default(), &inputs, &mut NoPhases)?;
        losses.extend(logs.iter().map(|l| l.loss));
        allocations.extend(b.device_allocations());
    }
    Ok((losses, allocations))
}

// ---- the harness ---------------------------------------------------------------------------------------------

/// Runs every op case and the ResNet step check on `dev` against [`Cpu`], inputs seeded by `opts.seed`. The
/// reference follows the device's precision (`Cpu::with_precision(dev.precision())`: with bf16 it emulates the
/// tensor-core convolutions' rounding), except for the cases that launch a CUDA device's fp32 conv kernels directly
/// (`conv_cases::runs_fp32_kernels`), which an fp32 reference checks.
pub fn run<D: Backend + 'static>(dev: &D, opts: &Options) -> Report {
    let cpu = Cpu::with_precision(dev.precision());
    let cpu_fp32 = Cpu::new();
    let mut report = Report {
        seed: opts.seed,
        device: dev.name(),
        reference: cpu.name(),
        precision: dev.precision(),
        ops: Vec::new(),
        resnet: TrainingCheck::new("resnet steps", String::new()),
        fgssl: TrainingCheck::new("fgssl steps", String::new()),
    };
    if opts.live {
        println!("{}", report.header());
        println!("{OP_HEADER}");
    }
    let mut rng = Rng::new(opts.seed);
    for case in cases(&mut rng, opts.quick) {
        let reference = if conv_cases::runs_fp32_kernels(dev, &case) { &cpu_fp32 } else { &cpu };
        let row = measure(dev, reference, &case);
        if opts.live {
            println!("{}", op_line(&row));
        }
        report.ops.push(row);
    }

    let (tol_loss, tol_ssl_loss) = match dev.precision() {
        Precision::Fp32 => (TOL_LOSS, TOL_SSL_LOSS),
        Precision::Bf16 => (TOL_LOSS_BF16, TOL_SSL_LOSS_BF16),
    };
    let s = StepSetup {
        arch: Arch::ResNet18,
        classes: 10,
        n: 8,
        size: 64,
        steps: if opts.quick { 2 } else { 4 },
        lr: 0.002,
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    report.resnet.what = format!(
        "{} SGD steps of {} ({} classes) on {}x3x{}x{}, lr {} momentum {} weight decay {}, same initial weights (seed {}); \
         tolerance |diff| <= {:e} * max(1, |loss|)",
        s.steps, s.arch, s.classes, s.n, s.size, s.size, s.lr, s.momentum, s.weight_decay, opts.seed, tol_loss
    );
    if opts.live {
        println!("{}", report.resnet.what);
    }
    let (net, reg) = ResNet::new(s.arch, Some(s.classes), false);
    let host = HostState::init(&reg, opts.seed);
    let mut rng = Rng::new(opts.seed.wrapping_add(1));
    let input = rng.vec_uniform(s.n * 3 * s.size * s.size, -2.0, 2.0);
    let labels: Vec<u32> = (0..s.n).map(|_| rng.below(s.classes) as u32).collect();
    let reference = guarded(|| train_losses(&cpu, &s, &net, &reg, &host, &input, &labels));
    let got = guarded(|| train_losses(dev, &s, &net, &reg, &host, &input, &labels));
    report.resnet.compare(opts.live, tol_loss, reference, got);

    let f = SslSetup { n: 8, src: 40, out: 32, grids: (8, 4, 2), iterations: if opts.quick { 2 } else { 3 }, lr: 1e-6 };
    report.fgssl.what = format!(
        "{} FG-SSL iterations (4 progressive steps each, SGD lr {}) of a ResNet-18 FG-SSL model on {} random u8 images \
         of {}x{} -> views {}x{}, grids {},{},{}, same initial weights (seed {}); tolerance |diff| <= {:e} * max(1, |loss|)",
        f.iterations, f.lr, f.n, f.src, f.src, f.out, f.out, f.grids.0, f.grids.1, f.grids.2, opts.seed, tol_ssl_loss
    );
    if opts.live {
        println!("{}", report.fgssl.what);
    }
    let reference = guarded(|| ssl_losses(&cpu, &f, opts.seed));
    let got = guarded(|| ssl_losses(dev, &f, opts.seed));
    report.fgssl.compare(opts.live, tol_ssl_loss, reference, got);
    report
}
