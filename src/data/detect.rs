//! Auto-detection of a data set's format from its marker files (DATA.md §5).
//!
//! | marker (in the root)                                             | format      |
//! |------------------------------------------------------------------|-------------|
//! | `ISIC2018_Task3_*_GroundTruth.csv` (or its `_GroundTruth/` folder) | isic2018    |
//! | `HAM10000_metadata.csv`                                          | ham10000    |
//! | `ISIC-2017_*_Part3_GroundTruth.csv` (or a folder of that name)    | isic2017    |
//! | `train.csv` whose header starts `id_code,diagnosis`               | aptos2019   |
//! | `*.npz`                                                          | medmnist    |
//! | none of these, but images in the root or its subfolders           | imagefolder |
//!
//! More than one of the first five is ambiguous; neither an error lists what was looked for. The generic CSV
//! format is never detected: it is chosen with `--dataset csv` or `--csv FILE`.

use std::path::Path;

use crate::data::formats::DatasetKind;
use crate::error::{Error, Result};

/// A detected format and the marker that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub kind: DatasetKind,
    /// The marker file or folder (its name), or a description for ImageFolder.
    pub marker: String,
}

const LOOKED_FOR: &str = "ISIC2018_Task3_*_GroundTruth.csv (isic2018), HAM10000_metadata.csv (ham10000), \
                          ISIC-2017_*_Part3_GroundTruth.csv (isic2017), train.csv with header id_code,diagnosis (aptos2019), \
                          *.npz (medmnist), class subfolders or image files (imagefolder)";

fn matches(name: &str, prefix: &str, suffix: &str) -> bool {
    name.len() > prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
}

/// Whether the first line of `path` starts with `id_code,diagnosis`.
fn is_aptos_train_csv(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let first = text.trim_start_matches('\u{feff}').lines().next().unwrap_or("");
    let cols: Vec<String> = first.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    cols.len() >= 2 && cols[0] == "id_code" && cols[1] == "diagnosis"
}

/// Detects the format of the data set in `root` from the names directly in it.
pub fn detect(root: &Path) -> Result<Detection> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if meta.is_file() {
        if crate::data::formats::has_ext(root, "npz") {
            return Ok(Detection { kind: DatasetKind::MedMnist, marker: crate::data::formats::file_name(root) });
        }
        return Err(Error::Invalid(format!("{}: not a directory or a .npz file", root.display())));
    }
    let mut names: Vec<(String, bool)> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path().is_dir()))
        .collect();
    names.sort();
    let mut found: Vec<Detection> = Vec::new();
    let mut add = |kind: DatasetKind, marker: &str| {
        if !found.iter().any(|d| d.kind == kind) {
            found.push(Detection { kind, marker: marker.to_string() });
        }
    };
    for (name, is_dir) in &names {
        let n = name.as_str();
        if (!is_dir && matches(n, "ISIC2018_Task3_", "_GroundTruth.csv")) || (*is_dir && matches(n, "ISIC2018_Task3_", "_GroundTruth")) {
            add(DatasetKind::Isic2018, n);
        }
        if !is_dir && n.eq_ignore_ascii_case("HAM10000_metadata.csv") {
            add(DatasetKind::Ham10000, n);
        }
        if (!is_dir && matches(n, "ISIC-2017_", "_Part3_GroundTruth.csv")) || (*is_dir && matches(n, "ISIC-2017_", "_Part3_GroundTruth")) {
            add(DatasetKind::Isic2017, n);
        }
        if !is_dir && n == "train.csv" && is_aptos_train_csv(&root.join(n)) {
            add(DatasetKind::Aptos2019, "train.csv (id_code,diagnosis)");
        }
        if !is_dir && n.to_ascii_lowercase().ends_with(".npz") {
            add(DatasetKind::MedMnist, n);
        }
    }
    match found.len() {
        1 => return Ok(found.remove(0)),
        0 => {}
        _ => {
            let list: Vec<String> = found.iter().map(|d| format!("{} ({})", d.kind, d.marker)).collect();
            return Err(Error::Invalid(format!(
                "{}: ambiguous data set: markers of several formats found: {}; choose one with --dataset",
                root.display(),
                list.join(", ")
            )));
        }
    }
    let has_images = names.iter().any(|(n, d)| !d && !n.starts_with('.') && crate::data::formats::has_image_ext(n))
        || names.iter().any(|(n, d)| *d && !n.starts_with('.') && crate::imaging::list_images(&root.join(n)).is_ok());
    if has_images {
        return Ok(Detection { kind: DatasetKind::ImageFolder, marker: "image files / class subfolders".into() });
    }
    Err(Error::Invalid(format!("{}: cannot detect the data set format: looked for {LOOKED_FOR}; none found", root.display())))
}
