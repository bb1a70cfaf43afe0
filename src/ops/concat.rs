//! Channel concatenation (FG-SSL's `cat(p1, p2, p3)`) and its backward, the split.

use crate::backend::geom::ConcatGeom;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

fn geom(shapes: &[&Shape]) -> Result<ConcatGeom> {
    let first = shapes.first().ok_or_else(|| Error::shape("concat", "no inputs"))?;
    let (n, rest) = match first.dims() {
        [n, _, rest @ ..] => (*n, rest.to_vec()),
        d => return Err(Error::shape("concat", format!("inputs need a channel dimension, got {d:?}"))),
    };
    let mut channels = Vec::with_capacity(shapes.len());
    for s in shapes {
        match s.dims() {
            [m, c, r @ ..] if *m == n && r == rest.as_slice() => channels.push(*c),
            d => return Err(Error::shape("concat", format!("input {d:?} does not match {:?} outside the channel dimension", first.0))),
        }
    }
    Ok(ConcatGeom { n, hw: rest.iter().product(), channels })
}

fn out_shape(g: &ConcatGeom, like: &Shape) -> Shape {
    let mut d = like.0.clone();
    d[1] = g.c_total();
    Shape(d)
}

pub fn forward<B: Backend>(b: &B, xs: &[&Tensor<B>]) -> Result<Tensor<B>> {
    let shapes: Vec<&Shape> = xs.iter().map(|t| &t.shape).collect();
    let g = geom(&shapes)?;
    let mut y = Tensor::uninit(b, out_shape(&g, shapes[0]))?;
    let views: Vec<B::View<'_>> = xs.iter().map(|t| t.view(b)).collect();
    b.concat_fwd(&g, &views, y.view_mut(b));
    Ok(y)
}

/// Splits `dy` into one gradient per input shape.
pub fn backward<B: Backend>(b: &B, shapes: &[&Shape], dy: &Tensor<B>) -> Result<Vec<Tensor<B>>> {
    let g = geom(shapes)?;
    if dy.shape != out_shape(&g, shapes[0]) {
        return Err(Error::shape("concat backward", format!("dy {:?} does not match the concatenated shape", dy.shape.0)));
    }
    let mut dxs = shapes.iter().map(|s| Tensor::uninit(b, (*s).clone())).collect::<Result<Vec<_>>>()?;
    let views: Vec<B::ViewMut<'_>> = dxs.iter_mut().map(|t| t.view_mut(b)).collect();
    b.concat_bwd(&g, dy.view(b), views);
    Ok(dxs)
}
