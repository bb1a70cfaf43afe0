//! The FG-SSL model (../shared/docs/METHOD.md §3): a torchvision ResNet backbone, three hierarchical blocks on
//! `layer2`, `layer3` and `layer4`, a projector per block plus one on the concatenation, and optional classifiers.
//!
//! ```text
//! layer{k+1} -> conv_block{k} (BasicConv 1x1 C->F, BasicConv 3x3 F->P) -> global max pool -> p_k  (k = 1, 2, 3)
//! p_k               -> projector{k}       (BN1d(P)  -> Linear(P->F)  -> BN1d(F) -> ELU) -> z_k -> classifier{k}
//! cat(p1, p2, p3)   -> projector_concat   (BN1d(3P) -> Linear(3P->F) -> BN1d(F) -> ELU) -> z_cat -> classifier_concat
//! ```
//!
//! BasicConv = conv (no bias) -> BN2d (momentum 0.01) -> ReLU. Block k feeds its own projector (the reference
//! code feeds p1 to all three: METHOD.md §12 #2). Parameter names are the state-dict keys above
//! (`conv_block1.0.conv.weight`, `projector1.1.bias`, ...); the backbone keeps torchvision's names, so its part of
//! a state dict loads into torchvision as is.
//!
//! A forward computes only what its [`Plan`] asks for: a training step of head k stops the backbone at the stage
//! that block reads and runs no other head (METHOD.md §15.1-2); [`Plan::full`] runs everything, as the reference
//! does on every forward (the `reference` BN-statistics mode, and inference).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::ops::{add, concat, elu, global_pool, BatchNorm, BnSaved, Conv2d, Linear, Mode};
use crate::params::{Init, Slot};
use crate::tensor::{Shape, Tensor};

use super::resnet::{Activations, Arch, ResNet};
use super::{Registry, State};

/// Sizes of the heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FgsslConfig {
    pub arch: Arch,
    /// F: width of the embeddings z_k (512 in the reference).
    pub embed_dim: usize,
    /// P: width of the pooled block outputs p_k; `None` takes the reference's 1024 for ResNet-50 and C5/2 for
    /// ResNet-18/34 (PMG's rule).
    pub pooled_dim: Option<usize>,
    /// K: classes of the classifiers; `None` builds no classifiers (pretraining).
    pub num_classes: Option<usize>,
}

impl FgsslConfig {
    pub fn new(arch: Arch) -> Self {
        FgsslConfig { arch, embed_dim: 512, pooled_dim: None, num_classes: None }
    }

    pub fn pooled(&self) -> usize {
        self.pooled_dim.unwrap_or(match self.arch {
            Arch::ResNet50 => 1024,
            a => a.feature_dim() / 2,
        })
    }
}

/// One of the four heads: block k (0-based: block 0 reads `layer2`) or the concatenation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Head {
    Block(usize),
    Concat,
}

impl Head {
    /// The order of the four progressive steps.
    pub const ALL: [Head; 4] = [Head::Block(0), Head::Block(1), Head::Block(2), Head::Concat];

    /// Position in [`Head::ALL`] (projector and classifier index).
    pub fn index(self) -> usize {
        match self {
            Head::Block(k) => k,
            Head::Concat => 3,
        }
    }

    /// The deepest backbone stage the head reads (`layer{stage}`).
    pub fn deepest_stage(self) -> usize {
        match self {
            Head::Block(k) => k + 2,
            Head::Concat => 4,
        }
    }

    /// The hierarchical blocks the head needs.
    pub fn blocks(self) -> &'static [usize] {
        match self {
            Head::Block(0) => &[0],
            Head::Block(1) => &[1],
            Head::Block(2) => &[2],
            Head::Block(_) => &[],
            Head::Concat => &[0, 1, 2],
        }
    }
}

/// Which module a parameter belongs to: decides which parameters a step updates and their learning-rate group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `stage` 0 is the stem (`conv1`, `bn1`), 1..=4 are `layer1..layer4`.
    Backbone {
        stage: usize,
    },
    Block(usize),
    /// Index as [`Head::index`] (3 = `projector_concat`).
    Projector(usize),
    /// Index as [`Head::index`] (3 = `classifier_concat`).
    Classifier(usize),
}

/// What a forward computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Backbone stages to run (1..=4).
    pub stop_after: usize,
    /// Hierarchical blocks to run.
    pub blocks: [bool; 3],
    /// Projectors to run (by [`Head::index`]).
    pub projectors: [bool; 4],
    /// Run the classifiers of the projectors that run.
    pub classify: bool,
}

impl Plan {
    /// Only what `head` needs.
    pub fn minimal(head: Head, classify: bool) -> Self {
        let mut blocks = [false; 3];
        head.blocks().iter().for_each(|&k| blocks[k] = true);
        let mut projectors = [false; 4];
        projectors[head.index()] = true;
        Plan { stop_after: head.deepest_stage(), blocks, projectors, classify }
    }

    /// The whole model, every head.
    pub fn full(classify: bool) -> Self {
        Plan { stop_after: 4, blocks: [true; 3], projectors: [true; 4], classify }
    }
}

/// conv -> BN -> ReLU (the BN and the ReLU are one fused op).
#[derive(Clone, Debug)]
struct BasicConv {
    conv: Conv2d,
    bn: BatchNorm,
}

struct BasicConvSaved<B: Backend> {
    conv_out: Tensor<B>,
    bn: BnSaved<B>,
}

impl BasicConv {
    fn new(reg: &mut Registry, name: &str, c_in: usize, c_out: usize, k: usize) -> Self {
        let conv = Conv2d::new(&mut reg.params, &format!("{name}.conv"), c_in, c_out, k, 1, (k - 1) / 2, false);
        // nn.Conv2d's default initialisation (kaiming_uniform with a = sqrt(5)): U(±1/sqrt(fan_in)).
        reg.params.entries[conv.weight.0].init = Init::Uniform(1.0 / ((c_in * k * k) as f32).sqrt());
        let bn = BatchNorm::new(&mut reg.params, &mut reg.buffers, &mut reg.trackers, &format!("{name}.bn"), c_out, 0.01);
        BasicConv { conv, bn }
    }

    /// Returns the ReLU output and, in training, what backward needs.
    fn forward<B: Backend>(&self, b: &B, st: &mut State<B>, x: &Tensor<B>, mode: Mode) -> Result<(Tensor<B>, Option<BasicConvSaved<B>>)> {
        let conv_out = self.conv.forward(b, &st.params, x)?;
        let (y, bn) = self.bn.forward_relu(b, &st.params, &mut st.buffers, &conv_out, mode)?;
        Ok((y, bn.map(|bn| BasicConvSaved { conv_out, bn })))
    }

    /// `x` is the forward input, `y` its output.
    fn backward<B: Backend>(
        &self,
        b: &B,
        st: &mut State<B>,
        x: &Tensor<B>,
        y: &Tensor<B>,
        saved: &BasicConvSaved<B>,
        dy: &Tensor<B>,
    ) -> Result<Tensor<B>> {
        let d_conv_out = self.bn.backward_relu(b, &mut st.params, &saved.conv_out, &saved.bn, y, dy)?;
        Ok(self.conv.backward(b, &mut st.params, x, &d_conv_out, true)?.expect("dx requested"))
    }
}

/// A hierarchical block: BasicConv 1x1 C->F, BasicConv 3x3 F->P, global max pool.
#[derive(Clone, Debug)]
struct ConvBlock {
    reduce: BasicConv,
    expand: BasicConv,
}

struct ConvBlockActs<B: Backend> {
    reduced: Tensor<B>,
    expanded: Tensor<B>,
    saved: Option<(BasicConvSaved<B>, BasicConvSaved<B>)>,
    pooled: Tensor<B>,
}

/// BN1d -> Linear -> BN1d -> ELU(1).
#[derive(Clone, Debug)]
struct Projector {
    bn_in: BatchNorm,
    fc: Linear,
    bn_out: BatchNorm,
}

struct ProjectorActs<B: Backend> {
    /// The concatenation cat(p1, p2, p3) for the concat projector; the other projectors read p_k from their block.
    concat_input: Option<Tensor<B>>,
    normed: Tensor<B>,
    fc_out: Tensor<B>,
    pre_elu: Tensor<B>,
    saved: Option<(BnSaved<B>, BnSaved<B>)>,
    z: Tensor<B>,
}

impl Projector {
    fn new(reg: &mut Registry, name: &str, in_f: usize, out_f: usize) -> Self {
        let bn_in = BatchNorm::new(&mut reg.params, &mut reg.buffers, &mut reg.trackers, &format!("{name}.0"), in_f, 0.1);
        let fc = Linear::new(&mut reg.params, &format!("{name}.1"), in_f, out_f, true);
        let bn_out = BatchNorm::new(&mut reg.params, &mut reg.buffers, &mut reg.trackers, &format!("{name}.2"), out_f, 0.1);
        Projector { bn_in, fc, bn_out }
    }

    fn forward<B: Backend>(&self, b: &B, st: &mut State<B>, input: &Tensor<B>, mode: Mode) -> Result<ProjectorActs<B>> {
        let (normed, s_in) = self.bn_in.forward(b, &st.params, &mut st.buffers, input, mode)?;
        let fc_out = self.fc.forward(b, &st.params, &normed)?;
        let (pre_elu, s_out) = self.bn_out.forward(b, &st.params, &mut st.buffers, &fc_out, mode)?;
        let z = elu::forward(b, 1.0, &pre_elu)?;
        Ok(ProjectorActs { concat_input: None, normed, fc_out, pre_elu, saved: s_in.zip(s_out), z })
    }

    /// Gradient at the projector's `input`, given the gradient at z.
    fn backward<B: Backend>(&self, b: &B, st: &mut State<B>, input: &Tensor<B>, acts: &ProjectorActs<B>, dz: &Tensor<B>) -> Result<Tensor<B>> {
        let (s_in, s_out) = acts.saved.as_ref().ok_or_else(|| Error::Invalid("backward needs a training-mode forward".into()))?;
        let d_pre = elu::backward(b, 1.0, &acts.pre_elu, dz)?;
        let d_fc_out = self.bn_out.backward(b, &mut st.params, &acts.fc_out, s_out, &d_pre)?;
        let d_normed = self.fc.backward(b, &mut st.params, &acts.normed, &d_fc_out, true)?.expect("dx requested");
        self.bn_in.backward(b, &mut st.params, input, s_in, &d_normed)
    }
}

/// The FG-SSL network. Build it with [`Fgssl::new`], which also returns the [`Registry`] of every tensor.
#[derive(Clone, Debug)]
pub struct Fgssl {
    pub cfg: FgsslConfig,
    pub backbone: ResNet,
    blocks: Vec<ConvBlock>,
    /// `projector1..3`, `projector_concat`.
    projectors: Vec<Projector>,
    /// `classifier1..3`, `classifier_concat` (empty without classes).
    classifiers: Vec<Linear>,
    /// The module of each parameter entry, in registry order.
    parts: Vec<Part>,
}

/// Where a head's backward starts: the gradient at its embedding (SSL) or at its logits (fine-tuning).
pub enum HeadGrad<'a, B: Backend> {
    Embedding(&'a Tensor<B>),
    Logits(&'a Tensor<B>),
}

/// The result of a forward: the backbone activations and whatever the plan ran.
pub struct FgsslActs<B: Backend> {
    pub backbone: Activations<B>,
    blocks: [Option<ConvBlockActs<B>>; 3],
    projectors: [Option<ProjectorActs<B>>; 4],
    /// Logits of each classifier that ran, by [`Head::index`].
    pub logits: [Option<Tensor<B>>; 4],
    mode: Mode,
}

impl<B: Backend> FgsslActs<B> {
    /// The embedding of `head` (z_k or z_cat), if the plan computed it.
    pub fn z(&self, head: Head) -> Result<&Tensor<B>> {
        self.projectors[head.index()].as_ref().map(|p| &p.z).ok_or_else(|| Error::Invalid(format!("{head:?}: embedding not computed")))
    }

    pub fn logits(&self, head: Head) -> Result<&Tensor<B>> {
        self.logits[head.index()].as_ref().ok_or_else(|| Error::Invalid(format!("{head:?}: logits not computed")))
    }
}

/// `projector1` .. `projector3`, `projector_concat` (and the same for classifiers).
fn head_name(prefix: &str, i: usize) -> String {
    if i == 3 {
        format!("{prefix}_concat")
    } else {
        format!("{prefix}{}", i + 1)
    }
}

impl Fgssl {
    /// Builds the backbone (torchvision names) and the heads, and registers everything. Backbone parameters get
    /// learning-rate scale `backbone_lr_scale` (0.1 in the reference: lr 0.0002 vs 0.002 for the new layers).
    pub fn new(cfg: FgsslConfig, backbone_lr_scale: f32) -> (Fgssl, Registry) {
        let (backbone, mut reg) = ResNet::new(cfg.arch, None, false);
        let mut parts: Vec<Part> = reg.params.entries.iter().map(|e| Part::Backbone { stage: backbone_stage(&e.name) }).collect();
        reg.params.entries.iter_mut().for_each(|e| e.lr_scale = backbone_lr_scale);
        let (f, p) = (cfg.embed_dim, cfg.pooled());
        let stage_c = cfg.arch.stage_channels();

        let mark = |reg: &Registry, parts: &mut Vec<Part>, part: Part| parts.resize(reg.params.entries.len(), part);
        let mut blocks = Vec::with_capacity(3);
        for k in 0..3 {
            let name = format!("conv_block{}", k + 1);
            let reduce = BasicConv::new(&mut reg, &format!("{name}.0"), stage_c[k + 1], f, 1);
            let expand = BasicConv::new(&mut reg, &format!("{name}.1"), f, p, 3);
            blocks.push(ConvBlock { reduce, expand });
            mark(&reg, &mut parts, Part::Block(k));
        }
        let mut projectors = Vec::with_capacity(4);
        for i in 0..4 {
            let in_f = if i == 3 { 3 * p } else { p };
            projectors.push(Projector::new(&mut reg, &head_name("projector", i), in_f, f));
            mark(&reg, &mut parts, Part::Projector(i));
        }
        let mut classifiers = Vec::new();
        if let Some(k) = cfg.num_classes {
            for i in 0..4 {
                classifiers.push(Linear::new(&mut reg.params, &head_name("classifier", i), f, k, true));
                mark(&reg, &mut parts, Part::Classifier(i));
            }
        }
        (Fgssl { cfg, backbone, blocks, projectors, classifiers, parts }, reg)
    }

    /// The module of every parameter entry, in registry order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the parameter in `slot` receives a gradient in the training step of `head` (with classifiers when
    /// `classify`): the optimizer skips the others entirely, as PyTorch skips parameters whose `.grad` is None.
    pub fn trained_by(&self, head: Head, classify: bool, slot: Slot) -> bool {
        match self.parts[slot.0] {
            Part::Backbone { stage } => stage <= head.deepest_stage(),
            Part::Block(k) => head.blocks().contains(&k),
            Part::Projector(i) => i == head.index(),
            Part::Classifier(i) => classify && i == head.index(),
        }
    }

    /// Runs what `plan` asks for on `x` `[N, 3, H, W]`.
    pub fn forward<B: Backend>(&self, b: &B, st: &mut State<B>, x: &Tensor<B>, mode: Mode, plan: &Plan) -> Result<FgsslActs<B>> {
        if plan.classify && self.classifiers.is_empty() {
            return Err(Error::Invalid("this FG-SSL model was built without classifiers (no class count)".into()));
        }
        let need_stage = (0..3).filter(|&k| plan.blocks[k]).map(|k| k + 2).max().unwrap_or(1);
        if need_stage > plan.stop_after {
            return Err(Error::Invalid(format!("plan runs block {} but stops the backbone at layer{}", need_stage - 1, plan.stop_after)));
        }
        let backbone = self.backbone.forward(b, st, x, mode, plan.stop_after)?;
        let mut blocks: [Option<ConvBlockActs<B>>; 3] = [None, None, None];
        for k in (0..3).filter(|&k| plan.blocks[k]) {
            let input = backbone.stage_output(k + 2)?;
            let blk = &self.blocks[k];
            let (reduced, s1) = blk.reduce.forward(b, st, input, mode)?;
            let (expanded, s2) = blk.expand.forward(b, st, &reduced, mode)?;
            let pooled = global_pool::max_forward(b, &expanded)?;
            blocks[k] = Some(ConvBlockActs { reduced, expanded, saved: s1.zip(s2), pooled });
        }
        let mut projectors: [Option<ProjectorActs<B>>; 4] = [None, None, None, None];
        let mut logits: [Option<Tensor<B>>; 4] = [None, None, None, None];
        for i in (0..4).filter(|&i| plan.projectors[i]) {
            let pooled = |k: usize| {
                blocks[k]
                    .as_ref()
                    .map(|a| &a.pooled)
                    .ok_or_else(|| Error::Invalid(format!("projector {} needs block {}, which the plan skips", i + 1, k + 1)))
            };
            let acts = if i == 3 {
                let cat = concat::forward(b, &[pooled(0)?, pooled(1)?, pooled(2)?])?;
                let mut acts = self.projectors[i].forward(b, st, &cat, mode)?;
                acts.concat_input = Some(cat);
                acts
            } else {
                self.projectors[i].forward(b, st, pooled(i)?, mode)?
            };
            if plan.classify {
                logits[i] = Some(self.classifiers[i].forward(b, &st.params, &acts.z)?);
            }
            projectors[i] = Some(acts);
        }
        Ok(FgsslActs { backbone, blocks, projectors, logits, mode })
    }

    /// Backward of one head's output, given the gradient at its embedding or at its classifier's logits. `x` is
    /// the forward's input. Accumulates every parameter gradient on the path.
    pub fn backward<B: Backend>(
        &self,
        b: &B,
        st: &mut State<B>,
        x: &Tensor<B>,
        acts: &FgsslActs<B>,
        head: Head,
        grad: HeadGrad<'_, B>,
    ) -> Result<()> {
        if acts.mode != Mode::Train {
            return Err(Error::Invalid("backward needs a training-mode forward".into()));
        }
        let i = head.index();
        let proj = acts.projectors[i].as_ref().ok_or_else(|| Error::Invalid(format!("{head:?} did not run in this forward")))?;
        let dz_from_logits;
        let dz = match grad {
            HeadGrad::Embedding(dz) => dz,
            HeadGrad::Logits(dl) => {
                let fc = self.classifiers.get(i).ok_or_else(|| Error::Invalid("no classifiers in this model".into()))?;
                dz_from_logits = fc.backward(b, &mut st.params, &proj.z, dl, true)?.expect("dx requested");
                &dz_from_logits
            }
        };
        let input = match head {
            Head::Block(k) => &acts.blocks[k].as_ref().expect("the head's block ran").pooled,
            Head::Concat => proj.concat_input.as_ref().expect("the concat projector keeps its input"),
        };
        let d_input = self.projectors[i].backward(b, st, input, proj, dz)?;
        let d_pooled: Vec<(usize, Tensor<B>)> = match head {
            Head::Block(k) => vec![(k, d_input)],
            Head::Concat => {
                let shapes: Vec<&Shape> =
                    (0..3).map(|k| acts.blocks[k].as_ref().map(|a| &a.pooled.shape)).collect::<Option<_>>().expect("concat ran");
                concat::backward(b, &shapes, &d_input)?.into_iter().enumerate().collect()
            }
        };
        let mut stage_grads: Vec<Option<Tensor<B>>> = (0..4).map(|_| None).collect();
        for (k, dp) in d_pooled {
            let blk = acts.blocks[k].as_ref().expect("the head's blocks ran");
            let (s1, s2) = blk.saved.as_ref().expect("training mode keeps block activations");
            let stage_out = acts.backbone.stage_output(k + 2)?;
            let d_expanded = global_pool::max_backward(b, &blk.expanded, &dp)?;
            let d_reduced = self.blocks[k].expand.backward(b, st, &blk.reduced, &blk.expanded, s2, &d_expanded)?;
            stage_grads[k + 1] = Some(self.blocks[k].reduce.backward(b, st, stage_out, &blk.reduced, s1, &d_reduced)?);
        }
        self.backbone.backward(b, st, x, &acts.backbone, stage_grads, false)?;
        Ok(())
    }

    /// Inference (METHOD.md §9): evaluation mode, every head once; returns the summed logits y1 + y2 + y3 + y_cat
    /// (the prediction) and y_cat alone (PMG's second number), both `[N, K]`.
    pub fn predict<B: Backend>(&self, b: &B, st: &mut State<B>, x: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
        let acts = self.forward(b, st, x, Mode::Eval, &Plan::full(true))?;
        let [Some(y1), Some(y2), Some(y3), Some(y_cat)] = acts.logits else { unreachable!("a full plan with classifiers fills every logit") };
        let sum = add::forward(b, &add::forward(b, &y1, &y2)?, &add::forward(b, &y3, &y_cat)?)?;
        Ok((sum, y_cat))
    }
}

/// `stage` of a backbone parameter from its torchvision name (`conv1`/`bn1` -> 0, `layer3.1.conv2.weight` -> 3).
fn backbone_stage(name: &str) -> usize {
    name.strip_prefix("layer").and_then(|r| r[..1].parse().ok()).unwrap_or(0)
}

impl Fgssl {
    /// Multiply-accumulates per image of one training step of `head` whose forward runs `plan` on a square input of
    /// `side` pixels (see [`super::flops`]): the forward of everything the plan runs, the backward of the path the
    /// head's loss reaches (its classifier too when `plan.classify`).
    pub fn step_macs(&self, side: usize, head: Head, plan: &Plan) -> super::flops::StepMacs {
        use super::flops::{conv_macs, linear_macs, StepMacs};
        let mut m = StepMacs::default();
        let mut stage_side = [0usize; 5];
        for (i, c) in self.backbone.convs(side, plan.stop_after).into_iter().enumerate() {
            let (macs, out) = conv_macs(c.conv, c.in_side);
            stage_side[c.stage] = out;
            m.forward += macs;
            if c.stage <= head.deepest_stage() {
                // Weight gradient, plus the input gradient for every convolution but the first.
                m.backward += if i == 0 { macs } else { 2 * macs };
            }
        }
        for (k, blk) in self.blocks.iter().enumerate().filter(|&(k, _)| plan.blocks[k]) {
            let (reduce, side) = conv_macs(&blk.reduce.conv, stage_side[k + 2]);
            let macs = reduce + conv_macs(&blk.expand.conv, side).0;
            m.forward += macs;
            if head.blocks().contains(&k) {
                m.backward += 2 * macs;
            }
        }
        for i in (0..4).filter(|&i| plan.projectors[i]) {
            let classifier = if plan.classify { self.classifiers.get(i).map_or(0, linear_macs) } else { 0 };
            let macs = linear_macs(&self.projectors[i].fc) + classifier;
            m.forward += macs;
            if i == head.index() {
                m.backward += 2 * macs;
            }
        }
        m
    }
}
