//! Models built from the ops: torchvision-exact ResNets (the FG-SSL blocks and heads join them later).
//!
//! A model is a plain struct of layers holding [`Slot`](crate::params::Slot)s; its numbers live in a
//! [`State`]. Forward and backward are written out by hand (no tape): `forward` returns the activations that
//! `backward` needs, `backward` walks them in reverse and accumulates parameter gradients.

pub mod fgssl;
pub mod flops;
pub mod resnet;

use std::collections::BTreeMap;
use std::path::Path;

use crate::backend::Backend;
use crate::error::Result;
use crate::params::{Buffers, Params, Table};
use crate::rng::Rng;
use crate::weights::{self, HostTensor, LoadReport, StateDict};

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
        HostState { params: reg.params.init_host(&mut rng), buffers: reg.buffers.init_host(&mut rng), batches_tracked: vec![0; reg.trackers.len()] }
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

impl Registry {
    /// The model's numbers as a torchvision-style state dict: every parameter and running statistic as F32 under
    /// its torchvision name, `num_batches_tracked` as an I64 scalar.
    pub fn state_dict(&self, host: &HostState) -> Vec<(String, HostTensor)> {
        let mut tensors = Vec::with_capacity(self.params.entries.len() + self.buffers.entries.len() + self.trackers.len());
        for (table, values) in [(&self.params, &host.params), (&self.buffers, &host.buffers)] {
            for e in &table.entries {
                tensors.push((e.name.clone(), HostTensor::f32(&e.shape, values[e.range.clone()].to_vec())));
            }
        }
        for (name, &count) in self.trackers.iter().zip(&host.batches_tracked) {
            tensors.push((name.clone(), HostTensor::scalar_i64(count)));
        }
        tensors
    }

    /// Writes [`Self::state_dict`] as safetensors (atomically: temporary file, then rename).
    pub fn save(&self, path: &Path, host: &HostState, metadata: &BTreeMap<String, String>) -> Result<()> {
        weights::write_safetensors(path, &self.state_dict(host), metadata)
    }

    /// Copies every tensor of `sd` that the model has into `host`. A shape mismatch is an error naming the key
    /// and both shapes; missing and unexpected keys are listed in the report for the caller to judge.
    pub fn load(&self, sd: &StateDict, host: &mut HostState) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        weights::load_table(sd, &self.params, &mut host.params, &mut report)?;
        weights::load_table(sd, &self.buffers, &mut host.buffers, &mut report)?;
        weights::load_counters(sd, &self.trackers, &mut host.batches_tracked, &mut report)?;
        report.finish(sd);
        Ok(report)
    }
}
