//! The FG-SSL model's structure (no PyTorch): state-dict names, which parameters each head's step trains, and the
//! claim of METHOD.md §15.1-2 that a step's minimal forward gives the same embedding and the same gradients as
//! the reference's full forward. The numbers themselves are checked against PyTorch in tests/fgssl_parity.rs.

use fgssl::backend::cpu::Cpu64;
use fgssl::backend::Backend;
use fgssl::model::fgssl::{Fgssl, FgsslConfig, Head, HeadGrad, Part, Plan};
use fgssl::model::resnet::Arch;
use fgssl::model::{HostState, State};
use fgssl::ops::{cross_entropy, Mode};
use fgssl::params::Slot;
use fgssl::rng::Rng;
use fgssl::tensor::Tensor;

const N: usize = 4;
const SIZE: usize = 64;
const K: usize = 3;

fn small() -> (Fgssl, fgssl::model::Registry) {
    let cfg = FgsslConfig { arch: Arch::ResNet18, embed_dim: 16, pooled_dim: Some(24), num_classes: Some(K) };
    Fgssl::new(cfg, 0.1)
}

fn input<B: Backend>(b: &B, seed: u64) -> Tensor<B> {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..N * 3 * SIZE * SIZE).map(|_| rng.normal()).collect();
    Tensor::from_host(b, [N, 3, SIZE, SIZE], &x).unwrap()
}

#[test]
fn names_shapes_and_parts_follow_the_spec() {
    let (model, reg) = small();
    let shape = |name: &str| reg.params.entries[reg.params.find(name).unwrap_or_else(|| panic!("no {name}")).0].shape.clone();
    assert_eq!(shape("conv_block1.0.conv.weight"), vec![16, 128, 1, 1], "1x1 C3 -> F");
    assert_eq!(shape("conv_block1.1.conv.weight"), vec![24, 16, 3, 3], "3x3 F -> P");
    assert_eq!(shape("conv_block3.0.conv.weight"), vec![16, 512, 1, 1], "block 3 reads layer4");
    assert_eq!(shape("projector2.1.weight"), vec![16, 24], "Linear(P -> F)");
    assert_eq!(shape("projector_concat.0.weight"), vec![72], "BN1d(3P)");
    assert_eq!(shape("projector_concat.1.weight"), vec![16, 72]);
    assert_eq!(shape("classifier_concat.weight"), vec![K, 16]);
    assert!(reg.params.find("conv_block1.0.conv.bias").is_none(), "BasicConv has no bias");
    assert!(reg.buffers.find("conv_block2.1.bn.running_var").is_some());
    assert!(reg.trackers.iter().any(|t| t == "projector3.2.num_batches_tracked"));
    // BasicConv BN momentum 0.01 and backbone lr x0.1 are part of the model, not of the trainer.
    for e in &reg.params.entries {
        let backbone = !["conv_block", "projector", "classifier"].iter().any(|p| e.name.starts_with(p));
        assert_eq!(e.lr_scale, if backbone { 0.1 } else { 1.0 }, "{}", e.name);
    }
    assert_eq!(model.parts().len(), reg.params.entries.len());
    let part = |name: &str| model.parts()[reg.params.find(name).unwrap().0];
    assert_eq!(part("conv1.weight"), Part::Backbone { stage: 0 });
    assert_eq!(part("layer3.1.bn2.bias"), Part::Backbone { stage: 3 });
    assert_eq!(part("conv_block2.1.bn.weight"), Part::Block(1));
    assert_eq!(part("projector_concat.2.bias"), Part::Projector(3));
    assert_eq!(part("classifier1.bias"), Part::Classifier(0));
    // Default widths: P = C5/2 for ResNet-18, 1024 for ResNet-50.
    assert_eq!(FgsslConfig::new(Arch::ResNet18).pooled(), 256);
    assert_eq!(FgsslConfig::new(Arch::ResNet50).pooled(), 1024);
}

/// Each head's CE step puts a non-zero gradient exactly on the parameters `trained_by` names (the others keep
/// an exactly zero gradient), for the minimal and the full forward alike.
#[test]
fn each_step_trains_exactly_its_path() {
    let b = Cpu64::new();
    let (model, reg) = small();
    let host = HostState::init(&reg, 3);
    let x = input(&b, 11);
    let labels = [0u32, 2, 1, 2];
    for head in Head::ALL {
        for plan in [Plan::minimal(head, true), Plan::full(true)] {
            let mut st = State::upload(&b, &reg, &host).unwrap();
            st.params.zero_grad(&b);
            let acts = model.forward(&b, &mut st, &x, Mode::Train, &plan).unwrap();
            let (_, saved) = cross_entropy::forward(&b, acts.logits(head).unwrap(), &labels).unwrap();
            let dlogits = cross_entropy::backward(&b, &saved, &labels, 1.0).unwrap();
            model.backward(&b, &mut st, &x, &acts, head, HeadGrad::Logits(&dlogits)).unwrap();
            let grads = st.params.grads_to_host(&b).unwrap();
            for (i, e) in reg.params.entries.iter().enumerate() {
                let norm: f64 = grads[e.range.clone()].iter().map(|g| (*g as f64).powi(2)).sum();
                let trained = model.trained_by(head, true, Slot(i));
                assert_eq!(norm > 0.0, trained, "{head:?} {plan:?}: {} has gradient norm^2 {norm}", e.name);
            }
        }
    }
}

/// The minimal forward of a head computes the same embedding, logits and gradients as the full forward (they
/// differ only in which running statistics are updated).
#[test]
fn minimal_forward_matches_full_forward() {
    let b = Cpu64::new();
    let (model, reg) = small();
    let host = HostState::init(&reg, 5);
    let x = input(&b, 13);
    let labels = [1u32, 0, 2, 1];
    for head in Head::ALL {
        let run = |plan: Plan| {
            let mut st = State::upload(&b, &reg, &host).unwrap();
            st.params.zero_grad(&b);
            let acts = model.forward(&b, &mut st, &x, Mode::Train, &plan).unwrap();
            let z = acts.z(head).unwrap().to_host(&b).unwrap();
            let (loss, saved) = cross_entropy::forward(&b, acts.logits(head).unwrap(), &labels).unwrap();
            let dlogits = cross_entropy::backward(&b, &saved, &labels, 1.0).unwrap();
            model.backward(&b, &mut st, &x, &acts, head, HeadGrad::Logits(&dlogits)).unwrap();
            (z, loss, st.params.grads_to_host(&b).unwrap(), st.buffers.batches_tracked.clone())
        };
        let (z_min, loss_min, g_min, tracked_min) = run(Plan::minimal(head, true));
        let (z_full, loss_full, g_full, tracked_full) = run(Plan::full(true));
        assert_eq!(z_min, z_full, "{head:?}: embedding");
        assert_eq!(loss_min, loss_full, "{head:?}: loss");
        assert_eq!(g_min, g_full, "{head:?}: gradients");
        let touched_min = tracked_min.iter().filter(|&&t| t > 0).count();
        let touched_full = tracked_full.iter().filter(|&&t| t > 0).count();
        assert_eq!(touched_full, reg.trackers.len(), "the full forward updates every BN layer");
        if head != Head::Concat {
            assert!(touched_min < touched_full, "{head:?}: the minimal forward skips BN layers ({touched_min} of {touched_full})");
        }
    }
}

#[test]
fn predict_sums_the_four_heads() {
    let b = Cpu64::new();
    let (model, reg) = small();
    let host = HostState::init(&reg, 7);
    let x = input(&b, 17);
    let mut st = State::upload(&b, &reg, &host).unwrap();
    let (sum, y_cat) = model.predict(&b, &mut st, &x).unwrap();
    let acts = model.forward(&b, &mut st, &x, Mode::Eval, &Plan::full(true)).unwrap();
    let heads: Vec<Vec<f32>> = Head::ALL.iter().map(|&h| acts.logits(h).unwrap().to_host(&b).unwrap()).collect();
    // The backend adds in f64; the heads come back rounded to f32.
    let want: Vec<f64> = (0..N * K).map(|i| heads.iter().map(|h| h[i] as f64).sum()).collect();
    for (got, want) in sum.to_host(&b).unwrap().iter().zip(&want) {
        assert!((*got as f64 - want).abs() <= 1e-6 * want.abs().max(1.0), "{got} vs {want}");
    }
    assert_eq!(y_cat.to_host(&b).unwrap(), heads[3]);
    assert!(model.backward(&b, &mut st, &x, &acts, Head::Concat, HeadGrad::Logits(&y_cat)).is_err(), "evaluation keeps nothing for backward");
}

#[test]
fn plans_and_shapes_are_checked() {
    let b = Cpu64::new();
    let (model, reg) = small();
    let host = HostState::init(&reg, 1);
    let mut st = State::upload(&b, &reg, &host).unwrap();
    let x = input(&b, 1);
    let bad = Plan { stop_after: 2, blocks: [true, true, false], projectors: [false; 4], classify: false };
    let e = model.forward(&b, &mut st, &x, Mode::Train, &bad).err().expect("block 2 needs layer3").to_string();
    assert!(e.contains("layer2"), "{e}");
    let (pretrain_model, pretrain_reg) = Fgssl::new(FgsslConfig::new(Arch::ResNet18), 0.1);
    let mut st2 = State::upload(&b, &pretrain_reg, &HostState::init(&pretrain_reg, 1)).unwrap();
    let e = pretrain_model.forward(&b, &mut st2, &x, Mode::Eval, &Plan::full(true)).err().expect("no classifiers").to_string();
    assert!(e.contains("without classifiers"), "{e}");
}
