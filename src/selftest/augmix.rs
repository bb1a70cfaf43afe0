//! `fgssl selftest` cases for AugMix inside `augment_fwd` (kernels/augmix.cu against backend::cpu::augmix): fresh
//! random images at odd sizes, NaN-poisoned outputs; one case per AugMix op (three chains of depth 1 running that
//! op at different magnitudes and signs), chains of depth 3 / 2 / 1 (both chain buffers), and whole ISIC draws in a
//! batch that mixes samples with and without AugMix. The AugMix arithmetic is integer or rounded the same way on
//! both backends, so the views agree exactly; the tolerance is the augment cases' [`TOL_ELEMENTWISE`].

use super::{take, Act, Case, Kind, TOL_ELEMENTWISE};
use crate::augment::augmix::{self, magnitude, resolve, signed, OPS};
use crate::augment::policy::draw_batch;
use crate::augment::Policy;
use crate::backend::geom::{AugmentGeom, SampleAug, AUGMENT_MAX_VIEWS};
use crate::rng::Rng;

/// Smooth colour fields plus noise (so histograms, extremes and edges are not trivial), `[n, side, side, 3]`.
fn images(rng: &mut Rng, n: usize, side: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * side * side * 3);
    for _ in 0..n {
        let (fx, fy) = (1 + rng.below(5), 1 + rng.below(5));
        for y in 0..side {
            for x in 0..side {
                for c in 0..3 {
                    let base = 128.0 + 90.0 * (((x * fx + y * fy * (c + 1)) as f32) * 0.2).sin();
                    out.push((base + rng.below(61) as f32 - 30.0).clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    out
}

fn case(rng: &mut Rng, desc: String, n: usize, src: usize, out: usize, params: Vec<SampleAug>) -> Case {
    let g = AugmentGeom {
        n,
        src,
        out,
        views: 2,
        grids: {
            let mut grids = [0; AUGMENT_MAX_VIEWS];
            grids[1] = 1;
            grids
        },
        mean: crate::ops::augment::IMAGENET_MEAN,
        std: crate::ops::augment::IMAGENET_STD,
    };
    // View 1 is the 1 x 1 "jigsaw" (the identity permutation): the output path of the shuffled views.
    let perms = vec![0u32; n];
    let imgs = images(rng, n, src);
    Case::new("augment_fwd", format!("augmix {desc} n{n} {src}->{out}"), TOL_ELEMENTWISE, Kind::AugmentFwd(g, imgs, params, perms))
        .output("y", &[n, 3, out, out], Act)
        .output("y", &[n, 3, out, out], Act)
}

pub(super) fn augmix_cases(rng: &mut Rng, quick: bool) -> Vec<Case> {
    let isic = Policy::FinetuneIsic.recipe();
    let draw = |rng: &mut Rng, n: usize, src: usize, out: usize| {
        let samples: Vec<u32> = (0..n as u32).collect();
        draw_batch(&isic, src, out, rng.next_u64(), 1, &samples, 3).unwrap_or_else(|e| panic!("selftest augmix draw: {e}"))
    };
    let mut cs = Vec::new();
    // Whole ISIC draws; sample 1 without AugMix (the kernels must leave it to the float stages).
    let (n, src, out) = (5, 45, 39);
    let mut params = draw(rng, n, src, out);
    params[1].augmix.on = 0;
    cs.push(case(rng, "isic draws".into(), n, src, out, params));
    // Depths 3, 2, 1 with random ops: each chain's result sits in a different buffer.
    let (n, src, out) = (3, 33, 31);
    let mut params = draw(rng, n, src, out);
    for p in &mut params {
        p.augmix.depth = [3, 2, 1];
        for chain in &mut p.augmix.ops {
            for op in chain.iter_mut() {
                let k = rng.below(OPS.len()) as u32;
                *op = resolve(k, magnitude(k, rng.below(augmix::BINS), out), out);
            }
        }
    }
    cs.push(case(rng, "depths 3/2/1".into(), n, src, out, params));
    // One case per op: three depth-1 chains with bins 2 (+), 5 (-), 9 (+) of that op.
    for (k, name) in OPS.iter().enumerate() {
        let k = k as u32;
        let (n, src, out) = (2, 29 + 2 * k as usize, 23 + 2 * k as usize);
        let mut params = draw(rng, n, src, out);
        for p in &mut params {
            p.augmix.depth = [1, 1, 1];
            for (chain, (bin, negative)) in [(2, false), (5, true), (9, false)].into_iter().enumerate() {
                let mag = magnitude(k, bin, out);
                p.augmix.ops[chain][0] = resolve(k, if negative && signed(k) { -mag } else { mag }, out);
            }
        }
        cs.push(case(rng, format!("op {name}"), n, src, out, params));
    }
    take(cs, quick)
}
