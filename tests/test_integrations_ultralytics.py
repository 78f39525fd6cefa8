"""Ultralytics YOLO integration: YAML layer names, channels, example models, training offline.

The tests that need Ultralytics skip when it is not installed (``pip install "attn[yolo]"``);
the rest (the layer table, YAML checks, the synthetic detection set) always run.
"""

import copy
import importlib.util
import logging
import os
import pickle
import sys

os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported: no online checks

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import attn
from attn.integrations import ultralytics as attn_yolo
from attn.integrations.synthetic_boxes import CLASS_NAMES, detection_batch, write_synthetic_boxes
from attn.profile import count_macs
from conftest import n_params

needs_ultralytics = pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is None, reason='Ultralytics is not installed (pip install "attn[yolo]")'
)
ATTENTION_ROWS = (3, 6, 9, 12)  # where the example YAMLs put a module: after each backbone C2f
C2F_ROWS = (2, 4, 6, 8)  # the backbone C2f rows of yolov8.yaml, whose bottlenecks the c2f-* examples gate
AFTER_C2F = [name for name in attn_yolo.EXAMPLE_YAMLS if not name.startswith("c2f-")]
IN_BOTTLENECKS = [name for name in attn_yolo.EXAMPLE_YAMLS if name.startswith("c2f-")]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


# --- without Ultralytics ---------------------------------------------------------------------


def test_every_registry_module_has_one_yaml_name_per_placement():
    assert sorted(cls.attention_name for cls in attn_yolo.YAML_LAYERS.values()) == sorted(attn.available())
    assert all(name == cls.__name__ for name, cls in attn_yolo.YAML_LAYERS.items())
    assert attn_yolo.C2F_LAYERS == {f"C2f{name}": cls.attention_name for name, cls in attn_yolo.YAML_LAYERS.items()}


def test_yaml_layer_builds_the_registry_module_with_its_keywords():
    layer = attn_yolo.SE(64, {"reduction": 8})
    assert isinstance(layer.attention, attn.SqueezeExcite) and n_params(layer) == n_params(attn.create("se", 64, reduction=8))
    x = torch.randn(2, 64, 8, 8)
    torch.testing.assert_close(layer(x), layer.attention(x))
    assert isinstance(attn_yolo.ECA(64).attention, attn.EfficientChannelAttention)


@pytest.mark.parametrize(
    "layer, options, message",
    [
        (attn_yolo.ECA, [3], r"\[\] or \[\{keyword: value\}\]"),
        (attn_yolo.GEThetaPlus, {"extent": 0, "spatial_size": 20}, "many input sizes"),
        (attn_yolo.GETheta, {}, "extent=2, 4 or 8"),
    ],
)
def test_yaml_layer_rejects_what_cannot_work_in_a_detector(layer, options, message):
    with pytest.raises(ValueError, match=message):
        layer(64, options)


@pytest.mark.parametrize("args, f, message", [([64], -1, "Do not write the channel count"), ([], [-1, 4], "one input")])
def test_yaml_rows_are_checked(args, f, message):
    d = {"backbone": [[-1, 1, "Conv", [16, 3, 2]], [f, 1, "ECA", args]], "head": []}
    with pytest.raises(ValueError, match=message):
        attn_yolo._attention_rows(d)


@pytest.mark.parametrize(
    "args, f, message",
    [
        ([], -1, "those of a C2f row"),
        ([{"reduction": 8}], -1, "those of a C2f row"),
        ([128, {"reduction": 8}, True], -1, "those of a C2f row"),
        ([128, True, 1, 0.5, 3], -1, "those of a C2f row"),
        ([128], [-1, 4], "one input"),
    ],
)
def test_c2f_rows_are_checked(args, f, message):
    d = {"backbone": [[-1, 1, "Conv", [16, 3, 2]], [f, 3, "C2fSE", args]], "head": []}
    with pytest.raises(ValueError, match=message):
        attn_yolo._c2f_rows(d)


def test_c2f_rows_split_the_c2f_arguments_from_the_module_keywords():
    d = {"backbone": [[-1, 3, "C2fSE", [128, True, {"reduction": 8}]], [-1, 1, "C2fECA", [64]]], "head": []}
    assert attn_yolo._c2f_rows(d) == [
        ("backbone", 0, "C2fSE", [128, True], {"reduction": 8}),
        ("backbone", 1, "C2fECA", [64], {}),
    ]


def test_attention_options_go_into_every_attention_row_of_either_placement():
    d = {
        "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "SE", []], [-1, 3, "C2fSE", [128, True, {"reduction": 16, "bias": False}]]],
        "head": [[-1, 1, "ECA", [{"kernel_size": 3}]], [-1, 3, "C2fECA", [64]]],
    }
    original = copy.deepcopy(d)
    changed = attn_yolo.with_attention_options(d, reduction=4, kernel_size=5)
    assert d == original
    assert changed["backbone"][0] == d["backbone"][0]
    assert changed["backbone"][1][3] == [{"reduction": 4, "kernel_size": 5}]
    assert changed["backbone"][2][3] == [128, True, {"reduction": 4, "bias": False, "kernel_size": 5}]
    assert changed["head"][0][3] == [{"kernel_size": 5, "reduction": 4}]
    assert changed["head"][1][3] == [64, {"reduction": 4, "kernel_size": 5}]
    with pytest.raises(ValueError, match="no attention row"):
        attn_yolo.with_attention_options({"backbone": d["backbone"][:1], "head": []}, reduction=4)


def test_changed_ultralytics_internals_fail_with_a_clear_message():
    """If parse_model stopped giving nn.BatchNorm2d rows their channels, the wrapper says so."""

    def changed_parse_model(d, ch, verbose=True):
        return nn.Sequential(*(nn.Identity() for _ in d["backbone"] + d["head"])), []

    d = {"backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "ECA", []]], "head": []}
    with pytest.raises(RuntimeError, match="no longer builds nn.BatchNorm2d"):
        attn_yolo._with_attention_layers(changed_parse_model)(d, 3, False)


def test_register_without_ultralytics_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ultralytics.nn.tasks", None)
    with pytest.raises(ImportError, match=r'pip install "attn\[yolo\]"'):
        attn_yolo.register_layers()


def test_example_yamls_exist_and_unknown_names_fail():
    for name in AFTER_C2F:
        text = attn_yolo.example_yaml(name).read_text()
        layer = next(n for n in attn_yolo.YAML_LAYERS if f", {n}, [" in text)
        assert text.count(f", {layer}, [") == len(ATTENTION_ROWS)
        assert not any(f", {n}, [" in text for n in attn_yolo.C2F_LAYERS)
        c2f = attn_yolo.example_yaml(f"c2f-{name}").read_text()
        assert c2f.count(f", C2f{layer}, [") == len(C2F_ROWS)  # the same module, inside the same four C2f
        assert not any(f", {n}, [" in c2f for n in attn_yolo.YAML_LAYERS)
    assert sorted(IN_BOTTLENECKS) == sorted(f"c2f-{name}" for name in AFTER_C2F)
    with pytest.raises(ValueError, match="there are: eca, se, ge, nam, c2f-eca, c2f-se, c2f-ge, c2f-nam"):
        attn_yolo.example_yaml("cbam")


def test_detection_batch_has_ultralytics_training_format():
    batch = detection_batch(images=4, size=32, seed=1)
    assert batch["img"].shape == (4, 3, 32, 32) and batch["img"].dtype == torch.float32
    assert 0 <= batch["img"].min() and batch["img"].max() <= 1
    boxes = len(batch["batch_idx"])
    assert boxes >= 4 and batch["cls"].shape == (boxes, 1) and batch["bboxes"].shape == (boxes, 4)
    assert set(batch["batch_idx"].tolist()) == {0, 1, 2, 3} and set(batch["cls"].flatten().tolist()) <= {0, 1}
    corners = torch.cat([batch["bboxes"][:, :2] - batch["bboxes"][:, 2:] / 2, batch["bboxes"][:, :2] + batch["bboxes"][:, 2:] / 2], 1)
    assert corners.min() >= 0 and corners.max() <= 1
    torch.testing.assert_close(detection_batch(images=4, size=32, seed=1)["img"], batch["img"])


def test_a_box_has_its_class_colour():
    batch = detection_batch(images=1, size=64, seed=3)
    for label, (cx, cy, _, _) in zip(batch["cls"].flatten(), batch["bboxes"]):
        red, _, blue = batch["img"][0, :, int(cy * 64), int(cx * 64)]
        assert (red > blue) == (label == 0)


def test_written_set_has_the_yolo_layout(tmp_path):
    data_yaml = write_synthetic_boxes(tmp_path, train_images=3, val_images=2, size=32, seed=0)
    assert data_yaml == tmp_path / "data.yaml"
    text = data_yaml.read_text()
    assert "train: images/train" in text and all(name in text for name in CLASS_NAMES)
    for split, count in (("train", 3), ("val", 2)):
        images = sorted((tmp_path / "images" / split).glob("*.png"))
        labels = sorted((tmp_path / "labels" / split).glob("*.txt"))
        assert [p.stem for p in images] == [p.stem for p in labels] and len(images) == count
        assert np.asarray(Image.open(images[0])).shape == (32, 32, 3)
        rows = [line.split() for line in labels[0].read_text().splitlines()]
        assert rows and all(len(row) == 5 and row[0] in {"0", "1"} for row in rows)


def test_synthetic_set_rejects_tiny_images(tmp_path):
    with pytest.raises(ValueError, match="at least 32 pixels"):
        write_synthetic_boxes(tmp_path, size=16)


# --- with Ultralytics ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tasks():
    pytest.importorskip("ultralytics")
    attn_yolo.register_layers()
    from ultralytics.nn import tasks

    return tasks


@pytest.fixture(scope="module")
def baseline(tasks):
    return tasks.DetectionModel("yolov8n.yaml", nc=2, verbose=False)


@needs_ultralytics
def test_registration_is_idempotent_and_names_resolve(tasks):
    wrapped = tasks.parse_model
    attn_yolo.register_layers()
    assert tasks.parse_model is wrapped and tasks.ECA is attn_yolo.ECA


@needs_ultralytics
@pytest.mark.parametrize("example", AFTER_C2F)
def test_example_yaml_adds_exactly_its_modules_after_each_backbone_c2f(tasks, baseline, example):
    model = tasks.DetectionModel(str(attn_yolo.example_yaml(example)), nc=2, verbose=False)
    layers = [model.model[i] for i in ATTENTION_ROWS]
    assert all(isinstance(layer, attn_yolo.YoloAttention) for layer in layers)
    assert sum(isinstance(m, attn_yolo.YoloAttention) for m in model.modules()) == len(ATTENTION_ROWS)
    for i, layer in zip(ATTENTION_ROWS, layers):
        assert type(model.model[i - 1]).__name__ == "C2f"
        assert layer.attention.channels == model.model[i - 1].cv2.conv.out_channels  # inferred, scaled by width
    assert n_params(model) == n_params(baseline) + sum(n_params(layer) for layer in layers)
    assert model.stride.tolist() == baseline.stride.tolist() == [8.0, 16.0, 32.0]


@needs_ultralytics
@pytest.mark.parametrize("example", IN_BOTTLENECKS)
def test_c2f_example_gates_the_residual_branch_of_every_backbone_bottleneck(tasks, baseline, example):
    """Built as yolov8n: the same layers and numbering, only the backbone bottlenecks switched and given a module."""
    from ultralytics.nn.modules.block import Bottleneck, C2f

    model = tasks.DetectionModel(str(attn_yolo.example_yaml(example)), nc=2, verbose=False)
    assert [type(layer) for layer in model.model] == [type(layer) for layer in baseline.model]
    attentive = [block for i in C2F_ROWS for block in model.model[i].m]
    assert len(attentive) == 6  # 1 + 2 + 2 + 1 bottlenecks at depth 0.33
    for block in attentive:
        assert type(block) is attn_yolo.BottleneckWithAttention and isinstance(block, Bottleneck) and block.add
        assert block.attention.channels == block.cv2.conv.out_channels  # the C2f's hidden width
    others = [m for m in model.modules() if isinstance(m, Bottleneck) and m not in attentive]
    assert others and all(type(m) is Bottleneck for m in others)  # the head's C2f are untouched
    assert attn_yolo.attention_modules(model) == [block.attention for block in attentive]
    assert all(type(model.model[i]) is C2f and model.model[i].type in attn_yolo.C2F_LAYERS for i in C2F_ROWS)
    assert n_params(model) == n_params(baseline) + sum(n_params(m) for m in attn_yolo.attention_modules(model))
    assert model.stride.tolist() == baseline.stride.tolist() == [8.0, 16.0, 32.0]


@needs_ultralytics
def test_bottleneck_with_attention_gates_the_branch_before_the_add(tasks):
    from ultralytics.nn.modules.block import Bottleneck

    x = torch.randn(2, 16, 8, 8)
    for shortcut in (True, False):
        block = Bottleneck(16, 16, shortcut=shortcut, k=(3, 3), e=1.0).eval()
        block.__class__ = attn_yolo.BottleneckWithAttention
        block.attention = attn.create("se", 16, reduction=4)
        branch = block.attention(block.cv2(block.cv1(x)))
        torch.testing.assert_close(block(x), x + branch if shortcut else branch)


@needs_ultralytics
def test_building_logs_each_c2f_row_and_its_added_parameters(tasks, caplog):
    """Ultralytics' layer table shows a C2fSE row as the C2f it is built from; a line after the table says what it got."""
    with caplog.at_level(logging.INFO, logger="ultralytics"):
        model = tasks.DetectionModel(str(attn_yolo.example_yaml("c2f-se")), nc=2, verbose=True)
    added = sum(n_params(block.attention) for block in model.model[6].m)
    assert f"  6 C2fSE: that C2f with SqueezeExcite on the residual branch of its 2 bottlenecks, +{added} parameters" in caplog.text


@needs_ultralytics
def test_bottleneck_class_is_one_class_found_by_name(tasks):
    assert attn_yolo.BottleneckWithAttention is attn_yolo._bottleneck_with_attention()
    assert attn_yolo.BottleneckWithAttention.__qualname__ == "BottleneckWithAttention"
    with pytest.raises(AttributeError, match="has no attribute 'Bottleneck'"):
        attn_yolo.Bottleneck  # noqa: B018


@needs_ultralytics
@pytest.mark.parametrize("example, rows", [("se", ATTENTION_ROWS), ("c2f-se", C2F_ROWS)])
def test_channels_follow_the_model_scale(tasks, example, rows):
    """The same YAML at scale s (width 0.5) gives modules for twice the channels of scale n."""
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load(attn_yolo.example_yaml(example))
    channels = {}
    for scale in ("n", "s"):
        model = tasks.DetectionModel({**copy.deepcopy(cfg), "scale": scale}, nc=2, verbose=False)
        channels[scale] = [m.channels for m in attn_yolo.attention_modules(model)]
    if example == "se":
        assert channels == {"n": [32, 64, 128, 256], "s": [64, 128, 256, 512]}
    else:  # a C2f's bottlenecks see half its channels; depth 0.33 gives 1, 2, 2, 1 bottlenecks at both scales
        assert channels == {"n": [16, 32, 32, 64, 64, 128], "s": [32, 64, 64, 128, 128, 256]}


@needs_ultralytics
def test_attention_options_reach_every_module(tasks):
    for example in ("se", "c2f-se"):
        cfg = attn_yolo.with_attention_options(attn_yolo.example_yaml(example), reduction=4)
        model = tasks.DetectionModel(cfg, nc=2, verbose=False)
        modules = attn_yolo.attention_modules(model)
        assert modules and all(m.reduction == 4 and m.hidden_channels == m.channels // 4 for m in modules)
    cfg = attn_yolo.with_attention_options(attn_yolo.example_yaml("c2f-eca"), no_such_option=True)
    with pytest.raises(TypeError, match="does not take 'no_such_option'; it takes: kernel_size"):
        tasks.DetectionModel(cfg, nc=2, verbose=False)
    cfg = attn_yolo.with_attention_options(attn_yolo.example_yaml("c2f-ge"), extent=0, spatial_size=20)
    with pytest.raises(ValueError, match="C2fGETheta: spatial_size cannot be set"):
        tasks.DetectionModel(cfg, nc=2, verbose=False)


@needs_ultralytics
@pytest.mark.parametrize("example", attn_yolo.EXAMPLE_YAMLS)
def test_forward_and_backward_reach_the_modules(tasks, example):
    from ultralytics.cfg import get_cfg

    model = tasks.DetectionModel(str(attn_yolo.example_yaml(example)), nc=2, verbose=False)
    model.args = get_cfg()  # the loss reads its gains (box, cls, dfl) from here, as the trainer sets it
    loss, _ = model.loss(detection_batch(images=2, size=64))
    loss.sum().backward()
    modules = attn_yolo.attention_modules(model)
    assert len(modules) == (6 if example.startswith("c2f-") else len(ATTENTION_ROWS))
    for module in modules:  # (the 16-channel SE of c2f-se has 1 hidden unit: its ReLU may be off for a batch)
        grads = [p.grad for p in module.parameters()]
        assert grads and all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    model.eval()
    with torch.no_grad():
        predictions = model(torch.rand(1, 3, 64, 64))[0]
    assert predictions.shape == (1, 4 + 2, (8 * 8) + (4 * 4) + (2 * 2))  # boxes + classes, one per anchor cell


@needs_ultralytics
@pytest.mark.parametrize("example", ["nam", "c2f-nam"])
def test_ultralytics_trainer_runs_offline_and_its_checkpoint_reloads(tasks, tmp_path, example):
    from ultralytics import YOLO

    data = write_synthetic_boxes(tmp_path / "boxes", train_images=4, val_images=2, size=32)
    model = YOLO(str(attn_yolo.example_yaml(example)))
    threads = torch.get_num_threads()  # the trainer sets its own thread count on CPU; restore it for the other tests
    try:
        model.train(
            data=str(data), epochs=1, imgsz=32, batch=4, workers=0, device="cpu", amp=False, plots=False,
            val=False, project=str(tmp_path / "runs"), name="nam", exist_ok=True, verbose=False,
        )
    finally:
        torch.set_num_threads(threads)
    reloaded = YOLO(str(tmp_path / "runs" / "nam" / "weights" / "last.pt"))
    modules = attn_yolo.attention_modules(reloaded.model)
    assert len(modules) == (6 if example.startswith("c2f-") else len(ATTENTION_ROWS))
    assert all(isinstance(m, attn.NAM) for m in modules)


@needs_ultralytics
def test_c2f_model_saves_and_reloads_as_an_ultralytics_checkpoint(tasks, tmp_path):
    from ultralytics import YOLO

    model = YOLO(str(attn_yolo.example_yaml("c2f-se")))
    model.save(tmp_path / "c2f-se.pt")
    reloaded = YOLO(str(tmp_path / "c2f-se.pt")).model
    modules = attn_yolo.attention_modules(reloaded)
    assert [type(block) for block in reloaded.model[2].m] == [attn_yolo.BottleneckWithAttention]
    assert len(modules) == 6 and all(isinstance(m, attn.SqueezeExcite) for m in modules)
    copied = pickle.loads(pickle.dumps(reloaded))
    assert type(copied.model[4].m[1]) is attn_yolo.BottleneckWithAttention


@needs_ultralytics
def test_fusing_keeps_the_modules_on_the_branch(tasks, baseline):
    """Ultralytics' fuse() folds each Conv's BN into its convolution; the modules stay, the output does not change."""
    model = tasks.DetectionModel(str(attn_yolo.example_yaml("c2f-eca")), nc=2, verbose=False)
    attn_yolo.load_pretrained(model, baseline)
    attn_yolo.calibrate_batchnorm(model, detection_batch(images=16, size=64, seed=1)["img"], batch_size=8)
    x = detection_batch(images=1, size=64, seed=2)["img"]
    with torch.no_grad():
        before = model(x)[0]
        model.fuse(verbose=False)
        after = model(x)[0]
    assert len(attn_yolo.attention_modules(model)) == 6
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-3)


@needs_ultralytics
@pytest.mark.parametrize("name", ["ECA", "C2fECA"])
def test_a_name_ultralytics_already_uses_is_not_overwritten(tasks, monkeypatch, name):
    monkeypatch.setattr(tasks, name, object(), raising=False)
    with pytest.raises(RuntimeError, match=f"already defines a layer named '{name}'"):
        attn_yolo.register_layers()


@needs_ultralytics
def test_changed_c2f_internals_fail_with_a_clear_message(tasks):
    """If parse_model stopped building C2f rows as a C2f of Bottleneck blocks, the wrapper says so."""

    def changed_parse_model(d, ch, verbose=True):
        return nn.Sequential(*(nn.Identity() for _ in d["backbone"] + d["head"])), []

    d = {"backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "C2fECA", [16, True]]], "head": []}
    with pytest.raises(RuntimeError, match="no longer builds a C2f row as a C2f"):
        attn_yolo._with_attention_layers(changed_parse_model)(d, 3, False)


@needs_ultralytics
def test_a_changed_parse_model_signature_is_reported(tasks, monkeypatch):
    monkeypatch.setattr(tasks, "parse_model", lambda cfg: None)
    with pytest.raises(RuntimeError, match="has no ultralytics.nn.tasks.parse_model"):
        attn_yolo.register_layers()


@needs_ultralytics
@pytest.mark.parametrize("example", ["eca", "nam"])
def test_pretrained_weights_load_renumbered_and_a_unit_gate_gives_the_original_output(tasks, baseline, example, monkeypatch):
    model = tasks.DetectionModel(str(attn_yolo.example_yaml(example)), nc=2, verbose=False)
    missing = attn_yolo.load_pretrained(model, baseline)
    assert missing == [key for key in model.state_dict() if key.split(".")[1] in {str(i) for i in ATTENTION_ROWS}]
    x = torch.rand(2, 3, 64, 64)
    expected = head_inputs(baseline, x)
    changed = head_inputs(model, x)
    assert not all(torch.allclose(a, b) for a, b in zip(changed, expected))
    monkeypatch.setattr(torch, "sigmoid", torch.ones_like)  # the modules' gates
    for got, want in zip(head_inputs(model, x), expected):
        torch.testing.assert_close(got, want)


def head_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The three feature maps the Detect head receives, in training mode (batch statistics keep them O(1))."""
    seen = []
    hook = model.model[-1].register_forward_pre_hook(lambda module, args: seen.extend(t.clone() for t in args[0]))
    model.train()
    with torch.no_grad():
        model(x)
    hook.remove()
    return seen


@needs_ultralytics
@pytest.mark.parametrize("example", IN_BOTTLENECKS)
def test_a_plain_state_dict_loads_by_name_with_only_the_attention_keys_missing(tasks, baseline, example):
    """No row is inserted in the c2f-* models: yolov8n's state dict loads with strict=False as it is."""
    model = tasks.DetectionModel(str(attn_yolo.example_yaml(example)), nc=2, verbose=False)
    result = model.load_state_dict(baseline.state_dict(), strict=False)
    attention_keys = [key for key in model.state_dict() if ".attention." in key]
    reported = [key for key in attention_keys if not key.endswith("num_batches_tracked")]  # torch does not report those
    assert reported and sorted(result.missing_keys) == sorted(reported) and result.unexpected_keys == []
    assert all(key.split(".")[1] in {str(i) for i in C2F_ROWS} and ".m." in key for key in attention_keys)
    own = model.state_dict()
    assert all(torch.equal(own[key], value) for key, value in baseline.state_dict().items())
    assert attn_yolo.load_pretrained(model, baseline) == attention_keys


@needs_ultralytics
def test_calibrated_batchnorm_keeps_eval_features_alive(tasks, baseline):
    """Built from a YAML, BN statistics are (0, 1) and eval-mode features fade to nothing; calibrated, they are O(1)."""
    model = copy.deepcopy(baseline)
    weights = {key: value.clone() for key, value in model.state_dict().items() if "running" not in key}
    x = detection_batch(images=2, size=64, seed=2)["img"]
    assert max(f.std() for f in eval_head_inputs(model, x)) < 0.01
    returned = attn_yolo.calibrate_batchnorm(model, detection_batch(images=16, size=64, seed=1)["img"], batch_size=8)
    assert returned is model and not model.training
    assert all(0.1 < f.std() < 10 for f in eval_head_inputs(model, x))
    assert all(torch.equal(model.state_dict()[key], value) for key, value in weights.items() if "num_batches" not in key)
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.03}  # restored
    with pytest.raises(ValueError, match="at least 2"):
        attn_yolo.calibrate_batchnorm(model, x, batch_size=1)


def eval_head_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The three feature maps the Detect head receives, in eval mode."""
    seen = []
    hook = model.model[-1].register_forward_pre_hook(lambda module, args: seen.extend(t.clone() for t in args[0]))
    model.eval()
    with torch.no_grad():
        model(x)
    hook.remove()
    return seen


@pytest.fixture(scope="module")
def calibrated(baseline):
    """yolov8n (nc=2) with BN statistics as if trained, the stand-in for a plain checkpoint."""
    images = detection_batch(images=16, size=64, seed=1)["img"]
    return attn_yolo.calibrate_batchnorm(copy.deepcopy(baseline), images, batch_size=8)


@needs_ultralytics
@pytest.mark.parametrize("example", ["eca", "c2f-eca", "se", "c2f-se"])
def test_compare_to_plain_reports_costs_and_the_output_change_at_insertion(tasks, calibrated, example, monkeypatch):
    model = tasks.DetectionModel(str(attn_yolo.example_yaml(example)), nc=2, verbose=False)
    state = copy.deepcopy(model.state_dict())
    images = detection_batch(images=2, size=64, seed=2)["img"]
    report = attn_yolo.compare_to_plain(calibrated, model, images, imgsz=64)
    added = sum(n_params(m) for m in attn_yolo.attention_modules(model))
    assert report.added_parameters == added and report.parameters == n_params(calibrated) + added
    plain_gflops = 2 * count_macs(calibrated, (1, 3, 64, 64)) / 1e9
    assert report.gflops == pytest.approx(plain_gflops + report.added_gflops) and report.added_gflops > 0
    assert set(report.output_change) == set(report.output_scale) == {"boxes", "scores"}
    assert all(0.01 < report.output_change[key] for key in report.output_change)  # gates near 0.5 change the output
    assert all(1 < scale < 1e3 for scale in report.output_scale.values())
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in state.items())  # model untouched
    monkeypatch.setattr(torch, "sigmoid", torch.ones_like)  # every gate 1: the modules are the identity
    unchanged = attn_yolo.compare_to_plain(calibrated, model, images, imgsz=64)
    assert unchanged.output_change == {"boxes": 0.0, "scores": 0.0}
    assert unchanged.output_scale == report.output_scale


@needs_ultralytics
def test_compare_to_plain_needs_a_detect_head(tasks, baseline):
    model = copy.deepcopy(baseline)
    model.model[-1].cv3 = None
    with pytest.raises(ValueError, match="Detect head with box and class branches"):
        attn_yolo.compare_to_plain(model, model, torch.zeros(1, 3, 64, 64), imgsz=64)


@needs_ultralytics
def test_loading_by_name_would_lose_most_pretrained_layers(tasks, baseline):
    """Why load_pretrained exists: after the first inserted row, names point at other layers."""
    from ultralytics.utils.torch_utils import intersect_dicts

    model = tasks.DetectionModel(str(attn_yolo.example_yaml("eca")), nc=2, verbose=False)
    by_name = intersect_dicts(baseline.state_dict(), model.state_dict())
    assert len(by_name) < 0.2 * len(baseline.state_dict())
    assert len(attn_yolo.load_pretrained(model, baseline)) == 4


@needs_ultralytics
def test_load_pretrained_rejects_another_architecture(tasks, baseline):
    model = tasks.DetectionModel(str(attn_yolo.example_yaml("eca")), nc=2, verbose=False)
    with pytest.raises(ValueError, match="same YOLO"):
        attn_yolo.load_pretrained(model, {"model.40.conv.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"model.<index>.<name>"):
        attn_yolo.load_pretrained(model, {"backbone.0.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="YOLO or DetectionModel"):
        attn_yolo.load_pretrained(nn.Linear(2, 2), baseline)


@needs_ultralytics
@pytest.mark.parametrize("name", sorted(attn_yolo.EXAMPLE_YAMLS))
def test_the_example_models_export_through_ultralytics_to_onnx_and_onnxruntime_agrees(name, tasks, tmp_path,
                                                                                      monkeypatch):
    from ultralytics import YOLO

    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is in the test extra: pip install -e '.[test]'")
    pytest.importorskip("onnx", reason="onnx is in the test extra: pip install -e '.[test]'")
    monkeypatch.chdir(tmp_path)  # Ultralytics writes the .onnx file beside the model's YAML name, here
    torch.manual_seed(0)
    model = YOLO(attn_yolo.example_yaml(name))
    path = model.export(format="onnx", imgsz=64, simplify=False, dynamic=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model.model.eval()(x)[0].numpy()
    session = onnxruntime.InferenceSession(str(path))
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)  # decoded boxes, in pixels, and scores
