"""The SE ablation variants of the ECA paper (Wang et al., CVPR 2020, Table 2).

They keep SE's squeeze and sigmoid gate and change only the map from the pooled
descriptor ``y`` (``C`` numbers) to the gate logits, to separate two questions: does
the bottleneck (dimensionality reduction) hurt, and how much cross-channel interaction
is needed? Written as a ``C x C`` weight matrix, the maps are: none (SE-Var1),
diagonal (SE-Var2), full (SE-Var3) and block-diagonal (SE-GC). ECA-NS and ECA, the band
matrices, live in :mod:`attn.eca`.
"""

from __future__ import annotations

import torch
from torch import nn

from .channel_gate import ChannelGate
from .checks import positive_int

__all__ = ["SEVar1", "SEVar2", "SEVar3", "SEGroupConv"]


class SEVar1(ChannelGate):
    """SE-Var1: ``x * sigmoid(y)`` with ``y = GAP(x)``; no parameters, no interaction.

    ``gate_layer="2sigmoid"`` gives ``x * 2 sigmoid(y)``, which is close to ``x`` where ``y`` is
    close to zero; there is no exact identity-at-start form, since nothing is learned.
    """

    def __init__(self, channels: int, gate_layer: str | None = None) -> None:
        super().__init__(channels, gate_layer)

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """Identity: the pooled descriptor ``(N, C)`` is the logit."""
        return y


class SEVar2(ChannelGate):
    """SE-Var2: ``x * sigmoid(w * y)``, one weight per channel (a diagonal matrix); ``C`` parameters.

    The weights start at one (this package's choice; the ECA paper does not say), so an
    untrained SE-Var2 equals SE-Var1; with ``identity_at_start`` they start at zero.
    """

    def __init__(self, channels: int, gate_layer: str | None = None, identity_at_start: bool = False) -> None:
        super().__init__(channels, gate_layer, identity_at_start)
        self.weight = nn.Parameter(torch.ones(self.channels))
        self._zero_last(self)

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """Per-channel scaling ``(N, C) -> (N, C)``."""
        return y * self.weight


class SEVar3(ChannelGate):
    """SE-Var3: ``x * sigmoid(W y)`` with a full ``C x C`` matrix and no reduction; ``C^2`` parameters."""

    def __init__(self, channels: int, gate_layer: str | None = None, identity_at_start: bool = False) -> None:
        super().__init__(channels, gate_layer, identity_at_start)
        self.fc = nn.Linear(self.channels, self.channels, bias=False)
        self._zero_last(self.fc)

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """Full linear map ``(N, C) -> (N, C)``."""
        return self.fc(y)


class SEGroupConv(ChannelGate):
    """SE-GC: ``x * sigmoid(GC_G(y))``, a grouped FC (block-diagonal ``C x C``); ``C^2 / G`` parameters.

    Args:
        channels: ``C``.
        groups: ``G``, must divide ``C``. The paper's SE-GC1 uses ``G = 16``, SE-GC2
            ``G = C / 16`` and SE-GC3 ``G = C / 8``.
        group_size: instead of ``groups``, the channels per group ``C / G`` (must divide
            ``C``): ``group_size=4`` keeps every block ``4 x 4`` at any width, where a fixed
            ``G = 16`` at ``C = 16`` is a diagonal (SE-Var2's structure). Give one of the two.
    """

    def __init__(self, channels: int, groups: int | None = None, group_size: int | None = None,
                 gate_layer: str | None = None, identity_at_start: bool = False) -> None:
        super().__init__(channels, gate_layer, identity_at_start)
        owner = self._owner
        if groups is not None and group_size is not None:
            raise ValueError(f"{owner}: give groups or group_size, not both (got groups={groups}, group_size={group_size})")
        if group_size is not None:
            group_size = positive_int(owner, "group_size", group_size)
            if self.channels % group_size:
                raise ValueError(f"{owner}: group_size={group_size} must divide channels={self.channels}")
            groups = self.channels // group_size
        self.groups = positive_int(owner, "groups", 16 if groups is None else groups)
        if self.channels % self.groups:
            raise ValueError(
                f"{owner}: groups={self.groups} must divide channels={self.channels} "
                f"(each group mixes channels/groups channels)"
            )
        self.fc = nn.Conv1d(self.channels, self.channels, kernel_size=1, groups=self.groups, bias=False)
        self._zero_last(self.fc)

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """Block-diagonal linear map ``(N, C) -> (N, C)``."""
        return self.fc(y[:, :, None])[:, :, 0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, groups={self.groups}"
