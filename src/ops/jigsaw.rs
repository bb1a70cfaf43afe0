//! Jigsaw gather on f32 activations `[n, c, h, w]` (`jigsaw_fwd`): tile `d` of sample `i`'s output is tile
//! `perms[i * grid^2 + d]` of its input, tiles row-major. Exact; no backward (the inputs are data).

use super::augment::{check_grid, check_permutations};
use crate::backend::geom::JigsawGeom;
use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

pub fn forward<B: Backend>(b: &B, grid: usize, perms: &[u32], x: &Tensor<B>) -> Result<Tensor<B>> {
    let [n, c, h, w] = x.shape.nchw("jigsaw")?;
    check_grid("jigsaw", h, w, grid)?;
    check_permutations("jigsaw", perms, n, grid)?;
    let mut y = Tensor::uninit(b, x.shape.clone())?;
    b.jigsaw_fwd(&JigsawGeom { n, c, h, w, grid }, perms, x.view(b), y.view_mut(b));
    Ok(y)
}
