//! The workflow features of `fgssl pretrain` / `fgssl finetune` (issue 7): `--config FILE.toml`, the best and
//! per-epoch checkpoints, progress lines and `--quiet`, Ctrl-C (save, exit 130, resume exactly), and the failure
//! cases (a full disk keeps the previous checkpoint, a read-only run folder fails before training). Tiny CPU runs
//! on the synthetic data set.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fgssl::weights::read_state_dict;

mod support;
use support::{assert_clean_failure, fgssl, stderr, tiny_synth, TempDir, TINY};

fn run(args: &[&str]) -> std::process::Output {
    let o = fgssl(args);
    assert!(o.status.success(), "fgssl {args:?} failed:\n{}", stderr(&o));
    o
}

fn events(path: &Path, kind: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|e| e["kind"] == kind).collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Pretraining on the synthetic set in `out`: 4 epochs of 3 batches of 4 images; `extra` appended.
fn pretrain_args<'a>(data: &'a str, out: &'a str, cache: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["pretrain", "--data", data, "--size", "32", "--epochs", "4", "--batch-size", "4", "--lr", "0.01", "--optimizer", "adamw"];
    a.extend(["--out", out, "--cache-dir", cache]);
    a.extend(TINY);
    a.extend(extra);
    a
}

/// The training progress recorded in a checkpoint's metadata.
fn checkpoint_progress(path: &Path) -> serde_json::Value {
    let sd = read_state_dict(path).unwrap();
    serde_json::from_str(&sd.metadata["fgssl.checkpoint"]).unwrap()
}

#[test]
fn a_config_file_sets_flags_the_command_line_overrides_and_config_json_records_the_result() {
    let dir = TempDir::new("config");
    let data = tiny_synth(&dir);
    let (out, cache, file) = (dir.join("run"), dir.join("cache"), dir.join("ssl.toml"));
    let toml = format!(
        "data = \"{data}\"\narch = \"resnet18\"\nembed_dim = 16\npooled-dim = 24\ndevice = \"cpu\"\ngrids = [8, 4, 2]\nsize = 32\n\
         epochs = 3\nbatch_size = 8\nlr = 0.5\noptimizer = \"adamw\"\ncache_dir = \"{}\"\nquiet = false\n",
        cache.display()
    );
    std::fs::write(&file, toml).unwrap();
    let (f, o) = (file.to_str().unwrap(), out.to_str().unwrap());
    run(&["pretrain", "--config", f, "--out", o, "--epochs", "1", "--lr", "0.01"]);
    let config = read_json(&out.join("config.json"));
    let t = &config["training"];
    assert_eq!((t["arch"].as_str(), t["embed_dim"].as_u64(), t["pooled_dim"].as_u64()), (Some("resnet18"), Some(16), Some(24)), "{config}");
    assert_eq!((t["batch_size"].as_u64(), t["optimizer"].as_str(), t["grids"].as_str()), (Some(8), Some("adamw"), Some("8,4,2")));
    assert_eq!(t["lr"].as_f64(), Some(0.01), "the command line's --lr wins over the file's 0.5");
    assert_eq!(config["run"]["epochs"].as_u64(), Some(1), "the command line's --epochs wins over the file's 3");
    assert_eq!(config["run"]["config_file"].as_str(), Some(f));
    assert_eq!(events(&out.join("metrics.jsonl"), "epoch").len(), 1);

    // Mistakes name the file and the key, before anything runs.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "data = \"x\"\nbatch_sise = 8\n").unwrap();
    let other = dir.join("other");
    let o = fgssl(&["pretrain", "--config", bad.to_str().unwrap(), "--out", other.to_str().unwrap()]);
    assert_clean_failure(&o, Some(2), "unknown key 'batch_sise'");
    assert!(stderr(&o).contains("bad.toml"), "{}", stderr(&o));
    std::fs::write(&bad, "epochs = \"many\"\n").unwrap();
    assert_clean_failure(&fgssl(&["finetune", "--config", bad.to_str().unwrap()]), Some(2), "key 'epochs' must be an integer");
    std::fs::write(&bad, "device = \"tpu\"\n").unwrap();
    assert_clean_failure(&fgssl(&["pretrain", "--config", bad.to_str().unwrap()]), Some(2), "key 'device'");
    std::fs::write(&bad, "k = 5\nepochs = 3\n").unwrap();
    assert_clean_failure(&fgssl(&["knn", "--config", bad.to_str().unwrap()]), Some(2), "unknown key 'epochs' for `fgssl knn`");
    let missing = dir.join("missing.toml");
    assert_clean_failure(&fgssl(&["pretrain", "--config", missing.to_str().unwrap()]), Some(1), "missing.toml");
    assert!(!other.exists(), "nothing is created when the config file is wrong");
}

#[test]
fn best_and_per_epoch_checkpoints_follow_the_metric_and_the_keep_policy() {
    let dir = TempDir::new("best");
    let data = tiny_synth(&dir);
    let (ssl, cache) = (dir.join("ssl"), dir.join("cache"));
    let (s, c) = (ssl.to_str().unwrap(), cache.to_str().unwrap());
    let mut a = pretrain_args(&data, s, c, &["--keep-checkpoints", "2"]);
    a[6] = "3"; // --epochs 3
    run(&a);
    let ckpts = ssl.join("checkpoints");
    assert!(!ckpts.join("epoch-0001.safetensors").exists(), "pruned: only the last 2 epochs are kept");
    assert_eq!(checkpoint_progress(&ckpts.join("epoch-0002.safetensors"))["epoch"], 2);
    assert_eq!(checkpoint_progress(&ckpts.join("epoch-0003.safetensors"))["epoch"], 3);
    // best = the epoch with the lowest epoch loss (sum of the four step losses' epoch means).
    let losses: Vec<f64> = events(&ssl.join("metrics.jsonl"), "epoch")
        .iter()
        .map(|e| e["steps"].as_array().unwrap().iter().map(|s| s["loss"].as_f64().unwrap()).sum())
        .collect();
    let best_epoch = 1 + (0..losses.len()).min_by(|&i, &j| losses[i].total_cmp(&losses[j])).unwrap();
    let record = read_json(&ckpts.join("best.json"));
    assert_eq!((record["metric"].as_str(), record["epoch"].as_u64()), (Some("loss"), Some(best_epoch as u64)), "{record} vs {losses:?}");
    assert!((record["value"].as_f64().unwrap() - losses[best_epoch - 1]).abs() < 1e-9);
    assert_eq!(checkpoint_progress(&ckpts.join("best.safetensors"))["epoch"], best_epoch);
    assert_eq!(read_json(&ssl.join("config.json"))["run"]["best_metric"], "loss");

    // Fine-tuning with a validation split: scored after every epoch, logged as per-epoch eval events.
    let ft = dir.join("ft");
    let mut a = vec!["finetune", "--data", &data, "--init", s, "--size", "32", "--resize", "36", "--epochs", "2", "--batch-size", "4"];
    a.extend(["--label-fraction", "0.5", "--cache-dir", c, "--out", ft.to_str().unwrap()]);
    a.extend(TINY);
    let o = run(&a);
    assert!(stderr(&o).contains("val after epoch   2: accuracy"), "{}", stderr(&o));
    let vals: Vec<_> = events(&ft.join("metrics.jsonl"), "eval").into_iter().filter(|e| e["epoch"].is_u64()).collect();
    assert_eq!(vals.len(), 2, "one validation per epoch");
    let record = read_json(&ft.join("checkpoints/best.json"));
    assert_eq!(record["metric"], "val-balanced-accuracy");
    let scores: Vec<f64> = vals.iter().map(|e| e["metrics"]["balanced_accuracy"].as_f64().unwrap()).collect();
    let first_best = 1 + (0..2).find(|&i| scores[i] == scores.iter().cloned().fold(f64::MIN, f64::max)).unwrap();
    assert_eq!(record["epoch"].as_u64(), Some(first_best as u64), "the first epoch with the highest score: {scores:?}");
    assert!(ft.join("checkpoints/best.safetensors").is_file());

    // The linear probe writes a checkpoint (frozen model + probe as fc) after every epoch too.
    let probe = dir.join("probe");
    let mut a = vec!["finetune", "--data", &data, "--init", s, "--size", "32", "--resize", "36", "--epochs", "3", "--batch-size", "4"];
    a.extend(["--label-fraction", "0.5", "--schedule", "linear-probe", "--keep-checkpoints", "1", "--cache-dir", c]);
    a.extend(["--out", probe.to_str().unwrap()]);
    a.extend(TINY);
    run(&a);
    let last = read_state_dict(&probe.join("checkpoints/last.safetensors")).unwrap();
    assert!(last.get("fc.weight").is_some() && last.get("layer4.1.bn2.weight").is_some(), "model and probe in the checkpoint");
    assert_eq!(last.metadata.get("linear_probe_epochs_done").map(String::as_str), Some("3"));
    assert!(probe.join("checkpoints/epoch-0003.safetensors").is_file() && !probe.join("checkpoints/epoch-0002.safetensors").exists());
    assert_eq!(read_json(&probe.join("checkpoints/best.json"))["metric"], "val-balanced-accuracy");
    let vals = events(&probe.join("metrics.jsonl"), "eval").into_iter().filter(|e| e["epoch"].is_u64()).count();
    assert_eq!(vals, 3, "the probe is validated after every epoch");

    let mut a = pretrain_args(&data, s, c, &["--overwrite", "--best-metric", "val-accuracy"]);
    a[6] = "1";
    assert_clean_failure(&fgssl(&a), Some(1), "pretraining has no validation pass");
    assert_clean_failure(&fgssl(&pretrain_args(&data, s, c, &["--best-metric", "f1"])), Some(2), "'f1' is not a metric");
}

#[test]
fn progress_lines_go_to_stderr_and_train_log_and_quiet_keeps_stderr_clean() {
    let dir = TempDir::new("progress");
    let data = tiny_synth(&dir);
    let (out, cache) = (dir.join("run"), dir.join("cache"));
    let (o, c) = (out.to_str().unwrap(), cache.to_str().unwrap());
    let mut a = pretrain_args(&data, o, c, &["--log-interval", "0"]);
    a[6] = "1";
    let err = stderr(&run(&a));
    // Not a terminal: plain lines (one per iteration with --log-interval 0), no bar's carriage returns.
    for i in 1..=3 {
        assert!(err.contains(&format!("epoch 1/1, iteration {i}/3 (")), "{err}");
    }
    assert!(err.contains("img/s, ETA ") && !err.contains('\r'), "{err}");
    let log = std::fs::read_to_string(out.join("train.log")).unwrap();
    assert!(log.contains("epoch 1/1, iteration 3/3 (100%): loss "), "{log}");

    let quiet = dir.join("quiet");
    let mut a = pretrain_args(&data, quiet.to_str().unwrap(), c, &["--quiet", "--log-interval", "0"]);
    a[6] = "1";
    let o = run(&a);
    assert_eq!(stderr(&o), "", "--quiet prints nothing on success");
    let log = std::fs::read_to_string(quiet.join("train.log")).unwrap();
    assert!(log.contains("iteration 3/3") && log.contains("epoch   1: step losses"), "train.log still gets everything:\n{log}");
    // Errors still print.
    let mut a = pretrain_args(&data, quiet.to_str().unwrap(), c, &["--quiet"]);
    a[6] = "1";
    assert_clean_failure(&fgssl(&a), Some(1), "already holds a run");
}

/// Runs `args` and sends `signal` (by `kill`) once its metrics hold `after` iteration events; returns its output.
fn interrupt_after(args: &[&str], metrics: &Path, after: usize, signal: &str) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_fgssl")).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    loop {
        let n = std::fs::read_to_string(metrics).map(|t| t.lines().filter(|l| l.contains("\"kind\":\"iteration\"")).count()).unwrap_or(0);
        if n >= after {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "no iteration after 5 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill {signal}");
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_saves_a_resumable_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one() {
    let dir = TempDir::new("sigint");
    let data = tiny_synth(&dir);
    let (full, stopped, cache) = (dir.join("full"), dir.join("stopped"), dir.join("cache"));
    let (f, s, c) = (full.to_str().unwrap(), stopped.to_str().unwrap(), cache.to_str().unwrap());
    run(&pretrain_args(&data, f, c, &[]));

    let o = interrupt_after(&pretrain_args(&data, s, c, &[]), &stopped.join("metrics.jsonl"), 4, "-INT");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "Ctrl-C exits with 130:\n{err}");
    assert!(err.contains("interrupted: saved a resumable checkpoint") && err.contains("--resume auto"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("error: "), "{err}");
    let at = checkpoint_progress(&stopped.join("checkpoints/last.safetensors"));
    let (epoch, iteration, batch) = (at["epoch"].as_u64().unwrap(), at["iteration"].as_u64().unwrap(), at["batch"].as_u64().unwrap());
    assert!((4..12).contains(&iteration), "stopped at an iteration boundary after the 4th: {at}");
    assert_eq!((epoch, batch), (iteration / 3, iteration % 3), "3 batches per epoch: {at}");
    assert!(!stopped.join("export/model.safetensors").exists(), "an interrupted run is not exported");

    let o = run(&pretrain_args(&data, s, c, &["--resume", "auto"]));
    assert!(stderr(&o).contains("resume "), "{}", stderr(&o));
    let losses = |p: &Path| {
        events(&p.join("metrics.jsonl"), "iteration").into_iter().map(|e| (e["iteration"].clone(), e["steps"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(losses(&full).len(), 12);
    assert_eq!(losses(&full), losses(&stopped), "per-iteration losses of the uninterrupted and the interrupted-then-resumed run");
    let epoch_losses = |p: &Path| events(&p.join("metrics.jsonl"), "epoch").into_iter().map(|e| e["steps"].clone()).collect::<Vec<_>>();
    assert_eq!(epoch_losses(&full), epoch_losses(&stopped), "the epoch means count the iterations before the interrupt too");
    for file in ["checkpoints/last.safetensors", "export/model.safetensors"] {
        let (x, y) = (read_state_dict(&full.join(file)).unwrap(), read_state_dict(&stopped.join(file)).unwrap());
        assert!(x.tensors == y.tensors, "{file}: the uninterrupted and the resumed run differ");
    }

    // SIGTERM (a job scheduler's stop) does the same for fine-tuning.
    let ft = dir.join("ft");
    let mut a = vec!["finetune", "--data", &data, "--size", "32", "--resize", "36", "--epochs", "30", "--batch-size", "4"];
    a.extend(["--label-fraction", "0.5", "--cache-dir", c, "--out", ft.to_str().unwrap()]);
    a.extend(TINY);
    let o = interrupt_after(&a, &ft.join("metrics.jsonl"), 1, "-TERM");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(checkpoint_progress(&ft.join("checkpoints/last.safetensors"))["iteration"].as_u64().unwrap() >= 1);
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_previous_checkpoint() {
    let dir = TempDir::new("disk-full");
    let data = tiny_synth(&dir);
    let (out, cache) = (dir.join("run"), dir.join("cache"));
    let (o, c) = (out.to_str().unwrap(), cache.to_str().unwrap());
    let mut a = pretrain_args(&data, o, c, &[]);
    a[6] = "1";
    run(&a);
    let last = out.join("checkpoints/last.safetensors");
    let before = std::fs::read(&last).unwrap();

    // The checkpoint's temporary file is written first: make that write fail as on a full disk (/dev/full gives
    // ENOSPC on every write), else make its path unusable (a folder).
    let tmp = out.join("checkpoints/last.safetensors.tmp.tmp");
    let full = Path::new("/dev/full");
    if full.exists() {
        std::os::unix::fs::symlink(full, &tmp).unwrap();
    } else {
        std::fs::create_dir(&tmp).unwrap();
    }
    let mut a = pretrain_args(&data, o, c, &["--resume", "auto"]);
    a[6] = "2";
    let o = fgssl(&a);
    assert_clean_failure(&o, Some(1), "last.safetensors.tmp");
    let err = stderr(&o);
    assert!(err.contains("the last good checkpoint (after epoch 1)"), "{err}");
    if full.exists() {
        assert!(err.contains("No space left on device"), "{err}");
        assert!(std::fs::symlink_metadata(&tmp).is_err(), "the failed temporary file is removed");
    }
    assert_eq!(std::fs::read(&last).unwrap(), before, "the previous checkpoint is untouched");
    assert!(!out.join("checkpoints/last.safetensors.tmp").exists(), "nothing half-written next to it");
}

#[test]
fn a_read_only_run_folder_fails_before_training() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("read-only");
    let out = dir.join("run");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root writes anyway; the test of a path under a regular file (tests/cli_training.rs) covers that case.
    if std::fs::write(out.join("probe"), b"x").is_ok() {
        eprintln!("skipped: running as root, a read-only folder is writable");
        return;
    }
    let o = fgssl(&["pretrain", "--data", "does-not-matter", "--out", out.to_str().unwrap(), "--device", "cpu"]);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_clean_failure(&o, Some(1), "cannot create the run folder");
    assert!(!stderr(&o).contains("epoch"), "{}", stderr(&o));
}
