"""The grids' committed trained networks, loaded for the chapters and checked on the test set.

A chapter that analyses a trained module loads it with :func:`load_trained_network`, which
rebuilds the network from the result file, loads its committed weights
(:func:`attn.experiments.load_grid_model`), evaluates it on ``data.test`` in the precision it
was trained in, and says both numbers: the accuracy the run recorded and the one measured
here (they agree on the data the run used; on another copy of CIFAR-10 they differ, and
the message names both sources)::

    trained = load_trained_network("eca", data)
    print(trained)
    gates = capture_gates(trained.model, images)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .data import CIFAR10
from .experiments import load_grid_model
from .train import evaluate

__all__ = ["TrainedNetwork", "load_trained_network"]


@dataclass(frozen=True)
class TrainedNetwork:
    """A committed network in eval mode, its result record, and its accuracy measured on ``data.test``."""

    model: nn.Module
    result: dict
    test_acc: float
    data_source: str
    test_size: int

    def __str__(self) -> str:
        result = self.result
        return (f"{result['key']}: recorded test accuracy {100 * result['final_test_acc']:.2f} % "
                f"({result['data']['source']}); loaded here, on the {self.test_size:,} test images of "
                f"{self.data_source} in {result['config']['train']['precision']}: {100 * self.test_acc:.2f} %")


def load_trained_network(variant: str, data: CIFAR10, grid: str = "reference", seed: int = 0) -> TrainedNetwork:
    """The trained ``variant`` (a label such as ``"eca"`` or ``"se(reduction=4)"``) of the named grid.

    Raises what :func:`attn.experiments.load_grid_model` raises: ``ValueError`` for a variant the
    grid does not have, ``FileNotFoundError`` (with the command that makes it) for one not committed.
    """
    model, result = load_grid_model(grid, variant, seed)
    bf16 = result["config"]["train"]["precision"] == "bf16"
    _, accuracy = evaluate(model, data.test, autocast_dtype=torch.bfloat16 if bf16 else None)
    return TrainedNetwork(model, result, accuracy, data.source, len(data.test))
