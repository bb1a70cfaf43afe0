#!/usr/bin/env python3
"""Round trip of `fgssl pretrain`'s export through PyTorch, the way a user would check it (ANCHORS.md §2.3).

Pretrains a small FG-SSL model on the synthetic data set (or takes an existing run folder with --run), then:
1. `m = torchvision.models.<arch>(); m.load_state_dict(load_file(RUN/export/backbone.safetensors), strict=False)`
   must report missing_keys == ['fc.weight', 'fc.bias'] and no unexpected keys, every tensor F32 except the I64
   `num_batches_tracked` scalars;
2. torchvision's pooled features (eval mode, fc = Identity) of every image must match
   `fgssl embed --weights RUN/export/backbone.safetensors` (max error relative to the largest feature printed).

    python3 scripts/check_export_torchvision.py [--bin target/release/fgssl] [--arch resnet50] [--run RUN_DIR]

Needs torch, torchvision, safetensors, numpy, Pillow. Exits non-zero when a check fails.
"""
import argparse, csv, os, subprocess, sys, tempfile

import numpy as np
import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_embed_torchvision import reference  # noqa: E402  (the same PIL preprocessing as `fgssl embed`)


def sh(*args):
    subprocess.run([str(a) for a in args], check=True, stdout=subprocess.DEVNULL)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/release/fgssl")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--run", help="an existing pretraining run folder (default: pretrain one here)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "synth")
        sh(a.bin, "synth", "--out", data, "--classes", "2", "--per-class", "6", "--size", a.size)
        run = a.run
        if run is None:
            run = os.path.join(tmp, "run")
            sh(a.bin, "pretrain", "--data", data, "--arch", a.arch, "--embed-dim", "16", "--pooled-dim", "24", "--size", a.size,
               "--grids", "8,4,2", "--epochs", "1", "--batch-size", "4", "--lr", "0.01", "--device", "cpu", "--out", run)
        backbone = os.path.join(run, "export", "backbone.safetensors")

        with safe_open(backbone, "pt") as f:
            dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
        bad = {k: d for k, d in dtypes.items() if d != ("I64" if k.endswith("num_batches_tracked") else "F32")}
        model = getattr(torchvision.models, a.arch)()
        result = model.load_state_dict(load_file(backbone), strict=False)
        print(f"{a.arch}: {len(dtypes)} tensors; load_state_dict(strict=False): {result}")
        ok = sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys and not bad
        if bad:
            print(f"wrong dtypes: {bad}")

        model.fc = torch.nn.Identity()
        model.eval()
        feats = os.path.join(tmp, "feats.csv")
        sh(a.bin, "embed", "--arch", a.arch, "--weights", backbone, "--data", data, "--size", a.size, "--device", "cpu", "--out", feats)
        worst, rows = 0.0, 0
        with open(feats) as f:
            for row in csv.DictReader(f):
                ours = np.array([float(row[f"f{i}"]) for i in range(len(row) - 1)], dtype=np.float32)
                ref = reference(model, os.path.join(data, row["path"]), a.size)
                worst = max(worst, float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-12)))
                rows += 1
        print(f"features of {rows} images: max |fgssl embed - torchvision| / max |torchvision| = {worst:.2e}")
        ok = ok and rows > 0 and worst < 1e-4
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
