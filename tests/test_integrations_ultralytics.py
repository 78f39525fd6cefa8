"""Ultralytics YOLO integration: YAML layer names, channels, example models, training offline.

The tests that need Ultralytics skip when it is not installed (``pip install "attn[yolo]"``);
the rest (the layer table, YAML checks, the synthetic detection set) always run.
"""

import importlib.util
import os
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
from conftest import n_params

needs_ultralytics = pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is None, reason='Ultralytics is not installed (pip install "attn[yolo]")'
)
ATTENTION_ROWS = (3, 6, 9, 12)  # where the example YAMLs put a module: after each backbone C2f


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


# --- without Ultralytics ---------------------------------------------------------------------


def test_every_registry_module_has_one_yaml_name():
    assert sorted(cls.attention_name for cls in attn_yolo.YAML_LAYERS.values()) == sorted(attn.available())
    assert all(name == cls.__name__ for name, cls in attn_yolo.YAML_LAYERS.items())


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


def test_changed_ultralytics_internals_fail_with_a_clear_message():
    """If parse_model stopped giving nn.BatchNorm2d rows their channels, the wrapper says so."""

    def changed_parse_model(d, ch, verbose=True):
        return nn.Sequential(*(nn.Identity() for _ in d["backbone"] + d["head"])), []

    d = {"backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "ECA", []]], "head": []}
    with pytest.raises(RuntimeError, match="no longer builds nn.BatchNorm2d"):
        attn_yolo._with_attention_channels(changed_parse_model)(d, 3, False)


def test_register_without_ultralytics_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ultralytics.nn.tasks", None)
    with pytest.raises(ImportError, match=r'pip install "attn\[yolo\]"'):
        attn_yolo.register_layers()


def test_example_yamls_exist_and_unknown_names_fail():
    for name in attn_yolo.EXAMPLE_YAMLS:
        text = attn_yolo.example_yaml(name).read_text()
        layer = next(n for n in attn_yolo.YAML_LAYERS if f", {n}, [" in text)
        assert text.count(f", {layer}, [") == len(ATTENTION_ROWS)
    with pytest.raises(ValueError, match="there are: eca, se, ge, nam"):
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
@pytest.mark.parametrize("example", attn_yolo.EXAMPLE_YAMLS)
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
def test_channels_follow_the_model_scale(tasks):
    """The same YAML at scale s (width 0.5) gives modules for twice the channels of scale n."""
    import copy

    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load(attn_yolo.example_yaml("se"))
    channels = {}
    for scale in ("n", "s"):
        model = tasks.DetectionModel({**copy.deepcopy(cfg), "scale": scale}, nc=2, verbose=False)
        channels[scale] = [model.model[i].attention.channels for i in ATTENTION_ROWS]
    assert channels == {"n": [32, 64, 128, 256], "s": [64, 128, 256, 512]}


@needs_ultralytics
@pytest.mark.parametrize("example", attn_yolo.EXAMPLE_YAMLS)
def test_forward_and_backward_reach_the_modules(tasks, example):
    from ultralytics.cfg import get_cfg

    model = tasks.DetectionModel(str(attn_yolo.example_yaml(example)), nc=2, verbose=False)
    model.args = get_cfg()  # the loss reads its gains (box, cls, dfl) from here, as the trainer sets it
    loss, _ = model.loss(detection_batch(images=2, size=64))
    loss.sum().backward()
    for i in ATTENTION_ROWS:
        grads = [p.grad for p in model.model[i].parameters()]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        predictions = model(torch.rand(1, 3, 64, 64))[0]
    assert predictions.shape == (1, 4 + 2, (8 * 8) + (4 * 4) + (2 * 2))  # boxes + classes, one per anchor cell


@needs_ultralytics
def test_ultralytics_trainer_runs_offline_and_its_checkpoint_reloads(tasks, tmp_path):
    from ultralytics import YOLO

    data = write_synthetic_boxes(tmp_path / "boxes", train_images=4, val_images=2, size=32)
    model = YOLO(str(attn_yolo.example_yaml("nam")))
    threads = torch.get_num_threads()  # the trainer sets its own thread count on CPU; restore it for the other tests
    try:
        model.train(
            data=str(data), epochs=1, imgsz=32, batch=4, workers=0, device="cpu", amp=False, plots=False,
            val=False, project=str(tmp_path / "runs"), name="nam", exist_ok=True, verbose=False,
        )
    finally:
        torch.set_num_threads(threads)
    reloaded = YOLO(str(tmp_path / "runs" / "nam" / "weights" / "last.pt"))
    layers = [m for m in reloaded.model.modules() if isinstance(m, attn_yolo.NAM)]
    assert len(layers) == len(ATTENTION_ROWS)
    assert isinstance(layers[0].attention, attn.NAM)


@needs_ultralytics
def test_a_name_ultralytics_already_uses_is_not_overwritten(tasks, monkeypatch):
    monkeypatch.setattr(tasks, "ECA", object())
    with pytest.raises(RuntimeError, match="already defines a layer named 'ECA'"):
        attn_yolo.register_layers()


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
