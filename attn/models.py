"""CIFAR ResNets (He et al., 2016, Sec. 4.2) with an attention module in every residual block.

``depth = 6n + 2``: a 3x3 stem with 16 channels, three stages of ``n`` basic blocks with 16,
32 and 64 channels on 32x32, 16x16 and 8x8 maps, global average pooling and a linear
classifier. Shortcuts that change shape are the paper's parameter-free option A
(subsample and zero-pad the channels), so ResNet-20 has 0.27 M parameters as in the paper.

The attention module sits on the residual branch after the second BN, before the
shortcut is added: the SE paper's placement (SE-POST, after the addition, was worse).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import registry

__all__ = ["cifar_resnet", "CifarResNet", "BasicBlock", "STAGE_WIDTHS"]

AttentionSpec = str | Callable[..., nn.Module] | None
STAGE_WIDTHS = (16, 32, 64)
INPUT_SIZE = 32


class BasicBlock(nn.Module):
    """``relu(attention(bn2(conv2(relu(bn1(conv1(x)))))) + shortcut(x))``; ``(N, C_in, H, W) -> (N, C_out, H/s, W/s)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, attention: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.attention = attention
        self.stride = stride
        self.pad_channels = out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: identity, or subsample by the stride and zero-pad the new channels."""
        if self.stride == 1 and self.pad_channels == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.pad_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.pad_channels - half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.attention(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x), inplace=True)


class CifarResNet(nn.Module):
    """A CIFAR ResNet; build it with :func:`cifar_resnet`. Input ``(N, 3, 32, 32)``, output logits ``(N, classes)``."""

    def __init__(self, depth: int, attention: AttentionSpec = None, num_classes: int = 10, **attention_kwargs: object) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 20, 32, 44, 56, 110), got {depth!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.depth = depth
        self.attention_name = _describe(attention)
        build = _attention_builder(attention, attention_kwargs)
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(3, STAGE_WIDTHS[0], 3, padding=1, bias=False), nn.BatchNorm2d(STAGE_WIDTHS[0]), nn.ReLU(inplace=True)
        )
        stages, in_channels, size = [], STAGE_WIDTHS[0], INPUT_SIZE
        for index, width in enumerate(STAGE_WIDTHS):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                size //= stride
                blocks.append(BasicBlock(in_channels, width, stride, build(width, size)))
                in_channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for the convolutions of the backbone (attention modules keep their own)."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d) and ".attention" not in name:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(x))
        return self.fc(features.mean((2, 3)))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, attention={self.attention_name!r}"


def cifar_resnet(depth: int, attention: AttentionSpec = None, num_classes: int = 10, **attention_kwargs: object) -> CifarResNet:
    """ResNet-``depth`` for 32x32 images with ``attention`` in every block.

    Args:
        depth: 8, 20, 32, 44, 56, 110 (any ``6n + 2``).
        attention: a registry name (``attn.available()``), ``None``/``"none"``, or a factory
            ``f(channels, **kwargs) -> nn.Module``.
        num_classes: output logits.
        **attention_kwargs: passed to every attention module, e.g. ``reduction=8``. Modules
            that take ``spatial_size`` (Gather-Excite, NAM) get each stage's map size from the model.
    """
    return CifarResNet(depth, attention, num_classes, **attention_kwargs)


def _describe(attention: AttentionSpec) -> str:
    if attention is None or isinstance(attention, str):
        return attention or "none"
    return getattr(attention, "__name__", type(attention).__name__)


def _attention_builder(attention: AttentionSpec, kwargs: dict[str, object]) -> Callable[[int, int], nn.Module]:
    """``build(channels, spatial_size) -> nn.Module`` for the blocks; validates ``attention`` once."""
    if "spatial_size" in kwargs:
        raise ValueError("spatial_size is set per stage by the model (32, 16, 8); do not pass it")
    if attention is None or attention == "none":
        if kwargs:
            raise ValueError(f"attention keyword arguments {sorted(kwargs)} given without an attention module")
        return lambda channels, size: nn.Identity()
    if not (isinstance(attention, str) or callable(attention)):
        raise ValueError(f"attention must be a registry name, None or a factory, got {type(attention).__name__}")
    sized = registry.accepts(attention, "spatial_size")

    def build(channels: int, size: int) -> nn.Module:
        extra = {"spatial_size": size} if sized else {}
        if isinstance(attention, str):
            return registry.create(attention, channels, **kwargs, **extra)
        return attention(channels, **kwargs, **extra)

    build(STAGE_WIDTHS[0], INPUT_SIZE)  # fail here, with the registry's message, not deep inside a block
    return build
