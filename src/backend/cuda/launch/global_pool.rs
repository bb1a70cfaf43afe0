//! `kernels/global_pool.cu`: one warp per (n, c) row for max fwd / max bwd / avg fwd (block 256 = 8 rows per
//! block, grid-stride over rows, capped at 65535 blocks); avg bwd elementwise (block 256, grid-stride over n*c*hw).
//! No smem. Requires hw > 0.

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use super::{cfg_1d, launched, need, precondition};
use crate::backend::cuda::backend::Cuda;
use crate::backend::geom::GlobalPoolGeom;
use crate::error::Result;

/// Rows per 256-thread block in the warp-per-row kernels.
const ROWS_PER_BLOCK: usize = 256 / 32;

fn check(op: &str, g: &GlobalPoolGeom) -> Result<(usize, usize)> {
    if g.hw == 0 && g.n * g.c > 0 {
        return Err(precondition(op, "hw must be > 0"));
    }
    Ok((g.n * g.c * g.hw, g.n * g.c))
}

/// Grid-stride over rows, 8 rows per block (capped like every grid-stride grid, at most 65535 blocks).
fn rows_cfg(cx: &Cuda, rows: usize) -> cudarc::driver::LaunchConfig {
    cfg_1d(cx.grid_stride(rows, ROWS_PER_BLOCK))
}

pub fn max_fwd(cx: &Cuda, g: &GlobalPoolGeom, x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    let (x_len, rows) = check("global_max_pool_fwd", g)?;
    need("global_max_pool_fwd", "x", x.len(), x_len)?;
    need("global_max_pool_fwd", "y", y.len(), rows)?;
    if rows == 0 {
        return Ok(());
    }
    let f = cx.function("global_pool.cu", "global_max_pool_fwd")?;
    let cfg = rows_cfg(cx, rows);
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(x).arg(y);
    // SAFETY: arguments match `global_max_pool_fwd(GlobalPoolGeom, const float* x, float* y)`; lengths checked.
    launched("global_max_pool_fwd", unsafe { b.launch(cfg) })
}

/// `dx` written in full: zero except `dy` at each row's argmax (recomputed from `x`).
pub fn max_bwd(cx: &Cuda, g: &GlobalPoolGeom, x: &CudaView<'_, f32>, dy: &CudaView<'_, f32>, dx: &mut CudaViewMut<'_, f32>) -> Result<()> {
    let (x_len, rows) = check("global_max_pool_bwd", g)?;
    need("global_max_pool_bwd", "x", x.len(), x_len)?;
    need("global_max_pool_bwd", "dy", dy.len(), rows)?;
    need("global_max_pool_bwd", "dx", dx.len(), x_len)?;
    if rows == 0 {
        return Ok(());
    }
    let f = cx.function("global_pool.cu", "global_max_pool_bwd")?;
    let cfg = rows_cfg(cx, rows);
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(x).arg(dy).arg(dx);
    // SAFETY: arguments match `global_max_pool_bwd(GlobalPoolGeom, const float* x, const float* dy, float* dx)`.
    launched("global_max_pool_bwd", unsafe { b.launch(cfg) })
}

pub fn avg_fwd(cx: &Cuda, g: &GlobalPoolGeom, x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    let (x_len, rows) = check("global_avg_pool_fwd", g)?;
    need("global_avg_pool_fwd", "x", x.len(), x_len)?;
    need("global_avg_pool_fwd", "y", y.len(), rows)?;
    if rows == 0 {
        return Ok(());
    }
    let f = cx.function("global_pool.cu", "global_avg_pool_fwd")?;
    let cfg = rows_cfg(cx, rows);
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(x).arg(y);
    // SAFETY: arguments match `global_avg_pool_fwd(GlobalPoolGeom, const float* x, float* y)`; lengths checked.
    launched("global_avg_pool_fwd", unsafe { b.launch(cfg) })
}

pub fn avg_bwd(cx: &Cuda, g: &GlobalPoolGeom, dy: &CudaView<'_, f32>, dx: &mut CudaViewMut<'_, f32>) -> Result<()> {
    let (x_len, rows) = check("global_avg_pool_bwd", g)?;
    need("global_avg_pool_bwd", "dy", dy.len(), rows)?;
    need("global_avg_pool_bwd", "dx", dx.len(), x_len)?;
    if x_len == 0 {
        return Ok(());
    }
    let f = cx.function("global_pool.cu", "global_avg_pool_bwd")?;
    let cfg = cfg_1d(cx.grid_stride(x_len, 256));
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(dy).arg(dx);
    // SAFETY: arguments match `global_avg_pool_bwd(GlobalPoolGeom, const float* dy, float* dx)`; lengths checked.
    launched("global_avg_pool_bwd", unsafe { b.launch(cfg) })
}
