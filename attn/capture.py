"""Look inside a network on real images: what each attention slot receives, and the gate it applies.

The chapters analyse trained models the same way: run a batch of test images through the
network in eval mode, record the input of every block's ``attention`` slot (an
``nn.Identity`` in a network without attention, so the features are there too), and ask
each module for the gate it multiplies that input by (the modules' ``gate`` method):

- SE, its variants and ECA: ``(N, C)``, one weight per channel and image;
- Gather-Excite: ``(N, C, h, w)``, one weight per channel and gathered cell (``h = w = 1``
  for the global extent), before it is upsampled to the map;
- NAM: ``(N, C, H, W)``, one weight per channel and position.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .data import normalize

__all__ = ["attention_slots", "capture_inputs", "capture_gates", "branch_to_shortcut", "per_class_mean", "class_share"]


def attention_slots(model: nn.Module) -> dict[str, nn.Module]:
    """The ``attention`` child of every block, by block name (``"stages.0.1"``), in the network's order."""
    slots = {name: module.attention for name, module in model.named_modules() if hasattr(module, "attention")
             and isinstance(getattr(module, "attention"), nn.Module)}
    if not slots:
        raise ValueError(f"{type(model).__name__} has no block with an 'attention' slot "
                         f"(expected an attn CIFAR ResNet, or a model after attn.add_attention)")
    return slots


def _check_images(owner: str, images: torch.Tensor, normalized: bool) -> None:
    """``images`` must be ``(N, 3, H, W)``: ``uint8`` as attn.data stores them, or float with ``normalized``."""
    expected = torch.is_floating_point(images) if normalized else images.dtype == torch.uint8
    if not expected or images.dim() != 4:
        wanted = ("float images (N, 3, H, W), already normalised for the model" if normalized
                  else "uint8 images (N, 3, H, W) as attn.data stores them (or float ones with normalized=True)")
        raise ValueError(f"{owner}: expected {wanted}, got {images.dtype} of shape {tuple(images.shape)}")


def _batches(images: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


@torch.no_grad()
def capture_inputs(model: nn.Module, images: torch.Tensor, batch_size: int = 500,
                   normalized: bool = False) -> dict[str, torch.Tensor]:
    """What every attention slot receives for ``images`` ``(N, 3, H, W)``.

    ``images`` are ``uint8`` CIFAR-10 images, normalised here with attn.data's statistics, or
    with ``normalized=True`` float images that are already what the model takes (a torchvision
    network's ImageNet-normalised input, say); anything else raises ``ValueError``. The model
    runs in eval mode (batch norms use their running statistics, so the features do not depend
    on which images share a batch); its mode is restored afterwards. Returns, per block name, a
    float tensor ``(N, C, H_b, W_b)`` on the CPU.
    """
    _check_images("capture_inputs", images, normalized)
    slots = attention_slots(model)
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in slots}
    hooks = [slot.register_forward_pre_hook(lambda module, inputs, name=name: captured[name].append(inputs[0].float().cpu()))
             for name, slot in slots.items()]
    _run_in_eval_mode(model, images, batch_size, normalized, hooks)
    return {name: torch.cat(parts) for name, parts in captured.items()}


def _run_in_eval_mode(model: nn.Module, images: torch.Tensor, batch_size: int, normalized: bool, hooks: list) -> None:
    """Run ``images`` through ``model`` in eval mode (uint8 ones normalised first), then restore its mode and remove ``hooks``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for batch in _batches(images, batch_size):
            model((batch if normalized else normalize(batch)).to(device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def branch_to_shortcut(model: nn.Module, images: torch.Tensor, batch_size: int = 500,
                       normalized: bool = False) -> dict[str, dict[str, float]]:
    """How strong each block's residual branch is beside its shortcut, before and after its attention slot.

    Per block, ``{"ungated": ..., "gated": ...}``: the root mean square of what the block's
    ``attention`` slot receives (the branch before the gate) and of what it returns (the gated
    branch, which the block adds to its shortcut), each over the root mean square of the
    shortcut itself, over all ``images`` (as :func:`capture_inputs`), channels and positions, in
    eval mode. ``gated / ungated`` is the gate's effect on the branch's energy; a gate that
    halves the branch halves ``gated`` unless the layers before it raise ``ungated``.
    """
    _check_images("branch_to_shortcut", images, normalized)
    blocks = {name: module for name, module in model.named_modules()
              if isinstance(getattr(module, "attention", None), nn.Module) and callable(getattr(module, "shortcut", None))}
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no residual block with an 'attention' slot and a 'shortcut' "
                         f"(expected an attn CIFAR ResNet)")
    squares = {name: {"ungated": 0.0, "gated": 0.0, "shortcut": 0.0} for name in blocks}

    def add(name: str, part: str, value: torch.Tensor) -> None:
        squares[name][part] += value.float().pow(2).sum().item()

    def on_slot(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            add(name, "ungated", inputs[0])
            add(name, "gated", output)
        return hook

    hooks = []
    for name, block in blocks.items():
        hooks.append(block.attention.register_forward_hook(on_slot(name)))
        hooks.append(block.register_forward_pre_hook(
            lambda module, inputs, name=name: add(name, "shortcut", module.shortcut(inputs[0]))))
    _run_in_eval_mode(model, images, batch_size, normalized, hooks)
    return {name: {part: (s[part] / s["shortcut"]) ** 0.5 for part in ("ungated", "gated")}
            for name, s in squares.items()}


@torch.no_grad()
def capture_gates(model: nn.Module, images: torch.Tensor, batch_size: int = 500,
                  normalized: bool = False) -> dict[str, torch.Tensor]:
    """The gate every attention module applies to ``images`` (eval mode), by block name; see the module docstring.

    ``images`` and ``normalized`` as for :func:`capture_inputs`.

    Raises ``ValueError`` when the model has no attention modules with a ``gate`` method
    (for instance a network without attention, whose slots are ``nn.Identity``).
    """
    slots = {name: slot for name, slot in attention_slots(model).items() if hasattr(slot, "gate")}
    if not slots:
        raise ValueError(f"{type(model).__name__} has no attention module with a gate (its slots hold "
                         f"{type(next(iter(attention_slots(model).values()))).__name__})")
    was_training = {name: slot.training for name, slot in slots.items()}
    inputs = capture_inputs(model, images, batch_size, normalized)
    gates = {}
    for name, slot in slots.items():
        slot.eval()
        parameter = next(slot.parameters(), None)
        x = inputs[name] if parameter is None else inputs[name].to(parameter.device, parameter.dtype)
        gates[name] = torch.cat([slot.gate(part).float().cpu() for part in _batches(x, batch_size)])
        slot.train(was_training[name])
    return gates


def per_class_mean(values: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """Mean of ``values`` ``(N, ...)`` over the images of each class: ``(classes, ...)``."""
    if len(values) != len(labels):
        raise ValueError(f"per_class_mean: {len(values)} values but {len(labels)} labels")
    return torch.stack([values[labels == k].mean(0) for k in range(classes)])


def class_share(gates: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> float:
    """How much of the spread of a block's channel gates ``(N, C)`` the class explains, in ``[0, 1]``.

    Per channel, the variance of the class means over the total variance (the between-class
    share of a one-way analysis of variance, with classes weighted by their image counts),
    averaged over the channels. Near 0: the gate does not depend on the class (class-agnostic);
    near 1: it is almost fixed by the class. Spatial gates are averaged over positions first.
    """
    if gates.dim() > 2:
        gates = gates.flatten(2).mean(2)
    counts = torch.bincount(labels, minlength=classes).to(gates.dtype)
    means = per_class_mean(gates, labels, classes)  # (K, C)
    overall = gates.mean(0)
    between = (counts[:, None] * (means - overall) ** 2).sum(0) / len(gates)
    total = gates.var(0, unbiased=False)
    return float((between / total.clamp_min(1e-12)).mean())
