"""The ECA paper's SE ablation variants (Table 2): formulas, weight matrices, parameter counts."""

import pytest
import torch

from attn import SEGroupConv, SEVar1, SEVar2, SEVar3
from conftest import n_params


def _interaction_matrix(module) -> torch.Tensor:
    """The C x C matrix M with logits = M y (every variant here is linear in y)."""
    eye = torch.eye(module.channels, dtype=torch.float64)
    return module.double().excite(eye).T


@pytest.mark.parametrize("channels", [16, 64, 256])
def test_parameter_counts_follow_table_2(channels):
    assert n_params(SEVar1(channels)) == 0
    assert n_params(SEVar2(channels)) == channels
    assert n_params(SEVar3(channels)) == channels**2
    assert n_params(SEGroupConv(channels, groups=16)) == channels**2 // 16
    assert n_params(SEGroupConv(channels, groups=channels // 16)) == 16 * channels
    assert n_params(SEGroupConv(channels, groups=channels // 8)) == 8 * channels


def test_var1_is_sigmoid_of_the_pooled_descriptor():
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(SEVar1(8)(x), x * torch.sigmoid(x.mean((2, 3)))[:, :, None, None])


def test_var2_is_diagonal_and_starts_as_var1():
    module = SEVar2(8)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(module(x), SEVar1(8)(x))
    with torch.no_grad():
        module.weight.uniform_(-2, 2)
    matrix = _interaction_matrix(module)
    torch.testing.assert_close(matrix, torch.diag(module.weight.detach().double()))


def test_var3_is_a_full_matrix():
    module = SEVar3(8)
    matrix = _interaction_matrix(module)
    torch.testing.assert_close(matrix, module.fc.weight.detach().double())
    assert (matrix != 0).all()


def test_group_conv_is_block_diagonal():
    module = SEGroupConv(16, groups=4)
    matrix = _interaction_matrix(module)
    block = torch.block_diag(*[torch.ones(4, 4)] * 4).bool()
    assert (matrix[~block] == 0).all() and (matrix[block] != 0).all()


@pytest.mark.parametrize("groups, message", [
    (0, "groups must be a positive integer"),
    (2.0, "groups must be a positive integer"),
    (3, "groups=3 must divide channels=16"),
    (32, "groups=32 must divide channels=16"),
])
def test_group_conv_rejects_bad_groups(groups, message):
    with pytest.raises(ValueError, match=message):
        SEGroupConv(16, groups=groups)


def test_se_gc_takes_a_group_size_instead_of_a_group_count():
    assert SEGroupConv(64, group_size=4).groups == 16 and SEGroupConv(16, group_size=4).groups == 4
    assert SEGroupConv(16).groups == 16  # the paper's SE-GC1 default: a diagonal at C = 16
    assert sum(p.numel() for p in SEGroupConv(32, group_size=4).parameters()) == 32 * 4
    with pytest.raises(ValueError, match="group_size=3 must divide channels=16"):
        SEGroupConv(16, group_size=3)
    with pytest.raises(ValueError, match="groups or group_size, not both"):
        SEGroupConv(16, groups=4, group_size=4)
