//! Epoch loops over a decoded image cache: SSL pretraining, fine-tuning and evaluation.
//!
//! Images come from an [`ImageCache`] (u8, decoded and resized once); each batch is uploaded once as u8 and every
//! view is made on the backend (`augment`). The order of each epoch is a seeded shuffle; every random draw of a
//! batch (views, jigsaw permutations) is keyed by the run's seed, the iteration number and each image's row in the
//! cache, so a run is reproducible and the CPU and GPU backends draw the same numbers. The learning rate follows
//! the schedule per epoch (METHOD.md §10). SSL drops the incomplete last batch (Barlow Twins needs batch
//! statistics); fine-tuning keeps it when it holds at least two images.
//!
//! Because of that keying, a loop can start at any epoch boundary ([`LoopConfig::start`]) and compute exactly what
//! an uninterrupted run computes from there on: resuming needs the weights, the optimizer state and the counters
//! of [`Progress`], nothing else. The same holds mid-epoch: the epoch's order is a function of the seed, so a loop
//! started with `start.batch = k` skips the epoch's first k batches. Before every iteration the loop asks its
//! observer whether to stop ([`Observer::stop_requested`], Ctrl-C); if so it hands the observer the progress to
//! save ([`Observer::stopped`]) and returns [`LoopEnd::Stopped`]. A step whose loss is not finite stops the loop
//! with an error naming the epoch, the iteration, the step and the loss.

use std::time::Instant;

use crate::augment::philox::Stream;
use crate::augment::{self, FinetuneViewConfig, ImageBatch, SslViewConfig};
use crate::backend::Backend;
use crate::data::cache::ImageCache;
use crate::error::{Error, Result};
use crate::model::fgssl::{Fgssl, Head};
use crate::model::State;

use super::checkpoint::Progress;
use super::finetune::{ce_step, finetune_iteration, FinetuneBatch, FinetuneMode};
use super::optim::Optimizer;
use super::phases::NoPhases;
use super::schedule::Schedule;
use super::ssl::{ssl_iteration, BnStats, SslBatch, SslConfig, SslStepLog};

/// Philox op tag of the epoch-order stream (distinct from the augmentation ops).
const OP_EPOCH_ORDER: u32 = 0x0E0C;

/// Rows `0..n` in the seeded order of `epoch`, cut into batches of `batch`; a last batch smaller than `min_last`
/// is dropped.
pub fn epoch_batches(n: usize, batch: usize, seed: u64, epoch: usize, min_last: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut s = Stream::new(seed, epoch as u32, 0, OP_EPOCH_ORDER);
    for i in (1..n).rev() {
        order.swap(i, s.below(i as u32 + 1) as usize);
    }
    order.chunks(batch.max(1)).filter(|c| c.len() == batch || c.len() >= min_last.max(1)).map(<[usize]>::to_vec).collect()
}

/// One iteration's record, passed to the caller's logger.
#[derive(Clone, Debug)]
pub struct IterationLog {
    pub epoch: usize,
    /// Iteration number over the whole run (0-based).
    pub iteration: usize,
    pub lr: f32,
    pub images: usize,
    pub seconds: f64,
    /// SSL: the four steps' losses and monitors; fine-tuning: the losses only (monitors zero).
    pub steps: Vec<SslStepLog>,
}

/// Settings shared by both loops.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// Epochs of the whole run (the loop runs `start.epoch..epochs`).
    pub epochs: usize,
    pub batch: usize,
    pub schedule: Schedule,
    pub seed: u64,
    /// Where the loop starts: zero for a new run, a checkpoint's progress when resuming.
    pub start: Progress,
}

/// What the caller sees of a running loop.
pub trait Observer<B: Backend> {
    /// After every iteration; an error stops the run.
    fn iteration(&mut self, it: &IterationLog) -> Result<()>;
    /// After every epoch, with the progress a resumed run would start from (checkpoints are written here). The
    /// state is mutable so that the observer can run the model (a validation pass).
    fn epoch_end(&mut self, _b: &B, _st: &mut State<B>, _opt: &Optimizer, _next: Progress) -> Result<()> {
        Ok(())
    }
    /// Polled before every iteration: `true` stops the loop at this iteration boundary.
    fn stop_requested(&self) -> bool {
        false
    }
    /// Called once when the loop stops on request, with the progress a resumed run starts from (save it here).
    fn stopped(&mut self, _b: &B, _st: &State<B>, _opt: &Optimizer, _at: Progress) -> Result<()> {
        Ok(())
    }
}

/// How a loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopEnd {
    /// Every epoch ran.
    Finished,
    /// The observer asked to stop; a resumed run starts at this progress.
    Stopped(Progress),
}

/// A closure is an observer of iterations only.
impl<B: Backend, F: FnMut(&IterationLog) -> Result<()>> Observer<B> for F {
    fn iteration(&mut self, it: &IterationLog) -> Result<()> {
        self(it)
    }
}

/// Stops the run at the first step whose loss (or Barlow Twins term) is not finite.
fn check_finite(it: &IterationLog, loss_name: &str) -> Result<()> {
    for (k, s) in it.steps.iter().enumerate() {
        if !(s.loss.is_finite() && s.on_diag.is_finite() && s.off_diag.is_finite()) {
            let head = if it.steps.len() == 1 { "concat head".to_string() } else { head_name(k) };
            let terms =
                if loss_name.starts_with("Barlow") { format!(" (on-diagonal {}, off-diagonal {})", s.on_diag, s.off_diag) } else { String::new() };
            return Err(Error::Invalid(format!(
                "the {loss_name} loss is {}{terms} in epoch {} (iteration {} of the run, counting from 0 as metrics.jsonl \
                 does), step {} of {} ({head}), lr {:e}: training stopped (is the learning rate too high?)",
                s.loss,
                it.epoch + 1,
                it.iteration,
                k + 1,
                it.steps.len(),
                it.lr
            )));
        }
    }
    Ok(())
}

fn head_name(step: usize) -> String {
    match step {
        3 => "concat head".into(),
        k => format!("block {} head, layer{}", k + 1, k + 2),
    }
}

/// Asks the observer whether to stop before the iteration at `at`; if so, lets it save and says where the run stopped.
fn stop_if_requested<B: Backend>(b: &B, st: &State<B>, opt: &Optimizer, obs: &mut impl Observer<B>, at: Progress) -> Result<Option<LoopEnd>> {
    if !obs.stop_requested() {
        return Ok(None);
    }
    obs.stopped(b, st, opt, at)?;
    Ok(Some(LoopEnd::Stopped(at)))
}

impl LoopConfig {
    /// Batches of `epoch` already done before this loop started (a run resumed mid-epoch).
    fn skipped(&self, epoch: usize) -> usize {
        if epoch == self.start.epoch {
            self.start.batch
        } else {
            0
        }
    }

    fn check(&self, n: usize, min_batch: usize, what: &str) -> Result<()> {
        self.schedule.validate()?;
        if self.batch < min_batch {
            return Err(Error::Invalid(format!("{what}: batch size {} is below {min_batch}", self.batch)));
        }
        if n < min_batch {
            return Err(Error::Invalid(format!("{what}: {n} images, at least {min_batch} are needed")));
        }
        Ok(())
    }
}

fn upload_rows<B: Backend>(b: &B, cache: &ImageCache, rows: &[usize], buf: &mut Vec<u8>) -> Result<ImageBatch<B>> {
    buf.resize(rows.len() * cache.image_bytes(), 0);
    cache.batch(rows, buf)?;
    ImageBatch::upload(b, buf, rows.len(), cache.size())
}

fn sample_ids(rows: &[usize]) -> Vec<u32> {
    rows.iter().map(|&r| r as u32).collect()
}

/// SSL pretraining: `cfg.epochs` epochs of progressive SSL iterations over every image of `cache` (labels unused).
/// `log` is called after every iteration; an error from it stops the run.
#[allow(clippy::too_many_arguments)]
pub fn pretrain<B: Backend>(
    b: &B,
    model: &Fgssl,
    st: &mut State<B>,
    opt: &mut Optimizer,
    cache: &ImageCache,
    cfg: &LoopConfig,
    ssl: &SslConfig,
    views: &SslViewConfig,
    obs: &mut impl Observer<B>,
) -> Result<LoopEnd> {
    // A batch smaller than the configured one would still work, but BT needs at least 2 samples and SSL drops the
    // incomplete last batch, so a data set smaller than one batch would train on nothing: use it whole instead.
    let batch = cfg.batch.min(cache.len());
    cfg.check(cache.len(), 2, "pretrain")?;
    let mut iteration = cfg.start.iteration;
    let mut host = Vec::new();
    for epoch in cfg.start.epoch..cfg.epochs {
        let lr = cfg.schedule.lr(epoch);
        for (k, rows) in epoch_batches(cache.len(), batch, cfg.seed, epoch, batch).into_iter().enumerate().skip(cfg.skipped(epoch)) {
            if let Some(end) = stop_if_requested(b, st, opt, obs, Progress { epoch, iteration, batch: k })? {
                return Ok(end);
            }
            let t = Instant::now();
            let images = upload_rows(b, cache, &rows, &mut host)?;
            let v = augment::ssl_views(b, views, &images, cfg.seed, iteration as u32, &sample_ids(&rows))?;
            let batch = SslBatch { x1: &v.x1, jigsaw: [&v.jig[0], &v.jig[1], &v.jig[2]], x2: &v.x2 };
            let steps = ssl_iteration(b, model, st, opt, lr, ssl, &batch, &mut NoPhases)?;
            let it = IterationLog { epoch, iteration, lr, images: rows.len(), seconds: t.elapsed().as_secs_f64(), steps: steps.to_vec() };
            obs.iteration(&it)?;
            check_finite(&it, "Barlow Twins")?;
            iteration += 1;
        }
        obs.epoch_end(b, st, opt, Progress { epoch: epoch + 1, iteration, batch: 0 })?;
    }
    Ok(LoopEnd::Finished)
}

/// What fine-tuning runs.
#[derive(Clone, Copy, Debug)]
pub struct FinetuneConfig {
    pub mode: FinetuneMode,
    pub bn_stats: BnStats,
    pub views: FinetuneViewConfig,
}

/// Supervised fine-tuning on every image of `cache` with `labels` (one per cache row).
#[allow(clippy::too_many_arguments)]
pub fn finetune<B: Backend>(
    b: &B,
    model: &Fgssl,
    st: &mut State<B>,
    opt: &mut Optimizer,
    cache: &ImageCache,
    labels: &[u32],
    cfg: &LoopConfig,
    ft: &FinetuneConfig,
    obs: &mut impl Observer<B>,
) -> Result<LoopEnd> {
    if labels.len() != cache.len() {
        return Err(Error::Invalid(format!("finetune: {} labels for {} cached images", labels.len(), cache.len())));
    }
    cfg.check(cache.len(), 2, "finetune")?;
    let mut iteration = cfg.start.iteration;
    let mut host = Vec::new();
    for epoch in cfg.start.epoch..cfg.epochs {
        let lr = cfg.schedule.lr(epoch);
        for (k, rows) in epoch_batches(cache.len(), cfg.batch, cfg.seed, epoch, 2).into_iter().enumerate().skip(cfg.skipped(epoch)) {
            if let Some(end) = stop_if_requested(b, st, opt, obs, Progress { epoch, iteration, batch: k })? {
                return Ok(end);
            }
            let t = Instant::now();
            let images = upload_rows(b, cache, &rows, &mut host)?;
            let y: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
            let ids = sample_ids(&rows);
            let losses = match ft.mode {
                FinetuneMode::Progressive => {
                    let v = augment::finetune_views(b, &ft.views, &images, cfg.seed, iteration as u32, &ids)?;
                    let batch = FinetuneBatch { x: &v.x, jigsaw: [&v.jig[0], &v.jig[1], &v.jig[2]], labels: &y };
                    finetune_iteration(b, model, st, opt, lr, ft.bn_stats, &batch, &mut NoPhases)?.to_vec()
                }
                FinetuneMode::Plain => {
                    let x = augment::train_view(b, &ft.views, &images, cfg.seed, iteration as u32, &ids)?;
                    vec![ce_step(b, model, st, opt, lr, ft.bn_stats, Head::Concat, 1.0, &x, &y, &mut NoPhases)?]
                }
            };
            let steps = losses.iter().map(|&loss| SslStepLog { loss, on_diag: 0.0, off_diag: 0.0, collapse_std: 0.0 }).collect();
            let it = IterationLog { epoch, iteration, lr, images: rows.len(), seconds: t.elapsed().as_secs_f64(), steps };
            obs.iteration(&it)?;
            check_finite(&it, "cross-entropy")?;
            iteration += 1;
        }
        obs.epoch_end(b, st, opt, Progress { epoch: epoch + 1, iteration, batch: 0 })?;
    }
    Ok(LoopEnd::Finished)
}

/// Inference over every image of `cache` (the test view: center crop `out`, METHOD.md §9): the summed logits of the
/// four heads and the concat head's alone, `[n, K]` row-major on the host, in cache order.
pub fn predict<B: Backend>(b: &B, model: &Fgssl, st: &mut State<B>, cache: &ImageCache, out: usize, batch: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let (mut sum, mut cat) = (Vec::new(), Vec::new());
    let mut host = Vec::new();
    let rows: Vec<usize> = (0..cache.len()).collect();
    for chunk in rows.chunks(batch.max(1)) {
        let images = upload_rows(b, cache, chunk, &mut host)?;
        let x = augment::test_view(b, &images, out)?;
        let (s, c) = model.predict(b, st, &x)?;
        sum.extend(s.to_host(b)?);
        cat.extend(c.to_host(b)?);
    }
    Ok((sum, cat))
}
