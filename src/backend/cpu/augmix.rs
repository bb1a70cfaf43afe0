//! AugMix on one u8 view (`augment_fwd`'s stage between the resample and the float operations), the reference for
//! `kernels/augmix.cu`. Images are planar `[3, side, side]` u8; every op is torchvision's tensor implementation on
//! uint8 (`_functional_tensor.py`), with its f32 arithmetic written out in PyTorch's operation order (the kernels
//! use non-contracting intrinsics for the same reason):
//! - blends (Brightness, Color, Contrast, Sharpness): `u8(trunc(clamp(ratio * x + complement * other, 0, 255)))`;
//!   Color's `other` is the u8 grey `trunc((0.2989 r + 0.587 g) + 0.114 b)`, Contrast's the f32 mean of that grey
//!   (an exact integer sum divided by the pixel count), Sharpness's the 3x3 `[1 1 1; 1 5 1; 1 1 1] / 13` blur
//!   rounded to u8 inside the border (the original pixel on it);
//! - Posterize `x & mask`, Solarize `x >= threshold ? 255 - x : x`, AutoContrast per channel
//!   `(x - min) * ((1 / (max - min)) * 255)` truncated, Equalize per channel through torchvision's histogram LUT;
//! - ShearX/Y, TranslateX/Y, Rotate: the affine grid `theta * (x - (side - 1) / 2, y - (side - 1) / 2, 1)`, then
//!   `grid_sample(bilinear, zeros, align_corners=False)` with PyTorch's CPU weight products, rounded half to even.
//!
//! The per-value ops go through one 256-entry table per channel ([`lut`]), as the kernels do.

use crate::augment::augmix::kind;
use crate::backend::geom::{AugmixOp, AugmixParams, AUGMIX_MAX_WIDTH};

/// Grey level as torchvision's `rgb_to_grayscale` on uint8 (note 0.2989, not 0.299), truncated to u8.
pub fn grey(r: u8, g: u8, b: u8) -> u8 {
    (0.2989f32 * r as f32 + 0.587f32 * g as f32 + 0.114f32 * b as f32) as u8
}

/// `_blend` on uint8: `trunc(clamp(ratio * x + complement * other, 0, 255))`.
#[allow(clippy::manual_clamp)]
pub fn blend(op: &AugmixOp, x: u8, other: f32) -> u8 {
    (op.ratio * x as f32 + op.complement * other).max(0.0).min(255.0) as u8
}

/// Mean of the u8 grey image, as torch's `mean` of the f32 grey levels: an integer sum (exact in f32 below 2^24,
/// so any summation order gives it) divided by the pixel count.
pub fn grey_mean(img: &[u8], side: usize) -> f32 {
    let plane = side * side;
    let sum: u64 = (0..plane).map(|i| grey(img[i], img[plane + i], img[2 * plane + i]) as u64).sum();
    sum as f32 / plane as f32
}

/// The table of a per-value op on channel `chan` (`[side, side]` u8); `mean`: the grey mean (Contrast only).
pub fn lut(op: &AugmixOp, chan: &[u8], mean: f32) -> [u8; 256] {
    let mut t = [0u8; 256];
    match op.kind {
        kind::POSTERIZE => {
            let mask = ((0xFFu32 << (8 - op.bits.min(8))) & 0xFF) as u8;
            t.iter_mut().enumerate().for_each(|(v, t)| *t = v as u8 & mask);
        }
        kind::SOLARIZE => t.iter_mut().enumerate().for_each(|(v, t)| *t = if v as f32 >= op.ratio { 255 - v as u8 } else { v as u8 }),
        kind::BRIGHTNESS => t.iter_mut().enumerate().for_each(|(v, t)| *t = blend(op, v as u8, 0.0)),
        kind::CONTRAST => t.iter_mut().enumerate().for_each(|(v, t)| *t = blend(op, v as u8, mean)),
        kind::AUTO_CONTRAST => {
            let (lo, hi) = chan.iter().fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            t.iter_mut().enumerate().for_each(|(v, t)| *t = v as u8);
            if hi > lo {
                // torch evaluates `255 / t` as `t.reciprocal() * 255`: two roundings.
                let (min, scale) = (lo as f32, (1.0f32 / (hi as f32 - lo as f32)) * 255.0);
                #[allow(clippy::manual_clamp)]
                t.iter_mut().enumerate().for_each(|(v, t)| *t = ((v as f32 - min) * scale).max(0.0).min(255.0) as u8);
            }
        }
        kind::EQUALIZE => t = equalize_lut(chan),
        _ => t.iter_mut().enumerate().for_each(|(v, t)| *t = v as u8),
    }
    t
}

/// torchvision's `_scale_channel`: `step = (sum of the non-zero bins but the last) / 255`; identity when 0;
/// otherwise `lut[v] = (cumsum[v - 1] + step / 2) / step` (integer division), `lut[0] = 0`, clamped to 255.
pub fn equalize_lut(chan: &[u8]) -> [u8; 256] {
    let mut hist = [0u64; 256];
    chan.iter().for_each(|&v| hist[v as usize] += 1);
    let last = hist.iter().rposition(|&h| h != 0).unwrap_or(0);
    let step = hist[..last].iter().sum::<u64>() / 255;
    let mut t = [0u8; 256];
    if step == 0 {
        t.iter_mut().enumerate().for_each(|(v, t)| *t = v as u8);
        return t;
    }
    let mut cum = 0u64;
    for v in 1..256 {
        cum += hist[v - 1];
        t[v] = ((cum + step / 2) / step).min(255) as u8;
    }
    t
}

/// Bilinear sample of the affine map at output pixel `(y, x)` for every channel (PyTorch's CPU `grid_sample`:
/// corner weights `(1 - ly)(1 - lx)`, `(1 - ly) lx`, `ly (1 - lx)`, `ly lx`, summed in that order, zero outside).
fn affine_pixel(op: &AugmixOp, img: &[u8], side: usize, y: usize, x: usize) -> [u8; 3] {
    let t = &op.theta;
    let half = side as f32 * 0.5;
    let (bx, by) = (x as f32 + 0.5 - half, y as f32 + 0.5 - half);
    let gx = bx * t[0] + by * t[1] + t[2];
    let gy = bx * t[3] + by * t[4] + t[5];
    let ix = ((gx + 1.0) * side as f32 - 1.0) / 2.0;
    let iy = ((gy + 1.0) * side as f32 - 1.0) / 2.0;
    let (x0, y0) = (ix.floor(), iy.floor());
    let (lx, ly) = (ix - x0, iy - y0);
    let (ex, sy) = (1.0 - lx, 1.0 - ly);
    let weights = [sy * ex, sy * lx, ly * ex, ly * lx];
    let corners = [(y0, x0), (y0, x0 + 1.0), (y0 + 1.0, x0), (y0 + 1.0, x0 + 1.0)];
    let plane = side * side;
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for (&(cy, cx), &w) in corners.iter().zip(&weights) {
            let inside = cy >= 0.0 && cx >= 0.0 && cy < side as f32 && cx < side as f32;
            let v = if inside { img[c * plane + cy as usize * side + cx as usize] as f32 } else { 0.0 };
            acc += v * w;
        }
        *o = acc.round_ties_even().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Sharpness's blurred image at `(y, x)` of one channel plane: the 3x3 kernel `[1 1 1; 1 5 1; 1 1 1] / 13` rounded
/// half to even inside the border, the pixel itself on it. `(s + 4 c) / 13` is never a tie (13 is odd), so the
/// exact integer rounding is what PyTorch's f32 convolution rounds to.
pub fn sharpen_blur(plane: &[u8], side: usize, y: usize, x: usize) -> u8 {
    if y == 0 || x == 0 || y + 1 == side || x + 1 == side {
        return plane[y * side + x];
    }
    let mut s = 4 * plane[y * side + x] as u32;
    for yy in y - 1..=y + 1 {
        for xx in x - 1..=x + 1 {
            s += plane[yy * side + xx] as u32;
        }
    }
    ((2 * s + 13) / 26) as u8
}

/// One AugMix op on a planar `[3, side, side]` u8 image.
pub fn apply_op(op: &AugmixOp, img: &[u8], side: usize) -> Vec<u8> {
    let plane = side * side;
    let mut out = vec![0u8; 3 * plane];
    match op.kind {
        k if kind::is_geometric(k) => {
            for y in 0..side {
                for x in 0..side {
                    let px = affine_pixel(op, img, side, y, x);
                    (0..3).for_each(|c| out[c * plane + y * side + x] = px[c]);
                }
            }
        }
        kind::COLOR => {
            for i in 0..plane {
                let g = grey(img[i], img[plane + i], img[2 * plane + i]) as f32;
                (0..3).for_each(|c| out[c * plane + i] = blend(op, img[c * plane + i], g));
            }
        }
        kind::SHARPNESS => {
            // torchvision returns the image unchanged when a side is at most 2.
            if side <= 2 {
                return img.to_vec();
            }
            for c in 0..3 {
                let p = &img[c * plane..][..plane];
                for i in 0..plane {
                    out[c * plane + i] = blend(op, p[i], sharpen_blur(p, side, i / side, i % side) as f32);
                }
            }
        }
        _ => {
            let mean = if op.kind == kind::CONTRAST { grey_mean(img, side) } else { 0.0 };
            for c in 0..3 {
                let t = lut(op, &img[c * plane..][..plane], mean);
                (0..plane).for_each(|i| out[c * plane + i] = t[img[c * plane + i] as usize]);
            }
        }
    }
    out
}

/// The chains of `p` on `orig` and their mix: `trunc(orig_weight * x + Σ_i w_i * chain_i(x))` (f32, chain order).
#[allow(clippy::manual_clamp)]
pub fn augmix(p: &AugmixParams, orig: &[u8], side: usize) -> Vec<u8> {
    let mut mix: Vec<f32> = orig.iter().map(|&v| p.orig_weight * v as f32).collect();
    for i in 0..AUGMIX_MAX_WIDTH {
        let depth = p.depth[i] as usize;
        if depth == 0 {
            continue;
        }
        let mut img = orig.to_vec();
        for op in &p.ops[i][..depth] {
            img = apply_op(op, &img, side);
        }
        mix.iter_mut().zip(&img).for_each(|(m, &v)| *m += p.chain_weights[i] * v as f32);
    }
    mix.into_iter().map(|m| m.max(0.0).min(255.0) as u8).collect()
}

/// The resampled view `a` (`[3, side, side]`, 0..255 f32) rounded half to even to u8, AugMix'ed, back in `a`.
#[allow(clippy::manual_clamp)]
pub fn apply(p: &AugmixParams, a: &mut [f32], side: usize) {
    if p.on == 0 {
        return;
    }
    let orig: Vec<u8> = a.iter().map(|&v| v.max(0.0).min(255.0).round_ties_even() as u8).collect();
    let mixed = augmix(p, &orig, side);
    a.iter_mut().zip(mixed).for_each(|(a, m)| *a = m as f32);
}
