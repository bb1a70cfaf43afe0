//! `RUN_DIR/plots/`: PNG charts of a run, drawn from its `metrics.jsonl` at the end of `fgssl pretrain` and
//! `fgssl finetune` (and by `fgssl demo`):
//!
//! ```text
//! loss_per_iteration.png      each step's loss at every iteration (SSL: Barlow Twins; fine-tuning: cross-entropy)
//! loss_per_epoch.png          the same, averaged per epoch
//! collapse_monitor.png        SSL only: std of the l2-normalised embeddings per epoch (0 = collapse)
//! validation_curves.png       per-epoch validation metrics (eval events with an `epoch`: finetune scores val per epoch)
//! eval_metrics.png            accuracy, balanced accuracy and macro AUC of each evaluated split (final model)
//! per_class_recall.png        recall of each class on each evaluated split
//! confusion_matrix_SPLIT.png  rows true class, columns predicted, shaded by share of the row
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::metrics_log::read_events;
use crate::error::Result;
use crate::plot::{BarChart, Canvas, Heatmap, LineChart, Series};

/// The name of each logged step in the legend.
fn step_names(stage: &str, steps: usize) -> Vec<String> {
    match steps {
        1 => vec![if stage == "ssl" { "loss".into() } else { "cross-entropy".into() }],
        4 => vec!["step 1 layer2".into(), "step 2 layer3".into(), "step 3 layer4".into(), "step 4 concat".into()],
        n => (1..=n).map(|k| format!("step {k}")).collect(),
    }
}

fn stage_title(stage: &str) -> &'static str {
    match stage {
        "ssl" => "SSL pretraining",
        "linear-probe" => "Linear probe",
        _ => "Fine-tuning",
    }
}

fn loss_name(stage: &str) -> &'static str {
    if stage == "ssl" {
        "Barlow Twins loss"
    } else {
        "cross-entropy loss"
    }
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// One series per step of `field`, x from `x_of` (events with fewer steps leave gaps).
fn step_series(events: &[&Value], stage: &str, field: &str, x_of: impl Fn(&Value) -> f64) -> Vec<Series> {
    let steps = events.iter().map(|e| e["steps"].as_array().map_or(0, Vec::len)).max().unwrap_or(0);
    step_names(stage, steps)
        .into_iter()
        .enumerate()
        .map(|(k, name)| Series { name, points: events.iter().map(|e| (x_of(e), number(&e["steps"][k][field]))).collect() })
        .collect()
}

/// The plots of the run whose events are in `metrics_jsonl`, written into `out_dir`; returns the files written.
pub fn write_plots(metrics_jsonl: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let events = read_events(metrics_jsonl)?;
    let of_kind = |kind: &str| events.iter().filter(|e| e["kind"] == kind).collect::<Vec<_>>();
    let (iterations, epochs, evals) = (of_kind("iteration"), of_kind("epoch"), of_kind("eval"));
    let stage = events.iter().find_map(|e| e["stage"].as_str()).unwrap_or("finetune").to_string();
    let mut charts: Vec<(&str, Canvas)> = Vec::new();

    if !iterations.is_empty() {
        let chart = LineChart {
            title: format!("{}: loss per iteration", stage_title(&stage)),
            x_label: "iteration".into(),
            y_label: loss_name(&stage).into(),
            series: step_series(&iterations, &stage, "loss", |e| number(&e["iteration"])),
            y_range: None,
        };
        charts.push(("loss_per_iteration.png", chart.render()));
    }
    if !epochs.is_empty() {
        let chart = LineChart {
            title: format!("{}: mean loss per epoch", stage_title(&stage)),
            x_label: "epoch".into(),
            y_label: loss_name(&stage).into(),
            series: step_series(&epochs, &stage, "loss", |e| number(&e["epoch"]) + 1.0),
            y_range: None,
        };
        charts.push(("loss_per_epoch.png", chart.render()));
        if stage == "ssl" {
            let chart = LineChart {
                title: "Collapse monitor (0 = collapsed)".into(),
                x_label: "epoch".into(),
                y_label: "std of l2-normalised embeddings".into(),
                series: step_series(&epochs, &stage, "std_of_l2_normalized", |e| number(&e["epoch"]) + 1.0),
                y_range: None,
            };
            charts.push(("collapse_monitor.png", chart.render()));
        }
    }

    // Evaluations logged during training (with an epoch) make curves; the last evaluation of each split without
    // one is the final model's.
    let per_epoch: Vec<&Value> = evals.iter().copied().filter(|e| e["epoch"].is_u64()).collect();
    if !per_epoch.is_empty() {
        let mut series = Vec::new();
        for split in distinct(per_epoch.iter().filter_map(|e| e["split"].as_str())) {
            for (key, name) in METRICS {
                let points =
                    per_epoch.iter().filter(|e| e["split"] == split.as_str()).map(|e| (number(&e["epoch"]) + 1.0, number(&e["metrics"][key])));
                series.push(Series { name: format!("{split} {name}"), points: points.collect() });
            }
        }
        let chart = LineChart {
            title: format!("{}: validation metrics per epoch", stage_title(&stage)),
            x_label: "epoch".into(),
            y_label: "metric".into(),
            series,
            y_range: Some((0.0, 1.0)),
        };
        charts.push(("validation_curves.png", chart.render()));
    }
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for e in evals.iter().filter(|e| !e["epoch"].is_u64()) {
        if let Some(split) = e["split"].as_str() {
            last.insert(split.to_string(), e);
        }
    }
    // val before test, whatever else after.
    let mut finals: Vec<(String, &Value)> = last.into_iter().collect();
    finals.sort_by_key(|(s, _)| match s.as_str() {
        "val" => 0,
        "test" => 1,
        _ => 2,
    });
    if !finals.is_empty() {
        let chart = BarChart {
            title: format!("{}: metrics of the final model", stage_title(&stage)),
            y_label: "metric".into(),
            categories: METRICS.iter().map(|(_, name)| name.to_string()).collect(),
            groups: finals.iter().map(|(s, e)| format!("{s} ({} images)", e["metrics"]["n"])).collect(),
            values: finals.iter().map(|(_, e)| METRICS.iter().map(|(key, _)| number(&e["metrics"][key])).collect()).collect(),
            y_range: Some((0.0, 1.0)),
        };
        charts.push(("eval_metrics.png", chart.render()));
        let classes: Vec<String> =
            finals[0].1["metrics"]["classes"].as_array().map_or(Vec::new(), |a| a.iter().map(|c| c.as_str().unwrap_or("?").to_string()).collect());
        let chart = BarChart {
            title: "Recall per class".into(),
            y_label: "recall".into(),
            categories: classes.clone(),
            groups: finals.iter().map(|(s, _)| s.clone()).collect(),
            values: finals.iter().map(|(_, e)| (0..classes.len()).map(|c| number(&e["metrics"]["per_class"][c]["recall"])).collect()).collect(),
            y_range: Some((0.0, 1.0)),
        };
        charts.push(("per_class_recall.png", chart.render()));
    }
    let mut confusions = Vec::new();
    for (split, e) in &finals {
        let counts: Vec<Vec<usize>> = e["metrics"]["confusion_matrix"].as_array().map_or(Vec::new(), |rows| {
            rows.iter().map(|r| r.as_array().map_or(Vec::new(), |r| r.iter().map(|n| n.as_u64().unwrap_or(0) as usize).collect())).collect()
        });
        let names = e["metrics"]["classes"].as_array().map_or(Vec::new(), |a| a.iter().map(|c| c.as_str().unwrap_or("?").to_string()).collect());
        let map = Heatmap {
            title: format!("Confusion matrix ({split})"),
            row_label: "true class".into(),
            col_label: "predicted class".into(),
            names,
            counts,
        };
        confusions.push((format!("confusion_matrix_{split}.png"), map.render()));
    }

    std::fs::create_dir_all(out_dir).map_err(|e| crate::error::Error::io(out_dir, e))?;
    let mut written = Vec::new();
    for (name, canvas) in charts.iter().map(|(n, c)| (n.to_string(), c)).chain(confusions.iter().map(|(n, c)| (n.clone(), c))) {
        let path = out_dir.join(name);
        canvas.save_png(&path)?;
        written.push(path);
    }
    Ok(written)
}

/// The three headline metrics: key in the eval event, name in the legend.
const METRICS: [(&str, &str); 3] = [("accuracy", "accuracy"), ("balanced_accuracy", "balanced acc."), ("macro_auc", "macro AUC")];

fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in items {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// `fgssl plot`: draws a run's plots again (an interrupted run, or one from before plots existed).
#[derive(clap::Args, Debug)]
#[command(
    about = "Draw the PNG plots of a run folder from its metrics.jsonl (written automatically at the end of a run)",
    after_help = "Example:\n  fgssl plot --run runs/ssl            (writes runs/ssl/plots/*.png)"
)]
pub struct PlotArgs {
    /// Run folder of `fgssl pretrain` or `fgssl finetune`.
    #[arg(long, value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Folder for the PNG files (default: RUN_DIR/plots).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: PlotArgs) -> super::CliResult {
    let metrics = args.run.join("metrics.jsonl");
    if !metrics.is_file() {
        return Err(crate::error::Error::Invalid(format!("--run {}: no metrics.jsonl in this folder (not a run folder?)", args.run.display())).into());
    }
    let out = args.out.unwrap_or_else(|| args.run.join("plots"));
    let files = write_plots(&metrics, &out)?;
    if files.is_empty() {
        return Err(crate::error::Error::Invalid(format!("{}: no iteration, epoch or eval events to plot", metrics.display())).into());
    }
    for f in &files {
        println!("{}", f.display());
    }
    Ok(())
}

/// Draws `RUN_DIR/plots/` at the end of a run. The run's results are already on disk, so a failure here is
/// reported on stderr (and in train.log) but does not fail the command.
pub fn plot_run(run_root: &Path) {
    match write_plots(&run_root.join("metrics.jsonl"), &run_root.join("plots")) {
        Ok(files) => super::run_dir::say!("plots: {} PNG files in {}", files.len(), run_root.join("plots").display()),
        Err(e) => super::run_dir::say!("warning: plots not written ({e}); the run's results are complete"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(split: &str, epoch: Option<usize>, accuracy: f64) -> Value {
        let metrics = json!({"n": 4, "classes": ["a", "b"], "accuracy": accuracy, "balanced_accuracy": accuracy, "macro_auc": 0.5,
                             "per_class": [{"recall": 1.0}, {"recall": 0.0}], "confusion_matrix": [[2, 0], [2, 0]]});
        let mut e = json!({"kind": "eval", "stage": "finetune", "split": split, "metrics": metrics});
        if let Some(epoch) = epoch {
            e["epoch"] = json!(epoch);
        }
        e
    }

    #[test]
    fn a_fine_tuning_run_gets_every_plot_and_per_epoch_evaluations_make_curves() {
        let dir = std::env::temp_dir().join(format!("fgssl-plots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let step = |loss: f64| json!({"loss": loss, "on_diag": 0.0, "off_diag": 0.0, "std_of_l2_normalized": 0.0});
        let mut events = Vec::new();
        for (i, epoch) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
            events.push(json!({"kind": "iteration", "stage": "finetune", "epoch": epoch, "iteration": i, "steps": [step(2.0 - i as f64 * 0.3)]}));
        }
        events.push(json!({"kind": "epoch", "stage": "finetune", "epoch": 0, "steps": [step(1.8)]}));
        events.push(eval("val", Some(0), 0.5));
        events.push(json!({"kind": "epoch", "stage": "finetune", "epoch": 1, "steps": [step(1.2)]}));
        events.push(eval("val", Some(1), 0.75));
        events.push(eval("val", None, 0.75));
        events.push(eval("test", None, 0.5));
        let text: String = events.iter().map(|e| format!("{e}\n")).collect();
        std::fs::write(dir.join("metrics.jsonl"), text).unwrap();

        let files = write_plots(&dir.join("metrics.jsonl"), &dir.join("plots")).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "loss_per_iteration.png",
                "loss_per_epoch.png",
                "validation_curves.png",
                "eval_metrics.png",
                "per_class_recall.png",
                "confusion_matrix_val.png",
                "confusion_matrix_test.png"
            ]
        );
        for f in &files {
            let img = image::open(f).unwrap().to_rgb8();
            let inked = img.pixels().filter(|p| p.0 != crate::plot::canvas::WHITE).count();
            assert!(inked > 1000, "{}: only {inked} non-background pixels", f.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_without_events_gets_no_plots_and_no_error() {
        let dir = std::env::temp_dir().join(format!("fgssl-plots-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(write_plots(&dir.join("metrics.jsonl"), &dir.join("plots")).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
