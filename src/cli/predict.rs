//! `fgssl predict`: class probabilities (softmax of the summed logits of the four heads, METHOD.md §9) of every
//! image of a data set, a folder or a list of files, written as a CSV in the data set's own layout
//! (`crate::predictions`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::dataset::SourceArgs;
use super::model_file::{load_classifier, load_dataset_for, predict_logits, Images, ModelFile, ModelFileArgs, SplitName, ViewArgs};
use super::training_args::DataArgs;
use super::{CliResult, Selected};
use crate::backend::Backend;
use crate::data::{Dataset, DatasetKind, ImageSource, Isic2017Task, Sample};
use crate::error::{Error, Result};
use crate::imaging;
use crate::metrics::argmax_predictions;
use crate::metrics::softmax_rows;
use crate::predictions::{self, PredictionLayout};

/// Which CSV layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutChoice {
    /// The data set's own (ISIC 2018 / ISIC 2017 / APTOS submission, MedMNIST result CSV); generic for the others.
    Auto,
    /// `id,label,prediction,<class probabilities>` whatever the data set.
    Generic,
}

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Predict class probabilities for a data set, a folder of images or image files (CSV)",
    after_help = "Examples:\n  fgssl predict --weights runs/ft --data ~/data/ISIC2018 --split test --out preds.csv\n  \
                  fgssl predict --weights ft.safetensors --data photos/ --out preds.csv\n  \
                  fgssl predict --weights ft.safetensors --data a.jpg b.png --out preds.csv\n\n\
                  Each image is resized to RESIZE x RESIZE and center-cropped to SIZE (the evaluation view); the scores are\n\
                  the softmax of the summed logits of the four heads, the prediction their argmax. Architecture, classes\n\
                  and sizes come from the weights file's metadata unless given. Layouts: isic2018 `image,MEL,...`,\n\
                  isic2017 `image_id,melanoma,seborrheic_keratosis`, aptos2019 `id_code,diagnosis`, medmnist\n\
                  `index,score_0,...`, generic `id,label,prediction,<class names>` (label empty when unknown)."
)]
pub struct PredictArgs {
    /// Read flags from a TOML file (keys are the long flag names, `batch_size = 64`); the command line overrides it.
    #[arg(long, value_name = "FILE.toml")]
    #[allow(dead_code)] // expanded into flags before parsing (config_file.rs)
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub model: ModelFileArgs,
    #[command(flatten)]
    pub view: ViewArgs,
    /// A data set folder (any format `fgssl dataset` reads, or a MedMNIST .npz), a folder of images, or image files.
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// The data set's format; detected from marker files when omitted.
    #[arg(long = "dataset", value_name = "KIND")]
    pub kind: Option<DatasetKind>,
    /// ISIC 2017 task (default: the one whose classes are the model's).
    #[arg(long)]
    pub task: Option<Isic2017Task>,
    /// CSV format: the label file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// CSV format: the folder the listed images are relative to.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// MedMNIST: which .npz when the folder holds several.
    #[arg(long)]
    pub npz: Option<String>,
    /// Only this split of a labelled data set (the rules of `fgssl finetune`); default: every image.
    #[arg(long, value_enum)]
    pub split: Option<SplitName>,
    /// Seed of the split of data sets without an official one.
    #[arg(long, default_value_t = 18)]
    pub split_seed: u64,
    /// Folder of the decoded-image caches of data sets (default: $FGSSL_CACHE, else .fgssl-cache next to --out).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = LayoutChoice::Auto)]
    pub layout: LayoutChoice,
    /// Output CSV (written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: PredictArgs) -> CliResult {
    match args.view.compute.select()? {
        Selected::Cpu(b) => run_on(&b, args),
        Selected::Cuda(b) => run_on(b.as_ref(), args),
    }
}

/// Image files named directly (or folders of them, listed recursively) as an unlabelled data set; ids are the paths.
fn loose_files(paths: &[PathBuf]) -> Result<Dataset> {
    let mut samples = Vec::new();
    for p in paths {
        let files = if p.is_dir() { imaging::list_images(p)? } else { vec![p.clone()] };
        for f in files {
            if !f.is_file() {
                return Err(Error::Invalid(format!("{}: no such image file", f.display())));
            }
            let id = f.display().to_string();
            samples.push(Sample { id, source: ImageSource::File(f), label: None, group: None, official_split: None });
        }
    }
    Ok(Dataset::new("files", ".", Vec::new(), samples))
}

fn is_single_data_set(paths: &[PathBuf]) -> bool {
    matches!(paths, [p] if p.is_dir() || p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz")))
}

fn run_on<B: Backend>(b: &B, args: PredictArgs) -> CliResult {
    eprintln!("device: {}", super::precision::describe(b));
    let m = load_classifier(&args.model)?;
    let (size, resize) = args.view.resolve(&m.metadata, &m.path)?;
    let source = is_single_data_set(&args.data).then(|| SourceArgs {
        data: args.data[0].clone(),
        kind: args.kind,
        task: args.task.unwrap_or_default(),
        csv: args.csv.clone(),
        images: args.images.clone(),
        npz: args.npz.clone(),
    });
    let ds = match &source {
        Some(s) if args.task.is_some() => s.load(false)?,
        Some(s) => load_dataset_for(s, &m.class_names, false)?,
        None if args.split.is_some() => return Err(Error::Invalid("--split needs a data set folder as --data, not image files".into()).into()),
        None => loose_files(&args.data)?,
    };
    let indices = match args.split {
        Some(split) => split.indices(&ds, args.split_seed)?,
        None => (0..ds.samples.len()).collect(),
    };
    if indices.is_empty() {
        return Err(Error::Invalid(format!("{}: no images to predict", ds.root.display())).into());
    }
    // Labelled data sets go through the decoded cache (shared with finetune's evaluation); loose images are decoded
    // on the fly, leaving nothing behind but the CSV.
    let images = match source {
        Some(source) if indices.iter().any(|&i| ds.samples[i].label.is_some()) => {
            let data = DataArgs { source, split_seed: args.split_seed, cache_dir: args.cache_dir.clone() };
            Images::Cache(data.cache(&ds, &indices, args.split.map_or("all", SplitName::name), resize, &args.out)?)
        }
        _ => Images::decode(&ds, indices.clone(), resize),
    };
    eprintln!("predict: {} images of {} ({}), {size}x{size} center crop of {resize}x{resize}", images.len(), ds.root.display(), ds.format);
    let (sum, _) = predict_logits(b, &m, &images, size, args.view.batch_size as usize)?;
    write_predictions(&args, &m, &ds, &indices, &sum)?;
    Ok(())
}

fn write_predictions(args: &PredictArgs, m: &ModelFile, ds: &Dataset, indices: &[usize], logits: &[f32]) -> Result<()> {
    let k = m.class_names.len();
    let probs = softmax_rows(logits, k);
    let ids: Vec<String> = indices.iter().map(|&i| ds.samples[i].id.clone()).collect();
    // A sample's label as a model class (by name: the data set may order or name its classes differently).
    let labels: Vec<Option<usize>> = indices
        .iter()
        .map(|&i| ds.samples[i].label.and_then(|l| ds.class_names.get(l)).and_then(|name| m.class_names.iter().position(|c| c == name)))
        .collect();
    let layout = match args.layout {
        LayoutChoice::Auto => PredictionLayout::for_format(&ds.format),
        LayoutChoice::Generic => PredictionLayout::Generic,
    };
    predictions::write(&args.out, layout, &ids, &m.class_names, &probs, Some(&labels))?;
    eprintln!("wrote {} predictions ({layout:?} layout) to {}", ids.len(), args.out.display());
    let scored: Vec<(usize, usize)> = argmax_predictions(&probs, k)?.into_iter().zip(&labels).filter_map(|(p, l)| l.map(|l| (p, l))).collect();
    if !scored.is_empty() {
        let hits = scored.iter().filter(|(p, l)| p == l).count();
        eprintln!("accuracy on the {} labelled images: {:.4}", scored.len(), hits as f64 / scored.len() as f64);
    }
    Ok(())
}
