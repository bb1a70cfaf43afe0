//! 2-d convolution layer: OIHW weights `name.weight`, optional `name.bias`.

use crate::backend::geom::Conv2dGeom;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::{Init, Params, Slot, Table};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Conv2d {
    pub weight: Slot,
    pub bias: Option<Slot>,
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv2d {
    /// Registers `name.weight` (and `name.bias`) with torchvision's ResNet initialisation:
    /// Kaiming normal, fan-out mode, ReLU gain; bias like PyTorch's default, U(±1/sqrt(fan_in)).
    #[allow(clippy::too_many_arguments)]
    pub fn new(t: &mut Table, name: &str, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, bias: bool) -> Self {
        let std = (2.0 / (c_out * k * k) as f32).sqrt();
        let weight = t.add(format!("{name}.weight"), &[c_out, c_in, k, k], Init::Normal(std));
        let bound = 1.0 / ((c_in * k * k) as f32).sqrt();
        let bias = bias.then(|| t.add(format!("{name}.bias"), &[c_out], Init::Uniform(bound)));
        Conv2d { weight, bias, c_in, c_out, k, stride, pad }
    }

    pub fn geom<B: Backend>(&self, x: &Tensor<B>) -> Result<Conv2dGeom> {
        let [n, c, h, w] = x.shape.nchw("conv2d")?;
        if c != self.c_in {
            return Err(Error::shape("conv2d", format!("input has {c} channels, the layer expects {}", self.c_in)));
        }
        if h + 2 * self.pad < self.k || w + 2 * self.pad < self.k {
            return Err(Error::shape("conv2d", format!("{h}x{w} input is smaller than the {0}x{0} kernel", self.k)));
        }
        Ok(Conv2dGeom::new(n, c, h, w, self.c_out, self.k, self.stride, self.pad))
    }

    pub fn forward<B: Backend>(&self, b: &B, p: &Params<B>, x: &Tensor<B>) -> Result<Tensor<B>> {
        let g = self.geom(x)?;
        let mut y = Tensor::uninit(b, [g.n, g.c_out, g.ho, g.wo])?;
        let bias = self.bias.map(|s| p.value(b, s));
        b.conv2d_fwd(&g, x.view(b), p.value(b, self.weight), bias, y.view_mut(b));
        Ok(y)
    }

    /// Accumulates the weight (and bias) gradient; returns the input gradient when `need_dx`.
    pub fn backward<B: Backend>(&self, b: &B, p: &mut Params<B>, x: &Tensor<B>, dy: &Tensor<B>, need_dx: bool) -> Result<Option<Tensor<B>>> {
        let g = self.geom(x)?;
        let mut dx = if need_dx { Some(Tensor::uninit(b, x.shape.clone())?) } else { None };
        let w = b.view(&p.value, p.table.range(self.weight));
        let (dw, dbias) = super::weight_and_bias_grads(b, &mut p.grad, &p.table, self.weight, self.bias);
        b.conv2d_bwd(&g, x.view(b), w, dy.view(b), dx.as_mut().map(|t| t.view_mut(b)), dw, dbias);
        Ok(dx)
    }
}
