"""The registry, and the contract every registered module keeps."""

import pytest
import torch
from torch import nn

import attn
from conftest import build_kwargs

NAMES = [
    "se", "se_var1", "se_var2", "se_var3", "se_gc", "eca_ns", "eca",
    "ge_theta_minus", "ge_theta", "ge_theta_plus", "nam",
]


def test_available_lists_exactly_the_documented_names_in_book_order():
    assert attn.available() == NAMES


@pytest.mark.parametrize("name", [None, "none"])
def test_none_gives_identity(name):
    assert isinstance(attn.create(name, 16), nn.Identity)


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(ValueError, match=r"unknown attention 'ecca'\. Did you mean 'eca'\? Known: none, se, se_var1"):
        attn.create("ecca", 16)


def test_unknown_keyword_names_the_accepted_ones():
    with pytest.raises(TypeError, match=r"attention 'eca' does not take 'reduction'; it takes: kernel_size, gamma, b"):
        attn.create("eca", 16, reduction=4)
    with pytest.raises(TypeError, match="does not take 'variant'"):
        attn.create("ge_theta", 16, variant="theta_plus")


def test_keywords_are_forwarded():
    assert attn.create("se", 64, reduction=4).hidden_channels == 16
    assert attn.create("ge_theta_plus", 8, extent=2).variant == "theta_plus"


def test_register_adds_a_factory_and_refuses_duplicates():
    attn.register("test_identity_gate", lambda channels: nn.Identity())
    try:
        assert "test_identity_gate" in attn.available()
        assert isinstance(attn.create("test_identity_gate", 4), nn.Identity)
        with pytest.raises(ValueError, match="already registered"):
            attn.register("test_identity_gate", lambda channels: nn.Identity())
    finally:
        attn.registry._FACTORIES.pop("test_identity_gate")
    with pytest.raises(ValueError, match="other than 'none'"):
        attn.register("none", lambda channels: nn.Identity())


# --- the module contract ------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_preserves_shape_and_dtype(name, dtype):
    module = attn.create(name, 16, **build_kwargs(name, 8)).to(dtype)
    x = torch.randn(2, 16, 8, 8, dtype=dtype)
    y = module(x)
    assert y.shape == x.shape and y.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_the_same_values_and_layout(name):
    module = attn.create(name, 16, **build_kwargs(name, 8)).eval()
    x = torch.randn(3, 16, 8, 8)
    y = module(x)
    y_cl = module(x.contiguous(memory_format=torch.channels_last))
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_cl, y)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_in_float64(name):
    module = attn.create(name, 16, **build_kwargs(name, 4)).double()
    x = torch.randn(2, 16, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_wrong_rank_and_channel_count(name):
    module = attn.create(name, 16, **build_kwargs(name, 8))
    with pytest.raises(ValueError, match=r"expected a 4-D input of shape \(N, C, H, W\) with C=16"):
        module(torch.randn(16, 8, 8))
    with pytest.raises(ValueError, match=r"channel mismatch: built for C=16 channels, got an input with 12"):
        module(torch.randn(2, 12, 8, 8))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [0, -3, 2.0])
def test_rejects_bad_channel_counts(name, channels):
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        attn.create(name, channels, **build_kwargs(name, 8))


@pytest.mark.parametrize("name", NAMES)
def test_repr_states_the_configuration(name):
    text = repr(attn.create(name, 16, **build_kwargs(name, 8)))
    assert "channels=16" in text
