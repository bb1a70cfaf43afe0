//! Data sets: what a loader yields, whatever the on-disk format.
//!
//! A loader (one file per format under `formats/`) turns a folder into a [`Dataset`]: its samples (an image
//! source, an optional label, an optional lesion/patient group, the official split when the data set has one)
//! and its class names, which travel with every result. Splitting (`split`), the decoded-image cache (`cache`)
//! and the synthetic data set (`synth`) work on this type.

pub mod cache;
pub mod detect;
pub mod formats;
pub mod fundus;
pub mod npz;
pub mod split;

use std::path::PathBuf;

/// Where a sample's pixels come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// An image file (jpeg, png, bmp, tiff).
    File(PathBuf),
    /// Image `index` of the array `key` (e.g. `train_images`) of an in-memory `.npz` (MedMNIST).
    Array { key: String, index: usize },
}

/// An official split of a data set that defines one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    Train,
    Val,
    Test,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Stable identifier (ISIC image id, APTOS id_code, relative path, or `split/index` for arrays): what
    /// `splits.json` and prediction CSVs name.
    pub id: String,
    pub source: ImageSource,
    /// Class index into [`Dataset::class_names`]; `None` for unlabelled images (SSL folders, APTOS test.csv).
    pub label: Option<usize>,
    /// Samples sharing a group (a lesion, a patient) must land in the same split.
    pub group: Option<String>,
    /// The data set's own split, when it defines one.
    pub official_split: Option<Split>,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    /// Format name as given to `--dataset` (`isic2018`, `imagefolder`, ...).
    pub format: String,
    pub root: PathBuf,
    pub class_names: Vec<String>,
    pub samples: Vec<Sample>,
    /// The in-memory arrays that [`ImageSource::Array`] samples index (MedMNIST); `None` for file-based sets.
    pub arrays: Option<std::sync::Arc<npz::Arrays>>,
    /// What the loader decided or skipped that a user should know (detected format, ignored files, unlabelled
    /// folders); printed by `fgssl dataset`.
    pub notes: Vec<String>,
}

pub use formats::{load, DatasetKind, Isic2017Task, LoadOptions};

impl Dataset {
    /// A data set without arrays or notes.
    pub fn new(format: impl Into<String>, root: impl Into<PathBuf>, class_names: Vec<String>, samples: Vec<Sample>) -> Self {
        Dataset { format: format.into(), root: root.into(), class_names, samples, arrays: None, notes: Vec::new() }
    }

    /// RGB8 pixels `(width, height, pixels)` of `sample`: files are decoded with [`crate::imaging::load_rgb8`]
    /// (Pillow-exact), arrays are read from memory (grey replicated to three channels).
    pub fn load_rgb8(&self, sample: &Sample) -> crate::error::Result<(u32, u32, Vec<u8>)> {
        match &sample.source {
            ImageSource::File(path) => {
                let img = crate::imaging::load_rgb8(path)?;
                Ok((img.width(), img.height(), img.into_raw()))
            }
            ImageSource::Array { key, index } => match &self.arrays {
                Some(arrays) => arrays.image_rgb8(key, *index),
                None => Err(crate::error::Error::Invalid(format!(
                    "{}: sample '{}' refers to array '{key}', but this data set holds no arrays",
                    self.root.display(),
                    sample.id
                ))),
            },
        }
    }

    /// Index of the class called `name` (ASCII case-insensitive).
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.class_names.iter().position(|c| c.eq_ignore_ascii_case(name))
    }

    /// Samples per class per official split: `counts[split][class]`, where split 0..3 are train, val, test and
    /// 3 is "no official split". Unlabelled samples are not counted.
    pub fn class_counts(&self) -> [Vec<usize>; 4] {
        let mut counts: [Vec<usize>; 4] = std::array::from_fn(|_| vec![0; self.class_names.len()]);
        for s in &self.samples {
            if let Some(label) = s.label.filter(|&l| l < self.class_names.len()) {
                let split = match s.official_split {
                    Some(Split::Train) => 0,
                    Some(Split::Val) => 1,
                    Some(Split::Test) => 2,
                    None => 3,
                };
                counts[split][label] += 1;
            }
        }
        counts
    }
}
pub mod synth;
