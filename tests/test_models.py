"""CIFAR ResNets: depth, parameter counts, attention placement, errors."""

import pytest
import torch
from torch import nn

import attn
from attn.models import BasicBlock, cifar_resnet
from conftest import n_params


@pytest.mark.parametrize("depth, params", [(8, 75_290), (20, 269_722), (32, 464_154), (56, 853_018)])
def test_parameter_counts_match_he_et_al(depth, params):
    """ResNet-20 has 0.27 M parameters with option-A shortcuts (He et al. 2016, Table 6)."""
    model = cifar_resnet(depth)
    assert n_params(model) == params
    assert len([m for m in model.modules() if isinstance(m, BasicBlock)]) == (depth - 2) // 2


@pytest.mark.parametrize("name", attn.available())
def test_every_attention_builds_and_adds_exactly_its_parameters(name):
    model = cifar_resnet(8, name)
    modules = [block.attention for block in model.modules() if isinstance(block, BasicBlock)]
    assert len(modules) == 3 and not any(isinstance(m, nn.Identity) for m in modules)
    assert n_params(model) == n_params(cifar_resnet(8)) + sum(n_params(m) for m in modules)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_spatial_size_is_given_per_stage():
    model = cifar_resnet(20, "ge_theta")
    sizes = [block.attention.spatial_size for block in model.modules() if isinstance(block, BasicBlock)]
    assert sizes == [(32, 32)] * 3 + [(16, 16)] * 3 + [(8, 8)] * 3


def test_attention_sits_after_bn2_before_the_shortcut_add():
    """With a gate that zeroes the residual branch, every block reduces to relu(shortcut(x))."""
    block = BasicBlock(16, 32, stride=2, attention=nn.Identity())
    x = torch.randn(2, 16, 8, 8)
    seen = {}
    block.attention = _Recorder(seen)
    out = block(x)
    torch.testing.assert_close(seen["input"], block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x))))))
    torch.testing.assert_close(out, torch.relu(block.shortcut(x)))


class _Recorder(nn.Module):
    """Records its input and returns zeros: the residual branch is cut at the attention."""

    def __init__(self, seen: dict) -> None:
        super().__init__()
        self.seen = seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen["input"] = x.detach().clone()
        return torch.zeros_like(x)


def test_option_a_shortcut_subsamples_and_zero_pads():
    block = BasicBlock(16, 32, stride=2, attention=nn.Identity())
    x = torch.randn(1, 16, 8, 8)
    s = block.shortcut(x)
    assert s.shape == (1, 32, 4, 4)
    torch.testing.assert_close(s[:, 8:24], x[:, :, ::2, ::2])
    assert (s[:, :8] == 0).all() and (s[:, 24:] == 0).all()


def test_attention_kwargs_and_factories():
    model = cifar_resnet(8, "se", reduction=4)
    assert [b.attention.hidden_channels for b in model.modules() if isinstance(b, BasicBlock)] == [4, 8, 16]
    model = cifar_resnet(8, lambda channels: attn.NAM(channels, detach_weights=False))
    assert all(not b.attention.detach_weights for b in model.modules() if isinstance(b, BasicBlock))
    model = cifar_resnet(8, attn.GatherExcite, variant="theta")  # gets spatial_size per stage
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("depth", [0, 7, 18, 21, 20.0, "20"])
def test_bad_depth(depth):
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 2"):
        cifar_resnet(depth)


def test_bad_attention_arguments():
    with pytest.raises(ValueError, match="unknown attention 'sse'"):
        cifar_resnet(20, "sse")
    with pytest.raises(TypeError, match="does not take 'reduction'"):
        cifar_resnet(20, "eca", reduction=8)
    with pytest.raises(ValueError, match="given without an attention module"):
        cifar_resnet(20, None, reduction=8)
    with pytest.raises(ValueError, match="spatial_size is set per stage"):
        cifar_resnet(20, "ge_theta", spatial_size=32)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        cifar_resnet(20, num_classes=0)
