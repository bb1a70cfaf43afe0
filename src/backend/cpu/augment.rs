//! Augmentation of cached u8 images into normalised f32 views (`augment_fwd`), the reference for
//! `kernels/augment.cu`. Parameters are per sample and deterministic ([`SampleAug`], drawn on the host by
//! `augment::policy`); the semantics of each operation are documented there.
//!
//! Everything is computed in f32 with the same IEEE operations in the same order as the kernels (which use
//! non-contracting intrinsics for this reason), in the kernels' stages:
//! 1. crop + bilinear resize (PyTorch's `align_corners=False`, no antialiasing) with the flips folded into the
//!    sampling position, then the colour-jitter adjustments that come before contrast; then AugMix on the view
//!    rounded to u8 when the sample has it (`super::augmix`; never together with jitter);
//! 2. the mean grey level of each jittered image (contrast blends towards it), summed in 16.16 fixed point so the
//!    sum is exact and does not depend on the summation order;
//! 3. contrast and the remaining jitter adjustments, grayscale;
//! 4. horizontal blur; 5. vertical blur, solarize, /255 and normalise, then the jigsaw gather into each view.
//!
//! So the values compared against solarize's threshold agree bit for bit between the backends, and a CPU/GPU
//! comparison never sees a pixel solarized on one side only.

use rayon::prelude::*;

use super::Element;
use crate::backend::geom::{AugmentGeom, SampleAug, AUGMENT_MAX_VIEWS};

/// ITU-R 601-2 luma.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];
/// Fixed-point scale of the grey-level sum (16 fractional bits).
const MEAN_FIXED_SCALE: f32 = 65536.0;

pub(crate) fn luma(r: f32, g: f32, b: f32) -> f32 {
    LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
}

/// `min(max(v, 0), 255)`, as the kernels' `fminf(fmaxf(v, 0), 255)` (a NaN becomes 0 there and here; `clamp`
/// would keep it).
#[allow(clippy::manual_clamp)]
fn clamp255(v: f32) -> f32 {
    v.max(0.0).min(255.0)
}

/// Source coordinate of output index `o` along an axis of `crop_len` pixels resized to `out`
/// (`align_corners=False`): `(o + 0.5) * crop_len / out - 0.5`, clamped at 0. Returns the two neighbours (relative
/// to the crop) and the weight of the second.
fn source_index(o: usize, crop_len: u32, out: usize) -> (usize, usize, f32) {
    let scale = crop_len as f32 / out as f32;
    let s = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(crop_len as usize - 1);
    let i1 = (i0 + 1).min(crop_len as usize - 1);
    (i0, i1, s - i0 as f32)
}

/// torchvision's `_rgb2hsv` / `_hsv2rgb` round trip with the hue shifted by `hue` (values on the 0..255 scale).
fn shift_hue(rgb: [f32; 3], hue: f32) -> [f32; 3] {
    let [r, g, b] = rgb;
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let crd = if eqc { 1.0 } else { cr };
    let rc = (maxc - r) / crd;
    let gc = (maxc - g) / crd;
    let bc = (maxc - b) / crd;
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = h / 6.0 + 1.0;
    let h = h - h.floor();
    let h = h + hue;
    let h = h - h.floor();
    let v = maxc;
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let p = clamp255(v * (1.0 - s));
    let q = clamp255(v * (1.0 - s * f));
    let t = clamp255(v * (1.0 - s * (1.0 - f)));
    match (i as i32).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Jitter adjustment `which` (0 brightness, 1 contrast, 2 saturation, 3 hue) on one pixel; `mean` is the image's
/// mean grey level (used by contrast only).
fn adjust(which: u32, p: &SampleAug, rgb: [f32; 3], mean: f32) -> [f32; 3] {
    match which {
        0 => rgb.map(|v| clamp255(p.brightness * v)),
        1 => {
            let m = (1.0 - p.contrast) * mean;
            rgb.map(|v| clamp255(p.contrast * v + m))
        }
        2 => {
            let m = (1.0 - p.saturation) * luma(rgb[0], rgb[1], rgb[2]);
            rgb.map(|v| clamp255(p.saturation * v + m))
        }
        _ => shift_hue(rgb, p.hue),
    }
}

/// The jitter adjustments of stage 1 (those before contrast) and of stage 3 (contrast and the rest); both empty
/// when jitter is off.
pub(crate) fn jitter_stages(p: &SampleAug) -> (&[u32], &[u32]) {
    if p.jitter == 0 {
        return (&[], &[]);
    }
    let split = p.jitter_order.iter().position(|&o| o == 1).unwrap_or(4);
    p.jitter_order.split_at(split)
}

/// Stage 1: crop, resize, flips, jitter before contrast. `img` is one `[src, src, 3]` image; returns `[3, out, out]`.
fn resample(g: &AugmentGeom, p: &SampleAug, img: &[u8]) -> Vec<f32> {
    let (o, src) = (g.out, g.src);
    let plane = o * o;
    let (before_contrast, _) = jitter_stages(p);
    let mut a = vec![0.0f32; 3 * plane];
    let xs: Vec<_> = (0..o).map(|x| source_index(x, p.crop_w, o)).collect();
    let ys: Vec<_> = (0..o).map(|y| source_index(y, p.crop_h, o)).collect();
    for y in 0..o {
        let (y0, y1, ly) = ys[if p.vflip != 0 { o - 1 - y } else { y }];
        let (r0, r1) = (p.crop_top as usize + y0, p.crop_top as usize + y1);
        for x in 0..o {
            let (x0, x1, lx) = xs[if p.hflip != 0 { o - 1 - x } else { x }];
            let (c0, c1) = (p.crop_left as usize + x0, p.crop_left as usize + x1);
            let px = |r: usize, c: usize, ch: usize| img[(r * src + c) * 3 + ch] as f32;
            let mut rgb = [0.0f32; 3];
            for (ch, v) in rgb.iter_mut().enumerate() {
                let top = (1.0 - lx) * px(r0, c0, ch) + lx * px(r0, c1, ch);
                let bottom = (1.0 - lx) * px(r1, c0, ch) + lx * px(r1, c1, ch);
                *v = (1.0 - ly) * top + ly * bottom;
            }
            for &which in before_contrast {
                rgb = adjust(which, p, rgb, 0.0);
            }
            for (ch, v) in rgb.into_iter().enumerate() {
                a[ch * plane + y * o + x] = v;
            }
        }
    }
    a
}

/// Stage 2: mean grey level, each pixel's luma rounded to 16.16 fixed point and summed exactly in integers.
pub(crate) fn grey_mean(a: &[f32], plane: usize) -> f32 {
    let sum: u64 = (0..plane).map(|i| (luma(a[i], a[plane + i], a[2 * plane + i]).max(0.0) * MEAN_FIXED_SCALE).round_ties_even() as u64).sum();
    (sum as f64 / (MEAN_FIXED_SCALE as f64 * plane as f64)) as f32
}

/// Stage 3 (in place): contrast and the adjustments after it, then grayscale.
fn recolour(p: &SampleAug, a: &mut [f32], plane: usize) {
    let (_, from_contrast) = jitter_stages(p);
    let mean = if from_contrast.contains(&1) { grey_mean(a, plane) } else { 0.0 };
    for i in 0..plane {
        let mut rgb = [a[i], a[plane + i], a[2 * plane + i]];
        for &which in from_contrast {
            rgb = adjust(which, p, rgb, mean);
        }
        if p.grayscale != 0 {
            rgb = [luma(rgb[0], rgb[1], rgb[2]); 3];
        }
        (a[i], a[plane + i], a[2 * plane + i]) = (rgb[0], rgb[1], rgb[2]);
    }
}

/// One tap sum `Σ_k taps[k] * at(clamp(i + k - r))`, k in order, f32 multiply then add (the kernels' order).
fn blur_at(p: &SampleAug, len: usize, i: usize, at: impl Fn(usize) -> f32) -> f32 {
    let r = p.blur_radius as isize;
    let mut acc = 0.0f32;
    for k in 0..=2 * r {
        let j = (i as isize + k - r).clamp(0, len as isize - 1) as usize;
        acc += p.blur_taps[k as usize] * at(j);
    }
    acc
}

/// Stages 4 and 5 for one sample: the final normalised `[3, out, out]` image, before any jigsaw.
fn finish(g: &AugmentGeom, p: &SampleAug, a: &[f32]) -> Vec<f32> {
    let o = g.out;
    let plane = o * o;
    if p.blur_radius == 0 {
        // No blur: the kernels still run both passes with the single tap 1.0, which is exact.
        return (0..3 * plane).map(|i| normalise(g, p, i / plane, a[i])).collect();
    }
    let mut h = vec![0.0f32; 3 * plane];
    for c in 0..3 {
        for y in 0..o {
            let row = &a[c * plane + y * o..][..o];
            for x in 0..o {
                h[c * plane + y * o + x] = blur_at(p, o, x, |j| row[j]);
            }
        }
    }
    let mut v = vec![0.0f32; 3 * plane];
    for c in 0..3 {
        let hp = &h[c * plane..][..plane];
        for y in 0..o {
            for x in 0..o {
                v[c * plane + y * o + x] = normalise(g, p, c, blur_at(p, o, y, |j| hp[j * o + x]));
            }
        }
    }
    v
}

/// Solarize (when on), then `(v / 255 - mean) / std`.
pub(crate) fn normalise(g: &AugmentGeom, p: &SampleAug, c: usize, v: f32) -> f32 {
    let v = if p.solarize != 0 && v >= 128.0 { 255.0 - v } else { v };
    (v / 255.0 - g.mean[c]) / g.std[c]
}

fn check(g: &AugmentGeom, images: &[u8], params: &[SampleAug], perms: &[u32], ys: &[&mut [impl Sized]]) {
    assert!(g.views >= 1 && g.views <= g.grids.len(), "augment_fwd: {} views", g.views);
    assert_eq!(ys.len(), g.views, "augment_fwd: {} outputs for {} views", ys.len(), g.views);
    assert!(images.len() >= g.images_len(), "augment_fwd: {} image bytes, {g:?} needs {}", images.len(), g.images_len());
    assert_eq!(params.len(), g.n, "augment_fwd: {} parameter sets for {} samples", params.len(), g.n);
    assert_eq!(perms.len(), g.perms_len(), "augment_fwd: permutation table length for {g:?}");
    for y in ys {
        assert_eq!(y.len(), g.view_len(), "augment_fwd: output length for {g:?}");
    }
    for (i, p) in params.iter().enumerate() {
        let inside = p.crop_h > 0 && p.crop_w > 0 && (p.crop_top + p.crop_h) as usize <= g.src && (p.crop_left + p.crop_w) as usize <= g.src;
        assert!(inside, "augment_fwd: crop box of sample {i} leaves the {} x {} image: {p:?}", g.src, g.src);
        assert!(p.augmix.on == 0 || (p.jitter == 0 && p.augmix.check().is_ok()), "augment_fwd: AugMix parameters of sample {i}: {p:?}");
    }
}

/// `ys[k] = J_{grids[k]}(augment(images))`, see the module documentation.
pub fn fwd<T: Element>(g: &AugmentGeom, images: &[u8], params: &[SampleAug], perms: &[u32], ys: Vec<&mut [T]>) {
    check(g, images, params, perms, &ys);
    let (o, plane3) = (g.out, 3 * g.out * g.out);
    // Split every output into per-sample chunks, so each sample writes its own slices in parallel.
    let mut per_sample: Vec<Vec<&mut [T]>> = (0..g.n).map(|_| Vec::with_capacity(g.views)).collect();
    for y in ys {
        for (i, chunk) in y.chunks_mut(plane3).enumerate() {
            per_sample[i].push(chunk);
        }
    }
    // Offsets of each shuffled view's permutations in the table.
    let mut perm_offset = [0usize; AUGMENT_MAX_VIEWS];
    let mut off = 0;
    for (slot, &grid) in perm_offset.iter_mut().zip(&g.grids[..g.views]) {
        *slot = off;
        off += g.n * grid * grid;
    }
    let img_len = g.src * g.src * 3;
    per_sample.into_par_iter().enumerate().for_each(|(i, outs)| {
        let p = &params[i];
        let mut a = resample(g, p, &images[i * img_len..][..img_len]);
        super::augmix::apply(&p.augmix, &mut a, o);
        recolour(p, &mut a, o * o);
        let img = finish(g, p, &a);
        for (k, y) in outs.into_iter().enumerate() {
            let grid = g.grids[k];
            if grid == 0 {
                y.iter_mut().zip(&img).for_each(|(y, &v)| *y = T::from_f32(v));
            } else {
                let perm = &perms[perm_offset[k] + i * grid * grid..][..grid * grid];
                super::jigsaw::gather_image(|j| T::from_f32(img[j]), y, 3, o, o, grid, perm);
            }
        }
    });
}
