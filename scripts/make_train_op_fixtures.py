#!/usr/bin/env python3
"""PyTorch fixtures for fgssl's training ops: the Barlow Twins loss, the collapse monitor and the optimizers.

Writes tests/fixtures/train_ops.safetensors (relative to the repository root, whatever the working directory).
Rerun (CPU only, deterministic, a few seconds):

    /work/torchenv/bin/python scripts/make_train_op_fixtures.py

Every reference is computed by PyTorch in float64 from float32-representable inputs and hyper-parameters (so the
Rust f32 backend receives them exactly) and stored as float64. Integer data (geometry, step counts) is int64.
`__metadata__`: torch_version, numpy_version, generated (UTC date), generator, schema.

-----------------------------------------------------------------------------------------------------------------
Schema
-----------------------------------------------------------------------------------------------------------------

Barlow Twins loss, `bt.<form>.<case>.*`, form `standard` or `reference` (METHOD.md §6):
    geom   [n, f]
    hyper  [lambda, dloss]
    za, zb [n, f]           the two embeddings
    loss, on_diag, off_diag [1]
    dza, dzb [n, f]         gradient of dloss * loss (autograd)
  standard:  BT's own code: z -> BatchNorm1d(f, affine=False) (training mode: biased variance, eps 1e-5),
             c = bn(za).T @ bn(zb) / n, on_diag = Σ(diag(c) - 1)², off_diag = λ Σ offdiag(c)², loss = on + off.
  reference: z -> (z - mean) / std (unbiased, no eps), same c, loss = Σ_ij (λ c_ij - λ δ_ij)²;
             on_diag / off_diag = its diagonal / off-diagonal parts.

Collapse monitor, `l2std.<case>.*` (lightly's std_of_l2_normalized):
    z [n, f], value [1] = torch.std(F.normalize(z, dim=1), dim=0).mean()
  cases: `random` (≈ 1/√f), `collapsed` (every row a positive multiple of one vector: 0).

Optimizers, `opt.<case>.*`:
    kind      [k]  0 sgd, 1 lars, 2 adamw
    geom      [n_params, n_steps]
    hyper     sgd [momentum, weight_decay, clip]; lars [momentum, weight_decay, eta, clip];
              adamw [beta1, beta2, eps, weight_decay, clip]       (clip < 0: no gradient clipping)
    lr_scale  [n_params]  each parameter's group multiplier (the group lr is float32(base_lr * lr_scale))
    p<j>.init            initial value (any shape; 1-d tensors are the "bias / BN" ones LARS excludes)
    step<s>.lr [1]       base learning rate of step s
    step<s>.p<j>.grad    the gradient given to parameter j at step s; ABSENT = no gradient (.grad is None:
                         the parameter is skipped entirely by every optimizer)
    step<s>.grad_norm [1]  clip cases: the total norm clip_grad_norm_ returned before step s
    step<s>.p<j>.param   the parameter after step s
  cases: `sgd_groups` (torch.optim.SGD, two lr groups, a skipped parameter), `sgd_clip` (the same plus
  torch.nn.utils.clip_grad_norm_ before each step: clipping active in some steps, not in others), `lars` (Barlow
  Twins' LARS class below, verbatim, weight_decay_filter=True, lars_adaptation_filter=True, with a zero-initialised
  weight so the ‖p‖ = 0 branch is taken), `adamw` (torch.optim.AdamW, two lr groups, a parameter skipped once so
  its step count lags).
"""

import datetime
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "train_ops.safetensors")


def f32v(x: float) -> float:
    """x rounded to float32 (hyper-parameters the Rust side holds as f32)."""
    return float(np.float32(x))


def f64(t) -> np.ndarray:
    # A COPY: parameters and gradients change in place after they are recorded.
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.array(t, dtype=np.float64, copy=True, order="C")


def i64(v) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(v, dtype=np.int64))


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32).double()


# ---- Barlow Twins' LARS, verbatim from facebookresearch/barlowtwins main.py ------------------------------------


class LARS(optim.Optimizer):
    def __init__(self, params, lr, weight_decay=0, momentum=0.9, eta=0.001,
                 weight_decay_filter=False, lars_adaptation_filter=False):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                        eta=eta, weight_decay_filter=weight_decay_filter,
                        lars_adaptation_filter=lars_adaptation_filter)
        super().__init__(params, defaults)


    def exclude_bias_and_norm(self, p):
        return p.ndim == 1

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g['params']:
                dp = p.grad

                if dp is None:
                    continue

                if not g['weight_decay_filter'] or not self.exclude_bias_and_norm(p):
                    dp = dp.add(p, alpha=g['weight_decay'])

                if not g['lars_adaptation_filter'] or not self.exclude_bias_and_norm(p):
                    param_norm = torch.norm(p)
                    update_norm = torch.norm(dp)
                    one = torch.ones_like(param_norm)
                    q = torch.where(param_norm > 0.,
                                    torch.where(update_norm > 0,
                                                (g['eta'] * param_norm / update_norm), one), one)
                    dp = dp.mul(q)

                param_state = self.state[p]
                if 'mu' not in param_state:
                    param_state['mu'] = torch.zeros_like(p)
                mu = param_state['mu']
                mu.mul_(g['momentum']).add_(dp)

                p.add_(mu, alpha=-g['lr'])


# ---- Barlow Twins loss ------------------------------------------------------------------------------------------


def off_diagonal(x):
    # BT's helper: a flattened view of the off-diagonal elements of a square matrix.
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def bt_standard(za, zb, lam):
    n, f = za.shape
    bn = nn.BatchNorm1d(f, affine=False).double().train()
    c = bn(za).T @ bn(zb)
    c = c / n
    on_diag = torch.diagonal(c).add(-1).pow(2).sum()
    off_diag = off_diagonal(c).pow(2).sum()
    return on_diag + lam * off_diag, on_diag, lam * off_diag


def bt_reference(za, zb, lam):
    n, f = za.shape
    za_n = (za - za.mean(0)) / za.std(0)
    zb_n = (zb - zb.mean(0)) / zb.std(0)
    c = za_n.T @ zb_n / n
    eye = torch.eye(f, dtype=c.dtype)
    sq = (lam * c - lam * eye).pow(2)
    on_diag = torch.diagonal(sq).sum()
    off_diag = sq.sum() - on_diag
    return sq.sum(), on_diag, off_diag


def bt_fixtures(out):
    torch.manual_seed(7)
    cases = [("n5_f7", 5, 7, 5e-3), ("n8_f33", 8, 33, 0.0051), ("n12_f20", 12, 20, 0.3)]
    for form, fn in [("standard", bt_standard), ("reference", bt_reference)]:
        for name, n, f, lam in cases:
            lam = f32v(lam)
            dloss = f32v(0.7)
            za = randn(n, f) * 1.5 + 0.3
            zb = (0.6 * za + 0.8 * randn(n, f)).float().double()  # correlated, float32-representable
            za_l, zb_l = za.clone().requires_grad_(True), zb.clone().requires_grad_(True)
            loss, on, off = fn(za_l, zb_l, lam)
            (loss * dloss).backward()
            pre = f"bt.{form}.{name}."
            out[pre + "geom"] = i64([n, f])
            out[pre + "hyper"] = f64([lam, dloss])
            out[pre + "za"] = f64(za)
            out[pre + "zb"] = f64(zb)
            out[pre + "loss"] = f64([loss.item()])
            out[pre + "on_diag"] = f64([on.item()])
            out[pre + "off_diag"] = f64([off.item()])
            out[pre + "dza"] = f64(za_l.grad)
            out[pre + "dzb"] = f64(zb_l.grad)


def l2std_fixtures(out):
    torch.manual_seed(8)
    z = randn(16, 32)
    v = randn(32)
    scales = torch.rand(10, dtype=torch.float32).double() * 3 + 0.5
    collapsed = (scales[:, None] * v[None, :]).float().double()
    for name, zz in [("random", z), ("collapsed", collapsed)]:
        value = torch.std(F.normalize(zz, dim=1), dim=0).mean()
        out[f"l2std.{name}.z"] = f64(zz)
        out[f"l2std.{name}.value"] = f64([value.item()])


# ---- optimizers -------------------------------------------------------------------------------------------------


def opt_case(out, case, kind, hyper, shapes, lr_scale, lrs, skip, make_opt, clip=None, zero_init=()):
    """Runs `len(lrs)` steps; `skip` = set of (step, param) pairs without a gradient."""
    torch.manual_seed(100 + len(out))  # deterministic: depends only on the cases written before
    params = []
    for j, shape in enumerate(shapes):
        p = torch.zeros(shape, dtype=torch.float64) if j in zero_init else randn(*shape)
        params.append(p.requires_grad_(True))
    pre = f"opt.{case}."
    out[pre + "kind"] = i64([kind])
    out[pre + "geom"] = i64([len(shapes), len(lrs)])
    out[pre + "hyper"] = f64(hyper)
    out[pre + "lr_scale"] = f64(lr_scale)
    for j, p in enumerate(params):
        out[pre + f"p{j}.init"] = f64(p)
    groups = {}
    for j, s in enumerate(lr_scale):
        groups.setdefault(s, []).append(params[j])
    opt = make_opt([{"params": ps, "scale": s} for s, ps in groups.items()])
    for step, base_lr in enumerate(lrs):
        for g in opt.param_groups:
            g["lr"] = f32v(np.float32(base_lr) * np.float32(g["scale"]))
        opt.zero_grad(set_to_none=True)
        for j, p in enumerate(params):
            if (step, j) in skip:
                continue
            # gradients of mixed magnitude; step 1 of the clip case is large so clipping kicks in
            mag = 1.0 if clip is None else [3.0, 0.05, 2.0, 0.01][step % 4]
            g = (randn(*p.shape) * mag).float().double()
            p.grad = g
            out[pre + f"step{step}.p{j}.grad"] = f64(g)
        out[pre + f"step{step}.lr"] = f64([base_lr])
        if clip is not None:
            with_grad = [p for p in params if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(with_grad, clip)
            out[pre + f"step{step}.grad_norm"] = f64([norm.item()])
        opt.step()
        for j, p in enumerate(params):
            out[pre + f"step{step}.p{j}.param"] = f64(p)


def opt_fixtures(out):
    shapes = [(6, 5), (4, 3, 3, 3), (7,), (5,), (33,)]
    scales = [f32v(1.0), f32v(0.1), f32v(1.0), f32v(0.1), f32v(1.0)]
    lrs = [f32v(0.1), f32v(0.05), f32v(0.02)]
    skip = {(1, 2), (2, 0)}
    mom, wd = f32v(0.9), f32v(5e-4)
    opt_case(out, "sgd_groups", 0, [mom, wd, -1.0], shapes, scales, lrs, skip,
             lambda groups: optim.SGD(groups, lr=0.0, momentum=mom, weight_decay=wd))
    clip = f32v(2.5)
    opt_case(out, "sgd_clip", 0, [mom, wd, clip], shapes, scales, lrs + [f32v(0.01)], skip,
             lambda groups: optim.SGD(groups, lr=0.0, momentum=mom, weight_decay=wd), clip=clip)
    lwd, eta = f32v(1.5e-2), f32v(1e-3)
    opt_case(out, "lars", 1, [mom, lwd, eta, -1.0], shapes + [(3, 4)], scales + [f32v(1.0)], [f32v(0.2), f32v(0.3), f32v(0.1)],
             skip, lambda groups: LARS(groups, lr=0, weight_decay=lwd, eta=eta, weight_decay_filter=True,
                                       lars_adaptation_filter=True), zero_init={5})
    b1, b2, eps, awd = f32v(0.9), f32v(0.999), f32v(1e-8), f32v(0.05)
    opt_case(out, "adamw", 2, [b1, b2, eps, awd, -1.0], shapes, scales, [f32v(1e-2), f32v(3e-3), f32v(2e-3), f32v(1e-3)],
             {(1, 2), (2, 4)}, lambda groups: optim.AdamW(groups, lr=0.0, betas=(b1, b2), eps=eps, weight_decay=awd))


def main():
    torch.set_default_dtype(torch.float64)
    out = {}
    bt_fixtures(out)
    l2std_fixtures(out)
    opt_fixtures(out)
    md = {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "generator": "scripts/make_train_op_fixtures.py",
        "schema": "see the docstring of scripts/make_train_op_fixtures.py",
    }
    save_file(out, OUT, metadata=md)
    print(f"wrote {OUT}: {len(out)} tensors, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
