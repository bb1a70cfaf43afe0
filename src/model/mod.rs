//! Models built from the ops: torchvision-exact ResNets (the FG-SSL blocks and heads join them later).
//!
//! A model is a plain struct of layers holding [`Slot`](crate::params::Slot)s; its numbers live in a
//! [`State`]. Forward and backward are written out by hand (no tape): `forward` returns the activations that
//! `backward` needs, `backward` walks them in reverse and accumulates parameter gradients.

pub mod resnet;

use crate::backend::Backend;
use crate::error::Result;
use crate::params::{Buffers, Params, Table};
use crate::rng::Rng;

/// Everything a model registers: trainable parameters, running statistics and their counters, all by
/// torchvision name.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub params: Table,
    pub buffers: Table,
    /// Names of the `num_batches_tracked` counters, in the order of [`Buffers::batches_tracked`].
    pub trackers: Vec<String>,
}

/// The numbers of a model on one backend.
pub struct State<B: Backend> {
    pub params: Params<B>,
    pub buffers: Buffers<B>,
}

/// Host copy of a model's numbers, in arena order: what is loaded from and saved to files.
#[derive(Clone, Debug)]
pub struct HostState {
    pub params: Vec<f32>,
    pub buffers: Vec<f32>,
    pub batches_tracked: Vec<i64>,
}

impl HostState {
    /// Fresh initialisation from each entry's `Init`, seeded.
    pub fn init(reg: &Registry, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        HostState {
            params: reg.params.init_host(&mut rng),
            buffers: reg.buffers.init_host(&mut rng),
            batches_tracked: vec![0; reg.trackers.len()],
        }
    }
}

impl<B: Backend> State<B> {
    pub fn upload(b: &B, reg: &Registry, host: &HostState) -> Result<Self> {
        Ok(State {
            params: Params::new(b, reg.params.clone(), &host.params)?,
            buffers: Buffers::new(b, reg.buffers.clone(), &host.buffers, host.batches_tracked.clone())?,
        })
    }

    pub fn download(&self, b: &B) -> Result<HostState> {
        Ok(HostState {
            params: self.params.values_to_host(b)?,
            buffers: self.buffers.to_host(b)?,
            batches_tracked: self.buffers.batches_tracked.clone(),
        })
    }
}
