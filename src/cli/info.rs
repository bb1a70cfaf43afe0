//! `fgssl info W.safetensors`: what a weights file holds and which ResNets its backbone fits.

use std::path::PathBuf;

use clap::Args;

use super::{backbone_fit, CliResult};
use crate::model::resnet::{Arch, ResNet};
use crate::weights;

#[derive(Args, Debug)]
#[command(
    about = "List the tensors of a safetensors weights file and the ResNet architectures it fits",
    after_help = "Example:\n  fgssl info resnet18.safetensors"
)]
pub struct InfoArgs {
    /// A safetensors weights file (a torchvision state dict, possibly wrapped: `module.`, `backbone.`, ...).
    pub weights: PathBuf,
}

fn is_statistic(key: &str) -> bool {
    key.ends_with(".running_mean") || key.ends_with(".running_var") || key.ends_with(".num_batches_tracked")
}

/// `11689512` -> `11,689,512`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn run(args: InfoArgs) -> CliResult {
    let sd = weights::read_state_dict(&args.weights)?;
    println!("{}: {} tensors", sd.path.display(), sd.len());
    for (k, v) in &sd.metadata {
        println!("metadata {k} = {v}");
    }
    let renamed: Vec<_> = sd.origin.iter().filter(|(k, o)| *k != &o.name).collect();
    if let Some((k, o)) = renamed.first() {
        println!("{} keys had wrapper prefixes stripped (e.g. '{}' -> '{}')", renamed.len(), o.name, k);
    }

    let name_w = sd.tensors.keys().map(|k| k.len()).max().unwrap_or(4).max(4);
    println!();
    println!("{:<name_w$}  {:<5}  shape", "name", "dtype");
    let (mut params, mut stats) = (0usize, 0usize);
    for (k, t) in &sd.tensors {
        let dtype = sd.origin.get(k).map(|o| o.dtype.as_str()).unwrap_or(t.data.dtype_name());
        println!("{k:<name_w$}  {dtype:<5}  {:?}", t.shape);
        if is_statistic(k) {
            stats += t.data.len();
        } else {
            params += t.data.len();
        }
    }
    println!();
    println!("parameters: {} ({} more values in batch-norm running statistics and counters)", thousands(params), thousands(stats));

    println!();
    println!("architectures (backbone tensors; fc is ignored):");
    for arch in Arch::ALL {
        let (_, reg) = ResNet::new(arch, None, false);
        let fit = backbone_fit(&sd, &reg);
        if fit.fits() {
            let fc = match sd.get("fc.weight") {
                Some(t) if t.shape.len() == 2 && t.shape[1] == arch.feature_dim() => {
                    format!("; fc: {} classes", t.shape[0])
                }
                Some(t) => format!("; fc has shape {:?}, which does not match the {}-d features", t.shape, arch.feature_dim()),
                None => String::new(),
            };
            println!("  {arch}: fits{fc}");
        } else {
            println!("  {arch}: does not fit: {}", fit.reasons());
        }
    }
    Ok(())
}
