//! The CPU reference backend: PyTorch's contiguous NCHW layout, plain slices, one file per op.
//!
//! It computes in f32 ([`Cpu`], the reference) or f64 ([`Cpu64`], for checks that f32 rounding would blur: parity
//! with PyTorch's f64 gradients, tight finite differences). Both run the same code, generic over [`Element`];
//! host data crosses the boundary as f32 either way, and scalar hyper-parameters stay f32 as in the trait.
//!
//! Every op lives in its own module as free functions on slices (`fwd` / `bwd` side by side), so tests and
//! benchmarks can call them without going through the trait. The [`Backend`] impl below only delegates.
//! Heavy ops (convolution, batch norm, pooling) parallelise with rayon; matrix products go through the `gemm`
//! crate. Every reduction has a fixed summation order, so results do not depend on thread scheduling.

pub mod adamw;
pub mod add;
pub mod augment;
pub mod augmix;
pub mod barlow_twins;
pub mod batch_norm;
pub mod concat;
pub mod conv2d;
pub mod cross_entropy;
pub mod element;
pub mod elu;
pub mod fill;
pub mod global_pool;
pub mod grad_norm;
pub mod jigsaw;
pub mod l2_normalized_std;
pub mod lars;
pub mod linear;
pub mod max_pool2d;
pub mod relu;
pub mod scale;
pub mod segments;
pub mod sgd;

use std::marker::PhantomData;
use std::ops::Range;

use super::geom::*;
use super::{Backend, BnEpilogue, BnEpilogueGrad, Precision};
use crate::error::{Error, Result};
use crate::tensor::{DType, Format, Layout, Shape};
pub use element::Element;

/// The CPU reference backend computing in `T`. Buffers are `Vec<T>`, views are slices; the only state is the
/// [`Precision`] its convolutions emulate.
#[derive(Clone, Copy, Debug)]
pub struct CpuBackend<T> {
    precision: Precision,
    element: PhantomData<T>,
}

/// The f32 CPU reference backend.
pub type Cpu = CpuBackend<f32>;
/// The CPU reference backend in double precision.
pub type Cpu64 = CpuBackend<f64>;

impl<T: Element> CpuBackend<T> {
    /// The fp32 (or f64) reference.
    pub fn new() -> Self {
        Self::with_precision(Precision::Fp32)
    }

    /// With [`Precision::Bf16`], convolutions round their operands to bf16 first (emulating the tensor-core path
    /// exactly, up to summation order) and compute in `T` as usual.
    pub fn with_precision(precision: Precision) -> Self {
        CpuBackend { precision, element: PhantomData }
    }

    /// NCHW in `T`: the only format this backend stores, for activations and parameter arenas alike.
    pub const FORMAT: Format = Format { layout: Layout::Nchw, dtype: T::DTYPE };
}

impl<T: Element> Default for CpuBackend<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A copy of `v` with every element rounded to bf16 ([`Element::round_bf16`]).
fn rounded_bf16<T: Element>(v: &[T]) -> Vec<T> {
    use rayon::prelude::*;
    v.par_iter().map(|&e| e.round_bf16()).collect()
}

fn backend_error(reason: impl Into<String>) -> Error {
    Error::Backend { backend: "cpu".into(), reason: reason.into() }
}

/// The CPU backend stores only NCHW in its own element type; anything else is a caller error, reported rather
/// than converted.
fn check_format<T: Element>(format: Format) -> Result<()> {
    if format == CpuBackend::<T>::FORMAT {
        Ok(())
    } else {
        Err(backend_error(format!("unsupported format {format:?}; this CPU backend stores NCHW {} only", T::NAME)))
    }
}

impl<T: Element> Backend for CpuBackend<T> {
    type Buf = Vec<T>;
    type View<'a> = &'a [T];
    type ViewMut<'a> = &'a mut [T];
    type Bytes = Vec<u8>;
    type Mark = std::time::Instant;

    fn name(&self) -> String {
        match self.precision {
            Precision::Fp32 => format!("cpu ({}, {} threads)", T::NAME, rayon::current_num_threads()),
            Precision::Bf16 => format!("cpu ({}, bf16 convolutions emulated, {} threads)", T::NAME, rayon::current_num_threads()),
        }
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn activation_format(&self) -> Format {
        Self::FORMAT
    }

    fn param_format(&self) -> Format {
        Self::FORMAT
    }

    fn alloc(&self, numel: usize, dtype: DType) -> Result<Vec<T>> {
        if dtype == T::DTYPE {
            Ok(vec![T::ZERO; numel])
        } else {
            Err(backend_error(format!("{dtype:?} buffers are not supported; this CPU backend computes in {}", T::NAME)))
        }
    }

    fn upload(&self, shape: &Shape, format: Format, host: &[f32]) -> Result<Vec<T>> {
        check_format::<T>(format)?;
        if shape.numel() != host.len() {
            return Err(Error::shape("upload", format!("shape {:?} needs {} values, got {}", shape.0, shape.numel(), host.len())));
        }
        Ok(host.iter().map(|&v| T::from_f32(v)).collect())
    }

    fn download(&self, shape: &Shape, format: Format, buf: &Vec<T>) -> Result<Vec<f32>> {
        check_format::<T>(format)?;
        let numel = shape.numel();
        if buf.len() < numel {
            return Err(Error::shape("download", format!("shape {:?} needs {} values, buffer holds {}", shape.0, numel, buf.len())));
        }
        Ok(buf[..numel].iter().map(|&v| v.to_f32()).collect())
    }

    fn upload_bytes(&self, host: &[u8]) -> Result<Vec<u8>> {
        Ok(host.to_vec())
    }

    fn view<'a>(&self, buf: &'a Vec<T>, range: Range<usize>) -> &'a [T] {
        &buf[range]
    }

    fn view_mut<'a>(&self, buf: &'a mut Vec<T>, range: Range<usize>) -> &'a mut [T] {
        &mut buf[range]
    }

    fn view_mut_pair<'a>(&self, buf: &'a mut Vec<T>, first: Range<usize>, second: Range<usize>) -> (&'a mut [T], &'a mut [T]) {
        assert!(first.start <= first.end && second.start <= second.end, "view_mut_pair: malformed ranges {first:?}, {second:?}");
        assert!(first.end <= second.start || second.end <= first.start, "view_mut_pair: ranges {first:?} and {second:?} overlap");
        if first.start <= second.start {
            let (lo, hi) = buf.split_at_mut(second.start);
            (&mut lo[first], &mut hi[..second.len()])
        } else {
            let (lo, hi) = buf.split_at_mut(first.start);
            (&mut hi[..first.len()], &mut lo[second])
        }
    }

    fn fill(&self, n: usize, value: f32, y: &mut [T]) {
        fill::fill(n, value, y)
    }

    /// Bf16: the product of the rounded `x` and `w`, then the f32 bias.
    fn conv2d_fwd(&self, g: &Conv2dGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
        match self.precision {
            Precision::Fp32 => conv2d::fwd(g, x, w, bias, y),
            Precision::Bf16 => conv2d::fwd(g, &rounded_bf16(x), &rounded_bf16(w), bias, y),
        }
    }

    /// Bf16: `dx` and `dw` from the rounded `x`, `w` and `dy`; `dbias` from the unrounded `dy`.
    fn conv2d_bwd(&self, g: &Conv2dGeom, x: &[T], w: &[T], dy: &[T], dx: Option<&mut [T]>, dw: &mut [T], dbias: Option<&mut [T]>) {
        match self.precision {
            Precision::Fp32 => conv2d::bwd(g, x, w, dy, dx, dw, dbias),
            Precision::Bf16 => {
                conv2d::bwd(g, &rounded_bf16(x), &rounded_bf16(w), &rounded_bf16(dy), dx, dw, None);
                if let Some(dbias) = dbias {
                    conv2d::bias_grad(g, dy, dbias);
                }
            }
        }
    }

    fn batch_norm_fwd_train(
        &self,
        g: &BatchNormGeom,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        running_mean: &mut [T],
        running_var: &mut [T],
        y: &mut [T],
        saved_mean: &mut [T],
        saved_invstd: &mut [T],
        epilogue: BnEpilogue<&[T]>,
    ) {
        batch_norm::fwd_train(g, x, gamma, beta, running_mean, running_var, y, saved_mean, saved_invstd, epilogue)
    }

    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fwd_eval(
        &self,
        g: &BatchNormGeom,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        running_mean: &[T],
        running_var: &[T],
        y: &mut [T],
        epilogue: BnEpilogue<&[T]>,
    ) {
        batch_norm::fwd_eval(g, x, gamma, beta, running_mean, running_var, y, epilogue)
    }

    fn batch_norm_bwd(
        &self,
        g: &BatchNormGeom,
        x: &[T],
        gamma: &[T],
        saved_mean: &[T],
        saved_invstd: &[T],
        dy: &[T],
        dx: &mut [T],
        dgamma: &mut [T],
        dbeta: &mut [T],
        epilogue: BnEpilogueGrad<&[T], &mut [T]>,
    ) {
        batch_norm::bwd(g, x, gamma, saved_mean, saved_invstd, dy, dx, dgamma, dbeta, epilogue)
    }

    fn relu_fwd(&self, n: usize, x: &[T], y: &mut [T]) {
        relu::fwd(n, x, y)
    }

    fn relu_bwd(&self, n: usize, y: &[T], dy: &[T], dx: &mut [T]) {
        relu::bwd(n, y, dy, dx)
    }

    fn elu_fwd(&self, n: usize, alpha: f32, x: &[T], y: &mut [T]) {
        elu::fwd(n, alpha, x, y)
    }

    fn elu_bwd(&self, n: usize, alpha: f32, x: &[T], dy: &[T], dx: &mut [T]) {
        elu::bwd(n, alpha, x, dy, dx)
    }

    fn max_pool2d_fwd(&self, g: &MaxPool2dGeom, x: &[T], y: &mut [T]) {
        max_pool2d::fwd(g, x, y)
    }

    fn max_pool2d_bwd(&self, g: &MaxPool2dGeom, x: &[T], dy: &[T], dx: &mut [T]) {
        max_pool2d::bwd(g, x, dy, dx)
    }

    fn global_max_pool_fwd(&self, g: &GlobalPoolGeom, x: &[T], y: &mut [T]) {
        global_pool::max_fwd(g, x, y)
    }

    fn global_max_pool_bwd(&self, g: &GlobalPoolGeom, x: &[T], dy: &[T], dx: &mut [T]) {
        global_pool::max_bwd(g, x, dy, dx)
    }

    fn global_avg_pool_fwd(&self, g: &GlobalPoolGeom, x: &[T], y: &mut [T]) {
        global_pool::avg_fwd(g, x, y)
    }

    fn global_avg_pool_bwd(&self, g: &GlobalPoolGeom, dy: &[T], dx: &mut [T]) {
        global_pool::avg_bwd(g, dy, dx)
    }

    fn linear_fwd(&self, g: &LinearGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
        linear::fwd(g, x, w, bias, y)
    }

    fn linear_bwd(&self, g: &LinearGeom, x: &[T], w: &[T], dy: &[T], dx: Option<&mut [T]>, dw: &mut [T], dbias: Option<&mut [T]>) {
        linear::bwd(g, x, w, dy, dx, dw, dbias)
    }

    fn add_fwd(&self, n: usize, a: &[T], b: &[T], y: &mut [T]) {
        add::fwd(n, a, b, y)
    }

    fn concat_fwd(&self, g: &ConcatGeom, xs: &[&[T]], y: &mut [T]) {
        concat::fwd(g, xs, y)
    }

    fn concat_bwd(&self, g: &ConcatGeom, dy: &[T], dxs: Vec<&mut [T]>) {
        concat::bwd(g, dy, dxs)
    }

    fn cross_entropy_fwd(&self, g: &CrossEntropyGeom, logits: &[T], labels: &[u32], probs: &mut [T], loss: &mut [T]) {
        cross_entropy::fwd(g, logits, labels, probs, loss)
    }

    fn cross_entropy_bwd(&self, g: &CrossEntropyGeom, probs: &[T], labels: &[u32], dloss: f32, dlogits: &mut [T]) {
        cross_entropy::bwd(g, probs, labels, dloss, dlogits)
    }

    fn sgd_step(&self, segments: &[SgdSegment], momentum: f32, params: &mut [T], grads: &[T], bufs: &mut [T]) {
        sgd::step(segments, momentum, params, grads, bufs)
    }

    fn augment_fwd(&self, g: &AugmentGeom, images: &Vec<u8>, params: &[SampleAug], perms: &[u32], ys: Vec<&mut [T]>) {
        augment::fwd(g, images, params, perms, ys)
    }

    fn jigsaw_fwd(&self, g: &JigsawGeom, perms: &[u32], x: &[T], y: &mut [T]) {
        jigsaw::fwd(g, perms, x, y)
    }

    /// Every CPU op has finished when it returns, so the host clock times the work.
    fn mark(&self) -> Result<std::time::Instant> {
        Ok(std::time::Instant::now())
    }

    fn elapsed_ms(&self, from: &std::time::Instant, to: &std::time::Instant) -> Result<f64> {
        Ok(to.saturating_duration_since(*from).as_secs_f64() * 1e3)
    }

    fn lars_step(&self, segments: &[LarsSegment], momentum: f32, eta: f32, params: &mut [T], grads: &[T], bufs: &mut [T]) {
        lars::step(segments, momentum, eta, params, grads, bufs)
    }

    #[allow(clippy::too_many_arguments)]
    fn adamw_step(&self, segments: &[AdamwSegment], beta1: f32, beta2: f32, eps: f32, params: &mut [T], grads: &[T], m: &mut [T], v: &mut [T]) {
        adamw::step(segments, beta1, beta2, eps, params, grads, m, v)
    }

    fn grad_norm(&self, segments: &[ArenaSegment], grads: &[T], norm: &mut [T]) {
        grad_norm::fwd(segments, grads, norm)
    }

    fn scale(&self, n: usize, alpha: f32, y: &mut [T]) {
        scale::fwd(n, alpha, y)
    }

    #[allow(clippy::too_many_arguments)]
    fn barlow_twins_fwd(
        &self,
        g: &BarlowTwinsGeom,
        za: &[T],
        zb: &[T],
        za_hat: &mut [T],
        zb_hat: &mut [T],
        inv_std_a: &mut [T],
        inv_std_b: &mut [T],
        c: &mut [T],
        terms: &mut [T],
    ) {
        barlow_twins::fwd(g, za, zb, za_hat, zb_hat, inv_std_a, inv_std_b, c, terms)
    }

    #[allow(clippy::too_many_arguments)]
    fn barlow_twins_bwd(
        &self,
        g: &BarlowTwinsGeom,
        za_hat: &[T],
        zb_hat: &[T],
        inv_std_a: &[T],
        inv_std_b: &[T],
        c: &[T],
        dloss: f32,
        dza: &mut [T],
        dzb: &mut [T],
    ) {
        barlow_twins::bwd(g, za_hat, zb_hat, inv_std_a, inv_std_b, c, dloss, dza, dzb)
    }

    fn l2_normalized_std_fwd(&self, g: &L2NormalizedStdGeom, z: &[T], out: &mut [T]) {
        l2_normalized_std::fwd(g, z, out)
    }
}

/// Elements per rayon task in elementwise ops: large enough that scheduling costs nothing, small enough to balance.
pub(crate) const PAR_CHUNK: usize = 1 << 15;

/// A read-only strided matrix inside a slice: element `(i, j)` sits at `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A contiguous row-major `rows x cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, rs: cols, cs: 1 }
    }
    /// The transpose, as a view: no data moves.
    pub fn t(self) -> Self {
        MatRef { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }
}

/// A writable row-major `rows x cols` matrix at the start of `data`, rows `rs` elements apart.
#[derive(Debug)]
pub(crate) struct MatMut<'a, T> {
    pub data: &'a mut [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// Contiguous rows.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        MatMut { data, rows, cols, rs: cols }
    }
    /// The first `cols` columns of a row-major matrix whose rows are `rs` elements long (a column slab of it).
    pub fn row_major_strided(data: &'a mut [T], rows: usize, cols: usize, rs: usize) -> Self {
        assert!(rs >= cols, "matmul: row stride {rs} shorter than a row of {cols}");
        MatMut { data, rows, cols, rs }
    }
}

/// One past the largest index a strided `rows x cols` matrix touches (0 when it is empty).
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`: the single entry point to the `gemm` crate.
///
/// Bounds are checked here, which is what makes the raw-pointer call below sound. `gemm` splits work between
/// threads over output tiles only, never over the inner dimension, so the result does not depend on `par`.
pub(crate) fn matmul<T: Element>(dst: MatMut<'_, T>, accumulate: bool, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>, par: gemm::Parallelism) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert!(lhs.rows == m && rhs.rows == k && rhs.cols == n, "matmul: ({m}x{n}) = ({}x{}) · ({}x{})", lhs.rows, lhs.cols, rhs.rows, rhs.cols);
    assert!(span(m, n, dst.rs, 1) <= dst.data.len(), "matmul: dst {m}x{n} does not fit in {} elements", dst.data.len());
    assert!(span(m, k, lhs.rs, lhs.cs) <= lhs.data.len(), "matmul: lhs {m}x{k} does not fit in {} elements", lhs.data.len());
    assert!(span(k, n, rhs.rs, rhs.cs) <= rhs.data.len(), "matmul: rhs {k}x{n} does not fit in {} elements", rhs.data.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: nothing to add, or a zero product to write.
        if !accumulate {
            dst.data.chunks_mut(dst.rs).take(m).for_each(|row| row[..n].fill(T::ZERO));
        }
        return;
    }
    // SAFETY: every index the three strided matrices touch lies inside their slices (checked above); `dst` is a
    // unique borrow, so it aliases neither input. gemm computes dst = alpha * dst + beta * lhs * rhs, reading dst
    // only when `read_dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}
