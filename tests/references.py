"""Reference formulations from the official repositories, rebuilt from their published
descriptions, to test the `attn` modules against (and to benchmark against)."""

from __future__ import annotations

import torch
from torch import nn


class OfficialNAMChannel(nn.Module):
    """NAM's channel attention as the official code (Christian-lyc/NAM, MODELS/attention.py,
    ``Channel_Att``) and the blog posts that copy it write it: BN, weights from ``.data``,
    permute to NHWC, multiply, permute back with ``.contiguous()``, sigmoid, times the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn2 = nn.BatchNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        x = self.bn2(x)
        weight_bn = self.bn2.weight.data.abs() / torch.sum(self.bn2.weight.data.abs())
        x = x.permute(0, 2, 3, 1).contiguous()
        x = torch.mul(weight_bn, x)
        x = x.permute(0, 3, 1, 2).contiguous()
        return torch.sigmoid(x) * residual


class OfficialNAMPixel(nn.Module):
    """NAM's spatial ("pixel normalisation") branch of the first official commit (d135ad4):
    ``BatchNorm1d(H*W)`` over the input viewed as ``(N, H*W, C)``, weights ``|lambda| / sum |lambda|``."""

    def __init__(self, pixels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(pixels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        n, c, h, w = x.shape
        x = self.bn(x.reshape(n, c, h * w).permute(0, 2, 1))
        weight = self.bn.weight.data.abs() / torch.sum(self.bn.weight.data.abs())
        x = torch.mul(weight[None, :, None], x).permute(0, 2, 1).reshape(n, c, h, w)
        return torch.sigmoid(x) * residual


def nam_broadcasting(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The same channel attention written with broadcasting instead of permutes."""
    weight = bn.weight.detach().abs() / bn.weight.detach().abs().sum()
    return torch.sigmoid(bn(x) * weight[:, None, None]) * x
