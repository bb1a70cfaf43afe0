#!/usr/bin/env python3
"""torchvision AugMix fixtures for fgssl's CPU reference (src/backend/cpu/augmix.rs, tests/augmix.rs).

Writes tests/fixtures/augmix.safetensors (relative to the repository root, whatever the working directory):

    img/S{S}/{variant}                 uint8 [3, S, S]  the inputs: `smooth` (colour gradients + shapes + noise),
                                                        `two` (two grey levels: Equalize's step-0 case) and
                                                        `flat` (one colour: AutoContrast's max == min case);
                                                        `two` and `flat` only for EDGE_CASE_OPS
    table/{op}/S{S}                    float32 [10]     torchvision's magnitude table of the op on an S x S image
    op/{op}/S{S}/{variant}/b{bin}{+|-} uint8 [3, S, S]  torchvision's `_apply_op(img, op, +-table[bin], BILINEAR,
                                                        fill=None)` on the uint8 tensor (AutoContrast and Equalize:
                                                        bin 0, +)
    mix{k}/image                       uint8 [3, S, S]  AugMix(severity 3, width 3, depth D, alpha 1, all_ops,
    mix{k}/out                         uint8 [3, S, S]  BILINEAR).forward on `image` with torch's generator seeded:
    mix{k}/m, mix{k}/w                 float32 [2], [3] the Beta and Dirichlet draws (recorded from
                                                        `_sample_dirichlet`),
    mix{k}/ops                         int32 [3, D]     the op indices and signed magnitudes of every chain
    mix{k}/mags                        float64 [3, D]   (recorded from `_apply_op`)

Rerun (a few seconds, deterministic): /work/torchenv/bin/python scripts/augmix_reference.py
"""

import os

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file
from torchvision.transforms import InterpolationMode, autoaugment
from torchvision.transforms.autoaugment import AugMix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "augmix.safetensors")
SIZES = [23, 32]
BINS = [0, 1, 2, 5, 9]
# Ops also run on the `two` and `flat` images (their degenerate statistics).
EDGE_CASE_OPS = ["AutoContrast", "Equalize", "Contrast", "Sharpness"]


def images(side, rng):
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    smooth = np.stack([40 + 150 * x / side, 220 - 180 * y / side, 90 + 60 * np.sin((x + y) / 4)])
    smooth[:, side // 4 : side // 2, side // 3 : 2 * side // 3] = [[[250]], [[20]], [[128]]]
    smooth += rng.normal(0, 12, smooth.shape)
    two = np.where((x + 2 * y) % 5 < 2, 60, 190)[None].repeat(3, 0).astype(np.float64)
    flat = np.array([[[77]], [[140]], [[201]]], dtype=np.float64) * np.ones((3, side, side))
    to_u8 = lambda a: torch.from_numpy(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    return {"smooth": to_u8(smooth), "two": to_u8(two), "flat": to_u8(flat)}


def main():
    rng = np.random.default_rng(20260)
    tensors = {}
    aug = AugMix(severity=3, mixture_width=3, chain_depth=-1, alpha=1.0, all_ops=True, interpolation=InterpolationMode.BILINEAR)
    for side in SIZES:
        imgs = images(side, rng)
        for variant, img in imgs.items():
            tensors[f"img/S{side}/{variant}"] = img
        meta = aug._augmentation_space(aug._PARAMETER_MAX, (side, side))
        for name, (mags, signed) in meta.items():
            if mags.ndim > 0:
                tensors[f"table/{name}/S{side}"] = mags.to(torch.float32)
            for variant, img in imgs.items():
                if variant != "smooth" and name not in EDGE_CASE_OPS:
                    continue
                for b in BINS if mags.ndim > 0 else [0]:
                    for sign in ["+", "-"] if signed else ["+"]:
                        mag = float(mags[b].item()) if mags.ndim > 0 else 0.0
                        if sign == "-":
                            mag *= -1.0
                        out = autoaugment._apply_op(img, name, mag, interpolation=InterpolationMode.BILINEAR, fill=None)
                        tensors[f"op/{name}/S{side}/{variant}/b{b}{sign}"] = out.contiguous()

    # Whole AugMix forward passes, with the random draws recorded.
    names = list(aug._augmentation_space(10, (SIZES[0], SIZES[0])).keys())
    k = 0
    for side in SIZES:
        for depth in [1, 2, 3]:
            for seed in range(2):
                torch.manual_seed(1000 * side + 10 * depth + seed)
                img = images(side, rng)["smooth"]
                calls, draws = [], []
                real_apply = autoaugment._apply_op

                def record(im, op_name, magnitude, interpolation, fill):
                    calls.append((names.index(op_name), magnitude))
                    return real_apply(im, op_name, magnitude, interpolation=interpolation, fill=fill)

                mixer = AugMix(severity=3, mixture_width=3, chain_depth=depth, alpha=1.0, all_ops=True, interpolation=InterpolationMode.BILINEAR)
                real_dirichlet = mixer._sample_dirichlet
                mixer._sample_dirichlet = lambda p: draws.append(real_dirichlet(p)) or draws[-1]
                autoaugment._apply_op = record
                try:
                    out = mixer(img)
                finally:
                    autoaugment._apply_op = real_apply
                assert len(calls) == 3 * depth and len(draws) == 2
                tensors[f"mix{k}/image"] = img
                tensors[f"mix{k}/out"] = out.contiguous()
                tensors[f"mix{k}/m"] = draws[0][0].to(torch.float32).contiguous()
                tensors[f"mix{k}/w"] = draws[1][0].to(torch.float32).contiguous()
                tensors[f"mix{k}/ops"] = torch.tensor([c[0] for c in calls], dtype=torch.int32).reshape(3, depth)
                tensors[f"mix{k}/mags"] = torch.tensor([c[1] for c in calls], dtype=torch.float64).reshape(3, depth)
                k += 1
    save_file(tensors, OUT, metadata={"torch": torch.__version__, "torchvision": torchvision.__version__, "generator": "scripts/augmix_reference.py"})
    print(f"wrote {len(tensors)} tensors to {OUT}")


if __name__ == "__main__":
    main()
