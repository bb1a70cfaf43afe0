//! Data sets: what a loader yields, whatever the on-disk format.
//!
//! A loader (one file per format under `formats/`) turns a folder into a [`Dataset`]: its samples (an image
//! source, an optional label, an optional lesion/patient group, the official split when the data set has one)
//! and its class names, which travel with every result. Splitting (`split`), the decoded-image cache (`cache`)
//! and the synthetic data set (`synth`) work on this type.

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
}
