//! `fgssl eval`: a fine-tuned model's metrics on one split of a data set (DATA.md §6): the summed-head prediction
//! (METHOD.md §9) with the data set's headline metrics, and the concat head alone (PMG's second number).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::model_file::{
    cache_anchor, check_same_classes, load_classifier, load_dataset_for, predict_logits, Images, ModelFileArgs, SplitName, ViewArgs,
};
use super::training_args::DataArgs;
use super::{CliResult, Selected};
use crate::backend::Backend;
use crate::data::DatasetKind;
use crate::error::Result;
use crate::metrics::{isic2017_task_aucs, softmax_rows, Isic2017Aucs, Report};
use crate::weights::write_atomic;

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Evaluate a fine-tuned model on a split of a data set (accuracy, balanced accuracy, AUC, F1, kappa, ...)",
    after_help = "Examples:\n  fgssl eval --weights runs/ft --data ~/data/ISIC2018\n  \
                  fgssl eval --weights ft.safetensors --data ~/data/aptos --split val --json val.json\n\n\
                  The split follows the rules of `fgssl finetune` (official where the data set has one, else stratified\n\
                  with --split-seed, 18 by default), so `eval` scores the same images finetune held out. Predictions are\n\
                  the argmax of the summed logits of the four heads, scores their softmax; the concat head alone is\n\
                  reported too. APTOS adds the quadratic weighted kappa; ISIC 2017 with the three classes adds the\n\
                  melanoma and seborrheic keratosis AUCs and their mean."
)]
pub struct EvalArgs {
    /// Read flags from a TOML file (keys are the long flag names, `batch_size = 64`); the command line overrides it.
    #[arg(long, value_name = "FILE.toml")]
    #[allow(dead_code)] // expanded into flags before parsing (config_file.rs)
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub model: ModelFileArgs,
    #[command(flatten)]
    pub view: ViewArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which split to score.
    #[arg(long, value_enum, default_value_t = SplitName::Test)]
    pub split: SplitName,
    /// Also write the metrics as JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: EvalArgs) -> CliResult {
    match args.view.compute.select()? {
        Selected::Cpu(b) => run_on(&b, args),
        Selected::Cuda(b) => run_on(b.as_ref(), args),
    }
}

/// The ISIC 2017 Part 3 task AUCs, when the model has both the melanoma and the seborrheic keratosis class.
fn isic2017_aucs(names: &[String], truth: &[usize], probs: &[f32]) -> Result<Option<Isic2017Aucs>> {
    let find = |n: &str| names.iter().position(|c| c == n);
    match (find("melanoma"), find("seborrheic_keratosis")) {
        (Some(mel), Some(sk)) => isic2017_task_aucs(truth, probs, names.len(), mel, sk).map(Some),
        _ => Ok(None),
    }
}

fn fmt_auc(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |x| format!("{x:.4}"))
}

fn run_on<B: Backend>(b: &B, args: EvalArgs) -> CliResult {
    eprintln!("device: {}", super::precision::describe(b));
    let m = load_classifier(&args.model)?;
    let (size, resize) = args.view.resolve(&m.metadata, &m.path)?;
    let ds = load_dataset_for(&args.data.source, &m.class_names, false)?;
    check_same_classes(&m.class_names, &ds)?;
    let indices = args.split.indices(&ds, args.data.split_seed)?;
    // By default the cache goes where finetune put the caches of the same splits.
    let cache = args.data.cache(&ds, &indices, args.split.name(), resize, &cache_anchor(&m.path))?;
    let (sum, cat) = predict_logits(b, &m, &Images::Cache(cache), size, args.view.batch_size as usize)?;

    let k = m.class_names.len();
    let truth: Vec<usize> = indices.iter().map(|&i| ds.samples[i].label.expect("split indices are labelled")).collect();
    let aptos = ds.format == DatasetKind::Aptos2019.name();
    let probs = softmax_rows(&sum, k);
    let report = Report::new(&truth, &probs, k, &m.class_names, aptos)?;
    let cat_report = Report::new(&truth, &softmax_rows(&cat, k), k, &m.class_names, aptos)?;
    let isic2017 = isic2017_aucs(&m.class_names, &truth, &probs)?;

    println!("{} split of {} ({}, {} images), summed heads:\n{report}", args.split.name(), ds.root.display(), ds.format, truth.len());
    if let Some(a) = &isic2017 {
        println!(
            "ISIC 2017 Part 3: melanoma AUC {}, seborrheic keratosis AUC {}, mean {}\n",
            fmt_auc(a.melanoma),
            fmt_auc(a.seborrheic_keratosis),
            fmt_auc(a.mean)
        );
    }
    let kappa = cat_report.kappa.map(|q| format!(", quadratic kappa {q:.4}")).unwrap_or_default();
    println!(
        "concat head alone: accuracy {:.4}, balanced accuracy {:.4}, macro AUC {}{kappa}",
        cat_report.accuracy,
        cat_report.balanced_accuracy.value,
        fmt_auc(cat_report.auc.mean)
    );

    if let Some(path) = &args.json {
        let mut v = json!({
            "weights": m.path,
            "data": ds.root,
            "format": ds.format,
            "split": args.split.name(),
            "split_seed": args.data.split_seed,
            "size": size,
            "resize": resize,
            "precision": b.precision().name(),
            "metrics": report.to_json(),
            "concat_head": cat_report.to_json(),
        });
        if let Some(a) = isic2017 {
            let finite = |x: Option<f64>| x.filter(|v| v.is_finite());
            v["isic2017"] =
                json!({"melanoma_auc": finite(a.melanoma), "seborrheic_keratosis_auc": finite(a.seborrheic_keratosis), "mean_auc": finite(a.mean)});
        }
        let text = serde_json::to_string_pretty(&v).map_err(|e| crate::error::Error::Invalid(format!("metrics JSON: {e}")))?;
        write_atomic(path, format!("{text}\n").as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
