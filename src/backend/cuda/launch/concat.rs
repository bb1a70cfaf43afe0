//! `kernels/concat.cu`: one launch per part. `concat_fwd(ConcatPart p, x_part, y)`,
//! `concat_bwd(ConcatPart p, dy, dx_part)`; block 256, grid-stride over `n * c_part * hw`, no smem; parts with no
//! elements are skipped.

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, PushKernelArg};

use super::{cfg_1d, launched, need, precondition};
use crate::backend::cuda::backend::Cuda;
use crate::backend::geom::ConcatGeom;
use crate::error::Result;

/// One part of a concatenation, mirrored field for field by `struct ConcatPart` in `kernels/concat.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatPart {
    pub n: usize,
    pub hw: usize,
    pub c_part: usize,
    pub c_total: usize,
    /// Channels of the parts before this one.
    pub c_offset: usize,
}

const _: () = assert!(std::mem::size_of::<ConcatPart>() == 40);

// SAFETY: `#[repr(C)]`, five `usize` = `unsigned long long` fields in the kernel's order (static_assert 40 bytes).
unsafe impl DeviceRepr for ConcatPart {}

/// The parts of `g`, in order.
pub fn parts(g: &ConcatGeom) -> Vec<ConcatPart> {
    let c_total = g.c_total();
    let mut c_offset = 0;
    g.channels
        .iter()
        .map(|&c_part| {
            let p = ConcatPart { n: g.n, hw: g.hw, c_part, c_total, c_offset };
            c_offset += c_part;
            p
        })
        .collect()
}

pub fn fwd(cx: &Cuda, g: &ConcatGeom, xs: &[CudaView<'_, f32>], y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    if xs.len() != g.channels.len() {
        return Err(precondition("concat_fwd", format!("{} inputs for {} parts", xs.len(), g.channels.len())));
    }
    need("concat_fwd", "y", y.len(), g.n * g.c_total() * g.hw)?;
    let f = cx.function("concat.cu", "concat_fwd")?;
    for (p, x) in parts(g).iter().zip(xs) {
        let numel = p.n * p.c_part * p.hw;
        need("concat_fwd", "x", x.len(), numel)?;
        if numel == 0 {
            continue;
        }
        let cfg = cfg_1d(cx.grid_stride(numel, 256));
        let mut b = cx.stream().launch_builder(&f);
        b.arg(p).arg(x).arg(&mut *y);
        // SAFETY: arguments match `concat_fwd(ConcatPart, const float* x_part, float* y)`; lengths checked.
        launched("concat_fwd", unsafe { b.launch(cfg) })?;
    }
    Ok(())
}

/// Splits `dy` into the parts' gradients (written).
pub fn bwd(cx: &Cuda, g: &ConcatGeom, dy: &CudaView<'_, f32>, dxs: &mut [CudaViewMut<'_, f32>]) -> Result<()> {
    if dxs.len() != g.channels.len() {
        return Err(precondition("concat_bwd", format!("{} gradients for {} parts", dxs.len(), g.channels.len())));
    }
    need("concat_bwd", "dy", dy.len(), g.n * g.c_total() * g.hw)?;
    let f = cx.function("concat.cu", "concat_bwd")?;
    for (p, dx) in parts(g).iter().zip(dxs.iter_mut()) {
        let numel = p.n * p.c_part * p.hw;
        need("concat_bwd", "dx", dx.len(), numel)?;
        if numel == 0 {
            continue;
        }
        let cfg = cfg_1d(cx.grid_stride(numel, 256));
        let mut b = cx.stream().launch_builder(&f);
        b.arg(p).arg(dy).arg(dx);
        // SAFETY: arguments match `concat_bwd(ConcatPart, const float* dy, float* dx_part)`; lengths checked.
        launched("concat_bwd", unsafe { b.launch(cfg) })?;
    }
    Ok(())
}
