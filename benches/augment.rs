//! CPU augmentation throughput (the reference path of `ops::augment`): one SSL batch of 32 cached 224 px images
//! through `augment::ssl_views` (view 1 with its three jigsaw views in one call, view 2 in another: 5 tensors of
//! [32, 3, 224, 224]), and the fine-tuning views (ISIC policy, 256 -> 224, 4 tensors).
//!
//! `cargo bench --bench augment` runs 32 images; `cargo test --all-targets` runs each bench once on 4 images so
//! the bench cannot rot.

use criterion::{Criterion, Throughput};
use fgssl::augment::{self, FinetuneViewConfig, Grids, ImageBatch, Jigsaw, Policy, SslViewConfig};
use fgssl::backend::cpu::Cpu;
use fgssl::rng::Rng;

fn images(n: usize, side: usize) -> Vec<u8> {
    let mut rng = Rng::new(1);
    (0..n * side * side * 3).map(|_| rng.below(256) as u8).collect()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: run a small batch once there.
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 32 } else { 4 };
    let b = Cpu::new();
    let samples: Vec<u32> = (0..n as u32).collect();
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("augment");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));

    let ssl = ImageBatch::upload(&b, &images(n, 224), n, 224).expect("batch");
    let cfg = SslViewConfig::new(224, Grids::ISIC);
    let mut step = 0;
    g.bench_function(format!("ssl_views/{n}x224"), |bench| {
        bench.iter(|| {
            step += 1;
            augment::ssl_views(&b, &cfg, &ssl, 7, step, &samples).expect("ssl views")
        })
    });

    let ft = ImageBatch::upload(&b, &images(n, 256), n, 256).expect("batch");
    let fcfg = FinetuneViewConfig { out: 224, grids: Grids::ISIC, jigsaw: Jigsaw::Uniform, recipe: Policy::FinetuneIsic.recipe() };
    g.bench_function(format!("finetune_views/{n}x256->224"), |bench| {
        bench.iter(|| {
            step += 1;
            augment::finetune_views(&b, &fcfg, &ft, 7, step, &samples).expect("finetune views")
        })
    });
    g.finish();
    c.final_summary();
}
