#!/usr/bin/env python3
"""Trains two small MNIST convnets in PyTorch, from seeds 1 and 2, and saves each state_dict
with torch.save, for the walk-through in docs/src/guide/own-networks.md and
experiments/pytorch-mnist/README.md: levelset imports both (configs/pytorch-mnist.toml
describes the same network layer by layer) and connects them.

Reads the MNIST IDX files levelset reads (LEVELSET_DATA_DIR/mnist), with levelset's input
pipeline (pixels / 255, no normalization), and prints each net's test error on the held-out
images, which `levelset import` must reproduce.

    python3 train_pytorch.py OUT_DIR   # needs torch; LEVELSET_DATA_DIR as for levelset
"""

import gzip
import json
import os
import struct
import sys

import torch
from torch import nn


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).reshape(count, 1, rows, cols)
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()


def net():
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.environ["LEVELSET_DATA_DIR"], "mnist")
    train_x = idx(os.path.join(data, "train-images-idx3-ubyte.gz")).float() / 255.0
    train_y = idx(os.path.join(data, "train-labels-idx1-ubyte.gz"))
    test_x = idx(os.path.join(data, "t10k-images-idx3-ubyte.gz")).float() / 255.0
    test_y = idx(os.path.join(data, "t10k-labels-idx1-ubyte.gz"))
    torch.set_num_threads(2)
    report = {"torch": torch.__version__}
    for name, seed in [("a", 1), ("b", 2)]:
        torch.manual_seed(seed)
        model = net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(3):
            order = torch.randperm(len(train_x))
            for start in range(0, len(order), 100):
                batch = order[start:start + 100]
                loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(test_x)
            error = (logits.argmax(1) != test_y).float().mean().item()
            test_loss = nn.functional.cross_entropy(logits, test_y).item()
        torch.save(model.state_dict(), os.path.join(out, f"{name}.pt"))
        report[name] = {"seed": seed, "test_error": error, "test_loss": test_loss}
        print(f"{name}: seed {seed}, test error {error:.4f}, test loss {test_loss:.4f}")
    with open(os.path.join(out, "pytorch.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
