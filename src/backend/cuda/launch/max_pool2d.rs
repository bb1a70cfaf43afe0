//! `kernels/max_pool2d.cu`: `max_pool2d_fwd(MaxPool2dGeom, x, y, u32* idx /*nullable*/)`,
//! `max_pool2d_bwd(MaxPool2dGeom, x, dy, dx)` (gather, argmax recomputed from x),
//! `max_pool2d_bwd_idx(MaxPool2dGeom, idx, dy, dx)`; all block 256, grid-stride (fwd over n*c*ho*wo, bwd over
//! n*c*h*w), no smem.

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use super::{cfg_1d, launched, need, precondition, NULL_PTR};
use crate::backend::cuda::backend::Cuda;
use crate::backend::geom::MaxPool2dGeom;
use crate::error::Result;

fn lens(g: &MaxPool2dGeom) -> (usize, usize) {
    (g.n * g.c * g.h * g.w, g.n * g.c * g.ho * g.wo)
}

/// `y = window max`; when `idx` is given, also the plane-local argmax (`ih * w + iw`) for [`bwd_idx`].
pub fn fwd(cx: &Cuda, g: &MaxPool2dGeom, x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>, idx: Option<&mut CudaViewMut<'_, u32>>) -> Result<()> {
    let (x_len, y_len) = lens(g);
    need("max_pool2d_fwd", "x", x.len(), x_len)?;
    need("max_pool2d_fwd", "y", y.len(), y_len)?;
    if y_len == 0 {
        return Ok(());
    }
    let f = cx.function("max_pool2d.cu", "max_pool2d_fwd")?;
    let cfg = cfg_1d(cx.grid_stride(y_len, 256));
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(x).arg(y);
    match idx {
        Some(idx) => {
            need("max_pool2d_fwd", "idx", idx.len(), y_len)?;
            if (g.h * g.w) as u64 >= 1u64 << 32 {
                return Err(precondition("max_pool2d_fwd", "h * w must be below 2^32 to keep the argmax"));
            }
            b.arg(idx)
        }
        None => b.arg(&NULL_PTR),
    };
    // SAFETY: arguments match `max_pool2d_fwd(MaxPool2dGeom, const float*, float*, unsigned int* /*nullable*/)`;
    // lengths checked.
    launched("max_pool2d_fwd", unsafe { b.launch(cfg) })
}

/// Gather backward, argmax recomputed from `x`; `dx` written in full.
pub fn bwd(cx: &Cuda, g: &MaxPool2dGeom, x: &CudaView<'_, f32>, dy: &CudaView<'_, f32>, dx: &mut CudaViewMut<'_, f32>) -> Result<()> {
    let (x_len, y_len) = lens(g);
    need("max_pool2d_bwd", "x", x.len(), x_len)?;
    need("max_pool2d_bwd", "dy", dy.len(), y_len)?;
    need("max_pool2d_bwd", "dx", dx.len(), x_len)?;
    if x_len == 0 {
        return Ok(());
    }
    let f = cx.function("max_pool2d.cu", "max_pool2d_bwd")?;
    let cfg = cfg_1d(cx.grid_stride(x_len, 256));
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(x).arg(dy).arg(dx);
    // SAFETY: arguments match `max_pool2d_bwd(MaxPool2dGeom, const float* x, const float* dy, float* dx)`.
    launched("max_pool2d_bwd", unsafe { b.launch(cfg) })
}

/// Gather backward from the argmax saved by [`fwd`].
pub fn bwd_idx(cx: &Cuda, g: &MaxPool2dGeom, idx: &CudaView<'_, u32>, dy: &CudaView<'_, f32>, dx: &mut CudaViewMut<'_, f32>) -> Result<()> {
    let (x_len, y_len) = lens(g);
    need("max_pool2d_bwd_idx", "idx", idx.len(), y_len)?;
    need("max_pool2d_bwd_idx", "dy", dy.len(), y_len)?;
    need("max_pool2d_bwd_idx", "dx", dx.len(), x_len)?;
    if x_len == 0 {
        return Ok(());
    }
    let f = cx.function("max_pool2d.cu", "max_pool2d_bwd_idx")?;
    let cfg = cfg_1d(cx.grid_stride(x_len, 256));
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(idx).arg(dy).arg(dx);
    // SAFETY: arguments match `max_pool2d_bwd_idx(MaxPool2dGeom, const unsigned int*, const float*, float*)`.
    launched("max_pool2d_bwd_idx", unsafe { b.launch(cfg) })
}
