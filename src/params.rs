//! Parameters, gradients, optimizer state and running statistics, each in one contiguous arena (llm.c style).
//!
//! A model registers every tensor it owns in a [`Table`] under its exact torchvision name and gets a [`Slot`]
//! (a range of the arena) back. Values, gradients and momentum of all trainable parameters are three buffers
//! with the same layout, so zeroing gradients is one fill and an SGD step is one pass (one launch on a GPU) over
//! a table of segments. Batch-norm running statistics live in a second table ([`Buffers`]); their
//! `num_batches_tracked` counters are host integers, one per batch-norm layer.

use std::ops::Range;

use crate::backend::geom::{AdamwSegment, ArenaSegment, LarsSegment, SgdSegment};
use crate::backend::Backend;
use crate::error::Result;
use crate::rng::Rng;
use crate::tensor::Shape;

/// How a tensor is initialised when a model is built from scratch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Const(f32),
    /// Normal(0, std).
    Normal(f32),
    /// Uniform(-bound, bound).
    Uniform(f32),
}

/// A registered tensor: index into its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot(pub usize);

#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub range: Range<usize>,
    pub init: Init,
    /// Learning-rate multiplier of the entry's parameter group (1 for new layers, 0.1 for a pretrained backbone).
    pub lr_scale: f32,
}

/// Names, shapes and arena ranges of a set of tensors.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub entries: Vec<Entry>,
    pub len: usize,
}

impl Table {
    pub fn add(&mut self, name: impl Into<String>, shape: &[usize], init: Init) -> Slot {
        let numel: usize = shape.iter().product();
        let range = self.len..self.len + numel;
        self.len += numel;
        self.entries.push(Entry { name: name.into(), shape: shape.to_vec(), range, init, lr_scale: 1.0 });
        Slot(self.entries.len() - 1)
    }
    pub fn range(&self, s: Slot) -> Range<usize> {
        self.entries[s.0].range.clone()
    }
    pub fn entry(&self, s: Slot) -> &Entry {
        &self.entries[s.0]
    }
    pub fn find(&self, name: &str) -> Option<Slot> {
        self.entries.iter().position(|e| e.name == name).map(Slot)
    }
    /// Host values drawn from each entry's `Init`, in arena order.
    pub fn init_host(&self, rng: &mut Rng) -> Vec<f32> {
        let mut host = vec![0.0f32; self.len];
        for e in &self.entries {
            let dst = &mut host[e.range.clone()];
            match e.init {
                Init::Const(v) => dst.fill(v),
                Init::Normal(std) => dst.iter_mut().for_each(|v| *v = std * rng.normal()),
                Init::Uniform(b) => dst.iter_mut().for_each(|v| *v = rng.uniform_in(-b, b)),
            }
        }
        host
    }
}

fn upload_flat<B: Backend>(b: &B, host: &[f32]) -> Result<B::Buf> {
    b.upload(&Shape(vec![host.len()]), b.param_format(), host)
}

fn download_flat<B: Backend>(b: &B, buf: &B::Buf, n: usize) -> Result<Vec<f32>> {
    b.download(&Shape(vec![n]), b.param_format(), buf)
}

fn zeros_flat<B: Backend>(b: &B, n: usize) -> Result<B::Buf> {
    let mut buf = b.alloc(n, b.param_format().dtype)?;
    b.fill(n, 0.0, b.view_mut(&mut buf, 0..n));
    Ok(buf)
}

/// Trainable parameters with their gradients and SGD momentum, three arenas of identical layout.
pub struct Params<B: Backend> {
    pub table: Table,
    pub value: B::Buf,
    pub grad: B::Buf,
    pub momentum: B::Buf,
    /// Per entry: whether its momentum buffer holds a value yet (PyTorch creates it on the first update).
    pub has_momentum: Vec<bool>,
    /// AdamW's second-moment arena (same layout, zero-initialised), allocated by [`Params::ensure_second_moment`]
    /// when AdamW is used; `momentum` then holds AdamW's first moment.
    pub second_moment: Option<B::Buf>,
}

impl<B: Backend> Params<B> {
    /// Uploads `host` values (arena order) and zeroes gradients and momentum.
    pub fn new(b: &B, table: Table, host: &[f32]) -> Result<Self> {
        assert_eq!(host.len(), table.len, "host values must cover the whole parameter arena");
        let n = table.len;
        let has_momentum = vec![false; table.entries.len()];
        Ok(Params { value: upload_flat(b, host)?, grad: zeros_flat(b, n)?, momentum: zeros_flat(b, n)?, table, has_momentum, second_moment: None })
    }

    pub fn value(&self, b: &B, s: Slot) -> B::View<'_> {
        b.view(&self.value, self.table.range(s))
    }

    pub fn values_to_host(&self, b: &B) -> Result<Vec<f32>> {
        download_flat(b, &self.value, self.table.len)
    }

    pub fn grads_to_host(&self, b: &B) -> Result<Vec<f32>> {
        download_flat(b, &self.grad, self.table.len)
    }

    /// Replaces all values (for example after loading a checkpoint).
    pub fn set_values(&mut self, b: &B, host: &[f32]) -> Result<()> {
        assert_eq!(host.len(), self.table.len);
        self.value = upload_flat(b, host)?;
        Ok(())
    }

    pub fn zero_grad(&mut self, b: &B) {
        let n = self.table.len;
        b.fill(n, 0.0, b.view_mut(&mut self.grad, 0..n));
    }

    /// One SGD step over the entries in `updated` (entries that received no gradient are skipped entirely, as
    /// PyTorch does for parameters whose `.grad` is `None`). `lr` is the base rate; each entry scales it by its
    /// `lr_scale`.
    pub fn sgd_step(&mut self, b: &B, lr: f32, momentum: f32, weight_decay: f32, updated: impl Fn(Slot) -> bool) {
        let mut segments = Vec::with_capacity(self.table.entries.len());
        for (i, e) in self.table.entries.iter().enumerate() {
            if !updated(Slot(i)) {
                continue;
            }
            segments.push(SgdSegment {
                offset: e.range.start,
                len: e.range.len(),
                lr: lr * e.lr_scale,
                weight_decay,
                has_momentum: self.has_momentum[i] as u32,
            });
            self.has_momentum[i] = true;
        }
        let n = self.table.len;
        b.sgd_step(&segments, momentum, b.view_mut(&mut self.value, 0..n), b.view(&self.grad, 0..n), b.view_mut(&mut self.momentum, 0..n));
    }

    // ---- the other optimizers' plumbing (policy, segment tables and step counts: `training::optim`) ------------

    /// One LARS step over `segments` (momentum in the `momentum` arena).
    pub fn lars_step(&mut self, b: &B, segments: &[LarsSegment], momentum: f32, eta: f32) {
        let n = self.table.len;
        b.lars_step(segments, momentum, eta, b.view_mut(&mut self.value, 0..n), b.view(&self.grad, 0..n), b.view_mut(&mut self.momentum, 0..n));
    }

    /// Allocates AdamW's zeroed second-moment arena if it does not exist yet.
    pub fn ensure_second_moment(&mut self, b: &B) -> Result<()> {
        if self.second_moment.is_none() {
            self.second_moment = Some(zeros_flat(b, self.table.len)?);
        }
        Ok(())
    }

    /// One AdamW step over `segments` (first moment in `momentum`, second in `second_moment`, allocated here).
    pub fn adamw_step(&mut self, b: &B, segments: &[AdamwSegment], beta1: f32, beta2: f32, eps: f32) -> Result<()> {
        self.ensure_second_moment(b)?;
        let n = self.table.len;
        let v = self.second_moment.as_mut().expect("allocated above");
        b.adamw_step(
            segments,
            beta1,
            beta2,
            eps,
            b.view_mut(&mut self.value, 0..n),
            b.view(&self.grad, 0..n),
            b.view_mut(&mut self.momentum, 0..n),
            b.view_mut(v, 0..n),
        );
        Ok(())
    }

    /// L2 norm of the gradients in `segments` (read back to the host).
    pub fn grad_norm(&self, b: &B, segments: &[ArenaSegment]) -> Result<f32> {
        let mut out = zeros_flat(b, 1)?;
        b.grad_norm(segments, b.view(&self.grad, 0..self.table.len), b.view_mut(&mut out, 0..1));
        Ok(download_flat(b, &out, 1)?[0])
    }

    /// Multiplies the whole gradient arena by `alpha` (gradient clipping).
    pub fn scale_grads(&mut self, b: &B, alpha: f32) {
        let n = self.table.len;
        b.scale(n, alpha, b.view_mut(&mut self.grad, 0..n));
    }

    /// The momentum (AdamW: first-moment) arena, for checkpoints.
    pub fn momentum_to_host(&self, b: &B) -> Result<Vec<f32>> {
        download_flat(b, &self.momentum, self.table.len)
    }

    /// The second-moment arena, if AdamW allocated one.
    pub fn second_moment_to_host(&self, b: &B) -> Result<Option<Vec<f32>>> {
        self.second_moment.as_ref().map(|v| download_flat(b, v, self.table.len)).transpose()
    }

    /// Restores the momentum arena (host values in arena order).
    pub fn set_momentum(&mut self, b: &B, host: &[f32]) -> Result<()> {
        assert_eq!(host.len(), self.table.len);
        self.momentum = upload_flat(b, host)?;
        Ok(())
    }

    /// Restores (or drops, with `None`) the second-moment arena.
    pub fn set_second_moment(&mut self, b: &B, host: Option<&[f32]>) -> Result<()> {
        self.second_moment = match host {
            Some(h) => {
                assert_eq!(h.len(), self.table.len);
                Some(upload_flat(b, h)?)
            }
            None => None,
        };
        Ok(())
    }
}

/// Non-trainable state: batch-norm running means and variances, and one `num_batches_tracked` per layer.
pub struct Buffers<B: Backend> {
    pub table: Table,
    pub value: B::Buf,
    pub batches_tracked: Vec<i64>,
}

impl<B: Backend> Buffers<B> {
    pub fn new(b: &B, table: Table, host: &[f32], batches_tracked: Vec<i64>) -> Result<Self> {
        assert_eq!(host.len(), table.len, "host values must cover the whole buffer arena");
        Ok(Buffers { value: upload_flat(b, host)?, table, batches_tracked })
    }

    pub fn to_host(&self, b: &B) -> Result<Vec<f32>> {
        download_flat(b, &self.value, self.table.len)
    }

    pub fn set_values(&mut self, b: &B, host: &[f32]) -> Result<()> {
        assert_eq!(host.len(), self.table.len);
        self.value = upload_flat(b, host)?;
        Ok(())
    }
}
