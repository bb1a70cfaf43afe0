//! `kernels/l2_normalized_std.cu`: `l2_normalized_std_fwd(g, z, double* inv_norm, out)`, grid 1, block 256; the
//! per-row `1/‖row‖` workspace (n doubles) is reused.

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, PushKernelArg};

use super::{cfg_1d, launched, need, precondition};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::geom::L2NormalizedStdGeom;
use crate::error::Result;

const _: () = assert!(std::mem::size_of::<L2NormalizedStdGeom>() == 16);
// SAFETY: `#[repr(C)]`, two `usize` = `unsigned long long` fields, mirrored in the kernel (static_assert 16 bytes).
unsafe impl DeviceRepr for L2NormalizedStdGeom {}

pub fn fwd(cx: &Cuda, g: &L2NormalizedStdGeom, z: &CudaView<'_, f32>, out: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "l2_normalized_std_fwd";
    if g.n < 2 {
        return Err(precondition(OP, format!("needs at least 2 samples, got {}", g.n)));
    }
    need(OP, "z", z.len(), g.n * g.f)?;
    need(OP, "out", out.len(), 1)?;
    let f = cx.function("l2_normalized_std.cu", OP)?;
    let mut ws = cx.workspaces();
    let inv_norm = ensure(cx.stream(), &mut ws.train.l2_inv_norm, g.n, "row inverse norms")?;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(z).arg(&mut *inv_norm).arg(out);
    // SAFETY: `l2_normalized_std_fwd(L2NormalizedStdGeom, const float* z, double* inv_norm, float* out)`; z holds
    // n * f, inv_norm n, out 1 (checked). Grid 1, block 256.
    launched(OP, unsafe { b.launch(cfg_1d(1)) })
}
