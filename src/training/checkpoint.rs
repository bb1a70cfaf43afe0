//! Training checkpoints: the model, the optimizer state and where the run stands, in one safetensors file.
//!
//! The model's tensors keep their state-dict names (so a checkpoint also loads as weights, `--init`); the
//! optimizer's arenas are stored under [`OPTIMIZER_PREFIX`] (`optimizer.momentum` F32, `optimizer.second_moment`
//! F32 for AdamW, `optimizer.has_momentum` and `optimizer.steps` I64 per tensor); the progress and the run's
//! settings are one JSON string in the `__metadata__` key [`PROGRESS_KEY`]. The epoch loops draw every random
//! number from (seed, epoch) and (seed, iteration, cache row), so the progress counters are all the RNG state there
//! is: a run resumed from a checkpoint repeats, bit for bit on the CPU, what the uninterrupted run computes.
//!
//! Writing is atomic and keeps the previous checkpoint: the new file is written to `<path>.tmp` and synced, the
//! current file is renamed to [`previous_path`], the new one renamed into place, and the folder synced. At every
//! moment `path` or its previous copy holds a complete checkpoint; a failed write (disk full) leaves both as they
//! were.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::model::{HostState, Registry};
use crate::weights::{self, HostData, HostTensor, StateDict};

use super::optim::OptimizerState;

/// Prefix of the optimizer tensors in a checkpoint; [`model_only`] drops them.
pub const OPTIMIZER_PREFIX: &str = "optimizer.";
/// `__metadata__` key holding [`Progress`], the config hash and the config as JSON.
pub const PROGRESS_KEY: &str = "fgssl.checkpoint";

/// Where a run stands: the next epoch to run and the iteration number it starts with (both 0-based), and how many
/// of that epoch's batches are already done (non-zero only for a run stopped mid-epoch, e.g. by Ctrl-C).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub epoch: usize,
    pub iteration: usize,
    pub batch: usize,
}

/// What a checkpoint holds besides the model.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingState {
    pub progress: Progress,
    pub optimizer: OptimizerState,
    /// Hash of the settings that must not change on resume (see `config`).
    pub config_hash: String,
    /// Those settings, to name what differs when the hash does not match.
    pub config: Value,
}

/// `checkpoints/last.safetensors` -> `checkpoints/last.prev.safetensors`.
pub fn previous_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|s| format!(".{}", s.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}.prev{ext}"))
}

fn optimizer_tensors(o: &OptimizerState) -> Vec<(String, HostTensor)> {
    let ints = |v: Vec<i64>| HostTensor::i64(&[v.len()], v);
    let mut t = vec![
        (format!("{OPTIMIZER_PREFIX}momentum"), HostTensor::f32(&[o.momentum.len()], o.momentum.clone())),
        (format!("{OPTIMIZER_PREFIX}has_momentum"), ints(o.has_momentum.iter().map(|&m| m as i64).collect())),
        (format!("{OPTIMIZER_PREFIX}steps"), ints(o.steps.iter().map(|&s| s as i64).collect())),
    ];
    if let Some(v) = &o.second_moment {
        t.push((format!("{OPTIMIZER_PREFIX}second_moment"), HostTensor::f32(&[v.len()], v.clone())));
    }
    t
}

/// The first parameter or running statistic that is not finite, by name.
fn first_non_finite(reg: &Registry, host: &HostState) -> Option<String> {
    for (table, values) in [(&reg.params, &host.params), (&reg.buffers, &host.buffers)] {
        if let Some(e) = table.entries.iter().find(|e| values[e.range.clone()].iter().any(|v| !v.is_finite())) {
            return Some(e.name.clone());
        }
    }
    None
}

/// Writes a checkpoint atomically, keeping the previous one (see the module docs). Refuses weights that are not
/// finite, so that a diverged run never replaces its last good checkpoint.
pub fn save(path: &Path, reg: &Registry, host: &HostState, state: &TrainingState, metadata: &BTreeMap<String, String>) -> Result<()> {
    if let Some(name) = first_non_finite(reg, host) {
        return Err(Error::Invalid(format!(
            "the weights are not finite after epoch {} (first: '{name}'): the run diverged; {} was not overwritten",
            state.progress.epoch,
            path.display()
        )));
    }
    let mut tensors = reg.state_dict(host);
    tensors.extend(optimizer_tensors(&state.optimizer));
    let mut meta = metadata.clone();
    let progress = json!({
        "epoch": state.progress.epoch,
        "iteration": state.progress.iteration,
        "batch": state.progress.batch,
        "optimizer": state.optimizer.kind,
        "config_hash": state.config_hash,
        "config": state.config,
    });
    meta.insert(PROGRESS_KEY.into(), progress.to_string());
    let bytes = weights::serialize_safetensors(&tensors, &meta)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    weights::write_atomic(&tmp, &bytes)?;
    if path.exists() {
        let prev = previous_path(path);
        std::fs::rename(path, &prev).map_err(|e| Error::io(&prev, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    // The renames are durable once the folder is synced (best effort: not every file system allows it).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether a state dict is a checkpoint (has the progress metadata).
pub fn is_checkpoint(sd: &StateDict) -> bool {
    sd.metadata.contains_key(PROGRESS_KEY)
}

/// The state dict without the optimizer tensors: what `--init` loads from a checkpoint.
pub fn model_only(mut sd: StateDict) -> StateDict {
    sd.tensors.retain(|k, _| !k.starts_with(OPTIMIZER_PREFIX));
    sd.origin.retain(|k, _| !k.starts_with(OPTIMIZER_PREFIX));
    sd
}

fn floats(sd: &StateDict, key: &str) -> Result<Option<Vec<f32>>> {
    match sd.get(key).map(|t| &t.data) {
        None => Ok(None),
        Some(HostData::F32(v)) => Ok(Some(v.clone())),
        Some(HostData::I64(_)) => Err(Error::Weights { path: sd.path.clone(), reason: format!("checkpoint tensor '{key}' should be F32") }),
    }
}

fn ints(sd: &StateDict, key: &str) -> Result<Vec<i64>> {
    match sd.get(key).map(|t| &t.data) {
        Some(HostData::I64(v)) => Ok(v.clone()),
        _ => Err(Error::Weights { path: sd.path.clone(), reason: format!("checkpoint tensor '{key}' is missing or not an integer tensor") }),
    }
}

/// Reads a checkpoint written by [`save`] for the model of `reg`: its weights (every tensor must be there, with
/// the right shape: a checkpoint of another architecture is an error naming the key) and its training state.
pub fn load(path: &Path, reg: &Registry) -> Result<(HostState, TrainingState)> {
    let sd = weights::read_state_dict(path)?;
    let bad = |reason: String| Error::Weights { path: path.to_path_buf(), reason };
    let text = sd.metadata.get(PROGRESS_KEY).ok_or_else(|| bad("not an fgssl training checkpoint (no training state in its metadata)".into()))?;
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("unreadable training state: {e}")))?;
    let count = |k: &str| v[k].as_u64().map(|n| n as usize).ok_or_else(|| bad(format!("training state lacks '{k}'")));
    // `batch` is absent from checkpoints written before mid-epoch stops existed: they were all at epoch boundaries.
    let progress = Progress { epoch: count("epoch")?, iteration: count("iteration")?, batch: v["batch"].as_u64().unwrap_or(0) as usize };
    let optimizer = OptimizerState {
        kind: v["optimizer"].as_str().unwrap_or_default().to_string(),
        momentum: floats(&sd, &format!("{OPTIMIZER_PREFIX}momentum"))?.ok_or_else(|| bad("optimizer momentum missing".into()))?,
        has_momentum: ints(&sd, &format!("{OPTIMIZER_PREFIX}has_momentum"))?.into_iter().map(|m| m != 0).collect(),
        second_moment: floats(&sd, &format!("{OPTIMIZER_PREFIX}second_moment"))?,
        steps: ints(&sd, &format!("{OPTIMIZER_PREFIX}steps"))?.into_iter().map(|s| s.max(0) as u64).collect(),
    };
    let sd = model_only(sd);
    let mut host = HostState::init(reg, 0);
    let report = reg.load(&sd, &mut host)?;
    if !report.missing.is_empty() || !report.missing_counters.is_empty() || !report.unexpected.is_empty() {
        let mut keys = report.missing.clone();
        keys.extend(report.missing_counters.iter().cloned());
        let what = if keys.is_empty() {
            format!("has tensors this model lacks: {}", weights::abbreviate(&report.unexpected, 5))
        } else {
            format!("lacks tensors of this model: {}", weights::abbreviate(&keys, 5))
        };
        return Err(bad(format!("checkpoint does not fit this model: it {what}")));
    }
    let config_hash = v["config_hash"].as_str().unwrap_or_default().to_string();
    Ok((host, TrainingState { progress, optimizer, config_hash, config: v["config"].clone() }))
}

/// `key: checkpoint X, this run Y` for every setting that differs between two config objects.
pub fn config_differences(saved: &Value, now: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (saved.as_object().unwrap_or(&empty), now.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: checkpoint {}, this run {}", a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null)))
        .collect()
}

/// FNV-1a 64 of the JSON text (serde_json orders object keys, so equal settings give equal text).
pub fn config_hash(config: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in config.to_string().bytes() {
        h ^= byte as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
