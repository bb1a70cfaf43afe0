//! ImageFolder: `root/<class>/**/*.{jpg,jpeg,png,bmp,tif,tiff}`, classes in sorted folder-name order (as
//! torchvision's `ImageFolder`); or, for self-supervised pre-training, a flat or nested folder of unlabelled
//! images.
//!
//! The folder is labelled when it holds no image directly and at least two subfolders with images; every other
//! subfolder must then hold images too (an empty class folder is an error, it would shift the class indices).
//! Otherwise (images at the top level, or a single subfolder) every image below the root is read unlabelled.
//! Non-image files and hidden entries are skipped.

use std::path::{Path, PathBuf};

use crate::data::{Dataset, ImageSource, Sample};
use crate::error::{Error, Result};
use crate::imaging::{list_images, relative_name};

fn unlabelled(root: &Path, images: Vec<PathBuf>, why: &str) -> Dataset {
    let samples = images
        .into_iter()
        .map(|p| Sample { id: relative_name(root, &p), source: ImageSource::File(p), label: None, group: None, official_split: None })
        .collect::<Vec<_>>();
    let mut ds = Dataset::new("imagefolder", root, Vec::new(), samples);
    ds.notes.push(format!("{}: {} unlabelled images ({why})", root.display(), ds.samples.len()));
    ds
}

pub fn load(root: &Path, force_unlabelled: bool) -> Result<Dataset> {
    if force_unlabelled {
        return Ok(unlabelled(root, list_images(root)?, "read as unlabelled on request"));
    }
    let mut subdirs = Vec::new();
    let mut top_level_images = 0;
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "__MACOSX" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            subdirs.push((name, path));
        } else if path.is_file() && super::has_image_ext(&name) {
            top_level_images += 1;
        }
    }
    subdirs.sort();
    if top_level_images > 0 {
        return Ok(unlabelled(root, list_images(root)?, "images at the top level: no class subfolders"));
    }
    let with_images: Vec<(String, PathBuf, Vec<PathBuf>)> =
        subdirs.iter().filter_map(|(n, p)| list_images(p).ok().map(|imgs| (n.clone(), p.clone(), imgs))).collect();
    if with_images.len() < 2 {
        let why = if with_images.len() == 1 { "a single subfolder is not a set of classes" } else { "no class subfolders" };
        return Ok(unlabelled(root, list_images(root)?, why));
    }
    if let Some((name, path)) = subdirs.iter().find(|(n, _)| !with_images.iter().any(|(m, _, _)| m == n)) {
        return Err(Error::Invalid(format!(
            "{}: class folder '{name}' has no images (looked recursively for .png, .jpg, .jpeg, .bmp, .tif files); remove it or add images",
            path.display()
        )));
    }
    let class_names: Vec<String> = with_images.iter().map(|(n, _, _)| n.clone()).collect();
    let mut samples = Vec::new();
    for (label, (_, _, images)) in with_images.into_iter().enumerate() {
        for p in images {
            samples.push(Sample { id: relative_name(root, &p), source: ImageSource::File(p), label: Some(label), group: None, official_split: None });
        }
    }
    Ok(Dataset::new("imagefolder", root, class_names, samples))
}
