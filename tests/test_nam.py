"""NAM against the official code's formulation (channel branch, `.data` weights, sparsity)."""

import pytest
import torch
from torch import nn

from attn import NAM, SqueezeExcite, nam_sparsity_loss
from conftest import n_params
from references import OfficialNAMChannel, OfficialNAMPixel


def _random_affine(*bns: nn.modules.batchnorm._BatchNorm) -> None:
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(-2, 2)
            bn.bias.normal_()


def _official(ours: NAM) -> OfficialNAMChannel:
    ref = OfficialNAMChannel(ours.channels).double()
    ref.bn2.load_state_dict(ours.bn.state_dict())
    return ref


def test_matches_the_official_code_forward_backward_and_running_stats():
    ours = NAM(16).double()
    _random_affine(ours.bn)
    ref = _official(ours)
    for step in range(3):
        x = torch.randn(4, 16, 5, 6, dtype=torch.float64, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_()
        out, out_ref = ours(x), ref(x_ref)
        assert (out - out_ref).abs().max().item() <= 1e-6
        grad = torch.randn_like(out)
        out.backward(grad), out_ref.backward(grad)
        torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.bn.weight.grad, ref.bn2.weight.grad)
    torch.testing.assert_close(ours.bn.bias.grad, ref.bn2.bias.grad)
    torch.testing.assert_close(ours.bn.running_mean, ref.bn2.running_mean)
    torch.testing.assert_close(ours.bn.running_var, ref.bn2.running_var)
    assert ours.bn.num_batches_tracked == ref.bn2.num_batches_tracked == 3
    ours.eval(), ref.eval()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    assert (ours(x) - ref(x)).abs().max().item() <= 1e-6


def test_cumulative_momentum_updates_running_stats_like_batchnorm():
    ours = NAM(8)
    ours.bn.momentum = None
    plain = nn.BatchNorm2d(8, momentum=None)
    for _ in range(4):
        x = torch.randn(4, 8, 3, 3) * 3 + 1
        ours(x), plain(x)
    torch.testing.assert_close(ours.bn.running_mean, plain.running_mean)
    torch.testing.assert_close(ours.bn.running_var, plain.running_var)


def test_undetached_weights_change_the_gradient_of_gamma():
    torch.manual_seed(1)
    x = torch.randn(4, 8, 5, 5, dtype=torch.float64)
    detached = NAM(8, detach_weights=True).double()
    _random_affine(detached.bn)
    attached = NAM(8, detach_weights=False).double()
    attached.load_state_dict(detached.state_dict())
    for module in (detached, attached):
        module(x).square().sum().backward()
    gamma = detached.bn.weight.detach().clone().requires_grad_()
    bn = nn.BatchNorm2d(8).double()
    x_hat = bn(x).detach()  # the normalised input; BN(x) = gamma * x_hat + beta
    w = gamma.abs() / gamma.abs().sum()
    z = (gamma * x_hat.transpose(1, -1) + detached.bn.bias.detach()) * w
    (x.transpose(1, -1) * torch.sigmoid(z)).square().sum().backward()
    torch.testing.assert_close(attached.bn.weight.grad, gamma.grad)
    assert not torch.allclose(attached.bn.weight.grad, detached.bn.weight.grad)


def test_starts_as_an_almost_constant_half_gate():
    module = NAM(64)
    x = torch.randn(8, 64, 8, 8)
    gate = module(x) / x
    assert abs(gate.mean().item() - 0.5) < 1e-3 and gate.std().item() < 0.01


def test_spatial_branch_matches_the_first_official_commit():
    ours = NAM(8, spatial=True, spatial_size=(4, 5)).double()
    _random_affine(ours.bn, ours.pixel_bn)
    channel = _official(ours)
    pixel = OfficialNAMPixel(20).double()
    pixel.bn.load_state_dict(ours.pixel_bn.state_dict())
    x = torch.randn(3, 8, 4, 5, dtype=torch.float64)
    assert (ours(x) - pixel(channel(x))).abs().max().item() <= 1e-6
    torch.testing.assert_close(ours.pixel_bn.running_mean, pixel.bn.running_mean)


def test_parameter_counts():
    assert n_params(NAM(64)) == 2 * 64
    assert n_params(NAM(64, spatial=True, spatial_size=8)) == 2 * 64 + 2 * 64


def test_sparsity_loss_is_l1_on_every_nam_scale_factor():
    model = nn.Sequential(NAM(8), nn.Conv2d(8, 8, 1), NAM(8, spatial=True, spatial_size=4), SqueezeExcite(8))
    _random_affine(model[0].bn, model[2].bn, model[2].pixel_bn)
    factors = [model[0].bn.weight, model[2].bn.weight, model[2].pixel_bn.weight]
    loss = nam_sparsity_loss(model, weight=1e-4)
    torch.testing.assert_close(loss, 1e-4 * sum(f.abs().sum() for f in factors))
    loss.backward()
    # The official script adds s * sign(gamma) to the gradients: the same thing.
    for f in factors:
        torch.testing.assert_close(f.grad, 1e-4 * torch.sign(f.detach()))
    assert model[1].weight.grad is None


def test_sparsity_loss_errors():
    with pytest.raises(ValueError, match="Sequential contains no NAM module"):
        nam_sparsity_loss(nn.Sequential(nn.Conv2d(3, 3, 1)))
    with pytest.raises(ValueError, match="weight must be >= 0"):
        nam_sparsity_loss(NAM(4), weight=-1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(spatial=True), "spatial=True needs spatial_size"),
    (dict(spatial=True, spatial_size=(0, 4)), "positive integer"),
])
def test_rejects_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NAM(8, **kwargs)


@pytest.mark.parametrize("spatial", [True, False])
def test_a_declared_spatial_size_is_checked(spatial):
    with pytest.raises(ValueError, match=r"built for spatial_size=\(4, 4\), got an input of spatial size \(8, 8\)"):
        NAM(8, spatial=spatial, spatial_size=4)(torch.randn(2, 8, 8, 8))


def test_spatial_branch_gradcheck():
    module = NAM(4, spatial=True, spatial_size=3).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-5)
