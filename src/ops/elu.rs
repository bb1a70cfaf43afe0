//! ELU with parameter alpha (alpha = 1 in the FG-SSL projectors).

use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn forward<B: Backend>(b: &B, alpha: f32, x: &Tensor<B>) -> Result<Tensor<B>> {
    let mut y = Tensor::uninit(b, x.shape.clone())?;
    b.elu_fwd(x.numel(), alpha, x.view(b), y.view_mut(b));
    Ok(y)
}

/// `x` is the forward input.
pub fn backward<B: Backend>(b: &B, alpha: f32, x: &Tensor<B>, dy: &Tensor<B>) -> Result<Tensor<B>> {
    super::same_shape("elu backward", x, dy)?;
    let mut dx = Tensor::uninit(b, x.shape.clone())?;
    b.elu_bwd(x.numel(), alpha, x.view(b), dy.view(b), dx.view_mut(b));
    Ok(dx)
}
