"""Forward + backward time of every attn module against timm and against the memory floor.

    python benchmarks/modules.py [--shape 128 64 32 32] [--channels-last] [--min-run-time 0.5]

All timings are measured side by side in one run with ``torch.utils.benchmark`` (rounds
interleaved across cases, median of the rounds), so the printed ratios compare like with
like on a busy, drifting machine; absolute times are only indicative. The *floor* is the
least work any channel gate must do: ``x * x.mean((2, 3), keepdim=True)``, forward and
backward. An A/A row (timm's SE against a second instance of itself) shows the noise.
Do not run it beside another CPU-heavy job.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils import benchmark
from timm.layers import EcaModule, GatherExcite as TimmGatherExcite, SEModule

import attn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from references import OfficialNAMChannel, nam_broadcasting  # noqa: E402

Case = tuple[str, nn.Module | Callable[[torch.Tensor], torch.Tensor], str | None]


class Floor(nn.Module):
    """The memory floor of a channel gate: one pooling read and one scaling pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.mean((2, 3), keepdim=True)


class BroadcastingNAM(nn.Module):
    """NAM's channel attention with broadcasting instead of permutes (see tests/references.py)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nam_broadcasting(self.bn, x)


def cases(channels: int, size: int) -> list[Case]:
    """(label, module, label of the reference it is compared with)."""
    timm_ge = lambda **kw: TimmGatherExcite(channels, use_mlp=False, **kw)  # noqa: E731
    return [
        ("floor: x * x.mean((2,3))", Floor(), None),
        ("timm SEModule (A/A copy)", SEModule(channels, rd_ratio=1 / 16, rd_divisor=1), "timm SEModule"),
        ("timm SEModule", SEModule(channels, rd_ratio=1 / 16, rd_divisor=1), None),
        ("timm EcaModule", EcaModule(channels), None),
        ("timm GE θ⁻ global", timm_ge(), None),
        ("timm GE θ⁻ extent 2", timm_ge(extent=2), None),
        ("timm GE θ⁻ extent 8", timm_ge(extent=8), None),
        ("timm GE θ extent 2", timm_ge(extent=2, extra_params=True), None),
        ("timm GE θ⁺ extent 2", TimmGatherExcite(channels, extent=2, extra_params=True), None),
        ("se", attn.create("se", channels), "timm SEModule"),
        ("se_var1", attn.create("se_var1", channels), "timm GE θ⁻ global"),
        ("se_var2", attn.create("se_var2", channels), None),
        ("se_var3", attn.create("se_var3", channels), None),
        ("se_gc", attn.create("se_gc", channels), None),
        ("eca_ns", attn.create("eca_ns", channels), None),
        ("eca", attn.create("eca", channels), "timm EcaModule"),
        ("ge_theta_minus (global)", attn.create("ge_theta_minus", channels), "timm GE θ⁻ global"),
        ("ge_theta_minus extent 2", attn.create("ge_theta_minus", channels, extent=2), "timm GE θ⁻ extent 2"),
        ("ge_theta_minus extent 8", attn.create("ge_theta_minus", channels, extent=8), "timm GE θ⁻ extent 8"),
        ("ge_theta (global)", attn.create("ge_theta", channels, spatial_size=size), None),
        ("ge_theta extent 2", attn.create("ge_theta", channels, extent=2), "timm GE θ extent 2"),
        ("ge_theta_plus (global)", attn.create("ge_theta_plus", channels, spatial_size=size), None),
        ("ge_theta_plus extent 2", attn.create("ge_theta_plus", channels, extent=2), "timm GE θ⁺ extent 2"),
        ("nam", attn.create("nam", channels), "NAM as the blog posts copy it"),
        ("NAM as the blog posts copy it", OfficialNAMChannel(channels), None),
        ("NAM broadcasting", BroadcastingNAM(channels), "NAM as the blog posts copy it"),
    ]


def time_forward_backward(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, min_run_time: float) -> float:
    """Median seconds of one forward + backward pass with respect to the input."""
    def step() -> None:
        x.grad = None
        module(x).backward(grad)

    timer = benchmark.Timer(stmt="step()", globals={"step": step})
    return timer.blocked_autorange(min_run_time=min_run_time).median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=4, default=[128, 64, 32, 32], metavar=("N", "C", "H", "W"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--min-run-time", type=float, default=0.5, help="seconds per case per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    n, c, h, w = args.shape
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(n, c, h, w).contiguous(memory_format=layout).requires_grad_()
    grad = torch.randn(n, c, h, w).contiguous(memory_format=layout)
    table = cases(c, h)
    for _, module, _ in table:
        module.train()

    times: dict[str, list[float]] = {label: [] for label, _, _ in table}
    for _ in range(args.rounds):
        for label, module, _ in table:
            times[label].append(time_forward_backward(module, x, grad, args.min_run_time))
    median = {label: statistics.median(t) for label, t in times.items()}
    floor = median["floor: x * x.mean((2,3))"]

    print(f"forward+backward, input {tuple(args.shape)} float32, "
          f"{'channels_last' if args.channels_last else 'NCHW'}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds")
    print(f"{'module':32s} {'ms':>8s} {'x floor':>8s}  vs reference")
    for label, _, reference in table:
        vs = f"{median[label] / median[reference]:.2f}x {reference}" if reference else ""
        print(f"{label:32s} {median[label] * 1e3:8.1f} {median[label] / floor:8.2f}  {vs}")


if __name__ == "__main__":
    main()
