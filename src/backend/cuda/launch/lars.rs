//! `kernels/lars.cu`, three launches: `lars_norms` (one block of 256 per chunk of [`CHUNK`] elements, DYNAMIC smem
//! (nsegs + 1) * 8 bytes) -> `lars_trust` (one block of 256 per segment) -> `lars_step` (block 256, grid-stride over
//! the total length, DYNAMIC smem (nsegs + 1) * 8 bytes). The table is re-uploaded only when it changed.

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::segments::{check_segments, chunk_count, upload_table, CHUNK};
use super::{launched, precondition, FG_BLOCK};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::geom::LarsSegment;
use crate::error::Result;

pub fn step(
    cx: &Cuda,
    segments: &[LarsSegment],
    momentum: f32,
    eta: f32,
    params: &mut CudaViewMut<'_, f32>,
    grads: &CudaView<'_, f32>,
    bufs: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "lars_step";
    let ranges: Vec<(usize, usize)> = segments.iter().map(|s| (s.offset, s.len)).collect();
    let total = check_segments(OP, &ranges, &[("params", params.len()), ("grads", grads.len()), ("bufs", bufs.len())], true)?;
    if total == 0 {
        return Ok(());
    }
    let nchunks = chunk_count(segments.iter().map(|s| s.len));
    let grid_chunks = u32::try_from(nchunks).map_err(|_| precondition(OP, format!("{nchunks} chunks exceed the grid")))?;
    let (f_norms, f_trust, f_step) =
        (cx.function("lars.cu", "lars_norms")?, cx.function("lars.cu", "lars_trust")?, cx.function("lars.cu", "lars_step")?);
    let smem = ((segments.len() + 1) * 8) as u32;
    let (nsegs, chunk) = (segments.len() as u32, CHUNK as u64);

    let mut ws = cx.workspaces();
    let t = &mut ws.train;
    upload_table(cx, &mut t.lars_table, segments, OP)?;
    let partial = ensure(cx.stream(), &mut t.partial, 2 * nchunks, "LARS partial norms")?;
    let trust = ensure(cx.stream(), &mut t.trust, segments.len(), "LARS trust ratios")?;
    let (_, table) = t.lars_table.as_ref().expect("uploaded above");

    let cfg = LaunchConfig { grid_dim: (grid_chunks, 1, 1), block_dim: (FG_BLOCK, 1, 1), shared_mem_bytes: smem };
    let mut b = cx.stream().launch_builder(&f_norms);
    let params_view = params.as_view();
    b.arg(table).arg(&nsegs).arg(&chunk).arg(&params_view).arg(grads).arg(&mut *partial);
    // SAFETY: `lars_norms(const LarsSegment*, u32 nsegs, u64 chunk, const float* params, const float* grads,
    // double* partial)`; segments inside the arenas (checked); partial holds 2 entries per block.
    launched("lars_norms", unsafe { b.launch(cfg) })?;

    let cfg = LaunchConfig { grid_dim: (nsegs, 1, 1), block_dim: (FG_BLOCK, 1, 1), shared_mem_bytes: 0 };
    let mut b = cx.stream().launch_builder(&f_trust);
    b.arg(table).arg(&nsegs).arg(&chunk).arg(&eta).arg(&*partial).arg(&mut *trust);
    // SAFETY: `lars_trust(const LarsSegment*, u32 nsegs, u64 chunk, float eta, const double* partial, float* trust)`;
    // one block per segment, trust holds nsegs entries.
    launched("lars_trust", unsafe { b.launch(cfg) })?;

    let cfg = LaunchConfig { grid_dim: (cx.grid_stride(total, 256), 1, 1), block_dim: (FG_BLOCK, 1, 1), shared_mem_bytes: smem };
    let mut b = cx.stream().launch_builder(&f_step);
    b.arg(table).arg(&nsegs).arg(&momentum).arg(&*trust).arg(params).arg(grads).arg(bufs);
    // SAFETY: `lars_step(const LarsSegment*, u32, float momentum, const float* trust, float* params,
    // const float* grads, float* bufs)`; segments inside the arenas and disjoint (checked).
    launched(OP, unsafe { b.launch(cfg) })
}
