//! `fgssl finetune`: supervised fine-tuning with a fraction of the labels (METHOD.md §8), then evaluation on the
//! held-out splits with the data set's metrics (METHOD.md §9, DATA.md §6). Three schedules: progressive (FG-SSL,
//! four steps per batch), plain (one CE step on the concat head) and linear-probe (a linear classifier on the
//! frozen backbone's pooled features).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::training_args::{build_model, model_metadata, save_model, DataArgs, Logger, ModelArgs, OptimArgs};
use super::{select_backend, CliResult, Selected};
use crate::augment::{self, FinetuneViewConfig, Grids, ImageBatch, Jigsaw, Policy};
use crate::backend::Backend;
use crate::data::cache::ImageCache;
use crate::data::split::label_subset;
use crate::data::{Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::metrics::Report;
use crate::model::fgssl::Fgssl;
use crate::model::{HostState, State};
use crate::training::epochs::{finetune, predict, FinetuneConfig, LoopConfig};
use crate::training::finetune::FinetuneMode;
use crate::training::probe::LinearProbe;
use crate::training::ssl::BnStats;

/// Which fine-tuning schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Schedule {
    /// Four progressive steps per batch (FG-SSL / PMG).
    Progressive,
    /// One cross-entropy step on the concat head per batch.
    Plain,
    /// A linear classifier on the frozen backbone's pooled layer4 features.
    LinearProbe,
}

#[derive(Args, Debug)]
#[command(
    about = "Fine-tune an FG-SSL model with a fraction of the labels and evaluate it",
    after_help = "Example:\n  fgssl finetune --data synth --arch resnet18 --init ssl.safetensors --size 64 --resize 72 \\\n    \
                  --grids 8,4,2 --label-fraction 0.1 --epochs 10 --batch-size 16 --out ft.safetensors\n\n\
                  Images are cached at RESIZE x RESIZE; training views follow METHOD.md §8 (flips, plus a random resized\n\
                  crop for ISIC, a center crop otherwise) at SIZE x SIZE; evaluation uses the center crop. The\n\
                  prediction is the argmax of the summed logits of the four heads; the concat head alone is reported too."
)]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub optim: OptimArgs,
    /// progressive, plain or linear-probe.
    #[arg(long, value_enum, default_value_t = Schedule::Progressive)]
    pub schedule: Schedule,
    /// Fraction of the training labels used (stratified per class, seeded by --seed; at least one per class).
    #[arg(long, default_value_t = 1.0)]
    pub label_fraction: f64,
    /// Side of the training and evaluation views.
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Side of the cached images the views are cropped from (256 in the reference).
    #[arg(long, default_value_t = 256)]
    pub resize: usize,
    /// Jigsaw grids, finest first (default: 32,16,8 for APTOS, 16,8,4 otherwise).
    #[arg(long)]
    pub grids: Option<Grids>,
    #[arg(long, default_value_t = Jigsaw::Uniform)]
    pub jigsaw: Jigsaw,
    #[arg(long, default_value_t = BnStats::Minimal)]
    pub bn_stats: BnStats,
    /// Output weights file (safetensors, written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Metrics log: one JSON object per iteration, then one per evaluated split.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

pub fn run(args: FinetuneArgs) -> CliResult {
    match select_backend(args.optim.device)? {
        Selected::Cpu(b) => run_on(&b, args),
        Selected::Cuda(b) => run_on(b.as_ref(), args),
    }
}

/// How the evaluated splits are scored: the model's four heads, or the linear probe on frozen features.
enum Evaluator<B: Backend> {
    Heads,
    Probe(Box<(LinearProbe, State<B>)>),
}

fn labels_of(ds: &Dataset, indices: &[usize]) -> Vec<u32> {
    indices.iter().map(|&i| ds.samples[i].label.expect("split indices are labelled") as u32).collect()
}

fn run_on<B: Backend>(b: &B, args: FinetuneArgs) -> CliResult {
    eprintln!("device: {}", b.name());
    if args.size > args.resize {
        return Err(
            Error::Invalid(format!("--size {} is larger than --resize {}: views are crops of the cached images", args.size, args.resize)).into()
        );
    }
    let (ds, splits) = args.data.load()?;
    let k = ds.class_names.len();
    let grids = args.grids.unwrap_or_else(|| DataArgs::default_grids(&ds));
    grids.check(args.size)?;
    let train = label_subset(&ds, &splits.train, args.label_fraction, args.optim.seed)?;
    eprintln!(
        "labels: {} of {} training images ({:.1}%)",
        train.len(),
        splits.train.len(),
        100.0 * train.len() as f64 / splits.train.len().max(1) as f64
    );
    let split_name = format!("train-{}", args.label_fraction);
    let cache = args.data.cache(&ds, &train, &split_name, args.resize, &args.out)?;
    let labels = labels_of(&ds, &train);
    let (model, reg, host) = build_model(&args.model, Some(k), args.optim.backbone_lr_scale, args.optim.seed)?;
    let mut st = State::upload(b, &reg, &host)?;
    let cfg = LoopConfig { epochs: args.optim.epochs, batch: args.optim.batch_size, schedule: args.optim.schedule()?, seed: args.optim.seed };
    let mut logger = Logger::new(args.log.as_deref())?;

    let evaluator = match args.schedule {
        Schedule::Progressive | Schedule::Plain => {
            let policy = if ds.format == DatasetKind::Isic2017.name() || ds.format == DatasetKind::Isic2018.name() {
                Policy::FinetuneIsic
            } else {
                Policy::FinetuneAptos
            };
            let views = FinetuneViewConfig { out: args.size, grids, jigsaw: args.jigsaw, recipe: policy.recipe() };
            let mode = if args.schedule == Schedule::Plain { FinetuneMode::Plain } else { FinetuneMode::Progressive };
            let ft = FinetuneConfig { mode, bn_stats: args.bn_stats, views };
            let mut opt = args.optim.optimizer();
            eprintln!(
                "finetune ({mode}): {} on {} images of {}, {}x{} from {}px, grids {grids}, {} epochs of batch {}, {} lr {}",
                model.cfg.arch,
                cache.len(),
                ds.format,
                args.size,
                args.size,
                args.resize,
                cfg.epochs,
                cfg.batch,
                opt.kind.name(),
                args.optim.lr
            );
            finetune(b, &model, &mut st, &mut opt, &cache, &labels, &cfg, &ft, |it| logger.log("finetune", it))?;
            logger.flush_epoch();
            Evaluator::Heads
        }
        Schedule::LinearProbe => {
            let probe = LinearProbe::new(model.cfg.arch.feature_dim(), k);
            let features = pooled_features(b, &model, &mut st, &cache, args.size)?;
            let mut probe_st = State::upload(b, &probe.registry, &HostState::init(&probe.registry, args.optim.seed))?;
            let mut opt = args.optim.optimizer();
            let losses = probe.train(b, &mut probe_st, &mut opt, &cfg.schedule, &features, &labels, cfg.epochs, cfg.batch, cfg.seed)?;
            eprintln!(
                "linear probe: {} epochs on {} frozen features, loss {:.4} -> {:.4}",
                cfg.epochs,
                cache.len(),
                losses[0],
                losses[losses.len() - 1]
            );
            Evaluator::Probe(Box::new((probe, probe_st)))
        }
    };

    for (name, indices) in [("val", &splits.val), ("test", &splits.test)] {
        if indices.is_empty() {
            continue;
        }
        let c = args.data.cache(&ds, indices, name, args.resize, &args.out)?;
        let (logits, cat) = match &evaluator {
            Evaluator::Heads => predict(b, &model, &mut st, &c, args.size, 64).map(|(sum, cat)| (sum, Some(cat)))?,
            Evaluator::Probe(probe) => {
                let (probe, probe_st) = probe.as_ref();
                (probe.logits(b, &probe_st.params, &pooled_features(b, &model, &mut st, &c, args.size)?)?, None)
            }
        };
        let truth: Vec<usize> = labels_of(&ds, indices).iter().map(|&l| l as usize).collect();
        let report = Report::new(&truth, &softmax_rows(&logits, k), k, &ds.class_names, ds.format == DatasetKind::Aptos2019.name())?;
        println!("{name} ({} images):\n{report}", truth.len());
        if let Some(cat) = cat {
            let cat_report = Report::new(&truth, &softmax_rows(&cat, k), k, &ds.class_names, false)?;
            println!("{name}, concat head alone: accuracy {:.4}", cat_report.accuracy);
        }
        logger.write_json(&serde_json::json!({"kind": "eval", "split": name, "metrics": report.to_json()}))?;
    }
    let host = st.download(b)?;
    save_model(&args.out, &reg, &host, model_metadata(&model, "finetune", grids, &ds.class_names))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Evaluation-mode global-average-pooled layer4 features of the center-crop views, `[n, C5]` on the host.
fn pooled_features<B: Backend>(b: &B, model: &Fgssl, st: &mut State<B>, cache: &ImageCache, size: usize) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    let mut host = Vec::new();
    let rows: Vec<usize> = (0..cache.len()).collect();
    for chunk in rows.chunks(64) {
        host.resize(chunk.len() * cache.image_bytes(), 0);
        cache.batch(chunk, &mut host)?;
        let images = ImageBatch::upload(b, &host, chunk.len(), cache.size())?;
        let x = augment::test_view(b, &images, size)?;
        out.extend(model.backbone.embed(b, st, &x)?.to_host(b)?);
    }
    Ok(out)
}

/// Row-wise softmax (f64 inside), for the AUC-type metrics (METHOD.md §9).
fn softmax_rows(logits: &[f32], k: usize) -> Vec<f32> {
    logits
        .chunks_exact(k)
        .flat_map(|row| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / s) as f32)
        })
        .collect()
}
