//! Augmentation policies (METHOD.md §5, §8, §13): which random operations a view applies and with what
//! probabilities, and the draw of one sample's deterministic parameters ([`SampleAug`]) from the counter-based
//! [`Stream`] keyed by `(seed, step, sample, op)`.
//!
//! The images arrive from the u8 cache (`data::cache`), already resized with Pillow's antialiased bilinear filter
//! to a fixed square side: 224 for SSL (so the SSL views resize 224 -> out, the identity at out = 224), 256 for
//! fine-tuning and test (cropped to `out`, 224 by default). Semantics of each operation, as `augment_fwd` applies
//! them (see `backend::cpu::augment`):
//! - crop + resize: bilinear with PyTorch's `align_corners=False` rule and **no antialiasing** (torchvision's
//!   tensor `resized_crop` with `antialias=False`); the reference's Barlow Twins crop is bicubic, ours bilinear;
//! - RandomResizedCrop: torchvision's `get_params` (10 attempts, then the central-crop fallback), area scale and
//!   log-uniform aspect ratio; ISIC fine-tuning flips before its crop in the reference, we crop then flip, which
//!   has the same distribution;
//! - colour jitter: torchvision's `ColorJitter` on float images (brightness, contrast against the mean grey
//!   level, saturation, hue through HSV) in a random order, applied with probability `p`;
//! - grayscale: ITU-R 601-2 luma, 0.299 R + 0.587 G + 0.114 B, copied to three channels;
//! - Gaussian blur: a true separable Gaussian, radius ceil(3 sigma), clamp-to-edge borders, normalised weights
//!   (PIL's box-blur approximation is not reproduced: distribution-equivalent, METHOD.md §15.5);
//! - solarize: x >= 128 -> 255 - x on the 0..255 scale; values stay float (no u8 rounding between operations);
//! - ToTensor + Normalize: x / 255, then (x - mean) / std with ImageNet's mean and std.
//!
//! - AugMix (ISIC fine-tuning, METHOD.md §8): torchvision's `AugMix` on the u8 view, see [`super::augmix`]. It runs
//!   on the crop + resize + flips rounded to u8 (half to even), the uint8 image torchvision's PIL pipeline hands
//!   it, and before every float operation; a recipe cannot combine it with colour jitter.

use std::fmt;
use std::str::FromStr;

use super::augmix::{self, AugMix};
use super::philox::Stream;
use crate::backend::geom::{AugmixParams, SampleAug, AUGMENT_MAX_BLUR_RADIUS};
use crate::error::{Error, Result};

/// Stream op ids: each random decision of a view reads its own stream, `op = view_tag << 8 | id`, so adding an
/// operation never shifts the numbers of another.
pub mod op {
    pub const CROP: u32 = 1;
    pub const HFLIP: u32 = 2;
    pub const VFLIP: u32 = 3;
    pub const JITTER: u32 = 4;
    pub const GRAYSCALE: u32 = 5;
    pub const BLUR: u32 = 6;
    pub const SOLARIZE: u32 = 7;
    /// AugMix's Beta and Dirichlet weights; chain `i` reads `AUGMIX_CHAIN + i` (i < 3).
    pub const AUGMIX_MIX: u32 = 8;
    pub const AUGMIX_CHAIN: u32 = 9;
    /// The op id of decision `id` of the view tagged `view`.
    pub const fn of(view: u32, id: u32) -> u32 {
        (view << 8) | id
    }
}

pub use crate::ops::augment::{IMAGENET_MEAN, IMAGENET_STD};

/// How the `out x out` view is cut from the `src x src` cached image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Crop {
    /// The whole image, resized to `out` (the identity when `out == src`).
    Full,
    /// torchvision's `CenterCrop(out)`: top = round((src - out) / 2) (ties to even, as Python's round).
    Center,
    /// torchvision's `RandomResizedCrop(out, scale, ratio)`.
    RandomResized { scale: (f64, f64), ratio: (f64, f64) },
}

/// `ColorJitter(brightness, contrast, saturation, hue)` applied with probability `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
    pub p: f64,
}

/// Everything a policy decides; [`Policy::recipe`] gives the named ones, and a custom recipe works the same way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    pub crop: Crop,
    pub hflip: f64,
    pub vflip: f64,
    pub jitter: Option<Jitter>,
    pub grayscale: f64,
    pub blur: f64,
    pub blur_sigma: (f64, f64),
    pub solarize: f64,
    /// AugMix on the u8 view (ISIC fine-tuning); `None`: off.
    pub augmix: Option<AugMix>,
}

impl Recipe {
    /// No random operation: the (full) image resized to `out` and normalised.
    pub const IDENTITY: Recipe = Recipe {
        crop: Crop::Full,
        hflip: 0.0,
        vflip: 0.0,
        jitter: None,
        grayscale: 0.0,
        blur: 0.0,
        blur_sigma: (0.1, 2.0),
        solarize: 0.0,
        augmix: None,
    };
}

/// The named policies of the method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// SSL view 1, the jigsaw source (§5): hflip 0.5, grayscale 0.2, blur p 1.0 sigma U[0.1, 2.0], no solarize.
    SslOriginal,
    /// SSL view 2 (§5): grayscale 0.2, blur p 0.1, solarize 0.2; no flip.
    SslDistorted,
    /// APTOS fine-tuning (§8): hflip 0.5, vflip 0.5, center crop `out` of the 256 cache.
    FinetuneAptos,
    /// ISIC fine-tuning (§8): hflip 0.5, vflip 0.5, RandomResizedCrop(out, (0.08, 1), (3/4, 4/3)), then
    /// AugMix(severity 3, width 3, depth -1, alpha 1, all ops, bilinear).
    FinetuneIsic,
    /// Test (§8): center crop `out` of the 256 cache.
    Test,
    /// Barlow Twins' own views (§13, bilinear instead of bicubic): RandomResizedCrop, hflip 0.5, colour jitter
    /// (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, blur 1.0 / 0.1, solarize 0.0 / 0.2 for view 1 / view 2.
    BarlowTwins { second_view: bool },
    /// Nothing random: full image resized to `out`, normalised.
    Identity,
}

impl Policy {
    pub fn recipe(self) -> Recipe {
        let rrc = Crop::RandomResized { scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) };
        let id = Recipe::IDENTITY;
        match self {
            Policy::SslOriginal => Recipe { hflip: 0.5, grayscale: 0.2, blur: 1.0, ..id },
            Policy::SslDistorted => Recipe { grayscale: 0.2, blur: 0.1, solarize: 0.2, ..id },
            Policy::FinetuneAptos => Recipe { crop: Crop::Center, hflip: 0.5, vflip: 0.5, ..id },
            Policy::FinetuneIsic => Recipe { crop: rrc, hflip: 0.5, vflip: 0.5, augmix: Some(AugMix::ISIC), ..id },
            Policy::Test => Recipe { crop: Crop::Center, ..id },
            Policy::BarlowTwins { second_view } => Recipe {
                crop: rrc,
                hflip: 0.5,
                jitter: Some(Jitter { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 }),
                grayscale: 0.2,
                blur: if second_view { 0.1 } else { 1.0 },
                solarize: if second_view { 0.2 } else { 0.0 },
                ..id
            },
            Policy::Identity => id,
        }
    }
}

impl FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "ssl-original" => Policy::SslOriginal,
            "ssl-distorted" => Policy::SslDistorted,
            "finetune-aptos" => Policy::FinetuneAptos,
            "finetune-isic" => Policy::FinetuneIsic,
            "test" => Policy::Test,
            "barlow-twins-1" => Policy::BarlowTwins { second_view: false },
            "barlow-twins-2" => Policy::BarlowTwins { second_view: true },
            "identity" => Policy::Identity,
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown augmentation policy '{s}' (expected ssl-original, ssl-distorted, finetune-aptos, finetune-isic, test, barlow-twins-1, barlow-twins-2 or identity)"
                )))
            }
        })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::SslOriginal => "ssl-original",
            Policy::SslDistorted => "ssl-distorted",
            Policy::FinetuneAptos => "finetune-aptos",
            Policy::FinetuneIsic => "finetune-isic",
            Policy::Test => "test",
            Policy::BarlowTwins { second_view: false } => "barlow-twins-1",
            Policy::BarlowTwins { second_view: true } => "barlow-twins-2",
            Policy::Identity => "identity",
        })
    }
}

impl SampleAug {
    /// The whole `src x src` image, nothing else.
    pub fn identity(src: usize) -> SampleAug {
        SampleAug {
            crop_top: 0,
            crop_left: 0,
            crop_h: src as u32,
            crop_w: src as u32,
            hflip: 0,
            vflip: 0,
            jitter: 0,
            jitter_order: [0, 1, 2, 3],
            brightness: 1.0,
            contrast: 1.0,
            saturation: 1.0,
            hue: 0.0,
            grayscale: 0,
            solarize: 0,
            blur_radius: 0,
            blur_sigma: 0.0,
            blur_taps: [0.0; 2 * AUGMENT_MAX_BLUR_RADIUS + 1],
            augmix: AugmixParams::OFF,
        }
    }

    /// Turns the Gaussian blur on: radius ceil(3 sigma) and the normalised weights exp(-k^2 / (2 sigma^2)),
    /// computed in f64 and rounded to f32 once, so every backend uses the same taps.
    pub fn set_blur(&mut self, sigma: f64) -> Result<()> {
        let radius = (3.0 * sigma).ceil() as usize;
        if sigma.is_nan() || sigma <= 0.0 || radius > AUGMENT_MAX_BLUR_RADIUS {
            return Err(Error::Invalid(format!(
                "blur sigma {sigma} is out of range (0, {}]: the radius ceil(3 sigma) must be at most {AUGMENT_MAX_BLUR_RADIUS}",
                AUGMENT_MAX_BLUR_RADIUS as f64 / 3.0
            )));
        }
        let w: Vec<f64> = (0..=2 * radius).map(|i| (-((i as f64 - radius as f64).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
        let total: f64 = w.iter().sum();
        self.blur_taps = [0.0; 2 * AUGMENT_MAX_BLUR_RADIUS + 1];
        for (t, w) in self.blur_taps.iter_mut().zip(&w) {
            *t = (w / total) as f32;
        }
        self.blur_radius = radius as u32;
        self.blur_sigma = sigma as f32;
        Ok(())
    }
}

/// Python's `round` (ties to even) of a non-negative value, as torchvision uses it for crop sizes.
fn round_half_even(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

/// torchvision's `RandomResizedCrop.get_params` on a `side x side` image: `(top, left, h, w)`.
pub fn random_resized_crop(side: usize, scale: (f64, f64), ratio: (f64, f64), s: &mut Stream) -> (usize, usize, usize, usize) {
    let area = (side * side) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * s.uniform_in(scale.0, scale.1);
        let aspect = s.uniform_in(log_lo, log_hi).exp();
        let w = round_half_even((target_area * aspect).sqrt());
        let h = round_half_even((target_area / aspect).sqrt());
        if 0 < w && w <= side && 0 < h && h <= side {
            let top = s.below((side - h + 1) as u32) as usize;
            let left = s.below((side - w + 1) as u32) as usize;
            return (top, left, h, w);
        }
    }
    // The fallback: a square image has in_ratio 1, inside any ratio range that holds 1; otherwise clip to it.
    let (w, h) = if 1.0 < ratio.0 {
        (side, round_half_even(side as f64 / ratio.0))
    } else if 1.0 > ratio.1 {
        (round_half_even(side as f64 * ratio.1), side)
    } else {
        (side, side)
    };
    ((side - h) / 2, (side - w) / 2, h, w)
}

/// One sample's parameters under `recipe`, for a `src x src` image and an `out x out` view. Every decision reads
/// the stream `(seed, step, sample, op::of(view, id))`; `view` tells apart views drawn from the same image.
pub fn draw(recipe: &Recipe, src: usize, out: usize, seed: u64, step: u32, sample: u32, view: u32) -> Result<SampleAug> {
    let stream = |id| Stream::new(seed, step, sample, op::of(view, id));
    let mut p = SampleAug::identity(src);
    let (top, left, h, w) = match recipe.crop {
        Crop::Full => (0, 0, src, src),
        Crop::Center => {
            if out > src {
                return Err(Error::Invalid(format!("center crop: the view side {out} exceeds the image side {src}")));
            }
            let top = round_half_even((src - out) as f64 / 2.0);
            (top, top, out, out)
        }
        Crop::RandomResized { scale, ratio } => random_resized_crop(src, scale, ratio, &mut stream(op::CROP)),
    };
    (p.crop_top, p.crop_left, p.crop_h, p.crop_w) = (top as u32, left as u32, h as u32, w as u32);
    p.hflip = stream(op::HFLIP).bernoulli(recipe.hflip) as u32;
    p.vflip = stream(op::VFLIP).bernoulli(recipe.vflip) as u32;
    if let Some(j) = recipe.jitter {
        let mut s = stream(op::JITTER);
        if s.bernoulli(j.p) {
            p.jitter = 1;
            // torchvision's get_params: the order first (randperm(4)), then each factor in its range.
            let mut order = [0u32, 1, 2, 3];
            for i in (1..4).rev() {
                order.swap(i, s.below(i as u32 + 1) as usize);
            }
            p.jitter_order = order;
            let mut factor = |x: f64| if x > 0.0 { s.uniform_in((1.0 - x).max(0.0), 1.0 + x) as f32 } else { 1.0 };
            p.brightness = factor(j.brightness);
            p.contrast = factor(j.contrast);
            p.saturation = factor(j.saturation);
            p.hue = if j.hue > 0.0 { s.uniform_in(-j.hue, j.hue) as f32 } else { 0.0 };
        }
    }
    p.grayscale = stream(op::GRAYSCALE).bernoulli(recipe.grayscale) as u32;
    let mut s = stream(op::BLUR);
    if s.bernoulli(recipe.blur) {
        p.set_blur(s.uniform_in(recipe.blur_sigma.0, recipe.blur_sigma.1))?;
    }
    p.solarize = stream(op::SOLARIZE).bernoulli(recipe.solarize) as u32;
    if let Some(cfg) = &recipe.augmix {
        if recipe.jitter.is_some() {
            return Err(Error::Invalid(
                "a recipe cannot combine AugMix with colour jitter (AugMix runs on the u8 view, before every float operation)".into(),
            ));
        }
        p.augmix = augmix::draw(cfg, out, seed, step, sample, view)?;
    }
    Ok(p)
}

/// [`draw`] for each sample of a batch.
pub fn draw_batch(recipe: &Recipe, src: usize, out: usize, seed: u64, step: u32, samples: &[u32], view: u32) -> Result<Vec<SampleAug>> {
    samples.iter().map(|&s| draw(recipe, src, out, seed, step, s, view)).collect()
}
