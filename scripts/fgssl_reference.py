#!/usr/bin/env python3
"""PyTorch reference of one FG-SSL progressive SSL iteration and one progressive fine-tuning iteration
(docs METHOD.md §3, §4, §6-§11), writing the step-parity fixture tests/fixtures/fgssl_steps.safetensors.

Two uses:

    fixture (default, CPU only, deterministic, ~1 min on 2 cores):
        /work/torchenv/bin/python scripts/fgssl_reference.py [--check]
    PyTorch baseline for the performance issue (full size, GPU):
        python scripts/fgssl_reference.py --bench --arch resnet50 --size 224 --batch 128 --feat 512 --pooled 1024 \\
            --classes 7 --grids 16 8 4 --device cuda [--dtype float32] [--amp bf16] [--augment] [--bn-stats minimal]
    --bench times whole SSL iterations (4 steps, 8 forwards) and fine-tuning iterations (4 steps) and prints
    ms/iteration and images/s; --augment builds the METHOD.md §5 SSL views and a fine-tuning view on the device from
    synthetic u8 images (timed with the iteration) instead of feeding ready-made normalised tensors.
    Measured (H200, torch 2.11+cu130, resnet50/224/batch 128/F 512/P 1024/K 7/grids 16-8-4, warmup 2, median of 5):
    SSL iteration: fp32+TF32 591 ms (217 img/s, 25.0 GiB peak); bf16 autocast 523 ms (245 img/s, 12.9 GiB);
    bf16 + --bn-stats minimal 478 ms (268 img/s); + --augment 484 ms (265 img/s). Fine-tuning iteration: 290 /
    256 / 234 / 235 ms (441 / 499 / 548 / 545 img/s). The BT loss and CE always run in fp32 (autocast off).
    --check (fixture mode) adds self-consistency checks: jigsaw vs a plain loop, the METHOD.md §6 closed-form BT
    backward vs autograd, and a central finite difference of one SSL step's loss vs autograd.

=================================================================================================================
Model (state_dict names = the module names below; Rust twin: src/model/fgssl.rs)
=================================================================================================================

torchvision `resnetXX` backbone registered WITHOUT prefix: conv1, bn1, layer1..layer4 (avgpool/fc not built).
FG-SSL heads with the METHOD.md §3 wiring fix (p2 -> head 2, p3 -> head 3), C_k = channels of layer{k+1}:

    conv_block{k}.0   BasicConv 1x1 C_k -> F: .conv.weight [F, C_k, 1, 1] (no bias), .bn (BN2d, eps 1e-5,
                      momentum 0.01), ReLU
    conv_block{k}.1   BasicConv 3x3 pad 1 F -> P: .conv.weight [P, F, 3, 3], .bn (BN2d, momentum 0.01), ReLU
                      then global max pool (F.adaptive_max_pool2d(., 1), gradient to one argmax) -> p_k [N, P]
    projector{k}.0    BN1d(P) (eps 1e-5, momentum 0.1)
    projector{k}.1    Linear(P -> F) (weight [F, P], bias [F])
    projector{k}.2    BN1d(F); then ELU(alpha 1) -> z_k [N, F]
    projector_concat  same structure on cat(p1, p2, p3) [N, 3P]: .0 BN1d(3P), .1 Linear(3P -> F), .2 BN1d(F), ELU
                      -> z_cat
    classifier{k}, classifier_concat   Linear(F -> K): y_k = classifier{k}(z_k), y_cat = classifier_concat(z_cat)

Every BN buffer set is (weight, bias, running_mean, running_var, num_batches_tracked). The metadata entry
`state_dict` lists [name, shape] of every entry in module order.

=================================================================================================================
Initial weights: counter-based generator of scripts/make_fixtures.py (fnv1a64, counter_uniform; src/rng.rs)
=================================================================================================================

For state_dict entry `name`, u_i = counter_uniform(fnv1a64(name.encode()), i), i = C-order flat index, value
computed in float64 exactly as written, then rounded to float32 (the model then runs in float64 from those values):

    any conv weight [O, I, kh, kw] (backbone and head convs)   (2u - 1) * sqrt(3) * sqrt(2 / (I * kh * kw))
    any Linear weight [out, in] and its bias [out]             (2u - 1) / sqrt(in)
        (projector{k}.1: in = P, projector_concat.1: in = 3P, classifier*: in = F)
    any BN (2d or 1d) weight                                    0.5 + u
    any BN bias                                                 0.4 * (2u - 1)
    any BN running_mean                                         0.3 * (2u - 1)
    any BN running_var                                          0.5 + u
    num_batches_tracked                                         7
Backbone entries are asserted equal to make_fixtures.fixture_value_array. `gen.<name>` (below) lets the Rust side
check its generator on head tensors.

=================================================================================================================
The two iterations
=================================================================================================================

Jigsaw J_n(x) (METHOD.md §4): n x n grid, tile side H/n; tiles indexed row-major (d = row * n + col); output tile d
takes input tile perm[d] of the same sample (`src_tile = perm[dst_tile]`), per-sample perm [N, n*n].
Grids (g1, g2, g3) = config grids, finest first; J_{g_k} feeds step k.

Every scalar hyper-parameter (learning rates, momentum, weight decay, BT lambda and eps, BN eps and momentum) is
rounded to float32 first (F32 below): the engine's op set takes f32 scalars, so its float64 run uses exactly these
values. Unrounded constants (a ~5e-8 relative difference) move the SSL deltas by up to 4e-4 relative after four
steps, which would hide real errors; rounded, the f64 engine matches to ~1e-7. The backbone rate is computed as
the engine does: f32(lr_heads) * f32(lr_backbone / lr_heads) in float32.

SGD (torch.optim.SGD, momentum 0.9, dampening 0, no Nesterov, weight_decay 5e-4), fresh optimizer per iteration
kind, two groups: backbone (conv1, bn1, layer*) lr_backbone; heads (conv_block*, projector*, projector_concat,
classifier*) lr_heads. Read them from config.hyper. Defaults = the reference's 0.002 / 0.0002 (METHOD.md §10):
at this size the BT gradients are large (|grad| up to ~45 on conv_block1.1.conv.weight at step 1), so these
already move some tensors by ~40% of their norm in 4 steps. Larger rates (0.05 / 0.005 was tried) move weights by
up to 9x their norm, make the trajectory chaotic (a 1e-13 relative perturbation of the float64 initial weights
changes some deltas by ~1e-5; PyTorch's own float32 run is 10% off on the SSL step-4 loss and 6% on the FT
losses) and leave no float32 parity to test.
Each step: zero_grad(set_to_none=True) -> forward(s) in train mode -> loss -> backward -> step. A parameter with
no gradient in a step (grad None) is skipped entirely: no decay, no momentum update (PyTorch does it itself).
In the SSL fixture the classifiers are in the heads group but never get a gradient (their delta is exactly 0).

SSL (METHOD.md §7), from the generated weights, inputs ssl.x1 (view 1) and ssl.x2 (view 2):
    step k = 1, 2, 3: view1 = J_{g_k}(x1), view2 = x2; loss = BT(z_k(view1), z_k(view2))
    step 4:           view1 = x1 (not shuffled), view2 = x2; loss = 2 * BT(z_cat(view1), z_cat(view2))
    Forward view 1 then forward view 2 (two separate forwards: separate BN batch statistics, two running-stat
    updates, view 1 first). BT standard form: zhat = (z - mean_b z) / sqrt(var_b z + 1e-5) with the BIASED batch
    variance, C = zhat_A^T zhat_B / N, on = sum_i (1 - C_ii)^2, off = lambda * sum_{i != j} C_ij^2, lambda = 5e-3,
    BT = on + off.
Fine-tuning (METHOD.md §8), from the SAME generated weights (not the SSL result), inputs ft.x, ft.labels:
    step k = 1, 2, 3: loss = CE(y_k(J_{g_k}(x)), y); step 4: loss = 2 * CE(y_cat(x), y); CE = mean over the batch.
    One forward per step. After the 4 steps: eval mode (running statistics), un-shuffled ft.x, no gradient:
    logits_sum = y1 + y2 + y3 + y_cat and logits_cat = y_cat.

BN-statistics modes (METHOD.md §15.3). Losses, gradients and weights are identical in both (the script asserts
it, bit for bit); running statistics and num_batches_tracked differ:
    reference  every forward runs the whole backbone and ALL heads (3 conv blocks, 3 projectors, concat projector,
               4 classifiers), so every BN updates its running stats on every forward (SSL: 8 updates per BN,
               num_batches_tracked 7 + 8 = 15 everywhere; FT: 4 updates, 11 everywhere).
    minimal    each forward runs only what its loss needs: step k <= 3: backbone up to layer{k+1}, conv_block{k},
               projector{k} (+ classifier{k} in FT); step 4: whole backbone, all three conv blocks,
               projector_concat (+ classifier_concat in FT). Classifiers never run in SSL.

=================================================================================================================
fgssl_steps.safetensors schema
=================================================================================================================

Dtypes: F64 = float64, F32 = float32, I64 = int64. Everything is computed in float64 (model.double(), the f32
inputs upcast exactly). Per-step scalars are stored as F64; tensors and summaries as F32 (rounded from float64).

  config.dims            I64 [8]  [N, 3, H, W, F, P, K, n_steps = 4]
  config.grids           I64 [3]  (g1, g2, g3), finest first
  config.hyper           F64 [7]  [lr_heads, lr_backbone, momentum, weight_decay, bt_lambda, bn_eps, bt_eps]
  gen.<name>             F32 [min(16, numel)]  first generated values of a few head tensors (generator check):
                         conv_block1.0.conv.weight, conv_block3.1.conv.weight, conv_block2.0.bn.weight,
                         conv_block2.1.bn.bias, projector1.0.running_mean, projector2.2.running_var,
                         projector1.1.weight, projector1.1.bias, projector_concat.1.weight,
                         projector_concat.1.bias, classifier1.weight, classifier_concat.bias, conv1.weight

  SSL inputs
  ssl.x1, ssl.x2         F32 [N, 3, H, W]  torch.randn (seed 2023), "already normalised"; augmentation off
  ssl.perm_g<n>          I64 [N, n*n]  for each n in config.grids; torch.randperm per sample; src = perm[dst]
  SSL per-step values (identical in both modes), step s = 0..3 is METHOD.md step s+1
  ssl.loss               F64 [4]   the value each step back-propagates (step 4 includes the factor 2)
  ssl.bt_terms           F64 [4, 2] [on-diagonal, off-diagonal (already times lambda)] of the UN-doubled BT
  ssl.std_l2             F64 [4]   std_of_l2_normalized of z(view 1) of the step (z_k, step 4: z_cat): rows
                                   divided by max(L2 norm, 1e-12) (F.normalize), per-dimension std over the batch
                                   with the UNBIASED estimator (divide by N - 1, torch.std's default, as solo-learn), mean over
                                   the F dimensions
  ssl.z_view1, ssl.z_view2  F32 [4, N, F]  the embeddings the step's loss used (z_k, step 4: z_cat), computed
                                   with the weights before that step's update (for debugging a failing loss)
  ssl.delta.<param>.val  F32 [m]   delta = w_after_4_steps - w_initial (float64) of every parameter <param>
  ssl.delta.<param>.norm F32 [1]   (state_dict names of nn.Parameters: weights and biases incl. BN weight/bias),
  ssl.delta.<param>.proj F32 [1]   summarised with make_fixtures.py's gradient-summary scheme with the parameter
                                   name UNCHANGED: m = min(numel, 512); val_j = delta[idx_j] with
                                   idx = grad_indices(name, numel) (tests/common grad_idx; NOT stored: idx_j = j
                                   when numel <= 512, else counter_u64(fnv1a64("grad:" + name), j) % numel);
                                   norm = sqrt(sum delta^2); proj = sum delta_i * (2 counter_uniform(
                                   fnv1a64("proj:" + name), i) - 1) (tests/common grad_proj).
                                   .norm and .proj are stored ONLY when numel > 512 (else .val is the whole
                                   tensor in C order and they would add nothing).
  ssl.<mode>.<bn>.running_mean.{val[,norm,proj]}  F32, the same summary of the running statistics after the 4
  ssl.<mode>.<bn>.running_var.{val[,norm,proj]}   steps (values, not deltas), for every BN module <bn> (backbone
                                                 and heads; <bn> = state_dict prefix, e.g. layer3.0.downsample.1,
                                                 conv_block2.1.bn, projector_concat.0), mode in {reference, minimal}
                                                 (at fixture size every BN has <= 512 channels: .val only)
  ssl.<mode>.<bn>.num_batches_tracked            I64 [1]

  Fine-tuning
  ft.x                   F32 [N, 3, H, W]  torch.randn (seed 2024)
  ft.labels              I64 [N]  in 0..K
  ft.perm_g<n>           I64 [N, n*n]
  ft.loss                F64 [4]   (step 4 includes the factor 2)
  ft.logits              F32 [4, N, K]  the logits each step's loss used (y_k of J_{g_k}(x); step 4: y_cat of x),
                                   before that step's update
  ft.delta.<param>.val[, .norm, .proj]             as for SSL
  ft.<mode>.<bn>.running_mean/running_var.val[, .norm, .proj], ft.<mode>.<bn>.num_batches_tracked   as for SSL
  ft.<mode>.infer.logits_sum   F32 [N, K]  eval-mode y1 + y2 + y3 + y_cat on un-shuffled ft.x after the 4 steps
  ft.<mode>.infer.logits_cat   F32 [N, K]  eval-mode y_cat alone

`__metadata__` strings: torch_version, torchvision_version, numpy_version, generated (UTC date), generator, schema,
config (JSON of the run's settings), state_dict (JSON [name, shape] list in module order), and
  torch_f32_rel_err   JSON object: for every stored float key (not inputs, not gen.*, not .norm/.proj), the error
                      of the same pipeline run by PyTorch in float32 (same f32 weights and inputs) against the
                      stored float64 reference, metric of tests/common assert_close (max abs err / max |ref|), plus
                      per-step entries "ssl.loss[s]", "ssl.bt_terms[s]", "ft.loss[s]" (s = 0..3). It is what a
                      correct f32 engine can be expected to reach; use it to set tolerances.
  torch_f32_flips     JSON: number of ReLU output signs and global-max-pool argmax positions that differ between
                      the float32 and float64 runs (over all forwards of both iterations, reference mode); a flip
                      changes the backward discontinuously, so a nonzero count means looser tolerances.

Tolerance notes (measured with torch 2.15 at the defaults; see torch_f32_rel_err for every key):
- float64 engine: everything should match to the f32 rounding of the stored values (~1e-7 relative); the float64
  trajectory is stable (a 1e-13 relative perturbation of the initial weights moves every stored value by < 2e-7
  relative), so rtol 1e-6 fits.
- float32 engine: FT is well conditioned: losses ~1e-6, step logits ~1e-5, inference logits ~6e-6, running stats
  <= 3e-6, deltas median 2e-4 and <= 2.5e-3, except the near-zero-gradient tensors listed below (up to 4e-2). SSL steps 1-2 are fine (losses ~5e-6) but steps 3-4 are not: float32 rounding flips
  ReLU signs and max-pool argmaxes (torch_f32_flips), losses drift to ~4e-4 (step 3) / ~2e-3 (step 4) and some
  SSL deltas are off by tens of percent. Compare SSL deltas/running stats in f32 only loosely (or not at all).
- Parameters whose gradient is analytically ZERO (a shift removed by a following train-mode BatchNorm):
  projector{k}.0.bias, projector{k}.1.bias, projector_concat.0.bias, projector_concat.1.bias and (while every
  pooled maximum is positive) conv_block{k}.1.bn.bias; conv_block{k}.1.bn.weight's gradient is nearly zero too.
  Their delta is the weight-decay/momentum drift (-lr * wd * w per step, ~1e-6) plus rounding noise of the
  "zero" gradient, so their f32 relative error is large and meaningless; in f64 they match.
"""

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf
F32 = lambda x: float(np.float32(x))  # noqa: E402  (counter generator, gradient summaries; outputs unchanged)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "tests", "fixtures", "fgssl_steps.safetensors")

STAGE_CHANNELS = {  # channels of layer2, layer3, layer4
    "resnet18": (128, 256, 512),
    "resnet34": (128, 256, 512),
    "resnet50": (512, 1024, 2048),
}
BN_EPS = F32(1e-5)
BT_EPS = F32(1e-5)
MODES = ("reference", "minimal")


# ---- model -----------------------------------------------------------------------------------------------------


class BasicConv(nn.Module):
    """Conv (no bias, 'same' padding) -> BN2d (momentum 0.01) -> ReLU, as in the reference code."""

    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=1, padding=(k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=F32(0.01))

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def projector(cin, feat):
    return nn.Sequential(nn.BatchNorm1d(cin, eps=BN_EPS, momentum=F32(0.1)), nn.Linear(cin, feat),
                         nn.BatchNorm1d(feat, eps=BN_EPS, momentum=F32(0.1)), nn.ELU(alpha=1.0))


class FGSSLNet(nn.Module):
    def __init__(self, arch, feat, pooled, classes):
        super().__init__()
        base = getattr(torchvision.models, arch)()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(base, name))
        for k, c in enumerate(STAGE_CHANNELS[arch], start=1):
            setattr(self, f"conv_block{k}", nn.Sequential(BasicConv(c, feat, 1), BasicConv(feat, pooled, 3)))
        for k in (1, 2, 3):
            setattr(self, f"projector{k}", projector(pooled, feat))
        self.projector_concat = projector(3 * pooled, feat)
        for k in (1, 2, 3):
            setattr(self, f"classifier{k}", nn.Linear(feat, classes))
        self.classifier_concat = nn.Linear(feat, classes)

    def is_backbone(self, name):
        return name.split(".")[0] in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")

    def run(self, x, plan):
        """Runs the parts named by `plan` (see `plan_for`); returns {"z1".., "z_cat", "y1".., "y_cat"} as computed."""
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        h = self.layer1(h)
        stages = {}
        for k, layer in ((1, self.layer2), (2, self.layer3), (3, self.layer4)):
            if plan["depth"] < k:
                break
            h = layer(h)
            stages[k] = h
        out, pooled = {}, {}
        for k in plan["blocks"]:
            fmap = getattr(self, f"conv_block{k}")(stages[k])
            pooled[k] = F.adaptive_max_pool2d(fmap, 1).flatten(1)
        for k in plan["projectors"]:
            out[f"z{k}"] = getattr(self, f"projector{k}")(pooled[k])
        if plan["concat"]:
            out["z_cat"] = self.projector_concat(torch.cat([pooled[1], pooled[2], pooled[3]], dim=1))
        for k in plan["classifiers"]:
            if k == "cat":
                out["y_cat"] = self.classifier_concat(out["z_cat"])
            else:
                out[f"y{k}"] = getattr(self, f"classifier{k}")(out[f"z{k}"])
        return out


FULL_PLAN = {"depth": 3, "blocks": (1, 2, 3), "projectors": (1, 2, 3), "concat": True, "classifiers": (1, 2, 3, "cat")}


def plan_for(mode, step, with_classifier):
    """What one forward of `step` (1..4) runs. `reference`: everything. `minimal`: only what the loss needs."""
    if mode == "reference":
        return FULL_PLAN
    if step <= 3:
        return {"depth": step, "blocks": (step,), "projectors": (step,), "concat": False,
                "classifiers": (step,) if with_classifier else ()}
    return {"depth": 3, "blocks": (1, 2, 3), "projectors": (), "concat": True,
            "classifiers": ("cat",) if with_classifier else ()}


# ---- generated weights -----------------------------------------------------------------------------------------


def initial_state(model):
    """state_dict of float32 tensors from the counter-based formulas of the docstring."""
    modules = dict(model.named_modules())
    backbone_bns = {n for n, m in modules.items() if isinstance(m, nn.BatchNorm2d) and model.is_backbone(n)}
    state = {}
    for name, t in model.state_dict().items():
        owner, leaf = name.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            state[name] = torch.tensor(7, dtype=torch.int64)
            continue
        mod = modules[owner]
        u = mf.counter_uniform(mf.fnv1a64(name.encode()), np.arange(t.numel(), dtype=np.uint64))
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            v = {"weight": lambda: 0.5 + u, "bias": lambda: 0.4 * (2.0 * u - 1.0),
                 "running_mean": lambda: 0.3 * (2.0 * u - 1.0), "running_var": lambda: 0.5 + u}[leaf]()
        elif isinstance(mod, nn.Conv2d) and leaf == "weight":
            fan_in = t.shape[1] * t.shape[2] * t.shape[3]
            v = (2.0 * u - 1.0) * np.sqrt(3.0) * np.sqrt(2.0 / fan_in)
        elif isinstance(mod, nn.Linear):
            v = (2.0 * u - 1.0) / np.sqrt(float(mod.in_features))
        else:
            raise ValueError(f"no generator rule for {name}")
        arr = v.astype(np.float32).reshape(tuple(t.shape))
        if model.is_backbone(name):  # the same numbers as make_fixtures.py's own rule
            want = mf.fixture_value_array(name, tuple(t.shape), 1, backbone_bns)
            assert np.array_equal(arr, want), name
        state[name] = torch.from_numpy(arr)
    return state


def build_model(args, state, dtype, device="cpu"):
    model = FGSSLNet(args.arch, args.feat, args.pooled, args.classes).to(device=device, dtype=dtype)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = F32(m.momentum); m.eps = F32(m.eps)
    model.load_state_dict(state)  # copies (and converts) the generated values into the `dtype` tensors
    return model


def backbone_lr(args):
    """The engine's backbone rate: f32(lr_heads) * f32(lr_backbone / lr_heads), multiplied in float32."""
    return F32(np.float32(args.lr_heads) * np.float32(args.lr_backbone / args.lr_heads))


def make_optimizer(model, args):
    backbone = [p for n, p in model.named_parameters() if model.is_backbone(n)]
    heads = [p for n, p in model.named_parameters() if not model.is_backbone(n)]
    return torch.optim.SGD([{"params": backbone, "lr": backbone_lr(args)}, {"params": heads, "lr": F32(args.lr_heads)}],
                           lr=args.lr_heads, momentum=F32(0.9), weight_decay=F32(5e-4))


# ---- jigsaw, losses, monitors ----------------------------------------------------------------------------------


def jigsaw(x, n, perm):
    """Output tile d (row-major) = input tile perm[:, d] of the same sample. perm: int64 [N, n*n]."""
    nb, c, h, w = x.shape
    if h % n or w % n:
        raise ValueError(f"jigsaw: image {h}x{w} not divisible by grid {n}")
    th, tw = h // n, w // n
    tiles = x.reshape(nb, c, n, th, n, tw).permute(0, 2, 4, 1, 3, 5).reshape(nb, n * n, c, th, tw)
    idx = perm.to(x.device).view(nb, n * n, 1, 1, 1).expand(-1, -1, c, th, tw)
    out = torch.gather(tiles, 1, idx)
    return out.reshape(nb, n, n, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(nb, c, h, w)


def upcast_half(t):
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def bt_terms(za, zb, lam):
    """Standard Barlow Twins (METHOD.md §6): (on-diagonal, off-diagonal * lambda), biased variance + eps."""
    with torch.autocast(za.device.type, enabled=False):  # the loss stays fp32 under autocast (METHOD.md §10)
        return _bt_terms(upcast_half(za), upcast_half(zb), lam)


def _bt_terms(za, zb, lam):
    n, f = za.shape
    na = (za - za.mean(0)) / torch.sqrt(za.var(0, unbiased=False) + BT_EPS)
    nb = (zb - zb.mean(0)) / torch.sqrt(zb.var(0, unbiased=False) + BT_EPS)
    c = na.t() @ nb / n
    eye = torch.eye(f, dtype=torch.bool, device=c.device)
    on = (1.0 - torch.diagonal(c)).pow(2).sum()
    off = lam * c[~eye].pow(2).sum()
    return on, off


def std_of_l2_normalized(z):
    # solo-learn's definition (ANCHORS.md §2.2 #6): torch.std's default, the unbiased estimator.
    return F.normalize(z.detach(), dim=1).std(dim=0).mean()


# ---- the two iterations ----------------------------------------------------------------------------------------


def ssl_iteration(model, opt, x1, x2, perms, grids, mode, lam, record=None):
    """Four progressive SSL steps (METHOD.md §7). Returns per-step records."""
    model.train()
    rec = {"loss": [], "terms": [], "std": [], "za": [], "zb": []}
    for step in (1, 2, 3, 4):
        opt.zero_grad(set_to_none=True)
        plan = plan_for(mode, step, with_classifier=False)
        view1 = jigsaw(x1, grids[step - 1], perms[grids[step - 1]]) if step <= 3 else x1
        key = f"z{step}" if step <= 3 else "z_cat"
        za = model.run(view1, plan)[key]
        zb = model.run(x2, plan)[key]
        on, off = bt_terms(za, zb, lam)
        loss = (on + off) * (2.0 if step == 4 else 1.0)
        loss.backward()
        opt.step()
        rec["loss"].append(loss.item())
        rec["terms"].append([on.item(), off.item()])
        rec["std"].append(std_of_l2_normalized(za).item())
        rec["za"].append(za.detach())
        rec["zb"].append(zb.detach())
    return rec


def ft_iteration(model, opt, x, labels, perms, grids, mode):
    """Four progressive fine-tuning steps (METHOD.md §8)."""
    model.train()
    rec = {"loss": [], "logits": []}
    for step in (1, 2, 3, 4):
        opt.zero_grad(set_to_none=True)
        plan = plan_for(mode, step, with_classifier=True)
        view = jigsaw(x, grids[step - 1], perms[grids[step - 1]]) if step <= 3 else x
        key = f"y{step}" if step <= 3 else "y_cat"
        logits = model.run(view, plan)[key]
        loss = F.cross_entropy(upcast_half(logits), labels)
        loss = loss * (2.0 if step == 4 else 1.0)
        loss.backward()
        opt.step()
        rec["loss"].append(loss.item())
        rec["logits"].append(logits.detach())
    return rec


@torch.no_grad()
def inference(model, x):
    model.eval()
    out = model.run(x, FULL_PLAN)
    return out["y1"] + out["y2"] + out["y3"] + out["y_cat"], out["y_cat"]


# ---- fixture ---------------------------------------------------------------------------------------------------


def put_summary(res, prefix, name, flat):
    """make_fixtures.py's gradient-summary scheme with the tensor name unchanged: `<prefix>.val` always;
    `<prefix>.norm` and `<prefix>.proj` only when numel > 512 (otherwise `.val` is the whole tensor)."""
    flat = np.asarray(flat, dtype=np.float64).reshape(-1)
    res[prefix + ".val"] = flat[mf.grad_indices(name, flat.size)]
    if flat.size > mf.N_SAMPLES:
        res[prefix + ".norm"] = np.array([np.sqrt(np.sum(flat * flat))])
        res[prefix + ".proj"] = np.array([np.sum(flat * mf.grad_proj_weights(name, flat.size))])


def make_inputs(args):
    n, s, grids = args.batch, args.size, args.grids
    torch.manual_seed(2023)
    ssl = {"x1": torch.randn(n, 3, s, s), "x2": torch.randn(n, 3, s, s)}
    ssl_perms = {g: torch.stack([torch.randperm(g * g) for _ in range(n)]) for g in grids}
    torch.manual_seed(2024)
    ft = {"x": torch.randn(n, 3, s, s), "labels": torch.randint(0, args.classes, (n,))}
    ft_perms = {g: torch.stack([torch.randperm(g * g) for _ in range(n)]) for g in grids}
    return ssl, ssl_perms, ft, ft_perms


def run_all(args, state, dtype, inputs, count_flips=False):
    """Both iterations in both modes in `dtype`; returns {key: float64 numpy} of every stored result."""
    ssl_in, ssl_perms, ft_in, ft_perms = inputs
    grids = args.grids
    res, flips = {}, []
    by_mode = {}
    for mode in MODES:
        r = {}
        # SSL
        model = build_model(args, state, dtype)
        hooks = []
        if count_flips and mode == "reference":
            hooks = install_flip_hooks(model, flips)
        opt = make_optimizer(model, args)
        rec = ssl_iteration(model, opt, ssl_in["x1"].to(dtype), ssl_in["x2"].to(dtype), ssl_perms, grids, mode, F32(args.bt_lambda))
        r["ssl.loss"] = np.array(rec["loss"])
        r["ssl.bt_terms"] = np.array(rec["terms"])
        r["ssl.std_l2"] = np.array(rec["std"])
        r["ssl.z_view1"] = torch.stack(rec["za"]).double().numpy()
        r["ssl.z_view2"] = torch.stack(rec["zb"]).double().numpy()
        r["ssl.weights"] = {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}
        r["ssl.buffers"] = {n: b.detach().clone() for n, b in model.named_buffers()}
        for h in hooks:
            h.remove()
        # fine-tuning
        model = build_model(args, state, dtype)
        if count_flips and mode == "reference":
            hooks = install_flip_hooks(model, flips)
        opt = make_optimizer(model, args)
        rec = ft_iteration(model, opt, ft_in["x"].to(dtype), ft_in["labels"], ft_perms, grids, mode)
        r["ft.loss"] = np.array(rec["loss"])
        r["ft.logits"] = torch.stack(rec["logits"]).double().numpy()
        r["ft.weights"] = {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}
        r["ft.buffers"] = {n: b.detach().clone() for n, b in model.named_buffers()}
        for h in hooks:
            h.remove()
        s, c = inference(model, ft_in["x"].to(dtype))
        r["ft.infer.logits_sum"], r["ft.infer.logits_cat"] = s.double().numpy(), c.double().numpy()
        by_mode[mode] = r

    ref, mini = by_mode["reference"], by_mode["minimal"]
    # Training trajectories must not depend on the BN-statistics mode (bit for bit: the same ops run in the same order).
    for k in ("ssl.loss", "ssl.bt_terms", "ssl.std_l2", "ssl.z_view1", "ssl.z_view2", "ft.loss", "ft.logits"):
        assert np.array_equal(ref[k], mini[k]), f"{k} differs between BN modes"
    for kind in ("ssl", "ft"):
        for n in ref[f"{kind}.weights"]:
            assert np.array_equal(ref[f"{kind}.weights"][n], mini[f"{kind}.weights"][n]), f"{kind} weight {n} differs between modes"

    for k in ("ssl.loss", "ssl.bt_terms", "ssl.std_l2", "ssl.z_view1", "ssl.z_view2", "ft.loss", "ft.logits"):
        res[k] = ref[k]
    init = {n: t.double().numpy() for n, t in state.items() if t.is_floating_point()}
    model = build_model(args, state, dtype)
    params = [n for n, _ in model.named_parameters()]
    bns = [n for n, m in model.named_modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for kind in ("ssl", "ft"):
        for n in params:
            # delta from the f32 initial values, in the run's precision (an f32 engine subtracts f32 numbers)
            w = ref[f"{kind}.weights"][n]
            w0 = init[n].astype(np.float32).astype(np.float64) if dtype == torch.float32 else init[n]
            put_summary(res, f"{kind}.delta.{n}", n, w - w0)
        for mode in MODES:
            bufs = by_mode[mode][f"{kind}.buffers"]
            for bn in bns:
                for leaf in ("running_mean", "running_var"):
                    name = f"{bn}.{leaf}"
                    put_summary(res, f"{kind}.{mode}.{name}", name, bufs[name].double().numpy())
                res[f"{kind}.{mode}.{bn}.num_batches_tracked"] = np.array([int(bufs[f"{bn}.num_batches_tracked"])], dtype=np.int64)
            if kind == "ft":
                res[f"ft.{mode}.infer.logits_sum"] = by_mode[mode]["ft.infer.logits_sum"]
                res[f"ft.{mode}.infer.logits_cat"] = by_mode[mode]["ft.infer.logits_cat"]
    return res, flips


def install_flip_hooks(model, sink):
    """Appends the sign pattern of every ReLU output and every global-max-pool argmax to `sink`."""
    hooks = []

    def relu_hook(_m, _i, out):
        sink.append(("relu", (out.detach() > 0).cpu().numpy().copy()))

    def block_hook(_m, _i, out):  # output of the 3x3 BasicConv: argmax of the global max pool that follows
        sink.append(("pool", out.detach().flatten(2).argmax(dim=2).cpu().numpy().copy()))

    for name, mod in model.named_modules():
        if isinstance(mod, nn.ReLU):
            hooks.append(mod.register_forward_hook(relu_hook))
        if isinstance(mod, BasicConv):
            hooks.append(mod.register_forward_hook(relu_hook))  # BasicConv uses F.relu: record its output sign
            if name.endswith(".1"):
                hooks.append(mod.register_forward_hook(block_hook))
    return hooks


def fixture(args):
    mf._check_generator()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = FGSSLNet(args.arch, args.feat, args.pooled, args.classes)
    state = initial_state(model)
    inputs = make_inputs(args)
    ssl_in, ssl_perms, ft_in, ft_perms = inputs

    t0 = time.time()
    ref, flips64 = run_all(args, state, torch.float64, inputs, count_flips=True)
    got, flips32 = run_all(args, state, torch.float32, inputs, count_flips=True)
    print(f"float64 + float32 runs: {time.time() - t0:.1f} s")

    out = {}
    n, s = args.batch, args.size
    out["config.dims"] = mf.i64([n, 3, s, s, args.feat, args.pooled, args.classes, 4])
    out["config.grids"] = mf.i64(args.grids)
    out["config.hyper"] = np.array([F32(args.lr_heads), backbone_lr(args), F32(0.9), F32(5e-4),
                                    F32(args.bt_lambda), BN_EPS, BT_EPS], dtype=np.float64)
    for name in ["conv_block1.0.conv.weight", "conv_block3.1.conv.weight", "conv_block2.0.bn.weight", "conv_block2.1.bn.bias",
                 "projector1.0.running_mean", "projector2.2.running_var", "projector1.1.weight", "projector1.1.bias",
                 "projector_concat.1.weight", "projector_concat.1.bias", "classifier1.weight", "classifier_concat.bias",
                 "conv1.weight"]:
        out[f"gen.{name}"] = mf.f32(state[name].reshape(-1)[:16])
    out["ssl.x1"], out["ssl.x2"] = mf.f32(ssl_in["x1"]), mf.f32(ssl_in["x2"])
    out["ft.x"], out["ft.labels"] = mf.f32(ft_in["x"]), mf.i64(ft_in["labels"])
    for g in args.grids:
        out[f"ssl.perm_g{g}"], out[f"ft.perm_g{g}"] = mf.i64(ssl_perms[g]), mf.i64(ft_perms[g])

    f64_keys = {"ssl.loss", "ssl.bt_terms", "ssl.std_l2", "ft.loss"}
    err = {}
    for k, v in ref.items():
        if v.dtype == np.int64:
            out[k] = mf.i64(v)
            continue
        out[k] = np.ascontiguousarray(v, dtype=np.float64) if k in f64_keys else mf.f32(v)
        if k.endswith((".norm", ".proj")):
            continue  # one-element summaries: compare them relative to the norm, as make_fixtures' users do
        want = out[k].astype(np.float64)
        err[k] = float(np.abs(got[k] - want).max() / max(np.abs(want).max(), 1e-30))
        if k in ("ssl.loss", "ft.loss", "ssl.bt_terms"):  # per step too: early steps are far better conditioned
            for step in range(4):
                w, g = want[step], got[k][step]
                err[f"{k}[{step}]"] = float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-30))
    for k in ref:
        if ref[k].dtype == np.int64:
            assert np.array_equal(ref[k], got[k]), k
    for k in ref:  # the SSL loss never reaches the classifiers: no gradient, so SGD must leave them untouched
        if k.startswith("ssl.delta.classifier"):
            assert not ref[k].any(), k

    relu_flips = sum(int((a[1] != b[1]).sum()) for a, b in zip(flips64, flips32) if a[0] == "relu")
    pool_flips = sum(int((a[1] != b[1]).sum()) for a, b in zip(flips64, flips32) if a[0] == "pool")
    assert len(flips64) == len(flips32)

    if args.check:
        self_checks(args, state, inputs)

    config = {k: getattr(args, k) for k in ("arch", "size", "batch", "feat", "pooled", "classes", "grids", "lr_heads",
                                             "lr_backbone", "bt_lambda")}
    config.update({"momentum": 0.9, "weight_decay": 5e-4, "bn_eps": BN_EPS, "bt_eps": BT_EPS, "seeds": {"ssl": 2023, "ft": 2024},
                   "bt_form": "standard", "jigsaw": "per-sample uniform permutation, src_tile = perm[dst_tile]"})
    md = mf.metadata({
        "generator": "scripts/fgssl_reference.py",
        "schema": "see the docstring of scripts/fgssl_reference.py",
        "config": json.dumps(config),
        "state_dict": json.dumps([[k, list(v.shape)] for k, v in model.state_dict().items()]),
        "torch_f32_rel_err": json.dumps({k: float(f"{v:.3g}") for k, v in sorted(err.items())}),
        "torch_f32_flips": json.dumps({"relu": relu_flips, "max_pool_argmax": pool_flips}),
    })
    from safetensors.numpy import save_file
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    save_file(out, OUT_PATH, metadata=md)
    os.chmod(OUT_PATH, 0o644)

    print(f"{OUT_PATH}: {len(out)} tensors, {os.path.getsize(OUT_PATH) / 1e6:.3f} MB")
    print("ssl.loss", out["ssl.loss"], "bt_terms", out["ssl.bt_terms"].tolist(), "std_l2", out["ssl.std_l2"])
    print("ft.loss", out["ft.loss"])
    worst = sorted(((v, k) for k, v in err.items()), reverse=True)[:12]
    print("worst torch f32 rel errors:", [(k, f"{v:.2e}") for v, k in worst])
    for pre in ("ssl.loss", "ft.loss", "ssl.bt_terms", "ssl.std_l2", "ft.reference.infer.logits_sum", "ft.minimal.infer.logits_sum"):
        print(f"  f32 err {pre}: {err[pre]:.2e}")
    print(f"f32 flips: relu {relu_flips}, max-pool argmax {pool_flips}")
    for kind in ("ssl", "ft"):
        zero = [k[len(kind) + 7:-4] for k in out if k.startswith(f"{kind}.delta.") and k.endswith(".val") and not out[k].any()]
        print(f"{kind}: parameters with zero delta: {len(zero)} {zero}")
        nbt = {k: int(out[k][0]) for k in out if k.startswith(f"{kind}.minimal.") and k.endswith("num_batches_tracked")}
        print(f"{kind}: minimal num_batches_tracked values: {sorted(set(nbt.values()))}")


# ---- self checks (--check) -------------------------------------------------------------------------------------


def self_checks(args, state, inputs):
    torch.manual_seed(7)
    # 1. jigsaw against a plain tile loop
    x = torch.randn(3, 2, 12, 12, dtype=torch.float64)
    for n in (2, 3, 4, 6):
        perm = torch.stack([torch.randperm(n * n) for _ in range(3)])
        got = jigsaw(x, n, perm)
        t = 12 // n
        want = torch.empty_like(x)
        for b in range(3):
            for d in range(n * n):
                src = int(perm[b, d])
                want[b, :, (d // n) * t:(d // n + 1) * t, (d % n) * t:(d % n + 1) * t] = \
                    x[b, :, (src // n) * t:(src // n + 1) * t, (src % n) * t:(src % n + 1) * t]
        assert torch.equal(got, want), n
    print("check: jigsaw matches the tile loop")

    # 2. METHOD.md §6 closed-form BT backward vs autograd
    za = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    zb = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    lam = args.bt_lambda
    on, off = bt_terms(za, zb, lam)
    ga, gb = torch.autograd.grad(on + off, (za, zb))
    with torch.no_grad():
        nn_ = za.shape[0]
        sa = torch.sqrt(za.var(0, unbiased=False) + BT_EPS)
        sb = torch.sqrt(zb.var(0, unbiased=False) + BT_EPS)
        ha, hb = (za - za.mean(0)) / sa, (zb - zb.mean(0)) / sb
        c = ha.t() @ hb / nn_
        g = 2 * lam * c
        g.diagonal().copy_(-2 * (1 - c.diagonal()))
        dha, dhb = hb @ g.t() / nn_, ha @ g / nn_

        def back(dh, h, s):
            return (dh - dh.mean(0) - h * (dh * h).mean(0)) / s

        assert torch.allclose(back(dha, ha, sa), ga, rtol=1e-10, atol=1e-12)
        assert torch.allclose(back(dhb, hb, sb), gb, rtol=1e-10, atol=1e-12)
    print("check: closed-form BT backward matches autograd")

    # 3. finite difference of SSL step 1 and step 4 losses w.r.t. single weights (train-mode BN: batch statistics)
    ssl_in, ssl_perms, _, _ = inputs
    x1, x2 = ssl_in["x1"].double(), ssl_in["x2"].double()
    for step, pname, i in ((1, "conv_block1.1.conv.weight", 5), (1, "layer2.0.conv1.weight", 11), (4, "projector_concat.1.weight", 3),
                           (4, "layer4.1.bn2.weight", 2)):
        def loss_of(model):
            plan = plan_for("minimal", step, False)
            v1 = jigsaw(x1, args.grids[0], ssl_perms[args.grids[0]]) if step == 1 else x1
            key = "z1" if step == 1 else "z_cat"
            on, off = bt_terms(model.run(v1, plan)[key], model.run(x2, plan)[key], args.bt_lambda)
            return (on + off) * (2.0 if step == 4 else 1.0)

        model = build_model(args, state, torch.float64).train()
        loss_of(model).backward()
        analytic = dict(model.named_parameters())[pname].grad.reshape(-1)[i].item()
        h = 1e-6
        vals = []
        for sign in (1, -1):
            m = build_model(args, state, torch.float64).train()
            with torch.no_grad():
                dict(m.named_parameters())[pname].view(-1)[i] += sign * h
                vals.append(loss_of(m).item())
        fd = (vals[0] - vals[1]) / (2 * h)
        rel = abs(fd - analytic) / max(abs(analytic), 1e-8)
        print(f"check: step {step} d loss / d {pname}[{i}]: autograd {analytic:.8e}, finite difference {fd:.8e}, rel {rel:.1e}")
        assert rel < 1e-5, (pname, analytic, fd)


# ---- benchmark (full size, GPU) --------------------------------------------------------------------------------

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def gaussian_blur(x, sigma, apply):
    """Per-sample separable Gaussian blur (kernel radius ceil(3 * 2.0)), reflect padding; `apply` bool [B]."""
    b, c, h, w = x.shape
    r = 6
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)  # [B, 2r+1]
    kk = k.repeat_interleave(c, 0)  # [B*C, 2r+1]
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), kk[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), kk[:, None, :, None], groups=b * c)
    return torch.where(apply[:, None, None, None], y.reshape(b, c, h, w), x)


def ssl_views(u8, size, gen):
    """METHOD.md §5 SSL views on the device from u8 [B, 3, H, W]: returns (view1, view2) normalised float32."""
    b = u8.shape[0]
    dev = u8.device
    x = F.interpolate(u8.float() / 255.0, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)

    def rand(p):
        return torch.rand(b, device=dev, generator=gen) < p

    def gray(v, apply):
        luma = (0.299 * v[:, 0] + 0.587 * v[:, 1] + 0.114 * v[:, 2]).unsqueeze(1).expand(-1, 3, -1, -1)
        return torch.where(apply[:, None, None, None], luma, v)

    def sigma():
        return 0.1 + 1.9 * torch.rand(b, device=dev, generator=gen)

    v1 = torch.where(rand(0.5)[:, None, None, None], x.flip(3), x)
    v1 = gaussian_blur(gray(v1, rand(0.2)), sigma(), rand(1.0))
    v2 = gaussian_blur(gray(x, rand(0.2)), sigma(), rand(0.1))
    v2 = torch.where(rand(0.2)[:, None, None, None] & (v2 >= 128 / 255), 1.0 - v2, v2)
    return (v1 - mean) / std, (v2 - mean) / std


def ft_view(u8, size, gen):
    """Fine-tuning view (APTOS policy of METHOD.md §8: flips, Resize 256, CenterCrop 224 scaled to `size`)."""
    b = u8.shape[0]
    dev = u8.device
    big = size * 256 // 224
    x = F.interpolate(u8.float() / 255.0, size=(big, big), mode="bilinear", align_corners=False, antialias=True)
    x = torch.where((torch.rand(b, device=dev, generator=gen) < 0.5)[:, None, None, None], x.flip(3), x)
    x = torch.where((torch.rand(b, device=dev, generator=gen) < 0.5)[:, None, None, None], x.flip(2), x)
    o = (big - size) // 2
    x = x[:, :, o:o + size, o:o + size]
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)
    return (x - mean) / std


def bench(args):
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.backends.cudnn.benchmark = True
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = FGSSLNet(args.arch, args.feat, args.pooled, args.classes)
    model = build_model(args, initial_state(model), dtype, dev)
    n, s, grids = args.batch, args.size, args.grids
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    torch.manual_seed(0)
    raw = (torch.rand(n, 3, args.raw_size, args.raw_size, device=dev, generator=gen) * 255).to(torch.uint8)
    fixed1 = torch.randn(n, 3, s, s, device=dev, dtype=dtype)
    fixed2 = torch.randn(n, 3, s, s, device=dev, dtype=dtype)
    labels = torch.randint(0, args.classes, (n,), device=dev)
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]

    def perms():
        return {g: torch.argsort(torch.rand(n, g * g, device=dev, generator=gen), dim=1) for g in grids}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def ssl_once(opt):
        if args.augment:
            v1, v2 = ssl_views(raw, s, gen)
            v1, v2 = v1.to(dtype), v2.to(dtype)
        else:
            v1, v2 = fixed1, fixed2
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            return ssl_iteration(model, opt, v1, v2, perms(), grids, args.bn_stats, args.bt_lambda)["loss"]

    def ft_once(opt):
        x = ft_view(raw, s, gen).to(dtype) if args.augment else fixed1
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            return ft_iteration(model, opt, x, labels, perms(), grids, args.bn_stats)["loss"]

    print(f"# torch {torch.__version__}, {args.arch} {s}x{s} batch {n} F {args.feat} P {args.pooled} K {args.classes} grids {grids} "
          f"device {dev} dtype {args.dtype} amp {args.amp} tf32 {args.tf32} augment {args.augment} bn_stats {args.bn_stats}")
    if dev.type == "cuda":
        print(f"# {torch.cuda.get_device_name(dev)}")
    for name, once in (("ssl", ssl_once), ("ft", ft_once)):
        opt = make_optimizer(model, args)
        for _ in range(args.warmup):
            once(opt)
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times, losses = [], None
        for _ in range(args.iters):
            t0 = time.perf_counter()
            losses = once(opt)  # .item() inside syncs each step, like a training loop that logs losses
            sync()
            times.append(time.perf_counter() - t0)
        times.sort()
        med = times[len(times) // 2]
        mem = f", peak mem {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if dev.type == "cuda" else ""
        print(f"{name}: median {med * 1000:.1f} ms/iteration (min {times[0] * 1000:.1f}), {n / med:.1f} images/s{mem}, "
              f"last step losses {[round(v, 4) for v in losses]}")


# ---- main ------------------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="resnet18", choices=sorted(STAGE_CHANNELS))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--feat", type=int, default=32, help="F, embedding width")
    p.add_argument("--pooled", type=int, default=64, help="P, pooled width")
    p.add_argument("--classes", type=int, default=3, help="K")
    p.add_argument("--grids", type=int, nargs=3, default=[8, 4, 2], help="finest first")
    p.add_argument("--lr-heads", type=float, default=0.002)
    p.add_argument("--lr-backbone", type=float, default=0.0002)
    p.add_argument("--bt-lambda", type=float, default=5e-3)
    p.add_argument("--check", action="store_true", help="fixture mode: add self-consistency checks")
    p.add_argument("--bench", action="store_true", help="time iterations instead of writing the fixture")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="bench only")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"], help="bench only: autocast dtype")
    p.add_argument("--tf32", action="store_true", help="bench only: allow TF32 convs/matmuls")
    p.add_argument("--augment", action="store_true", help="bench only: METHOD.md §5 views on the device from u8")
    p.add_argument("--raw-size", type=int, default=256, help="bench --augment: side of the synthetic u8 images")
    p.add_argument("--bn-stats", default="reference", choices=MODES, help="bench only")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    for g in args.grids:
        if args.size % g:
            p.error(f"--size {args.size} is not divisible by grid {g}")
    if args.bench:
        bench(args)
    else:
        if args.device != "cpu":
            p.error("the fixture is computed on the CPU (float64); use --bench for other devices")
        fixture(args)


if __name__ == "__main__":
    sys.exit(main())
