"""The command line: help, one-line errors with exit status 2, and a real (tiny) training run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import attn.data as data
import attn.train
from attn.__main__ import main
from test_data import TINY, _files, _tar


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, f"expected one line, got:\n{err}"
    return err


@pytest.mark.parametrize("command", ["train", "grid", "latency", "summary", "profile"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage: python -m attn " + command in capsys.readouterr().out


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "attn", "--help"], capture_output=True, text=True, check=True).stdout
    assert "{train,grid,latency,summary,profile}" in out


def test_unknown_attention_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--attention", "sse"])
    assert exit_.value.code == 2 and "invalid choice: 'sse'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--attention", "eca", "--attention-arg", "reduction=8"], "attention 'eca' does not take 'reduction'"),
    (["train", "--attention-arg", "reduction"], "--attention-arg takes KEY=VALUE"),
    (["train", "--depth", "18"], "depth must be 6n + 2"),
    (["train", "--epochs", "0"], "epochs must be a positive integer"),
    (["grid", "ablation", "--shard", "2/2"], "--shard takes I/N"),
])
def test_errors_are_one_line_with_status_2(argv, message, capsys):
    assert main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith(f"python -m attn {argv[0]}: error: ") and message in line


@pytest.mark.parametrize("argv", [["grid", "reference"], ["train", "--depth", "8", "--precision", "bf16"]])
def test_bf16_on_a_cpu_that_would_emulate_it_is_refused_before_any_data_is_loaded(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(attn.train, "cpu_has_native_bf16", lambda: False)
    monkeypatch.delenv("ATTN_CIFAR10_ARCHIVE", raising=False)  # the refusal comes first, not "CIFAR-10 not found"
    assert main([*argv, "--results", str(tmp_path), "--root", str(tmp_path), "--no-download"]) == 2
    line = _error_line(capsys)
    assert "ask for bf16 autocast" in line and "no native bf16" in line and "--allow-emulated-bf16" in line


def test_allowing_emulated_bf16_goes_on_to_the_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(attn.train, "cpu_has_native_bf16", lambda: False)
    monkeypatch.delenv("ATTN_CIFAR10_ARCHIVE", raising=False)
    argv = ["train", "--depth", "8", "--precision", "bf16", "--allow-emulated-bf16",
            "--results", str(tmp_path), "--root", str(tmp_path), "--no-download"]
    assert main(argv) == 2 and "CIFAR-10 not found" in _error_line(capsys)


def test_a_grid_can_skip_the_bf16_runs_and_train_the_rest(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(attn.train, "cpu_has_native_bf16", lambda: False)
    monkeypatch.delenv("ATTN_CIFAR10_ARCHIVE", raising=False)
    argv = ["grid", "reference", "--skip-emulated-bf16", "--results", str(tmp_path), "--root", str(tmp_path), "--no-download"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "skipping 28 bf16 run(s) that this CPU" in captured.out
    assert "CIFAR-10 not found" in captured.err  # the fp32 run (NAM + L1) goes on to the data


def test_missing_dataset_names_the_ways_to_provide_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ATTN_CIFAR10_ARCHIVE", raising=False)
    assert main(["train", "--depth", "8", "--root", str(tmp_path), "--no-download", "--results", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert "CIFAR-10 not found" in line and "ATTN_CIFAR10_ARCHIVE" in line and "download" in line


def test_summary_of_an_empty_folder(tmp_path, capsys):
    assert main(["summary", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert "no result files" in line and f"python -m attn grid {tmp_path.name}" in line


def test_profile(capsys):
    assert main(["profile", "--depth", "8", "--attention", "se", "--attention-arg", "reduction=4"]) == 0
    out = capsys.readouterr().out
    assert "ResNet-8 + se:" in out and "parameters" in out and "CPU latency" in out


def test_train_on_a_tiny_archive_writes_a_result(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "EXPECTED_SIZES", TINY)
    archive = _tar(tmp_path / "tiny.tar.gz", _files())
    argv = ["train", "--depth", "8", "--attention", "se", "--epochs", "1", "--batch-size", "8",
            "--archive", str(archive), "--root", str(tmp_path / "root"), "--results", str(tmp_path / "results")]
    assert main(argv) == 0
    assert "final test accuracy" in capsys.readouterr().out
    (path,) = (tmp_path / "results").glob("*.json")
    result = json.loads(path.read_text())
    assert result["data"] == {"source": "CIFAR-10 (JPEG copy)", "train_size": 20, "test_size": 10}
    assert result["config"]["attention"] == "se" and len(result["history"]) == 1


def test_latency_writes_the_file_the_summary_reads(tmp_path, monkeypatch, capsys):
    import attn.__main__ as cli

    def three_rounds(models, shape, rounds):
        return {name: [1.0 + i, 3.0 + i, 2.0 + i] for i, name in enumerate(models)}

    monkeypatch.setattr(cli, "latency_rounds", three_rounds)
    results = tmp_path / "ablation"
    assert main(["latency", "ablation", "--results", str(results), "--rounds", "3"]) == 0
    written = json.loads((tmp_path / "latency-ablation.json").read_text())
    assert written["latency_ms"]["none"] == 2.0 and written["input_shape"] == [1, 3, 32, 32]  # the median of the rounds
    assert written["rounds_ms"]["none"] == [1.0, 3.0, 2.0] and written["rounds"] == 3
    assert "none (copy)" in written["latency_ms"]  # the noise: the network without attention timed once more
    assert "torch" in written["environment"]
