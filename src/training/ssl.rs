//! One progressive SSL iteration (METHOD.md §7): four optimizer steps per batch, one per head.
//!
//! | step | view-1 input | embedding | loss |
//! |---|---|---|---|
//! | 1 | J_g1(x1), finest grid | z1 (block 1, `layer2`) | BT |
//! | 2 | J_g2(x1) | z2 (block 2, `layer3`) | BT |
//! | 3 | J_g3(x1), coarsest grid | z3 (block 3, `layer4`) | BT |
//! | 4 | x1 unshuffled | z_cat | 2 x BT |
//!
//! View 2 (x2) is never shuffled. Each step: zero gradients, forward view 1, forward view 2 (two forwards, so
//! separate batch-norm statistics), Barlow Twins loss, backward through both branches, one optimizer update.
//!
//! [`BnStats::Minimal`] (default) runs only what the step's loss needs: the backbone up to the stage the head
//! reads and that head alone (METHOD.md §15.1-2). Losses, gradients and weights are the reference's exactly; what
//! differs is the running statistics (and `num_batches_tracked`) of the layers the step skips, which the
//! reference updates on every forward because it always runs the whole model. [`BnStats::Reference`] runs the
//! whole model on every forward, as the reference does, and back-propagates only the used path: identical
//! running statistics too, at the cost of the skipped compute.

use std::fmt;
use std::str::FromStr;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::fgssl::{Fgssl, Head, HeadGrad, Plan};
use crate::model::flops::StepMacs;
use crate::model::State;
use crate::ops::barlow_twins::{self, BtConfig};
use crate::ops::Mode;
use crate::tensor::Tensor;

use super::optim::Optimizer;
use super::phases::{Phase, PhaseObserver};

/// How batch-norm running statistics are updated in the layers a step does not need (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BnStats {
    #[default]
    Minimal,
    Reference,
}

impl BnStats {
    /// What a training forward of `head` runs.
    pub fn plan(self, head: Head, classify: bool) -> Plan {
        match self {
            BnStats::Minimal => Plan::minimal(head, classify),
            BnStats::Reference => Plan::full(classify),
        }
    }
}

impl FromStr for BnStats {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minimal" => Ok(BnStats::Minimal),
            "reference" => Ok(BnStats::Reference),
            _ => Err(Error::Invalid(format!("unknown BN statistics mode '{s}' (expected minimal or reference)"))),
        }
    }
}

impl fmt::Display for BnStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BnStats::Minimal => "minimal",
            BnStats::Reference => "reference",
        })
    }
}

/// The loss settings of an SSL iteration.
#[derive(Clone, Copy, Debug, Default)]
pub struct SslConfig {
    pub bt: BtConfig,
    pub bn_stats: BnStats,
}

/// The inputs of one iteration: view 1, its three jigsaw puzzles (finest grid first) and view 2, all `[N, 3, H, W]`.
pub struct SslBatch<'a, B: Backend> {
    pub x1: &'a Tensor<B>,
    pub jigsaw: [&'a Tensor<B>; 3],
    pub x2: &'a Tensor<B>,
}

/// What one step logs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SslStepLog {
    /// The loss the step back-propagates (2 x BT on the concat step).
    pub loss: f32,
    /// Barlow Twins terms of the step (not doubled).
    pub on_diag: f32,
    pub off_diag: f32,
    /// `std_of_l2_normalized` of the view-1 embedding: about 0 when collapsed, about 1/sqrt(F) when healthy.
    pub collapse_std: f32,
}

/// The weight of each step's loss: 1, 1, 1 and 2 on the concat step.
pub fn step_weight(head: Head) -> f32 {
    if head == Head::Concat {
        2.0
    } else {
        1.0
    }
}

/// Runs the four progressive steps on one batch with learning rate `lr` (scaled per parameter group), telling
/// `phases` where each step is (`fgssl bench`; training passes [`NoPhases`](super::phases::NoPhases)).
#[allow(clippy::too_many_arguments)]
pub fn ssl_iteration<B: Backend>(
    b: &B,
    model: &Fgssl,
    st: &mut State<B>,
    opt: &mut Optimizer,
    lr: f32,
    cfg: &SslConfig,
    batch: &SslBatch<'_, B>,
    phases: &mut impl PhaseObserver<B>,
) -> Result<[SslStepLog; 4]> {
    let mut logs = [SslStepLog { loss: 0.0, on_diag: 0.0, off_diag: 0.0, collapse_std: 0.0 }; 4];
    for (step, head) in Head::ALL.into_iter().enumerate() {
        let view1 = if step < 3 { batch.jigsaw[step] } else { batch.x1 };
        logs[step] = ssl_step(b, model, st, opt, lr, cfg, head, view1, batch.x2, phases)?;
    }
    Ok(logs)
}

/// One step: BT between the `head` embeddings of `view1` and `view2`, then one update, telling `phases` when each
/// phase begins.
#[allow(clippy::too_many_arguments)]
pub fn ssl_step<B: Backend>(
    b: &B,
    model: &Fgssl,
    st: &mut State<B>,
    opt: &mut Optimizer,
    lr: f32,
    cfg: &SslConfig,
    head: Head,
    view1: &Tensor<B>,
    view2: &Tensor<B>,
    phases: &mut impl PhaseObserver<B>,
) -> Result<SslStepLog> {
    let plan = cfg.bn_stats.plan(head, false);
    phases.enter(b, Phase::Optimizer)?;
    st.params.zero_grad(b);
    phases.enter(b, Phase::Forward)?;
    let acts1 = model.forward(b, st, view1, Mode::Train, &plan)?;
    let acts2 = model.forward(b, st, view2, Mode::Train, &plan)?;
    let (za, zb) = (acts1.z(head)?, acts2.z(head)?);
    let (terms, saved) = barlow_twins::forward(b, &cfg.bt, za, zb)?;
    let weight = step_weight(head);
    phases.enter(b, Phase::Backward)?;
    let (dza, dzb) = barlow_twins::backward(b, &cfg.bt, &saved, weight)?;
    model.backward(b, st, view1, &acts1, head, HeadGrad::Embedding(&dza))?;
    model.backward(b, st, view2, &acts2, head, HeadGrad::Embedding(&dzb))?;
    phases.enter(b, Phase::Monitor)?;
    let collapse_std = barlow_twins::std_of_l2_normalized(b, za)?;
    phases.enter(b, Phase::Optimizer)?;
    opt.step(b, &mut st.params, lr, |slot| model.trained_by(head, false, slot))?;
    Ok(SslStepLog { loss: weight * terms.loss, on_diag: terms.on_diag, off_diag: terms.off_diag, collapse_std })
}

/// Model multiply-accumulates per image of one SSL iteration on `side`-pixel views (four steps, two views each;
/// conv and linear layers, [`crate::model::flops`]).
pub fn ssl_iteration_macs(model: &Fgssl, side: usize, bn_stats: BnStats) -> StepMacs {
    Head::ALL.into_iter().map(|head| model.step_macs(side, head, &bn_stats.plan(head, false)) * 2).fold(StepMacs::default(), |a, m| a + m)
}
