//! The decoded-image cache: every image of a split decoded once, fundus-cropped if asked, resized to `S x S` with
//! Pillow's antialiased bilinear filter ([`resize_bilinear_pil`], so the cached pixels are exactly what
//! `Image.open(p).convert("RGB").resize((S, S), BILINEAR)` gives), and stored as `u8` on disk.
//!
//! On disk, in the cache folder (the CLI passes `$FGSSL_CACHE` or `RUN_DIR/../.fgssl-cache`), two files per cache:
//!
//! * `{format}-{split}-{S}px-{key}.u8`: N x S x S x 3 bytes, image after image, HWC RGB, in the order of the
//!   indices given;
//! * `{format}-{split}-{S}px-{key}.json`: the index: format version, key, format, split, size, N and the sample ids.
//!
//! `key` is a 128-bit FNV-1a hash (hex) of a text naming the cache format version, the data set format, the split,
//! the size, the resampler, the preprocessing options (fundus crop), an optional caller-given identity, for array
//! sources the length and modification time of the file they came from ([`Dataset::root`], the `.npz`), and for
//! each sample in order its id and source with, for files, the byte length and modification time. Any change to the file list, a replaced file or another option makes a new cache; old ones
//! are left in place (delete the folder to reclaim the space).
//!
//! Building is atomic: the pixels go to `*.u8.<pid>.tmp` (pre-sized; rayon workers decode in parallel and each
//! writes its image at its offset), which is synced and renamed, and only then is the index written (atomically).
//! An index is what marks a cache complete; a failing image removes the temporary file and returns its error, which
//! names the file. A progress bar shows on stderr when it is a terminal.
//!
//! Reading uses positional reads (`pread`), so a cache is never held in memory: [`ImageCache::batch`] gathers a
//! batch into one contiguous caller buffer, reading its images in parallel (the OS page cache keeps hot caches in
//! RAM).

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde_json::{json, Value};

use super::fundus::{crop_fundus, FundusCrop};
use super::{Dataset, ImageSource, Sample};
use crate::error::{Error, Result};
use crate::imaging::resize_bilinear_pil;

/// Version of the on-disk layout and of the key text; bumping it invalidates every cache.
pub const CACHE_VERSION: u64 = 1;

/// Decoded RGB8 pixels `(width, height, pixels)`, row-major HWC, `width * height * 3` bytes: what
/// [`Dataset::load_rgb8`] returns, the usual pixel source (`|s| dataset.load_rgb8(s)`).
pub type Rgb8 = (u32, u32, Vec<u8>);

/// What a cache holds, besides the samples.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheOptions {
    /// Split name (`train`, `val`, `test`, `ssl`, ...): part of the file name and the key.
    pub split: String,
    /// Side of the cached square images.
    pub size: usize,
    /// Crop to the retina before resizing (APTOS).
    pub fundus: Option<FundusCrop>,
    /// Anything else that changes the pixels and is not in the key already; part of the key. (For array sources
    /// the key already holds the length and mtime of [`Dataset::root`], the `.npz` they were read from.)
    pub source_identity: String,
    /// Show a progress bar while building (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Whether an image smaller than `size` (after the fundus crop) may be enlarged. When `false`, such an image
    /// is an error naming the file and both sizes: for pipelines without random crops, where enlarging would
    /// silently blur small images.
    pub allow_upscale: bool,
}

impl CacheOptions {
    pub fn new(split: &str, size: usize) -> Self {
        CacheOptions { split: split.to_string(), size, fundus: None, source_identity: String::new(), progress: true, allow_upscale: true }
    }
}

/// Fundus crop (if asked) then Pillow-exact bilinear resize to `size x size` (skipped when already that size).
/// Returns the `size * size * 3` bytes.
///
/// # Panics
/// If `rgb` does not hold `w * h * 3` bytes or a dimension is zero.
pub fn preprocess(w: usize, h: usize, rgb: Vec<u8>, size: usize, fundus: Option<&FundusCrop>) -> Vec<u8> {
    let (w, h, rgb) = crop(w, h, rgb, fundus);
    resize_square(w, h, rgb, size)
}

/// The fundus crop, when asked for.
fn crop(w: usize, h: usize, rgb: Vec<u8>, fundus: Option<&FundusCrop>) -> (usize, usize, Vec<u8>) {
    match fundus {
        Some(f) => crop_fundus(w, h, rgb, f),
        None => (w, h, rgb),
    }
}

/// Pillow-exact bilinear resize to `size x size`, skipped when the image already has that size.
fn resize_square(w: usize, h: usize, rgb: Vec<u8>, size: usize) -> Vec<u8> {
    if w == size && h == size {
        return rgb;
    }
    let img = image::RgbImage::from_raw(w as u32, h as u32, rgb).expect("preprocess: w * h * 3 bytes");
    resize_bilinear_pil(&img, size as u32, size as u32).into_raw()
}

fn source_path(sample: &Sample) -> PathBuf {
    match &sample.source {
        ImageSource::File(p) => p.clone(),
        ImageSource::Array { key, index } => PathBuf::from(format!("{key}[{index}] (sample '{}')", sample.id)),
    }
}

fn source_text(sample: &Sample) -> String {
    match &sample.source {
        ImageSource::File(p) => format!("file:{}", p.display()),
        ImageSource::Array { key, index } => format!("array:{key}[{index}]"),
    }
}

/// 128-bit FNV-1a.
fn fnv1a128(bytes: &[u8]) -> u128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    bytes.iter().fold(0x6C62_272E_07BB_0142_62B8_2175_6295_C58D_u128, |h, &b| (h ^ b as u128).wrapping_mul(PRIME))
}

/// The cache key of `indices` of `dataset` under `opts` (32 hex digits; see the module docs). Reads each file's
/// metadata: a missing file is an error naming it.
pub fn cache_key(dataset: &Dataset, indices: &[usize], opts: &CacheOptions) -> Result<String> {
    let fundus = opts.fundus.as_ref().map(FundusCrop::describe).unwrap_or_else(|| "none".into());
    let mut text = format!(
        "fgssl-decode-cache v{CACHE_VERSION}\nformat={}\nsplit={}\nsize={}\nresize=pil13-bilinear-antialias\nfundus={fundus}\n\
         upscale={}\nsource_identity={}\nn={}\n",
        dataset.format,
        opts.split,
        opts.size,
        opts.allow_upscale,
        opts.source_identity,
        indices.len()
    );
    if indices.iter().any(|&i| matches!(dataset.samples[i].source, ImageSource::Array { .. })) {
        // Array sources live in the file the data set was read from (the MedMNIST .npz): key on its identity.
        text.push_str(&format!("array_root={}\t{}\n", dataset.root.display(), file_identity(&dataset.root).unwrap_or_default()));
    }
    for &i in indices {
        let s = &dataset.samples[i];
        text.push_str(&s.id);
        text.push('\t');
        text.push_str(&source_text(s));
        if let ImageSource::File(p) = &s.source {
            text.push('\t');
            text.push_str(&file_identity(p).map_err(|e| Error::io(p, e))?);
        }
        text.push('\n');
    }
    Ok(format!("{:032x}", fnv1a128(text.as_bytes())))
}

/// `"{length}\t{mtime in ns}"` of a file.
fn file_identity(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Ok(format!("{}\t{mtime}", meta.len()))
}

fn file_stem(format: &str, opts: &CacheOptions, key: &str) -> String {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect::<String>();
    format!("{}-{}-{}px-{key}", clean(format), clean(&opts.split), opts.size)
}

/// An open decode cache: N images of `size x size x 3` bytes.
#[derive(Debug)]
pub struct ImageCache {
    file: File,
    path: PathBuf,
    ids: Vec<String>,
    size: usize,
    key: String,
    built: bool,
}

impl ImageCache {
    /// Opens the cache of `indices` of `dataset` under `opts` in `cache_dir`, building it first (decoding every
    /// image with `load`, in parallel) when there is none for this key. A complete cache is reused without calling
    /// `load`.
    pub fn open_or_build<F>(cache_dir: &Path, dataset: &Dataset, indices: &[usize], opts: &CacheOptions, load: F) -> Result<ImageCache>
    where
        F: Fn(&Sample) -> Result<Rgb8> + Sync,
    {
        if opts.size == 0 || opts.size > 1 << 16 {
            return Err(Error::Invalid(format!("cache image size must be between 1 and 65536, got {}", opts.size)));
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= dataset.samples.len()) {
            return Err(Error::Invalid(format!("cache: sample index {bad} out of range for {} samples", dataset.samples.len())));
        }
        let key = cache_key(dataset, indices, opts)?;
        let stem = file_stem(&dataset.format, opts, &key);
        let bin = cache_dir.join(format!("{stem}.u8"));
        let index = cache_dir.join(format!("{stem}.json"));
        let ids: Vec<String> = indices.iter().map(|&i| dataset.samples[i].id.clone()).collect();
        if let Some(cache) = Self::open_existing(&bin, &index, &key, &ids, opts.size)? {
            return Ok(cache);
        }
        std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
        build(&bin, dataset, indices, opts, &load)?;
        let v = json!({
            "version": CACHE_VERSION,
            "key": key,
            "format": dataset.format,
            "split": opts.split,
            "size": opts.size,
            "layout": "N x S x S x 3 u8, HWC RGB",
            "fundus": opts.fundus.as_ref().map(FundusCrop::describe),
            "n": ids.len(),
            "ids": ids,
        });
        let text = serde_json::to_string(&v).map_err(|e| Error::Invalid(format!("{}: {e}", index.display())))?;
        crate::weights::write_atomic(&index, text.as_bytes())?;
        let file = File::open(&bin).map_err(|e| Error::io(&bin, e))?;
        Ok(ImageCache { file, path: bin, ids, size: opts.size, key, built: true })
    }

    /// The cache at `bin`/`index` if it is complete and matches; `None` when it must be (re)built.
    fn open_existing(bin: &Path, index: &Path, key: &str, ids: &[String], size: usize) -> Result<Option<ImageCache>> {
        let Ok(text) = std::fs::read_to_string(index) else { return Ok(None) };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { return Ok(None) };
        let same_ids = v["ids"].as_array().is_some_and(|a| a.len() == ids.len() && a.iter().zip(ids).all(|(x, id)| x.as_str() == Some(id)));
        if v["version"].as_u64() != Some(CACHE_VERSION) || v["key"].as_str() != Some(key) || v["size"].as_u64() != Some(size as u64) || !same_ids {
            return Ok(None);
        }
        let Ok(file) = File::open(bin) else { return Ok(None) };
        let len = file.metadata().map_err(|e| Error::io(bin, e))?.len();
        if len != (ids.len() * size * size * 3) as u64 {
            return Ok(None);
        }
        Ok(Some(ImageCache { file, path: bin.to_path_buf(), ids: ids.to_vec(), size, key: key.to_string(), built: false }))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Side of the square images.
    pub fn size(&self) -> usize {
        self.size
    }
    /// Bytes per image: `size * size * 3`.
    pub fn image_bytes(&self) -> usize {
        self.size * self.size * 3
    }
    /// Sample ids, in cache order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
    /// The pixel file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn key(&self) -> &str {
        &self.key
    }
    /// Whether this open decoded the images (false: an existing cache was reused).
    pub fn was_built(&self) -> bool {
        self.built
    }

    fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.len() {
            return Err(Error::Invalid(format!("{}: image index {i} out of range for {} images", self.path.display(), self.len())));
        }
        Ok(())
    }

    /// Reads image `i` (`size * size * 3` bytes, HWC) into `out`.
    pub fn read(&self, i: usize, out: &mut [u8]) -> Result<()> {
        self.check_index(i)?;
        let bytes = self.image_bytes();
        if out.len() != bytes {
            return Err(Error::Invalid(format!("cache read: buffer of {} bytes, an image is {bytes}", out.len())));
        }
        read_exact_at(&self.file, out, (i * bytes) as u64).map_err(|e| Error::io(&self.path, e))
    }

    /// Image `i` as a new buffer.
    pub fn image(&self, i: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.image_bytes()];
        self.read(i, &mut out)?;
        Ok(out)
    }

    /// Gathers images `indices` into `out` (`indices.len() * size * size * 3` bytes, N x S x S x 3), reading them in
    /// parallel.
    pub fn batch(&self, indices: &[usize], out: &mut [u8]) -> Result<()> {
        let bytes = self.image_bytes();
        if out.len() != indices.len() * bytes {
            return Err(Error::Invalid(format!("cache batch: buffer of {} bytes for {} images of {bytes} bytes", out.len(), indices.len())));
        }
        for &i in indices {
            self.check_index(i)?;
        }
        out.par_chunks_mut(bytes)
            .zip(indices.par_iter())
            .try_for_each(|(dst, &i)| read_exact_at(&self.file, dst, (i * bytes) as u64))
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Decodes, preprocesses and writes every image to a temporary file, then renames it to `bin`. On any error the
/// temporary file is removed.
fn build<F>(bin: &Path, dataset: &Dataset, indices: &[usize], opts: &CacheOptions, load: &F) -> Result<()>
where
    F: Fn(&Sample) -> Result<Rgb8> + Sync,
{
    let bytes = opts.size * opts.size * 3;
    let mut tmp = bin.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| -> Result<()> {
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.set_len((indices.len() * bytes) as u64).map_err(|e| Error::io(&tmp, e))?;
        let bar = if opts.progress && std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(indices.len() as u64), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("decoding {} {} at {}px", dataset.format, opts.split, opts.size));
        indices.par_iter().enumerate().try_for_each(|(j, &i)| -> Result<()> {
            let sample = &dataset.samples[i];
            let (w, h, rgb) = load(sample).map_err(|e| match e {
                e @ (Error::Image { .. } | Error::Io { .. }) => e,
                e => Error::Image { path: source_path(sample), reason: e.to_string() },
            })?;
            let (w, h) = (w as usize, h as usize);
            if w == 0 || h == 0 || rgb.len() != w * h * 3 {
                return Err(Error::Image {
                    path: source_path(sample),
                    reason: format!("decoder returned {} bytes for a {w}x{h} RGB image", rgb.len()),
                });
            }
            let (w, h, rgb) = crop(w, h, rgb, opts.fundus.as_ref());
            if !opts.allow_upscale && (w < opts.size || h < opts.size) {
                return Err(Error::Image {
                    path: source_path(sample),
                    reason: format!(
                        "{w}x{h}{after} is smaller than the training size {size}x{size} and upscaling is disabled",
                        after = if opts.fundus.is_some() { " after the fundus crop" } else { "" },
                        size = opts.size
                    ),
                });
            }
            let px = resize_square(w, h, rgb, opts.size);
            write_all_at(&file, &px, (j * bytes) as u64).map_err(|e| Error::io(&tmp, e))?;
            bar.inc(1);
            Ok(())
        })?;
        bar.finish_and_clear();
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, bin).map_err(|e| Error::io(bin, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}
