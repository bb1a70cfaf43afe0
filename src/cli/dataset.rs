//! `fgssl dataset --data DIR`: what a data set folder holds, as the loaders read it (format, classes with counts
//! per official split, unlabelled images, groups, and what was skipped).

use std::collections::HashSet;
use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::data::{self, DatasetKind, Isic2017Task, LoadOptions};

#[derive(Args, Debug)]
#[command(
    about = "Load a data set folder and print its format, classes and per-split counts",
    after_help = "Formats: isic2018, ham10000, isic2017, aptos2019, medmnist, imagefolder, csv (detected from marker files \
                  when --dataset is not given).\n\nExamples:\n  fgssl dataset --data ~/data/ISIC2018\n  \
                  fgssl dataset --data ~/data/ISIC2017 --task 3class\n  fgssl dataset --data ~/data/medmnist --npz dermamnist_224\n  \
                  fgssl dataset --data ~/data/images --dataset csv --csv train.csv"
)]
pub struct DatasetArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// ImageFolder: read every image as unlabelled, ignoring class subfolders.
    #[arg(long)]
    pub unlabelled: bool,
}

/// Where a data set is and how to read it: shared by every command that loads one.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// The data set folder (or a MedMNIST .npz file).
    #[arg(long)]
    pub data: PathBuf,
    /// The format; detected from marker files when omitted.
    #[arg(long = "dataset", value_name = "KIND")]
    pub kind: Option<DatasetKind>,
    /// ISIC 2017 task: sk (seborrheic keratosis vs rest, the default), melanoma, or 3class.
    #[arg(long, default_value_t = Isic2017Task::default())]
    pub task: Isic2017Task,
    /// CSV format: the label file (image,label), relative to --data or absolute.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// CSV format: the folder the listed images are relative to (default: --data).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// MedMNIST: which .npz when the folder holds several (a file name or stem, e.g. dermamnist_224).
    #[arg(long)]
    pub npz: Option<String>,
}

impl SourceArgs {
    pub fn load(&self, unlabelled: bool) -> crate::error::Result<data::Dataset> {
        let opts = LoadOptions {
            isic2017_task: self.task,
            csv_path: self.csv.clone(),
            image_dir: self.images.clone(),
            medmnist_file: self.npz.clone(),
            unlabelled,
        };
        data::load(&self.data, self.kind, &opts)
    }
}

pub fn run(args: DatasetArgs) -> CliResult {
    let ds = args.source.load(args.unlabelled)?;
    println!("data: {}", ds.root.display());
    println!("format: {}", ds.format);
    let counts = ds.class_counts();
    let split_names = ["train", "val", "test", "unsplit"];
    let used: Vec<usize> = (0..4).filter(|&s| counts[s].iter().sum::<usize>() > 0).collect();
    let labelled: usize = counts.iter().flatten().sum();
    println!("samples: {} ({labelled} labelled, {} unlabelled)", ds.samples.len(), ds.samples.len() - labelled);
    if !ds.class_names.is_empty() {
        println!("classes: {}", ds.class_names.len());
        let w = ds.class_names.iter().map(|n| n.chars().count()).max().unwrap_or(5).max(5);
        let mut head = format!("  {:<w$}", "class");
        for &s in &used {
            head += &format!("  {:>7}", split_names[s]);
        }
        println!("{head}  {:>7}", "total");
        for (c, name) in ds.class_names.iter().enumerate() {
            let mut line = format!("  {name:<w$}");
            for &s in &used {
                line += &format!("  {:>7}", counts[s][c]);
            }
            println!("{line}  {:>7}", used.iter().map(|&s| counts[s][c]).sum::<usize>());
        }
        let mut line = format!("  {:<w$}", "total");
        for &s in &used {
            line += &format!("  {:>7}", counts[s].iter().sum::<usize>());
        }
        println!("{line}  {labelled:>7}");
    }
    let groups: HashSet<&str> = ds.samples.iter().filter_map(|s| s.group.as_deref()).collect();
    if !groups.is_empty() {
        let grouped = ds.samples.iter().filter(|s| s.group.is_some()).count();
        println!("groups: {} (lesions/patients over {grouped} samples)", groups.len());
    }
    for note in &ds.notes {
        println!("note: {note}");
    }
    Ok(())
}
