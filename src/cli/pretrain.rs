//! `fgssl pretrain`: FG-SSL self-supervised pretraining (METHOD.md §7) on the training split of a data set, labels
//! unused; writes the whole model (backbone + hierarchical blocks + projectors) as safetensors.

use std::path::PathBuf;

use clap::Args;

use super::training_args::{build_model, model_metadata, save_model, DataArgs, Logger, ModelArgs, OptimArgs};
use super::{select_backend, CliResult, Selected};
use crate::augment::{Grids, Jigsaw, SslViewConfig};
use crate::backend::Backend;
use crate::model::State;
use crate::ops::barlow_twins::{BtConfig, BtForm};
use crate::training::epochs::{pretrain, LoopConfig};
use crate::training::ssl::{BnStats, SslConfig};

#[derive(Args, Debug)]
#[command(
    about = "FG-SSL pretraining: jigsaw views at three granularities, Barlow Twins loss, four progressive steps per batch",
    after_help = "Example (the synthetic data set, small and fast on a CPU):\n  \
                  fgssl synth --out synth && fgssl pretrain --data synth --arch resnet18 --size 64 --grids 8,4,2 \\\n    \
                  --epochs 5 --batch-size 16 --out ssl.safetensors\n\n\
                  The SSL views (METHOD.md §5) are made from a decoded u8 cache of the training split at SIZE x SIZE."
)]
pub struct PretrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Side of the views (and of the cache); the grids must divide it.
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Jigsaw grids, finest first (default: 32,16,8 for APTOS, 16,8,4 otherwise).
    #[arg(long)]
    pub grids: Option<Grids>,
    /// Jigsaw permutations: uniform, or swap-loop (the reference code's n^2-cycles).
    #[arg(long, default_value_t = Jigsaw::Uniform)]
    pub jigsaw: Jigsaw,
    /// Barlow Twins form: standard, or reference (the reference code's lambda^2 ||C - I||^2).
    #[arg(long, default_value_t = BtForm::Standard)]
    pub bt_form: BtForm,
    /// Barlow Twins off-diagonal weight.
    #[arg(long, default_value_t = 5e-3)]
    pub lambda: f32,
    /// BN running statistics of the layers a step skips: minimal, or reference (run the whole model every forward).
    #[arg(long, default_value_t = BnStats::Minimal)]
    pub bn_stats: BnStats,
    /// Output weights file (safetensors, written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Metrics log: one JSON object per iteration.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

pub fn run(args: PretrainArgs) -> CliResult {
    match select_backend(args.optim.device)? {
        Selected::Cpu(b) => run_on(&b, args),
        Selected::Cuda(b) => run_on(b.as_ref(), args),
    }
}

fn run_on<B: Backend>(b: &B, args: PretrainArgs) -> CliResult {
    eprintln!("device: {}", b.name());
    let (ds, splits) = args.data.load()?;
    let grids = args.grids.unwrap_or_else(|| DataArgs::default_grids(&ds));
    grids.check(args.size)?;
    let cache = args.data.cache(&ds, &splits.train, "train", args.size, &args.out)?;
    let (model, reg, host) = build_model(&args.model, None, args.optim.backbone_lr_scale, args.optim.seed)?;
    let mut st = State::upload(b, &reg, &host)?;
    let mut opt = args.optim.optimizer();
    let cfg = LoopConfig { epochs: args.optim.epochs, batch: args.optim.batch_size, schedule: args.optim.schedule()?, seed: args.optim.seed };
    let ssl = SslConfig { bt: BtConfig { lambda: args.lambda, form: args.bt_form }, bn_stats: args.bn_stats };
    let views = SslViewConfig { jigsaw: args.jigsaw, ..SslViewConfig::new(args.size, grids) };
    eprintln!(
        "pretrain: {} on {} training images of {}, {}x{}, grids {grids}, {} epochs of batch {}, {} lr {}, bt {} lambda {}, bn stats {}",
        model.cfg.arch,
        cache.len(),
        ds.format,
        args.size,
        args.size,
        cfg.epochs,
        cfg.batch.min(cache.len()),
        opt.kind.name(),
        args.optim.lr,
        args.bt_form,
        args.lambda,
        args.bn_stats
    );
    let mut logger = Logger::new(args.log.as_deref())?;
    pretrain(b, &model, &mut st, &mut opt, &cache, &cfg, &ssl, &views, |it| logger.log("ssl", it))?;
    logger.flush_epoch();
    let host = st.download(b)?;
    save_model(&args.out, &reg, &host, model_metadata(&model, "pretrain", grids, &[]))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
