//! `fgssl embed`: pooled `layer4` features of every image in a folder, as CSV.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use rayon::prelude::*;

use super::ComputeArgs;
use super::{load_backbone, CliResult, Selected};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::imaging;
use crate::model::resnet::{Arch, ResNet};
use crate::model::{HostState, Registry, State};
use crate::predictions::csv_field;
use crate::tensor::Tensor;
use crate::weights;

#[derive(Args, Debug)]
#[command(
    args_override_self = true,
    about = "Write the global-average-pooled layer4 features (evaluation mode) of every image under a folder to CSV",
    after_help = "Example:\n  fgssl embed --arch resnet18 --weights resnet18.safetensors --data examples/images --out feats.csv\n\n\
                  Images (png, jpg, jpeg, bmp; searched recursively) are resized to SIZE x SIZE and normalised with the\n\
                  ImageNet mean and std. The CSV has a header `path,f0,f1,...` and one row per image, sorted by its path\n\
                  relative to DATA."
)]
pub struct EmbedArgs {
    /// Read flags from a TOML file (keys are the long flag names, `batch_size = 64`); the command line overrides it.
    #[arg(long, value_name = "FILE.toml")]
    #[allow(dead_code)] // expanded into flags before parsing (config_file.rs)
    pub config: Option<std::path::PathBuf>,
    /// Backbone architecture: resnet18, resnet34 or resnet50.
    #[arg(long, value_parser = parse_arch)]
    pub arch: Arch,
    /// Safetensors file with the backbone weights (torchvision names; `fc` and extra heads are ignored).
    /// Without it the backbone is initialised from --seed as torchvision would (for trying the command out:
    /// such features carry no learned meaning).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the initialisation used when no --weights are given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder of images, searched recursively.
    #[arg(long)]
    pub data: PathBuf,
    /// Output CSV file (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Images are resized to SIZE x SIZE.
    #[arg(long, default_value_t = 224, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub size: u32,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

fn parse_arch(s: &str) -> std::result::Result<Arch, String> {
    s.parse::<Arch>().map_err(|e| e.to_string())
}

pub fn run(args: EmbedArgs) -> CliResult {
    match args.compute.select()? {
        Selected::Cpu(b) => run_on(&b, args),
        Selected::Cuda(b) => run_on(b.as_ref(), args),
    }
}

fn run_on<B: Backend>(b: &B, args: EmbedArgs) -> CliResult {
    eprintln!("device: {}", super::precision::describe(b));
    let (net, reg, host) = match &args.weights {
        Some(path) => {
            let sd = weights::read_state_dict(path)?;
            let (net, reg, host, report) = load_backbone(&sd, args.arch)?;
            eprintln!("weights {}: {report}", sd.path.display());
            (net, reg, host)
        }
        None => {
            eprintln!("warning: no --weights given: {} initialised from seed {} (features carry no learned meaning)", args.arch, args.seed);
            let (net, reg) = ResNet::new(args.arch, None, false);
            let host = HostState::init(&reg, args.seed);
            (net, reg, host)
        }
    };
    let images = imaging::list_images(&args.data)?;
    embed_to_csv(b, &net, &reg, &host, &args, &images)?;
    Ok(())
}

fn embed_to_csv<B: Backend>(b: &B, net: &ResNet, reg: &Registry, host: &HostState, args: &EmbedArgs, images: &[PathBuf]) -> Result<()> {
    let mut st = State::upload(b, reg, host)?;
    let size = args.size as usize;
    let dim = net.arch.feature_dim();

    let mut tmp = args.out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = std::fs::File::create(&tmp).map_err(|e| Error::Invalid(format!("{}: cannot create the output file ({e})", args.out.display())))?;
    let mut w = std::io::BufWriter::new(file);
    let result = (|| -> Result<()> {
        let io = |e: std::io::Error| Error::io(&tmp, e);
        let mut line = String::with_capacity(16 * dim);
        line.push_str("path");
        for i in 0..dim {
            line.push_str(&format!(",f{i}"));
        }
        line.push('\n');
        w.write_all(line.as_bytes()).map_err(io)?;

        let start = Instant::now();
        let progress = std::io::stderr().is_terminal();
        let mut done = 0;
        for chunk in images.chunks(args.batch_size as usize) {
            let decoded: Vec<Result<Vec<f32>>> = chunk.par_iter().map(|p| imaging::load_rgb_normalized(p, size)).collect();
            let mut batch = Vec::with_capacity(chunk.len() * 3 * size * size);
            for d in decoded {
                batch.extend_from_slice(&d?);
            }
            let x = Tensor::from_host(b, [chunk.len(), 3, size, size], &batch)?;
            let feats = net.embed(b, &mut st, &x)?.to_host(b)?;
            debug_assert_eq!(feats.len(), chunk.len() * dim);
            for (path, row) in chunk.iter().zip(feats.chunks_exact(dim)) {
                line.clear();
                line.push_str(&csv_field(&imaging::relative_name(&args.data, path)));
                for v in row {
                    line.push(',');
                    line.push_str(&v.to_string());
                }
                line.push('\n');
                w.write_all(line.as_bytes()).map_err(io)?;
            }
            done += chunk.len();
            if progress {
                eprint!("\rembedded {done}/{} images", images.len());
            }
        }
        if progress {
            eprintln!();
        }
        w.flush().map_err(io)?;
        w.get_ref().sync_all().map_err(io)?;
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "wrote {} rows of {dim} features to {} ({secs:.1} s, {:.1} images/s)",
            images.len(),
            args.out.display(),
            images.len() as f64 / secs.max(1e-9)
        );
        Ok(())
    })();
    match result.and_then(|()| std::fs::rename(&tmp, &args.out).map_err(|e| Error::io(&args.out, e))) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
