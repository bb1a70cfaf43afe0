//! ReLU.

use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn forward<B: Backend>(b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
    let mut y = Tensor::uninit(b, x.shape.clone())?;
    b.relu_fwd(x.numel(), x.view(b), y.view_mut(b));
    Ok(y)
}

/// `y` is the forward output (or input: both give the same mask).
pub fn backward<B: Backend>(b: &B, y: &Tensor<B>, dy: &Tensor<B>) -> Result<Tensor<B>> {
    super::same_shape("relu backward", y, dy)?;
    let mut dx = Tensor::uninit(b, y.shape.clone())?;
    b.relu_bwd(y.numel(), y.view(b), dy.view(b), dx.view_mut(b));
    Ok(dx)
}
