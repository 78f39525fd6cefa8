"""Plots draw what they are given and refuse what they cannot draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from attn.plot import accuracy_vs_cost, learning_curves, train_test_curves  # noqa: E402
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


def test_accuracy_vs_cost_names_each_operator_once_in_its_own_colour():
    from test_summary import fake_result

    same = [fake_result(name, s, a) for name in ("se_var1", "ge_theta_minus") for s, a in enumerate([0.81, 0.83, 0.85])]
    rows = summarize(RESULTS + same, latency_ms={"none": 1.0, "se": 1.4, "se_var1": 1.1, "ge_theta_minus": 1.3})
    ax = accuracy_vs_cost(rows)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["none", "se", "SE-Var1 = GE-θ⁻", "eca"]  # one point for the two names of one operator
    colours = {label: container.lines[0].get_color() for label, container in zip(labels, ax.containers)}
    assert colours["none"] == "black" and len(set(colours.values())) == len(labels)
    with pytest.raises(ValueError, match=r"rows \['eca'\] have no 'latency_added_ms'"):
        accuracy_vs_cost(rows, cost="latency_added_ms")
    ax = accuracy_vs_cost(rows, cost="latency_added_ms", skip_missing=True, legend=False)
    assert ax.get_legend() is None and len(ax.containers) == 3
    merged = ax.containers[2]  # at the mean of the two measurements, its bar spanning both
    assert list(merged.lines[0].get_xdata()) == pytest.approx([0.2])
    assert merged.lines[0].get_color() == colours["SE-Var1 = GE-θ⁻"]  # the same colour in every panel


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


def test_train_test_curves_one_colour_per_variant_two_lines_per_run():
    runs = [_with_history(RESULTS[0], [0.5, 0.6]), _with_history(RESULTS[1], [0.4, 0.5]),
            _with_history(RESULTS[3], [0.4, 0.7])]
    ax = train_test_curves(runs)
    assert len(ax.lines) == 6 and list(ax.lines[-1].get_ydata()) == pytest.approx([40.0, 70.0])
    variants = {RESULTS[i]["config"]["attention"] for i in (0, 1, 3)}
    assert len({line.get_color() for line in ax.lines}) == len(variants)
    assert len(ax.get_legend().get_texts()) == 2 * len(variants)
    with pytest.raises(ValueError, match="no results"):
        train_test_curves([])
