//! Ops as the model sees them: shape checks, output allocation and the parameter bookkeeping of each layer, on
//! top of the backend's raw op set ([`crate::backend::Backend`]). One file per op, named as in the op set.
//! Layers with parameters (`Conv2d`, `BatchNorm`, `Linear`) hold [`Slot`]s into the parameter arenas; their
//! `forward` returns what `backward` needs, and `backward` accumulates into the gradient arena.
//!
//! [`Slot`]: crate::params::Slot

pub mod add;
pub mod augment;
pub mod barlow_twins;
pub mod batch_norm;
pub mod concat;
pub mod conv2d;
pub mod cross_entropy;
pub mod elu;
pub mod global_pool;
pub mod jigsaw;
pub mod l2_normalized_std;
pub mod linear;
pub mod max_pool2d;
pub mod relu;

pub use batch_norm::{BatchNorm, BnSaved};
pub use conv2d::Conv2d;
pub use linear::Linear;

/// Training mode updates batch-norm running statistics and keeps what backward needs; evaluation mode uses the
/// running statistics and keeps nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::params::{Slot, Table};
use crate::tensor::Tensor;

/// Checks that two tensors have the same shape (for elementwise ops and their gradients).
pub(crate) fn same_shape<B: Backend>(op: &'static str, a: &Tensor<B>, b: &Tensor<B>) -> Result<()> {
    if a.shape != b.shape {
        return Err(Error::shape(op, format!("shapes differ: {:?} vs {:?}", a.shape.0, b.shape.0)));
    }
    Ok(())
}

/// Writable gradient windows of a layer's weight and optional bias. Both live in the one gradient arena, so they
/// are split from it together.
pub(crate) fn weight_and_bias_grads<'a, B: Backend>(
    b: &B,
    grad: &'a mut B::Buf,
    table: &Table,
    weight: Slot,
    bias: Option<Slot>,
) -> (B::ViewMut<'a>, Option<B::ViewMut<'a>>) {
    match bias {
        None => (b.view_mut(grad, table.range(weight)), None),
        Some(bias) => {
            let (dw, db) = b.view_mut_pair(grad, table.range(weight), table.range(bias));
            (dw, Some(db))
        }
    }
}
