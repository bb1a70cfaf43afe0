//! The model FLOP count of `fgssl bench` (src/model/flops.rs, `Fgssl::step_macs`) against a hand computation for a
//! small FG-SSL ResNet-18, and against ANCHORS.md's per-sample numbers for ResNet-50 at 224.

use fgssl::model::fgssl::{Fgssl, FgsslConfig, Head, Plan};
use fgssl::model::flops::StepMacs;
use fgssl::model::resnet::Arch;
use fgssl::training::finetune::finetune_iteration_macs;
use fgssl::training::ssl::{ssl_iteration_macs, BnStats};

const F: u64 = 8;
const P: u64 = 16;
const K: u64 = 3;

/// MACs per image of a convolution written out by hand: output side, output channels, input channels, kernel.
fn conv(out: u64, c_out: u64, c_in: u64, k: u64) -> u64 {
    out * out * c_out * c_in * k * k
}

// ResNet-18 on a 64x64 image: stem 7x7/2 -> 32, max pool -> 16, then layer1..4 at 16, 8, 4, 2.
fn stem() -> u64 {
    conv(32, 64, 3, 7)
}
fn layer1() -> u64 {
    4 * conv(16, 64, 64, 3)
}
/// A stage whose first block halves the side (3x3/2 and a 1x1/2 shortcut), then three 3x3 convs at `out`.
fn down_stage(out: u64, c_in: u64, c: u64) -> u64 {
    conv(out, c, c_in, 3) + conv(out, c, c_in, 1) + 3 * conv(out, c, c, 3)
}
fn layer2() -> u64 {
    down_stage(8, 64, 128)
}
fn layer3() -> u64 {
    down_stage(4, 128, 256)
}
fn layer4() -> u64 {
    down_stage(2, 256, 512)
}
/// Hierarchical block k: 1x1 C->F then 3x3 F->P at the side of the stage it reads.
fn block(k: usize) -> u64 {
    let (side, c) = [(8, 128), (4, 256), (2, 512)][k];
    conv(side, F, c, 1) + conv(side, P, F, 3)
}
fn projector(i: usize) -> u64 {
    if i == 3 {
        3 * P * F
    } else {
        P * F
    }
}

fn small() -> Fgssl {
    Fgssl::new(FgsslConfig { arch: Arch::ResNet18, embed_dim: F as usize, pooled_dim: Some(P as usize), num_classes: Some(K as usize) }, 0.1).0
}

#[test]
fn minimal_steps_count_the_truncated_forward_and_the_path_the_loss_reaches() {
    let m = small();
    // Block 1 reads layer2: the forward stops there; the stem conv computes no input gradient.
    let b1 = m.step_macs(64, Head::Block(0), &Plan::minimal(Head::Block(0), false));
    let fwd = stem() + layer1() + layer2() + block(0) + projector(0);
    assert_eq!(b1, StepMacs { forward: fwd, backward: stem() + 2 * (fwd - stem()) });

    let b3 = m.step_macs(64, Head::Block(2), &Plan::minimal(Head::Block(2), false));
    let fwd = stem() + layer1() + layer2() + layer3() + layer4() + block(2) + projector(2);
    assert_eq!(b3, StepMacs { forward: fwd, backward: stem() + 2 * (fwd - stem()) });

    // The concat step runs the whole backbone, the three blocks and the concat projector (+ its classifier).
    let cat = m.step_macs(64, Head::Concat, &Plan::minimal(Head::Concat, true));
    let fwd = stem() + layer1() + layer2() + layer3() + layer4() + block(0) + block(1) + block(2) + projector(3) + F * K;
    assert_eq!(cat, StepMacs { forward: fwd, backward: stem() + 2 * (fwd - stem()) });
}

#[test]
fn reference_plan_runs_everything_but_back_propagates_only_the_used_path() {
    let m = small();
    let b2 = m.step_macs(64, Head::Block(1), &Plan::full(true));
    let backbone = stem() + layer1() + layer2() + layer3() + layer4();
    let heads: u64 = (0..3).map(block).sum::<u64>() + (0..4).map(projector).sum::<u64>() + 4 * F * K;
    let used = stem() + layer1() + layer2() + layer3() + block(1) + projector(1) + F * K;
    assert_eq!(b2, StepMacs { forward: backbone + heads, backward: stem() + 2 * (used - stem()) });
}

#[test]
fn iterations_sum_their_steps() {
    let m = small();
    let step = |h: Head, classify: bool| m.step_macs(64, h, &Plan::minimal(h, classify));
    let ssl = Head::ALL.iter().map(|&h| step(h, false).total()).sum::<u64>();
    assert_eq!(ssl_iteration_macs(&m, 64, BnStats::Minimal).total(), 2 * ssl, "two views per step");
    let ft = Head::ALL.iter().map(|&h| step(h, true).total()).sum::<u64>();
    assert_eq!(finetune_iteration_macs(&m, 64, BnStats::Minimal).total(), ft);
    // The reference mode's full forwards cost more, its backward is the same.
    let (min, full) = (ssl_iteration_macs(&m, 64, BnStats::Minimal), ssl_iteration_macs(&m, 64, BnStats::Reference));
    assert!(full.forward > min.forward);
    assert_eq!(full.backward, min.backward);
}

#[test]
fn resnet50_at_224_agrees_with_the_anchor_numbers() {
    // ANCHORS.md §3: ResNet-50 forward 4.11 GMAC at 224 (timm); FG-SSL SSL iteration per sample (F 512, P 1024,
    // 2 views x 4 steps) 338 GFLOP as the reference runs it and 284 with the truncation, counting every backward as
    // 2x its forward (the first conv's input gradient included, which we do not count: 0.118 GMAC x 8 forwards).
    let m = Fgssl::new(FgsslConfig::new(Arch::ResNet50), 0.1).0;
    let backbone: u64 = m.backbone.convs(224, 4).iter().map(|c| fgssl::model::flops::conv_macs(c.conv, c.in_side).0).sum();
    assert!((backbone as f64 / 4.09e9 - 1.0).abs() < 0.01, "ResNet-50 convs {backbone} MACs (timm 4.11 G incl. fc)");
    let stem_dx = 2.0 * 8.0 * fgssl::model::flops::conv_macs(m.backbone.convs(224, 1)[0].conv, 224).0 as f64;
    let truncated = 2.0 * ssl_iteration_macs(&m, 224, BnStats::Minimal).total() as f64 + stem_dx;
    let reference = 2.0 * ssl_iteration_macs(&m, 224, BnStats::Reference).total() as f64 + stem_dx;
    assert!((truncated / 284e9 - 1.0).abs() < 0.01, "truncated SSL iteration {truncated:e} FLOP per sample");
    assert!((reference / 338e9 - 1.0).abs() < 0.01, "reference SSL iteration {reference:e} FLOP per sample");
}
