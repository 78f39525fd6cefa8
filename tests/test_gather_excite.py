"""Gather-Excite against timm 1.0.20's GatherExcite and the official prototxts (GENet)."""

import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers import GatherExcite as TimmGatherExcite

from attn import GatherExcite, SEVar1
from attn.gather_excite import WholeMapDepthwiseConv, _scale
from conftest import n_params


def _randomise(module: torch.nn.Module) -> None:
    """Random weights and BN statistics, so a comparison cannot pass on initial values."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor))


def _load_by_position(ref: torch.nn.Module, ours: torch.nn.Module) -> None:
    """Copy our state into timm's: same layers in the same order, different key names."""
    ref_state, our_state = ref.state_dict(), ours.state_dict()
    assert [v.shape for v in ref_state.values()] == [v.shape for v in our_state.values()]
    ref.load_state_dict(dict(zip(ref_state, our_state.values())))


def _pair(ours: GatherExcite, ref: torch.nn.Module, shape: tuple[int, ...]) -> float:
    _randomise(ours)
    _load_by_position(ref, ours)
    x = torch.randn(*shape, dtype=torch.float64)
    diff = 0.0
    for train in (True, False):
        ours.train(train), ref.train(train)
        diff = max(diff, (ours(x) - ref(x)).abs().max().item())
    return diff


@pytest.mark.parametrize("extent", [0, 2, 4, 8])
@pytest.mark.parametrize("size", [(16, 16), (7, 9)])
def test_theta_minus_matches_timm(extent, size):
    ours = GatherExcite(32, "theta_minus", extent=extent).double()
    ref = TimmGatherExcite(32, extra_params=False, extent=extent, use_mlp=False).double()
    assert _pair(ours, ref, (2, 32, *size)) <= 1e-6


@pytest.mark.parametrize("extent", [2, 4, 8])
@pytest.mark.parametrize("size", [(16, 16), (7, 9)])
def test_local_theta_matches_timm(extent, size):
    ours = GatherExcite(32, "theta", extent=extent).double()
    ref = TimmGatherExcite(32, extra_params=True, extent=extent, use_mlp=False).double()
    assert _pair(ours, ref, (2, 32, *size)) <= 1e-6


@pytest.mark.parametrize("extent", [2, 8])
def test_local_theta_plus_without_the_official_relu_matches_timm(extent):
    ours = GatherExcite(32, "theta_plus", extent=extent, relu_before_mlp=False).double()
    ref = TimmGatherExcite(32, extra_params=True, extent=extent, use_mlp=True).double()
    assert _pair(ours, ref, (2, 32, 16, 16)) <= 1e-6


@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_global_theta_matches_the_official_prototxt(size):
    """RN50-GEP: one depthwise conv whose kernel is the whole map (no padding) -> BN -> Sigmoid -> Axpy."""
    ours = GatherExcite(16, "theta", spatial_size=size).double()
    _randomise(ours)
    conv, bn = ours.gather
    x = torch.randn(3, 16, *size, dtype=torch.float64)
    for train in (True, False):
        ours.train(train)
        stats = (None, None) if train else (bn.running_mean, bn.running_var)
        g = F.batch_norm(F.conv2d(x, conv.weight, groups=16), *stats, bn.weight, bn.bias, training=train, eps=bn.eps)
        assert g.shape[-2:] == (1, 1)
        assert (ours(x) - x * torch.sigmoid(g)).abs().max().item() <= 1e-12


def test_whole_map_depthwise_conv_equals_the_convolution():
    conv = WholeMapDepthwiseConv(8, (5, 7)).double()
    x = torch.randn(3, 8, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, groups=8))
    torch.testing.assert_close(conv(x.contiguous(memory_format=torch.channels_last)), conv(x))


def test_timms_global_theta_is_not_a_global_gather():
    """Why global θ/θ⁺ are checked against the prototxt, not timm: timm pads its H x W kernel
    ('same' padding), so the "global" gather of a 16 x 16 map is a 15 x 15 map, not one value."""
    ref = TimmGatherExcite(8, feat_size=(16, 16), extra_params=True, extent=0, use_mlp=False)
    assert ref.gather(torch.randn(2, 8, 16, 16)).shape[-2:] == (15, 15)


def test_theta_plus_matches_the_official_prototxt():
    """RN50-GEPP: DW conv (global) -> BN -> ReLU -> 1x1 conv C/16 -> ReLU -> 1x1 conv C -> Sigmoid -> Axpy."""
    ours = GatherExcite(64, "theta_plus", spatial_size=(8, 8)).double().eval()
    _randomise(ours)
    x = torch.randn(3, 64, 8, 8, dtype=torch.float64)
    conv, bn = ours.gather
    fc_down, fc_up = ours.mlp[1], ours.mlp[3]
    g = F.conv2d(x, conv.weight, groups=64)
    g = F.batch_norm(g, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
    g = F.conv2d(torch.relu(g), fc_down.weight, fc_down.bias)
    g = F.conv2d(torch.relu(g), fc_up.weight, fc_up.bias)
    assert fc_down.out_channels == 64 // 16
    assert (ours(x) - x * torch.sigmoid(g)).abs().max().item() <= 1e-12


def test_global_theta_minus_is_se_var1():
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(GatherExcite(16)(x), SEVar1(16)(x))


@pytest.mark.parametrize("size, extent", [((32, 32), 2), ((32, 32), 8), ((6, 6), 4), ((7, 9), 2), ((5, 5), 8)])
def test_gather_map_has_ceil_h_over_e_rows(size, extent):
    for variant in ("theta_minus", "theta"):
        module = GatherExcite(8, variant, extent=extent)
        g = module.gather_map(torch.randn(2, 8, *size))
        assert g.shape[-2:] == (math.ceil(size[0] / extent), math.ceil(size[1] / extent))


@pytest.mark.parametrize("size, gate_size", [((8, 8), (4, 4)), ((6, 6), (2, 2)), ((7, 9), (4, 5)), ((8, 12), (2, 3))])
def test_block_broadcast_equals_nearest_upsampling(size, gate_size):
    x = torch.randn(2, 3, *size)
    gate = torch.rand(2, 3, *gate_size)
    torch.testing.assert_close(_scale(x, gate), x * F.interpolate(gate, size=size, mode="nearest"))


def test_parameter_counts():
    c = 64
    assert n_params(GatherExcite(c, "theta_minus", extent=4)) == 0
    assert n_params(GatherExcite(c, "theta", spatial_size=14)) == c * 14 * 14 + 2 * c
    for e in (2, 4, 8):
        assert n_params(GatherExcite(c, "theta", extent=e)) == int(math.log2(e)) * (9 * c + 2 * c)
    hidden = c // 16
    mlp = 2 * c * hidden + hidden + c
    assert n_params(GatherExcite(c, "theta_plus", extent=4)) == 2 * (9 * c + 2 * c) + mlp


def test_theta_on_resnet50_adds_5_5_million_parameters():
    """Global GE-θ on ResNet-50 at 224 px: sum over blocks of C*S^2 + 2C (feature maps 56 ... 7)."""
    stages = [(3, 256, 56), (4, 512, 28), (6, 1024, 14), (3, 2048, 7)]
    added = sum(n * n_params(GatherExcite(c, "theta", spatial_size=s)) for n, c, s in stages)
    assert added == 5_549_568


@pytest.mark.parametrize("kwargs, message", [
    (dict(extent=3), r"extent must be one of \(0, 2, 4, 8\)"),
    (dict(extent=16), "extent must be one of"),
    (dict(extent=True), "extent must be one of"),
    (dict(variant="theta_pls"), "variant must be one of"),
    (dict(variant="theta"), "needs spatial_size=\\(H, W\\)"),
    (dict(variant="theta_plus", extent=2, reduction=0), "reduction must be a positive integer"),
    (dict(variant="theta", extent=2, relu_before_mlp=False), "only applies to variant='theta_plus'"),
    (dict(variant="theta", spatial_size=(4, 4, 4)), "int or \\(H, W\\)"),
])
def test_rejects_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GatherExcite(16, **kwargs)


@pytest.mark.parametrize("variant, extent", [("theta", 0), ("theta_minus", 2), ("theta_plus", 4)])
def test_a_declared_spatial_size_is_checked(variant, extent):
    module = GatherExcite(16, variant, extent=extent, spatial_size=8)
    with pytest.raises(ValueError, match=r"built for spatial_size=\(8, 8\), got an input of spatial size \(16, 16\)"):
        module(torch.randn(1, 16, 16, 16))


def test_flop_counters_see_the_whole_map_gather():
    """The learned global gather costs C*H*W multiply-accumulates per image, like the convolution it replaces."""
    from attn.profile import count_macs

    conv = WholeMapDepthwiseConv(8, (5, 7))
    assert count_macs(conv, (2, 8, 5, 7)) == 2 * 8 * 5 * 7
