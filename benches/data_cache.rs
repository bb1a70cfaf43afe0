//! Decode and decode-cache throughput (issue 3, item 3): is loading an epoch the bottleneck of a GPU run?
//!
//! * `decode/*`: one 600x450 baseline JPEG (ISIC 2018's size, quality 90, 4:2:0) decoded Pillow-exactly, resized
//!   to 224 (and 256) with the Pillow-exact bilinear resampler, on one thread: images/s per core.
//! * `decode/png2048x1536*`: an APTOS-sized fundus PNG decoded, retina-cropped and resized to 224, on one thread.
//! * `cache_build/*`: [`ImageCache::open_or_build`] from scratch on all cores (rayon): images/s of the machine.
//! * `cache_read/*`: gathering random batches of 128 from a 224 px cache (hot in the page cache): images/s, GB/s.
//!
//! `cargo bench --bench data_cache` runs the full sizes; `cargo test --all-targets` runs each bench once on a
//! smaller set so the bench cannot rot. Numbers: docs/DATA-PERF.md.

use std::path::{Path, PathBuf};

use criterion::{BatchSize, Criterion, Throughput};
use fgssl::data::cache::{preprocess, CacheOptions, ImageCache, Rgb8};
use fgssl::data::fundus::FundusCrop;
use fgssl::data::{Dataset, ImageSource, Sample};
use fgssl::rng::Rng;

/// A skin-photo-like 600x450 RGB image: smooth illumination and colour gradients, a darker blob, fine texture and
/// sensor noise, so that it compresses to a realistic size (about 60-100 KB at quality 90).
fn photo(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let (cx, cy, r) = (w as f32 * rng.uniform_in(0.3, 0.7), h as f32 * rng.uniform_in(0.3, 0.7), h as f32 * rng.uniform_in(0.2, 0.4));
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32, y as f32);
            let light = 0.8 + 0.2 * (fx / w as f32) - 0.1 * (fy / h as f32);
            let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() / r;
            let lesion = if d < 1.0 { 0.55 + 0.45 * d } else { 1.0 };
            let texture = 6.0 * ((fx * 0.35).sin() * (fy * 0.29).cos()) + 3.0 * ((fx * 1.7 + fy * 0.9).sin());
            for base in [225.0f32, 170.0, 150.0] {
                let v = base * light * lesion + texture + rng.normal() * 4.0;
                px.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    px
}

fn write_jpeg(path: &Path, w: usize, h: usize, rgb: &[u8]) {
    let mut comp = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    comp.set_fastest_defaults(); // plain libjpeg settings: baseline, Huffman, 4:2:0, like most camera/ISIC files
    comp.set_size(w, h);
    comp.set_quality(90.0);
    let mut started = comp.start_compress(Vec::new()).unwrap();
    started.write_scanlines(rgb).unwrap();
    std::fs::write(path, started.finish().unwrap()).unwrap();
}

struct Fixture {
    dir: PathBuf,
    dataset: Dataset,
    jpeg_bytes: u64,
}

fn fixture(n: usize) -> Fixture {
    let dir = std::env::temp_dir().join(format!("fgssl-bench-data-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut jpeg_bytes = 0;
    let samples = (0..n)
        .map(|i| {
            let path = dir.join("images").join(format!("ISIC_{i:07}.jpg"));
            write_jpeg(&path, 600, 450, &photo(600, 450, i as u64));
            jpeg_bytes += std::fs::metadata(&path).unwrap().len();
            Sample { id: format!("ISIC_{i:07}"), source: ImageSource::File(path), label: Some(i % 7), group: None, official_split: None }
        })
        .collect();
    let dataset = Dataset::new("isic2018", &dir, (0..7).map(|c| format!("c{c}")).collect(), samples);
    Fixture { dir, dataset, jpeg_bytes }
}

fn decode(c: &mut Criterion, fx: &Fixture) {
    let samples = &fx.dataset.samples;
    eprintln!("data_cache: {} JPEGs of 600x450, mean {:.1} KB", samples.len(), fx.jpeg_bytes as f64 / samples.len() as f64 / 1e3);
    let mut g = c.benchmark_group("decode");
    g.sample_size(20).throughput(Throughput::Elements(1));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % samples.len();
        &samples[i]
    };
    g.bench_function("jpeg600x450", |b| b.iter(|| fx.dataset.load_rgb8(next()).unwrap()));
    let decoded: Rgb8 = fx.dataset.load_rgb8(&samples[0]).unwrap();
    for size in [224, 256] {
        g.bench_function(format!("resize600x450_to_{size}"), |b| {
            b.iter_batched(|| decoded.2.clone(), |px| preprocess(600, 450, px, size, None), BatchSize::LargeInput)
        });
    }
    g.bench_function("jpeg600x450+resize_to_224", |b| {
        b.iter(|| {
            pool.install(|| {
                let (w, h, px) = fx.dataset.load_rgb8(next()).unwrap();
                preprocess(w as usize, h as usize, px, 224, None)
            })
        })
    });
    g.finish();

    // APTOS-style: a large fundus PNG, retina-cropped, then resized.
    let (w, h) = (2048, 1536);
    let png = fx.dir.join("fundus.png");
    image::RgbImage::from_raw(w as u32, h as u32, fundus_photo(w, h)).unwrap().save(&png).unwrap();
    eprintln!("data_cache: fundus PNG {w}x{h}, {:.2} MB", std::fs::metadata(&png).unwrap().len() as f64 / 1e6);
    let crop = FundusCrop::default();
    let mut g = c.benchmark_group("decode");
    g.sample_size(10).throughput(Throughput::Elements(1));
    g.bench_function(format!("png{w}x{h}"), |b| b.iter(|| fgssl::imaging::load_rgb8(&png).unwrap()));
    g.bench_function(format!("png{w}x{h}+fundus_crop+resize_to_224"), |b| {
        b.iter(|| {
            let img = fgssl::imaging::load_rgb8(&png).unwrap();
            preprocess(w, h, img.into_raw(), 224, Some(&crop))
        })
    });
    g.finish();
}

/// A fundus-like photograph: an orange-red disc with vessels-like streaks and noise on a black background.
fn fundus_photo(w: usize, h: usize) -> Vec<u8> {
    let mut rng = Rng::new(7);
    let (cx, cy, r) = (w as f32 / 2.0, h as f32 / 2.0, h as f32 * 0.55);
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32, y as f32);
            let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() / r;
            if d < 1.0 {
                let vessel = if ((fx * 0.02).sin() * 40.0 + fy * 0.05).sin() > 0.97 { 0.6 } else { 1.0 };
                for base in [200.0f32, 95.0, 45.0] {
                    let v = base * (1.0 - 0.35 * d * d) * vessel + rng.normal() * 3.0;
                    px.push(v.clamp(0.0, 255.0) as u8);
                }
            } else {
                let n = (rng.normal().abs() * 1.5) as u8;
                px.extend([n, n, n]);
            }
        }
    }
    px
}

fn cache_build(c: &mut Criterion, fx: &Fixture) {
    let n = fx.dataset.samples.len();
    let indices: Vec<usize> = (0..n).collect();
    let cache_dir = fx.dir.join("build");
    let opts = CacheOptions { progress: false, ..CacheOptions::new("train", 224) };
    let mut g = c.benchmark_group("cache_build");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("jpeg600x450_to_224/{}threads", rayon::current_num_threads()), |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&cache_dir);
            },
            |()| ImageCache::open_or_build(&cache_dir, &fx.dataset, &indices, &opts, |s| fx.dataset.load_rgb8(s)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn cache_read(c: &mut Criterion, fx: &Fixture, n_images: usize) {
    // A large cache without decoding n_images JPEGs: the loader returns ready 224x224 pixels (stored as is).
    let size = 224usize;
    let samples: Vec<Sample> = (0..n_images)
        .map(|i| Sample {
            id: format!("img{i}"),
            source: ImageSource::Array { key: "bench".into(), index: i },
            label: Some(0),
            group: None,
            official_split: None,
        })
        .collect();
    let ds = Dataset::new("bench", &fx.dir, vec!["c".into()], samples);
    let loader = |s: &Sample| -> fgssl::Result<Rgb8> {
        let ImageSource::Array { index, .. } = s.source else { unreachable!() };
        Ok((size as u32, size as u32, vec![index as u8; size * size * 3]))
    };
    let indices: Vec<usize> = (0..n_images).collect();
    let opts = CacheOptions { progress: false, ..CacheOptions::new("read", size) };
    let cache = ImageCache::open_or_build(&fx.dir.join("read"), &ds, &indices, &opts, loader).unwrap();
    let batch = 128;
    let mut out = vec![0u8; batch * cache.image_bytes()];
    let mut rng = Rng::new(1);
    let mut g = c.benchmark_group("cache_read");
    g.sample_size(20);
    for (name, elements) in [("images", true), ("bytes", false)] {
        g.throughput(if elements { Throughput::Elements(batch as u64) } else { Throughput::Bytes((batch * cache.image_bytes()) as u64) });
        g.bench_function(format!("batch128_random_224/{name}"), |b| {
            b.iter_batched(
                || (0..batch).map(|_| rng.below(n_images)).collect::<Vec<_>>(),
                |idx| cache.batch(&idx, &mut out).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: run a small set once there.
    let full = std::env::args().any(|a| a == "--bench");
    let (n_jpeg, n_cached) = if full { (64, 2048) } else { (4, 256) };
    let fx = fixture(n_jpeg);
    let mut c = Criterion::default().configure_from_args();
    decode(&mut c, &fx);
    cache_build(&mut c, &fx);
    cache_read(&mut c, &fx, n_cached);
    c.final_summary();
    let _ = std::fs::remove_dir_all(&fx.dir);
}
