"""The training loop: SGD with Nesterov momentum, a one-cycle or cosine schedule, label smoothing.

``fit`` trains a model on in-memory CIFAR data (:mod:`attn.data`), evaluates it after every
epoch and returns the history. It is deterministic for a given seed on the CPU, shows a
progress bar per epoch, and, given a checkpoint path, saves after every epoch (atomically)
and resumes from there after an interruption.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .data import BatchLoader, CIFAR10, Split
from .files import write_atomically
from .nam import nam_sparsity_loss
from ._progress import tqdm

__all__ = [
    "TrainConfig", "EpochStats", "fit", "parameter_groups", "evaluate", "select_device", "learning_rate",
    "resolve_precision", "autocast_dtype", "cpu_has_native_bf16", "emulates_bf16",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run besides the model and the data.

    ``lr`` is the peak learning rate. ``schedule="onecycle"`` rises linearly from
    ``lr / 10`` to ``lr`` over the first ``warmup`` fraction of the steps, then falls linearly
    to zero; ``"cosine"`` warms up the same way and then follows a half cosine to zero.
    ``precision="auto"`` is what :func:`resolve_precision` makes of it on the training device:
    fp16 autocast with gradient scaling on CUDA, bf16 autocast on a CPU with native bf16
    instructions, fp32 elsewhere. On the development CPU bf16 trained ResNet-20 faster than
    fp32 and to the same accuracy within seed noise (``results/recipe-probes``,
    ``benchmarks/train.py``); ``"fp32"`` turns it off.
    ``nam_sparsity`` adds ``nam_sparsity_loss(model, nam_sparsity)`` to the loss.
    ``decay_norm_and_bias=False`` exempts every parameter with fewer than two dimensions (norm
    scales and shifts, biases) from weight decay, as timm's ``param_groups_weight_decay`` does.
    ``ema_decay > 0`` keeps an exponential moving average of the weights and buffers
    (``torch.optim.swa_utils.AveragedModel``, updated after every step) and evaluates it on the
    test split after every epoch as well; it does not change the training itself.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    schedule: Literal["onecycle", "cosine"] = "onecycle"
    warmup: float = 0.15
    seed: int = 0
    channels_last: bool = True
    precision: Precision = "auto"
    nam_sparsity: float = 0.0
    decay_norm_and_bias: bool = True
    ema_decay: float = 0.0
    device: str = "auto"
    eval_batch_size: int = 500

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig: lr must be positive, got {self.lr}")
        if self.schedule not in ("onecycle", "cosine"):
            raise ValueError(f"TrainConfig: schedule must be 'onecycle' or 'cosine', got {self.schedule!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"TrainConfig: warmup must be a fraction in [0, 1), got {self.warmup}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"TrainConfig: precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"TrainConfig: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig: ema_decay must be in [0, 1) (0 = no average), got {self.ema_decay}")
        for name in ("weight_decay", "nam_sparsity", "momentum"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig: {name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class EpochStats:
    """One epoch of a history. Accuracies are fractions in [0, 1].

    ``train_loss`` and ``train_acc`` are running means over the epoch's augmented batches in
    training mode (the loss includes label smoothing and any sparsity penalty); ``test_*``
    are measured after the epoch in eval mode. ``ema_test_*`` are those of the weight average
    when ``TrainConfig.ema_decay > 0``, else ``None``.
    """

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float
    images_per_s: float
    ema_test_loss: float | None = None
    ema_test_acc: float | None = None


def learning_rate(schedule: str, step: int, total_steps: int, peak: float, warmup: float) -> float:
    """The learning rate at optimiser step ``step`` (0-based) of ``total_steps``."""
    warmup_steps = max(1, round(warmup * total_steps)) if warmup > 0 else 0
    if step < warmup_steps:
        return peak * (0.1 + 0.9 * step / warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "onecycle":
        return peak * (1.0 - progress)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; any other name is used as given."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), without which bf16 autocast is emulated."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """What ``precision`` means on ``device``: ``"auto"`` becomes ``"fp16"`` on CUDA, ``"bf16"`` on a
    CPU with native bf16 (:func:`cpu_has_native_bf16`) and ``"fp32"`` otherwise; others stay."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def emulates_bf16(precision: Precision, device: torch.device) -> bool:
    """Whether ``precision`` means bf16 autocast on a CPU without native bf16, where it is emulated
    (measured on an AVX2-only AMD EPYC, ResNet-20 training on one thread: 14 img/s, fp32 162)."""
    return device.type == "cpu" and resolve_precision(precision, device) == "bf16" and not cpu_has_native_bf16()


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``precision`` stands for on ``device`` (``None``: no autocast, float32)."""
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    return dtypes[resolve_precision(precision, device)]


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``split`` (no augmentation)."""
    device = torch.device(device)
    model.eval()
    loss_sum, correct = 0.0, 0
    loader = BatchLoader(split, batch_size, shuffle=False, augment=False, device=device, channels_last=channels_last)
    for x, y in loader:
        with _autocast(device, autocast_dtype):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return loss_sum / len(split), correct / len(split)


@dataclass
class _State:
    """What a checkpoint holds besides the model and optimiser."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)


def fit(
    model: nn.Module,
    data: CIFAR10,
    config: TrainConfig = TrainConfig(),
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[EpochStats]:
    """Train ``model`` on ``data.train``, evaluating on ``data.test`` after each epoch.

    Args:
        model: any classifier mapping ``(N, 3, 32, 32)`` to logits ``(N, classes)``.
        data: train and test splits (see :func:`attn.data.load_cifar10`).
        config: the recipe.
        checkpoint: a file to save to after every epoch and to resume from if it exists.
        progress: show a tqdm progress bar per epoch.

    Returns:
        One :class:`EpochStats` per epoch (including epochs done before a resume).
    """
    device = select_device(config.device)
    amp_dtype = autocast_dtype(config.precision, device)
    torch.manual_seed(config.seed)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        parameter_groups(model, config.weight_decay, config.decay_norm_and_bias), lr=config.lr,
        momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0,
    )
    ema = None
    if config.ema_decay > 0:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loader = BatchLoader(
        data.train, config.batch_size, shuffle=True, augment=True, seed=config.seed,
        device=device, drop_last=True, channels_last=config.channels_last,
    )
    total_steps = config.epochs * len(loader)
    state = _State()
    if checkpoint is not None and Path(checkpoint).exists():
        state = _load_checkpoint(Path(checkpoint), model, optimizer, scaler, ema)

    for epoch in range(state.epoch, config.epochs):
        model.train()
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        batches = tqdm(loader.epoch(epoch), total=len(loader), desc=f"epoch {epoch + 1}/{config.epochs}",
                       disable=not progress, leave=False)
        for step, (x, y) in enumerate(batches, start=epoch * len(loader)):
            lr = learning_rate(config.schedule, step, total_steps, config.lr, config.warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with _autocast(device, amp_dtype):
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                if config.nam_sparsity > 0:
                    loss = loss + nam_sparsity_loss(model, config.nam_sparsity)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            batches.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        train_seconds = time.perf_counter() - start
        test_loss, test_acc = evaluate(model, data.test, config.eval_batch_size, device,
                                       config.channels_last, amp_dtype)
        ema_test_loss = ema_test_acc = None
        if ema is not None:
            ema_test_loss, ema_test_acc = evaluate(ema.module, data.test, config.eval_batch_size, device,
                                                   config.channels_last, amp_dtype)
        stats = EpochStats(
            epoch=epoch + 1, lr=lr, train_loss=loss_sum / seen, train_acc=correct / seen,
            test_loss=test_loss, test_acc=test_acc, seconds=time.perf_counter() - start,
            images_per_s=seen / train_seconds, ema_test_loss=ema_test_loss, ema_test_acc=ema_test_acc,
        )
        state.history.append(asdict(stats))
        state.epoch = epoch + 1
        if progress:
            ema_text = "" if ema_test_acc is None else f"  ema test acc {ema_test_acc:.2%}"
            tqdm.write(f"epoch {stats.epoch:3d}  train loss {stats.train_loss:.3f} acc {stats.train_acc:.2%}  "
                       f"test loss {stats.test_loss:.3f} acc {stats.test_acc:.2%}{ema_text}  {stats.seconds:.0f}s")
        if checkpoint is not None:
            _save_checkpoint(Path(checkpoint), model, optimizer, scaler, state, ema)
    return [EpochStats(**row) for row in state.history]


def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = True) -> list[dict]:
    """The optimiser's parameter groups: all with ``weight_decay``, or, with ``decay_norm_and_bias=False``,
    the parameters of fewer than two dimensions (norm scales and shifts, biases) without it."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": parameters, "weight_decay": weight_decay}]
    return [{"params": [p for p in parameters if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0}]


def _save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scaler: torch.amp.GradScaler, state: _State, ema: AveragedModel | None) -> None:
    """Write the checkpoint atomically: an interrupted save leaves the previous one intact."""
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                  "epoch": state.epoch, "history": state.history}
    if ema is not None:
        checkpoint["ema"] = ema.state_dict()
    write_atomically(path, lambda tmp: torch.save(checkpoint, tmp))


def _load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scaler: torch.amp.GradScaler, ema: AveragedModel | None) -> _State:
    """Restore model, optimiser, weight average and progress; ``weights_only=True`` never runs pickled code."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scaler.load_state_dict(saved["scaler"])
    if ema is not None:
        ema.load_state_dict(saved["ema"])
    return _State(epoch=saved["epoch"], history=saved["history"])
