"""The shape shared by SE, its ablation variants and ECA: ``x * sigmoid(f(GAP(x)))``.

All of them squeeze each channel to one number with global average pooling, map the
``C`` numbers to ``C`` gate logits with some function ``f``, squash them with a sigmoid
and rescale the channels. They differ only in ``f``: that is the whole point of the
ECA paper's ablation (Wang et al., 2020, Table 2), so the code keeps ``f`` apart.
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import check_feature_map, positive_int

__all__ = ["ChannelGate"]


class ChannelGate(nn.Module):
    """Base class: squeeze ``(N, C, H, W) -> (N, C)``, excite ``(N, C) -> (N, C)``, scale.

    Subclasses implement :meth:`excite`, which maps the pooled descriptor ``y`` of shape
    ``(N, C)`` to gate *logits* of shape ``(N, C)``. The gate is a sigmoid, so each channel
    is weighted independently in ``(0, 1)``; the weights do not sum to one (not a softmax).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = positive_int(type(self).__name__, "channels", channels)

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """Map pooled descriptors ``(N, C)`` to gate logits ``(N, C)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the channels of ``x`` ``(N, C, H, W)``; returns the same shape and dtype."""
        check_feature_map(type(self).__name__, x, self.channels)
        y = x.mean((2, 3))
        gate = torch.sigmoid(self.excite(y))
        return x * gate[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
