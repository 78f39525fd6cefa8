"""What a model costs: parameters, multiply-accumulates, measured CPU latency.

MACs are counted with ``torch.utils.flop_counter`` (it ships with torch, follows its
operators, and leaves the model untouched; thop adds buffers to the model). It counts
convolutions and matrix products only: the pooling, sigmoid and scaling that attention adds
are free by that count (thop, which the ECA paper's FLOPs come from, also counts batch
norms, average pooling and upsampling by layer type), which is why the latency here is
measured rather than estimated.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
from typing import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs", "measure_latency", "latency_rounds", "ratios_per_round", "compare_latency", "profile_model"]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """The logger ``name`` shows errors only inside the block; its previous level restored afterwards."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block, its previous mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass on an input of ``input_shape`` ``(N, C, H, W)``."""
    device = next(model.parameters()).device
    with _eval_mode(model), FlopCounterMode(display=False) as counter:
        model(torch.zeros(input_shape, device=device))
    return counter.get_total_flops() // 2


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...] = (1, 3, 32, 32),
    channels_last: bool = True,
    min_run_time: float = 1.0,
) -> float:
    """Median seconds of one inference forward pass (eval mode, no grad) on ``input_shape``."""
    device = next(model.parameters()).device
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(input_shape, device=device).contiguous(memory_format=layout)
    with _quiet_logger("torch.utils.cpp_extension"):  # which logs a note naming CUDA_HOME on CPU-only builds
        from torch.utils import benchmark

    with _eval_mode(model):
        model(x)  # warm-up
        timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x})
        return timer.blocked_autorange(min_run_time=min_run_time).median


def latency_rounds(
    models: dict[str, nn.Module],
    input_shape: tuple[int, ...] = (1, 3, 32, 32),
    rounds: int = 5,
    min_run_time: float = 0.2,
) -> dict[str, list[float]]:
    """Milliseconds of one inference forward pass per model and round, measured side by side.

    The models take turns in every round, so drift on a shared machine hits them alike; each
    value is that round's median. Ratios between two models taken round by round cancel the drift.
    """
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            times[name].append(measure_latency(model, input_shape, min_run_time=min_run_time) * 1e3)
    return times


def ratios_per_round(rounds_ms: dict[str, list[float]], baseline: str = "none") -> dict[str, list[float]]:
    """Each model's time over ``baseline``'s in the same round of :func:`latency_rounds`, for every other model."""
    return {name: [a / b for a, b in zip(values, rounds_ms[baseline])]
            for name, values in rounds_ms.items() if name != baseline}


def compare_latency(
    models: dict[str, nn.Module],
    input_shape: tuple[int, ...] = (1, 3, 32, 32),
    rounds: int = 5,
    min_run_time: float = 0.2,
) -> dict[str, float]:
    """Median milliseconds of one inference forward pass per model: the median over the rounds of
    :func:`latency_rounds`."""
    times = latency_rounds(models, input_shape, rounds, min_run_time)
    return {name: statistics.median(values) for name, values in times.items()}


def profile_model(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32), min_run_time: float = 1.0) -> dict[str, float]:
    """``{"params", "macs", "latency_ms"}`` for one input of ``input_shape``."""
    return {
        "params": count_parameters(model),
        "macs": count_macs(model, input_shape),
        "latency_ms": measure_latency(model, input_shape, min_run_time=min_run_time) * 1e3,
    }
