"""Grids: one result file per run, skipped when present, written atomically; the summary."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import attn
from attn import experiments
from attn.experiments import RunConfig, grid, result_path, run
from attn.train import TrainConfig, evaluate
from test_train import synthetic

TINY_RUN = RunConfig(depth=8, attention="eca", train=TrainConfig(epochs=1, batch_size=64, eval_batch_size=64))


def test_run_writes_one_complete_result_file_and_skips_it_next_time(tmp_path, monkeypatch):
    result = run(TINY_RUN, synthetic(), tmp_path, progress=False)
    path = result_path(TINY_RUN, tmp_path)
    assert path.exists() and json.loads(path.read_text()) == result
    assert path.name.startswith("resnet8-eca-e1-s0-")
    for key in ("config", "data", "history", "final_test_acc", "params", "macs", "wall_seconds",
                "images_per_s", "environment"):
        assert key in result
    assert result["data"]["source"] == "synthetic" and result["params"] > 0
    assert {"torch", "device", "git_commit"} <= set(result["environment"])
    assert not (tmp_path / ".checkpoints" / f"{TINY_RUN.key}.pt").exists()

    monkeypatch.setattr(experiments, "fit", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert run(TINY_RUN, synthetic(), tmp_path) == result


def test_run_grid_trains_only_what_is_missing_and_returns_every_result_in_order(tmp_path, monkeypatch, capsys):
    first, second = TINY_RUN, replace(TINY_RUN, attention="se")
    cached = run(first, synthetic(), tmp_path, progress=False)
    trained = []
    real_fit = experiments.fit
    monkeypatch.setattr(experiments, "fit", lambda model, *a, **k: trained.append(model) or real_fit(model, *a, **k))
    results = experiments.run_grid([first, second], synthetic(), tmp_path)
    assert len(trained) == 1 and [r["key"] for r in results] == [first.key, second.key]
    assert results[0] == cached
    assert f"[1/1] {second.key}" in capsys.readouterr().out


def test_kept_weights_give_back_the_trained_model(tmp_path):
    data = synthetic()
    run(TINY_RUN, data, tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="keep_weights=True"):
        experiments.load_model(TINY_RUN, tmp_path)
    result = run(TINY_RUN, data, tmp_path, progress=False, keep_weights=True)  # cached without weights: trained again
    model = experiments.load_model(TINY_RUN, tmp_path)
    assert not model.training and experiments.weights_path(TINY_RUN, tmp_path).exists()
    assert evaluate(model, data.test, batch_size=64)[1] == pytest.approx(result["final_test_acc"])
    assert run(TINY_RUN, data, tmp_path, keep_weights=True) == result  # now cached with its weights


def test_a_failed_write_leaves_no_result_file(tmp_path, monkeypatch):
    def broken_dumps(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(experiments.json, "dumps", broken_dumps)
    with pytest.raises(OSError, match="disk full"):
        run(TINY_RUN, synthetic(), tmp_path, progress=False)
    assert not list(tmp_path.glob("*.json"))


def test_a_result_records_the_precision_that_auto_resolved_to(tmp_path, monkeypatch):
    monkeypatch.setattr(attn.train, "cpu_has_native_bf16", lambda: False)
    auto = replace(TINY_RUN, train=replace(TINY_RUN.train, precision="auto", device="cpu"))
    fp32 = replace(auto, train=replace(auto.train, precision="fp32"))
    assert auto.key == fp32.key and auto.resolved() == fp32
    result = run(auto, synthetic(64, 32), tmp_path, progress=False)
    assert result["config"]["train"]["precision"] == "fp32" and result["key"] == fp32.key
    monkeypatch.setattr(attn.train, "cpu_has_native_bf16", lambda: True)
    assert auto.resolved().train.precision == "bf16" and auto.key != fp32.key


def test_a_result_records_the_commit_it_was_trained_with_not_the_one_checked_out_at_the_end(tmp_path, monkeypatch):
    head = {"commit": "before"}
    monkeypatch.setattr(experiments, "_git", lambda *args: head["commit"] if args[0] == "rev-parse" else "")
    real_fit = experiments.fit

    def fit_then_commit(*args, **kwargs):
        history = real_fit(*args, **kwargs)
        head["commit"] = "after"
        return history

    monkeypatch.setattr(experiments, "fit", fit_then_commit)
    result = run(TINY_RUN, synthetic(64, 32), tmp_path, progress=False)
    assert result["environment"]["git_commit"] == "before"


def test_key_changes_with_any_part_of_the_configuration():
    keys = {
        TINY_RUN.key,
        replace(TINY_RUN, attention="se").key,
        replace(TINY_RUN, attention_kwargs={"kernel_size": 5}).key,
        replace(TINY_RUN, train=replace(TINY_RUN.train, seed=1)).key,
        replace(TINY_RUN, train=replace(TINY_RUN.train, lr=0.2)).key,
        replace(TINY_RUN, train_size=1000).key,
    }
    assert len(keys) == 6


def test_named_grids():
    ablation = grid("ablation")
    assert len(ablation) == 12 * 3 and {c.attention for c in ablation} == {"none", *attn.available()}
    assert [c.train.seed for c in ablation[:12]] == [0] * 12  # seed-major: every variant of seed 0 first
    assert all(c.depth == 8 and c.train.epochs >= 10 for c in ablation)
    main = grid("main")
    assert {c.attention for c in main} == {"none", "se", "eca", "ge_theta_minus", "ge_theta_plus", "nam"}
    assert all(c.depth == 20 and c.train.epochs >= 10 for c in main) and len(main) == 18
    with pytest.raises(ValueError, match="unknown grid 'huge'"):
        grid("huge")


def test_a_cached_result_from_another_data_source_is_refused(tmp_path):
    run(TINY_RUN, synthetic(), tmp_path, progress=False)
    other = replace(synthetic(), source="CIFAR-10")
    with pytest.raises(ValueError, match="measured on 'synthetic', but the data given is 'CIFAR-10'"):
        run(TINY_RUN, other, tmp_path)


def test_grid_recipe_names_every_training_field():
    """A new TrainConfig field must be pinned in GRID_RECIPE too, or grids would follow a changed default."""
    from attn.experiments import GRID_RECIPE

    assert set(GRID_RECIPE) | {"epochs", "seed"} == set(experiments.asdict(TrainConfig()))
