//! The `fgssl` command line. Each command lives in its own module and stays thin: parse, call the library, print.
//!
//! Every failure prints `error: <message>` to stderr and exits non-zero (1 for bad input, 2 for usage errors and
//! for a device that is not available in this build); nothing panics on bad input.

mod bench;
mod checkpoints;
mod config_file;
mod dataset;
mod demo;
mod embed;
mod eval;
mod export;
mod finetune;
mod info;
mod knn;
mod lab;
mod metrics_log;
mod model_file;
mod plots;
mod precision;
mod predict;
mod pretrain;
mod progress;
mod run_dir;
mod selftest;
mod synth;
mod training_args;

use std::fmt;
use std::str::FromStr;

use clap::{CommandFactory, Parser, Subcommand};

use crate::backend::Precision;
use crate::error::Error;
use crate::model::resnet::{Arch, ResNet};
use crate::model::{HostState, Registry};
use crate::weights::{self, LoadReport, StateDict};

#[derive(Parser, Debug)]
#[command(
    name = "fgssl",
    version,
    about = "FG-SSL (fine-grained self-supervised learning with jigsaw puzzles) on a from-scratch engine",
    after_help = "Examples:\n  fgssl info resnet18.safetensors\n  \
                  fgssl embed --arch resnet18 --weights resnet18.safetensors --data examples/images --out feats.csv"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Demo(demo::DemoArgs),
    Info(info::InfoArgs),
    Embed(embed::EmbedArgs),
    Synth(synth::SynthArgs),
    Dataset(dataset::DatasetArgs),
    Selftest(selftest::SelftestArgs),
    Pretrain(pretrain::PretrainArgs),
    Finetune(finetune::FinetuneArgs),
    Predict(predict::PredictArgs),
    Eval(eval::EvalArgs),
    Knn(knn::KnnArgs),
    Export(export::ExportArgs),
    Plot(plots::PlotArgs),
    Lab(lab::LabArgs),
    Bench(bench::BenchArgs),
}

/// Where to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// CUDA device 0 when one is usable, else the CPU.
    Auto,
    Cpu,
    /// A CUDA GPU by ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("'{s}' is not a device (expected auto, cpu, cuda or cuda:N)")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// `--device` and `--precision` of the commands that compute outside training (training resolves its precision
/// against the checkpoint it resumes: `training_args::OptimArgs`).
#[derive(clap::Args, Clone, Copy, Debug)]
pub(crate) struct ComputeArgs {
    /// auto, cpu, cuda or cuda:N (auto: CUDA device 0 when usable, else the CPU).
    #[arg(long, default_value = "auto")]
    pub device: Device,
    /// What convolutions multiply in: fp32, or bf16 (bf16 operands, f32 accumulation; the rest stays f32).
    #[arg(long, default_value_t = Precision::Fp32)]
    pub precision: Precision,
}

impl ComputeArgs {
    /// The backend these flags ask for ([`select_backend`]).
    pub fn select(&self) -> CliResult<Selected> {
        select_backend(self.device, self.precision)
    }
}

/// A failed command: the message printed after `error: ` and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError { code: 1, message: e.to_string() }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// The backend a command computes on.
pub(crate) enum Selected {
    Cpu(crate::backend::cpu::Cpu),
    Cuda(Box<crate::backend::cuda::Cuda>),
}

/// Opens the backend `--device` asks for, computing convolutions in `precision`. `auto` takes CUDA device 0 when a
/// driver is present and the device opens (NVRTC included); otherwise it says why on stderr and uses the CPU. A
/// device asked for by name never falls back.
pub(crate) fn select_backend(device: Device, precision: Precision) -> CliResult<Selected> {
    use crate::backend::cpu::Cpu;
    use crate::backend::cuda::{probe, Cuda};
    match device {
        Device::Cpu => Ok(Selected::Cpu(Cpu::with_precision(precision))),
        Device::Auto => {
            if probe::driver_present() {
                match Cuda::open(0) {
                    Ok(cuda) => return Ok(Selected::Cuda(Box::new(cuda.with_precision(precision)))),
                    Err(e) => eprintln!("note: --device auto: CUDA driver found but cuda:0 is unusable ({e}); using the CPU"),
                }
            }
            Ok(Selected::Cpu(Cpu::with_precision(precision)))
        }
        Device::Cuda(ordinal) => match Cuda::open(ordinal) {
            Ok(cuda) => Ok(Selected::Cuda(Box::new(cuda.with_precision(precision)))),
            Err(e) => {
                let reason = match e {
                    _ if !probe::driver_present() => "no CUDA driver on this machine (libcuda.so.1 not found)".to_string(),
                    crate::error::Error::Backend { reason, .. } => format!("CUDA device unavailable: {reason}"),
                    e => format!("CUDA device unavailable: {e}"),
                };
                Err(CliError { code: 2, message: format!("--device {device}: {reason}; use --device cpu") })
            }
        },
    }
}

/// Runs the command line `args` (including the program name) and returns the process exit code.
pub fn run_from<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    // `--config FILE.toml` becomes flags placed before the command line's own (which override them).
    let args = match config_file::expand(args.into_iter().map(Into::into).collect(), &Cli::command()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {}", e.message);
            return e.code;
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with code 0; usage errors to stderr with code 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Info(a) => info::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Dataset(a) => dataset::run(a),
        Command::Selftest(a) => selftest::run(a),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Knn(a) => knn::run(a),
        Command::Export(a) => export::run(a),
        Command::Plot(a) => plots::run(a),
        Command::Lab(a) => lab::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(()) => 0,
        // Ctrl-C is not a failure: the message says where the run stopped and how to continue it.
        Err(e) if e.code == progress::INTERRUPTED_EXIT_CODE => {
            eprintln!("{}", e.message);
            e.code
        }
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.code
        }
    }
}

/// Entry point of the `fgssl` binary.
pub fn main() -> i32 {
    run_from(std::env::args_os())
}

// ---- shared by the commands ----------------------------------------------------------------------------------

/// Whether a (normalised) key belongs to a ResNet backbone: the stem or a stage. `fc` and anything else (heads of
/// SSL methods) do not.
pub(crate) fn is_backbone_key(key: &str) -> bool {
    key.starts_with("conv1.") || key.starts_with("bn1.") || ["layer1.", "layer2.", "layer3.", "layer4."].iter().any(|p| key.starts_with(p))
}

/// How well a state dict fits one architecture's backbone (`fc` ignored, counters optional).
pub(crate) struct Fit {
    /// Expected backbone tensors that are absent.
    pub missing: Vec<String>,
    /// `key: found [..], expected [..]`.
    pub mismatched: Vec<String>,
    /// Backbone-looking tensors the architecture does not have (a deeper ResNet's extra blocks).
    pub extra: Vec<String>,
}

impl Fit {
    pub fn fits(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty() && self.extra.is_empty()
    }

    /// Why it does not fit, one clause per kind of problem.
    pub fn reasons(&self) -> String {
        let mut r = Vec::new();
        if !self.mismatched.is_empty() {
            r.push(format!("{} with the wrong shape ({})", self.mismatched.len(), weights::abbreviate(&self.mismatched, 2)));
        }
        if !self.missing.is_empty() {
            r.push(format!("{} missing ({})", self.missing.len(), weights::abbreviate(&self.missing, 3)));
        }
        if !self.extra.is_empty() {
            r.push(format!("{} it does not have ({})", self.extra.len(), weights::abbreviate(&self.extra, 3)));
        }
        r.join("; ")
    }
}

pub(crate) fn backbone_fit(sd: &StateDict, reg: &Registry) -> Fit {
    let mut fit = Fit { missing: Vec::new(), mismatched: Vec::new(), extra: Vec::new() };
    let expected: Vec<_> = reg.params.entries.iter().chain(&reg.buffers.entries).filter(|e| is_backbone_key(&e.name)).collect();
    for e in &expected {
        match sd.get(&e.name) {
            None => fit.missing.push(e.name.clone()),
            Some(t) if !weights::shapes_match(&t.shape, &e.shape) => {
                fit.mismatched.push(format!("{}: found {:?}, expected {:?}", e.name, t.shape, e.shape))
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|e| e.name.as_str()).chain(reg.trackers.iter().map(String::as_str)).collect();
    fit.extra = sd.tensors.keys().filter(|k| is_backbone_key(k) && !known.contains(k.as_str())).cloned().collect();
    fit
}

/// Builds `arch` without `fc` and loads its backbone from `sd`. Strict: a tensor with the wrong shape, a missing
/// backbone tensor or extra backbone blocks (a deeper ResNet's file) is an error naming the file and a key;
/// keys outside the backbone (`fc`, SSL heads) are reported as unexpected and ignored.
pub(crate) fn load_backbone(sd: &StateDict, arch: Arch) -> CliResult<(ResNet, Registry, HostState, LoadReport)> {
    let (net, reg) = ResNet::new(arch, None, false);
    let mut host = HostState::init(&reg, 0);
    let report = reg.load(sd, &mut host)?;
    let werr = |reason: String| CliError::from(Error::Weights { path: sd.path.clone(), reason });
    if !report.missing.is_empty() {
        return Err(werr(format!(
            "does not fit {arch}: {} of its tensors are missing ({}); run `fgssl info {}` to see which architectures fit",
            report.missing.len(),
            weights::abbreviate(&report.missing, 5),
            sd.path.display()
        )));
    }
    let extra: Vec<String> = report.unexpected.iter().filter(|k| is_backbone_key(k)).cloned().collect();
    if !extra.is_empty() {
        return Err(werr(format!(
            "does not fit {arch}: it has backbone tensors {arch} lacks ({}), so it is probably a deeper ResNet; \
             run `fgssl info {}` to see which architectures fit",
            weights::abbreviate(&extra, 5),
            sd.path.display()
        )));
    }
    Ok((net, reg, host, report))
}
