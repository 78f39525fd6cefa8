"""What a grid of runs says: accuracy over seeds, the difference to no attention, and the cost.

:func:`summarize` groups result files that differ only in the seed and reports, per group,
the mean and sample standard deviation of the final test accuracy (and the training
accuracy beside it) and, against the group without attention trained with the same recipe,
the difference in accuracy with a 95 % Welch t interval (unequal variances; with three seeds
a side the interval is wide, which is the honest answer), its p-value with Holm's correction
for the number of variants compared, and the parameters, multiply-accumulates and measured
CPU latency added. An interval that contains zero means the grid cannot tell the variant
from no attention; a variant trained with one seed is shown as a single run, without one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Iterable

from scipy import stats

from .experiments import GRIDS, grid as grid_configs, latency_path, load_results, variant_label
from .files import cache_dir
from .registry import SAME_OPERATOR, available

__all__ = ["summarize", "summarize_dir", "format_summary", "describe", "welch_interval", "welch_p_value", "holm",
           "committed_results", "quote"]


def welch_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Interval for ``mean(a) - mean(b)`` (Welch's t); ``None`` when it is undefined.

    Undefined with fewer than two values on a side, or when both sides have zero spread.
    """
    if len(a) < 2 or len(b) < 2 or (statistics.stdev(a) == 0 and statistics.stdev(b) == 0):
        return None
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return float(interval.low), float(interval.high)


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t test of ``mean(a) == mean(b)``; ``None`` where the interval is undefined."""
    if welch_interval(a, b) is None:
        return None
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (same order): a family-wise error rate of
    ``alpha`` holds when each adjusted value is compared with ``alpha``."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _group_key(result: dict, attention: str | None = None) -> str:
    """The configuration without its seed (and, given ``attention``, with that attention)."""
    config = json.loads(json.dumps(result["config"]))
    config["train"].pop("seed")
    if attention is not None:  # NAM's sparsity penalty does nothing to a network without NAM
        config["attention"], config["attention_kwargs"] = attention, {}
        config["train"]["nam_sparsity"] = 0.0
    return json.dumps(config, sort_keys=True)


def summarize(results: Iterable[dict], latency_ms: dict[str, float] | None = None) -> list[dict]:
    """One row per configuration (seeds grouped), with differences to its ``none`` counterpart.

    Each row: ``depth``, ``attention``, ``variant`` (the attention with its keywords,
    :func:`attn.experiments.variant_label`), ``epochs``, ``precision``, ``seeds``, ``accs``, ``mean``, ``std``
    (sample std; 0 for one seed), ``train_acc`` and ``train_acc_kind`` (``"eval"``, or ``"running"`` for
    results before version 2, which only have the last epoch's running accuracy),
    ``params``, ``macs``, ``data`` (the source label), ``images_per_s``; when a ``none`` row with
    the same recipe exists: ``diff`` (mean minus the ``none`` mean), ``ci`` (95 % Welch interval
    or ``None``), ``ci_includes_zero``, ``p`` (Welch), ``p_holm`` (Holm-adjusted over the
    rows compared with the same ``none``, one operator under two names counted once; ``None``
    without an interval) and ``comparisons`` (how many the adjustment counts), ``params_added``,
    ``macs_added``; with ``latency_ms`` (variant -> milliseconds, as written by ``python -m attn
    latency``): ``latency_ms`` and ``latency_added_ms``.
    """
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(_group_key(result), []).append(result)
    rows = {key: _row(members) for key, members in groups.items()}
    for key, row in rows.items():
        baseline = rows.get(_group_key(groups[key][0], attention="none"))
        if baseline is not None:
            interval = welch_interval(row["accs"], baseline["accs"])
            row.update(
                diff=row["mean"] - baseline["mean"], ci=interval,
                ci_includes_zero=None if interval is None else interval[0] <= 0 <= interval[1],
                p=None if row is baseline else welch_p_value(row["accs"], baseline["accs"]), p_holm=None,
                params_added=row["params"] - baseline["params"], macs_added=row["macs"] - baseline["macs"],
                baseline=id(baseline),
            )
        if latency_ms and row["variant"] in latency_ms and "none" in latency_ms:
            row.update(latency_ms=latency_ms[row["variant"]],
                       latency_added_ms=latency_ms[row["variant"]] - latency_ms["none"])
    families: dict[int, list[dict]] = {}
    for row in rows.values():
        if row.get("p") is not None:
            families.setdefault(row["baseline"], []).append(row)
    for family in families.values():
        # One operator under two names (attn.registry.SAME_OPERATOR) is one hypothesis: counted once.
        hypotheses: dict[str, list[dict]] = {}
        for row in family:
            hypotheses.setdefault(SAME_OPERATOR.get(row["variant"], row["variant"]), []).append(row)
        adjusted = holm([max(row["p"] for row in members) for members in hypotheses.values()])
        for members, p_holm in zip(hypotheses.values(), adjusted):
            for row in members:
                row.update(p_holm=p_holm, comparisons=len(hypotheses))
    for row in rows.values():
        row.pop("baseline", None)
    return sorted(rows.values(), key=lambda r: (r["depth"], r["epochs"], r["attention"] != "none", r["order"],
                                                r["variant"]))


def summarize_dir(results_dir: str | os.PathLike) -> list[dict]:
    """:func:`summarize` of every result file in ``results_dir``, with its latency file when present.

    Raises ``FileNotFoundError`` naming the command that makes the files when there are none.
    """
    results_dir = Path(results_dir)
    results = load_results(results_dir)
    if not results:
        raise FileNotFoundError(f"no result files in {results_dir}; make them with: python -m attn grid {results_dir.name}")
    latency = latency_path(results_dir)
    latency_ms = json.loads(latency.read_text())["latency_ms"] if latency.exists() else None
    return summarize(results, latency_ms)


def describe(row: dict) -> str:
    """One sentence for the book: what was run, the accuracy over seeds, and what the difference to none says."""
    text = (f"ResNet-{row['depth']} + {row['variant']}, {row['epochs']} epochs, {_seeds(row)}, "
            f"{row['data']}: test accuracy {_accuracy(row)} %")
    if row["train_acc"] is not None:
        text += f" ({_TRAIN_WORDS[row['train_acc_kind']]} {_percent(row['train_acc'])} %)"
    if row["attention"] == "none":
        return text + "."
    if "diff" not in row:
        return text + f" ({row['precision']}); no run without attention shares its recipe: not compared."
    if row["ci"] is None:
        return text + f"; {_percent(row['diff'], True)} points vs none (a single run: no interval)."
    low, high = (_percent(v, True) for v in row["ci"])
    text += f"; {_percent(row['diff'], True)} points vs none, 95 % CI [{low}, {high}]: "
    if row["ci_includes_zero"]:
        return text + "the interval contains 0: this grid cannot tell it from no attention."
    if row.get("p_holm") is None:
        return text + "the interval excludes 0."
    correction = f"Holm's correction for the grid's {row['comparisons']} comparisons (adjusted p = {row['p_holm']:.3f})"
    if row["p_holm"] < 0.05:
        return text + f"the interval excludes 0, and the difference survives {correction}."
    return text + f"the uncorrected interval excludes 0, but the difference does not survive {correction}."


def committed_results(start: str | os.PathLike | None = None) -> Path:
    """The repository's committed ``results/`` folder, for the book's chapters.

    Found in ``start`` (default: the working directory) or a folder above it, as when a
    chapter runs from the repository's ``notebooks/``; otherwise (Colab, where a notebook
    arrives alone) a shallow clone of the repository into the user cache, made once.
    Raises ``FileNotFoundError`` saying what to do when neither works.
    """
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "results" / "schema.json").is_file():
            return folder / "results"
    clone = cache_dir("attention-book")
    if not (clone / "results").is_dir():
        urls = dict(url.split(", ", 1) for url in importlib.metadata.metadata("attn").get_all("Project-URL") or [])
        if "Repository" not in urls:
            raise FileNotFoundError("no results/ folder above the working directory, and the installed attn names "
                                    "no repository to clone; run the chapter from the repository's notebooks/")
        try:
            subprocess.run(["git", "clone", "--quiet", "--depth", "1", urls["Repository"], str(clone)],
                           check=True, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as error:
            reason = getattr(error, "stderr", None) or error
            raise FileNotFoundError(f"no results/ folder above the working directory, and cloning "
                                    f"{urls['Repository']} failed ({str(reason).strip()}); clone the repository "
                                    f"and run the chapter from its notebooks/ folder") from error
    return clone / "results"


def quote(attentions: str | Iterable[str], results: str | os.PathLike | None = None, markdown: bool = False) -> str:
    """What the committed grids say about ``attentions``: one :func:`describe` sentence per grid and variant.

    ``results`` defaults to :func:`committed_results`. Only grids that compare variants are
    quoted (not the recipe check, which trains ``none`` alone); a variant of ``attentions`` with a
    recipe setting of its own (``"nam + L1 0.0001"``) is quoted with it. A variant a grid includes but whose
    runs are not committed yet gets a line saying so, with the command that makes them; one
    the grid does not include gets no line. Never raises for missing files: the book's
    chapters show whatever exists. ``markdown=True`` makes each line a list item.
    """
    names = [attentions] if isinstance(attentions, str) else list(attentions)
    try:
        results = Path(results) if results is not None else committed_results()
    except FileNotFoundError as missing:
        return f"No committed results to quote: {missing}"
    lines = []
    for grid, spec in GRIDS.items():
        configs = grid_configs(grid)
        if len({config.variant for config in configs}) < 2:  # the recipe check trains none alone
            continue
        wanted = list(dict.fromkeys(config.variant for name in names for config in configs if config.attention == name))
        if not wanted:
            continue
        try:
            rows = {row["variant"]: row for row in summarize_dir(results / grid)}
        except FileNotFoundError:
            rows = {}
        for label in wanted:
            lines.append(f"{grid} grid: " + (describe(rows[label]) if label in rows else
                         f"ResNet-{spec['depth']} + {label}: no runs committed yet (python -m attn grid {grid})."))
    return "\n".join(f"- {line}" for line in lines) if markdown else "\n".join(lines)


def _row(members: list[dict]) -> dict:
    members = sorted(members, key=lambda m: m["config"]["train"]["seed"])
    accs = [m["final_test_acc"] for m in members]
    first = members[0]
    names = available()  # the book's order of the mechanisms
    attention = first["config"]["attention"]
    train_acc, train_acc_kind = _train_accuracy(members)
    return {
        "depth": first["config"]["depth"],
        "attention": attention,
        "variant": variant_label(attention, first["config"]["attention_kwargs"], first["config"]["train"]["nam_sparsity"]),
        "train_acc": train_acc,
        "train_acc_kind": train_acc_kind,
        "order": names.index(attention) if attention in names else len(names),
        "epochs": first["config"]["train"]["epochs"],
        "precision": first["config"]["train"]["precision"],
        "seeds": [m["config"]["train"]["seed"] for m in members],
        "accs": accs,
        "mean": statistics.fmean(accs),
        "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "params": first["params"],
        "macs": first["macs"],
        "data": first["data"]["source"],
        "images_per_s": statistics.fmean(m["images_per_s"] for m in members),
    }


_TRAIN_WORDS = {"eval": "train accuracy in eval mode", "running": "last-epoch running train accuracy"}


def _train_accuracy(members: list[dict]) -> tuple[float | None, str | None]:
    """Mean training accuracy over the seeds, and what kind it is.

    ``"eval"``: measured like the test accuracy (eval mode, no augmentation) on the fixed
    training subset every result since version 2 records. ``"running"``: older results only
    have the last epoch's running accuracy (train mode, augmented batches, weights changing
    during the epoch), which understates it. ``(None, None)`` without either.
    """
    if all("train_eval" in m for m in members):
        return statistics.fmean(m["train_eval"]["acc"] for m in members), "eval"
    if all(m.get("history") for m in members):
        return statistics.fmean(m["history"][-1]["train_acc"] for m in members), "running"
    return None, None


def _seeds(row: dict) -> str:
    return "1 seed" if len(row["seeds"]) == 1 else f"{len(row['seeds'])} seeds"


def _accuracy(row: dict) -> str:
    """``mean ± std`` over seeds; just the value for one seed, which has no spread to show."""
    if len(row["seeds"]) == 1:
        return _percent(row["mean"])
    return f"{_percent(row['mean'])} ± {_percent(row['std'])}"


def _percent(value: float, sign: bool = False) -> str:
    return f"{100 * value:+.2f}" if sign else f"{100 * value:.2f}"


def _difference(row: dict) -> str:
    if row["attention"] == "none" or "diff" not in row:
        return ""
    interval = row["ci"]
    if interval is None:
        return f"{_percent(row['diff'], True)} (single run)" if len(row["seeds"]) == 1 else \
            f"{_percent(row['diff'], True)} (no interval)"
    verdict = "contains 0" if row["ci_includes_zero"] else "excludes 0"
    return f"{_percent(row['diff'], True)} [{_percent(interval[0], True)}, {_percent(interval[1], True)}] {verdict}"


def format_summary(rows: list[dict], markdown: bool = False) -> str:
    """The summary as a plain-text table, or a Markdown table (``markdown=True``) for the book.

    Accuracies in percent: the training accuracy (mean over seeds; marked ``*`` where it is
    the last epoch's running accuracy of an older result rather than measured in eval mode),
    the test accuracy as mean ± std over seeds; the difference to ``none`` with its 95 % Welch
    interval and whether the interval contains zero, and the Holm-adjusted p-value. Where the
    rows differ in precision, the model column names each row's. In Markdown, a model or data column that is the same in every row becomes a bold line above
    the table instead.
    """
    header = ["model", "attention", "seeds", "train acc (%)", "test acc (%)", "Δ vs none, 95 % CI (points)",
              "Holm p", "params", "+params", "+MACs", "latency (ms)", "+latency (ms)", "data"]
    table = []
    mixed_precision = len({row["precision"] for row in rows}) > 1
    for row in rows:
        latency = f"{row['latency_ms']:.3f}" if "latency_ms" in row else ""
        latency_added = f"{row['latency_added_ms']:+.3f}" if "latency_added_ms" in row and row["attention"] != "none" else ""
        train = "" if row["train_acc"] is None else \
            _percent(row["train_acc"]) + ("*" if row["train_acc_kind"] == "running" else "")
        table.append([
            f"ResNet-{row['depth']}, {row['epochs']} epochs" + (f", {row['precision']}" if mixed_precision else ""),
            row["variant"], str(len(row["seeds"])),
            train, _accuracy(row), _difference(row), "" if row.get("p_holm") is None else f"{row['p_holm']:.3f}",
            f"{row['params']:,}",
            f"{row.get('params_added', 0):+,}" if row["attention"] != "none" else "",
            f"{row.get('macs_added', 0):+,}" if row["attention"] != "none" else "",
            latency, latency_added, row["data"],
        ])
    kinds = {row["train_acc_kind"] for row in rows} - {None}
    note = None
    if kinds:
        parts = []
        if "eval" in kinds:
            parts.append("train acc: eval mode, no augmentation, on a fixed stratified subset of the training images")
        if "running" in kinds:
            parts.append("*: the last epoch's running accuracy (train mode, augmented batches; results before version 2)")
        note = "; ".join(parts) + "."
    if markdown:
        constant = [i for i in (0, len(header) - 1) if table and len({cells[i] for cells in table}) == 1]
        keep = [i for i in range(len(header)) if i not in constant]
        lines = [f"**{', '.join(table[0][i] for i in constant)}**", ""] if constant else []
        lines += ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
        lines += ["| " + " | ".join(cells[i] for i in keep) + " |" for cells in table]
        return "\n".join(lines + ([] if note is None else ["", note]))
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), *(fmt(cells) for cells in table), *([] if note is None else [note])])

