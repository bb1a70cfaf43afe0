//! `kernels/conv2d_direct.cu`: the direct fp32 convolution, one thread per output element, block 256, grid-stride,
//! no smem. The product path uses the implicit GEMM of `kernels/conv2d.cu` ([`super::conv2d`]); this is the
//! baseline version the kernel lab times it against, with exactly the same launcher signatures:
//! - `conv2d_direct_fwd(g, x, w, bias /*nullable*/, y)` (y written);
//! - `conv2d_direct_bwd_dx(g, dy, w, dx)` (dx written);
//! - `conv2d_direct_bwd_dw(g, x, dy, dw)` (dw accumulated);
//! - `conv2d_direct_bwd_db(g, dy, db)` (db accumulated).

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use super::conv2d::{check_bwd_operands, check_fwd_operands};
use super::{cfg_1d, launched, FG_BLOCK, NULL_PTR};
use crate::backend::cuda::backend::Cuda;
use crate::backend::geom::Conv2dGeom;
use crate::error::Result;

/// `y = conv2d(x, w) (+ bias)`.
pub fn fwd(
    cx: &Cuda,
    g: &Conv2dGeom,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "conv2d_direct_fwd";
    check_fwd_operands(OP, g, x.len(), w.len(), bias.map(|b| b.len()), y.len())?;
    if g.y_len() == 0 {
        return Ok(());
    }
    let f = cx.function("conv2d_direct.cu", OP)?;
    let cfg = cfg_1d(cx.grid_stride(g.y_len(), FG_BLOCK as usize));
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(x).arg(w);
    match bias {
        Some(bias) => b.arg(bias),
        None => b.arg(&NULL_PTR),
    };
    b.arg(y);
    // SAFETY: `conv2d_direct_fwd(Conv2dGeom, const float* x, const float* w, const float* bias /*nullable*/, float* y)`;
    // lengths checked.
    launched(OP, unsafe { b.launch(cfg) })
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
    const OP: &str = "conv2d_direct_bwd";
    check_bwd_operands(OP, g, x.len(), w.len(), dy.len(), dx.as_ref().map(|d| d.len()), dw.len(), dbias.as_ref().map(|d| d.len()))?;
    if let Some(dx) = dx {
        if g.x_len() > 0 {
            let f = cx.function("conv2d_direct.cu", "conv2d_direct_bwd_dx")?;
            let mut b = cx.stream().launch_builder(&f);
            b.arg(g).arg(dy).arg(w).arg(dx);
            // SAFETY: `conv2d_direct_bwd_dx(Conv2dGeom, const float* dy, const float* w, float* dx)`; lengths checked.
            launched("conv2d_direct_bwd_dx", unsafe { b.launch(cfg_1d(cx.grid_stride(g.x_len(), FG_BLOCK as usize))) })?;
        }
    }
    if g.w_len() > 0 {
        let f = cx.function("conv2d_direct.cu", "conv2d_direct_bwd_dw")?;
        let mut b = cx.stream().launch_builder(&f);
        b.arg(g).arg(x).arg(dy).arg(dw);
        // SAFETY: `conv2d_direct_bwd_dw(Conv2dGeom, const float* x, const float* dy, float* dw)`; lengths checked.
        launched("conv2d_direct_bwd_dw", unsafe { b.launch(cfg_1d(cx.grid_stride(g.w_len(), FG_BLOCK as usize))) })?;
    }
    if let Some(db) = dbias {
        if g.c_out > 0 {
            let f = cx.function("conv2d_direct.cu", "conv2d_direct_bwd_db")?;
            let mut b = cx.stream().launch_builder(&f);
            b.arg(g).arg(dy).arg(db);
            // SAFETY: `conv2d_direct_bwd_db(Conv2dGeom, const float* dy, float* db)`; lengths checked.
            launched("conv2d_direct_bwd_db", unsafe { b.launch(cfg_1d(cx.grid_stride(g.c_out, FG_BLOCK as usize))) })?;
        }
    }
    Ok(())
}
