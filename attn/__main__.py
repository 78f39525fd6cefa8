"""Command line: ``python -m attn {train,grid,latency,summary,profile} --help``.

    python -m attn train --depth 20 --attention eca --epochs 30 --seed 0 [--archive PATH]
    python -m attn grid ablation [--shard 0/2]       # a named grid, resumable
    python -m attn latency ablation                  # CPU latency of the grid's models, side by side
    python -m attn summary results/ablation          # mean ± std over seeds, differences to none
    python -m attn profile --depth 20 --attention eca

Errors (a bad name, a missing dataset, ...) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch

from . import experiments, registry
from .data import load_cifar10
from .models import cifar_resnet
from .profile import latency_rounds, profile_model, ratios_per_round
from .summary import format_summary, summarize_dir
from .train import TrainConfig, emulates_bf16, select_device

ATTENTION_CHOICES = ["none", *registry.available()]


def _value(text: str) -> object:
    """``"8"`` -> 8, ``"0.5"`` -> 0.5, ``"true"``/``"false"`` -> bool, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _attention_kwargs(pairs: list[str]) -> dict[str, object]:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--attention-arg takes KEY=VALUE (e.g. reduction=8), got {pair!r}")
        kwargs[key] = _value(value)
    return kwargs


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--archive", help="offline CIFAR-10 copy (.tar.gz or folder, train/<class>/*.jpg); "
                                        "default $ATTN_CIFAR10_ARCHIVE")
    data.add_argument("--root", help="torchvision's CIFAR-10 folder and the decode cache (default ~/.cache/attn/cifar10)")
    data.add_argument("--no-download", action="store_true", help="never try torchvision's download")
    data.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def _add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    default = TrainConfig()
    recipe = parser.add_argument_group("recipe (defaults are the book's)")
    recipe.add_argument("--epochs", type=int, default=default.epochs)
    recipe.add_argument("--batch-size", type=int, default=default.batch_size)
    recipe.add_argument("--lr", type=float, default=default.lr, help="peak learning rate")
    recipe.add_argument("--weight-decay", type=float, default=default.weight_decay)
    recipe.add_argument("--label-smoothing", type=float, default=default.label_smoothing)
    recipe.add_argument("--schedule", choices=["onecycle", "cosine"], default=default.schedule)
    recipe.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=default.precision,
                        help="auto: fp16 autocast on CUDA, bf16 on a CPU with native bf16, else fp32")
    recipe.add_argument("--nam-sparsity", type=float, default=default.nam_sparsity,
                        help="weight of the L1 penalty on NAM's BN scale factors (official code: 1e-4)")
    recipe.add_argument("--no-decay-norm-and-bias", dest="decay_norm_and_bias", action="store_false",
                        help="no weight decay on norm scales and shifts and on biases (timm's default)")
    recipe.add_argument("--ema-decay", type=float, default=default.ema_decay,
                        help="keep and evaluate an exponential moving average of the weights with this decay "
                             "per step, e.g. 0.999 (default 0: none)")
    recipe.add_argument("--device", default=default.device, help="auto (cuda, mps, cpu), or a torch device")
    recipe.add_argument("--train-size", type=int, help="stratified subset of the training images (default: all)")
    recipe.add_argument("--test-size", type=int, help="stratified subset of the test images (default: all)")


def _train_config(args: argparse.Namespace, seed: int) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, schedule=args.schedule, precision=args.precision,
        nam_sparsity=args.nam_sparsity, decay_norm_and_bias=args.decay_norm_and_bias, ema_decay=args.ema_decay,
        device=args.device, seed=seed,
    )


def _load_data(args: argparse.Namespace):
    return load_cifar10(root=args.root, archive=args.archive, download=not args.no_download)


def _refuse_emulated_bf16(configs: list[experiments.RunConfig], args: argparse.Namespace) -> None:
    """A clear error, before any data is loaded, for runs in bf16 on a CPU that would emulate it."""
    slow = [c for c in configs if emulates_bf16(c.train.precision, select_device(c.train.device))]
    if slow and not args.allow_emulated_bf16:
        raise ValueError(
            f"{len(slow)} run(s) to train here ask for bf16 autocast (e.g. {slow[0].key}), but this CPU "
            f"({experiments.environment()['device']}) has no native bf16 instructions (AVX512-BF16 or AMX), so "
            "bf16 is emulated: about 10x slower than fp32 (ResNet-20, one thread: 14 vs 162 img/s measured on such "
            "a CPU). Train them on a CPU with native bf16 or a GPU, or pass --allow-emulated-bf16 to wait"
        )


def _train(args: argparse.Namespace) -> None:
    config = experiments.RunConfig(
        depth=args.depth, attention=args.attention, attention_kwargs=_attention_kwargs(args.attention_arg),
        train_size=args.train_size, test_size=args.test_size, train=_train_config(args, args.seed),
    )
    experiments.validate(config)
    if not experiments.is_cached(config, args.results, args.keep_weights):
        _refuse_emulated_bf16([config], args)
    result = experiments.run(config, _load_data(args), args.results, keep_weights=args.keep_weights)
    print(f"{result['key']}: final test accuracy {100 * result['final_test_acc']:.2f} % on {result['data']['source']} "
          f"({result['data']['test_size']:,} test images) -> {Path(args.results) / (result['key'] + '.json')}")


def _grid(args: argparse.Namespace) -> None:
    configs = experiments.grid(args.name)
    index, count = _shard(args.shard)
    mine = configs[index::count]
    for config in mine:
        experiments.validate(config)
    results_dir = Path(args.results or experiments.GRID_DIRS[args.name])
    todo = [c for c in mine if not experiments.is_cached(c, results_dir, experiments.keeps_weights(args.name, c))]
    print(f"grid {args.name!r}: {len(configs)} runs, shard {index}/{count} has {len(mine)}, "
          f"{len(mine) - len(todo)} already in {results_dir}")
    if args.skip_emulated_bf16:
        slow = [c for c in todo if emulates_bf16(c.train.precision, select_device(c.train.device))]
        todo = [c for c in todo if c not in slow]
        if slow:
            print(f"skipping {len(slow)} bf16 run(s) that this CPU ({experiments.environment()['device']}) would "
                  f"emulate: {', '.join(c.key for c in slow)}")
    _refuse_emulated_bf16(todo, args)
    if todo:
        experiments.run_grid(todo, _load_data(args), results_dir,
                             keep_weights=lambda config: experiments.keeps_weights(args.name, config))
    _print_summary(results_dir)


def _print_summary(results_dir: Path) -> None:
    rows = summarize_dir(results_dir)
    latency = experiments.latency_path(results_dir)
    print(format_summary(rows))
    print(f"({sum(len(r['seeds']) for r in rows)} runs in {results_dir}; "
          f"latency: {latency if latency.exists() else 'not measured (python -m attn latency ...)'})")


def _latency(args: argparse.Namespace) -> None:
    depth = experiments.GRIDS[args.name]["depth"]
    variants = experiments.grid_variants(args.name)
    models = {experiments.variant_label(name, kwargs): cifar_resnet(depth, name, **kwargs).eval()
              for name, kwargs in variants}
    models[experiments.LATENCY_COPY] = copy.deepcopy(models["none"])  # timed last in every round: its gap to none is noise
    rounds_ms = latency_rounds(models, (args.batch, 3, 32, 32), rounds=args.rounds)
    latency_ms = {name: statistics.median(values) for name, values in rounds_ms.items()}
    path = experiments.latency_path(args.results or experiments.GRID_DIRS[args.name])
    experiments.write_json_atomically(path, {
        "grid": args.name, "depth": depth, "input_shape": [args.batch, 3, 32, 32], "rounds": args.rounds,
        "what": "median ms of one inference forward pass (eval mode, no grad, channels_last), models interleaved; "
                f"rounds_ms: each round's median, in the order measured; {experiments.LATENCY_COPY!r}: the same "
                "network as none, timed again, so that its difference from none is noise",
        "latency_ms": latency_ms, "rounds_ms": rounds_ms, "environment": experiments.environment(),
    })
    first = next(iter(latency_ms))
    ratios = {first: [1.0] * args.rounds, **ratios_per_round(rounds_ms, first)}
    for name, ms in latency_ms.items():
        print(f"{name:28s} {ms:8.3f} ms  {ms / latency_ms[first]:5.2f}x of {first} "
              f"(per round {min(ratios[name]):.2f}-{max(ratios[name]):.2f}x)")
    print(f"-> {path}")


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise ValueError(f"--shard takes I/N with 0 <= I < N (e.g. 0/2), got {text!r}")
    return int(index), int(count)


def _summary(args: argparse.Namespace) -> None:
    _print_summary(Path(args.results))


def _profile(args: argparse.Namespace) -> None:
    model = cifar_resnet(args.depth, args.attention, **_attention_kwargs(args.attention_arg))
    report = profile_model(model, (args.batch, 3, 32, 32))
    print(f"ResNet-{args.depth} + {args.attention}: {report['params']:,} parameters, "
          f"{report['macs'] / 1e6:.2f} M multiply-accumulates per image batch of {args.batch}, "
          f"CPU latency {report['latency_ms']:.2f} ms (median, batch {args.batch}, {torch.get_num_threads()} threads)")


def _add_bf16_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-emulated-bf16", action="store_true",
                        help="train bf16 runs even on a CPU without native bf16, where they are about 10x slower")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m attn", description="Train and measure CIFAR ResNets with channel attention.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,grid,latency,summary,profile}")

    train = commands.add_parser("train", help="train one ResNet on CIFAR-10 and write its result JSON",
                                description="Train one configuration; its result JSON goes to --results "
                                            "(skipped if present, resumed from its checkpoint if interrupted).")
    train.add_argument("--depth", type=int, default=20, help="6n+2: 8, 20, 32, 56 (default 20)")
    train.add_argument("--attention", choices=ATTENTION_CHOICES, default="none")
    train.add_argument("--attention-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="keyword for the attention module, e.g. reduction=8 (repeatable)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--results", default="results/runs", help="folder of result JSON files (default results/runs)")
    train.add_argument("--keep-weights", action="store_true",
                       help="also save the trained weights beside the result (<key>.pt, for load_trained)")
    _add_recipe_arguments(train)
    _add_data_arguments(train)
    _add_bf16_argument(train)
    train.set_defaults(handler=_train)

    grid = commands.add_parser("grid", help="run a named grid of (model, attention, seed), resumable",
                               description="Run every configuration of a named grid (see attn.experiments.GRIDS), "
                                           "skipping those whose result file exists; then print the summary.")
    grid.add_argument("name", choices=sorted(experiments.GRIDS))
    grid.add_argument("--results", help="folder of result files (default results/<name>)")
    grid.add_argument("--shard", default="0/1", help="run every N-th configuration starting at I (I/N), "
                                                     "for parallel workers (default 0/1)")
    _add_data_arguments(grid)
    _add_bf16_argument(grid)
    grid.add_argument("--skip-emulated-bf16", action="store_true",
                      help="on a CPU without native bf16, train only the runs that do not ask for bf16")
    grid.set_defaults(handler=_grid)

    latency = commands.add_parser("latency", help="measure the CPU latency of a grid's models side by side",
                                  description="Measure every model of a named grid, interleaved, on a quiet machine; "
                                              "writes results/latency-<grid>.json, which the summary reads.")
    latency.add_argument("name", choices=sorted(experiments.GRIDS))
    latency.add_argument("--results", help="the grid's results folder (default results/<name>)")
    latency.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    latency.add_argument("--rounds", type=int, default=5)
    latency.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    latency.set_defaults(handler=_latency)

    summary = commands.add_parser("summary", help="summarise a folder of result files")
    summary.add_argument("results", help="folder of result JSON files")
    summary.set_defaults(handler=_summary)

    profile = commands.add_parser("profile", help="parameters, multiply-accumulates and CPU latency of a model")
    profile.add_argument("--depth", type=int, default=20)
    profile.add_argument("--attention", choices=ATTENTION_CHOICES, default="none")
    profile.add_argument("--attention-arg", action="append", default=[], metavar="KEY=VALUE")
    profile.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    profile.set_defaults(handler=_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        args.handler(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"python -m attn {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
