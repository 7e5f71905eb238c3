#!/usr/bin/env python3
"""Side-by-side reference: the same CIFAR ResNet training step in PyTorch.

The project never needs this script; it exists so that `cargo xtask bench`
can be compared with PyTorch on the same machine:

    python3 scripts/pytorch_bench.py --depth 110 --batch-size 128 --steps 9

The model matches the project's: 6n+2 layers, 16/32/64 filters, 3x3
convolutions with biases, batch norm, shortcut A (2x2 average pooling and zero
channel padding), and the paper's SGD (Nesterov momentum 0.9, dampening 0,
weight decay 1e-4). It prints the median time of a forward and backward pass with every block running
and with the paper's linear-decay gates (closed blocks skipped entirely).
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def shortcut(self, x):
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride)
        if self.pad > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def forward(self, x, open_gate):
        s = self.shortcut(x)
        if not open_gate:
            return F.relu(s)
        return F.relu(s + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for width, stride in [(16, 1), (32, 2), (64, 2)]:
            for i in range(n):
                blocks.append(Block(cin, width, stride if i == 0 else 1))
                cin = width
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x, gates):
        x = F.relu(self.bn1(self.conv1(x)))
        for block, g in zip(self.blocks, gates):
            x = block(x, g)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--depth", type=int, default=110)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = ResNet(a.depth)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0,
                          weight_decay=1e-4, nesterov=True)
    x = torch.randn(a.batch_size, 3, 32, 32)
    y = torch.arange(a.batch_size) % 10
    blocks = len(model.blocks)
    survival = [1 - (l + 1) / blocks * 0.5 for l in range(blocks)]
    gen = torch.Generator().manual_seed(2016)

    def step(gates):
        # Forward and backward only, as `cargo xtask bench` times them; the
        # optimizer's update runs untimed.
        opt.zero_grad(set_to_none=False)
        start = time.perf_counter()
        F.cross_entropy(model(x, gates), y).backward()
        seconds = time.perf_counter() - start
        opt.step()
        return seconds

    print(f"PyTorch {torch.__version__}, ResNet-{a.depth}, batch {a.batch_size}, "
          f"{a.threads} threads, medians of {a.steps} steps after {a.warmup} warm-up")
    for name, draw in [
        ("all blocks", lambda: [True] * blocks),
        ("paper's schedule", lambda: [bool(torch.rand(1, generator=gen) < p) for p in survival]),
    ]:
        times = [step(draw()) for _ in range(a.warmup + a.steps)][a.warmup:]
        print(f"{name}: {statistics.median(times):.3f} s/step")
    model.eval()
    with torch.no_grad():
        times = []
        for _ in range(a.warmup + a.steps):
            start = time.perf_counter()
            model(x, [True] * blocks)
            times.append(time.perf_counter() - start)
    print(f"inference: {a.batch_size / statistics.median(times[a.warmup:]):.0f} images/s")


if __name__ == "__main__":
    main()
