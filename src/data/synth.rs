//! The embedded default data set: synthetic fine-grained "lesions" (`fgssl synth`).
//!
//! Every image is a brown lesion on skin. Everything global is nuisance, drawn independently of the class: skin
//! colour, illumination, the lesion's outline, size, position and base colour, global brightness and contrast,
//! hair-like strokes, noise (see [`render`] for the list). The classes differ only in how pigment is arranged
//! inside the lesion at a scale of a few pixels ([`Texture`]: pigment network, dots and globules, streaks,
//! structureless, parallel ridges, granularity), and every class draws its pigment values from the same
//! distribution, so a colour histogram cannot tell them apart but a model that sees local structure can.
//! `examples/synth_baselines.rs` measures both (numbers in docs/RESULTS.md).
//!
//! Generation is deterministic: image `i` of class `c` depends only on `(seed, c, i, size)`, so the files are
//! byte-identical across runs and thread counts.

mod baseline;
mod render;

use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;

pub use baseline::{accuracy, colour_histogram, histogram_nn_accuracy, nearest_neighbour, stratified_split, HistDistance};
pub use render::{image_keys, pigment_quantile, render, render_keyed, Texture};

use super::{Dataset, ImageSource, Sample};
use crate::error::{Error, Result};

/// At most this many classes (one per [`Texture`]).
pub const MAX_CLASSES: usize = Texture::ALL.len();
/// Smallest and largest image side.
pub const MIN_SIZE: usize = 16;
pub const MAX_SIZE: usize = 1024;
/// Name of the provenance file written next to the class folders.
pub const MANIFEST: &str = "synth.json";

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthConfig {
    /// Number of classes, 2..=[`MAX_CLASSES`]; class `c` is [`Texture::ALL`]`[c]`.
    pub classes: usize,
    /// Images per class.
    pub per_class: usize,
    /// Image side in pixels (textures are designed at 64 and scale with the size).
    pub size: usize,
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { classes: 4, per_class: 100, size: 64, seed: 0 }
    }
}

impl SynthConfig {
    /// Checks every field; the message names the option and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_CLASSES).contains(&self.classes) {
            let names: Vec<&str> = Texture::ALL.iter().map(|t| t.name()).collect();
            return Err(Error::Invalid(format!(
                "--classes {}: the synthetic data set has 2 to {MAX_CLASSES} classes ({})",
                self.classes,
                names.join(", ")
            )));
        }
        if self.per_class == 0 {
            return Err(Error::Invalid("--per-class 0: need at least one image per class".into()));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(Error::Invalid(format!("--size {}: must be between {MIN_SIZE} and {MAX_SIZE} pixels", self.size)));
        }
        Ok(())
    }

    /// The class folder names, in class order.
    pub fn class_names(&self) -> Vec<String> {
        Texture::ALL[..self.classes.min(MAX_CLASSES)].iter().map(|t| t.name().to_string()).collect()
    }

    /// File name of image `index` (zero-padded so names sort in index order).
    pub fn file_name(&self, index: usize) -> String {
        let width = self.per_class.saturating_sub(1).to_string().len().max(4);
        format!("{index:0width$}.png")
    }

    /// Every (class, index) pair in data-set order: class-major.
    fn items(&self) -> Vec<(usize, usize)> {
        (0..self.classes).flat_map(|c| (0..self.per_class).map(move |i| (c, i))).collect()
    }
}

/// Renders the whole data set in memory, in parallel: (images, labels), class-major.
pub fn generate_images(cfg: &SynthConfig) -> Result<(Vec<RgbImage>, Vec<usize>)> {
    cfg.validate()?;
    let items = cfg.items();
    let images = items.par_iter().map(|&(c, i)| render(cfg.seed, c, i, cfg.size)).collect();
    Ok((images, items.into_iter().map(|(c, _)| c).collect()))
}

/// PNG bytes of an RGB image (deterministic for given pixels).
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::Invalid(format!("PNG encoding failed: {e}")))?;
    Ok(bytes)
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.next().is_none())
}

/// The manifest recording how a folder was generated.
fn manifest(cfg: &SynthConfig) -> String {
    let v = serde_json::json!({
        "generator": "fgssl synth",
        "version": env!("CARGO_PKG_VERSION"),
        "classes": cfg.class_names(),
        "per_class": cfg.per_class,
        "size": cfg.size,
        "seed": cfg.seed,
    });
    serde_json::to_string_pretty(&v).expect("a JSON value serialises") + "\n"
}

/// Writes the data set as an ImageFolder: `out/<class name>/<index>.png` plus [`MANIFEST`].
///
/// Everything is written into a sibling folder `out.tmp-<pid>` first and renamed to `out` at the end, so `out`
/// never holds a partial data set. An existing `out` must be an empty folder unless `force` is set, in which case
/// it is removed (after the new data set has been written completely). Returns the written data set.
pub fn write_image_folder(out: &Path, cfg: &SynthConfig, force: bool) -> Result<Dataset> {
    cfg.validate()?;
    let exists = match std::fs::symlink_metadata(out) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => return Err(Error::Invalid(format!("{}: exists and is not a folder", out.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(out, e)),
    };
    if exists && !force && !is_empty_dir(out)? {
        return Err(Error::Invalid(format!("{}: folder exists and is not empty (pass --force to replace it)", out.display())));
    }
    let name = out.file_name().ok_or_else(|| Error::Invalid(format!("{}: not a usable output folder name", out.display())))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = parent.join(tmp_name);

    let result = write_into(&tmp, cfg).and_then(|dataset| {
        if exists {
            std::fs::remove_dir_all(out).map_err(|e| Error::io(out, e))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
        Ok(dataset)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let mut dataset = result?;
    dataset.root = out.to_path_buf();
    for s in &mut dataset.samples {
        s.source = ImageSource::File(out.join(&s.id));
    }
    Ok(dataset)
}

fn write_into(dir: &Path, cfg: &SynthConfig) -> Result<Dataset> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let names = cfg.class_names();
    for n in &names {
        let d = dir.join(n);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let items = cfg.items();
    items.par_iter().try_for_each(|&(c, i)| {
        let path = dir.join(&names[c]).join(cfg.file_name(i));
        let bytes = encode_png(&render(cfg.seed, c, i, cfg.size))?;
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
    })?;
    let manifest_path = dir.join(MANIFEST);
    std::fs::write(&manifest_path, manifest(cfg)).map_err(|e| Error::io(&manifest_path, e))?;
    let samples = items
        .into_iter()
        .map(|(c, i)| {
            let id = format!("{}/{}", names[c], cfg.file_name(i));
            Sample { source: ImageSource::File(dir.join(&id)), id, label: Some(c), group: None, official_split: None }
        })
        .collect();
    Ok(Dataset::new("imagefolder", dir, names, samples))
}

/// A picture of the data set: one row per class (in class order), `per_row` images each, `gap` pixels of white
/// between tiles. Images are those of the data set with this seed and size (indices `0..per_row`).
pub fn sample_grid(seed: u64, classes: usize, per_row: usize, size: usize, gap: usize) -> Result<RgbImage> {
    SynthConfig { classes, per_class: per_row.max(1), size, seed }.validate()?;
    let (w, h) = (per_row * size + (per_row + 1) * gap, classes * size + (classes + 1) * gap);
    let mut grid = RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    let tiles: Vec<(usize, usize, RgbImage)> = (0..classes)
        .flat_map(|c| (0..per_row).map(move |i| (c, i)))
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(c, i)| (c, i, render(seed, c, i, size)))
        .collect();
    for (c, i, tile) in tiles {
        let (x0, y0) = (gap + i * (size + gap), gap + c * (size + gap));
        image::imageops::replace(&mut grid, &tile, x0 as i64, y0 as i64);
    }
    Ok(grid)
}
