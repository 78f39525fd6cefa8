import numpy as np
import pytest
import torch

from attn.checks import check_feature_map, positive_int, spatial_pair


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
