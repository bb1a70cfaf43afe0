//! 2-d convolution as PyTorch defines it (cross-correlation, NCHW input, OIHW weights, zero padding), computed
//! as im2col + GEMM over blocks of a few consecutive samples.
//!
//! For a block of `s` samples, `col` is the `[c_in*kh*kw, s*ho*wo]` matrix whose column `j*P + p` holds the input
//! patch under output position `p` of the block's sample `j` (row index `(ci*kh + ki)*kw + kj`, as in the OIHW
//! weight rows). With `Y`, `dY` the block's outputs and output gradients side by side as `[c_out, s*P]`:
//! - forward:        `Y   = W · col`            (`[c_out, K] · [K, s*P]`),
//! - input grad:     `dx  = col2im(Wᵀ · dY)`,
//! - weight grad:    `dW += dY · colᵀ`.
//!
//! A stride-1 convolution computes its input gradient as another forward convolution instead (of `dy`, with the
//! weights flipped and their channel axes swapped, see [`input_grad_geom`]): one im2col and a GEMM with inner
//! dimension `c_out*kh*kw`, rather than a GEMM with inner dimension `c_out` writing a `col`-sized matrix that
//! col2im then scatters back (the two together were 52-56% of the backward pass of ResNet 3x3 layers, docs/PERF.md).
//!
//! A block is one sample unless the feature map is small: then several samples share one GEMM so that its
//! spatial dimension reaches [`GEMM_COLS`] (7x7 maps with a single-sample GEMM run at half the speed). `col` is
//! only ever built for one block per worker, which keeps ResNet-50 at 224x224 and batch 32 in tens of megabytes.
//! A single-sample block of a 1x1, stride-1, unpadded convolution reads the input directly as its `col` matrix;
//! any other single-sample block builds its `col` a few output rows at a time ([`SLAB_BYTES`]), so that the GEMM
//! reads it back from cache.

use gemm::Parallelism;
use rayon::prelude::*;

use super::{matmul, Element, MatMut, MatRef, PAR_CHUNK};
use crate::backend::geom::Conv2dGeom;

/// The weight gradient of a batch is the sum of per-group partial gradients, each group a fixed contiguous run of
/// samples, added in group order. The grouping depends only on the batch size and geometry, so the result is
/// bit-identical whatever the thread count or scheduling. Memory is `DW_GROUPS` weight-sized buffers at most.
const DW_GROUPS: usize = 8;

/// Sizes derived once from the geometry.
#[derive(Clone, Copy)]
struct Dims {
    /// Elements of one input sample, `c_in * h * w`.
    x_per: usize,
    /// Elements of one output sample, `c_out * ho * wo`.
    y_per: usize,
    /// GEMM inner dimension, `c_in * kh * kw`.
    k: usize,
    /// Output positions per sample, `ho * wo`.
    p: usize,
}

fn dims(g: &Conv2dGeom) -> Dims {
    assert!(g.c_in > 0 && g.c_out > 0 && g.kh > 0 && g.kw > 0 && g.stride > 0, "conv2d: degenerate geometry {g:?}");
    assert!(
        g.h + 2 * g.pad >= g.kh
            && g.w + 2 * g.pad >= g.kw
            && g.ho == (g.h + 2 * g.pad - g.kh) / g.stride + 1
            && g.wo == (g.w + 2 * g.pad - g.kw) / g.stride + 1,
        "conv2d: output size inconsistent with the input, kernel, stride and padding: {g:?}"
    );
    Dims { x_per: g.c_in * g.h * g.w, y_per: g.c_out * g.ho * g.wo, k: g.c_in * g.kh * g.kw, p: g.ho * g.wo }
}

/// 1x1, stride 1, no padding: the input sample `[c_in, h*w]` already is the `col` matrix.
fn is_pointwise(g: &Conv2dGeom) -> bool {
    g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0
}

/// Output positions `o` in `0..out` whose input coordinate `o * stride + k - pad` lies inside `0..len`, as a
/// half-open range `lo..hi` (possibly empty).
fn valid_range(out: usize, len: usize, k: usize, stride: usize, pad: usize) -> (usize, usize) {
    let lo = if pad > k { (pad - k).div_ceil(stride) } else { 0 }.min(out);
    let hi = if len + pad > k { ((len + pad - k - 1) / stride + 1).min(out) } else { 0 };
    (lo, hi.max(lo))
}

/// A run of one `col` row that reads real (unpadded) input: output row `oh`, output columns `ow_lo..ow_hi`,
/// reading input row `ih` of channel `ci` from column `iw_lo` on, every `stride` columns.
struct Segment {
    row: usize,
    ci: usize,
    oh: usize,
    ih: usize,
    ow_lo: usize,
    ow_hi: usize,
    iw_lo: usize,
}

/// Every [`Segment`] of the `col` matrix. im2col and col2im share it so that both walk the same index map.
fn for_each_segment(g: &Conv2dGeom, rows: std::ops::Range<usize>, mut f: impl FnMut(Segment)) {
    for ci in 0..g.c_in {
        for ki in 0..g.kh {
            let (oh_lo, oh_hi) = valid_range(g.ho, g.h, ki, g.stride, g.pad);
            for kj in 0..g.kw {
                let row = (ci * g.kh + ki) * g.kw + kj;
                let (ow_lo, ow_hi) = valid_range(g.wo, g.w, kj, g.stride, g.pad);
                if ow_lo == ow_hi {
                    continue;
                }
                let iw_lo = ow_lo * g.stride + kj - g.pad;
                for oh in oh_lo.max(rows.start)..oh_hi.min(rows.end) {
                    let ih = oh * g.stride + ki - g.pad;
                    f(Segment { row, ci, oh, ih, ow_lo, ow_hi, iw_lo });
                }
            }
        }
    }
}

/// Writes zeros at the `col` entries that read padding: the complement of the [`Segment`]s.
fn zero_padding<T: Element>(g: &Conv2dGeom, col: &mut [T], ld: usize, rows: std::ops::Range<usize>) {
    if g.pad == 0 {
        // Without padding every window lies inside the input (the output size is floored).
        return;
    }
    for ki in 0..g.kh {
        let (oh_lo, oh_hi) = valid_range(g.ho, g.h, ki, g.stride, g.pad);
        for kj in 0..g.kw {
            let (ow_lo, ow_hi) = valid_range(g.wo, g.w, kj, g.stride, g.pad);
            for ci in 0..g.c_in {
                let row = &mut col[((ci * g.kh + ki) * g.kw + kj) * ld..][..rows.len() * g.wo];
                for (oh, out_row) in rows.clone().zip(row.chunks_exact_mut(g.wo)) {
                    if (oh_lo..oh_hi).contains(&oh) {
                        out_row[..ow_lo].fill(T::ZERO);
                        out_row[ow_hi..].fill(T::ZERO);
                    } else {
                        out_row.fill(T::ZERO);
                    }
                }
            }
        }
    }
}

/// `col = im2col(x)` for one sample, into a `col` matrix with row stride `ld` (the block's `s * P`), starting at
/// the sample's first column. Every element of the sample's columns is written (zeros where it reads padding).
fn im2col<T: Element>(g: &Conv2dGeom, d: Dims, x: &[T], col: &mut [T], ld: usize) {
    debug_assert!(x.len() == d.x_per && col.len() >= (d.k - 1) * ld + d.p);
    im2col_rows(g, x, col, ld, 0..g.ho);
}

/// The columns of output rows `rows` only (column `(oh - rows.start) * wo + ow`): a row slab of [`im2col`].
fn im2col_rows<T: Element>(g: &Conv2dGeom, x: &[T], col: &mut [T], ld: usize, rows: std::ops::Range<usize>) {
    if g.stride == 1 && g.wo == g.w {
        return im2col_rows_shifted(g, x, col, ld, rows);
    }
    zero_padding(g, col, ld, rows.clone());
    let first = rows.start;
    for_each_segment(g, rows, |Segment { row, ci, oh, ih, ow_lo, ow_hi, iw_lo }| {
        let dst = &mut col[row * ld + (oh - first) * g.wo..][ow_lo..ow_hi];
        let src = &x[(ci * g.h + ih) * g.w..][..g.w];
        if g.stride == 1 {
            dst.copy_from_slice(&src[iw_lo..iw_lo + dst.len()]);
        } else {
            for (i, v) in dst.iter_mut().enumerate() {
                *v = src[iw_lo + i * g.stride];
            }
        }
    });
}

/// [`im2col_rows`] of a stride-1 convolution whose output is as wide as its input (`2 pad = kw - 1`, e.g. 3x3 with
/// padding 1). Then output position `q = oh*w + ow` of the `col` row of `(ci, ki, kj)` reads input element
/// `q + (ki - pad)*w + kj - pad` of channel `ci`: a constant shift, so each `col` row is one copy from its first to
/// its last valid position, instead of one short copy per output row (8 elements on an 8x8 map). The positions in
/// between that read padding received the ends of neighbouring input rows; [`zero_padding`] overwrites them after.
fn im2col_rows_shifted<T: Element>(g: &Conv2dGeom, x: &[T], col: &mut [T], ld: usize, rows: std::ops::Range<usize>) {
    let first = rows.start * g.wo;
    for ci in 0..g.c_in {
        let channel = &x[ci * g.h * g.w..][..g.h * g.w];
        for ki in 0..g.kh {
            let (oh_lo, oh_hi) = valid_range(g.ho, g.h, ki, 1, g.pad);
            let (oh_lo, oh_hi) = (oh_lo.max(rows.start), oh_hi.min(rows.end));
            for kj in 0..g.kw {
                let (ow_lo, ow_hi) = valid_range(g.wo, g.w, kj, 1, g.pad);
                if oh_lo >= oh_hi || ow_lo == ow_hi {
                    continue;
                }
                let (start, end) = (oh_lo * g.wo + ow_lo, (oh_hi - 1) * g.wo + ow_hi);
                // Input index of `start`; `oh_lo + ki >= pad` and `ow_lo + kj >= pad` by `valid_range`.
                let src = (oh_lo + ki - g.pad) * g.w + ow_lo + kj - g.pad;
                let row = (ci * g.kh + ki) * g.kw + kj;
                col[row * ld + start - first..][..end - start].copy_from_slice(&channel[src..][..end - start]);
            }
        }
    }
    zero_padding(g, col, ld, rows);
}

/// `dx = col2im(dcol)` for one sample (same layout as [`im2col`]): each input element receives the sum of the
/// `col` entries that read it. `dx` is overwritten.
fn col2im<T: Element>(g: &Conv2dGeom, d: Dims, dcol: &[T], ld: usize, dx: &mut [T]) {
    debug_assert!(dx.len() == d.x_per && dcol.len() >= (d.k - 1) * ld + d.p);
    dx.fill(T::ZERO);
    for_each_segment(g, 0..g.ho, |Segment { row, ci, oh, ih, ow_lo, ow_hi, iw_lo }| {
        let src = &dcol[row * ld + oh * g.wo..][ow_lo..ow_hi];
        let dst = &mut dx[(ci * g.h + ih) * g.w..][..g.w];
        for (i, &v) in src.iter().enumerate() {
            dst[iw_lo + i * g.stride] += v;
        }
    });
}

/// Copies consecutive `[rows, run]` matrices (one per sample, stored one after another in `src`) side by side into
/// the `[rows, samples * run]` matrix `dst`.
fn side_by_side<T: Element>(src: &[T], rows: usize, run: usize, dst: &mut [T]) {
    let samples = src.len() / (rows * run);
    for (j, sample) in src.chunks_exact(rows * run).enumerate() {
        for (r, row) in sample.chunks_exact(run).enumerate() {
            dst[(r * samples + j) * run..][..run].copy_from_slice(row);
        }
    }
}

/// The inverse of [`side_by_side`]: splits a `[rows, samples * run]` matrix into consecutive `[rows, run]` ones.
fn split_side_by_side<T: Element>(src: &[T], rows: usize, run: usize, dst: &mut [T]) {
    let samples = dst.len() / (rows * run);
    for (j, sample) in dst.chunks_exact_mut(rows * run).enumerate() {
        for (r, row) in sample.chunks_exact_mut(run).enumerate() {
            row.copy_from_slice(&src[(r * samples + j) * run..][..run]);
        }
    }
}

/// Spatial columns one GEMM should have at least; small feature maps batch samples to reach it.
const GEMM_COLS: usize = 384;

/// Samples per block (see the module docs). It depends only on the geometry, never on the thread count, so the
/// order of every floating-point sum is fixed.
fn block_samples(g: &Conv2dGeom, d: Dims) -> usize {
    GEMM_COLS.div_ceil(d.p).clamp(1, g.n.max(1))
}

/// The `col` matrix of a block of samples `x` (`s` consecutive samples): the input itself for a single-sample
/// pointwise convolution, otherwise built in `buf`.
fn block_col<'a, T: Element>(g: &Conv2dGeom, d: Dims, x: &'a [T], buf: &'a mut Vec<T>) -> &'a [T] {
    let s = x.len() / d.x_per;
    if is_pointwise(g) && s == 1 {
        return x;
    }
    buf.resize(d.k * s * d.p, T::ZERO);
    if is_pointwise(g) {
        side_by_side(x, d.k, d.p, buf);
    } else {
        for (j, xj) in x.chunks_exact(d.x_per).enumerate() {
            im2col(g, d, xj, &mut buf[j * d.p..], s * d.p);
        }
    }
    buf
}

/// Inner GEMM parallelism when `tasks` run side by side: GEMMs share the threads the tasks leave idle.
fn inner_parallelism(tasks: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads > tasks {
        Parallelism::Rayon(threads.div_ceil(tasks))
    } else {
        Parallelism::None
    }
}

/// Bytes of `col` a single-sample block builds at a time. A whole 56x56 3x3 `col` is 7 MB: written by im2col and
/// read back by the GEMM's packing through memory. Built a few output rows at a time it stays in the core's L2
/// cache (1 MB on the development VM's EPYC); measured 512 KB > 256 KB > 1 MB > whole (docs/PERF.md).
const SLAB_BYTES: usize = 512 * 1024;

/// Output rows per slab of a single-sample block (`ho` when the whole `col` fits in `slab_bytes` or the input is
/// its own `col`; at least one row). It depends only on the geometry, so the summation order of the weight
/// gradient (which adds slab after slab) is fixed.
fn slab_rows<T>(g: &Conv2dGeom, d: Dims, slab_bytes: usize) -> usize {
    if is_pointwise(g) {
        return g.ho;
    }
    (slab_bytes / (std::mem::size_of::<T>() * d.k * g.wo)).clamp(1, g.ho)
}

/// `y = conv2d(x, w) + bias`.
pub fn fwd<T: Element>(g: &Conv2dGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    fwd_in_slabs(g, x, w, bias, y, SLAB_BYTES);
}

/// [`fwd`] with `col` slabs of at most `slab_bytes` (tests force small slabs on small maps).
fn fwd_in_slabs<T: Element>(g: &Conv2dGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T], slab_bytes: usize) {
    let d = dims(g);
    assert_eq!(x.len(), g.x_len(), "conv2d_fwd: x length");
    assert_eq!(w.len(), g.w_len(), "conv2d_fwd: w length");
    assert_eq!(y.len(), g.y_len(), "conv2d_fwd: y length");
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "conv2d_fwd: bias length");
    }
    if g.n == 0 {
        return;
    }
    let bs = block_samples(g, d);
    let par = inner_parallelism(g.n.div_ceil(bs));
    let wm = MatRef::row_major(w, g.c_out, d.k);

    // One task per block; a block's output is `[c_out, s*P]`, computed in place when it is a single sample.
    let slab_rows = slab_rows::<T>(g, d, slab_bytes);
    let block = |(xb, yb): (&[T], &mut [T]), (col_buf, y_buf): &mut (Vec<T>, Vec<T>)| {
        let s = xb.len() / d.x_per;
        if s == 1 && slab_rows < g.ho {
            // Row slab by row slab: the slab's `col` stays in cache between im2col and the GEMM that reads it.
            for r0 in (0..g.ho).step_by(slab_rows) {
                let rows = r0..(r0 + slab_rows).min(g.ho);
                let cols = rows.len() * g.wo;
                col_buf.resize(d.k * cols, T::ZERO);
                im2col_rows(g, xb, col_buf, cols, rows);
                let out = &mut yb[r0 * g.wo..];
                if let Some(b) = bias {
                    for (row, &bo) in out.chunks_mut(d.p).zip(b) {
                        row[..cols].fill(bo);
                    }
                }
                let dst = MatMut::row_major_strided(out, g.c_out, cols, d.p);
                matmul(dst, bias.is_some(), wm, MatRef::row_major(col_buf, d.k, cols), par);
            }
            return;
        }
        let col = block_col(g, d, xb, col_buf);
        let out: &mut [T] = if s == 1 {
            yb
        } else {
            y_buf.resize(g.c_out * s * d.p, T::ZERO);
            y_buf
        };
        // With a bias, start each output row at its bias and let the GEMM accumulate onto it.
        if let Some(b) = bias {
            for (row, &bo) in out.chunks_exact_mut(s * d.p).zip(b) {
                row.fill(bo);
            }
        }
        matmul(MatMut::row_major(out, g.c_out, s * d.p), bias.is_some(), wm, MatRef::row_major(col, d.k, s * d.p), par);
        if s > 1 {
            split_side_by_side(y_buf, g.c_out, d.p, yb);
        }
    };
    x.par_chunks(bs * d.x_per).zip(y.par_chunks_mut(bs * d.y_per)).for_each_init(|| (Vec::new(), Vec::new()), |bufs, xy| block(xy, bufs));
}

/// `dx = conv_transpose(dy, w)` when `dx` is given (written), `dw += dy ⋆ x`, `dbias += Σ dy` (accumulated).
pub fn bwd<T: Element>(g: &Conv2dGeom, x: &[T], w: &[T], dy: &[T], dx: Option<&mut [T]>, dw: &mut [T], dbias: Option<&mut [T]>) {
    bwd_in_slabs(g, x, w, dy, dx, dw, dbias, SLAB_BYTES);
}

/// [`bwd`] with `col` slabs of at most `slab_bytes` (as [`fwd_in_slabs`]).
#[allow(clippy::too_many_arguments)]
fn bwd_in_slabs<T: Element>(
    g: &Conv2dGeom,
    x: &[T],
    w: &[T],
    dy: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    dbias: Option<&mut [T]>,
    slab_bytes: usize,
) {
    let d = dims(g);
    assert_eq!(x.len(), g.x_len(), "conv2d_bwd: x length");
    assert_eq!(w.len(), g.w_len(), "conv2d_bwd: w length");
    assert_eq!(dy.len(), g.y_len(), "conv2d_bwd: dy length");
    assert_eq!(dw.len(), g.w_len(), "conv2d_bwd: dw length");
    if let Some(dx) = &dx {
        assert_eq!(dx.len(), g.x_len(), "conv2d_bwd: dx length");
    }
    if let Some(db) = dbias {
        bias_grad(g, dy, db);
    }
    if g.n == 0 {
        return;
    }
    let dx = match (dx, input_grad_geom(g)) {
        (Some(dx), Some(gt)) => {
            fwd_in_slabs(&gt, dy, &flipped_transposed_weights(g, w), None, dx, slab_bytes);
            None
        }
        (dx, _) => dx,
    };

    // Samples -> blocks (one GEMM each) -> groups (one partial weight gradient each, a contiguous run of blocks).
    let bs = block_samples(g, d);
    let blocks = g.n.div_ceil(bs);
    let blocks_per_group = blocks.div_ceil(DW_GROUPS.min(blocks));
    let groups = blocks.div_ceil(blocks_per_group);
    let group_samples = blocks_per_group * bs;
    let par = inner_parallelism(groups);
    let slab_rows = slab_rows::<T>(g, d, slab_bytes);
    let w_len = g.w_len();
    // A single group accumulates straight into `dw` (no partial buffer, no final pass over it).
    let single = groups == 1;
    let mut partials = vec![T::ZERO; if single { 0 } else { groups * w_len }];

    // One group: its blocks in order, partial weight gradient into `pw` (added to what `pw` holds when `onto`),
    // input gradients (if wanted) into `dxg`.
    let group = |gi: usize, pw: &mut [T], onto: bool, mut dxg: Option<&mut [T]>| {
        let (mut col_buf, mut dy_buf, mut dcol) = (Vec::new(), Vec::new(), Vec::new());
        let first = gi * group_samples;
        let last = (first + group_samples).min(g.n);
        for (bi, b0) in (first..last).step_by(bs).enumerate() {
            let s = bs.min(last - b0);
            let cols = s * d.p;
            let xb = &x[b0 * d.x_per..][..s * d.x_per];
            let dyb = &dy[b0 * d.y_per..][..s * d.y_per];
            let dyb: &[T] = if s == 1 {
                dyb
            } else {
                dy_buf.resize(dyb.len(), T::ZERO);
                side_by_side(dyb, g.c_out, d.p, &mut dy_buf);
                &dy_buf
            };
            let dym = MatRef::row_major(dyb, g.c_out, cols);
            // pw (+)= dY · colᵀ: `[c_out, s*P] · [s*P, K]`; the group's first product writes (unless `onto`), the rest
            // accumulate. A single-sample block adds its row slabs one after another (see `fwd`).
            if s == 1 && slab_rows < g.ho {
                for (si, r0) in (0..g.ho).step_by(slab_rows).enumerate() {
                    let rows = r0..(r0 + slab_rows).min(g.ho);
                    let n = rows.len() * g.wo;
                    col_buf.resize(d.k * n, T::ZERO);
                    im2col_rows(g, xb, &mut col_buf, n, rows);
                    let dys = MatRef { data: &dyb[r0 * g.wo..], rows: g.c_out, cols: n, rs: d.p, cs: 1 };
                    let write = !onto && bi == 0 && si == 0;
                    matmul(MatMut::row_major(pw, g.c_out, d.k), !write, dys, MatRef::row_major(&col_buf, d.k, n).t(), par);
                }
            } else {
                let col = block_col(g, d, xb, &mut col_buf);
                matmul(MatMut::row_major(pw, g.c_out, d.k), onto || bi > 0, dym, MatRef::row_major(col, d.k, cols).t(), par);
            }

            let Some(dxg) = dxg.as_deref_mut() else { continue };
            let dxb = &mut dxg[(b0 - first) * d.x_per..][..s * d.x_per];
            let wt = MatRef::row_major(w, g.c_out, d.k).t();
            if is_pointwise(g) && s == 1 {
                matmul(MatMut::row_major(dxb, d.k, cols), false, wt, dym, par);
                continue;
            }
            dcol.resize(d.k * cols, T::ZERO);
            matmul(MatMut::row_major(&mut dcol, d.k, cols), false, wt, dym, par);
            if is_pointwise(g) {
                split_side_by_side(&dcol, d.k, d.p, dxb);
            } else {
                for (j, dxj) in dxb.chunks_exact_mut(d.x_per).enumerate() {
                    col2im(g, d, &dcol[j * d.p..], cols, dxj);
                }
            }
        }
    };

    if single {
        group(0, dw, true, dx);
        return;
    }
    match dx {
        Some(dx) => partials
            .par_chunks_mut(w_len)
            .zip(dx.par_chunks_mut(group_samples * d.x_per))
            .enumerate()
            .for_each(|(gi, (pw, dxg))| group(gi, pw, false, Some(dxg))),
        None => partials.par_chunks_mut(w_len).enumerate().for_each(|(gi, pw)| group(gi, pw, false, None)),
    }

    // dw += Σ_groups partial, summed in group order for every element.
    dw.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(ci, chunk)| {
        for (i, v) in chunk.iter_mut().enumerate() {
            let idx = ci * PAR_CHUNK + i;
            let sum = (0..groups).fold(T::ZERO, |s, gi| s + partials[gi * w_len + idx]);
            *v += sum;
        }
    });
}

/// The geometry whose forward convolution of `dy` is the input gradient of `g`, when there is one: stride 1,
/// a square kernel and `pad <= k - 1`, i.e. `dx = conv2d(dy, w')` with padding `k - 1 - pad` and `w'` from
/// [`flipped_transposed_weights`] (`dx[ci, ih, iw] = Σ w[co, ci, i, j] dy[co, ih + pad - i, iw + pad - j]`; put
/// `a = k-1-i` and it is a cross-correlation). Its output size is `ho + k - 1 - 2 pad = h`. A pointwise convolution
/// keeps its direct `Wᵀ · dY` (no col2im to save), and so does anything else (strided ones scatter sparsely).
fn input_grad_geom(g: &Conv2dGeom) -> Option<Conv2dGeom> {
    if g.stride != 1 || g.kh != g.kw || g.pad >= g.kh || is_pointwise(g) {
        return None;
    }
    let gt = Conv2dGeom::new(g.n, g.c_out, g.ho, g.wo, g.c_in, g.kh, 1, g.kh - 1 - g.pad);
    debug_assert!(gt.ho == g.h && gt.wo == g.w, "conv2d: transposed geometry {gt:?} of {g:?}");
    Some(gt)
}

/// `w'[ci, co, kh-1-i, kw-1-j] = w[co, ci, i, j]`: the weights of the input-gradient convolution.
fn flipped_transposed_weights<T: Element>(g: &Conv2dGeom, w: &[T]) -> Vec<T> {
    let taps = g.kh * g.kw;
    let mut wt = vec![T::ZERO; w.len()];
    for (co, w_co) in w.chunks_exact(g.c_in * taps).enumerate() {
        for (ci, w_tap) in w_co.chunks_exact(taps).enumerate() {
            let dst = &mut wt[(ci * g.c_out + co) * taps..][..taps];
            for (t, &v) in w_tap.iter().enumerate() {
                dst[taps - 1 - t] = v;
            }
        }
    }
    wt
}

/// `dbias[o] += Σ_{n, p} dy[n, o, p]`, summed in f64 in a fixed order, one task per output channel.
pub fn bias_grad<T: Element>(g: &Conv2dGeom, dy: &[T], db: &mut [T]) {
    assert_eq!(dy.len(), g.y_len(), "conv2d_bwd: dy length");
    assert_eq!(db.len(), g.c_out, "conv2d_bwd: dbias length");
    let d = dims(g);
    db.par_iter_mut().enumerate().for_each(|(o, db)| {
        let mut s = 0.0f64;
        for ni in 0..g.n {
            s += dy[(ni * g.c_out + o) * d.p..][..d.p].iter().map(|&v| v.to_f64()).sum::<f64>();
        }
        *db += T::from_f64(s);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// (y, dx, dw) of the direct definition in f64: `y[n,o,oh,ow] = Σ w[o,c,i,j] x[n,c,oh*s+i-p,ow*s+j-p]`.
    fn naive(g: &Conv2dGeom, x: &[f64], w: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut y, mut dx, mut dw) = (vec![0.0; g.y_len()], vec![0.0; g.x_len()], vec![0.0; g.w_len()]);
        for (n, o, c, i, j, oh, ow) in
            (0..g.n).flat_map(|n| (0..g.c_out).flat_map(move |o| (0..g.c_in).map(move |c| (n, o, c)))).flat_map(|(n, o, c)| {
                (0..g.kh)
                    .flat_map(move |i| (0..g.kw).flat_map(move |j| (0..g.ho).flat_map(move |oh| (0..g.wo).map(move |ow| (n, o, c, i, j, oh, ow)))))
            })
        {
            let (ih, iw) = ((oh * g.stride + i) as isize - g.pad as isize, (ow * g.stride + j) as isize - g.pad as isize);
            if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                continue;
            }
            let xi = ((n * g.c_in + c) * g.h + ih as usize) * g.w + iw as usize;
            let wi = ((o * g.c_in + c) * g.kh + i) * g.kw + j;
            let yi = ((n * g.c_out + o) * g.ho + oh) * g.wo + ow;
            y[yi] += w[wi] * x[xi];
            dx[xi] += w[wi] * dy[yi];
            dw[wi] += dy[yi] * x[xi];
        }
        (y, dx, dw)
    }

    fn assert_close(what: &str, got: &[f64], want: &[f64]) {
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-12 * scale, "{what}[{i}]: {g} vs {w}");
        }
    }

    /// The row-slab path (forced with tiny slab budgets: one row per slab, and slabs of two rows with a short last
    /// one) and the stride-1 input gradient as a forward convolution, in f64 against the definition at odd shapes:
    /// same padding, no padding (transposed padding `k-1`), padding `k-1` (transposed padding 0), 5x5, stride 2 and
    /// one-sample and several-sample blocks. `dw` accumulates onto what it holds; `dx` is written over NaN.
    #[test]
    fn slabs_and_transposed_input_gradient_match_the_definition() {
        let mut rng = Rng::new(7);
        let cases = [
            Conv2dGeom::new(2, 3, 23, 21, 4, 3, 1, 1),
            Conv2dGeom::new(3, 2, 22, 19, 3, 3, 1, 0),
            Conv2dGeom::new(2, 2, 21, 20, 3, 3, 1, 2),
            Conv2dGeom::new(2, 3, 20, 23, 2, 5, 1, 2),
            Conv2dGeom::new(2, 3, 41, 39, 4, 3, 2, 1),
            Conv2dGeom::new(5, 3, 7, 9, 4, 3, 1, 1),
        ];
        for g in cases {
            let d = dims(&g);
            let x: Vec<f64> = rng.vec_uniform(g.x_len(), -1.0, 1.0).into_iter().map(f64::from).collect();
            let w: Vec<f64> = rng.vec_uniform(g.w_len(), -1.0, 1.0).into_iter().map(f64::from).collect();
            let dy: Vec<f64> = rng.vec_uniform(g.y_len(), -1.0, 1.0).into_iter().map(f64::from).collect();
            let dw0: Vec<f64> = rng.vec_uniform(g.w_len(), -1.0, 1.0).into_iter().map(f64::from).collect();
            let (ny, ndx, ndw) = naive(&g, &x, &w, &dy);
            let ndw: Vec<f64> = ndw.iter().zip(&dw0).map(|(a, b)| a + b).collect();
            let row_bytes = 8 * d.k * g.wo;
            for (slab_bytes, rows) in [(1, 1), (2 * row_bytes + 7, 2), (SLAB_BYTES, g.ho)] {
                assert_eq!(slab_rows::<f64>(&g, d, slab_bytes), rows.min(g.ho), "{g:?}");
                let what = format!("{g:?}, slabs of {rows} rows");
                let mut y = vec![f64::NAN; g.y_len()];
                fwd_in_slabs(&g, &x, &w, None, &mut y, slab_bytes);
                assert_close(&format!("{what}: y"), &y, &ny);
                let (mut dx, mut dw) = (vec![f64::NAN; g.x_len()], dw0.clone());
                bwd_in_slabs(&g, &x, &w, &dy, Some(&mut dx), &mut dw, None, slab_bytes);
                assert_close(&format!("{what}: dx"), &dx, &ndx);
                assert_close(&format!("{what}: dw"), &dw, &ndw);
            }
        }
    }

    /// im2col must write every element of its sample's columns itself (padding included), whatever the buffer held
    /// before, and nothing outside them: two samples side by side, each checked against the definition.
    #[test]
    fn im2col_writes_every_element() {
        for (h, w, k, stride, pad) in [(5, 7, 3, 1, 1), (5, 7, 3, 2, 1), (6, 5, 7, 2, 3), (4, 4, 2, 3, 1), (5, 5, 3, 2, 0)] {
            let g = Conv2dGeom::new(2, 2, h, w, 1, k, stride, pad);
            let d = dims(&g);
            let x: Vec<f32> = (0..2 * d.x_per).map(|i| i as f32 + 1.0).collect();
            let mut col = vec![f32::NAN; d.k * 2 * d.p];
            for j in 0..2 {
                im2col(&g, d, &x[j * d.x_per..][..d.x_per], &mut col[j * d.p..], 2 * d.p);
            }
            for (j, ci, ki, kj, oh, ow) in (0..2).flat_map(|j| (0..g.c_in).map(move |ci| (j, ci))).flat_map(|(j, ci)| {
                (0..k).flat_map(move |ki| (0..k).flat_map(move |kj| (0..g.ho).flat_map(move |oh| (0..g.wo).map(move |ow| (j, ci, ki, kj, oh, ow)))))
            }) {
                let (ih, iw) = ((oh * stride + ki) as isize - pad as isize, (ow * stride + kj) as isize - pad as isize);
                let inside = ih >= 0 && iw >= 0 && ih < h as isize && iw < w as isize;
                let want = if inside { x[j * d.x_per + (ci * h + ih as usize) * w + iw as usize] } else { 0.0 };
                let got = col[((ci * k + ki) * k + kj) * 2 * d.p + j * d.p + oh * g.wo + ow];
                assert_eq!(got, want, "{g:?}: col[sample {j}, ci {ci}, ki {ki}, kj {kj}, oh {oh}, ow {ow}]");
            }
        }
    }
}
