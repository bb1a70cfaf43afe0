//! Augmentation and jigsaw on the CPU reference: the Philox generator, permutation generators, the jigsaw gather,
//! each augmentation operation against its definition, and the batch-view helpers. No Python: every expectation
//! is computed here from the definitions in `augment::policy` / `backend::cpu::augment`.

use std::collections::HashMap;

use fgssl::augment::jigsaw::{batch_permutations, check_divides, inverse};
use fgssl::augment::philox::{philox4x32_10, Stream};
use fgssl::augment::policy::{self, random_resized_crop, Crop, Recipe, IMAGENET_MEAN, IMAGENET_STD};
use fgssl::augment::{self as aug, Grids, ImageBatch, Jigsaw, Policy, SslViewConfig};
use fgssl::backend::cpu::Cpu;
use fgssl::backend::geom::SampleAug;
use fgssl::error::Error;
use fgssl::ops;
use fgssl::rng::Rng;
use fgssl::tensor::Tensor;

fn cpu() -> Cpu {
    Cpu::new()
}

fn random_images(seed: u64, n: usize, side: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n * side * side * 3).map(|_| rng.below(256) as u8).collect()
}

/// Runs `augment_fwd` on the CPU and returns the views as host vectors.
fn augment(images: &[u8], n: usize, src: usize, out: usize, grids: &[usize], params: &[SampleAug], perms: &[u32]) -> Vec<Vec<f32>> {
    let b = cpu();
    let batch = ImageBatch::upload(&b, images, n, src).unwrap();
    ops::augment::forward(&b, &batch, out, grids, params, perms).unwrap().iter().map(|t| t.to_host(&b).unwrap()).collect()
}

fn one(images: &[u8], n: usize, src: usize, out: usize, params: &[SampleAug]) -> Vec<f32> {
    augment(images, n, src, out, &[0], params, &[]).pop().unwrap()
}

/// `(v / 255 - mean) / std`, the reference's normalisation.
fn norm(c: usize, v: f32) -> f32 {
    (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
}

fn denorm(c: usize, y: f32) -> f32 {
    (y * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0
}

/// Pixel `(c, y, x)` of HWC image `i`.
fn px(img: &[u8], side: usize, i: usize, c: usize, y: usize, x: usize) -> f32 {
    img[((i * side + y) * side + x) * 3 + c] as f32
}

// ---- Philox -------------------------------------------------------------------------------------------------

#[test]
fn philox_known_answer_vectors() {
    assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    assert_eq!(philox4x32_10([0xffffffff; 4], [0xffffffff; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    assert_eq!(
        philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

#[test]
fn streams_depend_on_every_key_part_and_only_on_it() {
    let draw = |seed, step, sample, op| {
        let mut s = Stream::new(seed, step, sample, op);
        (0..6).map(|_| s.next_u32()).collect::<Vec<_>>()
    };
    let base = draw(7, 3, 11, 2);
    assert_eq!(base, draw(7, 3, 11, 2));
    for other in [draw(8, 3, 11, 2), draw(7, 4, 11, 2), draw(7, 3, 12, 2), draw(7, 3, 11, 3)] {
        assert_ne!(base, other);
    }
    let mut s = Stream::new(1, 2, 3, 4);
    for _ in 0..10_000 {
        let u = s.uniform_f32();
        assert!((0.0..1.0).contains(&u));
        let v = s.uniform_f64();
        assert!((0.0..1.0).contains(&v));
        assert!(s.below(7) < 7);
    }
}

// ---- jigsaw permutations ------------------------------------------------------------------------------------

fn is_permutation(p: &[u32]) -> bool {
    let mut seen = vec![false; p.len()];
    p.iter().all(|&t| (t as usize) < p.len() && !std::mem::replace(&mut seen[t as usize], true))
}

/// Length of the cycle through tile 0.
fn cycle_len_through_zero(p: &[u32]) -> usize {
    let (mut t, mut len) = (p[0] as usize, 1);
    while t != 0 {
        t = p[t] as usize;
        len += 1;
    }
    len
}

#[test]
fn uniform_permutations_are_permutations_and_swap_loop_gives_single_cycles() {
    let samples: Vec<u32> = (0..200).collect();
    for grid in [1, 2, 3, 4, 7, 16] {
        let cells = grid * grid;
        let uni = batch_permutations(Jigsaw::Uniform, grid, 5, 9, &samples, 0);
        let swap = batch_permutations(Jigsaw::SwapLoop, grid, 5, 9, &samples, 0);
        assert_eq!(uni.len(), samples.len() * cells);
        for (u, s) in uni.chunks(cells).zip(swap.chunks(cells)) {
            assert!(is_permutation(u), "{u:?}");
            assert!(is_permutation(s), "{s:?}");
            assert_eq!(cycle_len_through_zero(s), cells, "swap loop on {grid}x{grid} is not a single {cells}-cycle: {s:?}");
            if grid > 1 {
                assert!(s.iter().enumerate().all(|(d, &t)| t as usize != d), "a swap-loop tile stayed in place: {s:?}");
            }
        }
    }
}

/// Pearson's chi-square statistic of observed counts against a uniform expectation.
fn chi_square(counts: &HashMap<Vec<u32>, usize>, categories: usize, total: usize) -> f64 {
    assert_eq!(counts.len(), categories, "not every outcome occurred: {} of {categories}", counts.len());
    let e = total as f64 / categories as f64;
    counts.values().map(|&c| (c as f64 - e).powi(2) / e).sum()
}

#[test]
fn permutations_are_uniform_on_a_2x2_grid() {
    let samples: Vec<u32> = (0..24_000).collect();
    for (kind, categories, limit) in [(Jigsaw::Uniform, 24, 60.0), (Jigsaw::SwapLoop, 6, 30.0)] {
        let perms = batch_permutations(kind, 2, 42, 0, &samples, 1);
        let mut counts: HashMap<Vec<u32>, usize> = HashMap::new();
        for p in perms.chunks(4) {
            *counts.entry(p.to_vec()).or_default() += 1;
        }
        // 23 (5) degrees of freedom: 60 (30) is far beyond the 1e-4 quantile (~52.6 / ~25.7).
        let chi2 = chi_square(&counts, categories, samples.len());
        assert!(chi2 < limit, "{kind}: chi-square {chi2} over {categories} outcomes");
    }
}

#[test]
fn permutations_are_reproducible_per_key_and_differ_between_samples() {
    let a = batch_permutations(Jigsaw::Uniform, 8, 1, 2, &[10, 11], 0);
    let b = batch_permutations(Jigsaw::Uniform, 8, 1, 2, &[10, 11], 0);
    assert_eq!(a, b);
    assert_ne!(a[..64], a[64..]);
    // A sample's permutation does not depend on the batch it is in.
    assert_eq!(batch_permutations(Jigsaw::Uniform, 8, 1, 2, &[11], 0), a[64..].to_vec());
    assert_ne!(batch_permutations(Jigsaw::Uniform, 8, 1, 3, &[10], 0), a[..64].to_vec());
    assert_ne!(batch_permutations(Jigsaw::Uniform, 8, 1, 2, &[10], 1), a[..64].to_vec());
}

#[test]
fn grids_parse_default_and_check_divisibility() {
    assert_eq!("16,8,4".parse::<Grids>().unwrap(), Grids::ISIC);
    assert_eq!("32 16 8".parse::<Grids>().unwrap(), Grids::APTOS);
    assert!("16,8".parse::<Grids>().is_err());
    assert!("16,0,4".parse::<Grids>().is_err());
    assert_eq!(Grids::for_dataset(fgssl::data::DatasetKind::Aptos2019), Grids([32, 16, 8]));
    assert_eq!(Grids::for_dataset(fgssl::data::DatasetKind::Isic2018), Grids([16, 8, 4]));
    assert!(Grids::ISIC.check(224).is_ok());
    let msg = Grids([16, 8, 3]).check(224).unwrap_err().to_string();
    assert!(msg.contains("3 x 3") && msg.contains("224"), "{msg}");
    assert!(matches!(check_divides(30, 4), Err(Error::Invalid(_))));
    assert_eq!("swap-loop".parse::<Jigsaw>().unwrap(), Jigsaw::SwapLoop);
    assert!("random".parse::<Jigsaw>().is_err());
}

// ---- jigsaw gather ------------------------------------------------------------------------------------------

#[test]
fn jigsaw_gather_moves_tiles_and_its_inverse_restores() {
    let b = cpu();
    let (n, c, h, w, grid) = (3, 2, 12, 18, 3);
    let x: Vec<f32> = (0..n * c * h * w).map(|i| i as f32).collect();
    let xt = Tensor::from_host(&b, [n, c, h, w], &x).unwrap();
    let samples: Vec<u32> = (0..n as u32).collect();
    let perms = batch_permutations(Jigsaw::Uniform, grid, 3, 0, &samples, 0);
    let y = ops::jigsaw::forward(&b, grid, &perms, &xt).unwrap();
    let yh = y.to_host(&b).unwrap();
    // Output tile d of sample i is input tile perm[d].
    let (th, tw) = (h / grid, w / grid);
    for i in 0..n {
        for d in 0..grid * grid {
            let s = perms[i * 9 + d] as usize;
            for ch in 0..c {
                for (ty, tx) in [(0, 0), (th - 1, tw - 1), (1, 2)] {
                    let at = |tile: usize| ((i * c + ch) * h + (tile / grid) * th + ty) * w + (tile % grid) * tw + tx;
                    assert_eq!(yh[at(d)], x[at(s)]);
                }
            }
        }
    }
    let inv: Vec<u32> = perms.chunks(9).flat_map(inverse).collect();
    let back = ops::jigsaw::forward(&b, grid, &inv, &y).unwrap().to_host(&b).unwrap();
    assert_eq!(back, x);
}

#[test]
fn jigsaw_rejects_grids_that_do_not_divide_and_non_permutations() {
    let b = cpu();
    let x = Tensor::from_host(&b, [1, 1, 10, 10], &[0.0; 100]).unwrap();
    let Err(err) = ops::jigsaw::forward(&b, 4, &[0; 16], &x) else { panic!("a 4 x 4 grid on 10 x 10 was accepted") };
    assert!(matches!(err, Error::Invalid(_)) && err.to_string().contains("10 x 10"), "{err}");
    assert!(ops::jigsaw::forward(&b, 2, &[0, 1, 2, 2], &x).is_err());
    assert!(ops::jigsaw::forward(&b, 2, &[0, 1, 2], &x).is_err());
    // The same rules inside augment.
    let img = random_images(1, 1, 10);
    let batch = ImageBatch::upload(&b, &img, 1, 10).unwrap();
    let p = [SampleAug::identity(10)];
    assert!(matches!(ops::augment::forward(&b, &batch, 10, &[4], &p, &[0; 16]), Err(Error::Invalid(_))));
    assert!(ops::augment::forward(&b, &batch, 10, &[2], &p, &[0, 1, 1, 3]).is_err());
    let cfg = SslViewConfig::new(10, Grids([5, 2, 3]));
    assert!(matches!(aug::ssl_views(&b, &cfg, &batch, 0, 0, &[0]), Err(Error::Invalid(_))));
}

// ---- augmentation operations ----------------------------------------------------------------------------------

#[test]
fn identity_reproduces_the_normalised_image_exactly() {
    let (n, side) = (2, 13);
    let img = random_images(2, n, side);
    let y = one(&img, n, side, side, &[SampleAug::identity(side); 2]);
    for i in 0..n {
        for c in 0..3 {
            for yy in 0..side {
                for x in 0..side {
                    assert_eq!(y[((i * 3 + c) * side + yy) * side + x], norm(c, px(&img, side, i, c, yy, x)));
                }
            }
        }
    }
    // The Identity policy draws exactly that.
    let p = policy::draw(&Policy::Identity.recipe(), side, side, 9, 9, 9, 1).unwrap();
    assert_eq!(p, SampleAug::identity(side));
}

/// The u8 image flipped on the host, HWC.
fn flip_host(img: &[u8], side: usize, horizontal: bool) -> Vec<u8> {
    let mut out = img.to_vec();
    for y in 0..side {
        for x in 0..side {
            let (sy, sx) = if horizontal { (y, side - 1 - x) } else { (side - 1 - y, x) };
            out[(y * side + x) * 3..][..3].copy_from_slice(&img[(sy * side + sx) * 3..][..3]);
        }
    }
    out
}

#[test]
fn flips_mirror_the_view_and_twice_is_identity() {
    let side = 11;
    let img = random_images(3, 1, side);
    let id = one(&img, 1, side, side, &[SampleAug::identity(side)]);
    for horizontal in [true, false] {
        let mut p = SampleAug::identity(side);
        if horizontal {
            p.hflip = 1;
        } else {
            p.vflip = 1;
        }
        // flip(flip(image)) = image: the flipped view of the host-flipped image is the plain view.
        assert_eq!(one(&flip_host(&img, side, horizontal), 1, side, side, &[p]), id);
        // And the flipped view is the plain view of the host-flipped image.
        assert_eq!(one(&img, 1, side, side, &[p]), one(&flip_host(&img, side, horizontal), 1, side, side, &[SampleAug::identity(side)]));
    }
}

#[test]
fn grayscale_is_the_601_luma_on_every_channel() {
    let side = 9;
    let img = random_images(4, 1, side);
    let mut p = SampleAug::identity(side);
    p.grayscale = 1;
    let y = one(&img, 1, side, side, &[p]);
    let plane = side * side;
    for yy in 0..side {
        for x in 0..side {
            let l = 0.299 * px(&img, side, 0, 0, yy, x) + 0.587 * px(&img, side, 0, 1, yy, x) + 0.114 * px(&img, side, 0, 2, yy, x);
            for c in 0..3 {
                assert_eq!(y[c * plane + yy * side + x], norm(c, l));
            }
        }
    }
}

#[test]
fn blur_keeps_constants_and_the_mean_and_smooths() {
    let side = 24;
    let mut p = SampleAug::identity(side);
    p.set_blur(1.7).unwrap();
    assert_eq!(p.blur_radius, 6);
    let taps: f32 = p.blur_taps[..13].iter().sum();
    assert!((taps - 1.0).abs() < 1e-6);
    // A constant image stays constant (up to the f32 rounding of the normalised taps).
    let flat = vec![77u8; side * side * 3];
    let y = one(&flat, 1, side, side, &[p]);
    for (k, &v) in y.iter().enumerate() {
        assert!((denorm(k / (side * side), v) - 77.0).abs() < 1e-3, "{v}");
    }
    // The mean of a random image is nearly kept (clamp-to-edge borders move it a little), the variance drops.
    let img = random_images(5, 1, side);
    let id = one(&img, 1, side, side, &[SampleAug::identity(side)]);
    let blurred = one(&img, 1, side, side, &[p]);
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let var = |v: &[f32]| {
        let m = mean(v);
        v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64
    };
    for c in 0..3 {
        let (a, b) = (&id[c * 576..][..576], &blurred[c * 576..][..576]);
        assert!((mean(a) - mean(b)).abs() < 0.05, "channel {c}: mean {} -> {}", mean(a), mean(b));
        assert!(var(b) < 0.2 * var(a), "channel {c}: variance {} -> {}", var(a), var(b));
    }
    assert!(p.clone().set_blur(5.0).is_err());
}

#[test]
fn blur_matches_a_direct_separable_gaussian() {
    let side = 10;
    let img = random_images(6, 1, side);
    let mut p = SampleAug::identity(side);
    p.set_blur(0.9).unwrap();
    let y = one(&img, 1, side, side, &[p]);
    let r = p.blur_radius as isize;
    let w = |k: isize| (-(k * k) as f64 / (2.0 * 0.9f64 * 0.9)).exp();
    let total: f64 = (-r..=r).map(w).sum();
    let clamp = |v: isize| v.clamp(0, side as isize - 1) as usize;
    for c in 0..3 {
        for yy in 0..side as isize {
            for x in 0..side as isize {
                let mut acc = 0.0;
                for ky in -r..=r {
                    for kx in -r..=r {
                        acc += w(ky) * w(kx) * px(&img, side, 0, c, clamp(yy + ky), clamp(x + kx)) as f64;
                    }
                }
                let expect = acc / (total * total);
                let got = denorm(c, y[(c * side + yy as usize) * side + x as usize]) as f64;
                assert!((got - expect).abs() < 1e-3, "({c}, {yy}, {x}): {got} vs {expect}");
            }
        }
    }
}

#[test]
fn solarize_inverts_values_from_128() {
    let side = 16;
    // Every byte value appears.
    let img: Vec<u8> = (0..side * side * 3).map(|i| (i % 256) as u8).collect();
    let mut p = SampleAug::identity(side);
    p.solarize = 1;
    let y = one(&img, 1, side, side, &[p]);
    for c in 0..3 {
        for k in 0..side * side {
            let v = img[k * 3 + c] as f32;
            let expect = if v >= 128.0 { 255.0 - v } else { v };
            assert_eq!(y[c * side * side + k], norm(c, expect));
        }
    }
}

#[test]
fn center_crop_picks_the_middle_pixels() {
    // 37 -> 30: top = round(3.5) = 4 (ties to even, as Python's round).
    let (src, out) = (37, 30);
    let img = random_images(7, 2, src);
    let params = policy::draw_batch(&Policy::Test.recipe(), src, out, 1, 2, &[5, 6], 0).unwrap();
    assert_eq!((params[0].crop_top, params[0].crop_left, params[0].crop_h, params[0].crop_w), (4, 4, 30, 30));
    let y = one(&img, 2, src, out, &params);
    for i in 0..2 {
        for c in 0..3 {
            for yy in 0..out {
                for x in 0..out {
                    assert_eq!(y[((i * 3 + c) * out + yy) * out + x], norm(c, px(&img, src, i, c, yy + 4, x + 4)));
                }
            }
        }
    }
    let b = cpu();
    let t = aug::test_view(&b, &ImageBatch::upload(&b, &img, 2, src).unwrap(), out).unwrap();
    assert_eq!(t.to_host(&b).unwrap(), y);
}

#[test]
fn bilinear_halving_averages_pixel_pairs() {
    // align_corners=False at scale 2: output o samples source 2o + 0.5, the mean of pixels 2o and 2o + 1.
    let (src, out) = (8, 4);
    let img = random_images(8, 1, src);
    let y = one(&img, 1, src, out, &[SampleAug::identity(src)]);
    for c in 0..3 {
        for yy in 0..out {
            for x in 0..out {
                let s: f32 = [(0, 0), (0, 1), (1, 0), (1, 1)].iter().map(|&(dy, dx)| px(&img, src, 0, c, 2 * yy + dy, 2 * x + dx)).sum();
                let got = denorm(c, y[(c * out + yy) * out + x]);
                assert!((got - s / 4.0).abs() < 1e-3, "{got} vs {}", s / 4.0);
            }
        }
    }
}

#[test]
fn random_resized_crops_stay_inside_with_torchvision_ranges() {
    let side = 256;
    let mut fallbacks = 0;
    for sample in 0..3000 {
        let mut s = Stream::new(3, 1, sample, 1);
        let (top, left, h, w) = random_resized_crop(side, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut s);
        assert!(h > 0 && w > 0 && top + h <= side && left + w <= side, "{top} {left} {h} {w}");
        if (h, w) == (side, side) {
            fallbacks += 1;
            continue;
        }
        // Rounding of w and h to integers widens the ranges by about one pixel.
        let area = (h * w) as f64 / (side * side) as f64;
        assert!(area > 0.08 * 0.98 && area <= 1.0, "area fraction {area}");
        let ratio = w as f64 / h as f64;
        assert!(ratio > 0.75 * 0.98 && ratio < 4.0 / 3.0 * 1.02, "ratio {ratio}");
    }
    assert!(fallbacks < 300, "{fallbacks} fallbacks of 3000");
    // A ratio range excluding 1 forces the torchvision fallback clipped to it after 10 failed tries.
    let mut s = Stream::new(0, 0, 0, 0);
    let (top, left, h, w) = random_resized_crop(20, (1.0, 1.0), (2.0, 3.0), &mut s);
    assert_eq!((top, left, h, w), (5, 0, 10, 20));
}

#[test]
fn policies_draw_reproducibly_with_their_probabilities() {
    let (src, out) = (256, 224);
    let samples: Vec<u32> = (0..4000).collect();
    let bt = Recipe { ..Policy::BarlowTwins { second_view: true }.recipe() };
    let a = policy::draw_batch(&bt, src, out, 11, 5, &samples, 2).unwrap();
    assert_eq!(a, policy::draw_batch(&bt, src, out, 11, 5, &samples, 2).unwrap());
    assert_ne!(a, policy::draw_batch(&bt, src, out, 11, 6, &samples, 2).unwrap());
    let frac = |f: &dyn Fn(&SampleAug) -> bool| a.iter().filter(|p| f(p)).count() as f64 / a.len() as f64;
    let near = |x: f64, p: f64| (x - p).abs() < 0.03;
    assert!(near(frac(&|p| p.hflip == 1), 0.5));
    assert!(near(frac(&|p| p.vflip == 1), 0.0));
    assert!(near(frac(&|p| p.jitter == 1), 0.8));
    assert!(near(frac(&|p| p.grayscale == 1), 0.2));
    assert!(near(frac(&|p| p.blur_radius > 0), 0.1));
    assert!(near(frac(&|p| p.solarize == 1), 0.2));
    for p in a.iter().filter(|p| p.jitter == 1) {
        let mut order = p.jitter_order;
        order.sort();
        assert_eq!(order, [0, 1, 2, 3]);
        assert!((0.6..=1.4).contains(&p.brightness) && (0.6..=1.4).contains(&p.contrast));
        assert!((0.8..=1.2).contains(&p.saturation) && (-0.1..=0.1).contains(&p.hue));
    }
    for p in a.iter().filter(|p| p.blur_radius > 0) {
        assert!((0.1..=2.0).contains(&p.blur_sigma) && p.blur_radius == (3.0 * p.blur_sigma as f64).ceil() as u32);
    }
    // SSL view 1 always blurs and never solarizes; view 2 never flips.
    let v1 = policy::draw_batch(&Policy::SslOriginal.recipe(), 224, 224, 1, 1, &samples[..500], 1).unwrap();
    assert!(v1.iter().all(|p| p.blur_radius > 0 && p.solarize == 0 && p.crop_h == 224 && p.jitter == 0));
    let v2 = policy::draw_batch(&Policy::SslDistorted.recipe(), 224, 224, 1, 1, &samples[..500], 2).unwrap();
    assert!(v2.iter().all(|p| p.hflip == 0 && p.vflip == 0));
    let isic = policy::draw_batch(&Policy::FinetuneIsic.recipe(), 256, 224, 1, 1, &samples[..500], 3).unwrap();
    assert!(isic.iter().any(|p| p.crop_h != isic[0].crop_h));
    assert!(matches!(Recipe::IDENTITY.crop, Crop::Full));
}

#[test]
fn neutral_jitter_is_nearly_the_identity_and_extreme_jitter_does_what_it_says() {
    let side = 12;
    let img = random_images(9, 1, side);
    let id = one(&img, 1, side, side, &[SampleAug::identity(side)]);
    let mut p = SampleAug::identity(side);
    p.jitter = 1;
    p.jitter_order = [3, 1, 0, 2];
    let y = one(&img, 1, side, side, &[p]);
    for (a, b) in id.iter().zip(&y) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    // Saturation 0 gives grey pixels; contrast 0 then gives the mean grey level everywhere.
    p.saturation = 0.0;
    p.jitter_order = [0, 2, 3, 1];
    p.contrast = 0.0;
    let y = one(&img, 1, side, side, &[p]);
    let plane = side * side;
    let grey: Vec<f32> = (0..plane).map(|k| 0.299 * img[k * 3] as f32 + 0.587 * img[k * 3 + 1] as f32 + 0.114 * img[k * 3 + 2] as f32).collect();
    let mean = grey.iter().map(|&g| g as f64).sum::<f64>() / plane as f64;
    for c in 0..3 {
        for k in 0..plane {
            assert!((denorm(c, y[c * plane + k]) as f64 - mean).abs() < 1e-3);
        }
    }
    // Brightness 0 is black.
    let mut p = SampleAug::identity(side);
    (p.jitter, p.brightness) = (1, 0.0);
    let y = one(&img, 1, side, side, &[p]);
    for c in 0..3 {
        assert!(y[c * plane..][..plane].iter().all(|&v| v == norm(c, 0.0)));
    }
}

// ---- batch views --------------------------------------------------------------------------------------------

#[test]
fn jigsaw_views_are_the_gather_of_the_unshuffled_view() {
    let b = cpu();
    let (n, src, out) = (3, 37, 30);
    let img = random_images(10, n, src);
    let samples = [4, 8, 15];
    let recipe = Policy::BarlowTwins { second_view: true }.recipe();
    let params = policy::draw_batch(&recipe, src, out, 1, 1, &samples, 1).unwrap();
    let perms: Vec<u32> =
        [5, 3, 2].iter().enumerate().flat_map(|(l, &g)| batch_permutations(Jigsaw::SwapLoop, g, 1, 1, &samples, l as u32)).collect();
    let views = augment(&img, n, src, out, &[0, 5, 3, 2], &params, &perms);
    let x = Tensor::from_host(&b, [n, 3, out, out], &views[0]).unwrap();
    let mut off = 0;
    for (k, &g) in [5usize, 3, 2].iter().enumerate() {
        let p = &perms[off..off + n * g * g];
        off += n * g * g;
        assert_eq!(ops::jigsaw::forward(&b, g, p, &x).unwrap().to_host(&b).unwrap(), views[k + 1], "grid {g}");
    }
    // One view at a time gives the same numbers.
    assert_eq!(augment(&img, n, src, out, &[3], &params, &perms[n * 25..n * 34])[0], views[2]);
}

#[test]
fn ssl_and_finetune_views_are_deterministic_and_consistent() {
    let b = cpu();
    let (n, src) = (2, 16);
    let img = random_images(11, n, src);
    let batch = ImageBatch::upload(&b, &img, n, src).unwrap();
    let cfg = SslViewConfig::new(16, Grids([8, 4, 2]));
    let samples = [3, 9];
    let v = aug::ssl_views(&b, &cfg, &batch, 5, 7, &samples).unwrap();
    let again = aug::ssl_views(&b, &cfg, &batch, 5, 7, &samples).unwrap();
    let host = |t: &Tensor<Cpu>| t.to_host(&b).unwrap();
    assert_eq!(v.x1.shape.0, vec![n, 3, 16, 16]);
    assert_eq!(host(&v.x1), host(&again.x1));
    assert_eq!(host(&v.x2), host(&again.x2));
    assert_ne!(host(&v.x1), host(&v.x2));
    for (k, &g) in [8usize, 4, 2].iter().enumerate() {
        let perms = batch_permutations(Jigsaw::Uniform, g, 5, 7, &samples, k as u32);
        assert_eq!(host(&v.jig[k]), ops::jigsaw::forward(&b, g, &perms, &v.x1).unwrap().to_host(&b).unwrap());
    }
    let next = aug::ssl_views(&b, &cfg, &batch, 5, 8, &samples).unwrap();
    assert_ne!(host(&v.x1), host(&next.x1));

    let fcfg = aug::FinetuneViewConfig { out: 12, grids: Grids([4, 2, 1]), jigsaw: Jigsaw::Uniform, recipe: Policy::FinetuneIsic.recipe() };
    let f = aug::finetune_views(&b, &fcfg, &batch, 5, 7, &samples).unwrap();
    assert_eq!(f.x.shape.0, vec![n, 3, 12, 12]);
    let perms = batch_permutations(Jigsaw::Uniform, 4, 5, 7, &samples, 0);
    assert_eq!(host(&f.jig[0]), ops::jigsaw::forward(&b, 4, &perms, &f.x).unwrap().to_host(&b).unwrap());
    // A 1 x 1 grid is the identity.
    assert_eq!(host(&f.jig[2]), host(&f.x));
    assert!(aug::ssl_views(&b, &cfg, &batch, 5, 7, &[1]).is_err());
}
