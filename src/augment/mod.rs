//! Data augmentation and jigsaw puzzles for FG-SSL (METHOD.md §4, §5, §8): host-side randomness and the batch
//! views the trainer feeds the model.
//!
//! - [`philox`]: the counter-based generator; every random draw is keyed by `(seed, step, sample, op)`.
//! - [`policy`]: the view policies and the draw of each sample's deterministic parameters.
//! - [`augmix`]: AugMix's chains and mixing weights, drawn per sample (ISIC fine-tuning).
//! - [`jigsaw`]: per-sample tile permutations (uniform or the reference's swap loop) and the grid sizes.
//!
//! The pixel work runs on the backend (`ops::augment`, `ops::jigsaw`): a batch of cached u8 images is uploaded once
//! ([`ImageBatch`]) and every view, the three jigsaw views included, is produced there in one pass.

pub mod augmix;
pub mod jigsaw;
pub mod philox;
pub mod policy;

pub use crate::ops::augment::ImageBatch;
pub use jigsaw::{Grids, Jigsaw};
pub use policy::{Policy, Recipe};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::Tensor;

/// View tags of the streams (`policy::op::of`): the two SSL views and the fine-tuning view of an image draw
/// independent numbers.
pub const VIEW_SSL_1: u32 = 1;
pub const VIEW_SSL_2: u32 = 2;
pub const VIEW_FINETUNE: u32 = 3;

/// How the SSL batch views are made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SslViewConfig {
    /// Side of the views (224; the SSL cache is 224, so the resize is the identity).
    pub out: usize,
    pub grids: Grids,
    pub jigsaw: Jigsaw,
    /// View 1, the jigsaw source ([`Policy::SslOriginal`] by default).
    pub view1: Recipe,
    /// View 2 ([`Policy::SslDistorted`] by default).
    pub view2: Recipe,
}

impl SslViewConfig {
    /// METHOD.md §5 with uniform permutations.
    pub fn new(out: usize, grids: Grids) -> Self {
        SslViewConfig { out, grids, jigsaw: Jigsaw::Uniform, view1: Policy::SslOriginal.recipe(), view2: Policy::SslDistorted.recipe() }
    }
}

/// One SSL batch: view 1 `x1`, its jigsaw views `jig[k] = J_{grids[k]}(x1)` (finest first) and view 2 `x2`, each
/// `[n, 3, out, out]`.
pub struct SslViews<B: Backend> {
    pub x1: Tensor<B>,
    pub jig: [Tensor<B>; 3],
    pub x2: Tensor<B>,
}

/// How the fine-tuning batch views are made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinetuneViewConfig {
    pub out: usize,
    pub grids: Grids,
    pub jigsaw: Jigsaw,
    /// [`Policy::FinetuneAptos`] or [`Policy::FinetuneIsic`].
    pub recipe: Recipe,
}

/// One fine-tuning batch: `jig[k] = J_{grids[k]}(x)` (finest first) and the un-shuffled `x`.
pub struct FinetuneViews<B: Backend> {
    pub jig: [Tensor<B>; 3],
    pub x: Tensor<B>,
}

fn check_samples<B: Backend>(images: &ImageBatch<B>, samples: &[u32]) -> Result<()> {
    if samples.len() != images.n {
        return Err(Error::Invalid(format!("augment: {} sample ids for a batch of {} images", samples.len(), images.n)));
    }
    Ok(())
}

/// Permutations of the three grids, level after level (the layout `ops::augment::forward` expects).
fn three_grid_perms(kind: Jigsaw, grids: Grids, seed: u64, step: u32, samples: &[u32]) -> Vec<u32> {
    (0..3).flat_map(|level| jigsaw::batch_permutations(kind, grids.0[level], seed, step, samples, level as u32)).collect()
}

fn take4<B: Backend>(views: Vec<Tensor<B>>) -> [Tensor<B>; 4] {
    views.try_into().unwrap_or_else(|_| unreachable!("ops::augment::forward returns one tensor per requested view"))
}

/// The SSL views of a batch of cached images (METHOD.md §5, §7). `samples[i]` is image `i`'s index in its data
/// set, which keys its random draws with `seed` and `step`: view-1 parameters are shared by `x1` and its three
/// jigsaw views; each grid gets its own per-sample permutation.
pub fn ssl_views<B: Backend>(b: &B, cfg: &SslViewConfig, images: &ImageBatch<B>, seed: u64, step: u32, samples: &[u32]) -> Result<SslViews<B>> {
    check_samples(images, samples)?;
    cfg.grids.check(cfg.out)?;
    let p1 = policy::draw_batch(&cfg.view1, images.side, cfg.out, seed, step, samples, VIEW_SSL_1)?;
    let perms = three_grid_perms(cfg.jigsaw, cfg.grids, seed, step, samples);
    let [g1, g2, g3] = cfg.grids.0;
    let [x1, j1, j2, j3] = take4(ops::augment::forward(b, images, cfg.out, &[0, g1, g2, g3], &p1, &perms)?);
    let p2 = policy::draw_batch(&cfg.view2, images.side, cfg.out, seed, step, samples, VIEW_SSL_2)?;
    let x2 = ops::augment::forward(b, images, cfg.out, &[0], &p2, &[])?.pop().expect("one view");
    Ok(SslViews { x1, jig: [j1, j2, j3], x2 })
}

/// The fine-tuning views of a batch of cached images (METHOD.md §8): one parameter draw per sample, shared by
/// the three jigsaw views and the un-shuffled view.
pub fn finetune_views<B: Backend>(
    b: &B,
    cfg: &FinetuneViewConfig,
    images: &ImageBatch<B>,
    seed: u64,
    step: u32,
    samples: &[u32],
) -> Result<FinetuneViews<B>> {
    check_samples(images, samples)?;
    cfg.grids.check(cfg.out)?;
    let p = policy::draw_batch(&cfg.recipe, images.side, cfg.out, seed, step, samples, VIEW_FINETUNE)?;
    let perms = three_grid_perms(cfg.jigsaw, cfg.grids, seed, step, samples);
    let [g1, g2, g3] = cfg.grids.0;
    let [j1, j2, j3, x] = take4(ops::augment::forward(b, images, cfg.out, &[g1, g2, g3, 0], &p, &perms)?);
    Ok(FinetuneViews { jig: [j1, j2, j3], x })
}

/// The fine-tuning view alone, without jigsaw views (the single-head fine-tuning baseline): the same parameter
/// draw as [`finetune_views`] makes for its un-shuffled `x`.
pub fn train_view<B: Backend>(b: &B, cfg: &FinetuneViewConfig, images: &ImageBatch<B>, seed: u64, step: u32, samples: &[u32]) -> Result<Tensor<B>> {
    check_samples(images, samples)?;
    let p = policy::draw_batch(&cfg.recipe, images.side, cfg.out, seed, step, samples, VIEW_FINETUNE)?;
    Ok(ops::augment::forward(b, images, cfg.out, &[0], &p, &[])?.pop().expect("one view"))
}

/// The test view (METHOD.md §8): center crop `out` of the cached images, normalised. Nothing random.
pub fn test_view<B: Backend>(b: &B, images: &ImageBatch<B>, out: usize) -> Result<Tensor<B>> {
    let p = policy::draw_batch(&Policy::Test.recipe(), images.side, out, 0, 0, &vec![0; images.n], 0)?;
    Ok(ops::augment::forward(b, images, out, &[0], &p, &[])?.pop().expect("one view"))
}
