#!/usr/bin/env python3
"""cuDNN (through PyTorch) on the conv shapes of `fgssl lab conv`, timed the same way, for the fgssl/cuDNN ratio.

Shapes come from the lab's JSON (`--from lab.json`: same shapes, batch, resolution) so both sides time exactly the
same convolutions. bf16, channels_last, torch.backends.cudnn.benchmark = True. Passes:
  fwd    F.conv2d(x, w, stride, padding)
  dgrad  torch.nn.grad.conv2d_input(x.shape, w, dy, stride, padding)
  wgrad  torch.nn.grad.conv2d_weight(x, w.shape, dy, stride, padding)
Method as the lab: untimed warm-up, then one CUDA event pair per launch, median / min / max; inputs rotate over enough
copies to exceed 160 MB (above the 50-60 MB L2). Prints a table and writes JSON (`--json`).
Usage: python3 scripts/conv_lab_torch.py --from lab.json --json torch.json [--iters 50]
"""
import argparse
import json
import math
import statistics

import torch
import torch.nn.functional as F

ROTATE_BYTES = 160 << 20
BUDGET_MS = 1500.0


def time_launches(fn, iters, warmup):
    fn(0)
    torch.cuda.synchronize()
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0.record()
    fn(1)
    t1.record()
    torch.cuda.synchronize()
    one = t0.elapsed_time(t1)
    runs = max(3, min(iters, int(BUDGET_MS / max(one, 1e-3))))
    for i in range(1, warmup):
        fn(i)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
    for i, (a, b) in enumerate(events):
        a.record()
        fn(i)
        b.record()
    torch.cuda.synchronize()
    ms = sorted(a.elapsed_time(b) for a, b in events)
    return statistics.median(ms), ms[0], ms[-1], len(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="src", required=True, help="JSON written by `fgssl lab conv --json`")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    lab = json.load(open(a.src))
    n = lab["batch"]
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    shapes, seen = [], set()
    for r in lab["rows"]:
        if r["shape"] not in seen:
            seen.add(r["shape"])
            shapes.append(r)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, batch {n}")
    print(f"{'shape':<44} {'step':<6} {'GFLOP':>8} {'ms':>9} {'[min, max]':>19} {'TFLOP/s':>8}")
    rows = []
    for s in shapes:
        ci, co, k, st, p, hw = s["c_in"], s["c_out"], s["k"], s["stride"], s["pad"], s["size"]
        ho = (hw + 2 * p - k) // st + 1
        gflop = 2.0 * n * co * ho * ho * ci * k * k / 1e9
        bytes_per = 2 * (n * ci * hw * hw * 2 + n * co * ho * ho * 2 + co * ci * k * k)
        copies = max(1, min(16, math.ceil(ROTATE_BYTES / bytes_per)))
        mk = lambda *shape: torch.randn(*shape, device=dev, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        xs = [mk(n, ci, hw, hw) for _ in range(copies)]
        ws = [mk(co, ci, k, k) for _ in range(copies)]
        dys = [mk(n, co, ho, ho) for _ in range(copies)]
        steps = {
            "fwd": lambda i: F.conv2d(xs[i % copies], ws[i % copies], stride=st, padding=p),
            "dgrad": lambda i: torch.nn.grad.conv2d_input(xs[i % copies].shape, ws[i % copies], dys[i % copies], stride=st, padding=p),
            "wgrad": lambda i: torch.nn.grad.conv2d_weight(xs[i % copies], ws[i % copies].shape, dys[i % copies], stride=st, padding=p),
        }
        with torch.no_grad():
            for name, fn in steps.items():
                med, lo, hi, runs = time_launches(fn, a.iters, a.warmup)
                row = dict(shape=s["shape"], step=name, gflop=gflop, ms_median=med, ms_min=lo, ms_max=hi, runs=runs, tflops=gflop / med)
                rows.append(row)
                print(f"{s['shape']:<44} {name:<6} {gflop:>8.2f} {med:>9.4f} [{lo:>8.4f}, {hi:>8.4f}] {gflop / med:>8.1f}")
        del xs, ws, dys
        torch.cuda.empty_cache()
    if a.json:
        json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__, cudnn=torch.backends.cudnn.version(), batch=n, rows=rows), open(a.json, "w"), indent=1)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
