//! `kernels/linear.cu`: tiled GEMMs, block (256, 1, 1) EXACTLY, grid (ceil(N / 64), ceil(M / 64), 1), static smem
//! only:
//! - `linear_fwd(g, x, w, bias /*nullable*/, y)`: M = n, N = out_f (y written);
//! - `linear_bwd_dx(g, dy, w, dx)`: M = n, N = in_f (dx written);
//! - `linear_bwd_dw(g, dy, x, dw)`: M = out_f, N = in_f (dw accumulated);
//! - `linear_bwd_db(g, dy, db)`: block 256, grid ceil(out_f / 256) (db accumulated).

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::{cfg_1d, grid_dim, launched, need, FG_BLOCK, NULL_PTR};
use crate::backend::cuda::backend::Cuda;
use crate::backend::geom::LinearGeom;
use crate::error::Result;

/// Output tile edge of the GEMM kernels.
const TILE: usize = 64;

/// Grid for an `[M, N]` output, or an error when M needs more than 65535 tile rows.
fn gemm_cfg(op: &str, m: usize, n: usize) -> Result<LaunchConfig> {
    Ok(LaunchConfig {
        grid_dim: (grid_dim(op, n, TILE, i32::MAX as u32)?, grid_dim(op, m, TILE, 65535)?, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// `y = x w^T (+ bias)`.
pub fn fwd(
    cx: &Cuda,
    g: &LinearGeom,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "linear_fwd";
    need(OP, "x", x.len(), g.n * g.in_f)?;
    need(OP, "w", w.len(), g.out_f * g.in_f)?;
    need(OP, "y", y.len(), g.n * g.out_f)?;
    if let Some(bias) = bias {
        need(OP, "bias", bias.len(), g.out_f)?;
    }
    if g.n == 0 || g.out_f == 0 {
        return Ok(());
    }
    let f = cx.function("linear.cu", "linear_fwd")?;
    let cfg = gemm_cfg(OP, g.n, g.out_f)?;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(x).arg(w);
    match bias {
        Some(bias) => b.arg(bias),
        None => b.arg(&NULL_PTR),
    };
    b.arg(y);
    // SAFETY: `linear_fwd(LinearGeom, const float* x, const float* w, const float* bias /*nullable*/, float* y)`;
    // lengths checked.
    launched(OP, unsafe { b.launch(cfg) })
}

/// `dx = dy w` when requested, `dw += dy^T x`, `dbias += sum_rows dy` when requested.
#[allow(clippy::too_many_arguments)]
pub fn bwd(
    cx: &Cuda,
    g: &LinearGeom,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    dy: &CudaView<'_, f32>,
    dx: Option<&mut CudaViewMut<'_, f32>>,
    dw: &mut CudaViewMut<'_, f32>,
    dbias: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()> {
    const OP: &str = "linear_bwd";
    need(OP, "x", x.len(), g.n * g.in_f)?;
    need(OP, "w", w.len(), g.out_f * g.in_f)?;
    need(OP, "dy", dy.len(), g.n * g.out_f)?;
    need(OP, "dw", dw.len(), g.out_f * g.in_f)?;
    if let Some(dx) = &dx {
        need(OP, "dx", dx.len(), g.n * g.in_f)?;
    }
    if let Some(db) = &dbias {
        need(OP, "dbias", db.len(), g.out_f)?;
    }
    if let Some(dx) = dx {
        if g.n > 0 && g.in_f > 0 {
            let f = cx.function("linear.cu", "linear_bwd_dx")?;
            let cfg = gemm_cfg("linear_bwd_dx", g.n, g.in_f)?;
            let mut b = cx.stream().launch_builder(&f);
            b.arg(g).arg(dy).arg(w).arg(dx);
            // SAFETY: `linear_bwd_dx(LinearGeom, const float* dy, const float* w, float* dx)`; lengths checked.
            launched("linear_bwd_dx", unsafe { b.launch(cfg) })?;
        }
    }
    if g.out_f > 0 && g.in_f > 0 {
        let f = cx.function("linear.cu", "linear_bwd_dw")?;
        let cfg = gemm_cfg("linear_bwd_dw", g.out_f, g.in_f)?;
        let mut b = cx.stream().launch_builder(&f);
        b.arg(g).arg(dy).arg(x).arg(dw);
        // SAFETY: `linear_bwd_dw(LinearGeom, const float* dy, const float* x, float* dw)`; lengths checked.
        launched("linear_bwd_dw", unsafe { b.launch(cfg) })?;
    }
    if let Some(db) = dbias {
        if g.out_f > 0 {
            let f = cx.function("linear.cu", "linear_bwd_db")?;
            let cfg = cfg_1d(grid_dim("linear_bwd_db", g.out_f, FG_BLOCK as usize, i32::MAX as u32)?);
            let mut b = cx.stream().launch_builder(&f);
            b.arg(g).arg(dy).arg(db);
            // SAFETY: `linear_bwd_db(LinearGeom, const float* dy, float* db)`; lengths checked.
            launched("linear_bwd_db", unsafe { b.launch(cfg) })?;
        }
    }
    Ok(())
}
