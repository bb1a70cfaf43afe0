//! Fixture writers for the data-format tests: tiny generated PNG/JPEG/TIFF images, CSV files and `.npz` archives
//! (stored or deflated members) in unique temporary folders. Each test file that uses them declares
//! `mod support; mod common_data;` (the temporary folders come from `tests/support`).
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

pub use crate::support::TempDir;

fn parent(path: &Path) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
}

/// A small RGB test pattern that depends on `seed`.
pub fn pattern(w: u32, h: u32, seed: u8) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 40) as u8 ^ seed, (y * 50) as u8, seed.wrapping_mul(7)]))
}

pub fn write_png(path: &Path, seed: u8) {
    parent(path);
    pattern(6, 5, seed).save_with_format(path, image::ImageFormat::Png).unwrap();
}

pub fn write_tiff(path: &Path, seed: u8) {
    parent(path);
    pattern(4, 3, seed).save_with_format(path, image::ImageFormat::Tiff).unwrap();
}

/// A baseline JPEG (libjpeg-turbo's encoder, as vendored by mozjpeg).
pub fn write_jpeg(path: &Path, seed: u8) {
    parent(path);
    let img = pattern(8, 8, seed);
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_size(8, 8);
    c.set_quality(90.0);
    let mut started = c.start_compress(Vec::new()).unwrap();
    started.write_scanlines(img.as_raw()).unwrap();
    let bytes = started.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub fn write_text(path: &Path, text: &str) {
    parent(path);
    std::fs::write(path, text).unwrap();
}

/// An `.npz` of `(name, npy bytes)` members (`name` without `.npy`), stored or deflated.
pub fn write_npz(path: &Path, members: &[(&str, Vec<u8>)], deflate: bool) {
    parent(path);
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        z.start_file(format!("{name}.npy"), opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

/// The `.npy` bytes of a `uint8` array.
pub fn npy_u8(shape: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len());
    fgssl::data::npz::write_npy("|u1", shape, data)
}

/// The `.npy` bytes of an `int64` array.
pub fn npy_i64(shape: &[usize], data: &[i64]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len());
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    fgssl::data::npz::write_npy("<i8", shape, &bytes)
}
