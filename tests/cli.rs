//! End-to-end tests of the `fgssl` binary: `embed` and `info` on generated images and weights, and the error
//! paths a user hits first (corrupt image, wrong architecture, empty folder, missing file, unavailable device).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fgssl::backend::cpu::Cpu;
use fgssl::imaging;
use fgssl::model::resnet::{Arch, ResNet};
use fgssl::model::{HostState, Registry, State};
use fgssl::rng::Rng;
use fgssl::tensor::Tensor;
use fgssl::weights::{write_safetensors, HostTensor};

mod support;
use support::{assert_clean_failure, fgssl, stderr, TempDir};

/// A randomly initialised model whose batch-norm statistics are not the identity, so evaluation mode matters.
fn random_model(arch: Arch, seed: u64) -> (ResNet, Registry, HostState) {
    let (net, reg) = ResNet::new(arch, None, false);
    let mut host = HostState::init(&reg, seed);
    let mut rng = Rng::new(seed + 1);
    for e in &reg.buffers.entries {
        let (lo, hi) = if e.name.ends_with("running_var") { (0.5, 1.5) } else { (-0.1, 0.1) };
        for v in &mut host.buffers[e.range.clone()] {
            *v = rng.uniform_in(lo, hi);
        }
    }
    for e in &reg.params.entries {
        if e.name.contains("bn") || e.name.contains("downsample.1") {
            let (lo, hi) = if e.name.ends_with("weight") { (0.5, 1.5) } else { (-0.1, 0.1) };
            for v in &mut host.params[e.range.clone()] {
                *v = rng.uniform_in(lo, hi);
            }
        }
    }
    host.batches_tracked.iter_mut().enumerate().for_each(|(i, c)| *c = i as i64);
    (net, reg, host)
}

/// Writes a model as a torchvision-style state dict, plus an `fc` layer that `embed` must ignore.
fn write_model(path: &Path, reg: &Registry, host: &HostState) {
    let mut tensors = reg.state_dict(host);
    tensors.push(("fc.weight".into(), HostTensor::f32(&[3, 512], vec![0.01; 3 * 512])));
    tensors.push(("fc.bias".into(), HostTensor::f32(&[3], vec![0.0; 3])));
    write_safetensors(path, &tensors, &BTreeMap::new()).unwrap();
}

fn write_png(path: &Path, w: u32, h: u32, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut rng = Rng::new(seed);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = rng.below(64) as u32;
        image::Rgb([((x * 7 + n) % 256) as u8, ((y * 5 + n) % 256) as u8, ((x * y + n) % 256) as u8])
    });
    img.save_with_format(path, image::ImageFormat::Png).unwrap();
}

/// Parses the CSV `embed` writes (paths here contain no commas or quotes).
fn read_csv(path: &Path) -> (String, Vec<String>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let (mut names, mut rows) = (Vec::new(), Vec::new());
    for l in lines {
        let mut fields = l.split(',');
        names.push(fields.next().unwrap().to_string());
        rows.push(fields.map(|v| v.parse::<f32>().unwrap()).collect());
    }
    (header, names, rows)
}

const SIZE: usize = 32;

#[test]
fn embed_writes_sorted_rows_equal_to_the_library_forward() {
    let tmp = TempDir::new("embed");
    let data = tmp.path().join("data");
    // Unsorted creation order, nested folders, mixed-case extensions, sizes that need resizing and one that does not.
    write_png(&data.join("b/img2.png"), 40, 30, 1);
    write_png(&data.join("a.PNG"), 32, 32, 2);
    write_png(&data.join("b/img10.png"), 50, 64, 3);
    write_png(&data.join("c/d/e.png"), 17, 23, 4);
    write_png(&data.join("b/img1.png"), 33, 31, 5);
    std::fs::write(data.join("b/notes.txt"), "not an image").unwrap();

    let (net, reg, host) = random_model(Arch::ResNet18, 7);
    let weights = tmp.path().join("r18.safetensors");
    write_model(&weights, &reg, &host);
    let out = tmp.path().join("feats.csv");
    let o = fgssl(&[
        "embed",
        "--arch",
        "resnet18",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        &SIZE.to_string(),
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "embed failed:\n{err}");
    assert!(err.contains("device: cpu"), "the device is printed:\n{err}");
    assert!(err.contains("loaded") && err.contains("fc.weight"), "the load report is printed:\n{err}");
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".tmp");
    assert!(!PathBuf::from(tmp_name).exists(), "the temporary CSV is renamed away");

    let (header, names, rows) = read_csv(&out);
    let expected_header: Vec<String> = std::iter::once("path".to_string()).chain((0..512).map(|i| format!("f{i}"))).collect();
    assert_eq!(header, expected_header.join(","));
    assert_eq!(names, ["a.PNG", "b/img1.png", "b/img10.png", "b/img2.png", "c/d/e.png"]);
    assert!(rows.iter().all(|r| r.len() == 512));

    // The library's own forward on the same files, same batching.
    let b = Cpu::new();
    let mut st = State::upload(&b, &reg, &host).unwrap();
    let paths = imaging::list_images(&data).unwrap();
    let mut expected = Vec::new();
    for chunk in paths.chunks(2) {
        let mut x = Vec::new();
        for p in chunk {
            x.extend(imaging::load_rgb_normalized(p, SIZE).unwrap());
        }
        let x = Tensor::from_host(&b, [chunk.len(), 3, SIZE, SIZE], &x).unwrap();
        expected.extend(net.embed(&b, &mut st, &x).unwrap().to_host(&b).unwrap());
    }
    let got: Vec<f32> = rows.concat();
    assert_eq!(got.len(), expected.len());
    let mut worst = 0.0f32;
    for (g, e) in got.iter().zip(&expected) {
        worst = worst.max((g - e).abs() / (1.0 + e.abs()));
    }
    assert!(worst <= 1e-6, "CSV features differ from the library forward by {worst}");
    assert!(expected.iter().any(|&v| v != 0.0), "features are not all zero");
}

/// A small resnet18 weights file in `dir`.
fn r18_weights(dir: &Path) -> PathBuf {
    let (_, reg, host) = random_model(Arch::ResNet18, 11);
    let w = dir.join("r18.safetensors");
    write_model(&w, &reg, &host);
    w
}

fn embed_args<'a>(arch: &'a str, weights: &'a str, data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["embed", "--arch", arch, "--weights", weights, "--data", data, "--out", out, "--size", "32"]
}

#[test]
fn corrupt_image_fails_naming_the_file() {
    let tmp = TempDir::new("corrupt");
    let data = tmp.path().join("data");
    write_png(&data.join("good.png"), 32, 32, 1);
    std::fs::write(data.join("broken.png"), b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
    let w = r18_weights(tmp.path());
    let out = tmp.path().join("f.csv");
    let o = fgssl(&embed_args("resnet18", w.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_failure(&o, None, "broken.png");
    assert!(!out.exists(), "no partial CSV is left behind");
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".tmp");
    assert!(!PathBuf::from(tmp_name).exists(), "the temporary CSV is removed");
}

#[test]
fn weights_of_another_architecture_fail_naming_a_key() {
    let tmp = TempDir::new("arch");
    let data = tmp.path().join("data");
    write_png(&data.join("x.png"), 32, 32, 1);
    let w = r18_weights(tmp.path());
    let out = tmp.path().join("f.csv");
    let o = fgssl(&embed_args("resnet50", w.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_failure(&o, None, "layer1.0.conv1.weight");
    assert!(stderr(&o).contains("r18.safetensors"));
    // A shallower architecture than the file: every tensor it needs is there, but the file has extra blocks.
    let (_, reg, host) = random_model(Arch::ResNet34, 3);
    let w34 = tmp.path().join("r34.safetensors");
    write_model(&w34, &reg, &host);
    let o = fgssl(&embed_args("resnet18", w34.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_failure(&o, None, "layer1.2.");
    assert!(!out.exists());
}

#[test]
fn empty_data_dir_fails_naming_it() {
    let tmp = TempDir::new("empty");
    let data = tmp.path().join("no_images_here");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/readme.txt"), "x").unwrap();
    let w = r18_weights(tmp.path());
    let out = tmp.path().join("f.csv");
    let o = fgssl(&embed_args("resnet18", w.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_failure(&o, None, "no_images_here");
    let missing = tmp.path().join("missing_dir");
    let o = fgssl(&embed_args("resnet18", w.to_str().unwrap(), missing.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_failure(&o, None, "missing_dir");
}

#[test]
fn missing_or_invalid_weights_fail_naming_the_file() {
    let tmp = TempDir::new("noweights");
    let data = tmp.path().join("data");
    write_png(&data.join("x.png"), 32, 32, 1);
    let out = tmp.path().join("f.csv");
    let w = tmp.path().join("nope.safetensors");
    let o = fgssl(&embed_args("resnet18", w.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_failure(&o, None, "nope.safetensors");
    let o = fgssl(&["info", w.to_str().unwrap()]);
    assert_clean_failure(&o, None, "nope.safetensors");
    let bad = tmp.path().join("bad.safetensors");
    std::fs::write(&bad, b"PK\x03\x04 a torch.save zip, not safetensors").unwrap();
    let o = fgssl(&["info", bad.to_str().unwrap()]);
    assert_clean_failure(&o, None, "bad.safetensors");
}

#[test]
fn cuda_device_is_a_clear_error_with_code_2() {
    let tmp = TempDir::new("cuda");
    let o = fgssl(&["embed", "--arch", "resnet18", "--weights", "w.safetensors", "--data", ".", "--out", "f.csv", "--device", "cuda:1"]);
    assert_clean_failure(&o, Some(2), "--device cuda:1: ");
    // Which reason depends on the machine: no driver, or no such device.
    let err = stderr(&o);
    let driver_present = fgssl::backend::cuda::probe::driver_present();
    let expected = if driver_present { "CUDA device unavailable" } else { "no CUDA driver on this machine" };
    assert!(err.contains(expected), "unexpected reason:\n{err}");
    let o = fgssl(&["embed", "--arch", "resnet18", "--weights", "w", "--data", ".", "--out", "f", "--device", "tpu"]);
    assert!(!o.status.success() && !stderr(&o).contains("panicked"));
    let o = fgssl(&["embed", "--arch", "resnet99", "--weights", "w", "--data", ".", "--out", "f"]);
    assert!(!o.status.success() && stderr(&o).contains("resnet99"));
    drop(tmp);
}

#[test]
fn info_reports_which_architectures_fit() {
    let tmp = TempDir::new("info");
    let w = r18_weights(tmp.path());
    let o = fgssl(&["info", w.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "info failed:\n{}", stderr(&o));
    assert!(out.contains("layer4.1.conv2.weight") && out.contains("[512, 512, 3, 3]") && out.contains("F32"), "{out}");
    assert!(out.contains("bn1.num_batches_tracked") && out.contains("I64"), "{out}");
    // resnet18 backbone 11,176,512 + fc 3*512+3.
    assert!(out.contains("parameters: 11,178,051"), "{out}");
    let line = |arch: &str| out.lines().find(|l| l.trim_start().starts_with(&format!("{arch}:"))).unwrap_or_default().to_string();
    assert!(line("resnet18").contains("fits") && !line("resnet18").contains("does not fit"), "{out}");
    assert!(line("resnet34").contains("does not fit"), "{out}");
    assert!(line("resnet50").contains("does not fit") && line("resnet50").contains("layer1.0.conv1.weight"), "{out}");
}
