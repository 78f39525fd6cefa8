"""Shared helpers for the test suite."""

from __future__ import annotations

import pytest
import torch
from torch import nn

# Modules whose learned global gather needs the input's spatial size at construction.
NEEDS_SPATIAL_SIZE = {"ge_theta", "ge_theta_plus"}


def n_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_kwargs(name: str, spatial_size: int) -> dict[str, object]:
    """The keyword arguments a registry name needs for an input of ``spatial_size``."""
    return {"spatial_size": spatial_size} if name in NEEDS_SPATIAL_SIZE else {}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module's tests, restored afterwards: tiny inputs gain nothing from a
    second thread, and on a busy 2-core machine two threads wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
