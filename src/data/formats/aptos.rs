//! Kaggle APTOS 2019 Blindness Detection.
//!
//! ```text
//! train.csv   id_code,diagnosis        train_images/<id_code>.png
//! test.csv    id_code                  test_images/<id_code>.png      (no labels)
//! ```
//!
//! `diagnosis` is the DR grade 0-4. Ids are given without extension; re-packaged copies that add `.png`/`.jpg`
//! are stripped first. There is no official split (split `train.csv` seeded and stratified); `test.csv` images
//! are read unlabelled.

use std::path::Path;

use super::table::Table;
use super::{find_image, strip_image_ext, Missing, Seen};
use crate::data::{Dataset, ImageSource, Sample};
use crate::error::Result;

/// DR grades 0-4 (APTOS and RetinaMNIST share them).
pub const DR_GRADES: [&str; 5] = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"];

pub fn load(root: &Path) -> Result<Dataset> {
    let table = Table::read(&root.join("train.csv"), "APTOS 2019 labels: id_code,diagnosis")?;
    let (id_col, dx_col) = (table.require("id_code")?, table.require("diagnosis")?);
    let images = root.join("train_images");
    let mut seen = Seen::default();
    let mut missing = Missing::default();
    let mut samples = Vec::new();
    for row in table.records() {
        let id = strip_image_ext(row.get(id_col));
        if id.is_empty() {
            return Err(table.err(row, "empty id_code"));
        }
        seen.insert(&table.path, row.line, id)?;
        let text = row.get(dx_col);
        let label = text
            .parse::<usize>()
            .ok()
            .filter(|&g| g < DR_GRADES.len())
            .ok_or_else(|| table.err(row, format!("unknown diagnosis '{text}' for {id} (expected a DR grade 0-4)")))?;
        match find_image(&images, id, &["png"]) {
            Some(path) => {
                samples.push(Sample { id: id.to_string(), source: ImageSource::File(path), label: Some(label), group: None, official_split: None })
            }
            None => missing.push(&table.path, row.line, id),
        }
    }
    missing.check(&images, "train.csv")?;
    let mut notes = vec!["APTOS 2019 has no official split: split train.csv seeded and stratified (7:3 by default)".to_string()];
    let test_csv = root.join("test.csv");
    if test_csv.is_file() {
        let table = Table::read(&test_csv, "APTOS 2019 test ids")?;
        let id_col = table.require("id_code")?;
        let test_images = root.join("test_images");
        let mut missing = Missing::default();
        let mut n = 0;
        for row in table.records() {
            let id = strip_image_ext(row.get(id_col));
            if id.is_empty() {
                return Err(table.err(row, "empty id_code"));
            }
            seen.insert(&table.path, row.line, id)?;
            match find_image(&test_images, id, &["png"]) {
                Some(path) => {
                    samples.push(Sample { id: id.to_string(), source: ImageSource::File(path), label: None, group: None, official_split: None });
                    n += 1;
                }
                None => missing.push(&table.path, row.line, id),
            }
        }
        missing.check(&test_images, "test.csv")?;
        notes.push(format!("test.csv: {n} unlabelled images (Kaggle's test set has no labels)"));
    }
    let class_names = DR_GRADES.iter().map(|s| s.to_string()).collect();
    Ok(Dataset { notes, ..Dataset::new("aptos2019", root, class_names, samples) })
}
