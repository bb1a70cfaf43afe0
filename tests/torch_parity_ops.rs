//! Parity of every CPU-backend op with PyTorch, against `tests/fixtures/ops.safetensors` (written by
//! `scripts/make_fixtures.py`, whose docstring documents the keys). References are float64 PyTorch results
//! rounded to f32; errors are measured relative to each tensor's scale (see `common::assert_close`).
//!
//! Conventions checked along the way (src/backend/mod.rs): outputs and activation gradients are *written* (the
//! output buffers start as NaN, so an element left unwritten fails), parameter gradients are *accumulated*
//! (they start at zero; the `*_accumulates` tests start them at the reference value and expect twice it).

mod common;

use common::*;
use fgssl::backend::cpu::Cpu;
use fgssl::backend::geom::*;
use fgssl::backend::{Backend, BnEpilogue, BnEpilogueGrad};

/// Elementwise ops (relu, elu, add, concat, pooling routing): one or two roundings at most.
const RTOL_ELEMENTWISE: f64 = 1e-6;
/// Reductions: convolution, linear, batch norm, global average pool, cross-entropy, SGD.
const RTOL_REDUCTION: f64 = 1e-5;

fn ops() -> Fixture {
    load_fixture(fixture_path("ops.safetensors"))
}

fn nan(n: usize) -> Vec<f32> {
    vec![f32::NAN; n]
}

/// Runs `body` for every case of `op` (keys `<op>.<case>.<suffix>`), asserting there are `expect` of them.
fn for_cases(f: &Fixture, op: &str, suffix: &str, expect: usize, mut body: impl FnMut(&str, &str)) {
    let cases = f.cases(op, suffix);
    assert_eq!(cases.len(), expect, "{op}: expected {expect} fixture cases, found {cases:?}");
    for case in &cases {
        let pre = format!("{op}.{case}.");
        body(case, &pre);
    }
}

// ---- convolution ---------------------------------------------------------------------------------------------

fn conv_geom(f: &Fixture, pre: &str) -> Conv2dGeom {
    let g = f.usizes(&format!("{pre}geom"));
    let geom = Conv2dGeom::new(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
    assert_eq!(f.shape(&format!("{pre}y")), &[geom.n, geom.c_out, geom.ho, geom.wo], "{pre}: output shape");
    geom
}

#[test]
fn conv2d_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "conv2d", "geom", 8, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let g = conv_geom(&f, pre);
        let has_bias = f.has(&k("bias"));
        let bias = has_bias.then(|| f.f32(&k("bias")));
        let (x, w, dy) = (f.f32(&k("x")), f.f32(&k("w")), f.f32(&k("dy")));

        let mut y = nan(g.y_len());
        b.conv2d_fwd(&g, x, w, bias, &mut y);
        assert_close(&format!("conv2d {case} y"), &y, f.f32(&k("y")), RTOL_REDUCTION);

        let mut dx = nan(g.x_len());
        let mut dw = vec![0.0; g.w_len()];
        let mut dbias = vec![0.0; g.c_out];
        b.conv2d_bwd(&g, x, w, dy, Some(&mut dx), &mut dw, has_bias.then_some(&mut dbias[..]));
        assert_close(&format!("conv2d {case} dx"), &dx, f.f32(&k("dx")), RTOL_REDUCTION);
        assert_close(&format!("conv2d {case} dw"), &dw, f.f32(&k("dw")), RTOL_REDUCTION);
        if has_bias {
            assert_close(&format!("conv2d {case} dbias"), &dbias, f.f32(&k("dbias")), RTOL_REDUCTION);
        }

        // Without dx (the first layer of a network needs none): the weight gradient is unchanged.
        let mut dw2 = vec![0.0; g.w_len()];
        b.conv2d_bwd(&g, x, w, dy, None, &mut dw2, None);
        assert_close(&format!("conv2d {case} dw (dx = None)"), &dw2, f.f32(&k("dw")), RTOL_REDUCTION);
    });
}

#[test]
fn conv2d_bwd_accumulates() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "conv2d", "geom", 8, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let g = conv_geom(&f, pre);
        let has_bias = f.has(&k("bias"));
        let want_dw: Vec<f32> = f.f32(&k("dw")).iter().map(|v| 2.0 * v).collect();
        let mut dw = f.f32(&k("dw")).to_vec();
        let mut dbias = if has_bias { f.f32(&k("dbias")).to_vec() } else { vec![] };
        let mut dx = nan(g.x_len());
        b.conv2d_bwd(&g, f.f32(&k("x")), f.f32(&k("w")), f.f32(&k("dy")), Some(&mut dx), &mut dw, has_bias.then_some(&mut dbias[..]));
        assert_close(&format!("conv2d {case} dw accumulated"), &dw, &want_dw, RTOL_REDUCTION);
        // dx is written, not accumulated.
        assert_close(&format!("conv2d {case} dx written"), &dx, f.f32(&k("dx")), RTOL_REDUCTION);
        if has_bias {
            let want: Vec<f32> = f.f32(&k("dbias")).iter().map(|v| 2.0 * v).collect();
            assert_close(&format!("conv2d {case} dbias accumulated"), &dbias, &want, RTOL_REDUCTION);
        }
    });
}

// ---- batch norm ----------------------------------------------------------------------------------------------

fn bn_geom(f: &Fixture, pre: &str) -> BatchNormGeom {
    let g = f.usizes(&format!("{pre}geom"));
    let hyper = f.f32(&format!("{pre}hyper"));
    let (n, c, hw) = match g.as_slice() {
        &[n, c, h, w] => (n, c, h * w),
        &[n, c] => (n, c, 1),
        d => panic!("{pre}: bad geometry {d:?}"),
    };
    BatchNormGeom { n, c, hw, eps: hyper[0], momentum: *hyper.get(1).unwrap_or(&0.0) }
}

fn check_bn_train(op: &str, expect: usize) {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, op, "geom", expect, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let what = |s: &str| format!("{op} {case} {s}");
        let g = bn_geom(&f, pre);
        let (x, gamma, beta) = (f.f32(&k("x")), f.f32(&k("gamma")), f.f32(&k("beta")));
        let mut rm = f.f32(&k("running_mean_in")).to_vec();
        let mut rv = f.f32(&k("running_var_in")).to_vec();
        let mut y = nan(g.numel());
        let (mut mean, mut invstd) = (nan(g.c), nan(g.c));
        b.batch_norm_fwd_train(&g, x, gamma, beta, &mut rm, &mut rv, &mut y, &mut mean, &mut invstd, BnEpilogue::None);
        assert_close(&what("y"), &y, f.f32(&k("y")), RTOL_REDUCTION);
        assert_close(&what("running_mean"), &rm, f.f32(&k("running_mean_out")), RTOL_REDUCTION);
        assert_close(&what("running_var"), &rv, f.f32(&k("running_var_out")), RTOL_REDUCTION);
        assert_close(&what("saved_mean"), &mean, f.f32(&k("saved_mean")), RTOL_REDUCTION);
        assert_close(&what("saved_invstd"), &invstd, f.f32(&k("saved_invstd")), RTOL_REDUCTION);

        let mut dx = nan(g.numel());
        let (mut dgamma, mut dbeta) = (vec![0.0; g.c], vec![0.0; g.c]);
        b.batch_norm_bwd(&g, x, gamma, &mean, &invstd, f.f32(&k("dy")), &mut dx, &mut dgamma, &mut dbeta, BnEpilogueGrad::None);
        assert_close(&what("dx"), &dx, f.f32(&k("dx")), RTOL_REDUCTION);
        assert_close(&what("dgamma"), &dgamma, f.f32(&k("dgamma")), RTOL_REDUCTION);
        assert_close(&what("dbeta"), &dbeta, f.f32(&k("dbeta")), RTOL_REDUCTION);

        // Parameter gradients accumulate, dx is written.
        let mut dgamma2 = f.f32(&k("dgamma")).to_vec();
        let mut dbeta2 = f.f32(&k("dbeta")).to_vec();
        let mut dx2 = nan(g.numel());
        b.batch_norm_bwd(&g, x, gamma, &mean, &invstd, f.f32(&k("dy")), &mut dx2, &mut dgamma2, &mut dbeta2, BnEpilogueGrad::None);
        let twice = |s: &str| f.f32(&k(s)).iter().map(|v| 2.0 * v).collect::<Vec<f32>>();
        assert_close(&what("dgamma accumulated"), &dgamma2, &twice("dgamma"), RTOL_REDUCTION);
        assert_close(&what("dbeta accumulated"), &dbeta2, &twice("dbeta"), RTOL_REDUCTION);
        assert_close(&what("dx written"), &dx2, f.f32(&k("dx")), RTOL_REDUCTION);
    });
}

#[test]
fn batch_norm_2d_train_matches_torch() {
    check_bn_train("bn2d_train", 3);
}

#[test]
fn batch_norm_1d_train_matches_torch() {
    check_bn_train("bn1d_train", 2);
}

#[test]
fn batch_norm_2d_eval_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "bn2d_eval", "geom", 2, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let g = bn_geom(&f, pre);
        let mut y = nan(g.numel());
        b.batch_norm_fwd_eval(
            &g,
            f.f32(&k("x")),
            f.f32(&k("gamma")),
            f.f32(&k("beta")),
            f.f32(&k("running_mean")),
            f.f32(&k("running_var")),
            &mut y,
            BnEpilogue::None,
        );
        assert_close(&format!("bn2d_eval {case} y"), &y, f.f32(&k("y")), RTOL_REDUCTION);
    });
}

// ---- activations ---------------------------------------------------------------------------------------------

#[test]
fn relu_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "relu", "x", 2, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let x = f.f32(&k("x"));
        let n = x.len();
        let mut y = nan(n);
        b.relu_fwd(n, x, &mut y);
        assert_close(&format!("relu {case} y"), &y, f.f32(&k("y")), RTOL_ELEMENTWISE);
        let mut dx = nan(n);
        b.relu_bwd(n, &y, f.f32(&k("dy")), &mut dx);
        assert_close(&format!("relu {case} dx"), &dx, f.f32(&k("dx")), RTOL_ELEMENTWISE);
    });
}

#[test]
fn elu_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "elu", "x", 2, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let alpha = f.scalar(&k("hyper"));
        let x = f.f32(&k("x"));
        let n = x.len();
        let mut y = nan(n);
        b.elu_fwd(n, alpha, x, &mut y);
        assert_close(&format!("elu {case} y"), &y, f.f32(&k("y")), RTOL_ELEMENTWISE);
        let mut dx = nan(n);
        b.elu_bwd(n, alpha, x, f.f32(&k("dy")), &mut dx);
        assert_close(&format!("elu {case} dx"), &dx, f.f32(&k("dx")), RTOL_ELEMENTWISE);
    });
}

// ---- pooling -------------------------------------------------------------------------------------------------

#[test]
fn max_pool2d_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "max_pool2d", "geom", 4, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let d = f.usizes(&k("geom"));
        let g = MaxPool2dGeom::new(d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
        assert_eq!(f.shape(&k("y")), &[g.n, g.c, g.ho, g.wo], "{pre}: output shape");
        let x = f.f32(&k("x"));
        let mut y = nan(g.n * g.c * g.ho * g.wo);
        b.max_pool2d_fwd(&g, x, &mut y);
        assert_close(&format!("max_pool2d {case} y"), &y, f.f32(&k("y")), RTOL_ELEMENTWISE);
        let mut dx = nan(x.len());
        b.max_pool2d_bwd(&g, x, f.f32(&k("dy")), &mut dx);
        assert_close(&format!("max_pool2d {case} dx"), &dx, f.f32(&k("dx")), RTOL_ELEMENTWISE);
    });
}

fn pool_geom(f: &Fixture, pre: &str) -> GlobalPoolGeom {
    let d = f.usizes(&format!("{pre}geom"));
    GlobalPoolGeom { n: d[0], c: d[1], hw: d[2] * d[3] }
}

#[test]
fn global_max_pool_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "global_max_pool", "geom", 3, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let g = pool_geom(&f, pre);
        let x = f.f32(&k("x"));
        let mut y = nan(g.n * g.c);
        b.global_max_pool_fwd(&g, x, &mut y);
        assert_close(&format!("global_max_pool {case} y"), &y, f.f32(&k("y")), RTOL_ELEMENTWISE);
        let mut dx = nan(x.len());
        b.global_max_pool_bwd(&g, x, f.f32(&k("dy")), &mut dx);
        assert_close(&format!("global_max_pool {case} dx"), &dx, f.f32(&k("dx")), RTOL_ELEMENTWISE);
    });
}

#[test]
fn global_avg_pool_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "global_avg_pool", "geom", 2, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let g = pool_geom(&f, pre);
        let x = f.f32(&k("x"));
        let mut y = nan(g.n * g.c);
        b.global_avg_pool_fwd(&g, x, &mut y);
        assert_close(&format!("global_avg_pool {case} y"), &y, f.f32(&k("y")), RTOL_REDUCTION);
        let mut dx = nan(x.len());
        b.global_avg_pool_bwd(&g, f.f32(&k("dy")), &mut dx);
        assert_close(&format!("global_avg_pool {case} dx"), &dx, f.f32(&k("dx")), RTOL_ELEMENTWISE);
    });
}

// ---- linear --------------------------------------------------------------------------------------------------

#[test]
fn linear_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "linear", "geom", 3, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let d = f.usizes(&k("geom"));
        let g = LinearGeom { n: d[0], in_f: d[1], out_f: d[2] };
        let has_bias = f.has(&k("bias"));
        let bias = has_bias.then(|| f.f32(&k("bias")));
        let (x, w, dy) = (f.f32(&k("x")), f.f32(&k("w")), f.f32(&k("dy")));
        let mut y = nan(g.n * g.out_f);
        b.linear_fwd(&g, x, w, bias, &mut y);
        assert_close(&format!("linear {case} y"), &y, f.f32(&k("y")), RTOL_REDUCTION);

        let mut dx = nan(g.n * g.in_f);
        let mut dw = vec![0.0; g.out_f * g.in_f];
        let mut dbias = vec![0.0; g.out_f];
        b.linear_bwd(&g, x, w, dy, Some(&mut dx), &mut dw, has_bias.then_some(&mut dbias[..]));
        assert_close(&format!("linear {case} dx"), &dx, f.f32(&k("dx")), RTOL_REDUCTION);
        assert_close(&format!("linear {case} dw"), &dw, f.f32(&k("dw")), RTOL_REDUCTION);
        if has_bias {
            assert_close(&format!("linear {case} dbias"), &dbias, f.f32(&k("dbias")), RTOL_REDUCTION);
        }

        // Accumulation, and dx = None.
        let mut dw2 = f.f32(&k("dw")).to_vec();
        let mut dbias2 = if has_bias { f.f32(&k("dbias")).to_vec() } else { vec![] };
        b.linear_bwd(&g, x, w, dy, None, &mut dw2, has_bias.then_some(&mut dbias2[..]));
        let twice = |s: &str| f.f32(&k(s)).iter().map(|v| 2.0 * v).collect::<Vec<f32>>();
        assert_close(&format!("linear {case} dw accumulated"), &dw2, &twice("dw"), RTOL_REDUCTION);
        if has_bias {
            assert_close(&format!("linear {case} dbias accumulated"), &dbias2, &twice("dbias"), RTOL_REDUCTION);
        }
    });
}

// ---- plumbing ------------------------------------------------------------------------------------------------

#[test]
fn add_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    let (a, c) = (f.f32("add.a.a"), f.f32("add.a.b"));
    let mut y = nan(a.len());
    b.add_fwd(a.len(), a, c, &mut y);
    assert_close("add y", &y, f.f32("add.a.y"), RTOL_ELEMENTWISE);
}

#[test]
fn concat_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "concat", "geom", 2, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let d = f.usizes(&k("geom"));
        let g = ConcatGeom { n: d[0], hw: d[1] * d[2], channels: d[3..].to_vec() };
        let xs: Vec<&[f32]> = (0..g.channels.len()).map(|j| f.f32(&k(&format!("x{j}")))).collect();
        let mut y = nan(g.n * g.c_total() * g.hw);
        b.concat_fwd(&g, &xs, &mut y);
        assert_close(&format!("concat {case} y"), &y, f.f32(&k("y")), RTOL_ELEMENTWISE);
        let mut dxs: Vec<Vec<f32>> = g.channels.iter().map(|&c| nan(g.n * c * g.hw)).collect();
        b.concat_bwd(&g, f.f32(&k("dy")), dxs.iter_mut().map(|v| &mut v[..]).collect());
        for (j, dx) in dxs.iter().enumerate() {
            assert_close(&format!("concat {case} dx{j}"), dx, f.f32(&k(&format!("dx{j}"))), RTOL_ELEMENTWISE);
        }
    });
}

#[test]
fn fill_and_upload_roundtrip() {
    use fgssl::tensor::{Format, Shape};
    let b = Cpu::new();
    let mut buf = b.alloc(10, fgssl::tensor::DType::F32).unwrap();
    b.fill(10, 2.5, b.view_mut(&mut buf, 0..10));
    assert!(buf.iter().all(|&v| v == 2.5));
    let host: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    let shape = Shape(vec![2, 3, 2, 2]);
    let up = b.upload(&shape, Format::NCHW_F32, &host).unwrap();
    assert_bits_eq("upload/download", &b.download(&shape, Format::NCHW_F32, &up).unwrap(), &host);
}

// ---- loss ----------------------------------------------------------------------------------------------------

#[test]
fn cross_entropy_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    for_cases(&f, "cross_entropy", "geom", 3, |case, pre| {
        let k = |s: &str| format!("{pre}{s}");
        let d = f.usizes(&k("geom"));
        let g = CrossEntropyGeom { n: d[0], k: d[1] };
        let labels = f.u32s(&k("labels"));
        let mut probs = nan(g.n * g.k);
        let mut loss = nan(1);
        b.cross_entropy_fwd(&g, f.f32(&k("logits")), &labels, &mut probs, &mut loss);
        assert_close(&format!("cross_entropy {case} loss"), &loss, f.f32(&k("loss")), RTOL_REDUCTION);
        assert_close(&format!("cross_entropy {case} probs"), &probs, f.f32(&k("probs")), RTOL_REDUCTION);
        for (dloss, key) in [(1.0f32, "dlogits"), (2.0, "dlogits_scale2")] {
            let mut dlogits = nan(g.n * g.k);
            b.cross_entropy_bwd(&g, &probs, &labels, dloss, &mut dlogits);
            assert_close(&format!("cross_entropy {case} {key}"), &dlogits, f.f32(&k(key)), RTOL_REDUCTION);
        }
    });
}

// ---- optimizer -----------------------------------------------------------------------------------------------

#[test]
fn sgd_matches_torch() {
    let f = ops();
    let b = Cpu::new();
    let d = f.usizes("sgd.geom");
    let (n_params, n_steps) = (d[0], d[1]);
    let hyper = f.f32("sgd.hyper");
    let (momentum, weight_decay) = (hyper[0], hyper[1]);

    // One arena, parameters back to back (as `Params` lays them out).
    let mut ranges = Vec::new();
    let mut params = Vec::new();
    for j in 0..n_params {
        let init = f.f32(&format!("sgd.p{j}.init"));
        ranges.push(params.len()..params.len() + init.len());
        params.extend_from_slice(init);
    }
    let lrs: Vec<f32> = (0..n_params).map(|j| f.scalar(&format!("sgd.p{j}.lr"))).collect();
    let mut bufs = vec![0.0f32; params.len()];
    let mut has_momentum = vec![false; n_params];
    let mut skipped = 0;
    for step in 0..n_steps {
        // Parameters without a gradient get NaN there: they must be skipped entirely.
        let mut grads = nan(params.len());
        let mut segments = Vec::new();
        for j in 0..n_params {
            let key = format!("sgd.step{step}.p{j}.grad");
            if !f.has(&key) {
                skipped += 1;
                continue;
            }
            grads[ranges[j].clone()].copy_from_slice(f.f32(&key));
            segments.push(SgdSegment {
                offset: ranges[j].start,
                len: ranges[j].len(),
                lr: lrs[j],
                weight_decay,
                has_momentum: has_momentum[j] as u32,
            });
            has_momentum[j] = true;
        }
        b.sgd_step(&segments, momentum, &mut params, &grads, &mut bufs);
        for j in 0..n_params {
            let want = f.f32(&format!("sgd.step{step}.p{j}.param"));
            assert_close(&format!("sgd step {step} p{j}"), &params[ranges[j].clone()], want, RTOL_REDUCTION);
        }
    }
    assert_eq!(skipped, 2, "the fixture has two (step, parameter) pairs without a gradient");
}

// ---- the generator the model fixtures rely on ------------------------------------------------------------------

#[test]
fn fixture_generator_matches_python() {
    let f = load_fixture(fixture_path("resnet50.safetensors"));
    let want = f.f32("gen.check");
    assert_eq!(want.len(), 16);
    let got = fixture_tensor("layer1.0.conv1.weight", &[64, 64, 3, 3]);
    assert_bits_eq("gen.check (layer1.0.conv1.weight)", &got[..16], want);

    for file in ["resnet18.safetensors", "resnet50.safetensors"] {
        let f = load_fixture(fixture_path(file));
        let fc_in = f.fc_in_features();
        let state = f.state_dict();
        assert!(state.len() > 100, "{file}: state_dict metadata has {} entries", state.len());
        for (name, shape) in &state {
            // Every entry has a generator rule.
            fixture_kind(name, shape, fc_in);
            let key = format!("gen.{name}");
            if f.has(&key) {
                let want = f.f32(&key);
                let got = fixture_tensor_fc(name, shape, fc_in);
                assert_bits_eq(&format!("{file} {key}"), &got[..want.len()], want);
                if name != "fc.bias" {
                    assert_bits_eq(&format!("{file} {key} (fixture_tensor)"), &fixture_tensor(name, shape)[..want.len()], want);
                }
            }
        }
        // Gradient sample indices, and the norm/projection formulas on the gradients stored in full.
        let mut full = 0;
        for (name, shape) in &state {
            let idx_key = format!("grad.{name}.idx");
            if !f.has(&idx_key) {
                continue; // a buffer
            }
            let numel: usize = shape.iter().product();
            assert_eq!(f.usizes(&idx_key), grad_idx(name, numel), "{file}: {idx_key}");
            if numel <= GRAD_SAMPLES {
                full += 1;
                let g = f.f32(&format!("grad.{name}.val"));
                let abs_sum: f64 = g.iter().map(|v| v.abs() as f64).sum();
                let proj = grad_proj(name, g);
                let want_proj = f.scalar(&format!("grad.{name}.proj")) as f64;
                assert!((proj - want_proj).abs() <= 1e-6 * abs_sum + 1e-30, "{file} {name}: proj {proj:e} vs {want_proj:e}");
                let norm = l2_norm(g);
                let want_norm = f.scalar(&format!("grad.{name}.norm")) as f64;
                assert!((norm - want_norm).abs() <= 1e-6 * want_norm + 1e-30, "{file} {name}: norm {norm:e} vs {want_norm:e}");
            }
        }
        assert!(full > 10, "{file}: only {full} parameters with full gradients");
        assert!(f.torch_f32_err("eval.logits").is_some(), "{file}: torch_f32_rel_err metadata");
    }
}
