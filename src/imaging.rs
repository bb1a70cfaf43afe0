//! Image folders and image decoding into normalised CHW f32 tensors.
//!
//! (Named `imaging` because a crate-level `image` module would shadow the `image` crate in `use image::...` paths.)
//!
//! Preprocessing reproduces, bit for bit, what torchvision does to a file opened with Pillow:
//! `Image.open(p).convert("RGB")` -> `Resize((size, size))` -> `ToTensor()` -> `Normalize(IMAGENET_MEAN,
//! IMAGENET_STD)`:
//!
//! * decoding: JPEG through libjpeg-turbo's decoder with Pillow's settings and colour conversions (see
//!   [`jpeg`](self::jpeg) for the details); PNG and BMP through the `image` crate, whose RGB8 output equals
//!   Pillow's `convert("RGB")` for 8-bit files (alpha dropped, palettes expanded, gray replicated), plus Pillow's
//!   own rules for 16-bit PNGs and its BMP palette-offset quirk;
//! * resizing: a port of Pillow 13's antialiased BILINEAR resampler ([`resize_bilinear_pil`]) on the RGB8 pixels,
//!   to exactly `size x size` (no aspect-preserving crop), skipped when the image already has that size (Pillow
//!   12.1 and earlier can differ by one step on some downscales, see [`PassOrder`]);
//! * normalising: each value becomes `(v / 255 - mean) / std` computed in f32 with torchvision's operation order.
//!
//! `tests/pil_parity.rs` checks the decoded and resized RGB8 pixels against Pillow's on committed fixtures.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod jpeg;
mod resize;

pub use resize::{resize_bilinear_pil_channels, PassOrder};

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// File extensions (compared case-insensitively) that count as images.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// `path` relative to `root` with `/` separators (`cub/001.Black_footed_Albatross/img.jpg`); the sort key of
/// [`list_images`] and the name the CLI writes into CSV files.
pub fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Every image under `dir`, recursively, sorted by [`relative_name`]. Extensions png/jpg/jpeg/bmp/tif/tiff match in any
/// case. Hidden entries (names starting with `.`, such as macOS `._x.jpg` resource forks) are skipped. Symlinked
/// files and directories are followed, each directory at most once. A missing directory, or one without images, is
/// an error naming it.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!("{}: not a directory", dir.display())));
    }
    let mut found = Vec::new();
    let mut visited = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(canon) = std::fs::canonicalize(&d) {
            if !visited.insert(canon) {
                continue;
            }
        }
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            let (is_dir, is_file) = if ft.is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(m) => (m.is_dir(), m.is_file()),
                    Err(_) => (false, false), // dangling link
                }
            } else {
                (ft.is_dir(), ft.is_file())
            };
            if is_dir {
                stack.push(path);
            } else if is_file && is_image(&path) {
                found.push(path);
            }
        }
    }
    if found.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no images found (looked recursively for .png, .jpg, .jpeg, .bmp, .tif, .tiff files)",
            dir.display()
        )));
    }
    let mut keyed: Vec<(String, PathBuf)> = found.into_iter().map(|p| (relative_name(dir, &p), p)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, p)| p).collect())
}

/// Decodes an image file to RGB8 the way `PIL.Image.open(path).convert("RGB")` does (format detected from the
/// content, falling back to the extension). JPEG goes through libjpeg-turbo, PNG, BMP and TIFF through the `image`
/// crate.
pub fn load_rgb8(path: &Path) -> Result<image::RgbImage> {
    let img_err = |reason: String| Error::Image { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let format = image::guess_format(&bytes).ok().or_else(|| image::ImageFormat::from_path(path).ok());
    let img = match format {
        Some(image::ImageFormat::Jpeg) => jpeg::decode_jpeg_rgb8(&bytes).map_err(img_err)?,
        Some(image::ImageFormat::Png) => {
            let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).map_err(|e| img_err(e.to_string()))?;
            png_rgb8_like_pillow(&bytes, img)
        }
        Some(image::ImageFormat::Bmp) => {
            let mut bytes = bytes;
            bmp_palette_offset_like_pillow(&mut bytes);
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Bmp).map_err(|e| img_err(e.to_string()))?.to_rgb8()
        }
        Some(format) => image::load_from_memory_with_format(&bytes, format).map_err(|e| img_err(e.to_string()))?.to_rgb8(),
        None => return Err(img_err("unrecognised image format (expected PNG, JPEG, BMP or TIFF)".into())),
    };
    if img.width() == 0 || img.height() == 0 {
        return Err(img_err("image has no pixels".into()));
    }
    Ok(img)
}

/// `convert("RGB")` of a decoded PNG the way Pillow does it. 8-bit (and lower) PNGs are what the `image` crate
/// gives (alpha dropped, palette expanded, gray replicated). 16-bit ones differ: Pillow keeps only the high byte
/// of 16-bit RGB, RGBA and gray+alpha samples, and opens 16-bit grayscale as mode `I;16`, whose conversion to RGB
/// clamps each value to 255 (it does not scale), whereas the `image` crate rounds `v / 257`.
fn png_rgb8_like_pillow(bytes: &[u8], img: image::DynamicImage) -> image::RgbImage {
    use image::DynamicImage as D;
    // IHDR colour type (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA): the decoder may have expanded a tRNS
    // chunk of a 16-bit gray PNG into an alpha channel, but Pillow still treats that file as `I;16`.
    let color_type = bytes.get(25).copied();
    let (w, h) = (img.width(), img.height());
    let gray = |f: &dyn Fn(u16) -> u8, luma: Vec<u16>, step: usize| {
        let px: Vec<u8> = luma.iter().step_by(step).flat_map(|&v| [f(v); 3]).collect();
        image::RgbImage::from_raw(w, h, px).expect("gray image size")
    };
    let clamp = |v: u16| v.min(255) as u8;
    let high = |v: u16| (v >> 8) as u8;
    match img {
        D::ImageLuma16(b) => gray(&clamp, b.into_raw(), 1),
        D::ImageLumaA16(b) => gray(if color_type == Some(0) { &clamp } else { &high }, b.into_raw(), 2),
        D::ImageRgb16(b) => image::RgbImage::from_raw(w, h, b.into_raw().iter().map(|&v| high(v)).collect()).expect("rgb16 size"),
        D::ImageRgba16(b) => {
            let px = b.into_raw().chunks_exact(4).flat_map(|p| [high(p[0]), high(p[1]), high(p[2])]).collect();
            image::RgbImage::from_raw(w, h, px).expect("rgba16 size")
        }
        other => other.to_rgb8(),
    }
}

/// Pillow's BMP quirk: a palette image whose pixel-data offset points right after the info header (i.e. at the
/// palette) is read as if the offset skipped the palette. Rewrites the offset field the same way so the `image`
/// crate reads the pixels Pillow reads.
fn bmp_palette_offset_like_pillow(bytes: &mut [u8]) {
    let u16_at = |b: &[u8], i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as u64);
    let u32_at = |b: &[u8], i: usize| b.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64);
    let (Some(offset), Some(header_size)) = (u32_at(bytes, 10), u32_at(bytes, 14)) else { return };
    let (bits, colors, padding) = match header_size {
        12 => (u16_at(bytes, 24), Some(0), 3),
        40 | 52 | 56 | 64 | 108 | 124 => (u16_at(bytes, 28), u32_at(bytes, 46), 4),
        _ => return,
    };
    let (Some(bits), Some(colors)) = (bits, colors) else { return };
    if offset == 14 + header_size && bits <= 8 {
        let colors = if colors == 0 { 1u64 << bits } else { colors };
        if let Ok(fixed) = u32::try_from(offset + padding * colors) {
            bytes[10..14].copy_from_slice(&fixed.to_le_bytes());
        }
    }
}

/// Resizes RGB8 pixels to `new_w x new_h` exactly like Pillow 13's `img.resize((new_w, new_h), Image.BILINEAR)`
/// (the antialiased bilinear filter torchvision's `Resize` uses on PIL images). An unchanged size returns a copy.
/// (Pillow 12.1 and earlier order the two passes differently in some downscales: see [`PassOrder`].)
///
/// # Panics
/// If a dimension is zero.
pub fn resize_bilinear_pil(img: &image::RgbImage, new_w: u32, new_h: u32) -> image::RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let out = resize_bilinear_pil_channels(img.as_raw(), w, h, 3, new_w as usize, new_h as usize, PassOrder::Pillow13);
    image::RgbImage::from_raw(new_w, new_h, out).expect("resize output has new_w * new_h * 3 bytes")
}

/// An RGB8 image as a normalised `[3, size, size]` CHW f32 tensor (resized with [`resize_bilinear_pil`] if it is
/// not `size x size` already).
pub fn normalize_rgb8(img: &image::RgbImage, size: usize) -> Vec<f32> {
    let resized;
    let img = if img.width() as usize != size || img.height() as usize != size {
        resized = resize_bilinear_pil(img, size as u32, size as u32);
        &resized
    } else {
        img
    };
    let plane = size * size;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            // ToTensor: f32 division by 255; Normalize: (x - mean) / std, both in f32.
            out[c * plane + i] = (px.0[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}

/// Decodes `path` and returns it as a normalised `[3, size, size]` CHW f32 tensor (see the module docs).
pub fn load_rgb_normalized(path: &Path, size: usize) -> Result<Vec<f32>> {
    if size == 0 || size > u32::MAX as usize {
        return Err(Error::Invalid(format!("image size must be between 1 and {}, got {size}", u32::MAX)));
    }
    Ok(normalize_rgb8(&load_rgb8(path)?, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fgssl-imaging-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lists_recursively_sorted_case_insensitive() {
        let dir = tmpdir("list");
        std::fs::create_dir_all(dir.join("b/sub")).unwrap();
        std::fs::create_dir_all(dir.join("a")).unwrap();
        let img = image::RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3]));
        for p in ["b/sub/z.PNG", "a/y.png", "b/x.bmp", "top.JPeG"] {
            img.save_with_format(dir.join(p), image::ImageFormat::Png).unwrap();
        }
        std::fs::write(dir.join("a/notes.txt"), "x").unwrap();
        std::fs::write(dir.join("a/._y.png"), "junk").unwrap();
        let got: Vec<String> = list_images(&dir).unwrap().iter().map(|p| relative_name(&dir, p)).collect();
        assert_eq!(got, ["a/y.png", "b/sub/z.PNG", "b/x.bmp", "top.JPeG"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn empty_or_missing_dir_is_an_error_naming_it() {
        let dir = tmpdir("empty");
        std::fs::write(dir.join("readme.txt"), "x").unwrap();
        let err = list_images(&dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()) && err.contains("no images"), "{err}");
        let missing = dir.join("does-not-exist");
        let err = list_images(&missing).unwrap_err().to_string();
        assert!(err.contains("does-not-exist"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn normalizes_like_torchvision() {
        let dir = tmpdir("norm");
        let mut img = image::RgbImage::new(4, 4);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 60) as u8, (y * 70) as u8, 255]);
        }
        let path = dir.join("i.png");
        img.save(&path).unwrap();
        let t = load_rgb_normalized(&path, 4).unwrap();
        assert_eq!(t.len(), 3 * 16);
        // pixel (x=2, y=1): channel planes are CHW.
        let i = 4 + 2;
        assert_eq!(t[i], (120.0f32 / 255.0 - 0.485) / 0.229);
        assert_eq!(t[16 + i], (70.0f32 / 255.0 - 0.456) / 0.224);
        assert_eq!(t[32 + i], (1.0f32 - 0.406) / 0.225);
        // Resized: right shape, and a constant image stays constant.
        let flat = dir.join("flat.png");
        image::RgbImage::from_pixel(37, 23, image::Rgb([10, 20, 30])).save(&flat).unwrap();
        let t = load_rgb_normalized(&flat, 8).unwrap();
        assert_eq!(t.len(), 3 * 64);
        assert!(t[..64].iter().all(|&v| v == (10.0f32 / 255.0 - 0.485) / 0.229));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn corrupt_image_names_the_file() {
        let dir = tmpdir("corrupt");
        let path = dir.join("broken.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\n garbage that is not a png").unwrap();
        let err = load_rgb_normalized(&path, 8).unwrap_err();
        assert!(matches!(err, Error::Image { .. }), "{err:?}");
        assert!(err.to_string().contains("broken.png"), "{err}");
        let path = dir.join("random.jpg");
        std::fs::write(&path, [0u8, 1, 2, 3, 4, 5, 6, 7]).unwrap();
        assert!(load_rgb_normalized(&path, 8).unwrap_err().to_string().contains("random.jpg"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
