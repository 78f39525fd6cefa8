"""Grids: one result file per run, skipped when present, written atomically; the summary."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch

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
    assert experiments.is_cached(TINY_RUN, tmp_path) and not experiments.is_cached(TINY_RUN, tmp_path, keep_weights=True)
    result = run(TINY_RUN, data, tmp_path, progress=False, keep_weights=True)  # cached without weights: trained again
    model = experiments.load_model(TINY_RUN, tmp_path)
    assert not model.training and experiments.weights_path(TINY_RUN, tmp_path).exists()
    assert evaluate(model, data.test, batch_size=64)[1] == pytest.approx(result["final_test_acc"])
    assert run(TINY_RUN, data, tmp_path, keep_weights=True) == result  # now cached with its weights
    loaded, recorded = experiments.load_trained(result_path(TINY_RUN, tmp_path))
    assert recorded == result and torch.equal(loaded.state_dict()["fc.weight"], model.state_dict()["fc.weight"])


def test_a_weight_file_of_another_run_or_architecture_is_refused_naming_both(tmp_path):
    data = synthetic()
    run(TINY_RUN, data, tmp_path, progress=False, keep_weights=True)
    other = replace(TINY_RUN, attention="se")
    weights = experiments.weights_path(TINY_RUN, tmp_path)
    weights.rename(experiments.weights_path(other, tmp_path))
    with pytest.raises(ValueError, match=r"architecture is 'resnet8-eca' but the run asks for 'resnet8-se'"):
        experiments.load_model(other, tmp_path)
    longer = replace(TINY_RUN, train=replace(TINY_RUN.train, epochs=2))  # same architecture, another run
    experiments.weights_path(other, tmp_path).rename(experiments.weights_path(longer, tmp_path))
    with pytest.raises(ValueError, match=f"key is '{TINY_RUN.key}' but the run asks for '{longer.key}'"):
        experiments.load_model(longer, tmp_path)
    torch.save({"fc.weight": torch.zeros(1)}, experiments.weights_path(TINY_RUN, tmp_path))
    with pytest.raises(ValueError, match="not an attn weight file"):
        experiments.load_model(TINY_RUN, tmp_path)


def test_a_result_records_train_accuracy_in_eval_mode_on_a_fixed_subset(tmp_path):
    data, config = synthetic(n_train=300), replace(TINY_RUN, train=replace(TINY_RUN.train, precision="fp32"))
    result = run(config, data, tmp_path, progress=False, keep_weights=True)
    model = experiments.load_model(config, tmp_path)
    assert result["version"] == 2 and result["train_eval"]["size"] == 300
    loss, acc = evaluate(model, experiments.train_eval_split(data.train), batch_size=64)
    assert result["train_eval"]["acc"] == pytest.approx(acc) and result["train_eval"]["loss"] == pytest.approx(loss)
    history = result["history"][0]
    assert {"train_loss", "train_acc", "test_loss", "test_acc"} <= set(history)


def test_the_reference_grid_trains_every_variant_s_seed_0_first_and_keeps_those_weights():
    configs = grid("reference")
    assert len(configs) == 25 + 3 + 1
    controls = configs[25:]
    assert [c.variant for c in controls] == ["se_var1(gate_layer=2sigmoid)"] * 3 + ["nam + L1 0.0001"]
    assert [c.train.seed for c in controls] == [0, 1, 2, 0] and controls[-1].train.nam_sparsity == 1e-4
    configs = configs[:25]
    first = configs[:13]
    assert {c.train.seed for c in first} == {0} and len({c.key for c in first}) == 13
    assert [c.variant for c in first] == [
        "none", "se", "eca", "ge_theta_plus", "nam", "se_var1", "se(reduction=4)", "se_var2", "eca_ns",
        "se_gc(group_size=4)", "ge_theta", "eca(kernel_size=5)", "se_var3"]
    assert sorted({c.variant for c in configs[13:]}) == sorted(experiments.HEADLINE)
    assert [experiments.keeps_weights("reference", c) for c in configs] == [True] * 13 + [False] * 12
    assert all(c.train.epochs == 30 and c.train.precision == "bf16" and not c.train.decay_norm_and_bias
               and c.train.ema_decay == 0.999 for c in configs)
    assert "ge_theta_minus" not in {c.attention for c in configs}  # = se_var1 at global extent
    for config in configs:
        experiments.validate(config)


def test_the_ablation_grid_has_three_seeds_of_the_width_fair_controls_after_its_variants():
    controls = grid("ablation")[36:45]
    assert [c.key.split("-e10-")[0] for c in controls[:3]] == [
        "resnet8-se-reduction4", "resnet8-se_gc-group_size4", "resnet8-eca-kernel_size5"]
    assert len(controls) == 9 and [c.train.seed for c in controls] == [0] * 3 + [1] * 3 + [2] * 3
    assert all(c.train == replace(grid("ablation")[0].train, seed=c.train.seed) for c in controls)


def test_the_ablation_grid_ends_with_the_gate_controls_of_se_var1_and_se_var2():
    ablation = grid("ablation")
    controls = ablation[45:]
    assert [c.variant for c in controls] == ["se_var1(gate_layer=2sigmoid)"] * 3 + ["se_var2(gate_layer=2sigmoid)"] * 3
    assert [c.train.seed for c in controls] == [0, 1, 2] * 2
    assert all(c.train == replace(ablation[0].train, seed=c.train.seed) for c in controls)


def test_a_result_s_config_rebuilds_its_run_and_unknown_settings_are_refused():
    config = replace(TINY_RUN, attention_kwargs={"kernel_size": 5})
    recorded = json.loads(json.dumps(asdict(config.resolved())))
    assert experiments.config_from_dict(recorded).key == config.key
    recorded["train"]["warp_speed"] = 9
    with pytest.raises(ValueError, match="does not know: warp_speed"):
        experiments.config_from_dict(recorded)


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
    assert len(ablation) == 12 * 3 + 3 * 3 + 2 * 3 and {c.attention for c in ablation} == {"none", *attn.available()}
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


def test_a_grid_model_is_found_by_its_variant_label_or_the_error_says_what_to_run(tmp_path):
    with pytest.raises(ValueError, match="has no 'sex' with seed 0; its variants: .*se\\(reduction=4\\)"):
        experiments.load_grid_model("reference", "sex", results=tmp_path)
    with pytest.raises(FileNotFoundError, match="not committed yet; it comes from python -m attn grid reference"):
        experiments.load_grid_model("reference", "eca(kernel_size=5)", results=tmp_path)


def test_grid_results_are_the_committed_runs_of_the_asked_variants_in_that_order():
    runs = experiments.grid_results("reference", ["se", "none"])
    assert [experiments.result_variant(r) for r in runs][:1] == ["se"] and runs
    assert [experiments.result_variant(r) for r in runs] == sorted(
        (experiments.result_variant(r) for r in runs), key=["se", "none"].index)
    assert experiments.grid_results("reference", ["se_var2"], results="/nonexistent-folder") == []
    with pytest.raises(ValueError, match="has no variant 'sex'"):
        experiments.grid_results("reference", ["sex"])


def test_a_trained_network_is_loaded_evaluated_and_names_both_data_sources():
    from attn.trained import load_trained_network

    data = synthetic(64, 32)
    trained = load_trained_network("se", data)
    assert not trained.model.training and 0.0 <= trained.test_acc <= 1.0 and trained.test_size == 32
    assert "resnet20-se-e30-s0" in str(trained) and "synthetic" in str(trained)
    assert trained.result["data"]["source"] in str(trained)


@pytest.mark.parametrize("native", [True, False])
def test_a_bf16_network_is_evaluated_in_float32_where_this_cpu_would_emulate_bf16(monkeypatch, native):
    import attn.train
    from attn.trained import load_trained_network

    monkeypatch.setattr(attn.train, "cpu_has_native_bf16", lambda: native)
    trained = load_trained_network("se", synthetic(64, 32))
    assert trained.result["config"]["train"]["precision"] == "bf16"
    expected = "bf16" if native else "fp32"
    assert trained.precision == expected and str(trained).endswith(f"in {expected}: {100 * trained.test_acc:.2f} %")
    assert ", bf16); loaded here" in str(trained)


def test_baseline_features_are_the_trained_none_s_slot_inputs_of_the_chosen_test_images():
    from attn.capture import capture_inputs
    from attn.trained import baseline_features

    data = synthetic(64, 32)
    images, baseline, inputs = baseline_features(data, count=4)
    torch.testing.assert_close(images, data.test.images[:4])
    assert "resnet20-none-e30-s0" in str(baseline) and list(inputs)[-1] == "stages.2.2"
    torch.testing.assert_close(inputs["stages.0.2"], capture_inputs(baseline.model, images)["stages.0.2"])
    assert tuple(inputs["stages.2.2"].shape) == (4, 64, 8, 8)
    per_class, _, _ = baseline_features(data, count=3, one_per_class=True)
    assert data.test.labels[[0, 1, 2]].tolist() == [0, 1, 2]  # synthetic labels cycle through the classes
    torch.testing.assert_close(per_class, data.test.images[:3])
    with pytest.raises(ValueError, match="count must be between 1 and 10 .classes"):
        baseline_features(data, count=11, one_per_class=True)


def test_recipe_check_runs_are_the_resnet20_runs_without_attention_of_a_folder(tmp_path):
    configs = [RunConfig(depth=20, train=TrainConfig(seed=1)), RunConfig(depth=20, attention="se"),
               RunConfig(depth=8), RunConfig(depth=20, train=TrainConfig(lr=0.2))]
    for config in configs:
        (tmp_path / f"{config.key}.json").write_text(json.dumps({"key": config.key, "config": asdict(config)}))
    found = experiments.recipe_check_runs(tmp_path)
    assert [r["key"] for r in found] == sorted([configs[0].key, configs[3].key])
    assert experiments.recipe_check_runs(tmp_path / "empty") == []
    assert experiments.HE_ET_AL_RESNET20_ACC == pytest.approx(1 - 0.0875)
