//! The collapse monitor `std_of_l2_normalized` (ANCHORS.md §2.2 item 6), logged with the Barlow Twins terms.

use crate::backend::geom::L2NormalizedStdGeom;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Per-dimension std over the batch of the L2-normalised rows of `z` `[n, f]`, averaged over the dimensions:
/// ≈ 0 when the embeddings collapsed to one direction, ≈ 1/√f when they are spread out. Needs n >= 2.
pub fn std_of_l2_normalized<B: Backend>(b: &B, z: &Tensor<B>) -> Result<f32> {
    let [n, f] = z.shape.nf("std_of_l2_normalized")?;
    if n < 2 {
        return Err(Error::shape("std_of_l2_normalized", format!("needs a batch of at least 2, got {n}")));
    }
    if f == 0 {
        return Err(Error::shape("std_of_l2_normalized", "the embeddings have no dimensions"));
    }
    let mut out = Tensor::uninit(b, [1])?;
    b.l2_normalized_std_fwd(&L2NormalizedStdGeom { n, f }, z.view(b), out.view_mut(b));
    Ok(out.to_host(b)?[0])
}
