#!/usr/bin/env python3
"""Trains He et al.'s CIFAR ResNet (option A, as akamaster/pytorch_resnet_cifar10 writes it)
in PyTorch for a few epochs and saves it as that repository's released checkpoints are:
`torch.save({"epoch", "best_prec1", "state_dict": DataParallel(net).state_dict()}, F.th)`,
every name prefixed with `module.`. This machine cannot download a released checkpoint, so
the walk-through (README.md here) trains one the same way; a downloaded one takes its place
unchanged.

Reads the CIFAR-10 binary files levelset reads (LEVELSET_DATA_DIR/cifar10), normalized by
He et al.'s constants as configs/resnet20-a.toml says, trains with pad-4 crops and flips, and
writes PyTorch's own eval()-mode test error on the held-out images to DEPTH.json, which
`levelset import` must reproduce with the file's running statistics.

    python3 train_pytorch.py OUT_DIR DEPTH EPOCHS   # needs torch; LEVELSET_DATA_DIR as levelset
"""

import gzip
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = [0.4914, 0.4822, 0.4465]
STD = [0.2470, 0.2435, 0.2616]


def records(path):
    with gzip.open(path, "rb") as f:
        data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).reshape(-1, 3073)
    images = data[:, 1:].reshape(-1, 3, 32, 32).float() / 255.0
    mean = torch.tensor(MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(STD).reshape(1, 3, 1, 1)
    return (images - mean) / std, data[:, 0].long()


class Block(nn.Module):
    def __init__(self, inputs, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - inputs) // 2 if stride != 1 or inputs != planes else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.pad is not None:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)
        return F.relu(out + shortcut)


class ResNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, inputs = [], 16
        for stage, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(Block(inputs, planes, 2 if stage > 0 and b == 0 else 1))
                inputs = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def augment(x, generator):
    padded = F.pad(x, (4, 4, 4, 4))  # zeros after normalization: the padding of
    # torchvision's RandomCrop before Normalize would be -mean/std instead; a training detail
    # that changes nothing the import is checked on.
    n = x.shape[0]
    out = torch.empty_like(x)
    tops = torch.randint(0, 9, (n,), generator=generator)
    lefts = torch.randint(0, 9, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    for i in range(n):
        crop = padded[i, :, tops[i]:tops[i] + 32, lefts[i]:lefts[i] + 32]
        out[i] = crop.flip(2) if flips[i] else crop
    return out


def main():
    out, depth, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    data = os.path.join(os.environ["LEVELSET_DATA_DIR"], "cifar10")
    train_x, train_y = records(os.path.join(data, "data_batch_1.bin.gz"))
    test_x, test_y = records(os.path.join(data, "test_batch.bin.gz"))
    torch.set_num_threads(2)
    torch.manual_seed(depth)
    generator = torch.Generator().manual_seed(depth)
    net = ResNet(depth)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    steps = epochs * (len(train_x) // 128)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 2, 3 * steps // 4], 0.1)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order) - 127, 128):
            batch = order[start:start + 128]
            opt.zero_grad()
            F.cross_entropy(net(augment(train_x[batch], generator)), train_y[batch]).backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        wrong = sum(
            (net(test_x[i:i + 500]).argmax(1) != test_y[i:i + 500]).sum().item()
            for i in range(0, len(test_x), 500)
        )
    error = wrong / len(test_x)
    params = sum(p.numel() for p in net.parameters())
    wrapped = nn.DataParallel(net).state_dict()
    path = os.path.join(out, f"resnet{depth}_a.th")
    torch.save({"epoch": epochs, "best_prec1": 100 * (1 - error), "state_dict": wrapped}, path)
    report = {"torch": torch.__version__, "depth": depth, "epochs": epochs, "params": params,
              "test_error": error, "test_wrong": wrong, "test_images": len(test_x)}
    with open(os.path.join(out, f"resnet{depth}.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
