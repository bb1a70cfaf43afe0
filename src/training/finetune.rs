//! Supervised fine-tuning (METHOD.md §8): the progressive FG-SSL schedule and the single-head baseline.
//!
//! Progressive: four optimizer steps per labelled batch, CE(y1(J_g1(x)), y), CE(y2(J_g2(x)), y),
//! CE(y3(J_g3(x)), y) and 2 x CE(y_cat(x), y), each with its own forward, backward and update. Plain: one step per
//! batch, CE(y_cat(x), y) on the unshuffled image (the "no hierarchical training" baseline). Both use softmax
//! cross-entropy, mean over the batch, in fp32; each step updates only the parameters its loss reaches.

use std::fmt;
use std::str::FromStr;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::fgssl::{Fgssl, Head, HeadGrad};
use crate::model::flops::StepMacs;
use crate::model::State;
use crate::ops::{cross_entropy, Mode};
use crate::tensor::Tensor;

use super::optim::Optimizer;
use super::phases::{Phase, PhaseObserver};
use super::ssl::{step_weight, BnStats};

/// Which fine-tuning schedule runs per batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FinetuneMode {
    /// Four progressive steps (FG-SSL / PMG).
    #[default]
    Progressive,
    /// One CE step on the concat head per batch.
    Plain,
}

impl FromStr for FinetuneMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "progressive" => Ok(FinetuneMode::Progressive),
            "plain" => Ok(FinetuneMode::Plain),
            _ => Err(Error::Invalid(format!("unknown fine-tuning mode '{s}' (expected progressive or plain)"))),
        }
    }
}

impl fmt::Display for FinetuneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FinetuneMode::Progressive => "progressive",
            FinetuneMode::Plain => "plain",
        })
    }
}

/// The inputs of one progressive iteration: the image, its three jigsaw puzzles (finest first), the labels.
pub struct FinetuneBatch<'a, B: Backend> {
    pub x: &'a Tensor<B>,
    pub jigsaw: [&'a Tensor<B>; 3],
    pub labels: &'a [u32],
}

/// Runs the progressive schedule on one batch; returns the four step losses (2 x CE on the concat step). `phases` is
/// told where each step is (`fgssl bench`; training passes [`NoPhases`](super::phases::NoPhases)).
#[allow(clippy::too_many_arguments)]
pub fn finetune_iteration<B: Backend>(
    b: &B,
    model: &Fgssl,
    st: &mut State<B>,
    opt: &mut Optimizer,
    lr: f32,
    bn_stats: BnStats,
    batch: &FinetuneBatch<'_, B>,
    phases: &mut impl PhaseObserver<B>,
) -> Result<[f32; 4]> {
    let mut losses = [0.0; 4];
    for (step, head) in Head::ALL.into_iter().enumerate() {
        let x = if step < 3 { batch.jigsaw[step] } else { batch.x };
        losses[step] = ce_step(b, model, st, opt, lr, bn_stats, head, step_weight(head), x, batch.labels, phases)?;
    }
    Ok(losses)
}

/// One CE step of `head` with the loss scaled by `weight`; returns the scaled loss. `phases` is told when each
/// phase begins.
#[allow(clippy::too_many_arguments)]
pub fn ce_step<B: Backend>(
    b: &B,
    model: &Fgssl,
    st: &mut State<B>,
    opt: &mut Optimizer,
    lr: f32,
    bn_stats: BnStats,
    head: Head,
    weight: f32,
    x: &Tensor<B>,
    labels: &[u32],
    phases: &mut impl PhaseObserver<B>,
) -> Result<f32> {
    phases.enter(b, Phase::Optimizer)?;
    st.params.zero_grad(b);
    phases.enter(b, Phase::Forward)?;
    let acts = model.forward(b, st, x, Mode::Train, &bn_stats.plan(head, true))?;
    let (loss, saved) = cross_entropy::forward(b, acts.logits(head)?, labels)?;
    phases.enter(b, Phase::Backward)?;
    let dlogits = cross_entropy::backward(b, &saved, labels, weight)?;
    model.backward(b, st, x, &acts, head, HeadGrad::Logits(&dlogits))?;
    phases.enter(b, Phase::Optimizer)?;
    opt.step(b, &mut st.params, lr, |slot| model.trained_by(head, true, slot))?;
    Ok(weight * loss)
}

/// Model multiply-accumulates per image of one progressive fine-tuning iteration on `side`-pixel views (four
/// steps, one view each, classifiers included; [`crate::model::flops`]).
pub fn finetune_iteration_macs(model: &Fgssl, side: usize, bn_stats: BnStats) -> StepMacs {
    Head::ALL.into_iter().map(|head| model.step_macs(side, head, &bn_stats.plan(head, true))).fold(StepMacs::default(), |a, m| a + m)
}
