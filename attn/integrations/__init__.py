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


def add_attention(
    model: nn.Module,
    attention: str | Callable[..., nn.Module],
    *,
    residual_only: bool = True,
    **attention_kwargs: object,
) -> nn.Module:
    """Insert an attention module into every residual block of a torchvision model, in place; returns ``model``.

    ``attn.add_attention(torchvision.models.resnet18(), "eca")``. The module goes on the
    residual branch after its last BN, before the shortcut is added (the SE paper's
    placement), in every ``BasicBlock`` / ``Bottleneck`` of a ResNet, Wide ResNet or ResNeXt
    and in every ``InvertedResidual`` of MobileNetV2 that has a residual add (all 17 with
    ``residual_only=False``). Existing weights are untouched and keep their names; the new
    parameters are ``<block>.attention.*``, so a pretrained state dict loads with
    ``strict=False`` and only those keys missing.

    A factory gives the official ECA networks, whose ``k`` is set by hand per stage
    (key renames for their checkpoints: :mod:`attn.integrations.torchvision`)::

        # ECA-ResNet-50, k = 3, 5, 5, 7: +80 parameters (Eq. 12's default k: +86)
        add_attention(resnet50(), lambda c: attn.create("eca", c, kernel_size={256: 3, 512: 5, 1024: 5, 2048: 7}[c]))
        # ECA-MobileNetV2, k = 1 below 96 channels, else 3, in all 17 blocks: +31 parameters
        add_attention(mobilenet_v2(), lambda c: attn.create("eca", c, kernel_size=1 if c < 96 else 3),
                      residual_only=False)

    Args:
        model: the torchvision model (pretrained or not).
        attention: a registry name (``attn.available()``) or a factory ``f(channels, **kwargs)``.
        residual_only: skip MobileNetV2's 7 blocks without a residual add (default); ``False``
            gates them too, after their last BN.
        **attention_kwargs: passed to every module, e.g. ``reduction=16``.

    Raises:
        ValueError: the model has no supported block (the message lists them), already has
            attention, or the module needs a fixed ``spatial_size`` (global GE-θ/θ⁺, NAM's
            spatial branch: use ``extent=2``, ``4`` or ``8``).

    The implementation lives in ``attn.integrations.torchvision`` (imported on first call,
    so that ``import attn`` does not import torchvision's model zoo).
    """
    from .torchvision import add_attention as insert

    return insert(model, attention, residual_only=residual_only, **attention_kwargs)
