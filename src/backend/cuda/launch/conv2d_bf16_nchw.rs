//! The bf16 tensor-core convolution ([`super::conv2d_bf16`]) behind the engine's NCHW f32 boundary: what
//! `Cuda::conv2d_fwd` / `conv2d_bwd` run when the backend's precision is [`crate::backend::Precision::Bf16`].
//! Activations, weights and gradients stay NCHW / OIHW f32 in the engine; each call converts its operands to the
//! kernels' layout (rounding to bf16 once, to nearest even, as the CPU reference's emulation does), runs the GEMM
//! with f32 accumulation into an f32 NHWC workspace, and converts the result back:
//!
//! - forward: x NCHW f32 -> NHWC bf16 (`C = pad8(c_in)` channels, padding 0); w OIHW f32 -> `[O', kh, kw, C]` bf16;
//!   the GEMM into NHWC f32 `[n, ho, wo, O']`; then `y = that + bias` into NCHW (bias added in f32).
//! - backward: dy NCHW f32 -> NHWC bf16 (`O'` channels); dx: the weights converted as above, dgrad (it transposes
//!   them itself) into NHWC f32 `[n, h, w, C]`, then to NCHW, dropping the padded channels; dw: x converted as
//!   above, wgrad into a zeroed f32 `[O', kh, kw, C]` workspace, then `dw += ` it in OIHW (padded rows and channels
//!   dropped); dbias: the fp32 convolution's bias-gradient kernel on the unrounded f32 dy.
//!
//! `O' = pad8(c_out)`: the kernels need c_out % 8 == 0, so other widths run as a convolution with extra output
//! channels whose weight rows and dy channels are zero (they add nothing to dx, and their y / dw rows are never
//! read back). So every shape takes the tensor-core path; there is no fp32 fallback.
//!
//! Memory: the bf16 operands live in [`ConvBf16Workspace`] (grown on demand, reused by every convolution on the
//! stream), the f32 NHWC results in pooled scratch ([`Cuda::scratch`]); after the first training step nothing is
//! allocated. The forward's epilogue could write NCHW f32 (with the bias) directly and save the last pass; that is
//! left to the performance work (it changes the kernel's epilogue, which has not run on a GPU yet).
//!
//! The shapes of every buffer and conversion come from [`NchwBoundary`] (pure, shared with
//! `tests/conv_bf16_nchw_host.rs`, which runs the same pipeline with the host twins of the kernels).

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};

use super::conv2d::{check_bwd_operands, check_fwd_operands};
use super::conv2d_bf16::{self as bf, pad8, ConvBf16Geom};
use super::{conv2d, cuda_err};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::geom::Conv2dGeom;
use crate::error::Result;

/// The bf16 operands of the NCHW-boundary convolution (bf16 bits as u16), grown on demand.
#[derive(Default)]
pub struct ConvBf16Workspace {
    /// x as NHWC bf16, `C` channels.
    pub x: Option<CudaSlice<u16>>,
    /// w as `[O', kh, kw, C]` bf16.
    pub w: Option<CudaSlice<u16>>,
    /// dy as NHWC bf16, `O'` channels.
    pub dy: Option<CudaSlice<u16>>,
}

/// The padded problem a convolution `g` runs as on the tensor cores, and the `[n, c, hw, c_pad]` dimensions of each
/// layout conversion (as the conversion kernels take them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NchwBoundary {
    /// The convolution as the engine sees it.
    pub g: Conv2dGeom,
    /// `g` with `c_out` padded to `O'`: the geometry the GEMM launchers get (they pad `c_in` themselves).
    pub padded: Conv2dGeom,
    /// `C = pad8(c_in)`.
    pub c_pad: usize,
    /// `O' = pad8(c_out)`.
    pub o_pad: usize,
}

impl NchwBoundary {
    /// The padded problem of `g`, or an error when the kernels cannot run it (indices past 2^31, stride 0).
    pub fn new(g: &Conv2dGeom) -> Result<NchwBoundary> {
        let padded = Conv2dGeom { c_out: pad8(g.c_out), ..*g };
        ConvBf16Geom::new(&padded)?;
        Ok(NchwBoundary { g: *g, padded, c_pad: pad8(g.c_in), o_pad: padded.c_out })
    }
    /// x NCHW -> NHWC bf16, and dx NHWC f32 -> NCHW.
    pub fn x_dims(&self) -> [usize; 4] {
        [self.g.n, self.g.c_in, self.g.h * self.g.w, self.c_pad]
    }
    /// w OIHW -> `[O, kh, kw, C]` (the first `c_out` rows of the `O'`), and dw back (`n = O`, `hw = kh * kw`).
    pub fn w_dims(&self) -> [usize; 4] {
        [self.g.c_out, self.g.c_in, self.g.kh * self.g.kw, self.c_pad]
    }
    /// dy NCHW -> NHWC bf16 (`O'` channels), and y NHWC f32 -> NCHW.
    pub fn y_dims(&self) -> [usize; 4] {
        [self.g.n, self.g.c_out, self.g.ho * self.g.wo, self.o_pad]
    }
    /// Elements of x / dx in the kernels' layout.
    pub fn x_len(&self) -> usize {
        self.g.n * self.g.h * self.g.w * self.c_pad
    }
    /// Elements of w / dw in the kernels' layout, padded rows included.
    pub fn w_len(&self) -> usize {
        self.o_pad * self.g.kh * self.g.kw * self.c_pad
    }
    /// Elements of the first `c_out` rows of w / dw (what the conversions write / read); the rest are padding.
    pub fn w_real_len(&self) -> usize {
        self.g.c_out * self.g.kh * self.g.kw * self.c_pad
    }
    /// Elements of y / dy in the kernels' layout.
    pub fn y_len(&self) -> usize {
        self.g.n * self.g.ho * self.g.wo * self.o_pad
    }
}

/// `w` OIHW f32 into `w16` as `[O', kh, kw, C]` bf16, the padded rows zero.
fn convert_weights(cx: &Cuda, b: &NchwBoundary, w: &CudaView<'_, f32>, w16: &mut CudaSlice<u16>) -> Result<()> {
    bf::nchw_to_nhwc(cx, b.w_dims(), w, &mut w16.slice_mut(..b.w_real_len()))?;
    if b.w_len() > b.w_real_len() {
        let mut tail = w16.slice_mut(b.w_real_len()..b.w_len());
        cx.stream().memset_zeros(&mut tail).map_err(|e| cuda_err(format!("conv2d_bf16: zeroing the padded weight rows failed: {e:?}")))?;
    }
    Ok(())
}

/// `y = conv2d(x, w) (+ bias)` on bf16 tensor cores; x, w, bias, y NCHW / OIHW f32.
pub fn fwd(
    cx: &Cuda,
    g: &Conv2dGeom,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "conv2d_fwd (bf16)";
    check_fwd_operands(OP, g, x.len(), w.len(), bias.map(|b| b.len()), y.len())?;
    if g.y_len() == 0 {
        return Ok(());
    }
    let b = NchwBoundary::new(g)?;
    let mut guard = cx.workspaces();
    let ws = &mut guard.conv_bf16;
    let x16 = ensure(cx.stream(), &mut ws.x, b.x_len(), "conv bf16 x")?;
    bf::nchw_to_nhwc(cx, b.x_dims(), x, &mut x16.slice_mut(..b.x_len()))?;
    let w16 = ensure(cx.stream(), &mut ws.w, b.w_len(), "conv bf16 w")?;
    convert_weights(cx, &b, w, w16)?;
    let mut y_nhwc = cx.scratch(b.y_len())?;
    bf::fwd(cx, &b.padded, &x16.slice(..b.x_len()), &w16.slice(..b.w_len()), None, Some(&mut y_nhwc.slice_mut(..)))?;
    bf::nhwc_f32_to_nchw_with(cx, b.y_dims(), &y_nhwc.slice(..), bias, false, y)
    // `y_nhwc` returns to the pool here; later users of its block run after these launches (one stream).
}

/// `dx = conv_transpose(dy, w)` when requested (written), `dw += dy ⋆ x`, `dbias += Σ dy` when requested, the two
/// products on bf16 tensor cores, the bias gradient from the unrounded f32 dy.
#[allow(clippy::too_many_arguments)]
pub fn bwd(
    cx: &Cuda,
    g: &Conv2dGeom,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    dy: &CudaView<'_, f32>,
    dx: Option<&mut CudaViewMut<'_, f32>>,
    dw: &mut CudaViewMut<'_, f32>,
    dbias: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()> {
    const OP: &str = "conv2d_bwd (bf16)";
    check_bwd_operands(OP, g, x.len(), w.len(), dy.len(), dx.as_ref().map(|d| d.len()), dw.len(), dbias.as_ref().map(|d| d.len()))?;
    let b = NchwBoundary::new(g)?;
    let mut guard = cx.workspaces();
    let ws = &mut guard.conv_bf16;
    let dy16 = ensure(cx.stream(), &mut ws.dy, b.y_len(), "conv bf16 dy")?;
    bf::nchw_to_nhwc(cx, b.y_dims(), dy, &mut dy16.slice_mut(..b.y_len()))?;
    let dy16 = dy16.slice(..b.y_len());
    if let Some(dx) = dx {
        if g.x_len() > 0 {
            let w16 = ensure(cx.stream(), &mut ws.w, b.w_len(), "conv bf16 w")?;
            convert_weights(cx, &b, w, w16)?;
            let mut dx_nhwc = cx.scratch(b.x_len())?;
            bf::dgrad(cx, &b.padded, &dy16, &w16.slice(..b.w_len()), None, Some(&mut dx_nhwc.slice_mut(..)))?;
            bf::nhwc_f32_to_nchw_with(cx, b.x_dims(), &dx_nhwc.slice(..), None, false, dx)?;
        }
    }
    // An empty batch adds nothing to dw (K = 0).
    if g.w_len() > 0 && g.y_len() > 0 {
        let x16 = ensure(cx.stream(), &mut ws.x, b.x_len(), "conv bf16 x")?;
        bf::nchw_to_nhwc(cx, b.x_dims(), x, &mut x16.slice_mut(..b.x_len()))?;
        // wgrad adds its split-K partials into this (`+=`): start from zero, then add the real rows into dw.
        let mut dw_khwc = cx.scratch(b.w_len())?;
        let mut dw_view = dw_khwc.slice_mut(..);
        cx.stream().memset_zeros(&mut dw_view).map_err(|e| cuda_err(format!("{OP}: zeroing the dw workspace failed: {e:?}")))?;
        bf::wgrad(cx, &b.padded, &x16.slice(..b.x_len()), &dy16, &mut dw_view)?;
        bf::nhwc_f32_to_nchw_with(cx, b.w_dims(), &dw_khwc.slice(..b.w_real_len()), None, true, dw)?;
    }
    if let Some(db) = dbias {
        conv2d::bias_grad(cx, g, dy, db)?;
    }
    Ok(())
}
