//! A CSV of image and label, with images in a folder: `image,label` (the FG-SSL reference's `train.csv`) and
//! Kaggle-style re-packagings.
//!
//! * The image column holds an id or a path relative to the image folder, with or without extension.
//! * Labels are integers (class `i` is named `"i"`, classes `0..=max`) or strings (sorted to indices).
//! * The first row is a header when it names a known column (`image`, `id`, `path`, `label`, `diagnosis`, ...) or
//!   when its image does not exist and its label is not an integer. A header that names both columns picks them
//!   wherever they are (so `label,image` works); otherwise the first column is the image and the second the label.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::table::{Row, Table};
use super::{find_image, LoadOptions, Missing, Seen};
use crate::data::{Dataset, ImageSource, Sample};
use crate::error::{Error, Result};

const ID_NAMES: [&str; 13] =
    ["image", "images", "image_id", "image_name", "id", "id_code", "path", "file", "filename", "file_name", "img", "name", "isic_id"];
const LABEL_NAMES: [&str; 12] =
    ["label", "labels", "diagnosis", "class", "class_name", "classname", "target", "dx", "category", "y", "level", "grade"];

fn position(row: &Row, names: &[&str]) -> Option<usize> {
    row.fields.iter().position(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
}

/// `p` as given when absolute, else relative to `root` if it exists there, else relative to the working folder.
fn resolve(root: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || !root.join(p).exists() && p.exists() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

pub fn load(root: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let csv_path = match &opts.csv_path {
        Some(p) => resolve(root, p),
        None => {
            let csvs: Vec<String> = super::dir_files(root).into_iter().filter(|n| n.to_ascii_lowercase().ends_with(".csv")).collect();
            match &csvs[..] {
                [one] => root.join(one),
                [] => return Err(Error::Invalid(format!("{}: no CSV file here: pass the label file with --csv FILE", root.display()))),
                many => {
                    return Err(Error::Invalid(format!("{}: several CSV files ({}): choose one with --csv FILE", root.display(), many.join(", "))))
                }
            }
        }
    };
    let image_dir = opts.image_dir.as_ref().map(|d| resolve(root, d)).unwrap_or_else(|| root.to_path_buf());
    if !image_dir.is_dir() {
        return Err(Error::Invalid(format!("{}: image folder not found", image_dir.display())));
    }
    let table = Table::read(&csv_path, "image,label")?;
    let first = table.rows.first().ok_or_else(|| Error::Invalid(format!("{}: empty CSV file", csv_path.display())))?;
    if first.fields.len() < 2 {
        return Err(table.err(first, format!("expected two columns (image, label), found {}", first.fields.len())));
    }
    let (named_id, named_label) = (position(first, &ID_NAMES), position(first, &LABEL_NAMES));
    let has_header =
        named_id.is_some() || named_label.is_some() || (find_image(&image_dir, first.get(0), &[]).is_none() && first.get(1).parse::<i64>().is_err());
    let (id_col, label_col) = match (named_id, named_label) {
        (Some(i), Some(l)) if i != l => (i, l),
        (None, Some(0)) => (1, 0),
        _ => (0, 1),
    };
    let records = if has_header { table.records() } else { &table.rows[..] };
    let mut seen = Seen::default();
    let mut missing = Missing::default();
    let mut rows = Vec::new();
    for row in records {
        let (id, label) = (row.get(id_col), row.get(label_col));
        if id.is_empty() {
            return Err(table.err(row, "empty image column"));
        }
        if label.is_empty() {
            return Err(table.err(row, format!("empty label for {id}")));
        }
        seen.insert(&table.path, row.line, id)?;
        match find_image(&image_dir, id, &[]) {
            Some(path) => rows.push((id.to_string(), path, label.to_string())),
            None => missing.push(&table.path, row.line, id),
        }
    }
    missing.check(&image_dir, &super::file_name(&csv_path))?;
    let numeric: Option<Vec<usize>> = rows.iter().map(|(_, _, l)| l.parse::<usize>().ok()).collect();
    let (class_names, labels): (Vec<String>, Vec<usize>) = match numeric {
        Some(labels) => {
            let k = labels.iter().max().map_or(0, |m| m + 1);
            ((0..k).map(|i| i.to_string()).collect(), labels)
        }
        None => {
            let names: Vec<String> = rows.iter().map(|(_, _, l)| l.clone()).collect::<BTreeSet<_>>().into_iter().collect();
            let labels = rows.iter().map(|(_, _, l)| names.binary_search(l).expect("label is one of the names")).collect();
            (names, labels)
        }
    };
    let samples = rows
        .into_iter()
        .zip(labels)
        .map(|((id, path, _), label)| Sample { id, source: ImageSource::File(path), label: Some(label), group: None, official_split: None })
        .collect();
    let columns = if has_header {
        format!("header: image column '{}', label column '{}'", first.get(id_col), first.get(label_col))
    } else {
        "no header row: image in column 1, label in column 2".to_string()
    };
    let mut ds = Dataset::new("csv", root, class_names, samples);
    ds.notes.push(format!("{}: {columns}", csv_path.display()));
    Ok(ds)
}
