//! `fgssl export`: the export a run writes at its end, made again from a checkpoint, and its errors.

use std::path::Path;

use fgssl::weights::read_state_dict;

mod support;
use support::{assert_clean_failure, fgssl, stderr, TempDir};

const TINY: &[&str] = &["--arch", "resnet18", "--embed-dim", "16", "--pooled-dim", "24", "--device", "cpu", "--grids", "8,4,2"];

fn run(args: &[&str]) -> std::process::Output {
    let o = fgssl(args);
    assert!(o.status.success(), "fgssl {args:?} failed:\n{}", stderr(&o));
    o
}

fn metadata_json(dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    v.as_object().unwrap().clone()
}

#[test]
fn export_from_a_checkpoint_equals_the_export_at_the_end_of_the_run() {
    let dir = TempDir::new("export");
    let data = dir.join("synth");
    let d = data.to_str().unwrap();
    run(&["synth", "--out", d, "--classes", "2", "--per-class", "12", "--size", "32"]);
    let ft = dir.join("ft");
    let f = ft.to_str().unwrap();
    let cache = dir.join("cache");
    let mut args = vec!["finetune", "--data", d, "--size", "32", "--resize", "32", "--epochs", "2", "--batch-size", "4", "--label-fraction", "0.5"];
    args.extend(["--out", f, "--cache-dir", cache.to_str().unwrap()]);
    args.extend(TINY);
    run(&args);

    // The run folder's last checkpoint is the final model: exporting it gives the same tensors and metadata as the
    // export the run wrote, plus where it came from.
    let again = dir.join("again");
    let o = run(&["export", "--from", f, "--out", again.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 epochs trained"), "{}", String::from_utf8_lossy(&o.stdout));
    for file in ["backbone.safetensors", "model.safetensors"] {
        let (a, b) = (read_state_dict(&ft.join("export").join(file)).unwrap(), read_state_dict(&again.join(file)).unwrap());
        assert_eq!(a.tensors, b.tensors, "{file}: tensors");
        let mut meta = b.metadata.clone();
        assert_eq!(meta.remove("epochs_trained").as_deref(), Some("2"));
        assert_eq!(meta.remove("exported_from"), Some(ft.join("checkpoints/last.safetensors").display().to_string()));
        assert_eq!(a.metadata, meta, "{file}: metadata");
    }
    let (mut a, b) = (metadata_json(&ft.join("export")), metadata_json(&again));
    a.insert("epochs_trained".into(), "2".into());
    a.insert("exported_from".into(), ft.join("checkpoints/last.safetensors").display().to_string().into());
    assert_eq!(a, b, "metadata.json");

    // An earlier checkpoint (the run "interrupted" after epoch 1) exports other numbers into the run's export/
    // (default --out) once --overwrite allows replacing the export there.
    let prev = ft.join("checkpoints/last.prev.safetensors");
    let o = fgssl(&["export", "--from", prev.to_str().unwrap()]);
    assert_clean_failure(&o, Some(1), "already holds an export");
    run(&["export", "--from", prev.to_str().unwrap(), "--overwrite"]);
    let (first, last) = (read_state_dict(&ft.join("export/model.safetensors")).unwrap(), read_state_dict(&again.join("model.safetensors")).unwrap());
    assert_eq!(first.metadata.get("epochs_trained").map(String::as_str), Some("1"));
    assert_eq!(first.tensors.keys().collect::<Vec<_>>(), last.tensors.keys().collect::<Vec<_>>());
    assert_ne!(first.get("classifier_concat.weight"), last.get("classifier_concat.weight"), "epoch 1's weights, not epoch 2's");
    let backbone = read_state_dict(&ft.join("export/backbone.safetensors")).unwrap();
    assert!(backbone.tensors.keys().all(|k| k.starts_with("conv1.") || k.starts_with("bn1.") || k.starts_with("layer")), "torchvision names only");
    assert_eq!(backbone.metadata.get("format").map(String::as_str), Some("torchvision"));
}

#[test]
fn a_linear_probe_checkpoint_exports_with_its_probe_as_fc() {
    let dir = TempDir::new("export-probe");
    let data = dir.join("synth");
    let d = data.to_str().unwrap();
    run(&["synth", "--out", d, "--classes", "2", "--per-class", "12", "--size", "32"]);
    let ft = dir.join("probe");
    let f = ft.to_str().unwrap();
    let cache = dir.join("cache");
    let mut args = vec!["finetune", "--data", d, "--size", "32", "--resize", "32", "--epochs", "2", "--batch-size", "4", "--label-fraction", "0.5"];
    args.extend(["--schedule", "linear-probe", "--out", f, "--cache-dir", cache.to_str().unwrap()]);
    args.extend(TINY);
    run(&args);
    let again = dir.join("again");
    run(&["export", "--from", f, "--out", again.to_str().unwrap()]);
    let (a, b) = (read_state_dict(&ft.join("export/model.safetensors")).unwrap(), read_state_dict(&again.join("model.safetensors")).unwrap());
    assert!(a.get("fc.weight").is_some(), "the run's export holds the probe");
    assert_eq!(a.tensors, b.tensors, "the last probe checkpoint is the run's final model and probe");
    let mut meta = b.metadata.clone();
    assert_eq!(meta.remove("epochs_trained").as_deref(), Some("2"));
    meta.remove("exported_from");
    assert_eq!(a.metadata, meta);
}

#[test]
fn export_errors_name_what_is_wrong() {
    let dir = TempDir::new("export-errors");
    let o = fgssl(&["export", "--from", dir.join("nothing").to_str().unwrap()]);
    assert_clean_failure(&o, Some(1), "no such run folder or checkpoint file");
    let o = fgssl(&["export", "--from", dir.path().to_str().unwrap()]);
    assert_clean_failure(&o, Some(1), "no checkpoints/last.safetensors in this folder");

    // A weights file that is not a checkpoint (here: a torchvision fixture), given an --out.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/resnet18.safetensors");
    let o = fgssl(&["export", "--from", fixture, "--out", dir.join("x").to_str().unwrap()]);
    assert_clean_failure(&o, Some(1), "not an fgssl training checkpoint");
    // Without --out, a file outside a run folder has nowhere to go.
    let o = fgssl(&["export", "--from", fixture]);
    assert_clean_failure(&o, Some(2), "pass --out DIR");
}
