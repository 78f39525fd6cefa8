"""Export and compilation of every registry module: ONNX, TorchScript, torch.compile.

Each module sits in a small conv net (stem, module, 1x1 head: the output is a feature map,
so a misplaced gate cannot average out) and, through ``add_attention``, in a torchvision
ResNet-18. ONNX graphs come from the TorchScript-based exporter (``dynamo=False``) and the
default one (``dynamo=True``), with a dynamic batch size and, for the modules that take any
input size, a dynamic height and width; onnxruntime must give torch's output within 1e-5
(fp32) on an input of another size than the one exported with. ``torch.jit.script`` must
compile the modules (and save and load), ``torch.jit.trace`` and ``torch.compile(fullgraph=True)``
must give the eager output. Modules built for one ``spatial_size`` (global GE-θ/θ⁺, NAM's pixel
branch) export for that size only.

``torch.compile`` runs with ``backend="aot_eager"``: ``fullgraph=True`` is a property of
dynamo's graph capture, which this checks without generating and compiling C++ code.
"""

from __future__ import annotations

import copy
import io
import re

import pytest
import torch
import torchvision
from torch import nn

import attn
from attn.integrations.torchvision import attention_modules

pytestmark = [
    pytest.mark.usefixtures("one_thread"),  # see conftest.one_thread
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # the TorchScript-based exporter
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # torch.jit.script and trace
    pytest.mark.filterwarnings("ignore:Constant folding:UserWarning"),  # the TorchScript-based exporter's notes
]

SIZE = 8  # the small net's input is (N, 3, SIZE, SIZE) when exported
CHANNELS = 16
# id -> (registry name, keyword arguments): every registered module with its defaults, and the
# other code paths: local gathers (average pooling, strided depthwise convs), NAM's pixel branch.
CONFIGS: dict[str, tuple[str, dict[str, object]]] = {
    **{name: (name, {}) for name in attn.available()},
    "ge_theta": ("ge_theta", {"spatial_size": SIZE}),
    "ge_theta_plus": ("ge_theta_plus", {"spatial_size": SIZE}),
    "ge_theta_minus-extent2": ("ge_theta_minus", {"extent": 2}),
    "ge_theta-extent4": ("ge_theta", {"extent": 4}),
    "ge_theta_plus-extent2": ("ge_theta_plus", {"extent": 2}),
    "nam-spatial": ("nam", {"spatial": True, "spatial_size": SIZE}),
}
TOLERANCE = 1e-5


class SmallNet(nn.Module):
    """conv 3x3 -> BN -> ReLU -> attention -> conv 1x1: ``(N, 3, H, W) -> (N, 4, H, W)``."""

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, CHANNELS, 3, padding=1, bias=False), nn.BatchNorm2d(CHANNELS), nn.ReLU())
        self.attention = attention
        self.head = nn.Conv2d(CHANNELS, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attention(self.stem(x)))


def _randomise(module: nn.Module) -> None:
    """Random weights and BN statistics, so that no comparison passes on initial values."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if name.endswith("running_var") else torch.randn_like(tensor) * 0.5)


def any_size(config: str) -> bool:
    """Whether the configuration takes any spatial size (it was built without ``spatial_size``)."""
    return "spatial_size" not in CONFIGS[config][1]


def small_net(config: str) -> SmallNet:
    name, kwargs = CONFIGS[config]
    net = SmallNet(attn.create(name, CHANNELS, **kwargs))
    _randomise(net)
    return net.eval()


def resnet18(offset: int) -> nn.Module:
    """ResNet-18 with a different module in each of its 8 blocks: ``attn.available()[offset:]``, wrapping around."""
    names = attn.available()
    built = []

    def factory(channels: int) -> nn.Module:
        name = names[(offset + len(built)) % len(names)]
        built.append(name)
        return attn.create(name, channels, **({"extent": 4} if name in ("ge_theta", "ge_theta_plus") else {}))

    model = attn.add_attention(torchvision.models.resnet18(weights=None, num_classes=10), factory)
    for module in attention_modules(model):
        _randomise(module)
    return model.eval()


# Two ResNet-18s hold every registered module at least once.
RESNETS = {"resnet18-first8": 0, "resnet18-last3": 8}
RESNET_INPUT = (2, 3, 64, 64)  # layer4 sees 2x2 maps
RESNET_CHECK = (3, 3, 72, 88)  # another batch size and spatial size


def test_the_two_resnets_hold_every_module():
    kinds = {(type(m), getattr(m, "variant", None)) for offset in RESNETS.values() for m in attention_modules(resnet18(offset))}
    assert len(kinds) == len(attn.available())


# --- ONNX ---------------------------------------------------------------------------------

def _require(*packages: str) -> None:
    for package in packages:
        pytest.importorskip(package, reason=f"{package} is not installed; it is in the test extra: pip install -e '.[test]'")


def _dynamic_dims(spatial: bool) -> tuple[int, ...]:
    return (0, 2, 3) if spatial else (0,)


def export_torchscript(model: nn.Module, x: torch.Tensor, spatial: bool, output_spatial: bool) -> bytes:
    """The TorchScript-based exporter's ONNX model, with dynamic batch (and height and width)."""
    names = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    torch.onnx.export(
        model, (x,), buffer, dynamo=False, input_names=["x"], output_names=["y"],
        dynamic_axes={
            "x": {d: names[d] for d in _dynamic_dims(spatial)},
            "y": {d: names[d] for d in _dynamic_dims(output_spatial)},
        },
    )
    return buffer.getvalue()


def export_dynamo(model: nn.Module, x: torch.Tensor, spatial: bool) -> bytes:
    """The default (``torch.export``-based) exporter's ONNX model, with dynamic batch (and height and width)."""
    dims = {d: torch.export.Dim.DYNAMIC for d in _dynamic_dims(spatial)}
    program = torch.onnx.export(model, (x,), dynamo=True, input_names=["x"], output_names=["y"], dynamic_shapes=(dims,))
    return program.model_proto.SerializeToString()


def onnxruntime_output(model: bytes, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])


def assert_onnx_matches(model: nn.Module, onnx_model: bytes, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected = model(x)
    actual = onnxruntime_output(onnx_model, x)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=0, atol=TOLERANCE)


def small_check_input(config: str) -> torch.Tensor:
    """Another batch size, and another (non-square) spatial size where the module takes any."""
    return torch.randn(3, 3, 11, 9) if any_size(config) else torch.randn(3, 3, SIZE, SIZE)


@pytest.mark.parametrize("config", CONFIGS)
def test_onnx_torchscript_exporter_in_a_small_net(config):
    _require("onnx", "onnxruntime")
    net = small_net(config)
    onnx_model = export_torchscript(net, torch.randn(2, 3, SIZE, SIZE), any_size(config), any_size(config))
    assert_onnx_matches(net, onnx_model, small_check_input(config))


@pytest.mark.parametrize("config", CONFIGS)
def test_onnx_dynamo_exporter_in_a_small_net(config):
    _require("onnx", "onnxscript", "onnxruntime")
    net = small_net(config)
    onnx_model = export_dynamo(net, torch.randn(2, 3, SIZE, SIZE), any_size(config))
    assert_onnx_matches(net, onnx_model, small_check_input(config))


@pytest.mark.parametrize("resnet", RESNETS)
def test_onnx_torchscript_exporter_in_resnet18(resnet):
    _require("onnx", "onnxruntime")
    model = resnet18(RESNETS[resnet])
    onnx_model = export_torchscript(model, torch.randn(RESNET_INPUT), spatial=True, output_spatial=False)
    assert_onnx_matches(model, onnx_model, torch.randn(RESNET_CHECK))


@pytest.mark.parametrize("resnet", RESNETS)
def test_onnx_dynamo_exporter_in_resnet18(resnet):
    _require("onnx", "onnxscript", "onnxruntime")
    model = resnet18(RESNETS[resnet])
    onnx_model = export_dynamo(model, torch.randn(RESNET_INPUT), spatial=True)
    assert_onnx_matches(model, onnx_model, torch.randn(RESNET_CHECK))


# --- TorchScript and torch.compile -----------------------------------------------------------

MODEL_IDS = [*CONFIGS, *RESNETS]


def build_model(model_id: str) -> tuple[nn.Module, torch.Tensor]:
    """The model ``model_id`` names (a configuration in the small net, or a ResNet-18) and an input for it."""
    if model_id in RESNETS:
        return resnet18(RESNETS[model_id]), torch.randn(RESNET_INPUT)
    return small_net(model_id), torch.randn(2, 3, SIZE, SIZE)


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_jit_script_gives_the_eager_output_in_eval_and_training_and_saves(model_id):
    eager, x = build_model(model_id)
    scripted = torch.jit.script(copy.deepcopy(eager))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x))
        torch.testing.assert_close(loaded(x), eager(x))
    eager.train(), scripted.train()  # batch statistics, and the running statistics' update
    torch.testing.assert_close(scripted(x), eager(x))
    for (name, expected), actual in zip(eager.state_dict().items(), scripted.state_dict().values()):
        torch.testing.assert_close(actual, expected, msg=name)


@pytest.mark.parametrize("name", attn.available())
def test_a_scripted_module_rejects_wrong_input_with_the_eager_message(name):
    module = attn.create(name, CHANNELS, **CONFIGS[name][1]).eval()
    scripted = torch.jit.script(module)
    wrong = [torch.randn(2, CHANNELS + 1, SIZE, SIZE), torch.randn(CHANNELS, SIZE, SIZE)]
    if not any_size(name):
        wrong.append(torch.randn(2, CHANNELS, SIZE + 1, SIZE))
    for bad in wrong:
        with pytest.raises(ValueError) as eager_error:
            module(bad)
        with pytest.raises(torch.jit.Error, match=re.escape(str(eager_error.value))):
            scripted(bad)


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_jit_trace_gives_the_eager_output(model_id):
    eager, x = build_model(model_id)
    traced = torch.jit.trace(eager, x)
    other = torch.randn_like(x)
    with torch.no_grad():
        torch.testing.assert_close(traced(other), eager(other))


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_torch_compile_fullgraph_gives_the_eager_output(model_id):
    eager, x = build_model(model_id)
    torch._dynamo.reset()
    compiled = torch.compile(eager, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x))
