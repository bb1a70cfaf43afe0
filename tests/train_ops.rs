//! The Barlow Twins loss, the collapse monitor and the optimizers against PyTorch (`tests/fixtures/train_ops.safetensors`,
//! written by `scripts/make_train_op_fixtures.py`, whose docstring documents the keys), plus finite differences of
//! the loss, the collapse monitor on collapsed and random data, optimizer-state round trips and input errors.
//!
//! Tolerances (scale-relative, `common::assert_close`'s metric): the f64 CPU reference against PyTorch's f64
//! [`RTOL_F64`] (its outputs pass through f32 on download), the f32 CPU reference [`RTOL_F32`]; optimizer
//! parameters read straight from the f64 arena [`RTOL_OPT_F64`].

mod common;

use common::*;
use fgssl::backend::cpu::{barlow_twins as bt_cpu, Cpu, Cpu64, CpuBackend, Element};
use fgssl::backend::geom::{BarlowTwinsGeom, BT_FORM_REFERENCE, BT_FORM_STANDARD};
use fgssl::backend::Backend;
use fgssl::ops::barlow_twins::{self, std_of_l2_normalized, BtConfig, BtForm};
use fgssl::params::{Init, Params, Slot, Table};
use fgssl::rng::Rng;
use fgssl::tensor::Tensor;
use fgssl::training::optim::{Optimizer, OptimizerKind};

/// f64 CPU reference vs PyTorch f64, outputs rounded to f32 on the way back.
const RTOL_F64: f64 = 1e-6;
/// f32 CPU reference vs PyTorch f64.
const RTOL_F32: f64 = 1e-5;
/// Optimizer parameters in the f64 arena vs PyTorch f64 (only the f32 hyper-parameter fields round).
const RTOL_OPT_F64: f64 = 1e-7;

fn fixture() -> Fixture {
    load_fixture(fixture_path("train_ops.safetensors"))
}

fn f64s(f: &Fixture, key: &str) -> Vec<f64> {
    match &f.tensors.get(key).unwrap_or_else(|| panic!("no tensor {key}")).data {
        Data::F64(v) => v.clone(),
        _ => panic!("{key} is not f64"),
    }
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Scale-relative comparison of f64 data (`assert_close`'s metric without the f32 rounding); the scale is at
/// least `floor`, for references that are (nearly) zero.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn assert_close64(what: &str, got: &[f64], want: &[f64], rtol: f64, floor: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, w| m.max(w.abs())).max(floor).max(1e-300);
    let err = got.iter().zip(want).fold(0f64, |m, (g, w)| if (g - w).is_nan() { f64::INFINITY } else { m.max((g - w).abs()) });
    assert!(!(err / scale > rtol), "{what}: max abs err {err:.3e}, scale {scale:.3e}, rel {:.3e} > {rtol:.0e}", err / scale);
}

// ---- Barlow Twins loss -------------------------------------------------------------------------------------------

fn bt_parity<B: Backend>(b: &B, rtol: f64) {
    let f = fixture();
    let mut seen = 0;
    for (form_name, form) in [("standard", BtForm::Standard), ("reference", BtForm::Reference)] {
        let cases = f.cases(&format!("bt.{form_name}"), "geom");
        assert_eq!(cases.len(), 3, "{form_name}: {cases:?}");
        for case in cases {
            let k = |s: &str| format!("bt.{form_name}.{case}.{s}");
            let g = f.usizes(&k("geom"));
            let hyper = f64s(&f, &k("hyper"));
            let cfg = BtConfig { lambda: hyper[0] as f32, form };
            let za = Tensor::from_host(b, [g[0], g[1]], &to_f32(&f64s(&f, &k("za")))).unwrap();
            let zb = Tensor::from_host(b, [g[0], g[1]], &to_f32(&f64s(&f, &k("zb")))).unwrap();
            let (terms, saved) = barlow_twins::forward(b, &cfg, &za, &zb).unwrap();
            let what = format!("{} bt {form_name} {case}", b.name());
            for (name, got) in [("loss", terms.loss), ("on_diag", terms.on_diag), ("off_diag", terms.off_diag)] {
                assert_close(&format!("{what} {name}"), &[got], &to_f32(&f64s(&f, &k(name))), rtol);
            }
            let (dza, dzb) = barlow_twins::backward(b, &cfg, &saved, hyper[1] as f32).unwrap();
            assert_close(&format!("{what} dza"), &dza.to_host(b).unwrap(), &to_f32(&f64s(&f, &k("dza"))), rtol);
            assert_close(&format!("{what} dzb"), &dzb.to_host(b).unwrap(), &to_f32(&f64s(&f, &k("dzb"))), rtol);
            seen += 1;
        }
    }
    assert_eq!(seen, 6);
}

#[test]
fn barlow_twins_matches_torch_f64() {
    bt_parity(&Cpu64::new(), RTOL_F64);
}

#[test]
fn barlow_twins_matches_torch_f32() {
    bt_parity(&Cpu::new(), RTOL_F32);
}

/// Loss of (za, zb) in f64 through the CPU op directly (no f32 round trip).
fn bt_loss64(g: &BarlowTwinsGeom, za: &[f64], zb: &[f64]) -> f64 {
    let (n, f) = (g.n, g.f);
    let (mut ah, mut bh, mut ia, mut ib, mut c, mut t) =
        (vec![0.0; n * f], vec![0.0; n * f], vec![0.0; f], vec![0.0; f], vec![0.0; f * f], vec![0.0; 3]);
    bt_cpu::fwd(g, za, zb, &mut ah, &mut bh, &mut ia, &mut ib, &mut c, &mut t);
    t[0]
}

#[test]
fn barlow_twins_gradient_matches_finite_differences() {
    let mut rng = Rng::new(11);
    for form in [BT_FORM_STANDARD, BT_FORM_REFERENCE] {
        for &(n, f, lambda) in &[(5usize, 7usize, 0.3f32), (9, 4, 5e-3), (2, 3, 1.0)] {
            let g = BarlowTwinsGeom { n, f, lambda, form };
            let za: Vec<f64> = (0..n * f).map(|_| rng.normal() as f64 * 1.3 + 0.2).collect();
            let zb: Vec<f64> = za.iter().map(|&a| 0.5 * a + rng.normal() as f64).collect();
            let (mut ah, mut bh, mut ia, mut ib, mut c, mut t) =
                (vec![0.0; n * f], vec![0.0; n * f], vec![0.0; f], vec![0.0; f], vec![0.0; f * f], vec![0.0; 3]);
            bt_cpu::fwd(&g, &za, &zb, &mut ah, &mut bh, &mut ia, &mut ib, &mut c, &mut t);
            let (mut dza, mut dzb) = (vec![0.0; n * f], vec![0.0; n * f]);
            bt_cpu::bwd(&g, &ah, &bh, &ia, &ib, &c, 1.0, &mut dza, &mut dzb);
            let h = 1e-6;
            let (mut num_a, mut num_b) = (vec![0.0; n * f], vec![0.0; n * f]);
            for i in 0..n * f {
                let mut p = za.clone();
                p[i] += h;
                let up = bt_loss64(&g, &p, &zb);
                p[i] -= 2.0 * h;
                num_a[i] = (up - bt_loss64(&g, &p, &zb)) / (2.0 * h);
                let mut p = zb.clone();
                p[i] += h;
                let up = bt_loss64(&g, &za, &p);
                p[i] -= 2.0 * h;
                num_b[i] = (up - bt_loss64(&g, &za, &p)) / (2.0 * h);
            }
            let what = format!("form {form} n{n} f{f} lambda {lambda}");
            // Central differences with h = 1e-6 carry ~1e-10 absolute noise (n = 2 has a near-zero gradient: with
            // two samples every standardised column is ±1 whatever z is, up to eps).
            assert_close64(&format!("{what} dza"), &dza, &num_a, 1e-6, 1e-3);
            assert_close64(&format!("{what} dzb"), &dzb, &num_b, 1e-6, 1e-3);
        }
    }
}

#[test]
fn barlow_twins_of_identical_whitened_views_is_near_zero_on_the_diagonal() {
    // za = zb with orthogonal, equal-variance columns: C = I (up to eps), so both terms vanish.
    let b = Cpu64::new();
    let (n, f) = (4, 2);
    let z = [1.0f32, 1.0, -1.0, 1.0, 1.0, -1.0, -1.0, -1.0];
    let za = Tensor::from_host(&b, [n, f], &z).unwrap();
    let (t, _) = barlow_twins::forward(&b, &BtConfig::default(), &za, &za).unwrap();
    // c_ii = 1 / (1 + 1e-5): on_diag = f (1 - c_ii)^2 ≈ 2e-10.
    assert!(t.on_diag < 1e-9 && t.off_diag < 1e-12 && t.loss == t.on_diag + t.off_diag, "{t:?}");
}

#[test]
fn barlow_twins_rejects_bad_input() {
    let b = Cpu::new();
    let cfg = BtConfig::default();
    let one = Tensor::from_host(&b, [1, 4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let e = barlow_twins::forward(&b, &cfg, &one, &one).err().expect("n = 1 must fail").to_string();
    assert!(e.contains("at least 2"), "{e}");
    let a = Tensor::from_host(&b, [2, 3], &[0.0; 6]).unwrap();
    let c = Tensor::from_host(&b, [3, 2], &[0.0; 6]).unwrap();
    assert!(barlow_twins::forward(&b, &cfg, &a, &c).is_err());
    let flat = Tensor::from_host(&b, [6], &[0.0; 6]).unwrap();
    assert!(barlow_twins::forward(&b, &cfg, &flat, &flat).is_err());
    assert_eq!("reference".parse::<BtForm>().unwrap(), BtForm::Reference);
    assert_eq!("standard".parse::<BtForm>().unwrap(), BtForm::Standard);
    assert!("barlow".parse::<BtForm>().is_err());
    assert_eq!(BtConfig::default(), BtConfig { lambda: 5e-3, form: BtForm::Standard });
}

// ---- collapse monitor --------------------------------------------------------------------------------------------

#[test]
fn std_of_l2_normalized_matches_torch() {
    let f = fixture();
    for (b_name, rtol) in [("f64", RTOL_F64), ("f32", RTOL_F32)] {
        for case in ["random", "collapsed"] {
            let z = to_f32(&f64s(&f, &format!("l2std.{case}.z")));
            let want = f64s(&f, &format!("l2std.{case}.value"))[0];
            let shape = f.shape(&format!("l2std.{case}.z")).to_vec();
            let got = if b_name == "f64" {
                let b = Cpu64::new();
                std_of_l2_normalized(&b, &Tensor::from_host(&b, shape, &z).unwrap()).unwrap()
            } else {
                let b = Cpu::new();
                std_of_l2_normalized(&b, &Tensor::from_host(&b, shape, &z).unwrap()).unwrap()
            };
            if case == "collapsed" {
                // PyTorch's value is rounding noise (~1e-9); ours must be at that level too.
                assert!(got.abs() < 1e-6, "{b_name} collapsed: {got}");
            } else {
                assert_close(&format!("{b_name} l2std {case}"), &[got], &[want as f32], rtol);
            }
        }
    }
}

#[test]
fn std_of_l2_normalized_separates_collapse_from_spread() {
    let b = Cpu::new();
    let mut rng = Rng::new(5);
    let (n, d) = (512, 64);
    let random: Vec<f32> = (0..n * d).map(|_| rng.normal()).collect();
    let healthy = std_of_l2_normalized(&b, &Tensor::from_host(&b, [n, d], &random).unwrap()).unwrap();
    let want = 1.0 / (d as f32).sqrt();
    assert!((healthy - want).abs() < 0.05 * want, "random: {healthy} vs 1/sqrt(d) = {want}");
    let dir: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
    let collapsed: Vec<f32> = (0..n).flat_map(|i| dir.iter().map(move |&v| v * (1.0 + i as f32 * 0.01))).collect();
    let c = std_of_l2_normalized(&b, &Tensor::from_host(&b, [n, d], &collapsed).unwrap()).unwrap();
    assert!(c < 1e-6, "collapsed: {c}");
    assert!(std_of_l2_normalized(&b, &Tensor::from_host(&b, [1, d], &random[..d]).unwrap()).is_err());
}

// ---- optimizers --------------------------------------------------------------------------------------------------

struct OptCase {
    kind: OptimizerKind,
    clip: Option<f32>,
    shapes: Vec<Vec<usize>>,
    lr_scale: Vec<f32>,
    steps: usize,
}

fn opt_case(f: &Fixture, case: &str) -> OptCase {
    let pre = format!("opt.{case}.");
    let kind_id = f.usizes(&format!("{pre}kind"))[0];
    let g = f.usizes(&format!("{pre}geom"));
    let h: Vec<f32> = f64s(f, &format!("{pre}hyper")).iter().map(|&v| v as f32).collect();
    let (kind, clip) = match kind_id {
        0 => (OptimizerKind::Sgd { momentum: h[0], weight_decay: h[1] }, h[2]),
        1 => (OptimizerKind::Lars { momentum: h[0], weight_decay: h[1], eta: h[2], exclude_1d: true }, h[3]),
        2 => (OptimizerKind::AdamW { beta1: h[0], beta2: h[1], eps: h[2], weight_decay: h[3] }, h[4]),
        k => panic!("unknown optimizer kind {k}"),
    };
    let shapes = (0..g[0]).map(|j| f.shape(&format!("{pre}p{j}.init")).to_vec()).collect();
    let lr_scale = f64s(f, &format!("{pre}lr_scale")).iter().map(|&v| v as f32).collect();
    OptCase { kind, clip: (clip >= 0.0).then_some(clip), shapes, lr_scale, steps: g[1] }
}

fn table_of(c: &OptCase) -> Table {
    let mut t = Table::default();
    for (j, s) in c.shapes.iter().enumerate() {
        let slot = t.add(format!("p{j}"), s, Init::Const(0.0));
        t.entries[slot.0].lr_scale = c.lr_scale[j];
    }
    t
}

/// Runs the fixture's optimizer case on `CpuBackend<T>`; returns the worst relative error over steps and params.
fn run_opt_case<T: Element>(f: &Fixture, case: &str, rtol: f64) {
    let b = CpuBackend::<T>::new();
    let pre = format!("opt.{case}.");
    let c = opt_case(f, case);
    let table = table_of(&c);
    let init: Vec<f32> = (0..c.shapes.len()).flat_map(|j| to_f32(&f64s(f, &format!("{pre}p{j}.init")))).collect();
    let mut params = Params::new(&b, table, &init).unwrap();
    let mut opt = Optimizer::new(c.kind).with_clip_grad_norm(c.clip);
    let mut skipped = 0;
    for step in 0..c.steps {
        let lr = f64s(f, &format!("{pre}step{step}.lr"))[0] as f32;
        // Parameters without a gradient get NaN there: they must be neither read nor written.
        params.grad.iter_mut().for_each(|g| *g = T::NAN);
        let mut has = vec![false; c.shapes.len()];
        for (j, h) in has.iter_mut().enumerate() {
            let key = format!("{pre}step{step}.p{j}.grad");
            if f.has(&key) {
                let r = params.table.range(Slot(j));
                for (dst, &v) in params.grad[r].iter_mut().zip(&f64s(f, &key)) {
                    *dst = T::from_f64(v);
                }
                *h = true;
            } else {
                skipped += 1;
            }
        }
        opt.step(&b, &mut params, lr, |s| has[s.0]).unwrap();
        if c.clip.is_some() {
            let want = f64s(f, &format!("{pre}step{step}.grad_norm"))[0];
            let got = opt.last_grad_norm.expect("clipping measures the norm") as f64;
            assert!((got - want).abs() <= 1e-6 * want, "{case} step {step}: grad norm {got} vs {want}");
        }
        for j in 0..c.shapes.len() {
            let got: Vec<f64> = params.value[params.table.range(Slot(j))].iter().map(|v| v.to_f64()).collect();
            let want = f64s(f, &format!("{pre}step{step}.p{j}.param"));
            assert_close64(&format!("{} {case} step {step} p{j}", T::NAME), &got, &want, rtol, 0.0);
        }
    }
    assert!(skipped >= 2, "{case}: the fixture skips parameters in some steps");
}

const OPT_CASES: [&str; 4] = ["sgd_groups", "sgd_clip", "lars", "adamw"];

#[test]
fn optimizers_match_torch_f64() {
    let f = fixture();
    for case in OPT_CASES {
        run_opt_case::<f64>(&f, case, RTOL_OPT_F64);
    }
}

#[test]
fn optimizers_match_torch_f32() {
    let f = fixture();
    for case in OPT_CASES {
        run_opt_case::<f32>(&f, case, RTOL_F32);
    }
}

/// Three steps straight through vs two steps, a state round trip into a fresh optimizer and arenas, one more step.
#[test]
fn optimizer_state_round_trip_resumes_exactly() {
    let b = Cpu::new();
    for kind in [OptimizerKind::SGD_DEFAULT, OptimizerKind::LARS_DEFAULT, OptimizerKind::ADAMW_DEFAULT] {
        let c = OptCase { kind, clip: Some(1.0), shapes: vec![vec![4, 3], vec![3]], lr_scale: vec![1.0, 0.1], steps: 3 };
        let mut rng = Rng::new(3);
        let init: Vec<f32> = (0..15).map(|_| rng.normal()).collect();
        let grads: Vec<Vec<f32>> = (0..3).map(|_| (0..15).map(|_| rng.normal()).collect()).collect();
        let run = |params: &mut Params<Cpu>, opt: &mut Optimizer, step: usize| {
            params.grad.copy_from_slice(&grads[step]);
            opt.step(&b, params, 0.05, |s| step != 1 || s.0 == 0).unwrap();
        };
        let mut p1 = Params::new(&b, table_of(&c), &init).unwrap();
        let mut o1 = Optimizer::new(kind).with_clip_grad_norm(c.clip);
        (0..3).for_each(|s| run(&mut p1, &mut o1, s));

        let mut p2 = Params::new(&b, table_of(&c), &init).unwrap();
        let mut o2 = Optimizer::new(kind).with_clip_grad_norm(c.clip);
        (0..2).for_each(|s| run(&mut p2, &mut o2, s));
        let state = o2.state_to_host(&b, &p2).unwrap();
        let values = p2.values_to_host(&b).unwrap();
        let mut p3 = Params::new(&b, table_of(&c), &values).unwrap();
        let mut o3 = Optimizer::new(kind).with_clip_grad_norm(c.clip);
        o3.state_from_host(&b, &mut p3, &state).unwrap();
        run(&mut p3, &mut o3, 2);
        assert_bits_eq(&format!("{} resumed", kind.name()), &p3.values_to_host(&b).unwrap(), &p1.values_to_host(&b).unwrap());

        let mut other = Optimizer::new(if kind.name() == "sgd" { OptimizerKind::ADAMW_DEFAULT } else { OptimizerKind::SGD_DEFAULT });
        assert!(other.state_from_host(&b, &mut p3, &state).is_err(), "a state of another optimizer kind must be refused");
    }
}

#[test]
fn optimizer_kinds_parse() {
    assert_eq!("sgd".parse::<OptimizerKind>().unwrap(), OptimizerKind::Sgd { momentum: 0.9, weight_decay: 5e-4 });
    assert!(matches!("lars".parse::<OptimizerKind>().unwrap(), OptimizerKind::Lars { eta, exclude_1d: true, .. } if eta == 1e-3));
    assert!(matches!("adamw".parse::<OptimizerKind>().unwrap(), OptimizerKind::AdamW { beta2, .. } if beta2 == 0.999));
    assert!("adam".parse::<OptimizerKind>().is_err());
    assert_eq!(OptimizerKind::SGD_DEFAULT.with_weight_decay(0.0).weight_decay(), 0.0);
}
