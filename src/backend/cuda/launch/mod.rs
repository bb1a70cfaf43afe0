//! Launchers: one file per `kernels/<op>.cu`, named after the op. Each launcher is a plain function that takes the
//! [`Cuda`] backend, the op's geometry and device views, checks what the kernel's header comment requires, and
//! enqueues the kernel(s) on the backend's single stream with exactly the launch configuration that header gives.
//!
//! Launchers return `Result`: a launch only reports configuration errors (kernel faults surface at the next
//! synchronising call). The `Backend`-shaped methods of [`Cuda`] record the first error and report it at the next
//! fallible call (see [`Cuda::check`]).
//!
//! Geometry structs from [`crate::backend::geom`] are passed to kernels BY VALUE: they are `#[repr(C)]` and mirrored
//! field for field in the `.cu` files (`usize` -> `unsigned long long`), so they implement [`DeviceRepr`] here.

pub mod adamw;
pub mod add;
pub mod augment;
pub mod augmix;
pub mod barlow_twins;
pub mod batch_norm;
pub mod concat;
pub mod conv2d;
pub mod conv2d_bf16;
pub mod conv2d_bf16_nchw;
pub mod conv2d_direct;
pub mod conv2d_gemm;
pub mod cross_entropy;
pub mod elu;
pub mod fill;
pub mod global_pool;
pub mod grad_norm;
pub mod jigsaw;
pub mod l2_normalized_std;
pub mod lars;
pub mod linear;
pub mod max_pool2d;
pub mod mma_peak;
pub mod relu;
pub mod scale;
pub mod segments;
pub mod sgd;

use cudarc::driver::{DeviceRepr, LaunchConfig};

use super::backend::Cuda;
use super::cuda_err;
use crate::backend::geom::{BatchNormGeom, Conv2dGeom, CrossEntropyGeom, GlobalPoolGeom, LinearGeom, MaxPool2dGeom, SgdSegment};
use crate::error::{Error, Result};

// The kernels mirror `usize` as `unsigned long long`.
const _: () = assert!(std::mem::size_of::<usize>() == 8, "the CUDA backend needs a 64-bit host");
const _: () = assert!(std::mem::size_of::<Conv2dGeom>() == 88);
const _: () = assert!(std::mem::size_of::<BatchNormGeom>() == 32);
const _: () = assert!(std::mem::size_of::<MaxPool2dGeom>() == 72);
const _: () = assert!(std::mem::size_of::<GlobalPoolGeom>() == 24);
const _: () = assert!(std::mem::size_of::<LinearGeom>() == 24);
const _: () = assert!(std::mem::size_of::<CrossEntropyGeom>() == 16);
const _: () = assert!(std::mem::size_of::<SgdSegment>() == 32 && std::mem::align_of::<SgdSegment>() == 8);

// SAFETY: plain `#[repr(C)]` structs of integers and floats, mirrored field for field (same order, same widths) in
// the `.cu` files, which `static_assert` the same sizes.
unsafe impl DeviceRepr for Conv2dGeom {}
unsafe impl DeviceRepr for BatchNormGeom {}
unsafe impl DeviceRepr for MaxPool2dGeom {}
unsafe impl DeviceRepr for GlobalPoolGeom {}
unsafe impl DeviceRepr for LinearGeom {}
unsafe impl DeviceRepr for CrossEntropyGeom {}
unsafe impl DeviceRepr for SgdSegment {}

/// `FG_BLOCK` in `kernels/common.cuh`: the block size of every 1-d kernel.
pub const FG_BLOCK: u32 = 256;

/// A null device pointer for a nullable kernel argument (`bias`, `residual`, `idx`).
pub(crate) const NULL_PTR: u64 = 0;

/// Block `FG_BLOCK`, `grid` blocks, no dynamic shared memory.
pub(crate) fn cfg_1d(grid: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (FG_BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// `ceil(a / b)` as a grid dimension, or an error when it does not fit `limit`.
pub(crate) fn grid_dim(what: &str, a: usize, b: usize, limit: u32) -> Result<u32> {
    let g = a.div_ceil(b);
    u32::try_from(g).ok().filter(|&g| g <= limit).ok_or_else(|| cuda_err(format!("{what}: grid dimension {g} exceeds {limit}")))
}

/// The launch result of a cudarc launch, as the engine's error.
pub(crate) fn launched(
    kernel: &str,
    r: std::result::Result<Option<(cudarc::driver::CudaEvent, cudarc::driver::CudaEvent)>, cudarc::driver::DriverError>,
) -> Result<()> {
    r.map(|_| ()).map_err(|e| cuda_err(format!("launch of {kernel} failed: {e:?}")))
}

/// An error for a violated kernel precondition (the CPU reference panics on these).
pub(crate) fn precondition(op: &str, reason: impl std::fmt::Display) -> Error {
    cuda_err(format!("{op}: {reason}"))
}

impl Cuda {
    /// Grid for a grid-stride kernel over `n` items handled `per_block` at a time: `ceil(n / per_block)` capped at
    /// 32 blocks per SM (enough to fill the card; the loop covers the rest). At least 1.
    pub(crate) fn grid_stride(&self, n: usize, per_block: usize) -> u32 {
        let cap = (self.sm_count() as usize * 32).clamp(1, 65535);
        n.div_ceil(per_block).clamp(1, cap) as u32
    }
}

/// A view must hold at least `want` elements, or the kernel would touch memory outside it.
pub(crate) fn need(op: &str, name: &str, have: usize, want: usize) -> Result<()> {
    if have >= want {
        Ok(())
    } else {
        Err(precondition(op, format!("{name} holds {have} elements, the geometry needs {want}")))
    }
}
