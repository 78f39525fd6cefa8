"""Efficient Channel Attention (Wang et al., CVPR 2020): local cross-channel interaction.

ECA replaces SE's bottleneck MLP by a band matrix: the logit of channel ``i`` looks only
at its ``k`` neighbours ``i - (k-1)/2 .. i + (k-1)/2`` of the pooled descriptor (zero
padded at the ends). ECA-NS gives every channel its own ``k`` weights (``k * C``
parameters); ECA shares them, which turns the band matrix into a 1-D convolution with
``k`` parameters. ``k`` grows with ``log2 C`` (:func:`eca_kernel_size`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .channel_gate import ChannelGate
from .checks import positive_int

__all__ = ["eca_kernel_size", "EfficientChannelAttention", "ECANoSharing"]


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """The ECA paper's adaptive kernel size, Eq. 12, computed as its own code does.

    ``t = int(abs((log2(C) + b) / gamma))``; ``k = t`` if ``t`` is odd else ``t + 1``.

    Eq. 12 asks for the *nearest odd* number to ``(log2 C + b) / gamma``. When that value
    is an even integer it is equally far from two odd numbers; with ``gamma=2, b=1`` this
    happens at ``C = 8, 128, 2048`` and the code (paper Fig. 3, timm) rounds *up*: ``C = 128``
    gives ``k = 5`` (not 3) and ``C = 2048`` gives ``k = 7`` (not 5). ``log2`` is used
    instead of ``log(C, 2)``: the latter is inexact for some powers of two.

    Unlike timm, no lower bound of 3 is applied: ``C = 1`` gives ``k = 1``.

    Note: the official ECA ResNets do not use this formula; their ``k`` is set by hand per
    stage (ECA-Net50: 3, 5, 5, 7).
    """
    channels = positive_int("eca_kernel_size", "channels", channels)
    if gamma <= 0:
        raise ValueError(f"eca_kernel_size: gamma must be positive, got {gamma}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


def _kernel_size(owner: str, channels: int, kernel_size: int | None, gamma: int, b: int) -> int:
    """Validate an explicit odd ``kernel_size`` or compute the adaptive one."""
    if kernel_size is None:
        return eca_kernel_size(channels, gamma, b)
    kernel_size = positive_int(owner, "kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(
            f"{owner}: kernel_size must be odd so the band is centred on each channel, got {kernel_size}"
        )
    return kernel_size


class EfficientChannelAttention(ChannelGate):
    """ECA: ``x * sigmoid(conv1d_k(GAP(x)))``, ``k`` weights shared by all channels, no bias.

    Args:
        channels: ``C``.
        kernel_size: ``k``, odd; ``None`` computes it from ``C`` with :func:`eca_kernel_size`.
        gamma, b: the constants of the adaptive ``k`` (paper: 2 and 1 throughout).
        gate_layer, identity_at_start: see :mod:`attn.gates` (the identity form zeroes the kernel).
    """

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: int = 2, b: int = 1,
                 gate_layer: str | None = None, identity_at_start: bool = False) -> None:
        super().__init__(channels, gate_layer, identity_at_start)
        self.kernel_size = _kernel_size(self._owner, self.channels, kernel_size, gamma, b)
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=(self.kernel_size - 1) // 2, bias=False)
        self._zero_last(self.conv)

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """1-D convolution across the channel axis: ``(N, C) -> (N, 1, C) -> (N, C)``."""
        return self.conv(y[:, None, :])[:, 0, :]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}"


class ECANoSharing(ChannelGate):
    """ECA-NS: a band matrix whose ``k`` weights differ per channel; ``k * C`` parameters.

    Channel ``i`` sees the zero-padded window ``y[i - (k-1)/2 : i + (k-1)/2 + 1]`` and has
    its own ``k`` weights, stored like the official code as a depthwise ``Conv1d(C, C, k,
    groups=C)`` applied to the windows.

    The official code cuts the windows with ``unfold``; here they are ``k`` shifted slices of
    the padded descriptor, stacked: the same ``(N, C, k)`` tensor, and one that the
    TorchScript-based ONNX exporter exports (its ``unfold`` needs the size of the padded input,
    which it does not know: "input size not accessible").
    """

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: int = 2, b: int = 1,
                 gate_layer: str | None = None, identity_at_start: bool = False) -> None:
        super().__init__(channels, gate_layer, identity_at_start)
        self.kernel_size = _kernel_size(self._owner, self.channels, kernel_size, gamma, b)
        self.conv = nn.Conv1d(self.channels, self.channels, self.kernel_size, groups=self.channels, bias=False)
        self._zero_last(self.conv)

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """Cut ``(N, C)`` into windows ``(N, C, k)`` and weight each channel's own window."""
        pad = (self.kernel_size - 1) // 2
        padded = F.pad(y, (pad, pad))
        windows = torch.stack([padded[:, j:j + self.channels] for j in range(self.kernel_size)], dim=2)
        return self.conv(windows)[:, :, 0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}"
