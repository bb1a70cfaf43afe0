//! JPEG decoding through libjpeg-turbo's decoder, so pixels are bit-identical to Pillow's.
//!
//! Pillow decodes JPEG with libjpeg-turbo at its default settings (ISLOW integer IDCT, fancy chroma upsampling,
//! libjpeg's YCbCr->RGB tables); mozjpeg's decoder is libjpeg-turbo's, built here from the C sources vendored by
//! `mozjpeg-sys` (plain C, no SIMD: libjpeg-turbo's SIMD paths are bit-exact with the C ones for these settings).
//! The colour handling then follows `Image.open(p).convert("RGB")`:
//!
//! * 3-component files (YCbCr, or RGB per the Adobe/JFIF markers) are converted to RGB by libjpeg;
//! * 1-component (grayscale) files are decoded to luma and replicated into R, G and B;
//! * 4-component files (CMYK, YCCK) are decoded to CMYK, inverted as Pillow always does (its `CMYK;I` raw mode,
//!   "Adobe conventions"), and converted with Pillow's `cmyk2rgb` formula.
//!
//! libjpeg reports fatal errors through `error_exit`, whose default calls `exit()`; the `mozjpeg` wrapper replaces
//! it with an unwind, which is caught here and turned into an error. A file whose data ends before libjpeg has
//! read the EOI marker is an error, like Pillow's "image file is truncated" (libjpeg itself would pad it with
//! gray and only warn). Corrupt-data warnings (bad Huffman codes, junk before a marker) do not stop decoding and
//! give the same pixels as Pillow, which ignores them too.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mozjpeg::{ColorSpace, Decompress};

/// The image crate's RGB8 buffer; rows are contiguous, 3 bytes per pixel.
pub(super) type Rgb8 = image::RgbImage;

/// A `BufRead` over the file's bytes that records whether libjpeg asked for data past the end.
struct EofFlagReader<'a> {
    data: &'a [u8],
    hit_eof: &'a Cell<bool>,
}

impl Read for EofFlagReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for EofFlagReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.data.is_empty() {
            self.hit_eof.set(true);
        }
        Ok(self.data)
    }
    fn consume(&mut self, amt: usize) {
        self.data = &self.data[amt.min(self.data.len())..];
    }
}

/// Pillow's `MULDIV255`: `a * b / 255` rounded, the way `Convert.c` computes it.
fn muldiv255(a: u8, b: i32) -> i32 {
    let t = a as i32 * b + 128;
    ((t >> 8) + t) >> 8
}

/// Pillow's `cmyk2rgb` (Convert.c) applied to one pixel of Pillow's (inverted) CMYK.
fn cmyk_to_rgb(cmyk: [u8; 4]) -> [u8; 3] {
    let nk = 255 - cmyk[3] as i32;
    let f = |v: u8| (nk - muldiv255(v, nk)).clamp(0, 255) as u8;
    [f(cmyk[0]), f(cmyk[1]), f(cmyk[2])]
}

fn io_reason(e: io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the JPEG data ends early (truncated file)".into(),
        io::ErrorKind::OutOfMemory => "not enough memory for the decoded image".into(),
        _ => e.to_string(),
    }
}

/// Decodes a JPEG file's bytes to RGB8 exactly as `PIL.Image.open(..).convert("RGB")` does. Errors are reasons
/// (without the path), never panics.
pub(super) fn decode_jpeg_rgb8(bytes: &[u8]) -> Result<Rgb8, String> {
    let hit_eof = Cell::new(false);
    let caught = catch_unwind(AssertUnwindSafe(|| decode_unguarded(bytes, &hit_eof)));
    match caught {
        Ok(result) => result,
        Err(payload) => {
            let msg = if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else {
                "libjpeg failed".to_string()
            };
            Err(msg.trim_start_matches("libjpeg fatal error: ").to_string())
        }
    }
}

fn decode_unguarded(bytes: &[u8], hit_eof: &Cell<bool>) -> Result<Rgb8, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let reader = EofFlagReader { data: bytes, hit_eof };
    let dec = Decompress::new_reader(reader).map_err(io_reason)?;
    let (w, h) = dec.size();
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    let (width, height) = (u32::try_from(w).map_err(|_| "image too large")?, u32::try_from(h).map_err(|_| "image too large")?);
    let rgb: Vec<u8> = match dec.color_space() {
        ColorSpace::JCS_GRAYSCALE => {
            let mut started = dec.grayscale().map_err(io_reason)?;
            let luma: Vec<u8> = started.read_scanlines().map_err(io_reason)?;
            started.finish().map_err(io_reason)?;
            luma.iter().flat_map(|&v| [v, v, v]).collect()
        }
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => {
            let mut started = dec.to_colorspace(ColorSpace::JCS_CMYK).map_err(io_reason)?;
            let cmyk: Vec<[u8; 4]> = started.read_scanlines().map_err(io_reason)?;
            started.finish().map_err(io_reason)?;
            // Pillow reads every 4-component JPEG with raw mode "CMYK;I" (each byte inverted).
            cmyk.iter().flat_map(|p| cmyk_to_rgb([!p[0], !p[1], !p[2], !p[3]])).collect()
        }
        ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB => {
            let mut started = dec.rgb().map_err(io_reason)?;
            let rgb: Vec<u8> = started.read_scanlines().map_err(io_reason)?;
            started.finish().map_err(io_reason)?;
            rgb
        }
        other => return Err(format!("unsupported JPEG colour space {other:?} ({} components)", dec.components().len())),
    };
    // libjpeg pads a file that ends early with a fake EOI marker and only warns; Pillow instead stops with "image
    // file is truncated" whenever the decoder wants bytes past the end (which includes a missing final EOI marker,
    // as libjpeg reads ahead to the marker that ends the scan). Do the same.
    if hit_eof.get() {
        return Err("the JPEG data ends early (truncated file)".into());
    }
    if rgb.len() != w * h * 3 {
        return Err(format!("decoded {} bytes for a {w}x{h} image", rgb.len()));
    }
    Rgb8::from_raw(width, height, rgb).ok_or_else(|| "decoded buffer has the wrong size".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_formula_matches_pillow_corners() {
        // Pillow: CMYK (0,0,0,0) is white, K=255 is black, full cyan is (0,255,255).
        assert_eq!(cmyk_to_rgb([0, 0, 0, 0]), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb([0, 0, 0, 255]), [0, 0, 0]);
        assert_eq!(cmyk_to_rgb([255, 0, 0, 0]), [0, 255, 255]);
        assert_eq!(cmyk_to_rgb([128, 0, 0, 128]), [63, 127, 127]);
    }

    #[test]
    fn garbage_and_empty_input_are_errors_not_panics() {
        for bytes in [&b""[..], &b"\xff\xd8\xff"[..], &b"\xff\xd8\xff\xe0 not really a jpeg at all"[..], &[0u8, 1, 2, 3][..]] {
            assert!(decode_jpeg_rgb8(bytes).is_err(), "{bytes:?}");
        }
    }
}
