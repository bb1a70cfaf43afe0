//! Fully connected layer: `name.weight` `[out, in]` (PyTorch's layout, no transpose) and `name.bias`.

use crate::backend::geom::LinearGeom;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::{Init, Params, Slot, Table};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Slot,
    pub bias: Option<Slot>,
    pub in_f: usize,
    pub out_f: usize,
}

impl Linear {
    /// PyTorch's default initialisation: weight and bias U(±1/sqrt(in_f)).
    pub fn new(t: &mut Table, name: &str, in_f: usize, out_f: usize, bias: bool) -> Self {
        let bound = 1.0 / (in_f as f32).sqrt();
        let weight = t.add(format!("{name}.weight"), &[out_f, in_f], Init::Uniform(bound));
        let bias = bias.then(|| t.add(format!("{name}.bias"), &[out_f], Init::Uniform(bound)));
        Linear { weight, bias, in_f, out_f }
    }

    fn geom<B: Backend>(&self, x: &Tensor<B>) -> Result<LinearGeom> {
        let [n, f] = x.shape.nf("linear")?;
        if f != self.in_f {
            return Err(Error::shape("linear", format!("input has {f} features, the layer expects {}", self.in_f)));
        }
        Ok(LinearGeom { n, in_f: f, out_f: self.out_f })
    }

    pub fn forward<B: Backend>(&self, b: &B, p: &Params<B>, x: &Tensor<B>) -> Result<Tensor<B>> {
        let g = self.geom(x)?;
        let mut y = Tensor::uninit(b, [g.n, g.out_f])?;
        let bias = self.bias.map(|s| p.value(b, s));
        b.linear_fwd(&g, x.view(b), p.value(b, self.weight), bias, y.view_mut(b));
        Ok(y)
    }

    /// Accumulates the weight and bias gradients; returns the input gradient when `need_dx`.
    pub fn backward<B: Backend>(&self, b: &B, p: &mut Params<B>, x: &Tensor<B>, dy: &Tensor<B>, need_dx: bool) -> Result<Option<Tensor<B>>> {
        let g = self.geom(x)?;
        let mut dx = if need_dx { Some(Tensor::uninit(b, x.shape.clone())?) } else { None };
        let w = b.view(&p.value, p.table.range(self.weight));
        let (dw, dbias) = super::weight_and_bias_grads(b, &mut p.grad, &p.table, self.weight, self.bias);
        b.linear_bwd(&g, x.view(b), w, dy.view(b), dx.as_mut().map(|t| t.view_mut(b)), dw, dbias);
        Ok(dx)
    }
}
