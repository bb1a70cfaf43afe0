#!/usr/bin/env python3
"""PyTorch yardstick for `fgssl bench`: the same FG-SSL iterations (one progressive SSL iteration: 4 steps, 8
forwards, Barlow Twins; one progressive fine-tuning iteration: 4 steps, cross-entropy), timed the same way, on the
same device, in three flavours:

    reference  how the reference code runs: eager, NCHW, AMP, views made on the CPU by torchvision/PIL transforms in
               DataLoader worker processes (METHOD.md §5 SSL views; §8 ISIC fine-tuning views without AugMix, which
               fgssl lacks too), every forward running the whole model and all heads (bn_stats "reference").
    eager_cl   eager, channels_last, AMP, the u8 batch uploaded from host memory and the views made on the device
               (scripts/fgssl_reference.py's ssl_views / ft_view), truncated steps (bn_stats "minimal", fgssl's
               default): the same work as fgssl bench.
    compile    eager_cl with the model's forward compiled by torch.compile (default mode); its compile time is the
               warm-up, reported as compile_s.

The model, jigsaw, losses and iterations are scripts/fgssl_reference.py's (PyTorch default initialisation; the
weights do not change the time). Timing: `--warmup` untimed iterations, then `--iters` timed ones, each from taking
the batch to the end of the optimizer step with the device synchronised (the iteration reads its losses back, as
fgssl does); median, min, p10, p90, max (nearest rank), images/s = batch / median.
AMP: `--precision` names it as `fgssl bench --precision` does: fp32 = no autocast, bf16 = bf16 autocast (on the
CPU too), so that scripts/bench-compare.sh runs both sides in the same precision. (Autocast also runs the linear
layers in bf16, fgssl only the convolutions: they carry almost all of the FLOPs.) Without it, `--amp auto` is bf16
autocast on CUDA and off (fp32) on the CPU; `--amp bf16` forces CPU autocast too. The losses run in fp32 under
autocast.

    python scripts/bench_torch.py --device cuda --arch resnet50 --size 224 --batch 128 --grids 16,8,4 --json t.json
    /work/torchenv/bin/python scripts/bench_torch.py --device cpu --arch resnet18 --size 64 --batch 16
Prints one line per flavour and iteration kind; --json writes everything (atomically).
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgssl_reference as ref  # noqa: E402

FLAVOURS = ("reference", "eager_cl", "compile")


# ---- CPU-side views (reference flavour) ------------------------------------------------------------------------


class SyntheticViews(torch.utils.data.Dataset):
    """Random u8 images of `side` pixels, turned into views by PIL/torchvision transforms in the worker processes,
    as the reference's ImageFolder + transforms pipeline does (the decode is not timed: fgssl reads a u8 cache)."""

    def __init__(self, n, side, kind, size, seed):
        self.images = np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        self.kind = kind
        from torchvision import transforms as T
        from PIL import ImageFilter

        class Blur:
            """PIL GaussianBlur with radius ~ U[0.1, 2.0] applied with probability p (the reference's)."""

            def __init__(self, p):
                self.p = p

            def __call__(self, img):
                return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0))) if random.random() < self.p else img

        norm = [T.ToTensor(), T.Normalize(ref.MEAN, ref.STD)]
        resize = T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR)
        if kind == "ssl":
            self.t1 = T.Compose([resize, T.RandomHorizontalFlip(), T.RandomGrayscale(0.2), Blur(1.0)] + norm)
            self.t2 = T.Compose([resize, T.RandomGrayscale(0.2), Blur(0.1), T.RandomSolarize(128, p=0.2)] + norm)
        else:
            self.t1 = T.Compose([T.RandomHorizontalFlip(), T.RandomVerticalFlip(), T.Resize((side, side)),
                                 T.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))] + norm)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image
        img = Image.fromarray(self.images[i])
        if self.kind == "ssl":
            return self.t1(img), self.t2(img)
        return self.t1(img), i % 7


def cpu_loader(args, kind, side, n_batches):
    ds = SyntheticViews(args.batch * n_batches, side, kind, args.size, seed=1 if kind == "ssl" else 2)
    workers = args.workers
    return torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=workers,
                                       pin_memory=args.device == "cuda", persistent_workers=workers > 0,
                                       prefetch_factor=2 if workers > 0 else None)


# ---- one flavour ----------------------------------------------------------------------------------------------


def summary(values):
    v = sorted(values)
    n = len(v)
    rank = lambda q: v[min(n - 1, int(round(q * (n - 1))))]  # noqa: E731
    median = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return {"median": median, "min": v[0], "p10": rank(0.1), "p90": rank(0.9), "max": v[-1], "mean": sum(v) / n}


def run_flavour(args, flavour, kinds):
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = ref.FGSSLNet(args.arch, args.feat, args.pooled, args.classes).to(dev)
    channels_last = flavour != "reference"
    mode = "reference" if flavour == "reference" else "minimal"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if flavour == "compile":
        model.run = torch.compile(model.run)  # one graph per plan (4 per iteration kind), compiled in the warm-up
    amp = {"bf16": torch.bfloat16, "none": None}[args.amp]
    grids = args.grids
    n = args.batch
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    labels = torch.randint(0, args.classes, (n,), device=dev)
    resize = args.size * 256 // 224
    host_u8 = {"ssl": torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8),
               "finetune": torch.randint(0, 256, (n, 3, resize, resize), dtype=torch.uint8)}
    if dev.type == "cuda":
        host_u8 = {k: v.pin_memory() for k, v in host_u8.items()}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def perms():
        return {g: torch.argsort(torch.rand(n, g * g, device=dev, generator=gen), dim=1) for g in grids}

    def layout(x):
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    out = {"flavour": flavour, "bn_stats": mode, "layout": "channels_last" if channels_last else "nchw",
           "augment": "cpu (DataLoader workers)" if flavour == "reference" else "device", "amp": args.amp}
    total_iters = args.warmup + args.iters
    for kind in kinds:
        opt = ref.make_optimizer(model, argparse.Namespace(lr_heads=0.002, lr_backbone=0.0002))
        batches = iter(cpu_loader(args, kind, args.size if kind == "ssl" else resize, total_iters)) if flavour == "reference" else None

        def once():
            if batches is not None:  # views made by the workers; upload them
                if kind == "ssl":
                    v1, v2 = next(batches)
                    v1, v2 = v1.to(dev, non_blocking=True), v2.to(dev, non_blocking=True)
                else:
                    x, _ = next(batches)
                    x = x.to(dev, non_blocking=True)
            else:  # the u8 batch from host memory, views on the device
                u8 = host_u8[kind].to(dev, non_blocking=True)
                if kind == "ssl":
                    v1, v2 = ref.ssl_views(u8, args.size, gen)
                else:
                    x = ref.ft_view(u8, args.size, gen)
            with torch.autocast(dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                if kind == "ssl":
                    return ref.ssl_iteration(model, opt, layout(v1), layout(v2), perms(), grids, mode, 5e-3)["loss"]
                return ref.ft_iteration(model, opt, layout(x), labels, perms(), grids, mode)["loss"]

        t0 = time.perf_counter()
        for _ in range(args.warmup):
            once()
        sync()
        warm_s = time.perf_counter() - t0
        times, cpu, losses = [], [], None
        for _ in range(args.iters):
            t0, c0 = time.perf_counter(), time.process_time()
            losses = once()
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        ms = summary(times)
        # process_time: CPU time of this process's threads (not of DataLoader worker processes).
        rec = {"ms": ms, "cpu_ms": summary(cpu), "images_per_s": n / (ms["median"] / 1e3), "warmup_s": warm_s, "last_losses": losses}
        if flavour == "compile":
            rec["compile_s"] = warm_s
        out[kind] = rec
        print(f"{flavour:9s} {kind:8s}: median {ms['median']:.2f} ms/iteration (min {ms['min']:.2f}, p10 {ms['p10']:.2f}, "
              f"p90 {ms['p90']:.2f}, max {ms['max']:.2f}), {rec['images_per_s']:.1f} images/s; warm-up {warm_s:.1f} s", flush=True)
        del batches
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="resnet18", choices=sorted(ref.STAGE_CHANNELS))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--grids", default="8,4,2", help="finest first")
    p.add_argument("--feat", type=int, default=512, help="F")
    p.add_argument("--pooled", type=int, default=None, help="P (default: 1024 for resnet50, C5/2 otherwise)")
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--what", default="both", choices=("ssl", "finetune", "both"))
    p.add_argument("--flavours", default=",".join(FLAVOURS))
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=4)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "none"))
    p.add_argument("--precision", default=None, choices=("fp32", "bf16"), help="fgssl's name for the AMP: fp32 = --amp none, bf16 = --amp bf16")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers of the reference flavour (default min(8, cores))")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    a.grids = [int(g) for g in a.grids.split(",")]
    if len(a.grids) != 3 or any(a.size % g for g in a.grids):
        p.error(f"--grids {a.grids}: three grids that divide --size {a.size}")
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.precision is not None:
        amp = {"fp32": "none", "bf16": "bf16"}[a.precision]
        if a.amp not in ("auto", amp):
            p.error(f"--precision {a.precision} means --amp {amp}, not --amp {a.amp}")
        a.amp = amp
    if a.amp == "auto":
        a.amp = "bf16" if a.device == "cuda" else "none"
    if a.pooled is None:
        a.pooled = 1024 if a.arch == "resnet50" else ref.STAGE_CHANNELS[a.arch][2] // 2
    if a.workers is None:
        a.workers = min(8, os.cpu_count() or 1)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.benchmark = True
    flavours = [f for f in a.flavours.split(",") if f]
    bad = [f for f in flavours if f not in FLAVOURS]
    if bad:
        p.error(f"unknown flavours {bad}; expected some of {FLAVOURS}")
    kinds = ["ssl", "finetune"] if a.what == "both" else [a.what]
    device_name = torch.cuda.get_device_name() if a.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"# torch {torch.__version__} on {device_name}; {a.arch} {a.size}x{a.size} batch {a.batch} grids {a.grids} F {a.feat} "
          f"P {a.pooled} K {a.classes}; amp {a.amp}; {a.warmup} warm-up + {a.iters} timed iterations; {a.workers} workers", flush=True)
    result = {"tool": "bench_torch.py", "torch": torch.__version__, "device": device_name, "backend": a.device,
              "threads": torch.get_num_threads(), "workers": a.workers, "unix_time": int(time.time()),
              "config": {"arch": a.arch, "size": a.size, "batch": a.batch, "grids": ",".join(map(str, a.grids)), "embed_dim": a.feat,
                         "pooled_dim": a.pooled, "classes": a.classes, "amp": a.amp,
                         "precision": "bf16" if a.amp == "bf16" else "fp32", "warmup": a.warmup, "iters": a.iters},
              "flavours": []}
    for f in flavours:
        try:
            result["flavours"].append(run_flavour(a, f, kinds))
        except Exception as ex:  # one flavour failing (e.g. torch.compile without a compiler) must not hide the others
            print(f"{f:9s}: failed: {type(ex).__name__}: {str(ex)[:400]}", flush=True)
            result["flavours"].append({"flavour": f, "error": f"{type(ex).__name__}: {str(ex)[:2000]}"})
        if a.device == "cuda":
            torch.cuda.empty_cache()
        if a.json:  # after every flavour, so that a run stopped by a time limit keeps what it measured
            tmp = a.json + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(result, fh, indent=1)
            os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
