"""timm's ResNets with attn modules through timm's own attn_layer hook."""

from __future__ import annotations

import warnings

import pytest
import torch

from attn.integrations.timm import attn_block_args, attn_layer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # recent torch warns about timm's use of torch.jit
    timm = pytest.importorskip("timm", reason="timm is in the test extra: pip install -e '.[test]'")

pytestmark = pytest.mark.usefixtures("one_thread")


def added_parameters(model: torch.nn.Module, plain: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters())


def test_eca_resnet50_is_timm_s_own_eca_resnet_with_the_same_weights():
    ours = timm.create_model("resnet50", block_args=attn_block_args("eca")).eval()
    theirs = timm.create_model("resnet50", block_args=dict(attn_layer="eca")).eval()
    assert added_parameters(ours, timm.create_model("resnet50")) == 86  # Eq. 12: k = 5, 5, 5, 7
    ours.load_state_dict(theirs.state_dict())  # the same keys: <block>.se.conv.weight
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_a_plain_checkpoint_loads_with_only_the_attention_keys_missing():
    model = timm.create_model("resnet18", block_args=attn_block_args("se", reduction=8))
    report = model.load_state_dict(timm.create_model("resnet18").state_dict(), strict=False)
    assert report.unexpected_keys == [] and report.missing_keys
    assert all(".se." in key for key in report.missing_keys)
    assert type(model.layer4[1].se).__name__ == "SqueezeExcite"


def test_modules_that_need_a_spatial_size_and_bad_names_fail_before_timm_builds_anything():
    with pytest.raises(ValueError, match="extent=2, 4 or 8"):
        attn_layer("ge_theta")
    assert attn_layer("ge_theta", extent=2)(64).extent == 2
    with pytest.raises(ValueError, match="unknown attention 'eac'"):
        attn_layer("eac")
    with pytest.raises(TypeError, match="does not take 'reduction'"):
        attn_layer("eca", reduction=4)
