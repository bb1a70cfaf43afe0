//! Model FLOPs of a training step, counted from the layer geometry: what `fgssl bench` divides by time for its
//! model FLOP utilisation.
//!
//! Only convolutions and linear layers count (batch norm, activations, pooling and the loss are a few percent and
//! memory-bound). A layer of `m` multiply-accumulates per image costs `m` in the forward and, on the backward path,
//! `m` for the weight gradient plus `m` for the input gradient (the first convolution computes no input gradient:
//! nothing needs the image's). FLOPs are 2 x MACs. A step's forward counts what its plan runs; its backward counts
//! the path its loss reaches, which is smaller when the `reference` BN-statistics mode runs the whole model.

use crate::ops::{Conv2d, Linear};

/// A convolution of the backbone at its place in the network.
#[derive(Clone, Copy, Debug)]
pub struct ConvAt<'a> {
    /// 0: the stem, 1..=4: `layer1..layer4`.
    pub stage: usize,
    pub conv: &'a Conv2d,
    /// Side of its square input map.
    pub in_side: usize,
}

/// Multiply-accumulates per image of one training step (one view's forward and backward).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepMacs {
    pub forward: u64,
    pub backward: u64,
}

impl StepMacs {
    pub fn total(self) -> u64 {
        self.forward + self.backward
    }
}

impl std::ops::Add for StepMacs {
    type Output = StepMacs;
    fn add(self, o: StepMacs) -> StepMacs {
        StepMacs { forward: self.forward + o.forward, backward: self.backward + o.backward }
    }
}

impl std::ops::Mul<u64> for StepMacs {
    type Output = StepMacs;
    fn mul(self, k: u64) -> StepMacs {
        StepMacs { forward: self.forward * k, backward: self.backward * k }
    }
}

/// Side of a convolution's (or pooling's) square output; 0 when the window does not fit.
pub fn out_side(side: usize, k: usize, stride: usize, pad: usize) -> usize {
    (side + 2 * pad).checked_sub(k).map_or(0, |span| span / stride.max(1) + 1)
}

/// MACs per image of `conv` on a `side` x `side` input, and the side of its output.
pub fn conv_macs(conv: &Conv2d, side: usize) -> (u64, usize) {
    let out = out_side(side, conv.k, conv.stride, conv.pad);
    ((out * out * conv.c_out * conv.c_in * conv.k * conv.k) as u64, out)
}

/// MACs per sample of a linear layer.
pub fn linear_macs(fc: &Linear) -> u64 {
    (fc.in_f * fc.out_f) as u64
}
