"""add_attention on torchvision models: placement, parameters, pretrained weights, errors."""

import copy
import pickle
import re

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck

import attn
import attn.integrations.torchvision as torchvision_integration
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
        ("eca", {"residual_only": "no"}, ValueError, "residual_only must be True or False, got 'no'"),
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


# --- the official ECA networks (BangguWu/ECANet: models/eca_resnet.py, models/eca_mobilenetv2.py) -----

ECA_RESNET50_K = {256: 3, 512: 5, 1024: 5, 2048: 7}  # ECA-Net50 as released, "k3557"
# MobileNetV2's stages (t, c, n, s): expansion, output channels, blocks, first stride.
MOBILENET_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def official_eca_mobilenet_k(channels: int) -> int:
    """The official ECA-MobileNetV2's rule (since its PR #32): k = 1 below 96 channels, else 3."""
    return 1 if channels < 96 else 3


def eca_resnet50(originals) -> nn.Module:
    return with_attention(originals["resnet50"], lambda c: attn.create("eca", c, kernel_size=ECA_RESNET50_K[c]))


def eca_mobilenet_v2(originals) -> nn.Module:
    factory = lambda c: attn.create("eca", c, kernel_size=official_eca_mobilenet_k(c))  # noqa: E731
    return with_attention(originals["mobilenet_v2"], factory, residual_only=False)


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}
    return {**shapes, f"{prefix}.num_batches_tracked": ()}


def official_eca_resnet50_shapes() -> dict[str, tuple[int, ...]]:
    """The state dict layout of the official ``eca_resnet50(k_size=[3, 5, 5, 7])``, from its source: key -> shape."""
    shapes = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            shapes |= {f"{p}.conv1.weight": (planes, inplanes, 1, 1), **_bn(f"{p}.bn1", planes)}
            shapes |= {f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn2", planes)}
            shapes |= {f"{p}.conv3.weight": (4 * planes, planes, 1, 1), **_bn(f"{p}.bn3", 4 * planes)}
            shapes[f"{p}.eca.conv.weight"] = (1, 1, ECA_RESNET50_K[4 * planes])
            if b == 0:
                shapes |= {f"{p}.downsample.0.weight": (4 * planes, inplanes, 1, 1), **_bn(f"{p}.downsample.1", 4 * planes)}
            inplanes = 4 * planes
    return shapes | {"fc.weight": (1000, 2048), "fc.bias": (1000,)}


def official_eca_mobilenet_v2_shapes() -> dict[str, tuple[int, ...]]:
    """The state dict layout of the official ``eca_mobilenet_v2()``, from its source: key -> shape.

    ``features.0`` and ``features.18`` are ConvBNReLUs (conv, BN, ReLU6); every InvertedResidual's
    ``conv`` is the sequence [ConvBNReLU 1x1 if t != 1], ConvBNReLU 3x3 depthwise, 1x1 conv, BN, eca_layer.
    """
    shapes = {"features.0.0.weight": (32, 3, 3, 3), **_bn("features.0.1", 32)}
    index, inp = 1, 32
    for t, c, n, _ in MOBILENET_V2_STAGES:
        for _ in range(n):
            hidden, p, j = round(inp * t), f"features.{index}.conv", 0
            if t != 1:  # the pointwise expansion
                shapes |= {f"{p}.0.0.weight": (hidden, inp, 1, 1), **_bn(f"{p}.0.1", hidden)}
                j = 1
            shapes |= {f"{p}.{j}.0.weight": (hidden, 1, 3, 3), **_bn(f"{p}.{j}.1", hidden)}  # depthwise
            shapes |= {f"{p}.{j + 1}.weight": (c, hidden, 1, 1), **_bn(f"{p}.{j + 2}", c)}  # pointwise-linear, BN
            shapes[f"{p}.{j + 3}.conv.weight"] = (1, 1, official_eca_mobilenet_k(c))  # eca_layer
            index, inp = index + 1, c
    shapes |= {f"features.{index}.0.weight": (1280, 320, 1, 1), **_bn(f"features.{index}.1", 1280)}
    return shapes | {"classifier.1.weight": (1000, 1280), "classifier.1.bias": (1000,)}


def random_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {
        key: torch.tensor(7) if key.endswith("num_batches_tracked") else torch.randn(shape)
        for key, shape in shapes.items()
    }


def test_eca_resnet50_with_the_official_kernel_sizes_adds_the_papers_80_parameters(originals):
    model = eca_resnet50(originals)
    assert [m.kernel_size for m in attention_modules(model)] == [3] * 3 + [5] * 4 + [5] * 6 + [7] * 3
    assert n_params(model) - n_params(originals["resnet50"]) == 80


def test_eca_resnet50_with_the_adaptive_kernel_size_adds_86_parameters(originals):
    model = with_attention(originals["resnet50"], "eca")
    assert [m.kernel_size for m in attention_modules(model)] == [5] * 3 + [5] * 4 + [5] * 6 + [7] * 3
    assert n_params(model) - n_params(originals["resnet50"]) == 86


def test_the_official_eca_resnet50_state_dict_loads_after_the_documented_rename(originals):
    assert "``layerS.B.eca.conv.weight``" in torchvision_integration.__doc__  # the rename, as documented
    assert "``layerS.B.attention.conv.weight``" in torchvision_integration.__doc__
    official = random_state(official_eca_resnet50_shapes())
    model = eca_resnet50(originals)
    model.load_state_dict({key.replace(".eca.", ".attention."): value for key, value in official.items()})
    torch.testing.assert_close(model.layer4[2].attention.conv.weight, official["layer4.2.eca.conv.weight"])
    torch.testing.assert_close(model.layer1[0].conv1.weight, official["layer1.0.conv1.weight"])


def test_eca_mobilenet_v2_gates_all_17_blocks_with_31_parameters(originals):
    model = eca_mobilenet_v2(originals)
    modules = attention_modules(model)
    assert len(modules) == 17
    assert [m.kernel_size for m in modules] == [1] * 10 + [3] * 7  # C = 16, 24, 32, 64: k = 1; 96, 160, 320: k = 3
    assert n_params(model) - n_params(originals["mobilenet_v2"]) == 31
    with torch.no_grad():
        assert model(torch.randn(INPUT)).shape == (1, 1000)


def test_residual_only_false_gates_the_blocks_without_an_add_after_their_last_bn(originals):
    model = with_attention(originals["mobilenet_v2"], _ZeroGate, residual_only=False)
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert all(hasattr(block, "attention") for block in blocks)
    for block in blocks:
        x = torch.randn(2, block.attention.channels if block.use_res_connect else block.conv[0][0].in_channels, 8, 8)
        with torch.no_grad():
            out = block(x)
        torch.testing.assert_close(out, x if block.use_res_connect else torch.zeros_like(out))


def test_residual_only_changes_nothing_in_a_resnet(originals):
    assert len(attention_modules(with_attention(originals["resnet18"], "eca", residual_only=False))) == 8


def test_the_official_eca_mobilenet_v2_state_dict_loads_after_the_documented_rename(originals):
    assert r"""re.sub(r"\.conv\.\d+\.conv\.", ".attention.conv.", key)""" in torchvision_integration.__doc__
    official = random_state(official_eca_mobilenet_v2_shapes())
    model = eca_mobilenet_v2(originals)
    model.load_state_dict({re.sub(r"\.conv\.\d+\.conv\.", ".attention.conv.", key): v for key, v in official.items()})
    torch.testing.assert_close(model.features[1].attention.conv.weight, official["features.1.conv.3.conv.weight"])
    torch.testing.assert_close(model.features[17].attention.conv.weight, official["features.17.conv.4.conv.weight"])
    torch.testing.assert_close(model.features[17].conv[2].weight, official["features.17.conv.2.weight"])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_the_attentive_models_compile_with_torchscript(originals):
    for model in (with_attention(originals["resnet18"], "se"), eca_mobilenet_v2(originals)):
        x = torch.randn(INPUT)
        with torch.no_grad():
            torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def pretrained_like(seed: int = 0) -> nn.Module:
    """A ResNet-18 whose weights and batch-norm statistics are not the constructor's (nothing downloads):
    its own state dict after a few training-mode batches, loaded back as a checkpoint would be."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10).train()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        for _ in range(3):
            model(torch.randn(8, 3, 64, 64))
    loaded = torchvision.models.resnet18(num_classes=10)
    loaded.load_state_dict(model.state_dict())
    return loaded.eval()


IDENTITY_KWARGS = {"ge_theta": {"extent": 2}, "ge_theta_plus": {"extent": 2}}


@pytest.mark.parametrize("attention", attn.registry.IDENTITY_AT_START)
def test_identity_at_start_leaves_a_loaded_networks_logits_unchanged_and_fine_tuning_moves_the_gates(attention):
    plain = pretrained_like()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        before = plain(x)
    model = add_attention(copy.deepcopy(plain), attention, identity_at_start=True, **IDENTITY_KWARGS.get(attention, {}))
    model.eval()
    with torch.no_grad():
        assert (model(x) - before).abs().max().item() <= 1e-6
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
        optimizer.step()
    block = model.layer4[1]
    features = torch.randn(2, block.attention.channels, 4, 4)
    with torch.no_grad():
        assert not torch.allclose(block.attention.eval()(features), features)


def test_a_default_gate_halves_the_branch_and_identity_at_start_is_refused_where_no_form_exists():
    plain = pretrained_like()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        before = plain(x)
        changed = add_attention(copy.deepcopy(plain), "se").eval()(x)
    assert (changed - before).abs().max().item() > 1e-2  # sigmoid(~0) = 0.5 on every residual branch
    for attention in ("se_var1", "ge_theta_minus", "nam"):
        with pytest.raises(ValueError, match="no identity-at-start form.*modules that have one: se, "):
            add_attention(copy.deepcopy(plain), attention, identity_at_start=True)
