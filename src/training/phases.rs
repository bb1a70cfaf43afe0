//! Phase marks inside a training iteration, for `fgssl bench`'s per-phase breakdown.
//!
//! The iteration functions tell a [`PhaseObserver`] when each phase of a step begins; a benchmark records a
//! backend mark ([`Backend::mark`]) there and attributes the time up to the next mark to that phase. Training
//! passes [`NoPhases`], whose empty inlined method leaves the training path as it was (no marks, no syncs).

use crate::backend::Backend;
use crate::error::Result;

/// Where an iteration is. `Upload` and `Augment` are marked by the caller that makes the batch; the iteration
/// marks the others, once per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The u8 batch from host memory to the device.
    Upload,
    /// Augmentation and jigsaw views.
    Augment,
    /// The model forwards and the loss forward.
    Forward,
    /// The loss backward and the model backwards.
    Backward,
    /// Monitors computed after the backward (the SSL collapse monitor).
    Monitor,
    /// Gradient zeroing and the optimizer update.
    Optimizer,
}

impl Phase {
    pub const ALL: [Phase; 6] = [Phase::Upload, Phase::Augment, Phase::Forward, Phase::Backward, Phase::Monitor, Phase::Optimizer];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Upload => "upload",
            Phase::Augment => "augment",
            Phase::Forward => "forward",
            Phase::Backward => "backward",
            Phase::Monitor => "monitor",
            Phase::Optimizer => "optimizer",
        }
    }
}

/// Told when each phase begins.
pub trait PhaseObserver<B: Backend> {
    fn enter(&mut self, b: &B, phase: Phase) -> Result<()>;
}

/// The observer of ordinary training: does nothing.
pub struct NoPhases;

impl<B: Backend> PhaseObserver<B> for NoPhases {
    #[inline(always)]
    fn enter(&mut self, _b: &B, _phase: Phase) -> Result<()> {
        Ok(())
    }
}
