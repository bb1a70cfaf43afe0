//! What `fgssl pretrain` and `fgssl finetune` share: the data set, its split and cache, the model and its
//! initial weights, the optimizer, the metrics log and the weights file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::dataset::SourceArgs;
use super::{is_backbone_key, CliError, CliResult, Device};
use crate::augment::Grids;
use crate::data::cache::{CacheOptions, ImageCache};
use crate::data::fundus::FundusCrop;
use crate::data::split::{make_splits, SplitConfig, Splits};
use crate::data::{Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::model::fgssl::{Fgssl, FgsslConfig};
use crate::model::resnet::Arch;
use crate::model::{HostState, Registry};
use crate::training::epochs::IterationLog;
use crate::training::optim::{Optimizer, OptimizerKind};
use crate::training::schedule::Schedule;
use crate::weights;

/// Which data set and how it is split and cached.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Seed of the stratified train/val/test split of data sets without an official one (the reference's 18).
    #[arg(long, default_value_t = 18)]
    pub split_seed: u64,
    /// Folder of the decoded-image caches (default: $FGSSL_CACHE, else .fgssl-cache next to --out).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

impl DataArgs {
    pub fn load(&self) -> Result<(Dataset, Splits)> {
        let ds = self.source.load(false)?;
        let splits = make_splits(&ds, &SplitConfig { seed: self.split_seed, ..SplitConfig::default() })?;
        Ok((ds, splits))
    }

    fn cache_dir(&self, out: &Path) -> PathBuf {
        self.cache_dir
            .clone()
            .or_else(|| std::env::var_os("FGSSL_CACHE").map(PathBuf::from))
            .unwrap_or_else(|| out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join(".fgssl-cache"))
    }

    /// The decoded `size`-pixel cache of `indices` (APTOS images are cropped to the retina first).
    pub fn cache(&self, ds: &Dataset, indices: &[usize], split: &str, size: usize, out: &Path) -> Result<ImageCache> {
        let mut opts = CacheOptions::new(split, size);
        if ds.format == DatasetKind::Aptos2019.name() {
            opts.fundus = Some(FundusCrop::default());
        }
        let dir = self.cache_dir(out);
        let cache = ImageCache::open_or_build(&dir, ds, indices, &opts, |s| ds.load_rgb8(s))?;
        eprintln!("cache: {} images of {size}x{size} ({}) in {}", cache.len(), if cache.was_built() { "built" } else { "reused" }, dir.display());
        Ok(cache)
    }

    /// Grids for this data set when none are given: 32-16-8 for APTOS, 16-8-4 otherwise (METHOD.md §4).
    pub fn default_grids(ds: &Dataset) -> Grids {
        if ds.format == DatasetKind::Aptos2019.name() {
            Grids::APTOS
        } else {
            Grids::ISIC
        }
    }
}

/// The FG-SSL model's sizes and where its first weights come from.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Backbone: resnet18, resnet34 or resnet50.
    #[arg(long, default_value = "resnet50", value_parser = |s: &str| s.parse::<Arch>().map_err(|e| e.to_string()))]
    pub arch: Arch,
    /// Embedding width F.
    #[arg(long, default_value_t = 512)]
    pub embed_dim: usize,
    /// Pooled width P (default: 1024 for resnet50, C5/2 otherwise).
    #[arg(long)]
    pub pooled_dim: Option<usize>,
    /// Initial weights (safetensors): a torchvision backbone (ImageNet init, METHOD.md §1) or a whole FG-SSL model
    /// written by `fgssl pretrain`/`finetune`. Without it everything starts from --seed.
    #[arg(long)]
    pub init: Option<PathBuf>,
}

/// Optimizer, schedule and run length.
#[derive(Args, Debug, Clone)]
pub struct OptimArgs {
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Learning rate of the new layers (heads); the backbone gets --backbone-lr-scale times it.
    #[arg(long, default_value_t = 0.002)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.1)]
    pub backbone_lr_scale: f32,
    /// sgd (momentum 0.9, weight decay 5e-4, METHOD.md §10), lars or adamw.
    #[arg(long, default_value = "sgd", value_parser = |s: &str| s.parse::<OptimizerKind>().map_err(|e| e.to_string()))]
    pub optimizer: OptimizerKind,
    /// Override the optimizer's weight decay.
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Linear warm-up epochs before the per-epoch cosine schedule.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Clip the global gradient norm of each step to this value.
    #[arg(long)]
    pub clip_grad_norm: Option<f32>,
    /// Seed of the initialisation, data order, augmentation and jigsaw permutations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: Device,
}

impl OptimArgs {
    pub fn optimizer(&self) -> Optimizer {
        let kind = self.weight_decay.map_or(self.optimizer, |wd| self.optimizer.with_weight_decay(wd));
        Optimizer::new(kind).with_clip_grad_norm(self.clip_grad_norm)
    }

    pub fn schedule(&self) -> Result<Schedule> {
        let s = Schedule::cosine(self.lr, self.epochs).with_warmup(self.warmup);
        s.validate()?;
        Ok(s)
    }
}

/// Builds the model and its initial numbers: from `--init` (a torchvision backbone or a whole FG-SSL model; every
/// tensor of the file must fit, and at least the whole backbone must be there) or from the seed.
pub fn build_model(m: &ModelArgs, classes: Option<usize>, backbone_lr_scale: f32, seed: u64) -> CliResult<(Fgssl, Registry, HostState)> {
    let cfg = FgsslConfig { arch: m.arch, embed_dim: m.embed_dim, pooled_dim: m.pooled_dim, num_classes: classes };
    let (model, reg) = Fgssl::new(cfg, backbone_lr_scale);
    let mut host = HostState::init(&reg, seed);
    if let Some(path) = &m.init {
        let sd = weights::read_state_dict(path)?;
        let report = reg.load(&sd, &mut host)?;
        let missing_backbone: Vec<String> = report.missing.iter().filter(|k| is_backbone_key(k)).cloned().collect();
        if !missing_backbone.is_empty() {
            return Err(CliError::from(Error::Weights {
                path: sd.path.clone(),
                reason: format!("does not hold a {} backbone: {} missing", m.arch, weights::abbreviate(&missing_backbone, 5)),
            }));
        }
        eprintln!("init {}: {report}", sd.path.display());
    } else {
        eprintln!("init: no --init given: every layer initialised from seed {seed} (METHOD.md §1 starts from ImageNet weights)");
    }
    Ok((model, reg, host))
}

/// Writes the whole model (backbone under torchvision names, heads under theirs) atomically, with metadata.
pub fn save_model(path: &Path, reg: &Registry, host: &HostState, meta: BTreeMap<String, String>) -> Result<()> {
    reg.save(path, host, &meta)
}

/// Metadata every weights file carries (ANCHORS.md §2.2 #14).
pub fn model_metadata(model: &Fgssl, stage: &str, grids: Grids, classes: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("method".into(), "fgssl".into());
    m.insert("stage".into(), stage.into());
    m.insert("arch".into(), model.cfg.arch.to_string());
    m.insert("embed_dim".into(), model.cfg.embed_dim.to_string());
    m.insert("pooled_dim".into(), model.cfg.pooled().to_string());
    m.insert("grids".into(), grids.to_string());
    m.insert("mean".into(), "0.485,0.456,0.406".into());
    m.insert("std".into(), "0.229,0.224,0.225".into());
    if !classes.is_empty() {
        m.insert("num_classes".into(), classes.len().to_string());
        m.insert("class_names".into(), serde_json::to_string(classes).unwrap_or_default());
    }
    m
}

/// Appends one JSON line per iteration to `--log` (when given) and prints one line per epoch to stderr.
pub struct Logger {
    file: Option<std::fs::File>,
    path: Option<PathBuf>,
    epoch: Option<usize>,
    sum: Vec<f64>,
    images: usize,
    seconds: f64,
    iterations: usize,
    /// Sum over iterations of the mean collapse monitor of the steps (SSL only).
    collapse: f64,
}

impl Logger {
    pub fn new(path: Option<&Path>) -> Result<Self> {
        let file = match path {
            Some(p) => Some(std::fs::File::create(p).map_err(|e| Error::io(p, e))?),
            None => None,
        };
        Ok(Logger { file, path: path.map(Path::to_path_buf), epoch: None, sum: Vec::new(), images: 0, seconds: 0.0, iterations: 0, collapse: 0.0 })
    }

    pub fn log(&mut self, kind: &str, it: &IterationLog) -> Result<()> {
        if self.epoch != Some(it.epoch) {
            self.flush_epoch();
            self.epoch = Some(it.epoch);
        }
        if self.sum.len() < it.steps.len() {
            self.sum.resize(it.steps.len(), 0.0);
        }
        for (s, step) in self.sum.iter_mut().zip(&it.steps) {
            *s += step.loss as f64;
        }
        self.collapse += it.steps.iter().map(|s| s.collapse_std as f64).sum::<f64>() / it.steps.len().max(1) as f64;
        self.images += it.images;
        self.seconds += it.seconds;
        self.iterations += 1;
        if let Some(f) = &mut self.file {
            let steps: Vec<_> = it
                .steps
                .iter()
                .map(|s| json!({"loss": s.loss, "on_diag": s.on_diag, "off_diag": s.off_diag, "std_of_l2_normalized": s.collapse_std}))
                .collect();
            let line = json!({"kind": kind, "epoch": it.epoch, "iteration": it.iteration, "lr": it.lr, "images": it.images,
                               "seconds": it.seconds, "images_per_s": it.images as f64 / it.seconds.max(1e-9), "steps": steps});
            writeln!(f, "{line}").map_err(|e| Error::io(self.path.as_deref().unwrap_or(Path::new("log")), e))?;
        }
        Ok(())
    }

    /// Appends one JSON object to the log (when there is one).
    pub fn write_json(&mut self, value: &serde_json::Value) -> Result<()> {
        if let Some(f) = &mut self.file {
            writeln!(f, "{value}").map_err(|e| Error::io(self.path.as_deref().unwrap_or(Path::new("log")), e))?;
        }
        Ok(())
    }

    /// Prints the epoch that just ended: mean loss of each step, throughput.
    pub fn flush_epoch(&mut self) {
        if let (Some(epoch), true) = (self.epoch, self.iterations > 0) {
            let means: Vec<String> = self.sum.iter().map(|s| format!("{:.4}", s / self.iterations as f64)).collect();
            let collapse = self.collapse / self.iterations as f64;
            let monitor = if collapse > 0.0 { format!("  std_of_l2_normalized {collapse:.4}") } else { String::new() };
            eprintln!(
                "epoch {:>3}: step losses [{}]{monitor}  {:.1} img/s",
                epoch + 1,
                means.join(", "),
                self.images as f64 / self.seconds.max(1e-9)
            );
        }
        self.sum.clear();
        self.images = 0;
        self.seconds = 0.0;
        self.iterations = 0;
        self.collapse = 0.0;
    }
}
