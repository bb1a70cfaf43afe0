//! The synthetic fine-grained lesion data set (`fgssl synth`): determinism, folder layout, CLI errors, and the
//! property it exists for: colour statistics do not depend on the class, only local texture does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use fgssl::data::synth::{self, HistDistance, SynthConfig, Texture, MANIFEST};
use fgssl::data::ImageSource;
use image::RgbImage;

mod support;
use support::{assert_clean_failure, fgssl, stderr, TempDir};

/// Every file under `dir`, by relative path, with its bytes.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn synth_cli(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["synth", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    fgssl(&args)
}

#[test]
fn cli_writes_an_image_folder_with_the_requested_layout() {
    let tmp = TempDir::new("layout");
    let out = tmp.path().join("nested/synth");
    let o = synth_cli(&out, &["--classes", "3", "--per-class", "5", "--size", "40", "--seed", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("wrote 15 images"));

    let tree = read_tree(&out);
    let mut classes: Vec<&str> = tree.keys().filter_map(|k| k.split_once('/').map(|(c, _)| c)).collect();
    classes.dedup();
    assert_eq!(classes, ["globular", "reticular", "streaks"]);
    assert!(tree.contains_key(MANIFEST));
    assert_eq!(tree.len(), 3 * 5 + 1);
    for c in &classes {
        for i in 0..5 {
            let name = format!("{c}/{i:04}.png");
            let img = image::load_from_memory(&tree[&name]).unwrap_or_else(|e| panic!("{name}: {e}")).to_rgb8();
            assert_eq!(img.dimensions(), (40, 40), "{name}");
        }
    }
    let manifest: serde_json::Value = serde_json::from_slice(&tree[MANIFEST]).unwrap();
    assert_eq!(manifest["classes"], serde_json::json!(["reticular", "globular", "streaks"]));
    assert_eq!(manifest["seed"], 7);
    // The temporary folder is gone.
    let siblings: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(siblings, ["synth"]);
    // The files are what the library renders.
    assert_eq!(image::load_from_memory(&tree["streaks/0003.png"]).unwrap().to_rgb8(), synth::render(7, 2, 3, 40));
}

#[test]
fn library_returns_the_dataset_it_wrote() {
    let tmp = TempDir::new("dataset");
    let out = tmp.path().join("d");
    let cfg = SynthConfig { classes: 2, per_class: 3, size: 32, seed: 1 };
    let ds = synth::write_image_folder(&out, &cfg, false).unwrap();
    assert_eq!(ds.class_names, ["reticular", "globular"]);
    assert_eq!(ds.root, out);
    assert_eq!(ds.samples.len(), 6);
    for (k, s) in ds.samples.iter().enumerate() {
        assert_eq!(s.label, Some(k / 3));
        assert_eq!(s.id, format!("{}/{:04}.png", ds.class_names[k / 3], k % 3));
        assert_eq!(s.source, ImageSource::File(out.join(&s.id)));
        assert!(out.join(&s.id).is_file());
    }
}

#[test]
fn same_seed_gives_byte_identical_files_and_another_seed_differs() {
    let tmp = TempDir::new("determinism");
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let args = ["--classes", "4", "--per-class", "6", "--size", "48"];
    for (dir, seed) in [(&a, "3"), (&b, "3"), (&c, "4")] {
        let o = synth_cli(dir, &[&args[..], &["--seed", seed][..]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (ta, tb, tc) = (read_tree(&a), read_tree(&b), read_tree(&c));
    assert_eq!(ta, tb, "same seed, different bytes");
    assert_eq!(ta.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
    let differing = ta.iter().filter(|(k, v)| k.ends_with(".png") && tc[*k] != **v).count();
    assert_eq!(differing, 24, "every image should change with the seed");
    // Images within one data set are all distinct.
    let mut pngs: Vec<&Vec<u8>> = ta.iter().filter(|(k, _)| k.ends_with(".png")).map(|(_, v)| v).collect();
    pngs.sort();
    pngs.dedup();
    assert_eq!(pngs.len(), 24);
    // The in-memory renderer is independent of the thread pool and of order.
    let cfg = SynthConfig { classes: 4, per_class: 6, size: 48, seed: 3 };
    let (images, labels) = synth::generate_images(&cfg).unwrap();
    assert_eq!(labels, (0..24).map(|k| k / 6).collect::<Vec<_>>());
    assert_eq!(images[23], synth::render(3, 3, 5, 48));
}

#[test]
fn cli_rejects_bad_options_without_panicking() {
    let tmp = TempDir::new("errors");
    let out = tmp.path().join("o");
    for (flag, value, needle) in [
        ("--classes", "7", "2 to 6 classes"),
        ("--classes", "1", "2 to 6 classes"),
        ("--classes", "0", "2 to 6 classes"),
        ("--per-class", "0", "--per-class 0"),
        ("--size", "8", "--size 8"),
        ("--size", "5000", "--size 5000"),
    ] {
        let o = synth_cli(&out, &[flag, value]);
        assert_clean_failure(&o, Some(2), needle);
        assert!(!out.exists(), "{flag} {value}: nothing should be written");
    }
    let o = synth_cli(&out, &["--classes", "four"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn existing_non_empty_output_is_refused_unless_forced() {
    let tmp = TempDir::new("existing");
    let out = tmp.path().join("o");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("precious.txt"), "keep me").unwrap();
    let o = synth_cli(&out, &["--per-class", "2", "--size", "32"]);
    assert_clean_failure(&o, Some(1), "not empty");
    assert!(stderr(&o).contains(out.to_str().unwrap()), "the error names the folder");
    assert_eq!(std::fs::read_to_string(out.join("precious.txt")).unwrap(), "keep me");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "no temporary folder is left behind");

    // A file in the way is an error too.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert_clean_failure(&synth_cli(&file, &["--per-class", "2", "--size", "32"]), Some(1), "not a folder");

    // An existing empty folder is fine; --force replaces a non-empty one.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(synth_cli(&empty, &["--per-class", "2", "--size", "32"]).status.success());
    let o = synth_cli(&out, &["--per-class", "2", "--size", "32", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.join("precious.txt").exists());
    assert_eq!(read_tree(&out), read_tree(&empty));
}

fn mean_rgb(img: &RgbImage) -> [f64; 3] {
    let mut m = [0.0; 3];
    for p in img.pixels() {
        for (acc, &v) in m.iter_mut().zip(&p.0) {
            *acc += v as f64;
        }
    }
    let n = (img.width() * img.height()) as f64;
    m.map(|v| v / n)
}

fn std(xs: &[f64]) -> f64 {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// Per channel: (standard deviation of the class means, mean within-class standard deviation) of the images'
/// mean colours. `means[class][image]`.
fn between_and_within(means: &[Vec<[f64; 3]>]) -> [(f64, f64); 3] {
    std::array::from_fn(|c| {
        let class_means: Vec<f64> = means.iter().map(|m| m.iter().map(|v| v[c]).sum::<f64>() / m.len() as f64).collect();
        let within = means.iter().map(|m| std(&m.iter().map(|v| v[c]).collect::<Vec<_>>())).sum::<f64>() / means.len() as f64;
        (std(&class_means), within)
    })
}

/// Multiplies every pixel by a colour tint: a class made distinctive by colour.
fn tint(img: &RgbImage, t: [f32; 3]) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for (v, &k) in p.0.iter_mut().zip(&t) {
            *v = (*v as f32 * k).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The data set as generated: class means of the image colours differ far less than images within a class do,
/// and a colour-histogram 1-NN classifier is near chance. The same checks flag a class given a distinctive tint.
#[test]
fn colour_statistics_do_not_depend_on_the_class() {
    let cfg = SynthConfig { classes: 6, per_class: 120, size: 32, seed: 11 };
    let (images, labels) = synth::generate_images(&cfg).unwrap();
    let per_class = |imgs: &[RgbImage]| -> Vec<Vec<[f64; 3]>> {
        (0..cfg.classes).map(|k| imgs.iter().zip(&labels).filter(|(_, &l)| l == k).map(|(im, _)| mean_rgb(im)).collect()).collect()
    };
    for (c, (between, within)) in between_and_within(&per_class(&images)).into_iter().enumerate() {
        eprintln!("channel {c}: class means spread {between:.3}, within-class spread {within:.3}");
        // With no class effect the class means scatter by within / sqrt(120) ~ 0.09 within.
        assert!(between < 0.2 * within, "channel {c}: class means spread {between:.2}, within-class spread {within:.2}");
    }
    let (train, test) = synth::stratified_split(&labels, 0.5, 0);
    let chance = 1.0 / cfg.classes as f64;
    let acc = synth::histogram_nn_accuracy(&images, &labels, &train, &test, 8, HistDistance::ChiSquare);
    eprintln!("colour-histogram 1-NN accuracy {acc:.3}, chance {chance:.3}");
    assert!(acc < chance + 0.08, "colour-histogram 1-NN accuracy {acc:.3} vs chance {chance:.3}");

    // Control: a class 8% redder and 8% less blue is caught by both checks.
    let tinted: Vec<RgbImage> = images.iter().zip(&labels).map(|(im, &l)| if l == 2 { tint(im, [1.08, 1.0, 0.92]) } else { im.clone() }).collect();
    let [(between_r, within_r), _, _] = between_and_within(&per_class(&tinted));
    eprintln!("tinted: red class means spread {between_r:.3}, within {within_r:.3}");
    assert!(between_r > 0.2 * within_r, "control: the tint should be detected ({between_r:.2} vs {within_r:.2})");
    let acc = synth::histogram_nn_accuracy(&tinted, &labels, &train, &test, 8, HistDistance::ChiSquare);
    eprintln!("tinted: 1-NN accuracy {acc:.3}");
    assert!(acc > chance + 0.08, "control: 1-NN should pick up the tinted class ({acc:.3})");
}

/// Paired: with the nuisance held fixed, changing the class only rearranges pigment inside the lesion. The image's
/// mean colour barely moves (far less than it varies between nuisance draws), the corners of the image (always
/// skin: a lesion never reaches them) are untouched.
#[test]
fn with_the_nuisance_fixed_the_class_only_moves_pixels_inside_the_lesion() {
    let size = 64;
    let mut shift = [0.0f64; 3]; // mean over keys of the largest |class mean - average over classes|
    let mut per_key_means: Vec<[f64; 3]> = Vec::new();
    for key in 0..40u64 {
        let imgs: Vec<RgbImage> = Texture::ALL.iter().map(|&t| synth::render_keyed(1000 + key, 5000 + key, t, size)).collect();
        let means: Vec<[f64; 3]> = imgs.iter().map(mean_rgb).collect();
        for c in 0..3 {
            let avg = means.iter().map(|m| m[c]).sum::<f64>() / means.len() as f64;
            shift[c] += means.iter().map(|m| (m[c] - avg).abs()).fold(0.0, f64::max) / 40.0;
        }
        per_key_means.push(means[0]);
        for img in &imgs[1..] {
            let far = size as u32 - 2;
            for (x, y) in [(0, 0), (1, 1), (far, 0), (0, far), (far, far), (far + 1, far + 1)] {
                assert_eq!(img.get_pixel(x, y), imgs[0].get_pixel(x, y), "key {key}: corner pixel ({x}, {y}) changed");
            }
        }
    }
    for c in 0..3 {
        let nuisance = std(&per_key_means.iter().map(|m| m[c]).collect::<Vec<_>>());
        eprintln!("channel {c}: class shift {:.3}, nuisance spread {nuisance:.3}", shift[c]);
        assert!(shift[c] < 0.05 * nuisance, "channel {c}: class moves the mean colour by {:.3}, nuisance by {nuisance:.3}", shift[c]);
    }
}

#[test]
fn sample_grid_has_one_row_per_class() {
    let grid = synth::sample_grid(0, 4, 6, 64, 2).unwrap();
    assert_eq!(grid.dimensions(), (6 * 64 + 7 * 2, 4 * 64 + 5 * 2));
    let tile = image::imageops::crop_imm(&grid, 2 + 66 * 5, 2 + 66 * 3, 64, 64).to_image();
    assert_eq!(tile, synth::render(0, 3, 5, 64));
    assert!(synth::sample_grid(0, 9, 6, 64, 2).is_err());
}
