//! Prediction CSVs, in the layout each data set's challenge expects where it has one.
//!
//! | layout | header | rows |
//! |---|---|---|
//! | `isic2018` | `image,MEL,NV,BCC,AKIEC,BKL,DF,VASC` | class probabilities (ISIC 2018 Task 3 submission) |
//! | `isic2017` | `image_id,melanoma,seborrheic_keratosis` | the two task probabilities (ISIC 2017 Part 3); a binary-task model has only its own column |
//! | `aptos2019` | `id_code,diagnosis` | predicted grade (Kaggle submission) |
//! | `medmnist` | `index,score_0,...` | scores by sample index (MedMNIST's result CSV) |
//! | `generic` | `id,label,prediction,<class names>` | true label (empty when unknown), argmax class name, probabilities |
//!
//! Probabilities are written with Rust's shortest round-trip float formatting; files are written atomically.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::metrics::argmax_predictions;
use crate::weights::write_atomic;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictionLayout {
    Isic2018,
    Isic2017,
    Aptos2019,
    MedMnist,
    Generic,
}

/// The ISIC 2018 Task 3 submission columns, in their official order.
const ISIC2018_COLUMNS: [&str; 7] = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"];
/// The ISIC 2017 Part 3 submission columns.
const ISIC2017_COLUMNS: [&str; 2] = ["melanoma", "seborrheic_keratosis"];

impl PredictionLayout {
    /// The layout for a data set format name (`isic2018`, `ham10000`, ...); `generic` for the others.
    pub fn for_format(format: &str) -> Self {
        match format {
            "isic2018" | "ham10000" => PredictionLayout::Isic2018,
            "isic2017" => PredictionLayout::Isic2017,
            "aptos2019" => PredictionLayout::Aptos2019,
            "medmnist" => PredictionLayout::MedMnist,
            _ => PredictionLayout::Generic,
        }
    }
}

/// One CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Index of each wanted class name in `class_names`, or an error naming what is missing.
fn columns(layout: &str, wanted: &[&str], class_names: &[String], all_required: bool) -> Result<Vec<(String, usize)>> {
    let found: Vec<(String, usize)> = wanted.iter().filter_map(|w| class_names.iter().position(|c| c == w).map(|i| (w.to_string(), i))).collect();
    if found.is_empty() || (all_required && found.len() != wanted.len()) {
        return Err(Error::Invalid(format!(
            "the {layout} prediction layout needs the classes {wanted:?}, but the data set's classes are {class_names:?}"
        )));
    }
    Ok(found)
}

/// Renders the CSV. `probs` is row-major `[ids.len(), class_names.len()]`; `labels` (same length as `ids`) is only
/// used by the generic layout.
pub fn render(layout: PredictionLayout, ids: &[String], class_names: &[String], probs: &[f32], labels: Option<&[Option<usize>]>) -> Result<String> {
    let k = class_names.len();
    if k == 0 || probs.len() != ids.len() * k {
        return Err(Error::Invalid(format!("predictions: {} scores for {} samples x {k} classes", probs.len(), ids.len())));
    }
    if let Some(l) = labels {
        if l.len() != ids.len() {
            return Err(Error::Invalid(format!("predictions: {} labels for {} samples", l.len(), ids.len())));
        }
    }
    let preds = argmax_predictions(probs, k)?;
    let row = |i: usize| &probs[i * k..(i + 1) * k];
    let mut out = String::new();
    let probs_of = |out: &mut String, i: usize, cols: &[(String, usize)]| {
        for (_, c) in cols {
            let _ = write!(out, ",{}", row(i)[*c]);
        }
        out.push('\n');
    };
    match layout {
        PredictionLayout::Isic2018 | PredictionLayout::Isic2017 => {
            let (first, cols) = if layout == PredictionLayout::Isic2018 {
                ("image", columns("isic2018", &ISIC2018_COLUMNS, class_names, true)?)
            } else {
                ("image_id", columns("isic2017", &ISIC2017_COLUMNS, class_names, false)?)
            };
            out.push_str(first);
            cols.iter().for_each(|(name, _)| out.push_str(&format!(",{name}")));
            out.push('\n');
            for (i, id) in ids.iter().enumerate() {
                out.push_str(&csv_field(id));
                probs_of(&mut out, i, &cols);
            }
        }
        PredictionLayout::Aptos2019 => {
            out.push_str("id_code,diagnosis\n");
            for (id, p) in ids.iter().zip(&preds) {
                let _ = writeln!(out, "{},{p}", csv_field(id));
            }
        }
        PredictionLayout::MedMnist => {
            out.push_str("index");
            (0..k).for_each(|c| out.push_str(&format!(",score_{c}")));
            out.push('\n');
            let all: Vec<(String, usize)> = (0..k).map(|c| (String::new(), c)).collect();
            for i in 0..ids.len() {
                let _ = write!(out, "{i}");
                probs_of(&mut out, i, &all);
            }
        }
        PredictionLayout::Generic => {
            out.push_str("id,label,prediction");
            class_names.iter().for_each(|c| out.push_str(&format!(",{}", csv_field(c))));
            out.push('\n');
            let all: Vec<(String, usize)> = (0..k).map(|c| (String::new(), c)).collect();
            for (i, id) in ids.iter().enumerate() {
                let label = labels.and_then(|l| l[i]).map(|l| csv_field(&class_names[l])).unwrap_or_default();
                let _ = write!(out, "{},{label},{}", csv_field(id), csv_field(&class_names[preds[i]]));
                probs_of(&mut out, i, &all);
            }
        }
    }
    Ok(out)
}

/// Writes [`render`]'s CSV to `path` atomically.
pub fn write(
    path: &Path,
    layout: PredictionLayout,
    ids: &[String],
    class_names: &[String],
    probs: &[f32],
    labels: Option<&[Option<usize>]>,
) -> Result<()> {
    write_atomic(path, render(layout, ids, class_names, probs, labels)?.as_bytes())
}
