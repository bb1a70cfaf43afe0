//! The backend abstraction and the engine's whole op set, listed once.
//!
//! A backend owns memory (`Buf`) and runs ops on windows into it (`View`, `ViewMut`). Every op that layers and
//! training code may use is a method of [`Backend`]; there is no other way to touch tensor data. The CPU backend
//! ([`cpu::Cpu`], f32; [`cpu::Cpu64`], the same code in f64) is the reference implementation and the specification
//! the CUDA backend is tested against.
//!
//! Conventions shared by every op:
//! - forward and backward of an op sit next to each other, named `<op>_fwd` / `<op>_bwd`;
//! - activation gradients are written (`dx = ...`), parameter gradients are accumulated (`dw += ...`), so several
//!   backward passes can add into one gradient arena before an optimizer step;
//! - shapes arrive already checked, in a geometry struct from [`geom`]; buffers are addressed in the backend's own
//!   activation [`Format`], parameters in PyTorch's layout (OIHW conv weights, `[out, in]` linear) and in the
//!   backend's [`Backend::param_format`] (f32, except in the f64 CPU reference).

pub mod cpu;
pub mod cuda;
pub mod geom;

use std::ops::Range;

use crate::error::Result;
use crate::tensor::{DType, Format, Shape};
use geom::*;

/// What a backend multiplies convolutions in; everything else is f32 (or the f64 reference's f64) in both.
///
/// `Bf16` is mixed precision in the sense of PyTorch's autocast, applied to convolutions only (they carry
/// almost all of FG-SSL's FLOPs): the forward pass and both gradients (input and weight) multiply operands rounded
/// to bf16 (round to nearest even) with f32 accumulation, on tensor cores on a GPU. The conv output, the
/// activations stored between ops, batch norm, linear layers, losses, master weights, gradients and optimizer state
/// stay f32, and so does a conv bias (added after the product; its gradient sums the unrounded `dy`). The CPU
/// backend emulates the same rounding exactly, so it stays the reference for a bf16 GPU run up to summation order.
/// Storing activations themselves in bf16 (NHWC) is not done yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub const NAMES: [&'static str; 2] = ["fp32", "bf16"];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("'{other}' is not a precision (expected fp32 or bf16)")),
        }
    }
}

/// What batch norm's elementwise pass does after the affine map `bn(x) = (x - mean) * invstd * gamma + beta`: the
/// fused BN+ReLU and BN+add+ReLU of ResNet units and block tails, one pass instead of two or three.
#[derive(Clone, Copy, Debug)]
pub enum BnEpilogue<V> {
    /// `y = bn(x)`.
    None,
    /// `y = relu(bn(x))`.
    Relu,
    /// `y = relu(bn(x) + residual)`, residual shaped like `x`.
    AddRelu(V),
}

/// The backward twin of [`BnEpilogue`]. The ReLU mask comes from the fused forward's saved output `y`: the
/// gradient reaching batch norm is `dy * (y > 0)` (as `relu_bwd`), and for `AddRelu` that same masked gradient is
/// the residual's gradient, written into `dresidual`.
#[derive(Debug)]
pub enum BnEpilogueGrad<V, M> {
    None,
    Relu { y: V },
    AddRelu { y: V, dresidual: M },
}

pub trait Backend: Sized {
    /// Owned memory: one tensor, or an arena holding many (parameters, gradients, optimizer state).
    type Buf;
    /// A read-only window into a `Buf`.
    type View<'a>
    where
        Self: 'a;
    /// A writable window into a `Buf`.
    type ViewMut<'a>
    where
        Self: 'a;
    /// Owned u8 memory: a batch of cached images (`[n, side, side, 3]` HWC RGB), uploaded once per batch.
    type Bytes;
    /// A point in this backend's order of work, for timing (`fgssl bench`): an event recorded on the stream on a
    /// device, the host clock on the CPU (whose ops finish before they return).
    type Mark;

    // ---- device and memory -------------------------------------------------------------------------------------

    /// Human-readable device name, printed by every command that computes.
    fn name(&self) -> String;
    /// Layout and element type this backend uses for activations.
    fn activation_format(&self) -> Format;
    /// Format of the flat parameter, gradient, optimizer-state and running-statistics arenas: f32, whatever the
    /// activations use, unless the backend computes in another precision throughout (the f64 CPU reference).
    fn param_format(&self) -> Format {
        Format::NCHW_F32
    }
    /// What convolutions multiply in ([`Precision`]).
    fn precision(&self) -> Precision {
        Precision::Fp32
    }
    /// `numel` elements of `dtype`, contents unspecified.
    fn alloc(&self, numel: usize, dtype: DType) -> Result<Self::Buf>;
    /// Device memory allocations (driver calls, not cache hits) made so far, for checks that steady-state training
    /// allocates nothing; `None` for a backend that does not count them (the CPU).
    fn device_allocations(&self) -> Option<u64> {
        None
    }
    /// Host data in PyTorch's contiguous order (NCHW, f32) to a buffer in `format`.
    fn upload(&self, shape: &Shape, format: Format, host: &[f32]) -> Result<Self::Buf>;
    /// A buffer in `format` back to host data in PyTorch's contiguous order (NCHW, f32).
    fn download(&self, shape: &Shape, format: Format, buf: &Self::Buf) -> Result<Vec<f32>>;
    /// Host bytes (cached u8 images) to the device, unchanged.
    fn upload_bytes(&self, host: &[u8]) -> Result<Self::Bytes>;
    fn view<'a>(&self, buf: &'a Self::Buf, range: Range<usize>) -> Self::View<'a>;
    fn view_mut<'a>(&self, buf: &'a mut Self::Buf, range: Range<usize>) -> Self::ViewMut<'a>;
    /// Two writable windows into disjoint ranges of one buffer (in either order), e.g. a layer's weight and bias
    /// gradients, which sit next to each other in the gradient arena. Panics if the ranges overlap.
    fn view_mut_pair<'a>(&self, buf: &'a mut Self::Buf, first: Range<usize>, second: Range<usize>) -> (Self::ViewMut<'a>, Self::ViewMut<'a>);
    /// `y[i] = value`.
    fn fill(&self, n: usize, value: f32, y: Self::ViewMut<'_>);

    // ---- convolution (no bias in ResNet; optional for other layers) --------------------------------------------

    fn conv2d_fwd(&self, g: &Conv2dGeom, x: Self::View<'_>, w: Self::View<'_>, bias: Option<Self::View<'_>>, y: Self::ViewMut<'_>);
    /// `dx = conv_transpose(dy, w)` when requested, `dw += dy ⋆ x`, `dbias += Σ dy`.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_bwd(
        &self,
        g: &Conv2dGeom,
        x: Self::View<'_>,
        w: Self::View<'_>,
        dy: Self::View<'_>,
        dx: Option<Self::ViewMut<'_>>,
        dw: Self::ViewMut<'_>,
        dbias: Option<Self::ViewMut<'_>>,
    );

    // ---- batch norm, 2-d and 1-d ---------------------------------------------------------------------------------

    /// Training mode: normalise with batch statistics, save mean and 1/sqrt(var + eps) per channel for backward,
    /// and update the running statistics in place. `epilogue` fuses a ReLU or a residual add + ReLU into the
    /// same elementwise pass ([`BnEpilogue`]).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fwd_train(
        &self,
        g: &BatchNormGeom,
        x: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        running_mean: Self::ViewMut<'_>,
        running_var: Self::ViewMut<'_>,
        y: Self::ViewMut<'_>,
        saved_mean: Self::ViewMut<'_>,
        saved_invstd: Self::ViewMut<'_>,
        epilogue: BnEpilogue<Self::View<'_>>,
    );
    /// Evaluation mode: normalise with the running statistics, then `epilogue`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fwd_eval(
        &self,
        g: &BatchNormGeom,
        x: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        running_mean: Self::View<'_>,
        running_var: Self::View<'_>,
        y: Self::ViewMut<'_>,
        epilogue: BnEpilogue<Self::View<'_>>,
    );
    /// Backward of the training-mode forward: `dx = ...`, `dgamma += ...`, `dbeta += ...`. `epilogue` must match
    /// the forward's: it masks `dy` with the saved fused output and writes the residual's gradient
    /// ([`BnEpilogueGrad`]).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_bwd(
        &self,
        g: &BatchNormGeom,
        x: Self::View<'_>,
        gamma: Self::View<'_>,
        saved_mean: Self::View<'_>,
        saved_invstd: Self::View<'_>,
        dy: Self::View<'_>,
        dx: Self::ViewMut<'_>,
        dgamma: Self::ViewMut<'_>,
        dbeta: Self::ViewMut<'_>,
        epilogue: BnEpilogueGrad<Self::View<'_>, Self::ViewMut<'_>>,
    );

    // ---- activations ---------------------------------------------------------------------------------------------

    fn relu_fwd(&self, n: usize, x: Self::View<'_>, y: Self::ViewMut<'_>);
    /// From the forward output: `dx = dy * (y > 0)`.
    fn relu_bwd(&self, n: usize, y: Self::View<'_>, dy: Self::View<'_>, dx: Self::ViewMut<'_>);
    fn elu_fwd(&self, n: usize, alpha: f32, x: Self::View<'_>, y: Self::ViewMut<'_>);
    fn elu_bwd(&self, n: usize, alpha: f32, x: Self::View<'_>, dy: Self::View<'_>, dx: Self::ViewMut<'_>);

    // ---- pooling -------------------------------------------------------------------------------------------------

    fn max_pool2d_fwd(&self, g: &MaxPool2dGeom, x: Self::View<'_>, y: Self::ViewMut<'_>);
    /// Routes each output gradient to the first maximum of its window (PyTorch's tie rule); a backend may
    /// recompute the argmax from `x` or keep it from the forward pass.
    fn max_pool2d_bwd(&self, g: &MaxPool2dGeom, x: Self::View<'_>, dy: Self::View<'_>, dx: Self::ViewMut<'_>);
    fn global_max_pool_fwd(&self, g: &GlobalPoolGeom, x: Self::View<'_>, y: Self::ViewMut<'_>);
    fn global_max_pool_bwd(&self, g: &GlobalPoolGeom, x: Self::View<'_>, dy: Self::View<'_>, dx: Self::ViewMut<'_>);
    fn global_avg_pool_fwd(&self, g: &GlobalPoolGeom, x: Self::View<'_>, y: Self::ViewMut<'_>);
    fn global_avg_pool_bwd(&self, g: &GlobalPoolGeom, dy: Self::View<'_>, dx: Self::ViewMut<'_>);

    // ---- linear --------------------------------------------------------------------------------------------------

    fn linear_fwd(&self, g: &LinearGeom, x: Self::View<'_>, w: Self::View<'_>, bias: Option<Self::View<'_>>, y: Self::ViewMut<'_>);
    /// `dx = dy w` when requested, `dw += dyᵀ x`, `dbias += Σ dy`.
    #[allow(clippy::too_many_arguments)]
    fn linear_bwd(
        &self,
        g: &LinearGeom,
        x: Self::View<'_>,
        w: Self::View<'_>,
        dy: Self::View<'_>,
        dx: Option<Self::ViewMut<'_>>,
        dw: Self::ViewMut<'_>,
        dbias: Option<Self::ViewMut<'_>>,
    );

    // ---- tensor plumbing -----------------------------------------------------------------------------------------

    /// `y = a + b` (residual add). Its backward is the identity for both inputs, so it has no `_bwd`; the same op
    /// sums the two gradients that meet where a residual branch starts.
    fn add_fwd(&self, n: usize, a: Self::View<'_>, b: Self::View<'_>, y: Self::ViewMut<'_>);
    /// Channel concatenation and its backward (the split of `dy` into the inputs' gradients).
    fn concat_fwd(&self, g: &ConcatGeom, xs: &[Self::View<'_>], y: Self::ViewMut<'_>);
    fn concat_bwd(&self, g: &ConcatGeom, dy: Self::View<'_>, dxs: Vec<Self::ViewMut<'_>>);
    // Flatten is a view change with no data movement ([`crate::tensor::Tensor::reshape`]), so it has no kernel.

    // ---- loss ----------------------------------------------------------------------------------------------------

    /// Softmax cross-entropy, mean over the batch. Writes the loss into `loss[0]` and the softmax probabilities
    /// (kept for backward) into `probs`. Labels live on the host; a device backend copies them once per batch.
    fn cross_entropy_fwd(&self, g: &CrossEntropyGeom, logits: Self::View<'_>, labels: &[u32], probs: Self::ViewMut<'_>, loss: Self::ViewMut<'_>);
    /// `dlogits = dloss * (probs - onehot(labels)) / n`.
    fn cross_entropy_bwd(&self, g: &CrossEntropyGeom, probs: Self::View<'_>, labels: &[u32], dloss: f32, dlogits: Self::ViewMut<'_>);

    // ---- optimizer -----------------------------------------------------------------------------------------------

    /// SGD with momentum and weight decay, PyTorch semantics, over every segment of the parameter arena in one pass:
    /// `g = grad + wd * p; buf = has_momentum ? momentum * buf + g : g; p -= lr * buf`.
    fn sgd_step(&self, segments: &[SgdSegment], momentum: f32, params: Self::ViewMut<'_>, grads: Self::View<'_>, bufs: Self::ViewMut<'_>);
    /// LARS (Barlow Twins style) over every segment ([`LarsSegment`] gives the update): per-segment norms of `p`
    /// and of `grad + wd * p` (deterministic reductions), the trust ratio `eta ‖p‖ / ‖d‖`, then the momentum update.
    fn lars_step(&self, segments: &[LarsSegment], momentum: f32, eta: f32, params: Self::ViewMut<'_>, grads: Self::View<'_>, bufs: Self::ViewMut<'_>);
    /// AdamW, PyTorch semantics ([`AdamwSegment`] gives the update), over every segment in one pass. `exp_avg` and
    /// `exp_avg_sq` are arenas laid out like `params` (zero before a tensor's first step).
    #[allow(clippy::too_many_arguments)]
    fn adamw_step(
        &self,
        segments: &[AdamwSegment],
        beta1: f32,
        beta2: f32,
        eps: f32,
        params: Self::ViewMut<'_>,
        grads: Self::View<'_>,
        exp_avg: Self::ViewMut<'_>,
        exp_avg_sq: Self::ViewMut<'_>,
    );
    /// `norm[0] = sqrt(Σ grads²)` over the segments (global gradient-norm clipping), a deterministic reduction.
    fn grad_norm(&self, segments: &[ArenaSegment], grads: Self::View<'_>, norm: Self::ViewMut<'_>);
    /// `y[i] *= alpha` (scales the gradient arena by the clipping factor).
    fn scale(&self, n: usize, alpha: f32, y: Self::ViewMut<'_>);

    // ---- Barlow Twins loss and its collapse monitor ---------------------------------------------------------------

    /// Standardises `za`, `zb` `[n, f]` per column (written to `za_hat`, `zb_hat`, with `1/σ` per column in
    /// `inv_std_a`, `inv_std_b`), writes the cross-correlation `c = za_hatᵀ zb_hat / n` `[f, f]` and
    /// `terms = [loss, on_diag, off_diag]` (see [`BarlowTwinsGeom`] for the two forms).
    #[allow(clippy::too_many_arguments)]
    fn barlow_twins_fwd(
        &self,
        g: &BarlowTwinsGeom,
        za: Self::View<'_>,
        zb: Self::View<'_>,
        za_hat: Self::ViewMut<'_>,
        zb_hat: Self::ViewMut<'_>,
        inv_std_a: Self::ViewMut<'_>,
        inv_std_b: Self::ViewMut<'_>,
        c: Self::ViewMut<'_>,
        terms: Self::ViewMut<'_>,
    );
    /// Gradients of `dloss * loss` with respect to `za` and `zb` (written), from what the forward saved.
    #[allow(clippy::too_many_arguments)]
    fn barlow_twins_bwd(
        &self,
        g: &BarlowTwinsGeom,
        za_hat: Self::View<'_>,
        zb_hat: Self::View<'_>,
        inv_std_a: Self::View<'_>,
        inv_std_b: Self::View<'_>,
        c: Self::View<'_>,
        dloss: f32,
        dza: Self::ViewMut<'_>,
        dzb: Self::ViewMut<'_>,
    );
    /// `out[0] = std_of_l2_normalized(z)` ([`L2NormalizedStdGeom`]): ≈ 0 for collapsed embeddings, ≈ 1/√f healthy.
    fn l2_normalized_std_fwd(&self, g: &L2NormalizedStdGeom, z: Self::View<'_>, out: Self::ViewMut<'_>);

    // ---- augmentation and jigsaw (data, so no backward) ------------------------------------------------------

    /// Cached u8 images `[n, src, src, 3]` to `g.views` normalised f32 views `[n, 3, out, out]`, applying each
    /// sample's `params` (crop + bilinear resize, flips, colour jitter, grayscale, Gaussian blur, solarize,
    /// normalise; semantics in `augment::policy`), then view `k`'s jigsaw on a `g.grids[k]` grid (0: none) with
    /// its permutations, which follow each other in `perms` (`n * grid^2` per shuffled view, in view order).
    /// Params and permutations are host data; a device backend copies them once per call.
    fn augment_fwd(&self, g: &AugmentGeom, images: &Self::Bytes, params: &[SampleAug], perms: &[u32], ys: Vec<Self::ViewMut<'_>>);
    /// Jigsaw gather on f32 activations: tile `d` of `y` is tile `perms[i * grid^2 + d]` of `x`, per sample `i`.
    fn jigsaw_fwd(&self, g: &JigsawGeom, perms: &[u32], x: Self::View<'_>, y: Self::ViewMut<'_>);

    // ---- timing (benchmarks only; training never marks) ---------------------------------------------------------

    /// Marks the point reached by the work queued so far (does not wait for it).
    fn mark(&self) -> Result<Self::Mark>;
    /// Milliseconds of device time between two marks, `from` first; waits until `to` is reached.
    fn elapsed_ms(&self, from: &Self::Mark, to: &Self::Mark) -> Result<f64>;
}
