//! `kernels/augment.cu`: `augment_resample` -> (AugMix, `launch::augmix`, when a sample has it) -> `augment_mean` ->
//! `augment_recolour` -> `augment_blur_h` -> `augment_blur_v` (which also does solarize, normalise and the jigsaw scatter into every view); block 256,
//! grid-stride grids; `augment_mean` one block per sample.
//!
//! Host data per call: the per-sample parameters and the INVERSE of every jigsaw permutation (the kernel scatters
//! each pixel to the output tile that shows it) are validated and copied into reused device workspaces, as are
//! the two `[n, 3, out, out]` stage buffers and the per-sample grey means ([`AugmentWorkspace`]).

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DeviceRepr, PushKernelArg};

use super::{cfg_1d, launched, need, precondition, NULL_PTR};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::cuda::cuda_err;
use crate::backend::geom::{AugmentGeom, SampleAug, AUGMENT_MAX_BLUR_RADIUS, AUGMENT_MAX_VIEWS};
use crate::error::Result;

const _: () = assert!(std::mem::size_of::<AugmentGeom>() == 88);
const _: () = assert!(std::mem::size_of::<SampleAug>() == 568 && std::mem::align_of::<SampleAug>() == 4);

// SAFETY: plain `#[repr(C)]` structs of integers and floats, mirrored field for field in `kernels/augment.cu`,
// which `static_assert`s the same sizes.
unsafe impl DeviceRepr for AugmentGeom {}
unsafe impl DeviceRepr for SampleAug {}

/// Device workspaces of `augment_fwd` and `jigsaw_fwd`, allocated on first use and grown when needed.
#[derive(Default)]
pub struct AugmentWorkspace {
    pub params: Option<CudaSlice<SampleAug>>,
    /// Inverse permutations (augment) or the permutations themselves (jigsaw_fwd).
    pub perms: Option<CudaSlice<u32>>,
    pub mean: Option<CudaSlice<f32>>,
    pub a: Option<CudaSlice<f32>>,
    pub b: Option<CudaSlice<f32>>,
}

/// Checks one sample's parameters as the CPU reference asserts them.
fn check_params(g: &AugmentGeom, params: &[SampleAug]) -> Result<()> {
    const OP: &str = "augment_fwd";
    if params.len() != g.n {
        return Err(precondition(OP, format!("{} parameter sets for {} samples", params.len(), g.n)));
    }
    for (i, p) in params.iter().enumerate() {
        let inside = p.crop_h > 0 && p.crop_w > 0 && (p.crop_top + p.crop_h) as usize <= g.src && (p.crop_left + p.crop_w) as usize <= g.src;
        if !inside {
            return Err(precondition(OP, format!("crop box of sample {i} leaves the {} x {} image: {p:?}", g.src, g.src)));
        }
        if p.blur_radius as usize > AUGMENT_MAX_BLUR_RADIUS || p.jitter_order.iter().any(|&o| o > 3) {
            return Err(precondition(OP, format!("sample {i}: blur radius or jitter order out of range: {p:?}")));
        }
        if p.augmix.on != 0 && (p.jitter != 0 || p.augmix.check().is_err()) {
            return Err(precondition(OP, format!("sample {i}: AugMix parameters out of range or combined with jitter: {p:?}")));
        }
    }
    Ok(())
}

/// The inverse of every permutation in the table (validating that each is a permutation of its grid's tiles).
pub(crate) fn inverse_permutations(g: &AugmentGeom, perms: &[u32]) -> Result<Vec<u32>> {
    if perms.len() != g.perms_len() {
        return Err(precondition("augment_fwd", format!("{} permutation entries, {g:?} needs {}", perms.len(), g.perms_len())));
    }
    let mut inv = vec![u32::MAX; perms.len()];
    let mut off = 0;
    for &grid in &g.grids[..g.views] {
        let cells = grid * grid;
        for _ in 0..g.n * (grid > 0) as usize {
            for (d, &s) in perms[off..off + cells].iter().enumerate() {
                let slot = inv.get_mut(off + s as usize).filter(|_| (s as usize) < cells);
                match slot {
                    Some(v) if *v == u32::MAX => *v = d as u32,
                    _ => return Err(precondition("augment_fwd", format!("entries {off}..{} are not a permutation of {cells} tiles", off + cells))),
                }
            }
            off += cells;
        }
    }
    Ok(inv)
}

pub fn fwd(
    cx: &Cuda,
    g: &AugmentGeom,
    images: &CudaView<'_, u8>,
    params: &[SampleAug],
    perms: &[u32],
    ys: &mut [CudaViewMut<'_, f32>],
) -> Result<()> {
    const OP: &str = "augment_fwd";
    if g.views == 0 || g.views > AUGMENT_MAX_VIEWS || ys.len() != g.views {
        return Err(precondition(OP, format!("{} outputs for {} views (1..={AUGMENT_MAX_VIEWS})", ys.len(), g.views)));
    }
    if let Some(&grid) = g.grids[..g.views].iter().find(|&&grid| grid > 0 && g.out % grid != 0) {
        return Err(precondition(OP, format!("grid {grid} does not divide the view side {}", g.out)));
    }
    need(OP, "images", images.len(), g.images_len())?;
    for y in ys.iter() {
        need(OP, "y", y.len(), g.view_len())?;
    }
    check_params(g, params)?;
    let inv = inverse_permutations(g, perms)?;
    let total = g.view_len();
    if total == 0 {
        return Ok(());
    }
    let f_resample = cx.function("augment.cu", "augment_resample")?;
    let f_mean = cx.function("augment.cu", "augment_mean")?;
    let f_recolour = cx.function("augment.cu", "augment_recolour")?;
    let f_blur_h = cx.function("augment.cu", "augment_blur_h")?;
    let f_blur_v = cx.function("augment.cu", "augment_blur_v")?;

    let mut workspaces = cx.workspaces();
    let workspaces = &mut *workspaces;
    let (ws, augmix_ws) = (&mut workspaces.augment, &mut workspaces.augmix);
    let stream = cx.stream();
    let upload = |e| cuda_err(format!("{OP}: host-to-device copy failed: {e:?}"));
    let dev_params = ensure(stream, &mut ws.params, g.n, "augment parameter")?;
    stream.memcpy_htod(params, &mut dev_params.slice_mut(0..g.n)).map_err(upload)?;
    let dev_perms = ensure(stream, &mut ws.perms, inv.len(), "augment permutation")?;
    if !inv.is_empty() {
        stream.memcpy_htod(&inv, &mut dev_perms.slice_mut(0..inv.len())).map_err(upload)?;
    }
    ensure(stream, &mut ws.mean, g.n, "augment grey mean")?;
    ensure(stream, &mut ws.a, total, "augment stage")?;
    ensure(stream, &mut ws.b, total, "augment blur")?;
    let (params_d, perms_d) = (ws.params.as_ref().expect("allocated"), ws.perms.as_ref().expect("allocated"));
    let (mean_d, a_d, b_d) = (ws.mean.as_mut().expect("allocated"), ws.a.as_mut().expect("allocated"), ws.b.as_mut().expect("allocated"));

    let pixels = g.n * g.out * g.out;
    let mut b = stream.launch_builder(&f_resample);
    b.arg(g).arg(images).arg(params_d).arg(&mut *a_d);
    // SAFETY: `augment_resample(AugmentGeom, const u8* images, const SampleAug* params, float* a)`; images hold
    // n*src*src*3 bytes, params n, a n*3*out*out (checked / allocated above); crop boxes lie inside the image.
    launched("augment_resample", unsafe { b.launch(cfg_1d(cx.grid_stride(pixels, 256))) })?;
    super::augmix::run(cx, augmix_ws, g, params, params_d, a_d)?;

    let mut b = stream.launch_builder(&f_mean);
    b.arg(g).arg(params_d).arg(&*a_d).arg(&mut *mean_d);
    // SAFETY: `augment_mean(AugmentGeom, const SampleAug*, const float* a, float* mean)`; mean holds n.
    launched("augment_mean", unsafe { b.launch(cfg_1d(cx.grid_stride(g.n, 1))) })?;

    let mut b = stream.launch_builder(&f_recolour);
    b.arg(g).arg(params_d).arg(&*mean_d).arg(&mut *a_d);
    // SAFETY: `augment_recolour(AugmentGeom, const SampleAug*, const float* mean, float* a)`.
    launched("augment_recolour", unsafe { b.launch(cfg_1d(cx.grid_stride(pixels, 256))) })?;

    let mut b = stream.launch_builder(&f_blur_h);
    b.arg(g).arg(params_d).arg(&*a_d).arg(&mut *b_d);
    // SAFETY: `augment_blur_h(AugmentGeom, const SampleAug*, const float* a, float* b)`; both n*3*out*out.
    launched("augment_blur_h", unsafe { b.launch(cfg_1d(cx.grid_stride(total, 256))) })?;

    let mut b = stream.launch_builder(&f_blur_v);
    b.arg(g).arg(params_d).arg(perms_d).arg(&*b_d);
    for y in ys.iter_mut() {
        b.arg(y);
    }
    for _ in g.views..AUGMENT_MAX_VIEWS {
        b.arg(&NULL_PTR);
    }
    // SAFETY: `augment_blur_v(AugmentGeom, const SampleAug*, const u32* inv_perms, const float* b, float* y0..y3)`;
    // views outputs of n*3*out*out (checked), the rest NULL and never touched (k < views only); inv_perms holds
    // perms_len entries, each a valid tile index (validated as permutations).
    launched("augment_blur_v", unsafe { b.launch(cfg_1d(cx.grid_stride(total, 256))) })
}
