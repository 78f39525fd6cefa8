"""The gate function and the identity-at-start form: exact identity where a module has one, refused elsewhere."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import attn
from attn.gates import resolve_gate_layer
from attn.registry import IDENTITY_AT_START
from conftest import build_kwargs

WITHOUT = sorted(set(attn.available()) - set(IDENTITY_AT_START))

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", IDENTITY_AT_START)
def test_identity_at_start_computes_exactly_x_and_training_moves_it(name):
    module = attn.create(name, 32, identity_at_start=True, **build_kwargs(name, 8)).train()
    x = torch.randn(4, 32, 8, 8)
    assert torch.equal(module(x), x)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    target = torch.randn_like(x)
    for _ in range(2):  # the zeroed layer gets a gradient at once, the layers before it one step later
        optimizer.zero_grad()
        F.mse_loss(module(x), target).backward()
        optimizer.step()
    assert not torch.allclose(module(x), x)


@pytest.mark.parametrize("name", WITHOUT)
def test_modules_without_an_identity_form_refuse_it_naming_those_with_one(name):
    with pytest.raises(ValueError, match="no identity-at-start form.*the modules that have one: se, se_var2"):
        attn.create(name, 32, identity_at_start=True, **build_kwargs(name, 8))
    assert set(WITHOUT) == {"se_var1", "ge_theta_minus", "nam"}


def test_the_2sigmoid_gate_is_twice_the_sigmoid_and_one_at_zero_logits():
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    expected = x * 2 * torch.sigmoid(x.mean((2, 3), keepdim=True))
    torch.testing.assert_close(attn.SEVar1(8, gate_layer="2sigmoid")(x), expected)
    torch.testing.assert_close(attn.GatherExcite(8, gate_layer="2sigmoid")(x), expected)
    assert resolve_gate_layer("M", None, False) == "sigmoid" and resolve_gate_layer("M", None, True) == "2sigmoid"
    with pytest.raises(ValueError, match="identity_at_start=True needs gate_layer='2sigmoid'"):
        attn.SqueezeExcite(8, gate_layer="sigmoid", identity_at_start=True)
    with pytest.raises(ValueError, match="gate_layer must be one of"):
        attn.EfficientChannelAttention(8, gate_layer="tanh")


@pytest.mark.parametrize("name", attn.available())
def test_forward_multiplies_the_input_by_the_modules_gate(name):
    module = attn.create(name, 16, **build_kwargs(name, 8)).eval()
    x = torch.randn(3, 16, 8, 8, dtype=torch.float64)
    module.double()
    gate = module.gate(x)
    if gate.dim() == 2:
        gate = gate[:, :, None, None]
    elif gate.shape[-2:] != x.shape[-2:]:
        gate = F.interpolate(gate, size=x.shape[-2:], mode="nearest")
    torch.testing.assert_close(module(x), x * gate)


def test_gather_excite_can_be_initialised_as_the_official_prototxts_train_it():
    torch.manual_seed(0)
    official = attn.GatherExcite(64, "theta_plus", spatial_size=16, official_init=True)
    default = attn.GatherExcite(64, "theta_plus", spatial_size=16)
    conv, bn = official.gather[0], official.gather[1]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)
    assert conv.weight.std().item() > 2 * default.gather[0].weight.std().item()
    assert bn.momentum == 0.05 and default.gather[1].momentum == 0.1
    mlp_convs = [layer for layer in official.mlp if isinstance(layer, torch.nn.Conv2d)]
    assert all(layer.weight.std().item() == pytest.approx(0.01, rel=0.1) for layer in mlp_convs)
    assert all(torch.all(layer.bias == 0) for layer in mlp_convs)
    local = attn.GatherExcite(16, "theta", extent=4, official_init=True)
    assert all(m.momentum == 0.05 for m in local.gather if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match="official_init needs learned parts"):
        attn.GatherExcite(16, "theta_minus", official_init=True)
