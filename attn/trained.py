"""The grids' committed trained networks, loaded for the chapters and checked on the test set.

A chapter that analyses a trained module loads it with :func:`load_trained_network`, which
rebuilds the network from the result file, loads its committed weights
(:func:`attn.experiments.load_grid_model`), evaluates it on ``data.test`` in the precision it
was trained in on the CPU (bf16 or float32; a bf16 run in float32 where this CPU would
emulate bf16, about ten times slower: the two differ in rounding only), and says both numbers and the precision of each:
the accuracy the run recorded and the one measured here (they agree to rounding on the data
the run used; on another copy of CIFAR-10 they differ, and the message names both sources)::

    trained = load_trained_network("eca", data)
    print(trained)
    gates = capture_gates(trained.model, images)

:func:`baseline_features` gives the chapters their real features: a few test images through
the trained network without attention, and what each block's attention slot receives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .capture import capture_inputs
from .data import CIFAR10
from .experiments import load_grid_model
from .train import emulates_bf16, evaluate

__all__ = ["TrainedNetwork", "load_trained_network", "baseline_features"]


@dataclass(frozen=True)
class TrainedNetwork:
    """A committed network in eval mode, its result record, and its accuracy measured on ``data.test``
    in ``precision`` (``"fp32"`` or ``"bf16"``)."""

    model: nn.Module
    result: dict
    test_acc: float
    data_source: str
    test_size: int
    precision: str

    def __str__(self) -> str:
        result = self.result
        trained_in = result["config"]["train"]["precision"]
        return (f"{result['key']}: recorded test accuracy {100 * result['final_test_acc']:.2f} % "
                f"({result['data']['source']}, {trained_in}); loaded here, on the {self.test_size:,} test "
                f"images of {self.data_source} in {self.precision}: {100 * self.test_acc:.2f} %")


def load_trained_network(variant: str, data: CIFAR10, grid: str = "reference", seed: int = 0) -> TrainedNetwork:
    """The trained ``variant`` (a label such as ``"eca"`` or ``"se(reduction=4)"``) of the named grid.

    Raises what :func:`attn.experiments.load_grid_model` raises: ``ValueError`` for a variant the
    grid does not have, ``FileNotFoundError`` (with the command that makes it) for one not committed.
    """
    model, result = load_grid_model(grid, variant, seed)
    bf16 = result["config"]["train"]["precision"] == "bf16" and not emulates_bf16("bf16", torch.device("cpu"))
    precision = "bf16" if bf16 else "fp32"
    _, accuracy = evaluate(model, data.test, autocast_dtype=torch.bfloat16 if bf16 else None)
    return TrainedNetwork(model, result, accuracy, data.source, len(data.test), precision)


def baseline_features(data: CIFAR10, count: int = 8, one_per_class: bool = False
                      ) -> tuple[torch.Tensor, TrainedNetwork, dict[str, torch.Tensor]]:
    """Real features for a chapter: ``count`` test images through the trained ResNet-20 without attention.

    The images are the first ``count`` of ``data.test``, or with ``one_per_class`` the first test
    image of each of the first ``count`` classes, in class order. The network is the reference
    grid's ``none``, seed 0 (:func:`load_trained_network`). Returns ``(images, baseline, inputs)``:
    the images, uint8 ``(count, 3, 32, 32)``; the network; and what every block's attention slot
    receives from them in eval mode, by block name (:func:`attn.capture.capture_inputs`), each
    ``(count, C, H, W)``. Raises ``ValueError`` for a ``count`` the test set cannot supply.
    """
    available = len(data.classes) if one_per_class else len(data.test)
    if not 1 <= count <= available:
        raise ValueError(f"baseline_features: count must be between 1 and {available} "
                         f"({'classes' if one_per_class else 'test images'}), got {count}")
    if one_per_class:
        firsts = [(data.test.labels == k).nonzero() for k in range(count)]
        missing = [data.classes[k] for k, found in enumerate(firsts) if len(found) == 0]
        if missing:
            raise ValueError(f"baseline_features: the test set has no image of class {', '.join(missing)}")
        images = data.test.images[torch.stack([found[0, 0] for found in firsts])]
    else:
        images = data.test.images[:count]
    baseline = load_trained_network("none", data)
    return images, baseline, capture_inputs(baseline.model, images)
