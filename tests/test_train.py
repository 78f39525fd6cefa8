"""The training loop: schedule, determinism, resume after a kill, options, and a real quick run."""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

import attn
from attn.data import CIFAR10, Split, load_cifar10, stratified_subset
from attn.models import cifar_resnet
from attn.train import TrainConfig, fit, learning_rate, resolve_precision, select_device

ARCHIVE = Path(os.environ.get("ATTN_CIFAR10_ARCHIVE", Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"))
TIMING = ("seconds", "images_per_s")


def synthetic(n_train: int = 256, n_test: int = 128) -> CIFAR10:
    """Random images whose class shifts the mean colour, so a network can learn something."""
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        labels = torch.arange(n) % 10
        noise = torch.randint(0, 100, (n, 3, 32, 32), generator=generator)
        return Split((noise + 15 * labels[:, None, None, None]).to(torch.uint8), labels)

    return CIFAR10(split(n_train), split(n_test), tuple(str(i) for i in range(10)), "synthetic")


def without_timing(history) -> list[dict]:
    return [{k: v for k, v in asdict(epoch).items() if k not in TIMING} for epoch in history]


QUICK = TrainConfig(epochs=2, batch_size=64, eval_batch_size=64)


def test_onecycle_and_cosine_schedules():
    peak, total = 0.1, 100
    onecycle = [learning_rate("onecycle", s, total, peak, 0.2) for s in range(total)]
    assert onecycle[0] == pytest.approx(0.01) and max(onecycle) == pytest.approx(peak)
    assert onecycle.index(max(onecycle)) == 20 and onecycle[-1] < 0.002
    cosine = [learning_rate("cosine", s, total, peak, 0.0) for s in range(total)]
    assert cosine[0] == pytest.approx(peak) and cosine[50] == pytest.approx(peak / 2, rel=0.05)


def test_same_seed_same_history_different_seed_different():
    data = synthetic()
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(without_timing(fit(cifar_resnet(8), data, replace(QUICK, seed=seed), progress=False)))
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert set(runs[0][0]) == {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "ema_test_loss",
                               "ema_test_acc"}


class _Kill(Exception):
    pass


def test_resume_after_a_kill_gives_the_uninterrupted_history(tmp_path):
    data, config = synthetic(), replace(QUICK, epochs=3)
    torch.manual_seed(0)
    reference = without_timing(fit(cifar_resnet(8), data, config, progress=False))

    torch.manual_seed(0)
    model, calls = cifar_resnet(8), {"n": 0}

    def kill_in_the_third_epoch(module, inputs):
        calls["n"] += 1
        if calls["n"] == 2 * (4 + 2) + 2:  # 4 training + 2 evaluation batches per epoch, then 2 more
            raise _Kill

    handle = model.register_forward_pre_hook(kill_in_the_third_epoch)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(_Kill):
        fit(model, data, config, checkpoint=checkpoint, progress=False)
    handle.remove()
    assert checkpoint.exists() and not list(tmp_path.glob(".*.tmp"))
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2

    torch.manual_seed(123)  # a fresh process: different initial weights, all overwritten by the checkpoint
    resumed = without_timing(fit(cifar_resnet(8), data, config, checkpoint=checkpoint, progress=False))
    assert resumed == reference


def test_nam_sparsity_option_shrinks_the_nam_scale_factors():
    data = synthetic()
    norms = {}
    for weight in (0.0, 0.05):
        torch.manual_seed(0)
        model = cifar_resnet(8, "nam")
        fit(model, data, replace(QUICK, nam_sparsity=weight), progress=False)
        norms[weight] = sum(m.bn.weight.abs().sum().item() for m in model.modules() if isinstance(m, attn.NAM))
    assert norms[0.05] < norms[0.0]


def test_bf16_autocast_trains_and_reports_float_metrics():
    torch.manual_seed(0)
    history = fit(cifar_resnet(8, "eca"), synthetic(), replace(QUICK, epochs=1, precision="bf16"), progress=False)
    assert 0.0 <= history[0].test_acc <= 1.0 and history[0].train_loss > 0


@pytest.mark.parametrize("device, native_bf16, expected", [
    ("cuda", False, "fp16"), ("cpu", True, "bf16"), ("cpu", False, "fp32"), ("mps", True, "fp32"),
])
def test_auto_precision_is_amp_on_cuda_and_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, device, native_bf16, expected):
    monkeypatch.setattr(attn.train, "cpu_has_native_bf16", lambda: native_bf16)
    assert resolve_precision("auto", torch.device(device)) == expected
    assert resolve_precision("fp32", torch.device(device)) == "fp32"


def test_device_selection():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in {"cuda", "mps", "cpu"}


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be a positive integer"),
    ("lr", 0.0, "lr must be positive"),
    ("schedule", "step", "schedule must be 'onecycle' or 'cosine'"),
    ("warmup", 1.0, r"warmup must be a fraction in \[0, 1\)"),
    ("precision", "fp8", "precision must be auto, fp32, bf16 or fp16"),
    ("weight_decay", -1e-4, "weight_decay must be >= 0"),
])
def test_bad_configuration(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


@pytest.mark.skipif(not ARCHIVE.exists(), reason="the offline CIFAR-10 archive is not beside the repository")
def test_quick_training_on_cifar10_clearly_beats_chance():
    """ResNet-8, 2 epochs on a stratified 5,000-image subset of the real data (the quick budget)."""
    data = load_cifar10(archive=ARCHIVE, download=False, progress=False)
    small = replace(data, train=stratified_subset(data.train, 5_000), test=stratified_subset(data.test, 2_000))
    torch.manual_seed(0)
    history = fit(cifar_resnet(8), small, TrainConfig(epochs=2), progress=False)
    assert history[-1].test_acc > 0.25, f"test accuracy {history[-1].test_acc:.1%} is too close to chance (10 %)"


def test_weight_decay_can_spare_norm_parameters_and_biases():
    model = cifar_resnet(8, "se")
    decayed, spared = attn.train.parameter_groups(model, 5e-4, decay_norm_and_bias=False)
    assert decayed["weight_decay"] == 5e-4 and spared["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim <= 1 for p in spared["params"])
    assert len(decayed["params"]) + len(spared["params"]) == len(list(model.parameters()))
    (everything,) = attn.train.parameter_groups(model, 5e-4)
    assert len(everything["params"]) == len(list(model.parameters()))


def test_the_weight_average_is_evaluated_every_epoch_and_survives_a_resume(tmp_path):
    data = synthetic()
    config = replace(QUICK, ema_decay=0.9)
    torch.manual_seed(0)
    whole = fit(cifar_resnet(8), data, config, progress=False)
    assert all(0 <= epoch.ema_test_acc <= 1 and epoch.ema_test_loss > 0 for epoch in whole)
    torch.manual_seed(0)
    model, calls = cifar_resnet(8), {"n": 0}

    def kill_in_the_second_epoch(module, inputs):
        calls["n"] += module.training
        if calls["n"] == 4 + 2:  # 4 training batches per epoch, then 2 more
            raise _Kill

    handle = model.register_forward_pre_hook(kill_in_the_second_epoch)
    with pytest.raises(_Kill):
        fit(model, data, config, checkpoint=tmp_path / "ckpt.pt", progress=False)
    handle.remove()
    torch.manual_seed(0)
    resumed = fit(cifar_resnet(8), data, config, checkpoint=tmp_path / "ckpt.pt", progress=False)
    assert without_timing(resumed) == without_timing(whole)
    assert fit(cifar_resnet(8), data, QUICK, progress=False)[0].ema_test_acc is None
    with pytest.raises(ValueError, match="ema_decay must be in"):
        TrainConfig(ema_decay=1.0)
