//! What the inference commands (`predict`, `eval`, `knn`) share: reading a weights file with its metadata
//! (ANCHORS.md §2.2 #14; flags override it), the evaluation view sizes, the images to run on (a decoded cache for
//! data sets, files decoded on the fly for loose images) and the softmax of METHOD.md §9.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use rayon::prelude::*;

use super::dataset::SourceArgs;
use super::ComputeArgs;
use super::{backbone_fit, CliError, CliResult};
use crate::augment::{self, ImageBatch};
use crate::backend::Backend;
use crate::data::cache::{self, ImageCache};
use crate::data::fundus::FundusCrop;
use crate::data::split::{make_splits, SplitConfig};
use crate::data::{Dataset, DatasetKind, Isic2017Task, Split};
use crate::error::{Error, Result};
use crate::model::fgssl::{Fgssl, FgsslConfig};
use crate::model::resnet::Arch;
use crate::model::{HostState, Registry};
use crate::tensor::Tensor;
use crate::weights::{self, StateDict};

/// A split of a data set, by the rules `fgssl finetune` uses (official where the data set has one, else seeded by
/// --split-seed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub fn name(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }

    /// This split's sample indices; an empty split is an error naming it.
    pub fn indices(self, ds: &Dataset, split_seed: u64) -> Result<Vec<usize>> {
        let splits = make_splits(ds, &SplitConfig { seed: split_seed, ..SplitConfig::default() })?;
        let split = match self {
            SplitName::Train => Split::Train,
            SplitName::Val => Split::Val,
            SplitName::Test => Split::Test,
        };
        let indices = splits.get(split).to_vec();
        if indices.is_empty() {
            return Err(Error::Invalid(format!("the {} split of {} is empty", self.name(), ds.root.display())));
        }
        Ok(indices)
    }
}

/// The weights file and the flags that override its metadata.
#[derive(Args, Debug, Clone)]
pub struct ModelFileArgs {
    /// Weights (safetensors) written by `fgssl finetune`, or its run folder (RUN_DIR/export/model.safetensors is read).
    #[arg(long)]
    pub weights: PathBuf,
    /// Backbone (default: the file's `arch` metadata).
    #[arg(long, value_parser = |s: &str| s.parse::<Arch>().map_err(|e| e.to_string()))]
    pub arch: Option<Arch>,
    /// Embedding width F (default: the file's metadata, else read from the tensors).
    #[arg(long)]
    pub embed_dim: Option<usize>,
    /// Pooled width P (default: the file's metadata, else read from the tensors).
    #[arg(long)]
    pub pooled_dim: Option<usize>,
    /// Class names in the classifier's order, comma-separated (default: the file's `class_names` metadata).
    #[arg(long, value_delimiter = ',')]
    pub class_names: Option<Vec<String>>,
}

/// How images are turned into the evaluation view, and where the work runs.
#[derive(Args, Debug, Clone)]
pub struct ViewArgs {
    /// Side of the center crop fed to the model (default: the file's `input_size` metadata, else 224).
    #[arg(long)]
    pub size: Option<usize>,
    /// Side images are resized to before the crop (default: the file's `resize` metadata, else SIZE x 8/7, 256 for 224).
    #[arg(long)]
    pub resize: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

impl ViewArgs {
    /// `(size, resize)`: flags, else the file's metadata, else 224 and `round(size * 8 / 7)`.
    pub fn resolve(&self, meta: &BTreeMap<String, String>, path: &Path) -> Result<(usize, usize)> {
        let size = match self.size {
            Some(s) => s,
            None => meta_usize(meta, "input_size", path)?.unwrap_or_else(|| {
                eprintln!("note: {} has no input_size metadata: using --size 224", path.display());
                224
            }),
        };
        let resize = match self.resize {
            Some(r) => r,
            None => meta_usize(meta, "resize", path)?.unwrap_or((size as f64 * 8.0 / 7.0).round() as usize),
        };
        if size == 0 || size > resize {
            return Err(Error::Invalid(format!(
                "--size {size} must be between 1 and --resize {resize}: the evaluation view is a center crop of the resized image"
            )));
        }
        Ok((size, resize))
    }
}

fn meta_usize(meta: &BTreeMap<String, String>, key: &str, path: &Path) -> Result<Option<usize>> {
    match meta.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Weights { path: path.to_path_buf(), reason: format!("metadata '{key}' = '{v}' is not a whole number") }),
    }
}

/// The weights file `--weights` names: the file itself, or for a run folder of `fgssl pretrain`/`finetune` its
/// `export/{file}`.
pub fn resolve_weights(path: &Path, file: &str) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let exported = path.join("export").join(file);
    if exported.is_file() {
        return Ok(exported);
    }
    Err(Error::Invalid(format!(
        "{}: a folder without export/{file}: give a weights file, or the run folder of a finished `fgssl pretrain`/`fgssl finetune`",
        path.display()
    )))
}

/// Where data-set caches go by default: next to the run folder when the weights are its export (so `eval` reuses
/// the caches `finetune` built), else next to the weights file.
pub fn cache_anchor(weights: &Path) -> PathBuf {
    match weights.parent() {
        Some(export) if export.file_name().is_some_and(|n| n == "export") => export.to_path_buf(),
        _ => weights.to_path_buf(),
    }
}

fn werr(sd: &StateDict, reason: impl Into<String>) -> CliError {
    CliError::from(Error::Weights { path: sd.path.clone(), reason: reason.into() })
}

/// A whole FG-SSL model read from a file, with its class names.
pub struct ModelFile {
    pub model: Fgssl,
    pub reg: Registry,
    pub host: HostState,
    pub class_names: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub path: PathBuf,
}

/// Reads an FG-SSL model with classifiers (the output of `fgssl finetune`). The architecture comes from `--arch` or
/// the `arch` metadata (a file with neither is refused: its architecture is unknown); F and P from the flags, the
/// metadata or the tensor shapes; K from the classifier's shape; the class names from `--class-names`, the
/// `class_names` metadata, or `class_0..`. Every tensor of the model must be in the file with its shape; a file
/// without classifiers (a pretraining output) is refused with a hint.
pub fn load_classifier(args: &ModelFileArgs) -> CliResult<ModelFile> {
    let sd = weights::read_state_dict(&resolve_weights(&args.weights, "model.safetensors")?)?;
    let meta = &sd.metadata;
    let arch = match (args.arch, meta.get("arch")) {
        (Some(a), _) => a,
        (None, Some(s)) => s.parse::<Arch>().map_err(|e| werr(&sd, format!("metadata arch '{s}': {e}")))?,
        (None, None) => {
            return Err(werr(
                &sd,
                "has no fgssl metadata (no 'arch' in its safetensors __metadata__), so its architecture is unknown: it was not \
                 written by `fgssl finetune`. Pass --arch (and --embed-dim, --pooled-dim, --class-names as needed) to read it anyway",
            ))
        }
    };
    let Some(classifier) = sd.get("classifier_concat.weight") else {
        let stage = meta.get("stage").map(|s| format!(" (stage: {s})")).unwrap_or_default();
        return Err(werr(
            &sd,
            format!(
                "has no classifiers (classifier1..3, classifier_concat){stage}: it is a pretraining output or a bare backbone, which \
                 cannot predict classes. Fine-tune it first (`fgssl finetune --init {}`), or use `fgssl knn` / `fgssl embed` on its features",
                sd.path.display()
            ),
        ));
    };
    if classifier.shape.len() != 2 || classifier.shape[0] == 0 {
        return Err(werr(&sd, format!("classifier_concat.weight has shape {:?}, expected [classes, F]", classifier.shape)));
    }
    let k = classifier.shape[0];
    let dim_of = |flag: Option<usize>, key: &str, tensor: &str, axis: usize| -> CliResult<usize> {
        if let Some(v) = flag {
            return Ok(v);
        }
        if let Some(v) = meta_usize(meta, key, &sd.path)? {
            return Ok(v);
        }
        sd.get(tensor)
            .and_then(|t| t.shape.get(axis).copied())
            .ok_or_else(|| werr(&sd, format!("no '{key}' metadata and no '{tensor}' tensor to read it from; pass --{}", key.replace('_', "-"))))
    };
    let embed_dim = dim_of(args.embed_dim, "embed_dim", "conv_block1.0.conv.weight", 0)?;
    let pooled_dim = dim_of(args.pooled_dim, "pooled_dim", "conv_block1.1.conv.weight", 0)?;
    let class_names = match (&args.class_names, meta.get("class_names")) {
        (Some(names), _) => names.clone(),
        (None, Some(json)) => {
            serde_json::from_str::<Vec<String>>(json).map_err(|e| werr(&sd, format!("metadata class_names is not a JSON list of strings ({e})")))?
        }
        (None, None) => (0..k).map(|c| format!("class_{c}")).collect(),
    };
    if class_names.len() != k {
        return Err(werr(&sd, format!("{} class names ({}) for a classifier of {k} classes", class_names.len(), class_names.join(", "))));
    }
    // When --arch overrides the metadata, say so in any error: it is the likely cause.
    let hint = match (args.arch, meta.get("arch")) {
        (Some(a), Some(m)) if a.to_string() != *m => format!(" (--arch {a} overrides the file's metadata, which says {m})"),
        _ => String::new(),
    };
    let cfg = FgsslConfig { arch, embed_dim, pooled_dim: Some(pooled_dim), num_classes: Some(k) };
    let (model, reg) = Fgssl::new(cfg, 1.0);
    let mut host = HostState::init(&reg, 0);
    let report = reg.load(&sd, &mut host).map_err(|e| match e {
        Error::ShapeMismatch { .. } => CliError::from(Error::Invalid(format!(
            "{e} (the model was built as {arch}, F {embed_dim}, P {pooled_dim}, {k} classes: does the file hold another architecture?){hint}"
        ))),
        e => CliError::from(e),
    })?;
    if !report.missing.is_empty() {
        return Err(werr(
            &sd,
            format!(
                "does not hold a whole FG-SSL {arch} model: {} tensors missing ({}){hint}; run `fgssl info {}` to see what it holds",
                report.missing.len(),
                weights::abbreviate(&report.missing, 4),
                sd.path.display()
            ),
        ));
    }
    let extra_backbone: Vec<String> = report.unexpected.iter().filter(|k| super::is_backbone_key(k)).cloned().collect();
    if !extra_backbone.is_empty() {
        return Err(werr(
            &sd,
            format!(
                "does not fit {arch}: it has backbone tensors {arch} lacks ({}), so it holds a deeper ResNet{hint}",
                weights::abbreviate(&extra_backbone, 4)
            ),
        ));
    }
    if !report.unexpected.is_empty() {
        eprintln!(
            "note: {}: ignoring {} tensors the model does not have ({})",
            sd.path.display(),
            report.unexpected.len(),
            weights::abbreviate(&report.unexpected, 4)
        );
    }
    eprintln!("model: {} ({arch}, F {embed_dim}, P {pooled_dim}, {k} classes: {})", sd.path.display(), class_names.join(", "));
    Ok(ModelFile { model, reg, host, class_names, metadata: sd.metadata.clone(), path: sd.path.clone() })
}

/// The backbone architecture of a weights file: `--arch`, else the `arch` metadata, else the one ResNet whose
/// backbone the tensors fit exactly (torchvision files carry no metadata).
pub fn backbone_arch(sd: &StateDict, flag: Option<Arch>) -> CliResult<Arch> {
    if let Some(a) = flag {
        return Ok(a);
    }
    if let Some(s) = sd.metadata.get("arch") {
        return s.parse::<Arch>().map_err(|e| werr(sd, format!("metadata arch '{s}': {e}")));
    }
    let fits: Vec<Arch> = Arch::ALL
        .into_iter()
        .filter(|&a| {
            let (_, reg) = crate::model::resnet::ResNet::new(a, None, false);
            backbone_fit(sd, &reg).fits()
        })
        .collect();
    match fits.as_slice() {
        [a] => {
            eprintln!("note: {} has no arch metadata; its tensors fit {a}", sd.path.display());
            Ok(*a)
        }
        _ => Err(werr(
            sd,
            format!("has no arch metadata and its tensors fit no ResNet backbone; pass --arch (run `fgssl info {}`)", sd.path.display()),
        )),
    }
}

/// Loads the data set of `source` for a model with `class_names`. An ISIC 2017 folder is read with the task whose
/// classes are the model's (the task is a property of the model, so `--task` need not be repeated).
pub fn load_dataset_for(source: &SourceArgs, class_names: &[String], unlabelled: bool) -> Result<Dataset> {
    let ds = source.load(unlabelled)?;
    if ds.format == DatasetKind::Isic2017.name() && ds.class_names != class_names {
        for task in [Isic2017Task::Melanoma, Isic2017Task::SeborrheicKeratosis, Isic2017Task::ThreeClass] {
            let other = SourceArgs { task, ..source.clone() }.load(unlabelled)?;
            if other.class_names == class_names {
                eprintln!("note: ISIC 2017 read with --task {task}, the task the model was trained for");
                return Ok(other);
            }
        }
    }
    Ok(ds)
}

/// Errors unless the data set's classes are the model's (same names, same order).
pub fn check_same_classes(model: &[String], ds: &Dataset) -> Result<()> {
    if model != ds.class_names.as_slice() {
        return Err(Error::Invalid(format!(
            "the model's classes [{}] are not the data set's [{}] (same names in the same order are needed to score it)",
            model.join(", "),
            ds.class_names.join(", ")
        )));
    }
    Ok(())
}

/// Images to run inference on, each `side x side` RGB8 before the center crop.
pub enum Images<'a> {
    /// A decoded cache (data sets: built once, reused by `finetune`'s evaluation and later commands).
    Cache(ImageCache),
    /// Samples decoded and resized on the fly (loose images: nothing written besides the output).
    Decode { ds: &'a Dataset, indices: Vec<usize>, side: usize, fundus: Option<FundusCrop> },
}

impl Images<'_> {
    /// Loose images of `ds` decoded on the fly; APTOS images get the fundus crop, as in the caches.
    pub fn decode(ds: &Dataset, indices: Vec<usize>, side: usize) -> Images<'_> {
        let fundus = (ds.format == DatasetKind::Aptos2019.name()).then(FundusCrop::default);
        Images::Decode { ds, indices, side, fundus }
    }

    pub fn len(&self) -> usize {
        match self {
            Images::Cache(c) => c.len(),
            Images::Decode { indices, .. } => indices.len(),
        }
    }

    pub fn side(&self) -> usize {
        match self {
            Images::Cache(c) => c.size(),
            Images::Decode { side, .. } => *side,
        }
    }

    /// The pixels of rows `rows` (positions in this set), one image after the other.
    fn read(&self, rows: &[usize], buf: &mut Vec<u8>) -> Result<()> {
        match self {
            Images::Cache(c) => {
                buf.resize(rows.len() * c.image_bytes(), 0);
                c.batch(rows, buf)
            }
            Images::Decode { ds, indices, side, fundus } => {
                let decoded: Vec<Result<Vec<u8>>> = rows
                    .par_iter()
                    .map(|&r| {
                        let (w, h, rgb) = ds.load_rgb8(&ds.samples[indices[r]])?;
                        Ok(cache::preprocess(w as usize, h as usize, rgb, *side, fundus.as_ref()))
                    })
                    .collect();
                buf.clear();
                for d in decoded {
                    buf.extend_from_slice(&d?);
                }
                Ok(())
            }
        }
    }

    /// Calls `f` with the evaluation view (center crop `size`, METHOD.md §9) of every image, `batch` at a time, in order.
    pub fn for_each_view<B: Backend>(&self, b: &B, size: usize, batch: usize, mut f: impl FnMut(&Tensor<B>) -> Result<()>) -> Result<()> {
        let rows: Vec<usize> = (0..self.len()).collect();
        let mut buf = Vec::new();
        for chunk in rows.chunks(batch.max(1)) {
            self.read(chunk, &mut buf)?;
            let images = ImageBatch::upload(b, &buf, chunk.len(), self.side())?;
            f(&augment::test_view(b, &images, size)?)?;
        }
        Ok(())
    }
}

/// Summed-head and concat-head logits (`[n, K]` each) of every image.
pub fn predict_logits<B: Backend>(b: &B, m: &ModelFile, images: &Images, size: usize, batch: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut st = crate::model::State::upload(b, &m.reg, &m.host)?;
    let (mut sum, mut cat) = (Vec::new(), Vec::new());
    images.for_each_view(b, size, batch, |x| {
        let (s, c) = m.model.predict(b, &mut st, x)?;
        sum.extend(s.to_host(b)?);
        cat.extend(c.to_host(b)?);
        Ok(())
    })?;
    Ok((sum, cat))
}
