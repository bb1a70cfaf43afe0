//! Optimizers over the parameter arenas ([`Params`]): SGD (METHOD.md §10, the reference's), LARS (Barlow Twins',
//! METHOD.md §13) and AdamW (PyTorch's), each one pass over a table of per-tensor segments (one launch on a GPU;
//! LARS adds two small reduction launches), with optional global gradient-norm clipping.
//!
//! Semantics shared by all three:
//! - each entry's rate is `lr * entry.lr_scale` (parameter groups: backbone 0.1);
//! - entries for which `updated` is false are skipped entirely: no decay, no momentum, no AdamW step count
//!   (PyTorch ≥ 2.0 `zero_grad(set_to_none=True)`, METHOD.md §12 #19);
//! - clipping is `torch.nn.utils.clip_grad_norm_` over the updated entries: `coef = max / (‖g‖ + 1e-6)`, and when
//!   `coef < 1` the whole gradient arena is scaled by it (entries not updated are not read), then the step runs.
//!
//! Optimizer state lives in the arenas of [`Params`] (momentum / AdamW's moments) plus host counters here;
//! [`Optimizer::state_to_host`] and [`Optimizer::state_from_host`] copy all of it for checkpoints.

use std::str::FromStr;

use crate::backend::geom::{AdamwSegment, ArenaSegment, LarsSegment};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::{Params, Slot};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// PyTorch SGD: `g += wd·p; buf = momentum·buf + g (g on the first step); p -= lr·buf`.
    Sgd { momentum: f32, weight_decay: f32 },
    /// Barlow Twins' LARS: `d = g + wd·p`, `d *= eta‖p‖/‖d‖`, momentum, `p -= lr·buf`. With `exclude_1d`, 1-d
    /// tensors (biases, batch-norm γ/β) get neither weight decay nor the trust ratio (BT's filters).
    Lars { momentum: f32, weight_decay: f32, eta: f32, exclude_1d: bool },
    /// `torch.optim.AdamW`: decoupled decay `p *= 1 − lr·wd`, bias-corrected moments.
    AdamW { beta1: f32, beta2: f32, eps: f32, weight_decay: f32 },
}

impl OptimizerKind {
    /// METHOD.md §10: momentum 0.9, weight decay 5e-4.
    pub const SGD_DEFAULT: OptimizerKind = OptimizerKind::Sgd { momentum: 0.9, weight_decay: 5e-4 };
    /// Barlow Twins: momentum 0.9, weight decay 1e-6 (code), eta 0.001, biases and batch norm excluded.
    pub const LARS_DEFAULT: OptimizerKind = OptimizerKind::Lars { momentum: 0.9, weight_decay: 1e-6, eta: 1e-3, exclude_1d: true };
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub const ADAMW_DEFAULT: OptimizerKind = OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2 };

    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Lars { .. } => "lars",
            OptimizerKind::AdamW { .. } => "adamw",
        }
    }

    pub fn weight_decay(&self) -> f32 {
        match *self {
            OptimizerKind::Sgd { weight_decay, .. } | OptimizerKind::Lars { weight_decay, .. } | OptimizerKind::AdamW { weight_decay, .. } => {
                weight_decay
            }
        }
    }

    /// The same optimizer with another weight decay (a CLI override).
    pub fn with_weight_decay(self, wd: f32) -> Self {
        match self {
            OptimizerKind::Sgd { momentum, .. } => OptimizerKind::Sgd { momentum, weight_decay: wd },
            OptimizerKind::Lars { momentum, eta, exclude_1d, .. } => OptimizerKind::Lars { momentum, weight_decay: wd, eta, exclude_1d },
            OptimizerKind::AdamW { beta1, beta2, eps, .. } => OptimizerKind::AdamW { beta1, beta2, eps, weight_decay: wd },
        }
    }
}

impl FromStr for OptimizerKind {
    type Err = Error;
    /// `"sgd"`, `"lars"` or `"adamw"`, with the defaults above.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(Self::SGD_DEFAULT),
            "lars" => Ok(Self::LARS_DEFAULT),
            "adamw" => Ok(Self::ADAMW_DEFAULT),
            other => Err(Error::Invalid(format!("unknown optimizer {other:?}; expected \"sgd\", \"lars\" or \"adamw\""))),
        }
    }
}

/// Host copy of everything an optimizer carries between steps (for checkpoints and resume).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// [`OptimizerKind::name`] of the optimizer that wrote it.
    pub kind: String,
    /// The momentum arena (AdamW: first moment), arena order.
    pub momentum: Vec<f32>,
    /// Per entry: whether the momentum buffer holds a value (SGD, LARS).
    pub has_momentum: Vec<bool>,
    /// AdamW's second-moment arena.
    pub second_moment: Option<Vec<f32>>,
    /// Per entry: AdamW steps taken.
    pub steps: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    /// Global gradient-norm clipping threshold (`None`: no clipping).
    pub clip_grad_norm: Option<f32>,
    /// Per entry: AdamW steps taken (PyTorch keeps a `step` per parameter); sized on the first step.
    pub steps: Vec<u64>,
    /// The total gradient norm the last step measured (only when clipping is on), for logging.
    pub last_grad_norm: Option<f32>,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind) -> Self {
        Optimizer { kind, clip_grad_norm: None, steps: Vec::new(), last_grad_norm: None }
    }

    pub fn with_clip_grad_norm(self, max_norm: Option<f32>) -> Self {
        Optimizer { clip_grad_norm: max_norm, ..self }
    }

    fn check_entries<B: Backend>(&mut self, params: &Params<B>) -> Result<()> {
        let n = params.table.entries.len();
        if self.steps.is_empty() {
            self.steps = vec![0; n];
        }
        if self.steps.len() != n || params.has_momentum.len() != n {
            return Err(Error::Invalid(format!(
                "optimizer state covers {} tensors, the parameters have {n}: this optimizer belongs to another model",
                self.steps.len()
            )));
        }
        Ok(())
    }

    /// One update of every entry for which `updated` is true, at base rate `lr` (times each entry's `lr_scale`).
    pub fn step<B: Backend>(&mut self, b: &B, params: &mut Params<B>, lr: f32, updated: impl Fn(Slot) -> bool) -> Result<()> {
        if !lr.is_finite() {
            return Err(Error::Invalid(format!("learning rate must be finite, got {lr}")));
        }
        self.check_entries(params)?;
        let mask: Vec<bool> = (0..params.table.entries.len()).map(|i| updated(Slot(i))).collect();
        let chosen = || params.table.entries.iter().enumerate().filter(|&(i, _)| mask[i]);

        if let Some(max_norm) = self.clip_grad_norm {
            let segs: Vec<ArenaSegment> = chosen().map(|(_, e)| ArenaSegment { offset: e.range.start, len: e.range.len() }).collect();
            let norm = params.grad_norm(b, &segs)?;
            if !norm.is_finite() {
                return Err(Error::Invalid(format!("the gradient norm is {norm}: the loss diverged (non-finite gradients)")));
            }
            self.last_grad_norm = Some(norm);
            let coef = max_norm as f64 / (norm as f64 + 1e-6);
            if coef < 1.0 {
                params.scale_grads(b, coef as f32);
            }
        }

        match self.kind {
            OptimizerKind::Sgd { momentum, weight_decay } => params.sgd_step(b, lr, momentum, weight_decay, |s| mask[s.0]),
            OptimizerKind::Lars { momentum, weight_decay, eta, exclude_1d } => {
                let mut segs = Vec::new();
                for (i, e) in params.table.entries.iter().enumerate().filter(|&(i, _)| mask[i]) {
                    let excluded = exclude_1d && e.shape.len() == 1;
                    segs.push(LarsSegment {
                        offset: e.range.start,
                        len: e.range.len(),
                        lr: lr * e.lr_scale,
                        weight_decay: if excluded { 0.0 } else { weight_decay },
                        has_momentum: params.has_momentum[i] as u32,
                        adapt: (!excluded) as u32,
                    });
                }
                params.lars_step(b, &segs, momentum, eta);
                mask.iter().enumerate().filter(|&(_, &m)| m).for_each(|(i, _)| params.has_momentum[i] = true);
            }
            OptimizerKind::AdamW { beta1, beta2, eps, weight_decay } => {
                let mut segs = Vec::new();
                for (i, e) in params.table.entries.iter().enumerate().filter(|&(i, _)| mask[i]) {
                    self.steps[i] += 1;
                    let t = self.steps[i] as i32;
                    let lr_e = lr * e.lr_scale;
                    let bc1 = 1.0 - (beta1 as f64).powi(t);
                    let bc2 = 1.0 - (beta2 as f64).powi(t);
                    segs.push(AdamwSegment {
                        offset: e.range.start,
                        len: e.range.len(),
                        lr: lr_e,
                        weight_decay,
                        step_size: (lr_e as f64 / bc1) as f32,
                        bias_correction2_sqrt: bc2.sqrt() as f32,
                    });
                }
                params.adamw_step(b, &segs, beta1, beta2, eps)?;
            }
        }
        Ok(())
    }

    /// Copies the optimizer state (device arenas and host counters) to the host.
    pub fn state_to_host<B: Backend>(&self, b: &B, params: &Params<B>) -> Result<OptimizerState> {
        let n = params.table.entries.len();
        Ok(OptimizerState {
            kind: self.kind.name().to_string(),
            momentum: params.momentum_to_host(b)?,
            has_momentum: params.has_momentum.clone(),
            second_moment: params.second_moment_to_host(b)?,
            steps: if self.steps.is_empty() { vec![0; n] } else { self.steps.clone() },
        })
    }

    /// Restores a state written by [`Optimizer::state_to_host`] for the same model and optimizer kind.
    pub fn state_from_host<B: Backend>(&mut self, b: &B, params: &mut Params<B>, state: &OptimizerState) -> Result<()> {
        let (n, len) = (params.table.entries.len(), params.table.len);
        if state.kind != self.kind.name() {
            return Err(Error::Invalid(format!("optimizer state was written by {:?}, this run uses {:?}", state.kind, self.kind.name())));
        }
        let bad = |what: &str, got: usize, want: usize| Error::Invalid(format!("optimizer state: {what} has {got} entries, the model needs {want}"));
        if state.momentum.len() != len {
            return Err(bad("momentum", state.momentum.len(), len));
        }
        if state.has_momentum.len() != n {
            return Err(bad("has_momentum", state.has_momentum.len(), n));
        }
        if state.steps.len() != n {
            return Err(bad("steps", state.steps.len(), n));
        }
        if let Some(v) = &state.second_moment {
            if v.len() != len {
                return Err(bad("second_moment", v.len(), len));
            }
        }
        params.set_momentum(b, &state.momentum)?;
        params.set_second_moment(b, state.second_moment.as_deref())?;
        params.has_momentum = state.has_momentum.clone();
        self.steps = state.steps.clone();
        Ok(())
    }
}
