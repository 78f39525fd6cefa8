"""Use the ``attn`` modules in networks you did not write.

- :mod:`attn.integrations.torchvision`: :func:`add_attention` puts a module into every
  residual block of a torchvision ResNet / Wide ResNet / ResNeXt / MobileNetV2.
- :mod:`attn.integrations.ultralytics`: ``register_layers()`` lets Ultralytics YOLO model
  YAML files name the modules (``pip install "attn[yolo]"``); example YAMLs in ``yolo/``.
- :mod:`attn.integrations.synthetic_boxes`: a tiny generated detection set for trying that out offline.

Importing this package imports neither torchvision's model zoo nor Ultralytics; each
submodule imports what it needs when it is used.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["add_attention"]


def add_attention(model: nn.Module, attention: str | Callable[..., nn.Module], **attention_kwargs: object) -> nn.Module:
    """Insert an attention module into every residual block of a torchvision model, in place; returns ``model``.

    ``attn.add_attention(torchvision.models.resnet18(), "eca")``. The module goes on the
    residual branch after its last BN, before the shortcut is added (the SE paper's
    placement), in every ``BasicBlock`` / ``Bottleneck`` of a ResNet, Wide ResNet or ResNeXt
    and in every ``InvertedResidual`` of MobileNetV2 that has a residual add. Existing
    weights are untouched and keep their names; the new parameters are ``<block>.attention.*``,
    so a pretrained state dict loads with ``strict=False`` and only those keys missing.

    Args:
        model: the torchvision model (pretrained or not).
        attention: a registry name (``attn.available()``) or a factory ``f(channels, **kwargs)``.
        **attention_kwargs: passed to every module, e.g. ``reduction=16``.

    Raises:
        ValueError: the model has no supported block (the message lists them), already has
            attention, or the module needs a fixed ``spatial_size`` (global GE-θ/θ⁺, NAM's
            spatial branch: use ``extent=2``, ``4`` or ``8``).

    The implementation lives in ``attn.integrations.torchvision`` (imported on first call,
    so that ``import attn`` does not import torchvision's model zoo).
    """
    from .torchvision import add_attention as insert

    return insert(model, attention, **attention_kwargs)
