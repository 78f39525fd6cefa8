"""Name the ``attn`` modules in Ultralytics YOLO model YAML files (``pip install "attn[yolo]"``).

Call :func:`register_layers` once, then build models from YAML files that use the layer
names of :data:`YAML_LAYERS` (``SE``, ``ECA``, ``GEThetaPlus``, ``NAM``, ...)::

    from ultralytics import YOLO
    from attn.integrations import ultralytics as attn_yolo

    attn_yolo.register_layers()
    model = YOLO(attn_yolo.example_yaml("eca"))   # YOLOv8n with ECA after every backbone C2f

A row names the layer and, optionally, one mapping of keyword arguments for the module
(``attn.create(name, C, **kwargs)``); the channel count ``C`` is never written in the
YAML, it is the previous layer's output, at every model scale::

    - [-1, 1, ECA, []]
    - [-1, 1, SE, [{reduction: 8}]]
    - [-1, 1, GEThetaPlus, [{extent: 4}]]

What registration does, and why. Ultralytics' ``parse_model`` (``ultralytics/nn/tasks.py``)
looks a layer's name up in that module's globals, and passes the input channels ``c1``
only to the layers it lists by hand; any other layer gets just the YAML arguments. The
popular guides therefore tell readers to edit ``tasks.py``: import the modules there and
add them to that list. :func:`register_layers` does both in memory instead:

1. it adds the :data:`YAML_LAYERS` classes to ``tasks``' globals, so the names resolve;
2. it wraps ``tasks.parse_model``: when a YAML uses one of these names, the wrapper first
   builds the model silently with an ``nn.BatchNorm2d`` in place of each attention row
   (the one generic layer to which ``parse_model`` hands ``c1``), reads ``C`` from it,
   then builds the real model with ``[C, {kwargs}]`` as that row's arguments, so
   Ultralytics' own layer table shows each module with its parameters. YAMLs without
   these names go straight to the original function.

Both steps check what they rely on and raise ``RuntimeError`` naming the Ultralytics
version if its internals have changed.

Pretrained weights: an inserted row renumbers every later layer, so weights of the same
YOLO without attention must be loaded with :func:`load_pretrained`, which renumbers them,
not by name (see there). Modules that need a fixed feature-map size
(global GE-θ/θ⁺, NAM's spatial branch) cannot be used: a detector sees many input sizes.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.metadata
import inspect
from pathlib import Path
from typing import Any, Callable, ClassVar

from torch import Tensor, nn

from .. import registry

__all__ = ["register_layers", "load_pretrained", "YAML_LAYERS", "YoloAttention", "example_yaml", "EXAMPLE_YAMLS"]

EXAMPLES_DIR = Path(__file__).with_name("yolo")
EXAMPLE_YAMLS: dict[str, str] = {
    "eca": "yolov8n-eca.yaml",
    "se": "yolov8n-se.yaml",
    "ge": "yolov8n-ge.yaml",
    "nam": "yolov8n-nam.yaml",
}


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
        if "spatial_size" in options:
            raise ValueError(
                f"{owner}: spatial_size cannot be set in a YOLO model: a detector sees many input sizes. "
                f"Use a module that works on any size (GE-θ/θ⁺ with extent 2, 4 or 8; NAM without spatial)"
            )
        self.attention = registry.create(self.attention_name, channels, **options)

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


def example_yaml(attention: str) -> Path:
    """Path of the example YOLOv8n YAML with ``attention`` (``"eca"``, ``"se"``, ``"ge"``, ``"nam"``) after every backbone C2f."""
    if attention not in EXAMPLE_YAMLS:
        raise ValueError(f"example_yaml: no example for {attention!r}; there are: {', '.join(EXAMPLE_YAMLS)}")
    return EXAMPLES_DIR / EXAMPLE_YAMLS[attention]


def load_pretrained(model: nn.Module, pretrained: nn.Module | dict[str, Tensor]) -> list[str]:
    """Load the weights of the same YOLO *without* attention rows into ``model``, in place.

    Inserting a row shifts the index of every later layer (``model.4.*`` becomes ``model.5.*``),
    so loading by name, as ``YOLO("yolov8n-eca.yaml").load("yolov8n.pt")`` does, transfers only
    the layers before the first inserted row, plus any later tensor that happens to have the
    shape of a *different* layer. Here layer ``i`` of ``pretrained`` goes to the ``i``-th layer
    of ``model`` that is not an attention row; tensors whose shape still differs (the class
    branch of a head built for another ``nc``) keep their initial values.

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
                f"is it the same YOLO (architecture and scale) without the attention rows?"
            )
        renumbered = f"model.{kept[int(index)]}.{name}"
        if own[renumbered].shape == value.shape:
            loaded[renumbered] = value.to(own[renumbered].dtype)
    target.load_state_dict(loaded, strict=False)
    return [key for key in own if key not in loaded]


def _detection_model(model: nn.Module) -> nn.Module:
    """The module whose ``.model`` is the ``nn.Sequential`` of layers: ``model`` or, for a ``YOLO``, ``model.model``."""
    for candidate in (model, getattr(model, "model", None)):
        if isinstance(getattr(candidate, "model", None), nn.Sequential):
            return candidate
    raise ValueError(f"expected an Ultralytics YOLO or DetectionModel, got {type(model).__name__}")


def register_layers() -> None:
    """Make the :data:`YAML_LAYERS` names usable in Ultralytics model YAML files (idempotent).

    Raises:
        ImportError: Ultralytics is not installed (``pip install "attn[yolo]"``).
        RuntimeError: Ultralytics' ``parse_model`` is not what this integration was written
            for, or one of the names is already taken by an Ultralytics layer.
    """
    tasks = _tasks_module()
    for name, cls in YAML_LAYERS.items():
        taken = vars(tasks).get(name)
        if taken is not None and taken is not cls:
            raise RuntimeError(
                f"register_layers: Ultralytics {_version()} already defines a layer named {name!r} "
                f"({taken!r}); this integration cannot register attn's {name} under that name"
            )
        setattr(tasks, name, cls)
    if not getattr(tasks.parse_model, "attn_channels", False):
        tasks.parse_model = _with_attention_channels(tasks.parse_model)


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


def _with_attention_channels(parse_model: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap Ultralytics' ``parse_model(d, ch, verbose)`` so attention rows receive their input channels."""

    @functools.wraps(parse_model)
    def parse_model_with_attention(d: dict[str, Any], ch: int, verbose: bool = True) -> Any:
        rows = _attention_rows(d)
        if not rows:
            return parse_model(d, ch, verbose)
        channels = _input_channels(parse_model, d, ch, rows)
        d = copy.deepcopy(d)
        layers = _sections(d)
        for (section, index), c in zip(rows, channels):
            f, n, name, args = layers[section][index]
            layers[section][index] = [f, n, name, [c, *args]]
        return parse_model(d, ch, verbose)

    parse_model_with_attention.attn_channels = True  # type: ignore[attr-defined]
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
