//! Fundus crop for APTOS-style retina photographs: cut the black border around the retina before resizing.
//!
//! Fundus images show a bright disc on a black background, with a border whose width varies from camera to camera
//! (APTOS 2019 mixes many), so a plain resize gives retinas of different apparent sizes. The common APTOS
//! preprocessing (`crop_image_from_gray(img, tol=7)` in the widely copied Kaggle kernels) keeps the bounding box of
//! the pixels whose grey value exceeds 7. This module does the same, with two differences:
//!
//! * grey is OpenCV's `COLOR_RGB2GRAY` in its exact fixed-point form (`(4899 R + 9617 G + 1868 B + 8192) >> 14`),
//!   and a pixel is retina when `grey > threshold` (default 7);
//! * the box is taken from row and column *counts*: a row (column) belongs to the retina only when at least
//!   `min_fraction` of its pixels (default 1%, at least one pixel) are above the threshold, so isolated bright
//!   noise pixels, JPEG ringing or a hot pixel in the border do not stretch the box. For a disc of radius r this
//!   trims at most about 0.01% of r² per edge.
//!
//! The crop is not square-padded by default (like the kernels: the box, often wider than high because the disc is
//! cut at the top and bottom, is then resized to `S x S`). With `square: true` the box is centred on a black square
//! canvas of side `max(width, height)` instead, which keeps the disc round after the resize. An image with no retina
//! pixel at all (fully dark) is returned unchanged.
//!
//! The crop runs on the decoded full-resolution pixels, before the resize (see [`crate::data::cache`]).

/// Options of the fundus crop (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FundusCrop {
    /// A pixel is retina when its grey value is strictly greater than this.
    pub threshold: u8,
    /// A row or column is inside the box when at least this fraction of its pixels (and at least one) are retina.
    pub min_fraction: f64,
    /// Pad the box with black to a centred square instead of returning it as is.
    pub square: bool,
}

impl Default for FundusCrop {
    fn default() -> Self {
        FundusCrop { threshold: 7, min_fraction: 0.01, square: false }
    }
}

impl FundusCrop {
    /// A short stable description, part of the decode-cache key.
    pub fn describe(&self) -> String {
        format!("fundus(threshold={},min_fraction={},square={})", self.threshold, self.min_fraction, self.square)
    }
}

/// OpenCV's `cvtColor(..., COLOR_RGB2GRAY)` for 8-bit pixels, bit-exact (14-bit fixed point, rounded).
#[inline]
pub fn grey(r: u8, g: u8, b: u8) -> u8 {
    ((4899 * r as u32 + 9617 * g as u32 + 1868 * b as u32 + 8192) >> 14) as u8
}

/// A box in pixel coordinates: columns `x0..x1`, rows `y0..y1` (end-exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl CropBox {
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }
    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }
}

/// The retina's bounding box in an RGB8 image of `w x h` (`rgb.len() == w * h * 3`), or `None` when no row or
/// column has enough retina pixels.
///
/// # Panics
/// If `rgb` does not hold `w * h * 3` bytes.
pub fn retina_box(w: usize, h: usize, rgb: &[u8], opts: &FundusCrop) -> Option<CropBox> {
    assert_eq!(rgb.len(), w * h * 3, "retina_box: {w}x{h} RGB8 image needs {} bytes, got {}", w * h * 3, rgb.len());
    let mut rows = vec![0usize; h];
    let mut cols = vec![0usize; w];
    for (y, row) in rgb.chunks_exact(w * 3).enumerate() {
        for (x, px) in row.chunks_exact(3).enumerate() {
            if grey(px[0], px[1], px[2]) > opts.threshold {
                rows[y] += 1;
                cols[x] += 1;
            }
        }
    }
    let min_count = |len: usize| ((opts.min_fraction * len as f64).ceil() as usize).max(1);
    let (min_row, min_col) = (min_count(w), min_count(h));
    let y0 = rows.iter().position(|&c| c >= min_row)?;
    let y1 = rows.iter().rposition(|&c| c >= min_row)? + 1;
    let x0 = cols.iter().position(|&c| c >= min_col)?;
    let x1 = cols.iter().rposition(|&c| c >= min_col)? + 1;
    Some(CropBox { x0, y0, x1, y1 })
}

/// Crops an RGB8 image of `w x h` to its retina (see the module docs); returns the new `(width, height, pixels)`.
/// A fully dark image comes back unchanged.
pub fn crop_fundus(w: usize, h: usize, rgb: Vec<u8>, opts: &FundusCrop) -> (usize, usize, Vec<u8>) {
    let Some(b) = retina_box(w, h, &rgb, opts) else { return (w, h, rgb) };
    if !opts.square && b == (CropBox { x0: 0, y0: 0, x1: w, y1: h }) {
        return (w, h, rgb);
    }
    let (bw, bh) = (b.width(), b.height());
    let (out_w, out_h) = if opts.square { (bw.max(bh), bw.max(bh)) } else { (bw, bh) };
    let (ox, oy) = ((out_w - bw) / 2, (out_h - bh) / 2);
    let mut out = vec![0u8; out_w * out_h * 3];
    for y in 0..bh {
        let src = ((b.y0 + y) * w + b.x0) * 3;
        let dst = ((oy + y) * out_w + ox) * 3;
        out[dst..dst + bw * 3].copy_from_slice(&rgb[src..src + bw * 3]);
    }
    (out_w, out_h, out)
}
