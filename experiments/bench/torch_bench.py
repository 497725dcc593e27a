#!/usr/bin/env python3
"""PyTorch mirror of levelset's benchmark: the same four models, batch shapes, losses and
optimizers as the Rust/Burn crates (crates/models/src/nets, crates/models/src/tasks), timed on
synthetic data, written in the JSON schema the Rust side uses so compare.py can pair the rows.

    python3 experiments/bench/torch_bench.py --threads 2 --out torch.json [--models poly,mnist]
        [--repeats 5] [--quick] [--device cpu|cuda]

With --device cuda the models and data live on the GPU; "backend" reads "cuda" and
"machine" gains "gpu". --threads still sets the host's CPU threads.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

# torch warns at import when numpy is absent; nothing here needs numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.utils import parameters_to_vector, vector_to_parameters  # noqa: E402

MODELS = ["poly", "mnist", "cifar10", "ptb"]
# Not among the defaults, as in `levelset bench`: minutes a repeat on a 2-core CPU.
EXTRA = ["resnet20"]
BUSY = 0.10  # other processes' share of the machine above which a repeat is redone
GRID = 20  # segment check points t = k/GRID, k = 1..GRID-1 (the configs' dss.grid)
DEVICE = torch.device("cpu")  # set once by main() from --device


def sync():
    """Wait for queued CUDA kernels, so a clock read counts them; a no-op on CPU."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- busy-machine guard


def cpu_snapshot():
    """(busy jiffies of the whole machine, total jiffies, this process's jiffies)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]  # guest time is inside user
    total = sum(fields)
    busy = total - fields[3] - fields[4]  # minus idle and iowait
    with open("/proc/self/stat") as f:
        # comm (field 2) may hold spaces; fields after ')' start at field 3.
        rest = f.read().rsplit(")", 1)[1].split()
    own = int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15): all threads
    return busy, total, own


def timed_block(fn, k):
    """Seconds per call of fn over k calls, and the other processes' share of the machine."""
    sync()  # earlier work (warm-up, the last block) must not leak into this block
    b0, t0, s0 = cpu_snapshot()
    start = time.perf_counter()
    for _ in range(k):
        fn()
    sync()  # CUDA calls return before their kernels finish
    per_call = (time.perf_counter() - start) / k
    b1, t1, s1 = cpu_snapshot()
    # The two counters tick separately, so a quiet machine can read slightly negative.
    other = ((b1 - b0) - (s1 - s0)) / (t1 - t0) if t1 > t0 else 0.0
    return per_call, max(0.0, other)


def measure(fn, warmup, repeats, k, retries):
    """Per-call seconds of each repeat, the max other-CPU share and whether one stayed busy."""
    for _ in range(warmup):
        fn()
    times, shares, flagged = [], [], False
    for _ in range(repeats):
        for _ in range(retries + 1):
            per_call, other = timed_block(fn, k)
            if other <= BUSY:
                break
        else:
            flagged = True  # kept the last busy try
        times.append(per_call)
        shares.append(other)
    return times, max(shares), flagged


def row(model, workload, unit, times, share, flagged, convert):
    samples = [convert(t) for t in times]
    return {
        "model": model,
        "workload": workload,
        "unit": unit,
        # Throughput from the median time; it equals the median sample for odd repeats.
        "median": convert(statistics.median(times)),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
        "other_cpu_share": share,
        "flagged": flagged,
    }


# ---------------------------------------------------------------- models and workloads


class CifarConv(nn.Module):
    """crates/models/src/nets/cifar_cnn.rs (the TF CIFAR-10 tutorial net)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 5, padding=2)
        self.conv2 = nn.Conv2d(64, 64, 5, padding=2)
        self.fc1 = nn.Linear(6 * 6 * 64, 384)
        self.fc2 = nn.Linear(384, 192)
        self.fc3 = nn.Linear(192, 10)
        # tf.nn.lrn(depth_radius=4, bias=1, alpha=0.001/9, beta=0.75); torch divides alpha by size.
        self.lrn = nn.LocalResponseNorm(size=9, alpha=0.001, beta=0.75, k=1.0)

    @staticmethod
    def pool(x):
        # TF SAME pooling (Burn: Explicit(0, 0, 1, 1)) pads one row/column at bottom/right only.
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)

    def forward(self, x):
        x = self.lrn(self.pool(F.relu(self.conv1(x))))  # [b, 64, 12, 12]
        x = self.pool(self.lrn(F.relu(self.conv2(x))))  # [b, 64, 6, 6]
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def penalty(self):
        return 0.004 * (self.fc1.weight.pow(2).sum() / 2 + self.fc2.weight.pow(2).sum() / 2)


class LstmLm(nn.Module):
    """crates/models/src/nets/lstm_lm.rs (Zaremba et al.'s small config, no dropout)."""

    def __init__(self, vocab=10000, width=200, layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, num_layers=layers, batch_first=True)
        self.output = nn.Linear(width, vocab)

    def forward(self, tokens, state=None):
        y, state = self.lstm(self.embedding(tokens), state)
        return self.output(y), state


class BasicBlock(nn.Module):
    """He et al.'s basic block with a projection shortcut (option B), as configs/resnet20-quick.toml."""

    def __init__(self, inputs, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class Resnet20(nn.Module):
    """crates/models/src/nets/resnet.rs at depth 20, width 1, shortcut B."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, inputs = [], 16
        for stage in range(3):
            planes = 16 << stage
            for block in range(3):
                blocks.append(BasicBlock(inputs, planes, 2 if stage > 0 and block == 0 else 1))
                inputs = planes
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def update_bn(model, batches):
    """The statistics pass of `[bn] stats = "recompute"` (torch.optim.swa_utils.update_bn):
    running statistics reset, then their cumulative average over the batches in train mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    for x in batches:
        model(x)
    model.train(was_training)


def image_error(model, images, labels, batch=500):
    """Test error as crates/models/src/tasks/images.rs: EVAL_BATCH 500, one read-back."""
    wrong = sum((model(x).argmax(1) != y).sum() for x, y in zip(images.split(batch), labels.split(batch)))
    return wrong.item() / len(labels)


def build(name):
    """Model, train step, energy and their example counts for one model."""
    g = torch.Generator().manual_seed(0)
    if name == "poly":
        # MlpConfig::quadratic(): 1-4-4-1, sigmoid on every layer incl. the output.
        model = nn.Sequential(
            nn.Linear(1, 4), nn.Sigmoid(), nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid()
        ).to(DEVICE)  # before the optimizer takes its parameters
        opt = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-8)
        x, xt = torch.rand(2000, 1, generator=g).to(DEVICE), torch.rand(2000, 1, generator=g).to(DEVICE)
        target = lambda v: 0.5 * v**2 + 0.25 * v + 0.1  # noqa: E731
        y, yt = target(x), target(xt)

        def loss():
            return (model(x) - y).abs().mean()

        def energy():
            return (model(xt) - yt).abs().mean().item()

        return model, opt, loss, energy, 2000, 2000, "examples/s"

    if name == "mnist":
        model = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(1024, 10),
        ).to(DEVICE)  # fmt: skip
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-8)
        x, y = torch.randn(100, 1, 28, 28, generator=g), torch.randint(0, 10, (100,), generator=g)
        xt, yt = torch.randn(1000, 1, 28, 28, generator=g), torch.randint(0, 10, (1000,), generator=g)
        x, y, xt, yt = (v.to(DEVICE) for v in (x, y, xt, yt))
        return (model, opt, lambda: F.cross_entropy(model(x), y),
                lambda: image_error(model, xt, yt), 100, 1000, "examples/s")  # fmt: skip

    if name == "cifar10":
        model = CifarConv().to(DEVICE)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(128, 3, 24, 24, generator=g), torch.randint(0, 10, (128,), generator=g)
        xt, yt = torch.randn(1000, 3, 24, 24, generator=g), torch.randint(0, 10, (1000,), generator=g)
        x, y, xt, yt = (v.to(DEVICE) for v in (x, y, xt, yt))
        return (model, opt, lambda: F.cross_entropy(model(x), y) + model.penalty(),
                lambda: image_error(model, xt, yt), 128, 1000, "examples/s")  # fmt: skip

    if name == "ptb":
        model = LstmLm().to(DEVICE)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        batch, steps, vocab = 20, 20, 10000
        train = torch.randint(0, vocab, (batch, steps + 1), generator=g).to(DEVICE)
        # language.rs: batchify 20000 held-out tokens into 20 streams of 1000, then
        # num_windows = (1000 - 1) // 20 = 49 consecutive windows; the last 19 tokens go unused.
        streams = torch.randint(0, vocab, (20000,), generator=g).view(batch, -1).to(DEVICE)
        windows = (streams.size(1) - 1) // steps
        eval_windows = [
            (streams[:, k * steps : (k + 1) * steps], streams[:, k * steps + 1 : (k + 1) * steps + 1])
            for k in range(windows)
        ]
        carry = [None]  # the truncated-BPTT state between training steps

        def window_loss(inp, tgt, state):
            logits, state = model(inp, state)
            return F.cross_entropy(logits.reshape(-1, vocab), tgt.reshape(-1)), state

        def loss():
            value, state = window_loss(train[:, :-1], train[:, 1:], carry[0])
            carry[0] = tuple(s.detach() for s in state)
            return value

        def energy():
            state, total = None, 0.0
            for inp, tgt in eval_windows:
                value, state = window_loss(inp, tgt, state)
                total = total + value
            return (total / len(eval_windows)).exp().item()  # perplexity, one read-back

        return model, opt, loss, energy, batch * steps, windows * batch * steps, "tokens/s"

    if name == "resnet20":
        # configs/resnet20-quick.toml: batch 128, SGD momentum 0.9, weight decay 1e-4; the
        # energy recomputes the statistics over 5 training batches ([bn] batches = 5) and then
        # evaluates 500 test images.
        model = Resnet20().to(DEVICE)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        x, y = torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)
        stats = [torch.randn(128, 3, 32, 32, generator=g) for _ in range(5)]
        xt, yt = torch.randn(500, 3, 32, 32, generator=g), torch.randint(0, 10, (500,), generator=g)
        x, y, xt, yt = (v.to(DEVICE) for v in (x, y, xt, yt))
        stats = [v.to(DEVICE) for v in stats]

        def energy():
            update_bn(model, stats)
            model.eval()
            return image_error(model, xt, yt)

        return (model, opt, lambda: F.cross_entropy(model(x), y), energy, 128, 500,
                "examples/s")  # fmt: skip

    raise ValueError(f"unknown model {name!r} (choose from {', '.join(MODELS + EXTRA)})")


# Forward multiply-adds per MNIST example: conv1 28*28*32*(5*5*1) + conv2 14*14*64*(5*5*32)
# + fc1 3136*1024 + fc2 1024*10 = 13,883,904. FLOPs per training example = 2 * MACs (forward)
# + 2 * that (backward) = 6 * MACs; bias, activations, pooling, dropout, loss and Adam ignored.
MNIST_FORWARD_FLOPS = 2 * (28 * 28 * 32 * 25 + 14 * 14 * 64 * 800 + 3136 * 1024 + 1024 * 10)
MNIST_TRAIN_FLOPS = 3 * MNIST_FORWARD_FLOPS * 100

# (warm-up calls, calls per timed block) for train_step and eval, sized to blocks of ~0.2 s+.
SCHEDULE = {
    "poly": {"train": (50, 200), "eval": (20, 100)},
    "mnist": {"train": (3, 5), "eval": (1, 1)},
    "cifar10": {"train": (2, 3), "eval": (1, 1)},
    "ptb": {"train": (3, 5), "eval": (1, 1)},
    "resnet20": {"train": (2, 3), "eval": (1, 1)},
}


def bench_model(name, repeats, retries, quick):
    model, opt, loss, energy, n_train, n_eval, unit = build(name)
    params = list(model.parameters())
    sched = {k: (1, 1) if quick else v for k, v in SCHEDULE[name].items()}
    if name == "poly" and quick:
        sched = {"train": (5, 20), "eval": (2, 10)}

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss().backward()
        if name == "ptb":
            nn.utils.clip_grad_norm_(params, 5.0)  # TF clip_by_global_norm, as optim.rs
        opt.step()

    def evaluate():
        with torch.no_grad():
            return energy()

    rows = []
    model.train()
    times, share, flagged = measure(train_step, sched["train"][0], repeats, sched["train"][1], retries)
    rows.append(row(name, "train_step", unit, times, share, flagged, lambda t: n_train / t))
    if name == "mnist":
        rows.append(row(name, "train_gflops", "GFLOP/s", times, share, flagged,
                        lambda t: MNIST_TRAIN_FLOPS / 1e9 / t))  # fmt: skip

    model.eval()
    times, share, flagged = measure(evaluate, sched["eval"][0], repeats, sched["eval"][1], retries)
    rows.append(row(name, "eval", unit, times, share, flagged, lambda t: n_eval / t))
    if name == "mnist":
        rows.append(row(name, "eval_gflops", "GFLOP/s", times, share, flagged,
                        lambda t: MNIST_FORWARD_FLOPS * n_eval / 1e9 / t))  # fmt: skip

    # A segment check of string sampling: the energy at every interior grid point of the
    # straight segment between two parameter vectors, loaded into one model.
    with torch.no_grad():
        a = parameters_to_vector(params).clone()
        b = a + 0.01 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)

    def segment_check():
        with torch.no_grad():
            for k in range(1, GRID):
                t = k / GRID
                vector_to_parameters((1 - t) * a + t * b, params)
                energy()

    # The eval workload has warmed this model up already; the warm-up check only settles caches.
    times, share, flagged = measure(segment_check, 0 if quick else 1, repeats, 1, retries)
    rows.append(row(name, "segment_check_pointwise", "s", times, share, flagged, lambda t: t))
    return rows


def bench_matmul(repeats, retries, quick):
    n = 2048
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, n, generator=g).to(DEVICE), torch.randn(n, n, generator=g).to(DEVICE)
    times, share, flagged = measure(lambda: x @ y, 1 if quick else 2, repeats, 1 if quick else 5, retries)
    return row("machine", "matmul_peak", "GFLOP/s", times, share, flagged, lambda t: 2 * n**3 / 1e9 / t)


# ---------------------------------------------------------------- output


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def write_atomic(path, doc):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".torch_bench.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def print_row(r):
    flag = "BUSY" if r["flagged"] else ""
    print(
        f"{r['model']:<8} {r['workload']:<14} {r['unit']:<11} {r['median']:>12.4g} "
        f"{r['min']:>12.4g} {r['max']:>12.4g} {r['other_cpu_share']:>6.2f} {flag}",
        flush=True,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--repeats", type=int, help="timed repeats per workload (default 5, quick 1)")
    p.add_argument("--retries", type=int, help="extra tries of a busy repeat (default 3, quick 0)")
    p.add_argument("--quick", action="store_true", help="tiny warm-ups and repeats: a smoke test")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.exit(2, f"{p.prog}: error: --device cuda asked, but torch.cuda.is_available() is false "
                  f"(torch {torch.__version__}); nothing measured\n")  # fmt: skip
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS + EXTRA))
    if unknown:
        p.error(f"unknown models {unknown}; choose from {MODELS + EXTRA}")
    repeats = args.repeats or (1 if args.quick else 5)
    retries = args.retries if args.retries is not None else (0 if args.quick else 3)

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    global DEVICE
    DEVICE = torch.device(args.device)
    # The vector instructions ATen's kernels were dispatched to (oneDNN picks its own the same way).
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "simd": torch.backends.cpu.get_cpu_capability()}
    if DEVICE.type == "cuda":
        # TF32 would run matmuls and convolutions on tensor cores at ~10-bit mantissa, so the
        # GFLOP/s (matmul_peak, train_gflops) would not be fp32 and not comparable with the CPU's.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        machine["gpu"] = torch.cuda.get_device_name(0)

    gpu = f", {machine['gpu']}" if "gpu" in machine else ""
    print(f"pytorch {torch.__version__}, {args.threads} threads, {machine['cpu']}, {machine['cores']} cores, {machine['simd']}{gpu}")
    print(f"{'model':<8} {'workload':<14} {'unit':<11} {'median':>12} {'min':>12} {'max':>12} {'other':>6}")
    results = [bench_matmul(repeats, retries, args.quick)]
    print_row(results[0])
    for name in models:
        for r in bench_model(name, repeats, retries, args.quick):
            print_row(r)
            results.append(r)

    write_atomic(args.out, {
        "tool": "pytorch",
        "version": torch.__version__,
        "backend": args.device,
        "threads": args.threads,
        "machine": machine,
        "results": results,
    })  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
