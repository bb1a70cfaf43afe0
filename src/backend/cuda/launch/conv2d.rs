//! `kernels/conv2d.cu`: the fp32 implicit-GEMM convolution (the product path). Each pass is one kernel chosen by
//! [`conv2d_gemm::plan`] (tile by shape, grid `(ceil(N/BN), ceil(M/BM), splits)`, block = the tile's threads, static
//! smem only):
//! - `conv2d_fwd_<tile>(p, x, w, bias /*nullable*/, y)` (y written);
//! - `conv2d_bwd_dx_<tile>(p, dy, w, dx)` (dx written);
//! - `conv2d_bwd_dw_<tile>(p, x, dy, out)`: with one K split `out = dw` (accumulated); with several, `out` is a
//!   pooled workspace of `splits * w_len` floats (one partial per split), then `conv2d_bwd_dw_reduce(len, splits,
//!   ws, dw)` adds the partials into dw in split order (block 256, grid-stride);
//! - `conv2d_bwd_db(g, dy, db)` (db accumulated): one block of 256 per channel.
//!
//! The direct kernels this replaced are [`super::conv2d_direct`] (same signatures), kept as the lab's baseline.

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::conv2d_gemm::{self, ConvGemm, Pass, Plan};
use super::{cfg_1d, launched, need, precondition, FG_BLOCK, NULL_PTR};
use crate::backend::cuda::backend::Cuda;
use crate::backend::geom::Conv2dGeom;
use crate::error::Result;

const FILE: &str = "conv2d.cu";

/// The launch shape of a plan: its grid, one block of `tile.threads()`, static shared memory only.
fn gemm_cfg(plan: &Plan) -> LaunchConfig {
    LaunchConfig { grid_dim: plan.grid, block_dim: (plan.tile.threads() as u32, 1, 1), shared_mem_bytes: 0 }
}

/// `y = conv2d(x, w) (+ bias)`.
pub fn fwd(
    cx: &Cuda,
    g: &Conv2dGeom,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "conv2d_fwd";
    check_fwd_operands(OP, g, x.len(), w.len(), bias.map(|b| b.len()), y.len())?;
    if g.y_len() == 0 {
        return Ok(());
    }
    let plan = conv2d_gemm::plan(Pass::Fwd, g, cx.sm_count() as usize)?;
    fwd_planned(cx, g, &plan, x, w, bias, y)
}

/// `plan` must be a valid plan of `pass` for `g` (from [`conv2d_gemm::plan`] or [`conv2d_gemm::plan_with`]).
fn check_plan(op: &str, plan: &Plan, pass: Pass, g: &Conv2dGeom) -> Result<()> {
    conv2d_gemm::check_geometry(op, g)?;
    if plan.pass != pass {
        return Err(precondition(op, format!("given a {:?} plan", plan.pass)));
    }
    plan.validate(g)
}

/// [`fwd`] with a given plan (the kernel lab and the selftest force every tile through this).
pub fn fwd_planned(
    cx: &Cuda,
    g: &Conv2dGeom,
    plan: &Plan,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "conv2d_fwd";
    check_fwd_operands(OP, g, x.len(), w.len(), bias.map(|b| b.len()), y.len())?;
    check_plan(OP, plan, Pass::Fwd, g)?;
    let p = ConvGemm::new(g, plan);
    let f = cx.function(FILE, plan.kernel())?;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&p).arg(x).arg(w);
    match bias {
        Some(bias) => b.arg(bias),
        None => b.arg(&NULL_PTR),
    };
    b.arg(y);
    // SAFETY: `conv2d_fwd_<tile>(ConvGemm, const float* x, const float* w, const float* bias /*nullable*/, float* y)`;
    // lengths checked, `p` built from the checked geometry and this plan, launched with the plan's grid and block.
    launched(plan.kernel(), unsafe { b.launch(gemm_cfg(plan)) })
}

/// `dx = conv_transpose(dy, w)` when requested, `dw += dy ⋆ x`, `dbias += Σ dy` when requested.
#[allow(clippy::too_many_arguments)]
pub fn bwd(
    cx: &Cuda,
    g: &Conv2dGeom,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    dy: &CudaView<'_, f32>,
    dx: Option<&mut CudaViewMut<'_, f32>>,
    dw: &mut CudaViewMut<'_, f32>,
    dbias: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()> {
    const OP: &str = "conv2d_bwd";
    check_bwd_operands(OP, g, x.len(), w.len(), dy.len(), dx.as_ref().map(|d| d.len()), dw.len(), dbias.as_ref().map(|d| d.len()))?;
    if let Some(dx) = dx {
        if g.x_len() > 0 {
            let plan = conv2d_gemm::plan(Pass::Dgrad, g, cx.sm_count() as usize)?;
            dgrad_planned(cx, g, &plan, dy, w, dx)?;
        }
    }
    // An empty batch adds nothing to dw (K = 0).
    if g.w_len() > 0 && g.y_len() > 0 {
        let plan = conv2d_gemm::plan(Pass::Wgrad, g, cx.sm_count() as usize)?;
        wgrad_planned(cx, g, &plan, x, dy, dw)?;
    }
    if let Some(db) = dbias {
        bias_grad(cx, g, dy, db)?;
    }
    Ok(())
}

/// `dbias += Σ dy` over images and pixels, per channel (f32 dy; also the bias gradient of the bf16 convolution,
/// which sums the unrounded dy).
pub fn bias_grad(cx: &Cuda, g: &Conv2dGeom, dy: &CudaView<'_, f32>, db: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "conv2d_bwd_db";
    need(OP, "dy", dy.len(), g.y_len())?;
    need(OP, "dbias", db.len(), g.c_out)?;
    if g.c_out == 0 {
        return Ok(());
    }
    let f = cx.function(FILE, OP)?;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(dy).arg(db);
    let grid = g.c_out.min(65535) as u32;
    // SAFETY: `conv2d_bwd_db(Conv2dGeom, const float* dy, float* db)`, block FG_BLOCK (a multiple of 32, as its block
    // reduction needs), grid-stride over channels; lengths checked.
    launched(OP, unsafe { b.launch(cfg_1d(grid)) })
}

/// `dx = conv_transpose(dy, w)` (written) with a given Dgrad plan.
pub fn dgrad_planned(
    cx: &Cuda,
    g: &Conv2dGeom,
    plan: &Plan,
    dy: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    dx: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "conv2d_bwd_dx";
    need(OP, "dy", dy.len(), g.y_len())?;
    need(OP, "w", w.len(), g.w_len())?;
    need(OP, "dx", dx.len(), g.x_len())?;
    check_plan(OP, plan, Pass::Dgrad, g)?;
    let p = ConvGemm::new(g, plan);
    let f = cx.function(FILE, plan.kernel())?;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&p).arg(dy).arg(w).arg(dx);
    // SAFETY: `conv2d_bwd_dx_<tile>(ConvGemm, const float* dy, const float* w, float* dx)`; lengths checked by
    // `bwd`, `p` built from the checked geometry and this plan, launched with the plan's grid and block.
    launched(plan.kernel(), unsafe { b.launch(gemm_cfg(plan)) })
}

/// `dw += dy ⋆ x` with a given Wgrad plan: one launch adding into dw, or split-K partials in a pooled workspace
/// plus the ordered reduce.
pub fn wgrad_planned(
    cx: &Cuda,
    g: &Conv2dGeom,
    plan: &Plan,
    x: &CudaView<'_, f32>,
    dy: &CudaView<'_, f32>,
    dw: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "conv2d_bwd_dw";
    need(OP, "x", x.len(), g.x_len())?;
    need(OP, "dy", dy.len(), g.y_len())?;
    need(OP, "dw", dw.len(), g.w_len())?;
    check_plan(OP, plan, Pass::Wgrad, g)?;
    let p = ConvGemm::new(g, plan);
    let f = cx.function(FILE, plan.kernel())?;
    if plan.splits == 1 {
        let mut b = cx.stream().launch_builder(&f);
        b.arg(&p).arg(x).arg(dy).arg(dw);
        // SAFETY: `conv2d_bwd_dw_<tile>(ConvGemm, const float* x, const float* dy, float* out)` with
        // `p.accumulate == 1` (one split): out = dw, w_len = M * N elements, checked by `bwd`.
        return launched(plan.kernel(), unsafe { b.launch(gemm_cfg(plan)) });
    }
    let mut ws = cx.scratch(plan.workspace_len)?;
    {
        let mut partials = ws.slice_mut(..);
        need("conv2d_bwd_dw", "workspace", partials.len(), plan.splits * plan.m * plan.n)?;
        let mut b = cx.stream().launch_builder(&f);
        b.arg(&p).arg(x).arg(dy).arg(&mut partials);
        // SAFETY: as above with `p.accumulate == 0`: split z writes its M x N partial at out + z*M*N, and the
        // workspace holds splits * M * N floats (checked).
        launched(plan.kernel(), unsafe { b.launch(gemm_cfg(plan)) })?;
    }
    let f = cx.function(FILE, "conv2d_bwd_dw_reduce")?;
    let len = plan.m * plan.n; // == w_len, below 2^30 (checked by the plan)
    let (len_u32, splits_u32) = (len as u32, plan.splits as u32);
    let partials = ws.slice(..);
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&len_u32).arg(&splits_u32).arg(&partials).arg(dw);
    // SAFETY: `conv2d_bwd_dw_reduce(u32 len, u32 splits, const float* ws, float* dw)`: ws holds splits * len, dw
    // holds w_len == len (checked by `bwd`).
    launched("conv2d_bwd_dw_reduce", unsafe { b.launch(cfg_1d(cx.grid_stride(len, FG_BLOCK as usize))) })
    // `ws` returns to the pool here; later users of its block run after these launches (one stream).
}

/// The operand lengths of a forward convolution at `g`, checked alike by every NCHW f32 launcher (this implicit
/// GEMM, the direct baseline, the bf16 boundary).
pub(crate) fn check_fwd_operands(op: &str, g: &Conv2dGeom, x: usize, w: usize, bias: Option<usize>, y: usize) -> Result<()> {
    need(op, "x", x, g.x_len())?;
    need(op, "w", w, g.w_len())?;
    need(op, "y", y, g.y_len())?;
    if let Some(bias) = bias {
        need(op, "bias", bias, g.c_out)?;
    }
    Ok(())
}

/// The operand lengths of a backward convolution at `g` (`dx`, `dbias` when requested), as [`check_fwd_operands`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_bwd_operands(
    op: &str,
    g: &Conv2dGeom,
    x: usize,
    w: usize,
    dy: usize,
    dx: Option<usize>,
    dw: usize,
    dbias: Option<usize>,
) -> Result<()> {
    need(op, "x", x, g.x_len())?;
    need(op, "w", w, g.w_len())?;
    need(op, "dy", dy, g.y_len())?;
    need(op, "dw", dw, g.w_len())?;
    if let Some(dx) = dx {
        need(op, "dx", dx, g.x_len())?;
    }
    if let Some(db) = dbias {
        need(op, "dbias", db, g.c_out)?;
    }
    Ok(())
}
