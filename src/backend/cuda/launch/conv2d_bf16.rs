//! `kernels/conv2d_bf16.cu`: convolution as implicit GEMM on bf16 tensor cores (NHWC bf16 activations, weights
//! `[c_out, kh, kw, C]` bf16, fp32 accumulation), plus its layout conversions. The kernel file's header gives the
//! GEMM of each pass, the tile configurations and the shared-memory layout; this file mirrors [`ConvBf16Geom`],
//! picks a tile per shape ([`Tile::for_pass`]) and the wgrad split-K ([`split_k`]), and checks every length.
//!
//! The `Backend` trait reaches them through [`super::conv2d_bf16_nchw`] (the NCHW f32 boundary, when the CUDA
//! backend's precision is bf16); selftest (`crate::selftest::conv_bf16`) and `fgssl lab conv` also call them
//! directly. The CPU reference for them is: round the inputs to bf16, run the f32 CPU convolution.
//!
//! Channel padding: `C = pad8(c_in)` is the channel stride of x / dx and the last weight dimension. The conversion
//! [`nchw_to_nhwc`] writes zeros into the padding channels (of x and of w), so the stem (c_in 3) runs the same
//! 16-byte path as every other layer; [`nhwc_to_nchw`] and [`nhwc_f32_to_nchw`] drop them again.
//! bf16 data travels as `u16` bit patterns (cudarc's `half` feature is off).

use cudarc::driver::sys::CUfunction_attribute_enum;
use cudarc::driver::{CudaView, CudaViewMut, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};

use super::{cfg_1d, grid_dim, launched, need, precondition, FG_BLOCK, NULL_PTR};
use crate::backend::cuda::backend::Cuda;
use crate::backend::geom::Conv2dGeom;
use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::DType;

const FILE: &str = "conv2d_bf16.cu";
/// `BF16_BK` in the kernel: the K depth of one pipeline stage.
pub const BK: usize = 32;
/// `BF16_PAD`: bf16 elements of padding per shared-memory row.
const PAD: usize = 8;
/// Pipeline depth of every configuration (the `STAGES` argument of `CONV_BF16_ENTRY`).
pub const STAGES: usize = 4;

/// Mirrors `ConvBf16Geom` in the kernel (12 x u32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvBf16Geom {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    /// Channel stride of x / dx and the last weight dimension: `pad8(c_in)`.
    pub c: u32,
    pub c_out: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub ho: u32,
    pub wo: u32,
    /// BK-tiles of K per `blockIdx.z` (all of them without a split).
    pub k_tiles_per_split: u32,
}
const _: () = assert!(std::mem::size_of::<ConvBf16Geom>() == 48);
// SAFETY: `#[repr(C)]` struct of u32, mirrored field for field in conv2d_bf16.cu (static_assert on its size).
unsafe impl DeviceRepr for ConvBf16Geom {}

/// `c` rounded up to a multiple of 8 (16 bytes of bf16).
pub fn pad8(c: usize) -> usize {
    c.div_ceil(8) * 8
}

/// The three passes (GEMMs) of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    Fwd,
    Dgrad,
    Wgrad,
}

impl Pass {
    pub const ALL: [Pass; 3] = [Pass::Fwd, Pass::Dgrad, Pass::Wgrad];
    pub fn name(self) -> &'static str {
        match self {
            Pass::Fwd => "fwd",
            Pass::Dgrad => "dgrad",
            Pass::Wgrad => "wgrad",
        }
    }
}

impl ConvBf16Geom {
    /// The bf16 geometry of `g` (channels padded to 8), or an error when a dimension the kernel needs is out of its
    /// range: c_out % 8 == 0, every tensor and GEMM dimension below 2^31 elements, stride >= 1.
    pub fn new(g: &Conv2dGeom) -> Result<Self> {
        const OP: &str = "conv2d_bf16";
        if g.c_out % 8 != 0 {
            return Err(precondition(OP, format!("c_out {} is not a multiple of 8 (the 16-byte path needs it)", g.c_out)));
        }
        if g.stride == 0 || g.kh == 0 || g.kw == 0 {
            return Err(precondition(OP, format!("stride {} / kernel {}x{}: must be at least 1", g.stride, g.kh, g.kw)));
        }
        let c = pad8(g.c_in);
        let limit = i32::MAX as usize;
        let sizes = [g.n * g.h * g.w * c, g.n * g.ho * g.wo * g.c_out, g.c_out * g.kh * g.kw * c, g.h + g.pad + g.kh, g.w + g.pad + g.kw];
        if let Some(big) = sizes.iter().find(|&&s| s >= limit) {
            return Err(precondition(OP, format!("{big} elements: the kernel indexes with 32-bit integers (limit {limit})")));
        }
        let u = |v: usize| v as u32;
        Ok(ConvBf16Geom {
            n: u(g.n),
            h: u(g.h),
            w: u(g.w),
            c: u(c),
            c_out: u(g.c_out),
            kh: u(g.kh),
            kw: u(g.kw),
            stride: u(g.stride),
            pad: u(g.pad),
            ho: u(g.ho),
            wo: u(g.wo),
            k_tiles_per_split: 0,
        })
    }
    /// bf16 elements of x / dx (NHWC, `c` channels).
    pub fn x_len(&self) -> usize {
        self.n as usize * self.h as usize * self.w as usize * self.c as usize
    }
    /// bf16 elements of w (`[c_out, kh, kw, c]`), also the f32 elements of dw.
    pub fn w_len(&self) -> usize {
        self.c_out as usize * self.kh as usize * self.kw as usize * self.c as usize
    }
    /// Elements of y / dy (NHWC).
    pub fn y_len(&self) -> usize {
        self.n as usize * self.ho as usize * self.wo as usize * self.c_out as usize
    }
    /// `(M, N, K)` of the pass's GEMM (as `gemm_dims` in the kernel).
    pub fn gemm_dims(&self, pass: Pass) -> (usize, usize, usize) {
        let (n, c, co) = (self.n as usize, self.c as usize, self.c_out as usize);
        let (hw, ohw, khw) = (self.h as usize * self.w as usize, self.ho as usize * self.wo as usize, self.kh as usize * self.kw as usize);
        match pass {
            Pass::Fwd => (n * ohw, co, khw * c),
            Pass::Dgrad => (n * hw, c, khw * co),
            Pass::Wgrad => (co, khw * c, n * ohw),
        }
    }
}

/// One block-tile configuration compiled in the kernel file (`CONV_BF16_ENTRY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub bm: usize,
    pub bn: usize,
    pub warps: usize,
}

/// Every configuration, largest first.
pub const TILES: [Tile; 2] = [Tile { bm: 128, bn: 128, warps: 8 }, Tile { bm: 64, bn: 64, warps: 4 }];

impl Tile {
    pub fn threads(&self) -> u32 {
        32 * self.warps as u32
    }
    /// Dynamic shared memory, bytes (`ConvTile::SMEM_BYTES`): K-major A and B tiles for fwd / dgrad, M/N-major for
    /// wgrad, each row padded by 8 bf16.
    pub fn smem_bytes(&self, pass: Pass) -> usize {
        let per_stage = match pass {
            Pass::Fwd | Pass::Dgrad => (self.bm + self.bn) * (BK + PAD),
            Pass::Wgrad => BK * (self.bm + PAD + self.bn + PAD),
        };
        STAGES * per_stage * 2
    }
    /// The kernel's entry point, e.g. `conv2d_bf16_fwd_128x128`.
    pub fn kernel(&self, pass: Pass) -> &'static str {
        match (pass, self.bm) {
            (Pass::Fwd, 128) => "conv2d_bf16_fwd_128x128",
            (Pass::Fwd, _) => "conv2d_bf16_fwd_64x64",
            (Pass::Dgrad, 128) => "conv2d_bf16_dgrad_128x128",
            (Pass::Dgrad, _) => "conv2d_bf16_dgrad_64x64",
            (Pass::Wgrad, 128) => "conv2d_bf16_wgrad_128x128",
            (Pass::Wgrad, _) => "conv2d_bf16_wgrad_64x64",
        }
    }
    /// Blocks of this tile over an `m x n` output.
    pub fn blocks(&self, m: usize, n: usize) -> usize {
        m.div_ceil(self.bm) * n.div_ceil(self.bn)
    }
    /// The tile for a GEMM of `m x n` on a card with `sms` SMs: 128x128 when it gives at least one full wave
    /// (`sms` blocks; two fit per SM, so fewer leaves SMs idle), else 64x64 (four times as many blocks). wgrad
    /// splits K on top of this ([`split_k`]).
    pub fn for_gemm(m: usize, n: usize, sms: usize) -> Tile {
        if TILES[0].blocks(m, n) >= sms {
            TILES[0]
        } else {
            TILES[1]
        }
    }
}

/// Splits of K for wgrad: enough blocks for about two waves (`2 * sms`), at least 8 BK-tiles of K per split, never
/// an empty split. Returns `(splits, k_tiles_per_split)`.
pub fn split_k(k: usize, blocks: usize, sms: usize) -> (usize, usize) {
    let k_tiles = k.div_ceil(BK).max(1);
    let want = (2 * sms).div_ceil(blocks.max(1)).clamp(1, k_tiles.div_ceil(8).max(1));
    let per = k_tiles.div_ceil(want);
    (k_tiles.div_ceil(per), per)
}

/// How a pass is launched for a shape: tile, splits, grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub tile: Tile,
    pub splits: usize,
    pub geom: ConvBf16Geom,
    pub grid: (u32, u32, u32),
}

impl Plan {
    pub fn new(pass: Pass, g: &ConvBf16Geom, sms: usize) -> Result<Plan> {
        let (m, n, k) = g.gemm_dims(pass);
        let tile = Tile::for_gemm(m, n, sms);
        let k_tiles = k.div_ceil(BK).max(1);
        let (splits, per) = if pass == Pass::Wgrad { split_k(k, tile.blocks(m, n), sms) } else { (1, k_tiles) };
        let kernel = tile.kernel(pass);
        let grid = (grid_dim(kernel, n, tile.bn, i32::MAX as u32)?, grid_dim(kernel, m, tile.bm, 65535)?, grid_dim(kernel, splits, 1, 65535)?);
        Ok(Plan { tile, splits, geom: ConvBf16Geom { k_tiles_per_split: per as u32, ..*g }, grid })
    }
    /// f32 elements of the wgrad split-K workspace.
    pub fn workspace_len(&self, pass: Pass) -> usize {
        let (m, n, _) = self.geom.gemm_dims(pass);
        if pass == Pass::Wgrad {
            self.splits * m * n
        } else {
            0
        }
    }
}

/// The kernels read and write 16-byte chunks (and 4/8-byte pairs): every tensor must start 16-byte aligned (a whole
/// allocation always does; a view at an odd offset may not).
fn aligned<T, V: DevicePtr<T>>(cx: &Cuda, op: &str, name: &str, v: &V) -> Result<()> {
    let (ptr, _sync) = v.device_ptr(cx.stream());
    if ptr % 16 == 0 {
        Ok(())
    } else {
        Err(precondition(op, format!("{name} starts at device address {ptr:#x}, not 16-byte aligned")))
    }
}

fn launch_gemm(
    cx: &Cuda,
    pass: Pass,
    plan: &Plan,
    a: &CudaView<'_, u16>,
    b: &CudaView<'_, u16>,
    out_bf16: Option<&mut CudaViewMut<'_, u16>>,
    out_f32: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()> {
    let kernel = plan.tile.kernel(pass);
    let f = cx.function(FILE, kernel)?;
    let smem = plan.tile.smem_bytes(pass);
    f.set_attribute(CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem as i32)
        .map_err(|e| precondition(kernel, format!("cannot allow {smem} bytes of dynamic shared memory: {e:?}")))?;
    let cfg = LaunchConfig { grid_dim: plan.grid, block_dim: (plan.tile.threads(), 1, 1), shared_mem_bytes: smem as u32 };
    let mut lb = cx.stream().launch_builder(&f);
    lb.arg(&plan.geom).arg(a).arg(b);
    match out_bf16 {
        Some(o) => lb.arg(o),
        None => lb.arg(&NULL_PTR),
    };
    match out_f32 {
        Some(o) => lb.arg(o),
        None => lb.arg(&NULL_PTR),
    };
    // SAFETY: `<kernel>(ConvBf16Geom, const u16* a, const u16* b, u16* out /*nullable*/, float* out_f32
    // /*nullable*/)`; the callers checked every length against the geometry; smem as ConvTile::SMEM_BYTES.
    launched(kernel, unsafe { lb.launch(cfg) })
}

/// `y = conv2d(x, w)`: x NHWC bf16 (`c = pad8(c_in)` channels), w `[c_out, kh, kw, c]` bf16, y NHWC written as bf16
/// and/or f32 (at least one).
pub fn fwd(
    cx: &Cuda,
    g: &Conv2dGeom,
    x: &CudaView<'_, u16>,
    w: &CudaView<'_, u16>,
    y: Option<&mut CudaViewMut<'_, u16>>,
    y_f32: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()> {
    const OP: &str = "conv2d_bf16_fwd";
    let bg = ConvBf16Geom::new(g)?;
    need(OP, "x", x.len(), bg.x_len())?;
    need(OP, "w", w.len(), bg.w_len())?;
    if let Some(y) = &y {
        need(OP, "y", y.len(), bg.y_len())?;
    }
    if let Some(y) = &y_f32 {
        need(OP, "y_f32", y.len(), bg.y_len())?;
    }
    if y.is_none() && y_f32.is_none() {
        return Err(precondition(OP, "neither a bf16 nor an f32 output was given"));
    }
    if bg.y_len() == 0 {
        return Ok(());
    }
    aligned(cx, OP, "x", x)?;
    aligned(cx, OP, "w", w)?;
    if let Some(y) = &y {
        aligned(cx, OP, "y", &**y)?;
    }
    if let Some(y) = &y_f32 {
        aligned(cx, OP, "y_f32", &**y)?;
    }
    let plan = Plan::new(Pass::Fwd, &bg, cx.sm_count() as usize)?;
    launch_gemm(cx, Pass::Fwd, &plan, x, w, y, y_f32)
}

/// `dx = conv_transpose(dy, w)`: dy NHWC bf16, w `[c_out, kh, kw, c]` bf16, dx NHWC (`c` channels) written as bf16
/// and/or f32. The weights are first transposed to `[c, kh, kw, c_out]` into a workspace from the pool.
pub fn dgrad(
    cx: &Cuda,
    g: &Conv2dGeom,
    dy: &CudaView<'_, u16>,
    w: &CudaView<'_, u16>,
    dx: Option<&mut CudaViewMut<'_, u16>>,
    dx_f32: Option<&mut CudaViewMut<'_, f32>>,
) -> Result<()> {
    const OP: &str = "conv2d_bf16_dgrad";
    let bg = ConvBf16Geom::new(g)?;
    need(OP, "dy", dy.len(), bg.y_len())?;
    need(OP, "w", w.len(), bg.w_len())?;
    if let Some(dx) = &dx {
        need(OP, "dx", dx.len(), bg.x_len())?;
    }
    if let Some(dx) = &dx_f32 {
        need(OP, "dx_f32", dx.len(), bg.x_len())?;
    }
    if dx.is_none() && dx_f32.is_none() {
        return Err(precondition(OP, "neither a bf16 nor an f32 output was given"));
    }
    if bg.x_len() == 0 {
        return Ok(());
    }
    aligned(cx, OP, "dy", dy)?;
    aligned(cx, OP, "w", w)?;
    if let Some(dx) = &dx {
        aligned(cx, OP, "dx", &**dx)?;
    }
    if let Some(dx) = &dx_f32 {
        aligned(cx, OP, "dx_f32", &**dx)?;
    }
    // wt (bf16) lives in a pooled f32 buffer of half the length.
    let mut ws = cx.alloc(bg.w_len().div_ceil(2), DType::F32)?;
    let mut ws_view = ws.slice_mut(..);
    // SAFETY: any bit pattern is a valid u16; the buffer holds w_len u16 (2 per f32).
    let mut wt = unsafe { ws_view.transmute_mut::<u16>(bg.w_len()) }.ok_or_else(|| precondition(OP, "workspace too small"))?;
    let khw = bg.kh * bg.kw;
    let f = cx.function(FILE, "conv2d_bf16_weight_transpose")?;
    let mut lb = cx.stream().launch_builder(&f);
    lb.arg(&bg.c_out).arg(&khw).arg(&bg.c).arg(w).arg(&mut wt);
    // SAFETY: `conv2d_bf16_weight_transpose(u32 c_out, u32 khw, u32 c, const u16* w, u16* wt)`, both w_len long.
    launched("conv2d_bf16_weight_transpose", unsafe { lb.launch(cfg_1d(cx.grid_stride(bg.w_len(), FG_BLOCK as usize))) })?;
    let plan = Plan::new(Pass::Dgrad, &bg, cx.sm_count() as usize)?;
    launch_gemm(cx, Pass::Dgrad, &plan, dy, &wt.slice(..), dx, dx_f32)
}

/// `dw += x ⋆ dy`: x NHWC bf16, dy NHWC bf16, dw `[c_out, kh, kw, c]` f32 accumulated. Split-K partials go to a
/// pooled f32 workspace and are added in a fixed order (deterministic).
pub fn wgrad(cx: &Cuda, g: &Conv2dGeom, x: &CudaView<'_, u16>, dy: &CudaView<'_, u16>, dw: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "conv2d_bf16_wgrad";
    let bg = ConvBf16Geom::new(g)?;
    need(OP, "x", x.len(), bg.x_len())?;
    need(OP, "dy", dy.len(), bg.y_len())?;
    need(OP, "dw", dw.len(), bg.w_len())?;
    if bg.w_len() == 0 {
        return Ok(());
    }
    aligned(cx, OP, "x", x)?;
    aligned(cx, OP, "dy", dy)?;
    aligned(cx, OP, "dw", dw)?;
    let plan = Plan::new(Pass::Wgrad, &bg, cx.sm_count() as usize)?;
    let mut ws = cx.alloc(plan.workspace_len(Pass::Wgrad), DType::F32)?;
    let mut ws_view = ws.slice_mut(..);
    launch_gemm(cx, Pass::Wgrad, &plan, dy, x, None, Some(&mut ws_view))?;
    let (mn, splits) = (bg.w_len() as u64, plan.splits as u32);
    let f = cx.function(FILE, "conv2d_bf16_wgrad_reduce")?;
    let mut lb = cx.stream().launch_builder(&f);
    let partials = ws_view.slice(..);
    lb.arg(&mn).arg(&splits).arg(&partials).arg(dw);
    // SAFETY: `conv2d_bf16_wgrad_reduce(u64 mn, u32 splits, const float* ws, float* dw)`; ws holds splits * mn.
    launched("conv2d_bf16_wgrad_reduce", unsafe { lb.launch(cfg_1d(cx.grid_stride(bg.w_len(), FG_BLOCK as usize))) })
}

// ---- layout conversions -----------------------------------------------------------------------------------------

fn dims_u32(op: &str, dims: [usize; 4]) -> Result<[u32; 4]> {
    let [n, c, hw, c_pad] = dims;
    if c_pad < c || c_pad % 8 != 0 {
        return Err(precondition(op, format!("c_pad {c_pad} must be a multiple of 8 and at least c {c}")));
    }
    if n * hw * c_pad >= i32::MAX as usize {
        return Err(precondition(op, format!("{} elements exceed the 32-bit index range", n * hw * c_pad)));
    }
    Ok([n as u32, c as u32, hw as u32, c_pad as u32])
}

/// `y[img, p, ch] = bf16(x[img, ch, p])` (`c_pad` channels, the padding zero). Also OIHW f32 -> `[O, kh, kw, C]`
/// bf16 with `n = O`, `hw = kh * kw`.
pub fn nchw_to_nhwc(cx: &Cuda, dims: [usize; 4], x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, u16>) -> Result<()> {
    const OP: &str = "conv2d_bf16_nchw_to_nhwc";
    let [n, c, hw, c_pad] = dims_u32(OP, dims)?;
    need(OP, "x", x.len(), dims[0] * dims[1] * dims[2])?;
    need(OP, "y", y.len(), dims[0] * dims[2] * dims[3])?;
    let f = cx.function(FILE, OP)?;
    let mut lb = cx.stream().launch_builder(&f);
    lb.arg(&n).arg(&c).arg(&hw).arg(&c_pad).arg(x).arg(y);
    // SAFETY: `(u32 n, u32 c, u32 hw, u32 c_pad, const float* x, u16* y)`; lengths checked.
    launched(OP, unsafe { lb.launch(cfg_1d(cx.grid_stride(dims[0] * dims[2] * dims[3], FG_BLOCK as usize))) })
}

/// `y[img, ch, p] = x[img, p, ch]` for `ch < c` (bf16 -> f32).
pub fn nhwc_to_nchw(cx: &Cuda, dims: [usize; 4], x: &CudaView<'_, u16>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "conv2d_bf16_nhwc_to_nchw";
    let [n, c, hw, c_pad] = dims_u32(OP, dims)?;
    need(OP, "x", x.len(), dims[0] * dims[2] * dims[3])?;
    need(OP, "y", y.len(), dims[0] * dims[1] * dims[2])?;
    let f = cx.function(FILE, OP)?;
    let mut lb = cx.stream().launch_builder(&f);
    lb.arg(&n).arg(&c).arg(&hw).arg(&c_pad).arg(x).arg(y);
    // SAFETY: `(u32 n, u32 c, u32 hw, u32 c_pad, const u16* x, float* y)`; lengths checked.
    launched(OP, unsafe { lb.launch(cfg_1d(cx.grid_stride(dims[0] * dims[1] * dims[2], FG_BLOCK as usize))) })
}

/// [`nhwc_to_nchw`] for f32 data (f32 outputs, and dw `[O, kh, kw, C]` -> OIHW with `n = O`, `hw = kh * kw`).
pub fn nhwc_f32_to_nchw(cx: &Cuda, dims: [usize; 4], x: &CudaView<'_, f32>, y: &mut CudaViewMut<'_, f32>) -> Result<()> {
    nhwc_f32_to_nchw_with(cx, dims, x, None, false, y)
}

/// `y[img, ch, p] (+)= x[img, p, ch] (+ bias[ch])` for `ch < c`: [`nhwc_f32_to_nchw`] with a per-channel f32 bias
/// added (the forward's conv bias) and, with `accumulate`, `y +=` instead of `y =` (dw, a parameter gradient).
pub fn nhwc_f32_to_nchw_with(
    cx: &Cuda,
    dims: [usize; 4],
    x: &CudaView<'_, f32>,
    bias: Option<&CudaView<'_, f32>>,
    accumulate: bool,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "conv2d_bf16_nhwc_f32_to_nchw";
    let [n, c, hw, c_pad] = dims_u32(OP, dims)?;
    need(OP, "x", x.len(), dims[0] * dims[2] * dims[3])?;
    need(OP, "y", y.len(), dims[0] * dims[1] * dims[2])?;
    if let Some(bias) = bias {
        need(OP, "bias", bias.len(), dims[1])?;
    }
    let accumulate = u32::from(accumulate);
    let f = cx.function(FILE, OP)?;
    let mut lb = cx.stream().launch_builder(&f);
    lb.arg(&n).arg(&c).arg(&hw).arg(&c_pad).arg(x);
    match bias {
        Some(b) => lb.arg(b),
        None => lb.arg(&NULL_PTR),
    };
    lb.arg(&accumulate).arg(y);
    // SAFETY: `(u32 n, u32 c, u32 hw, u32 c_pad, const float* x, const float* bias /*nullable*/, u32 accumulate,
    // float* y)`; lengths checked (bias holds c).
    launched(OP, unsafe { lb.launch(cfg_1d(cx.grid_stride(dims[0] * dims[1] * dims[2], FG_BLOCK as usize))) })
}

// ---- host mirrors (tests, selftest) ---------------------------------------------------------------------------------

/// f32 -> bf16 bits, round to nearest even: the kernels' `bf16_bits`.
pub fn bf16_bits(v: f32) -> u16 {
    half::bf16::from_f32(v).to_bits()
}

/// bf16 bits -> f32 (exact).
pub fn bf16_value(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `v` rounded to the nearest bf16 (the reference's inputs).
pub fn round_bf16(v: f32) -> f32 {
    bf16_value(bf16_bits(v))
}

/// Host twin of `conv2d_bf16_nchw_to_nhwc`.
pub fn host_nchw_to_nhwc(dims: [usize; 4], x: &[f32]) -> Vec<u16> {
    let [n, c, hw, c_pad] = dims;
    let mut y = vec![0u16; n * hw * c_pad];
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                y[(img * hw + p) * c_pad + ch] = bf16_bits(x[(img * c + ch) * hw + p]);
            }
        }
    }
    y
}

/// Host twin of `conv2d_bf16_nhwc_f32_to_nchw` (and, through [`bf16_value`], of `conv2d_bf16_nhwc_to_nchw`).
pub fn host_nhwc_to_nchw(dims: [usize; 4], x: &[f32]) -> Vec<f32> {
    let [n, c, hw, c_pad] = dims;
    let mut y = vec![0f32; n * c * hw];
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                y[(img * c + ch) * hw + p] = x[(img * hw + p) * c_pad + ch];
            }
        }
    }
    y
}

/// Host twin of `conv2d_bf16_nhwc_f32_to_nchw` with its bias and accumulate arguments: `y (+)= x (+ bias)`.
pub fn host_nhwc_f32_to_nchw_with(dims: [usize; 4], x: &[f32], bias: Option<&[f32]>, accumulate: bool, y: &mut [f32]) {
    let [n, c, hw, c_pad] = dims;
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                let mut v = x[(img * hw + p) * c_pad + ch];
                if let Some(b) = bias {
                    v += b[ch];
                }
                let out = &mut y[(img * c + ch) * hw + p];
                *out = if accumulate { *out + v } else { v };
            }
        }
    }
}

/// The inverse permutation in f32 (`c_pad` channels, padding zero): dw's initial value in the kernel's layout.
pub fn host_nchw_to_nhwc_f32(dims: [usize; 4], x: &[f32]) -> Vec<f32> {
    let [n, c, hw, c_pad] = dims;
    let mut y = vec![0f32; n * hw * c_pad];
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                y[(img * hw + p) * c_pad + ch] = x[(img * c + ch) * hw + p];
            }
        }
    }
    y
}
