//! Batch norm layer, 2-d (`[N, C, H, W]`) and 1-d (`[N, F]`): parameters `name.weight`, `name.bias`, buffers
//! `name.running_mean`, `name.running_var`, and the counter `name.num_batches_tracked`.
//!
//! Besides plain batch norm, the fused forms the ResNet and the FG-SSL heads use: `relu(bn(x))`
//! ([`BatchNorm::forward_relu`] / [`BatchNorm::backward_relu`]) and `relu(bn(x) + residual)`
//! ([`BatchNorm::forward_add_relu`] / [`BatchNorm::backward_add_relu`]): one op of the op set with an epilogue,
//! bit-identical on the CPU to the separate ops, fewer launches and no intermediate tensor on a GPU.

use crate::backend::geom::BatchNormGeom;
use crate::backend::{Backend, BnEpilogue, BnEpilogueGrad};
use crate::error::{Error, Result};
use crate::params::{Buffers, Init, Params, Slot, Table};
use crate::tensor::Tensor;

use super::Mode;

#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub weight: Slot,
    pub bias: Slot,
    pub running_mean: Slot,
    pub running_var: Slot,
    /// Index of this layer's `num_batches_tracked` in [`Buffers::batches_tracked`].
    pub tracker: usize,
    pub name: String,
    pub c: usize,
    pub eps: f32,
    pub momentum: f32,
}

/// What the training-mode forward keeps for backward: per-channel batch mean and 1/sqrt(var + eps).
pub struct BnSaved<B: Backend> {
    pub mean: Tensor<B>,
    pub invstd: Tensor<B>,
}

impl BatchNorm {
    /// Registers the layer with PyTorch's defaults (gamma 1, beta 0, running mean 0, running variance 1).
    /// `trackers` collects the names of the `num_batches_tracked` counters in registration order.
    pub fn new(params: &mut Table, buffers: &mut Table, trackers: &mut Vec<String>, name: &str, c: usize, momentum: f32) -> Self {
        let weight = params.add(format!("{name}.weight"), &[c], Init::Const(1.0));
        let bias = params.add(format!("{name}.bias"), &[c], Init::Const(0.0));
        let running_mean = buffers.add(format!("{name}.running_mean"), &[c], Init::Const(0.0));
        let running_var = buffers.add(format!("{name}.running_var"), &[c], Init::Const(1.0));
        trackers.push(format!("{name}.num_batches_tracked"));
        BatchNorm { weight, bias, running_mean, running_var, tracker: trackers.len() - 1, name: name.to_string(), c, eps: 1e-5, momentum }
    }

    fn geom<B: Backend>(&self, x: &Tensor<B>) -> Result<BatchNormGeom> {
        let (n, c, hw) = match x.shape.dims() {
            &[n, c] => (n, c, 1),
            &[n, c, h, w] => (n, c, h * w),
            d => return Err(Error::shape("batch_norm", format!("{}: expected [N, C] or [N, C, H, W], got {d:?}", self.name))),
        };
        if c != self.c {
            return Err(Error::shape("batch_norm", format!("{}: input has {c} channels, the layer has {}", self.name, self.c)));
        }
        Ok(BatchNormGeom { n, c, hw, eps: self.eps, momentum: self.momentum })
    }

    /// Training mode normalises with batch statistics, updates the running statistics and the counter, and
    /// returns what backward needs; evaluation mode uses the running statistics and returns `None`.
    pub fn forward<B: Backend>(
        &self,
        b: &B,
        p: &Params<B>,
        s: &mut Buffers<B>,
        x: &Tensor<B>,
        mode: Mode,
    ) -> Result<(Tensor<B>, Option<BnSaved<B>>)> {
        self.forward_with(b, p, s, x, BnEpilogue::None, mode)
    }

    /// `relu(bn(x))` in one pass (fused BN+ReLU). The output is what [`Self::backward_relu`] needs besides `x`.
    pub fn forward_relu<B: Backend>(
        &self,
        b: &B,
        p: &Params<B>,
        s: &mut Buffers<B>,
        x: &Tensor<B>,
        mode: Mode,
    ) -> Result<(Tensor<B>, Option<BnSaved<B>>)> {
        self.forward_with(b, p, s, x, BnEpilogue::Relu, mode)
    }

    /// `relu(bn(x) + residual)` in one pass (fused BN+add+ReLU, a residual block's tail).
    pub fn forward_add_relu<B: Backend>(
        &self,
        b: &B,
        p: &Params<B>,
        s: &mut Buffers<B>,
        x: &Tensor<B>,
        residual: &Tensor<B>,
        mode: Mode,
    ) -> Result<(Tensor<B>, Option<BnSaved<B>>)> {
        super::same_shape("batch_norm add+relu", x, residual)?;
        self.forward_with(b, p, s, x, BnEpilogue::AddRelu(residual), mode)
    }

    fn forward_with<B: Backend>(
        &self,
        b: &B,
        p: &Params<B>,
        s: &mut Buffers<B>,
        x: &Tensor<B>,
        epilogue: BnEpilogue<&Tensor<B>>,
        mode: Mode,
    ) -> Result<(Tensor<B>, Option<BnSaved<B>>)> {
        let g = self.geom(x)?;
        let mut y = Tensor::uninit(b, x.shape.clone())?;
        let (gamma, beta) = (p.value(b, self.weight), p.value(b, self.bias));
        let epilogue = match epilogue {
            BnEpilogue::None => BnEpilogue::None,
            BnEpilogue::Relu => BnEpilogue::Relu,
            BnEpilogue::AddRelu(r) => BnEpilogue::AddRelu(r.view(b)),
        };
        match mode {
            Mode::Eval => {
                let rm = b.view(&s.value, s.table.range(self.running_mean));
                let rv = b.view(&s.value, s.table.range(self.running_var));
                b.batch_norm_fwd_eval(&g, x.view(b), gamma, beta, rm, rv, y.view_mut(b), epilogue);
                Ok((y, None))
            }
            Mode::Train => {
                if g.n * g.hw < 2 {
                    return Err(Error::shape(
                        "batch_norm",
                        format!("{}: training needs more than one value per channel, got {:?}", self.name, x.shape.0),
                    ));
                }
                let mut mean = Tensor::uninit(b, [self.c])?;
                let mut invstd = Tensor::uninit(b, [self.c])?;
                let (rm, rv) = b.view_mut_pair(&mut s.value, s.table.range(self.running_mean), s.table.range(self.running_var));
                b.batch_norm_fwd_train(&g, x.view(b), gamma, beta, rm, rv, y.view_mut(b), mean.view_mut(b), invstd.view_mut(b), epilogue);
                s.batches_tracked[self.tracker] += 1;
                Ok((y, Some(BnSaved { mean, invstd })))
            }
        }
    }

    /// Input gradient of the training-mode forward; accumulates the weight and bias gradients.
    pub fn backward<B: Backend>(&self, b: &B, p: &mut Params<B>, x: &Tensor<B>, saved: &BnSaved<B>, dy: &Tensor<B>) -> Result<Tensor<B>> {
        self.backward_with(b, p, x, saved, None, dy, false).map(|(dx, _)| dx)
    }

    /// Backward of [`Self::forward_relu`]: `y` is its output (the ReLU mask), `dy` the gradient at `y`.
    pub fn backward_relu<B: Backend>(
        &self,
        b: &B,
        p: &mut Params<B>,
        x: &Tensor<B>,
        saved: &BnSaved<B>,
        y: &Tensor<B>,
        dy: &Tensor<B>,
    ) -> Result<Tensor<B>> {
        self.backward_with(b, p, x, saved, Some(y), dy, false).map(|(dx, _)| dx)
    }

    /// Backward of [`Self::forward_add_relu`]: returns `(dx, d_residual)`, where `d_residual = dy * (y > 0)` is
    /// the gradient of the residual input.
    pub fn backward_add_relu<B: Backend>(
        &self,
        b: &B,
        p: &mut Params<B>,
        x: &Tensor<B>,
        saved: &BnSaved<B>,
        y: &Tensor<B>,
        dy: &Tensor<B>,
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        let (dx, dres) = self.backward_with(b, p, x, saved, Some(y), dy, true)?;
        Ok((dx, dres.expect("requested")))
    }

    /// `fused_out`: the fused forward's output (ReLU mask); `residual_grad`: also return the residual's gradient.
    #[allow(clippy::too_many_arguments)]
    fn backward_with<B: Backend>(
        &self,
        b: &B,
        p: &mut Params<B>,
        x: &Tensor<B>,
        saved: &BnSaved<B>,
        fused_out: Option<&Tensor<B>>,
        dy: &Tensor<B>,
        residual_grad: bool,
    ) -> Result<(Tensor<B>, Option<Tensor<B>>)> {
        let g = self.geom(x)?;
        super::same_shape("batch_norm backward", x, dy)?;
        if let Some(y) = fused_out {
            super::same_shape("batch_norm backward (fused output)", x, y)?;
        }
        let mut dx = Tensor::uninit(b, x.shape.clone())?;
        let mut dres = if residual_grad { Some(Tensor::uninit(b, x.shape.clone())?) } else { None };
        let epilogue = match (fused_out, dres.as_mut()) {
            (None, _) => BnEpilogueGrad::None,
            (Some(y), None) => BnEpilogueGrad::Relu { y: y.view(b) },
            (Some(y), Some(dr)) => BnEpilogueGrad::AddRelu { y: y.view(b), dresidual: dr.view_mut(b) },
        };
        let gamma = b.view(&p.value, p.table.range(self.weight));
        let (dgamma, dbeta) = b.view_mut_pair(&mut p.grad, p.table.range(self.weight), p.table.range(self.bias));
        b.batch_norm_bwd(&g, x.view(b), gamma, saved.mean.view(b), saved.invstd.view(b), dy.view(b), dx.view_mut(b), dgamma, dbeta, epilogue);
        Ok((dx, dres))
    }
}
