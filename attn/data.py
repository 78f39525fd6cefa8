"""CIFAR-10 in memory: where it comes from, stratified subsets, and batched augmentation.

:func:`load_cifar10` returns both splits as ``uint8`` tensors ``(N, 3, 32, 32)`` with their
labels, from the first source that works:

1. torchvision's CIFAR-10 files already under ``root``;
2. an offline archive (a ``.tar.gz`` or a folder) laid out as ``train/<class>/*.jpg`` and
   ``test/<class>/*.jpg``, given as ``archive=`` or in ``$ATTN_CIFAR10_ARCHIVE``. It is
   decoded once and the arrays are cached next to ``root``;
3. torchvision's download into ``root`` (when ``download`` is true and the network allows).

Anything else raises :class:`DatasetNotFoundError`, naming every way to provide the data.

Training never touches PIL: :class:`BatchLoader` crops (4-pixel zero padding) and flips
whole batches of ``uint8`` tensors on the training device and normalises on the fly.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .files import cache_dir, write_atomically
from ._progress import tqdm

__all__ = [
    "CLASSES",
    "MEAN",
    "STD",
    "Split",
    "CIFAR10",
    "DatasetNotFoundError",
    "ArchiveError",
    "load_cifar10",
    "read_archive",
    "default_root",
    "stratified_subset",
    "BatchLoader",
    "normalize",
]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
EXPECTED_SIZES = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE = (3, 32, 32)
# Per-channel mean and standard deviation of the CIFAR-10 training images, in [0, 1] units.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
ARCHIVE_ENV = "ATTN_CIFAR10_ARCHIVE"
TORCHVISION_SOURCE = "CIFAR-10"
ARCHIVE_SOURCE = "CIFAR-10 (JPEG copy)"


class DatasetNotFoundError(FileNotFoundError):
    """No source of CIFAR-10 worked; the message lists the ways to provide it."""


class ArchiveError(ValueError):
    """An offline archive is unreadable, incomplete or not laid out as ``<split>/<class>/*.jpg``."""


@dataclass(frozen=True)
class Split:
    """One split: ``images`` ``uint8`` ``(N, 3, 32, 32)``, ``labels`` ``int64`` ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or tuple(self.images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"Split: images must be uint8 (N, 3, 32, 32), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"Split: labels must have shape ({len(self.images)},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class CIFAR10:
    """Both splits, the class names and where the data came from (``source`` labels every number)."""

    train: Split
    test: Split
    classes: tuple[str, ...]
    source: str


def default_root() -> Path:
    """``$XDG_CACHE_HOME/attn/cifar10`` (``~/.cache/attn/cifar10``)."""
    return cache_dir("cifar10")


def load_cifar10(
    root: str | os.PathLike | None = None,
    archive: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> CIFAR10:
    """CIFAR-10 from torchvision's files, an offline archive, or torchvision's download.

    Args:
        root: torchvision's folder (it holds ``cifar-10-batches-py``) and the cache of
            decoded archives; default :func:`default_root`.
        archive: an offline copy, ``.tar.gz`` or folder, with ``train/<class>/*.jpg`` and
            ``test/<class>/*.jpg``; default ``$ATTN_CIFAR10_ARCHIVE``.
        download: let torchvision download the official files when nothing local exists.
        progress: show a progress bar while decoding an archive.
    """
    root = Path(root) if root is not None else default_root()
    archive = archive if archive is not None else os.environ.get(ARCHIVE_ENV) or None
    local = _from_torchvision(root, download=False)
    if local is not None:
        return local
    if archive is not None:
        return _from_archive(Path(archive), root, progress)
    failure = "download=False"
    if download:
        try:
            downloaded = _from_torchvision(root, download=True)
        except Exception as error:  # any network or integrity failure: explain all the options below
            failure = f"the download failed ({type(error).__name__}: {error})"
        else:
            if downloaded is not None:
                return downloaded
    raise DatasetNotFoundError(
        f"CIFAR-10 not found: no torchvision files under {root}, no archive given, and {failure}. "
        f"Provide it in one of these ways: (1) allow the download (download=True, network access), or put "
        f"torchvision's cifar-10-batches-py folder under {root} (root=...); (2) point archive=... or "
        f"${ARCHIVE_ENV} at an offline copy (.tar.gz or folder) laid out as train/<class>/*.jpg, "
        f"test/<class>/*.jpg; on the project's machines that is ../shared/data/cifar10-jpeg.tar.gz."
    )


def _from_torchvision(root: Path, download: bool) -> CIFAR10 | None:
    """torchvision's CIFAR-10 under ``root``, or ``None`` if its files are absent or corrupt."""
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    if not download and not (root / "cifar-10-batches-py").is_dir():
        return None
    try:
        train, test = (TorchvisionCIFAR10(str(root), train=flag, download=download) for flag in (True, False))
    except RuntimeError:  # "Dataset not found or corrupted."
        if download:
            raise
        return None
    splits = [
        Split(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(d.targets, dtype=torch.int64))
        for d in (train, test)
    ]
    return CIFAR10(splits[0], splits[1], tuple(train.classes), TORCHVISION_SOURCE)


def _from_archive(archive: Path, root: Path, progress: bool) -> CIFAR10:
    """Decode ``archive`` once; later calls load the cached arrays (keyed by the archive's content)."""
    if not archive.exists():
        raise DatasetNotFoundError(
            f"CIFAR-10 archive {archive} does not exist (given as archive= or ${ARCHIVE_ENV}); "
            f"expected a .tar.gz or folder with train/<class>/*.jpg and test/<class>/*.jpg"
        )
    cache = root / f"decoded-{_fingerprint(archive)}.npz"
    if cache.exists():
        with np.load(cache) as arrays:
            splits = {name: Split(torch.from_numpy(arrays[f"{name}_images"]), torch.from_numpy(arrays[f"{name}_labels"]))
                      for name in EXPECTED_SIZES}
    else:
        splits = read_archive(archive, progress=progress)
        arrays = {f"{name}_{kind}": getattr(split, kind).numpy() for name, split in splits.items()
                  for kind in ("images", "labels")}
        write_atomically(cache, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")
    return CIFAR10(splits["train"], splits["test"], CLASSES, ARCHIVE_SOURCE)


def _fingerprint(archive: Path) -> str:
    """A short hash of the archive's bytes (a folder: of its file names and sizes)."""
    digest = hashlib.sha256()
    if archive.is_dir():
        for path in sorted(archive.rglob("*.jpg")):
            digest.update(f"{path.relative_to(archive)}:{path.stat().st_size}\n".encode())
    else:
        with archive.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def read_archive(archive: str | os.PathLike, progress: bool = True) -> dict[str, Split]:
    """Decode every ``<split>/<class>/*.jpg`` of ``archive`` (``.tar.gz``/``.tar`` or folder).

    Images are ordered by class, then file name. Raises :class:`ArchiveError` when the archive
    cannot be read, a file does not decode to a 32x32 image, a class folder is missing or
    unknown, or a split does not hold exactly 50,000 / 10,000 images.
    """
    archive = Path(archive)
    files: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    for name, payload in tqdm(_archive_files(archive), desc=f"decoding {archive.name}", unit="img",
                           total=sum(EXPECTED_SIZES.values()), disable=not progress, leave=False):
        parts = Path(name).parts
        if len(parts) < 3 or parts[-3] not in EXPECTED_SIZES or not parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        split, label = parts[-3], parts[-2]
        if label not in CLASSES:
            raise ArchiveError(f"{archive}: unknown class folder {split}/{label}; expected the CIFAR-10 classes {', '.join(CLASSES)}")
        files.setdefault((split, label), []).append((parts[-1], payload))
    return {split: _decode_split(archive, split, files) for split in EXPECTED_SIZES}


def _archive_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """``(path inside the archive, contents)`` for every regular file, in archive order."""
    if archive.is_dir():
        for path in sorted(p for p in archive.rglob("*") if p.is_file()):
            yield str(path.relative_to(archive)), path.read_bytes()
        return
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile():
                    payload = tar.extractfile(member).read()
                    yield member.name, payload
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise ArchiveError(f"{archive}: not a readable .tar.gz/.tar archive or it is truncated ({error})") from error


def _decode_split(archive: Path, split: str, files: dict[tuple[str, str], list[tuple[str, bytes]]]) -> Split:
    """Decode one split's images in class order and check that it is complete."""
    missing = [label for label in CLASSES if (split, label) not in files]
    if missing:
        raise ArchiveError(f"{archive}: {split}/ lacks the class folders {', '.join(missing)}; expected all ten CIFAR-10 classes")
    images, labels = [], []
    for index, label in enumerate(CLASSES):
        for filename, data in sorted(files[(split, label)]):
            images.append(_decode(archive, f"{split}/{label}/{filename}", data))
            labels.append(index)
    if len(images) != EXPECTED_SIZES[split]:
        raise ArchiveError(
            f"{archive}: {split}/ holds {len(images):,} images, expected {EXPECTED_SIZES[split]:,} "
            f"(a partial or different archive)"
        )
    return Split(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels, dtype=torch.int64))


def _decode(archive: Path, name: str, data: bytes) -> np.ndarray:
    """One image as ``uint8`` ``(32, 32, 3)``."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ArchiveError(f"{archive}: {name} is not a decodable image ({error})") from error
    if array.shape != (32, 32, 3):
        raise ArchiveError(f"{archive}: {name} is {array.shape[1]}x{array.shape[0]}, expected a 32x32 CIFAR-10 image")
    return array


def stratified_subset(split: Split, size: int, seed: int = 0) -> Split:
    """``size`` images with the classes as balanced as possible, chosen and shuffled with ``seed``.

    The sources store images in class order, so "the first ``size``" would hold one or two
    classes; this takes ``size // K`` from each of the ``K`` classes (one more from the first
    ``size % K`` classes) and shuffles them.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= len(split):
        raise ValueError(f"stratified_subset: size must be an integer in [1, {len(split)}], got {size!r}")
    generator = torch.Generator().manual_seed(seed)
    classes = torch.unique(split.labels)
    per_class, extra = divmod(size, len(classes))
    chosen = []
    for rank, label in enumerate(classes.tolist()):
        members = torch.nonzero(split.labels == label).flatten()
        take = per_class + (rank < extra)
        if take > len(members):
            raise ValueError(f"stratified_subset: class {label} has only {len(members)} images, {take} requested")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:take]])
    index = torch.cat(chosen)
    index = index[torch.randperm(len(index), generator=generator)]
    return Split(split.images[index], split.labels[index])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` ``(N, 3, H, W)`` to ``float32`` normalised with the CIFAR-10 :data:`MEAN` and :data:`STD`."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random ``H x W`` crops of the zero-padded batch and random horizontal flips, per image.

    ``images`` ``uint8`` ``(N, C, H, W)`` -> same shape; all ``N`` crops are one gather.
    """
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(images.device)
    flips = torch.rand(n, generator=generator).to(images.device) < 0.5
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=images.device)[:, None, None]
    crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return crops.permute(0, 3, 1, 2)


class BatchLoader:
    """Mini-batches ``(x, y)`` of a :class:`Split`: ``x`` ``float32`` ``(B, 3, 32, 32)`` on ``device``.

    Shuffling and augmentation are drawn from a generator seeded by ``(seed, epoch)``, so
    epoch ``e`` is the same batch sequence whether or not training was resumed before it.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
        channels_last: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"BatchLoader: batch_size must be a positive integer, got {batch_size!r}")
        if drop_last and batch_size > len(split):
            raise ValueError(f"BatchLoader: batch_size={batch_size} exceeds the {len(split)} images with drop_last=True")
        self.split = split
        self.device = torch.device(device)
        # The whole split moves to the device once (150 MiB for CIFAR-10's training images), so a
        # GPU never waits for host-to-device copies of every batch.
        self.images, self.labels = split.images.to(self.device), split.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.drop_last = drop_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        full, rest = divmod(len(self.split), self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of epoch ``epoch`` (0-based)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.split), generator=generator) if self.shuffle else torch.arange(len(self.split))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size].to(self.device)
            images = self.images[index]
            if self.augment:
                images = random_crop_flip(images, generator)
            yield normalize(images).contiguous(memory_format=self.memory_format), self.labels[index]
