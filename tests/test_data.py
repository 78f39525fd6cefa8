"""CIFAR-10 sources, archive checks, the decode cache, subsets and the batched augmentation."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import attn.data as data
from attn.data import (
    ARCHIVE_SOURCE, CLASSES, ArchiveError, BatchLoader, DatasetNotFoundError, Split, load_cifar10,
    normalize, random_crop_flip, read_archive, stratified_subset,
)

TINY = {"train": 20, "test": 10}  # images per split in the archives the tests build: 2 and 1 per class


@pytest.fixture
def tiny_sizes(monkeypatch):
    monkeypatch.setattr(data, "EXPECTED_SIZES", TINY)


def _image(split: str, label: int, index: int) -> np.ndarray:
    """A recognisable 32x32 RGB image: flat colour from (split, class, index) plus a gradient."""
    base = np.full((32, 32, 3), (label * 20, index * 40, 100 if split == "train" else 200), dtype=np.uint8)
    base[:, :, 0] += np.arange(32, dtype=np.uint8)[None, :]
    return base


def _files(fmt: str = "PNG", drop: str | None = None, extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    files = {}
    for split, size in TINY.items():
        for label, name in enumerate(CLASSES):
            if f"{split}/{name}" == drop:
                continue
            for index in range(size // len(CLASSES)):
                buffer = io.BytesIO()
                Image.fromarray(_image(split, label, index)).save(buffer, format=fmt)
                files[f"{split}/{name}/{index:04d}.{fmt.lower()}"] = buffer.getvalue()
    files.update(extra or {})
    return files


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def _folder(path: Path, files: dict[str, bytes]) -> Path:
    for name, payload in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(payload)
    return path


def test_read_archive_decodes_every_split_in_class_order(tmp_path, tiny_sizes):
    splits = read_archive(_tar(tmp_path / "c.tar.gz", _files()), progress=False)
    for split, size in TINY.items():
        assert splits[split].images.shape == (size, 3, 32, 32) and splits[split].images.dtype == torch.uint8
        assert splits[split].labels.tolist() == [i // (size // 10) for i in range(size)]
    expected = torch.from_numpy(_image("train", 3, 1)).permute(2, 0, 1)
    assert torch.equal(splits["train"].images[7], expected)  # PNG is lossless: exact pixels


def test_folder_and_jpeg_archives(tmp_path, tiny_sizes):
    splits = read_archive(_folder(tmp_path, _files("JPEG")), progress=False)
    original = torch.from_numpy(_image("test", 9, 0)).permute(2, 0, 1).float()
    assert (splits["test"].images[9].float() - original).abs().mean() < 3  # JPEG: close, not equal


@pytest.mark.parametrize("files, message", [
    (_files(drop="train/cat"), "train/ lacks the class folders cat"),
    (_files(extra={"test/cat/9999.png": _files()["test/cat/0000.png"]}), "test/ holds 11 images, expected 10"),
    (_files(extra={"train/cat/0001.png": b"not an image"}), "train/cat/0001.png is not a decodable image"),
    (_files(extra={"train/lion/0000.png": b""}), "unknown class folder train/lion"),
])
def test_broken_archives_are_rejected_with_the_reason(tmp_path, tiny_sizes, files, message):
    with pytest.raises(ArchiveError, match=message):
        read_archive(_tar(tmp_path / "c.tar.gz", files), progress=False)


def test_wrong_image_size_is_rejected(tmp_path, tiny_sizes):
    buffer = io.BytesIO()
    Image.new("RGB", (28, 28)).save(buffer, format="PNG")
    with pytest.raises(ArchiveError, match="is 28x28, expected a 32x32"):
        read_archive(_tar(tmp_path / "c.tar.gz", _files(extra={"test/dog/0000.png": buffer.getvalue()})), progress=False)


def test_truncated_archive(tmp_path, tiny_sizes):
    whole = _tar(tmp_path / "c.tar.gz", _files()).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ArchiveError, match="not a readable .tar.gz/.tar archive or it is truncated"):
        read_archive(tmp_path / "cut.tar.gz", progress=False)


def test_archive_source_from_argument_and_environment_with_a_cache(tmp_path, tiny_sizes, monkeypatch):
    archive = _tar(tmp_path / "c.tar.gz", _files())
    root = tmp_path / "root"
    monkeypatch.delenv("ATTN_CIFAR10_ARCHIVE", raising=False)
    first = load_cifar10(root=root, archive=archive, download=False, progress=False)
    assert first.source == ARCHIVE_SOURCE == "CIFAR-10 (JPEG copy)" and first.classes == CLASSES
    assert len(list(root.glob("decoded-*.npz"))) == 1

    monkeypatch.setattr(data, "read_archive", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    monkeypatch.setenv("ATTN_CIFAR10_ARCHIVE", str(archive))
    second = load_cifar10(root=root, download=False)
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.test.labels, second.test.labels)


def test_torchvision_files_come_before_the_archive(tmp_path, monkeypatch):
    local = object()
    monkeypatch.setattr(data, "_from_torchvision", lambda root, download: None if download else local)
    assert load_cifar10(root=tmp_path, archive=tmp_path / "unused.tar.gz") is local


def test_download_comes_after_the_archive_and_its_failure_is_explained(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTN_CIFAR10_ARCHIVE", raising=False)
    calls = []

    def offline(root, download):
        calls.append(download)
        if download:
            raise RuntimeError("network unreachable")
        return None

    monkeypatch.setattr(data, "_from_torchvision", offline)
    with pytest.raises(DatasetNotFoundError) as error:
        load_cifar10(root=tmp_path)
    assert calls == [False, True]
    message = str(error.value)
    for fragment in ("download failed (RuntimeError: network unreachable)", "download=True", "archive=",
                     "ATTN_CIFAR10_ARCHIVE", "train/<class>/*.jpg", "cifar-10-batches-py"):
        assert fragment in message


def test_no_source_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTN_CIFAR10_ARCHIVE", raising=False)
    with pytest.raises(DatasetNotFoundError, match="no archive given, and download=False. Provide it"):
        load_cifar10(root=tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match="missing.tar.gz does not exist"):
        load_cifar10(root=tmp_path, archive=tmp_path / "missing.tar.gz", download=False)


def _split(n: int = 100, classes: int = 10) -> Split:
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    return Split(images, torch.arange(n) % classes)


def test_stratified_subset_is_balanced_shuffled_and_seeded():
    split = Split(torch.zeros(1000, 3, 32, 32, dtype=torch.uint8), torch.arange(1000) // 100)  # class-ordered
    subset = stratified_subset(split, 25, seed=1)
    assert torch.bincount(subset.labels).tolist() == [3] * 5 + [2] * 5
    assert subset.labels.tolist() != sorted(subset.labels.tolist())
    assert torch.equal(stratified_subset(split, 25, seed=1).labels, subset.labels)
    with pytest.raises(ValueError, match=r"size must be an integer in \[1, 1000\]"):
        stratified_subset(split, 0)


def test_split_checks_its_tensors():
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, 3, 32, 32\)"):
        Split(torch.zeros(2, 32, 32, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        Split(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


def test_normalize_uses_the_cifar_statistics():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    expected = [(1 - m) / s for m, s in zip(data.MEAN, data.STD)]
    torch.testing.assert_close(normalize(x)[0, :, 0, 0], torch.tensor(expected))


def test_every_augmented_image_is_a_padded_crop_possibly_flipped():
    images = torch.randint(1, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(images, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    flips = 0
    for i in range(len(images)):
        crops = {(dy, dx, f): padded[i, :, dy:dy + 32, dx:dx + 32].flip(-1) if f else padded[i, :, dy:dy + 32, dx:dx + 32]
                 for dy in range(9) for dx in range(9) for f in (0, 1)}
        matches = [key for key, crop in crops.items() if torch.equal(crop, out[i])]
        assert matches, f"image {i} is not a crop of its padded original"
        flips += matches[0][2]
    assert 0 < flips < len(images)


def test_batch_loader_batches_order_and_determinism():
    split = _split(100)
    loader = BatchLoader(split, 32, shuffle=True, augment=True, seed=3, drop_last=True, channels_last=True)
    assert len(loader) == 3 and len(BatchLoader(split, 32)) == 4
    batches = list(loader.epoch(2))
    x, y = batches[0]
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    again = list(loader.epoch(2))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    assert not torch.equal(list(loader.epoch(3))[0][1], y)
    plain = list(BatchLoader(split, 32))
    assert torch.equal(torch.cat([b[1] for b in plain]), split.labels)
    torch.testing.assert_close(plain[0][0], normalize(split.images[:32]))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        BatchLoader(split, 0)
