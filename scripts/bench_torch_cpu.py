#!/usr/bin/env python3
"""PyTorch CPU yardstick for `cargo bench --bench cpu_ops`: the same conv2d shapes (forward; backward = input and
weight gradients) and the same ResNet-18 training step (64x64, batch 32, 10 classes, cross-entropy, SGD momentum
0.9, weight decay 5e-4), fp32, on the same number of threads. Prints one line per benchmark: median ms.

    python3 scripts/bench_torch_cpu.py [--threads N]       (default: all cores, like rayon)

Needs torch and torchvision (CPU use is enough). scripts/bench-cpu.sh runs this and the criterion bench together.
"""
import argparse, os, statistics, time

import torch
import torch.nn.functional as F
import torchvision

CONV_SHAPES = [  # (name, batch, c_in, size, c_out, kernel, stride): same table as benches/cpu_ops.rs
    ("stem7x7", 8, 3, 224, 64, 7, 2),
    ("layer1.3x3", 8, 64, 56, 64, 3, 1),
    ("layer2.3x3s2", 8, 128, 56, 128, 3, 2),
    ("layer3.1x1", 8, 256, 14, 1024, 1, 1),
    ("layer4.3x3", 8, 512, 7, 512, 3, 1),
]


def median_ms(fn, warmup=2, iters=10):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, n, ci, size, co, k, s in CONV_SHAPES:
        x = torch.randn(n, ci, size, size)
        w = torch.randn(co, ci, k, k) * 0.1
        y = F.conv2d(x, w, stride=s, padding=k // 2)
        dy = torch.randn_like(y)
        fwd = median_ms(lambda: F.conv2d(x, w, stride=s, padding=k // 2))

        def bwd():
            torch.nn.grad.conv2d_input(x.shape, w, dy, stride=s, padding=k // 2)
            torch.nn.grad.conv2d_weight(x, w.shape, dy, stride=s, padding=k // 2)

        print(f"conv2d/fwd/{name}: {fwd:.2f} ms")
        print(f"conv2d/bwd/{name}: {median_ms(bwd):.2f} ms")

    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(32, 3, 64, 64) * 4 - 2
    labels = torch.arange(32) % 10

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
        opt.step()

    print(f"resnet18/train_step/64x64/b32: {median_ms(step):.2f} ms")


if __name__ == "__main__":
    main()
