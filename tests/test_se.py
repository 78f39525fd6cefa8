"""SE against timm's SEModule and the paper's formulas (Hu et al., Eq. 2-5)."""

import pytest
import torch
from timm.layers import SEModule

from attn import SqueezeExcite
from conftest import n_params


def _copy_into_timm(ours: SqueezeExcite, ref: SEModule) -> None:
    """timm's FCs are 1x1 convolutions: weight (out, in, 1, 1) instead of (out, in)."""
    with torch.no_grad():
        ref.fc1.weight.copy_(ours.fc1.weight[:, :, None, None])
        ref.fc2.weight.copy_(ours.fc2.weight[:, :, None, None])
        if ours.fc1.bias is not None:
            ref.fc1.bias.copy_(ours.fc1.bias)
            ref.fc2.bias.copy_(ours.fc2.bias)


@pytest.mark.parametrize("channels, reduction", [(16, 16), (64, 16), (64, 4), (256, 16)])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_timm_semodule(channels, reduction, bias):
    ours = SqueezeExcite(channels, reduction, bias=bias).double()
    # rd_divisor=1 gives timm the paper's C / r hidden width (its default of 8 gives 8 for C=64).
    ref = SEModule(channels, rd_ratio=1 / reduction, rd_divisor=1, bias=bias).double()
    assert ref.fc1.out_channels == ours.hidden_channels
    _copy_into_timm(ours, ref)
    x = torch.randn(4, channels, 7, 9, dtype=torch.float64)
    assert (ours(x) - ref(x)).abs().max().item() <= 1e-6


def test_matches_the_formula_written_out():
    se = SqueezeExcite(32, reduction=8).double()
    x = torch.randn(2, 32, 5, 5, dtype=torch.float64)
    z = x.mean((2, 3))
    s = torch.sigmoid(torch.relu(z @ se.fc1.weight.T + se.fc1.bias) @ se.fc2.weight.T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * s[:, :, None, None], rtol=0, atol=1e-12)


@pytest.mark.parametrize("channels", [16, 32, 64, 256, 2048])
@pytest.mark.parametrize("reduction", [4, 8, 16])
def test_parameter_count_is_two_c_squared_over_r(channels, reduction):
    assert n_params(SqueezeExcite(channels, reduction, bias=False)) == 2 * channels**2 // reduction
    with_bias = 2 * channels**2 // reduction + channels // reduction + channels
    assert n_params(SqueezeExcite(channels, reduction, bias=True)) == with_bias


def test_se_resnet50_adds_the_papers_2_5_million_parameters():
    """SE-P Eq. 5 for ResNet-50 (stages of 3, 4, 6, 3 blocks at C = 256 ... 2048), r = 16."""
    stages = [(3, 256), (4, 512), (6, 1024), (3, 2048)]
    added = sum(blocks * n_params(SqueezeExcite(c, 16, bias=False)) for blocks, c in stages)
    assert added == 2_514_944


def test_hidden_width_is_at_least_one():
    assert SqueezeExcite(8, reduction=16).hidden_channels == 1
    assert SqueezeExcite(24, reduction=16).hidden_channels == 1


def test_gate_is_a_sigmoid_not_a_softmax():
    se = SqueezeExcite(64)
    x = torch.randn(2, 64, 4, 4).abs() + 1
    gate = se(x) / x
    assert ((gate > 0) & (gate < 1)).all()
    assert not torch.allclose(gate[:, :, 0, 0].sum(1), torch.ones(2))


@pytest.mark.parametrize("reduction", [0, -16, 2.5, 16.0])
def test_rejects_bad_reduction(reduction):
    with pytest.raises(ValueError, match="SqueezeExcite: reduction must be a positive integer"):
        SqueezeExcite(64, reduction)
