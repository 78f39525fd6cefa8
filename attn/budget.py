"""Training budgets: how much compute a notebook or the CLI spends, chosen in one place.

``ATTN_BUDGET=quick`` (the default on a CPU) trains ResNet-8 for 2 epochs on a stratified
subset, so a notebook's training finishes in well under a minute on 2 CPU cores (CI uses
it); ``standard`` trains ResNet-20 for 10 epochs on all of CIFAR-10 (about 20 minutes per
run on 2 CPU cores); ``full`` (the default on a GPU) trains ResNet-20 for 30 epochs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["Budget", "BUDGETS", "budget"]


@dataclass(frozen=True)
class Budget:
    """``train_size`` / ``test_size`` ``None`` means the whole split."""

    name: str
    depth: int
    epochs: int
    train_size: int | None
    test_size: int | None


BUDGETS: dict[str, Budget] = {
    "quick": Budget("quick", depth=8, epochs=2, train_size=5_000, test_size=2_000),
    "standard": Budget("standard", depth=20, epochs=10, train_size=None, test_size=None),
    "full": Budget("full", depth=20, epochs=30, train_size=None, test_size=None),
}


def budget(name: str | None = None) -> Budget:
    """The budget ``name``, else ``$ATTN_BUDGET``, else ``full`` with a CUDA GPU and ``quick`` without."""
    name = name or os.environ.get("ATTN_BUDGET") or ("full" if torch.cuda.is_available() else "quick")
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r} (from ATTN_BUDGET or the argument); choose one of {', '.join(BUDGETS)}")
    return BUDGETS[name]
