//! Pillow parity of image decoding and resizing (src/imaging.rs): the decoded RGB8 pixels and the bilinear resizes
//! must equal Pillow's exactly, and the normalised tensors torchvision's, on the fixtures written by
//! `scripts/make_image_fixtures.py` into tests/fixtures/images/ (schema in that script's docstring).
//!
//! Set `FGSSL_PIL_STRESS_DIR` to a directory made by `make_image_fixtures.py --stress DIR` to also check hundreds
//! of random images, sizes and formats.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fgssl::error::Error;
use fgssl::imaging::{load_rgb8, load_rgb_normalized, resize_bilinear_pil};
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join("images")
}

/// One reference tensor: shape and raw little-endian bytes, with its dtype.
struct Ref {
    shape: Vec<usize>,
    dtype: Dtype,
    data: Vec<u8>,
}

fn load_refs(dir: &Path) -> BTreeMap<String, Ref> {
    let path = dir.join("pil_reference.safetensors");
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e} (regenerate with scripts/make_image_fixtures.py)", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: bad safetensors file: {e}", path.display()));
    st.tensors().into_iter().map(|(name, v)| (name, Ref { shape: v.shape().to_vec(), dtype: v.dtype(), data: v.data().to_vec() })).collect()
}

/// `"NAME/what"` -> `("NAME", "what")`.
fn split_key(key: &str) -> (&str, &str) {
    key.rsplit_once('/').unwrap_or_else(|| panic!("bad reference key {key}"))
}

/// How two RGB8 buffers differ: `None` when equal, else a one-line summary.
fn diff_u8(got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    if got.len() != want.len() {
        return Some(format!("length {} != {}", got.len(), want.len()));
    }
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    let worst = bad.iter().map(|&i| (got[i] as i32 - want[i] as i32).abs()).max().unwrap_or(0);
    Some(format!("{} of {} bytes differ (max |diff| {worst}, first at byte {}: {} vs {})", bad.len(), got.len(), bad[0], got[bad[0]], want[bad[0]]))
}

/// Checks every reference in `dir`; returns the failures (one line each) and the number of checks.
fn check_dir(dir: &Path) -> (Vec<String>, usize) {
    let refs = load_refs(dir);
    let mut failures = Vec::new();
    let mut checks = 0;
    let mut decoded = BTreeMap::new();
    for (key, r) in &refs {
        let (name, what) = split_key(key);
        if what != "rgb" {
            continue;
        }
        assert_eq!((r.dtype, r.shape.len(), r.shape[2]), (Dtype::U8, 3, 3), "{key}: expected uint8 [H, W, 3]");
        checks += 1;
        match load_rgb8(&dir.join(name)) {
            Ok(img) => {
                let dims = [img.height() as usize, img.width() as usize, 3];
                if dims[..] != r.shape[..] {
                    failures.push(format!("{name}: decoded {dims:?}, Pillow {:?}", r.shape));
                } else if let Some(d) = diff_u8(img.as_raw(), &r.data) {
                    failures.push(format!("{name}: decode: {d}"));
                }
            }
            Err(e) => failures.push(format!("{name}: decode failed: {e}")),
        }
        decoded.insert(name.to_string(), image::RgbImage::from_raw(r.shape[1] as u32, r.shape[0] as u32, r.data.clone()).unwrap());
    }
    for (key, r) in &refs {
        let (name, what) = split_key(key);
        if let Some(size) = what.strip_prefix("resize_") {
            let (w, h) = size.split_once('x').unwrap_or_else(|| panic!("bad key {key}"));
            let (w, h): (u32, u32) = (w.parse().unwrap(), h.parse().unwrap());
            assert_eq!((r.dtype, &r.shape[..]), (Dtype::U8, &[h as usize, w as usize, 3][..]), "{key}");
            // Resize Pillow's own decode, so a decode mismatch does not hide or fake a resize mismatch.
            let src = &decoded[name];
            checks += 1;
            let got = resize_bilinear_pil(src, w, h);
            if let Some(d) = diff_u8(got.as_raw(), &r.data) {
                failures.push(format!("{name}: resize {}x{} -> {w}x{h}: {d}", src.width(), src.height()));
            }
        } else if let Some(size) = what.strip_prefix("normalized_") {
            let size: usize = size.parse().unwrap();
            assert_eq!((r.dtype, &r.shape[..]), (Dtype::F32, &[3, size, size][..]), "{key}");
            let want: Vec<f32> = r.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            checks += 1;
            match load_rgb_normalized(&dir.join(name), size) {
                Ok(got) => {
                    let bad = got.iter().zip(&want).filter(|(g, w)| g.to_bits() != w.to_bits()).count();
                    if got.len() != want.len() || bad > 0 {
                        failures.push(format!("{name}: normalized_{size}: {bad} of {} values differ from torchvision", want.len()));
                    }
                }
                Err(e) => failures.push(format!("{name}: normalized_{size}: {e}")),
            }
        }
    }
    (failures, checks)
}

#[test]
fn decode_resize_and_normalize_match_pillow_exactly() {
    let (failures, checks) = check_dir(&images_dir());
    assert!(checks >= 40, "only {checks} checks: is tests/fixtures/images/pil_reference.safetensors complete?");
    assert!(failures.is_empty(), "{} of {checks} Pillow parity checks failed:\n{}", failures.len(), failures.join("\n"));
}

/// Random images from `make_image_fixtures.py --stress DIR`, when `FGSSL_PIL_STRESS_DIR=DIR` is set.
#[test]
fn stress_dir_matches_pillow_exactly_when_given() {
    let Some(dir) = std::env::var_os("FGSSL_PIL_STRESS_DIR") else {
        return;
    };
    let (failures, checks) = check_dir(Path::new(&dir));
    eprintln!("stress: {checks} checks, {} failures", failures.len());
    assert!(failures.is_empty(), "{} of {checks} Pillow parity checks failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn resize_to_the_same_size_is_a_copy() {
    let img = load_rgb8(&images_dir().join("ycc420.jpg")).unwrap();
    assert_eq!(resize_bilinear_pil(&img, img.width(), img.height()), img);
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fgssl-pil-parity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Truncated or garbage JPEGs are `Error::Image` naming the file (never a panic or an abort), like Pillow's
/// "image file is truncated"; trailing bytes after the EOI marker are ignored, as in Pillow.
#[test]
fn truncated_or_garbage_jpeg_is_a_clean_error() {
    let dir = tmpdir("truncated");
    for src in ["ycc420.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg"] {
        let data = std::fs::read(images_dir().join(src)).unwrap();
        let full = load_rgb8(&images_dir().join(src)).unwrap();
        let n = data.len();
        let cuts = [("no_eoi", n - 2), ("minus1", n - 1), ("minus10", n - 10), ("half", n / 2), ("header", 150), ("soi", 3), ("empty", 0)];
        for (what, len) in cuts {
            let path = dir.join(format!("{what}-{src}"));
            std::fs::write(&path, &data[..len]).unwrap();
            let err = load_rgb8(&path).expect_err(&format!("{src} cut to {len} of {n} bytes decoded"));
            assert!(matches!(err, Error::Image { .. }), "{src} {what}: {err:?}");
            assert!(err.to_string().contains(&format!("{what}-{src}")), "{err}");
            assert!(load_rgb_normalized(&path, 8).is_err());
        }
        let path = dir.join(format!("trailing-{src}"));
        std::fs::write(&path, [&data[..], b"trailing junk \xff\xd8\xff"].concat()).unwrap();
        assert_eq!(load_rgb8(&path).unwrap(), full, "{src} with trailing bytes");
    }
    // Not a JPEG at all, but named like one; and JPEG magic followed by noise.
    let path = dir.join("noise.jpg");
    std::fs::write(&path, (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    assert!(matches!(load_rgb8(&path), Err(Error::Image { .. })));
    let path = dir.join("magic-noise.jpg");
    let mut bytes = b"\xff\xd8\xff\xe0".to_vec();
    bytes.extend((0..5000u32).map(|i| (i.wrapping_mul(2246822519) >> 11) as u8));
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(load_rgb8(&path), Err(Error::Image { .. })));
    std::fs::remove_dir_all(&dir).ok();
}
