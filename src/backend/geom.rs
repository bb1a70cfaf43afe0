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
