//! The convolution kernel versions as launched directly, outside the `Backend` trait (today: the bf16 tensor-core
//! kernels of `kernels/conv2d_bf16.cu` in their own NHWC layout, every tile; the trait reaches them through the NCHW
//! boundary of `launch::conv2d_bf16_nchw` with `--precision bf16`) checked against the CPU reference, plus what `fgssl lab conv` shares with that check:
//! the conv shape list of a model ([`conv_shapes`]), the version table ([`VERSIONS`]), device operands and one
//! validated run of a (version, step) pair ([`validate`]).
//!
//! Reference: the inputs are rounded to bf16 on the host first (so every product is exact in f32), then the f32 CPU
//! convolution runs on them (`Cpu::conv2d_fwd` / `conv2d_bwd`). The device runs the same rounded values: fp32
//! versions take them as f32 NCHW; the bf16 version gets them converted on the device (`nchw_to_nhwc`, exact for
//! bf16-representable values) and its outputs converted back (`nhwc_to_nchw` / `nhwc_f32_to_nchw`), so the layout
//! kernels are checked on the way. Outputs start as NaN (bf16 0xFFFF), dw from random values (accumulation).
//! Tolerances (scale-relative, as `crate::selftest`): [`TOL_F32_OUT`] = 1e-3 for f32 outputs of the bf16 kernels
//! (fp32 accumulation in another order, over K up to 4608 terms in the check shapes, on tensor cores whose internal
//! adds are not IEEE round-to-nearest); [`TOL_BF16_OUT`] = 2^-8 + 1e-3 for bf16 outputs (round to nearest bf16 moves a
//! value by at most 2^-9 of itself, bounded by 2^-8 of the output scale). fp32 versions: `TOL_REDUCTION` (1e-4).

use std::time::Instant;

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};

use super::{compare, OpRow, TOL_REDUCTION};
use crate::backend::cpu::Cpu;
use crate::backend::cuda::launch::{self, conv2d_bf16 as bf};
use crate::backend::cuda::Cuda;
use crate::backend::geom::Conv2dGeom;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::fgssl::FgsslConfig;
use crate::model::resnet::Arch;
use crate::rng::Rng;
use crate::tensor::Shape;

/// Scale-relative tolerance of f32 outputs of the bf16 kernels.
pub const TOL_F32_OUT: f64 = 1e-3;
/// Scale-relative tolerance of bf16 outputs: the f32 tolerance plus bf16 output rounding (2^-8).
pub const TOL_BF16_OUT: f64 = 1.0 / 256.0 + TOL_F32_OUT;

// ---- shapes ----------------------------------------------------------------------------------------------------------

/// One distinct convolution of a model: square input `size`, `count` occurrences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Where it first occurs, e.g. `layer2.0.conv2 3x3 128->128 s2 @56`.
    pub name: String,
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub size: usize,
    pub count: usize,
}

impl ConvShape {
    pub fn geom(&self, batch: usize) -> Conv2dGeom {
        Conv2dGeom::new(batch, self.c_in, self.size, self.size, self.c_out, self.k, self.stride, self.pad)
    }
}

/// Every distinct convolution of `arch` at input `size` (the torchvision layout `ResNet::new` builds: stem 7x7/2,
/// max pool 3x3/2, stride on the first block of stages 2-4, on the 3x3 conv of a bottleneck, 1x1 downsample), and
/// with `heads` the FG-SSL conv blocks (1x1 C->F, 3x3 F->P on `layer2..layer4`, `Fgssl::new`). Counts are per
/// forward pass; `tests/conv_bf16_host.rs` checks the list against the model's registered weights.
pub fn conv_shapes(arch: Arch, size: usize, heads: bool) -> Vec<ConvShape> {
    let mut out: Vec<ConvShape> = Vec::new();
    let mut add = |name: String, c_in: usize, c_out: usize, k: usize, stride: usize, size: usize| {
        let pad = (k - 1) / 2;
        match out.iter_mut().find(|s| (s.c_in, s.c_out, s.k, s.stride, s.size) == (c_in, c_out, k, stride, size)) {
            Some(s) => s.count += 1,
            None => {
                let name = format!("{name} {k}x{k} {c_in}->{c_out} s{stride} @{size}");
                out.push(ConvShape { name, c_in, c_out, k, stride, pad, size, count: 1 })
            }
        }
    };
    let out_size = |s: usize, k: usize, stride: usize| (s + 2 * ((k - 1) / 2) - k) / stride + 1;
    add("conv1".into(), 3, 64, 7, 2, size);
    let mut sp = out_size(out_size(size, 7, 2), 3, 2); // stem, then the 3x3/2 max pool (padding 1)
    let mut c_in = 64;
    let mut stage_sp = [0; 4];
    for (st, (&depth, &c_out)) in arch.depths().iter().zip(&arch.stage_channels()).enumerate() {
        let width = 64 << st;
        for i in 0..depth {
            let stride = if st > 0 && i == 0 { 2 } else { 1 };
            let name = |conv: &str| format!("layer{}.{i}.{conv}", st + 1);
            let next = out_size(sp, 3, stride);
            if arch.bottleneck() {
                add(name("conv1"), c_in, width, 1, 1, sp);
                add(name("conv2"), width, width, 3, stride, sp);
                add(name("conv3"), width, c_out, 1, 1, next);
            } else {
                add(name("conv1"), c_in, c_out, 3, stride, sp);
                add(name("conv2"), c_out, c_out, 3, 1, next);
            }
            if stride != 1 || c_in != c_out {
                add(name("downsample.0"), c_in, c_out, 1, stride, sp);
            }
            c_in = c_out;
            sp = next;
        }
        stage_sp[st] = sp;
    }
    if heads {
        let cfg = FgsslConfig::new(arch);
        let stage_c = arch.stage_channels();
        for k in 0..3 {
            add(format!("conv_block{}.0", k + 1), stage_c[k + 1], cfg.embed_dim, 1, 1, stage_sp[k + 1]);
            add(format!("conv_block{}.1", k + 1), cfg.embed_dim, cfg.pooled(), 3, 1, stage_sp[k + 1]);
        }
    }
    out
}

// ---- versions ----------------------------------------------------------------------------------------------------------

/// What one timed / validated launch computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Fwd,
    /// Input gradient only.
    Dgrad,
    /// Weight gradient only (accumulated).
    Wgrad,
    /// Input and weight gradient in one call (the `Backend::conv2d_bwd` shape of the fp32 launchers).
    Bwd,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Fwd => "fwd",
            Step::Dgrad => "dgrad",
            Step::Wgrad => "wgrad",
            Step::Bwd => "dgrad+wgrad",
        }
    }
    /// FLOPs (2 per multiply-accumulate) of the step at geometry `g`.
    pub fn flops(self, g: &Conv2dGeom) -> f64 {
        let one = 2.0 * g.macs() as f64;
        if self == Step::Bwd {
            2.0 * one
        } else {
            one
        }
    }
}

/// `launch::conv2d::fwd`'s signature (fp32 NCHW, bias optional).
pub type Fp32Fwd =
    fn(&Cuda, &Conv2dGeom, &CudaView<'_, f32>, &CudaView<'_, f32>, Option<&CudaView<'_, f32>>, &mut CudaViewMut<'_, f32>) -> Result<()>;
/// `launch::conv2d::bwd`'s signature.
pub type Fp32Bwd = fn(
    &Cuda,
    &Conv2dGeom,
    &CudaView<'_, f32>,
    &CudaView<'_, f32>,
    &CudaView<'_, f32>,
    Option<&mut CudaViewMut<'_, f32>>,
    &mut CudaViewMut<'_, f32>,
    Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()>;

/// How a version computes.
#[derive(Clone, Copy)]
pub enum Impl {
    /// Launchers with the `Backend` signatures (NCHW f32 operands), whatever they multiply in.
    Fp32 { fwd: Fp32Fwd, bwd: Fp32Bwd },
    /// `launch::conv2d_bf16` (NHWC bf16, tensor cores).
    Bf16,
}

/// One kernel version the lab times and validates.
#[derive(Clone, Copy)]
pub struct Version {
    pub name: &'static str,
    pub imp: Impl,
}

impl Version {
    pub fn steps(&self) -> &'static [Step] {
        match self.imp {
            Impl::Fp32 { .. } => &[Step::Fwd, Step::Bwd],
            Impl::Bf16 => &[Step::Fwd, Step::Dgrad, Step::Wgrad],
        }
    }
}

/// Every version, in the lab's column order. Adding one is one line.
pub const VERSIONS: &[Version] = &[
    Version { name: "fp32", imp: Impl::Fp32 { fwd: launch::conv2d::fwd, bwd: launch::conv2d::bwd } },
    Version { name: "bf16-tc", imp: Impl::Bf16 },
    // What `--precision bf16` trains with: the tensor-core kernels behind the engine's NCHW f32 boundary (operand
    // conversions, c_out padding, the f32 result back to NCHW), so the gap to `bf16-tc` is the conversions' cost.
    Version { name: "bf16-nchw", imp: Impl::Fp32 { fwd: launch::conv2d_bf16_nchw::fwd, bwd: launch::conv2d_bf16_nchw::bwd } },
    // The direct baseline the implicit GEMM replaced (one thread per output; its weight gradient runs one thread per
    // weight over n*ho*wo terms, seconds per launch at batch 128): kept to show what the GEMM bought.
    Version { name: "fp32-direct", imp: Impl::Fp32 { fwd: launch::conv2d_direct::fwd, bwd: launch::conv2d_direct::bwd } },
];

// ---- operands on the device ------------------------------------------------------------------------------------------

fn cuda_err(what: impl std::fmt::Display) -> Error {
    Error::Backend { backend: "cuda".into(), reason: what.to_string() }
}

/// The host inputs of one check: NCHW f32, already rounded to bf16; dw's starting value.
pub struct HostInputs {
    pub x: Vec<f32>,
    pub w: Vec<f32>,
    pub dy: Vec<f32>,
    pub dw0: Vec<f32>,
}

impl HostInputs {
    pub fn random(g: &Conv2dGeom, rng: &mut Rng) -> Self {
        let mut r = |n: usize, scale: f32| (0..n).map(|_| bf::round_bf16(rng.uniform_in(-scale, scale))).collect::<Vec<f32>>();
        let x = r(g.x_len(), 1.0);
        let w = r(g.w_len(), 0.3);
        let dy = r(g.y_len(), 1.0);
        let dw0 = r(g.w_len(), 1.0);
        HostInputs { x, w, dy, dw0 }
    }
}

/// Operands of one (version, geometry) in the version's own layout; outputs included.
pub enum Operands {
    Fp32 { x: CudaSlice<f32>, w: CudaSlice<f32>, dy: CudaSlice<f32>, y: CudaSlice<f32>, dx: CudaSlice<f32>, dw: CudaSlice<f32> },
    Bf16 { x: CudaSlice<u16>, w: CudaSlice<u16>, dy: CudaSlice<u16>, y: CudaSlice<u16>, dx: CudaSlice<u16>, dw: CudaSlice<f32> },
}

fn up<T: cudarc::driver::DeviceRepr>(cx: &Cuda, v: &[T]) -> Result<CudaSlice<T>> {
    cx.stream().clone_htod(v).map_err(|e| cuda_err(format!("upload of {} elements failed: {e:?}", v.len())))
}

fn down<T: cudarc::driver::DeviceRepr + Default + Clone>(cx: &Cuda, v: &CudaSlice<T>) -> Result<Vec<T>> {
    cx.stream().clone_dtoh(v).map_err(|e| cuda_err(format!("download failed: {e:?}")))
}

impl Operands {
    /// Uploads `h` for `version` (the bf16 version converts NCHW f32 -> NHWC bf16 on the device); outputs poisoned.
    pub fn upload(cx: &Cuda, version: &Version, g: &Conv2dGeom, h: &HostInputs) -> Result<Operands> {
        match version.imp {
            Impl::Fp32 { .. } => Ok(Operands::Fp32 {
                x: up(cx, &h.x)?,
                w: up(cx, &h.w)?,
                dy: up(cx, &h.dy)?,
                y: up(cx, &vec![f32::NAN; g.y_len()])?,
                dx: up(cx, &vec![f32::NAN; g.x_len()])?,
                dw: up(cx, &h.dw0)?,
            }),
            Impl::Bf16 => {
                let bg = bf::ConvBf16Geom::new(g)?;
                let c = bg.c as usize;
                let to_nhwc = |v: &[f32], dims: [usize; 4]| -> Result<CudaSlice<u16>> {
                    let src = up(cx, v)?;
                    let mut dst = up(cx, &vec![0xffffu16; dims[0] * dims[2] * dims[3]])?;
                    bf::nchw_to_nhwc(cx, dims, &src.slice(..), &mut dst.slice_mut(..))?;
                    Ok(dst)
                };
                Ok(Operands::Bf16 {
                    x: to_nhwc(&h.x, [g.n, g.c_in, g.h * g.w, c])?,
                    w: to_nhwc(&h.w, [g.c_out, g.c_in, g.kh * g.kw, c])?,
                    dy: to_nhwc(&h.dy, [g.n, g.c_out, g.ho * g.wo, g.c_out])?,
                    y: up(cx, &vec![0xffffu16; bg.y_len()])?,
                    dx: up(cx, &vec![0xffffu16; bg.x_len()])?,
                    dw: up(cx, &bf::host_nchw_to_nhwc_f32([g.c_out, g.c_in, g.kh * g.kw, c], &h.dw0))?,
                })
            }
        }
    }

    /// Enqueues `step` of `version` on these operands.
    pub fn launch(&mut self, cx: &Cuda, version: &Version, step: Step, g: &Conv2dGeom) -> Result<()> {
        match (self, version.imp) {
            (Operands::Fp32 { x, w, dy, y, dx, dw }, Impl::Fp32 { fwd, bwd }) => match step {
                Step::Fwd => fwd(cx, g, &x.slice(..), &w.slice(..), None, &mut y.slice_mut(..)),
                Step::Bwd => bwd(cx, g, &x.slice(..), &w.slice(..), &dy.slice(..), Some(&mut dx.slice_mut(..)), &mut dw.slice_mut(..), None),
                s => Err(cuda_err(format!("{}: step {} is not offered", version.name, s.name()))),
            },
            (Operands::Bf16 { x, w, dy, y, dx, dw }, Impl::Bf16) => match step {
                Step::Fwd => bf::fwd(cx, g, &x.slice(..), &w.slice(..), Some(&mut y.slice_mut(..)), None),
                Step::Dgrad => bf::dgrad(cx, g, &dy.slice(..), &w.slice(..), Some(&mut dx.slice_mut(..)), None),
                Step::Wgrad => bf::wgrad(cx, g, &x.slice(..), &dy.slice(..), &mut dw.slice_mut(..)),
                s => Err(cuda_err(format!("{}: step {} is not offered", version.name, s.name()))),
            },
            _ => Err(cuda_err(format!("{}: operands of another version", version.name))),
        }
    }

    /// The step's outputs as NCHW / OIHW f32 (the bf16 version converts on the device), in the order
    /// `[y]`, `[dx]`, `[dw]` or `[dx, dw]`.
    pub fn outputs(&self, cx: &Cuda, step: Step, g: &Conv2dGeom) -> Result<Vec<Vec<f32>>> {
        match self {
            Operands::Fp32 { y, dx, dw, .. } => Ok(match step {
                Step::Fwd => vec![down(cx, y)?],
                Step::Dgrad => vec![down(cx, dx)?],
                Step::Wgrad => vec![down(cx, dw)?],
                Step::Bwd => vec![down(cx, dx)?, down(cx, dw)?],
            }),
            Operands::Bf16 { y, dx, dw, .. } => {
                let c = bf::pad8(g.c_in);
                let from_bf16 = |v: &CudaSlice<u16>, dims: [usize; 4]| -> Result<Vec<f32>> {
                    let mut out = up(cx, &vec![f32::NAN; dims[0] * dims[1] * dims[2]])?;
                    bf::nhwc_to_nchw(cx, dims, &v.slice(..), &mut out.slice_mut(..))?;
                    down(cx, &out)
                };
                let dw_oihw = || -> Result<Vec<f32>> {
                    let dims = [g.c_out, g.c_in, g.kh * g.kw, c];
                    let mut out = up(cx, &vec![f32::NAN; g.w_len()])?;
                    bf::nhwc_f32_to_nchw(cx, dims, &dw.slice(..), &mut out.slice_mut(..))?;
                    down(cx, &out)
                };
                match step {
                    Step::Fwd => Ok(vec![from_bf16(y, [g.n, g.c_out, g.ho * g.wo, g.c_out])?]),
                    Step::Dgrad => Ok(vec![from_bf16(dx, [g.n, g.c_in, g.h * g.w, c])?]),
                    Step::Wgrad => Ok(vec![dw_oihw()?]),
                    Step::Bwd => Ok(vec![from_bf16(dx, [g.n, g.c_in, g.h * g.w, c])?, dw_oihw()?]),
                }
            }
        }
    }
}

/// The CPU reference of `step`: `[y]`, `[dx]`, `[dw0 + dw]` or `[dx, dw0 + dw]`.
pub fn reference(step: Step, g: &Conv2dGeom, h: &HostInputs) -> Result<Vec<Vec<f32>>> {
    let cpu = Cpu::new();
    let up = |v: &[f32], d: &[usize]| cpu.upload(&Shape(d.to_vec()), cpu.activation_format(), v);
    let (xd, wd, yd) = ([g.n, g.c_in, g.h, g.w], [g.c_out, g.c_in, g.kh, g.kw], [g.n, g.c_out, g.ho, g.wo]);
    let x = up(&h.x, &xd)?;
    let w = up(&h.w, &wd)?;
    let get = |b: &<Cpu as Backend>::Buf, d: &[usize]| cpu.download(&Shape(d.to_vec()), cpu.activation_format(), b);
    if step == Step::Fwd {
        let mut y = up(&vec![0.0; g.y_len()], &yd)?;
        cpu.conv2d_fwd(g, cpu.view(&x, 0..g.x_len()), cpu.view(&w, 0..g.w_len()), None, cpu.view_mut(&mut y, 0..g.y_len()));
        return Ok(vec![get(&y, &yd)?]);
    }
    let dy = up(&h.dy, &yd)?;
    let mut dx = up(&vec![0.0; g.x_len()], &xd)?;
    let mut dw = up(&h.dw0, &wd)?;
    let (dxv, dwv) = (cpu.view_mut(&mut dx, 0..g.x_len()), cpu.view_mut(&mut dw, 0..g.w_len()));
    cpu.conv2d_bwd(g, cpu.view(&x, 0..g.x_len()), cpu.view(&w, 0..g.w_len()), cpu.view(&dy, 0..g.y_len()), Some(dxv), dwv, None);
    let (dx, dw) = (get(&dx, &xd)?, get(&dw, &wd)?);
    Ok(match step {
        Step::Dgrad => vec![dx],
        Step::Wgrad => vec![dw],
        _ => vec![dx, dw],
    })
}

/// The tolerance a (version, step) is held to.
pub fn tolerance(version: &Version) -> f64 {
    match version.imp {
        Impl::Fp32 { .. } => TOL_REDUCTION,
        Impl::Bf16 => TOL_BF16_OUT,
    }
}

/// Runs `step` of `version` once on `h` and compares with `reference_outs` (from [`reference`]).
pub fn validate(cx: &Cuda, version: &Version, step: Step, g: &Conv2dGeom, h: &HostInputs, reference_outs: &[Vec<f32>], shape: &str) -> OpRow {
    let tol = match (version.imp, step) {
        (Impl::Bf16, Step::Wgrad) => TOL_F32_OUT, // dw is f32
        _ => tolerance(version),
    };
    let mut row = OpRow {
        op: format!("conv2d_{}_{}", version.name, step.name()),
        shape: shape.into(),
        max_abs: 0.0,
        max_rel: 0.0,
        tol,
        pass: true,
        note: String::new(),
    };
    let got = (|| {
        let mut ops = Operands::upload(cx, version, g, h)?;
        ops.launch(cx, version, step, g)?;
        let outs = ops.outputs(cx, step, g)?;
        cx.synchronize()?;
        Ok::<_, Error>(outs)
    })();
    score(&mut row, got, reference_outs);
    row
}

fn score(row: &mut OpRow, got: Result<Vec<Vec<f32>>>, reference_outs: &[Vec<f32>]) {
    let got = match got {
        Ok(g) => g,
        Err(e) => {
            row.pass = false;
            row.max_abs = f64::INFINITY;
            row.max_rel = f64::INFINITY;
            row.note = format!("error: {e}");
            return;
        }
    };
    for (i, (g, r)) in got.iter().zip(reference_outs).enumerate() {
        let (abs, rel, first) = compare(if i == 0 && got.len() == 1 { "out" } else { ["dx", "dw"][i.min(1)] }, g, r, row.tol);
        row.max_abs = row.max_abs.max(abs);
        row.max_rel = row.max_rel.max(rel);
        if let Some(f) = first {
            if row.pass {
                row.note = format!("first mismatch {f}");
            }
            row.pass = false;
        }
    }
}

// ---- the selftest section --------------------------------------------------------------------------------------------

/// Geometries of the selftest: every distinct ResNet-50 conv (and FG-SSL head conv) at input 40 (so stages run at
/// 10, 5, 3, 2: odd sizes, 3x3 on 2x2 and 3x3 maps), batch 2, plus odd shapes (batch 3, non-square, channel counts
/// that are not multiples of any tile). Quick: batch 1 and one shape of each kernel size / stride.
pub fn check_geoms(quick: bool) -> Vec<(String, Conv2dGeom)> {
    let batch = if quick { 1 } else { 2 };
    let mut out: Vec<(String, Conv2dGeom)> = Vec::new();
    let mut kinds_seen: Vec<(usize, usize)> = Vec::new();
    for s in conv_shapes(Arch::ResNet50, 40, true) {
        if quick && kinds_seen.contains(&(s.k, s.stride)) {
            continue;
        }
        kinds_seen.push((s.k, s.stride));
        out.push((s.name.clone(), s.geom(batch)));
    }
    let odd = [(3, 5, 11, 7, 24, 3, 2, 1), (3, 3, 13, 9, 16, 7, 2, 3), (1, 200, 6, 5, 40, 1, 1, 0), (2, 24, 9, 9, 136, 3, 1, 1)];
    for &(n, ci, h, w, co, k, s, p) in odd.iter().take(if quick { 1 } else { odd.len() }) {
        out.push((format!("odd n{n} c{ci} {h}x{w} -> c{co} k{k} s{s} p{p}"), Conv2dGeom::new(n, ci, h, w, co, k, s, p)));
    }
    out
}

/// The bf16 kernels at every [`check_geoms`] shape: fwd (bf16 output, and the f32 output variant), dgrad (bf16 and
/// f32), wgrad (f32, accumulated). Each row is printed as it is measured when `live`.
pub fn run(cx: &Cuda, seed: u64, quick: bool, live: bool) -> Vec<OpRow> {
    let mut rows = Vec::new();
    let mut rng = Rng::new(seed ^ 0xbf16);
    let started = Instant::now();
    let bf16 = VERSIONS.iter().find(|v| matches!(v.imp, Impl::Bf16)).expect("the bf16 version is in the table");
    for (name, g) in check_geoms(quick) {
        let h = HostInputs::random(&g, &mut rng);
        for step in [Step::Fwd, Step::Dgrad, Step::Wgrad] {
            let reference_outs = match reference(step, &g, &h) {
                Ok(r) => r,
                Err(e) => {
                    let mut row = OpRow {
                        op: format!("conv2d_bf16_{}", step.name()),
                        shape: name.clone(),
                        max_abs: 0.0,
                        max_rel: 0.0,
                        tol: 0.0,
                        pass: true,
                        note: String::new(),
                    };
                    score(&mut row, Err(e), &[]);
                    rows.push(row);
                    continue;
                }
            };
            let mut push = |row: OpRow| {
                if live {
                    println!("{}", super::op_line(&row));
                }
                rows.push(row);
            };
            push(validate(cx, bf16, step, &g, &h, &reference_outs, &name));
            if step != Step::Wgrad {
                push(validate_f32_out(cx, step, &g, &h, &reference_outs, &name));
            }
        }
    }
    if live {
        println!("bf16 conv checks: {} rows in {:.1} s", rows.len(), started.elapsed().as_secs_f64());
    }
    rows
}

/// fwd / dgrad of the bf16 kernels with the f32 output variant (`y_f32` / `dx_f32`).
fn validate_f32_out(cx: &Cuda, step: Step, g: &Conv2dGeom, h: &HostInputs, reference_outs: &[Vec<f32>], shape: &str) -> OpRow {
    let mut row = OpRow {
        op: format!("conv2d_bf16-tc_{}_f32out", step.name()),
        shape: shape.into(),
        max_abs: 0.0,
        max_rel: 0.0,
        tol: TOL_F32_OUT,
        pass: true,
        note: String::new(),
    };
    let bf16 = Version { name: "bf16-tc", imp: Impl::Bf16 };
    let got = (|| {
        let ops = Operands::upload(cx, &bf16, g, h)?;
        let Operands::Bf16 { x, w, dy, .. } = &ops else { return Err(cuda_err("bf16 operands expected")) };
        let c = bf::pad8(g.c_in);
        let (len, dims) =
            if step == Step::Fwd { (g.y_len(), [g.n, g.c_out, g.ho * g.wo, g.c_out]) } else { (g.n * g.h * g.w * c, [g.n, g.c_in, g.h * g.w, c]) };
        let mut out_nhwc = up(cx, &vec![f32::NAN; len])?;
        if step == Step::Fwd {
            bf::fwd(cx, g, &x.slice(..), &w.slice(..), None, Some(&mut out_nhwc.slice_mut(..)))?;
        } else {
            bf::dgrad(cx, g, &dy.slice(..), &w.slice(..), None, Some(&mut out_nhwc.slice_mut(..)))?;
        }
        let mut out = up(cx, &vec![f32::NAN; dims[0] * dims[1] * dims[2]])?;
        bf::nhwc_f32_to_nchw(cx, dims, &out_nhwc.slice(..), &mut out.slice_mut(..))?;
        let v = down(cx, &out)?;
        cx.synchronize()?;
        Ok(vec![v])
    })();
    score(&mut row, got, reference_outs);
    row
}
