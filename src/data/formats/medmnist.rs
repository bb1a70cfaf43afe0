//! MedMNIST v2 / MedMNIST+ `.npz` files: `{flag}.npz` (28 px) or `{flag}_{64|128|224}.npz`, holding
//! `{train,val,test}_images` (`uint8`, `(N,H,W)` grey or `(N,H,W,3)` RGB) and `{train,val,test}_labels`
//! (`(N,1)` or `(N,)` integers). The three official splits are kept; the arrays stay in memory.
//!
//! **Label-order trap**: each flag numbers its classes its own way (DermaMNIST sorts the HAM `dx` codes
//! alphabetically, ISIC 2018 orders its columns MEL, NV, ...), so class names come from the table of known flags
//! below and every comparison across data sets goes by name. DermaMNIST's classes carry the ISIC column names
//! (`AKIEC`, `BCC`, ...) in DermaMNIST's own index order, and RetinaMNIST's the APTOS grade names, so one name means
//! one class across a family.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::aptos::DR_GRADES;
use crate::data::npz::{read_npz, Array};
use crate::data::{Dataset, ImageSource, Sample, Split};
use crate::error::{Error, Result};

/// The 2-D MedMNIST flags and their class names in label-index order (from MedMNIST's `INFO`).
pub const MEDMNIST_FLAGS: [(&str, &[&str]); 11] = [
    (
        "pathmnist",
        &[
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ],
    ),
    ("dermamnist", &["AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"]),
    ("octmnist", &["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"]),
    ("pneumoniamnist", &["normal", "pneumonia"]),
    ("retinamnist", &DR_GRADES),
    ("breastmnist", &["malignant", "normal, benign"]),
    ("bloodmnist", &["basophil", "eosinophil", "erythroblast", "immature granulocytes", "lymphocyte", "monocyte", "neutrophil", "platelet"]),
    (
        "tissuemnist",
        &[
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ],
    ),
    ("organamnist", &ORGAN),
    ("organcmnist", &ORGAN),
    ("organsmnist", &ORGAN),
];

const ORGAN: [&str; 11] =
    ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left", "lung-right", "pancreas", "spleen"];

/// Class names of a known MedMNIST flag (`dermamnist`; a size suffix such as `_224` is ignored).
pub fn medmnist_class_names(flag: &str) -> Option<Vec<String>> {
    let (flag, _) = split_flag(flag);
    MEDMNIST_FLAGS.iter().find(|(f, _)| *f == flag).map(|(_, names)| names.iter().map(|s| s.to_string()).collect())
}

/// `dermamnist_224` -> (`dermamnist`, Some(224)); `dermamnist` -> (`dermamnist`, None).
fn split_flag(stem: &str) -> (String, Option<usize>) {
    let stem = stem.to_ascii_lowercase();
    if let Some((flag, size)) = stem.rsplit_once('_') {
        if let Ok(size) = size.parse() {
            return (flag.to_string(), Some(size));
        }
    }
    (stem, None)
}

fn npz_files(dir: &Path) -> Vec<PathBuf> {
    super::dir_files(dir).into_iter().filter(|n| n.to_ascii_lowercase().ends_with(".npz")).map(|n| dir.join(n)).collect()
}

/// The `.npz` to read: `root` itself, the one chosen by `choice` (a path or a stem), or the only one in `root`.
fn choose_file(root: &Path, choice: Option<&str>) -> Result<PathBuf> {
    if root.is_file() {
        return Ok(root.to_path_buf());
    }
    let files = npz_files(root);
    let names = || files.iter().map(|p| super::file_name(p)).collect::<Vec<_>>().join(", ");
    match choice {
        Some(c) => {
            let as_path = root.join(c);
            if as_path.is_file() {
                return Ok(as_path);
            }
            let stem = c.strip_suffix(".npz").unwrap_or(c);
            files.iter().find(|p| p.file_stem().is_some_and(|s| s.to_string_lossy().eq_ignore_ascii_case(stem))).cloned().ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: no MedMNIST file '{c}' here (found: {})",
                    root.display(),
                    if files.is_empty() { "none".into() } else { names() }
                ))
            })
        }
        None => match files.len() {
            0 => Err(Error::Invalid(format!("{}: no .npz file found (MedMNIST files are named like dermamnist_224.npz)", root.display()))),
            1 => Ok(files[0].clone()),
            _ => Err(Error::Invalid(format!(
                "{}: several .npz files ({}): choose one (e.g. --npz {})",
                root.display(),
                names(),
                super::file_name(&files[0])
            ))),
        },
    }
}

pub fn load(root: &Path, choice: Option<&str>) -> Result<Dataset> {
    let file = choose_file(root, choice)?;
    let arrays = read_npz(&file)?;
    let bad = |msg: String| Error::Invalid(format!("{}: {msg}", file.display()));
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let (flag, size) = split_flag(&stem);
    let mut samples = Vec::new();
    let mut max_label = 0usize;
    for (name, split) in [("train", Split::Train), ("val", Split::Val), ("test", Split::Test)] {
        let (ikey, lkey) = (format!("{name}_images"), format!("{name}_labels"));
        let (images, labels) = match (arrays.get(&ikey), arrays.get(&lkey)) {
            (None, None) => continue,
            (Some(i), Some(l)) => (i, l),
            (Some(_), None) => return Err(bad(format!("has {ikey} but no {lkey}"))),
            (None, Some(_)) => return Err(bad(format!("has {lkey} but no {ikey}"))),
        };
        let n = check_images(images).map_err(|m| bad(format!("{ikey}: {m}")))?;
        let labels_n = match labels.shape[..] {
            [n] | [n, 1] => n,
            [_, k] => {
                return Err(bad(format!(
                    "{lkey} has shape {:?}: multi-label data ({k} labels per image, e.g. ChestMNIST) is not supported",
                    labels.shape
                )))
            }
            _ => return Err(bad(format!("{lkey} has shape {:?}, expected (N,) or (N,1)", labels.shape))),
        };
        if labels_n != n {
            return Err(bad(format!("{ikey} holds {n} images but {lkey} holds {labels_n} labels")));
        }
        for i in 0..n {
            let v = labels.get_i64(i).unwrap_or(-1);
            let label = usize::try_from(v).map_err(|_| bad(format!("{lkey}[{i}] = {v} is not a class index")))?;
            max_label = max_label.max(label);
            samples.push(Sample {
                id: format!("{name}/{i}"),
                source: ImageSource::Array { key: ikey.clone(), index: i },
                label: Some(label),
                group: None,
                official_split: Some(split),
            });
        }
    }
    if samples.is_empty() {
        let keys: Vec<_> = arrays.arrays.keys().cloned().collect();
        return Err(bad(format!("no train/val/test images (expected train_images, train_labels, ...; found {})", keys.join(", "))));
    }
    let size_text = size.map(|s| format!("{s} px")).unwrap_or_else(|| "28 px".into());
    let mut notes = vec![format!("{}: flag {flag}, {size_text}", super::file_name(&file))];
    let class_names = match medmnist_class_names(&flag) {
        Some(names) => {
            if max_label >= names.len() {
                let (s, l) = samples.iter().find_map(|s| s.label.filter(|&l| l >= names.len()).map(|l| (s, l))).expect("a label is out of range");
                return Err(bad(format!("label {l} of sample {} is out of range: {flag} has {} classes", s.id, names.len())));
            }
            names
        }
        None => {
            notes.push(format!("unknown MedMNIST flag '{flag}': classes named by index 0-{max_label}"));
            (0..=max_label).map(|i| i.to_string()).collect()
        }
    };
    let mut ds = Dataset::new("medmnist", file.clone(), class_names, samples);
    ds.arrays = Some(Arc::new(arrays));
    ds.notes = notes;
    Ok(ds)
}

/// The number of images of a valid image array, or why it is not one.
fn check_images(a: &Array) -> std::result::Result<usize, String> {
    if a.as_u8().is_none() {
        return Err(format!("images must be uint8, found dtype {}", a.dtype));
    }
    match a.shape[..] {
        [n, h, w] | [n, h, w, 1 | 3 | 4] if h > 0 && w > 0 => Ok(n),
        [_, _, _, _] => Err(format!("shape {:?}: 3-D volumes (MedMNIST 3D) are not supported", a.shape)),
        _ => Err(format!("shape {:?} is not (N,H,W) or (N,H,W,3)", a.shape)),
    }
}
