"""Training throughput of the ``attn`` loop against a naive torchvision loop, and the cost of attention.

    python benchmarks/train.py [--archive PATH] [--steps 20] [--rounds 3] [--threads 1] [--skip pipelines ...]

Part 1 trains the same ResNet-20 with two input pipelines, alternating A, B, A, B, ... so
drift on a shared machine hits both alike:

- naive: the images as JPEG files in an ``ImageFolder``, PIL ``RandomCrop(32, 4)`` and
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, a ``DataLoader`` with 2 workers,
  NCHW tensors (what the PyTorch CIFAR tutorial and most blog posts do);
- attn: :class:`attn.data.BatchLoader` (whole-batch crop and flip of in-memory ``uint8``
  tensors, normalisation on the fly) and ``channels_last``, as :func:`attn.train.fit` does.

Part 2 times training steps of ResNet-20 with each attention module against ResNet-20
without attention, interleaved the same way, and prints the wall-time ratio, under bf16
autocast (the reference grid's precision; ``--overhead-precision fp32`` for the 10-epoch
grids'). It also times GE-θ's whole-map gather computed as ``einsum`` (the previous form)
beside the dense-product operator it uses now.

Part 3 times ResNet-20 training steps in float32 and under bfloat16 autocast on the CPU
(what ``TrainConfig(precision="bf16")`` does, and what ``"auto"`` picks on a CPU with
native bf16 instructions), each eager and under ``torch.compile``; and the matrix-multiply
peak of the same threads (1024 x 1024 products), so that it prints what fraction of that
peak the training step reaches (forward + backward = 3 x the forward's multiply-adds).

Images/s count optimiser steps of batch 128 including the data pipeline (forward, backward,
SGD step). Do not run it beside another CPU-heavy job. The JPEG files for the naive loop
are extracted to a temporary folder that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import datasets, transforms

import attn
from attn.data import MEAN, STD, BatchLoader, load_cifar10
from attn.gather_excite import WholeMapDepthwiseConv
from attn.models import cifar_resnet
from attn.profile import count_macs

BATCH = 128


def timed_steps(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], steps: int,
                optimizer: torch.optim.Optimizer, autocast: torch.dtype | None = None) -> float:
    """Seconds for ``steps`` SGD steps, batches fetched from ``batches`` inside the timing."""
    model.train()
    start = time.perf_counter()
    for x, y in itertools.islice(batches, steps):
        with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def forever(loader: Iterable) -> Iterator:
    """Cycle through a loader's epochs without caching its batches."""
    while True:
        yield from loader


def naive_loader(folder: Path) -> torch.utils.data.DataLoader:
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(MEAN, STD),
    ])
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2,
                                       drop_last=True, persistent_workers=True)


def extract_train_jpegs(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, members=[m for m in tar if m.name.startswith("train/")], filter="data")
    return into / "train"


def pipelines(archive: Path, steps: int, rounds: int) -> None:
    data = load_cifar10(archive=archive)
    torch.manual_seed(0)
    models = {"naive": cifar_resnet(20), "attn": cifar_resnet(20).to(memory_format=torch.channels_last)}
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for k, m in models.items()}
    with tempfile.TemporaryDirectory() as tmp:
        streams = {
            "naive": forever(naive_loader(extract_train_jpegs(archive, Path(tmp)))),
            "attn": forever(BatchLoader(data.train, BATCH, shuffle=True, augment=True, drop_last=True, channels_last=True)),
        }
        for name in streams:  # warm-up: worker start-up, allocator, first-call overheads
            timed_steps(models[name], streams[name], 3, optimizers[name])
        rates: dict[str, list[float]] = {name: [] for name in streams}
        for _ in range(rounds):
            for name in streams:
                rates[name].append(steps * BATCH / timed_steps(models[name], streams[name], steps, optimizers[name]))
    naive, ours = (statistics.median(rates[k]) for k in ("naive", "attn"))
    print(f"ResNet-20 training, batch {BATCH}, {steps} steps x {rounds} interleaved rounds, {torch.get_num_threads()} threads")
    print(f"  naive torchvision loop (ImageFolder JPEG + PIL + DataLoader(2 workers), NCHW): {naive:7.0f} img/s")
    print(f"  attn loop (in-memory batched crop/flip, channels_last):                      {ours:7.0f} img/s")
    print(f"  ratio attn / naive: {ours / naive:.2f}x (target >= 1.3x)")


class EinsumWholeMapGather(nn.Module):
    """GE-θ's global gather as it was computed before ``attn.whole_map_depthwise``: one ``einsum``."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nchw,chw->nc", x, self.weight[:, 0])[:, :, None, None]


def with_einsum_gather(model: nn.Module) -> nn.Module:
    """``model`` with every whole-map gather replaced by :class:`EinsumWholeMapGather` (same weights)."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, WholeMapDepthwiseConv):
                setattr(module, name, EinsumWholeMapGather(child))
    return model


def attention_overhead(steps: int, rounds: int, names: list[str], precision: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    batches = itertools.repeat((x, y))
    dtype = AUTOCAST[precision]
    models = {name: cifar_resnet(20, name) for name in ["none", *names]}
    for name in ("ge_theta", "ge_theta_plus"):
        if name in names:
            models[f"{name} (einsum)"] = with_einsum_gather(cifar_resnet(20, name))
    models = {k: m.to(memory_format=torch.channels_last) for k, m in models.items()}
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for name in models:
        timed_steps(models[name], batches, 2, optimizers[name], dtype)
    for _ in range(rounds):
        for name in models:
            times[name].append(timed_steps(models[name], batches, steps, optimizers[name], dtype))
    base = statistics.median(times["none"])
    print(f"\nWall-time overhead of attention, ResNet-20 training steps ({precision}, batch {BATCH}, channels_last, "
          f"{steps} steps x {rounds} interleaved rounds, median)")
    for name in models:
        t = statistics.median(times[name])
        print(f"  {name:22s} {steps * BATCH / t:6.0f} img/s   {t / base:5.2f}x of none")


AUTOCAST = {"fp32": None, "bf16": torch.bfloat16}


def matmul_peak(dtype: torch.dtype, size: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of ``size x size`` matrix products in ``dtype`` on the current threads (best of 3)."""
    a, b = (torch.randn(size, size).to(dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def precision_speed(steps: int, rounds: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    batches = itertools.repeat((x, torch.randint(0, 10, (BATCH,))))
    cases = {f"{p} {mode}": (p, mode) for p in AUTOCAST for mode in ("eager", "compiled")}
    models = {}
    for case, (_, mode) in cases.items():
        model = cifar_resnet(20).to(memory_format=torch.channels_last)
        models[case] = torch.compile(model) if mode == "compiled" else model
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for case, (precision, _) in cases.items():  # warm-up, and compilation (tens of seconds each)
        timed_steps(models[case], batches, 2, optimizers[case], AUTOCAST[precision])
    for _ in range(rounds):
        for case, (precision, _) in cases.items():
            times[case].append(timed_steps(models[case], batches, steps, optimizers[case], AUTOCAST[precision]))
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    flop_per_image = 3 * 2 * count_macs(cifar_resnet(20))  # forward + backward = 3 x the forward's
    base = statistics.median(times["fp32 eager"])
    print(f"\nPrecision, ResNet-20 training steps on the CPU (batch {BATCH}, channels_last, "
          f"{torch.get_num_threads()} threads, median)")
    print(f"  matrix-multiply peak, 1024 x 1024: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    for case, (precision, _) in cases.items():
        t = statistics.median(times[case])
        rate = steps * BATCH / t
        achieved = rate * flop_per_image / 1e9
        print(f"  {case:14s} {rate:6.0f} img/s   {base / t:5.2f}x the speed of fp32 eager   "
              f"{achieved:5.0f} GFLOP/s = {achieved / peaks[precision]:4.0%} of the {precision} matmul peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", default=str(Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"))
    parser.add_argument("--steps", type=int, default=20, help="SGD steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--attentions", nargs="*", default=attn.available())
    parser.add_argument("--overhead-precision", choices=sorted(AUTOCAST), default="bf16")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice; the grids use 1)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pipelines", "overhead", "precision"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if "pipelines" not in args.skip:
        pipelines(Path(args.archive), args.steps, args.rounds)
    if "overhead" not in args.skip:
        attention_overhead(args.steps, args.rounds, args.attentions, args.overhead_precision)
    if "precision" not in args.skip:
        precision_speed(args.steps, args.rounds)


if __name__ == "__main__":
    main()
