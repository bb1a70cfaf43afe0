//! `kernels/relu.cu`: `relu_fwd(u64 n, x, y)`, `relu_bwd(u64 n, y, dy, dx)`; block 256, grid-stride, no smem.

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use super::{cfg_1d, launched, need};
use crate::backend::cuda::backend::Cuda;
use crate::error::Result;

pub fn fwd(cx: &Cuda, n: usize, x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    need("relu_fwd", "x", x.len(), n)?;
    need("relu_fwd", "y", y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = cx.function("relu.cu", "relu_fwd")?;
    let cfg = cfg_1d(cx.grid_stride(n, 256));
    let n = n as u64;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&n).arg(x).arg(y);
    // SAFETY: arguments match `relu_fwd(u64, const float*, float*)`; both views hold at least `n` elements.
    launched("relu_fwd", unsafe { b.launch(cfg) })
}

/// `dx = dy * (y > 0)`, from the forward output `y`.
pub fn bwd(cx: &Cuda, n: usize, y: &CudaView<'_, f32>, dy: &CudaView<'_, f32>, dx: &mut CudaViewMut<'_, f32>) -> Result<()> {
    need("relu_bwd", "y", y.len(), n)?;
    need("relu_bwd", "dy", dy.len(), n)?;
    need("relu_bwd", "dx", dx.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = cx.function("relu.cu", "relu_bwd")?;
    let cfg = cfg_1d(cx.grid_stride(n, 256));
    let n = n as u64;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&n).arg(y).arg(dy).arg(dx);
    // SAFETY: arguments match `relu_bwd(u64, const float* y, const float* dy, float* dx)`; lengths checked.
    launched("relu_bwd", unsafe { b.launch(cfg) })
}
