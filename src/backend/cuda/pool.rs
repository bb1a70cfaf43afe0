//! The CUDA backend's caching allocator: every tensor buffer ([`DeviceBuf`], the backend's `Buf`) comes from a
//! size-bucketed free list and goes back to it when dropped, so a training loop that repeats the same shapes
//! allocates device memory during its first step only.
//!
//! Buckets: a request of `n` f32 is rounded up to its size class ([`size_class`]: multiples of 256 elements up to
//! 4096, then 8 classes per power of two, so at most 12.5% is wasted) and served from that class's free list; a
//! miss allocates a block of exactly the class size from the driver. Blocks are never split or merged, so the
//! pool holds at most what the busiest step held at once, per class. [`Pool::release`] (and any failed
//! allocation, before its one retry) frees every cached block.
//!
//! Why handing a block to a new owner while kernels may still use it is safe: the engine uses ONE stream (the
//! context's default stream, cudarc's event tracking off), and every kernel launch and every host-device copy of
//! this backend is enqueued on it. A block is returned to the free list when its last host-side owner drops it,
//! possibly while kernels that read or write it are still queued; its next owner can only touch it through work
//! enqueued later on the same stream, which the stream runs after everything enqueued before. So the old reads and
//! writes always finish before the new ones start, without events or synchronisation. Host reads (`download`)
//! synchronise with the stream first; host writes (`upload`) are stream-ordered copies. A second stream would
//! break this argument: it would need an event per block.
//!
//! [`device_allocations`] counts every device allocation the backend makes (pool misses, workspace growth, the
//! SGD table), process-wide, so a caller can check that steady-state training allocates nothing.

use std::collections::HashMap;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut};

use super::cuda_err;
use crate::error::Result;

static DEVICE_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Device allocations (driver `cuMemAlloc*` calls) made by the CUDA backend in this process so far.
pub fn device_allocations() -> u64 {
    DEVICE_ALLOCATIONS.load(Ordering::Relaxed)
}

/// Records one device allocation; every allocation site of the CUDA backend calls this.
pub(crate) fn count_device_allocation() {
    DEVICE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
}

/// The bucket a request of `n` elements is served from (at least 256 elements, so never zero bytes).
pub fn size_class(n: usize) -> usize {
    const SMALL: usize = 4096;
    if n <= SMALL {
        return n.max(1).div_ceil(256) * 256;
    }
    // 8 classes per power of two: round up to a multiple of 2^(floor(log2 n) - 3).
    let step = 1usize << (usize::BITS - 1 - n.leading_zeros() - 3);
    n.div_ceil(step) * step
}

/// Free blocks by size class.
pub(crate) struct Pool {
    stream: Arc<CudaStream>,
    free: Mutex<HashMap<usize, Vec<CudaSlice<f32>>>>,
}

impl Pool {
    pub(crate) fn new(stream: Arc<CudaStream>) -> Arc<Pool> {
        Arc::new(Pool { stream, free: Mutex::new(HashMap::new()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Vec<CudaSlice<f32>>>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of `len` f32 with unspecified contents: a cached block of its class, or a fresh one.
    pub(crate) fn take(self: &Arc<Self>, len: usize) -> Result<DeviceBuf> {
        let class = size_class(len);
        let cached = self.lock().get_mut(&class).and_then(Vec::pop);
        let block = match cached {
            Some(b) => b,
            None => match self.alloc(class) {
                Ok(b) => b,
                Err(_) => {
                    // Out of memory, perhaps because blocks of other classes sit unused: free them, retry once.
                    self.release();
                    self.alloc(class).map_err(|e| cuda_err(format!("cannot allocate {len} f32 ({class} with rounding): {e:?}")))?
                }
            },
        };
        Ok(DeviceBuf { block: Some(block), len, pool: self.clone() })
    }

    fn alloc(&self, class: usize) -> std::result::Result<CudaSlice<f32>, cudarc::driver::DriverError> {
        // SAFETY: contents unspecified, as `Backend::alloc` promises; every op writes its outputs in full.
        let b = unsafe { self.stream.alloc::<f32>(class) }?;
        count_device_allocation();
        Ok(b)
    }

    /// Frees every cached block (stream-ordered frees: work still queued on them finishes first).
    pub(crate) fn release(&self) {
        self.lock().clear();
    }

    /// Bytes held in free blocks.
    pub(crate) fn cached_bytes(&self) -> usize {
        self.lock().iter().map(|(class, v)| class * v.len() * 4).sum()
    }
}

/// A tensor's device memory: `len` f32 of a pooled block (which may be larger). Views are limited to `len`.
/// Dropping it returns the block to the pool (see the module documentation for why that is safe at any time).
pub struct DeviceBuf {
    block: Option<CudaSlice<f32>>,
    len: usize,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for DeviceBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuf").field("len", &self.len).finish()
    }
}

impl DeviceBuf {
    /// Elements requested (not the block's rounded size).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn block(&self) -> &CudaSlice<f32> {
        self.block.as_ref().expect("a DeviceBuf owns its block until dropped")
    }

    fn block_mut(&mut self) -> &mut CudaSlice<f32> {
        self.block.as_mut().expect("a DeviceBuf owns its block until dropped")
    }

    /// A read-only view of `range` (within `len`; panics otherwise, as slicing does).
    pub fn slice(&self, range: impl RangeBounds<usize>) -> CudaView<'_, f32> {
        let len = self.len;
        self.block().slice(..len).slice(range)
    }

    /// A writable view of `range` (within `len`).
    pub fn slice_mut(&mut self, range: impl RangeBounds<usize>) -> CudaViewMut<'_, f32> {
        let len = self.len;
        let (head, _) = self.block_mut().split_at_mut(len);
        narrow(head, range)
    }

    /// Two writable views, `[0, mid)` and `[mid, len)`.
    pub fn split_at_mut(&mut self, mid: usize) -> (CudaViewMut<'_, f32>, CudaViewMut<'_, f32>) {
        assert!(mid <= self.len, "split_at_mut: {mid} past the end ({})", self.len);
        let len = self.len;
        let (head, _) = self.block_mut().split_at_mut(len);
        let (lo, hi) = split(head, mid);
        (lo, hi)
    }
}

/// A batch of u8 images on the device. The bytes live in a pooled f32 block of `len.div_ceil(4)` elements, so
/// uploading one batch per step allocates nothing once the first batch has been seen (same pool, same argument).
#[derive(Debug)]
pub struct DeviceBytes {
    buf: DeviceBuf,
    len: usize,
}

impl DeviceBytes {
    /// A pooled block holding `host`, filled by a stream-ordered host-to-device copy.
    pub(crate) fn upload(pool: &Arc<Pool>, host: &[u8]) -> Result<DeviceBytes> {
        let mut buf = pool.take(host.len().div_ceil(4))?;
        if !host.is_empty() {
            // SAFETY: the block holds at least `host.len()` bytes (4 per f32 element) and any bit pattern is a valid
            // u8; the view is the only access to the block while the copy is enqueued.
            let mut dst = unsafe { buf.block_mut().transmute_mut::<u8>(host.len()) }.expect("a block of len/4 f32 holds len bytes");
            pool.stream.memcpy_htod(host, &mut dst).map_err(|e| cuda_err(format!("upload of {} bytes failed: {e:?}", host.len())))?;
        }
        Ok(DeviceBytes { buf, len: host.len() })
    }

    /// Bytes uploaded.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes as a read-only u8 view.
    pub fn view(&self) -> CudaView<'_, u8> {
        // SAFETY: as in `upload`: the block holds at least `len` bytes, all written by the upload.
        unsafe { self.buf.block().transmute::<u8>(self.len) }.expect("a block of len/4 f32 holds len bytes")
    }
}

/// `v[range]`, keeping `v`'s lifetime.
fn narrow<'a>(mut v: CudaViewMut<'a, f32>, range: impl RangeBounds<usize>) -> CudaViewMut<'a, f32> {
    let narrowed = v.slice_mut(range);
    // SAFETY: `slice_mut` ties the result to the borrow of `v`, but a `CudaViewMut` holds only a device pointer, a
    // length and references valid for `'a`. `v` is consumed here and has no `Drop`, so the narrowed view is the only
    // access to its range for `'a`.
    unsafe { std::mem::transmute::<CudaViewMut<'_, f32>, CudaViewMut<'a, f32>>(narrowed) }
}

/// `v.split_at_mut(mid)`, keeping `v`'s lifetime (as [`narrow`]).
fn split<'a>(mut v: CudaViewMut<'a, f32>, mid: usize) -> (CudaViewMut<'a, f32>, CudaViewMut<'a, f32>) {
    let (lo, hi) = v.split_at_mut(mid);
    // SAFETY: as in `narrow`: `v` is consumed, the two halves are disjoint and each is the only access to its range.
    unsafe {
        (std::mem::transmute::<CudaViewMut<'_, f32>, CudaViewMut<'a, f32>>(lo), std::mem::transmute::<CudaViewMut<'_, f32>, CudaViewMut<'a, f32>>(hi))
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            let class = block.len();
            self.pool.lock().entry(class).or_default().push(block);
        }
    }
}
