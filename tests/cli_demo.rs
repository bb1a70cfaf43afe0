//! `fgssl demo --quick` end to end (tiny sizes, CPU, seconds): the table, the demo folder, the plots, and that an
//! earlier demo or a foreign folder is never reused or deleted silently.

use std::path::Path;

mod support;
use support::{assert_clean_failure, fgssl, stderr, TempDir};

fn png_size(path: &Path) -> (u32, u32) {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8().dimensions()
}

#[test]
fn quick_demo_prints_its_table_and_writes_run_folders_with_plots() {
    let dir = TempDir::new("demo");
    let out = dir.join("demo");
    let o = fgssl(&["demo", "--quick", "--device", "cpu", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "demo failed:\n{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let table_start = stdout.find("method ").unwrap_or_else(|| panic!("no table:\n{stdout}"));
    let rows: Vec<&str> = stdout[table_start..].lines().take(3).collect();
    assert!(rows[0].contains("accuracy") && rows[0].contains("balanced acc") && rows[0].contains("macro AUC") && rows[0].contains("wall time"));
    assert!(rows[1].starts_with("FG-SSL pretrained") && rows[1].contains("pretraining"), "{rows:?}");
    assert!(rows[2].starts_with("from scratch"), "{rows:?}");
    assert!(stdout.contains("FG-SSL pretrained vs from scratch: test accuracy"), "{stdout}");
    assert!(stdout.contains("not the method's merit"), "the demo makes no claim:\n{stdout}");
    let err = stderr(&o);
    for step in ["demo 1/4", "demo 2/4", "demo 3/4", "demo 4/4"] {
        assert!(err.contains(step), "{step} missing:\n{err}");
    }

    // demo.json holds the table's numbers, which are the runs' own test metrics.
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("demo.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "done");
    let results = summary["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        let run = Path::new(r["run"].as_str().unwrap());
        let events: Vec<serde_json::Value> =
            std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let test = events.iter().rev().find(|e| e["kind"] == "eval" && e["split"] == "test").unwrap();
        assert_eq!(r["test"]["accuracy"], test["metrics"]["accuracy"], "{run:?}");
        let acc = r["test"]["accuracy"].as_f64().unwrap();
        assert!(rows.iter().any(|row| row.starts_with(r["method"].as_str().unwrap()) && row.contains(&format!("{acc:.3}"))), "{rows:?}");
        assert!(run.join("export/model.safetensors").is_file());
        for plot in [
            "loss_per_iteration.png",
            "loss_per_epoch.png",
            "validation_curves.png",
            "eval_metrics.png",
            "per_class_recall.png",
            "confusion_matrix_test.png",
        ] {
            let (w, h) = png_size(&run.join("plots").join(plot));
            assert!(w >= 400 && h >= 300, "{plot}: {w}x{h}");
        }
    }
    let ssl = out.join("pretrain");
    assert_eq!(png_size(&ssl.join("plots/collapse_monitor.png")), (960, 560));
    let ft_config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("finetune-ssl/config.json")).unwrap()).unwrap();
    assert_eq!(ft_config["run"]["init"].as_str(), Some(ssl.to_str().unwrap()), "fine-tuned from the pretraining run");
    let scratch_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("finetune-scratch/config.json")).unwrap()).unwrap();
    assert!(scratch_config["run"]["init"].is_null());
    assert_eq!(ft_config["training"], scratch_config["training"], "both arms share every training setting");

    // `fgssl plot` draws a run's plots again from its metrics.
    std::fs::remove_dir_all(ssl.join("plots")).unwrap();
    let o = fgssl(&["plot", "--run", ssl.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for plot in ["loss_per_iteration.png", "loss_per_epoch.png", "collapse_monitor.png"] {
        assert_eq!(png_size(&ssl.join("plots").join(plot)), (960, 560), "{plot}");
    }
    assert_clean_failure(&fgssl(&["plot", "--run", out.join("data").to_str().unwrap()]), Some(1), "no metrics.jsonl");

    // Running again refuses to reuse the folder; --overwrite starts afresh.
    let o = fgssl(&["demo", "--quick", "--device", "cpu", "--out", out.to_str().unwrap()]);
    assert_clean_failure(&o, Some(1), "holds an earlier demo; pass --overwrite");
    std::fs::write(out.join("stale.txt"), "from before").unwrap();
    let o = fgssl(&["demo", "--quick", "--device", "cpu", "--overwrite", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.join("stale.txt").exists(), "--overwrite deletes the earlier demo");
}

#[test]
fn a_folder_that_is_not_a_demo_is_never_deleted() {
    let dir = TempDir::new("demo-foreign");
    std::fs::write(dir.join("precious.txt"), "keep me").unwrap();
    let o = fgssl(&["demo", "--quick", "--device", "cpu", "--overwrite", "--out", dir.path().to_str().unwrap()]);
    assert_clean_failure(&o, Some(1), "holds no demo");
    assert_eq!(std::fs::read_to_string(dir.join("precious.txt")).unwrap(), "keep me");
}
