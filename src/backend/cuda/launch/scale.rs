//! `kernels/scale.cu`: `scale_fwd(u64 n, float alpha, float* y)`; block 256, grid-stride, no smem.

use cudarc::driver::{CudaViewMut, PushKernelArg};

use super::{cfg_1d, launched, need};
use crate::backend::cuda::backend::Cuda;
use crate::error::Result;

/// `y[i] *= alpha` for `i < n`.
pub fn fwd(cx: &Cuda, n: usize, alpha: f32, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    need("scale", "y", y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = cx.function("scale.cu", "scale_fwd")?;
    let cfg = cfg_1d(cx.grid_stride(n, 256));
    let n = n as u64;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&n).arg(&alpha).arg(y);
    // SAFETY: arguments match `scale_fwd(u64, float, float*)`; `y` holds at least `n` elements.
    launched("scale_fwd", unsafe { b.launch(cfg) })
}
