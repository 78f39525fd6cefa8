"""Grids of training runs with one small JSON result per run, and their summary.

A run is identified by its whole configuration (model, attention, data subset, recipe,
seed). Its result file is named after a readable key plus a hash of that configuration,
written atomically when the run finishes, and skipped when present, so a killed grid
resumes where it stopped and a changed recipe never reuses stale results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from .budget import Budget
from .data import CIFAR10, stratified_subset
from .files import cache_dir, write_atomically
from .models import cifar_resnet
from .profile import count_macs, count_parameters
from .registry import available
from .train import TrainConfig, fit, resolve_precision, select_device

__all__ = [
    "RunConfig", "GRID_RECIPE", "GRIDS", "GRID_DIRS", "grid", "budget_config", "default_runs_dir", "validate", "result_path",
    "weights_path", "run", "load_model", "run_grid", "load_results", "latency_path", "environment", "write_json_atomically",
]

RESULT_VERSION = 1


@dataclass(frozen=True)
class RunConfig:
    """One training run: ResNet-``depth`` with ``attention``, on a subset or all of the data."""

    depth: int = 20
    attention: str = "none"
    attention_kwargs: dict[str, object] = field(default_factory=dict)
    train_size: int | None = None
    test_size: int | None = None
    train: TrainConfig = TrainConfig()

    def resolved(self) -> RunConfig:
        """This configuration with ``precision="auto"`` replaced by what it means on this machine
        (:func:`attn.train.resolve_precision`): a result records how it was computed."""
        precision = resolve_precision(self.train.precision, select_device(self.train.device))
        return dataclasses.replace(self, train=dataclasses.replace(self.train, precision=precision))

    @property
    def key(self) -> str:
        """``resnet20-eca-e30-s0-<hash>``: readable, and unique for the whole resolved configuration."""
        digest = hashlib.sha256(json.dumps(asdict(self.resolved()), sort_keys=True).encode()).hexdigest()[:10]
        return f"resnet{self.depth}-{self.attention}-e{self.train.epochs}-s{self.train.seed}-{digest}"


# The recipe every grid trains with, written out in full so that a later change of
# TrainConfig's defaults cannot silently mix two recipes within one grid's results. fp32,
# as the committed grids were trained, on any machine (precision="auto" depends on the CPU).
GRID_RECIPE: dict[str, object] = {
    "batch_size": 128, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
    "label_smoothing": 0.1, "schedule": "onecycle", "warmup": 0.15, "channels_last": True,
    "precision": "fp32", "nam_sparsity": 0.0, "device": "auto", "eval_batch_size": 500,
}

# The book's grids. Runs are ordered seed by seed, so a grid stopped half way has every
# variant for the first seeds rather than every seed of the first variants.
GRIDS: dict[str, dict[str, object]] = {
    # The recipe check: ResNet-20 without attention against He et al.'s 91.25 %.
    "recipe": {"depth": 20, "attentions": ["none"], "seeds": [0], "epochs": 30},
    # The ECA paper's ablation (Table 2) and the other mechanisms, on the smallest ResNet.
    "ablation": {"depth": 8, "attentions": ["none", *available()], "seeds": [0, 1, 2], "epochs": 10},
    # One mechanism of each family on ResNet-20.
    "main": {"depth": 20, "attentions": ["none", "se", "eca", "ge_theta_minus", "ge_theta_plus", "nam"],
             "seeds": [0, 1, 2], "epochs": 10},
}
GRID_DIRS: dict[str, str] = {name: f"results/{name}" for name in GRIDS}


def grid(name: str) -> list[RunConfig]:
    """The configurations of the named grid in :data:`GRIDS`, seed-major."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; known: {', '.join(GRIDS)}")
    spec = GRIDS[name]
    return [
        RunConfig(depth=spec["depth"], attention=attention,
                  train=TrainConfig(**GRID_RECIPE, epochs=spec["epochs"], seed=seed))
        for seed in spec["seeds"] for attention in spec["attentions"]
    ]


def budget_config(budget: Budget, attention: str = "none", seed: int = 0, **attention_kwargs: object) -> RunConfig:
    """The run a notebook trains under ``budget`` (:func:`attn.budget.budget`): same recipe for every attention."""
    return RunConfig(
        depth=budget.depth, attention=attention, attention_kwargs=attention_kwargs,
        train_size=budget.train_size, test_size=budget.test_size,
        train=TrainConfig(epochs=budget.epochs, seed=seed),
    )


def default_runs_dir() -> Path:
    """Where notebooks keep their run results: ``$XDG_CACHE_HOME/attn/runs`` (never inside the repository)."""
    return cache_dir("runs")


def validate(config: RunConfig) -> None:
    """Build the configuration's model once, so a bad name or keyword fails before any data is loaded."""
    cifar_resnet(config.depth, config.attention, **config.attention_kwargs)


def result_path(config: RunConfig, results_dir: str | os.PathLike) -> Path:
    """Where the result of ``config`` lives in ``results_dir``."""
    return Path(results_dir) / f"{config.key}.json"


def environment() -> dict[str, object]:
    """Versions, device, threads and git commit, recorded with every result."""
    device = select_device()
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    """Output of a git command in the package's folder, or ``None`` outside a checkout."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def write_json_atomically(path: Path, payload: dict) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``: readers never see half a file."""
    text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))


def weights_path(config: RunConfig, results_dir: str | os.PathLike) -> Path:
    """Where ``run(..., keep_weights=True)`` saves the trained weights of ``config``."""
    return Path(results_dir) / f"{config.key}.pt"


def run(config: RunConfig, data: CIFAR10, results_dir: str | os.PathLike, progress: bool = True,
        keep_weights: bool = False) -> dict:
    """Train one configuration, or return its result if ``results_dir`` already has it.

    The model is built after seeding with ``config.train.seed``, so the same configuration
    gives the same initial weights and, on the CPU, the same history. A checkpoint under
    ``results_dir/.checkpoints`` lets an interrupted run continue from its last epoch. With
    ``keep_weights`` the trained weights are saved beside the result for :func:`load_model`
    (a cached result without them is trained again). The result records the configuration
    resolved for this machine (:meth:`RunConfig.resolved`).
    """
    config = config.resolved()
    results_dir = Path(results_dir)
    path = result_path(config, results_dir)
    if path.exists() and (not keep_weights or weights_path(config, results_dir).exists()):
        result = json.loads(path.read_text())
        if result["data"]["source"] != data.source:
            raise ValueError(
                f"{path} holds this configuration measured on {result['data']['source']!r}, but the data given "
                f"is {data.source!r}; use another results folder for another data source"
            )
        return result
    subset = dataclasses.replace(
        data,
        train=data.train if config.train_size is None else stratified_subset(data.train, config.train_size, seed=0),
        test=data.test if config.test_size is None else stratified_subset(data.test, config.test_size, seed=0),
    )
    torch.manual_seed(config.train.seed)
    model = cifar_resnet(config.depth, config.attention, len(data.classes), **config.attention_kwargs)
    params, macs = count_parameters(model), count_macs(model)
    checkpoint = results_dir / ".checkpoints" / f"{config.key}.pt"
    started_in = environment()  # the code that trains is the code checked out now, not at the end
    start = time.time()
    history = fit(model, subset, config.train, checkpoint=checkpoint, progress=progress)
    result = {
        "version": RESULT_VERSION,
        "key": config.key,
        "config": asdict(config),
        "data": {"source": data.source, "train_size": len(subset.train), "test_size": len(subset.test)},
        "history": [asdict(epoch) for epoch in history],
        "final_test_acc": history[-1].test_acc,
        "params": params,
        "macs": macs,
        "wall_seconds": time.time() - start,  # of this session; a resumed run counts only its last part
        "train_seconds": sum(epoch.seconds for epoch in history),
        "images_per_s": statistics.fmean(epoch.images_per_s for epoch in history),
        "environment": started_in,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if keep_weights:  # before the result file, whose presence says the run is complete
        write_atomically(weights_path(config, results_dir), lambda tmp: torch.save(model.state_dict(), tmp))
    write_json_atomically(path, result)
    checkpoint.unlink(missing_ok=True)
    return result


def load_model(config: RunConfig, results_dir: str | os.PathLike, num_classes: int = 10) -> torch.nn.Module:
    """The trained model of a run made with ``run(..., keep_weights=True)``, in eval mode.

    Raises ``FileNotFoundError`` when the run's weights were not kept.
    """
    weights = weights_path(config, results_dir)
    if not weights.exists():
        raise FileNotFoundError(f"no weights for {config.key} in {results_dir}; train it with "
                                f"attn.experiments.run(config, data, results_dir, keep_weights=True)")
    model = cifar_resnet(config.depth, config.attention, num_classes, **config.attention_kwargs)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def run_grid(configs: Iterable[RunConfig], data: CIFAR10, results_dir: str | os.PathLike,
             progress: bool = True) -> list[dict]:
    """Run the configurations in order, training those not yet in ``results_dir``; return every result.

    With ``progress``, prints ``[i/n] <key>`` before each run it trains (``n`` = runs left), so a
    log shows how far a long grid got, and each run shows its tqdm bars.
    """
    configs = list(configs)
    todo = [config for config in configs if not result_path(config, results_dir).exists()]
    numbers = {config.key: number for number, config in enumerate(todo, 1)}
    results = []
    for config in configs:
        if progress and config.key in numbers:
            print(f"[{numbers[config.key]}/{len(todo)}] {config.key}", flush=True)
        results.append(run(config, data, results_dir, progress))
    return results


def load_results(results_dir: str | os.PathLike) -> list[dict]:
    """Every result file in ``results_dir`` (not recursive), sorted by key."""
    paths = sorted(Path(results_dir).glob("*.json"))
    return [json.loads(path.read_text()) for path in paths]


def latency_path(results_dir: str | os.PathLike) -> Path:
    """The latency measurements that go with a grid's results: ``results/latency-<grid>.json``."""
    results_dir = Path(results_dir)
    return results_dir.parent / f"latency-{results_dir.name}.json"
