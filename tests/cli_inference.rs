//! `fgssl predict`, `fgssl eval` and `fgssl knn` on a tiny synthetic data set (CPU), their error paths, and the
//! k-NN routine on hand-made features.

use std::collections::BTreeMap;
use std::path::Path;

use fgssl::training::knn::{knn_predict, knn_votes, top1, KnnConfig, Vote};

mod support;
use support::{assert_clean_failure, fgssl, stderr, tiny_synth, TempDir, TINY};

/// predict and eval take the evaluation view (finetune's --size 32 and --resize 36) from the model's metadata.
const VIEW: &[&str] = &["--device", "cpu"];

fn run(args: &[&str]) -> std::process::Output {
    let o = fgssl(args);
    assert!(o.status.success(), "fgssl {args:?} failed:\n{}", stderr(&o));
    o
}

/// Fine-tunes the tiny model for one epoch; returns the exported weights file.
fn finetune(dir: &TempDir, data: &str, cache: &str) -> String {
    let out = dir.join("ft");
    let mut args = vec!["finetune", "--data", data, "--size", "32", "--resize", "36", "--epochs", "1", "--batch-size", "4"];
    args.extend(["--cache-dir", cache, "--out", out.to_str().unwrap()]);
    args.extend(TINY);
    run(&args);
    out.join("export/model.safetensors").to_string_lossy().into_owned()
}

/// Pretrains the tiny model for one epoch; returns the run folder.
fn pretrain(dir: &TempDir, data: &str, cache: &str) -> std::path::PathBuf {
    let out = dir.join("ssl");
    let mut args = vec!["pretrain", "--data", data, "--size", "32", "--epochs", "1", "--batch-size", "8", "--cache-dir", cache];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(TINY);
    run(&args);
    out
}

/// A CSV without quoted fields: header and rows.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    let header = lines.next().unwrap();
    (header, lines.collect())
}

#[test]
fn predict_writes_probabilities_that_agree_with_eval() {
    let dir = TempDir::new("predict-eval");
    let data = tiny_synth(&dir);
    let cache = dir.join("cache");
    let c = cache.to_str().unwrap();
    let weights = finetune(&dir, &data, c);

    let preds = dir.join("test.csv");
    let mut args = vec!["predict", "--weights", &weights, "--data", &data, "--split", "test", "--cache-dir", c, "--out", preds.to_str().unwrap()];
    args.extend(VIEW);
    run(&args);
    let (header, rows) = read_csv(&preds);
    assert_eq!(header, ["id", "label", "prediction", "globular", "reticular"], "generic layout with the model's classes");
    let mut hits = 0;
    for row in &rows {
        assert_eq!(row.len(), 5, "{row:?}");
        let p: Vec<f64> = row[3..].iter().map(|v| v.parse().unwrap()).collect();
        assert!(p.iter().all(|&v| (0.0..=1.0).contains(&v)), "{row:?}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "probabilities sum to {}: {row:?}", p.iter().sum::<f64>());
        let argmax = if p[1] > p[0] { "reticular" } else { "globular" };
        assert_eq!(row[2], argmax, "the prediction is the most probable class: {row:?}");
        assert!(row[0].starts_with(&format!("{}/", row[1])), "ImageFolder ids start with the true class: {row:?}");
        hits += usize::from(row[1] == row[2]);
    }

    let json = dir.join("eval.json");
    let mut args = vec!["eval", "--weights", &weights, "--data", &data, "--split", "test", "--cache-dir", c, "--json", json.to_str().unwrap()];
    args.extend(VIEW);
    let o = run(&args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("accuracy") && out.contains("confusion matrix") && out.contains("concat head alone"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let n = v["metrics"]["n"].as_u64().unwrap() as usize;
    assert_eq!(n, rows.len(), "eval and predict score the same test split");
    assert_eq!(n, 8);
    let accuracy = v["metrics"]["accuracy"].as_f64().unwrap();
    assert!((accuracy - hits as f64 / n as f64).abs() < 1e-12, "eval accuracy {accuracy} vs {hits}/{n} from the CSV");
    assert!(v["concat_head"]["accuracy"].as_f64().is_some());
    assert_eq!(v["split"], "test");

    // Every image of the data set, and loose files (a folder and a file, decoded on the fly: no cache needed).
    let all = dir.join("all.csv");
    // The run folder stands for its export/model.safetensors.
    let run_dir = dir.join("ft");
    let mut args = vec!["predict", "--weights", run_dir.to_str().unwrap(), "--data", &data, "--cache-dir", c, "--out", all.to_str().unwrap()];
    args.extend(VIEW);
    run(&args);
    assert_eq!(read_csv(&all).1.len(), 24);
    let loose = dir.join("loose.csv");
    let (folder, file) = (format!("{data}/globular"), format!("{data}/reticular/0000.png"));
    let mut args = vec!["predict", "--weights", &weights, "--data", &folder, &file, "--out", loose.to_str().unwrap()];
    args.extend(VIEW);
    run(&args);
    let (_, rows) = read_csv(&loose);
    assert_eq!(rows.len(), 13, "12 images of the folder and the file");
    assert!(rows.iter().all(|r| r[1].is_empty()), "loose files have no label");
    // The same image gives the same probabilities through the cache and through on-the-fly decoding (the same
    // pixels; only the batch around it differs, which may move the last bits of the CPU GEMMs).
    let from_all = read_csv(&all).1.into_iter().find(|r| r[0] == "reticular/0000.png").unwrap();
    let from_loose = rows.iter().find(|r| r[0].ends_with("reticular/0000.png")).unwrap();
    for (a, b) in from_all[3..].iter().zip(&from_loose[3..]) {
        let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
        assert!((a - b).abs() < 1e-5, "{from_all:?} vs {from_loose:?}");
    }
}

#[test]
fn knn_runs_on_a_pretrain_run_and_a_bare_backbone_file() {
    let dir = TempDir::new("knn");
    let data = tiny_synth(&dir);
    let cache = dir.join("cache");
    let c = cache.to_str().unwrap();
    // The run folder (its export/backbone.safetensors is read).
    let ssl = pretrain(&dir, &data, c);

    // A torchvision-style file: the backbone tensors only, no metadata (the architecture is inferred).
    let sd = fgssl::weights::read_state_dict(&ssl.join("export/model.safetensors")).unwrap();
    let backbone: Vec<_> =
        sd.tensors.iter().filter(|(k, _)| !k.contains("conv_block") && !k.contains("projector")).map(|(k, t)| (k.clone(), t.clone())).collect();
    let bare = dir.join("backbone.safetensors");
    fgssl::weights::write_safetensors(&bare, &backbone, &BTreeMap::new()).unwrap();

    for (weights, vote) in [(&ssl, "weighted"), (&bare, "majority")] {
        let json = dir.join("knn.json");
        let mut args = vec!["knn", "--weights", weights.to_str().unwrap(), "--data", &data, "--cache-dir", c, "--vote", vote];
        args.extend(["--json", json.to_str().unwrap()]);
        args.extend(VIEW);
        let o = run(&args);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("val: top-1") && out.contains("test: top-1"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["arch"], "resnet18");
        assert_eq!(v["k"], 14, "k = 20 capped at the 14 training images");
        assert_eq!(v["vote"], vote);
        assert_eq!(v["results"]["test"]["n"], 8);
        let acc = v["results"]["test"]["top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc) && (acc * 8.0).fract() == 0.0, "a count of 8: {acc}");
    }
    assert!(stderr(&fgssl(&["knn", "--weights", bare.to_str().unwrap(), "--data", &data, "--cache-dir", c, "--size", "32", "--device", "cpu"]))
        .contains("its tensors fit resnet18"));
}

#[test]
fn inference_commands_fail_cleanly_on_unusable_weights() {
    let dir = TempDir::new("inference-errors");
    let data = tiny_synth(&dir);
    let cache = dir.join("cache");
    let c = cache.to_str().unwrap();
    let weights = finetune(&dir, &data, c);
    let out = dir.join("p.csv");
    let o = out.to_str().unwrap();
    let predict = |w: &str, extra: &[&str]| {
        let mut a = vec!["predict", "--weights", w, "--data", &data, "--cache-dir", c, "--out", o, "--resize", "36", "--device", "cpu"];
        if !extra.contains(&"--size") {
            a.extend(["--size", "32"]);
        }
        a.extend(extra);
        fgssl(&a)
    };

    // A pretraining output: no classifiers.
    let ssl = pretrain(&dir, &data, c).join("export/model.safetensors");
    assert_clean_failure(&predict(ssl.to_str().unwrap(), &[]), Some(1), "has no classifiers");
    let mut a = vec!["eval", "--weights", ssl.to_str().unwrap(), "--data", &data, "--cache-dir", c];
    a.extend(VIEW);
    assert_clean_failure(&fgssl(&a), Some(1), "fgssl finetune --init");

    // The fine-tuned tensors without their metadata.
    let sd = fgssl::weights::read_state_dict(Path::new(&weights)).unwrap();
    let tensors: Vec<_> = sd.tensors.iter().map(|(k, t)| (k.clone(), t.clone())).collect();
    let bare = dir.join("no-metadata.safetensors");
    fgssl::weights::write_safetensors(&bare, &tensors, &BTreeMap::new()).unwrap();
    assert_clean_failure(&predict(bare.to_str().unwrap(), &[]), Some(1), "has no fgssl metadata");
    // ... which --arch makes readable again (F, P and K come from the tensors).
    let o2 = predict(bare.to_str().unwrap(), &["--arch", "resnet18"]);
    assert!(o2.status.success(), "{}", stderr(&o2));

    // Another architecture: a missing key (resnet34 is deeper) or a wrong shape (resnet50's bottlenecks).
    assert_clean_failure(&predict(&weights, &["--arch", "resnet34"]), Some(1), "layer1.2.conv1.weight");
    assert_clean_failure(&predict(&weights, &["--arch", "resnet50"]), Some(1), "'layer1.0.conv1.weight' has shape [64, 64, 3, 3]");
    assert_clean_failure(&predict(&weights, &["--arch", "resnet50"]), Some(1), "which says resnet18");
    // Class names that are not the classifier's, a missing file, a crop larger than the resize.
    assert_clean_failure(&predict(&weights, &["--class-names", "a,b,c"]), Some(1), "3 class names");
    assert_clean_failure(&predict(dir.join("missing.safetensors").to_str().unwrap(), &[]), Some(1), "missing.safetensors");
    assert_clean_failure(&predict(&weights, &["--size", "40"]), Some(1), "--size 40");
    std::fs::remove_file(&out).unwrap();
    // Files that are not images: the decoder's error names the file, and no CSV is left behind.
    let junk = dir.join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    let mut a = vec!["predict", "--weights", &weights, "--data", junk.to_str().unwrap(), "--out", o];
    a.extend(VIEW);
    assert_clean_failure(&fgssl(&a), Some(1), "junk.png");
    // Eval refuses a data set whose classes are not the model's.
    let mut a = vec!["eval", "--weights", &weights, "--data", &data, "--cache-dir", c, "--class-names", "x,y"];
    a.extend(VIEW);
    assert_clean_failure(&fgssl(&a), Some(1), "are not the data set's");
    assert!(!out.exists(), "failed runs write no CSV");
}

/// Two well-separated clusters on the unit circle: every query goes to its own cluster.
#[test]
fn knn_classifies_separable_features() {
    let reference = [1.0, 0.0, 0.9, 0.1, 2.0, 0.1, 0.0, 1.0, 0.1, 0.9, 0.1, 3.0];
    let labels = [0, 0, 0, 1, 1, 1];
    let queries = [5.0, 0.2, 0.2, 5.0, 0.0, 0.0];
    for vote in [Vote::Majority, Vote::Weighted { temperature: 0.07 }] {
        let cfg = KnnConfig { k: 3, vote };
        let p = knn_predict(&reference, &labels, &queries, 2, 2, &cfg).unwrap();
        // The zero vector is equally (un)similar to everything: the tie goes to class 0.
        assert_eq!(p, [0, 1, 0], "{vote:?}");
        assert_eq!(top1(&p, &[0, 1, 1]), 2.0 / 3.0);
    }
    // k larger than the reference set: all six vote, three each, and the tie goes to the lower class.
    let p = knn_predict(&reference, &labels, &[1.0, 1.0], 2, 2, &KnnConfig { k: 100, vote: Vote::Majority }).unwrap();
    assert_eq!(p, [0]);
}

/// Weighting matters: one very similar neighbour of class 1 outvotes two distant ones of class 0 (T = 0.07), but
/// not under a majority vote. The votes are exp(cos / T) by hand.
#[test]
fn knn_weighted_vote_follows_solo_learn() {
    let reference = [1.0, 0.0, 0.0, 1.0, 0.0, -1.0, -1.0, 0.0];
    let labels = [1, 0, 0, 1];
    let query = [1.0, 0.1f32];
    let weighted = KnnConfig { k: 3, vote: Vote::Weighted { temperature: 0.07 } };
    let votes = knn_votes(&reference, &labels, &query, 2, 2, &weighted).unwrap();
    let y = query[1] as f64;
    let n = (1.0 + y * y).sqrt();
    let (c_near, c_up, c_down) = (1.0 / n, y / n, -y / n);
    let expect = [(c_up / 0.07).exp() + (c_down / 0.07).exp(), (c_near / 0.07).exp()];
    for (v, e) in votes.iter().zip(expect) {
        assert!((v - e).abs() <= 1e-12 * e, "{votes:?} vs {expect:?}");
    }
    assert_eq!(knn_predict(&reference, &labels, &query, 2, 2, &weighted).unwrap(), [1]);
    assert_eq!(knn_predict(&reference, &labels, &query, 2, 2, &KnnConfig { k: 3, vote: Vote::Majority }).unwrap(), [0]);
    assert_eq!(KnnConfig::default(), KnnConfig { k: 20, vote: Vote::Weighted { temperature: 0.07 } });
}

#[test]
fn knn_rejects_bad_inputs() {
    let r = [1.0, 0.0, 0.0, 1.0];
    let ok = KnnConfig::default();
    let err = |res: fgssl::Result<Vec<usize>>| res.unwrap_err().to_string();
    assert!(err(knn_predict(&r, &[0], &r, 2, 2, &ok)).contains("1 labels for 2 reference rows"));
    assert!(err(knn_predict(&r, &[0, 2], &r, 2, 2, &ok)).contains("label 2 out of range"));
    assert!(err(knn_predict(&r, &[0, 1], &r[..3], 2, 2, &ok)).contains("not whole rows"));
    assert!(err(knn_predict(&[], &[], &r, 2, 2, &ok)).contains("empty"));
    assert!(err(knn_predict(&r, &[0, 1], &r, 2, 2, &KnnConfig { k: 0, ..ok })).contains("k must be"));
    assert!(err(knn_predict(&r, &[0, 1], &r, 2, 2, &KnnConfig { k: 1, vote: Vote::Weighted { temperature: 0.0 } })).contains("temperature"));
    assert!(err(knn_predict(&r, &[0, 1], &[f32::NAN, 0.0], 2, 2, &ok)).contains("NaN"));
}
