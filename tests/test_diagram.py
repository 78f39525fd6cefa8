"""Block diagrams draw one box per step plus the input, and refuse an empty branch."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch  # noqa: E402

from attn.diagram import DIAGRAMS, Step, block_diagram  # noqa: E402


@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_one_box_per_step_and_one_product(name: str) -> None:
    ax = block_diagram(DIAGRAMS[name], title=name)
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(DIAGRAMS[name]) + 1
    assert sum(isinstance(p, Circle) for p in ax.patches) == 1
    texts = [t.get_text() for t in ax.texts]
    assert all(step.operation in texts and step.shape in texts for step in DIAGRAMS[name])
    assert ax.get_title() == name


def test_parameters_are_written_under_their_step() -> None:
    ax = block_diagram([Step("FC", "C × 1 × 1", "W: C × C")])
    assert "W: C × C" in [t.get_text() for t in ax.texts]


def test_an_empty_branch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one Step"):
        block_diagram([])
