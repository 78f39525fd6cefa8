"""Squeeze-and-Excitation (Hu et al., CVPR 2018 / TPAMI 2019)."""

from __future__ import annotations

import torch
from torch import nn

from .channel_gate import ChannelGate
from .checks import positive_int

__all__ = ["SqueezeExcite"]


class SqueezeExcite(ChannelGate):
    """SE block: ``x * sigmoid(W2 relu(W1 GAP(x)))`` with a bottleneck of width ``C // r``.

    Args:
        channels: ``C``, the channel count of the ``(N, C, H, W)`` input.
        reduction: ``r``; the hidden width is ``max(1, C // r)``. The paper's default is 16.
        bias: whether the two fully connected layers have biases. The released SE-ResNets
            have them (Caffe default); the paper's ablations on ResNets remove them.
        gate_layer: ``"sigmoid"`` (default) or ``"2sigmoid"`` (:mod:`attn.gates`).
        identity_at_start: ``2 * sigmoid`` with the second layer (``fc2``) zeroed: the module
            computes exactly ``x`` until training moves ``fc2``.

    Parameters: ``2 C^2 / r`` weights (when ``r`` divides ``C``), plus ``C / r + C`` biases.
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True, gate_layer: str | None = None,
                 identity_at_start: bool = False) -> None:
        super().__init__(channels, gate_layer, identity_at_start)
        self.reduction = positive_int(type(self).__name__, "reduction", reduction)
        self.hidden_channels = max(1, self.channels // self.reduction)
        self.fc1 = nn.Linear(self.channels, self.hidden_channels, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(self.hidden_channels, self.channels, bias=bias)
        self._zero_last(self.fc2)

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """``(N, C) -> (N, C // r) -> (N, C)`` logits."""
        return self.fc2(self.act(self.fc1(y)))

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, reduction={self.reduction}, "
            f"hidden_channels={self.hidden_channels}, bias={self.fc1.bias is not None}"
        )
