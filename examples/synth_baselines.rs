//! Baselines on the synthetic fine-grained lesion data set (`fgssl synth`): a colour-histogram 1-NN classifier,
//! which the data set is built to defeat, against a ResNet-18 trained from scratch on the CPU reference backend.
//!
//!     cargo run --release --example synth_baselines -- --classes 4 --per-class 500 --epochs 12 --lr 0.03
//!     cargo run --release --example synth_baselines -- --grid docs/synth-samples.png --grid-only
//!
//! Both classifiers see the same seeded, stratified 50/50 split. The ResNet-18 trains with SGD (momentum 0.9,
//! weight decay 5e-4, cosine learning rate), batch norm, cross-entropy and random flips/transposes (the class of
//! a texture does not change under them); test accuracy is measured once, after the last epoch, in evaluation
//! mode. Numbers are recorded in docs/RESULTS.md.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use fgssl::backend::cpu::Cpu;
use fgssl::data::synth::{self, HistDistance, SynthConfig};
use fgssl::imaging;
use fgssl::model::resnet::{Arch, ResNet};
use fgssl::model::{HostState, State};
use fgssl::ops::{cross_entropy, Mode};
use fgssl::rng::Rng;
use fgssl::tensor::Tensor;

#[derive(Parser, Debug)]
#[command(about = "Colour-histogram 1-NN vs a ResNet-18 trained from scratch on the synthetic lesion data set")]
struct Args {
    #[arg(long, default_value_t = 4)]
    classes: usize,
    #[arg(long, default_value_t = 500)]
    per_class: usize,
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seed of the data set.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of the train/test split, the initialisation and the batch order.
    #[arg(long, default_value_t = 1)]
    train_seed: u64,
    /// Bins per channel of the colour histogram.
    #[arg(long, default_value_t = 8)]
    bins: usize,
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Peak learning rate (cosine decay to 0 over all steps, after a one-epoch linear warm-up).
    #[arg(long, default_value_t = 0.03)]
    lr: f32,
    /// Write a picture of samples (one row per class, --grid-columns images each) to this PNG.
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Images per class in the picture.
    #[arg(long, default_value_t = 5)]
    grid_columns: usize,
    /// Only write the picture.
    #[arg(long)]
    grid_only: bool,
}

/// Applies one of the 8 symmetries of the square (bit 0: flip x, bit 1: flip y, bit 2: transpose) to a CHW image.
fn dihedral(src: &[f32], size: usize, t: usize, dst: &mut [f32]) {
    let plane = size * size;
    for c in 0..3 {
        for y in 0..size {
            for x in 0..size {
                let (mut sx, mut sy) = if t & 4 != 0 { (y, x) } else { (x, y) };
                if t & 1 != 0 {
                    sx = size - 1 - sx;
                }
                if t & 2 != 0 {
                    sy = size - 1 - sy;
                }
                dst[c * plane + y * size + x] = src[c * plane + sy * size + sx];
            }
        }
    }
}

fn main() -> fgssl::Result<()> {
    let args = Args::parse();
    let cfg = SynthConfig { classes: args.classes, per_class: args.per_class, size: args.size, seed: args.seed };
    cfg.validate()?;

    if let Some(path) = &args.grid {
        let grid = synth::sample_grid(args.seed, args.classes, args.grid_columns, args.size, 2)?;
        let bytes = png_best(&grid)?;
        fgssl::weights::write_atomic(path, &bytes)?;
        println!("wrote {} ({}x{}, {} KB; rows: {})", path.display(), grid.width(), grid.height(), bytes.len() / 1024, cfg.class_names().join(", "));
        if args.grid_only {
            return Ok(());
        }
    }

    let threads = rayon::current_num_threads();
    println!(
        "data: {} classes ({}), {} per class, {}x{}, seed {}; split/init seed {}; {} threads",
        cfg.classes,
        cfg.class_names().join(", "),
        cfg.per_class,
        cfg.size,
        cfg.size,
        cfg.seed,
        args.train_seed,
        threads
    );
    let t0 = Instant::now();
    let (images, labels) = synth::generate_images(&cfg)?;
    println!("generated {} images in {:.2} s", images.len(), t0.elapsed().as_secs_f64());
    let (train, test) = synth::stratified_split(&labels, 0.5, args.train_seed);
    let chance = 1.0 / cfg.classes as f64;
    println!("split: {} train, {} test (stratified 50/50); chance = {:.3}", train.len(), test.len(), chance);

    // Colour histogram, 1-NN.
    let t0 = Instant::now();
    let chi = synth::histogram_nn_accuracy(&images, &labels, &train, &test, args.bins, HistDistance::ChiSquare);
    let l1 = synth::histogram_nn_accuracy(&images, &labels, &train, &test, args.bins, HistDistance::L1);
    println!(
        "colour histogram {b}x{b}x{b} 1-NN: test accuracy {chi:.3} (chi-square), {l1:.3} (L1)  [{:.2} s]",
        t0.elapsed().as_secs_f64(),
        b = args.bins
    );
    if args.epochs == 0 {
        return Ok(());
    }

    // ResNet-18 from scratch.
    let s = cfg.size;
    let px = 3 * s * s;
    let inputs: Vec<Vec<f32>> = images.iter().map(|im| imaging::normalize_rgb8(im, s)).collect();
    let b = Cpu::new();
    let (net, reg) = ResNet::new(Arch::ResNet18, Some(cfg.classes), false);
    let mut st = State::upload(&b, &reg, &HostState::init(&reg, args.train_seed))?;
    let mut rng = Rng::new(args.train_seed ^ 0xA5A5);
    let steps_per_epoch = train.len() / args.batch; // the last partial batch is dropped
    let total_steps = (steps_per_epoch * args.epochs).max(1);
    let warmup = steps_per_epoch.max(1);
    let mut step = 0usize;
    let mut x = vec![0.0f32; args.batch * px];
    let t_train = Instant::now();
    println!(
        "resnet18: {} epochs x {} steps of batch {}, SGD momentum 0.9, wd 5e-4, lr {} (warm-up 1 epoch, cosine), flips/transposes",
        args.epochs, steps_per_epoch, args.batch, args.lr
    );
    for epoch in 0..args.epochs {
        let t_epoch = Instant::now();
        let mut order = train.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for chunk in order.chunks_exact(args.batch) {
            for (k, &i) in chunk.iter().enumerate() {
                dihedral(&inputs[i], s, rng.below(8), &mut x[k * px..(k + 1) * px]);
            }
            let y: Vec<u32> = chunk.iter().map(|&i| labels[i] as u32).collect();
            let lr = if step < warmup {
                args.lr * (step + 1) as f32 / warmup as f32
            } else {
                let t = (step - warmup) as f32 / (total_steps - warmup).max(1) as f32;
                args.lr * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            };
            let input = Tensor::from_host(&b, [args.batch, 3, s, s], &x)?;
            st.params.zero_grad(&b);
            let acts = net.forward(&b, &mut st, &input, Mode::Train, 4)?;
            let pooled = net.pooled_features(&b, &acts)?;
            let logits = net.logits(&b, &st, &pooled)?;
            let host_logits = logits.to_host(&b)?;
            correct += argmax_rows(&host_logits, cfg.classes).iter().zip(&y).filter(|(p, t)| **p == **t as usize).count();
            let (loss, saved) = cross_entropy::forward(&b, &logits, &y)?;
            loss_sum += loss as f64;
            let dlogits = cross_entropy::backward(&b, &saved, &y, 1.0)?;
            let d4 = net.logits_backward(&b, &mut st, &acts.output().shape, &pooled, &dlogits)?;
            net.backward(&b, &mut st, &input, &acts, vec![None, None, None, Some(d4)], false)?;
            st.params.sgd_step(&b, lr, 0.9, 5e-4, |_| true);
            step += 1;
        }
        let seen = steps_per_epoch * args.batch;
        println!(
            "epoch {:>2}: train loss {:.4}, train accuracy {:.3}  [{:.1} s]",
            epoch + 1,
            loss_sum / steps_per_epoch.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
            t_epoch.elapsed().as_secs_f64()
        );
    }
    let train_s = t_train.elapsed().as_secs_f64();

    let t_eval = Instant::now();
    let mut pred = Vec::with_capacity(test.len());
    for chunk in test.chunks(64) {
        let mut xb = Vec::with_capacity(chunk.len() * px);
        chunk.iter().for_each(|&i| xb.extend_from_slice(&inputs[i]));
        let input = Tensor::from_host(&b, [chunk.len(), 3, s, s], &xb)?;
        let pooled = net.embed(&b, &mut st, &input)?;
        let logits = net.logits(&b, &st, &pooled)?.to_host(&b)?;
        pred.extend(argmax_rows(&logits, cfg.classes));
    }
    let truth: Vec<usize> = test.iter().map(|&i| labels[i]).collect();
    let acc = synth::accuracy(&pred, &truth);
    let mut confusion = vec![vec![0usize; cfg.classes]; cfg.classes];
    for (&p, &t) in pred.iter().zip(&truth) {
        confusion[t][p] += 1;
    }
    println!("confusion (rows: true class, columns: predicted):");
    for (name, row) in cfg.class_names().iter().zip(&confusion) {
        println!("  {name:>12}: {row:?}");
    }
    println!("resnet18 (from scratch): test accuracy {acc:.3}  [training {train_s:.1} s, evaluation {:.1} s]", t_eval.elapsed().as_secs_f64());
    println!("summary: chance {chance:.3} | colour-histogram 1-NN {chi:.3} (chi-square) / {l1:.3} (L1) | resnet18 {acc:.3}");
    Ok(())
}

fn argmax_rows(logits: &[f32], k: usize) -> Vec<usize> {
    logits
        .chunks_exact(k)
        .map(|row| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0)
        .collect()
}

/// PNG bytes at the strongest compression (the picture is committed).
fn png_best(img: &image::RgbImage) -> fgssl::Result<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::Adaptive)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| fgssl::Error::Invalid(format!("PNG encoding failed: {e}")))?;
    Ok(bytes)
}
