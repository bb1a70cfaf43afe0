//! `fgssl bench` on the CPU with tiny sizes: the JSON it writes (fields, consistency of the statistics, the FLOP
//! count equal to the library's) and its errors on bad flags.

use fgssl::model::fgssl::{Fgssl, FgsslConfig};
use fgssl::model::resnet::Arch;
use fgssl::training::finetune::finetune_iteration_macs;
use fgssl::training::ssl::{ssl_iteration_macs, BnStats};
use serde_json::Value;

mod support;
use support::{assert_clean_failure, fgssl, stderr, TempDir};

const TINY: &[&str] = &["bench", "--device", "cpu", "--arch", "resnet18", "--grids", "8,4,2", "--embed-dim", "16", "--pooled-dim", "8"];
/// The size and batch of the runs that succeed.
const SMALL: &[&str] = &["--size", "32", "--batch-size", "3"];

fn f(v: &Value, path: &str) -> f64 {
    path.split('.').fold(v, |v, k| &v[k]).as_f64().unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

fn check_iteration(r: &Value, name: &str, batch: f64, flop_per_image: f64, peak: f64) {
    let r = &r[name];
    let ms = |k: &str| f(r, &format!("ms.{k}"));
    assert!(ms("min") > 0.0, "{name}: {r}");
    assert!(ms("min") <= ms("p10") && ms("p10") <= ms("median") && ms("median") <= ms("p90") && ms("p90") <= ms("max"), "{name}: {r}");
    assert!(ms("min") <= ms("mean") && ms("mean") <= ms("max"));
    assert!((f(r, "images_per_s") - batch / (ms("median") / 1e3)).abs() < 1e-6 * f(r, "images_per_s"));
    // The host clock around an iteration includes reading its marks back: never shorter than the marked time.
    assert!(f(r, "wall_ms.min") >= ms("min") * 0.999, "{name}: wall {} vs marks {}", f(r, "wall_ms.min"), ms("min"));
    // The phases partition each iteration, so their means add up to the mean total.
    let phases = r["phases_ms_mean"].as_object().expect("phases_ms_mean");
    for p in ["upload", "augment", "forward", "backward", "monitor", "optimizer"] {
        assert!(phases[p].as_f64().is_some_and(|v| v >= 0.0), "{name}: phase {p} in {r}");
    }
    assert!(phases["forward"].as_f64().unwrap() > 0.0 && phases["backward"].as_f64().unwrap() > 0.0);
    let sum: f64 = phases.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - ms("mean")).abs() <= 1e-6 * ms("mean") + 1e-3, "{name}: phases sum to {sum}, mean total {}", ms("mean"));
    assert!((f(r, "model_gflop_per_image") - flop_per_image / 1e9).abs() < 1e-9, "{name}: {r}");
    assert!((f(r, "model_gflop_per_iteration") - batch * flop_per_image / 1e9).abs() < 1e-9);
    let tflops = batch * flop_per_image / (ms("median") / 1e3) / 1e12;
    assert!((f(r, "achieved_tflops") - tflops).abs() <= 1e-9 * tflops);
    assert!((f(r, "mfu") - tflops / peak).abs() <= 1e-9 * tflops / peak);
    let losses = r["last_losses"].as_array().expect("last_losses");
    assert_eq!(losses.len(), 4, "four steps");
    assert!(losses.iter().all(|l| l.as_f64().is_some_and(|l| l.is_finite() && l > 0.0)), "{name}: {r}");
}

#[test]
fn bench_writes_consistent_json_for_both_iterations() {
    let tmp = TempDir::new("bench");
    let out = tmp.join("bench.json");
    let mut args = [TINY, SMALL].concat();
    args.extend(["--warmup", "1", "--iters", "3", "--peak-tflops", "0.5", "--classes", "3", "--json", out.to_str().unwrap()]);
    let o = fgssl(&args);
    assert!(o.status.success(), "bench failed: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("ssl (4 steps, 8 forwards): median") && text.contains("finetune (4 steps, 4 forwards): median"), "{text}");
    let r: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(r["backend"], "cpu");
    assert!(r["device"].as_str().unwrap().starts_with("cpu"));
    let c = &r["config"];
    assert_eq!(
        (c["arch"].as_str(), c["size"].as_u64(), c["batch"].as_u64(), c["grids"].as_str()),
        (Some("resnet18"), Some(32), Some(3), Some("8,4,2"))
    );
    assert_eq!(
        (c["iters"].as_u64(), c["warmup"].as_u64(), c["precision"].as_str(), c["bn_stats"].as_str()),
        (Some(3), Some(1), Some("fp32"), Some("minimal"))
    );
    assert_eq!(c["finetune_resize"].as_u64(), Some(32 * 256 / 224));
    assert_eq!((r["peak_tflops"].as_f64(), r["peak_source"].as_str()), (Some(0.5), Some("--peak-tflops")));

    let model = Fgssl::new(FgsslConfig { arch: Arch::ResNet18, embed_dim: 16, pooled_dim: Some(8), num_classes: Some(3) }, 0.1).0;
    let ssl = 2.0 * ssl_iteration_macs(&model, 32, BnStats::Minimal).total() as f64;
    let ft = 2.0 * finetune_iteration_macs(&model, 32, BnStats::Minimal).total() as f64;
    check_iteration(&r, "ssl", 3.0, ssl, 0.5);
    check_iteration(&r, "finetune", 3.0, ft, 0.5);
    assert!(r["ssl"]["phases_ms_mean"]["monitor"].as_f64().unwrap() > 0.0, "the SSL steps compute the collapse monitor");
}

#[test]
fn bench_without_a_peak_reports_no_utilisation() {
    let tmp = TempDir::new("bench-nopeak");
    let out = tmp.join("b.json");
    let mut args = [TINY, SMALL].concat();
    args.extend(["--what", "ssl", "--warmup", "0", "--iters", "1", "--json", out.to_str().unwrap()]);
    let o = fgssl(&args);
    assert!(o.status.success(), "bench failed: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("give --peak-tflops"));
    let r: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(r["ssl"]["mfu"].is_null() && r["peak_tflops"].is_null() && r["finetune"].is_null(), "{r}");
    assert_eq!(r["peak_source"], "none");
}

#[test]
fn bench_rejects_bad_flags_clearly() {
    let with = |extra: &[&'static str]| fgssl(&[TINY, extra].concat());
    assert_clean_failure(&with(&["--size", "36"]), Some(1), "36");
    assert_clean_failure(&with(&[SMALL, &["--iters", "0"]].concat()), Some(1), "--iters 0");
    assert_clean_failure(&with(&["--size", "32", "--batch-size", "1"]), Some(1), "--batch-size 1");
    assert_clean_failure(&with(&[SMALL, &["--peak-tflops=-3"]].concat()), Some(1), "--peak-tflops");
    assert_clean_failure(&with(&[SMALL, &["--resize", "16"]].concat()), Some(1), "--resize 16");
}
