//! An RGB8 raster with the few primitives plots need: filled rectangles, thick lines, text in the embedded font,
//! and PNG output. Coordinates are pixels from the top-left corner; anything outside the canvas is clipped.

use std::path::Path;

use super::font::{glyph, text_width, ADVANCE, GLYPH_H, GLYPH_W};
use crate::error::{Error, Result};

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
pub const GRID: Rgb = [225, 225, 225];
/// Series colours, distinguishable in colour and in grey (after matplotlib's tab10).
pub const PALETTE: [Rgb; 6] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75]];

pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        Canvas { width, height, pixels: vec![background; width * height] }
    }

    pub fn get(&self, x: usize, y: usize) -> Rgb {
        self.pixels[y * self.width + x]
    }

    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = c;
        }
    }

    /// Fills `[x, x + w) x [y, y + h)`.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y.max(0)..(y + h).min(self.height as i64) {
            for xx in x.max(0)..(x + w).min(self.width as i64) {
                self.set(xx, yy, c);
            }
        }
    }

    /// A rectangle's one-pixel outline.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        self.fill_rect(x, y, w, 1, c);
        self.fill_rect(x, y + h - 1, w, 1, c);
        self.fill_rect(x, y, 1, h, c);
        self.fill_rect(x + w - 1, y, 1, h, c);
    }

    /// A line `thickness` pixels wide (a square brush moved along Bresenham's line).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), thickness: i64, c: Rgb) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let lo = -(thickness - 1) / 2;
        loop {
            self.fill_rect(x + lo, y + lo, thickness, thickness, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale` x `scale`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        let s = scale as i64;
        for (i, ch) in text.chars().enumerate() {
            let gx = x + (i * ADVANCE) as i64 * s;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        self.fill_rect(gx + col as i64 * s, y + row as i64 * s, s, s, c);
                    }
                }
            }
        }
    }

    /// Draws `text` centred horizontally on `cx`.
    pub fn text_centered(&mut self, cx: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        self.text(cx - text_width(text, scale) as i64 / 2, y, text, scale, c);
    }

    /// Draws `text` ending at `right`.
    pub fn text_right(&mut self, right: i64, y: i64, text: &str, scale: usize, c: Rgb) {
        self.text(right - text_width(text, scale) as i64, y, text, scale, c);
    }

    /// Draws `text` rotated a quarter turn counter-clockwise (reading bottom to top), centred vertically on `cy`,
    /// with its left edge at `x`: the usual y-axis label.
    pub fn text_vertical(&mut self, x: i64, cy: i64, text: &str, scale: usize, c: Rgb) {
        let w = text_width(text, scale);
        let mut strip = Canvas::new(w.max(1), GLYPH_H * scale, WHITE);
        strip.text(0, 0, text, scale, BLACK);
        let bottom = cy + w as i64 / 2;
        for sy in 0..strip.height {
            for sx in 0..strip.width {
                if strip.get(sx, sy) == BLACK {
                    self.set(x + sy as i64, bottom - sx as i64, c);
                }
            }
        }
    }

    /// Writes the canvas as an 8-bit RGB PNG.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let bytes: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        let img = image::RgbImage::from_raw(self.width as u32, self.height as u32, bytes)
            .ok_or_else(|| Error::Invalid(format!("{}: canvas of {}x{} has the wrong pixel count", path.display(), self.width, self.height)))?;
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Invalid(format!("{}: cannot encode PNG: {e}", path.display())))?;
        crate::weights::write_atomic(path, &png)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cover_their_end_points_and_clip_at_the_border() {
        let mut c = Canvas::new(20, 10, WHITE);
        c.line((-5, -5), (30, 30), 1, BLACK);
        c.line((2, 8), (17, 8), 3, PALETTE[0]);
        assert_eq!(c.get(0, 0), BLACK);
        assert_eq!(c.get(5, 5), BLACK);
        assert_eq!((c.get(2, 8), c.get(17, 7), c.get(10, 9)), (PALETTE[0], PALETTE[0], PALETTE[0]));
        assert_eq!(c.get(10, 5), WHITE);
    }

    #[test]
    fn text_inks_exactly_its_glyph_cells() {
        let mut c = Canvas::new(40, 20, WHITE);
        c.text(1, 2, "I", 2, BLACK);
        // 'I' row 0 is .###.: cells 1..4 inked, at scale 2 pixels x = 1 + 2..8, y = 2..4.
        assert_eq!((c.get(3, 2), c.get(8, 3), c.get(1, 2), c.get(9, 2)), (BLACK, BLACK, WHITE, WHITE));
        let inked = (0..20).flat_map(|y| (0..40).map(move |x| (x, y))).filter(|&(x, y)| c.get(x, y) == BLACK).count();
        assert_eq!(inked, (3 + 1 + 1 + 1 + 1 + 1 + 3) * 4);
    }

    #[test]
    fn vertical_text_is_the_horizontal_text_turned() {
        let mut c = Canvas::new(30, 30, WHITE);
        c.text_vertical(5, 15, "L", 1, BLACK);
        // 'L' is a vertical bar on its left and a horizontal bar at its bottom; turned counter-clockwise the left
        // bar becomes the bottom row (y = 15 + 5/2) and the bottom bar the right column (x = 5 + 6).
        assert_eq!(c.get(5, 17), BLACK);
        assert_eq!(c.get(11, 13), BLACK);
        assert_eq!(c.get(11, 17), BLACK);
    }
}
