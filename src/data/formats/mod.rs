//! Loaders for every supported on-disk layout (one file per format) and the [`load`] entry point.
//!
//! Each loader reads the official layout of its data set (../shared/docs/DATA.md §1-5), handles its traps, and
//! fails with an error naming the file and, for CSV input, the line: a missing CSV, listed images that do not
//! exist (the first five named), a row that is not one-hot, an unknown label, duplicate ids, an empty data set.

mod aptos;
mod csv;
mod imagefolder;
mod isic2017;
mod isic2018;
mod medmnist;
pub mod table;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use medmnist::{medmnist_class_names, MEDMNIST_FLAGS};

use super::Dataset;
use crate::error::{Error, Result};

/// The formats `--dataset` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// ISIC 2018 Task 3 challenge layout (one-hot ground truth, official Training/Validation/Test).
    Isic2018,
    /// The HAM10000 distribution (`HAM10000_metadata.csv`, images in `HAM10000_images_part_{1,2}`).
    Ham10000,
    /// ISIC 2017 Part 3 (melanoma / seborrheic keratosis ground truth; Training/Validation/Test_v2).
    Isic2017,
    /// Kaggle APTOS 2019 Blindness Detection (`train.csv` `id_code,diagnosis`).
    Aptos2019,
    /// A MedMNIST `.npz`.
    MedMnist,
    /// `root/<class>/*.jpg`, or a folder of unlabelled images.
    ImageFolder,
    /// A CSV of image id or path and label.
    Csv,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 7] = [
        DatasetKind::Isic2018,
        DatasetKind::Ham10000,
        DatasetKind::Isic2017,
        DatasetKind::Aptos2019,
        DatasetKind::MedMnist,
        DatasetKind::ImageFolder,
        DatasetKind::Csv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Isic2018 => "isic2018",
            DatasetKind::Ham10000 => "ham10000",
            DatasetKind::Isic2017 => "isic2017",
            DatasetKind::Aptos2019 => "aptos2019",
            DatasetKind::MedMnist => "medmnist",
            DatasetKind::ImageFolder => "imagefolder",
            DatasetKind::Csv => "csv",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        let alias = match s.as_str() {
            "isic18" => "isic2018",
            "ham" => "ham10000",
            "isic17" => "isic2017",
            "aptos" => "aptos2019",
            other => other,
        };
        DatasetKind::ALL.into_iter().find(|k| k.name() == alias).ok_or_else(|| {
            let names: Vec<_> = DatasetKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown data set format '{s}' (expected one of {})", names.join(", "))
        })
    }
}

/// Which ISIC 2017 Part 3 problem to load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isic2017Task {
    /// Melanoma vs rest (classes `not_melanoma`, `melanoma`).
    Melanoma,
    /// Seborrheic keratosis vs rest (classes `not_seborrheic_keratosis`, `seborrheic_keratosis`): FG-SSL's
    /// reference target, the default.
    #[default]
    SeborrheicKeratosis,
    /// Three classes `melanoma`, `seborrheic_keratosis`, `nevus`.
    ThreeClass,
}

impl Isic2017Task {
    pub fn name(self) -> &'static str {
        match self {
            Isic2017Task::Melanoma => "melanoma",
            Isic2017Task::SeborrheicKeratosis => "sk",
            Isic2017Task::ThreeClass => "3class",
        }
    }
}

impl fmt::Display for Isic2017Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isic2017Task {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "melanoma" | "mel" => Ok(Isic2017Task::Melanoma),
            "sk" | "seborrheickeratosis" => Ok(Isic2017Task::SeborrheicKeratosis),
            "3class" | "threeclass" | "3" => Ok(Isic2017Task::ThreeClass),
            _ => Err(format!("unknown ISIC 2017 task '{s}' (expected sk, melanoma or 3class)")),
        }
    }
}

/// Options of [`load`]; `LoadOptions::default()` suits every official layout.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// ISIC 2017: which problem (default: seborrheic keratosis vs rest).
    pub isic2017_task: Isic2017Task,
    /// CSV format: the CSV file (relative to the root or absolute). Given without a format, implies `csv`.
    pub csv_path: Option<PathBuf>,
    /// CSV format: the folder listed ids and paths resolve against (default: the root).
    pub image_dir: Option<PathBuf>,
    /// MedMNIST: the `.npz` to read when the root holds several, as a path (relative to the root or absolute) or a
    /// file stem such as `dermamnist_224`.
    pub medmnist_file: Option<String>,
    /// ImageFolder: read every image as unlabelled even when the folder has class subfolders.
    pub unlabelled: bool,
}

/// Loads the data set at `root` in format `kind`, or in the format detected from its marker files when `kind` is
/// `None` (see [`crate::data::detect`]).
pub fn load(root: &Path, kind: Option<DatasetKind>, opts: &LoadOptions) -> Result<Dataset> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    let (kind, detected) = match kind {
        Some(k) => (k, None),
        None if opts.csv_path.is_some() => (DatasetKind::Csv, Some("--csv was given".to_string())),
        None if meta.is_file() && has_ext(root, "npz") => (DatasetKind::MedMnist, Some("a .npz file".to_string())),
        None => {
            let d = super::detect::detect(root)?;
            (d.kind, Some(d.marker))
        }
    };
    if !meta.is_dir() && kind != DatasetKind::MedMnist {
        return Err(Error::Invalid(format!("{}: not a directory (the {kind} format reads a folder)", root.display())));
    }
    let mut ds = match kind {
        DatasetKind::Isic2018 => isic2018::load_isic2018(root)?,
        DatasetKind::Ham10000 => isic2018::load_ham10000(root)?,
        DatasetKind::Isic2017 => isic2017::load(root, opts.isic2017_task)?,
        DatasetKind::Aptos2019 => aptos::load(root)?,
        DatasetKind::MedMnist => medmnist::load(root, opts.medmnist_file.as_deref())?,
        DatasetKind::ImageFolder => imagefolder::load(root, opts.unlabelled)?,
        DatasetKind::Csv => csv::load(root, opts)?,
    };
    if let Some(marker) = detected {
        ds.notes.insert(0, format!("format {kind} detected from {marker}"));
    }
    if ds.samples.is_empty() {
        return Err(Error::Invalid(format!("{}: the {kind} data set is empty (no samples)", root.display())));
    }
    Ok(ds)
}

// ---- shared by the loaders ---------------------------------------------------------------------------------------

pub(crate) fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Image extensions tried, in this order, for an id listed without one.
const PROBE_EXTENSIONS: [&str; 8] = ["jpg", "png", "jpeg", "JPG", "PNG", "JPEG", "bmp", "tif"];

/// Whether `name` ends in an image extension that [`crate::imaging::load_rgb8`] decodes.
pub(crate) fn has_image_ext(name: &str) -> bool {
    Path::new(name).extension().and_then(|e| e.to_str()).is_some_and(|e| crate::imaging::IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The image file `dir/id`: `id` as given when it names an existing file with an image extension, else
/// `id.<ext>` for the first of `preferred` and then the common image extensions that exists.
pub(crate) fn find_image(dir: &Path, id: &str, preferred: &[&str]) -> Option<PathBuf> {
    if has_image_ext(id) {
        let p = dir.join(id);
        if p.is_file() {
            return Some(p);
        }
    }
    preferred.iter().chain(PROBE_EXTENSIONS.iter()).map(|ext| dir.join(format!("{id}.{ext}"))).find(|p| p.is_file())
}

/// `id` without a trailing image extension (`000c1434d8d7.png` -> `000c1434d8d7`).
pub(crate) fn strip_image_ext(id: &str) -> &str {
    if has_image_ext(id) {
        id.rsplit_once('.').map(|(stem, _)| stem).unwrap_or(id)
    } else {
        id
    }
}

/// Collects ids listed in a CSV whose image file is missing, and reports them all at once.
#[derive(Default)]
pub(crate) struct Missing {
    items: Vec<String>,
}

impl Missing {
    pub fn push(&mut self, csv: &Path, line: usize, id: &str) {
        self.items.push(format!("{id} ({}:{line})", file_name(csv)));
    }

    /// An error naming the first five missing images and the folder they were looked for in.
    pub fn check(&self, dir: &Path, what: &str) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        let shown = self.items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        let more = if self.items.len() > 5 { format!(" and {} more", self.items.len() - 5) } else { String::new() };
        Err(Error::Invalid(format!(
            "{}: {} image(s) listed in {what} not found (looked for <id>.jpg/.png/... here): {shown}{more}",
            dir.display(),
            self.items.len()
        )))
    }
}

/// Rejects a second row with the same id, naming both lines.
#[derive(Default)]
pub(crate) struct Seen {
    lines: HashMap<String, (PathBuf, usize)>,
}

impl Seen {
    pub fn insert(&mut self, csv: &Path, line: usize, id: &str) -> Result<()> {
        if let Some((first, first_line)) = self.lines.insert(id.to_string(), (csv.to_path_buf(), line)) {
            return Err(Error::Invalid(format!(
                "{}:{line}: duplicate id '{id}' (already listed at {}:{first_line})",
                csv.display(),
                first.display()
            )));
        }
        Ok(())
    }
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

/// Names of the regular files directly in `dir` (sorted), empty when `dir` is missing.
pub(crate) fn dir_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter(|e| e.path().is_file()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A note about the images in `dir` that no CSV row used (they are ignored), when there are any.
pub(crate) fn unused_note(dir: &Path, used: &std::collections::HashSet<PathBuf>, keep: impl Fn(&str) -> bool) -> Option<String> {
    let unused: Vec<String> = dir_files(dir).into_iter().filter(|n| keep(n) && !used.contains(&dir.join(n))).collect();
    if unused.is_empty() {
        return None;
    }
    let shown = unused.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    Some(format!("{}: {} image(s) not in the ground truth were ignored (e.g. {shown})", dir.display(), unused.len()))
}

/// Compares the class counts of `split` with a release's published ones (`expected`, in class order) when the
/// split has the published total, so a complete copy is checked and a subset is left alone. Returns a note.
pub(crate) fn published_counts_note(samples: &[super::Sample], split: super::Split, name: &str, expected: &[usize]) -> Option<String> {
    let mut counts = vec![0usize; expected.len()];
    for label in samples.iter().filter(|s| s.official_split == Some(split)).filter_map(|s| s.label) {
        *counts.get_mut(label)? += 1;
    }
    if counts.iter().sum::<usize>() != expected.iter().sum::<usize>() {
        return None;
    }
    Some(if counts == expected {
        format!("{name}: class counts match the published ones {expected:?}")
    } else {
        format!("{name}: class counts {counts:?} differ from the published {expected:?}")
    })
}
