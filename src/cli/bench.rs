//! `fgssl bench`: times the FG-SSL training iterations end to end on synthetic images (issue 8, CUDA.md §11).
//!
//! One timed iteration = what the training loop does per batch: a u8 batch in host memory is uploaded, the views
//! and jigsaw puzzles are made on the backend, then the four progressive steps run (forwards, loss, backwards,
//! optimizer). Warm-up iterations first (kernel compilation, the caching allocator's first allocations), then
//! `--iters` timed ones. Times are backend marks ([`Backend::mark`]): CUDA events on the GPU, the host clock on
//! the CPU. Each iteration is timed from its first mark to its last, after the previous one has finished, so
//! launch gaps and the host work in between count. Phases are marked inside the steps ([`PhaseObserver`]).
//!
//! Model FLOPs come from the layer geometry ([`crate::model::flops`]: conv and linear layers, forward plus the
//! backward path of each step); the utilisation divides them by time and by `--peak-tflops` (no peak is measured
//! yet, so without the flag the utilisation is not reported).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use super::ComputeArgs;
use super::{CliResult, Selected};
use crate::augment::{self, FinetuneViewConfig, Grids, ImageBatch, Jigsaw, Policy, SslViewConfig};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::fgssl::{Fgssl, FgsslConfig};
use crate::model::flops::StepMacs;
use crate::model::resnet::Arch;
use crate::model::{HostState, State};
use crate::ops::barlow_twins::BtConfig;
use crate::rng::Rng;
use crate::training::finetune::{finetune_iteration, finetune_iteration_macs, FinetuneBatch};
use crate::training::optim::{Optimizer, OptimizerKind};
use crate::training::phases::{Phase, PhaseObserver};
use crate::training::ssl::{ssl_iteration, ssl_iteration_macs, BnStats, SslBatch, SslConfig};
use crate::weights::write_atomic;

/// Which iterations to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    Ssl,
    Finetune,
    Both,
}

#[derive(Args, Debug)]
#[command(
    about = "Time the FG-SSL SSL and fine-tuning iterations end to end on synthetic images (ms, images/s, phases, model FLOPs)",
    after_help = "Examples:\n  fgssl bench --device cpu                      (ResNet-18 at 64, batch 16: under a minute on 2 cores)\n  \
                  fgssl bench --device cuda --arch resnet50 --size 224 --batch-size 128 --grids 16,8,4 --iters 20 \\\n    \
                  --peak-tflops 790 --json bench.json\n\n\
                  --precision bf16 multiplies the convolutions in bf16 (f32 accumulation; everything else f32), as\n\
                  `torch.autocast(dtype=torch.bfloat16)` does for them; the utilisation divides by the same --peak-tflops\n\
                  (the bf16 peak) in both precisions. The fine-tuning views are cropped from images cached at --resize (default\n\
                  SIZE*256/224, the reference's Resize 256 for 224) with the ISIC policy; the SSL views from SIZE images."
)]
pub struct BenchArgs {
    /// ssl, finetune or both.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    pub what: Which,
    /// Backbone: resnet18, resnet34 or resnet50.
    #[arg(long, default_value = "resnet18", value_parser = |s: &str| s.parse::<Arch>().map_err(|e| e.to_string()))]
    pub arch: Arch,
    /// Side of the views; the grids must divide it.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Jigsaw grids, finest first.
    #[arg(long, default_value = "8,4,2")]
    pub grids: Grids,
    /// Embedding width F.
    #[arg(long, default_value_t = 512)]
    pub embed_dim: usize,
    /// Pooled width P (default: 1024 for resnet50, C5/2 otherwise).
    #[arg(long)]
    pub pooled_dim: Option<usize>,
    /// Classes of the fine-tuning classifiers.
    #[arg(long, default_value_t = 7)]
    pub classes: usize,
    /// Side of the images the fine-tuning views are cropped from (default SIZE*256/224).
    #[arg(long)]
    pub resize: Option<usize>,
    /// BN running statistics of the layers a step skips: minimal (truncated steps), or reference (whole model).
    #[arg(long, default_value_t = BnStats::Minimal)]
    pub bn_stats: BnStats,
    /// Untimed iterations first (kernel compilation, first allocations).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed iterations.
    #[arg(long, default_value_t = 4)]
    pub iters: usize,
    /// Peak of the device in TFLOP/s for the model FLOP utilisation (e.g. 790, the measured H100/H200 bf16 matmul);
    /// the same peak whatever --precision, so an fp32 run's utilisation says how far it is from bf16 speed.
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Also write the result as JSON (atomically) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Seed of the weights, the synthetic images, the views and the labels.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl BenchArgs {
    fn resize(&self) -> usize {
        self.resize.unwrap_or(self.size * 256 / 224)
    }

    fn check(&self) -> Result<()> {
        self.grids.check(self.size)?;
        if self.batch_size < 2 {
            return Err(Error::Invalid(format!("--batch-size {}: batch norm and Barlow Twins need at least 2 images", self.batch_size)));
        }
        if self.iters == 0 {
            return Err(Error::Invalid("--iters 0: nothing to time".into()));
        }
        if self.classes < 2 {
            return Err(Error::Invalid(format!("--classes {}: at least 2", self.classes)));
        }
        if self.resize() < self.size {
            return Err(Error::Invalid(format!(
                "--resize {} is smaller than --size {}: views are crops of the cached images",
                self.resize(),
                self.size
            )));
        }
        if let Some(p) = self.peak_tflops.filter(|p| !(p.is_finite() && *p > 0.0)) {
            return Err(Error::Invalid(format!("--peak-tflops {p}: must be a positive number")));
        }
        Ok(())
    }
}

pub fn run(args: BenchArgs) -> CliResult {
    args.check()?;
    match args.compute.select()? {
        Selected::Cpu(b) => run_on(&b, &args, "cpu"),
        Selected::Cuda(b) => run_on(b.as_ref(), &args, "cuda"),
    }
}

/// Backend marks at each phase start of one iteration.
struct Marks<B: Backend> {
    marks: Vec<(Phase, B::Mark)>,
}

impl<B: Backend> PhaseObserver<B> for Marks<B> {
    fn enter(&mut self, b: &B, phase: Phase) -> Result<()> {
        self.marks.push((phase, b.mark()?));
        Ok(())
    }
}

/// The times of one iteration: the whole, per phase, on the host clock, and the CPU time of the process.
struct IterationTimes {
    total_ms: f64,
    phase_ms: [f64; Phase::ALL.len()],
    wall_ms: f64,
    cpu_ms: Option<f64>,
}

/// CPU time (user + system, all threads) this process has used, from `/proc/self/stat` (Linux; in clock ticks of
/// 10 ms, the kernel's USER_HZ everywhere in practice). On a shared machine it measures the work without the time
/// spent waiting for a core, which the clocks include.
fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

impl<B: Backend> Marks<B> {
    /// Reads the marks back after `end` (waits for the iteration to finish on a device); `wall` started before the
    /// first mark.
    fn times(&self, b: &B, end: &B::Mark, wall: Instant, cpu_start: Option<f64>) -> Result<IterationTimes> {
        let mut phase_ms = [0.0; Phase::ALL.len()];
        for (i, (phase, from)) in self.marks.iter().enumerate() {
            let to = self.marks.get(i + 1).map_or(end, |(_, m)| m);
            phase_ms[Phase::ALL.iter().position(|p| p == phase).expect("Phase::ALL lists every phase")] += b.elapsed_ms(from, to)?;
        }
        let first = &self.marks.first().expect("an iteration marks its upload").1;
        let total_ms = b.elapsed_ms(first, end)?;
        let cpu_ms = cpu_start.zip(process_cpu_ms()).map(|(a, b)| b - a);
        Ok(IterationTimes { total_ms, phase_ms, wall_ms: wall.elapsed().as_secs_f64() * 1e3, cpu_ms })
    }
}

/// Median, spread and mean of a sample (nearest-rank percentiles on the sorted values).
fn summary(values: &[f64]) -> Value {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let rank = |q: f64| v[((q * (n - 1) as f64).round() as usize).min(n - 1)];
    let median = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
    json!({"median": median, "min": v[0], "p10": rank(0.1), "p90": rank(0.9), "max": v[n - 1], "mean": v.iter().sum::<f64>() / n as f64})
}

/// Synthetic cached images: `n` random u8 images of `side` x `side` x 3.
fn random_images(n: usize, side: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n * side * side * 3).map(|_| (rng.next_u64() >> 56) as u8).collect()
}

/// One kind of iteration as the bench runs it: makes its views from an uploaded batch and runs the four steps.
trait Iteration<B: Backend> {
    fn run(&mut self, b: &B, images: &ImageBatch<B>, step: u32, marks: &mut Marks<B>) -> Result<Vec<f32>>;
}

struct SslIteration<'a, B: Backend> {
    model: &'a Fgssl,
    st: &'a mut State<B>,
    opt: Optimizer,
    cfg: SslConfig,
    views: SslViewConfig,
    seed: u64,
    ids: Vec<u32>,
}

impl<B: Backend> Iteration<B> for SslIteration<'_, B> {
    fn run(&mut self, b: &B, images: &ImageBatch<B>, step: u32, marks: &mut Marks<B>) -> Result<Vec<f32>> {
        let v = augment::ssl_views(b, &self.views, images, self.seed, step, &self.ids)?;
        let batch = SslBatch { x1: &v.x1, jigsaw: [&v.jig[0], &v.jig[1], &v.jig[2]], x2: &v.x2 };
        let logs = ssl_iteration(b, self.model, self.st, &mut self.opt, LR, &self.cfg, &batch, marks)?;
        Ok(logs.iter().map(|l| l.loss).collect())
    }
}

struct FinetuneIteration<'a, B: Backend> {
    model: &'a Fgssl,
    st: &'a mut State<B>,
    opt: Optimizer,
    bn_stats: BnStats,
    views: FinetuneViewConfig,
    labels: Vec<u32>,
    seed: u64,
    ids: Vec<u32>,
}

impl<B: Backend> Iteration<B> for FinetuneIteration<'_, B> {
    fn run(&mut self, b: &B, images: &ImageBatch<B>, step: u32, marks: &mut Marks<B>) -> Result<Vec<f32>> {
        let v = augment::finetune_views(b, &self.views, images, self.seed, step, &self.ids)?;
        let batch = FinetuneBatch { x: &v.x, jigsaw: [&v.jig[0], &v.jig[1], &v.jig[2]], labels: &self.labels };
        Ok(finetune_iteration(b, self.model, self.st, &mut self.opt, LR, self.bn_stats, &batch, marks)?.to_vec())
    }
}

/// The reference's learning rate of the new layers (the backbone gets 0.1 of it).
const LR: f32 = 0.002;

/// Warm-up, then timed iterations of `it` on `host` (n images of `side`); returns the JSON record.
#[allow(clippy::too_many_arguments)]
fn time_iterations<B: Backend>(
    b: &B,
    args: &BenchArgs,
    name: &str,
    what: &str,
    it: &mut impl Iteration<B>,
    host: &[u8],
    side: usize,
    macs: StepMacs,
) -> CliResult<Value> {
    let n = args.batch_size;
    let mut times = Vec::with_capacity(args.iters);
    let mut losses = Vec::new();
    for i in 0..args.warmup + args.iters {
        let mut marks = Marks { marks: Vec::with_capacity(64) };
        let (wall, cpu_start) = (Instant::now(), process_cpu_ms());
        marks.enter(b, Phase::Upload)?;
        let images = ImageBatch::upload(b, host, n, side)?;
        marks.enter(b, Phase::Augment)?;
        losses = it.run(b, &images, i as u32, &mut marks)?;
        let end = b.mark()?;
        let t = marks.times(b, &end, wall, cpu_start)?;
        if losses.iter().any(|l| !l.is_finite()) {
            return Err(Error::Invalid(format!("{name}: a step loss is not finite ({losses:?}) in iteration {i}")).into());
        }
        if i >= args.warmup {
            times.push(t);
        }
    }
    let totals: Vec<f64> = times.iter().map(|t| t.total_ms).collect();
    let ms = summary(&totals);
    let median_ms = ms["median"].as_f64().expect("summary has a median");
    let flop = 2.0 * macs.total() as f64 * n as f64;
    let achieved_tflops = flop / (median_ms * 1e-3) / 1e12;
    let mfu = args.peak_tflops.map(|p| achieved_tflops / p);
    let phases: serde_json::Map<String, Value> = Phase::ALL
        .iter()
        .enumerate()
        .map(|(k, p)| (p.name().to_string(), json!(times.iter().map(|t| t.phase_ms[k]).sum::<f64>() / times.len() as f64)))
        .collect();
    let wall: Vec<f64> = times.iter().map(|t| t.wall_ms).collect();
    let cpu: Option<Vec<f64>> = times.iter().map(|t| t.cpu_ms).collect();
    println!(
        "{name} ({what}): median {median_ms:.2} ms/iteration (min {:.2}, p10 {:.2}, p90 {:.2}, max {:.2}), {:.1} images/s",
        ms["min"].as_f64().unwrap_or(0.0),
        ms["p10"].as_f64().unwrap_or(0.0),
        ms["p90"].as_f64().unwrap_or(0.0),
        ms["max"].as_f64().unwrap_or(0.0),
        n as f64 / (median_ms * 1e-3)
    );
    let mean_total = totals.iter().sum::<f64>() / totals.len() as f64;
    let breakdown: Vec<String> = Phase::ALL
        .iter()
        .map(|p| {
            let v = phases[p.name()].as_f64().unwrap_or(0.0);
            format!("{} {v:.2} ({:.0}%)", p.name(), 100.0 * v / mean_total.max(f64::MIN_POSITIVE))
        })
        .collect();
    println!("  phases, mean ms per iteration: {}", breakdown.join(", "));
    let utilisation = match (mfu, args.peak_tflops) {
        (Some(u), Some(p)) => format!("{:.2}% of the {p} TFLOP/s peak given by --peak-tflops", 100.0 * u),
        _ => "utilisation not computed: no peak measured yet, give --peak-tflops".to_string(),
    };
    println!(
        "  model FLOPs: {:.2} GFLOP/iteration ({:.3} GFLOP/image; conv + linear, forward {:.0}%) -> {:.4} TFLOP/s; {utilisation}",
        flop / 1e9,
        flop / 1e9 / n as f64,
        100.0 * macs.forward as f64 / macs.total().max(1) as f64,
        achieved_tflops
    );
    Ok(json!({
        "what": what, "ms": ms, "wall_ms": summary(&wall), "cpu_ms": cpu.as_deref().map(summary), "images_per_s": n as f64 / (median_ms * 1e-3),
        "phases_ms_mean": phases,
        "model_gflop_per_iteration": flop / 1e9, "model_gflop_per_image": flop / 1e9 / n as f64,
        "model_gmac_per_image": {"forward": macs.forward as f64 / 1e9, "backward": macs.backward as f64 / 1e9},
        "achieved_tflops": achieved_tflops, "mfu": mfu, "last_losses": losses,
    }))
}

fn run_on<B: Backend>(b: &B, args: &BenchArgs, backend: &str) -> CliResult {
    eprintln!("device: {}", super::precision::describe(b));
    let cfg = FgsslConfig { arch: args.arch, embed_dim: args.embed_dim, pooled_dim: args.pooled_dim, num_classes: Some(args.classes) };
    let (model, reg) = Fgssl::new(cfg, 0.1);
    let host_state = HostState::init(&reg, args.seed);
    let n = args.batch_size;
    let ids: Vec<u32> = (0..n as u32).collect();
    println!(
        "bench: {} {}x{}, batch {n}, grids {}, F {}, P {}, K {}, bn stats {}, {} convolutions, f32 NCHW activations, sgd; {} warm-up + {} timed \
         iterations",
        args.arch,
        args.size,
        args.size,
        args.grids,
        args.embed_dim,
        cfg.pooled(),
        args.classes,
        args.bn_stats,
        b.precision(),
        args.warmup,
        args.iters
    );
    let mut result = json!({
        "tool": "fgssl bench", "version": env!("CARGO_PKG_VERSION"),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "device": b.name(), "backend": backend, "precision": b.precision().name(),
        "config": {"arch": args.arch.to_string(), "size": args.size, "finetune_resize": args.resize(), "batch": n,
                   "grids": args.grids.to_string(), "embed_dim": args.embed_dim, "pooled_dim": cfg.pooled(), "classes": args.classes,
                   "bn_stats": args.bn_stats.to_string(), "precision": b.precision().name(), "layout": "nchw", "optimizer": "sgd",
                   "warmup": args.warmup, "iters": args.iters, "seed": args.seed},
        "peak_tflops": args.peak_tflops, "peak_source": if args.peak_tflops.is_some() { "--peak-tflops" } else { "none" },
    });
    let sgd = || Optimizer::new(OptimizerKind::SGD_DEFAULT);
    if args.what != Which::Finetune {
        let mut st = State::upload(b, &reg, &host_state)?;
        let views = SslViewConfig::new(args.size, args.grids);
        let cfg = SslConfig { bt: BtConfig::default(), bn_stats: args.bn_stats };
        let mut it = SslIteration { model: &model, st: &mut st, opt: sgd(), cfg, views, seed: args.seed, ids: ids.clone() };
        let host = random_images(n, args.size, args.seed ^ 0x55);
        let macs = ssl_iteration_macs(&model, args.size, args.bn_stats);
        result["ssl"] = time_iterations(b, args, "ssl", "4 steps, 8 forwards", &mut it, &host, args.size, macs)?;
    }
    if args.what != Which::Ssl {
        let mut st = State::upload(b, &reg, &host_state)?;
        let views = FinetuneViewConfig { out: args.size, grids: args.grids, jigsaw: Jigsaw::Uniform, recipe: Policy::FinetuneIsic.recipe() };
        let mut rng = Rng::new(args.seed ^ 0x1abe1);
        let labels = (0..n).map(|_| rng.below(args.classes) as u32).collect();
        let mut it = FinetuneIteration { model: &model, st: &mut st, opt: sgd(), bn_stats: args.bn_stats, views, labels, seed: args.seed, ids };
        let host = random_images(n, args.resize(), args.seed ^ 0xf7);
        let macs = finetune_iteration_macs(&model, args.size, args.bn_stats);
        result["finetune"] = time_iterations(b, args, "finetune", "4 steps, 4 forwards", &mut it, &host, args.resize(), macs)?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result).map_err(|e| Error::Invalid(format!("cannot encode the result: {e}")))?;
        write_atomic(path, format!("{text}\n").as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
