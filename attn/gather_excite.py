"""Gather-Excite (Hu, Shen, Albanie, Sun, Vedaldi; NeurIPS 2018).

*Gather* aggregates each channel over a spatial extent ``e`` (every ``e x e`` region, or
the whole map when the extent is global), *excite* turns the gathered map back into a
full-resolution gate by nearest-neighbour upsampling and a sigmoid. Three variants:

- ``theta_minus`` (GE-θ⁻): average-pooling gather, no parameters. With a global extent it
  is ``x * sigmoid(GAP(x))``, the ECA paper's SE-Var1.
- ``theta`` (GE-θ): the gather is learned, a depthwise convolution (+ BN): one
  ``H x W`` kernel for the global extent, ``log2(e)`` stride-2 3x3 convolutions for ``e``.
- ``theta_plus`` (GE-θ⁺): the ``theta`` gather followed by an SE-style MLP of 1x1
  convolutions ``C -> C/r -> C`` before the sigmoid.

The layer structure follows the official prototxts (hujie-frank/GENet: RN50-GEPF,
RN50-GEP, RN50-GEPP) and the local pooling follows timm (kernel ``2e - 1``, stride ``e``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_feature_map, check_spatial_size, positive_int, spatial_pair
from .gates import gate_activation, resolve_gate_layer, zero_parameters
from .whole_map_depthwise import whole_map_depthwise

__all__ = ["GatherExcite", "WholeMapDepthwiseConv", "GE_VARIANTS", "GE_EXTENTS"]

Variant = Literal["theta_minus", "theta", "theta_plus"]
GE_VARIANTS: tuple[str, ...] = ("theta_minus", "theta", "theta_plus")
GE_EXTENTS: tuple[int, ...] = (0, 2, 4, 8)


class GatherExcite(nn.Module):
    """Gather-Excite attention on ``(N, C, H, W)`` feature maps.

    Args:
        channels: ``C``.
        variant: ``"theta_minus"``, ``"theta"`` or ``"theta_plus"`` (see the module docstring).
        extent: ``0`` for a global gather, or ``2``, ``4``, ``8``: each gathered value
            summarises about an ``e x e`` region; the gathered map has ``ceil(H / e)`` rows.
        spatial_size: ``H`` or ``(H, W)`` of the input. Required by the learned global gather,
            whose depthwise kernel covers the whole map; when given, every input is checked
            against it.
        reduction: ``r`` of the ``theta_plus`` MLP; hidden width ``max(1, C // r)``.
        relu_before_mlp: ``theta_plus`` only. The official GE-θ⁺ applies a ReLU between the
            gather's BN and the MLP; timm's GatherExcite does not. ``False`` reproduces timm.
        official_init: initialise and configure the learned parts as the official prototxts
            (hujie-frank/GENet) train them, instead of PyTorch's defaults: the gather
            convolutions msra-initialised (normal, std ``sqrt(2 / fan_in)``: ``sqrt(2 / HW)`` for
            the global kernel, ``sqrt(2 / 9)`` for the 3x3 ones; PyTorch's default is about 2.5x
            smaller), the gather's batch norms with Caffe's moving-average factor 0.95
            (PyTorch ``momentum=0.05``; the default is 0.1), and GE-θ⁺'s MLP weights drawn from
            ``N(0, 0.01)`` with zero biases. The book's grids were trained with the defaults.
        gate_layer: ``"sigmoid"`` (default) or ``"2sigmoid"`` (:mod:`attn.gates`).
        identity_at_start: ``theta`` and ``theta_plus`` only: ``2 * sigmoid`` with the layer that
            produces the logits zeroed (the gather's last batch norm for ``theta``, the MLP's
            last convolution for ``theta_plus``), so the module computes exactly ``x`` at first.

    Parameters: ``theta_minus`` 0; ``theta`` global ``C*H*W + 2C``, extent ``e``
    ``log2(e) * 11C`` (3x3 depthwise weights and BN); ``theta_plus`` adds ``2C^2/r + C/r + C``.
    """

    def __init__(
        self,
        channels: int,
        variant: Variant = "theta_minus",
        extent: int = 0,
        spatial_size: int | tuple[int, int] | None = None,
        reduction: int = 16,
        relu_before_mlp: bool = True,
        official_init: bool = False,
        gate_layer: str | None = None,
        identity_at_start: bool = False,
    ) -> None:
        super().__init__()
        owner = self._owner = type(self).__name__  # for the input checks' messages (TorchScript has no type(self))
        self.channels = positive_int(owner, "channels", channels)
        if variant not in GE_VARIANTS:
            raise ValueError(f"{owner}: variant must be one of {GE_VARIANTS}, got {variant!r}")
        if isinstance(extent, bool) or extent not in GE_EXTENTS:
            raise ValueError(f"{owner}: extent must be one of {GE_EXTENTS} (0 = global), got {extent!r}")
        if not relu_before_mlp and variant != "theta_plus":
            raise ValueError(f"{owner}: relu_before_mlp only applies to variant='theta_plus', not {variant!r}")
        if variant == "theta_minus" and (official_init or identity_at_start):
            option = "official_init" if official_init else "identity_at_start"
            raise ValueError(f"{owner}: {option} needs learned parts, which variant='theta_minus' does not have; "
                             f"use 'theta' or 'theta_plus'")
        self.gate_layer = resolve_gate_layer(owner, gate_layer, identity_at_start)
        self.identity_at_start = identity_at_start
        self.official_init = official_init
        self.variant = variant
        self.extent = extent
        self.spatial_size = None if spatial_size is None else spatial_pair(owner, spatial_size)
        learned = variant != "theta_minus"
        if learned and extent == 0 and self.spatial_size is None:
            raise ValueError(
                f"{owner}: variant={variant!r} with a global extent needs spatial_size=(H, W) of the input, "
                f"because its gather is a depthwise convolution whose kernel covers the whole map; "
                f"or use extent=2, 4 or 8"
            )
        self.gather = self._learned_gather() if learned else None
        self.mlp: nn.Sequential | None = None
        if variant == "theta_plus":
            hidden = max(1, self.channels // positive_int(owner, "reduction", reduction))
            self.mlp = self._mlp(hidden, relu_before_mlp)
        if official_init:
            self._init_as_prototxt()
        if identity_at_start:
            zero_parameters(self.mlp[-1] if self.mlp is not None else self.gather[-1])

    def _init_as_prototxt(self) -> None:
        """The official prototxts' fillers and batch-norm factor (see ``official_init``)."""
        for layer in self.gather:
            if isinstance(layer, nn.Conv2d):
                fan_in = layer.weight[0].numel()  # (C_in / groups) * kH * kW = kH * kW (depthwise)
                nn.init.normal_(layer.weight, std=math.sqrt(2.0 / fan_in))
            elif isinstance(layer, nn.BatchNorm2d):
                layer.momentum = 0.05
        for layer in self.mlp if self.mlp is not None else ():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.zeros_(layer.bias)

    def _learned_gather(self) -> nn.Sequential:
        """Depthwise conv + BN: one ``H x W`` kernel (global), or ``log2(e)`` 3x3 stride-2 layers."""
        c = self.channels
        if self.extent == 0:
            return nn.Sequential(WholeMapDepthwiseConv(c, self.spatial_size), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for i in range(int(math.log2(self.extent))):
            if i:
                layers.append(nn.ReLU(inplace=True))
            layers += [nn.Conv2d(c, c, 3, stride=2, padding=1, groups=c, bias=False), nn.BatchNorm2d(c)]
        return nn.Sequential(*layers)

    def _mlp(self, hidden: int, relu_before_mlp: bool) -> nn.Sequential:
        """``[ReLU] -> 1x1 conv C -> hidden -> ReLU -> 1x1 conv hidden -> C``, with biases."""
        layers: list[nn.Module] = [nn.ReLU()] if relu_before_mlp else []
        layers += [nn.Conv2d(self.channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, self.channels, 1)]
        return nn.Sequential(*layers)

    def gather_map(self, x: torch.Tensor) -> torch.Tensor:
        """The gathered map ``(N, C, ceil(H/e), ceil(W/e))`` (``(N, C, 1, 1)`` when global)."""
        check_feature_map(self._owner, x, self.channels)
        check_spatial_size(self._owner, x, self.spatial_size)
        if self.gather is not None:
            return self.gather(x)
        if self.extent == 0:
            return x.mean((2, 3), keepdim=True)
        e = self.extent
        return F.avg_pool2d(x, kernel_size=2 * e - 1, stride=e, padding=e - 1, count_include_pad=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``(N, C, ceil(H/e), ceil(W/e))`` (``(N, C, 1, 1)`` when global), before upsampling."""
        logits = self.gather_map(x)
        if self.mlp is not None:
            logits = self.mlp(logits)
        return gate_activation(logits, self.gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate ``x`` ``(N, C, H, W)`` position- and channel-wise; returns the same shape and dtype."""
        gate = self.gate(x)
        if self.extent == 0:
            return x * gate  # (N, C, 1, 1) broadcasts over any (H, W)
        return _scale(x, gate)

    def extra_repr(self) -> str:
        text = f"channels={self.channels}, variant={self.variant!r}, extent={self.extent}"
        if self.spatial_size is not None:
            text += f", spatial_size={self.spatial_size}"
        if self.official_init:
            text += ", official_init=True"
        if self.gate_layer != "sigmoid":
            text += f", gate_layer={self.gate_layer!r}, identity_at_start={self.identity_at_start}"
        return text


class WholeMapDepthwiseConv(nn.Conv2d):
    """Depthwise convolution whose unpadded kernel covers the whole ``(H, W)`` map.

    ``(N, C, H, W) -> (N, C, 1, 1)``: each channel's map is weighted by its own kernel and
    summed. The parameters are those of ``nn.Conv2d(C, C, (H, W), groups=C, bias=False)``;
    the forward pass is ``whole_map_depthwise`` (:mod:`attn.whole_map_depthwise`), one dense matrix
    product that reads ``x`` in its own layout (about 5x faster than ``einsum`` and more than
    the grouped convolution, forward + backward on a CPU) and that FLOP counters count as the
    ``C*H*W`` multiply-accumulates per image it is. Under TorchScript and ONNX export, which
    do not know that operator, it is the equivalent ``einsum``.
    """

    def __init__(self, channels: int, spatial_size: tuple[int, int]) -> None:
        super().__init__(channels, channels, spatial_size, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, 1, 1)``."""
        if torch.jit.is_scripting():  # alone in its condition: TorchScript then compiles only this branch
            return torch.einsum("nchw,chw->nc", x, self.weight[:, 0])[:, :, None, None]
        if torch.onnx.is_in_onnx_export():
            return torch.einsum("nchw,chw->nc", x, self.weight[:, 0])[:, :, None, None]
        return whole_map_depthwise(x, self.weight[:, 0])[:, :, None, None]


def _scale(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``x * upsample_nearest(gate)`` for ``x`` ``(N, C, H, W)``, ``gate`` ``(N, C, h, w)``.

    When ``H = h * e`` and ``W = w * e`` nearest upsampling repeats every gate value over an
    ``e x e`` block, which ``repeat_interleave`` does directly: forward + backward at
    (128, 64, 32, 32), extent 2, it measured 0.64x the time of ``F.interpolate`` and 0.86x
    of a broadcast over a 6-D view of ``x``. Other sizes use ``F.interpolate``, and so does a
    graph being traced or exported (``torch.jit.trace``, ``torch.onnx.export``, ``torch.export``,
    ``torch.compile``): a branch on the sizes would be frozen into it, and the graph would be
    wrong for inputs of other sizes; one resize to ``(H, W)`` holds for every size.
    """
    height, width = x.shape[-2:]
    h, w = gate.shape[-2:]
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return x * F.interpolate(gate, size=(height, width), mode="nearest")
    if (h, w) == (1, 1):
        return x * gate
    if height % h or width % w:
        return x * F.interpolate(gate, size=(height, width), mode="nearest")
    return x * gate.repeat_interleave(height // h, dim=2).repeat_interleave(width // w, dim=3)
