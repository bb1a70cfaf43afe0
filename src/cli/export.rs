//! `fgssl export`: the `export/` folder a finished run writes (backbone under torchvision's names, the whole
//! model, metadata.json), made from a training checkpoint, e.g. of a run that was interrupted before its end or
//! another checkpoint than the last. The same code writes it as at the end of a run (`run_dir::write_export_to`).

use std::path::{Path, PathBuf};

use clap::Args;

use super::run_dir::{write_export_to, RunDir};
use super::{CliError, CliResult};
use crate::error::Error;
use crate::model::fgssl::{Fgssl, FgsslConfig};
use crate::model::resnet::Arch;
use crate::model::HostState;
use crate::training::checkpoint::{self, previous_path, PROGRESS_KEY};
use crate::weights;

/// Metadata key of a linear-probe checkpoint (finetune.rs): how many probe epochs it holds.
const PROBE_EPOCHS_KEY: &str = "linear_probe_epochs_done";

#[derive(Args, Debug)]
#[command(
    about = "Write export/{backbone,model}.safetensors + metadata.json from a training checkpoint",
    after_help = "Examples:\n  fgssl export --from runs/ssl                 (its checkpoints/last.safetensors -> runs/ssl/export/)\n  \
                  fgssl export --from runs/ft/checkpoints/last.safetensors --out ft-export\n\n\
                  The files are the ones a run writes when it ends: backbone.safetensors (torchvision names, F32, no fc),\n\
                  model.safetensors (every tensor of the model) and metadata.json (arch, classes, input size, mean/std,\n\
                  method, git revision), plus the checkpoint they came from and its epoch count."
)]
pub struct ExportArgs {
    /// A run folder (its latest checkpoint, checkpoints/last.safetensors) or a checkpoint file.
    #[arg(long, value_name = "RUN_DIR_OR_CHECKPOINT")]
    pub from: PathBuf,
    /// Folder for the files (default: the run folder's export/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing export in DIR.
    #[arg(long)]
    pub overwrite: bool,
}

/// The run folder a checkpoint file lies in (`RUN_DIR/checkpoints/NAME.safetensors`), if it does.
fn run_folder_of(checkpoint: &Path) -> Option<PathBuf> {
    let dir = checkpoint.parent()?;
    (dir.file_name()? == "checkpoints").then(|| dir.parent().map(Path::to_path_buf)).flatten()
}

pub fn run(args: ExportArgs) -> CliResult {
    let source = if args.from.is_dir() {
        let last = RunDir { root: args.from.clone() }.last_checkpoint();
        // Between the two renames of a checkpoint write only the previous copy exists (as for --resume).
        [last.clone(), previous_path(&last)].into_iter().find(|p| p.is_file()).ok_or_else(|| {
            Error::Invalid(format!(
                "--from {}: no checkpoints/last.safetensors in this folder (not a run folder, or a run that has not finished an epoch)",
                args.from.display()
            ))
        })?
    } else if args.from.is_file() {
        args.from.clone()
    } else {
        return Err(Error::Invalid(format!("--from {}: no such run folder or checkpoint file", args.from.display())).into());
    };
    let out = match (&args.out, run_folder_of(&source)) {
        (Some(out), _) => out.clone(),
        (None, Some(run)) => run.join("export"),
        (None, None) => {
            return Err(CliError {
                code: 2,
                message: format!("--from {}: the checkpoint is not in a run folder's checkpoints/, so pass --out DIR", source.display()),
            })
        }
    };
    if out.join("model.safetensors").exists() && !args.overwrite {
        return Err(
            Error::Invalid(format!("--out {}: already holds an export (model.safetensors); pass --overwrite to replace it", out.display())).into()
        );
    }

    let sd = weights::read_state_dict(&source)?;
    // Linear-probe runs checkpoint weights only: the frozen model plus the probe as `fc`.
    let probe_epochs = sd.metadata.get(PROBE_EPOCHS_KEY).cloned();
    if !checkpoint::is_checkpoint(&sd) && probe_epochs.is_none() {
        return Err(Error::Weights {
            path: source,
            reason: "not an fgssl training checkpoint (no training state in its metadata): an export is already exported, \
                     and torchvision files need no export"
                .into(),
        }
        .into());
    }
    let mut meta = sd.metadata.clone();
    let bad = |reason: String| CliError::from(Error::Weights { path: source.clone(), reason });
    let number =
        |key: &str| meta.get(key).and_then(|v| v.parse::<usize>().ok()).ok_or_else(|| bad(format!("metadata '{key}' missing or not a number")));
    let arch: Arch =
        meta.get("arch").ok_or_else(|| bad("metadata 'arch' missing".into()))?.parse().map_err(|e| bad(format!("metadata arch: {e}")))?;
    let num_classes = meta.get("num_classes").map(|_| number("num_classes")).transpose()?;
    let cfg = FgsslConfig { arch, embed_dim: number("embed_dim")?, pooled_dim: Some(number("pooled_dim")?), num_classes };
    let (_, reg) = Fgssl::new(cfg, 1.0);
    let (host, epochs, extra) = match probe_epochs {
        None => {
            let (host, state) = checkpoint::load(&source, &reg)?;
            (host, state.progress.epoch.to_string(), Vec::new())
        }
        Some(epochs) => {
            let mut host = HostState::init(&reg, 0);
            let report = reg.load(&sd, &mut host)?;
            let foreign: Vec<String> = report.unexpected.iter().filter(|k| !k.starts_with("fc.")).cloned().collect();
            if !report.missing.is_empty() || !foreign.is_empty() {
                let keys = if report.missing.is_empty() { &foreign } else { &report.missing };
                return Err(bad(format!("linear-probe checkpoint does not fit its own metadata's model: {}", weights::abbreviate(keys, 5))));
            }
            let probe: Vec<_> = sd.tensors.iter().filter(|(k, _)| k.starts_with("fc.")).map(|(k, t)| (k.clone(), t.clone())).collect();
            (host, epochs, probe)
        }
    };

    meta.remove(PROGRESS_KEY);
    meta.remove(PROBE_EPOCHS_KEY);
    meta.insert("exported_from".into(), source.display().to_string());
    meta.insert("epochs_trained".into(), epochs.clone());
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    write_export_to(&out, &reg, &host, extra, &meta)?;
    println!(
        "wrote {} (backbone.safetensors, model.safetensors, metadata.json) from {} ({arch}, {epochs} epochs trained)",
        out.display(),
        source.display(),
    );
    Ok(())
}
