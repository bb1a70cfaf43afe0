//! `fgssl demo`: the whole method on data made on the spot, in about two minutes on a 2-core CPU.
//!
//! It writes the synthetic fine-grained data set (`fgssl synth`'s generator), pretrains with FG-SSL (`fgssl
//! pretrain`), fine-tunes with 10% of the labels from the pretrained weights and, for comparison, from scratch
//! (`fgssl finetune`, same labels, same schedule), and prints the test metrics of both. Every step is the command's
//! own code, called with the arguments one would type; each leaves an ordinary run folder (with plots).
//!
//! The demo folder is never reused silently: a folder holding an earlier demo is refused unless `--overwrite`
//! (which deletes it first), and a non-empty folder that is not a demo's is never deleted.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser};
use serde_json::{json, Value};

use super::finetune::FinetuneArgs;
use super::metrics_log::{num, read_events};
use super::pretrain::PretrainArgs;
use super::ComputeArgs;
use super::{CliError, CliResult};
use crate::data::synth::{self, SynthConfig};
use crate::error::Error;
use crate::weights::write_atomic;

/// Marks a folder as a demo's, so that `--overwrite` deletes only demo folders.
const MARKER: &str = "demo.json";

#[derive(Args, Debug)]
#[command(
    about = "Run the whole method on a synthetic data set and compare it with training from scratch (about 2 minutes on a CPU)",
    after_help = "Examples:\n  fgssl demo                       (writes runs/demo)\n  \
                  fgssl demo --overwrite           (replace the previous demo)\n  \
                  fgssl demo --device cuda --out runs/demo-gpu\n  \
                  fgssl demo --device cuda --precision bf16 --out runs/demo-bf16   (bf16 convolutions in every stage)\n\n\
                  Steps: synthetic data (4 classes x 100 images of 32x32) -> FG-SSL pretraining (ResNet-18) -> fine-tuning\n\
                  with 10% of the labels from the pretrained weights, and the same fine-tuning from scratch -> test metrics.\n\
                  OUT gets data/, pretrain/, finetune-ssl/, finetune-scratch/ (run folders, each with plots/), cache/ and\n\
                  demo.json (the settings and the table). The sizes are tiny so that it runs in minutes: the numbers show\n\
                  the pipeline working, not what the method does on real data at 224x224 from ImageNet weights."
)]
pub struct DemoArgs {
    /// Demo folder (created; see --overwrite).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Delete an earlier demo in OUT first.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Seed of the data set, the label subset, the initialisation and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tiny sizes that finish in seconds (for tests): checks the pipeline, compares nothing.
    #[arg(long)]
    pub quick: bool,
}

/// The demo's sizes.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    classes: usize,
    per_class: usize,
    image: usize,
    embed_dim: usize,
    pooled_dim: usize,
    ssl_epochs: usize,
    ssl_batch: usize,
    ft_epochs: usize,
    ft_batch: usize,
    label_fraction: f64,
    lr: f32,
}

impl Sizes {
    /// Measured to take about two minutes on the 2-core development VM (README, "Quick start").
    const DEFAULT: Sizes = Sizes {
        classes: 4,
        per_class: 100,
        image: 32,
        embed_dim: 128,
        pooled_dim: 256,
        ssl_epochs: 4,
        ssl_batch: 32,
        ft_epochs: 15,
        ft_batch: 8,
        label_fraction: 0.1,
        lr: 0.02,
    };
    const QUICK: Sizes = Sizes {
        classes: 2,
        per_class: 12,
        image: 32,
        embed_dim: 16,
        pooled_dim: 24,
        ssl_epochs: 1,
        ssl_batch: 8,
        ft_epochs: 1,
        ft_batch: 4,
        label_fraction: 0.5,
        lr: 0.02,
    };

    fn to_json(self) -> Value {
        json!({"classes": self.classes, "per_class": self.per_class, "image": self.image, "arch": "resnet18", "embed_dim": self.embed_dim,
               "pooled_dim": self.pooled_dim, "grids": "8,4,2", "ssl_epochs": self.ssl_epochs, "ssl_batch": self.ssl_batch,
               "ft_epochs": self.ft_epochs, "ft_batch": self.ft_batch, "label_fraction": self.label_fraction, "lr": num(self.lr)})
    }
}

#[derive(Parser)]
#[command(no_binary_name = true)]
struct PretrainCommand {
    #[command(flatten)]
    args: PretrainArgs,
}

#[derive(Parser)]
#[command(no_binary_name = true)]
struct FinetuneCommand {
    #[command(flatten)]
    args: FinetuneArgs,
}

fn parse<P: Parser>(words: &[String]) -> CliResult<P> {
    P::try_parse_from(words).map_err(|e| CliError { code: 2, message: format!("demo: internal arguments rejected: {e}") })
}

/// Refuses to reuse a folder silently; deletes an earlier demo when asked to.
fn prepare_folder(out: &Path, overwrite: bool) -> CliResult {
    let entries = match std::fs::read_dir(out) {
        Ok(rd) => rd.count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(Error::Invalid(format!("--out {}: cannot read the folder ({e})", out.display())).into()),
    };
    if entries > 0 {
        if !out.join(MARKER).is_file() {
            return Err(Error::Invalid(format!(
                "--out {}: the folder is not empty and holds no demo ({MARKER}); choose another --out (it is never deleted)",
                out.display()
            ))
            .into());
        }
        if !overwrite {
            return Err(Error::Invalid(format!(
                "--out {}: holds an earlier demo; pass --overwrite to delete it and run again, or choose another --out",
                out.display()
            ))
            .into());
        }
        std::fs::remove_dir_all(out).map_err(|e| Error::io(out, e))?;
        eprintln!("demo: deleted the earlier demo in {}", out.display());
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    Ok(())
}

fn write_json(path: &Path, v: &Value) -> CliResult {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))? + "\n";
    Ok(write_atomic(path, text.as_bytes())?)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// One fine-tuning arm's result.
struct Arm {
    method: &'static str,
    run: PathBuf,
    seconds: f64,
    /// Pretraining time spent before it (for the pretrained arm).
    pretrain_seconds: f64,
    test: Value,
}

/// The `eval` event of the test split in a run's metrics.
fn test_metrics(run: &Path) -> CliResult<Value> {
    read_events(&run.join("metrics.jsonl"))?
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "eval" && e["split"] == "test")
        .map(|e| e["metrics"].clone())
        .ok_or_else(|| CliError::from(Error::Invalid(format!("{}: no test metrics in metrics.jsonl", run.display()))))
}

pub fn run(args: DemoArgs) -> CliResult {
    let sizes = if args.quick { Sizes::QUICK } else { Sizes::DEFAULT };
    let out = args.out.clone();
    prepare_folder(&out, args.overwrite)?;
    let (data, cache) = (out.join("data"), out.join("cache"));
    let started = Instant::now();
    write_json(
        &out.join(MARKER),
        &json!({"status": "running", "device": args.compute.device.to_string(), "precision": args.compute.precision.name(), "seed": args.seed, "sizes": sizes.to_json()}),
    )?;

    eprintln!("demo 1/4: synthetic data set -> {}", data.display());
    let cfg = SynthConfig { classes: sizes.classes, per_class: sizes.per_class, size: sizes.image, seed: args.seed };
    synth::write_image_folder(&data, &cfg, false)?;

    let common = |out_dir: &Path| -> Vec<String> {
        let mut w: Vec<String> = ["--data", &s(&data), "--cache-dir", &s(&cache), "--out", &s(out_dir), "--device", &args.compute.device.to_string()]
            .map(String::from)
            .to_vec();
        w.extend(["--precision", args.compute.precision.name()].map(String::from));
        w.extend(
            ["--arch", "resnet18", "--embed-dim", &sizes.embed_dim.to_string(), "--pooled-dim", &sizes.pooled_dim.to_string()].map(String::from),
        );
        w.extend(
            ["--grids", "8,4,2", "--size", &sizes.image.to_string(), "--lr", &sizes.lr.to_string(), "--seed", &args.seed.to_string()]
                .map(String::from),
        );
        w
    };

    let ssl_run = out.join("pretrain");
    eprintln!("demo 2/4: FG-SSL pretraining without labels -> {}", ssl_run.display());
    let mut words = common(&ssl_run);
    words.extend(["--epochs", &sizes.ssl_epochs.to_string(), "--batch-size", &sizes.ssl_batch.to_string()].map(String::from));
    let t = Instant::now();
    super::pretrain::run(parse::<PretrainCommand>(&words)?.args)?;
    let pretrain_seconds = t.elapsed().as_secs_f64();

    let mut arms = Vec::new();
    for (step, method, name, init) in [(3, "FG-SSL pretrained", "finetune-ssl", Some(&ssl_run)), (4, "from scratch", "finetune-scratch", None)] {
        let run = out.join(name);
        eprintln!(
            "demo {step}/4: fine-tuning with {:.0}% of the labels, {} -> {}",
            sizes.label_fraction * 100.0,
            if init.is_some() { "from the pretrained weights" } else { "from random weights (the same schedule)" },
            run.display()
        );
        let mut words = common(&run);
        words.extend(["--resize", &sizes.image.to_string(), "--label-fraction", &sizes.label_fraction.to_string()].map(String::from));
        words.extend(["--epochs", &sizes.ft_epochs.to_string(), "--batch-size", &sizes.ft_batch.to_string()].map(String::from));
        if let Some(init) = init {
            words.extend(["--init".to_string(), s(init)]);
        }
        let t = Instant::now();
        super::finetune::run(parse::<FinetuneCommand>(&words)?.args)?;
        let seconds = t.elapsed().as_secs_f64();
        let pre = if init.is_some() { pretrain_seconds } else { 0.0 };
        arms.push(Arm { method, run: run.clone(), seconds, pretrain_seconds: pre, test: test_metrics(&run)? });
    }

    let device = std::fs::read_to_string(ssl_run.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["device"].as_str().map(String::from))
        .unwrap_or_else(|| args.compute.device.to_string());
    let total = started.elapsed().as_secs_f64();
    let table = table(&arms, sizes);
    let verdict = verdict(&arms);
    println!("\n{table}\n{verdict}\n");
    println!(
        "device {device}, precision {}; whole demo {total:.0} s. Run folders (config, metrics, checkpoints, export, plots/*.png):",
        args.compute.precision
    );
    for run in [&ssl_run, &arms[0].run, &arms[1].run] {
        println!("  {}", run.display());
    }
    println!("plots: {}", arms.iter().map(|a| s(&a.run.join("plots"))).chain([s(&ssl_run.join("plots"))]).collect::<Vec<_>>().join(", "));
    let results: Vec<Value> = arms
        .iter()
        .map(|a| {
            json!({"method": a.method, "run": s(&a.run), "finetune_seconds": a.seconds, "pretrain_seconds": a.pretrain_seconds,
                   "test": {"n": a.test["n"], "accuracy": a.test["accuracy"], "balanced_accuracy": a.test["balanced_accuracy"],
                            "macro_auc": a.test["macro_auc"]}})
        })
        .collect();
    write_json(
        &out.join(MARKER),
        &json!({"status": "done", "device": device, "precision": args.compute.precision.name(), "seed": args.seed, "sizes": sizes.to_json(), "seconds": total, "results": results,
                "table": table, "verdict": verdict}),
    )?;
    Ok(())
}

fn metric(v: &Value) -> String {
    v.as_f64().map_or("n/a".to_string(), |x| format!("{x:.3}"))
}

/// The comparison table (test split).
fn table(arms: &[Arm], sizes: Sizes) -> String {
    let n = arms.first().map_or(Value::Null, |a| a.test["n"].clone());
    let mut t = format!(
        "test split ({n} images, {} classes; fine-tuned with {:.0}% of the training labels, {} epochs):\n",
        sizes.classes,
        sizes.label_fraction * 100.0,
        sizes.ft_epochs
    );
    t += &format!("{:<20} {:>9} {:>13} {:>10}  {}\n", "method", "accuracy", "balanced acc", "macro AUC", "wall time");
    for a in arms {
        let time = if a.pretrain_seconds > 0.0 {
            format!("{:.0} s (pretraining {:.0} s + fine-tuning {:.0} s)", a.pretrain_seconds + a.seconds, a.pretrain_seconds, a.seconds)
        } else {
            format!("{:.0} s", a.seconds)
        };
        t += &format!(
            "{:<20} {:>9} {:>13} {:>10}  {time}\n",
            a.method,
            metric(&a.test["accuracy"]),
            metric(&a.test["balanced_accuracy"]),
            metric(&a.test["macro_auc"])
        );
    }
    t.trim_end().to_string()
}

/// What the numbers say, no more: the accuracy difference against the sampling noise of the test split.
fn verdict(arms: &[Arm]) -> String {
    let acc = |a: &Arm| a.test["accuracy"].as_f64().unwrap_or(f64::NAN);
    let n = arms[0].test["n"].as_f64().unwrap_or(0.0).max(1.0);
    let (ssl, scratch) = (acc(&arms[0]), acc(&arms[1]));
    let diff = ssl - scratch;
    // Standard error of the difference of two accuracies measured on n images each.
    let se = ((ssl * (1.0 - ssl) + scratch * (1.0 - scratch)) / n).sqrt();
    let direction = if diff > 0.0 {
        "higher"
    } else if diff < 0.0 {
        "lower"
    } else {
        "equal"
    };
    let noise = if diff.abs() <= 2.0 * se { "within" } else { "more than" };
    format!(
        "FG-SSL pretrained vs from scratch: test accuracy {direction} by {:.1} points, {noise} two standard errors of this test \
         split ({:.1} points). One seed on a tiny synthetic set: this shows the pipeline working, not the method's merit \
         (docs/RESULTS.md: no gain at 10% labels over 3 seeds).",
        100.0 * diff.abs(),
        200.0 * se
    )
}
