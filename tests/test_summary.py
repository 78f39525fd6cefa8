"""The grid summary: seeds grouped, differences to none with Welch intervals, costs, tables."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, replace

import pytest
from scipy import stats

from attn.experiments import RunConfig, load_results
from attn import summary
from attn.summary import committed_results, describe, format_summary, quote, summarize, summarize_dir, welch_interval
from attn.train import TrainConfig

BASE = RunConfig(depth=8, train=TrainConfig(epochs=10))


def fake_result(attention: str, seed: int, acc: float, params: int = 100, macs: int = 1000) -> dict:
    config = replace(BASE, attention=attention, train=replace(BASE.train, seed=seed))
    return {"key": config.key, "config": json.loads(json.dumps(asdict(config))), "final_test_acc": acc,
            "params": params, "macs": macs, "data": {"source": "synthetic"}, "images_per_s": 10.0}


RESULTS = (
    [fake_result("none", s, a) for s, a in enumerate([0.80, 0.82, 0.84])]
    + [fake_result("se", s, a, params=150, macs=1010) for s, a in enumerate([0.90, 0.91, 0.92])]
    + [fake_result("eca", s, a, params=103, macs=1000) for s, a in enumerate([0.79, 0.83, 0.85])]
)


def test_welch_interval_matches_the_textbook_formula():
    a, b = [0.90, 0.91, 0.92], [0.80, 0.82, 0.84]
    va, vb = statistics.variance(a) / 3, statistics.variance(b) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * (va + vb) ** 0.5
    diff = statistics.fmean(a) - statistics.fmean(b)
    assert welch_interval(a, b) == pytest.approx((diff - half, diff + half))
    assert welch_interval([0.9], b) is None and welch_interval([0.5, 0.5], [0.5, 0.5]) is None


def test_summary_groups_seeds_and_compares_with_none(tmp_path):
    for result in RESULTS:
        (tmp_path / f"{result['key']}.json").write_text(json.dumps(result))
    rows = {row["attention"]: row for row in summarize(load_results(tmp_path), latency_ms={"none": 1.0, "se": 1.25})}
    assert [r for r in rows] == ["none", "se", "eca"]  # none first, then the book's order
    none, se, eca = rows["none"], rows["se"], rows["eca"]
    assert none["seeds"] == [0, 1, 2] and none["mean"] == pytest.approx(0.82) and none["std"] == pytest.approx(0.02)
    assert se["diff"] == pytest.approx(0.09) and se["ci_includes_zero"] is False
    assert se["params_added"] == 50 and se["macs_added"] == 10 and se["latency_added_ms"] == pytest.approx(0.25)
    assert eca["ci_includes_zero"] is True and "latency_ms" not in eca
    assert none["diff"] == 0.0


def test_tables_show_mean_std_interval_and_verdict():
    rows = summarize(RESULTS)
    text = format_summary(rows)
    assert "82.00 ± 2.00" in text and "+9.00 [" in text and "excludes 0" in text and "contains 0" in text
    assert text.splitlines()[0].startswith("model") and "ResNet-8, 10 epochs" in text
    markdown = format_summary(rows, markdown=True).splitlines()
    assert markdown[0] == "**ResNet-8, 10 epochs, synthetic**" and markdown[1] == ""
    assert markdown[2].startswith("| attention | seeds |") and "synthetic" not in markdown[2]
    assert len(markdown) == 2 + 2 + 3
    mixed = format_summary(rows + summarize([fake_result("none", 0, 0.5) | {"data": {"source": "other"}}]), markdown=True)
    assert mixed.splitlines()[0] == "**ResNet-8, 10 epochs**" and mixed.splitlines()[2].endswith("| data |")


def test_summarize_dir_reads_results_and_latency_and_describe_says_what_the_interval_means(tmp_path):
    grid_dir = tmp_path / "ablation"
    grid_dir.mkdir()
    for result in RESULTS:
        (grid_dir / f"{result['key']}.json").write_text(json.dumps(result))
    latency = {"none": 2.0, "se": 2.5, "eca": 2.1, "none (copy)": 2.05}
    (tmp_path / "latency-ablation.json").write_text(json.dumps({"latency_ms": latency}))
    rows = {row["attention"]: row for row in summarize_dir(grid_dir)}
    assert rows["eca"]["latency_added_ms"] == pytest.approx(0.1)
    assert set(rows) == {"none", "se", "eca"} and rows["none"]["latency_ms"] == 2.0  # the noise copy is no row
    assert describe(rows["none"]) == "ResNet-8 + none, 10 epochs, 3 seeds, synthetic: test accuracy 82.00 ± 2.00 %."
    assert "+9.00 points vs none, 95 % CI [" in describe(rows["se"]) and "excludes 0" in describe(rows["se"])
    assert "cannot tell it from no attention" in describe(rows["eca"])
    with pytest.raises(FileNotFoundError, match="python -m attn grid empty"):
        summarize_dir(tmp_path / "empty")


def test_holm_counts_one_operator_under_two_names_once_and_describe_says_what_survives_it():
    twin = [fake_result("ge_theta_minus", s, a) for s, a in enumerate([0.90, 0.91, 0.92])]
    twin = [result | {"config": {**result["config"], "attention_kwargs": {}}} for result in twin]
    se_var1 = [fake_result("se_var1", s, a) for s, a in enumerate([0.90, 0.91, 0.92])]
    rows = {row["attention"]: row for row in summarize(RESULTS + se_var1 + twin)}
    assert rows["se_var1"]["comparisons"] == rows["ge_theta_minus"]["comparisons"] == 3  # se, eca, se_var1
    assert rows["se_var1"]["p_holm"] == rows["ge_theta_minus"]["p_holm"]
    assert rows["se"]["p_holm"] == pytest.approx(min(1.0, 3 * rows["se"]["p"]))
    assert "survives Holm's correction for the grid's 3 comparisons" in describe(rows["se"])
    weak = rows["se"] | {"p_holm": 0.2}  # an interval that excludes 0 and a correction that does not keep it
    assert describe(weak).endswith("the uncorrected interval excludes 0, but the difference does not survive Holm's "
                                   "correction for the grid's 3 comparisons (adjusted p = 0.200).")


def write_grid(folder, results) -> None:
    folder.mkdir(parents=True)
    for result in results:
        (folder / f"{result['key']}.json").write_text(json.dumps(result))


def test_one_seed_shows_no_spread():
    rows = summarize([fake_result("none", 0, 0.8693)])
    assert "86.93 %" in describe(rows[0]) and "1 seed," in describe(rows[0]) and "±" not in describe(rows[0])
    assert "±" not in format_summary(rows)


def test_quote_gives_each_grid_s_sentence_and_says_what_is_not_committed(tmp_path):
    write_grid(tmp_path / "ablation", RESULTS)
    text = quote(["none", "se", "nam"], tmp_path).splitlines()
    ablation = [line for line in text if line.startswith("ablation grid: ")]
    assert ablation[0] == "ablation grid: " + describe(summarize(RESULTS)[0])
    assert ablation[1].startswith("ablation grid: ResNet-8 + se, 10 epochs, 3 seeds") and "+9.00 points" in ablation[1]
    assert ablation[2] == ("ablation grid: ResNet-8 + se(reduction=4): no runs committed yet "
                           "(python -m attn grid ablation).")  # a grid's width-fair control of a quoted attention
    assert ablation[3] == "ablation grid: ResNet-8 + nam: no runs committed yet (python -m attn grid ablation)."
    assert "main grid: ResNet-20 + se: no runs committed yet (python -m attn grid main)." in text
    assert not any(line.startswith("recipe grid") for line in text)  # the recipe check compares nothing
    assert not any("se_var1" in line for line in quote("se_var1", tmp_path).splitlines() if line.startswith("main"))


def test_committed_results_are_found_above_the_working_directory(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "schema.json").write_text("{}")
    (tmp_path / "notebooks").mkdir()
    assert committed_results(tmp_path / "notebooks") == tmp_path / "results"


def test_without_a_checkout_or_a_clone_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(summary.importlib.metadata, "metadata",
                        lambda name: _Metadata(f"Repository, {tmp_path / 'no-such-repo'}"))
    with pytest.raises(FileNotFoundError, match="cloning .*no-such-repo failed .*run the chapter from its notebooks/"):
        committed_results(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert quote("se").startswith("No committed results to quote: ")


class _Metadata:
    """The part of ``importlib.metadata.metadata("attn")`` that :func:`committed_results` reads."""

    def __init__(self, *urls: str) -> None:
        self.urls = list(urls)

    def get_all(self, key: str) -> list[str]:
        return self.urls if key == "Project-URL" else []


def test_variants_with_keywords_or_a_sparsity_penalty_get_rows_of_their_own_against_the_same_none():
    def variant(attention: str, seed: int, acc: float, kwargs: dict | None = None, sparsity: float = 0.0) -> dict:
        result = fake_result(attention, seed, acc)
        result["config"]["attention_kwargs"] = kwargs or {}
        result["config"]["train"]["nam_sparsity"] = sparsity
        return result

    results = RESULTS + [variant("se", s, 0.85, {"reduction": 4}) for s in range(3)] + [variant("nam", 0, 0.8, sparsity=1e-4)]
    rows = {row["variant"]: row for row in summarize(results)}
    assert {"se", "se(reduction=4)", "nam + L1 0.0001"} <= rows.keys()
    assert rows["se(reduction=4)"]["diff"] == pytest.approx(0.03) and rows["se(reduction=4)"]["p_holm"] is not None
    single = rows["nam + L1 0.0001"]
    assert single["diff"] == pytest.approx(-0.02) and single["ci"] is None and single["p_holm"] is None
    assert "(a single run: no interval)" in describe(single) and "(single run)" in format_summary([single])


def test_holm_adjusts_the_smallest_p_value_most_and_keeps_the_order():
    assert summary.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert summary.holm([0.5]) == [0.5] and summary.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_rows_of_another_precision_are_named_and_without_their_none_are_not_compared():
    results = json.loads(json.dumps(RESULTS)) + [fake_result("nam", 0, 0.8)]
    for result in results:
        result["config"]["train"]["precision"] = "bf16" if result["config"]["attention"] == "nam" else "fp32"
    rows = {row["variant"]: row for row in summarize(results)}
    assert rows["nam"]["precision"] == "bf16" and "diff" not in rows["nam"]
    assert "(bf16); no run without attention shares its recipe: not compared." in describe(rows["nam"])
    table = format_summary(list(rows.values()))
    assert "ResNet-8, 10 epochs, bf16" in table and "ResNet-8, 10 epochs, fp32" in table
    assert "fp32" not in format_summary(summarize(results[:-1]))
