//! Geometry of each op: plain `#[repr(C)]` structs of sizes and constants. The ops layer fills them after checking
//! shapes; every backend receives the same struct (a CUDA kernel gets it by value, mirrored field for field in its
//! `.cu` file), so a backend never re-derives a shape.

/// `y = conv2d(x, w) (+ bias)`; x `[n, c_in, h, w]`, w `[c_out, c_in, kh, kw]`, y `[n, c_out, ho, wo]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Conv2dGeom {
    /// Output size follows PyTorch: `(h + 2 pad - kh) / stride + 1` (floor).
    #[allow(clippy::too_many_arguments)]
    pub fn new(n: usize, c_in: usize, h: usize, w: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Self {
        let ho = (h + 2 * pad - k) / stride + 1;
        let wo = (w + 2 * pad - k) / stride + 1;
        Conv2dGeom { n, c_in, h, w, c_out, kh: k, kw: k, stride, pad, ho, wo }
    }
    pub fn x_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    pub fn w_len(&self) -> usize {
        self.c_out * self.c_in * self.kh * self.kw
    }
    pub fn y_len(&self) -> usize {
        self.n * self.c_out * self.ho * self.wo
    }
    /// Multiply-accumulates of the forward pass.
    pub fn macs(&self) -> usize {
        self.y_len() * self.c_in * self.kh * self.kw
    }
}

/// Batch norm over `[n, c, hw]`: 2-d batch norm has `hw = H * W`, 1-d batch norm (on `[N, F]`) has `hw = 1`.
/// PyTorch conventions: biased batch variance for normalising, unbiased for the running variance, and
/// `running = (1 - momentum) * running + momentum * batch_stat`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormGeom {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNormGeom {
    /// Elements of `x` (and `y`, `dx`, `dy`).
    pub fn numel(&self) -> usize {
        self.n * self.c * self.hw
    }
}

/// Windowed max pool with implicit `-inf` padding; x `[n, c, h, w]`, y `[n, c, ho, wo]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2dGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl MaxPool2dGeom {
    pub fn new(n: usize, c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Self {
        let ho = (h + 2 * pad - k) / stride + 1;
        let wo = (w + 2 * pad - k) / stride + 1;
        MaxPool2dGeom { n, c, h, w, k, stride, pad, ho, wo }
    }
}

/// Pooling over the whole spatial extent: x `[n, c, hw]` -> y `[n, c]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalPoolGeom {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

/// `y = x w^T + b`; x `[n, in_f]`, w `[out_f, in_f]` (PyTorch's layout), y `[n, out_f]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearGeom {
    pub n: usize,
    pub in_f: usize,
    pub out_f: usize,
}

/// Channel concatenation of tensors `[n, c_i, hw]` into `[n, sum c_i, hw]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcatGeom {
    pub n: usize,
    pub hw: usize,
    pub channels: Vec<usize>,
}

impl ConcatGeom {
    pub fn c_total(&self) -> usize {
        self.channels.iter().sum()
    }
}

/// Softmax cross-entropy, mean over the batch: logits `[n, k]`, integer labels in `0..k`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossEntropyGeom {
    pub n: usize,
    pub k: usize,
}

/// One parameter tensor's slice of the contiguous parameter arena, with its own optimizer settings.
/// A whole SGD step is one pass over a table of these (one launch on a GPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdSegment {
    pub offset: usize,
    pub len: usize,
    pub lr: f32,
    pub weight_decay: f32,
    /// 1 when the momentum buffer already holds a value; 0 on the parameter's first update (buffer := gradient).
    pub has_momentum: u32,
}

/// Which Barlow Twins loss `barlow_twins_fwd` / `_bwd` compute (`form` of [`BarlowTwinsGeom`]).
pub const BT_FORM_STANDARD: u32 = 0;
/// The FG-SSL reference code's variant: unbiased std, no eps, `λ²‖C − I‖²_F`.
pub const BT_FORM_REFERENCE: u32 = 1;

/// Barlow Twins loss on two embeddings `za`, `zb` `[n, f]` (METHOD.md §6). `form` is [`BT_FORM_STANDARD`]
/// (biased variance + 1e-5, `Σ(1 − C_ii)² + λ Σ_{i≠j} C_ij²`) or [`BT_FORM_REFERENCE`]. Needs `n >= 2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BarlowTwinsGeom {
    pub n: usize,
    pub f: usize,
    pub lambda: f32,
    pub form: u32,
}

impl BarlowTwinsGeom {
    /// Variance epsilon of the standard form (BT's `BatchNorm1d(affine=False)`); the reference form has none.
    pub const EPS: f64 = 1e-5;
}

/// `std_of_l2_normalized` of `z` `[n, f]`: rows divided by `max(‖row‖, 1e-12)`, per-column unbiased std over the
/// batch, mean over columns. Needs `n >= 2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2NormalizedStdGeom {
    pub n: usize,
    pub f: usize,
}

/// A slice `[offset, offset + len)` of the parameter or gradient arena (gradient-norm reductions).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaSegment {
    pub offset: usize,
    pub len: usize,
}

/// One parameter tensor of a LARS step (Barlow Twins' LARS, METHOD.md §13):
/// `d = grad + wd * p; if adapt { d *= trust }; buf = has_momentum ? momentum * buf + d : d; p -= lr * buf`,
/// `trust = (‖p‖ > 0 && ‖d‖ > 0) ? eta ‖p‖ / ‖d‖ : 1`, norms over the whole segment (after weight decay).
/// Excluded tensors (biases, batch-norm parameters) get `weight_decay = 0` and `adapt = 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LarsSegment {
    pub offset: usize,
    pub len: usize,
    pub lr: f32,
    pub weight_decay: f32,
    /// 1 when the momentum buffer holds a value; 0 on the first update (buffer := d, as BT's zero-initialised `mu`).
    pub has_momentum: u32,
    /// 1: scale the update by the trust ratio; 0: excluded from adaptation.
    pub adapt: u32,
}

/// One parameter tensor of an AdamW step (PyTorch semantics, decoupled weight decay):
/// `p *= 1 - lr * wd; m = β1 m + (1 − β1) g; v = β2 v + (1 − β2) g²; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)`
/// with `step_size = lr / (1 − β1^t)` and `bc2_sqrt = sqrt(1 − β2^t)` for the tensor's own step count `t`
/// (computed on the host in f64).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamwSegment {
    pub offset: usize,
    pub len: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub step_size: f32,
    pub bias_correction2_sqrt: f32,
}

/// Most outputs one `augment_fwd` call writes: the SSL view 1 and its three jigsaw views.
pub const AUGMENT_MAX_VIEWS: usize = 4;
/// Largest Gaussian blur radius (`2 r + 1` taps); with `r = ceil(3 sigma)` that is sigma <= 4.
pub const AUGMENT_MAX_BLUR_RADIUS: usize = 12;

/// Augmentation of a batch of cached u8 images: `images` `[n, src, src, 3]` (HWC RGB) to `views` outputs, each
/// `[n, 3, out, out]` f32 in the activation format. All views share the per-sample parameters; view `k` is
/// jigsaw-shuffled on a `grids[k] x grids[k]` grid (0: not shuffled). `mean` / `std` normalise per channel after
/// scaling to [0, 1].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentGeom {
    pub n: usize,
    pub src: usize,
    pub out: usize,
    pub views: usize,
    pub grids: [usize; AUGMENT_MAX_VIEWS],
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl AugmentGeom {
    /// Elements of one output view.
    pub fn view_len(&self) -> usize {
        self.n * 3 * self.out * self.out
    }
    /// Bytes of the input batch.
    pub fn images_len(&self) -> usize {
        self.n * self.src * self.src * 3
    }
    /// Length of the permutation table: `n * grid^2` for every shuffled view, in view order.
    pub fn perms_len(&self) -> usize {
        self.grids[..self.views].iter().map(|&g| self.n * g * g).sum()
    }
}

/// The deterministic parameters of one sample's augmentation, drawn on the host (`augment::policy`) and applied by
/// `augment_fwd` in this order: crop box + bilinear resize to `out`, flips, colour jitter, grayscale, Gaussian
/// blur, solarize. Flags are 0/1. Mirrored in `kernels/augment.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleAug {
    /// Crop box in source pixels (inside the image, non-empty).
    pub crop_top: u32,
    pub crop_left: u32,
    pub crop_h: u32,
    pub crop_w: u32,
    pub hflip: u32,
    pub vflip: u32,
    /// Colour jitter on/off; when on, the four adjustments run in `jitter_order` (0 brightness, 1 contrast,
    /// 2 saturation, 3 hue: torchvision's `fn_idx`) with these factors.
    pub jitter: u32,
    pub jitter_order: [u32; 4],
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
    pub grayscale: u32,
    pub solarize: u32,
    /// Blur radius (0: no blur) and the `2 r + 1` normalised tap weights, computed on the host from the sigma.
    pub blur_radius: u32,
    pub blur_sigma: f32,
    pub blur_taps: [f32; 2 * AUGMENT_MAX_BLUR_RADIUS + 1],
    /// AugMix on the u8 crop, before every float operation (`augment::augmix`); `augmix.on == 0`: none.
    pub augmix: AugmixParams,
}

/// Most AugMix chains (torchvision's `mixture_width`) and ops per chain (`chain_depth`) a sample can carry.
pub const AUGMIX_MAX_WIDTH: usize = 3;
pub const AUGMIX_MAX_DEPTH: usize = 3;

/// One AugMix operation with its magnitude resolved on the host (`augment::augmix` documents each `kind`):
/// `bits` for Posterize; `ratio` the blend factor (Brightness, Color, Contrast, Sharpness) or the threshold
/// (Solarize), `complement` = 1 - ratio rounded once from f64 (as torchvision's `_blend`); `theta` the affine
/// sampling map of the geometric ops, already divided by half the image side (torchvision's `rescaled_theta`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmixOp {
    pub kind: u32,
    pub bits: u32,
    pub ratio: f32,
    pub complement: f32,
    pub theta: [f32; 6],
}

/// AugMix parameters of one sample: `orig_weight * x + Σ_i chain_weights[i] * chain_i(x)`, truncated to u8;
/// chain `i` applies `ops[i][..depth[i]]` in order (`depth[i] == 0`: the chain is unused).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmixParams {
    pub on: u32,
    pub depth: [u32; AUGMIX_MAX_WIDTH],
    pub orig_weight: f32,
    pub chain_weights: [f32; AUGMIX_MAX_WIDTH],
    pub ops: [[AugmixOp; AUGMIX_MAX_DEPTH]; AUGMIX_MAX_WIDTH],
}

/// Jigsaw gather on f32 activations `[n, c, h, w]`: `grid` divides `h` and `w`; tile `d` of the output (row-major)
/// is tile `perm[d]` of the input, one permutation of `grid^2` tiles per sample.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JigsawGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub grid: usize,
}
