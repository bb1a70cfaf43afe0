//! `kernels/batch_norm.cu`, x `[n, c, hw]` (1-d batch norm: hw = 1). Launch shapes exactly as its header:
//! - training forward: `batch_norm_stats_partial` grid (P, C) block 256 -> `batch_norm_stats_finalize` grid
//!   ceil(C / 256) block 256 -> `batch_norm_apply` block 256 grid-stride;
//! - evaluation forward: `batch_norm_fwd_eval` block 256 grid-stride;
//! - backward: `batch_norm_bwd_partial` grid (P, C) -> `batch_norm_bwd_finalize` grid ceil(C / 256) ->
//!   `batch_norm_bwd_dx` grid-stride.
//!
//! Fused BN+ReLU / BN+add+ReLU ([`BnEpilogue`], [`BnEpilogueGrad`]) add no launch: the forward kernels take a
//! nullable residual and a ReLU flag, the backward kernels a nullable fused output `y` (the ReLU mask) and
//! `batch_norm_bwd_dx` a nullable `dresidual`.
//!
//! Workspaces (reused): `partial` = 2 * C * P doubles, `coef` = 4 * C floats (16-byte aligned: device allocations
//! are 256-byte aligned and the workspace is always used from its start). P, the number of chunks per channel, is
//! a function of the geometry and the card's SM count only, so results are bitwise reproducible on one card.

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::{cfg_1d, grid_dim, launched, need, precondition, FG_BLOCK, NULL_PTR};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::geom::BatchNormGeom;
use crate::backend::{BnEpilogue, BnEpilogueGrad};
use crate::error::Result;

/// Chunks per channel for the partial reductions: `clamp(ceil(cnt / 4096), 1, max(1, 4 * SMs / C))`.
pub fn chunks(cx: &Cuda, g: &BatchNormGeom) -> u32 {
    let cnt = g.n * g.hw;
    let max_p = (4 * cx.sm_count() as usize / g.c.max(1)).max(1);
    cnt.div_ceil(4096).clamp(1, max_p) as u32
}

fn check(op: &str, g: &BatchNormGeom) -> Result<()> {
    if g.n * g.hw <= 1 {
        return Err(precondition(op, format!("needs more than one value per channel (n * hw = {})", g.n * g.hw)));
    }
    if g.c > 65535 {
        return Err(precondition(op, format!("{} channels: the partial kernels put channels on grid y (at most 65535)", g.c)));
    }
    Ok(())
}

/// The forward kernels' epilogue arguments `(residual or NULL, relu flag)`, after checking the residual's length.
fn forward_epilogue<'e, 'v>(op: &str, numel: usize, e: &'e BnEpilogue<CudaView<'v, f32>>) -> Result<(Option<&'e CudaView<'v, f32>>, u32)> {
    Ok(match e {
        BnEpilogue::None => (None, 0),
        BnEpilogue::Relu => (None, 1),
        BnEpilogue::AddRelu(r) => {
            need(op, "residual", r.len(), numel)?;
            (Some(r), 1)
        }
    })
}

fn partial_cfg(p: u32, c: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: (p, c as u32, 1), block_dim: (FG_BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// Training-mode forward, then `epilogue` in the same elementwise pass. Writes `y`, `saved_mean`, `saved_invstd`;
/// updates the running statistics in place.
#[allow(clippy::too_many_arguments)]
pub fn fwd_train(
    cx: &Cuda,
    g: &BatchNormGeom,
    x: &CudaView<'_, f32>,
    gamma: &CudaView<'_, f32>,
    beta: &CudaView<'_, f32>,
    running_mean: &mut CudaViewMut<'_, f32>,
    running_var: &mut CudaViewMut<'_, f32>,
    y: &mut CudaViewMut<'_, f32>,
    saved_mean: &mut CudaViewMut<'_, f32>,
    saved_invstd: &mut CudaViewMut<'_, f32>,
    epilogue: &BnEpilogue<CudaView<'_, f32>>,
) -> Result<()> {
    const OP: &str = "batch_norm_fwd_train";
    if g.c == 0 {
        return Ok(());
    }
    check(OP, g)?;
    let numel = g.numel();
    need(OP, "x", x.len(), numel)?;
    need(OP, "y", y.len(), numel)?;
    for (name, len) in [("gamma", gamma.len()), ("beta", beta.len())] {
        need(OP, name, len, g.c)?;
    }
    for (name, len) in [
        ("running_mean", running_mean.len()),
        ("running_var", running_var.len()),
        ("saved_mean", saved_mean.len()),
        ("saved_invstd", saved_invstd.len()),
    ] {
        need(OP, name, len, g.c)?;
    }
    let (residual, relu) = forward_epilogue(OP, numel, epilogue)?;
    let p = chunks(cx, g);
    let f_partial = cx.function("batch_norm.cu", "batch_norm_stats_partial")?;
    let f_finalize = cx.function("batch_norm.cu", "batch_norm_stats_finalize")?;
    let f_apply = cx.function("batch_norm.cu", "batch_norm_apply")?;
    let finalize_cfg = cfg_1d(grid_dim(OP, g.c, FG_BLOCK as usize, i32::MAX as u32)?);
    let apply_cfg = cfg_1d(cx.grid_stride(numel, 256));

    let mut ws = cx.workspaces();
    let partial = ensure(cx.stream(), &mut ws.bn_partial, 2 * g.c * p as usize, "batch-norm partial")?;

    let mut b = cx.stream().launch_builder(&f_partial);
    b.arg(g).arg(x).arg(&mut *partial);
    // SAFETY: `batch_norm_stats_partial(BatchNormGeom, const float* x, double* partial)`; partial holds 2 * C * P.
    launched("batch_norm_stats_partial", unsafe { b.launch(partial_cfg(p, g.c)) })?;

    let mut b = cx.stream().launch_builder(&f_finalize);
    b.arg(g).arg(&*partial).arg(&p).arg(x).arg(&mut *running_mean).arg(&mut *running_var).arg(&mut *saved_mean).arg(&mut *saved_invstd);
    // SAFETY: `batch_norm_stats_finalize(g, const double* partial, u32 P, const float* x, float* running_mean,
    // float* running_var, float* saved_mean, float* saved_invstd)`, the same P as the partial launch.
    launched("batch_norm_stats_finalize", unsafe { b.launch(finalize_cfg) })?;

    let mean = saved_mean.slice(..);
    let invstd = saved_invstd.slice(..);
    let mut b = cx.stream().launch_builder(&f_apply);
    b.arg(g).arg(x).arg(&mean).arg(&invstd).arg(gamma).arg(beta);
    match residual {
        Some(r) => b.arg(r),
        None => b.arg(&NULL_PTR),
    };
    b.arg(&relu).arg(y);
    // SAFETY: `batch_norm_apply(g, x, mean, invstd, gamma, beta, const float* residual /*nullable*/, u32 relu,
    // float* y)`; lengths checked.
    launched("batch_norm_apply", unsafe { b.launch(apply_cfg) })
}

/// Evaluation-mode forward with the running statistics, then `epilogue`.
#[allow(clippy::too_many_arguments)]
pub fn fwd_eval(
    cx: &Cuda,
    g: &BatchNormGeom,
    x: &CudaView<'_, f32>,
    gamma: &CudaView<'_, f32>,
    beta: &CudaView<'_, f32>,
    running_mean: &CudaView<'_, f32>,
    running_var: &CudaView<'_, f32>,
    y: &mut CudaViewMut<'_, f32>,
    epilogue: &BnEpilogue<CudaView<'_, f32>>,
) -> Result<()> {
    const OP: &str = "batch_norm_fwd_eval";
    let numel = g.numel();
    need(OP, "x", x.len(), numel)?;
    need(OP, "y", y.len(), numel)?;
    for (name, len) in [("gamma", gamma.len()), ("beta", beta.len()), ("running_mean", running_mean.len()), ("running_var", running_var.len())] {
        need(OP, name, len, g.c)?;
    }
    let (residual, relu) = forward_epilogue(OP, numel, epilogue)?;
    if numel == 0 {
        return Ok(());
    }
    let f = cx.function("batch_norm.cu", "batch_norm_fwd_eval")?;
    let cfg = cfg_1d(cx.grid_stride(numel, 256));
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(x).arg(gamma).arg(beta).arg(running_mean).arg(running_var);
    match residual {
        Some(r) => b.arg(r),
        None => b.arg(&NULL_PTR),
    };
    b.arg(&relu).arg(y);
    // SAFETY: `batch_norm_fwd_eval(g, x, gamma, beta, running_mean, running_var, const float* residual
    // /*nullable*/, u32 relu, float* y)`; lengths checked.
    launched(OP, unsafe { b.launch(cfg) })
}

/// Backward of the training-mode forward: `dx` written, `dgamma` / `dbeta` accumulated; with a fused epilogue `dy`
/// is masked by the fused output and, for `AddRelu`, the masked gradient is written to `dresidual`.
#[allow(clippy::too_many_arguments)]
pub fn bwd(
    cx: &Cuda,
    g: &BatchNormGeom,
    x: &CudaView<'_, f32>,
    gamma: &CudaView<'_, f32>,
    saved_mean: &CudaView<'_, f32>,
    saved_invstd: &CudaView<'_, f32>,
    dy: &CudaView<'_, f32>,
    dx: &mut CudaViewMut<'_, f32>,
    dgamma: &mut CudaViewMut<'_, f32>,
    dbeta: &mut CudaViewMut<'_, f32>,
    epilogue: &mut BnEpilogueGrad<CudaView<'_, f32>, CudaViewMut<'_, f32>>,
) -> Result<()> {
    const OP: &str = "batch_norm_bwd";
    if g.c == 0 {
        return Ok(());
    }
    check(OP, g)?;
    let numel = g.numel();
    need(OP, "x", x.len(), numel)?;
    need(OP, "dy", dy.len(), numel)?;
    need(OP, "dx", dx.len(), numel)?;
    for (name, len) in [
        ("gamma", gamma.len()),
        ("saved_mean", saved_mean.len()),
        ("saved_invstd", saved_invstd.len()),
        ("dgamma", dgamma.len()),
        ("dbeta", dbeta.len()),
    ] {
        need(OP, name, len, g.c)?;
    }
    let (y, dresidual) = match epilogue {
        BnEpilogueGrad::None => (None, None),
        BnEpilogueGrad::Relu { y } => (Some(&*y), None),
        BnEpilogueGrad::AddRelu { y, dresidual } => (Some(&*y), Some(dresidual)),
    };
    if let Some(y) = y {
        need(OP, "y (fused output)", y.len(), numel)?;
    }
    if let Some(dr) = &dresidual {
        need(OP, "dresidual", dr.len(), numel)?;
    }
    let p = chunks(cx, g);
    let f_partial = cx.function("batch_norm.cu", "batch_norm_bwd_partial")?;
    let f_finalize = cx.function("batch_norm.cu", "batch_norm_bwd_finalize")?;
    let f_dx = cx.function("batch_norm.cu", "batch_norm_bwd_dx")?;
    let finalize_cfg = cfg_1d(grid_dim(OP, g.c, FG_BLOCK as usize, i32::MAX as u32)?);
    let dx_cfg = cfg_1d(cx.grid_stride(numel, 256));

    let mut ws = cx.workspaces();
    let ws = &mut *ws;
    let partial = ensure(cx.stream(), &mut ws.bn_partial, 2 * g.c * p as usize, "batch-norm partial")?;
    let coef = ensure(cx.stream(), &mut ws.bn_coef, 4 * g.c, "batch-norm coef")?;

    let mut b = cx.stream().launch_builder(&f_partial);
    b.arg(g).arg(x).arg(dy);
    match y {
        Some(y) => b.arg(y),
        None => b.arg(&NULL_PTR),
    };
    b.arg(saved_mean).arg(saved_invstd).arg(&mut *partial);
    // SAFETY: `batch_norm_bwd_partial(g, x, dy, const float* y /*nullable*/, saved_mean, saved_invstd, double*
    // partial)`; partial 2 * C * P; y checked.
    launched("batch_norm_bwd_partial", unsafe { b.launch(partial_cfg(p, g.c)) })?;

    let mut b = cx.stream().launch_builder(&f_finalize);
    b.arg(g).arg(&*partial).arg(&p).arg(gamma).arg(saved_mean).arg(saved_invstd).arg(dgamma).arg(dbeta).arg(&mut *coef);
    // SAFETY: `batch_norm_bwd_finalize(g, const double* partial, u32 P, gamma, saved_mean, saved_invstd,
    // float* dgamma, float* dbeta, float* coef)`, the same P; coef holds 4 * C.
    launched("batch_norm_bwd_finalize", unsafe { b.launch(finalize_cfg) })?;

    let mut b = cx.stream().launch_builder(&f_dx);
    b.arg(g).arg(x).arg(dy);
    match y {
        Some(y) => b.arg(y),
        None => b.arg(&NULL_PTR),
    };
    b.arg(&*coef).arg(dx);
    match dresidual {
        Some(dr) => b.arg(dr),
        None => b.arg(&NULL_PTR),
    };
    // SAFETY: `batch_norm_bwd_dx(g, x, dy, const float* y /*nullable*/, const float* coef, float* dx, float*
    // dresidual /*nullable*/)`; lengths checked.
    launched("batch_norm_bwd_dx", unsafe { b.launch(dx_cfg) })
}
