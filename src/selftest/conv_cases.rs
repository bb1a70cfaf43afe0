//! Convolution cases beyond the basic ones of [`super::cases`]: the ResNet / FG-SSL layer shapes at batch 1-2 and
//! small spatial size (so the CPU reference stays well under a second), every tile of the implicit GEMM forced in
//! turn (its heuristic picks the smallest tile at these sizes, so the large tiles would otherwise never run), the
//! split-K weight gradient with several splits, and the direct baseline kernels of the kernel lab.
//!
//! The forced-tile and direct cases call the CUDA launchers directly ([`run_on_cuda`]): the `Backend` trait has one
//! convolution. On any other backend (the CPU reference) they run the trait's convolution, which is what the
//! device result is compared with. Those launchers are the fp32 kernels whatever the device's precision, so on a
//! bf16 CUDA device they are checked against an fp32 reference ([`runs_fp32_kernels`]).
//!
//! [`PADDING_SHAPES`] are the shapes the bf16 path pads ([`crate::backend::cuda::launch::conv2d_bf16_nchw`]):
//! c_out not a multiple of 8 (padded output channels), the c_in 3 stem, stride 2, the 1x1 downsample, with and
//! without bias. They run through the `Backend` trait at every precision.

use std::any::Any;

use super::{mixed, u, Case, Kind, Role, TOL_REDUCTION};
use crate::backend::cuda::backend::Cuda;
use crate::backend::cuda::launch::conv2d_gemm::{plan_with, Pass, TILES};
use crate::backend::cuda::launch::{conv2d, conv2d_direct};
use crate::backend::geom::Conv2dGeom;
use crate::backend::Backend;
use crate::error::Result;
use crate::rng::Rng;
use crate::tensor::Shape;
use Role::{Act, Param};

/// A convolution shape: (n, c_in, h, w, c_out, k, stride, pad).
type ConvShape = (usize, usize, usize, usize, usize, usize, usize, usize);

/// (n, c_in, h, w, c_out, k, stride, pad) of the ResNet-18/50 and hierarchical-block layer types, shrunk.
const RESNET_SHAPES: &[ConvShape] = &[
    (1, 3, 32, 32, 64, 7, 2, 3),    // stem: 7x7 s2 p3, c_in 3
    (2, 64, 14, 14, 64, 3, 1, 1),   // 3x3 s1
    (2, 128, 14, 14, 256, 3, 2, 1), // 3x3 s2
    (2, 256, 7, 7, 64, 1, 1, 0),    // 1x1 s1 reduce
    (2, 64, 7, 7, 256, 1, 1, 0),    // 1x1 s1 expand
    (2, 256, 14, 14, 512, 1, 2, 0), // 1x1 s2 downsample
    (1, 256, 14, 14, 512, 3, 1, 1), // hierarchical block 256 -> 512
    (1, 512, 7, 7, 1024, 3, 1, 1),  // hierarchical block 512 -> 1024
    (2, 37, 11, 9, 45, 3, 2, 1),    // odd spatial size and channels
    (1, 129, 13, 13, 131, 3, 1, 1), // odd channels just past a tile
    (2, 64, 28, 28, 64, 1, 1, 0),   // K = n*h*w = 1568 with a 64x64 weight: the heuristic splits K
];

/// Odd shapes every tile is forced on (M, N and K not multiples of any tile; stride 2 and the 7x7 stem).
const TILE_SHAPES: &[ConvShape] =
    &[(2, 3, 15, 13, 70, 7, 2, 3), (2, 33, 9, 11, 130, 3, 2, 1), (1, 67, 12, 12, 129, 1, 1, 0), (2, 20, 10, 10, 20, 1, 2, 0)];

/// Shapes that exercise the bf16 path's padding: c_out not a multiple of 8 (stem-like c_in 3 with stride 2, a 1x1
/// stride-2 downsample, a 3x3), c_in not a multiple of 8, and c_out just past a multiple of 8.
const PADDING_SHAPES: &[ConvShape] = &[
    (2, 3, 17, 15, 10, 7, 2, 3),  // stem: c_in 3, 7x7 s2 p3, c_out 10
    (2, 24, 9, 9, 20, 1, 2, 0),   // 1x1 s2 downsample, c_out 20
    (1, 5, 8, 8, 3, 3, 1, 1),     // 3x3, c_in 5, c_out 3 (less than one group of 8)
    (2, 16, 10, 10, 17, 3, 2, 1), // 3x3 s2, c_out 17 (one past 16)
];

/// Split requests forced on the weight gradient (1 = straight into dw; 1000 = as many as K allows).
const SPLITS: &[usize] = &[1, 3, 1000];

fn desc(g: &Conv2dGeom) -> String {
    format!("n{} c{} {}x{} -> c{} k{} s{} p{}", g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.stride, g.pad)
}

fn dims(g: &Conv2dGeom) -> ([usize; 4], [usize; 4], [usize; 4]) {
    ([g.n, g.c_in, g.h, g.w], [g.c_out, g.c_in, g.kh, g.kw], [g.n, g.c_out, g.ho, g.wo])
}

/// A forward case: x, w, bias inputs, y poisoned.
fn fwd_case(rng: &mut Rng, op: &'static str, shape: String, kind: Kind, g: &Conv2dGeom) -> Case {
    let (xd, wd, yd) = dims(g);
    Case::new(op, shape, TOL_REDUCTION, kind)
        .input("x", &xd, Act, u(rng, g.x_len(), -1.0, 1.0))
        .input("w", &wd, Param, u(rng, g.w_len(), -0.3, 0.3))
        .input("bias", &[g.c_out], Param, u(rng, g.c_out, -0.5, 0.5))
        .output("y", &yd, Act)
}

/// A backward case: x, w, dy inputs, dx poisoned (or unused), dw accumulated from random values, dbias accumulated
/// (or unused; absent with `with_db == None`, the forced-tile layout).
fn bwd_case(rng: &mut Rng, op: &'static str, shape: String, kind: Kind, g: &Conv2dGeom, with_dx: bool, with_db: Option<bool>) -> Case {
    let (xd, wd, yd) = dims(g);
    let mut c = Case::new(op, shape, TOL_REDUCTION, kind)
        .input("x", &xd, Act, u(rng, g.x_len(), -1.0, 1.0))
        .input("w", &wd, Param, u(rng, g.w_len(), -0.3, 0.3))
        .input("dy", &yd, Act, mixed(rng, g.y_len()));
    c = if with_dx { c.output("dx", &xd, Act) } else { c.unused("dx", &xd, Act) };
    c = c.inout("dw", &wd, Param, u(rng, g.w_len(), -1.0, 1.0));
    match with_db {
        Some(true) => c.inout("dbias", &[g.c_out], Param, u(rng, g.c_out, -1.0, 1.0)),
        Some(false) => c.unused("dbias", &[g.c_out], Param),
        None => c,
    }
}

fn flags(with_dx: bool, with_db: bool) -> String {
    format!("{}{}", if with_dx { " +dx" } else { "" }, if with_db { " +dbias" } else { "" })
}

/// The cases of this module (quick: one ResNet shape, one forced-tile shape, one direct shape).
pub(super) fn conv_cases(rng: &mut Rng, quick: bool) -> Vec<Case> {
    let mut cs = Vec::new();
    let pick = |v: &[ConvShape]| if quick { v[..1].to_vec() } else { v.to_vec() };
    let geom = |&(n, ci, h, w, co, k, s, p): &ConvShape| Conv2dGeom::new(n, ci, h, w, co, k, s, p);

    // ResNet layer shapes through the Backend trait (the launcher's own tile / split choice).
    for (i, g) in pick(RESNET_SHAPES).iter().map(geom).enumerate() {
        let with_bias = i % 2 == 1;
        let shape = format!("{}{}", desc(&g), if with_bias { " +bias" } else { "" });
        cs.push(fwd_case(rng, "conv2d_fwd", shape, Kind::Conv2dFwd(g, with_bias), &g));
        for (with_dx, with_db) in [(true, with_bias), (false, !with_bias)] {
            let shape = format!("{}{}", desc(&g), flags(with_dx, with_db));
            cs.push(bwd_case(rng, "conv2d_bwd", shape, Kind::Conv2dBwd(g, with_dx, with_db), &g, with_dx, Some(with_db)));
        }
    }

    // The bf16 path's padded shapes through the Backend trait; the bias on every other shape, both backward flags.
    for (i, g) in pick(PADDING_SHAPES).iter().map(geom).enumerate() {
        let with_bias = i % 2 == 0;
        let shape = format!("{}{}", desc(&g), if with_bias { " +bias" } else { "" });
        cs.push(fwd_case(rng, "conv2d_fwd", shape, Kind::Conv2dFwd(g, with_bias), &g));
        for (with_dx, with_db) in [(true, with_bias), (false, !with_bias)] {
            let shape = format!("{}{}", desc(&g), flags(with_dx, with_db));
            cs.push(bwd_case(rng, "conv2d_bwd", shape, Kind::Conv2dBwd(g, with_dx, with_db), &g, with_dx, Some(with_db)));
        }
    }

    // Every tile forced, forward (with and without bias) and backward (dx, and dw with several split requests).
    for (i, g) in pick(TILE_SHAPES).iter().map(geom).enumerate() {
        for (t, tile) in TILES.iter().enumerate() {
            let with_bias = (i + t) % 2 == 0;
            let shape = format!("{} tile {}{}", desc(&g), tile.name, if with_bias { " +bias" } else { "" });
            cs.push(fwd_case(rng, "conv2d_gemm_fwd", shape, Kind::Conv2dTiledFwd(g, t, with_bias), &g));
            for &splits in SPLITS {
                let with_dx = splits == 1;
                let Ok(plan) = plan_with(Pass::Wgrad, &g, t, splits) else { continue };
                let shape = format!("{} tile {} splits {}{}", desc(&g), tile.name, plan.splits, flags(with_dx, false));
                cs.push(bwd_case(rng, "conv2d_gemm_bwd", shape, Kind::Conv2dTiledBwd(g, t, splits, with_dx), &g, with_dx, None));
            }
        }
    }

    // The direct baseline kernels (kernel lab), a pair of shapes.
    let direct: &[ConvShape] = &[(2, 3, 15, 13, 8, 7, 2, 3), (2, 16, 9, 9, 33, 3, 2, 1)];
    for (i, g) in pick(direct).iter().map(geom).enumerate() {
        let with_bias = i % 2 == 0;
        let shape = format!("{}{}", desc(&g), if with_bias { " +bias" } else { "" });
        cs.push(fwd_case(rng, "conv2d_direct_fwd", shape, Kind::Conv2dDirectFwd(g, with_bias), &g));
        let shape = format!("{}{}", desc(&g), flags(true, with_bias));
        cs.push(bwd_case(rng, "conv2d_direct_bwd", shape, Kind::Conv2dDirectBwd(g, true, with_bias), &g, true, Some(with_bias)));
    }
    cs
}

/// `b` as the CUDA backend, when it is one.
pub(super) fn as_cuda<B: Backend + 'static>(b: &B) -> Option<&Cuda> {
    (b as &dyn Any).downcast_ref::<Cuda>()
}

/// Whether `case` runs the fp32 conv kernels whatever `dev`'s precision: a forced-tile or direct-kernel case on a
/// CUDA device (launched directly by [`run_on_cuda`]). Its reference is the fp32 CPU.
pub(super) fn runs_fp32_kernels<B: Backend + 'static>(dev: &B, case: &Case) -> bool {
    as_cuda(dev).is_some() && is_launcher_case(case)
}

fn is_launcher_case(case: &Case) -> bool {
    matches!(case.kind, Kind::Conv2dTiledFwd(..) | Kind::Conv2dTiledBwd(..) | Kind::Conv2dDirectFwd(..) | Kind::Conv2dDirectBwd(..))
}

/// Runs a forced-tile or direct-kernel case on CUDA through its launcher (uploads, launch, downloads the compared
/// outputs in buffer order). `None` for every other kind (run through the `Backend` trait).
pub(super) fn run_on_cuda(cx: &Cuda, case: &Case) -> Option<Result<Vec<Vec<f32>>>> {
    if !is_launcher_case(case) {
        return None;
    }
    Some(run_launchers(cx, case))
}

fn run_launchers(cx: &Cuda, case: &Case) -> Result<Vec<Vec<f32>>> {
    let mut bufs = Vec::with_capacity(case.bufs.len());
    for hb in &case.bufs {
        let format = if hb.role == Act { cx.activation_format() } else { cx.param_format() };
        bufs.push(cx.upload(&Shape(hb.shape.clone()), format, &hb.init)?);
    }
    let bad = || super::bad_case(case);
    match &case.kind {
        Kind::Conv2dTiledFwd(g, tile, with_bias) => {
            let [x, w, bias, y] = &mut bufs[..] else { return Err(bad()) };
            let plan = plan_with(Pass::Fwd, g, *tile, 1)?;
            let bias = with_bias.then(|| bias.slice(..));
            conv2d::fwd_planned(cx, g, &plan, &x.slice(..), &w.slice(..), bias.as_ref(), &mut y.slice_mut(..))?;
        }
        Kind::Conv2dTiledBwd(g, tile, splits, with_dx) => {
            let [x, w, dy, dx, dw] = &mut bufs[..] else { return Err(bad()) };
            if *with_dx {
                let plan = plan_with(Pass::Dgrad, g, *tile, 1)?;
                conv2d::dgrad_planned(cx, g, &plan, &dy.slice(..), &w.slice(..), &mut dx.slice_mut(..))?;
            }
            let plan = plan_with(Pass::Wgrad, g, *tile, *splits)?;
            conv2d::wgrad_planned(cx, g, &plan, &x.slice(..), &dy.slice(..), &mut dw.slice_mut(..))?;
        }
        Kind::Conv2dDirectFwd(g, with_bias) => {
            let [x, w, bias, y] = &mut bufs[..] else { return Err(bad()) };
            let bias = with_bias.then(|| bias.slice(..));
            conv2d_direct::fwd(cx, g, &x.slice(..), &w.slice(..), bias.as_ref(), &mut y.slice_mut(..))?;
        }
        Kind::Conv2dDirectBwd(g, with_dx, with_db) => {
            let [x, w, dy, dx, dw, db] = &mut bufs[..] else { return Err(bad()) };
            let mut dx = with_dx.then(|| dx.slice_mut(..));
            let mut db = with_db.then(|| db.slice_mut(..));
            conv2d_direct::bwd(cx, g, &x.slice(..), &w.slice(..), &dy.slice(..), dx.as_mut(), &mut dw.slice_mut(..), db.as_mut())?;
        }
        _ => return Err(bad()),
    }
    let mut outs = Vec::new();
    for (hb, buf) in case.bufs.iter().zip(&bufs) {
        if hb.out {
            let format = if hb.role == Act { cx.activation_format() } else { cx.param_format() };
            outs.push(cx.download(&Shape(hb.shape.clone()), format, buf)?);
        }
    }
    Ok(outs)
}
