//! What `fgssl pretrain` and `fgssl finetune` share: the data set, its split and cache, the model and its
//! initial weights, the optimizer and the run folder's resume flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use super::checkpoints::BestMetric;
use super::dataset::SourceArgs;
use super::metrics_log::num;
use super::progress::{catch_interrupts, set_quiet, ProgressReport};
use super::run_dir::{log_line, say, Resume, RunDir};
use super::{is_backbone_key, precision, select_backend, CliError, CliResult, Device, Selected};
use crate::augment::Grids;
use crate::backend::{Backend, Precision};
use crate::data::cache::{CacheOptions, ImageCache};
use crate::data::fundus::FundusCrop;
use crate::data::split::{make_splits, SplitConfig, Splits};
use crate::data::{Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::model::fgssl::{Fgssl, FgsslConfig};
use crate::model::resnet::Arch;
use crate::model::{HostState, Registry};
use crate::training::checkpoint;
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
        say!("cache: {} images of {size}x{size} ({}) in {}", cache.len(), if cache.was_built() { "built" } else { "reused" }, dir.display());
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
    /// Initial weights (safetensors), with a fresh schedule: a torchvision backbone (ImageNet init, METHOD.md §1),
    /// an fgssl export or checkpoint, or a run folder of `fgssl pretrain`/`finetune` (its export/model.safetensors,
    /// else its last checkpoint). Without it everything starts from --seed.
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
    /// What convolutions multiply in: fp32, or bf16 (bf16 operands, f32 accumulation; the rest stays f32)
    /// [default: fp32; with --resume, the checkpoint's].
    #[arg(long)]
    pub precision: Option<Precision>,
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
        let sd = checkpoint::model_only(weights::read_state_dict(&init_file(path)?)?);
        let report = reg.load(&sd, &mut host)?;
        let missing_backbone: Vec<String> = report.missing.iter().filter(|k| is_backbone_key(k)).cloned().collect();
        if !missing_backbone.is_empty() {
            return Err(CliError::from(Error::Weights {
                path: sd.path.clone(),
                reason: format!("does not hold a {} backbone: {} missing", m.arch, weights::abbreviate(&missing_backbone, 5)),
            }));
        }
        say!("init {}: {report}", sd.path.display());
    } else {
        say!("init: no --init given: every layer initialised from seed {seed} (METHOD.md §1 starts from ImageNet weights)");
    }
    Ok((model, reg, host))
}

/// The weights file `--init PATH` names: PATH itself, or for a run folder its export (else its last checkpoint).
fn init_file(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let candidates = [path.join("export").join("model.safetensors"), path.join("checkpoints").join("last.safetensors")];
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "--init {}: a folder, but not a run folder (no export/model.safetensors, no checkpoints/last.safetensors)",
            path.display()
        ))
    })
}

/// `--out`, `--resume`, `--overwrite`: the run folder.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Run folder: config.json, splits.json, metrics.jsonl/.csv, train.log, checkpoints/, export/ (created).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Continue a run exactly (weights, optimizer state, epoch and iteration): `auto` takes RUN_DIR's latest
    /// checkpoint (a fresh start when it has none), or give a checkpoint file or run folder.
    #[arg(long, value_name = "auto|PATH")]
    pub resume: Option<Resume>,
    /// Start afresh in a RUN_DIR that already holds a run, replacing its files.
    #[arg(long)]
    pub overwrite: bool,
    /// Read flags from a TOML file: keys are the long flag names (`batch_size = 16`, `grids = [8, 4, 2]`,
    /// `overwrite = true`); flags given on the command line override the file's.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// What checkpoints/best.safetensors is best by: loss (lowest epoch loss), val-accuracy, val-balanced-accuracy
    /// or none [default: pretrain: loss; finetune: val-balanced-accuracy when there is a validation split, else loss].
    #[arg(long, value_name = "METRIC")]
    pub best_metric: Option<BestMetric>,
    /// Also keep the last N epochs' checkpoints as checkpoints/epoch-NNNN.safetensors (0: only last and best).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_checkpoints: usize,
    /// No progress bar, progress lines or other notes on stderr (errors still print; train.log gets everything).
    #[arg(long)]
    pub quiet: bool,
    /// Seconds between the plain progress lines written to train.log (and to stderr when it is not a terminal).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub log_interval: f64,
}

impl RunArgs {
    /// The settings of this group that config.json records (free to change on resume).
    pub fn run_config(&self, best: BestMetric) -> Value {
        json!({"out": self.out, "config_file": self.config, "best_metric": best.name(), "keep_checkpoints": self.keep_checkpoints,
               "quiet": self.quiet, "log_interval": self.log_interval})
    }

    /// Applies `--quiet` and catches Ctrl-C; checks the numbers clap cannot.
    pub fn start(&self) -> Result<()> {
        if !(self.log_interval.is_finite() && self.log_interval >= 0.0) {
            return Err(Error::Invalid(format!("--log-interval {}: expected a number of seconds >= 0", self.log_interval)));
        }
        set_quiet(self.quiet);
        catch_interrupts();
        Ok(())
    }

    /// The progress report of a loop of `per_epoch` iterations per epoch, `epochs` epochs, starting at `first`.
    pub fn progress(&self, per_epoch: usize, epochs: usize, first: usize) -> ProgressReport {
        ProgressReport::new(per_epoch * epochs, first, epochs, std::time::Duration::from_secs_f64(self.log_interval))
    }
}

/// `fgssl pretrain` and `fgssl finetune`: what [`run_training`] needs to drive either.
pub trait TrainingCommand: Sized {
    fn run_args(&self) -> &RunArgs;
    fn optim_args(&self) -> &OptimArgs;
    /// The command itself, on the chosen backend, in the created run folder.
    fn run_on<B: Backend>(self, b: &B, run: &RunDir) -> CliResult;
}

/// Runs a training command: progress and signal handling, the run folder, the backend, an out-of-memory error told
/// in the command's terms, and any error written to train.log as well.
pub fn run_training<C: TrainingCommand>(cmd: C) -> CliResult {
    cmd.run_args().start()?;
    let run = RunDir::create(&cmd.run_args().out, cmd.run_args().resume.is_some(), cmd.run_args().overwrite)?;
    let batch_size = cmd.optim_args().batch_size;
    // A resumed run continues in its checkpoint's precision (an explicit other one is refused).
    let precision = precision::for_training(&run, cmd.run_args().resume.as_ref(), cmd.optim_args().precision);
    let result = match precision.map_err(CliError::from).and_then(|p| select_backend(cmd.optim_args().device, p)) {
        Ok(Selected::Cpu(b)) => cmd.run_on(&b, &run),
        Ok(Selected::Cuda(b)) => cmd.run_on(b.as_ref(), &run),
        Err(e) => Err(e),
    }
    .map_err(|e| explain_out_of_memory(e, batch_size));
    if let Err(e) = &result {
        log_line(&format!("error: {}", e.message));
    }
    result
}

/// A failed CUDA allocation, told in the terms of the command: the batch size tried and a smaller one to try.
pub fn explain_out_of_memory(e: CliError, batch_size: usize) -> CliError {
    let oom = e.message.contains("backend cuda") && ["cannot allocate", "OUT_OF_MEMORY", "out of memory"].iter().any(|s| e.message.contains(s));
    if !oom {
        return e;
    }
    let smaller = (batch_size / 2).max(1);
    CliError {
        code: e.code,
        message: format!("out of GPU memory with --batch-size {batch_size}: try --batch-size {smaller} (or a smaller --size)\n({})", e.message),
    }
}

impl OptimArgs {
    /// The optimizer and schedule settings a resumed run must share with its checkpoint (epochs excluded: a finished
    /// run can be extended).
    pub fn training_config(&self) -> Value {
        json!({
            "batch_size": self.batch_size, "lr": num(self.lr), "backbone_lr_scale": num(self.backbone_lr_scale),
            "optimizer": self.optimizer.name(), "weight_decay": num(self.optimizer().kind.weight_decay()), "warmup": self.warmup,
            "clip_grad_norm": self.clip_grad_norm.map(num), "seed": self.seed, "schedule": "cosine per epoch",
        })
    }
}

impl ModelArgs {
    pub fn training_config(&self) -> Value {
        json!({"arch": self.arch.to_string(), "embed_dim": self.embed_dim, "pooled_dim": self.pooled_dim})
    }
}

impl DataArgs {
    pub fn training_config(&self) -> Value {
        let data = std::fs::canonicalize(&self.source.data).unwrap_or_else(|_| self.source.data.clone());
        json!({"data": data.display().to_string(), "dataset": self.source.kind.map(|k| k.name()), "task": self.source.task.to_string(),
               "csv": self.source.csv.as_ref().map(|p| p.display().to_string()), "images": self.source.images.as_ref().map(|p| p.display().to_string()),
               "npz": self.source.npz, "split_seed": self.split_seed})
    }
}

/// Merges JSON objects (later keys win).
pub fn merge(parts: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for p in parts {
        if let Some(o) = p.as_object() {
            out.extend(o.clone());
        }
    }
    Value::Object(out)
}

/// Metadata every weights file carries (ANCHORS.md §2.2 #14).
/// `resize` is the side of the cached images the `size` views are cropped from (the evaluation transform:
/// Resize(resize) then CenterCrop(size)); `predict` and `eval` read both.
pub fn model_metadata(model: &Fgssl, stage: &str, grids: Grids, size: usize, resize: usize, classes: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("input_size".into(), size.to_string());
    m.insert("resize".into(), resize.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_cuda_allocation_names_the_batch_size_and_a_smaller_one() {
        // What the CUDA pool returns when cuMemAlloc fails twice (src/backend/cuda/pool.rs).
        let pool = Error::Backend {
            backend: "cuda".into(),
            reason: "cannot allocate 6422528 f32 (8388608 with rounding): DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        };
        let e = explain_out_of_memory(CliError::from(pool), 64);
        assert_eq!(e.code, 1);
        assert!(e.message.starts_with("out of GPU memory with --batch-size 64: try --batch-size 32"), "{}", e.message);
        assert!(e.message.contains("cannot allocate 6422528 f32"), "the driver's reason is kept: {}", e.message);
        let e = explain_out_of_memory(CliError::from(pool_error_after_training()), 1);
        assert!(e.message.contains("--batch-size 1: try --batch-size 1"), "{}", e.message);
        // Anything else passes unchanged.
        let other = explain_out_of_memory(CliError::from(Error::Invalid("cannot allocate a name".into())), 64);
        assert_eq!(other.message, "cannot allocate a name");
    }

    /// The pool's error after the observer added where the last checkpoint is (`RunObserver::explain`).
    fn pool_error_after_training() -> Error {
        let pool = Error::Backend { backend: "cuda".into(), reason: "cannot allocate 8 f32 (8 with rounding): DriverError".into() };
        Error::Invalid(format!("{pool}\nthe last good checkpoint (after epoch 3) is runs/x/checkpoints/last.safetensors"))
    }
}
