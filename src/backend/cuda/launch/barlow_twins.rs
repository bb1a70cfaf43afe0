//! `kernels/barlow_twins.cu`. Forward: `barlow_twins_standardize` (block 256, grid ceil(2f / 256)) ->
//! `barlow_twins_gemm` for C (block 256, grid (ceil(f/64), ceil(f/64))) -> `barlow_twins_terms` (grid 1, block 256).
//! Backward: `barlow_twins_grad_c` into the reused `[f, f]` G workspace (block 256, grid-stride) -> two
//! `barlow_twins_gemm` (grid (ceil(f/64), ceil(n/64))) writing ∂ẑ into dza / dzb -> `barlow_twins_unstandardize`
//! in place (block 256, grid ceil(2f / 256)).

use cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig, PushKernelArg};

use super::{cfg_1d, grid_dim, launched, need, precondition, FG_BLOCK};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::geom::{BarlowTwinsGeom, BT_FORM_REFERENCE, BT_FORM_STANDARD};
use crate::error::Result;

/// One product of the tiled GEMM kernel, mirrored field for field by `struct BtGemm` in the `.cu` file:
/// `out[m, n] = alpha · Σ_k L[m·lrs + k·lcs] · R[k·rrs + n·rcs]`, out row stride `ors`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BtGemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lrs: usize,
    pub lcs: usize,
    pub rrs: usize,
    pub rcs: usize,
    pub ors: usize,
    pub alpha: f32,
    pub pad: u32,
}

const _: () = assert!(std::mem::size_of::<BtGemm>() == 72);
const _: () = assert!(std::mem::size_of::<BarlowTwinsGeom>() == 24);

// SAFETY: `#[repr(C)]` structs of `usize` (= unsigned long long), f32 and u32 fields in the kernel's order
// (static_assert 72 and 24 bytes there).
unsafe impl DeviceRepr for BtGemm {}
unsafe impl DeviceRepr for BarlowTwinsGeom {}

/// Output tile edge of `barlow_twins_gemm`.
const TILE: usize = 64;

fn check_geom(op: &str, g: &BarlowTwinsGeom) -> Result<()> {
    if g.form != BT_FORM_STANDARD && g.form != BT_FORM_REFERENCE {
        return Err(precondition(op, format!("unknown form {}", g.form)));
    }
    if g.n < 2 {
        return Err(precondition(op, format!("needs at least 2 samples, got {}", g.n)));
    }
    Ok(())
}

fn gemm(cx: &Cuda, p: &BtGemm, l: &CudaView<'_, f32>, r: &CudaView<'_, f32>, out: &mut CudaViewMut<'_, f32>) -> Result<()> {
    const OP: &str = "barlow_twins_gemm";
    if p.m == 0 || p.n == 0 {
        return Ok(());
    }
    let f = cx.function("barlow_twins.cu", OP)?;
    let cfg = LaunchConfig {
        grid_dim: (grid_dim(OP, p.n, TILE, i32::MAX as u32)?, grid_dim(OP, p.m, TILE, 65535)?, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = cx.stream().launch_builder(&f);
    b.arg(p).arg(l).arg(r).arg(out);
    // SAFETY: `barlow_twins_gemm(BtGemm, const float* L, const float* R, float* out)`; the callers size L, R and out
    // for the strides in `p` (checked against the geometry by `need`).
    launched(OP, unsafe { b.launch(cfg) })
}

/// Columns of both inputs, one thread each.
fn column_grid(op: &str, f: usize) -> Result<LaunchConfig> {
    Ok(cfg_1d(grid_dim(op, 2 * f, FG_BLOCK as usize, i32::MAX as u32)?))
}

#[allow(clippy::too_many_arguments)]
pub fn fwd(
    cx: &Cuda,
    g: &BarlowTwinsGeom,
    za: &CudaView<'_, f32>,
    zb: &CudaView<'_, f32>,
    za_hat: &mut CudaViewMut<'_, f32>,
    zb_hat: &mut CudaViewMut<'_, f32>,
    inv_std_a: &mut CudaViewMut<'_, f32>,
    inv_std_b: &mut CudaViewMut<'_, f32>,
    c: &mut CudaViewMut<'_, f32>,
    terms: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "barlow_twins_fwd";
    check_geom(OP, g)?;
    let (n, f) = (g.n, g.f);
    for (name, have, want) in [
        ("za", za.len(), n * f),
        ("zb", zb.len(), n * f),
        ("za_hat", za_hat.len(), n * f),
        ("zb_hat", zb_hat.len(), n * f),
        ("inv_std_a", inv_std_a.len(), f),
        ("inv_std_b", inv_std_b.len(), f),
        ("c", c.len(), f * f),
        ("terms", terms.len(), 3),
    ] {
        need(OP, name, have, want)?;
    }
    if f > 0 {
        let k = cx.function("barlow_twins.cu", "barlow_twins_standardize")?;
        let mut b = cx.stream().launch_builder(&k);
        b.arg(g).arg(za).arg(zb).arg(&mut *za_hat).arg(&mut *zb_hat).arg(inv_std_a).arg(inv_std_b);
        // SAFETY: `barlow_twins_standardize(BarlowTwinsGeom, const float* za, const float* zb, float* za_hat,
        // float* zb_hat, float* inv_std_a, float* inv_std_b)`; lengths checked; one thread per column of both.
        launched("barlow_twins_standardize", unsafe { b.launch(column_grid(OP, f)?) })?;
        let p = BtGemm { m: f, n: f, k: n, lrs: 1, lcs: f, rrs: f, rcs: 1, ors: f, alpha: (1.0 / n as f64) as f32, pad: 0 };
        gemm(cx, &p, &za_hat.as_view(), &zb_hat.as_view(), c)?;
    }
    let k = cx.function("barlow_twins.cu", "barlow_twins_terms")?;
    let mut b = cx.stream().launch_builder(&k);
    let c_view = c.as_view();
    b.arg(g).arg(&c_view).arg(terms);
    // SAFETY: `barlow_twins_terms(BarlowTwinsGeom, const float* c, float* terms)`; c holds f², terms 3; grid 1.
    launched("barlow_twins_terms", unsafe { b.launch(cfg_1d(1)) })
}

#[allow(clippy::too_many_arguments)]
pub fn bwd(
    cx: &Cuda,
    g: &BarlowTwinsGeom,
    za_hat: &CudaView<'_, f32>,
    zb_hat: &CudaView<'_, f32>,
    inv_std_a: &CudaView<'_, f32>,
    inv_std_b: &CudaView<'_, f32>,
    c: &CudaView<'_, f32>,
    dloss: f32,
    dza: &mut CudaViewMut<'_, f32>,
    dzb: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    const OP: &str = "barlow_twins_bwd";
    check_geom(OP, g)?;
    let (n, f) = (g.n, g.f);
    for (name, have, want) in [
        ("za_hat", za_hat.len(), n * f),
        ("zb_hat", zb_hat.len(), n * f),
        ("inv_std_a", inv_std_a.len(), f),
        ("inv_std_b", inv_std_b.len(), f),
        ("c", c.len(), f * f),
        ("dza", dza.len(), n * f),
        ("dzb", dzb.len(), n * f),
    ] {
        need(OP, name, have, want)?;
    }
    if f == 0 {
        return Ok(());
    }
    let k_grad = cx.function("barlow_twins.cu", "barlow_twins_grad_c")?;
    let k_unstd = cx.function("barlow_twins.cu", "barlow_twins_unstandardize")?;
    let mut ws = cx.workspaces();
    let gmat = ensure(cx.stream(), &mut ws.train.bt_grad_c, f * f, "Barlow Twins dL/dC")?;
    let mut b = cx.stream().launch_builder(&k_grad);
    b.arg(g).arg(c).arg(&dloss).arg(&mut *gmat);
    // SAFETY: `barlow_twins_grad_c(BarlowTwinsGeom, const float* c, float dloss, float* gmat)`; both hold f².
    launched("barlow_twins_grad_c", unsafe { b.launch(cfg_1d(cx.grid_stride(f * f, 256))) })?;
    let gview = gmat.slice(0..f * f);
    // dẑA[b, i] = Σ_j ẑB[b, j] G[i, j];  dẑB[b, j] = Σ_i ẑA[b, i] G[i, j]
    let pa = BtGemm { m: n, n: f, k: f, lrs: f, lcs: 1, rrs: 1, rcs: f, ors: f, alpha: 1.0, pad: 0 };
    gemm(cx, &pa, zb_hat, &gview, dza)?;
    let pb = BtGemm { m: n, n: f, k: f, lrs: f, lcs: 1, rrs: f, rcs: 1, ors: f, alpha: 1.0, pad: 0 };
    gemm(cx, &pb, za_hat, &gview, dzb)?;
    let mut b = cx.stream().launch_builder(&k_unstd);
    b.arg(g).arg(za_hat).arg(zb_hat).arg(inv_std_a).arg(inv_std_b).arg(dza).arg(dzb);
    // SAFETY: `barlow_twins_unstandardize(BarlowTwinsGeom, const float* za_hat, const float* zb_hat,
    // const float* inv_std_a, const float* inv_std_b, float* dza, float* dzb)`; lengths checked.
    launched("barlow_twins_unstandardize", unsafe { b.launch(column_grid(OP, f)?) })
}
