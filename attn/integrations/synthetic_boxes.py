"""A tiny detection set generated on the spot: coloured boxes on noise, in Ultralytics' YOLO format.

It exists so that a detector with attention can be trained for a few iterations with no
download at all. Class 0 is a red box, class 1 a blue box; each image holds 1-3 non-overlapping
boxes of random size and position on a grey, noisy background. A detector's loss on it falls
within a few dozen iterations, which shows the model trains; it says nothing about accuracy
on real images.

:func:`detection_batch` makes one batch in memory, in the format of Ultralytics' training
batches; :func:`write_synthetic_boxes` writes a whole set to disk for its trainer, laid
out under ``root`` as Ultralytics expects::

    root/data.yaml
    root/images/{train,val}/000000.png ...
    root/labels/{train,val}/000000.txt     one "class cx cy w h" line per box, normalised to [0, 1]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..checks import positive_int

__all__ = ["detection_batch", "write_synthetic_boxes", "CLASS_NAMES"]

CLASS_NAMES: tuple[str, ...] = ("red box", "blue box")
_COLOURS = np.array([[220, 40, 40], [40, 70, 220]], dtype=np.int16)  # RGB per class


def detection_batch(images: int = 8, size: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """One batch of ``images`` generated images with their ``M`` boxes, as Ultralytics' trainer feeds its loss.

    Returns ``{"img": (N, 3, size, size) float in [0, 1], "batch_idx": (M,) image index of
    each box, "cls": (M, 1) class, "bboxes": (M, 4) cx, cy, w, h normalised to [0, 1]}``.
    """
    owner = "detection_batch"
    images = positive_int(owner, "images", images)
    size = _checked_size(owner, size)
    rng = np.random.default_rng(seed)
    pictures, boxes = [], []
    for index in range(images):
        pixels, rows = _image_with_boxes(rng, size)
        pictures.append(torch.from_numpy(pixels).permute(2, 0, 1))
        boxes += [(index, *row) for row in rows]
    table = torch.tensor(boxes, dtype=torch.float32)
    return {
        "img": torch.stack(pictures).float() / 255,
        "batch_idx": table[:, 0],
        "cls": table[:, 1:2],
        "bboxes": table[:, 2:],
    }


def write_synthetic_boxes(root: str | Path, train_images: int = 32, val_images: int = 8, size: int = 64, seed: int = 0) -> Path:
    """Write the set under ``root`` and return the path of its ``data.yaml``.

    Args:
        root: output folder (created; existing files of the same names are overwritten).
        train_images, val_images: how many images per split.
        size: image side in pixels (square ``size x size`` RGB images); at least 32.
        seed: the same seed writes the same images.
    """
    owner = "write_synthetic_boxes"
    train_images, val_images = positive_int(owner, "train_images", train_images), positive_int(owner, "val_images", val_images)
    size = _checked_size(owner, size)
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_images), ("val", val_images)):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels, rows = _image_with_boxes(rng, size)
            Image.fromarray(pixels).save(images / f"{index:06d}.png")
            (labels / f"{index:06d}.txt").write_text("".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in rows))
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASS_NAMES))
    data_yaml = root / "data.yaml"
    data_yaml.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return data_yaml


def _checked_size(owner: str, size: object) -> int:
    """``size`` as an int of at least 32 pixels (one cell of YOLO's coarsest stride)."""
    if positive_int(owner, "size", size) < 32:
        raise ValueError(f"{owner}: size must be at least 32 pixels (one cell of YOLO's coarsest stride), got {size}")
    return int(size)


def _image_with_boxes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One ``(size, size, 3)`` uint8 image and its boxes ``(class, cx, cy, w, h)`` normalised to ``[0, 1]``."""
    pixels = rng.normal(128, 20, (size, size, 3))
    occupied = np.zeros((size, size), dtype=bool)
    rows = []
    for _ in range(rng.integers(1, 4)):
        label = int(rng.integers(len(CLASS_NAMES)))
        w, h = (int(side) for side in rng.integers(size // 6, size // 2, 2))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        if occupied[y0 : y0 + h, x0 : x0 + w].any():
            continue  # boxes never overlap, so no label points at a hidden box
        occupied[y0 : y0 + h, x0 : x0 + w] = True
        pixels[y0 : y0 + h, x0 : x0 + w] = _COLOURS[label] + rng.normal(0, 10, (h, w, 3))
        rows.append((label, (x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size))
    return np.clip(pixels, 0, 255).astype(np.uint8), rows
