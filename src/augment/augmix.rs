//! AugMix (Hendrycks et al., ICLR 2020) as torchvision's `transforms.AugMix` applies it to a u8 image tensor:
//! the host-side draw of one sample's chains and mixing weights ([`draw`]) into [`AugmixParams`], which the
//! backends apply (`backend::cpu::augmix`, `kernels/augmix.cu`).
//!
//! Semantics (torchvision 0.29 `transforms/autoaugment.py`, class `AugMix`, and `_functional_tensor.py`):
//! - `m ~ Dirichlet(alpha, alpha)` (a Beta), chain weights `w ~ Dirichlet(alpha x width) * m[1]` (f32 product);
//!   `mix = m[0] * x`, then `mix += w[i] * chain_i(x)` for i in order, all in f32; the result is cast to u8 by
//!   truncation (`Tensor.to(uint8)`).
//! - each chain applies `depth` ops (`chain_depth`, or uniform in 1..=3 when it is -1), each op uniform over
//!   [`OPS`] (the first 9 without `all_ops`), its magnitude `linspace(0, max, 10)[bin]` with `bin` uniform in
//!   `0..severity`, negated with probability 1/2 for the signed ops. Every op takes and returns u8 values.
//! - the geometric ops use bilinear sampling with zero fill and round half to even to u8 (`_apply_grid_transform`),
//!   ShearX/Y about the top-left corner, Translate (truncated to whole pixels) and Rotate about the centre.
//!
//! Randomness: torchvision draws from the global torch generator; here each sample reads the Philox streams
//! `op::AUGMIX_MIX` (the Beta and Dirichlet gammas) and `op::AUGMIX_CHAIN + i` (chain `i`), so the draw is
//! distribution-equivalent, not bit-identical (METHOD.md GPU notes, item 5). Gamma variates use Marsaglia and
//! Tsang's method (2000) with standard normals from Box-Muller; for alpha < 1, `Gamma(alpha + 1) * U^(1 / alpha)`.

use super::philox::Stream;
use super::policy::op;
use crate::backend::geom::{AugmixOp, AugmixParams, AUGMIX_MAX_DEPTH, AUGMIX_MAX_WIDTH};
use crate::error::{Error, Result};

/// The operations, in torchvision's `_augmentation_space` order (the index is [`AugmixOp::kind`]).
pub const OPS: [&str; 13] = [
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
];

/// [`AugmixOp::kind`] values.
pub mod kind {
    pub const SHEAR_X: u32 = 0;
    pub const SHEAR_Y: u32 = 1;
    pub const TRANSLATE_X: u32 = 2;
    pub const TRANSLATE_Y: u32 = 3;
    pub const ROTATE: u32 = 4;
    pub const POSTERIZE: u32 = 5;
    pub const SOLARIZE: u32 = 6;
    pub const AUTO_CONTRAST: u32 = 7;
    pub const EQUALIZE: u32 = 8;
    pub const BRIGHTNESS: u32 = 9;
    pub const COLOR: u32 = 10;
    pub const CONTRAST: u32 = 11;
    pub const SHARPNESS: u32 = 12;
    /// Ops without `all_ops` are `0..BASIC_OPS`.
    pub const BASIC_OPS: u32 = 9;
    /// ShearX..Rotate resample through [`super::AugmixOp::theta`].
    pub const fn is_geometric(k: u32) -> bool {
        k <= ROTATE
    }
}

/// torchvision's number of magnitude bins (`_PARAMETER_MAX`).
pub const BINS: usize = 10;

/// `AugMix(severity, mixture_width, chain_depth, alpha, all_ops)`, bilinear, no fill.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugMix {
    /// 1..=10: magnitudes are drawn from the first `severity` bins.
    pub severity: u32,
    /// Number of chains, 1..=[`AUGMIX_MAX_WIDTH`].
    pub width: usize,
    /// Ops per chain, 1..=[`AUGMIX_MAX_DEPTH`], or -1 (uniform in 1..=3 per chain).
    pub depth: i32,
    pub alpha: f64,
    pub all_ops: bool,
}

impl AugMix {
    /// METHOD.md §8 (torchvision's defaults): severity 3, width 3, depth -1, alpha 1, all ops.
    pub const ISIC: AugMix = AugMix { severity: 3, width: 3, depth: -1, alpha: 1.0, all_ops: true };

    pub fn check(&self) -> Result<()> {
        let depth_ok = self.depth == -1 || (1..=AUGMIX_MAX_DEPTH as i32).contains(&self.depth);
        if !(1..=BINS as u32).contains(&self.severity) || !(1..=AUGMIX_MAX_WIDTH).contains(&self.width) || !depth_ok {
            return Err(Error::Invalid(format!(
                "AugMix: severity {} (1..={BINS}), width {} (1..={AUGMIX_MAX_WIDTH}) or depth {} (-1 or 1..={AUGMIX_MAX_DEPTH}) out of range",
                self.severity, self.width, self.depth
            )));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(Error::Invalid(format!("AugMix: alpha {} must be positive and finite", self.alpha)));
        }
        Ok(())
    }
}

/// `torch.linspace(start, end, 10)[i]` in f32, as PyTorch's CPU kernel computes it (step in f32; the second half
/// counted back from `end`).
pub fn linspace_f32(start: f32, end: f32, i: usize) -> f32 {
    let step = (end - start) / (BINS - 1) as f32;
    if i < BINS / 2 {
        start + step * i as f32
    } else {
        end - step * (BINS - 1 - i) as f32
    }
}

/// Posterize's bits of bin `i`: `4 - round(i / 2.25)` (torchvision's `4 - (arange(10) / ((10 - 1) / 4)).round()`).
pub fn posterize_bits(i: usize) -> u32 {
    4 - (i as f32 / 2.25f32).round_ties_even() as u32
}

/// The unsigned magnitude of op `k` at bin `i` on a `side x side` image (the f32 table value widened to f64, as
/// torchvision's `float(magnitudes[bin].item())`); 0 for AutoContrast and Equalize.
pub fn magnitude(k: u32, i: usize, side: usize) -> f64 {
    let lin = |end: f32| linspace_f32(0.0, end, i) as f64;
    match k {
        kind::SHEAR_X | kind::SHEAR_Y => lin(0.3),
        kind::TRANSLATE_X | kind::TRANSLATE_Y => lin(side as f32 / 3.0),
        kind::ROTATE => lin(30.0),
        kind::POSTERIZE => posterize_bits(i) as f64,
        kind::SOLARIZE => linspace_f32(255.0, 0.0, i) as f64,
        kind::BRIGHTNESS | kind::COLOR | kind::CONTRAST | kind::SHARPNESS => lin(0.9),
        _ => 0.0,
    }
}

/// Whether op `k` draws a random sign (torchvision's `signed`).
pub fn signed(k: u32) -> bool {
    matches!(k, kind::SHEAR_X..=kind::ROTATE | kind::BRIGHTNESS..=kind::SHARPNESS)
}

/// Whether op `k` draws a magnitude bin (AutoContrast and Equalize have none).
fn has_bins(k: u32) -> bool {
    k != kind::AUTO_CONTRAST && k != kind::EQUALIZE
}

/// torchvision's `_get_inverse_affine_matrix(center, angle, translate, scale = 1, shear)` (f64, degrees).
fn inverse_affine(center: [f64; 2], angle: f64, translate: [f64; 2], shear: [f64; 2]) -> [f64; 6] {
    let rot = angle.to_radians();
    let (sx, sy) = (shear[0].to_radians(), shear[1].to_radians());
    let ([cx, cy], [tx, ty]) = (center, translate);
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0];
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// The resolved op `k` with the signed magnitude `mag` on a `side x side` image.
pub fn resolve(k: u32, mag: f64, side: usize) -> AugmixOp {
    let mut o = AugmixOp { kind: k, bits: 0, ratio: 0.0, complement: 0.0, theta: [0.0; 6] };
    let half = side as f64 * 0.5;
    let matrix = match k {
        // torchvision: F.affine(shear = degrees(atan(mag)), center = [0, 0]) -> center_f = -side / 2.
        kind::SHEAR_X => Some(inverse_affine([-half, -half], 0.0, [0.0, 0.0], [mag.atan().to_degrees(), 0.0])),
        kind::SHEAR_Y => Some(inverse_affine([-half, -half], 0.0, [0.0, 0.0], [0.0, mag.atan().to_degrees()])),
        kind::TRANSLATE_X => Some(inverse_affine([0.0, 0.0], 0.0, [mag.trunc(), 0.0], [0.0, 0.0])),
        kind::TRANSLATE_Y => Some(inverse_affine([0.0, 0.0], 0.0, [0.0, mag.trunc()], [0.0, 0.0])),
        // F.rotate passes -angle to the matrix.
        kind::ROTATE => Some(inverse_affine([0.0, 0.0], -mag, [0.0, 0.0], [0.0, 0.0])),
        _ => None,
    };
    if let Some(m) = matrix {
        // rescaled_theta = theta^T / [0.5 w, 0.5 h], in f32.
        let h = (0.5 * side as f64) as f32;
        o.theta = [m[0] as f32 / h, m[1] as f32 / h, m[2] as f32 / h, m[3] as f32 / h, m[4] as f32 / h, m[5] as f32 / h];
    }
    match k {
        kind::POSTERIZE => o.bits = mag as u32,
        kind::SOLARIZE => o.ratio = mag as f32,
        kind::BRIGHTNESS | kind::COLOR | kind::CONTRAST | kind::SHARPNESS => {
            let ratio = 1.0 + mag;
            (o.ratio, o.complement) = (ratio as f32, (1.0 - ratio) as f32);
        }
        _ => {}
    }
    o
}

/// A standard normal (Box-Muller on two uniforms).
fn normal(s: &mut Stream) -> f64 {
    let u1 = 1.0 - s.uniform_f64(); // (0, 1]
    let u2 = s.uniform_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A `Gamma(alpha, 1)` variate: Marsaglia and Tsang (2000) for alpha >= 1, boosted by `U^(1 / alpha)` below 1.
pub fn gamma(alpha: f64, s: &mut Stream) -> f64 {
    if alpha < 1.0 {
        let u = 1.0 - s.uniform_f64();
        return gamma(alpha + 1.0, s) * u.powf(1.0 / alpha);
    }
    let d = alpha - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(s);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - s.uniform_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A `Dirichlet(alpha, ..., alpha)` draw of `k` weights (normalised gammas).
pub fn dirichlet(alpha: f64, k: usize, s: &mut Stream) -> Vec<f64> {
    let g: Vec<f64> = (0..k).map(|_| gamma(alpha, s)).collect();
    let total: f64 = g.iter().sum();
    g.iter().map(|x| x / total).collect()
}

/// One sample's AugMix on a `side x side` view, read from the streams `(seed, step, sample, op::of(view, ..))`.
pub fn draw(cfg: &AugMix, side: usize, seed: u64, step: u32, sample: u32, view: u32) -> Result<AugmixParams> {
    cfg.check()?;
    let stream = |id| Stream::new(seed, step, sample, op::of(view, id));
    let mut s = stream(op::AUGMIX_MIX);
    let m = dirichlet(cfg.alpha, 2, &mut s);
    let w = dirichlet(cfg.alpha, cfg.width, &mut s);
    let m1 = m[1] as f32;
    let mut p = AugmixParams::OFF;
    p.on = 1;
    p.orig_weight = m[0] as f32;
    let n_ops = if cfg.all_ops { OPS.len() as u32 } else { kind::BASIC_OPS };
    for (i, &wi) in w.iter().enumerate() {
        let mut s = stream(op::AUGMIX_CHAIN + i as u32);
        p.chain_weights[i] = wi as f32 * m1;
        let depth = if cfg.depth > 0 { cfg.depth as u32 } else { 1 + s.below(3) };
        p.depth[i] = depth;
        for slot in &mut p.ops[i][..depth as usize] {
            let k = s.below(n_ops);
            let bin = if has_bins(k) { s.below(cfg.severity) as usize } else { 0 };
            let mut mag = magnitude(k, bin, side);
            if signed(k) && s.bernoulli(0.5) {
                mag = -mag;
            }
            *slot = resolve(k, mag, side);
        }
    }
    Ok(p)
}

impl AugmixParams {
    /// No AugMix.
    pub const OFF: AugmixParams = AugmixParams {
        on: 0,
        depth: [0; AUGMIX_MAX_WIDTH],
        orig_weight: 0.0,
        chain_weights: [0.0; AUGMIX_MAX_WIDTH],
        ops: [[AugmixOp { kind: 0, bits: 0, ratio: 0.0, complement: 0.0, theta: [0.0; 6] }; AUGMIX_MAX_DEPTH]; AUGMIX_MAX_WIDTH],
    };

    /// A clear error unless the parameters are in range (op kinds, depths, posterize bits).
    pub fn check(&self) -> Result<()> {
        if self.on == 0 {
            return Ok(());
        }
        for (i, chain) in self.ops.iter().enumerate() {
            let depth = self.depth[i] as usize;
            if depth > AUGMIX_MAX_DEPTH {
                return Err(Error::Invalid(format!("AugMix: chain {i} has depth {depth} (at most {AUGMIX_MAX_DEPTH})")));
            }
            if let Some(o) = chain[..depth].iter().find(|o| o.kind as usize >= OPS.len() || o.bits > 8) {
                return Err(Error::Invalid(format!("AugMix: chain {i} holds an invalid op {o:?}")));
            }
        }
        Ok(())
    }
}
