//! `fgssl selftest`: every op of a device backend against the CPU reference, then a few ResNet-18 SGD steps on both
//! (the harness is [`crate::selftest`]).

use clap::Args;

use super::{CliError, CliResult, Device};
use crate::backend::cpu::Cpu64;
use crate::backend::cuda::{probe, Cuda};
use crate::backend::{Backend, Precision};
use crate::selftest::{self, Options, Report};

/// Exit code: some op or ResNet step failed.
pub const EXIT_FAIL: i32 = 1;
/// Exit code: no CUDA driver or no CUDA device on this machine.
pub const EXIT_NO_GPU: i32 = 3;

#[derive(Args, Debug)]
#[command(
    about = "Check a device backend against the CPU reference: every op (forward and backward) at odd shapes, then ResNet-18 SGD steps",
    after_help = "Every op of the backend runs on fresh seeded random inputs (the seed is printed; --seed reproduces a run), with\n\
                  outputs poisoned with NaN and gradient accumulators starting from random values, and is compared with the\n\
                  f32 CPU reference: max abs error, scale-relative max error (max|got-ref| / max|ref|) against a tolerance\n\
                  of 1e-5 (elementwise ops) or 1e-4 (reductions, GEMMs, convolutions). Then a ResNet-18 (10 classes, 8x3x64x64)\n\
                  takes a few SGD steps on both devices from the same weights; losses must agree to 5e-3 relative.\n\n\
                  --precision bf16 runs the device's convolutions on bf16 tensor cores (operands rounded to bf16, f32\n\
                  accumulation); the reference then emulates the same rounding, so the op tolerances stay the fp32 ones;\n\
                  the training losses get wider ones (0.05 and 0.06 relative: bf16 rounding flips compound over steps).\n\n\
                  Devices: cuda, cuda:N (the GPU), cpu64 (the f64 CPU backend: exercises the harness itself on a machine\n\
                  without a GPU).\n\n\
                  Exit codes:\n  0  every check passed\n  1  some check failed (the table says which), or an error\n  \
                  2  usage error\n  3  no CUDA driver or no CUDA device on this machine\n\n\
                  Examples:\n  fgssl selftest --device cuda\n  fgssl selftest --device cuda --precision bf16\n  \
                  fgssl selftest --device cpu64 --quick --seed 1"
)]
pub struct SelftestArgs {
    /// Device under test: cuda, cuda:N or cpu64.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Seed of the random inputs and weights (default: fresh from the clock, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// One shape per op and two ResNet steps (for slow tools such as compute-sanitizer).
    #[arg(long)]
    pub quick: bool,
    /// What the device's convolutions multiply in: fp32, or bf16 (tensor cores; the reference emulates the rounding).
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
}

/// The device a self-test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Cuda(usize),
    Cpu64,
}

fn parse_target(s: &str) -> CliResult<Target> {
    if s.trim().eq_ignore_ascii_case("cpu64") {
        return Ok(Target::Cpu64);
    }
    match s.parse::<Device>() {
        Ok(Device::Cuda(n)) => Ok(Target::Cuda(n)),
        Ok(Device::Auto) => Ok(Target::Cuda(0)),
        Ok(Device::Cpu) => Err(CliError {
            code: 2,
            message: "--device cpu: the CPU is the reference; use --device cpu64 to check the harness on a machine without a GPU".into(),
        }),
        Err(e) => Err(CliError { code: 2, message: format!("--device: {e} (selftest takes cuda, cuda:N or cpu64)") }),
    }
}

pub fn run(a: SelftestArgs) -> CliResult {
    let target = parse_target(&a.device)?;
    let seed = a.seed.unwrap_or_else(selftest::fresh_seed);
    let opts = Options { seed, quick: a.quick, live: true };
    let report = match target {
        Target::Cpu64 => selftest::run(&Cpu64::with_precision(a.precision), &opts),
        Target::Cuda(ordinal) => run_cuda(ordinal, a.precision, &opts)?,
    };
    println!("{}", report.summary());
    if report.passed() {
        Ok(())
    } else {
        let failed = report.ops_failed().len() + report.steps_failed();
        Err(CliError { code: EXIT_FAIL, message: format!("selftest failed: {failed} check(s) failed (seed {seed})") })
    }
}

/// Opens `cuda:ordinal` and runs the harness on it; exit code 3 without a driver or device.
fn run_cuda(ordinal: usize, precision: Precision, opts: &Options) -> CliResult<Report> {
    if !probe::driver_present() {
        return Err(CliError {
            code: EXIT_NO_GPU,
            message: "no CUDA driver on this machine (libcuda.so.1 not found): nothing to test; \
                      `fgssl selftest --device cpu64` checks the harness on the CPU"
                .into(),
        });
    }
    let dev = Cuda::open(ordinal)
        .map_err(|e| CliError { code: EXIT_NO_GPU, message: format!("no usable CUDA device cuda:{ordinal}: {e}") })?
        .with_precision(precision);
    println!("device: {} ({precision} convolutions)", dev.name());
    let mut report = selftest::run(&dev, opts);
    // The bf16 tensor-core kernels' own cases (their NHWC layout, every tile, launched directly) run on CUDA only;
    // with --precision bf16 the Backend trait's conv cases above went through the same kernels.
    report.ops.extend(selftest::conv_bf16::run(&dev, opts.seed, opts.quick, opts.live));
    Ok(report)
}
