"""add_attention on torchvision models: placement, parameters, pretrained weights, errors."""

import copy
import pickle

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck

import attn
from attn.integrations.torchvision import SUPPORTED_BLOCKS, add_attention, attention_modules
from conftest import n_params

# torchvision constructor -> how many blocks get a module (MobileNetV2: the 10 of 17 with a residual add)
MODELS = {"resnet18": 8, "resnet50": 16, "mobilenet_v2": 10}
# Registry names that work on any input size, with the keywords they need for that.
ANY_SIZE = {"se": {}, "eca": {}, "ge_theta_minus": {}, "ge_theta": {"extent": 4}, "nam": {}}
INPUT = (1, 3, 32, 32)  # small: layer4 of a ResNet sees 1x1 maps, enough to check the wiring


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def build(name: str) -> nn.Module:
    return getattr(torchvision.models, name)(weights=None)


@pytest.fixture(scope="module")
def originals() -> dict[str, nn.Module]:
    """One model of each kind without attention, built once (ResNet-50 takes a while)."""
    torch.manual_seed(0)
    return {name: build(name).eval() for name in MODELS}


def with_attention(original: nn.Module, attention, **kwargs) -> nn.Module:
    model = add_attention(copy.deepcopy(original), attention, **kwargs)
    return model.eval()


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("attention", ANY_SIZE)
def test_parameters_grow_by_exactly_the_modules_and_shapes_stay(originals, model_name, attention):
    original = originals[model_name]
    model = with_attention(original, attention, **ANY_SIZE[attention])
    modules = attention_modules(model)
    assert len(modules) == MODELS[model_name]
    assert n_params(model) == n_params(original) + sum(n_params(m) for m in modules)
    x = torch.randn(INPUT)
    with torch.no_grad():
        assert model(x).shape == original(x).shape == (1, 1000)


@pytest.mark.parametrize("model_name", MODELS)
def test_original_state_dict_loads_with_only_the_new_keys_missing(originals, model_name):
    original = originals[model_name]
    pretrained = copy.deepcopy(original.state_dict())
    model = add_attention(build(model_name), "se")
    result = model.load_state_dict(pretrained, strict=False)
    new_keys = {key for key in model.state_dict() if ".attention." in key}
    assert set(result.missing_keys) == new_keys and new_keys
    assert result.unexpected_keys == []
    for key, value in pretrained.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_add_attention_leaves_existing_weights_untouched(originals):
    model = copy.deepcopy(originals["resnet18"])
    before = copy.deepcopy(model.state_dict())
    add_attention(model, "eca")
    after = model.state_dict()
    assert all(torch.equal(after[key], value) for key, value in before.items())


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("attention", ["se", "eca", "ge_theta_minus", "nam"])
def test_a_gate_forced_to_one_gives_the_original_output(originals, model_name, attention, monkeypatch):
    """Every module here gates with torch.sigmoid; with the gate at 1 the network is the original one."""
    original = originals[model_name]
    model = with_attention(original, attention)
    x = torch.randn(INPUT)
    with torch.no_grad():
        expected = original(x)
        scale = expected.abs().max()  # fresh MobileNetV2 logits are ~1e-9: compare relative to their size
        assert (model(x) - expected).abs().max() > 1e-3 * scale  # the real gate changes the output
        monkeypatch.setattr(torch, "sigmoid", torch.ones_like)
        torch.testing.assert_close(model(x) / scale, expected / scale)


class _ZeroGate(nn.Module):
    """Gate 0: the residual branch vanishes, so each block reduces to its shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.channels
        return x * 0


@pytest.mark.parametrize("model_name", MODELS)
def test_module_sits_on_the_residual_branch_before_the_add(originals, model_name):
    model = with_attention(originals[model_name], _ZeroGate)
    blocks = [m for m in model.modules() if hasattr(m, "attention")]
    for block in blocks:
        in_channels = block.conv1.in_channels if hasattr(block, "conv1") else block.attention.channels
        x = torch.randn(2, in_channels, 4, 4)
        shortcut = x if getattr(block, "downsample", None) is None else block.downsample(x)
        expected = torch.relu(shortcut) if isinstance(block, (BasicBlock, Bottleneck)) else x
        with torch.no_grad():
            torch.testing.assert_close(block(x), expected)


def test_module_is_built_for_the_blocks_output_channels(originals):
    model = with_attention(originals["resnet50"], "se")
    channels = [m.channels for m in attention_modules(model)]
    assert channels == [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    names = [name for name, _ in model.named_modules() if name.endswith(".attention")]
    assert names[0] == "layer1.0.attention" and names[-1] == "layer4.2.attention"


def test_mobilenet_blocks_without_a_residual_add_get_no_module(originals):
    model = with_attention(originals["mobilenet_v2"], "eca")
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    for block in blocks:
        assert hasattr(block, "attention") == block.use_res_connect


@pytest.mark.parametrize("constructor", ["resnet34", "resnext50_32x4d", "wide_resnet50_2"])
def test_other_resnets_get_one_module_per_block(constructor):
    model = add_attention(build(constructor), "eca")
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(attention_modules(model)) == len(blocks) == 16
    assert all(isinstance(block, type(blocks[0])) for block in blocks)  # still torchvision's classes


def test_blocks_stay_instances_of_their_torchvision_class(originals):
    model = with_attention(originals["resnet18"], "eca")
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 8


def test_deepcopy_and_pickle_keep_the_modules_working(originals):
    model = with_attention(originals["resnet18"], "se")
    x = torch.randn(1, 3, 32, 32)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert attention_modules(clone)[0] is not attention_modules(model)[0]
        with torch.no_grad():
            torch.testing.assert_close(clone(x), model(x))


def test_gradients_reach_the_new_modules(originals):
    model = with_attention(originals["resnet18"], "eca").train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(m.conv.weight.grad is not None and m.conv.weight.grad.abs().sum() > 0 for m in attention_modules(model))


def test_modules_follow_the_models_dtype(originals):
    model = add_attention(copy.deepcopy(originals["resnet18"]).double(), "se")
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_factory_receives_the_keyword_arguments(originals):
    seen = []

    def factory(channels: int, scale: float) -> nn.Module:
        seen.append((channels, scale))
        return nn.Identity()

    with_attention(originals["resnet18"], factory, scale=0.5)
    assert seen == [(64, 0.5)] * 2 + [(128, 0.5)] * 2 + [(256, 0.5)] * 2 + [(512, 0.5)] * 2


def test_exported_from_the_package():
    assert "add_attention" in attn.__all__
    model = attn.add_attention(torchvision.models.resnet18(weights=None), "eca")
    assert len(attention_modules(model)) == 8


def test_unsupported_model_names_the_supported_blocks():
    """MobileNetV3's InvertedResidual is another class (it has its own SE already)."""
    with pytest.raises(ValueError, match="no supported residual block in MobileNetV3") as error:
        add_attention(torchvision.models.mobilenet_v3_small(weights=None), "se")
    for block in SUPPORTED_BLOCKS:
        assert block in str(error.value)


def test_adding_twice_is_refused(originals):
    model = with_attention(originals["resnet18"], "eca")
    with pytest.raises(ValueError, match="already has attention"):
        add_attention(model, "se")


@pytest.mark.parametrize(
    "attention, kwargs, error, message",
    [
        ("none", {}, ValueError, "not 'none'"),
        (3, {}, ValueError, "registry name"),
        ("ecaa", {}, ValueError, "Did you mean 'eca'"),
        ("se", {"spatial_size": 56}, ValueError, "extent=2, 4 or 8"),
        ("ge_theta", {}, ValueError, "extent=2, 4 or 8"),
        ("eca", {"reduction": 4}, TypeError, "does not take 'reduction'"),
    ],
)
def test_bad_attention_arguments_fail_before_the_model_changes(originals, attention, kwargs, error, message):
    model = copy.deepcopy(originals["resnet18"])
    with pytest.raises(error, match=message):
        add_attention(model, attention, **kwargs)
    assert attention_modules(model) == []


def test_a_module_that_fails_for_a_late_block_leaves_the_model_unchanged(originals):
    """Every module is built before any block changes: a failure at the last stage changes nothing."""

    def factory(channels: int) -> nn.Module:
        if channels == 512:
            raise ValueError("no module for 512 channels")
        return nn.Identity()

    model = copy.deepcopy(originals["resnet18"])
    with pytest.raises(ValueError, match="512 channels"):
        add_attention(model, factory)
    assert attention_modules(model) == []
    assert [type(m) for m in model.modules()] == [type(m) for m in originals["resnet18"].modules()]


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        add_attention("resnet18", "se")
