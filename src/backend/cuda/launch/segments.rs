//! Shared by the optimizer launchers (`lars`, `adamw`, `grad_norm`): device copies of segment tables (uploaded
//! only when they change, as `sgd_step`'s), host-side checks of a table against the arenas, the chunking of
//! segments for deterministic per-chunk reductions, and the workspaces of these ops and of the Barlow Twins loss.

use cudarc::driver::{CudaSlice, DeviceRepr};

use super::precondition;
use crate::backend::cuda::backend::Cuda;
use crate::backend::cuda::cuda_err;
use crate::backend::geom::{AdamwSegment, ArenaSegment, LarsSegment};
use crate::error::Result;

// The kernels mirror these structs field for field (static_assert on the sizes in the .cu files).
const _: () = assert!(std::mem::size_of::<ArenaSegment>() == 16);
const _: () = assert!(std::mem::size_of::<LarsSegment>() == 32 && std::mem::align_of::<LarsSegment>() == 8);
const _: () = assert!(std::mem::size_of::<AdamwSegment>() == 32 && std::mem::align_of::<AdamwSegment>() == 8);

// SAFETY: plain `#[repr(C)]` structs of integers and floats, mirrored field for field in `kernels/grad_norm.cu`,
// `kernels/lars.cu` and `kernels/adamw.cu`.
unsafe impl DeviceRepr for ArenaSegment {}
unsafe impl DeviceRepr for LarsSegment {}
unsafe impl DeviceRepr for AdamwSegment {}

/// Elements per block of the per-chunk reductions (`grad_norm_partial`, `lars_norms`): 32 per thread.
pub const CHUNK: usize = 8192;

/// Most segments whose prefix table fits 48 KB of dynamic shared memory.
pub const MAX_SEGMENTS: usize = 48 * 1024 / 8 - 1;

/// A segment table last uploaded (host copy, to skip identical re-uploads) and its device copy.
pub(crate) type Table<T> = Option<(Vec<T>, CudaSlice<T>)>;

/// Workspaces of the optimizer and Barlow Twins launchers (a field of the backend's `Workspaces`).
#[derive(Default)]
pub(crate) struct TrainWorkspaces {
    pub lars_table: Table<LarsSegment>,
    pub adamw_table: Table<AdamwSegment>,
    pub norm_table: Table<ArenaSegment>,
    /// Per-chunk partial sums (f64) of `grad_norm_partial` / `lars_norms`.
    pub partial: Option<CudaSlice<f64>>,
    /// LARS trust ratios, one per segment.
    pub trust: Option<CudaSlice<f32>>,
    /// Barlow Twins backward: `G = ∂ℒ/∂C`, `[f, f]`.
    pub bt_grad_c: Option<CudaSlice<f32>>,
    /// `std_of_l2_normalized`: `1/‖row‖` per row (f64).
    pub l2_inv_norm: Option<CudaSlice<f64>>,
}

/// Makes `slot` hold a device copy of `rows`, uploading only when they differ from the last upload.
pub(crate) fn upload_table<T: DeviceRepr + Clone + PartialEq>(cx: &Cuda, slot: &mut Table<T>, rows: &[T], op: &str) -> Result<()> {
    match slot {
        Some((host, _)) if host.as_slice() == rows => {}
        Some((host, dev)) if dev.len() >= rows.len() => {
            let mut dst = dev.slice_mut(0..rows.len());
            cx.stream().memcpy_htod(rows, &mut dst).map_err(|e| cuda_err(format!("{op}: segment table upload failed: {e:?}")))?;
            host.clear();
            host.extend_from_slice(rows);
        }
        slot => {
            *slot = None;
            let dev = cx.stream().clone_htod(rows).map_err(|e| cuda_err(format!("{op}: segment table upload failed: {e:?}")))?;
            *slot = Some((rows.to_vec(), dev));
        }
    }
    Ok(())
}

/// Checks a segment table (`(offset, len)` per segment) against arenas of the given lengths: at most
/// [`MAX_SEGMENTS`], inside every arena, no overlaps (the CPU reference panics on these). Returns the total length.
pub(crate) fn check_segments(op: &str, ranges: &[(usize, usize)], arenas: &[(&str, usize)], disjoint: bool) -> Result<usize> {
    if ranges.len() > MAX_SEGMENTS {
        return Err(precondition(op, format!("{} segments; at most {MAX_SEGMENTS} fit the kernel's shared-memory table", ranges.len())));
    }
    let mut sorted: Vec<(usize, usize)> = ranges.iter().map(|&(o, l)| (o, o + l)).collect();
    sorted.sort_unstable();
    if disjoint {
        if let Some(w) = sorted.windows(2).find(|w| w[0].1 > w[1].0) {
            return Err(precondition(op, format!("segments {:?} and {:?} overlap", w[0].0..w[0].1, w[1].0..w[1].1)));
        }
    }
    let end = sorted.iter().map(|s| s.1).max().unwrap_or(0);
    for &(name, len) in arenas {
        if len < end {
            return Err(precondition(op, format!("{name} holds {len} elements, the segments reach {end}")));
        }
    }
    Ok(ranges.iter().map(|r| r.1).sum())
}

/// Blocks of a per-chunk reduction over segments of these lengths.
pub(crate) fn chunk_count(lens: impl Iterator<Item = usize>) -> usize {
    lens.map(|l| l.div_ceil(CHUNK)).sum()
}
