"""Name the ``attn`` modules in Ultralytics YOLO model YAML files (``pip install "attn[yolo]"``).

Call :func:`register_layers` once, then build models from YAML files that use the layer
names of :data:`YAML_LAYERS` (``SE``, ``ECA``, ``GEThetaPlus``, ``NAM``, ...) or of
:data:`C2F_LAYERS` (``C2fSE``, ``C2fECA``, ...)::

    from ultralytics import YOLO
    from attn.integrations import ultralytics as attn_yolo

    attn_yolo.register_layers()
    model = YOLO(attn_yolo.example_yaml("eca"))      # ECA after every backbone C2f
    model = YOLO(attn_yolo.example_yaml("c2f-eca"))  # ECA inside the bottlenecks of every backbone C2f

Two placements. YOLOv8's C2f splits its input in two halves ``y0, y1``, passes ``y1``
through ``n`` bottlenecks ``y_{i+1} = y_i + cv2(cv1(y_i))`` and mixes all ``2 + n`` maps
with a 1x1 convolution. The module can go

- **after the C2f**, a row of its own: ``[-1, 1, ECA, []]``. It gates the C2f's whole
  output, shortcuts included. The closest analogue in the SE paper is SE-POST (after a
  residual block's addition), the worst of its placements (Table 14: 22.78 % top-1 error
  against 22.28 % for the standard one, SE-ResNet-50 on ImageNet); the analogy is loose, since
  after a C2f the gate acts on a 1x1 convolution over a concatenation and no identity sum
  follows;
- **inside the bottlenecks**, on their residual branch: ``[-1, 3, C2fECA, [128, True]]``
  replaces a ``C2f`` row and gives every bottleneck ``y_i + attention(cv2(cv1(y_i)))``, the SE
  paper's standard placement (as :func:`attn.add_attention` does for ResNets). A bottleneck
  built without a shortcut (``shortcut=False``, as in YOLOv8's head) gets
  ``attention(cv2(cv1(y_i)))``. ``cv2`` ends in its activation (SiLU) and nothing follows
  the add, so the module gates the activated branch.

A row names the layer, its own arguments and, optionally, one mapping of keyword arguments
for the module (``attn.create(name, C, **kwargs)``); the channel count ``C`` is never
written in the YAML, it is what the module sees, at every model scale (the previous layer's
output after a C2f; the C2f's hidden width ``c2 / 2`` inside it)::

    - [-1, 1, ECA, []]
    - [-1, 1, SE, [{reduction: 8}]]
    - [-1, 1, GEThetaPlus, [{extent: 4}]]
    - [-1, 3, C2fECA, [128, True]]                 # exactly a C2f row's arguments
    - [-1, 3, C2fSE, [128, True, {reduction: 8}]]  # ... then the module's mapping

The mapping is also where a module option for fine-tuning goes, e.g. one that makes a new
module start as the identity, so that inserting it leaves a pretrained model's output
unchanged: :func:`with_attention_options` adds such keywords to every attention row of a
model, for either placement, and :func:`compare_to_plain` measures what the insertion changes.

What registration does, and why. Ultralytics' ``parse_model`` (``ultralytics/nn/tasks.py``)
looks a layer's name up in that module's globals, and passes the input channels ``c1``
only to the layers it lists by hand; any other layer gets just the YAML arguments. The
popular guides therefore tell readers to edit ``tasks.py``: import the modules there and
add them to that list. :func:`register_layers` does the equivalent in memory instead:

1. it adds the :data:`YAML_LAYERS` classes to ``tasks``' globals, so the names resolve;
2. it wraps ``tasks.parse_model``. The wrapper

   - builds each ``C2f<Name>`` row as a plain ``C2f`` row, so Ultralytics computes its
     channels, repeats and depth/width scaling exactly as for a C2f, then switches each of
     that C2f's ``Bottleneck`` blocks to ``BottleneckWithAttention`` with the module
     as its child ``attention``: no row is added, the layer numbering is unchanged, and a
     plain model's state dict loads by name with ``strict=False``, only the
     ``....attention.*`` keys missing (the class-switch technique and its rationale are those
     of :mod:`attn.integrations.torchvision`);
   - for the rows after a layer, first builds the model silently with an ``nn.BatchNorm2d``
     in place of each attention row (the one generic layer to which ``parse_model`` hands
     ``c1``), reads ``C`` from it, then builds the real model with ``[C, {kwargs}]`` as that
     row's arguments, so Ultralytics' own layer table shows each module with its parameters.

   Ultralytics prints its layer table while it builds, before the switch: a ``C2f<Name>``
   row shows there as ``C2f`` with the plain C2f's parameters, and one line per such row
   follows the table with the module and the parameters it adds. YAMLs without these
   names go straight to the original function.

Both steps check what they rely on and raise ``RuntimeError`` naming the Ultralytics
version if its internals have changed.

Pretrained weights: an inserted row renumbers every later layer, so weights of the same
YOLO without attention must be loaded into an after-a-layer model with
:func:`load_pretrained`, which renumbers them, not by name (see there); the in-bottleneck
models need no renumbering. Modules that need a fixed feature-map size (global GE-θ/θ⁺,
NAM's spatial branch) cannot be used: a detector sees many input sizes.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from .. import registry
from ..profile import count_macs, count_parameters

__all__ = [
    "register_layers",
    "load_pretrained",
    "attention_modules",
    "with_attention_options",
    "compare_to_plain",
    "calibrate_batchnorm",
    "InsertionReport",
    "YAML_LAYERS",
    "C2F_LAYERS",
    "YoloAttention",
    "example_yaml",
    "EXAMPLE_YAMLS",
]

EXAMPLES_DIR = Path(__file__).with_name("yolo")
# name -> file; "<module>" after each backbone C2f, "c2f-<module>" inside its bottlenecks
EXAMPLE_YAMLS: dict[str, str] = {
    "eca": "yolov8n-eca.yaml",
    "se": "yolov8n-se.yaml",
    "ge": "yolov8n-ge.yaml",
    "nam": "yolov8n-nam.yaml",
    "c2f-eca": "yolov8n-c2f-eca.yaml",
    "c2f-se": "yolov8n-c2f-se.yaml",
    "c2f-ge": "yolov8n-c2f-ge.yaml",
    "c2f-nam": "yolov8n-c2f-nam.yaml",
}


def _create(owner: str, attention: str, channels: int, options: dict[str, Any]) -> nn.Module:
    """``attn.create(attention, channels, **options)``, refusing what cannot work in a detector."""
    if "spatial_size" in options:
        raise ValueError(
            f"{owner}: spatial_size cannot be set in a YOLO model: a detector sees many input sizes. "
            f"Use a module that works on any size (GE-θ/θ⁺ with extent 2, 4 or 8; NAM without spatial)"
        )
    return registry.create(attention, channels, **options)


class YoloAttention(nn.Module):
    """An ``attn`` module as a YOLO layer: ``(N, C, H, W) -> (N, C, H, W)``.

    Subclasses set ``attention_name`` (a registry name). Ultralytics builds them as
    ``Layer(C, {kwargs})``; the module itself is ``self.attention``.
    """

    attention_name: ClassVar[str]

    def __init__(self, channels: int, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        owner = type(self).__name__
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise ValueError(f"{owner}: YAML arguments must be [] or [{{keyword: value}}], got {options!r}")
        self.attention = _create(owner, self.attention_name, channels, options)

    def forward(self, x: Tensor) -> Tensor:
        return self.attention(x)


class SE(YoloAttention):
    """Squeeze-and-Excitation, ``attn.create("se", C, ...)``."""

    attention_name = "se"


class SEVar1(YoloAttention):
    """SE-Var1 of the ECA paper, ``attn.create("se_var1", C)``."""

    attention_name = "se_var1"


class SEVar2(YoloAttention):
    """SE-Var2 of the ECA paper, ``attn.create("se_var2", C)``."""

    attention_name = "se_var2"


class SEVar3(YoloAttention):
    """SE-Var3 of the ECA paper, ``attn.create("se_var3", C)``."""

    attention_name = "se_var3"


class SEGC(YoloAttention):
    """SE with a grouped FC (ECA paper), ``attn.create("se_gc", C, ...)``."""

    attention_name = "se_gc"


class ECANS(YoloAttention):
    """ECA without weight sharing, ``attn.create("eca_ns", C, ...)``."""

    attention_name = "eca_ns"


class ECA(YoloAttention):
    """Efficient Channel Attention, ``attn.create("eca", C, ...)``."""

    attention_name = "eca"


class GEThetaMinus(YoloAttention):
    """Gather-Excite θ⁻, ``attn.create("ge_theta_minus", C, ...)``."""

    attention_name = "ge_theta_minus"


class GETheta(YoloAttention):
    """Gather-Excite θ (needs ``{extent: 2, 4 or 8}`` here), ``attn.create("ge_theta", C, ...)``."""

    attention_name = "ge_theta"


class GEThetaPlus(YoloAttention):
    """Gather-Excite θ⁺ (needs ``{extent: 2, 4 or 8}`` here), ``attn.create("ge_theta_plus", C, ...)``."""

    attention_name = "ge_theta_plus"


class NAM(YoloAttention):
    """NAM, channel branch, ``attn.create("nam", C, ...)``."""

    attention_name = "nam"


YAML_LAYERS: dict[str, type[YoloAttention]] = {
    cls.__name__: cls for cls in (SE, SEVar1, SEVar2, SEVar3, SEGC, ECANS, ECA, GEThetaMinus, GETheta, GEThetaPlus, NAM)
}
# YAML name of a C2f whose bottlenecks carry the module -> registry name: C2fSE -> "se", ...
C2F_LAYERS: dict[str, str] = {f"C2f{name}": cls.attention_name for name, cls in YAML_LAYERS.items()}


@functools.cache
def _bottleneck_with_attention() -> type[nn.Module]:
    """``BottleneckWithAttention``, defined on first use: Ultralytics is imported only when it is needed."""
    try:
        from ultralytics.nn.modules.block import Bottleneck
    except ImportError as error:
        raise ImportError(
            'attn.integrations.ultralytics needs Ultralytics: pip install "attn[yolo]" (or pip install ultralytics)'
        ) from error

    class BottleneckWithAttention(Bottleneck):
        """Ultralytics' ``Bottleneck`` with ``self.attention`` on its residual branch; ``(N, C, H, W) -> (N, C, H, W)``.

        ``x + attention(cv2(cv1(x)))`` with the shortcut, ``attention(cv2(cv1(x)))`` without
        (``self.add`` false): Ultralytics' forward with one added call. Blocks become this
        class by a class switch (see the module docstring), so they are still ``Bottleneck``
        instances and keep every parameter's name.
        """

        def forward(self, x: Tensor) -> Tensor:
            out = self.attention(self.cv2(self.cv1(x)))
            return x + out if self.add else out

    BottleneckWithAttention.__qualname__ = "BottleneckWithAttention"  # pickle finds it by name, via __getattr__
    return BottleneckWithAttention


def __getattr__(name: str) -> Any:
    """``BottleneckWithAttention`` (a subclass of Ultralytics' ``Bottleneck``) is created when first asked for."""
    if name == "BottleneckWithAttention":
        return _bottleneck_with_attention()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def example_yaml(name: str) -> Path:
    """Path of the example YOLOv8n YAML ``name`` (:data:`EXAMPLE_YAMLS`).

    ``"eca"``, ``"se"``, ``"ge"``, ``"nam"``: the module after every backbone C2f (four inserted
    rows); ``"c2f-eca"``, ``"c2f-se"``, ...: the same module inside the bottlenecks of those C2f,
    with the layer numbering of Ultralytics' ``yolov8n.yaml``.
    """
    if name not in EXAMPLE_YAMLS:
        raise ValueError(f"example_yaml: no example {name!r}; there are: {', '.join(EXAMPLE_YAMLS)}")
    return EXAMPLES_DIR / EXAMPLE_YAMLS[name]


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The ``attn`` modules of a YOLO (or any module) built from these YAML names, in network order.

    Those of the attention rows (``layer.attention``) and of the bottlenecks of ``C2f<Name>``
    rows (``block.attention``).
    """
    attentive = (YoloAttention, _bottleneck_with_attention())
    return [module.attention for module in model.modules() if isinstance(module, attentive)]


def with_attention_options(cfg: str | Path | dict[str, Any], **options: Any) -> dict[str, Any]:
    """A copy of the model YAML ``cfg`` with ``options`` in the keyword mapping of every attention row.

    Both placements: ``[-1, 1, ECA, []]`` becomes ``[-1, 1, ECA, [{**options}]]`` and
    ``[-1, 3, C2fECA, [128, True]]`` becomes ``[-1, 3, C2fECA, [128, True, {**options}]]``;
    a keyword the row already sets takes the new value. The keywords go to
    ``attn.create(name, C, **kwargs)`` when the model is built, which raises ``TypeError``
    for one the module does not take, naming those it does. This is how one option, e.g. a
    module's start as the identity for fine-tuning, is set for a whole model without a YAML
    of its own::

        cfg = with_attention_options(example_yaml("c2f-se"), reduction=8)
        model = DetectionModel(cfg, nc=80)   # ultralytics.nn.tasks.DetectionModel

    Args:
        cfg: a YAML path (the scale, ``n`` in ``yolov8n-....yaml``, is read from the file name,
            as Ultralytics does) or a model dictionary (not modified).
        **options: keyword arguments for every module.

    Raises:
        ValueError: ``cfg`` has no attention row (its rows are checked as when building).
    """
    d = copy.deepcopy(cfg) if isinstance(cfg, dict) else _tasks_module().yaml_model_load(cfg)
    rows = _attention_rows(d)
    c2f_rows = _c2f_rows(d)
    if not rows and not c2f_rows:
        names = ", ".join([*YAML_LAYERS, *C2F_LAYERS])
        raise ValueError(f"with_attention_options: the model has no attention row (layers named {names})")
    layers = _sections(d)
    for section, index in rows:
        f, n, name, args = layers[section][index]
        layers[section][index] = [f, n, name, [{**(args[0] if args else {}), **options}]]
    for section, index, name, c2f_args, row_options in c2f_rows:
        f, n = layers[section][index][:2]
        layers[section][index] = [f, n, name, [*c2f_args, {**row_options, **options}]]
    return d


def load_pretrained(model: nn.Module, pretrained: nn.Module | dict[str, Tensor]) -> list[str]:
    """Load the weights of the same YOLO *without* attention into ``model``, in place.

    Inserting a row shifts the index of every later layer (``model.4.*`` becomes ``model.5.*``),
    so loading by name, as ``YOLO("yolov8n-eca.yaml").load("yolov8n.pt")`` does, transfers only
    the layers before the first inserted row, plus any later tensor that happens to have the
    shape of a *different* layer. Here layer ``i`` of ``pretrained`` goes to the ``i``-th layer
    of ``model`` that is not an attention row; tensors whose shape still differs (the class
    branch of a head built for another ``nc``) keep their initial values. A model whose
    modules all sit in C2f bottlenecks has no inserted row: every layer keeps its index, and
    this is loading by name (as ``load_state_dict(state, strict=False)`` or Ultralytics'
    ``.load`` do), with the same checks.

    Args:
        model: the model with attention, an Ultralytics ``YOLO`` or its ``DetectionModel``.
        pretrained: the model without them (e.g. ``YOLO("yolov8n.pt").model``) or its state dict.

    Returns:
        The keys of ``model``'s state dict that were not loaded, in the model's order: the
        attention modules' and any tensor whose shape did not match.

    Raises:
        ValueError: a key of ``pretrained`` is not ``model.<index>.<name>``, or refers to a
            layer ``model`` does not have (the two models are not the same YOLO).
    """
    target = _detection_model(model)
    state = _detection_model(pretrained).state_dict() if isinstance(pretrained, nn.Module) else pretrained
    layers = target.model
    kept = [i for i, layer in enumerate(layers) if not isinstance(layer, YoloAttention)]
    own = target.state_dict()
    loaded = {}
    for key, value in state.items():
        prefix, index, name = (key.split(".", 2) + ["", ""])[:3]
        if prefix != "model" or not index.isdigit() or not name:
            raise ValueError(f"load_pretrained: expected keys model.<index>.<name>, got {key!r}")
        if int(index) >= len(kept) or f"model.{kept[int(index)]}.{name}" not in own:
            raise ValueError(
                f"load_pretrained: {key!r} has no counterpart in the model with attention; "
                f"is it the same YOLO (architecture and scale) without the attention?"
            )
        renumbered = f"model.{kept[int(index)]}.{name}"
        if own[renumbered].shape == value.shape:
            loaded[renumbered] = value.to(own[renumbered].dtype)
    target.load_state_dict(loaded, strict=False)
    return [key for key in own if key not in loaded]


@dataclass(frozen=True)
class InsertionReport:
    """What a YOLO with attention costs and changes against the same YOLO without (:func:`compare_to_plain`).

    Its fields:

    - ``parameters``: trainable parameters of the model with attention;
    - ``added_parameters``: ``parameters`` minus the plain model's;
    - ``gflops``: GFLOPs of one image at the given size, ``2 x`` multiply-accumulates of
      convolutions and matrix products (:func:`attn.profile.count_macs`; the pooling,
      sigmoid and scaling attention adds are free by that count);
    - ``added_gflops``: ``gflops`` minus the plain model's;
    - ``output_change``: ``max |with - without|`` of each raw head output with the plain
      model's weights in both: ``"boxes"``, the box-distribution logits ``(N, 4 * reg_max, H,
      W)``, and ``"scores"``, the class logits ``(N, nc, H, W)``, over the three strides. Zero
      if inserting the modules leaves the model's function unchanged;
    - ``output_scale``: ``max |without|`` of the same outputs, the scale of the change.
    """

    parameters: int
    added_parameters: int
    gflops: float
    added_gflops: float
    output_change: dict[str, float]
    output_scale: dict[str, float]


def compare_to_plain(plain: nn.Module, attentive: nn.Module, images: Tensor, imgsz: int = 640) -> InsertionReport:
    """Costs of ``attentive`` over ``plain`` and the change of its head outputs at insertion.

    A copy of ``attentive`` gets the weights of ``plain`` (:func:`load_pretrained`: the
    modules keep their initial values, every other tensor is ``plain``'s), and both run
    ``images`` in eval mode, as for inference: the change is what inserting the modules
    does to a pretrained model's predictions before any fine-tuning. Neither model is
    changed. Latency is left to :func:`attn.profile.compare_latency`, which measures models
    side by side.

    The outputs compared are raw, before decoding: what the last convolution of each of
    the head's box and class branches gives at each stride. In eval mode every batch norm
    uses its running statistics, which a model just built from a YAML does not have
    (mean 0, variance 1): its features fade with depth and its outputs are its biases, so
    give a plain model that was not trained realistic ones first (:func:`calibrate_batchnorm`).

    Args:
        plain: the YOLO without attention (Ultralytics ``YOLO`` or ``DetectionModel``).
        attentive: the same YOLO with attention, either placement.
        images: ``(N, 3, H, W)`` in ``[0, 1]``, ``H`` and ``W`` multiples of 32.
        imgsz: image side for the GFLOPs (Ultralytics reports them at 640).

    Raises:
        ValueError: the models are not an Ultralytics YOLO, its head is not a ``Detect``
            head (box and class branches ``cv2``, ``cv3``), or the two are not the same YOLO.
    """
    plain, attentive = (copy.deepcopy(_detection_model(m)) for m in (plain, attentive))
    load_pretrained(attentive, plain)
    outputs = [_raw_head_outputs(model, images) for model in (plain, attentive)]
    flops = [2 * count_macs(model, (1, 3, imgsz, imgsz)) / 1e9 for model in (plain, attentive)]
    parameters = [count_parameters(model) for model in (plain, attentive)]
    return InsertionReport(
        parameters=parameters[1],
        added_parameters=parameters[1] - parameters[0],
        gflops=flops[1],
        added_gflops=flops[1] - flops[0],
        output_change={
            key: max((b - a).abs().max().item() for a, b in zip(outputs[0][key], outputs[1][key])) for key in outputs[0]
        },
        output_scale={key: max(a.abs().max().item() for a in outputs[0][key]) for key in outputs[0]},
    )


def _raw_head_outputs(model: nn.Module, images: Tensor) -> dict[str, list[Tensor]]:
    """The head's raw outputs per stride, in eval mode: ``{"boxes": [(N, 4 reg_max, H, W), ...], "scores": [...]}``."""
    head = model.model[-1]
    branches = {"boxes": getattr(head, "cv2", None), "scores": getattr(head, "cv3", None)}
    if not all(isinstance(branch, nn.ModuleList) for branch in branches.values()):
        raise ValueError(
            f"compare_to_plain: expected a YOLO whose last layer is a Detect head with box and class branches "
            f"cv2, cv3 (nn.ModuleList), got {type(head).__name__}"
        )
    seen: dict[str, list[Tensor]] = {key: [] for key in branches}
    hooks = [
        level.register_forward_hook(lambda module, args, out, key=key: seen[key].append(out))
        for key, branch in branches.items()
        for level in branch
    ]
    model.eval()
    try:
        with torch.no_grad():
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: Tensor, batch_size: int = 8) -> nn.Module:
    """Set every batch norm's running statistics to its average batch statistics on ``images``; returns ``model``.

    A stand-in for a trained checkpoint's statistics when a model built from a YAML (mean 0,
    variance 1) is to be run in eval mode: each batch norm gets the mean and variance
    training would give it, averaged over the batches (``momentum=None``), and the
    model's weights are untouched. The model is left in eval mode.

    Args:
        model: an Ultralytics ``YOLO`` or ``DetectionModel``.
        images: ``(N, 3, H, W)`` inputs, fed ``batch_size`` at a time (the last batch may be smaller).
        batch_size: images per batch; batch statistics need at least 2.
    """
    if batch_size < 2:
        raise ValueError(f"calibrate_batchnorm: batch_size must be at least 2 (batch statistics), got {batch_size}")
    network = _detection_model(model)
    norms = [module for module in network.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    network.train()
    try:
        for batch in images.split(batch_size):
            network(batch)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        network.eval()
    return model


def _detection_model(model: nn.Module) -> nn.Module:
    """The module whose ``.model`` is the ``nn.Sequential`` of layers: ``model`` or, for a ``YOLO``, ``model.model``."""
    for candidate in (model, getattr(model, "model", None)):
        if isinstance(getattr(candidate, "model", None), nn.Sequential):
            return candidate
    raise ValueError(f"expected an Ultralytics YOLO or DetectionModel, got {type(model).__name__}")


def register_layers() -> None:
    """Make the :data:`YAML_LAYERS` and :data:`C2F_LAYERS` names usable in Ultralytics model YAML files (idempotent).

    Raises:
        ImportError: Ultralytics is not installed (``pip install "attn[yolo]"``).
        RuntimeError: Ultralytics' ``parse_model`` is not what this integration was written
            for, or one of the names is already taken by an Ultralytics layer.
    """
    tasks = _tasks_module()
    for name in [*YAML_LAYERS, *C2F_LAYERS]:
        taken = vars(tasks).get(name)
        if taken is not None and taken is not YAML_LAYERS.get(name):
            raise RuntimeError(
                f"register_layers: Ultralytics {_version()} already defines a layer named {name!r} "
                f"({taken!r}); this integration cannot register attn's {name} under that name"
            )
    for name, cls in YAML_LAYERS.items():
        setattr(tasks, name, cls)
    if not getattr(tasks.parse_model, "attn_layers", False):
        tasks.parse_model = _with_attention_layers(tasks.parse_model)


def _version() -> str:
    """The installed Ultralytics version, for error messages."""
    try:
        return importlib.metadata.version("ultralytics")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _tasks_module() -> Any:
    """``ultralytics.nn.tasks``, after checking that its ``parse_model`` has the expected signature."""
    try:
        tasks = importlib.import_module("ultralytics.nn.tasks")
    except ImportError as error:
        raise ImportError(
            'attn.integrations.ultralytics needs Ultralytics: pip install "attn[yolo]" (or pip install ultralytics)'
        ) from error
    parse_model = getattr(tasks, "parse_model", None)
    parameters = list(inspect.signature(parse_model).parameters) if callable(parse_model) else []
    if parameters[:3] != ["d", "ch", "verbose"]:
        raise RuntimeError(
            f"register_layers: Ultralytics {_version()} has no ultralytics.nn.tasks.parse_model(d, ch, verbose) "
            f"(found {parameters or 'none'}); this integration was written for (and tested with) Ultralytics 8.4"
        )
    return tasks


def _with_attention_layers(parse_model: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap Ultralytics' ``parse_model(d, ch, verbose)`` to build the rows that name attention layers."""

    @functools.wraps(parse_model)
    def parse_model_with_attention(d: dict[str, Any], ch: int, verbose: bool = True) -> Any:
        rows = _attention_rows(d)
        c2f_rows = _c2f_rows(d)
        if not rows and not c2f_rows:
            return parse_model(d, ch, verbose)
        d = copy.deepcopy(d)
        layers = _sections(d)
        for section, index, _, c2f_args, _ in c2f_rows:
            f, n = layers[section][index][:2]
            layers[section][index] = [f, n, "C2f", list(c2f_args)]
        channels = _input_channels(parse_model, d, ch, rows) if rows else []
        for (section, index), c in zip(rows, channels):
            f, n, name, args = layers[section][index]
            layers[section][index] = [f, n, name, [c, *args]]
        model, save = parse_model(d, ch, verbose)
        offset = {"backbone": 0, "head": len(d["backbone"])}
        for section, index, name, _, options in c2f_rows:
            _attend_bottlenecks(model[offset[section] + index], name, options, verbose)
        return model, save

    parse_model_with_attention.attn_layers = True  # type: ignore[attr-defined]
    return parse_model_with_attention


def _sections(d: dict[str, Any]) -> dict[str, list[list[Any]]]:
    return {"backbone": d["backbone"], "head": d["head"]}


def _attention_rows(d: dict[str, Any]) -> list[tuple[str, int]]:
    """``(section, index)`` of every row that names a :data:`YAML_LAYERS` layer; checks their form."""
    rows = []
    for section, layers in _sections(d).items():
        for index, (f, _, name, args) in enumerate(layers):
            if name not in YAML_LAYERS:
                continue
            where = f"{section} row {index} ({name})"
            if not isinstance(f, int):
                raise ValueError(f"{where}: an attention layer takes one input, 'from' must be an int, got {f!r}")
            if not (args == [] or (len(args) == 1 and isinstance(args[0], dict))):
                raise ValueError(
                    f"{where}: arguments must be [] or [{{keyword: value}}], e.g. [{{reduction: 8}}]; got {args!r}. "
                    f"Do not write the channel count: it is taken from the input layer"
                )
            rows.append((section, index))
    return rows


def _c2f_rows(d: dict[str, Any]) -> list[tuple[str, int, str, list[Any], dict[str, Any]]]:
    """``(section, index, name, C2f arguments, module keywords)`` of every row naming a :data:`C2F_LAYERS` layer."""
    rows = []
    for section, layers in _sections(d).items():
        for index, (f, _, name, args) in enumerate(layers):
            if name not in C2F_LAYERS:
                continue
            where = f"{section} row {index} ({name})"
            if not isinstance(f, int):
                raise ValueError(f"{where}: a C2f takes one input, 'from' must be an int, got {f!r}")
            has_options = bool(args) and isinstance(args[-1], dict)
            c2f_args, options = (args[:-1], args[-1]) if has_options else (args, {})
            if not 1 <= len(c2f_args) <= 4 or any(isinstance(a, dict) for a in c2f_args):
                raise ValueError(
                    f"{where}: arguments must be those of a C2f row, [c2], [c2, shortcut], [c2, shortcut, g] or "
                    f"[c2, shortcut, g, e], optionally followed by one {{keyword: value}} mapping for the module, "
                    f"e.g. [128, True, {{reduction: 8}}]; got {args!r}"
                )
            rows.append((section, index, name, c2f_args, options))
    return rows


def _input_channels(parse_model: Callable[..., Any], d: dict[str, Any], ch: int, rows: list[tuple[str, int]]) -> list[int]:
    """The input channels of each attention row: build once with ``nn.BatchNorm2d`` there and read them."""
    probe = copy.deepcopy(d)
    offset = {"backbone": 0, "head": len(probe["backbone"])}
    for section, index in rows:
        f = probe[section][index][0]
        probe[section][index] = [f, 1, "nn.BatchNorm2d", []]
    model, _ = parse_model(probe, ch, False)
    channels = []
    for section, index in rows:
        layer = model[offset[section] + index]
        if not isinstance(layer, nn.BatchNorm2d):
            raise RuntimeError(
                f"register_layers: Ultralytics {_version()}'s parse_model no longer builds nn.BatchNorm2d rows "
                f"as this integration expects (got {type(layer).__name__}); please report it"
            )
        channels.append(layer.num_features)
    return channels


def _attend_bottlenecks(layer: nn.Module, name: str, options: dict[str, Any], verbose: bool) -> None:
    """Give each ``Bottleneck`` of the C2f ``layer`` a module ``C2F_LAYERS[name]`` on its residual branch, in place."""
    from ultralytics.nn.modules.block import C2f, Bottleneck

    blocks = list(getattr(layer, "m", []))
    if type(layer) is not C2f or not blocks or any(type(block) is not Bottleneck for block in blocks):
        raise RuntimeError(
            f"register_layers: Ultralytics {_version()}'s parse_model no longer builds a C2f row as a C2f whose .m "
            f"holds Bottleneck blocks, as this integration expects for {name} (got {type(layer).__name__} with "
            f"{[type(block).__name__ for block in blocks]}); please report it"
        )
    modules = [_create(name, C2F_LAYERS[name], block.cv2.conv.out_channels, options) for block in blocks]
    for block, module in zip(blocks, modules):  # all built before any block changes
        block.__class__ = _bottleneck_with_attention()
        block.attention = module
    layer.np, layer.type = sum(p.numel() for p in layer.parameters()), name
    if verbose:
        from ultralytics.utils import LOGGER

        added = sum(p.numel() for module in modules for p in module.parameters())
        LOGGER.info(
            f"{layer.i:>3} {name}: that C2f with {type(modules[0]).__name__} on the residual branch of its "
            f"{len(blocks)} bottleneck{'s' * (len(blocks) > 1)}, +{added} parameters"
        )
