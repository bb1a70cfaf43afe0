//! Host side of the implicit-GEMM convolution (`kernels/conv2d.cu`): the tile table, the per-shape plan (tile,
//! grid, split-K) and the kernel parameter block [`ConvGemm`] with its [`FastDiv`] divisors. Pure host code (no
//! device calls), so the plan and the index arithmetic are unit-tested on the CPU (`tests/conv2d_gemm.rs`
//! emulates the kernel's tiling with these very structs).

use cudarc::driver::DeviceRepr;

use crate::backend::geom::Conv2dGeom;
use crate::error::{Error, Result};

/// Which GEMM of the convolution (see the table in the header of `kernels/conv2d.cu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// `y = w · im2col(x)`: M = c_out, N = n*ho*wo, K = c_in*kh*kw.
    Fwd,
    /// `dx = transposed conv of dy`: M = c_in, N = n*h*w, K = c_out*kh*kw.
    Dgrad,
    /// `dw += dy · im2col(x)ᵀ`: M = c_out, N = c_in*kh*kw, K = n*ho*wo (split-K).
    Wgrad,
}

/// One tile configuration of `kernels/conv2d.cu` (a row of its tile table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    /// The suffix of the kernel names, `conv2d_<pass>_<name>`.
    pub name: &'static str,
    pub bm: usize,
    pub bn: usize,
    pub bk: usize,
    pub tm: usize,
    pub tn: usize,
}

impl Tile {
    /// Threads per block: one per `tm x tn` micro-tile.
    pub const fn threads(&self) -> usize {
        (self.bm / self.tm) * (self.bn / self.tn)
    }
    /// Static shared memory of the kernel: two buffers of `bk` rows of A and B, each row padded by 4 floats.
    pub const fn smem_bytes(&self) -> usize {
        2 * self.bk * (self.bm + 4 + self.bn + 4) * 4
    }
}

/// The tile table, largest first (the `CONV_TILE_KERNELS` instantiations of `kernels/conv2d.cu`).
pub const TILES: [Tile; 4] = [
    Tile { name: "128x128", bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
    Tile { name: "64x128", bm: 64, bn: 128, bk: 8, tm: 4, tn: 8 },
    Tile { name: "64x64", bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
    Tile { name: "32x64", bm: 32, bn: 64, bk: 16, tm: 4, tn: 4 },
];

/// Kernel names by pass and tile (the same order as [`TILES`]).
const KERNELS: [[&str; 4]; 3] = [
    ["conv2d_fwd_128x128", "conv2d_fwd_64x128", "conv2d_fwd_64x64", "conv2d_fwd_32x64"],
    ["conv2d_bwd_dx_128x128", "conv2d_bwd_dx_64x128", "conv2d_bwd_dx_64x64", "conv2d_bwd_dx_32x64"],
    ["conv2d_bwd_dw_128x128", "conv2d_bwd_dw_64x128", "conv2d_bwd_dw_64x64", "conv2d_bwd_dw_32x64"],
];

/// Least K per split: below this the partial tiles cost more traffic (write + reduce) than the split saves.
pub const MIN_K_PER_SPLIT: usize = 256;
/// Most splits: bounds the workspace (splits * M * N floats) and the reduce kernel's loop.
pub const MAX_SPLITS: usize = 256;
/// Every index the kernels form is an `int`: operands, outputs and the workspace must stay at or below 2^30, so
/// that the sum of two indices (`k_begin + k_chunk`, `k0 + BK`) cannot overflow either.
pub const INDEX_LIMIT: usize = 1 << 30;

/// The GEMM sizes of a pass.
pub fn gemm_mnk(pass: Pass, g: &Conv2dGeom) -> (usize, usize, usize) {
    let khkw = g.kh * g.kw;
    match pass {
        Pass::Fwd => (g.c_out, g.n * g.ho * g.wo, g.c_in * khkw),
        Pass::Dgrad => (g.c_in, g.n * g.h * g.w, g.c_out * khkw),
        Pass::Wgrad => (g.c_out, g.c_in * khkw, g.n * g.ho * g.wo),
    }
}

/// How one pass is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub pass: Pass,
    pub tile: Tile,
    /// Index of `tile` in [`TILES`].
    pub tile_index: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `(ceil(n / bn), ceil(m / bm), splits)`.
    pub grid: (u32, u32, u32),
    /// K splits (1 unless wgrad needs more blocks than its tiles give).
    pub splits: usize,
    /// K per split: a multiple of `tile.bk`; every split is non-empty.
    pub k_chunk: usize,
    /// Floats of split-K workspace (`splits * m * n` with several splits, else 0).
    pub workspace_len: usize,
}

impl Plan {
    /// The kernel this plan launches.
    pub fn kernel(&self) -> &'static str {
        KERNELS[self.pass as usize][self.tile_index]
    }

    /// Whether this is a launchable plan of its pass for `g`: the GEMM sizes are `g`'s and non-zero, the tile is a
    /// row of [`TILES`], the grid covers M and N exactly, the splits cover K with none empty, the workspace size
    /// matches, only wgrad splits. The launchers check it, since a plan with more blocks in z than splits would
    /// write past the workspace (or race on dw).
    pub fn validate(&self, g: &Conv2dGeom) -> Result<()> {
        let (m, n, k) = gemm_mnk(self.pass, g);
        let t = self.tile;
        let ok = (self.m, self.n, self.k) == (m, n, k)
            && m > 0
            && n > 0
            && k > 0
            && TILES.get(self.tile_index) == Some(&t)
            && self.grid == (n.div_ceil(t.bn) as u32, m.div_ceil(t.bm) as u32, self.splits as u32)
            && self.k_chunk > 0
            && self.k_chunk % t.bk == 0
            && self.splits == k.div_ceil(self.k_chunk)
            && (1..=MAX_SPLITS).contains(&self.splits)
            && (self.pass == Pass::Wgrad || self.splits == 1)
            && self.workspace_len == if self.splits > 1 { self.splits * m * n } else { 0 };
        if ok {
            Ok(())
        } else {
            Err(conv_err(format!("conv2d: {self:?} is not a valid {:?} plan of {g:?}", self.pass)))
        }
    }
}

fn conv_err(reason: String) -> Error {
    Error::Backend { backend: "cuda".into(), reason }
}

/// The geometry is one the kernels can run: positive sizes, output size consistent, every index below 2^31.
pub fn check_geometry(op: &str, g: &Conv2dGeom) -> Result<()> {
    if g.c_in == 0 || g.c_out == 0 || g.kh == 0 || g.kw == 0 || g.stride == 0 || g.h + 2 * g.pad < g.kh || g.w + 2 * g.pad < g.kw {
        return Err(conv_err(format!("{op}: degenerate geometry {g:?}")));
    }
    if g.ho != (g.h + 2 * g.pad - g.kh) / g.stride + 1 || g.wo != (g.w + 2 * g.pad - g.kw) / g.stride + 1 {
        return Err(conv_err(format!("{op}: output size inconsistent with the input, kernel, stride and padding: {g:?}")));
    }
    let prod = |v: &[usize]| v.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    let sizes = [
        prod(&[g.n, g.c_in, g.h, g.w]),
        prod(&[g.n, g.c_out, g.ho, g.wo]),
        prod(&[g.c_out, g.c_in, g.kh, g.kw]),
        g.h.checked_add(2 * g.pad),
        g.w.checked_add(2 * g.pad),
    ];
    if sizes.iter().any(|s| s.is_none_or(|s| s > INDEX_LIMIT)) {
        return Err(conv_err(format!("{op}: a tensor of {g:?} has 2^30 elements or more, beyond the kernels' 32-bit indexing")));
    }
    Ok(())
}

/// Tile for fwd / dgrad: the largest whose block fits inside M and N and that still gives at least one block per
/// SM; the smallest when none does (small layers: more, smaller blocks).
fn pick_streaming_tile(m: usize, n: usize, sm_count: usize) -> usize {
    TILES.iter().position(|t| m >= t.bm && n >= t.bn && m.div_ceil(t.bm) * n.div_ceil(t.bn) >= sm_count).unwrap_or(TILES.len() - 1)
}

/// Tile for wgrad: the largest that fits inside M and N (split-K supplies the parallelism).
fn pick_wgrad_tile(m: usize, n: usize) -> usize {
    TILES.iter().position(|t| m >= t.bm && n >= t.bn).unwrap_or(TILES.len() - 1)
}

/// The launch plan of `pass` for `g` on a card with `sm_count` SMs. Errors on geometries the kernels cannot index.
pub fn plan(pass: Pass, g: &Conv2dGeom, sm_count: usize) -> Result<Plan> {
    check_geometry("conv2d", g)?;
    let (m, n, k) = gemm_mnk(pass, g);
    let sm_count = sm_count.max(1);
    let tile_index = match pass {
        Pass::Fwd | Pass::Dgrad => pick_streaming_tile(m, n, sm_count),
        Pass::Wgrad => pick_wgrad_tile(m, n),
    };
    let tile = TILES[tile_index];
    let mut splits = 1;
    if pass == Pass::Wgrad {
        // Aim at two blocks per SM, keeping at least MIN_K_PER_SPLIT of K per split.
        let tiles = m.div_ceil(tile.bm) * n.div_ceil(tile.bn);
        let wanted = (2 * sm_count).div_ceil(tiles.max(1));
        splits = wanted.min(k / MIN_K_PER_SPLIT).clamp(1, MAX_SPLITS);
    }
    plan_with(pass, g, tile_index, splits)
}

/// The plan of `pass` for `g` with tile `TILES[tile_index]` and about `splits` K splits (wgrad only; fwd and dgrad
/// take 1): K per split is rounded up to a multiple of the tile's BK, and the split count recounted so that none is
/// empty. [`plan`] uses it; tests use it to force every tile and split count.
pub fn plan_with(pass: Pass, g: &Conv2dGeom, tile_index: usize, splits: usize) -> Result<Plan> {
    check_geometry("conv2d", g)?;
    let (m, n, k) = gemm_mnk(pass, g);
    let tile = *TILES.get(tile_index).ok_or_else(|| conv_err(format!("conv2d: no tile {tile_index}")))?;
    let splits = if pass == Pass::Wgrad { splits.clamp(1, MAX_SPLITS) } else { 1 };
    let k_chunk = k.div_ceil(splits).div_ceil(tile.bk).max(1) * tile.bk;
    // Recount so that no split is empty: splits = ceil(k / k_chunk) (at least 1, even for k = 0).
    let splits = k.div_ceil(k_chunk).max(1);
    let workspace_len = if splits > 1 { splits * m * n } else { 0 };
    if workspace_len > INDEX_LIMIT || k_chunk > INDEX_LIMIT {
        return Err(conv_err(format!("conv2d: split-K workspace of {splits} x {m} x {n} floats exceeds 2^30 for {g:?}")));
    }
    let dim = |v: usize, what: &str, limit: usize| -> Result<u32> {
        if v <= limit {
            Ok(v as u32)
        } else {
            Err(conv_err(format!("conv2d: grid {what} {v} exceeds {limit} for {g:?}")))
        }
    };
    let grid = (dim(n.div_ceil(tile.bn), "x", i32::MAX as usize)?, dim(m.div_ceil(tile.bm), "y", 65535)?, dim(splits, "z", 65535)?);
    Ok(Plan { pass, tile, tile_index, m, n, k, grid, splits, k_chunk, workspace_len })
}

/// `x / d` for `0 <= x < 2^31` without a division instruction (CUTLASS's FastDivmod): `d == 1 ? x :
/// umulhi(x, mul) >> shr` with `l = ceil(log2 d)`, `mul = ceil(2^(31+l) / d)`, `shr = l - 1`. Exact because
/// `x * (mul - 2^(31+l)/d) / 2^(31+l) < 2^31 / 2^(31+l) <= 1/d`. Mirrored in `kernels/conv2d.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastDiv {
    pub d: u32,
    pub mul: u32,
    pub shr: u32,
}

impl FastDiv {
    /// The divisor `d` (1 <= d < 2^31).
    pub fn new(d: u32) -> FastDiv {
        assert!(d >= 1 && d <= i32::MAX as u32, "FastDiv::new({d}): divisor out of range");
        if d == 1 {
            return FastDiv { d, mul: 0, shr: 0 };
        }
        let l = 32 - (d - 1).leading_zeros(); // ceil(log2 d) for d >= 2
        let mul = (1u64 << (31 + l)).div_ceil(d as u64);
        FastDiv { d, mul: mul as u32, shr: l - 1 }
    }

    /// `(x / d, x % d)` exactly as the kernel computes it (`x` in `0..2^31`).
    pub fn divmod(&self, x: u32) -> (u32, u32) {
        let q = if self.d == 1 { x } else { (((x as u64) * (self.mul as u64)) >> 32) as u32 >> self.shr };
        (q, x - q * self.d)
    }
}

/// The kernels' parameter block (mirrored in `kernels/conv2d.cu`): the geometry as `i32`, the GEMM sizes of the
/// pass, the split-K chunk, the wgrad epilogue mode and the divisors.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGemm {
    pub n: i32,
    pub c_in: i32,
    pub h: i32,
    pub w: i32,
    pub c_out: i32,
    pub kh: i32,
    pub kw: i32,
    pub stride: i32,
    pub pad: i32,
    pub ho: i32,
    pub wo: i32,
    pub gm: i32,
    pub gn: i32,
    pub gk: i32,
    pub k_chunk: i32,
    /// wgrad: 1 adds the result into `dw` (one split), 0 writes split z's partial tile at `out + z*M*N`.
    pub accumulate: i32,
    pub div_khkw: FastDiv,
    pub div_kw: FastDiv,
    pub div_howo: FastDiv,
    pub div_wo: FastDiv,
    pub div_hw: FastDiv,
    pub div_w: FastDiv,
    pub div_stride: FastDiv,
}

const _: () = assert!(std::mem::size_of::<ConvGemm>() == 16 * 4 + 7 * 12);

// SAFETY: a `#[repr(C)]` struct of `i32` / `u32` fields, mirrored field for field in `kernels/conv2d.cu`, which
// `static_assert`s the same size.
unsafe impl DeviceRepr for ConvGemm {}

impl ConvGemm {
    /// The parameter block for `plan` of `g` (`g` passed [`check_geometry`], so every size fits an `i32`).
    pub fn new(g: &Conv2dGeom, plan: &Plan) -> ConvGemm {
        let i = |v: usize| v as i32;
        // Divisors of empty extents (e.g. a 0-size batch never launches) are clamped to 1 to stay valid.
        let d = |v: usize| FastDiv::new(v.max(1) as u32);
        ConvGemm {
            n: i(g.n),
            c_in: i(g.c_in),
            h: i(g.h),
            w: i(g.w),
            c_out: i(g.c_out),
            kh: i(g.kh),
            kw: i(g.kw),
            stride: i(g.stride),
            pad: i(g.pad),
            ho: i(g.ho),
            wo: i(g.wo),
            gm: i(plan.m),
            gn: i(plan.n),
            gk: i(plan.k),
            k_chunk: i(plan.k_chunk),
            accumulate: i32::from(plan.splits == 1),
            div_khkw: d(g.kh * g.kw),
            div_kw: d(g.kw),
            div_howo: d(g.ho * g.wo),
            div_wo: d(g.wo),
            div_hw: d(g.h * g.w),
            div_w: d(g.w),
            div_stride: d(g.stride),
        }
    }
}
