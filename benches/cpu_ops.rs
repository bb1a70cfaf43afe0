//! CPU reference benchmarks: conv2d forward and backward at ResNet layer shapes, and a whole ResNet-18 training
//! step (forward, cross-entropy, backward, SGD) at 64x64, batch 32. PyTorch's numbers on the same machine come
//! from `scripts/bench_torch_cpu.py`; both are recorded in docs/PERF.md.

use criterion::{criterion_group, criterion_main, Criterion};
use fgssl::backend::cpu::Cpu;
use fgssl::backend::geom::Conv2dGeom;
use fgssl::backend::Backend;
use fgssl::model::resnet::{Arch, ResNet};
use fgssl::model::{HostState, State};
use fgssl::ops::{cross_entropy, Mode};
use fgssl::rng::Rng;
use fgssl::tensor::Tensor;

/// (name, batch, c_in, size, c_out, kernel, stride): ResNet-18/50 layer shapes at 224x224, batch 8.
const CONV_SHAPES: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("stem7x7", 8, 3, 224, 64, 7, 2),
    ("layer1.3x3", 8, 64, 56, 64, 3, 1),
    ("layer2.3x3s2", 8, 128, 56, 128, 3, 2),
    ("layer3.1x1", 8, 256, 14, 1024, 1, 1),
    ("layer4.3x3", 8, 512, 7, 512, 3, 1),
];

fn conv(c: &mut Criterion) {
    let b = Cpu::new();
    let mut rng = Rng::new(0);
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(10);
    for &(name, n, c_in, size, c_out, k, stride) in CONV_SHAPES {
        let g = Conv2dGeom::new(n, c_in, size, size, c_out, k, stride, k / 2);
        let x = rng.vec_uniform(g.x_len(), -1.0, 1.0);
        let w = rng.vec_uniform(g.w_len(), -0.1, 0.1);
        let dy = rng.vec_uniform(g.y_len(), -1.0, 1.0);
        let mut y = vec![0.0; g.y_len()];
        let (mut dx, mut dw) = (vec![0.0; g.x_len()], vec![0.0; g.w_len()]);
        group.bench_function(format!("fwd/{name}"), |bench| bench.iter(|| b.conv2d_fwd(&g, &x, &w, None, &mut y)));
        group.bench_function(format!("bwd/{name}"), |bench| bench.iter(|| b.conv2d_bwd(&g, &x, &w, &dy, Some(&mut dx), &mut dw, None)));
    }
    group.finish();
}

fn resnet18_step(c: &mut Criterion) {
    let b = Cpu::new();
    let (net, reg) = ResNet::new(Arch::ResNet18, Some(10), false);
    let mut st = State::upload(&b, &reg, &HostState::init(&reg, 0)).unwrap();
    let mut rng = Rng::new(1);
    let (n, size) = (32, 64);
    let input = rng.vec_uniform(n * 3 * size * size, -2.0, 2.0);
    let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    let mut group = c.benchmark_group("resnet18");
    group.sample_size(10);
    group.bench_function("train_step/64x64/b32", |bench| {
        bench.iter(|| {
            let x = Tensor::from_host(&b, [n, 3, size, size], &input).unwrap();
            st.params.zero_grad(&b);
            let acts = net.forward(&b, &mut st, &x, Mode::Train, 4).unwrap();
            let pooled = net.pooled_features(&b, &acts).unwrap();
            let logits = net.logits(&b, &st, &pooled).unwrap();
            let (_loss, saved) = cross_entropy::forward(&b, &logits, &labels).unwrap();
            let dlogits = cross_entropy::backward(&b, &saved, &labels, 1.0).unwrap();
            let d4 = net.logits_backward(&b, &mut st, &acts.output().shape, &pooled, &dlogits).unwrap();
            net.backward(&b, &mut st, &x, &acts, vec![None, None, None, Some(d4)], false).unwrap();
            st.params.sgd_step(&b, 0.01, 0.9, 5e-4, |_| true);
        })
    });
    group.finish();
}

criterion_group!(benches, conv, resnet18_step);
criterion_main!(benches);
