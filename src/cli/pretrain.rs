//! `fgssl pretrain`: FG-SSL self-supervised pretraining (METHOD.md §7) on the training split of a data set, labels
//! unused. Everything goes to a run folder (run_dir.rs): settings, metrics, a checkpoint after every epoch (resume
//! with `--resume auto`), and at the end `export/` (the backbone under torchvision's names, the whole model).

use clap::Args;
use serde_json::json;

use super::checkpoints::{BestMetric, CheckpointPolicy};
use super::metrics_log::{num, MetricsLog};
use super::run_dir::{load_resume, say, write_export, RunConfig, RunDir, RunObserver};
use super::training_args::{build_model, merge, model_metadata, run_training, DataArgs, ModelArgs, OptimArgs, RunArgs, TrainingCommand};
use super::CliResult;
use crate::augment::{Grids, Jigsaw, SslViewConfig};
use crate::backend::Backend;
use crate::error::Error;
use crate::model::State;
use crate::ops::barlow_twins::{BtConfig, BtForm};
use crate::training::checkpoint::Progress;
use crate::training::epochs::{epoch_batches, pretrain, LoopConfig, LoopEnd};
use crate::training::ssl::{BnStats, SslConfig};

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "FG-SSL pretraining: jigsaw views at three granularities, Barlow Twins loss, four progressive steps per batch",
    after_help = "Example (the synthetic data set, small and fast on a CPU):\n  \
                  fgssl synth --out synth && fgssl pretrain --data synth --arch resnet18 --size 64 --grids 8,4,2 \\\n    \
                  --epochs 5 --batch-size 16 --out runs/ssl\n  \
                  fgssl pretrain ... --out runs/ssl --resume auto      (continue an interrupted run exactly)\n  \
                  fgssl pretrain --config ssl.toml --epochs 20         (flags from a TOML file; the command line wins)\n\n\
                  The SSL views (METHOD.md §5) are made from a decoded u8 cache of the training split at SIZE x SIZE.\n\
                  RUN_DIR gets config.json, splits.json, metrics.jsonl/.csv, train.log, checkpoints/last.safetensors\n\
                  (after every epoch), checkpoints/best.safetensors (lowest epoch loss), checkpoints/epoch-NNNN.safetensors\n\
                  (--keep-checkpoints N) and export/{backbone,model}.safetensors + metadata.json (at the end).\n\
                  Ctrl-C saves a resumable checkpoint at the next iteration and exits with code 130."
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
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(args: PretrainArgs) -> CliResult {
    run_training(args)
}

impl TrainingCommand for PretrainArgs {
    fn run_args(&self) -> &RunArgs {
        &self.run
    }
    fn optim_args(&self) -> &OptimArgs {
        &self.optim
    }
    fn run_on<B: Backend>(self, b: &B, run: &RunDir) -> CliResult {
        run_on(b, run, self)
    }
}

fn run_on<B: Backend>(b: &B, run: &RunDir, args: PretrainArgs) -> CliResult {
    say!("device: {}", super::precision::describe(b));
    let (ds, splits) = args.data.load()?;
    let grids = args.grids.unwrap_or_else(|| DataArgs::default_grids(&ds));
    grids.check(args.size)?;
    let best = args.run.best_metric.unwrap_or(BestMetric::Loss);
    if best.needs_validation() {
        return Err(Error::Invalid(format!("--best-metric {}: pretraining has no validation pass; use loss or none", best.name())).into());
    }
    let config = RunConfig {
        training: merge(&[
            json!({"command": "pretrain", "size": args.size, "grids": grids.to_string(), "jigsaw": args.jigsaw.to_string(),
                   "bt_form": args.bt_form.to_string(), "lambda": num(args.lambda), "bn_stats": args.bn_stats.to_string()}),
            args.data.training_config(),
            args.model.training_config(),
            args.optim.training_config(),
            // What the convolutions multiply in: hashed, so a resumed run continues in it.
            json!({ (super::precision::KEY): b.precision().name() }),
        ]),
        run: merge(&[
            json!({"epochs": args.optim.epochs, "device": args.optim.device.to_string(), "init": args.model.init, "cache_dir": args.data.cache_dir}),
            args.run.run_config(best),
        ]),
    };
    let resume_from = match &args.run.resume {
        Some(r) => run.resume_from(r)?,
        None => None,
    };
    let cache = args.data.cache(&ds, &splits.train, "train", args.size, &run.root)?;
    // Resuming: the checkpoint's weights (loaded strictly below), not --init.
    let model_args = ModelArgs { init: resume_from.clone().or(args.model.init.clone()), ..args.model.clone() };
    let (model, reg, mut host) = build_model(&model_args, None, args.optim.backbone_lr_scale, args.optim.seed)?;
    let mut opt = args.optim.optimizer();
    let resumed = load_resume(resume_from.as_deref(), &reg, &config, args.optim.epochs)?;
    if args.run.resume.is_some() && resumed.is_none() {
        say!("resume auto: {} has no checkpoint yet, starting from the beginning", run.root.display());
    }
    let start = resumed.as_ref().map_or(Progress::default(), |(_, s)| s.progress);
    if let Some((h, _)) = &resumed {
        host = h.clone();
    }
    let mut st = State::upload(b, &reg, &host)?;
    if let Some((_, state)) = &resumed {
        opt.state_from_host(b, &mut st.params, &state.optimizer)?;
    }
    config.write(&run.config(), "pretrain", &b.name(), resume_from.as_deref())?;
    splits.write(&run.splits(), &ds)?;
    let cfg = LoopConfig { epochs: args.optim.epochs, batch: args.optim.batch_size, schedule: args.optim.schedule()?, seed: args.optim.seed, start };
    let ssl = SslConfig { bt: BtConfig { lambda: args.lambda, form: args.bt_form }, bn_stats: args.bn_stats };
    let views = SslViewConfig { jigsaw: args.jigsaw, ..SslViewConfig::new(args.size, grids) };
    say!(
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
    let mut metadata = model_metadata(&model, "pretrain", grids, args.size, args.size, &[]);
    metadata.insert(super::precision::KEY.into(), b.precision().name().into());
    let log = MetricsLog::open(&run.metrics_jsonl(), &run.metrics_csv(), "ssl", resume_from.as_ref().map(|_| start))?;
    let batch = cfg.batch.min(cache.len());
    let per_epoch = epoch_batches(cache.len(), batch, cfg.seed, 0, batch).len();
    let mut obs = RunObserver {
        log,
        run,
        reg: &reg,
        config: &config,
        metadata: metadata.clone(),
        saved: resume_from.as_ref().map(|_| start),
        checkpoints: CheckpointPolicy::new(&run.checkpoints(), best, args.run.keep_checkpoints, resume_from.as_ref().map(|_| start.epoch))?,
        progress: args.run.progress(per_epoch, cfg.epochs, start.iteration),
        validate: None,
    };
    let end = pretrain(b, &model, &mut st, &mut opt, &cache, &cfg, &ssl, &views, &mut obs).map_err(|e| obs.explain(e))?;
    if let LoopEnd::Stopped(at) = end {
        return Err(obs.interrupted(at));
    }
    obs.progress.finish();
    write_export(run, &reg, &st.download(b)?, Vec::new(), &metadata)?;
    super::plots::plot_run(&run.root);
    say!("wrote {} (checkpoints/, export/backbone.safetensors, export/model.safetensors, metrics.jsonl)", run.root.display());
    Ok(())
}
