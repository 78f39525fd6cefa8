"""Where attn keeps its caches, and how it writes files that other processes may be reading."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

__all__ = ["cache_dir", "write_atomically"]


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/attn/<name>`` (``~/.cache/attn/<name>``): attn's caches, never inside the repository."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "attn" / name


def write_atomically(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on POSIX, so a reader sees the old file or the whole new one, never
    half of it; a write that fails leaves ``path`` untouched and removes its temporary file.
    ``suffix`` ends the temporary name, for writers that append one themselves (``numpy.savez``
    adds ``.npz``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
