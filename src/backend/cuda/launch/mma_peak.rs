//! `kernels/mma_peak.cu`: the bf16 tensor-core throughput probe that `fgssl lab conv` measures the peak with.

use cudarc::driver::{CudaViewMut, LaunchConfig, PushKernelArg};

use super::{launched, need};
use crate::backend::cuda::backend::Cuda;
use crate::error::Result;

/// Threads per block of `mma_peak` (8 warps).
pub const THREADS: u32 = 256;
/// `MMA_PEAK_CHAINS`: independent mma.sync per warp per iteration.
pub const CHAINS: u64 = 8;

/// FLOPs of one launch: every warp runs `iters * CHAINS` m16n8k16 MMAs of 2 * 16 * 8 * 16 FLOP.
pub fn flops(blocks: u32, iters: u32) -> f64 {
    blocks as f64 * (THREADS / 32) as f64 * iters as f64 * CHAINS as f64 * 4096.0
}

/// Enqueues `mma_peak(iters, out)` on `blocks` blocks; `out` holds one float per thread.
pub fn run(cx: &Cuda, blocks: u32, iters: u32, out: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "mma_peak";
    need(OP, "out", out.len(), blocks as usize * THREADS as usize)?;
    let f = cx.function("mma_peak.cu", OP)?;
    let cfg = LaunchConfig { grid_dim: (blocks.max(1), 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
    let mut b = cx.stream().launch_builder(&f);
    b.arg(&iters).arg(out);
    // SAFETY: `mma_peak(u32 iters, float* out)`, out holds blocks * THREADS floats.
    launched(OP, unsafe { b.launch(cfg) })
}
