//! Linear probing of a frozen backbone: the standard self-supervised evaluation and a fine-tuning baseline.
//!
//! Features are the evaluation-mode, globally average-pooled `layer4` outputs (torchvision with `fc = Identity`,
//! what `fgssl embed` writes), computed once; only a `Linear(C5 -> K)` is trained on them, with softmax
//! cross-entropy and SGD over shuffled minibatches. The backbone and its running statistics never change.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{Registry, State};
use crate::ops::{cross_entropy, Linear};
use crate::params::Params;
use crate::rng::Rng;
use crate::tensor::Tensor;

use super::optim::Optimizer;
use super::schedule::Schedule;

/// Called after every epoch of the probe's training with the epoch (0-based), its mean loss and the probe's state.
pub type EpochHook<'a, B> = dyn FnMut(usize, f32, &State<B>) -> Result<()> + 'a;

/// A linear classifier on fixed features.
pub struct LinearProbe {
    pub fc: Linear,
    pub registry: Registry,
}

impl LinearProbe {
    /// `Linear(dim -> classes)` with PyTorch's default initialisation.
    pub fn new(dim: usize, classes: usize) -> Self {
        let mut registry = Registry::default();
        let fc = Linear::new(&mut registry.params, "fc", dim, classes, true);
        LinearProbe { fc, registry }
    }

    /// Trains on `features` (`[n, dim]` row-major host data) with `labels`, for `epochs` epochs of minibatches of
    /// `batch` rows in a seeded order, the learning rate following `schedule` per epoch. Returns the mean loss of
    /// each epoch.
    #[allow(clippy::too_many_arguments)]
    pub fn train<B: Backend>(
        &self,
        b: &B,
        st: &mut State<B>,
        opt: &mut Optimizer,
        schedule: &Schedule,
        features: &[f32],
        labels: &[u32],
        epochs: usize,
        batch: usize,
        seed: u64,
    ) -> Result<Vec<f32>> {
        self.train_observed(b, st, opt, schedule, features, labels, epochs, batch, seed, &mut |_, _, _| Ok(()))
    }

    /// [`LinearProbe::train`], calling `on_epoch(epoch, mean loss, state)` after every epoch (to log it or write a
    /// checkpoint); an error from it stops the training.
    #[allow(clippy::too_many_arguments)]
    pub fn train_observed<B: Backend>(
        &self,
        b: &B,
        st: &mut State<B>,
        opt: &mut Optimizer,
        schedule: &Schedule,
        features: &[f32],
        labels: &[u32],
        epochs: usize,
        batch: usize,
        seed: u64,
        on_epoch: &mut EpochHook<'_, B>,
    ) -> Result<Vec<f32>> {
        let dim = self.fc.in_f;
        let n = labels.len();
        if n == 0 || features.len() != n * dim {
            return Err(Error::Invalid(format!("linear probe: {} feature values for {n} labels of dimension {dim}", features.len())));
        }
        let batch = batch.clamp(1, n);
        let mut rng = Rng::new(seed);
        let mut order: Vec<usize> = (0..n).collect();
        let mut epoch_losses = Vec::with_capacity(epochs);
        for epoch in 0..epochs {
            shuffle(&mut order, &mut rng);
            let lr = schedule.lr(epoch);
            let mut sum = 0.0f64;
            let mut count = 0usize;
            for rows in order.chunks(batch) {
                let mut x = Vec::with_capacity(rows.len() * dim);
                rows.iter().for_each(|&r| x.extend_from_slice(&features[r * dim..(r + 1) * dim]));
                let y: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
                let x = Tensor::from_host(b, [rows.len(), dim], &x)?;
                st.params.zero_grad(b);
                let logits = self.fc.forward(b, &st.params, &x)?;
                let (loss, saved) = cross_entropy::forward(b, &logits, &y)?;
                let dlogits = cross_entropy::backward(b, &saved, &y, 1.0)?;
                self.fc.backward(b, &mut st.params, &x, &dlogits, false)?;
                opt.step(b, &mut st.params, lr, |_| true)?;
                sum += loss as f64 * rows.len() as f64;
                count += rows.len();
            }
            epoch_losses.push((sum / count as f64) as f32);
            on_epoch(epoch, epoch_losses[epoch], st)?;
        }
        Ok(epoch_losses)
    }

    /// Logits `[n, K]` (host, row-major) of `features`.
    pub fn logits<B: Backend>(&self, b: &B, params: &Params<B>, features: &[f32]) -> Result<Vec<f32>> {
        let n = features.len() / self.fc.in_f;
        let x = Tensor::from_host(b, [n, self.fc.in_f], features)?;
        self.fc.forward(b, params, &x)?.to_host(b)
    }
}

/// Fisher-Yates with the seeded generator.
fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}
