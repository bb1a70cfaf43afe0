//! Which checkpoints a run folder keeps besides `checkpoints/last.safetensors`:
//!
//! - `checkpoints/best.safetensors`: the epoch with the best `--best-metric` so far (lowest epoch loss for
//!   pretraining, as the reference saves; highest validation balanced accuracy for fine-tuning with a val split),
//!   with `checkpoints/best.json` saying which metric, its value and the epoch;
//! - `checkpoints/epoch-0007.safetensors` for each of the last N epochs (`--keep-checkpoints N`), older ones pruned.
//!
//! Both are copies of the `last` checkpoint just written (model, optimizer and progress: each resumes too), made
//! atomically (temporary file, sync, rename), so a failed copy leaves the previous file as it was.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::json;

use crate::error::{Error, Result};

/// `--best-metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BestMetric {
    /// The epoch's mean training loss (the sum of the step losses, averaged over the epoch's iterations), lowest wins.
    Loss,
    /// Validation accuracy after the epoch, highest wins.
    ValAccuracy,
    /// Validation balanced accuracy (mean per-class recall) after the epoch, highest wins.
    ValBalancedAccuracy,
    /// No best checkpoint.
    None,
}

impl FromStr for BestMetric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "loss" => Ok(BestMetric::Loss),
            "val-accuracy" => Ok(BestMetric::ValAccuracy),
            "val-balanced-accuracy" => Ok(BestMetric::ValBalancedAccuracy),
            "none" => Ok(BestMetric::None),
            other => Err(format!("'{other}' is not a metric (expected loss, val-accuracy, val-balanced-accuracy or none)")),
        }
    }
}

impl BestMetric {
    pub fn name(self) -> &'static str {
        match self {
            BestMetric::Loss => "loss",
            BestMetric::ValAccuracy => "val-accuracy",
            BestMetric::ValBalancedAccuracy => "val-balanced-accuracy",
            BestMetric::None => "none",
        }
    }

    /// Whether the metric needs a validation pass after every epoch.
    pub fn needs_validation(self) -> bool {
        matches!(self, BestMetric::ValAccuracy | BestMetric::ValBalancedAccuracy)
    }

    fn better(self, new: f64, old: f64) -> bool {
        match self {
            BestMetric::Loss => new < old,
            _ => new > old,
        }
    }
}

/// `checkpoints/epoch-0007.safetensors` (epochs counted from 1: the checkpoint after the 7th epoch).
pub fn epoch_checkpoint(dir: &Path, epochs_done: usize) -> PathBuf {
    dir.join(format!("epoch-{epochs_done:04}.safetensors"))
}

/// The epochs of the `epoch-NNNN.safetensors` files in `dir`, ascending.
fn epoch_checkpoints(dir: &Path) -> Vec<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut epochs: Vec<usize> =
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("epoch-")?.strip_suffix(".safetensors")?.parse().ok()).collect();
    epochs.sort_unstable();
    epochs
}

/// Copies `from` to `to` atomically: `to` is either the old file or the complete new one.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).map_err(|e| Error::io(from, e))?;
    crate::weights::write_atomic(to, &bytes)
}

/// The best-checkpoint and keep-N policy of one run.
pub struct CheckpointPolicy {
    pub dir: PathBuf,
    pub best: BestMetric,
    pub keep: usize,
    /// The best value so far and the epoch count it was reached at.
    best_so_far: Option<(f64, usize)>,
}

impl CheckpointPolicy {
    /// The policy for `dir` (the run's `checkpoints/`). A run resumed at `resumed_epoch` takes the best value from
    /// `best.json` when that was measured with the same metric at or before that epoch; a run that starts afresh
    /// (`--overwrite`) first removes the best and per-epoch checkpoints an earlier run left there, so that they
    /// are neither taken for this run's nor counted by the keep-N pruning.
    pub fn new(dir: &Path, best: BestMetric, keep: usize, resumed_epoch: Option<usize>) -> Result<Self> {
        let mut p = CheckpointPolicy { dir: dir.to_path_buf(), best, keep, best_so_far: None };
        let Some(epoch) = resumed_epoch else {
            let stale = epoch_checkpoints(dir).into_iter().map(|e| epoch_checkpoint(dir, e)).chain([p.best_path(), p.best_record()]);
            for path in stale.filter(|f| f.exists()) {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
            return Ok(p);
        };
        let record = std::fs::read_to_string(p.best_record()).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        if let Some(r) = record.filter(|r| r["metric"] == best.name()) {
            if let (Some(v), Some(e)) = (r["value"].as_f64(), r["epoch"].as_u64()) {
                p.best_so_far = (e as usize <= epoch).then_some((v, e as usize));
            }
        }
        Ok(p)
    }

    pub fn best_path(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }

    fn best_record(&self) -> PathBuf {
        self.dir.join("best.json")
    }

    /// After the checkpoint `last` of `epochs_done` epochs was written: keeps its per-epoch copy (pruning the
    /// oldest beyond `keep`) and, when `score` beats the best so far, makes it the best. Returns whether it did.
    pub fn after_epoch(&mut self, last: &Path, epochs_done: usize, score: Option<f64>) -> Result<bool> {
        if self.keep > 0 {
            copy_atomic(last, &epoch_checkpoint(&self.dir, epochs_done))?;
            let epochs = epoch_checkpoints(&self.dir);
            for &old in epochs.iter().take(epochs.len().saturating_sub(self.keep)) {
                let path = epoch_checkpoint(&self.dir, old);
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        let Some(score) = score.filter(|s| s.is_finite() && self.best != BestMetric::None) else { return Ok(false) };
        if self.best_so_far.is_some_and(|(best, _)| !self.best.better(score, best)) {
            return Ok(false);
        }
        copy_atomic(last, &self.best_path())?;
        let record = json!({"metric": self.best.name(), "value": score, "epoch": epochs_done, "file": "best.safetensors"});
        crate::weights::write_atomic(&self.best_record(), format!("{record:#}\n").as_bytes())?;
        self.best_so_far = Some((score, epochs_done));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_epochs_and_the_best_by_the_metric() {
        let dir = std::env::temp_dir().join(format!("fgssl-ckpt-policy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let last = dir.join("last.safetensors");
        let mut p = CheckpointPolicy::new(&dir, BestMetric::Loss, 2, None).unwrap();
        for (epoch, loss) in [(1, 3.0), (2, 1.0), (3, 2.0), (4, f64::NAN)] {
            std::fs::write(&last, format!("weights of epoch {epoch}")).unwrap();
            let improved = p.after_epoch(&last, epoch, Some(loss)).unwrap();
            assert_eq!(improved, epoch <= 2, "epoch {epoch}");
        }
        assert_eq!(epoch_checkpoints(&dir), vec![3, 4], "only the last two per-epoch checkpoints are kept");
        assert_eq!(std::fs::read_to_string(epoch_checkpoint(&dir, 4)).unwrap(), "weights of epoch 4");
        assert_eq!(std::fs::read_to_string(p.best_path()).unwrap(), "weights of epoch 2", "lowest loss");
        // A resumed run remembers the best value; another metric starts afresh.
        let mut resumed = CheckpointPolicy::new(&dir, BestMetric::Loss, 0, Some(4)).unwrap();
        std::fs::write(&last, "weights of epoch 5").unwrap();
        assert!(!resumed.after_epoch(&last, 5, Some(1.5)).unwrap(), "1.5 does not beat epoch 2's 1.0");
        let mut other = CheckpointPolicy::new(&dir, BestMetric::ValAccuracy, 0, Some(4)).unwrap();
        assert!(other.after_epoch(&last, 5, Some(0.2)).unwrap());
        assert!(!other.after_epoch(&last, 6, Some(0.1)).unwrap(), "accuracy: higher wins");
        // A fresh run in the same folder (--overwrite) starts without the old run's best and per-epoch files.
        CheckpointPolicy::new(&dir, BestMetric::Loss, 2, None).unwrap();
        assert!(epoch_checkpoints(&dir).is_empty() && !dir.join("best.safetensors").exists() && !dir.join("best.json").exists());
        assert!(last.exists(), "last is not the policy's to remove");
        assert_eq!("val_balanced_accuracy".parse::<BestMetric>(), Ok(BestMetric::ValBalancedAccuracy));
        assert!("f1".parse::<BestMetric>().unwrap_err().contains("'f1' is not a metric"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
