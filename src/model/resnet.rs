//! torchvision-exact ResNet-18, -34 and -50 with an explicit forward and backward.
//!
//! Structure and names follow `torchvision.models.resnet`: stem `conv1` 7x7/2 -> `bn1` -> ReLU -> max pool
//! 3x3/2, then `layer1..layer4`. A BasicBlock is (3x3, 3x3), a Bottleneck is (1x1, 3x3, 1x1) with the stride on
//! the 3x3 conv ("v1.5"); both are written here as one [`Block`]: a list of conv+BN units with ReLU between them,
//! an optional `downsample` (1x1 conv + BN) shortcut, the residual add and a final ReLU. `avgpool` + `fc` form
//! the optional classifier. The forward can stop after any stage and exposes every stage's output.

use std::fmt;
use std::str::FromStr;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ops::{add, global_pool, max_pool2d, BatchNorm, BnSaved, Conv2d, Linear, Mode};
use crate::params::Init;
use crate::tensor::{Shape, Tensor};

use super::{Registry, State};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    ResNet18,
    ResNet34,
    ResNet50,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::ResNet18, Arch::ResNet34, Arch::ResNet50];

    /// Blocks per stage.
    pub fn depths(self) -> [usize; 4] {
        match self {
            Arch::ResNet18 => [2, 2, 2, 2],
            Arch::ResNet34 | Arch::ResNet50 => [3, 4, 6, 3],
        }
    }

    pub fn bottleneck(self) -> bool {
        self == Arch::ResNet50
    }

    /// Output channels of `layer1..layer4`.
    pub fn stage_channels(self) -> [usize; 4] {
        let e = if self.bottleneck() { 4 } else { 1 };
        [64 * e, 128 * e, 256 * e, 512 * e]
    }

    /// Width of the pooled `layer4` features (what `fc` reads).
    pub fn feature_dim(self) -> usize {
        self.stage_channels()[3]
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
        })
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.to_string() == s.to_ascii_lowercase())
            .ok_or_else(|| Error::Invalid(format!("unknown architecture '{s}' (expected resnet18, resnet34 or resnet50)")))
    }
}

/// A conv followed by its batch norm (torchvision's `convK` + `bnK`, or `downsample.0` + `downsample.1`).
#[derive(Clone, Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(reg: &mut Registry, conv_name: &str, bn_name: &str, c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Self {
        let conv = Conv2d::new(&mut reg.params, conv_name, c_in, c_out, k, stride, pad, false);
        let bn = BatchNorm::new(&mut reg.params, &mut reg.buffers, &mut reg.trackers, bn_name, c_out, 0.1);
        ConvBn { conv, bn }
    }
}

/// One residual block: `relu(units(x) + shortcut(x))`, with ReLU between the units.
#[derive(Clone, Debug)]
struct Block {
    units: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

/// What a block's training forward keeps. Unit `i` saved its conv output (the BN input), its BN statistics and,
/// except for the last unit, its fused BN+ReLU output (the next unit's input, and the ReLU mask for backward).
/// The last unit's fused BN+add+ReLU output is the block output, which the caller keeps anyway.
struct UnitSaved<B: Backend> {
    conv_out: Tensor<B>,
    bn: BnSaved<B>,
    act: Option<Tensor<B>>,
}

struct BlockSaved<B: Backend> {
    units: Vec<UnitSaved<B>>,
    downsample: Option<(Tensor<B>, BnSaved<B>)>,
}

impl Block {
    fn new(reg: &mut Registry, name: &str, arch: Arch, c_in: usize, width: usize, stride: usize) -> Self {
        let units = if arch.bottleneck() {
            vec![
                ConvBn::new(reg, &format!("{name}.conv1"), &format!("{name}.bn1"), c_in, width, 1, 1, 0),
                ConvBn::new(reg, &format!("{name}.conv2"), &format!("{name}.bn2"), width, width, 3, stride, 1),
                ConvBn::new(reg, &format!("{name}.conv3"), &format!("{name}.bn3"), width, width * 4, 1, 1, 0),
            ]
        } else {
            vec![
                ConvBn::new(reg, &format!("{name}.conv1"), &format!("{name}.bn1"), c_in, width, 3, stride, 1),
                ConvBn::new(reg, &format!("{name}.conv2"), &format!("{name}.bn2"), width, width, 3, 1, 1),
            ]
        };
        let c_out = units.last().map(|u| u.conv.c_out).unwrap_or(width);
        let downsample = (stride != 1 || c_in != c_out)
            .then(|| ConvBn::new(reg, &format!("{name}.downsample.0"), &format!("{name}.downsample.1"), c_in, c_out, 1, stride, 0));
        Block { units, downsample }
    }

    fn c_out(&self) -> usize {
        self.units.last().expect("a block has units").conv.c_out
    }

    /// `relu(units(x) + shortcut(x))`: each inner unit is conv -> fused BN+ReLU, the last unit conv -> fused
    /// BN+add+ReLU with the shortcut as the residual (bit-identical on the CPU to BN, add and ReLU run apart).
    fn forward<B: Backend>(&self, b: &B, st: &mut State<B>, x: &Tensor<B>, mode: Mode) -> Result<(Tensor<B>, Option<BlockSaved<B>>)> {
        let mut units: Vec<UnitSaved<B>> = Vec::with_capacity(self.units.len()); // stays empty in evaluation
        let mut act: Option<Tensor<B>> = None; // fused BN+ReLU output of the previous unit: this unit's input
        let mut out = None;
        let mut downsample = None;
        for (i, u) in self.units.iter().enumerate() {
            let conv_out = u.conv.forward(b, &st.params, act.as_ref().unwrap_or(x))?;
            // The previous activation is kept with its unit for backward (training) or dropped (evaluation).
            match units.last_mut() {
                Some(prev) => prev.act = act.take(),
                None => act = None,
            }
            let (bn_out, bn) = if i + 1 < self.units.len() {
                u.bn.forward_relu(b, &st.params, &mut st.buffers, &conv_out, mode)?
            } else {
                // The shortcut, computed only now so that it is not held while the inner units run.
                let short = match &self.downsample {
                    None => None,
                    Some(d) => {
                        let ds_conv_out = d.conv.forward(b, &st.params, x)?;
                        let (short, saved) = d.bn.forward(b, &st.params, &mut st.buffers, &ds_conv_out, mode)?;
                        downsample = saved.map(|s| (ds_conv_out, s));
                        Some(short)
                    }
                };
                u.bn.forward_add_relu(b, &st.params, &mut st.buffers, &conv_out, short.as_ref().unwrap_or(x), mode)?
            };
            if let Some(bn) = bn {
                units.push(UnitSaved { conv_out, bn, act: None });
            }
            if i + 1 < self.units.len() {
                act = Some(bn_out);
            } else {
                out = Some(bn_out);
            }
        }
        let saved = (mode == Mode::Train).then_some(BlockSaved { units, downsample });
        Ok((out.expect("a block has units"), saved))
    }

    /// Gradient with respect to the block input `x`, given the block output `out` (the ReLU mask of the tail) and
    /// the gradient of the output.
    fn backward<B: Backend>(
        &self,
        b: &B,
        st: &mut State<B>,
        x: &Tensor<B>,
        out: &Tensor<B>,
        saved: &BlockSaved<B>,
        d_out: &Tensor<B>,
    ) -> Result<Tensor<B>> {
        // Walk the units in reverse; `grad` is the gradient at the input of unit i + 1 (the output of unit i).
        let mut grad: Option<Tensor<B>> = None;
        // Gradient of the residual sum: what the shortcut receives.
        let mut d_sum: Option<Tensor<B>> = None;
        for (i, u) in self.units.iter().enumerate().rev() {
            let us = &saved.units[i];
            let d_conv_out = if i + 1 == self.units.len() {
                let (d_conv_out, d_res) = u.bn.backward_add_relu(b, &mut st.params, &us.conv_out, &us.bn, out, d_out)?;
                d_sum = Some(d_res);
                d_conv_out
            } else {
                let y = us.act.as_ref().expect("saved in training");
                let d_y = grad.as_ref().expect("set by the unit after this one");
                u.bn.backward_relu(b, &mut st.params, &us.conv_out, &us.bn, y, d_y)?
            };
            let input = if i == 0 { x } else { saved.units[i - 1].act.as_ref().expect("saved in training") };
            grad = Some(u.conv.backward(b, &mut st.params, input, &d_conv_out, true)?.expect("dx requested"));
        }
        let d_sum = d_sum.expect("a block has units");
        let d_short = match (&self.downsample, &saved.downsample) {
            (Some(d), Some((conv_out, bn))) => {
                let d_conv = d.bn.backward(b, &mut st.params, conv_out, bn, &d_sum)?;
                Some(d.conv.backward(b, &mut st.params, x, &d_conv, true)?.expect("dx requested"))
            }
            _ => None,
        };
        let d_main = grad.expect("a block has units");
        add::forward(b, &d_main, d_short.as_ref().unwrap_or(&d_sum))
    }
}

/// The classifier head: global average pool, then `fc`.
#[derive(Clone, Debug)]
pub struct Classifier {
    pub fc: Linear,
}

#[derive(Clone, Debug)]
pub struct ResNet {
    pub arch: Arch,
    stem: ConvBn,
    /// `layer1..layer4`.
    stages: Vec<Vec<Block>>,
    pub classifier: Option<Classifier>,
}

/// What the stem's training forward keeps.
struct StemSaved<B: Backend> {
    conv_out: Tensor<B>,
    bn: BnSaved<B>,
    act: Tensor<B>,
}

/// The result of a backbone forward (the input image is not kept: backward takes it again). `xs[0]` is the stem output (the input of `layer1`), `xs[i + 1]` the output
/// of block `i` (blocks counted over all stages). Evaluation keeps only the stage outputs.
pub struct Activations<B: Backend> {
    stem: Option<StemSaved<B>>,
    xs: Vec<Option<Tensor<B>>>,
    blocks: Vec<BlockSaved<B>>,
    /// Index into `xs` of the output of each stage that ran.
    stage_end: Vec<usize>,
}

impl<B: Backend> Activations<B> {
    /// Number of stages that ran.
    pub fn stages(&self) -> usize {
        self.stage_end.len()
    }

    /// Output of `layer{stage}` (1-based, as in torchvision's names).
    pub fn stage_output(&self, stage: usize) -> Result<&Tensor<B>> {
        let i = stage
            .checked_sub(1)
            .and_then(|s| self.stage_end.get(s))
            .ok_or_else(|| Error::Invalid(format!("layer{stage} was not computed (the forward ran {} stages)", self.stages())))?;
        Ok(self.xs[*i].as_ref().expect("stage outputs are always kept"))
    }

    /// Output of the last stage that ran.
    pub fn output(&self) -> &Tensor<B> {
        self.stage_output(self.stages()).expect("at least one stage ran")
    }
}

impl ResNet {
    /// Builds the layer structure and registers every tensor under its torchvision name. `num_classes` adds
    /// `fc`; `zero_init_residual` zeroes the last BN weight of each block (torchvision's option).
    pub fn new(arch: Arch, num_classes: Option<usize>, zero_init_residual: bool) -> (ResNet, Registry) {
        let mut reg = Registry::default();
        let stem = ConvBn::new(&mut reg, "conv1", "bn1", 3, 64, 7, 2, 3);
        let mut stages = Vec::with_capacity(4);
        let mut c_in = 64;
        for (s, (&depth, width)) in arch.depths().iter().zip([64, 128, 256, 512]).enumerate() {
            let mut blocks = Vec::with_capacity(depth);
            for i in 0..depth {
                let stride = if s > 0 && i == 0 { 2 } else { 1 };
                let block = Block::new(&mut reg, &format!("layer{}.{i}", s + 1), arch, c_in, width, stride);
                c_in = block.c_out();
                if zero_init_residual {
                    let last_bn = block.units.last().expect("a block has units").bn.weight;
                    reg.params.entries[last_bn.0].init = Init::Const(0.0);
                }
                blocks.push(block);
            }
            stages.push(blocks);
        }
        let classifier = num_classes.map(|k| Classifier { fc: Linear::new(&mut reg.params, "fc", c_in, k, true) });
        (ResNet { arch, stem, stages, classifier }, reg)
    }

    /// Runs the stem and `layer1..layer{stop_after}` (1..=4) on the input `[N, 3, H, W]`.
    pub fn forward<B: Backend>(&self, b: &B, st: &mut State<B>, x: &Tensor<B>, mode: Mode, stop_after: usize) -> Result<Activations<B>> {
        if !(1..=4).contains(&stop_after) {
            return Err(Error::Invalid(format!("a ResNet forward stops after layer1..layer4, not layer{stop_after}")));
        }
        let conv_out = self.stem.conv.forward(b, &st.params, x)?;
        let (act, bn) = self.stem.bn.forward_relu(b, &st.params, &mut st.buffers, &conv_out, mode)?;
        let pooled = max_pool2d::forward(b, &act, 3, 2, 1)?;
        let stem = bn.map(|bn| StemSaved { conv_out, bn, act });
        let mut acts = Activations { stem, xs: vec![Some(pooled)], blocks: Vec::new(), stage_end: Vec::new() };
        for blocks in &self.stages[..stop_after] {
            for block in blocks {
                let i = acts.xs.len() - 1;
                let (out, saved) = block.forward(b, st, acts.xs[i].as_ref().expect("block input kept"), mode)?;
                if let Some(saved) = saved {
                    acts.blocks.push(saved);
                } else if !acts.stage_end.contains(&i) {
                    acts.xs[i] = None; // evaluation: an inner block output is no longer needed
                }
                acts.xs.push(Some(out));
            }
            acts.stage_end.push(acts.xs.len() - 1);
        }
        Ok(acts)
    }

    /// Backward through the stages that ran, given the forward's `input`. `stage_grads[k]` is the gradient
    /// arriving at the output of `layer{k+1}` from outside (a head, the classifier); stages after the last one
    /// with a gradient are skipped (they ran, but nothing depends on them: FG-SSL's reference-style full
    /// forward). Accumulates all parameter gradients; returns the gradient of the input image when `need_dinput`.
    pub fn backward<B: Backend>(
        &self,
        b: &B,
        st: &mut State<B>,
        input: &Tensor<B>,
        acts: &Activations<B>,
        mut stage_grads: Vec<Option<Tensor<B>>>,
        need_dinput: bool,
    ) -> Result<Option<Tensor<B>>> {
        let stem = acts.stem.as_ref().ok_or_else(|| Error::Invalid("backward needs a training-mode forward".into()))?;
        stage_grads.resize_with(4, || None);
        let ran = acts.stages();
        let used = stage_grads[..ran]
            .iter()
            .rposition(Option::is_some)
            .map(|s| s + 1)
            .ok_or_else(|| Error::Invalid("backward needs a gradient at the output of a stage that ran".into()))?;
        let mut grad: Option<Tensor<B>> = None;
        let mut block_index: usize = self.stages[..used].iter().map(Vec::len).sum();
        for s in (0..used).rev() {
            // Gradient at this stage's output: from the later stages plus from outside.
            grad = match (grad.take(), stage_grads[s].take()) {
                (Some(g), Some(extra)) => Some(add::forward(b, &g, &extra)?),
                (g, extra) => g.or(extra),
            };
            for block in self.stages[s].iter().rev() {
                block_index -= 1;
                let d_out = grad.take().ok_or_else(|| Error::Invalid(format!("no gradient reaches the output of layer{}", s + 1)))?;
                let x = acts.xs[block_index].as_ref().expect("saved in training");
                let out = acts.xs[block_index + 1].as_ref().expect("saved in training");
                grad = Some(block.backward(b, st, x, out, &acts.blocks[block_index], &d_out)?);
            }
        }
        let d_pooled = grad.expect("at least one stage ran");
        let d_act = max_pool2d::backward(b, &stem.act, &d_pooled, 3, 2, 1)?;
        let d_conv_out = self.stem.bn.backward_relu(b, &mut st.params, &stem.conv_out, &stem.bn, &stem.act, &d_act)?;
        self.stem.conv.backward(b, &mut st.params, input, &d_conv_out, need_dinput)
    }

    /// Global-average-pooled `layer4` features `[N, C]` (torchvision with `fc = Identity`).
    pub fn pooled_features<B: Backend>(&self, b: &B, acts: &Activations<B>) -> Result<Tensor<B>> {
        global_pool::avg_forward(b, acts.stage_output(4)?)
    }

    /// Logits of the classifier from pooled features.
    pub fn logits<B: Backend>(&self, b: &B, st: &State<B>, pooled: &Tensor<B>) -> Result<Tensor<B>> {
        let c = self.classifier.as_ref().ok_or_else(|| Error::Invalid("this ResNet was built without fc".into()))?;
        c.fc.forward(b, &st.params, pooled)
    }

    /// Backward of [`Self::logits`] and the pooling: the gradient at the `layer4` output.
    pub fn logits_backward<B: Backend>(
        &self,
        b: &B,
        st: &mut State<B>,
        layer4_shape: &Shape,
        pooled: &Tensor<B>,
        dlogits: &Tensor<B>,
    ) -> Result<Tensor<B>> {
        let c = self.classifier.as_ref().ok_or_else(|| Error::Invalid("this ResNet was built without fc".into()))?;
        let d_pooled = c.fc.backward(b, &mut st.params, pooled, dlogits, true)?.expect("dx requested");
        global_pool::avg_backward(b, layer4_shape, &d_pooled)
    }

    /// Evaluation-mode pooled features of a batch: what `fgssl embed` writes.
    pub fn embed<B: Backend>(&self, b: &B, st: &mut State<B>, x: &Tensor<B>) -> Result<Tensor<B>> {
        let acts = self.forward(b, st, x, Mode::Eval, 4)?;
        self.pooled_features(b, &acts)
    }
}

impl ResNet {
    /// Every convolution of the stem and `layer1..layer{stop_after}` with the side of its input, for a square input
    /// image of `side` pixels, in forward order (a block's units, then its shortcut): what the FLOP count walks.
    pub fn convs(&self, side: usize, stop_after: usize) -> Vec<super::flops::ConvAt<'_>> {
        use super::flops::{out_side, ConvAt};
        let mut convs = vec![ConvAt { stage: 0, conv: &self.stem.conv, in_side: side }];
        let stem_out = out_side(side, self.stem.conv.k, self.stem.conv.stride, self.stem.conv.pad);
        let mut x = out_side(stem_out, 3, 2, 1); // the max pool 3x3/2, padding 1
        for (s, blocks) in self.stages.iter().take(stop_after).enumerate() {
            for block in blocks {
                let block_in = x;
                for u in &block.units {
                    convs.push(ConvAt { stage: s + 1, conv: &u.conv, in_side: x });
                    x = out_side(x, u.conv.k, u.conv.stride, u.conv.pad);
                }
                if let Some(d) = &block.downsample {
                    convs.push(ConvAt { stage: s + 1, conv: &d.conv, in_side: block_in });
                }
            }
        }
        convs
    }
}
