#!/usr/bin/env python3
"""End-to-end check of `fgssl embed` against torchvision, the way a user would run it.

For resnet18 and resnet50: builds a torchvision model with random weights and random BN running statistics,
saves it with `safetensors.torch.save_file(model.state_dict(), path)`, writes PNG and JPEG images (at the model
input size, and some at other sizes so the resize path runs), runs `fgssl embed`, and compares every row with
torchvision's pooled features (eval mode, fc = Identity) on the same files loaded with PIL:
`Image.open(p).convert('RGB')` -> `Resize((size, size))` (only when the size differs) -> ToTensor -> Normalize.
Prints the max error relative to the largest feature, per architecture and image kind.

    python3 scripts/check_embed_torchvision.py [--bin target/release/fgssl] [--size 224]

Needs torch, torchvision, safetensors, numpy, Pillow.
"""
import argparse, csv, os, subprocess, sys, tempfile

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms


def make_images(folder, size, rng):
    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(4):
        f = rng.uniform(1, 6, 3)
        img = np.stack([np.sin(2 * np.pi * (f[c] * xx + (c + 1) * yy) + i) for c in range(3)], -1)
        img = ((img * 0.5 + 0.5) * 255 + rng.normal(0, 12, img.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f"img{i}.png"))
        Image.fromarray(img).save(os.path.join(folder, f"img{i}.jpg"), quality=90)
    big = rng.integers(0, 256, (size + 37, size + 11, 3), dtype=np.uint8)
    Image.fromarray(big).save(os.path.join(folder, "resize_down.png"))
    small = rng.integers(0, 256, (size // 2 + 3, size // 3 + 1, 3), dtype=np.uint8)
    Image.fromarray(small).save(os.path.join(folder, "resize_up.png"))


def reference(model, path, size):
    img = Image.open(path).convert("RGB")
    ops = [] if img.size == (size, size) else [transforms.Resize((size, size))]
    t = transforms.Compose(ops + [transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with torch.no_grad():
        return model(t(img).unsqueeze(0))[0].numpy()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/release/fgssl")
    p.add_argument("--size", type=int, default=224)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "images")
        make_images(data, a.size, rng)
        for arch in ["resnet18", "resnet50"]:
            model = getattr(torchvision.models, arch)()
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.data.uniform_(0.5, 1.5)
                    m.bias.data.uniform_(-0.2, 0.2)
            weights = os.path.join(tmp, f"{arch}.safetensors")
            save_file(model.state_dict(), weights)
            model.fc = torch.nn.Identity()
            model.eval()
            out = os.path.join(tmp, f"{arch}.csv")
            subprocess.run([a.bin, "embed", "--arch", arch, "--weights", weights, "--data", data, "--out", out,
                            "--size", str(a.size)], check=True)
            with open(out) as f:
                rows = list(csv.reader(f))[1:]
            errs = {}
            for row in rows:
                got = np.array([float(v) for v in row[1:]], dtype=np.float64)
                want = reference(model, os.path.join(data, row[0]), a.size).astype(np.float64)
                rel = np.abs(got - want).max() / np.abs(want).max()
                kind = "resized" if row[0].startswith("resize") else os.path.splitext(row[0])[1]
                errs[kind] = max(errs.get(kind, 0.0), rel)
            for kind, e in sorted(errs.items()):
                print(f"{arch} {kind}: max relative error {e:.2e}")
                worst = max(worst, e)
    print(f"worst {worst:.2e}")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
