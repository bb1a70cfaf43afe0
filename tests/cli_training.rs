//! `fgssl pretrain` and `fgssl finetune` end to end on a tiny synthetic data set (CPU), and their error paths.
//! These check that the commands run, write what they promise and fail cleanly; learning itself is an experiment
//! (scripts/learning_check.sh, docs/RESULTS.md), not a test.

use std::path::Path;

mod support;
use support::{assert_clean_failure, fgssl, stderr, TempDir};

/// 2 classes x 12 images of 32x32.
fn synth(dir: &TempDir) -> String {
    let data = dir.join("synth");
    let o = fgssl(&["synth", "--out", data.to_str().unwrap(), "--classes", "2", "--per-class", "12", "--size", "32"]);
    assert!(o.status.success(), "synth failed: {}", stderr(&o));
    data.to_string_lossy().into_owned()
}

const TINY: &[&str] = &["--arch", "resnet18", "--embed-dim", "16", "--pooled-dim", "24", "--device", "cpu", "--grids", "8,4,2"];

fn run(args: &[&str]) -> std::process::Output {
    let o = fgssl(args);
    assert!(o.status.success(), "fgssl {args:?} failed:\n{}", stderr(&o));
    o
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn pretrain_then_finetune_runs_and_writes_weights_logs_and_metrics() {
    let dir = TempDir::new("train");
    let data = synth(&dir);
    let (ssl, ssl_log) = (dir.join("ssl.safetensors"), dir.join("ssl.jsonl"));
    let cache = dir.join("cache");
    let mut args = vec!["pretrain", "--data", &data, "--size", "32", "--epochs", "2", "--batch-size", "8", "--lr", "0.01"];
    let (s, l, c) = (ssl.to_str().unwrap(), ssl_log.to_str().unwrap(), cache.to_str().unwrap());
    args.extend(["--out", s, "--log", l, "--cache-dir", c]);
    args.extend(TINY);
    let o = run(&args);
    let err = stderr(&o);
    assert!(err.contains("epoch   2: step losses ["), "{err}");
    // One JSON line per iteration with four steps and finite BT terms and monitors.
    let lines = json_lines(&ssl_log);
    assert!(!lines.is_empty());
    for line in &lines {
        assert_eq!(line["kind"], "ssl");
        let steps = line["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 4);
        for s in steps {
            for k in ["loss", "on_diag", "off_diag", "std_of_l2_normalized"] {
                assert!(s[k].as_f64().unwrap().is_finite(), "{k} in {line}");
            }
        }
    }
    let sd = fgssl::weights::read_state_dict(&ssl).unwrap();
    for key in ["conv1.weight", "layer4.1.bn2.running_var", "conv_block1.0.conv.weight", "projector_concat.1.weight"] {
        assert!(sd.get(key).is_some(), "{key} missing from the pretrained file");
    }
    assert!(sd.get("classifier1.weight").is_none(), "pretraining has no classifiers");

    // Fine-tune from it, every schedule; each prints test metrics and writes a model with classifiers.
    for schedule in ["progressive", "plain", "linear-probe"] {
        let ft = dir.join(format!("ft-{schedule}.safetensors"));
        let mut args = vec!["finetune", "--data", &data, "--init", s, "--size", "32", "--resize", "36", "--epochs", "1"];
        args.extend(["--batch-size", "4", "--label-fraction", "0.5", "--schedule", schedule, "--cache-dir", c, "--out", ft.to_str().unwrap()]);
        args.extend(TINY);
        let o = run(&args);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("test (") && out.contains("accuracy") && out.contains("confusion matrix"), "{schedule}:\n{out}");
        assert!(stderr(&o).contains("labels: 8 of 14"), "{schedule}: half of each class's 7 training images, 3.5 rounded up\n{}", stderr(&o));
        let sd = fgssl::weights::read_state_dict(&ft).unwrap();
        assert!(sd.get("classifier_concat.weight").is_some(), "{schedule}: no classifier in the output");
        assert_eq!(sd.metadata.get("method").map(String::as_str), Some("fgssl"));
    }
}

#[test]
fn training_commands_reject_bad_settings_cleanly() {
    let dir = TempDir::new("train-errors");
    let data = synth(&dir);
    let out = dir.join("x.safetensors");
    let o = out.to_str().unwrap();
    let cache = dir.join("cache");
    let c = cache.to_str().unwrap();
    let base = |cmd: &'static str| -> Vec<&str> { vec![cmd, "--data", &data, "--out", o, "--cache-dir", c, "--device", "cpu", "--arch", "resnet18"] };

    let mut a = base("pretrain");
    a.extend(["--size", "30", "--grids", "8,4,2"]);
    assert_clean_failure(&fgssl(&a), Some(1), "30");

    let mut a = base("finetune");
    a.extend(["--size", "32", "--resize", "36", "--grids", "8,4,2", "--label-fraction", "0"]);
    assert_clean_failure(&fgssl(&a), Some(1), "label fraction");

    let mut a = base("finetune");
    a.extend(["--size", "64", "--resize", "32", "--grids", "8,4,2"]);
    assert_clean_failure(&fgssl(&a), Some(1), "--resize");

    let missing = dir.join("missing.safetensors");
    let mut a = base("pretrain");
    a.extend(["--size", "32", "--grids", "8,4,2", "--init", missing.to_str().unwrap()]);
    assert_clean_failure(&fgssl(&a), Some(1), "missing.safetensors");

    let mut a = base("pretrain");
    a.extend(["--size", "32", "--grids", "8,4"]);
    assert_clean_failure(&fgssl(&a), Some(2), "grids");
    assert!(!out.exists(), "nothing is written when a run fails");
}
