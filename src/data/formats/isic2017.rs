//! ISIC 2017 Part 3 (lesion classification).
//!
//! ```text
//! ISIC-2017_Training_Data/ISIC_0000000.jpg ...  + ISIC_0000000_superpixels.png + ISIC-2017_Training_Data_metadata.csv
//! ISIC-2017_Training_Part3_GroundTruth.csv      image_id,melanoma,seborrheic_keratosis   (0.0 / 1.0)
//! ISIC-2017_Validation_Data/ + ISIC-2017_Validation_Part3_GroundTruth.csv
//! ISIC-2017_Test_v2_Data/    + ISIC-2017_Test_v2_Part3_GroundTruth.csv
//! ```
//!
//! Only `ISIC_<7 digits>.jpg` files are images of the data set: the superpixel PNGs and the metadata CSV in every
//! data folder are never read. The ground truth may also sit in a folder of its own name. Labels follow the
//! chosen [`Isic2017Task`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::table::Table;
use super::{find_image, unused_note, Isic2017Task, Missing, Seen};
use crate::data::{Dataset, ImageSource, Sample, Split};
use crate::error::{Error, Result};

/// Split folder names; `Test` is accepted where the first test release (`Test` rather than `Test_v2`) is used.
const SPLITS: [(&str, Split); 4] = [("Training", Split::Train), ("Validation", Split::Val), ("Test_v2", Split::Test), ("Test", Split::Test)];

/// Published 3-class counts (melanoma, seborrheic keratosis, nevus) per split; val/test checked on load.
const PUBLISHED_COUNTS: [(Split, &str, [usize; 3]); 3] =
    [(Split::Train, "Training", [374, 254, 1372]), (Split::Val, "Validation", [30, 42, 78]), (Split::Test, "Test_v2", [117, 90, 393])];

/// `ISIC_` followed by exactly seven digits and `.jpg`: the only files of a data folder that are images of the set.
pub fn is_isic_image_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".jpg").or_else(|| name.strip_suffix(".JPG")) else { return false };
    stem.strip_prefix("ISIC_").is_some_and(|d| d.len() == 7 && d.bytes().all(|b| b.is_ascii_digit()))
}

pub fn class_names(task: Isic2017Task) -> Vec<String> {
    let names: &[&str] = match task {
        Isic2017Task::Melanoma => &["not_melanoma", "melanoma"],
        Isic2017Task::SeborrheicKeratosis => &["not_seborrheic_keratosis", "seborrheic_keratosis"],
        Isic2017Task::ThreeClass => &["melanoma", "seborrheic_keratosis", "nevus"],
    };
    names.iter().map(|s| s.to_string()).collect()
}

pub fn load(root: &Path, task: Isic2017Task) -> Result<Dataset> {
    let mut samples = Vec::new();
    let mut notes = vec![format!("ISIC 2017 task: {task} (classes {})", class_names(task).join(", "))];
    let mut seen = Seen::default();
    let mut have_test = false;
    let mut found_any = false;
    for (split_name, split) in SPLITS {
        if split == Split::Test && have_test {
            continue;
        }
        let data = root.join(format!("ISIC-2017_{split_name}_Data"));
        let gt_name = format!("ISIC-2017_{split_name}_Part3_GroundTruth");
        let candidates = [root.join(format!("{gt_name}.csv")), root.join(&gt_name).join(format!("{gt_name}.csv"))];
        let gt = candidates.iter().find(|p| p.is_file());
        match (data.is_dir(), gt) {
            (false, None) => continue,
            (false, Some(gt)) => {
                return Err(Error::Invalid(format!("{}: the images of {} are missing (no such folder)", data.display(), gt.display())));
            }
            (true, None) if split == Split::Train => {
                return Err(Error::Invalid(format!("{}: missing CSV file (the training ground truth)", candidates[0].display())));
            }
            (true, None) => {
                let names: Vec<String> = super::dir_files(&data).into_iter().filter(|n| is_isic_image_name(n)).collect();
                notes.push(format!("{}: no Part 3 ground truth, {} images read as unlabelled", data.display(), names.len()));
                for n in names {
                    let id = n[..n.len() - 4].to_string();
                    samples.push(Sample { id, source: ImageSource::File(data.join(n)), label: None, group: None, official_split: Some(split) });
                }
            }
            (true, Some(gt)) => {
                let table = Table::read(gt, "ISIC 2017 Part 3 ground truth")?;
                let before = samples.len();
                read_ground_truth(&table, &data, split, task, &mut seen, &mut samples)?;
                let used: HashSet<PathBuf> = samples[before..]
                    .iter()
                    .filter_map(|s| match &s.source {
                        ImageSource::File(p) => Some(p.clone()),
                        ImageSource::Array { .. } => None,
                    })
                    .collect();
                notes.extend(unused_note(&data, &used, is_isic_image_name));
            }
        }
        found_any = true;
        have_test |= split == Split::Test;
    }
    if !found_any {
        return Err(Error::Invalid(format!(
            "{}: no ISIC 2017 layout (looked for ISIC-2017_{{Training,Validation,Test_v2}}_Data/ and \
             ISIC-2017_*_Part3_GroundTruth.csv)",
            root.display()
        )));
    }
    if task == Isic2017Task::ThreeClass {
        for (split, name, expected) in PUBLISHED_COUNTS {
            notes.extend(super::published_counts_note(&samples, split, name, &expected));
        }
    }
    Ok(Dataset { notes, ..Dataset::new("isic2017", root, class_names(task), samples) })
}

fn read_ground_truth(table: &Table, data: &Path, split: Split, task: Isic2017Task, seen: &mut Seen, samples: &mut Vec<Sample>) -> Result<()> {
    let (id_col, mel_col, sk_col) = (table.require("image_id")?, table.require("melanoma")?, table.require("seborrheic_keratosis")?);
    let mut missing = Missing::default();
    for row in table.records() {
        let id = row.get(id_col);
        if id.is_empty() {
            return Err(table.err(row, "empty image_id"));
        }
        seen.insert(&table.path, row.line, id)?;
        let flag = |col: usize, name: &str| -> Result<bool> {
            let text = row.get(col);
            match text.parse::<f64>() {
                Ok(1.0) => Ok(true),
                Ok(0.0) => Ok(false),
                _ => Err(table.err(row, format!("{name}='{text}' for image {id} (values must be 0.0 or 1.0)"))),
            }
        };
        let (mel, sk) = (flag(mel_col, "melanoma")?, flag(sk_col, "seborrheic_keratosis")?);
        if mel && sk {
            return Err(table.err(row, format!("not one-hot: image {id} is both melanoma and seborrheic_keratosis")));
        }
        let label = match task {
            Isic2017Task::Melanoma => mel as usize,
            Isic2017Task::SeborrheicKeratosis => sk as usize,
            Isic2017Task::ThreeClass => {
                if mel {
                    0
                } else if sk {
                    1
                } else {
                    2
                }
            }
        };
        match find_image(data, id, &["jpg"]) {
            Some(path) => samples.push(Sample {
                id: id.to_string(),
                source: ImageSource::File(path),
                label: Some(label),
                group: None,
                official_split: Some(split),
            }),
            None => missing.push(&table.path, row.line, id),
        }
    }
    missing.check(data, &super::file_name(&table.path))
}
