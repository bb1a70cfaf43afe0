//! The run folder of `fgssl pretrain` / `fgssl finetune` (`--out RUN_DIR`, ANCHORS.md §2.2 #1):
//!
//! ```text
//! RUN_DIR/config.json                  the resolved settings, their hash, device, git revision
//! RUN_DIR/splits.json                  the train/val/test split (sample ids)
//! RUN_DIR/metrics.jsonl, metrics.csv   per iteration, per epoch, per evaluated split (metrics_log.rs)
//! RUN_DIR/train.log                    what the command printed on stderr
//! RUN_DIR/checkpoints/last.safetensors model + optimizer + progress after the latest epoch (last.prev.* before it)
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

use super::is_backbone_key;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{HostState, Registry, State};
use crate::training::checkpoint::{self, previous_path, Progress, TrainingState};
use crate::training::epochs::{IterationLog, Observer};
use crate::training::optim::Optimizer;
use crate::weights::{self, HostTensor};

use super::metrics_log::MetricsLog;

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

/// `eprintln!` that also appends the line to the run's `train.log`.
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        eprintln!("{line}");
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
        if state.config_hash == self.hash() {
            return Ok(());
        }
        let diffs = checkpoint::config_differences(&state.config, &self.training);
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
    say!("resume {}: {} of {epochs} epochs done, continuing at iteration {}", path.display(), p.epoch, p.iteration);
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

/// Logs every iteration and epoch to the run's metrics and writes `checkpoints/last.safetensors` after every epoch.
pub struct RunObserver<'a> {
    pub log: MetricsLog,
    pub run: &'a RunDir,
    pub reg: &'a Registry,
    pub config: &'a RunConfig,
    pub metadata: BTreeMap<String, String>,
    /// The progress of the latest checkpoint written.
    pub saved: Option<Progress>,
}

impl<B: Backend> Observer<B> for RunObserver<'_> {
    fn iteration(&mut self, it: &IterationLog) -> Result<()> {
        self.log.iteration(it)
    }

    fn epoch_end(&mut self, b: &B, st: &State<B>, opt: &Optimizer, next: Progress) -> Result<()> {
        self.log.end_epoch()?;
        let host = st.download(b)?;
        let state = TrainingState {
            progress: next,
            optimizer: opt.state_to_host(b, &st.params)?,
            config_hash: self.config.hash(),
            config: self.config.training.clone(),
        };
        checkpoint::save(&self.run.last_checkpoint(), self.reg, &host, &state, &self.metadata)?;
        self.saved = Some(next);
        Ok(())
    }
}

impl RunObserver<'_> {
    /// Appends, to a training error, where the last good checkpoint is.
    pub fn explain(&self, e: Error) -> Error {
        match self.saved {
            Some(p) => Error::Invalid(format!("{e}\nthe last good checkpoint (after epoch {}) is {}", p.epoch, self.run.last_checkpoint().display())),
            None => e,
        }
    }
}

/// Writes `export/`: the backbone alone (torchvision names: `torchvision.models.resnetNN().load_state_dict(
/// load_file(p), strict=False)` misses only `fc.*`), every tensor of the model (plus `extra`, e.g. the linear
/// probe's `fc`), and `metadata.json`.
pub fn write_export(run: &RunDir, reg: &Registry, host: &HostState, extra: Vec<(String, HostTensor)>, meta: &BTreeMap<String, String>) -> Result<()> {
    write_export_to(&run.export_dir(), reg, host, extra, meta)
}

/// [`write_export`] into any folder (`fgssl export` writes a checkpoint's export with it).
pub fn write_export_to(dir: &Path, reg: &Registry, host: &HostState, extra: Vec<(String, HostTensor)>, meta: &BTreeMap<String, String>) -> Result<()> {
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
