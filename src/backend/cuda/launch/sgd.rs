//! `kernels/sgd.cu`: `sgd_step(const SgdSegment* segs /*device*/, u32 nsegs, float momentum, params, grads, bufs)`,
//! ONE launch over every segment; block 256, grid-stride over the total length, DYNAMIC smem (nsegs + 1) * 8 bytes
//! (at most 48 KB without opting in, i.e. nsegs <= 6143; more is reported as an error).
//!
//! The segment table lives in device memory: it is uploaded on the first step and re-uploaded only when it differs
//! from the last one uploaded (e.g. when `has_momentum` flips after the first step).

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::{launched, need, precondition, FG_BLOCK};
use crate::backend::cuda::backend::Cuda;
use crate::backend::cuda::cuda_err;
use crate::backend::geom::SgdSegment;
use crate::error::Result;

/// Most segments whose prefix table fits 48 KB of dynamic shared memory.
pub const MAX_SEGMENTS: usize = 48 * 1024 / 8 - 1;

/// `g = grad + wd * p; buf = has_momentum ? momentum * buf + g : g; p -= lr * buf` over every segment.
pub fn step(
    cx: &Cuda,
    segments: &[SgdSegment],
    momentum: f32,
    params: &mut CudaViewMut<'_, f32>,
    grads: &CudaView<'_, f32>,
    bufs: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "sgd_step";
    if segments.len() > MAX_SEGMENTS {
        return Err(precondition(OP, format!("{} segments; at most {MAX_SEGMENTS} fit the kernel's shared-memory table", segments.len())));
    }
    // The CPU reference asserts these: segments inside the arenas and not overlapping.
    let mut sorted: Vec<(usize, usize)> = segments.iter().map(|s| (s.offset, s.offset + s.len)).collect();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0].1 > w[1].0) {
        return Err(precondition(OP, format!("segments {:?} and {:?} overlap", w[0].0..w[0].1, w[1].0..w[1].1)));
    }
    let end = sorted.last().map_or(0, |s| s.1);
    need(OP, "params", params.len(), end)?;
    need(OP, "grads", grads.len(), end)?;
    need(OP, "bufs", bufs.len(), end)?;
    let total: usize = segments.iter().map(|s| s.len).sum();
    if total == 0 {
        return Ok(());
    }
    let f = cx.function("sgd.cu", "sgd_step")?;
    let cfg = LaunchConfig {
        grid_dim: (cx.grid_stride(total, 256), 1, 1),
        block_dim: (FG_BLOCK, 1, 1),
        shared_mem_bytes: ((segments.len() + 1) * 8) as u32,
    };

    let mut ws = cx.workspaces();
    match &mut ws.sgd_table {
        Some((host, _)) if host.as_slice() == segments => {}
        Some((host, dev)) if dev.len() >= segments.len() => {
            let mut dst = dev.slice_mut(0..segments.len());
            cx.stream().memcpy_htod(segments, &mut dst).map_err(|e| cuda_err(format!("{OP}: segment table upload failed: {e:?}")))?;
            host.clear();
            host.extend_from_slice(segments);
        }
        slot => {
            // Free the old table first.
            *slot = None;
            let dev = cx.stream().clone_htod(segments).map_err(|e| cuda_err(format!("{OP}: segment table upload failed: {e:?}")))?;
            crate::backend::cuda::pool::count_device_allocation();
            *slot = Some((segments.to_vec(), dev));
        }
    }
    let (_, table) = ws.sgd_table.as_ref().expect("uploaded above");
    let nsegs = segments.len() as u32;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(table).arg(&nsegs).arg(&momentum).arg(params).arg(grads).arg(bufs);
    // SAFETY: `sgd_step(const SgdSegment* segs, u32 nsegs, float momentum, float* params, const float* grads,
    // float* bufs)`; the table holds at least nsegs entries equal to `segments`, all inside the arenas (checked);
    // dynamic smem (nsegs + 1) * 8 bytes <= 48 KB.
    launched(OP, unsafe { b.launch(cfg) })
}
