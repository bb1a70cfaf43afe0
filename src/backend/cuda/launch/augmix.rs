//! `kernels/augmix.cu`, the AugMix stage of `augment_fwd` (called by `launch::augment::fwd` between
//! `augment_resample` and `augment_mean`): `augmix_quantize`, then per chain depth `augmix_tables` (one block per
//! sample, chain and channel) and `augmix_apply`, then `augmix_mix`; block 256, grid-stride grids. Nothing is
//! launched when no sample of the batch has AugMix.

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::{cfg_1d, launched};
use crate::backend::cuda::backend::{ensure, Cuda};
use crate::backend::geom::{AugmentGeom, AugmixOp, AugmixParams, SampleAug, AUGMIX_MAX_WIDTH};
use crate::error::Result;

const _: () = assert!(std::mem::size_of::<AugmixOp>() == 40 && std::mem::size_of::<AugmixParams>() == 392);

/// AugMix's device workspaces, allocated on first use and grown when needed.
#[derive(Default)]
pub struct AugmixWorkspace {
    /// The view rounded to u8, `[n, 3, out, out]`.
    pub orig: Option<CudaSlice<u8>>,
    /// Chain images, `[n, chain, 3, out, out]`; op `d` writes `bufs[d % 2]`.
    pub bufs: [Option<CudaSlice<u8>>; 2],
    /// Per-value tables, `[n, chain, channel, 256]`.
    pub tables: Option<CudaSlice<u8>>,
}

/// Runs AugMix in place on the stage buffer `a` (`[n, 3, out, out]` f32) for the samples that have it.
/// `params` are the host parameters (already validated), `params_d` their device copy.
pub(crate) fn run(
    cx: &Cuda,
    ws: &mut AugmixWorkspace,
    g: &AugmentGeom,
    params: &[SampleAug],
    params_d: &CudaSlice<SampleAug>,
    a: &mut CudaSlice<f32>,
) -> Result<()> {
    let on = params.iter().filter(|p| p.augmix.on != 0);
    let Some(max_depth) = on.map(|p| p.augmix.depth.iter().copied().max().unwrap_or(0)).max() else {
        return Ok(());
    };
    let plane = g.out * g.out;
    let (img, chains) = (3 * plane, AUGMIX_MAX_WIDTH * 3 * plane);
    let f_quantize = cx.function("augmix.cu", "augmix_quantize")?;
    let f_tables = cx.function("augmix.cu", "augmix_tables")?;
    let f_apply = cx.function("augmix.cu", "augmix_apply")?;
    let f_mix = cx.function("augmix.cu", "augmix_mix")?;
    let stream = cx.stream();
    ensure(stream, &mut ws.orig, g.n * img, "augmix original")?;
    ensure(stream, &mut ws.bufs[0], g.n * chains, "augmix chain")?;
    ensure(stream, &mut ws.bufs[1], g.n * chains, "augmix chain")?;
    ensure(stream, &mut ws.tables, g.n * AUGMIX_MAX_WIDTH * 3 * 256, "augmix table")?;
    let orig = ws.orig.as_mut().expect("allocated");
    let tables = ws.tables.as_mut().expect("allocated");
    let [buf0, buf1] = &mut ws.bufs;
    let (buf0, buf1) = (buf0.as_mut().expect("allocated"), buf1.as_mut().expect("allocated"));

    let mut b = stream.launch_builder(&f_quantize);
    b.arg(g).arg(params_d).arg(&*a).arg(&mut *orig);
    // SAFETY: `augmix_quantize(AugmentGeom, const SampleAug*, const float* a, u8* orig)`; a and orig hold
    // n*3*out*out elements, params n.
    launched("augmix_quantize", unsafe { b.launch(cfg_1d(cx.grid_stride(g.n * img, 256))) })?;

    for d in 0..max_depth {
        // Op d reads the original (d = 0: one image per sample, shared by the chains) or the buffer op d - 1
        // wrote, and writes the other buffer.
        let (src, dst): (&CudaSlice<u8>, &mut CudaSlice<u8>) = match d {
            0 => (&*orig, &mut *buf0),
            _ if d % 2 == 1 => (&*buf0, &mut *buf1),
            _ => (&*buf1, &mut *buf0),
        };
        let (sample_stride, chain_stride) = if d == 0 { (img as u64, 0u64) } else { (chains as u64, img as u64) };
        let mut b = stream.launch_builder(&f_tables);
        b.arg(g).arg(params_d).arg(&d).arg(src).arg(&sample_stride).arg(&chain_stride).arg(&mut *tables);
        // SAFETY: `augmix_tables(AugmentGeom, const SampleAug*, u32 d, const u8* src, u64, u64, u8* tables)`; src
        // holds n images of 3*out*out at the given strides, tables n*3*3*256 (allocated above).
        launched("augmix_tables", unsafe { b.launch(cfg_1d(cx.grid_stride(g.n * AUGMIX_MAX_WIDTH * 3, 1))) })?;

        let mut b = stream.launch_builder(&f_apply);
        b.arg(g).arg(params_d).arg(&d).arg(src).arg(&sample_stride).arg(&chain_stride).arg(&*tables).arg(dst);
        // SAFETY: `augmix_apply(AugmentGeom, const SampleAug*, u32 d, const u8* src, u64, u64, const u8* tables,
        // u8* dst)`; dst holds n*3*3*out*out (allocated above); src and dst are different buffers.
        launched("augmix_apply", unsafe { b.launch(cfg_1d(cx.grid_stride(g.n * AUGMIX_MAX_WIDTH * plane, 256))) })?;
    }

    let mut b = stream.launch_builder(&f_mix);
    b.arg(g).arg(params_d).arg(&*orig).arg(&*buf0).arg(&*buf1).arg(a);
    // SAFETY: `augmix_mix(AugmentGeom, const SampleAug*, const u8* orig, const u8* buf0, const u8* buf1, float* a)`;
    // sizes as above; each chain's final image is in the buffer its last op wrote.
    launched("augmix_mix", unsafe { b.launch(cfg_1d(cx.grid_stride(g.n * img, 256))) })
}
