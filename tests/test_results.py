"""The committed result files: valid, consistent with their names and with what they record."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from attn import experiments
from attn.experiments import GRID_DIRS, RunConfig, grid
from attn.train import TrainConfig

RESULTS = Path(__file__).resolve().parents[1] / "results"
SCHEMA = json.loads((RESULTS / "schema.json").read_text())
FILES = sorted(path for folder in GRID_DIRS.values() for path in (RESULTS.parent / folder).glob("*.json"))
# Single runs outside the grids (python -m attn train --results results/<folder>), kept as evidence.
EXTRA = sorted(RESULTS.glob("recipe-probes/*.json"))


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", FILES + EXTRA, ids=[p.name for p in FILES + EXTRA])
def test_result_file(path):
    result = json.loads(path.read_text())
    jsonschema.validate(result, SCHEMA)
    config = result["config"]
    rebuilt = RunConfig(**{**config, "train": TrainConfig(**config["train"])})
    assert path.name == f"{rebuilt.key}.json" == f"{result['key']}.json", "file name, key and configuration disagree"
    assert result["final_test_acc"] == result["history"][-1]["test_acc"]
    assert len(result["history"]) == config["train"]["epochs"]
    if path in FILES:
        assert rebuilt in grid(path.parent.name), f"{path.name} is not part of the grid {path.parent.name!r}"


WEIGHTS = sorted(path for folder in GRID_DIRS.values() for path in (RESULTS.parent / folder).glob("*.pt"))
# The committed weights of a grid's kept runs, at most 20 MB in all (the repository carries them).
WEIGHTS_LIMIT = 20 * 2**20


def test_every_kept_run_has_its_weights_and_nothing_else_does():
    for name, folder in GRID_DIRS.items():
        for config in grid(name):
            result, weights = (experiments.result_path(config, RESULTS.parent / folder),
                               experiments.weights_path(config, RESULTS.parent / folder))
            if result.exists():
                assert weights.exists() == experiments.keeps_weights(name, config), weights.name
    assert sum(path.stat().st_size for path in WEIGHTS) <= WEIGHTS_LIMIT
    assert all(path.with_suffix(".json").exists() for path in WEIGHTS), "a weight file without its result"


@pytest.mark.parametrize("path", WEIGHTS, ids=[p.name for p in WEIGHTS])
def test_committed_weights_load_into_the_model_their_result_describes(path):
    model, result = experiments.load_trained(path.with_suffix(".json"))
    assert sum(p.numel() for p in model.parameters()) == result["params"] and not model.training
