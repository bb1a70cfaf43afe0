//! `--precision fp32|bf16` on the commands that compute: which precision a command runs in, and how a run folder,
//! a checkpoint and an export record it (the backend's [`Precision`] says what it means).
//!
//! A training run records its precision in the settings a checkpoint is hashed with (config.json `training`), so
//! a resumed run continues in the precision it was trained in: without `--precision` it takes the checkpoint's,
//! and an explicit other one is an error naming both (a resume is exact or refused). The weights files carry it as
//! metadata (`precision`), so `export/metadata.json` says how the model was trained.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::run_dir::{Resume, RunDir};
use crate::backend::{Backend, Precision};
use crate::error::{Error, Result};
use crate::training::checkpoint::PROGRESS_KEY;

/// Key of the precision in config.json's `training` settings and in the weights files' metadata.
pub const KEY: &str = "precision";

/// The backend and the precision it computes in, for the `device:` line of every command.
pub fn describe<B: Backend>(b: &B) -> String {
    format!("{}; precision {}", b.name(), b.precision())
}

/// The precision a training command runs in: `asked` (`--precision`), else on a resume the checkpoint's, else fp32.
/// An explicit precision other than the checkpoint's is an error naming both.
pub fn for_training(run: &RunDir, resume: Option<&Resume>, asked: Option<Precision>) -> Result<Precision> {
    let checkpoint = match resume {
        Some(r) => run.resume_from(r)?,
        None => None,
    };
    // Files without training settings (a linear-probe checkpoint) are refused later, in the command's own terms.
    let trained = match &checkpoint {
        Some(path) => checkpoint_precision(path)?.map(|p| (path, p)),
        None => None,
    };
    match (asked, trained) {
        (Some(asked), Some((path, trained))) if asked != trained => Err(Error::Invalid(format!(
            "--precision {asked}: the checkpoint {} was trained in {trained}, and a resumed run continues exactly in the precision it was \
             trained in; drop --precision (or pass --precision {trained}) to resume, or start a new run for {asked}",
            path.display()
        ))),
        (Some(asked), _) => Ok(asked),
        (None, Some((_, trained))) => Ok(trained),
        (None, None) => Ok(Precision::Fp32),
    }
}

/// The precision a training checkpoint was written in: `None` for a file without training settings, fp32 for a
/// checkpoint written before runs recorded their precision (they all computed in fp32). Reads the header only.
pub fn checkpoint_precision(path: &Path) -> Result<Option<Precision>> {
    let metadata = safetensors_metadata(path)?;
    let Some(progress) = metadata.get(PROGRESS_KEY).and_then(Value::as_str) else { return Ok(None) };
    let bad = |reason: String| Error::Weights { path: path.to_path_buf(), reason };
    let settings: Value = serde_json::from_str(progress).map_err(|e| bad(format!("unreadable training state: {e}")))?;
    match settings["config"].get(KEY) {
        None => Ok(Some(Precision::Fp32)),
        Some(v) => {
            let text = v.as_str().ok_or_else(|| bad(format!("training setting '{KEY}' is {v}, not a string")))?;
            text.parse().map(Some).map_err(|e: String| bad(format!("training setting '{KEY}': {e}")))
        }
    }
}

/// The `__metadata__` object of a safetensors file (empty when it has none), without reading its tensors: the
/// header is an 8-byte little-endian length followed by that many bytes of JSON.
fn safetensors_metadata(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let bad = |reason: String| Error::Weights { path: path.to_path_buf(), reason };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| bad("not a valid safetensors file (shorter than its header length)".into()))?;
    let len = u64::from_le_bytes(len);
    // safetensors itself refuses headers over 100 MB.
    if len > 100_000_000 {
        return Err(bad(format!("not a valid safetensors file (header length {len})")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|_| bad("not a valid safetensors file (truncated header)".into()))?;
    let header: Value = serde_json::from_slice(&header).map_err(|e| bad(format!("not a valid safetensors file (header: {e})")))?;
    Ok(header.get("__metadata__").and_then(Value::as_object).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn checkpoint_with(dir: &Path, name: &str, config: Value) -> std::path::PathBuf {
        let mut meta = BTreeMap::new();
        meta.insert(PROGRESS_KEY.to_string(), serde_json::json!({"epoch": 1, "iteration": 3, "config": config}).to_string());
        let path = dir.join(name);
        let tensors = vec![("w".to_string(), crate::weights::HostTensor::f32(&[2], vec![1.0, 2.0]))];
        crate::weights::write_safetensors(&path, &tensors, &meta).unwrap();
        path
    }

    #[test]
    fn a_resume_takes_the_checkpoints_precision_and_refuses_another() {
        let dir = std::env::temp_dir().join(format!("fgssl-precision-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir { root: dir.clone() };
        let bf16 = checkpoint_with(&dir, "bf16.safetensors", serde_json::json!({"lr": 0.1, "precision": "bf16"}));
        let old = checkpoint_with(&dir, "old.safetensors", serde_json::json!({"lr": 0.1}));
        let resume = |p: &Path| Resume::Path(p.to_path_buf());

        assert_eq!(checkpoint_precision(&bf16).unwrap(), Some(Precision::Bf16));
        assert_eq!(checkpoint_precision(&old).unwrap(), Some(Precision::Fp32), "checkpoints before the flag were fp32");
        assert_eq!(for_training(&run, Some(&resume(&bf16)), None).unwrap(), Precision::Bf16);
        assert_eq!(for_training(&run, Some(&resume(&bf16)), Some(Precision::Bf16)).unwrap(), Precision::Bf16);
        let e = for_training(&run, Some(&resume(&bf16)), Some(Precision::Fp32)).unwrap_err().to_string();
        assert!(e.contains("--precision fp32") && e.contains("trained in bf16") && e.contains("bf16.safetensors"), "{e}");
        assert_eq!(for_training(&run, Some(&resume(&old)), None).unwrap(), Precision::Fp32);
        assert_eq!(for_training(&run, None, Some(Precision::Bf16)).unwrap(), Precision::Bf16);
        assert_eq!(for_training(&run, None, None).unwrap(), Precision::Fp32);
        // `auto` in a folder without a checkpoint is a fresh start.
        assert_eq!(for_training(&run, Some(&Resume::Auto), Some(Precision::Bf16)).unwrap(), Precision::Bf16);

        // A weights file without training settings says nothing; a broken file is a clear error.
        let plain = dir.join("plain.safetensors");
        crate::weights::write_safetensors(&plain, &[("w".to_string(), crate::weights::HostTensor::f32(&[1], vec![0.0]))], &BTreeMap::new()).unwrap();
        assert_eq!(checkpoint_precision(&plain).unwrap(), None);
        let broken = dir.join("broken.safetensors");
        std::fs::write(&broken, b"\xff\xff\xff\xff\xff\xff\xff\xffxyz").unwrap();
        assert!(checkpoint_precision(&broken).unwrap_err().to_string().contains("not a valid safetensors file"));
        let odd = checkpoint_with(&dir, "odd.safetensors", serde_json::json!({"precision": "fp16"}));
        assert!(checkpoint_precision(&odd).unwrap_err().to_string().contains("'fp16' is not a precision"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_checkpoint_from_before_the_flag_resumes_as_an_fp32_run_only() {
        use super::super::run_dir::RunConfig;
        use crate::training::checkpoint::{config_hash, Progress, TrainingState};
        use crate::training::optim::OptimizerState;
        let old = serde_json::json!({"lr": 0.1, "seed": 3});
        let optimizer = OptimizerState { kind: "sgd".into(), momentum: Vec::new(), has_momentum: Vec::new(), second_moment: None, steps: Vec::new() };
        let state = TrainingState { progress: Progress::default(), optimizer, config_hash: config_hash(&old), config: old };
        let now = |precision: &str| RunConfig { training: serde_json::json!({"lr": 0.1, "seed": 3, "precision": precision}), run: Value::Null };
        now("fp32").check_resume(Path::new("old.safetensors"), &state).unwrap();
        let e = now("bf16").check_resume(Path::new("old.safetensors"), &state).unwrap_err().to_string();
        assert!(e.contains("precision: checkpoint null, this run \"bf16\""), "{e}");
        // A checkpoint that records its precision resumes under the same one only.
        let recorded = serde_json::json!({"lr": 0.1, "seed": 3, "precision": "bf16"});
        let state = TrainingState { config_hash: config_hash(&recorded), config: recorded, ..state };
        now("bf16").check_resume(Path::new("new.safetensors"), &state).unwrap();
        let e = now("fp32").check_resume(Path::new("new.safetensors"), &state).unwrap_err().to_string();
        assert!(e.contains("precision: checkpoint \"bf16\", this run \"fp32\""), "{e}");
    }
}
