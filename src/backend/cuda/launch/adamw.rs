//! `kernels/adamw.cu`: `adamw_step(const AdamwSegment* segs /*device*/, u32 nsegs, float beta1, float beta2,
//! float eps, params, grads, exp_avg, exp_avg_sq)`, ONE launch over every segment; block 256, grid-stride over the
//! total length, DYNAMIC smem (nsegs + 1) * 8 bytes. The table is re-uploaded only when it changed (the bias
//! corrections change every step, so in practice every step).

use cudarc::driver::{CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::segments::{check_segments, upload_table};
use super::{launched, FG_BLOCK};
use crate::backend::cuda::backend::Cuda;
use crate::backend::geom::AdamwSegment;
use crate::error::Result;

#[allow(clippy::too_many_arguments)]
pub fn step(
    cx: &Cuda,
    segments: &[AdamwSegment],
    beta1: f32,
    beta2: f32,
    eps: f32,
    params: &mut CudaViewMut<'_, f32>,
    grads: &CudaView<'_, f32>,
    exp_avg: &mut CudaViewMut<'_, f32>,
    exp_avg_sq: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "adamw_step";
    let ranges: Vec<(usize, usize)> = segments.iter().map(|s| (s.offset, s.len)).collect();
    let arenas = [("params", params.len()), ("grads", grads.len()), ("exp_avg", exp_avg.len()), ("exp_avg_sq", exp_avg_sq.len())];
    let total = check_segments(OP, &ranges, &arenas, true)?;
    if total == 0 {
        return Ok(());
    }
    let f = cx.function("adamw.cu", "adamw_step")?;
    let cfg = LaunchConfig {
        grid_dim: (cx.grid_stride(total, 256), 1, 1),
        block_dim: (FG_BLOCK, 1, 1),
        shared_mem_bytes: ((segments.len() + 1) * 8) as u32,
    };
    let mut ws = cx.workspaces();
    let t = &mut ws.train;
    upload_table(cx, &mut t.adamw_table, segments, OP)?;
    let (_, table) = t.adamw_table.as_ref().expect("uploaded above");
    let nsegs = segments.len() as u32;
    let mut b = cx.stream().launch_builder(&f);
    b.arg(table).arg(&nsegs).arg(&beta1).arg(&beta2).arg(&eps).arg(params).arg(grads).arg(exp_avg).arg(exp_avg_sq);
    // SAFETY: `adamw_step(const AdamwSegment*, u32, float, float, float, float* params, const float* grads,
    // float* exp_avg, float* exp_avg_sq)`; the table holds nsegs segments inside all four arenas, not overlapping
    // (checked); dynamic smem (nsegs + 1) * 8 <= 48 KB.
    launched(OP, unsafe { b.launch(cfg) })
}
