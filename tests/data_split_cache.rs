//! Splits (stratified, grouped, seeded, official, `splits.json`), the decode cache (build, reuse, invalidation,
//! atomicity, batch gather) and the fundus crop, on data sets built here: no loader is involved.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use fgssl::data::cache::{preprocess, CacheOptions, ImageCache, Rgb8};
use fgssl::data::fundus::{crop_fundus, retina_box, CropBox, FundusCrop};
use fgssl::data::split::{label_subset, make_splits, SplitConfig, SplitOrigin, Splits, SPLITS_FILE};
use fgssl::data::{Dataset, ImageSource, Sample, Split};
use fgssl::rng::Rng;
use fgssl::Error;

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fgssl-split-cache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sample(id: &str, label: Option<usize>, group: Option<&str>, official: Option<Split>) -> Sample {
    Sample {
        id: id.to_string(),
        source: ImageSource::File(PathBuf::from(format!("/nonexistent/{id}.png"))),
        label,
        group: group.map(str::to_string),
        official_split: official,
    }
}

fn dataset(format: &str, classes: &[&str], samples: Vec<Sample>) -> Dataset {
    Dataset::new(format, "/data/test", classes.iter().map(|s| s.to_string()).collect(), samples)
}

/// `counts[c]` ungrouped samples of class `c`, ids `c{c}_{i:04}`.
fn plain(counts: &[usize]) -> Dataset {
    let names: Vec<String> = (0..counts.len()).map(|c| format!("class{c}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let samples = counts.iter().enumerate().flat_map(|(c, &n)| (0..n).map(move |i| sample(&format!("c{c}_{i:04}"), Some(c), None, None))).collect();
    dataset("csv", &names, samples)
}

fn ids(ds: &Dataset, idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| ds.samples[i].id.clone()).collect()
}

fn per_class(ds: &Dataset, idx: &[usize]) -> Vec<usize> {
    let mut c = vec![0; ds.class_names.len()];
    for &i in idx {
        c[ds.samples[i].label.unwrap()] += 1;
    }
    c
}

fn err_text<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

// ---- splits ------------------------------------------------------------------------------------------------------

#[test]
fn label_subset_is_stratified_seeded_and_keeps_every_class() {
    let ds = plain(&[100, 50, 20, 3]);
    let all: Vec<usize> = (0..ds.samples.len()).collect();
    let a = label_subset(&ds, &all, 0.1, 7).unwrap();
    assert_eq!(per_class(&ds, &a), vec![10, 5, 2, 1], "10% per class, rounded, at least one");
    assert!(a.windows(2).all(|w| w[0] < w[1]), "kept in the given order");
    assert_eq!(a, label_subset(&ds, &all, 0.1, 7).unwrap(), "same seed, same subset");
    let b = label_subset(&ds, &all, 0.1, 8).unwrap();
    assert_ne!(a, b, "another seed draws another subset");
    // Independent of the order the indices come in.
    let reversed: Vec<usize> = all.iter().rev().copied().collect();
    let mut c = label_subset(&ds, &reversed, 0.1, 7).unwrap();
    c.sort_unstable();
    assert_eq!(a, c);
    // Only labelled samples of the given pool; the whole pool at 1.0.
    assert_eq!(label_subset(&ds, &all[..100], 1.0, 7).unwrap(), all[..100].to_vec());
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        assert!(err_text(label_subset(&ds, &all, bad, 7)).contains("label fraction"), "{bad}");
    }
}

#[test]
fn stratified_proportions_per_class() {
    let ds = plain(&[100, 50, 20, 7]);
    let cfg = SplitConfig::default();
    assert_eq!((cfg.train, cfg.val, cfg.test), (0.6, 0.1, 0.3));
    let s = make_splits(&ds, &cfg).unwrap();
    assert_eq!(s.origin, SplitOrigin::Seeded);
    for (c, &n) in [100usize, 50, 20, 7].iter().enumerate() {
        let got = [per_class(&ds, &s.train)[c], per_class(&ds, &s.val)[c], per_class(&ds, &s.test)[c]];
        assert_eq!(got.iter().sum::<usize>(), n);
        for (k, f) in [cfg.train, cfg.val, cfg.test].iter().enumerate() {
            assert!((got[k] as f64 - f * n as f64).abs() < 1.0, "class {c}: {got:?} vs {n} x {f}");
            assert!(got[k] >= 1);
        }
    }
    // A partition of all samples, each list sorted by id.
    let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
    all.sort();
    assert_eq!(all, (0..ds.samples.len()).collect::<Vec<_>>());
    for l in [&s.train, &s.val, &s.test] {
        let i = ids(&ds, l);
        assert!(i.windows(2).all(|w| w[0] < w[1]));
    }
    // 7:3 without a validation split.
    let s = make_splits(&ds, &SplitConfig { seed: 1, train: 0.7, val: 0.0, test: 0.3 }).unwrap();
    assert!(s.val.is_empty());
    assert_eq!(per_class(&ds, &s.test), vec![30, 15, 6, 2]);
}

#[test]
fn groups_never_cross_splits() {
    // 300 lesions with 1 to 4 images each; a lesion's images share its label, except a few with a minority label.
    let mut rng = Rng::new(5);
    let mut samples = Vec::new();
    for g in 0..300 {
        let label = [0, 0, 0, 1, 1, 2][rng.below(6)];
        for k in 0..1 + rng.below(4) {
            let l = if k == 3 { (label + 1) % 3 } else { label };
            samples.push(sample(&format!("img{g:03}_{k}"), Some(l), Some(&format!("lesion{g:03}")), None));
        }
    }
    let ds = dataset("ham10000", &["a", "b", "c"], samples);
    let s = make_splits(&ds, &SplitConfig::default()).unwrap();
    let mut where_: HashMap<&str, usize> = HashMap::new();
    for (k, l) in [&s.train, &s.val, &s.test].iter().enumerate() {
        for &i in l.iter() {
            let g = ds.samples[i].group.as_deref().unwrap();
            assert_eq!(*where_.entry(g).or_insert(k), k, "group {g} crosses splits");
        }
    }
    let n = ds.samples.len() as f64;
    for (l, f) in [(&s.train, 0.6), (&s.val, 0.1), (&s.test, 0.3)] {
        let got = l.len() as f64 / n;
        assert!((got - f).abs() < 0.03, "fraction {got} vs {f}");
    }
}

#[test]
fn deterministic_and_independent_of_input_order() {
    let mut ds = plain(&[40, 30, 12]);
    for (i, s) in ds.samples.iter_mut().enumerate() {
        if i % 3 == 0 {
            s.group = Some(format!("g{}", i / 6));
        }
    }
    let cfg = SplitConfig::default();
    let a = make_splits(&ds, &cfg).unwrap();
    assert_eq!(a, make_splits(&ds, &cfg).unwrap());
    let named = |ds: &Dataset, s: &Splits| [ids(ds, &s.train), ids(ds, &s.val), ids(ds, &s.test)];

    let mut shuffled = ds.clone();
    let mut rng = Rng::new(99);
    for j in (1..shuffled.samples.len()).rev() {
        shuffled.samples.swap(j, rng.below(j + 1));
    }
    let b = make_splits(&shuffled, &cfg).unwrap();
    assert_eq!(named(&ds, &a), named(&shuffled, &b));

    let c = make_splits(&ds, &SplitConfig { seed: 19, ..cfg }).unwrap();
    assert_ne!(named(&ds, &a), named(&ds, &c), "another seed gives another split");
}

#[test]
fn official_splits_are_honoured() {
    let mut samples = Vec::new();
    for (k, split) in [Split::Train, Split::Val, Split::Test].into_iter().enumerate() {
        for i in 0..6 {
            samples.push(sample(&format!("s{k}_{i}"), Some(i % 2), None, Some(split)));
        }
    }
    samples.push(sample("unlabelled", None, None, None));
    let ds = dataset("medmnist", &["x", "y"], samples);
    let s = make_splits(&ds, &SplitConfig::default()).unwrap();
    assert_eq!(s.origin, SplitOrigin::Official);
    for (k, split) in [Split::Train, Split::Val, Split::Test].into_iter().enumerate() {
        assert_eq!(ids(&ds, s.get(split)), (0..6).map(|i| format!("s{k}_{i}")).collect::<Vec<_>>());
    }

    // Official train and test only: val is carved out of train (stratified), test untouched.
    let no_val: Vec<Sample> = (0..40)
        .map(|i| sample(&format!("tr{i:02}"), Some(i % 2), None, Some(Split::Train)))
        .chain((0..10).map(|i| sample(&format!("te{i:02}"), Some(i % 2), None, Some(Split::Test))))
        .collect();
    let ds = dataset("isic2017", &["x", "y"], no_val);
    let s = make_splits(&ds, &SplitConfig::default()).unwrap();
    assert_eq!(s.origin, SplitOrigin::OfficialWithSeededVal);
    assert_eq!(ids(&ds, &s.test), (0..10).map(|i| format!("te{i:02}")).collect::<Vec<_>>());
    assert!(s.train.iter().chain(&s.val).all(|&i| ds.samples[i].id.starts_with("tr")));
    assert_eq!(s.train.len() + s.val.len(), 40);
    assert_eq!(per_class(&ds, &s.val), vec![3, 3], "val = 1/7 of each class's 20 official training samples");

    // Only some labelled samples carry an official split: ignored, seeded split of everything.
    let mut ds = plain(&[20, 20]);
    ds.samples[0].official_split = Some(Split::Test);
    assert_eq!(make_splits(&ds, &SplitConfig::default()).unwrap().origin, SplitOrigin::Seeded);
}

#[test]
fn unlabelled_samples_are_in_no_split() {
    let mut ds = plain(&[10, 10]);
    ds.samples.push(sample("ssl_only", None, None, None));
    let s = make_splits(&ds, &SplitConfig::default()).unwrap();
    assert_eq!(s.train.len() + s.val.len() + s.test.len(), 20);
}

#[test]
fn split_errors_are_clear() {
    // Too few samples of a class to reach every split.
    let mut ds = plain(&[30, 2]);
    ds.class_names[1] = "dermatofibroma".into();
    let e = err_text(make_splits(&ds, &SplitConfig::default()));
    assert!(e.contains("dermatofibroma") && e.contains("2 sample(s)") && e.contains("3 splits"), "{e}");
    // Enough samples, too few groups.
    let mut ds = plain(&[30, 6]);
    for s in ds.samples.iter_mut().filter(|s| s.label == Some(1)) {
        s.group = Some(if s.id.as_str() < "c1_0003" { "A".into() } else { "B".into() });
    }
    let e = err_text(make_splits(&ds, &SplitConfig::default()));
    assert!(e.contains("class1") && e.contains("2 group(s)"), "{e}");
    // A class without labelled samples.
    let e = err_text(make_splits(&plain(&[10, 0, 10]), &SplitConfig::default()));
    assert!(e.contains("class1") && e.contains("no labelled samples"), "{e}");
    // Official splits with an empty test split, or a class missing from one.
    let ds = dataset("isic2018", &["a", "b"], (0..8).map(|i| sample(&format!("t{i}"), Some(i % 2), None, Some(Split::Train))).collect());
    assert!(err_text(make_splits(&ds, &SplitConfig { val: 0.0, train: 0.7, ..Default::default() })).contains("test split is empty"));
    let mut ds = ds;
    ds.samples.extend([sample("v0", Some(0), None, Some(Split::Test)), sample("v1", Some(0), None, Some(Split::Test))]);
    let e = err_text(make_splits(&ds, &SplitConfig { val: 0.0, train: 0.7, ..Default::default() }));
    assert!(e.contains("class 'b'") && e.contains("test split"), "{e}");
    // Bad fractions, duplicate ids, nothing labelled.
    assert!(err_text(make_splits(&plain(&[10]), &SplitConfig { train: 0.5, val: 0.1, test: 0.3, seed: 0 })).contains("sum to 1"));
    let mut ds = plain(&[5, 5]);
    ds.samples[1].id = ds.samples[0].id.clone();
    assert!(err_text(make_splits(&ds, &SplitConfig::default())).contains("duplicate sample id 'c0_0000'"));
    let ds = dataset("imagefolder", &[], vec![sample("a", None, None, None)]);
    assert!(err_text(make_splits(&ds, &SplitConfig::default())).contains("no labelled samples"));
}

#[test]
fn splits_json_round_trip_and_bad_reload() {
    let dir = tmpdir("splits-json");
    let mut ds = plain(&[20, 15]);
    ds.format = "aptos2019".into();
    ds.samples.push(sample("unlabelled", None, None, None));
    let cfg = SplitConfig { seed: 7, ..Default::default() };
    let s = make_splits(&ds, &cfg).unwrap();
    let path = dir.join(SPLITS_FILE);
    s.write(&path, &ds).unwrap();
    assert!(!dir.join("splits.json.tmp").exists());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["seed"], 7);
    assert_eq!(v["format"], "aptos2019");
    assert_eq!(v["origin"], "seeded");
    assert_eq!(v["fractions"]["test"], 0.3);
    assert_eq!(v["class_names"], serde_json::json!(["class0", "class1"]));
    assert_eq!(v["test"].as_array().unwrap().len(), s.test.len());

    let back = Splits::load(&path, &ds).unwrap();
    assert_eq!((&back.train, &back.val, &back.test), (&s.train, &s.val, &s.test));
    assert_eq!(back.config, cfg);
    assert_eq!(back.origin, SplitOrigin::Loaded);
    // Reloading onto the same data set in another order gives the same ids.
    let mut rev = ds.clone();
    rev.samples.reverse();
    let back = Splits::load(&path, &rev).unwrap();
    assert_eq!(ids(&rev, &back.test), ids(&ds, &s.test));

    // Ids the data set lacks: named (first five) with the count.
    let mut smaller = ds.clone();
    let gone: HashSet<String> = ids(&ds, &s.test[..7]).into_iter().collect();
    smaller.samples.retain(|x| !gone.contains(&x.id));
    let e = err_text(Splits::load(&path, &smaller));
    let mut gone: Vec<_> = gone.into_iter().collect();
    gone.sort();
    assert!(e.contains("7 id(s) not in the data set") && e.contains(&gone[..5].join(", ")) && !e.contains(&gone[5]), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    // Another class list or format.
    let mut other = ds.clone();
    other.class_names.swap(0, 1);
    assert!(err_text(Splits::load(&path, &other)).contains("class names"));
    let mut other = ds.clone();
    other.format = "csv".into();
    assert!(err_text(Splits::load(&path, &other)).contains("'aptos2019'"));
    // Not JSON, missing file.
    std::fs::write(dir.join("bad.json"), "{ not json").unwrap();
    assert!(err_text(Splits::load(&dir.join("bad.json"), &ds)).contains("not a splits file"));
    assert!(err_text(Splits::load(&dir.join("missing.json"), &ds)).contains("missing.json"));
}

// ---- decode cache ------------------------------------------------------------------------------------------------

/// A deterministic `w x h` RGB test pattern.
fn pattern(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let base = [rng.below(256), rng.below(256), rng.below(256)];
    (0..h).flat_map(|y| (0..w).flat_map(move |x| (0..3).map(move |c| ((base[c] + x * (c + 1) + y * 3 + (x * y) % 7) % 256) as u8))).collect()
}

fn write_png(path: &Path, w: usize, h: usize, seed: u64) {
    image::RgbImage::from_raw(w as u32, h as u32, pattern(w, h, seed)).unwrap().save(path).unwrap();
}

/// `n` PNG files of assorted sizes in `dir`, as an ImageFolder-like data set.
fn png_dataset(dir: &Path, n: usize) -> Dataset {
    let samples = (0..n)
        .map(|i| {
            let path = dir.join(format!("img{i:02}.png"));
            write_png(&path, 40 + 7 * i, 30 + 5 * (i % 4), i as u64);
            Sample { id: format!("img{i:02}"), source: ImageSource::File(path), label: Some(i % 2), group: None, official_split: None }
        })
        .collect();
    Dataset::new("imagefolder", dir, vec!["a".into(), "b".into()], samples)
}

/// Decodes a file sample (Pillow-exact), like [`Dataset::load_rgb8`] without borrowing the data set.
fn load_file(s: &Sample) -> fgssl::Result<Rgb8> {
    let ImageSource::File(path) = &s.source else { panic!("not a file sample") };
    let img = fgssl::imaging::load_rgb8(path)?;
    Ok((img.width(), img.height(), img.into_raw()))
}

fn cache_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn cache_builds_once_and_reads_back_exact_pixels() {
    let root = tmpdir("cache-build");
    let (data, cache_dir) = (root.join("data"), root.join("cache"));
    std::fs::create_dir_all(&data).unwrap();
    let ds = png_dataset(&data, 10);
    let calls = AtomicUsize::new(0);
    let counting = |s: &Sample| -> fgssl::Result<Rgb8> {
        calls.fetch_add(1, Ordering::SeqCst);
        load_file(s)
    };
    let indices = [7, 2, 5, 0, 9, 1];
    let opts = CacheOptions { progress: false, ..CacheOptions::new("train", 24) };
    let c = ImageCache::open_or_build(&cache_dir, &ds, &indices, &opts, counting).unwrap();
    assert!(c.was_built());
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert_eq!((c.len(), c.size(), c.image_bytes()), (6, 24, 24 * 24 * 3));
    assert_eq!(c.ids(), ["img07", "img02", "img05", "img00", "img09", "img01"]);
    let files = cache_files(&cache_dir);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with("imagefolder-train-24px-") && files[0].ends_with(".json"), "{files:?}");
    assert_eq!(std::fs::metadata(c.path()).unwrap().len(), 6 * 24 * 24 * 3);

    // Each cached image is exactly the Pillow-exact resize of the decoded file.
    let expected: Vec<Vec<u8>> = indices
        .iter()
        .map(|&i| {
            let (w, h, px) = load_file(&ds.samples[i]).unwrap();
            preprocess(w as usize, h as usize, px, 24, None)
        })
        .collect();
    for (j, e) in expected.iter().enumerate() {
        assert_eq!(&c.image(j).unwrap(), e);
    }
    // Batch gather: any order, repeats allowed, one contiguous buffer.
    let pick = [3, 3, 0, 5, 1];
    let mut out = vec![0u8; pick.len() * c.image_bytes()];
    c.batch(&pick, &mut out).unwrap();
    for (k, &j) in pick.iter().enumerate() {
        assert_eq!(&out[k * c.image_bytes()..(k + 1) * c.image_bytes()], &expected[j][..]);
    }
    assert!(err_text(c.batch(&[6], &mut vec![0u8; c.image_bytes()])).contains("out of range"));
    assert!(err_text(c.batch(&[0, 1], &mut vec![0u8; c.image_bytes()])).contains("buffer"));

    // Second open: same key, nothing decoded.
    let c2 = ImageCache::open_or_build(&cache_dir, &ds, &indices, &opts, counting).unwrap();
    assert!(!c2.was_built());
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert_eq!(c2.key(), c.key());
    assert_eq!(c2.image(4).unwrap(), expected[4]);
}

#[test]
fn cache_key_changes_with_files_and_options() {
    let root = tmpdir("cache-invalidate");
    let (data, cache_dir) = (root.join("data"), root.join("cache"));
    std::fs::create_dir_all(&data).unwrap();
    let mut ds = png_dataset(&data, 6);
    let calls = AtomicUsize::new(0);
    let counting = |s: &Sample| -> fgssl::Result<Rgb8> {
        calls.fetch_add(1, Ordering::SeqCst);
        load_file(s)
    };
    let opts = CacheOptions { progress: false, ..CacheOptions::new("test", 16) };
    let all: Vec<usize> = (0..6).collect();
    let base = ImageCache::open_or_build(&cache_dir, &ds, &all, &opts, counting).unwrap();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 6);

    let rebuilt = |ds: &Dataset, idx: &[usize], opts: &CacheOptions| {
        let c = ImageCache::open_or_build(&cache_dir, ds, idx, opts, counting).unwrap();
        assert!(c.was_built());
        assert_ne!(c.key(), base.key());
        assert_eq!(calls.swap(0, Ordering::SeqCst), idx.len());
        c
    };
    // A sample fewer, another order, another size, split name or preprocessing.
    rebuilt(&ds, &all[..5], &opts);
    rebuilt(&ds, &[1, 0, 2, 3, 4, 5], &opts);
    rebuilt(&ds, &all, &CacheOptions { size: 20, ..opts.clone() });
    rebuilt(&ds, &all, &CacheOptions { split: "val".into(), ..opts.clone() });
    rebuilt(&ds, &all, &CacheOptions { fundus: Some(FundusCrop::default()), ..opts.clone() });
    // A file replaced by another of a different size.
    write_png(&data.join("img03.png"), 90, 90, 42);
    let c = rebuilt(&ds, &all, &opts);
    let (w, h, px) = load_file(&ds.samples[3]).unwrap();
    assert_eq!((w, h), (90, 90));
    assert_eq!(c.image(3).unwrap(), preprocess(w as usize, h as usize, px, 16, None));
    // A file added to the list.
    let extra = data.join("extra.png");
    write_png(&extra, 33, 33, 1);
    ds.samples.push(Sample { id: "extra".into(), source: ImageSource::File(extra), label: Some(0), group: None, official_split: None });
    rebuilt(&ds, &(0..7).collect::<Vec<_>>(), &opts);
    // A listed file that is missing: an error naming it, before any decoding.
    std::fs::remove_file(data.join("img05.png")).unwrap();
    let e = err_text(ImageCache::open_or_build(&cache_dir, &ds, &all, &opts, counting));
    assert!(e.contains("img05.png"), "{e}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn failing_image_leaves_no_partial_cache() {
    let root = tmpdir("cache-atomic");
    let (data, cache_dir) = (root.join("data"), root.join("cache"));
    std::fs::create_dir_all(&data).unwrap();
    let ds = png_dataset(&data, 8);
    std::fs::write(data.join("img04.png"), b"\x89PNG\r\n\x1a\n this is not really a png").unwrap();
    let all: Vec<usize> = (0..8).collect();
    let opts = CacheOptions { progress: false, ..CacheOptions::new("train", 16) };
    let e = err_text(ImageCache::open_or_build(&cache_dir, &ds, &all, &opts, load_file));
    assert!(e.contains("img04.png") && e.contains("cannot decode"), "{e}");
    assert_eq!(cache_files(&cache_dir), Vec::<String>::new(), "no partial or temporary file is left");

    // A custom loader's error names the sample; a loader returning the wrong byte count is caught.
    let failing = |s: &Sample| -> fgssl::Result<Rgb8> {
        if s.id == "img06" {
            Err(Error::Invalid("boom".into()))
        } else {
            Ok((2, 2, vec![0; 12]))
        }
    };
    let ok: Vec<usize> = (0..8).filter(|&i| i != 4).collect();
    let e = err_text(ImageCache::open_or_build(&cache_dir, &ds, &ok, &opts, failing));
    assert!(e.contains("img06.png") && e.contains("boom"), "{e}");
    let short = |_: &Sample| -> fgssl::Result<Rgb8> { Ok((4, 4, vec![0; 5])) };
    let e = err_text(ImageCache::open_or_build(&cache_dir, &ds, &ok, &opts, short));
    assert!(e.contains("5 bytes for a 4x4"), "{e}");
    assert_eq!(cache_files(&cache_dir), Vec::<String>::new());

    // A complete cache whose pixel file was truncated is rebuilt, not read.
    let c = ImageCache::open_or_build(&cache_dir, &ds, &ok, &opts, load_file).unwrap();
    let path = c.path().to_path_buf();
    drop(c);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(100).unwrap();
    let c = ImageCache::open_or_build(&cache_dir, &ds, &ok, &opts, load_file).unwrap();
    assert!(c.was_built());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), (7 * 16 * 16 * 3) as u64);
}

#[test]
fn array_sources_need_their_loader() {
    let samples = (0..3)
        .map(|i| Sample {
            id: format!("train/{i}"),
            source: ImageSource::Array { key: "train_images".into(), index: i },
            label: Some(0),
            group: None,
            official_split: Some(Split::Train),
        })
        .collect();
    let ds = Dataset::new("medmnist", "/data/derma.npz", vec!["a".into()], samples);
    let dir = tmpdir("cache-array");
    let opts = CacheOptions { progress: false, source_identity: "derma.npz:1234".into(), ..CacheOptions::new("train", 8) };
    let e = err_text(ImageCache::open_or_build(&dir, &ds, &[0, 1, 2], &opts, |s| ds.load_rgb8(s)));
    assert!(e.contains("train_images[0]") || e.contains("train_images[1]") || e.contains("train_images[2]"), "{e}");
    // An in-memory loader: already at the cached size, stored as is.
    let arrays = |s: &Sample| -> fgssl::Result<Rgb8> {
        let ImageSource::Array { index, .. } = s.source else { unreachable!() };
        Ok((8, 8, vec![index as u8 * 10; 8 * 8 * 3]))
    };
    let c = ImageCache::open_or_build(&dir, &ds, &[2, 0], &opts, arrays).unwrap();
    assert_eq!(c.image(0).unwrap(), vec![20u8; 192]);
    assert_eq!(c.image(1).unwrap(), vec![0u8; 192]);
    // Another caller-given identity is another cache.
    let other = CacheOptions { source_identity: "derma.npz:9999".into(), ..opts.clone() };
    assert!(ImageCache::open_or_build(&dir, &ds, &[2, 0], &other, arrays).unwrap().was_built());
    assert!(!ImageCache::open_or_build(&dir, &ds, &[2, 0], &opts, arrays).unwrap().was_built());
    // The .npz the arrays came from (the data set's root) is part of the key: replacing it makes a new cache.
    let npz = dir.join("derma.npz");
    std::fs::write(&npz, b"first").unwrap();
    let mut ds = ds;
    ds.root = npz.clone();
    assert!(ImageCache::open_or_build(&dir, &ds, &[2, 0], &opts, arrays).unwrap().was_built());
    assert!(!ImageCache::open_or_build(&dir, &ds, &[2, 0], &opts, arrays).unwrap().was_built());
    std::fs::write(&npz, b"second version").unwrap();
    assert!(ImageCache::open_or_build(&dir, &ds, &[2, 0], &opts, arrays).unwrap().was_built());
}

// ---- fundus crop -------------------------------------------------------------------------------------------------

/// A synthetic fundus photograph: noisy near-black background (grey <= 6), a bright disc of radius `r` centred at
/// (`cx`, `cy`) (possibly cut by the image border), and a few isolated bright noise pixels in the background.
fn fundus(w: usize, h: usize, cx: i64, cy: i64, r: i64) -> Vec<u8> {
    let mut rng = Rng::new(3);
    let mut px = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as i64 - cx, y as i64 - cy);
            let o = (y * w + x) * 3;
            if dx * dx + dy * dy <= r * r {
                px[o..o + 3].copy_from_slice(&[180 + rng.below(40) as u8, 90, 40]);
            } else {
                let n = rng.below(7) as u8;
                px[o..o + 3].copy_from_slice(&[n, n, n]);
            }
        }
    }
    for (x, y) in [(2, 2), (w - 3, 5), (4, h - 2), (w - 1, h - 1)] {
        let o = (y * w + x) * 3;
        px[o..o + 3].copy_from_slice(&[255, 255, 255]);
    }
    px
}

#[test]
fn fundus_crop_finds_the_retina() {
    let (w, h, cx, cy, r) = (300, 200, 170, 100, 80);
    let px = fundus(w, h, cx, cy, r);
    let opts = FundusCrop::default();
    assert_eq!((opts.threshold, opts.square), (7, false));
    // The extreme row/column of the disc holds a single pixel (below the 1% count); the next ones hold 25.
    let b = retina_box(w, h, &px, &opts).unwrap();
    assert_eq!(b, CropBox { x0: 91, y0: 21, x1: 250, y1: 180 });
    let (cw, ch, crop) = crop_fundus(w, h, px.clone(), &opts);
    assert_eq!((cw, ch), (159, 159));
    assert_eq!(&crop[..3], &px[(21 * w + 91) * 3..(21 * w + 91) * 3 + 3]);
    // Counting every pixel instead lets the noise pixels stretch the box to the whole image.
    let loose = FundusCrop { min_fraction: 0.0, ..opts };
    assert_eq!(retina_box(w, h, &px, &loose).unwrap(), CropBox { x0: 2, y0: 2, x1: 300, y1: 200 });

    // APTOS-style: the disc is cut at the top and bottom, so the box is wide; `square` pads it with black.
    let (w, h) = (400, 240);
    let px = fundus(w, h, 200, 120, 150);
    let b = retina_box(w, h, &px, &opts).unwrap();
    assert_eq!((b.y0, b.y1), (0, 240));
    assert_eq!((b.x0, b.x1), (51, 350));
    let (cw, ch, crop) = crop_fundus(w, h, px.clone(), &FundusCrop { square: true, ..opts });
    assert_eq!((cw, ch), (299, 299));
    let pad = (299 - 240) / 2;
    assert!(crop[..pad * 299 * 3].iter().all(|&v| v == 0), "top padding is black");
    assert_eq!(&crop[(pad * 299 + 149) * 3..(pad * 299 + 150) * 3], &px[(200) * 3..(201) * 3]);

    // A fully dark image is left alone; the crop runs before the resize.
    let dark = vec![3u8; 20 * 10 * 3];
    assert_eq!(crop_fundus(20, 10, dark.clone(), &opts), (20, 10, dark));
    let (w, h) = (300, 200);
    let px = fundus(w, h, 170, 100, 80);
    let (cw, ch, crop) = crop_fundus(w, h, px.clone(), &opts);
    assert_eq!(preprocess(w, h, px, 64, Some(&opts)), preprocess(cw, ch, crop, 64, None));
}

#[test]
fn an_image_smaller_than_the_size_is_an_error_when_upscaling_is_disabled() {
    let root = tmpdir("cache-upscale");
    let (data, cache_dir) = (root.join("data"), root.join("cache"));
    std::fs::create_dir_all(&data).unwrap();
    let ds = png_dataset(&data, 4); // 40x30, 47x35, 54x40, 61x45
    let all: Vec<usize> = (0..4).collect();
    let strict = |size| CacheOptions { progress: false, allow_upscale: false, ..CacheOptions::new("train", size) };
    let e = err_text(ImageCache::open_or_build(&cache_dir, &ds, &all, &strict(32), load_file));
    assert!(e.contains("img00.png") && e.contains("40x30") && e.contains("32x32") && e.contains("upscaling is disabled"), "{e}");
    assert_eq!(cache_files(&cache_dir), Vec::<String>::new(), "nothing is left behind");
    // Every image at least as large as the size: fine; and upscaling allowed (the default): fine.
    assert!(ImageCache::open_or_build(&cache_dir, &ds, &all, &strict(30), load_file).is_ok());
    let lenient = CacheOptions { progress: false, ..CacheOptions::new("train", 32) };
    assert!(ImageCache::open_or_build(&cache_dir, &ds, &all, &lenient, load_file).is_ok());
}
