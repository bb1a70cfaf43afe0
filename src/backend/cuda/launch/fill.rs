//! `kernels/fill.cu`: `fill_fwd(u64 n, float value, float* y)`; block 256, grid-stride, no smem.

use cudarc::driver::{CudaViewMut, PushKernelArg};

use super::{cfg_1d, launched, need};
use crate::backend::cuda::backend::Cuda;
use crate::error::Result;

/// `y[i] = value` for `i < n`.
pub fn fwd(cx: &Cuda, n: usize, value: f32, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    need("fill", "y", y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = cx.function("fill.cu", "fill_fwd")?;
    let cfg = cfg_1d(cx.grid_stride(n, 256));
    let n = n as u64;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&n).arg(&value).arg(y);
    // SAFETY: arguments match `fill_fwd(u64, float, float*)`; `y` holds at least `n` elements.
    launched("fill_fwd", unsafe { b.launch(cfg) })
}
