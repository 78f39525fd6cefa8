"""Block diagrams of the attention modules, drawn with matplotlib.

Every module in the book has the same outline: a branch computes a gate from the input
``x`` and the gate multiplies ``x``. :func:`block_diagram` draws that outline as a row of
boxes, one per operation, each labelled with the shape it outputs (per image, PyTorch's
order), and a skip line carrying ``x`` to the product. :data:`DIAGRAMS` holds the steps
of SE, ECA, Gather-Excite θ⁺ (global extent) and NAM's channel branch as ``attn``
implements them::

    block_diagram(DIAGRAMS["se"], title="Squeeze-and-Excitation")
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

__all__ = ["Step", "DIAGRAMS", "block_diagram"]


@dataclass(frozen=True)
class Step:
    """One operation of a gate branch: what it does and the shape of its output (one image)."""

    operation: str
    shape: str
    parameters: str = ""  # what it learns, e.g. "W₁: C/r × C"; empty for a parameter-free step


DIAGRAMS: dict[str, list[Step]] = {
    "se": [Step("GAP", "C × 1 × 1"), Step("FC", "C/r × 1 × 1", "W₁: C/r × C"), Step("ReLU", "C/r × 1 × 1"),
           Step("FC", "C × 1 × 1", "W₂: C × C/r"), Step("sigmoid", "C × 1 × 1")],
    "eca": [Step("GAP", "C × 1 × 1"), Step("Conv1d\nalong C", "C × 1 × 1", "k weights, shared"),
            Step("sigmoid", "C × 1 × 1")],
    # The global extent, as the book's grids train it; a local extent e gathers to C × H/e × W/e
    # with log₂ e stride-2 depthwise 3×3 convolutions and upsamples the gate back to H × W.
    "ge_theta_plus": [Step("depthwise\nH × W conv", "C × 1 × 1", "one H × W kernel\nper channel"),
                      Step("BN, ReLU", "C × 1 × 1", "γ, β"), Step("1×1 conv", "C/r × 1 × 1", "C/r × C"),
                      Step("ReLU", "C/r × 1 × 1"), Step("1×1 conv", "C × 1 × 1", "C × C/r"),
                      Step("sigmoid", "C × 1 × 1")],
    "nam": [Step("BN", "C × H × W", "γ, β"), Step("× |γ_c| / Σ|γ|", "C × H × W"), Step("sigmoid", "C × H × W")],
}


def block_diagram(steps: list[Step], title: str | None = None, input_shape: str = "C × H × W",
                  ax: Axes | None = None) -> Axes:
    """Draw ``x`` → ``steps`` → ``⊗ x`` as boxes in a row; returns the axes.

    Each box shows its operation and its output shape, with the learned parameters (if
    any) under it; the product's output has ``input_shape``.
    """
    if not steps:
        raise ValueError("block_diagram: expected at least one Step, got none")
    width, gap = 1.6, 0.55
    boxes = ["$x$", *[step.operation for step in steps]]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.05 * (len(boxes) + 2), 2.3))
    lefts = [i * (width + gap) for i in range(len(boxes))]
    product = lefts[-1] + width + gap + 0.25  # the centre of the ⊗ circle, radius 0.25
    arrow = {"arrowstyle": "-|>", "mutation_scale": 10, "color": "#4a4a4a"}
    for i, (left, label) in enumerate(zip(lefts, boxes)):
        ax.add_patch(FancyBboxPatch((left, -0.4), width, 0.8, boxstyle="round,pad=0.04",
                                    facecolor="#f0f0f0" if i == 0 else "#dbe9f6", edgecolor="#4a4a4a"))
        shape = input_shape if i == 0 else steps[i - 1].shape
        ax.text(left + width / 2, 0.08, label, ha="center", va="center", fontsize="small")
        ax.text(left + width / 2, -0.25, shape, ha="center", va="center", fontsize="x-small", color="#4a4a4a")
        if i and steps[i - 1].parameters:
            ax.text(left + width / 2, -0.55, steps[i - 1].parameters, ha="center", va="top",
                    fontsize="x-small", color="#1f5f99")
        ax.add_patch(FancyArrowPatch((left + width, 0), (left + width + gap, 0), **arrow))
    ax.add_patch(Circle((product, 0), 0.25, facecolor="white", edgecolor="#4a4a4a"))
    ax.text(product, 0, "×", ha="center", va="center", fontsize="large")
    ax.plot([width / 2, width / 2, product], [0.45, 0.95, 0.95], color="#4a4a4a", linewidth=1)
    ax.add_patch(FancyArrowPatch((product, 0.95), (product, 0.25), **arrow))
    ax.text(product / 2, 1.0, "x, unchanged: the gate multiplies the module's input", ha="center", va="bottom",
            fontsize="x-small", color="#4a4a4a")
    ax.add_patch(FancyArrowPatch((product + 0.25, 0), (product + 0.25 + gap, 0), **arrow))
    ax.text(product + 0.3 + gap, 0, f"$\\tilde{{x}}$\n{input_shape}", ha="left", va="center", fontsize="x-small")
    ax.set_xlim(-0.2, product + 2.0)
    ax.set_ylim(-1.0, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize="medium")
    return ax
