//! Pooling over the whole spatial extent, `[N, C, H, W] -> [N, C]`: max (FG-SSL's hierarchical blocks, any
//! input size) and average (ResNet's `avgpool` + flatten).

use crate::backend::geom::GlobalPoolGeom;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

fn geom<B: Backend>(x_shape: &Shape, dy: Option<&Tensor<B>>) -> Result<GlobalPoolGeom> {
    let [n, c, h, w] = x_shape.nchw("global_pool")?;
    if let Some(dy) = dy {
        if dy.shape.dims() != [n, c] {
            return Err(Error::shape("global_pool backward", format!("dy {:?} for input {:?}", dy.shape.0, x_shape.0)));
        }
    }
    Ok(GlobalPoolGeom { n, c, hw: h * w })
}

pub fn max_forward<B: Backend>(b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
    let g = geom::<B>(&x.shape, None)?;
    let mut y = Tensor::uninit(b, [g.n, g.c])?;
    b.global_max_pool_fwd(&g, x.view(b), y.view_mut(b));
    Ok(y)
}

pub fn max_backward<B: Backend>(b: &B, x: &Tensor<B>, dy: &Tensor<B>) -> Result<Tensor<B>> {
    let g = geom(&x.shape, Some(dy))?;
    let mut dx = Tensor::uninit(b, x.shape.clone())?;
    b.global_max_pool_bwd(&g, x.view(b), dy.view(b), dx.view_mut(b));
    Ok(dx)
}

pub fn avg_forward<B: Backend>(b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
    let g = geom::<B>(&x.shape, None)?;
    let mut y = Tensor::uninit(b, [g.n, g.c])?;
    b.global_avg_pool_fwd(&g, x.view(b), y.view_mut(b));
    Ok(y)
}

/// Needs only the input's shape.
pub fn avg_backward<B: Backend>(b: &B, x_shape: &Shape, dy: &Tensor<B>) -> Result<Tensor<B>> {
    let g = geom(x_shape, Some(dy))?;
    let mut dx = Tensor::uninit(b, x_shape.clone())?;
    b.global_avg_pool_bwd(&g, dy.view(b), dx.view_mut(b));
    Ok(dx)
}
