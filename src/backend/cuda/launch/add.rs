//! `kernels/add.cu`: `add_fwd(u64 n, a, b, y)` (y may alias a or b); block 256, grid-stride, no smem.
//! (Through the borrow checker `y` cannot alias `a` or `b` here; the kernel would allow it.)

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use super::{cfg_1d, launched, need};
use crate::backend::cuda::backend::Cuda;
use crate::error::Result;

pub fn fwd(cx: &Cuda, n: usize, a: &CudaView<'_, f32>, bv: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    need("add_fwd", "a", a.len(), n)?;
    need("add_fwd", "b", bv.len(), n)?;
    need("add_fwd", "y", y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    let f = cx.function("add.cu", "add_fwd")?;
    let cfg = cfg_1d(cx.grid_stride(n, 256));
    let n = n as u64;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&n).arg(a).arg(bv).arg(y);
    // SAFETY: arguments match `add_fwd(u64, const float* a, const float* b, float* y)`; lengths checked.
    launched("add_fwd", unsafe { b.launch(cfg) })
}
