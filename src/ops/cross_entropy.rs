//! Softmax cross-entropy with integer labels, mean over the batch (PyTorch's `F.cross_entropy`).

use crate::backend::geom::CrossEntropyGeom;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

/// What backward needs: the softmax probabilities.
pub struct CeSaved<B: Backend> {
    pub probs: Tensor<B>,
}

fn geom(logits: &Shape, labels: &[u32]) -> Result<CrossEntropyGeom> {
    let [n, k] = logits.nf("cross_entropy")?;
    if labels.len() != n {
        return Err(Error::shape("cross_entropy", format!("{} labels for {n} rows of logits", labels.len())));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= k) {
        return Err(Error::shape("cross_entropy", format!("label {l} of sample {i} is not below the class count {k}")));
    }
    Ok(CrossEntropyGeom { n, k })
}

/// Returns the loss (read back to the host) and the saved probabilities.
pub fn forward<B: Backend>(b: &B, logits: &Tensor<B>, labels: &[u32]) -> Result<(f32, CeSaved<B>)> {
    let g = geom(&logits.shape, labels)?;
    let mut probs = Tensor::uninit(b, logits.shape.clone())?;
    let mut loss = Tensor::uninit(b, [1])?;
    b.cross_entropy_fwd(&g, logits.view(b), labels, probs.view_mut(b), loss.view_mut(b));
    Ok((loss.to_host(b)?[0], CeSaved { probs }))
}

/// Gradient of `dloss * loss` with respect to the logits.
pub fn backward<B: Backend>(b: &B, saved: &CeSaved<B>, labels: &[u32], dloss: f32) -> Result<Tensor<B>> {
    let g = geom(&saved.probs.shape, labels)?;
    let mut dlogits = Tensor::uninit(b, saved.probs.shape.clone())?;
    b.cross_entropy_bwd(&g, saved.probs.view(b), labels, dloss, dlogits.view_mut(b));
    Ok(dlogits)
}
