"""ECA and ECA-NS against timm's EcaModule and the paper (Wang et al., Eq. 7-12, Fig. 3)."""

import math

import pytest
import torch
from timm.layers import EcaModule

from attn import ECANoSharing, EfficientChannelAttention, eca_kernel_size
from conftest import n_params


def _paper_fig3_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """The paper's Fig. 3 code, verbatim in substance."""
    t = int(abs((math.log(channels, 2) + b) / gamma))
    return t if t % 2 else t + 1


@pytest.mark.parametrize("channels, k", [
    (16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7),
])
def test_kernel_size_table(channels, k):
    assert eca_kernel_size(channels) == k


def test_kernel_size_ties_round_up():
    """(log2 C + 1) / 2 is an even integer at C = 8, 128, 2048: the code picks the larger odd."""
    assert (math.log2(128) + 1) / 2 == 4 and eca_kernel_size(128) == 5
    assert (math.log2(2048) + 1) / 2 == 6 and eca_kernel_size(2048) == 7
    assert eca_kernel_size(8) == 3


def test_kernel_size_matches_the_papers_code_and_timm_for_every_c_from_16_to_2048():
    for channels in range(16, 2049):
        k = eca_kernel_size(channels)
        assert k == _paper_fig3_kernel_size(channels), channels
        assert k == EcaModule(channels).conv.kernel_size[0], channels  # timm's floor of 3 never binds here


def test_kernel_size_has_no_floor_of_three_unlike_timm():
    assert eca_kernel_size(1) == 1 and eca_kernel_size(2) == 1


@pytest.mark.parametrize("gamma, b, channels, k", [(1, 1, 64, 7), (3, 1, 256, 3), (2, 3, 64, 5)])
def test_kernel_size_other_constants(gamma, b, channels, k):
    assert eca_kernel_size(channels, gamma, b) == k == _paper_fig3_kernel_size(channels, gamma, b)


def test_kernel_size_rejects_bad_arguments():
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        eca_kernel_size(0)
    with pytest.raises(ValueError, match="gamma must be positive"):
        eca_kernel_size(64, gamma=0)


@pytest.mark.parametrize("channels", [16, 64, 128, 2048])
def test_matches_timm_ecamodule(channels):
    ours = EfficientChannelAttention(channels).double()
    ref = EcaModule(channels).double()
    assert ref.conv.kernel_size[0] == ours.kernel_size
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, channels, 6, 5, dtype=torch.float64)
    assert (ours(x) - ref(x)).abs().max().item() <= 1e-6


def test_official_resnet50_kernel_sizes_give_80_parameters():
    """ECA-Net50 as released uses k = 3, 5, 5, 7 per stage (3, 4, 6, 3 blocks): the abstract's 80."""
    stages = [(3, 256, 3), (4, 512, 5), (6, 1024, 5), (3, 2048, 7)]
    assert sum(n * n_params(EfficientChannelAttention(c, kernel_size=k)) for n, c, k in stages) == 80
    adaptive = sum(n * n_params(EfficientChannelAttention(c)) for n, c, _ in stages)
    assert adaptive == 86  # Eq. 12 gives k = 5 (not 3) at C = 256


def _band_matrix(weights: torch.Tensor) -> torch.Tensor:
    """Eq. 7: row i holds channel i's k weights on columns i - (k-1)/2 ... i + (k-1)/2."""
    channels, k = weights.shape
    matrix = torch.zeros(channels, channels + k - 1, dtype=weights.dtype)
    for i in range(channels):
        matrix[i, i:i + k] = weights[i]
    return matrix[:, (k - 1) // 2: (k - 1) // 2 + channels]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_eca_ns_is_the_band_matrix_of_eq_7(k):
    module = ECANoSharing(12, kernel_size=k).double()
    x = torch.randn(2, 12, 4, 4, dtype=torch.float64)
    y = x.mean((2, 3))
    band = _band_matrix(module.conv.weight[:, 0, :].detach())
    torch.testing.assert_close(module(x), x * torch.sigmoid(y @ band.T)[:, :, None, None])


def _official_eca_ns(conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """ECA-NS as the official code (BangguWu/ECANet, models/eca_ns.py) computes it: the pooled
    ``(N, C, 1, 1)`` turned into a ``(N, 1, 1, C)`` image, ``F.unfold`` with a ``(1, k)`` window and
    zero padding, then the depthwise ``Conv1d(C, C, k, groups=C)`` on the windows."""
    k = conv.kernel_size[0]
    y = x.mean((2, 3), keepdim=True).transpose(-1, -3)
    windows = torch.nn.functional.unfold(y, kernel_size=(1, k), padding=(0, (k - 1) // 2))
    return x * torch.sigmoid(conv(windows.transpose(-1, -2)))[..., None]


@pytest.mark.parametrize("channels, k", [(12, 1), (12, 3), (64, 5)])
def test_eca_ns_matches_the_official_unfold_formulation(channels, k):
    module = ECANoSharing(channels, kernel_size=k).double()
    x = torch.randn(3, channels, 5, 4, dtype=torch.float64)
    assert (module(x) - _official_eca_ns(module.conv, x)).abs().max().item() <= 1e-12


def test_eca_is_eca_ns_with_shared_weights():
    shared = EfficientChannelAttention(32, kernel_size=5).double()
    unshared = ECANoSharing(32, kernel_size=5).double()
    with torch.no_grad():
        unshared.conv.weight.copy_(shared.conv.weight.expand(32, 1, 5))
    x = torch.randn(2, 32, 4, 4, dtype=torch.float64)
    assert (shared(x) - unshared(x)).abs().max().item() <= 1e-12


@pytest.mark.parametrize("channels", [16, 64, 512])
def test_parameter_counts(channels):
    k = eca_kernel_size(channels)
    assert n_params(EfficientChannelAttention(channels)) == k
    assert n_params(ECANoSharing(channels)) == k * channels


@pytest.mark.parametrize("cls", [EfficientChannelAttention, ECANoSharing])
@pytest.mark.parametrize("kernel_size, message", [
    (4, "kernel_size must be odd"), (0, "kernel_size must be a positive integer"), (3.0, "positive integer"),
])
def test_rejects_bad_kernel_size(cls, kernel_size, message):
    with pytest.raises(ValueError, match=message):
        cls(64, kernel_size=kernel_size)
