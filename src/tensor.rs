//! Tensors: a backend buffer plus a logical shape and an explicit memory format.
//!
//! The logical shape is always written in PyTorch order (`[N, C, H, W]`, `[N, F]`), whatever the backend stores.
//! `Format` says how the elements sit in memory: the CPU reference keeps PyTorch's contiguous NCHW f32, a GPU
//! backend may keep NHWC bf16 activations. Layer code never indexes elements; it only passes tensors to ops, so it
//! runs unchanged on any backend.

use crate::backend::Backend;
use crate::error::{Error, Result};

/// Element type of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    Bf16,
    /// The CPU reference in double precision ([`crate::backend::cpu::Cpu64`]), for tight parity checks.
    F64,
}

/// Order of the dimensions in memory for 4-d activations. 2-d tensors (`[N, F]`) are row-major in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// PyTorch's contiguous order: the CPU reference and every file format.
    Nchw,
    /// Channels last: what tensor-core convolution kernels want.
    Nhwc,
}

/// How a backend stores activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub layout: Layout,
    pub dtype: DType,
}

impl Format {
    pub const NCHW_F32: Format = Format { layout: Layout::Nchw, dtype: DType::F32 };
    pub const NCHW_F64: Format = Format { layout: Layout::Nchw, dtype: DType::F64 };
}

/// A logical shape in PyTorch order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// `[N, C, H, W]` of a 4-d shape, or a shape error naming `op`.
    pub fn nchw(&self, op: &'static str) -> Result<[usize; 4]> {
        match self.0.as_slice() {
            &[n, c, h, w] => Ok([n, c, h, w]),
            d => Err(Error::shape(op, format!("expected a 4-d [N, C, H, W] tensor, got {d:?}"))),
        }
    }
    /// `[N, F]` of a 2-d shape, or a shape error naming `op`.
    pub fn nf(&self, op: &'static str) -> Result<[usize; 2]> {
        match self.0.as_slice() {
            &[n, f] => Ok([n, f]),
            d => Err(Error::shape(op, format!("expected a 2-d [N, F] tensor, got {d:?}"))),
        }
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}

impl<const K: usize> From<[usize; K]> for Shape {
    fn from(d: [usize; K]) -> Self {
        Shape(d.to_vec())
    }
}

/// An owned tensor on backend `B`.
pub struct Tensor<B: Backend> {
    pub buf: B::Buf,
    pub shape: Shape,
    pub format: Format,
}

impl<B: Backend> Tensor<B> {
    /// A tensor with unspecified contents in the backend's activation format.
    pub fn uninit(b: &B, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        let format = b.activation_format();
        let buf = b.alloc(shape.numel(), format.dtype)?;
        Ok(Tensor { buf, shape, format })
    }

    /// A zero-filled tensor in the backend's activation format.
    pub fn zeros(b: &B, shape: impl Into<Shape>) -> Result<Self> {
        let mut t = Self::uninit(b, shape)?;
        let n = t.numel();
        b.fill(n, 0.0, b.view_mut(&mut t.buf, 0..n));
        Ok(t)
    }

    /// Copies host data given in PyTorch's contiguous order (NCHW f32) to the backend.
    pub fn from_host(b: &B, shape: impl Into<Shape>, data: &[f32]) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(Error::shape("upload", format!("shape {:?} needs {} values, got {}", shape.0, shape.numel(), data.len())));
        }
        let format = b.activation_format();
        let buf = b.upload(&shape, format, data)?;
        Ok(Tensor { buf, shape, format })
    }

    /// Copies the tensor back to the host in PyTorch's contiguous order (NCHW f32).
    pub fn to_host(&self, b: &B) -> Result<Vec<f32>> {
        b.download(&self.shape, self.format, &self.buf)
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    pub fn view(&self, b: &B) -> B::View<'_> {
        b.view(&self.buf, 0..self.numel())
    }

    pub fn view_mut(&mut self, b: &B) -> B::ViewMut<'_> {
        let n = self.numel();
        b.view_mut(&mut self.buf, 0..n)
    }

    /// Same memory, new logical shape (flatten / unflatten). Only defined where the memory order does not change:
    /// always for NCHW; for NHWC when the spatial extent is 1x1.
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::shape("reshape", format!("{:?} -> {:?} changes the element count", self.shape.0, shape.0)));
        }
        let spatial_is_trivial = |s: &Shape| s.0.len() != 4 || s.0[2] * s.0[3] == 1;
        if self.format.layout == Layout::Nhwc && !(spatial_is_trivial(&self.shape) && spatial_is_trivial(&shape)) {
            return Err(Error::shape("reshape", format!("{:?} -> {:?} would reorder an NHWC tensor", self.shape.0, shape.0)));
        }
        Ok(Tensor { buf: self.buf, shape, format: self.format })
    }
}
