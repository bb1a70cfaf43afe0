//! `kernels/elu.cu`: `elu_fwd(u64 n, float alpha, x, y)`, `elu_bwd(u64 n, float alpha, x, dy, dx)`; block 256,
//! grid-stride, no smem.

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use super::{cfg_1d, launched, need};
use crate::backend::cuda::backend::Cuda;
use crate::error::Result;

pub fn fwd(cx: &Cuda, n: usize, alpha: f32, x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    need("elu_fwd", "x", x.len(), n)?;
    need("elu_fwd", "y", y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = cx.function("elu.cu", "elu_fwd")?;
    let cfg = cfg_1d(cx.grid_stride(n, 256));
    let n = n as u64;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&n).arg(&alpha).arg(x).arg(y);
    // SAFETY: arguments match `elu_fwd(u64, float, const float*, float*)`; lengths checked.
    launched("elu_fwd", unsafe { b.launch(cfg) })
}

/// From the forward input `x`.
pub fn bwd(cx: &Cuda, n: usize, alpha: f32, x: &CudaView<'_, f32>, dy: &CudaView<'_, f32>, dx: &mut CudaViewMut<'_, f32>) -> Result<()> {
    need("elu_bwd", "x", x.len(), n)?;
    need("elu_bwd", "dy", dy.len(), n)?;
    need("elu_bwd", "dx", dx.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = cx.function("elu.cu", "elu_bwd")?;
    let cfg = cfg_1d(cx.grid_stride(n, 256));
    let n = n as u64;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&n).arg(&alpha).arg(x).arg(dy).arg(dx);
    // SAFETY: arguments match `elu_bwd(u64, float, const float* x, const float* dy, float* dx)`; lengths checked.
    launched("elu_bwd", unsafe { b.launch(cfg) })
}
