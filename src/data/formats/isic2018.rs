//! ISIC 2018 Task 3 (the challenge layout) and HAM10000 (the original distribution of the same images).
//!
//! ```text
//! ISIC2018_Task3_Training_Input/ISIC_0024306.jpg ...      (plus licence/attribution text files: ignored)
//! ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv   image,MEL,NV,BCC,AKIEC,BKL,DF,VASC
//! ISIC2018_Task3_Training_LesionGroupings.csv                                   image,lesion_id,diagnosis_confirm_type
//! ISIC2018_Task3_Validation_{Input,GroundTruth}/ ...   ISIC2018_Task3_Test_{Input,GroundTruth}/ ...
//! ```
//!
//! The ground-truth CSV may also sit next to the input folder (a flattened tree). Columns are mapped by header
//! name, never by position; each row must have exactly one `1.0`. A Validation or Test input folder without
//! ground truth is read as unlabelled (the test labels were published late); Training without it is an error.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::table::Table;
use super::{find_image, has_image_ext, unused_note, Missing, Seen};
use crate::data::{Dataset, ImageSource, Sample, Split};
use crate::error::{Error, Result};

/// The ISIC 2018 / HAM10000 class order (the ground-truth column order), shared by both loaders.
pub const HAM_CLASSES: [&str; 7] = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"];

/// Published class counts per split (val/test from a third-party summary: checked on load, see DATA.md §1).
const PUBLISHED_COUNTS: [(Split, &str, [usize; 7]); 3] = [
    (Split::Train, "Training", [1113, 6705, 514, 327, 1099, 115, 142]),
    (Split::Val, "Validation", [21, 123, 15, 8, 22, 1, 3]),
    (Split::Test, "Test", [171, 909, 93, 43, 217, 44, 35]),
];

const SPLITS: [(&str, Split); 3] = [("Training", Split::Train), ("Validation", Split::Val), ("Test", Split::Test)];

/// The ground-truth CSV of one split: nested in its own folder (official) or flattened next to the input folder.
fn ground_truth_candidates(root: &Path, split: &str) -> [PathBuf; 2] {
    let name = format!("ISIC2018_Task3_{split}_GroundTruth");
    [root.join(&name).join(format!("{name}.csv")), root.join(format!("{name}.csv"))]
}

pub fn load_isic2018(root: &Path) -> Result<Dataset> {
    let class_names: Vec<String> = HAM_CLASSES.iter().map(|s| s.to_string()).collect();
    let mut samples = Vec::new();
    let mut notes = Vec::new();
    let mut seen = Seen::default();
    let mut found_any = false;
    for (split_name, split) in SPLITS {
        let input = root.join(format!("ISIC2018_Task3_{split_name}_Input"));
        let candidates = ground_truth_candidates(root, split_name);
        let gt = candidates.iter().find(|p| p.is_file());
        match (input.is_dir(), gt) {
            (false, None) => continue,
            (false, Some(gt)) => {
                return Err(Error::Invalid(format!("{}: the images of {} are missing (no such folder)", input.display(), gt.display())));
            }
            (true, None) if split == Split::Train => {
                return Err(Error::Invalid(format!(
                    "{}: missing CSV file (the training ground truth; also looked for {})",
                    candidates[0].display(),
                    candidates[1].display()
                )));
            }
            (true, None) => {
                let files: Vec<PathBuf> = super::dir_files(&input).into_iter().filter(|n| has_image_ext(n)).map(|n| input.join(n)).collect();
                notes.push(format!("{}: no ground truth CSV, {} images read as unlabelled", input.display(), files.len()));
                for path in files {
                    let id = super::strip_image_ext(&super::file_name(&path)).to_string();
                    samples.push(Sample { id, source: ImageSource::File(path), label: None, group: None, official_split: Some(split) });
                }
                found_any = true;
            }
            (true, Some(gt)) => {
                let table = Table::read(gt, "ISIC 2018 Task 3 ground truth")?;
                let before = samples.len();
                read_one_hot(&table, &input, split, &mut seen, &mut samples)?;
                let used: HashSet<PathBuf> = samples[before..].iter().filter_map(|s| source_path(s).cloned()).collect();
                notes.extend(unused_note(&input, &used, has_image_ext));
                found_any = true;
            }
        }
    }
    if !found_any {
        return Err(Error::Invalid(format!(
            "{}: no ISIC 2018 Task 3 layout (looked for ISIC2018_Task3_{{Training,Validation,Test}}_Input/ and their \
             _GroundTruth.csv)",
            root.display()
        )));
    }
    for (split, name, expected) in PUBLISHED_COUNTS {
        notes.extend(super::published_counts_note(&samples, split, name, &expected));
    }
    let groupings = root.join("ISIC2018_Task3_Training_LesionGroupings.csv");
    if groupings.is_file() {
        let lesions = read_lesion_groupings(&groupings)?;
        let mut without = 0;
        for s in samples.iter_mut().filter(|s| s.official_split == Some(Split::Train)) {
            s.group = lesions.get(&s.id).cloned();
            without += s.group.is_none() as usize;
        }
        if without > 0 {
            notes.push(format!("{}: {without} training image(s) have no lesion_id", groupings.display()));
        }
    } else {
        notes.push(format!("{} not found: training images are not grouped by lesion", groupings.display()));
    }
    Ok(Dataset { notes, ..Dataset::new("isic2018", root, class_names, samples) })
}

fn source_path(s: &Sample) -> Option<&PathBuf> {
    match &s.source {
        ImageSource::File(p) => Some(p),
        ImageSource::Array { .. } => None,
    }
}

/// Reads `image,<one column per class>` rows, mapping columns by header name.
fn read_one_hot(table: &Table, input: &Path, split: Split, seen: &mut Seen, samples: &mut Vec<Sample>) -> Result<()> {
    let image_col = table.require("image")?;
    let class_cols: Vec<usize> = HAM_CLASSES.iter().map(|c| table.require(c)).collect::<Result<_>>()?;
    let mut missing = Missing::default();
    for row in table.records() {
        let id = row.get(image_col);
        if id.is_empty() {
            return Err(table.err(row, "empty image id"));
        }
        seen.insert(&table.path, row.line, id)?;
        let mut hot = Vec::new();
        for (class, &col) in class_cols.iter().enumerate() {
            let text = row.get(col);
            let v: f64 = text.parse().map_err(|_| table.err(row, format!("'{text}' in column {} is not a number", HAM_CLASSES[class])))?;
            if v == 1.0 {
                hot.push(class);
            } else if v != 0.0 {
                return Err(table.err(row, format!("not one-hot: {}={text} (values must be 0.0 or 1.0)", HAM_CLASSES[class])));
            }
        }
        let label = match hot[..] {
            [c] => c,
            [] => return Err(table.err(row, format!("not one-hot: image {id} has no column equal to 1.0"))),
            _ => {
                let names: Vec<_> = hot.iter().map(|&c| HAM_CLASSES[c]).collect();
                return Err(table.err(row, format!("not one-hot: image {id} has {} columns equal to 1.0 ({})", hot.len(), names.join(", "))));
            }
        };
        match find_image(input, id, &["jpg"]) {
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
    missing.check(input, &super::file_name(&table.path))
}

/// `image -> lesion_id` from `ISIC2018_Task3_Training_LesionGroupings.csv`.
fn read_lesion_groupings(path: &Path) -> Result<HashMap<String, String>> {
    let table = Table::read(path, "ISIC 2018 lesion groupings")?;
    let (image_col, lesion_col) = (table.require("image")?, table.require("lesion_id")?);
    let mut map = HashMap::new();
    for row in table.records() {
        let lesion = row.get(lesion_col);
        if !lesion.is_empty() {
            map.insert(row.get(image_col).to_string(), lesion.to_string());
        }
    }
    Ok(map)
}

/// HAM10000 `dx` codes, in [`HAM_CLASSES`] order.
const HAM_DX: [&str; 7] = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"];

pub fn load_ham10000(root: &Path) -> Result<Dataset> {
    let meta = root.join("HAM10000_metadata.csv");
    let table = Table::read(&meta, "HAM10000 metadata: lesion_id,image_id,dx,...")?;
    let (lesion_col, image_col, dx_col) = (table.require("lesion_id")?, table.require("image_id")?, table.require("dx")?);
    // Image folders: HAM10000_images_part_1/, _part_2/ (any case; Kaggle copies add lower-case duplicates), then
    // the root itself.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .flatten()
        .filter(|e| e.path().is_dir() && e.file_name().to_string_lossy().to_ascii_lowercase().starts_with("ham10000_images"))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.push(root.to_path_buf());
    let mut seen = Seen::default();
    let mut missing = Missing::default();
    let mut samples = Vec::new();
    for row in table.records() {
        let id = row.get(image_col);
        if id.is_empty() {
            return Err(table.err(row, "empty image_id"));
        }
        seen.insert(&table.path, row.line, id)?;
        let dx = row.get(dx_col);
        let label = HAM_DX
            .iter()
            .position(|d| d.eq_ignore_ascii_case(dx))
            .ok_or_else(|| table.err(row, format!("unknown dx '{dx}' for image {id} (expected one of {})", HAM_DX.join(", "))))?;
        let lesion = row.get(lesion_col);
        match dirs.iter().find_map(|d| find_image(d, id, &["jpg"])) {
            Some(path) => samples.push(Sample {
                id: id.to_string(),
                source: ImageSource::File(path),
                label: Some(label),
                group: (!lesion.is_empty()).then(|| lesion.to_string()),
                official_split: None,
            }),
            None => missing.push(&table.path, row.line, id),
        }
    }
    let looked = dirs.iter().map(|d| super::file_name(d)).collect::<Vec<_>>().join(", ");
    missing.check(root, &format!("HAM10000_metadata.csv (looked in {looked})"))?;
    let class_names = HAM_CLASSES.iter().map(|s| s.to_string()).collect();
    let notes = vec!["HAM10000 has no official split: split it seeded and grouped by lesion_id".to_string()];
    Ok(Dataset { notes, ..Dataset::new("ham10000", root, class_names, samples) })
}
