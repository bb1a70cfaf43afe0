//! `fgssl finetune`: supervised fine-tuning with a fraction of the labels (METHOD.md §8), then evaluation on the
//! held-out splits with the data set's metrics (METHOD.md §9, DATA.md §6). Three schedules: progressive (FG-SSL,
//! four steps per batch), plain (one CE step on the concat head) and linear-probe (a linear classifier on the
//! frozen backbone's pooled features). Everything goes to a run folder (run_dir.rs); the progressive and plain
//! schedules write a checkpoint after every epoch and resume with `--resume auto`.

use clap::{Args, ValueEnum};
use serde_json::json;

use super::checkpoints::{BestMetric, CheckpointPolicy};
use super::metrics_log::MetricsLog;
use super::progress::{interrupt_requested, INTERRUPTED_EXIT_CODE};
use super::run_dir::{load_resume, log_line, say, write_export, RunConfig, RunDir, RunObserver, Validate};
use super::training_args::{build_model, merge, model_metadata, run_training, DataArgs, ModelArgs, OptimArgs, RunArgs, TrainingCommand};
use super::{CliError, CliResult};
use crate::augment::{self, FinetuneViewConfig, Grids, ImageBatch, Jigsaw, Policy};
use crate::backend::Backend;
use crate::data::cache::ImageCache;
use crate::data::split::label_subset;
use crate::data::{Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::metrics::{softmax_rows, Report};
use crate::model::fgssl::Fgssl;
use crate::model::{HostState, State};
use crate::training::checkpoint::Progress;
use crate::training::epochs::{epoch_batches, finetune, predict, FinetuneConfig, LoopConfig, LoopEnd};
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
    args_override_self = true,
    about = "Fine-tune an FG-SSL model with a fraction of the labels and evaluate it",
    after_help = "Example:\n  fgssl finetune --data synth --arch resnet18 --init ssl.safetensors --size 64 --resize 72 \\\n    \
                  --grids 8,4,2 --label-fraction 0.1 --epochs 10 --batch-size 16 --out runs/ft\n\n\
                  Images are cached at RESIZE x RESIZE; training views follow METHOD.md §8 (flips, plus a random resized\n\
                  crop then AugMix for ISIC, --no-augmix leaves AugMix out; a center crop otherwise) at SIZE x SIZE;\n\
                  evaluation uses the center crop. The prediction is the argmax of the summed logits of the four heads;\n\
                  the concat head alone is reported too.\n\
                  --init takes a pretraining run folder (runs/ssl), its export or checkpoint, or torchvision weights.\n\
                  RUN_DIR gets config.json, splits.json, metrics.jsonl/.csv (with the eval metrics), train.log,\n\
                  checkpoints/last.safetensors, checkpoints/best.safetensors (by --best-metric: the validation split's\n\
                  balanced accuracy after each epoch when there is one), checkpoints/epoch-NNNN.safetensors\n\
                  (--keep-checkpoints N) and export/{backbone,model}.safetensors + metadata.json (from the final weights).\n\
                  Flags can come from a TOML file (--config ft.toml; the command line wins). Ctrl-C saves a resumable\n\
                  checkpoint at the next iteration and exits with code 130."
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
    /// ISIC only: train without AugMix (flips and the random resized crop alone).
    #[arg(long)]
    pub no_augmix: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(args: FinetuneArgs) -> CliResult {
    run_training(args)
}

impl TrainingCommand for FinetuneArgs {
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

/// How the evaluated splits are scored: the model's four heads, or the linear probe on frozen features.
enum Evaluator<B: Backend> {
    Heads,
    Probe(Box<(LinearProbe, State<B>)>),
}

fn labels_of(ds: &Dataset, indices: &[usize]) -> Vec<u32> {
    indices.iter().map(|&i| ds.samples[i].label.expect("split indices are labelled") as u32).collect()
}

fn run_on<B: Backend>(b: &B, run: &RunDir, args: FinetuneArgs) -> CliResult {
    say!("device: {}", super::precision::describe(b));
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
    let default_best = if splits.val.is_empty() { BestMetric::Loss } else { BestMetric::ValBalancedAccuracy };
    let best = args.run.best_metric.unwrap_or(default_best);
    if best.needs_validation() && splits.val.is_empty() {
        return Err(Error::Invalid(format!("--best-metric {}: this data set has no validation split; use loss or none", best.name())).into());
    }
    let isic = ds.format == DatasetKind::Isic2017.name() || ds.format == DatasetKind::Isic2018.name();
    let config = RunConfig {
        training: merge(&[
            json!({"command": "finetune", "schedule": format!("{:?}", args.schedule).to_lowercase(), "label_fraction": args.label_fraction,
                   "size": args.size, "resize": args.resize, "grids": grids.to_string(), "jigsaw": args.jigsaw.to_string(),
                   "bn_stats": args.bn_stats.to_string(), "classes": ds.class_names}),
            args.data.training_config(),
            args.model.training_config(),
            args.optim.training_config(),
            // What the convolutions multiply in: hashed, so a resumed run continues in it.
            json!({ (super::precision::KEY): b.precision().name() }),
            // Only ISIC views have AugMix; recorded there so that a resume cannot switch it.
            if isic { json!({"augmix": !args.no_augmix}) } else { json!({}) },
        ]),
        run: merge(&[
            json!({"epochs": args.optim.epochs, "device": args.optim.device.to_string(), "init": args.model.init,
                   "cache_dir": args.data.cache_dir, "labelled_train_images": train.len()}),
            args.run.run_config(best),
        ]),
    };
    let resume_from = match &args.run.resume {
        Some(_) if args.schedule == Schedule::LinearProbe => {
            return Err(CliError::from(Error::Invalid(
                "--resume: linear-probe runs are not resumed (they are short, and their checkpoints hold weights only); run them again".into(),
            )))
        }
        Some(r) => run.resume_from(r)?,
        None => None,
    };
    say!("labels: {} of {} training images ({:.1}%)", train.len(), splits.train.len(), 100.0 * train.len() as f64 / splits.train.len().max(1) as f64);
    let split_name = format!("train-{}", args.label_fraction);
    let cache = args.data.cache(&ds, &train, &split_name, args.resize, &run.root)?;
    let labels = labels_of(&ds, &train);
    // Resuming: the checkpoint's weights (loaded strictly below), not --init.
    let model_args = ModelArgs { init: resume_from.clone().or(args.model.init.clone()), ..args.model.clone() };
    let (model, reg, mut host) = build_model(&model_args, Some(k), args.optim.backbone_lr_scale, args.optim.seed)?;
    let resumed = load_resume(resume_from.as_deref(), &reg, &config, args.optim.epochs)?;
    if args.run.resume.is_some() && resumed.is_none() {
        say!("resume auto: {} has no checkpoint yet, starting from the beginning", run.root.display());
    }
    let start = resumed.as_ref().map_or(Progress::default(), |(_, s)| s.progress);
    if let Some((h, _)) = &resumed {
        host = h.clone();
    }
    let mut st = State::upload(b, &reg, &host)?;
    config.write(&run.config(), "finetune", &b.name(), resume_from.as_deref())?;
    splits.write(&run.splits(), &ds)?;
    let cfg = LoopConfig { epochs: args.optim.epochs, batch: args.optim.batch_size, schedule: args.optim.schedule()?, seed: args.optim.seed, start };
    let mut metadata = model_metadata(&model, "finetune", grids, args.size, args.resize, &ds.class_names);
    metadata.insert(super::precision::KEY.into(), b.precision().name().into());
    let stage = if args.schedule == Schedule::LinearProbe { "linear-probe" } else { "finetune" };
    let log = MetricsLog::open(&run.metrics_jsonl(), &run.metrics_csv(), stage, resumed.as_ref().map(|_| start))?;
    // The validation split scores every epoch when the best checkpoint is chosen by it (not for the probe, whose
    // backbone never changes).
    let val_cache = match best.needs_validation() {
        true => Some(args.data.cache(&ds, &splits.val, "val", args.resize, &run.root)?),
        false => None,
    };
    let val_truth: Vec<usize> = labels_of(&ds, &splits.val).iter().map(|&l| l as usize).collect();
    let is_aptos = ds.format == DatasetKind::Aptos2019.name();
    let validate = val_cache.as_ref().filter(|_| args.schedule != Schedule::LinearProbe).map(|c| {
        let (model, truth, names) = (&model, &val_truth, &ds.class_names);
        Box::new(move |b: &B, st: &mut State<B>| -> Result<serde_json::Value> {
            let (logits, _) = predict(b, model, st, c, args.size, 64)?;
            Ok(Report::new(truth, &softmax_rows(&logits, k), k, names, is_aptos)?.to_json())
        }) as Validate<'_, B>
    });
    let per_epoch = epoch_batches(cache.len(), cfg.batch, cfg.seed, 0, 2).len();
    let mut obs = RunObserver {
        log,
        run,
        reg: &reg,
        config: &config,
        metadata: metadata.clone(),
        saved: resumed.as_ref().map(|_| start),
        checkpoints: CheckpointPolicy::new(&run.checkpoints(), best, args.run.keep_checkpoints, resumed.as_ref().map(|_| start.epoch))?,
        progress: args.run.progress(per_epoch, cfg.epochs, start.iteration),
        validate,
    };

    let evaluator = match args.schedule {
        Schedule::Progressive | Schedule::Plain => {
            let mut recipe = if isic { Policy::FinetuneIsic } else { Policy::FinetuneAptos }.recipe();
            if args.no_augmix {
                recipe.augmix = None;
            }
            let views = FinetuneViewConfig { out: args.size, grids, jigsaw: args.jigsaw, recipe };
            let mode = if args.schedule == Schedule::Plain { FinetuneMode::Plain } else { FinetuneMode::Progressive };
            let ft = FinetuneConfig { mode, bn_stats: args.bn_stats, views };
            let mut opt = args.optim.optimizer();
            if let Some((_, state)) = &resumed {
                opt.state_from_host(b, &mut st.params, &state.optimizer)?;
            }
            say!(
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
            let end = finetune(b, &model, &mut st, &mut opt, &cache, &labels, &cfg, &ft, &mut obs).map_err(|e| obs.explain(e))?;
            if let LoopEnd::Stopped(at) = end {
                return Err(obs.interrupted(at));
            }
            obs.progress.finish();
            Evaluator::Heads
        }
        Schedule::LinearProbe => {
            // The probe trains on features in memory, epochs in milliseconds: it reports per epoch, without a bar.
            obs.progress.finish();
            let probe = LinearProbe::new(model.cfg.arch.feature_dim(), k);
            let features = pooled_features(b, &model, &mut st, &cache, args.size)?;
            let mut probe_st = State::upload(b, &probe.registry, &HostState::init(&probe.registry, args.optim.seed))?;
            let mut opt = args.optim.optimizer();
            // The validation features are computed once too (the backbone is frozen) when they pick the best epoch.
            let val_features = match &val_cache {
                Some(c) => Some(pooled_features(b, &model, &mut st, c, args.size)?),
                None => None,
            };
            // Each epoch's checkpoint: the frozen model plus the probe as `fc` (weights only: a probe run is rerun,
            // not resumed), kept, pruned and picked as best like the other schedules' checkpoints.
            let frozen = reg.state_dict(&st.download(b)?);
            let last = run.last_checkpoint();
            let mut on_epoch = |epoch: usize, loss: f32, pst: &State<B>| -> Result<()> {
                if interrupt_requested() {
                    return Err(Error::Invalid(format!("interrupted after {epoch} epochs of the linear probe")));
                }
                obs.log.probe_epoch(epoch, cfg.schedule.lr(epoch), loss)?;
                if !loss.is_finite() {
                    let keep =
                        if epoch > 0 { format!("; the last good checkpoint (after epoch {epoch}) is {}", last.display()) } else { String::new() };
                    return Err(Error::Invalid(format!(
                        "the linear probe's cross-entropy loss is {loss} in epoch {}: training stopped{keep}",
                        epoch + 1
                    )));
                }
                let mut tensors = frozen.clone();
                tensors.extend(probe.registry.state_dict(&pst.download(b)?));
                let mut meta = metadata.clone();
                meta.insert("linear_probe_epochs_done".into(), (epoch + 1).to_string());
                crate::weights::write_safetensors(&last, &tensors, &meta)?;
                let score = match (best, &val_features) {
                    (BestMetric::Loss, _) => Some(loss as f64),
                    (BestMetric::ValAccuracy | BestMetric::ValBalancedAccuracy, Some(vf)) => {
                        let logits = probe.logits(b, &pst.params, vf)?;
                        let report = Report::new(&val_truth, &softmax_rows(&logits, k), k, &ds.class_names, is_aptos)?;
                        say!(
                            "val after epoch {:>3}: accuracy {:.4}, balanced accuracy {:.4}",
                            epoch + 1,
                            report.accuracy,
                            report.balanced_accuracy.value
                        );
                        obs.log.eval_after_epoch("val", epoch, report.to_json())?;
                        Some(if best == BestMetric::ValAccuracy { report.accuracy } else { report.balanced_accuracy.value })
                    }
                    _ => None,
                };
                obs.checkpoints.after_epoch(&last, epoch + 1, score)?;
                Ok(())
            };
            let losses = probe
                .train_observed(b, &mut probe_st, &mut opt, &cfg.schedule, &features, &labels, cfg.epochs, cfg.batch, cfg.seed, &mut on_epoch)
                .map_err(|e| match interrupt_requested() {
                    // Not resumable (see --resume above): say so instead of offering a command.
                    true => CliError { code: INTERRUPTED_EXIT_CODE, message: format!("{e}: linear-probe runs are not resumed; run it again") },
                    false => CliError::from(e),
                })?;
            say!("linear probe: {} epochs on {} frozen features, loss {:.4} -> {:.4}", cfg.epochs, cache.len(), losses[0], losses[losses.len() - 1]);
            Evaluator::Probe(Box::new((probe, probe_st)))
        }
    };

    for (name, indices) in [("val", &splits.val), ("test", &splits.test)] {
        if indices.is_empty() {
            continue;
        }
        let c = args.data.cache(&ds, indices, name, args.resize, &run.root)?;
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
        log_line(&format!("{name} ({} images):\n{report}", truth.len()));
        if let Some(cat) = cat {
            let cat_report = Report::new(&truth, &softmax_rows(&cat, k), k, &ds.class_names, false)?;
            println!("{name}, concat head alone: accuracy {:.4}", cat_report.accuracy);
            log_line(&format!("{name}, concat head alone: accuracy {:.4}", cat_report.accuracy));
        }
        obs.log.eval(name, report.to_json())?;
    }
    let extra = match &evaluator {
        Evaluator::Probe(probe) => {
            let (probe, probe_st) = probe.as_ref();
            probe.registry.state_dict(&probe_st.download(b)?)
        }
        Evaluator::Heads => Vec::new(),
    };
    write_export(run, &reg, &st.download(b)?, extra, &metadata)?;
    super::plots::plot_run(&run.root);
    say!("wrote {} (checkpoints/, export/, metrics.jsonl)", run.root.display());
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
