"""Plots the book reuses: learning curves of runs, and accuracy against cost for a summary.

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is ``None``) and
returns it, so notebooks can combine panels. Titles say which data the numbers come from.
"""

from __future__ import annotations

import statistics
from typing import Iterable

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
import torch

from .capture import per_class_mean
from .experiments import result_variant
from .registry import OPERATOR_LABELS, SAME_OPERATOR, available

__all__ = ["operator_style", "learning_curves", "train_test_curves", "accuracy_vs_cost", "gate_distributions",
           "gate_profiles"]

METRICS = {
    "test_acc": "test accuracy (%)",
    "train_acc": "training accuracy (%)",
    "test_loss": "test loss",
    "train_loss": "training loss",
}


_MARKERS = "osD^vP*XhpH<>"
_OPERATORS = list(dict.fromkeys(SAME_OPERATOR.get(name, name) for name in available()))


def operator_style(variant: str) -> tuple[tuple[float, ...] | str, str]:
    """The ``(colour, marker)`` of a variant label (:func:`attn.experiments.variant_label`) in every plot.

    ``none`` is black; each operator of the registry has its own of ``tab10``'s ten colours
    (one operator under two names, such as SE-Var1 and GE-θ⁻, one colour); a variant with
    keywords or a recipe setting of its own (``se(reduction=4)``, ``nam + L1 0.0001``) takes the
    light shade of its mechanism's colour and a diamond. Labels outside the registry are grey.
    """
    base = variant.split("(")[0].split(" + ")[0]
    if base == "none":
        return "black", "o"
    operator = SAME_OPERATOR.get(base, base)
    if operator not in _OPERATORS:
        return "grey", "x"
    index = _OPERATORS.index(operator)
    tab20 = plt.get_cmap("tab20").colors
    if variant != base:
        return tab20[2 * index + 1], "D"
    return tab20[2 * index], _MARKERS[index]


def _label(result: dict) -> str:
    config = result["config"]
    return f"ResNet-{config['depth']} {result_variant(result)} (seed {config['train']['seed']})"


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


def train_test_curves(results: Iterable[dict], ax: Axes | None = None) -> Axes:
    """Training (dashed) and test (solid) accuracy against epoch, one colour per variant
    (:func:`operator_style`), one pair of lines per seed. Training accuracy is the running one,
    on augmented images in training mode, as the history records it."""
    results = list(results)
    if not results:
        raise ValueError("train_test_curves: no results to plot")
    ax = ax or plt.figure(figsize=(7, 4)).gca()
    labelled: set[str] = set()
    for result in results:
        variant, epochs = result_variant(result), [row["epoch"] for row in result["history"]]
        for metric, style in (("train_acc", "--"), ("test_acc", "-")):
            ax.plot(epochs, [100 * row[metric] for row in result["history"]], style, color=operator_style(variant)[0],
                    linewidth=1.2, label=None if variant in labelled else
                    f"{variant}, {'training' if metric == 'train_acc' else 'test'}")
        labelled.add(variant)
    depths = sorted({r["config"]["depth"] for r in results})
    seeds = sorted({r["config"]["train"]["seed"] for r in results})
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"ResNet-{'/'.join(map(str, depths))}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; "
                 + ", ".join(sorted({r["data"]["source"] for r in results})), fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def accuracy_vs_cost(rows: Iterable[dict], cost: str = "params_added", cost_label: str | None = None,
                     ax: Axes | None = None, skip_missing: bool = False, legend: bool = True) -> Axes:
    """One point per operator of a summary: mean test accuracy (bar: ± std over seeds) against ``cost``.

    The points are named in a legend beside the axes (``legend``), not on them, so no two names overlap.
    Each has its operator's colour and marker (:func:`operator_style`), the same in every plot. Rows of one
    operator under two names (SE-Var1 and GE-θ⁻) are one point, at the mean of their values, its bars
    spanning all of them. A row without ``cost`` raises ``ValueError``, or with ``skip_missing`` is left
    out (the others keep their colours).
    """
    rows = list(rows)
    missing = [r.get("variant", r.get("attention", "?")) for r in rows if cost not in r]
    if missing and not skip_missing:
        raise ValueError(f"accuracy_vs_cost: rows {missing} have no {cost!r}; available: {', '.join(rows[0]) if rows else '-'}")
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        name = row.get("variant", row["attention"])
        groups.setdefault((row.get("depth"), row.get("epochs"), SAME_OPERATOR.get(name, name)), []).append(row)
    ax = ax or plt.figure(figsize=(8, 4), layout="constrained").gca()
    for (_, _, name), members in groups.items():
        color, marker = operator_style(name)
        members = [r for r in members if cost in r]
        if not members:
            continue
        xs, means = [r[cost] for r in members], [100 * r["mean"] for r in members]
        x, y = statistics.fmean(xs), statistics.fmean(means)
        low = min(100 * (r["mean"] - r["std"]) for r in members)
        high = max(100 * (r["mean"] + r["std"]) for r in members)
        single = all(len(r.get("seeds", ())) == 1 for r in members)
        ax.errorbar(x, y, xerr=None if len(set(xs)) == 1 else [[x - min(xs)], [max(xs) - x]],
                    yerr=[[y - low], [high - y]], fmt=marker, color=color, capsize=3,
                    label=OPERATOR_LABELS.get(name, name) + (" (1 seed)" if single else ""))
    ax.set_xlabel(cost_label or cost.replace("_", " "))
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
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
