"""Plots the book reuses: learning curves of runs, and accuracy against cost for a summary.

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is ``None``) and
returns it, so notebooks can combine panels. Titles say which data the numbers come from.
"""

from __future__ import annotations

from typing import Iterable

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
import torch

from .capture import per_class_mean
from .experiments import variant_label

__all__ = ["learning_curves", "accuracy_vs_cost", "gate_distributions", "gate_profiles"]

METRICS = {
    "test_acc": "test accuracy (%)",
    "train_acc": "training accuracy (%)",
    "test_loss": "test loss",
    "train_loss": "training loss",
}


def _label(result: dict) -> str:
    config = result["config"]
    variant = variant_label(config["attention"], config["attention_kwargs"], config["train"]["nam_sparsity"])
    return f"ResNet-{config['depth']} {variant} (seed {config['train']['seed']})"


def learning_curves(results: Iterable[dict], metric: str = "test_acc", ax: Axes | None = None) -> Axes:
    """One line per result (as written by :func:`attn.experiments.run`): ``metric`` against epoch."""
    if metric not in METRICS:
        raise ValueError(f"learning_curves: metric must be one of {', '.join(METRICS)}, got {metric!r}")
    results = list(results)
    if not results:
        raise ValueError("learning_curves: no results to plot")
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    scale = 100 if metric.endswith("acc") else 1
    for result in results:
        epochs = [row["epoch"] for row in result["history"]]
        ax.plot(epochs, [scale * row[metric] for row in result["history"]], marker="o", markersize=3, label=_label(result))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(METRICS[metric])
    ax.set_title(", ".join(sorted({r["data"]["source"] for r in results})) + f", {results[0]['data']['test_size']:,} test images",
                 fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def accuracy_vs_cost(rows: Iterable[dict], cost: str = "params_added", cost_label: str | None = None,
                     ax: Axes | None = None) -> Axes:
    """One point per row of a summary (mean test accuracy with a ± std error bar) against ``cost``."""
    rows = list(rows)
    missing = [r.get("attention", "?") for r in rows if cost not in r]
    if missing:
        raise ValueError(f"accuracy_vs_cost: rows {missing} have no {cost!r}; available: {', '.join(rows[0]) if rows else '-'}")
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    for row in rows:
        ax.errorbar(row[cost], 100 * row["mean"], yerr=100 * row["std"], fmt="o", capsize=3)
        ax.annotate(row.get("variant", row["attention"]), (row[cost], 100 * row["mean"]), textcoords="offset points", xytext=(4, 4),
                    fontsize="small")
    ax.set_xlabel(cost_label or cost.replace("_", " "))
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.grid(alpha=0.3)
    return ax


def gate_distributions(gates: dict[str, torch.Tensor], start: float | None = 0.5, ax: Axes | None = None) -> Axes:
    """One box per block: the distribution of its gate values over images and channels (and positions).

    ``gates`` as :func:`attn.capture.capture_gates` returns them; ``start`` draws the value an
    untrained gate starts near (``sigmoid(0) = 0.5``; ``None`` for none).
    """
    if not gates:
        raise ValueError("gate_distributions: no gates to plot")
    ax = ax or plt.figure(figsize=(8, 3.5)).gca()
    ax.boxplot([g.flatten().numpy() for g in gates.values()], showfliers=False)
    ax.set_xticks(range(1, len(gates) + 1), list(gates), rotation=45, fontsize="small")
    if start is not None:
        ax.axhline(start, color="grey", linestyle="--", linewidth=1, label=f"untrained: about {start}")
        ax.legend(fontsize="small")
    ax.set_ylabel("gate value")
    ax.grid(alpha=0.3, axis="y")
    return ax


def gate_profiles(gates: torch.Tensor, labels: torch.Tensor, class_names: list[str] | tuple[str, ...],
                  ax: Axes | None = None) -> Axes:
    """The mean gate of every channel for each class, one line per class (the SE paper's Fig. 6 view).

    ``gates`` ``(N, C)`` (channel gates; spatial gates are averaged over their positions first),
    ``labels`` ``(N,)``. Lines that coincide mean the block treats every class alike.
    """
    if gates.dim() > 2:
        gates = gates.flatten(2).mean(2)
    means = per_class_mean(gates, labels, len(class_names))
    ax = ax or plt.figure(figsize=(6, 3.5)).gca()
    for name, profile in zip(class_names, means):
        ax.plot(range(gates.shape[1]), profile.numpy(), linewidth=1, label=name)
    ax.set_xlabel("channel")
    ax.set_ylabel("mean gate")
    ax.grid(alpha=0.3)
    return ax
