//! `kernels/cross_entropy.cu`, logits `[n, k]`:
//! - `cross_entropy_fwd(g, logits, const u32* labels, probs, double* row_loss)`: one warp per row, block 256
//!   (8 rows per block), grid-stride over rows; then `cross_entropy_fwd_mean(g, row_loss, loss)`: grid 1, block 256;
//! - `cross_entropy_bwd(g, probs, labels, float dloss, dlogits)`: block 256, grid-stride over n*k (skipped when
//!   n*k == 0).
//!
//! Labels are host data: each call validates them (`< k`, as the CPU reference asserts) and copies them into the
//! reused device label buffer. The row-loss workspace (n doubles) is reused too.

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use super::{cfg_1d, launched, need, precondition};
use crate::backend::cuda::backend::{ensure, Cuda, Workspaces};
use crate::backend::cuda::cuda_err;
use crate::backend::geom::CrossEntropyGeom;
use crate::error::Result;

/// Validates `labels` and copies them into the workspace's device label buffer (at least `n` elements).
fn upload_labels(cx: &Cuda, ws: &mut Workspaces, op: &str, g: &CrossEntropyGeom, labels: &[u32]) -> Result<()> {
    if labels.len() != g.n {
        return Err(precondition(op, format!("{} labels for {} rows", labels.len(), g.n)));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= g.k) {
        return Err(precondition(op, format!("label {l} of row {i} is out of range for {} classes", g.k)));
    }
    let dev = ensure(cx.stream(), &mut ws.labels, g.n, "label")?;
    if g.n > 0 {
        let mut dst = dev.slice_mut(0..g.n);
        cx.stream().memcpy_htod(labels, &mut dst).map_err(|e| cuda_err(format!("{op}: label upload failed: {e:?}")))?;
    }
    Ok(())
}

/// Softmax probabilities into `probs`, mean loss into `loss[0]` (NaN when n == 0, as the kernel defines).
pub fn fwd(
    cx: &Cuda,
    g: &CrossEntropyGeom,
    logits: &CudaView<'_, f32>,
    labels: &[u32],
    probs: &mut CudaViewMut<'_, f32>,
    loss: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "cross_entropy_fwd";
    need(OP, "logits", logits.len(), g.n * g.k)?;
    need(OP, "probs", probs.len(), g.n * g.k)?;
    need(OP, "loss", loss.len(), 1)?;
    let f_rows = cx.function("cross_entropy.cu", "cross_entropy_fwd")?;
    let f_mean = cx.function("cross_entropy.cu", "cross_entropy_fwd_mean")?;
    let mut ws = cx.workspaces();
    let ws = &mut *ws;
    upload_labels(cx, ws, OP, g, labels)?;
    let row_loss = ensure(cx.stream(), &mut ws.ce_row_loss, g.n, "cross-entropy row loss")?;
    if g.n > 0 {
        let labels_dev = ws.labels.as_ref().expect("uploaded above");
        let cfg = cfg_1d(cx.grid_stride(g.n, 256 / 32));
        let mut b = cx.stream().launch_builder(&f_rows);
        b.arg(g).arg(logits).arg(labels_dev).arg(probs).arg(&mut *row_loss);
        // SAFETY: `cross_entropy_fwd(CrossEntropyGeom, const float* logits, const u32* labels, float* probs,
        // double* row_loss)`; labels and row_loss hold at least n, logits/probs n * k (checked).
        launched(OP, unsafe { b.launch(cfg) })?;
    }
    let mut b = cx.stream().launch_builder(&f_mean);
    b.arg(g).arg(&*row_loss).arg(loss);
    // SAFETY: `cross_entropy_fwd_mean(CrossEntropyGeom, const double* row_loss, float* loss)`, grid 1, block 256.
    launched("cross_entropy_fwd_mean", unsafe { b.launch(cfg_1d(1)) })
}

/// `dlogits = dloss * (probs - onehot(labels)) / n` (written).
pub fn bwd(cx: &Cuda, g: &CrossEntropyGeom, probs: &CudaView<'_, f32>, labels: &[u32], dloss: f32, dlogits: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "cross_entropy_bwd";
    need(OP, "probs", probs.len(), g.n * g.k)?;
    need(OP, "dlogits", dlogits.len(), g.n * g.k)?;
    let f = cx.function("cross_entropy.cu", "cross_entropy_bwd")?;
    let mut ws = cx.workspaces();
    let ws = &mut *ws;
    upload_labels(cx, ws, OP, g, labels)?;
    if g.n * g.k == 0 {
        return Ok(());
    }
    let labels_dev = ws.labels.as_ref().expect("uploaded above");
    let cfg = cfg_1d(cx.grid_stride(g.n * g.k, 256));
    let mut b = cx.stream().launch_builder(&f);
    b.arg(g).arg(probs).arg(labels_dev).arg(&dloss).arg(dlogits);
    // SAFETY: `cross_entropy_bwd(CrossEntropyGeom, const float* probs, const u32* labels, float dloss,
    // float* dlogits)`; lengths checked.
    launched(OP, unsafe { b.launch(cfg) })
}
