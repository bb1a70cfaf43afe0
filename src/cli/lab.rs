//! `fgssl lab conv`: the convolution kernel lab (llm.c `dev/cuda` style). For every distinct conv of a ResNet at
//! its training resolution (and the FG-SSL head convs), each kernel version of `crate::selftest::conv_bf16::VERSIONS`
//! is first validated against the CPU reference on a small batch, then timed at the lab batch with CUDA events:
//! warm-up launches, then many timed launches whose inputs rotate over enough operand copies to exceed the L2 cache
//! (50-60 MB on H100/H200), reporting the median, min and max. Throughput is given in TFLOP/s and as a fraction of the
//! bf16 dense tensor-core peak measured first on the same card by `kernels/mma_peak.cu`.
//! `scripts/conv-lab.sh` runs this and the cuDNN timing script on the same shapes and prints the ratio.

use std::time::Instant;

use clap::{Args, Subcommand};
use cudarc::driver::sys::CUevent_flags;

use super::selftest::EXIT_NO_GPU;
use super::{CliError, CliResult};
use crate::backend::cuda::launch::mma_peak;
use crate::backend::cuda::{probe, Cuda};
use crate::backend::Backend;
use crate::model::resnet::Arch;
use crate::rng::Rng;
use crate::selftest::conv_bf16::{self as conv, ConvShape, HostInputs, Operands, Step, Version, VERSIONS};
use crate::selftest::OpRow;

/// Exit code: some version failed its validation (timings are still printed).
pub const EXIT_FAIL: i32 = 1;
/// Bytes of operands (inputs and outputs) the timed launches rotate over: above the L2 of H100 / H200 (50-60 MB).
const ROTATE_BYTES: usize = 160 << 20;
/// Wall time the timed launches of one (shape, version, step) may take; slower kernels get fewer iterations.
const CASE_BUDGET_MS: f64 = 1500.0;

#[derive(Args, Debug)]
#[command(about = "Kernel lab: validate and time kernel versions on the GPU (needs a CUDA device)")]
pub struct LabArgs {
    #[command(subcommand)]
    pub what: LabWhat,
}

#[derive(Subcommand, Debug)]
pub enum LabWhat {
    /// Every conv shape of a ResNet (and the FG-SSL heads): validation, then fwd / dgrad / wgrad timings per version.
    Conv(ConvLabArgs),
}

#[derive(Args, Debug)]
#[command(after_help = "Exit codes:\n  0  every validation passed\n  1  some validation failed, or an error\n  2  usage error\n  \
                        3  no CUDA driver or no CUDA device on this machine\n\n\
                        Examples:\n  fgssl lab conv\n  fgssl lab conv --batch 64 --shapes layer3,conv_block --json lab.json")]
pub struct ConvLabArgs {
    /// GPU to use: cuda or cuda:N.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Batch of the timed launches.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Input resolution of the network.
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// resnet18, resnet34 or resnet50.
    #[arg(long, default_value = "resnet50")]
    pub arch: String,
    /// Timed launches per (shape, version, step) (fewer when one launch is slow).
    #[arg(long, default_value_t = 50)]
    pub iters: usize,
    /// Untimed warm-up launches.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Batch of the validation against the CPU reference.
    #[arg(long, default_value_t = 1)]
    pub check_batch: usize,
    /// Only shapes whose name contains one of these comma-separated substrings (e.g. `layer3,conv1`).
    #[arg(long)]
    pub shapes: Option<String>,
    /// Only these kernel versions, comma-separated (default: every version but the slow `fp32-direct` baseline).
    #[arg(long)]
    pub versions: Option<String>,
    /// Leave out the FG-SSL head convs.
    #[arg(long)]
    pub no_heads: bool,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop starting new shapes after this many seconds (what was measured is still printed and written).
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

pub fn run(a: LabArgs) -> CliResult {
    match a.what {
        LabWhat::Conv(c) => run_conv(c),
    }
}

fn parse_arch(s: &str) -> CliResult<Arch> {
    Arch::ALL
        .into_iter()
        .find(|a| a.to_string() == s.trim().to_lowercase())
        .ok_or_else(|| CliError { code: 2, message: format!("--arch {s}: expected resnet18, resnet34 or resnet50") })
}

fn open(device: &str) -> CliResult<Cuda> {
    let ordinal = match device.parse::<super::Device>() {
        Ok(super::Device::Cuda(n)) => n,
        Ok(super::Device::Auto) => 0,
        _ => return Err(CliError { code: 2, message: format!("--device {device}: the lab runs on cuda or cuda:N") }),
    };
    if !probe::driver_present() {
        return Err(CliError {
            code: EXIT_NO_GPU,
            message: "no CUDA driver on this machine (libcuda.so.1 not found): the kernel lab needs a GPU".into(),
        });
    }
    Cuda::open(ordinal).map_err(|e| CliError { code: EXIT_NO_GPU, message: format!("no usable CUDA device cuda:{ordinal}: {e}") })
}

/// Median, min and max of per-launch milliseconds.
#[derive(Clone, Copy, Debug, Default)]
struct Timing {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

fn timing(mut ms: Vec<f64>) -> Timing {
    ms.sort_by(|a, b| a.total_cmp(b));
    let n = ms.len();
    if n == 0 {
        return Timing::default();
    }
    let median = if n % 2 == 1 { ms[n / 2] } else { 0.5 * (ms[n / 2 - 1] + ms[n / 2]) };
    Timing { median, min: ms[0], max: ms[n - 1], runs: n }
}

fn err(e: impl std::fmt::Display) -> CliError {
    CliError { code: 1, message: e.to_string() }
}

/// Times `launch(i)` (i = run index, for rotating operands) with one event pair per launch.
fn time_launches(cx: &Cuda, warmup: usize, iters: usize, mut launch: impl FnMut(usize) -> crate::error::Result<()>) -> CliResult<Timing> {
    let ctx = &cx.device().ctx;
    let ev = || ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).map_err(|e| err(format!("cannot create a CUDA event: {e:?}")));
    // One launch first (its module is loaded: the caller validated the version before), to size the number of timed
    // runs to the budget. A launch slower than the whole budget (a baseline kernel at a large batch) is reported as
    // measured once rather than stalling the lab.
    let (t0, t1) = (ev()?, ev()?);
    t0.record(cx.stream()).map_err(|e| err(format!("{e:?}")))?;
    launch(0).map_err(err)?;
    t1.record(cx.stream()).map_err(|e| err(format!("{e:?}")))?;
    cx.synchronize().map_err(err)?;
    let one = t0.elapsed_ms(&t1).map_err(|e| err(format!("{e:?}")))? as f64;
    if one > CASE_BUDGET_MS {
        return Ok(Timing { median: one, min: one, max: one, runs: 1 });
    }
    let runs = ((CASE_BUDGET_MS / one.max(1e-3)) as usize).clamp(3, iters.max(3));
    // The rest of the warm-up, unless one launch is already slow enough to be warm (a slow baseline kernel).
    if one < CASE_BUDGET_MS / 20.0 {
        for i in 0..warmup {
            launch(warmup + runs + i).map_err(err)?;
        }
    }
    let events: Vec<_> = (0..runs).map(|_| Ok::<_, CliError>((ev()?, ev()?))).collect::<CliResult<_>>()?;
    for (i, (a, b)) in events.iter().enumerate() {
        a.record(cx.stream()).map_err(|e| err(format!("{e:?}")))?;
        launch(warmup + 1 + i).map_err(err)?;
        b.record(cx.stream()).map_err(|e| err(format!("{e:?}")))?;
    }
    cx.synchronize().map_err(err)?;
    let ms = events.iter().map(|(a, b)| a.elapsed_ms(b).map(|v| v as f64).map_err(|e| err(format!("{e:?}")))).collect::<CliResult<Vec<f64>>>()?;
    Ok(timing(ms))
}

/// The measured bf16 dense tensor-core peak, TFLOP/s: the best of a few `mma_peak` launches.
fn measure_peak(cx: &Cuda) -> CliResult<f64> {
    let blocks = cx.sm_count() * 8;
    let iters = 8192u32;
    let mut out = cx.stream().alloc_zeros::<f32>(blocks as usize * mma_peak::THREADS as usize).map_err(|e| err(format!("{e:?}")))?;
    let t = time_launches(cx, 2, 5, |_| mma_peak::run(cx, blocks, iters, &mut out.slice_mut(..)))?;
    Ok(mma_peak::flops(blocks, iters) / (t.min * 1e-3) / 1e12)
}

struct Row {
    shape: ConvShape,
    version: &'static str,
    step: Step,
    gflop: f64,
    t: Timing,
    tflops: f64,
    check: OpRow,
}

fn run_conv(a: ConvLabArgs) -> CliResult {
    let arch = parse_arch(&a.arch)?;
    if a.batch == 0 || a.check_batch == 0 || a.size < 32 {
        return Err(CliError { code: 2, message: "--batch and --check-batch must be at least 1, --size at least 32".into() });
    }
    let cx = open(&a.device)?;
    let started = Instant::now();
    println!("device: {}", cx.name());
    let mut shapes = conv::conv_shapes(arch, a.size, !a.no_heads);
    if let Some(filter) = &a.shapes {
        let keys: Vec<&str> = filter.split(',').map(str::trim).filter(|k| !k.is_empty()).collect();
        shapes.retain(|s| keys.iter().any(|k| s.name.contains(k)));
        if shapes.is_empty() {
            return Err(CliError { code: 2, message: format!("--shapes {filter}: no shape matches") });
        }
    }
    let versions: Vec<&Version> = match &a.versions {
        None => VERSIONS.iter().filter(|v| v.name != "fp32-direct").collect(),
        Some(list) => {
            let names: Vec<&str> = list.split(',').map(str::trim).filter(|k| !k.is_empty()).collect();
            if let Some(bad) = names.iter().find(|n| !VERSIONS.iter().any(|v| v.name == **n)) {
                let known = VERSIONS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ");
                return Err(CliError { code: 2, message: format!("--versions: no version {bad} (known: {known})") });
            }
            VERSIONS.iter().filter(|v| names.contains(&v.name)).collect()
        }
    };
    let peak = measure_peak(&cx)?;
    println!("measured bf16 dense mma.sync peak: {peak:.1} TFLOP/s (kernels/mma_peak.cu)");
    println!(
        "{arch} at {}x{}, batch {} (validation at batch {}), {} shapes, versions: {}",
        a.size,
        a.size,
        a.batch,
        a.check_batch,
        shapes.len(),
        versions.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
    );
    println!(
        "{:<44} {:<8} {:<12} {:>8} {:>9} {:>19} {:>8} {:>7}  check",
        "shape", "version", "step", "GFLOP", "ms", "[min, max]", "TFLOP/s", "%peak"
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut rng = Rng::new(a.seed);
    for (i, shape) in shapes.iter().enumerate() {
        if started.elapsed().as_secs() >= a.max_seconds {
            println!("time limit (--max-seconds {}) reached: {} shape(s) not measured", a.max_seconds, shapes.len() - i);
            break;
        }
        let small = shape.geom(a.check_batch);
        let host_small = HostInputs::random(&small, &mut rng);
        let g = shape.geom(a.batch);
        let host = HostInputs::random(&g, &mut rng);
        for &version in &versions {
            for &step in version.steps() {
                let check = match conv::reference(step, &small, &host_small) {
                    Ok(r) => conv::validate(&cx, version, step, &small, &host_small, &r, &shape.name),
                    Err(e) => return Err(err(format!("{}: the CPU reference failed: {e}", shape.name))),
                };
                let t = time_case(&cx, version, step, &g, &host, &a)?;
                let gflop = step.flops(&g) / 1e9;
                let tflops = gflop / t.median; // GFLOP per ms = TFLOP/s
                let row = Row { shape: shape.clone(), version: version.name, step, gflop, t, tflops, check };
                println!("{}", row_line(&row, peak));
                rows.push(row);
            }
        }
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.check.pass).collect();
    println!("lab conv: {} rows in {:.1} s; {} validation failure(s)", rows.len(), started.elapsed().as_secs_f64(), failed.len());
    for r in &failed {
        println!("FAIL {} {} {}: {}", r.shape.name, r.version, r.step.name(), r.check.note);
    }
    if let Some(path) = &a.json {
        std::fs::write(path, json(&cx, &a, arch, peak, &rows).to_string()).map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError { code: EXIT_FAIL, message: format!("lab conv: {} validation failure(s)", failed.len()) })
    }
}

/// Uploads enough operand copies to exceed the L2 cache and times `step` rotating over them.
fn time_case(
    cx: &Cuda,
    version: &Version,
    step: Step,
    g: &crate::backend::geom::Conv2dGeom,
    host: &HostInputs,
    a: &ConvLabArgs,
) -> CliResult<Timing> {
    let elem = if matches!(version.imp, conv::Impl::Bf16) { 2 } else { 4 };
    let bytes = (2 * g.x_len() + 2 * g.y_len() + g.w_len()) * elem;
    let copies = ROTATE_BYTES.div_ceil(bytes.max(1)).clamp(1, 16);
    let mut ops: Vec<Operands> = (0..copies).map(|_| Operands::upload(cx, version, g, host)).collect::<crate::error::Result<_>>().map_err(err)?;
    let t = time_launches(cx, a.warmup, a.iters, |i| {
        let n = ops.len();
        ops[i % n].launch(cx, version, step, g)
    })?;
    drop(ops);
    cx.synchronize().map_err(err)?;
    Ok(t)
}

fn row_line(r: &Row, peak: f64) -> String {
    format!(
        "{:<44} {:<8} {:<12} {:>8.2} {:>9.4} [{:>8.4}, {:>8.4}] {:>8.1} {:>6.1}%  {} (max rel {:.1e}, tol {:.0e})",
        r.shape.name,
        r.version,
        r.step.name(),
        r.gflop,
        r.t.median,
        r.t.min,
        r.t.max,
        r.tflops,
        100.0 * r.tflops / peak,
        if r.check.pass { "PASS" } else { "FAIL" },
        r.check.max_rel,
        r.check.tol
    )
}

fn json(cx: &Cuda, a: &ConvLabArgs, arch: Arch, peak: f64, rows: &[Row]) -> serde_json::Value {
    use serde_json::json;
    json!({
        "device": cx.name(),
        "arch": arch.to_string(),
        "size": a.size,
        "batch": a.batch,
        "check_batch": a.check_batch,
        "peak_tflops": peak,
        "method": "CUDA events per launch after warm-up; median/min/max; operands rotated over >= 160 MB of copies",
        "rows": rows.iter().map(|r| json!({
            "shape": r.shape.name, "c_in": r.shape.c_in, "c_out": r.shape.c_out, "k": r.shape.k, "stride": r.shape.stride,
            "pad": r.shape.pad, "size": r.shape.size, "count": r.shape.count,
            "version": r.version, "step": r.step.name(), "gflop": r.gflop,
            "ms_median": r.t.median, "ms_min": r.t.min, "ms_max": r.t.max, "runs": r.t.runs,
            "tflops": r.tflops, "fraction_of_peak": r.tflops / peak,
            "check_pass": r.check.pass, "check_max_rel": r.check.max_rel, "check_tol": r.check.tol, "check_note": r.check.note,
        })).collect::<Vec<_>>(),
    })
}
