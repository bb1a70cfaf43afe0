//! The run folder of `fgssl pretrain` / `fgssl finetune` (`--out RUN_DIR`, ANCHORS.md §2.2 #1):
//!
//! ```text
//! RUN_DIR/config.json                  the resolved settings, their hash, device, git revision
//! RUN_DIR/splits.json                  the train/val/test split (sample ids)
//! RUN_DIR/metrics.jsonl, metrics.csv   per iteration, per epoch, per evaluated split (metrics_log.rs)
//! RUN_DIR/train.log                    what the command printed on stderr
//! RUN_DIR/checkpoints/last.safetensors model + optimizer + progress after the latest epoch (last.prev.* before it),
//!                                      or where Ctrl-C stopped the run (resumes mid-epoch)
//! RUN_DIR/checkpoints/best.safetensors the epoch with the best --best-metric so far (best.json: metric, value, epoch)
//! RUN_DIR/checkpoints/epoch-NNNN.*     the last --keep-checkpoints N epochs' checkpoints
//! RUN_DIR/export/backbone.safetensors  the backbone under torchvision's names, F32, counters I64, no fc
//! RUN_DIR/export/model.safetensors     every tensor of the model (blocks, projectors, classifiers)
//! RUN_DIR/export/metadata.json         arch, classes, input size, mean/std, method, F, P, grids, revision
//! ```
//!
//! The folder is created and tested for writing before anything else runs. A folder that already holds a run
//! is refused unless the run is resumed (`--resume`) or `--overwrite` is given.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::{is_backbone_key, precision};
use crate::backend::{Backend, Precision};
use crate::error::{Error, Result};
use crate::model::{HostState, Registry, State};
use crate::training::checkpoint::{self, previous_path, Progress, TrainingState};
use crate::training::epochs::{IterationLog, Observer};
use crate::training::optim::Optimizer;
use crate::weights::{self, HostTensor};

use super::checkpoints::{BestMetric, CheckpointPolicy};
use super::metrics_log::MetricsLog;
use super::progress::{interrupt_requested, ProgressReport, INTERRUPTED_EXIT_CODE};
use super::CliError;

/// `train.log` of the running command, when there is one.
static TEE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Appends a line to `train.log` (not to stderr).
pub fn log_line(line: &str) {
    if let Ok(mut guard) = TEE.lock() {
        if let Some(f) = guard.as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// `eprintln!` (above the progress bar; nothing with `--quiet`) that also appends the line to the run's `train.log`.
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        $crate::cli::progress::print_line(&line);
        $crate::cli::run_dir::log_line(&line);
    }};
}
pub(crate) use say;

/// `--resume`: `auto` (the run folder's latest checkpoint, if any) or a checkpoint file or run folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    Auto,
    Path(PathBuf),
}

impl FromStr for Resume {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(if s == "auto" { Resume::Auto } else { Resume::Path(PathBuf::from(s)) })
    }
}

pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// Creates the folder (and `checkpoints/`, `export/`), checks that files can be written there, refuses a folder
    /// that already holds a run unless `resuming` or `overwrite`, and starts `train.log` (appending when resuming).
    pub fn create(root: &Path, resuming: bool, overwrite: bool) -> Result<RunDir> {
        let run = RunDir { root: root.to_path_buf() };
        let unusable = |what: &str, e: std::io::Error| Error::Invalid(format!("--out {}: {what} ({e})", root.display()));
        for dir in [run.root.clone(), run.checkpoints(), run.export_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| unusable("cannot create the run folder", e))?;
        }
        let probe = run.root.join(".write-test");
        std::fs::write(&probe, b"fgssl").and_then(|()| std::fs::remove_file(&probe)).map_err(|e| unusable("cannot write in the run folder", e))?;
        if run.config().exists() && !resuming && !overwrite {
            return Err(Error::Invalid(format!(
                "--out {}: this folder already holds a run (config.json); pass --resume auto to continue it, --overwrite to \
                 replace it, or choose another folder",
                root.display()
            )));
        }
        let file = if resuming { OpenOptions::new().create(true).append(true).open(run.log()) } else { std::fs::File::create(run.log()) };
        let file = file.map_err(|e| Error::io(run.log(), e))?;
        *TEE.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
        Ok(run)
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    pub fn splits(&self) -> PathBuf {
        self.root.join("splits.json")
    }
    pub fn metrics_jsonl(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn metrics_csv(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("train.log")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn last_checkpoint(&self) -> PathBuf {
        self.checkpoints().join("last.safetensors")
    }
    pub fn export_dir(&self) -> PathBuf {
        self.root.join("export")
    }

    /// The checkpoint `--resume` points at: `None` for `auto` in a folder without one (a fresh start).
    pub fn resume_from(&self, resume: &Resume) -> Result<Option<PathBuf>> {
        let latest = |dir: &Path| {
            let last = dir.join("checkpoints").join("last.safetensors");
            // Between the two renames of a checkpoint write only the previous copy exists.
            [previous_path(&last), last].into_iter().rev().find(|p| p.is_file())
        };
        match resume {
            Resume::Auto => Ok(latest(&self.root)),
            Resume::Path(p) if p.is_dir() => {
                latest(p).map(Some).ok_or_else(|| Error::Invalid(format!("--resume {}: no checkpoints/last.safetensors in this folder", p.display())))
            }
            Resume::Path(p) if p.is_file() => Ok(Some(p.clone())),
            Resume::Path(p) => Err(Error::Invalid(format!("--resume {}: no such checkpoint file or run folder", p.display()))),
        }
    }
}

/// The run's settings: `training` (hashed: a checkpoint resumes only under the same values) and `run` (free to
/// change: epochs, device, paths).
pub struct RunConfig {
    pub training: Value,
    pub run: Value,
}

impl RunConfig {
    pub fn hash(&self) -> String {
        checkpoint::config_hash(&self.training)
    }

    /// Writes `config.json` atomically.
    pub fn write(&self, path: &Path, command: &str, device: &str, resumed_from: Option<&Path>) -> Result<()> {
        let v = json!({
            "command": command,
            "fgssl_version": env!("CARGO_PKG_VERSION"),
            "git_revision": git_revision(),
            "device": device,
            "config_hash": self.hash(),
            "resumed_from": resumed_from.map(|p| p.display().to_string()),
            "training": self.training,
            "run": self.run,
        });
        let text = serde_json::to_string_pretty(&v).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))? + "\n";
        weights::write_atomic(path, text.as_bytes())
    }

    /// Checks that a checkpoint was written under the same training settings; names each difference.
    pub fn check_resume(&self, path: &Path, state: &TrainingState) -> Result<()> {
        // Checkpoints written before runs recorded their precision computed in fp32: they resume as fp32 runs.
        let mut now = self.training.clone();
        if state.config.get(precision::KEY).is_none() && now[precision::KEY] == Precision::Fp32.name() {
            now.as_object_mut().map(|o| o.remove(precision::KEY));
        }
        if state.config_hash == checkpoint::config_hash(&now) {
            return Ok(());
        }
        let diffs = checkpoint::config_differences(&state.config, &now);
        Err(Error::Invalid(format!(
            "--resume {}: the checkpoint was written with other settings, so the run cannot continue exactly: {}",
            path.display(),
            if diffs.is_empty() { "its config hash differs".to_string() } else { diffs.join("; ") }
        )))
    }
}

/// The checkpoint a run resumes from, checked against this run's settings: its weights and training state.
pub fn load_resume(path: Option<&Path>, reg: &Registry, config: &RunConfig, epochs: usize) -> Result<Option<(HostState, TrainingState)>> {
    let Some(path) = path else { return Ok(None) };
    let (host, state) = checkpoint::load(path, reg)?;
    config.check_resume(path, &state)?;
    let p = state.progress;
    let partial = if p.batch > 0 { format!(" and {} batches of epoch {}", p.batch, p.epoch + 1) } else { String::new() };
    say!("resume {}: {} of {epochs} epochs{partial} done, continuing at iteration {}", path.display(), p.epoch, p.iteration);
    if p.epoch >= epochs {
        say!("resume: the checkpoint is already at the last epoch; writing the export only (raise --epochs to train on)");
    }
    Ok(Some((host, state)))
}

/// `git describe --always --dirty` of the source tree this binary was built from, when git and the tree exist.
fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git").args(["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// Scores the model after an epoch for a validation-based `--best-metric`: the validation split's metrics as JSON
/// (`accuracy`, `balanced_accuracy`, ... as `metrics::Report::to_json` writes them).
pub type Validate<'a, B> = Box<dyn FnMut(&B, &mut State<B>) -> Result<Value> + 'a>;

/// Logs every iteration and epoch to the run's metrics, shows progress, writes `checkpoints/last.safetensors` after
/// every epoch (and the best and per-epoch copies the policy asks for), and saves a resumable checkpoint when the
/// run is interrupted (Ctrl-C).
pub struct RunObserver<'a, B: Backend> {
    pub log: MetricsLog,
    pub run: &'a RunDir,
    pub reg: &'a Registry,
    pub config: &'a RunConfig,
    pub metadata: BTreeMap<String, String>,
    /// The progress of the latest checkpoint written.
    pub saved: Option<Progress>,
    pub checkpoints: CheckpointPolicy,
    pub progress: ProgressReport,
    /// For a validation-based best metric: the validation pass after each epoch.
    pub validate: Option<Validate<'a, B>>,
}

impl<B: Backend> RunObserver<'_, B> {
    fn save(&mut self, b: &B, st: &State<B>, opt: &Optimizer, at: Progress) -> Result<()> {
        let host = st.download(b)?;
        let state = TrainingState {
            progress: at,
            optimizer: opt.state_to_host(b, &st.params)?,
            config_hash: self.config.hash(),
            config: self.config.training.clone(),
        };
        checkpoint::save(&self.run.last_checkpoint(), self.reg, &host, &state, &self.metadata)?;
        self.saved = Some(at);
        Ok(())
    }

    /// The score of the epoch that just ended, by the best metric (`loss` is the epoch's training loss).
    fn score(&mut self, b: &B, st: &mut State<B>, epoch: usize, loss: Option<f64>) -> Result<Option<f64>> {
        let metric = self.checkpoints.best;
        if !metric.needs_validation() {
            return Ok(if metric == BestMetric::Loss { loss } else { None });
        }
        let Some(validate) = self.validate.as_mut() else { return Ok(None) };
        let metrics = validate(b, st)?;
        let (acc, bal) = (metrics["accuracy"].as_f64(), metrics["balanced_accuracy"].as_f64());
        say!("val after epoch {:>3}: accuracy {:.4}, balanced accuracy {:.4}", epoch + 1, acc.unwrap_or(f64::NAN), bal.unwrap_or(f64::NAN));
        self.log.eval_after_epoch("val", epoch, metrics)?;
        Ok(if metric == BestMetric::ValAccuracy { acc } else { bal })
    }
}

impl<B: Backend> Observer<B> for RunObserver<'_, B> {
    fn iteration(&mut self, it: &IterationLog) -> Result<()> {
        self.log.iteration(it)?;
        self.progress.iteration(it);
        Ok(())
    }

    fn epoch_end(&mut self, b: &B, st: &mut State<B>, opt: &Optimizer, next: Progress) -> Result<()> {
        let loss = self.log.end_epoch()?;
        let score = self.score(b, st, next.epoch - 1, loss)?;
        self.save(b, st, opt, next)?;
        if self.checkpoints.after_epoch(&self.run.last_checkpoint(), next.epoch, score)? {
            log_line(&format!(
                "best {} so far ({:.6}): checkpoints/best.safetensors is epoch {}",
                self.checkpoints.best.name(),
                score.unwrap_or(f64::NAN),
                next.epoch
            ));
        }
        Ok(())
    }

    fn stop_requested(&self) -> bool {
        interrupt_requested()
    }

    fn stopped(&mut self, b: &B, st: &State<B>, opt: &Optimizer, at: Progress) -> Result<()> {
        self.progress.finish();
        self.save(b, st, opt, at)
    }
}

impl<B: Backend> RunObserver<'_, B> {
    /// Appends, to a training error, where the last good checkpoint is.
    pub fn explain(&mut self, e: Error) -> Error {
        self.progress.finish();
        match self.saved {
            Some(p) => Error::Invalid(format!("{e}\nthe last good checkpoint (after epoch {}) is {}", p.epoch, self.run.last_checkpoint().display())),
            None => e,
        }
    }

    /// The error a run stopped by Ctrl-C ends with: where it stopped and the command that continues it.
    pub fn interrupted(&mut self, at: Progress) -> CliError {
        self.progress.finish();
        CliError {
            code: INTERRUPTED_EXIT_CODE,
            message: format!(
                "interrupted: saved a resumable checkpoint {} ({} epochs and {} batches of the next done, iteration {}); continue with:\n  {}",
                self.run.last_checkpoint().display(),
                at.epoch,
                at.batch,
                at.iteration,
                resume_command()
            ),
        }
    }
}

/// The command line of this process with `--resume auto` instead of any `--resume`/`--overwrite`.
fn resume_command() -> String {
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--resume" => {
                args.next();
            }
            "--overwrite" => {}
            _ if a.starts_with("--resume=") => {}
            _ => words.push(shell_word(&a)),
        }
    }
    format!("fgssl {} --resume auto", words.join(" "))
}

/// `word` quoted for a POSIX shell when it needs to be.
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Writes `export/`: the backbone alone (torchvision names: `torchvision.models.resnetNN().load_state_dict(
/// load_file(p), strict=False)` misses only `fc.*`), every tensor of the model (plus `extra`, e.g. the linear
/// probe's `fc`), and `metadata.json`.
pub fn write_export(run: &RunDir, reg: &Registry, host: &HostState, extra: Vec<(String, HostTensor)>, meta: &BTreeMap<String, String>) -> Result<()> {
    write_export_to(&run.export_dir(), reg, host, extra, meta)
}

/// [`write_export`] into any folder (`fgssl export` writes a checkpoint's export with it).
pub fn write_export_to(
    dir: &Path,
    reg: &Registry,
    host: &HostState,
    extra: Vec<(String, HostTensor)>,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let all = reg.state_dict(host);
    let backbone: Vec<_> = all.iter().filter(|(k, _)| is_backbone_key(k)).cloned().collect();
    let mut backbone_meta = meta.clone();
    backbone_meta.insert("format".into(), "torchvision".into());
    weights::write_safetensors(&dir.join("backbone.safetensors"), &backbone, &backbone_meta)?;
    let mut model = all;
    model.extend(extra);
    weights::write_safetensors(&dir.join("model.safetensors"), &model, meta)?;
    let mut m: serde_json::Map<String, Value> = meta.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    for key in ["embed_dim", "pooled_dim", "num_classes", "input_size", "resize"] {
        if let Some(n) = meta.get(key).and_then(|v| v.parse::<u64>().ok()) {
            m.insert(key.into(), json!(n));
        }
    }
    for key in ["mean", "std"] {
        if let Some(v) = meta.get(key) {
            m.insert(key.into(), json!(v.split(',').filter_map(|x| x.parse::<f64>().ok()).collect::<Vec<_>>()));
        }
    }
    if let Some(names) = meta.get("class_names").and_then(|s| serde_json::from_str::<Value>(s).ok()) {
        m.insert("class_names".into(), names);
    }
    m.insert("git_revision".into(), json!(git_revision()));
    m.insert("files".into(), json!({"backbone.safetensors": "backbone, torchvision names (no fc)", "model.safetensors": "every tensor"}));
    let text = serde_json::to_string_pretty(&Value::Object(m)).map_err(|e| Error::Invalid(e.to_string()))? + "\n";
    weights::write_atomic(&dir.join("metadata.json"), text.as_bytes())
}
