//! Windowed max pool (the ResNet stem's 3x3, stride 2, padding 1).

use crate::backend::geom::MaxPool2dGeom;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn geom<B: Backend>(x: &Tensor<B>, k: usize, stride: usize, pad: usize) -> Result<MaxPool2dGeom> {
    let [n, c, h, w] = x.shape.nchw("max_pool2d")?;
    if pad * 2 > k || h + 2 * pad < k || w + 2 * pad < k {
        return Err(Error::shape("max_pool2d", format!("{h}x{w} input with kernel {k}, padding {pad}")));
    }
    Ok(MaxPool2dGeom::new(n, c, h, w, k, stride, pad))
}

pub fn forward<B: Backend>(b: &B, x: &Tensor<B>, k: usize, stride: usize, pad: usize) -> Result<Tensor<B>> {
    let g = geom(x, k, stride, pad)?;
    let mut y = Tensor::uninit(b, [g.n, g.c, g.ho, g.wo])?;
    b.max_pool2d_fwd(&g, x.view(b), y.view_mut(b));
    Ok(y)
}

pub fn backward<B: Backend>(b: &B, x: &Tensor<B>, dy: &Tensor<B>, k: usize, stride: usize, pad: usize) -> Result<Tensor<B>> {
    let g = geom(x, k, stride, pad)?;
    let mut dx = Tensor::uninit(b, x.shape.clone())?;
    b.max_pool2d_bwd(&g, x.view(b), dy.view(b), dx.view_mut(b));
    Ok(dx)
}
