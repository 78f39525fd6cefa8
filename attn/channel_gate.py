"""The shape shared by SE, its ablation variants and ECA: ``x * sigmoid(f(GAP(x)))``.

All of them squeeze each channel to one number with global average pooling, map the
``C`` numbers to ``C`` gate logits with some function ``f``, squash them with a sigmoid
and rescale the channels. They differ only in ``f``: that is the whole point of the
ECA paper's ablation (Wang et al., 2020, Table 2), so the code keeps ``f`` apart. The
gate function can be ``2 * sigmoid`` instead (:mod:`attn.gates`).
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import check_feature_map, positive_int
from .gates import gate_activation, resolve_gate_layer, zero_parameters

__all__ = ["ChannelGate"]


class ChannelGate(nn.Module):
    """Base class: squeeze ``(N, C, H, W) -> (N, C)``, excite ``(N, C) -> (N, C)``, scale.

    Subclasses implement :meth:`excite`, which maps the pooled descriptor ``y`` of shape
    ``(N, C)`` to gate *logits* of shape ``(N, C)``. The gate is a sigmoid, so each channel
    is weighted independently in ``(0, 1)``; the weights do not sum to one (not a softmax).
    With ``gate_layer="2sigmoid"`` it is ``2 * sigmoid``, in ``(0, 2)`` and 1 at zero logits;
    subclasses with an identity-at-start form take ``identity_at_start`` (:mod:`attn.gates`)
    and zero their last layer through ``_zero_last``.
    """

    def __init__(self, channels: int, gate_layer: str | None = None, identity_at_start: bool = False) -> None:
        super().__init__()
        self._owner = type(self).__name__  # for the input checks' messages (TorchScript has no type(self))
        self.channels = positive_int(self._owner, "channels", channels)
        self.gate_layer = resolve_gate_layer(self._owner, gate_layer, identity_at_start)
        self.identity_at_start = identity_at_start

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """Map pooled descriptors ``(N, C)`` to gate logits ``(N, C)``."""
        raise NotImplementedError

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel weights ``(N, C)`` that :meth:`forward` multiplies ``x`` ``(N, C, H, W)`` by."""
        check_feature_map(self._owner, x, self.channels)
        return gate_activation(self.excite(x.mean((2, 3))), self.gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the channels of ``x`` ``(N, C, H, W)``; returns the same shape and dtype."""
        return x * self.gate(x)[:, :, None, None]

    def _zero_last(self, *layers: nn.Module) -> None:
        """With ``identity_at_start``, zero the weights and biases of the layers that produce the logits."""
        if self.identity_at_start:
            zero_parameters(*layers)

    def extra_repr(self) -> str:
        text = f"channels={self.channels}"
        if self.gate_layer != "sigmoid":
            text += f", gate_layer={self.gate_layer!r}, identity_at_start={self.identity_at_start}"
        return text
