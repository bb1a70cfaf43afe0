//! `kernels/grad_norm.cu`: `grad_norm_partial(const ArenaSegment* segs /*device*/, u32 nsegs, u64 chunk, grads,
//! double* partial)` with one block of 256 per chunk of [`CHUNK`] elements and DYNAMIC smem (nsegs + 1) * 8 bytes,
//! then `grad_norm_finalize(u64 nchunks, partial, norm)` with grid 1, block 256. Deterministic for a given table.

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::segments::{check_segments, chunk_count, upload_table, CHUNK};
use super::{cfg_1d, launched, need, FG_BLOCK};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::geom::ArenaSegment;
use crate::error::Result;

/// `norm[0] = sqrt(Σ grads²)` over the segments (0 for an empty table).
pub fn fwd(cx: &Cuda, segments: &[ArenaSegment], grads: &CudaView<'_, f32>, norm: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "grad_norm";
    let ranges: Vec<(usize, usize)> = segments.iter().map(|s| (s.offset, s.len)).collect();
    check_segments(OP, &ranges, &[("grads", grads.len())], false)?;
    need(OP, "norm", norm.len(), 1)?;
    let nchunks = chunk_count(segments.iter().map(|s| s.len));
    let f_partial = cx.function("grad_norm.cu", "grad_norm_partial")?;
    let f_final = cx.function("grad_norm.cu", "grad_norm_finalize")?;
    let mut ws = cx.workspaces();
    let t = &mut ws.train;
    let partial = ensure(cx.stream(), &mut t.partial, nchunks, "gradient-norm partial sums")?;
    if nchunks > 0 {
        upload_table(cx, &mut t.norm_table, segments, OP)?;
        let (_, table) = t.norm_table.as_ref().expect("uploaded above");
        let cfg = LaunchConfig {
            grid_dim: (u32::try_from(nchunks).map_err(|_| super::precondition(OP, format!("{nchunks} chunks exceed the grid")))?, 1, 1),
            block_dim: (FG_BLOCK, 1, 1),
            shared_mem_bytes: ((segments.len() + 1) * 8) as u32,
        };
        let (nsegs, chunk) = (segments.len() as u32, CHUNK as u64);
        let mut b = cx.stream().launch_builder(&f_partial);
        b.arg(table).arg(&nsegs).arg(&chunk).arg(grads).arg(&mut *partial);
        // SAFETY: `grad_norm_partial(const ArenaSegment*, u32 nsegs, u64 chunk, const float* grads, double* partial)`;
        // the table holds nsegs segments inside `grads` (checked), partial holds one entry per block (nchunks).
        launched("grad_norm_partial", unsafe { b.launch(cfg) })?;
    }
    let n = nchunks as u64;
    let mut b = cx.stream().launch_builder(&f_final);
    b.arg(&n).arg(&*partial).arg(norm);
    // SAFETY: `grad_norm_finalize(u64 nchunks, const double* partial, float* norm)`; partial holds nchunks entries
    // written above, norm at least 1 (checked). Grid 1, block 256.
    launched("grad_norm_finalize", unsafe { b.launch(cfg_1d(1)) })
}
