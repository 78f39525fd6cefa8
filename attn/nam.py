"""Normalization-based Attention Module, NAM (Liu, Shao, Teng, Hoffmann; 2021).

NAM reuses the scale factors ``gamma`` of a batch normalisation as a measure of how much
each channel varies, hence how important it is: the channel branch computes

    M_c = sigmoid(W_gamma * BN(x)),   W_gamma,i = |gamma_i| / sum_j |gamma_j|,

and returns ``M_c * x``. The optional spatial branch does the same with a "pixel
normalisation": a BN whose features are the ``H*W`` positions (statistics over the batch
and the channels), scale factors ``lambda``. An L1 penalty on ``gamma`` (and ``lambda``)
pushes unimportant channels towards zero weight (:func:`nam_sparsity_loss`).

Two facts from the official code (Christian-lyc/NAM) shape the defaults:

- it is channel-only (the spatial branch was deleted from the repository in 2021-09), so
  ``spatial=False`` by default;
- it computes ``W_gamma`` from ``bn.weight.data``: the normalised weights are constants for
  autograd, and ``gamma`` gets gradient only through ``BN(x)`` itself. ``detach_weights=True``
  (default) reproduces that; ``False`` differentiates through the normalisation too.

Implementation note: ``W * BN_{gamma,beta}(x) = BN_{W gamma, W beta}(x)``, so the weighting is
folded into the batch-norm call instead of costing a separate pass over the tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_feature_map, check_spatial_size, positive_int, spatial_pair

__all__ = ["NAM", "nam_sparsity_loss"]


def _weighted_batch_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    num_batches_tracked: torch.Tensor | None,
    momentum: float | None,
    eps: float,
    training: bool,
    detach: bool,
) -> torch.Tensor:
    """``W * bn(x)`` with ``W = |gamma| / sum |gamma|``, in one ``F.batch_norm`` call.

    Takes the batch norm's parameters, buffers and settings (``weight`` is ``gamma``) rather
    than the module, so that ``torch.jit.script`` compiles it for ``BatchNorm1d`` and
    ``BatchNorm2d`` alike. Updates the running statistics exactly as ``bn(x)`` would.
    """
    importance = weight.abs() / weight.abs().sum()
    if detach:
        importance = importance.detach()
    average_factor = 0.0 if momentum is None else momentum
    if training and num_batches_tracked is not None:
        num_batches_tracked.add_(1)
        if momentum is None:  # cumulative moving average, as nn.BatchNorm does
            average_factor = 1.0 / float(num_batches_tracked)
    return F.batch_norm(
        x, running_mean, running_var, weight * importance, bias * importance,
        training=training, momentum=average_factor, eps=eps,
    )


class NAM(nn.Module):
    """NAM attention on ``(N, C, H, W)`` feature maps; returns the same shape and dtype.

    Args:
        channels: ``C``.
        spatial: add the pixel-normalisation branch after the channel branch (paper; not in
            the official code). Needs ``spatial_size``.
        spatial_size: ``H`` or ``(H, W)`` of the input; required with ``spatial`` (the pixel BN
            has one scale factor per position). When given, every input is checked against it.
        detach_weights: compute ``W_gamma`` from detached scale factors, as the official
            code does with ``.data`` (default). ``False`` lets gradients flow through the
            normalisation ``|gamma| / sum |gamma|``.

    Parameters: ``2C`` (the channel BN's ``gamma`` and ``beta``), plus ``2HW`` with ``spatial``.
    At initialisation (``gamma = 1``) every weight is ``1 / C``, so the gate is close to a
    constant 0.5: NAM starts as "halve the residual branch" and learns to deviate from it.
    """

    def __init__(
        self,
        channels: int,
        spatial: bool = False,
        spatial_size: int | tuple[int, int] | None = None,
        detach_weights: bool = True,
    ) -> None:
        super().__init__()
        owner = self._owner = type(self).__name__  # for the input checks' messages (TorchScript has no type(self))
        self.channels = positive_int(owner, "channels", channels)
        self.detach_weights = detach_weights
        self.bn = nn.BatchNorm2d(self.channels)
        self.spatial_size = None if spatial_size is None else spatial_pair(owner, spatial_size)
        self.pixel_bn: nn.BatchNorm1d | None = None
        if spatial:
            if self.spatial_size is None:
                raise ValueError(
                    f"{owner}: spatial=True needs spatial_size=(H, W): the pixel normalisation has one "
                    f"scale factor per position"
                )
            self.pixel_bn = nn.BatchNorm1d(self.spatial_size[0] * self.spatial_size[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channel gate, then (optionally) pixel gate; ``(N, C, H, W) -> (N, C, H, W)``."""
        x = x * self.channel_gate(x)
        if self.pixel_bn is not None:
            x = x * torch.sigmoid(self._pixel_logits(x))
        return x

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel branch's gate ``sigmoid(W_gamma * BN(x))``, ``(N, C, H, W)`` (in training mode
        it updates the batch norm's running statistics, as :meth:`forward` does)."""
        check_feature_map(self._owner, x, self.channels)
        check_spatial_size(self._owner, x, self.spatial_size)
        bn = self.bn
        logits = _weighted_batch_norm(
            x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked,
            bn.momentum, bn.eps, bn.training, self.detach_weights,
        )
        return torch.sigmoid(logits)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """What :meth:`forward` multiplies ``x`` ``(N, C, H, W)`` by: the channel gate, times the pixel
        gate when there is one; ``(N, C, H, W)``."""
        channel = self.channel_gate(x)
        if self.pixel_bn is None:
            return channel
        return channel * torch.sigmoid(self._pixel_logits(x * channel))

    def _pixel_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel normalisation: BN over the ``H*W`` positions of ``x`` viewed as ``(N, H*W, C)``."""
        n, c, h, w = x.shape
        pixels = x.reshape(n, c, h * w).transpose(1, 2)
        bn = self.pixel_bn
        logits = _weighted_batch_norm(
            pixels, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked,
            bn.momentum, bn.eps, bn.training, self.detach_weights,
        )
        return logits.transpose(1, 2).reshape(n, c, h, w)

    def scale_factors(self) -> list[torch.Tensor]:
        """The BN scale factors the sparsity penalty acts on: ``[gamma]`` or ``[gamma, lambda]``."""
        return [bn.weight for bn in (self.bn, self.pixel_bn) if bn is not None]

    def extra_repr(self) -> str:
        text = f"channels={self.channels}, detach_weights={self.detach_weights}"
        if self.spatial_size is not None:
            text += f", spatial_size={self.spatial_size}"
        return text


def nam_sparsity_loss(model: nn.Module, weight: float = 1e-4) -> torch.Tensor:
    """``weight * sum |scale factor|`` over every NAM module in ``model`` (a scalar tensor).

    This is the ``p * sum g(gamma) + p * sum g(lambda)`` term of the NAM loss with ``g = L1``.
    The official training script applies the same penalty as ``s * sign(gamma)`` added to
    the gradients, with ``s = 1e-4``; adding this loss before ``backward()`` is equivalent.

    Raises ``ValueError`` if ``model`` has no NAM module (a penalty of zero would hide a
    configuration mistake) or if ``weight`` is negative.
    """
    if weight < 0:
        raise ValueError(f"nam_sparsity_loss: weight must be >= 0, got {weight}")
    factors = [f for m in model.modules() if isinstance(m, NAM) for f in m.scale_factors()]
    if not factors:
        raise ValueError(f"nam_sparsity_loss: {type(model).__name__} contains no NAM module to regularise")
    return weight * sum(f.abs().sum() for f in factors)
