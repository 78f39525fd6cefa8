"""Plots draw what they are given and refuse what they cannot draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from attn.plot import accuracy_vs_cost, learning_curves  # noqa: E402
from attn.summary import summarize  # noqa: E402
from test_summary import RESULTS  # noqa: E402


def _with_history(result: dict, accs: list[float]) -> dict:
    history = [{"epoch": i + 1, "test_acc": a, "train_acc": a, "test_loss": 1 - a, "train_loss": 1 - a}
               for i, a in enumerate(accs)]
    return {**result, "history": history, "data": {"source": "synthetic", "test_size": 100}}


def test_learning_curves_one_line_per_run_in_percent():
    runs = [_with_history(RESULTS[0], [0.5, 0.6]), _with_history(RESULTS[3], [0.4, 0.7])]
    ax = learning_curves(runs)
    assert len(ax.lines) == 2 and list(ax.lines[1].get_ydata()) == pytest.approx([40.0, 70.0])
    assert "synthetic" in ax.get_title() and ax.get_legend() is not None
    with pytest.raises(ValueError, match="metric must be one of"):
        learning_curves(runs, metric="accuracy")
    with pytest.raises(ValueError, match="no results"):
        learning_curves([])


def test_accuracy_vs_cost_one_point_per_variant():
    rows = summarize(RESULTS)
    ax = accuracy_vs_cost(rows, cost="params_added", cost_label="parameters added")
    assert len(ax.containers) == 3 and ax.get_xlabel() == "parameters added"
    with pytest.raises(ValueError, match="have no 'latency_added_ms'"):
        accuracy_vs_cost(rows, cost="latency_added_ms")


def test_gate_plots_draw_one_box_per_block_and_one_line_per_class():
    import torch

    from attn.plot import gate_distributions, gate_profiles

    gates = {"stages.0.0": torch.rand(20, 16), "stages.1.0": torch.rand(20, 32, 2, 2)}
    ax = gate_distributions(gates)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(gates)
    labels = torch.arange(20) % 10
    ax = gate_profiles(gates["stages.1.0"], labels, [str(k) for k in range(10)])
    assert len(ax.get_lines()) == 10 and len(ax.get_lines()[0].get_xdata()) == 32
    with pytest.raises(ValueError, match="no gates"):
        gate_distributions({})
