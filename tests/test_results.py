"""The committed result files: valid, consistent with their names and with what they record."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

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
