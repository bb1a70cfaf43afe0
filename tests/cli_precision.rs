//! `--precision fp32|bf16` through the workflow on the CPU (whose bf16 is an exact emulation of the GPU's): the flag
//! reaches the convolutions of pretraining, the run folder, the checkpoints and the export record it, a config file
//! sets it and the command line overrides the file, a resume continues in the checkpoint's precision bit for bit
//! and refuses another, and the inference commands, bench and demo take it. Tiny runs on the synthetic data set.

use std::path::Path;

use fgssl::weights::read_state_dict;
use serde_json::Value;

mod support;
use support::{assert_clean_failure, fgssl, stderr, tiny_synth, TempDir, TINY};

fn run(args: &[&str]) -> std::process::Output {
    let o = fgssl(args);
    assert!(o.status.success(), "fgssl {args:?} failed:\n{}", stderr(&o));
    o
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// `(iteration, steps)` of every iteration event of a run.
fn iterations(run: &Path) -> Vec<(Value, Value)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "iteration")
        .map(|e| (e["iteration"].clone(), e["steps"].clone()))
        .collect()
}

fn step_losses(run: &Path) -> Vec<f64> {
    iterations(run).iter().flat_map(|(_, steps)| steps.as_array().unwrap().iter().map(|s| s["loss"].as_f64().unwrap()).collect::<Vec<_>>()).collect()
}

#[test]
fn pretraining_in_bf16_is_recorded_reaches_the_convolutions_and_resumes_exactly_in_bf16() {
    let dir = TempDir::new("precision-pretrain");
    let data = tiny_synth(&dir);
    let cache = dir.join("cache");
    // The settings every run here shares; bf16.toml adds the precision.
    let common = format!(
        "data = \"{data}\"\narch = \"resnet18\"\nembed_dim = 16\npooled_dim = 24\ndevice = \"cpu\"\ngrids = [8, 4, 2]\nsize = 32\n\
         epochs = 2\nbatch_size = 4\nlr = 0.01\noptimizer = \"adamw\"\ncache_dir = \"{}\"\nkeep_checkpoints = 2\n",
        cache.display()
    );
    let (common_toml, bf16_toml) = (dir.join("common.toml"), dir.join("bf16.toml"));
    std::fs::write(&common_toml, &common).unwrap();
    std::fs::write(&bf16_toml, format!("{common}precision = \"bf16\"\n")).unwrap();
    let (common_toml, bf16_toml) = (common_toml.to_str().unwrap(), bf16_toml.to_str().unwrap());
    let (bf16, fp32, resumed) = (dir.join("bf16"), dir.join("fp32"), dir.join("resumed"));

    // The file's key sets the precision; the command line's flag overrides it.
    let o = run(&["pretrain", "--config", bf16_toml, "--out", bf16.to_str().unwrap()]);
    assert!(stderr(&o).contains("device: cpu (f32, bf16 convolutions emulated") && stderr(&o).contains("precision bf16"), "{}", stderr(&o));
    run(&["pretrain", "--config", bf16_toml, "--out", fp32.to_str().unwrap(), "--precision", "fp32"]);
    let (cb, cf) = (read_json(&bf16.join("config.json")), read_json(&fp32.join("config.json")));
    assert_eq!(cb["training"]["precision"], "bf16", "{cb}");
    assert_eq!(cf["training"]["precision"], "fp32", "the command line's --precision wins over the file's: {cf}");
    assert_ne!(cb["config_hash"], cf["config_hash"], "the precision is one of the settings a resume must keep");
    assert!(std::fs::read_to_string(bf16.join("train.log")).unwrap().contains("precision bf16"), "train.log has the device line");
    assert_eq!(read_json(&bf16.join("export/metadata.json"))["precision"], "bf16");
    assert_eq!(read_json(&fp32.join("export/metadata.json"))["precision"], "fp32");
    let checkpoint = read_state_dict(&bf16.join("checkpoints/last.safetensors")).unwrap();
    assert_eq!(checkpoint.metadata.get("precision").map(String::as_str), Some("bf16"));

    // bf16 operands change the losses (the flag reaches the convolutions), and they stay finite.
    let (lb, lf) = (step_losses(&bf16), step_losses(&fp32));
    assert_eq!(lb.len(), 2 * 3 * 4, "2 epochs of 3 batches, 4 steps each");
    assert!(lb.iter().chain(&lf).all(|l| l.is_finite()), "bf16 {lb:?}\nfp32 {lf:?}");
    assert_ne!(lb, lf, "bf16 and fp32 runs compute the same losses: the precision did not reach the convolutions");
    assert_ne!(lb[0], lf[0], "the first forward already multiplies in bf16");

    // Resuming the bf16 run after its first epoch, without --precision, continues in bf16: the second epoch and the
    // final weights and optimizer state are those of the uninterrupted bf16 run, bit for bit.
    let after_one = bf16.join("checkpoints/epoch-0001.safetensors");
    let after_one = after_one.to_str().unwrap();
    let o = run(&["pretrain", "--config", common_toml, "--out", resumed.to_str().unwrap(), "--resume", after_one]);
    assert!(stderr(&o).contains("resume ") && stderr(&o).contains("precision bf16"), "{}", stderr(&o));
    assert_eq!(read_json(&resumed.join("config.json"))["training"]["precision"], "bf16");
    let second_epoch: Vec<_> = iterations(&bf16).into_iter().filter(|(it, _)| it.as_u64().unwrap() >= 3).collect();
    assert_eq!(second_epoch.len(), 3);
    assert_eq!(iterations(&resumed), second_epoch, "per-iteration losses of the resumed and the uninterrupted bf16 run");
    for file in ["checkpoints/last.safetensors", "export/model.safetensors"] {
        let (x, y) = (read_state_dict(&bf16.join(file)).unwrap(), read_state_dict(&resumed.join(file)).unwrap());
        assert_eq!(x.tensors.keys().collect::<Vec<_>>(), y.tensors.keys().collect::<Vec<_>>(), "{file}");
        for (key, t) in &x.tensors {
            assert!(t == &y.tensors[key], "{file}: {key} differs between the uninterrupted and the resumed bf16 run");
        }
    }

    // Asking for another precision than the checkpoint's is refused, naming both; the same one is accepted.
    let other = dir.join("other");
    let o = fgssl(&["pretrain", "--config", common_toml, "--out", other.to_str().unwrap(), "--resume", after_one, "--precision", "fp32"]);
    assert_clean_failure(&o, Some(1), "--precision fp32: the checkpoint");
    assert!(stderr(&o).contains("trained in bf16") && stderr(&o).contains("epoch-0001.safetensors"), "{}", stderr(&o));
    assert!(!other.join("checkpoints/last.safetensors").exists(), "nothing trained");
    let o = fgssl(&["pretrain", "--config", common_toml, "--out", fp32.to_str().unwrap(), "--resume", "auto", "--precision", "bf16"]);
    assert_clean_failure(&o, Some(1), "trained in fp32");
    let o = run(&["pretrain", "--config", bf16_toml, "--out", bf16.to_str().unwrap(), "--resume", "auto", "--precision", "bf16"]);
    assert!(stderr(&o).contains("already at the last epoch"), "{}", stderr(&o));
}

#[test]
fn an_unknown_precision_is_a_usage_error_naming_the_accepted_values() {
    let dir = TempDir::new("precision-usage");
    let out = dir.join("run");
    for command in ["pretrain", "finetune", "eval", "predict", "embed", "knn", "bench", "demo"] {
        let o = fgssl(&[command, "--precision", "fp16"]);
        assert_clean_failure(&o, Some(2), "'fp16' is not a precision (expected fp32 or bf16)");
    }
    let file = dir.join("bad.toml");
    std::fs::write(&file, "precision = \"fp16\"\n").unwrap();
    let o = fgssl(&["pretrain", "--config", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_clean_failure(&o, Some(2), "key 'precision'");
    assert!(stderr(&o).contains("expected fp32 or bf16"), "{}", stderr(&o));
    assert!(!out.exists(), "nothing is created on a usage error");
}

#[test]
fn finetuning_and_the_inference_commands_take_the_precision() {
    let dir = TempDir::new("precision-inference");
    let data = tiny_synth(&dir);
    let (cache, ft) = (dir.join("cache"), dir.join("ft"));
    let c = cache.to_str().unwrap();
    let mut args = vec!["finetune", "--data", &data, "--size", "32", "--resize", "36", "--epochs", "1", "--batch-size", "4", "--precision", "bf16"];
    args.extend(["--cache-dir", c, "--out", ft.to_str().unwrap()]);
    args.extend(TINY);
    let o = run(&args);
    assert!(stderr(&o).contains("precision bf16"), "{}", stderr(&o));
    assert_eq!(read_json(&ft.join("config.json"))["training"]["precision"], "bf16");
    assert_eq!(read_json(&ft.join("export/metadata.json"))["precision"], "bf16");
    let weights = ft.join("export/model.safetensors");
    let w = weights.to_str().unwrap();

    // eval and knn record the precision they computed in; predict and embed run in either.
    for precision in ["fp32", "bf16"] {
        let json = dir.join(format!("eval-{precision}.json"));
        let o = run(&[
            "eval",
            "--weights",
            w,
            "--data",
            &data,
            "--cache-dir",
            c,
            "--device",
            "cpu",
            "--precision",
            precision,
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(stderr(&o).contains(&format!("precision {precision}")), "{}", stderr(&o));
        let v = read_json(&json);
        assert_eq!(v["precision"], precision, "{v}");
        assert!(v["metrics"]["accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{v}");
        let json = dir.join(format!("knn-{precision}.json"));
        run(&[
            "knn",
            "--weights",
            w,
            "--data",
            &data,
            "--cache-dir",
            c,
            "--device",
            "cpu",
            "--precision",
            precision,
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_eq!(read_json(&json)["precision"], precision);
        let preds = dir.join(format!("preds-{precision}.csv"));
        run(&[
            "predict",
            "--weights",
            w,
            "--data",
            &data,
            "--cache-dir",
            c,
            "--device",
            "cpu",
            "--precision",
            precision,
            "--out",
            preds.to_str().unwrap(),
        ]);
        assert!(std::fs::read_to_string(&preds).unwrap().lines().count() > 1);
    }
    let embed = |precision: &str| {
        let out = dir.join(format!("embed-{precision}.csv"));
        let mut a = vec!["embed", "--arch", "resnet18", "--data", &data, "--size", "32", "--device", "cpu", "--precision", precision];
        a.extend(["--out", out.to_str().unwrap()]);
        run(&a);
        std::fs::read_to_string(&out).unwrap()
    };
    let (e32, e16) = (embed("fp32"), embed("bf16"));
    assert_eq!(e32.lines().count(), e16.lines().count());
    assert_ne!(e32, e16, "bf16 convolutions change the features");
}

#[test]
fn bench_and_demo_run_in_the_precision_asked_for() {
    let dir = TempDir::new("precision-bench");
    let json = dir.join("bench.json");
    let mut args = vec!["bench", "--device", "cpu", "--arch", "resnet18", "--grids", "8,4,2", "--embed-dim", "16", "--pooled-dim", "8"];
    args.extend(["--size", "32", "--batch-size", "3", "--what", "ssl", "--warmup", "0", "--iters", "1", "--precision", "bf16"]);
    args.extend(["--peak-tflops", "0.5", "--json", json.to_str().unwrap()]);
    let o = run(&args);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("bf16 convolutions, f32 NCHW activations"), "{text}");
    let r = read_json(&json);
    assert_eq!((r["precision"].as_str(), r["config"]["precision"].as_str()), (Some("bf16"), Some("bf16")), "{r}");
    assert!(r["device"].as_str().unwrap().contains("bf16 convolutions emulated"), "{r}");
    assert!(r["ssl"]["last_losses"].as_array().unwrap().iter().all(|l| l.as_f64().is_some_and(f64::is_finite)), "{r}");
    assert!(r["ssl"]["mfu"].as_f64().is_some_and(|m| m > 0.0), "the utilisation is against --peak-tflops in bf16 too: {r}");

    let demo = dir.join("demo");
    run(&["demo", "--quick", "--device", "cpu", "--precision", "bf16", "--out", demo.to_str().unwrap()]);
    assert_eq!(read_json(&demo.join("demo.json"))["precision"], "bf16");
    for stage in ["pretrain", "finetune-ssl", "finetune-scratch"] {
        assert_eq!(read_json(&demo.join(stage).join("config.json"))["training"]["precision"], "bf16", "{stage}");
    }
}
