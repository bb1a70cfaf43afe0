//! Pillow's antialiased BILINEAR resampling (`Image.resize(size, Image.BILINEAR)`, which is what torchvision's
//! `Resize` does to a PIL image), ported from Pillow's `src/libImaging/Resample.c` so results are bit-identical.
//!
//! The filter is the triangle `1 - |x|` with support `1.0 * filterscale`, where `filterscale = max(1, in/out)`:
//! when downscaling the kernel widens by the scale factor (antialiasing). Per output pixel the double-precision
//! weights are normalised to sum 1, then converted to fixed point with `PRECISION_BITS = 32 - 8 - 2` fraction bits
//! (rounded half away from zero). Each pass accumulates `u8 * i32` products in an `i32` started at `1 << 21`
//! (rounding), and the result is `clamp(acc >> 22, 0, 255)` (Pillow's `clip8`). A pass whose dimension does not
//! change is skipped, and an unchanged size is a plain copy.
//!
//! The two 8-bit passes round separately, so their order matters. Pillow up to 12.1 always runs the horizontal
//! pass first (over only the source rows the vertical pass reads); Pillow 13 runs the vertical pass first when the
//! height shrinks by more than twice as many pixels as the width (`h - new_h > 0 && h - new_h > 2 * (w - new_w)`).
//! [`PassOrder`] picks which of the two to reproduce; the rest of the arithmetic is identical in both.

/// Which Pillow release's choice of pass order to reproduce (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PassOrder {
    /// Pillow 13 and later: vertical first when `h - new_h > 0 && h - new_h > 2 * (w - new_w)`, else horizontal
    /// first.
    #[default]
    Pillow13,
    /// Pillow 12.1 and earlier: always horizontal first.
    HorizontalFirst,
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per-output-sample filter taps: `bounds[i] = (first source index, tap count)`, `k[i * ksize..][..count]`.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    k: Vec<i32>,
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` (for `in0 = 0`, `in1 = in_size`, i.e. no crop box) followed by
/// `normalize_coeffs_8bpc`.
fn precompute_coeffs(in_size: usize, out_size: usize) -> Coeffs {
    // Pillow keeps the box in C `float`s; `in1 - in0` is computed in float, then widened.
    let (in0, in1) = (0.0f32, in_size as f32);
    let scale = (in1 - in0) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = 1.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = in0 as f64 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C `(int)` truncates toward zero; both bounds are then clamped into the image.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let (xmin, xmax) = (xmin as usize, xmax.max(0) as usize);
        let mut ww = 0.0f64;
        for (x, wx) in w[..xmax].iter_mut().enumerate() {
            *wx = bilinear_filter(((x + xmin) as f64 - center + 0.5) * ss);
            ww += *wx;
        }
        let kk = &mut k[xx * ksize..][..ksize];
        for (kx, &wx) in kk.iter_mut().zip(&w[..xmax]) {
            let v = if ww != 0.0 { wx / ww } else { wx };
            let scaled = v * (1u32 << PRECISION_BITS) as f64;
            *kx = if v < 0.0 { (-0.5 + scaled) as i32 } else { (0.5 + scaled) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { ksize, bounds, k }
}

/// Pillow's `clip8`: the accumulator's integer part, clamped to a byte.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUND: i32 = 1 << (PRECISION_BITS - 1);

/// `ImagingResampleHorizontal_8bpc`: source rows `row0..row0 + rows` of a `w`-wide image with `c` channels,
/// resampled to `out_w` columns.
fn horizontal(src: &[u8], w: usize, c: usize, row0: usize, rows: usize, out_w: usize, co: &Coeffs) -> Vec<u8> {
    let mut out = vec![0u8; rows * out_w * c];
    for (yy, out_row) in out.chunks_exact_mut(out_w * c).enumerate() {
        let in_row = &src[(yy + row0) * w * c..][..w * c];
        for (xx, px) in out_row.chunks_exact_mut(c).enumerate() {
            let (xmin, n) = co.bounds[xx];
            let k = &co.k[xx * co.ksize..][..n];
            for (ch, o) in px.iter_mut().enumerate() {
                let mut acc = ROUND;
                for (x, &kx) in k.iter().enumerate() {
                    acc += in_row[(x + xmin) * c + ch] as i32 * kx;
                }
                *o = clip8(acc);
            }
        }
    }
    out
}

/// `ImagingResampleVertical_8bpc`: a `w`-wide image with `c` channels resampled to `out_h` rows.
fn vertical(src: &[u8], w: usize, c: usize, out_h: usize, co: &Coeffs) -> Vec<u8> {
    let stride = w * c;
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (ymin, n) = co.bounds[yy];
        let k = &co.k[yy * co.ksize..][..n];
        acc.fill(ROUND);
        // Same sums as Pillow's per-pixel loop over y (integer addition, so the loop order does not matter).
        for (y, &ky) in k.iter().enumerate() {
            let in_row = &src[(y + ymin) * stride..][..stride];
            for (a, &v) in acc.iter_mut().zip(in_row) {
                *a += v as i32 * ky;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Resizes an interleaved 8-bit image (`c` channels, `w x h`, rows contiguous) to `new_w x new_h` exactly like
/// Pillow's `Image.resize((new_w, new_h), Image.BILINEAR)` on an `L` (`c = 1`) or `RGB` (`c = 3`) image, with the
/// pass order of the given Pillow release.
///
/// # Panics
/// If `src.len() != w * h * c` or any dimension is zero.
pub fn resize_bilinear_pil_channels(src: &[u8], w: usize, h: usize, c: usize, new_w: usize, new_h: usize, order: PassOrder) -> Vec<u8> {
    assert!(w > 0 && h > 0 && c > 0 && new_w > 0 && new_h > 0, "resize: zero dimension ({w}x{h}x{c} -> {new_w}x{new_h})");
    assert_eq!(src.len(), w * h * c, "resize: buffer length does not match {w}x{h}x{c}");
    let need_horizontal = new_w != w;
    let need_vertical = new_h != h;
    let (dh, dw) = (h as i64 - new_h as i64, w as i64 - new_w as i64);
    let horizontal_first = match order {
        PassOrder::Pillow13 => !(dh > 0 && dh > dw * 2),
        PassOrder::HorizontalFirst => true,
    };
    if horizontal_first {
        let mut cur: Option<Vec<u8>> = None;
        let mut vert = precompute_coeffs(h, new_h);
        if need_horizontal {
            // Only the source rows the vertical pass reads go through the horizontal pass.
            let ybox_first = vert.bounds[0].0;
            let ybox_last = vert.bounds[new_h - 1].0 + vert.bounds[new_h - 1].1;
            for b in &mut vert.bounds {
                b.0 -= ybox_first;
            }
            cur = Some(horizontal(src, w, c, ybox_first, ybox_last - ybox_first, new_w, &precompute_coeffs(w, new_w)));
        }
        if need_vertical {
            cur = Some(vertical(cur.as_deref().unwrap_or(src), new_w, c, new_h, &vert));
        }
        cur.unwrap_or_else(|| src.to_vec())
    } else {
        // Vertical first (only taken when the height shrinks, so `need_vertical` holds), over the full width.
        let tmp = vertical(src, w, c, new_h, &precompute_coeffs(h, new_h));
        if need_horizontal {
            horizontal(&tmp, w, c, 0, new_h, new_w, &precompute_coeffs(w, new_w))
        } else {
            tmp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_a_copy_and_constant_stays_constant() {
        for order in [PassOrder::Pillow13, PassOrder::HorizontalFirst] {
            let src: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
            assert_eq!(resize_bilinear_pil_channels(&src, 5, 4, 3, 5, 4, order), src);
            let flat = vec![77u8; 37 * 23 * 3];
            for (nw, nh) in [(8, 8), (1, 1), (100, 3), (37, 50), (37, 5), (3, 23)] {
                assert!(resize_bilinear_pil_channels(&flat, 37, 23, 3, nw, nh, order).iter().all(|&v| v == 77), "{nw}x{nh}");
            }
        }
    }

    #[test]
    fn pass_order_rule() {
        // 23x41 -> 24x24: the height shrinks by 17 > 2 * (23 - 24), so Pillow 13 goes vertical first and the two
        // orders round differently somewhere on a busy image.
        let src: Vec<u8> = (0..23 * 41 * 3).map(|i| (i * 97 % 251) as u8).collect();
        let a = resize_bilinear_pil_channels(&src, 23, 41, 3, 24, 24, PassOrder::Pillow13);
        let b = resize_bilinear_pil_channels(&src, 23, 41, 3, 24, 24, PassOrder::HorizontalFirst);
        assert_ne!(a, b);
        // Upscaling both ways is horizontal first in both releases.
        let a = resize_bilinear_pil_channels(&src, 23, 41, 3, 50, 60, PassOrder::Pillow13);
        let b = resize_bilinear_pil_channels(&src, 23, 41, 3, 50, 60, PassOrder::HorizontalFirst);
        assert_eq!(a, b);
    }

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(64, 48), (37, 224), (300, 224), (1, 5), (5, 1), (224, 224)] {
            let co = precompute_coeffs(i, o);
            for (j, &(_, n)) in co.bounds.iter().enumerate() {
                let s: i64 = co.k[j * co.ksize..][..n].iter().map(|&v| v as i64).sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= n as i64, "{i}->{o} [{j}]: {s}");
            }
        }
    }
}
