//! The run folder's metrics: `metrics.jsonl` (one JSON object per event) and `metrics.csv` (the same events as
//! rows), plus one line per epoch on stderr and in `train.log`.
//!
//! Events (`kind`): `iteration` (each step's loss, Barlow Twins on- and off-diagonal terms and collapse monitor
//! `std_of_l2_normalized`, lr, images/s), `epoch` (their means over the epoch) and `eval` (one per evaluated split,
//! the data set's metrics). Epochs and iterations count from 0 (stderr's `epoch N:` lines from 1). `stage` says which training produced them (`ssl`, `finetune`, `linear-probe`).
//! The CSV has fixed columns; an eval event becomes one row per scalar metric (`metric`, `value`), its nested
//! per-class metrics stay in the JSON. When a run resumes, the events of the epochs it repeats are dropped first,
//! so the files read as if the run had never stopped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::run_dir::say;
use crate::error::{Error, Result};
use crate::training::checkpoint::Progress;
use crate::training::epochs::IterationLog;
use crate::training::ssl::SslStepLog;
use crate::weights::write_atomic;

const STEPS: usize = 4;
const STEP_FIELDS: [&str; 4] = ["loss", "on_diag", "off_diag", "std_of_l2_normalized"];

/// An f32 as the JSON number with the same shortest decimal form (0.01, not 0.009999999776482582); NaN and
/// infinities become null.
pub fn num(x: f32) -> Value {
    x.to_string().parse::<f64>().map_or(Value::Null, |v| json!(v))
}

/// The CSV header: fixed event columns, then per step `loss_k`, `on_diag_k`, `off_diag_k`,
/// `std_of_l2_normalized_k` (k = 1..4), then `metric,value` for eval rows.
pub fn csv_header() -> String {
    let mut cols: Vec<String> =
        ["kind", "stage", "epoch", "iteration", "split", "lr", "images", "seconds", "images_per_s"].map(String::from).to_vec();
    for field in STEP_FIELDS {
        cols.extend((1..=STEPS).map(|k| format!("{field}_{k}")));
    }
    cols.extend(["metric".to_string(), "value".to_string()]);
    cols.join(",")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => crate::predictions::csv_field(s),
        other => other.to_string(),
    }
}

/// The CSV rows of one event.
fn csv_rows(event: &Value) -> Vec<String> {
    let mut fixed: Vec<String> =
        ["kind", "stage", "epoch", "iteration", "split", "lr", "images", "seconds", "images_per_s"].iter().map(|k| cell(&event[*k])).collect();
    let steps = event["steps"].as_array().cloned().unwrap_or_default();
    for field in STEP_FIELDS {
        fixed.extend((0..STEPS).map(|k| steps.get(k).map(|s| cell(&s[field])).unwrap_or_default()));
    }
    let row = fixed.join(",");
    match event["metrics"].as_object() {
        Some(metrics) => metrics.iter().filter(|(_, v)| v.is_number()).map(|(name, v)| format!("{row},{},{v}", cell(&json!(name)))).collect(),
        None => vec![format!("{row},,")],
    }
}

/// Means over the iterations of one epoch.
#[derive(Default)]
struct EpochSums {
    epoch: Option<usize>,
    iterations: usize,
    steps: Vec<[f64; 4]>,
    images: usize,
    seconds: f64,
    lr: f32,
}

pub struct MetricsLog {
    jsonl: (PathBuf, File),
    csv: (PathBuf, File),
    stage: &'static str,
    sums: EpochSums,
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))
}

impl MetricsLog {
    /// Opens the two files of a run folder. A new run (`resumed_at` None) starts them empty; a resumed one keeps
    /// the events before its progress (iterations before its iteration, epochs and per-epoch validations before its
    /// epoch) and drops the rest; the kept iterations of a half-done epoch count towards that epoch's means.
    pub fn open(jsonl: &Path, csv: &Path, stage: &'static str, resumed_at: Option<Progress>) -> Result<Self> {
        let before = |e: &Value, key: &str, limit: usize| e[key].as_u64().is_some_and(|x| (x as usize) < limit);
        let kept: Vec<Value> = match resumed_at {
            None => Vec::new(),
            Some(at) => read_events(jsonl)?
                .into_iter()
                .filter(|e| match e["kind"].as_str() {
                    Some("iteration") => before(e, "iteration", at.iteration),
                    Some("epoch") => before(e, "epoch", at.epoch),
                    // Per-epoch validations carry their epoch; the final evaluations do not and are redone.
                    Some("eval") => before(e, "epoch", at.epoch),
                    _ => false,
                })
                .collect(),
        };
        let mut text = String::new();
        let mut table = csv_header() + "\n";
        for e in &kept {
            text.push_str(&format!("{e}\n"));
            csv_rows(e).iter().for_each(|r| table.push_str(&format!("{r}\n")));
        }
        write_atomic(jsonl, text.as_bytes())?;
        write_atomic(csv, table.as_bytes())?;
        let mut log =
            MetricsLog { jsonl: (jsonl.to_path_buf(), append(jsonl)?), csv: (csv.to_path_buf(), append(csv)?), stage, sums: EpochSums::default() };
        if let Some(at) = resumed_at.filter(|at| at.batch > 0) {
            kept.iter().filter(|e| e["kind"] == "iteration" && e["epoch"].as_u64() == Some(at.epoch as u64)).for_each(|e| log.add_to_sums(e));
        }
        Ok(log)
    }

    /// Adds a logged iteration event (of a run stopped mid-epoch) to the epoch's sums.
    fn add_to_sums(&mut self, e: &Value) {
        let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let steps: Vec<SslStepLog> = e["steps"]
            .as_array()
            .map(|steps| {
                steps
                    .iter()
                    .map(|s| SslStepLog {
                        loss: f(&s["loss"]) as f32,
                        on_diag: f(&s["on_diag"]) as f32,
                        off_diag: f(&s["off_diag"]) as f32,
                        collapse_std: f(&s["std_of_l2_normalized"]) as f32,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let count = |k: &str| e[k].as_u64().unwrap_or(0) as usize;
        let it = IterationLog {
            epoch: count("epoch"),
            iteration: count("iteration"),
            lr: f(&e["lr"]) as f32,
            images: count("images"),
            seconds: f(&e["seconds"]),
            steps,
        };
        self.accumulate(&it);
    }

    fn accumulate(&mut self, it: &IterationLog) {
        let s = &mut self.sums;
        if s.epoch != Some(it.epoch) {
            *s = EpochSums { epoch: Some(it.epoch), ..EpochSums::default() };
        }
        s.steps.resize(it.steps.len(), [0.0; 4]);
        for (sum, step) in s.steps.iter_mut().zip(&it.steps) {
            for (acc, v) in sum.iter_mut().zip([step.loss, step.on_diag, step.off_diag, step.collapse_std]) {
                *acc += v as f64;
            }
        }
        s.iterations += 1;
        s.images += it.images;
        s.seconds += it.seconds;
        s.lr = it.lr;
    }

    /// Appends one event to both files.
    pub fn write(&mut self, event: &Value) -> Result<()> {
        writeln!(self.jsonl.1, "{event}").map_err(|e| Error::io(&self.jsonl.0, e))?;
        for row in csv_rows(event) {
            writeln!(self.csv.1, "{row}").map_err(|e| Error::io(&self.csv.0, e))?;
        }
        Ok(())
    }

    pub fn iteration(&mut self, it: &IterationLog) -> Result<()> {
        self.accumulate(it);
        let steps: Vec<Value> = it
            .steps
            .iter()
            .map(
                |s| json!({"loss": num(s.loss), "on_diag": num(s.on_diag), "off_diag": num(s.off_diag), "std_of_l2_normalized": num(s.collapse_std)}),
            )
            .collect();
        self.write(&json!({"kind": "iteration", "stage": self.stage, "epoch": it.epoch, "iteration": it.iteration, "lr": num(it.lr),
                           "images": it.images, "seconds": it.seconds, "images_per_s": it.images as f64 / it.seconds.max(1e-9), "steps": steps}))
    }

    /// Writes the `epoch` event of the epoch that just ended and prints it. Returns the epoch's loss: the sum of the
    /// step losses (METHOD.md §7), averaged over the epoch's iterations.
    pub fn end_epoch(&mut self) -> Result<Option<f64>> {
        let s = std::mem::take(&mut self.sums);
        let Some(epoch) = s.epoch.filter(|_| s.iterations > 0) else { return Ok(None) };
        let n = s.iterations as f64;
        let means: Vec<[f64; 4]> = s.steps.iter().map(|m| m.map(|v| v / n)).collect();
        let steps: Vec<Value> =
            means.iter().map(|m| json!({"loss": m[0], "on_diag": m[1], "off_diag": m[2], "std_of_l2_normalized": m[3]})).collect();
        let rate = s.images as f64 / s.seconds.max(1e-9);
        self.write(&json!({"kind": "epoch", "stage": self.stage, "epoch": epoch, "iterations": s.iterations, "lr": num(s.lr), "images": s.images,
                           "seconds": s.seconds, "images_per_s": rate, "steps": steps}))?;
        let losses: Vec<String> = means.iter().map(|m| format!("{:.4}", m[0])).collect();
        let collapse = means.iter().map(|m| m[3]).sum::<f64>() / means.len().max(1) as f64;
        let monitor = if collapse > 0.0 { format!("  std_of_l2_normalized {collapse:.4}") } else { String::new() };
        say!("epoch {:>3}: step losses [{}]{monitor}  lr {:.3e}  {rate:.1} img/s", epoch + 1, losses.join(", "), s.lr);
        Ok(Some(means.iter().map(|m| m[0]).sum()))
    }

    /// One `eval` event of a validation pass after epoch `epoch` (0-based, as the other events).
    pub fn eval_after_epoch(&mut self, split: &str, epoch: usize, metrics: Value) -> Result<()> {
        self.write(&json!({"kind": "eval", "stage": self.stage, "split": split, "epoch": epoch, "metrics": metrics}))
    }

    /// One `eval` event: the metrics of one split.
    pub fn eval(&mut self, split: &str, metrics: Value) -> Result<()> {
        self.write(&json!({"kind": "eval", "stage": self.stage, "split": split, "metrics": metrics}))
    }

    /// One `epoch` event of the linear probe (its mean loss).
    pub fn probe_epoch(&mut self, epoch: usize, lr: f32, loss: f32) -> Result<()> {
        self.write(&json!({"kind": "epoch", "stage": self.stage, "epoch": epoch, "lr": num(lr), "steps": [{"loss": num(loss)}]}))
    }
}

/// The events of a `metrics.jsonl` (a missing file has none; a torn last line, from a killed run, is skipped).
pub fn read_events(path: &Path) -> Result<Vec<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
