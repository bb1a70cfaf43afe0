//! `kernels/jigsaw.cu`: `jigsaw_fwd(JigsawGeom, const u32* perms, x, y)`; block 256, grid-stride, no smem. The
//! host permutations are validated and copied into the reused permutation workspace.

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, PushKernelArg};

use super::{cfg_1d, launched, need, precondition};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::cuda::cuda_err;
use crate::backend::geom::JigsawGeom;
use crate::error::Result;

const _: () = assert!(std::mem::size_of::<JigsawGeom>() == 40);

// SAFETY: `#[repr(C)]` of five usize, mirrored in `kernels/jigsaw.cu` (static_assert on the size).
unsafe impl DeviceRepr for JigsawGeom {}

pub fn fwd(cx: &Cuda, g: &JigsawGeom, perms: &[u32], x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "jigsaw_fwd";
    let len = g.n * g.c * g.h * g.w;
    need(OP, "x", x.len(), len)?;
    need(OP, "y", y.len(), len)?;
    if g.grid == 0 || g.h % g.grid != 0 || g.w % g.grid != 0 {
        return Err(precondition(OP, format!("grid {} does not divide {} x {}", g.grid, g.h, g.w)));
    }
    let cells = g.grid * g.grid;
    if perms.len() != g.n * cells || perms.iter().any(|&t| t as usize >= cells) {
        return Err(precondition(OP, format!("the permutation table must hold {} tile indices below {cells}", g.n * cells)));
    }
    if len == 0 {
        return Ok(());
    }
    let f = cx.function("jigsaw.cu", "jigsaw_fwd")?;
    let mut ws = cx.workspaces();
    let dev = ensure(cx.stream(), &mut ws.augment.perms, perms.len(), "jigsaw permutation")?;
    cx.stream().memcpy_htod(perms, &mut dev.slice_mut(0..perms.len())).map_err(|e| cuda_err(format!("{OP}: permutation upload failed: {e:?}")))?;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(&*dev).arg(x).arg(y);
    // SAFETY: `jigsaw_fwd(JigsawGeom, const u32* perms, const float* x, float* y)`; x, y hold n*c*h*w, perms n*grid^2
    // entries below grid^2 (checked).
    launched(OP, unsafe { b.launch(cfg_1d(cx.grid_stride(len, 256))) })
}
