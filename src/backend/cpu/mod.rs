//! The CPU reference backend: PyTorch's contiguous NCHW f32 layout, plain slices, one file per op.
//!
//! Every op lives in its own module as free functions on slices (`fwd` / `bwd` side by side), so tests and
//! benchmarks can call them without going through the trait. The [`Backend`] impl below only delegates.
//! Heavy ops (convolution, batch norm, pooling) parallelise with rayon; matrix products go through the `gemm`
//! crate. Every reduction has a fixed summation order, so results do not depend on thread scheduling.

pub mod add;
pub mod batch_norm;
pub mod concat;
pub mod conv2d;
pub mod cross_entropy;
pub mod elu;
pub mod fill;
pub mod global_pool;
pub mod linear;
pub mod max_pool2d;
pub mod relu;
pub mod sgd;

use std::ops::Range;

use super::geom::*;
use super::Backend;
use crate::error::{Error, Result};
use crate::tensor::{DType, Format, Shape};

/// The CPU reference backend. Stateless: buffers are `Vec<f32>`, views are slices.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

impl Cpu {
    pub fn new() -> Self {
        Cpu
    }
}

fn backend_error(reason: impl Into<String>) -> Error {
    Error::Backend { backend: "cpu".into(), reason: reason.into() }
}

/// The CPU backend stores only NCHW f32; anything else is a caller error, reported rather than converted.
fn check_format(format: Format) -> Result<()> {
    if format == Format::NCHW_F32 {
        Ok(())
    } else {
        Err(backend_error(format!("unsupported format {format:?}; the CPU backend stores NCHW f32 only")))
    }
}

impl Backend for Cpu {
    type Buf = Vec<f32>;
    type View<'a> = &'a [f32];
    type ViewMut<'a> = &'a mut [f32];

    fn name(&self) -> String {
        format!("CPU ({} threads)", rayon::current_num_threads())
    }

    fn activation_format(&self) -> Format {
        Format::NCHW_F32
    }

    fn alloc(&self, numel: usize, dtype: DType) -> Result<Vec<f32>> {
        match dtype {
            DType::F32 => Ok(vec![0.0; numel]),
            DType::Bf16 => Err(backend_error("bf16 buffers are not supported; the CPU backend computes in f32")),
        }
    }

    fn upload(&self, shape: &Shape, format: Format, host: &[f32]) -> Result<Vec<f32>> {
        check_format(format)?;
        if shape.numel() != host.len() {
            return Err(Error::shape("upload", format!("shape {:?} needs {} values, got {}", shape.0, shape.numel(), host.len())));
        }
        Ok(host.to_vec())
    }

    fn download(&self, shape: &Shape, format: Format, buf: &Vec<f32>) -> Result<Vec<f32>> {
        check_format(format)?;
        let numel = shape.numel();
        if buf.len() < numel {
            return Err(Error::shape("download", format!("shape {:?} needs {} values, buffer holds {}", shape.0, numel, buf.len())));
        }
        Ok(buf[..numel].to_vec())
    }

    fn view<'a>(&self, buf: &'a Vec<f32>, range: Range<usize>) -> &'a [f32] {
        &buf[range]
    }

    fn view_mut<'a>(&self, buf: &'a mut Vec<f32>, range: Range<usize>) -> &'a mut [f32] {
        &mut buf[range]
    }

    fn view_mut_pair<'a>(&self, buf: &'a mut Vec<f32>, first: Range<usize>, second: Range<usize>) -> (&'a mut [f32], &'a mut [f32]) {
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

    fn fill(&self, n: usize, value: f32, y: &mut [f32]) {
        fill::fill(n, value, y)
    }

    fn conv2d_fwd(&self, g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        conv2d::fwd(g, x, w, bias, y)
    }

    fn conv2d_bwd(&self, g: &Conv2dGeom, x: &[f32], w: &[f32], dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32], dbias: Option<&mut [f32]>) {
        conv2d::bwd(g, x, w, dy, dx, dw, dbias)
    }

    fn batch_norm_fwd_train(
        &self,
        g: &BatchNormGeom,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        running_mean: &mut [f32],
        running_var: &mut [f32],
        y: &mut [f32],
        saved_mean: &mut [f32],
        saved_invstd: &mut [f32],
    ) {
        batch_norm::fwd_train(g, x, gamma, beta, running_mean, running_var, y, saved_mean, saved_invstd)
    }

    fn batch_norm_fwd_eval(
        &self,
        g: &BatchNormGeom,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        running_mean: &[f32],
        running_var: &[f32],
        y: &mut [f32],
    ) {
        batch_norm::fwd_eval(g, x, gamma, beta, running_mean, running_var, y)
    }

    fn batch_norm_bwd(
        &self,
        g: &BatchNormGeom,
        x: &[f32],
        gamma: &[f32],
        saved_mean: &[f32],
        saved_invstd: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) {
        batch_norm::bwd(g, x, gamma, saved_mean, saved_invstd, dy, dx, dgamma, dbeta)
    }

    fn relu_fwd(&self, n: usize, x: &[f32], y: &mut [f32]) {
        relu::fwd(n, x, y)
    }

    fn relu_bwd(&self, n: usize, y: &[f32], dy: &[f32], dx: &mut [f32]) {
        relu::bwd(n, y, dy, dx)
    }

    fn elu_fwd(&self, n: usize, alpha: f32, x: &[f32], y: &mut [f32]) {
        elu::fwd(n, alpha, x, y)
    }

    fn elu_bwd(&self, n: usize, alpha: f32, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        elu::bwd(n, alpha, x, dy, dx)
    }

    fn max_pool2d_fwd(&self, g: &MaxPool2dGeom, x: &[f32], y: &mut [f32]) {
        max_pool2d::fwd(g, x, y)
    }

    fn max_pool2d_bwd(&self, g: &MaxPool2dGeom, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        max_pool2d::bwd(g, x, dy, dx)
    }

    fn global_max_pool_fwd(&self, g: &GlobalPoolGeom, x: &[f32], y: &mut [f32]) {
        global_pool::max_fwd(g, x, y)
    }

    fn global_max_pool_bwd(&self, g: &GlobalPoolGeom, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        global_pool::max_bwd(g, x, dy, dx)
    }

    fn global_avg_pool_fwd(&self, g: &GlobalPoolGeom, x: &[f32], y: &mut [f32]) {
        global_pool::avg_fwd(g, x, y)
    }

    fn global_avg_pool_bwd(&self, g: &GlobalPoolGeom, dy: &[f32], dx: &mut [f32]) {
        global_pool::avg_bwd(g, dy, dx)
    }

    fn linear_fwd(&self, g: &LinearGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        linear::fwd(g, x, w, bias, y)
    }

    fn linear_bwd(&self, g: &LinearGeom, x: &[f32], w: &[f32], dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32], dbias: Option<&mut [f32]>) {
        linear::bwd(g, x, w, dy, dx, dw, dbias)
    }

    fn add_fwd(&self, n: usize, a: &[f32], b: &[f32], y: &mut [f32]) {
        add::fwd(n, a, b, y)
    }

    fn concat_fwd(&self, g: &ConcatGeom, xs: &[&[f32]], y: &mut [f32]) {
        concat::fwd(g, xs, y)
    }

    fn concat_bwd(&self, g: &ConcatGeom, dy: &[f32], dxs: Vec<&mut [f32]>) {
        concat::bwd(g, dy, dxs)
    }

    fn cross_entropy_fwd(&self, g: &CrossEntropyGeom, logits: &[f32], labels: &[u32], probs: &mut [f32], loss: &mut [f32]) {
        cross_entropy::fwd(g, logits, labels, probs, loss)
    }

    fn cross_entropy_bwd(&self, g: &CrossEntropyGeom, probs: &[f32], labels: &[u32], dloss: f32, dlogits: &mut [f32]) {
        cross_entropy::bwd(g, probs, labels, dloss, dlogits)
    }

    fn sgd_step(&self, segments: &[SgdSegment], momentum: f32, params: &mut [f32], grads: &[f32], bufs: &mut [f32]) {
        sgd::step(segments, momentum, params, grads, bufs)
    }
}

/// Elements per rayon task in elementwise ops: large enough that scheduling costs nothing, small enough to balance.
pub(crate) const PAR_CHUNK: usize = 1 << 15;

/// A read-only strided matrix inside a slice: element `(i, j)` sits at `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A contiguous row-major `rows x cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, rs: cols, cs: 1 }
    }
    /// The transpose, as a view: no data moves.
    pub fn t(self) -> Self {
        MatRef { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }
}

/// A writable contiguous row-major `rows x cols` matrix at the start of `data`.
#[derive(Debug)]
pub(crate) struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
}

impl<'a> MatMut<'a> {
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut { data, rows, cols }
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
pub(crate) fn matmul(dst: MatMut<'_>, accumulate: bool, lhs: MatRef<'_>, rhs: MatRef<'_>, par: gemm::Parallelism) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert!(lhs.rows == m && rhs.rows == k && rhs.cols == n, "matmul: ({m}x{n}) = ({}x{}) · ({}x{})", lhs.rows, lhs.cols, rhs.rows, rhs.cols);
    assert!(span(m, n, n, 1) <= dst.data.len(), "matmul: dst {m}x{n} does not fit in {} elements", dst.data.len());
    assert!(span(m, k, lhs.rs, lhs.cs) <= lhs.data.len(), "matmul: lhs {m}x{k} does not fit in {} elements", lhs.data.len());
    assert!(span(k, n, rhs.rs, rhs.cs) <= rhs.data.len(), "matmul: rhs {k}x{n} does not fit in {} elements", rhs.data.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: nothing to add, or a zero product to write.
        if !accumulate {
            dst.data[..m * n].fill(0.0);
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
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}
