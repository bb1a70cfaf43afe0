//! Augmentation of a batch of cached u8 images into normalised f32 views (`augment_fwd`): shape and parameter
//! checks, output allocation. What the parameters mean is documented in `augment::policy`, which draws them.

use crate::backend::geom::{AugmentGeom, SampleAug, AUGMENT_MAX_BLUR_RADIUS, AUGMENT_MAX_VIEWS};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// ImageNet channel statistics (torchvision's `Normalize` in every reference transform).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A batch of `n` square u8 RGB images `[n, side, side, 3]` (HWC, as the image cache stores them) on a backend.
pub struct ImageBatch<B: Backend> {
    pub bytes: B::Bytes,
    pub n: usize,
    pub side: usize,
}

impl<B: Backend> ImageBatch<B> {
    /// Uploads `host` (exactly `n * side * side * 3` bytes) once.
    pub fn upload(b: &B, host: &[u8], n: usize, side: usize) -> Result<Self> {
        if host.len() != n * side * side * 3 {
            return Err(Error::shape(
                "augment",
                format!("{} bytes for {n} images of {side} x {side} x 3 (need {})", host.len(), n * side * side * 3),
            ));
        }
        Ok(ImageBatch { bytes: b.upload_bytes(host)?, n, side })
    }
}

/// Every permutation in `perms` (`n` of `grid^2` tiles each) is a permutation.
pub(crate) fn check_permutations(op: &'static str, perms: &[u32], n: usize, grid: usize) -> Result<()> {
    let cells = grid * grid;
    if perms.len() != n * cells {
        return Err(Error::shape(op, format!("{} permutation entries for {n} samples on a {grid} x {grid} grid (need {})", perms.len(), n * cells)));
    }
    let mut seen = vec![false; cells];
    for (i, perm) in perms.chunks(cells.max(1)).enumerate() {
        seen.fill(false);
        for &t in perm {
            match seen.get_mut(t as usize) {
                Some(s) if !*s => *s = true,
                _ => {
                    return Err(Error::Invalid(format!("{op}: the jigsaw permutation of sample {i} is not a permutation of {cells} tiles: {perm:?}")))
                }
            }
        }
    }
    Ok(())
}

/// A clear error unless `grid` divides both sides.
pub(crate) fn check_grid(op: &str, h: usize, w: usize, grid: usize) -> Result<()> {
    if grid == 0 || h % grid != 0 || w % grid != 0 {
        return Err(Error::Invalid(format!(
            "{op}: a {grid} x {grid} jigsaw grid does not divide the {h} x {w} image (each side must be a multiple of the grid)"
        )));
    }
    Ok(())
}

/// `grids.len()` views `[n, 3, out, out]` of `images`: view `k` shuffled on a `grids[k]` grid (0: not shuffled),
/// all with the per-sample `params`; `perms` holds `n * grid^2` entries per shuffled view, in view order.
pub fn forward<B: Backend>(
    b: &B,
    images: &ImageBatch<B>,
    out: usize,
    grids: &[usize],
    params: &[SampleAug],
    perms: &[u32],
) -> Result<Vec<Tensor<B>>> {
    const OP: &str = "augment";
    let (n, src) = (images.n, images.side);
    if grids.is_empty() || grids.len() > AUGMENT_MAX_VIEWS {
        return Err(Error::shape(OP, format!("{} views requested; one call writes 1 to {AUGMENT_MAX_VIEWS}", grids.len())));
    }
    if out == 0 || src == 0 {
        return Err(Error::shape(OP, format!("empty images or views: source side {src}, view side {out}")));
    }
    if params.len() != n {
        return Err(Error::shape(OP, format!("{} parameter sets for {n} images", params.len())));
    }
    for (i, p) in params.iter().enumerate() {
        let inside = p.crop_h > 0 && p.crop_w > 0 && (p.crop_top + p.crop_h) as usize <= src && (p.crop_left + p.crop_w) as usize <= src;
        if !inside {
            return Err(Error::Invalid(format!(
                "{OP}: the crop box of sample {i} (top {}, left {}, {} x {}) is not inside the {src} x {src} image",
                p.crop_top, p.crop_left, p.crop_h, p.crop_w
            )));
        }
        if p.blur_radius as usize > AUGMENT_MAX_BLUR_RADIUS || p.jitter_order.iter().any(|&o| o > 3) {
            return Err(Error::Invalid(format!(
                "{OP}: sample {i}: blur radius {} (max {AUGMENT_MAX_BLUR_RADIUS}) or jitter order {:?} out of range",
                p.blur_radius, p.jitter_order
            )));
        }
        p.augmix.check()?;
        if p.augmix.on != 0 && p.jitter != 0 {
            return Err(Error::Invalid(format!("{OP}: sample {i} has both AugMix and colour jitter, which cannot be combined")));
        }
    }
    let mut g = AugmentGeom { n, src, out, views: grids.len(), grids: [0; AUGMENT_MAX_VIEWS], mean: IMAGENET_MEAN, std: IMAGENET_STD };
    g.grids[..grids.len()].copy_from_slice(grids);
    if perms.len() != g.perms_len() {
        return Err(Error::shape(OP, format!("{} permutation entries for grids {grids:?} and {n} samples (need {})", perms.len(), g.perms_len())));
    }
    let mut off = 0;
    for &grid in grids.iter().filter(|&&grid| grid > 0) {
        check_grid(OP, out, out, grid)?;
        check_permutations(OP, &perms[off..off + n * grid * grid], n, grid)?;
        off += n * grid * grid;
    }
    let mut ys: Vec<Tensor<B>> = (0..grids.len()).map(|_| Tensor::uninit(b, [n, 3, out, out])).collect::<Result<_>>()?;
    let views: Vec<B::ViewMut<'_>> = ys.iter_mut().map(|y| y.view_mut(b)).collect();
    b.augment_fwd(&g, &images.bytes, params, perms, views);
    Ok(ys)
}
