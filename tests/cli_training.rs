//! `fgssl pretrain` and `fgssl finetune` end to end on a tiny synthetic data set (CPU), and their error paths.
//! These check that the commands run, write what they promise and fail cleanly; learning itself is an experiment
//! (scripts/learning_check.sh, docs/RESULTS.md), not a test.

use std::path::Path;

use fgssl::weights::read_state_dict;

mod support;
use support::{assert_clean_failure, fgssl, stderr, tiny_synth, TempDir, TINY};

fn run(args: &[&str]) -> std::process::Output {
    let o = fgssl(args);
    assert!(o.status.success(), "fgssl {args:?} failed:\n{}", stderr(&o));
    o
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn events(path: &Path, kind: &str) -> Vec<serde_json::Value> {
    json_lines(path).into_iter().filter(|e| e["kind"] == kind).collect()
}

/// The torchvision ResNet-18 state dict (names and shapes, in order) recorded by scripts/make_fixtures.py.
fn torchvision_resnet18_keys() -> Vec<(String, Vec<usize>)> {
    let fx = fgssl::weights::read_state_dict(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/resnet18.safetensors"))).unwrap();
    serde_json::from_str(&fx.metadata["state_dict"]).expect("state_dict metadata")
}

#[test]
fn pretrain_then_finetune_write_run_folders_with_a_torchvision_export() {
    let dir = TempDir::new("train");
    let data = tiny_synth(&dir);
    let (ssl, cache) = (dir.join("ssl"), dir.join("cache"));
    let (s, c) = (ssl.to_str().unwrap(), cache.to_str().unwrap());
    let mut args = vec!["pretrain", "--data", &data, "--size", "32", "--epochs", "2", "--batch-size", "8", "--lr", "0.01"];
    args.extend(["--out", s, "--cache-dir", c]);
    args.extend(TINY);
    let o = run(&args);
    let err = stderr(&o);
    assert!(err.contains("epoch   2: step losses ["), "{err}");
    let log = std::fs::read_to_string(ssl.join("train.log")).unwrap();
    assert!(log.contains("epoch   2: step losses [") && log.contains("device: cpu"), "train.log holds what stderr showed:\n{log}");
    for f in
        ["config.json", "splits.json", "metrics.csv", "checkpoints/last.safetensors", "checkpoints/last.prev.safetensors", "export/metadata.json"]
    {
        assert!(ssl.join(f).is_file(), "{f} missing from the run folder");
    }
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ssl.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["training"]["seed"].as_u64(), config["training"]["lr"].as_f64()), (Some(0), Some(0.01)), "{config}");
    assert_eq!(config["training"]["arch"], "resnet18");

    // One iteration event per batch with four steps and finite BT terms and monitors, one epoch event per epoch.
    let iterations = events(&ssl.join("metrics.jsonl"), "iteration");
    assert_eq!(iterations.len(), 2, "14 images in batches of 8, the incomplete one dropped: one iteration per epoch");
    for line in &iterations {
        let steps = line["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 4);
        for s in steps {
            for k in ["loss", "on_diag", "off_diag", "std_of_l2_normalized"] {
                assert!(s[k].as_f64().unwrap().is_finite(), "{k} in {line}");
            }
        }
    }
    assert_eq!(events(&ssl.join("metrics.jsonl"), "epoch").len(), 2);
    let csv = std::fs::read_to_string(ssl.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("kind,stage,epoch,iteration,split,lr,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 2 + 2, "header, two iterations, two epochs");

    // The whole model, and the backbone alone under torchvision's names and dtypes: exactly torchvision's ResNet-18
    // state dict without fc (what load_state_dict(strict=False) accepts reporting only fc.* missing).
    let model = fgssl::weights::read_state_dict(&ssl.join("export/model.safetensors")).unwrap();
    for key in ["conv1.weight", "layer4.1.bn2.running_var", "conv_block1.0.conv.weight", "projector_concat.1.weight"] {
        assert!(model.get(key).is_some(), "{key} missing from the exported model");
    }
    assert!(model.get("classifier1.weight").is_none(), "pretraining has no classifiers");
    let backbone = fgssl::weights::read_state_dict(&ssl.join("export/backbone.safetensors")).unwrap();
    let want: Vec<(String, Vec<usize>)> = torchvision_resnet18_keys().into_iter().filter(|(k, _)| !k.starts_with("fc.")).collect();
    let got: Vec<(String, Vec<usize>)> = backbone.tensors.iter().map(|(k, t)| (k.clone(), t.shape.clone())).collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "exported backbone keys and shapes");
    for (k, _) in &want {
        let dtype = &backbone.origin[k].dtype;
        assert_eq!(dtype, if k.ends_with("num_batches_tracked") { "I64" } else { "F32" }, "{k}");
        assert_eq!(&backbone.origin[k].name, k, "stored under the torchvision name itself");
    }
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ssl.join("export/metadata.json")).unwrap()).unwrap();
    assert_eq!((meta["arch"].as_str(), meta["method"].as_str(), meta["grids"].as_str()), (Some("resnet18"), Some("fgssl"), Some("8,4,2")));
    assert_eq!((meta["embed_dim"].as_u64(), meta["pooled_dim"].as_u64(), meta["input_size"].as_u64()), (Some(16), Some(24), Some(32)));
    assert_eq!(meta["resize"].as_u64(), Some(32), "pretraining views are the whole cached image");
    assert_eq!(meta["mean"].as_array().map(Vec::len), Some(3));

    // `fgssl embed` takes the exported backbone.
    let feats = dir.join("feats.csv");
    let weights = ssl.join("export/backbone.safetensors");
    let o = run(&[
        "embed",
        "--arch",
        "resnet18",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        &data,
        "--size",
        "32",
        "--device",
        "cpu",
        "--out",
        feats.to_str().unwrap(),
    ]);
    assert!(stderr(&o).contains("0 missing, 0 unexpected"), "{}", stderr(&o));
    let rows = std::fs::read_to_string(&feats).unwrap();
    assert_eq!(rows.lines().next().unwrap().split(',').count(), 1 + 512);
    assert_eq!(rows.lines().count(), 1 + 24);

    // Fine-tune from the pretraining run folder (and from the exported backbone), every schedule; each prints
    // test metrics, logs them and exports a model with classifiers.
    for (schedule, init) in [("progressive", s.to_string()), ("plain", weights.display().to_string()), ("linear-probe", s.to_string())] {
        let ft = dir.join(format!("ft-{schedule}"));
        let mut args = vec!["finetune", "--data", &data, "--init", &init, "--size", "32", "--resize", "36", "--epochs", "1"];
        args.extend(["--batch-size", "4", "--label-fraction", "0.5", "--schedule", schedule, "--cache-dir", c, "--out", ft.to_str().unwrap()]);
        args.extend(TINY);
        let o = run(&args);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("test (") && out.contains("accuracy") && out.contains("confusion matrix"), "{schedule}:\n{out}");
        assert!(stderr(&o).contains("labels: 8 of 14"), "{schedule}: half of each class's 7 training images, 3.5 rounded up\n{}", stderr(&o));
        let sd = fgssl::weights::read_state_dict(&ft.join("export/model.safetensors")).unwrap();
        assert!(sd.get("classifier_concat.weight").is_some(), "{schedule}: no classifier in the output");
        assert_eq!(sd.metadata.get("method").map(String::as_str), Some("fgssl"));
        let evals = events(&ft.join("metrics.jsonl"), "eval");
        assert!(evals.iter().any(|e| e["split"] == "test" && e["metrics"]["accuracy"].is_number()), "{schedule}: {evals:?}");
        assert!(std::fs::read_to_string(ft.join("metrics.csv")).unwrap().contains(",accuracy,"), "{schedule}: eval rows in the CSV");
        if schedule == "linear-probe" {
            assert!(sd.get("fc.weight").is_some(), "the probe is exported as fc");
        } else {
            assert!(ft.join("checkpoints/last.safetensors").is_file(), "{schedule}: no checkpoint");
        }
    }
}

/// Runs pretraining in `out`; `extra` are appended.
fn pretrain_args<'a>(data: &'a str, out: &'a str, cache: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["pretrain", "--data", data, "--size", "32", "--epochs", "4", "--batch-size", "4", "--lr", "0.01", "--optimizer", "adamw"];
    a.extend(["--out", out, "--cache-dir", cache]);
    a.extend(TINY);
    a.extend(extra);
    a
}

#[test]
fn a_run_killed_mid_epoch_resumes_exactly() {
    let dir = TempDir::new("resume");
    let data = tiny_synth(&dir);
    let (full, killed, cache) = (dir.join("full"), dir.join("killed"), dir.join("cache"));
    let (f, k, c) = (full.to_str().unwrap(), killed.to_str().unwrap(), cache.to_str().unwrap());
    run(&pretrain_args(&data, f, c, &[]));

    // The same run, killed (SIGKILL) as soon as its first checkpoint exists, i.e. during the second epoch.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fgssl"))
        .args(pretrain_args(&data, k, c, &[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = killed.join("checkpoints/last.safetensors");
    let t = std::time::Instant::now();
    while !checkpoint.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before writing a checkpoint");
        assert!(t.elapsed().as_secs() < 300, "no checkpoint after 5 minutes");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("export/model.safetensors").exists(), "the run was killed before its end");

    let o = run(&pretrain_args(&data, k, c, &["--resume", "auto"]));
    assert!(stderr(&o).contains("resume "), "{}", stderr(&o));
    // Same losses, iteration by iteration (the killed epoch's partial lines replaced), and bit-identical weights and
    // optimizer state.
    let losses = |p: &Path| {
        events(&p.join("metrics.jsonl"), "iteration").into_iter().map(|e| (e["iteration"].clone(), e["steps"].clone())).collect::<Vec<_>>()
    };
    let (a, b) = (losses(&full), losses(&killed));
    assert_eq!(a.len(), 4 * 3, "4 epochs of 3 batches of 4 out of 14 images");
    assert_eq!(a, b, "per-iteration losses of the uninterrupted and the resumed run");
    assert_eq!(events(&killed.join("metrics.jsonl"), "epoch").len(), 4);
    for file in ["checkpoints/last.safetensors", "export/model.safetensors"] {
        let (x, y) = (fgssl::weights::read_state_dict(&full.join(file)).unwrap(), fgssl::weights::read_state_dict(&killed.join(file)).unwrap());
        assert_eq!(x.tensors.keys().collect::<Vec<_>>(), y.tensors.keys().collect::<Vec<_>>(), "{file}");
        for (key, t) in &x.tensors {
            assert!(t == &y.tensors[key], "{file}: {key} differs between the uninterrupted and the resumed run");
        }
    }
    assert!(has_optimizer_state(&full.join("checkpoints/last.safetensors")));

    // Resuming a finished run only rewrites its export; other settings, another architecture and a folder that
    // already holds a run without --resume are clear errors.
    let o = run(&pretrain_args(&data, k, c, &["--resume", "auto"]));
    assert!(stderr(&o).contains("already at the last epoch"), "{}", stderr(&o));
    let mut a = pretrain_args(&data, k, c, &["--resume", "auto"]);
    set_lr(&mut a, "0.02");
    assert_clean_failure(&fgssl(&a), Some(1), "lr: checkpoint 0.01, this run 0.02");
    let other = dir.join("other");
    let ckpt = checkpoint.to_str().unwrap();
    let mut a = pretrain_args(&data, other.to_str().unwrap(), c, &["--resume", ckpt]);
    let arch = a.iter().position(|&x| x == "resnet18").unwrap();
    a[arch] = "resnet34";
    assert_clean_failure(&fgssl(&a), Some(1), "layer1.2.");
    assert_clean_failure(&fgssl(&pretrain_args(&data, k, c, &[])), Some(1), "--resume auto");
}

fn set_lr<'a>(args: &mut [&'a str], lr: &'a str) {
    let i = args.iter().position(|&a| a == "--lr").unwrap();
    args[i + 1] = lr;
}

fn has_optimizer_state(path: &Path) -> bool {
    let sd = fgssl::weights::read_state_dict(path).unwrap();
    ["optimizer.momentum", "optimizer.second_moment", "optimizer.steps"].iter().all(|k| sd.get(k).is_some())
}

#[test]
fn a_finetuning_run_extended_with_resume_matches_one_run_of_the_full_length() {
    // The per-epoch cosine gives epoch 0 the base rate whatever the length, so one epoch then `--epochs 2 --resume
    // auto` must compute exactly what a two-epoch run computes.
    let dir = TempDir::new("ft-resume");
    let data = tiny_synth(&dir);
    let cache = dir.join("cache");
    let ft = |out: &Path, epochs: &str, extra: &[&str]| {
        let mut a = vec!["finetune", "--data", &data, "--size", "32", "--resize", "36", "--epochs", epochs, "--batch-size", "4", "--lr", "0.01"];
        a.extend(["--label-fraction", "0.5", "--cache-dir", cache.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        a.extend(TINY);
        a.extend(extra);
        run(&a)
    };
    let (full, split) = (dir.join("full"), dir.join("split"));
    ft(&full, "2", &[]);
    ft(&split, "1", &[]);
    ft(&split, "2", &["--resume", "auto"]);
    let losses = |p: &Path| events(&p.join("metrics.jsonl"), "iteration").into_iter().map(|e| e["steps"].clone()).collect::<Vec<_>>();
    assert_eq!(losses(&full).len(), 4, "8 labelled images in batches of 4, two epochs");
    assert_eq!(losses(&full), losses(&split));
    let evals = |p: &Path| events(&p.join("metrics.jsonl"), "eval");
    assert_eq!(evals(&full), evals(&split), "the same test metrics (and the first run's evaluation dropped on resume)");
    let (x, y) =
        (read_state_dict(&full.join("export/model.safetensors")).unwrap(), read_state_dict(&split.join("export/model.safetensors")).unwrap());
    assert!(x.tensors == y.tensors, "the same weights");
}

#[test]
fn a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = TempDir::new("nan");
    let data = tiny_synth(&dir);
    let (out, cache) = (dir.join("run"), dir.join("cache"));
    // One warm-up epoch at lr 0 (finite, checkpointed), then lr 1e30.
    let mut a = pretrain_args(&data, out.to_str().unwrap(), cache.to_str().unwrap(), &["--warmup", "1"]);
    set_lr(&mut a, "1e30");
    let o = fgssl(&a);
    assert_clean_failure(&o, Some(1), "training stopped");
    let err = stderr(&o);
    assert!(err.contains("Barlow Twins loss is") && err.contains("in epoch 2 (iteration 3 of the run") && err.contains(", step "), "{err}");
    assert!(err.contains("the last good checkpoint (after epoch 1)"), "{err}");
    let sd = fgssl::weights::read_state_dict(&out.join("checkpoints/last.safetensors")).unwrap();
    assert!(sd.metadata["fgssl.checkpoint"].contains("\"epoch\":1"), "{:?}", sd.metadata);
    assert!(!out.join("export/model.safetensors").exists(), "no export of a diverged run");
    assert!(std::fs::read_to_string(out.join("train.log")).unwrap().contains("error: "), "the error is in train.log");
}

#[test]
fn an_unwritable_run_folder_fails_before_training() {
    let dir = TempDir::new("unwritable");
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let out = blocker.join("run");
    let o = fgssl(&["pretrain", "--data", "does-not-matter", "--out", out.to_str().unwrap(), "--device", "cpu"]);
    assert_clean_failure(&o, Some(1), "cannot create the run folder");
    assert!(!stderr(&o).contains("epoch"), "{}", stderr(&o));
}

#[test]
fn training_commands_reject_bad_settings_cleanly() {
    let dir = TempDir::new("train-errors");
    let data = tiny_synth(&dir);
    let out = dir.join("x");
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
    assert!(
        !out.join("checkpoints/last.safetensors").exists() && !out.join("export/model.safetensors").exists(),
        "nothing is written when a run fails"
    );
}
