//! [`Cuda`]: the CUDA backend, fp32 NCHW, every op a hand-written kernel from `kernels/` (no CPU fallback).
//!
//! Status: `fgssl selftest --device cuda` (every op against the CPU reference, ResNet-18 SGD steps) and the
//! compute-sanitizer memcheck / racecheck runs passed on an NVIDIA H200; `docs/GPU-STATUS.md` records what ran,
//! when and at which commit (code changed since then is compile-checked only until it is listed there). Every op
//! of [`crate::backend::Backend`] has a launcher (`launch/`); convolution uses the fp32 implicit-GEMM kernels of
//! `kernels/conv2d.cu` (tiled, split-K weight gradient); the direct kernels they replaced are kept in
//! `kernels/conv2d_direct.cu` as the kernel lab's baseline.
//!
//! Precision ([`Cuda::with_precision`]): with [`Precision::Bf16`] `conv2d_fwd` / `conv2d_bwd` run the bf16
//! tensor-core kernels of `kernels/conv2d_bf16.cu` instead, behind the NCHW f32 boundary of
//! `launch/conv2d_bf16_nchw.rs` (operands converted to NHWC / `[O, kh, kw, C]` bf16 on every call, results back to
//! NCHW f32, the bias and its gradient in f32), for every shape: no fp32 fallback. Every other op is fp32 at both
//! precisions. The bf16 path is compile-checked; `fgssl selftest --device cuda --precision bf16` checks it on a GPU
//! against the CPU reference's emulation of the same rounding.
//!
//! Errors: the op methods return `()` like the trait's. A failed launch (or a violated kernel precondition that
//! the CPU reference would panic on) is never ignored: the FIRST such error is stored in the backend, later ops
//! are still enqueued, and every later fallible call (`alloc`, `upload`, `download`,
//! [`Cuda::check`], [`Cuda::synchronize`]) returns it. The error is sticky: once a launch failed, results on
//! this device are meaningless. Kernel faults are asynchronous and surface at the next synchronising call
//! (`download`, `synchronize`) as a driver error.
//!
//! Memory: one stream. Tensor buffers ([`DeviceBuf`]) come from a caching allocator ([`super::pool`]) and return
//! to it when dropped; workspaces (batch-norm partial sums and coefficients, cross-entropy row losses, the label
//! copy, the SGD segment table, the bf16 convolution's operands) are allocated on first use, grown when a larger one is needed and reused after
//! that. So after the first training step nothing is allocated: [`Cuda::device_allocations`] counts every device
//! allocation and `fgssl selftest` fails if the count grows after the first ResNet step.
//!
//! Host-device copies: the input batch (`upload`), and the values read back (`download`: the loss, metrics).
//! Labels are host data (`&[u32]`): each `cross_entropy_*` call copies them into the reused device label buffer
//! (one small host-to-device copy of `4 n` bytes per call, i.e. per batch). The SGD segment table is re-uploaded
//! only when it changes (`has_momentum` flips after the first step).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{sys, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, DeviceRepr};

use super::launch;
use super::pool::{self, DeviceBuf, DeviceBytes, Pool};
use super::{cuda_err, CudaDevice};
use crate::backend::geom::*;
use crate::backend::{Backend, BnEpilogue, BnEpilogueGrad, Precision};
use crate::error::Result;
use crate::tensor::{DType, Format, Shape};

/// Device workspaces, allocated once and grown on demand (see the module documentation).
#[derive(Default)]
pub(crate) struct Workspaces {
    /// Batch norm: `2 * C * P` partial sums (double).
    pub bn_partial: Option<CudaSlice<f64>>,
    /// Batch norm backward: `4 * C` coefficients.
    pub bn_coef: Option<CudaSlice<f32>>,
    /// Cross-entropy: `n` row losses (double).
    pub ce_row_loss: Option<CudaSlice<f64>>,
    /// Cross-entropy: the device copy of the host labels.
    pub labels: Option<CudaSlice<u32>>,
    /// SGD: the segment table last uploaded (host copy, to skip identical re-uploads) and its device copy.
    pub sgd_table: Option<(Vec<SgdSegment>, CudaSlice<SgdSegment>)>,
    /// LARS / AdamW / gradient-norm segment tables and partial sums, Barlow Twins and collapse-monitor workspaces.
    pub train: launch::segments::TrainWorkspaces,
    /// Augmentation and jigsaw: parameters, permutations, grey means and the two stage buffers.
    pub augment: launch::augment::AugmentWorkspace,
    /// AugMix (inside augmentation): the u8 view, the two chain buffers and the per-value tables.
    pub augmix: launch::augmix::AugmixWorkspace,
    /// bf16 convolutions ([`Precision::Bf16`]): the operands converted to the tensor-core kernels' layout.
    pub conv_bf16: launch::conv2d_bf16_nchw::ConvBf16Workspace,
}

/// `slot` holding at least `len` elements (at least 1), reallocating (contents unspecified) when it is smaller.
pub(crate) fn ensure<'s, T: DeviceRepr>(
    stream: &Arc<CudaStream>,
    slot: &'s mut Option<CudaSlice<T>>,
    len: usize,
    what: &str,
) -> Result<&'s mut CudaSlice<T>> {
    if slot.as_ref().is_none_or(|s| s.len() < len) {
        // Free the old one first.
        *slot = None;
        // SAFETY: every workspace is written by a kernel before it is read.
        let fresh = unsafe { stream.alloc::<T>(len.max(1)) }
            .map_err(|e| cuda_err(format!("cannot allocate the {what} workspace ({len} elements): {e:?}")))?;
        pool::count_device_allocation();
        *slot = Some(fresh);
    }
    Ok(slot.as_mut().expect("allocated above"))
}

/// The CUDA backend on one device. See the module documentation for its error and memory conventions.
pub struct Cuda {
    dev: CudaDevice,
    sm_count: u32,
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
    workspaces: Mutex<Workspaces>,
    /// Free tensor blocks, shared with every live [`DeviceBuf`] (which returns its block here when dropped).
    pool: Arc<Pool>,
    /// The first launch error, reported by every later fallible call.
    error: Mutex<Option<String>>,
    /// What convolutions multiply in ([`Precision`]).
    precision: Precision,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda").field("dev", &self.dev).field("sm_count", &self.sm_count).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `v[range]` of a mutable view, keeping the view's full lifetime.
fn narrow_mut<'a>(mut v: CudaViewMut<'a, f32>, range: Range<usize>) -> CudaViewMut<'a, f32> {
    let narrowed = v.slice_mut(range);
    // SAFETY: `slice_mut` ties the result to the borrow of `v`, but a `CudaViewMut` holds only a device pointer, a
    // length and shared references that are themselves valid for `'a` (copied from `v`). `v` is consumed here and
    // has no `Drop`, so the narrowed view is the only access to its range for `'a`: extending it to `'a` is sound.
    unsafe { std::mem::transmute::<CudaViewMut<'_, f32>, CudaViewMut<'a, f32>>(narrowed) }
}

impl Cuda {
    /// Opens GPU `ordinal` (see [`CudaDevice::open`]). Kernels are compiled on first use.
    pub fn open(ordinal: usize) -> Result<Cuda> {
        let dev = CudaDevice::open(ordinal)?;
        let sms = dev
            .ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| cuda_err(format!("cuda:{ordinal}: cannot read the SM count: {e:?}")))?;
        let stream = dev.stream.clone();
        Ok(Cuda {
            dev,
            sm_count: sms.max(1) as u32,
            functions: Mutex::new(HashMap::new()),
            workspaces: Mutex::new(Workspaces::default()),
            pool: Pool::new(stream),
            error: Mutex::new(None),
            precision: Precision::Fp32,
        })
    }

    /// The same backend with convolutions in `precision` ([`Precision::Bf16`]: the tensor-core kernels of
    /// `kernels/conv2d_bf16.cu`).
    pub fn with_precision(mut self, precision: Precision) -> Cuda {
        self.precision = precision;
        self
    }

    pub fn device(&self) -> &CudaDevice {
        &self.dev
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.dev.stream
    }

    /// Streaming multiprocessors on the card (sizes the grid-stride grids).
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// Kernel `kernel` of `kernels/<file>`, looked up once per backend.
    pub fn function(&self, file: &'static str, kernel: &'static str) -> Result<CudaFunction> {
        let mut fns = lock(&self.functions);
        if let Some(f) = fns.get(&(file, kernel)) {
            return Ok(f.clone());
        }
        let f = self.dev.function(file, kernel)?;
        fns.insert((file, kernel), f.clone());
        Ok(f)
    }

    /// Device allocations made so far (process-wide: every `Cuda` backend counts into it). Steady-state training
    /// keeps this constant after its first step.
    pub fn device_allocations() -> u64 {
        pool::device_allocations()
    }

    /// Bytes of device memory cached in free tensor blocks.
    pub fn cached_bytes(&self) -> usize {
        self.pool.cached_bytes()
    }

    /// Frees the cached tensor blocks (e.g. between training and a memory-hungry evaluation with other shapes).
    pub fn release_cached_memory(&self) {
        self.pool.release();
    }

    pub(crate) fn workspaces(&self) -> MutexGuard<'_, Workspaces> {
        lock(&self.workspaces)
    }

    /// A pooled buffer of `len` f32 (contents unspecified) for a launcher's temporary workspace (the split-K
    /// partial tiles of the convolution's weight gradient). Dropping it returns it to the pool, where the same call
    /// in the next training step finds it, so steady-state training allocates nothing.
    pub(crate) fn scratch(&self, len: usize) -> Result<DeviceBuf> {
        self.pool.take(len)
    }

    /// Keeps the first error of an op (the trait's op methods return `()`).
    fn record(&self, r: Result<()>) {
        if let Err(e) = r {
            let mut slot = lock(&self.error);
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }
    }

    /// The first error recorded by an op since this backend opened, if any.
    pub fn check(&self) -> Result<()> {
        match lock(&self.error).as_ref() {
            None => Ok(()),
            Some(reason) => Err(cuda_err(format!("an earlier operation failed: {reason}"))),
        }
    }

    /// Waits for all queued work; reports recorded errors and asynchronous kernel faults.
    pub fn synchronize(&self) -> Result<()> {
        self.check()?;
        self.dev.stream.synchronize().map_err(|e| cuda_err(format!("stream synchronize failed: {e:?}")))
    }

    fn check_format(format: Format) -> Result<()> {
        if format == Format::NCHW_F32 {
            Ok(())
        } else {
            Err(cuda_err(format!("unsupported format {format:?}; the CUDA backend stores NCHW f32 only (bf16 comes later)")))
        }
    }
}

impl Backend for Cuda {
    type Buf = DeviceBuf;
    type View<'a> = CudaView<'a, f32>;
    type ViewMut<'a> = CudaViewMut<'a, f32>;
    type Bytes = DeviceBytes;
    type Mark = cudarc::driver::CudaEvent;

    // ---- device and memory ---------------------------------------------------------------

    fn name(&self) -> String {
        self.dev.describe()
    }

    fn activation_format(&self) -> Format {
        Format::NCHW_F32
    }

    fn param_format(&self) -> Format {
        Format::NCHW_F32
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    /// Uninitialised device memory from the caching allocator.
    fn alloc(&self, numel: usize, dtype: DType) -> Result<DeviceBuf> {
        self.check()?;
        if dtype != DType::F32 {
            return Err(cuda_err(format!("{dtype:?} buffers are not supported yet; the CUDA backend computes in f32")));
        }
        self.pool.take(numel)
    }

    fn device_allocations(&self) -> Option<u64> {
        Some(Cuda::device_allocations())
    }

    /// A pooled buffer filled by a stream-ordered host-to-device copy.
    fn upload(&self, shape: &Shape, format: Format, host: &[f32]) -> Result<DeviceBuf> {
        self.check()?;
        Self::check_format(format)?;
        if shape.numel() != host.len() {
            return Err(crate::error::Error::shape("upload", format!("shape {:?} needs {} values, got {}", shape.0, shape.numel(), host.len())));
        }
        let mut buf = self.pool.take(host.len())?;
        if !host.is_empty() {
            let mut dst = buf.slice_mut(..);
            self.dev.stream.memcpy_htod(host, &mut dst).map_err(|e| cuda_err(format!("upload of {} f32 failed: {e:?}", host.len())))?;
        }
        Ok(buf)
    }

    /// A pooled block per batch of images (no allocation once a batch of this size has been seen).
    fn upload_bytes(&self, host: &[u8]) -> Result<DeviceBytes> {
        self.check()?;
        DeviceBytes::upload(&self.pool, host)
    }

    /// Synchronises (`clone_dtoh`), so asynchronous kernel faults surface here.
    fn download(&self, shape: &Shape, format: Format, buf: &DeviceBuf) -> Result<Vec<f32>> {
        self.check()?;
        Self::check_format(format)?;
        let numel = shape.numel();
        if buf.len() < numel {
            return Err(crate::error::Error::shape("download", format!("shape {:?} needs {} values, buffer holds {}", shape.0, numel, buf.len())));
        }
        self.dev.stream.clone_dtoh(&buf.slice(0..numel)).map_err(|e| cuda_err(format!("download of {numel} f32 failed: {e:?}")))
    }

    fn view<'a>(&self, buf: &'a DeviceBuf, range: Range<usize>) -> CudaView<'a, f32> {
        buf.slice(range)
    }

    fn view_mut<'a>(&self, buf: &'a mut DeviceBuf, range: Range<usize>) -> CudaViewMut<'a, f32> {
        buf.slice_mut(range)
    }

    /// Two writable windows into disjoint ranges, in either order. Panics if the ranges overlap or run past the end.
    fn view_mut_pair<'a>(&self, buf: &'a mut DeviceBuf, first: Range<usize>, second: Range<usize>) -> (CudaViewMut<'a, f32>, CudaViewMut<'a, f32>) {
        assert!(first.start <= first.end && second.start <= second.end, "view_mut_pair: reversed range {first:?} / {second:?}");
        assert!(first.end <= buf.len() && second.end <= buf.len(), "view_mut_pair: {first:?} / {second:?} past the end ({})", buf.len());
        let first_is_lower = first.start <= second.start;
        let (lower, upper) = if first_is_lower { (first, second) } else { (second, first) };
        assert!(lower.end <= upper.start || lower.is_empty() || upper.is_empty(), "view_mut_pair: ranges {lower:?} and {upper:?} overlap");
        // Split where the upper range starts unless the lower (possibly empty) range ends past it.
        let mid = upper.start.max(lower.end);
        let (lo, hi) = buf.split_at_mut(mid);
        let lower_v = narrow_mut(lo, lower.clone());
        let upper_v = if upper.is_empty() { narrow_mut(hi, 0..0) } else { narrow_mut(hi, upper.start - mid..upper.end - mid) };
        if first_is_lower {
            (lower_v, upper_v)
        } else {
            (upper_v, lower_v)
        }
    }

    fn fill(&self, n: usize, value: f32, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::fill::fwd(self, n, value, &mut y));
    }

    // ---- convolution (the implicit-GEMM fp32 kernels of kernels/conv2d.cu) --------------------------------------

    /// Bf16: the tensor-core kernels behind the NCHW f32 boundary (`launch::conv2d_bf16_nchw`).
    fn conv2d_fwd(&self, g: &Conv2dGeom, x: CudaView<'_, f32>, w: CudaView<'_, f32>, bias: Option<CudaView<'_, f32>>, mut y: CudaViewMut<'_, f32>) {
        self.record(match self.precision {
            Precision::Fp32 => launch::conv2d::fwd(self, g, &x, &w, bias.as_ref(), &mut y),
            Precision::Bf16 => launch::conv2d_bf16_nchw::fwd(self, g, &x, &w, bias.as_ref(), &mut y),
        });
    }

    /// Bf16: dx and dw on the tensor-core kernels, dbias from the f32 dy (`launch::conv2d_bf16_nchw`).
    #[allow(clippy::too_many_arguments)]
    fn conv2d_bwd(
        &self,
        g: &Conv2dGeom,
        x: CudaView<'_, f32>,
        w: CudaView<'_, f32>,
        dy: CudaView<'_, f32>,
        mut dx: Option<CudaViewMut<'_, f32>>,
        mut dw: CudaViewMut<'_, f32>,
        mut dbias: Option<CudaViewMut<'_, f32>>,
    ) {
        self.record(match self.precision {
            Precision::Fp32 => launch::conv2d::bwd(self, g, &x, &w, &dy, dx.as_mut(), &mut dw, dbias.as_mut()),
            Precision::Bf16 => launch::conv2d_bf16_nchw::bwd(self, g, &x, &w, &dy, dx.as_mut(), &mut dw, dbias.as_mut()),
        });
    }

    // ---- batch norm ---------------------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fwd_train(
        &self,
        g: &BatchNormGeom,
        x: CudaView<'_, f32>,
        gamma: CudaView<'_, f32>,
        beta: CudaView<'_, f32>,
        mut running_mean: CudaViewMut<'_, f32>,
        mut running_var: CudaViewMut<'_, f32>,
        mut y: CudaViewMut<'_, f32>,
        mut saved_mean: CudaViewMut<'_, f32>,
        mut saved_invstd: CudaViewMut<'_, f32>,
        epilogue: BnEpilogue<CudaView<'_, f32>>,
    ) {
        self.record(launch::batch_norm::fwd_train(
            self,
            g,
            &x,
            &gamma,
            &beta,
            &mut running_mean,
            &mut running_var,
            &mut y,
            &mut saved_mean,
            &mut saved_invstd,
            &epilogue,
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fwd_eval(
        &self,
        g: &BatchNormGeom,
        x: CudaView<'_, f32>,
        gamma: CudaView<'_, f32>,
        beta: CudaView<'_, f32>,
        running_mean: CudaView<'_, f32>,
        running_var: CudaView<'_, f32>,
        mut y: CudaViewMut<'_, f32>,
        epilogue: BnEpilogue<CudaView<'_, f32>>,
    ) {
        self.record(launch::batch_norm::fwd_eval(self, g, &x, &gamma, &beta, &running_mean, &running_var, &mut y, &epilogue));
    }

    #[allow(clippy::too_many_arguments)]
    fn batch_norm_bwd(
        &self,
        g: &BatchNormGeom,
        x: CudaView<'_, f32>,
        gamma: CudaView<'_, f32>,
        saved_mean: CudaView<'_, f32>,
        saved_invstd: CudaView<'_, f32>,
        dy: CudaView<'_, f32>,
        mut dx: CudaViewMut<'_, f32>,
        mut dgamma: CudaViewMut<'_, f32>,
        mut dbeta: CudaViewMut<'_, f32>,
        mut epilogue: BnEpilogueGrad<CudaView<'_, f32>, CudaViewMut<'_, f32>>,
    ) {
        self.record(launch::batch_norm::bwd(self, g, &x, &gamma, &saved_mean, &saved_invstd, &dy, &mut dx, &mut dgamma, &mut dbeta, &mut epilogue));
    }

    // ---- activations --------------------------------------------------------------------------------------------

    fn relu_fwd(&self, n: usize, x: CudaView<'_, f32>, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::relu::fwd(self, n, &x, &mut y));
    }

    fn relu_bwd(&self, n: usize, y: CudaView<'_, f32>, dy: CudaView<'_, f32>, mut dx: CudaViewMut<'_, f32>) {
        self.record(launch::relu::bwd(self, n, &y, &dy, &mut dx));
    }

    fn elu_fwd(&self, n: usize, alpha: f32, x: CudaView<'_, f32>, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::elu::fwd(self, n, alpha, &x, &mut y));
    }

    fn elu_bwd(&self, n: usize, alpha: f32, x: CudaView<'_, f32>, dy: CudaView<'_, f32>, mut dx: CudaViewMut<'_, f32>) {
        self.record(launch::elu::bwd(self, n, alpha, &x, &dy, &mut dx));
    }

    // ---- pooling ------------------------------------------------------------------------------------------------

    /// No argmax is kept (`idx` = NULL): the backward recomputes it from `x`.
    fn max_pool2d_fwd(&self, g: &MaxPool2dGeom, x: CudaView<'_, f32>, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::max_pool2d::fwd(self, g, &x, &mut y, None));
    }

    fn max_pool2d_bwd(&self, g: &MaxPool2dGeom, x: CudaView<'_, f32>, dy: CudaView<'_, f32>, mut dx: CudaViewMut<'_, f32>) {
        self.record(launch::max_pool2d::bwd(self, g, &x, &dy, &mut dx));
    }

    fn global_max_pool_fwd(&self, g: &GlobalPoolGeom, x: CudaView<'_, f32>, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::global_pool::max_fwd(self, g, &x, &mut y));
    }

    fn global_max_pool_bwd(&self, g: &GlobalPoolGeom, x: CudaView<'_, f32>, dy: CudaView<'_, f32>, mut dx: CudaViewMut<'_, f32>) {
        self.record(launch::global_pool::max_bwd(self, g, &x, &dy, &mut dx));
    }

    fn global_avg_pool_fwd(&self, g: &GlobalPoolGeom, x: CudaView<'_, f32>, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::global_pool::avg_fwd(self, g, &x, &mut y));
    }

    fn global_avg_pool_bwd(&self, g: &GlobalPoolGeom, dy: CudaView<'_, f32>, mut dx: CudaViewMut<'_, f32>) {
        self.record(launch::global_pool::avg_bwd(self, g, &dy, &mut dx));
    }

    // ---- linear -------------------------------------------------------------------------------------------------

    fn linear_fwd(&self, g: &LinearGeom, x: CudaView<'_, f32>, w: CudaView<'_, f32>, bias: Option<CudaView<'_, f32>>, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::linear::fwd(self, g, &x, &w, bias.as_ref(), &mut y));
    }

    #[allow(clippy::too_many_arguments)]
    fn linear_bwd(
        &self,
        g: &LinearGeom,
        x: CudaView<'_, f32>,
        w: CudaView<'_, f32>,
        dy: CudaView<'_, f32>,
        mut dx: Option<CudaViewMut<'_, f32>>,
        mut dw: CudaViewMut<'_, f32>,
        mut dbias: Option<CudaViewMut<'_, f32>>,
    ) {
        self.record(launch::linear::bwd(self, g, &x, &w, &dy, dx.as_mut(), &mut dw, dbias.as_mut()));
    }

    // ---- tensor plumbing ----------------------------------------------------------------------------------------

    fn add_fwd(&self, n: usize, a: CudaView<'_, f32>, b: CudaView<'_, f32>, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::add::fwd(self, n, &a, &b, &mut y));
    }

    fn concat_fwd(&self, g: &ConcatGeom, xs: &[CudaView<'_, f32>], mut y: CudaViewMut<'_, f32>) {
        self.record(launch::concat::fwd(self, g, xs, &mut y));
    }

    fn concat_bwd(&self, g: &ConcatGeom, dy: CudaView<'_, f32>, mut dxs: Vec<CudaViewMut<'_, f32>>) {
        self.record(launch::concat::bwd(self, g, &dy, &mut dxs));
    }

    // ---- loss ---------------------------------------------------------------------------------------------------

    /// Copies `labels` into the reused device label buffer first.
    fn cross_entropy_fwd(
        &self,
        g: &CrossEntropyGeom,
        logits: CudaView<'_, f32>,
        labels: &[u32],
        mut probs: CudaViewMut<'_, f32>,
        mut loss: CudaViewMut<'_, f32>,
    ) {
        self.record(launch::cross_entropy::fwd(self, g, &logits, labels, &mut probs, &mut loss));
    }

    /// Copies `labels` into the reused device label buffer first.
    fn cross_entropy_bwd(&self, g: &CrossEntropyGeom, probs: CudaView<'_, f32>, labels: &[u32], dloss: f32, mut dlogits: CudaViewMut<'_, f32>) {
        self.record(launch::cross_entropy::bwd(self, g, &probs, labels, dloss, &mut dlogits));
    }

    // ---- optimizer ----------------------------------------------------------------------------------------------

    /// One launch over every segment; the segment table is re-uploaded only when it changed since the last step.
    fn sgd_step(
        &self,
        segments: &[SgdSegment],
        momentum: f32,
        mut params: CudaViewMut<'_, f32>,
        grads: CudaView<'_, f32>,
        mut bufs: CudaViewMut<'_, f32>,
    ) {
        self.record(launch::sgd::step(self, segments, momentum, &mut params, &grads, &mut bufs));
    }

    /// Three launches: per-chunk norms, per-segment trust ratios, the update.
    fn lars_step(
        &self,
        segments: &[LarsSegment],
        momentum: f32,
        eta: f32,
        mut params: CudaViewMut<'_, f32>,
        grads: CudaView<'_, f32>,
        mut bufs: CudaViewMut<'_, f32>,
    ) {
        self.record(launch::lars::step(self, segments, momentum, eta, &mut params, &grads, &mut bufs));
    }

    #[allow(clippy::too_many_arguments)]
    fn adamw_step(
        &self,
        segments: &[AdamwSegment],
        beta1: f32,
        beta2: f32,
        eps: f32,
        mut params: CudaViewMut<'_, f32>,
        grads: CudaView<'_, f32>,
        mut exp_avg: CudaViewMut<'_, f32>,
        mut exp_avg_sq: CudaViewMut<'_, f32>,
    ) {
        self.record(launch::adamw::step(self, segments, beta1, beta2, eps, &mut params, &grads, &mut exp_avg, &mut exp_avg_sq));
    }

    fn grad_norm(&self, segments: &[ArenaSegment], grads: CudaView<'_, f32>, mut norm: CudaViewMut<'_, f32>) {
        self.record(launch::grad_norm::fwd(self, segments, &grads, &mut norm));
    }

    fn scale(&self, n: usize, alpha: f32, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::scale::fwd(self, n, alpha, &mut y));
    }

    // ---- Barlow Twins loss and its collapse monitor -------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn barlow_twins_fwd(
        &self,
        g: &BarlowTwinsGeom,
        za: CudaView<'_, f32>,
        zb: CudaView<'_, f32>,
        mut za_hat: CudaViewMut<'_, f32>,
        mut zb_hat: CudaViewMut<'_, f32>,
        mut inv_std_a: CudaViewMut<'_, f32>,
        mut inv_std_b: CudaViewMut<'_, f32>,
        mut c: CudaViewMut<'_, f32>,
        mut terms: CudaViewMut<'_, f32>,
    ) {
        self.record(launch::barlow_twins::fwd(self, g, &za, &zb, &mut za_hat, &mut zb_hat, &mut inv_std_a, &mut inv_std_b, &mut c, &mut terms));
    }

    #[allow(clippy::too_many_arguments)]
    fn barlow_twins_bwd(
        &self,
        g: &BarlowTwinsGeom,
        za_hat: CudaView<'_, f32>,
        zb_hat: CudaView<'_, f32>,
        inv_std_a: CudaView<'_, f32>,
        inv_std_b: CudaView<'_, f32>,
        c: CudaView<'_, f32>,
        dloss: f32,
        mut dza: CudaViewMut<'_, f32>,
        mut dzb: CudaViewMut<'_, f32>,
    ) {
        self.record(launch::barlow_twins::bwd(self, g, &za_hat, &zb_hat, &inv_std_a, &inv_std_b, &c, dloss, &mut dza, &mut dzb));
    }

    fn l2_normalized_std_fwd(&self, g: &L2NormalizedStdGeom, z: CudaView<'_, f32>, mut out: CudaViewMut<'_, f32>) {
        self.record(launch::l2_normalized_std::fwd(self, g, &z, &mut out));
    }

    // ---- augmentation and jigsaw --------------------------------------------------------------------------------

    /// Copies the parameters and the inverse permutations into reused device workspaces first.
    fn augment_fwd(&self, g: &AugmentGeom, images: &DeviceBytes, params: &[SampleAug], perms: &[u32], mut ys: Vec<CudaViewMut<'_, f32>>) {
        self.record(launch::augment::fwd(self, g, &images.view(), params, perms, &mut ys));
    }

    /// Copies the permutations into the reused device workspace first.
    fn jigsaw_fwd(&self, g: &JigsawGeom, perms: &[u32], x: CudaView<'_, f32>, mut y: CudaViewMut<'_, f32>) {
        self.record(launch::jigsaw::fwd(self, g, perms, &x, &mut y));
    }

    /// A timing event recorded on the stream (see [`super::timing`]).
    fn mark(&self) -> Result<cudarc::driver::CudaEvent> {
        self.check()?;
        super::timing::mark(&self.dev)
    }

    fn elapsed_ms(&self, from: &cudarc::driver::CudaEvent, to: &cudarc::driver::CudaEvent) -> Result<f64> {
        super::timing::elapsed_ms(from, to)
    }
}
