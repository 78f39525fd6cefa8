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
from typing import Callable, Iterable

import torch

from .budget import Budget
from .data import CIFAR10, Split, stratified_subset
from .files import cache_dir, write_atomically
from .models import cifar_resnet
from .profile import count_macs, count_parameters
from .registry import available
from .train import TrainConfig, autocast_dtype, evaluate, fit, resolve_precision, select_device

__all__ = [
    "RunConfig", "GRID_RECIPE", "REFERENCE_RECIPE", "WIDTH_FAIR", "HEADLINE", "GATE_CONTROLS", "GRIDS", "GRID_DIRS", "grid",
    "grid_variants", "keeps_weights", "variant_label", "budget_config", "default_runs_dir", "validate", "result_path", "is_cached",
    "weights_path", "run", "load_model", "load_trained", "load_grid_model", "grid_results", "result_variant",
    "save_weights", "architecture", "config_from_dict", "train_eval_split", "TRAIN_EVAL_SIZE", "run_grid",
    "load_results", "latency_path", "LATENCY_COPY", "environment", "write_json_atomically", "HE_ET_AL_RESNET20_ACC",
    "recipe_check_runs",
]

RESULT_VERSION = 2  # 2: train_eval; history rows may carry ema_test_*
# The training images scored in eval mode at the end of every run (a fixed stratified subset,
# the same for every run), beside the test split: train and test accuracy measured alike.
TRAIN_EVAL_SIZE = 10_000


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
    def variant(self) -> str:
        """How tables name this variant, the attention with its keywords, e.g. ``"eca"``,
        ``"se(reduction=4)"`` or ``"nam + L1 0.0001"`` (NAM trained with its sparsity penalty)."""
        return variant_label(self.attention, self.attention_kwargs, self.train.nam_sparsity)

    @property
    def key(self) -> str:
        """``resnet20-eca-e30-s0-<hash>``, ``resnet20-se-reduction4-e30-s0-<hash>``: readable, and
        unique for the whole resolved configuration."""
        digest = hashlib.sha256(json.dumps(asdict(self.resolved()), sort_keys=True).encode()).hexdigest()[:10]
        tag = "".join(f"-{k}{v}" for k, v in sorted(self.attention_kwargs.items()))
        return f"resnet{self.depth}-{self.attention}{tag}-e{self.train.epochs}-s{self.train.seed}-{digest}"


def variant_label(attention: str, attention_kwargs: dict[str, object] | None = None, nam_sparsity: float = 0.0) -> str:
    """``"se"``, with keywords ``"se(reduction=4)"``, with NAM's sparsity penalty ``"nam + L1 0.0001"``:
    how summaries, plots and latency files name a variant."""
    label = attention
    if attention_kwargs:
        label += f"({', '.join(f'{k}={v}' for k, v in sorted(attention_kwargs.items()))})"
    if nam_sparsity:
        label += f" + L1 {nam_sparsity:g}"
    return label


# The recipe the 10-epoch grids train with, written out in full so that a later change of
# TrainConfig's defaults cannot silently mix two recipes within one grid's results. fp32,
# as those grids were trained, on any machine (precision="auto" depends on the CPU).
GRID_RECIPE: dict[str, object] = {
    "batch_size": 128, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
    "label_smoothing": 0.1, "schedule": "onecycle", "warmup": 0.15, "channels_last": True,
    "precision": "fp32", "nam_sparsity": 0.0, "decay_norm_and_bias": True, "ema_decay": 0.0,
    "device": "auto", "eval_batch_size": 500,
}

# The reference grid's recipe: GRID_RECIPE in bf16 autocast (measured: the same accuracy as
# fp32 within seed noise, 1.6-1.8x faster on these CPUs; results/recipe-probes) with weight
# decay off the norm parameters and biases (the probe in results/recipe-probes, whose
# configuration is this grid's `none` seed 0), and a weight average evaluated after every
# epoch beside the weights themselves (it does not change the training; the grid's numbers
# are the weights', the average's are reported beside them). Pinned to bf16 so the grid's
# keys do not depend on the machine's CPU.
REFERENCE_RECIPE: dict[str, object] = {**GRID_RECIPE, "precision": "bf16", "decay_norm_and_bias": False,
                                       "ema_decay": 0.999}

# The width-fair controls: at CIFAR widths (C = 16, 32, 64) SE's r = 16 leaves one hidden unit
# at C = 16, SE-GC's G = 16 is a diagonal at C = 16, and Eq. 12 gives ECA k = 3 in every block.
WIDTH_FAIR: list[tuple[str, dict[str, object]]] = [
    ("se", {"reduction": 4}), ("se_gc", {"group_size": 4}), ("eca", {"kernel_size": 5}),
]
HEADLINE = ["none", "se", "eca", "se_var1", "ge_theta_plus", "nam"]
# Do SE-Var1 and SE-Var2 lose because their gate starts near sigmoid(0) = 0.5, halving every
# residual branch (SE-Var1 has no parameter to move it)? Each variant -> the same gate centred
# on 1, 2 sigmoid(.) (chapter 3).
GATE_CONTROLS: dict[str, tuple[str, dict[str, object]]] = {
    variant: (variant, {"gate_layer": "2sigmoid"}) for variant in ("se_var1", "se_var2")
}
# What the recipe check is compared with: He et al. (2016), Table 6, ResNet-20's 8.75 % test error
# on the official CIFAR-10 files.
HE_ET_AL_RESNET20_ACC = 0.9125

# The book's grids, each a list of blocks run in order; within a block, seed by seed, so a
# grid stopped half way has every variant for the first seeds rather than every seed of the
# first variants. A variant is an attention name, (name, keywords), or (name, keywords, recipe
# settings that differ from the grid's recipe).
GRIDS: dict[str, dict[str, object]] = {
    # The recipe check: ResNet-20 without attention against He et al.'s 91.25 %.
    "recipe": {"depth": 20, "epochs": 30, "recipe": GRID_RECIPE, "blocks": [([0], ["none"])]},
    # The ECA paper's ablation (Table 2) and the other mechanisms, on the smallest ResNet;
    # then the width-fair controls; then the reference grid's gate control (SE-Var1's gate
    # centred on 1) where SE-Var1's loss is largest, so the hypothesis is tested with power,
    # and the same for SE-Var2, which starts as SE-Var1 and is the other loss of this grid.
    "ablation": {"depth": 8, "epochs": 10, "recipe": GRID_RECIPE,
                 "blocks": [([0, 1, 2], ["none", *available()]), ([0, 1, 2], WIDTH_FAIR),
                            ([0, 1, 2], [GATE_CONTROLS["se_var1"]]), ([0, 1, 2], [GATE_CONTROLS["se_var2"]])]},
    # One mechanism of each family on ResNet-20.
    "main": {"depth": 20, "epochs": 10, "recipe": GRID_RECIPE,
             "blocks": [([0, 1, 2], ["none", "se", "eca", "ge_theta_minus", "ge_theta_plus", "nam"])]},
    # The 30-epoch evidence: seed 0 of every variant (with trained weights kept), the chapters'
    # mechanisms first so every chapter has trained weights early, then seeds 1 and 2 of the
    # headline variants. GE-θ⁻ at global extent is SE-Var1's operator: not trained twice.
    "reference": {
        "depth": 20, "epochs": 30, "recipe": REFERENCE_RECIPE, "keep_weights_seeds": [0],
        "blocks": [
            ([0], ["none", "se", "eca", "ge_theta_plus", "nam", "se_var1", WIDTH_FAIR[0], "se_var2", "eca_ns",
                   WIDTH_FAIR[1], "ge_theta", WIDTH_FAIR[2], "se_var3"]),
            ([1, 2], HEADLINE),
            # The gate control at this budget: SE-Var1's gate centred on 1, three seeds (chapter 3).
            ([0, 1, 2], [GATE_CONTROLS["se_var1"]]),
            # NAM with the official code's sparsity penalty on its scale factors (s = 1e-4), for what
            # the penalty does to the scale factors (chapter 6): one run, in fp32 so that CPUs without
            # native bf16 can train it (2.6 h instead of about 30 h); it therefore has no `none` of its
            # recipe to be compared with, and is read beside NAM's seed 0 as a single run.
            ([0], [("nam", {}, {"nam_sparsity": 1e-4, "precision": "fp32"})]),
        ],
    },
}
GRID_DIRS: dict[str, str] = {name: f"results/{name}" for name in GRIDS}


def _unpack(variant: str | tuple) -> tuple[str, dict[str, object], dict[str, object]]:
    """``(attention, keywords, recipe settings)`` of a grid variant (see :data:`GRIDS`)."""
    if isinstance(variant, str):
        return variant, {}, {}
    attention, kwargs, *recipe = variant
    return attention, kwargs, recipe[0] if recipe else {}


def grid_variants(name: str) -> list[tuple[str, dict[str, object]]]:
    """The model variants ``(attention, keywords)`` of the named grid, each once, in the grid's order
    (a variant that differs only in its recipe, such as NAM's sparsity penalty, is the same model)."""
    variants: list[tuple[str, dict[str, object]]] = []
    for _, block in _spec(name)["blocks"]:
        for variant in block:
            attention, kwargs, _ = _unpack(variant)
            if (attention, kwargs) not in variants:
                variants.append((attention, kwargs))
    return variants


def grid(name: str) -> list[RunConfig]:
    """The configurations of the named grid in :data:`GRIDS`, block by block, seed-major within a block."""
    spec = _spec(name)
    configs = []
    for seeds, block in spec["blocks"]:
        for seed in seeds:
            for variant in block:
                attention, kwargs, recipe = _unpack(variant)
                train = TrainConfig(**{**spec["recipe"], **recipe}, epochs=spec["epochs"], seed=seed)
                configs.append(RunConfig(depth=spec["depth"], attention=attention, attention_kwargs=dict(kwargs),
                                         train=train))
    return configs


def keeps_weights(name: str, config: RunConfig) -> bool:
    """Whether the named grid keeps the trained weights of ``config`` (its ``keep_weights_seeds``)."""
    return config.train.seed in _spec(name).get("keep_weights_seeds", ())


def _spec(name: str) -> dict[str, object]:
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; known: {', '.join(GRIDS)}")
    return GRIDS[name]


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


def is_cached(config: RunConfig, results_dir: str | os.PathLike, keep_weights: bool = False) -> bool:
    """Whether :func:`run` would return the stored result of ``config`` instead of training it: the
    result file exists and, with ``keep_weights``, the weights file beside it too."""
    config = config.resolved()
    return result_path(config, results_dir).exists() and (not keep_weights or weights_path(config, results_dir).exists())


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
    if is_cached(config, results_dir, keep_weights):
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
    train_eval = train_eval_split(subset.train)
    device = select_device(config.train.device)
    train_eval_loss, train_eval_acc = evaluate(
        model, train_eval, config.train.eval_batch_size, device, config.train.channels_last,
        autocast_dtype(config.train.precision, device),
    )
    result = {
        "version": RESULT_VERSION,
        "key": config.key,
        "config": asdict(config),
        "data": {"source": data.source, "train_size": len(subset.train), "test_size": len(subset.test)},
        "history": [asdict(epoch) for epoch in history],
        "final_test_acc": history[-1].test_acc,
        "train_eval": {"what": "fixed stratified subset of the training images, eval mode, no augmentation",
                       "size": len(train_eval), "loss": train_eval_loss, "acc": train_eval_acc},
        "params": params,
        "macs": macs,
        "wall_seconds": time.time() - start,  # of this session; a resumed run counts only its last part
        "train_seconds": sum(epoch.seconds for epoch in history),
        "images_per_s": statistics.fmean(epoch.images_per_s for epoch in history),
        "environment": started_in,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if keep_weights:  # before the result file, whose presence says the run is complete
        save_weights(model, config, weights_path(config, results_dir))
    write_json_atomically(path, result)
    checkpoint.unlink(missing_ok=True)
    return result


def train_eval_split(train: Split) -> Split:
    """The training images a run is scored on in eval mode at the end: :data:`TRAIN_EVAL_SIZE` of
    them, stratified with seed 0 (all of them when the training split is smaller)."""
    return train if len(train) <= TRAIN_EVAL_SIZE else stratified_subset(train, TRAIN_EVAL_SIZE, seed=0)


def architecture(config: RunConfig) -> str:
    """What a weight file must fit: ``"resnet20-se(reduction=4)"``."""
    kwargs = ", ".join(f"{k}={v!r}" for k, v in sorted(config.attention_kwargs.items()))
    return f"resnet{config.depth}-{config.attention}" + (f"({kwargs})" if kwargs else "")


def save_weights(model: torch.nn.Module, config: RunConfig, path: Path) -> None:
    """Write ``model``'s float32 ``state_dict`` with the run's key and architecture, atomically.

    The file holds only tensors, strings and a dict, so ``torch.load(..., weights_only=True)``
    reads it without running pickled code.
    """
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    payload = {"key": config.key, "architecture": architecture(config), "state_dict": state}
    write_atomically(path, lambda tmp: torch.save(payload, tmp))


def load_model(config: RunConfig, results_dir: str | os.PathLike, num_classes: int = 10) -> torch.nn.Module:
    """The trained model of a run made with ``run(..., keep_weights=True)``, in eval mode.

    Raises ``FileNotFoundError`` when the run's weights were not kept, and ``ValueError`` when
    the weight file belongs to another run or another architecture (the message names both).
    """
    config = config.resolved()
    weights = weights_path(config, results_dir)
    if not weights.exists():
        raise FileNotFoundError(f"no weights for {config.key} in {results_dir}; train it with "
                                f"attn.experiments.run(config, data, results_dir, keep_weights=True)")
    saved = torch.load(weights, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or not {"key", "architecture", "state_dict"} <= set(saved):
        raise ValueError(f"{weights}: not an attn weight file (expected a dict with key, architecture and "
                         f"state_dict, as attn.experiments.save_weights writes)")
    expected = {"architecture": architecture(config), "key": config.key}
    for field_name, wanted in expected.items():
        if saved[field_name] != wanted:
            raise ValueError(f"{weights}: the file's {field_name} is {saved[field_name]!r} but the run asks for "
                             f"{wanted!r}; refusing to load weights of another run")
    model = cifar_resnet(config.depth, config.attention, num_classes, **config.attention_kwargs)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def load_trained(result_file: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """The trained model (eval mode) and the result of the run whose result JSON is ``result_file``.

    The model is rebuilt from the configuration the result records and loaded from the weight
    file beside it (``<key>.pt``); see :func:`load_model` for the errors.
    """
    result_file = Path(result_file)
    result = json.loads(result_file.read_text())
    return load_model(config_from_dict(result["config"]), result_file.parent), result


def load_grid_model(grid_name: str, variant: str, seed: int = 0,
                    results: str | os.PathLike | None = None) -> tuple[torch.nn.Module, dict]:
    """The trained model (eval mode) and result of ``variant`` (a label such as ``"se"``,
    ``"eca(kernel_size=5)"``) with ``seed`` in the named grid, from its committed files.

    ``results`` is the repository's ``results/`` folder (default: :func:`attn.summary.committed_results`).
    Raises ``ValueError`` for a variant the grid does not have and ``FileNotFoundError``, with
    the command that makes it, when the run or its weights are not committed.
    """
    matches = [c for c in grid(grid_name) if c.variant == variant and c.train.seed == seed]
    if not matches:
        known = sorted({c.variant for c in grid(grid_name)})
        raise ValueError(f"grid {grid_name!r} has no {variant!r} with seed {seed}; its variants: {', '.join(known)}")
    if results is None:
        from .summary import committed_results  # the summary module imports this one

        results = committed_results()
    folder = Path(results) / grid_name
    path = result_path(matches[0], folder)
    if not path.exists():
        raise FileNotFoundError(f"{grid_name}/{path.name} is not committed yet; it comes from "
                                f"python -m attn grid {grid_name}")
    return load_trained(path)


def grid_results(grid_name: str, variants: Iterable[str], results: str | os.PathLike | None = None) -> list[dict]:
    """The committed results of the named grid whose variant label is one of ``variants``
    (``"none"``, ``"eca(kernel_size=5)"``, ...), in the order of ``variants``, seed by seed.

    ``results`` is the repository's ``results/`` folder (default: :func:`attn.summary.committed_results`).
    Variants without committed runs are simply absent; one the grid does not have is a ``ValueError``.
    """
    variants = list(variants)
    known = {c.variant for c in grid(grid_name)}
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise ValueError(f"grid {grid_name!r} has no variant {', '.join(map(repr, unknown))}; "
                         f"its variants: {', '.join(sorted(known))}")
    if results is None:
        from .summary import committed_results  # the summary module imports this one

        results = committed_results()
    found = [r for r in load_results(Path(results) / grid_name) if result_variant(r) in variants]
    return sorted(found, key=lambda r: (variants.index(result_variant(r)), r["config"]["train"]["seed"]))


def recipe_check_runs(results_dir: str | os.PathLike) -> list[dict]:
    """The results in ``results_dir`` of the recipe check's network, the ``recipe`` grid's ResNet-20
    without attention, sorted by key: the recipe check itself (``results/recipe``) or the probes of
    its settings (``results/recipe-probes``). Runs of other networks in the folder are left out."""
    depth = _spec("recipe")["depth"]
    return [r for r in load_results(results_dir) if r["config"]["depth"] == depth and result_variant(r) == "none"]


def result_variant(result: dict) -> str:
    """The :func:`variant_label` of a result (as written by :func:`run`)."""
    config = result["config"]
    return variant_label(config["attention"], config["attention_kwargs"], config["train"]["nam_sparsity"])


def config_from_dict(config: dict) -> RunConfig:
    """The :class:`RunConfig` a result file records (``result["config"]``)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(config["train"]) - known)
    if unknown:
        raise ValueError(f"result config has training settings this version of attn does not know: {', '.join(unknown)}")
    return RunConfig(
        depth=config["depth"], attention=config["attention"], attention_kwargs=dict(config["attention_kwargs"]),
        train_size=config["train_size"], test_size=config["test_size"], train=TrainConfig(**config["train"]),
    )


def run_grid(configs: Iterable[RunConfig], data: CIFAR10, results_dir: str | os.PathLike,
             progress: bool = True, keep_weights: Callable[[RunConfig], bool] = lambda config: False) -> list[dict]:
    """Run the configurations in order, training those not yet in ``results_dir``; return every result.

    ``keep_weights(config)`` says whether a run's trained weights are saved beside its result.
    With ``progress``, prints ``[i/n] <key>`` before each run it trains (``n`` = runs left), so a
    log shows how far a long grid got, and each run shows its tqdm bars.
    """
    configs = list(configs)
    todo = [config for config in configs if not is_cached(config, results_dir, keep_weights(config))]
    numbers = {config.key: number for number, config in enumerate(todo, 1)}
    results = []
    for config in configs:
        if progress and config.key in numbers:
            print(f"[{numbers[config.key]}/{len(todo)}] {config.key}", flush=True)
        results.append(run(config, data, results_dir, progress, keep_weights=keep_weights(config)))
    return results


def load_results(results_dir: str | os.PathLike) -> list[dict]:
    """Every result file in ``results_dir`` (not recursive), sorted by key."""
    paths = sorted(Path(results_dir).glob("*.json"))
    return [json.loads(path.read_text()) for path in paths]


# The name under which `python -m attn latency` times the network without attention a second time.
LATENCY_COPY = "none (copy)"


def latency_path(results_dir: str | os.PathLike) -> Path:
    """The latency measurements that go with a grid's results: ``results/latency-<grid>.json``."""
    results_dir = Path(results_dir)
    return results_dir.parent / f"latency-{results_dir.name}.json"
