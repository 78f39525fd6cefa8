from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from attn.checks import check_feature_map, check_spatial_size, positive_int, spatial_pair


@pytest.mark.parametrize("value", [1, 16, np.int64(4)])
def test_positive_int_accepts_integers(value):
    assert positive_int("M", "reduction", value) == int(value)


@pytest.mark.parametrize("value", [0, -4, 2.5, 16.0, "16", None, True])
def test_positive_int_rejects_with_a_message_naming_owner_and_argument(value):
    with pytest.raises(ValueError, match=r"M: reduction must be a positive integer"):
        positive_int("M", "reduction", value)


def test_spatial_pair():
    assert spatial_pair("M", 8) == (8, 8)
    assert spatial_pair("M", (4, 6)) == (4, 6)
    with pytest.raises(ValueError, match="int or \\(H, W\\)"):
        spatial_pair("M", (1, 2, 3))
    with pytest.raises(ValueError, match="positive integer"):
        spatial_pair("M", (0, 4))


def test_check_feature_map_messages():
    check_feature_map("M", torch.zeros(2, 8, 4, 4), 8)
    with pytest.raises(ValueError, match=r"M: expected a 4-D input .* got a 3-D tensor of shape \(8, 4, 4\)"):
        check_feature_map("M", torch.zeros(8, 4, 4), 8)
    with pytest.raises(ValueError, match=r"M: channel mismatch: built for C=8 channels, got an input with 6 channels"):
        check_feature_map("M", torch.zeros(2, 6, 4, 4), 8)
    with pytest.raises(ValueError, match="expected a torch.Tensor"):
        check_feature_map("M", np.zeros((2, 8, 4, 4)), 8)


def test_check_spatial_size_message():
    check_spatial_size("M", torch.zeros(2, 8, 4, 6), (4, 6))
    check_spatial_size("M", torch.zeros(2, 8, 4, 6), None)
    with pytest.raises(ValueError, match=r"M: built for spatial_size=\(4, 6\), got an input of spatial size \(5, 6\)"):
        check_spatial_size("M", torch.zeros(2, 8, 5, 6), (4, 6))


def _checked(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    check_feature_map("M", x, 8)
    check_spatial_size("M", x, size)
    return x


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("shape", [(2, 8, 4, 4), (8,), (8, 4, 4), (2, 6, 4, 4), (2, 8, 5, 4)])
def test_the_input_checks_compile_with_torchscript_and_keep_their_messages(shape):
    scripted = torch.jit.script(_checked)
    x = torch.zeros(shape)
    try:
        _checked(x, (4, 4))
    except ValueError as error:
        with pytest.raises(torch.jit.Error, match=re.escape(f"builtins.ValueError: {error}")):
            scripted(x, (4, 4))
    else:
        assert scripted(x, (4, 4)) is not None


def test_the_input_checks_do_nothing_under_tracing():
    """A traced graph keeps no Python condition (and the ONNX exporter's traced sizes would make them warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(lambda x: _checked(x, (4, 4)) * 2, torch.zeros(2, 6, 5, 4), check_trace=False)
    assert traced(torch.ones(2, 6, 5, 4)).sum() == 2 * 2 * 6 * 20
