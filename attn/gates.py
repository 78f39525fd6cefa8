"""The gate function of the sigmoid-gated modules, and the identity-at-start form.

Every module in the book multiplies its input by ``sigmoid(logits)``, a number in ``(0, 1)``
per channel (and position). That gate starts near ``sigmoid(0) = 0.5`` in a freshly built
module, so putting one into a *pretrained* network halves every residual branch it sits
on, and a module without parameters (SE-Var1, GE-θ⁻) can never learn its way out of
``sigmoid(GAP(x))``. Two keywords address that:

- ``gate_layer="2sigmoid"`` uses ``2 * sigmoid(logits)``, in ``(0, 2)`` and exactly ``1`` at
  ``logits = 0``: the same family of gates, centred on "leave the channel as it is";
- ``identity_at_start=True`` (where a module has such a form) is ``"2sigmoid"`` with the last
  layer that produces the logits initialised to zero, so the logits are exactly ``0`` and
  the module computes exactly ``x`` until training moves that layer: inserted into a
  pretrained network, it leaves the network's function unchanged.

Which modules have an identity-at-start form is listed in
:data:`attn.registry.IDENTITY_AT_START`: those whose logits end in a learned linear layer
or batch norm. SE-Var1 and GE-θ⁻ have no parameters, and NAM's weights ``|γ| / Σ|γ|`` are
undefined at ``γ = 0``, so those three have none.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GATE_LAYERS", "gate_activation", "resolve_gate_layer", "zero_parameters"]

GATE_LAYERS: tuple[str, ...] = ("sigmoid", "2sigmoid")


def resolve_gate_layer(owner: str, gate_layer: str | None, identity_at_start: bool) -> str:
    """The gate function a module uses: ``gate_layer``, or ``"2sigmoid"`` for ``identity_at_start``
    (default ``"sigmoid"``). Raises ``ValueError`` for an unknown name or a contradiction."""
    if gate_layer is None:
        return "2sigmoid" if identity_at_start else "sigmoid"
    if gate_layer not in GATE_LAYERS:
        raise ValueError(f"{owner}: gate_layer must be one of {GATE_LAYERS}, got {gate_layer!r}")
    if identity_at_start and gate_layer != "2sigmoid":
        raise ValueError(f"{owner}: identity_at_start=True needs gate_layer='2sigmoid' (a gate that is 1 at zero "
                         f"logits), got gate_layer={gate_layer!r}")
    return gate_layer


def gate_activation(logits: torch.Tensor, gate_layer: str) -> torch.Tensor:
    """``sigmoid(logits)`` or ``2 * sigmoid(logits)``, same shape."""
    if gate_layer == "2sigmoid":
        return 2.0 * torch.sigmoid(logits)
    return torch.sigmoid(logits)


def zero_parameters(*layers: nn.Module) -> None:
    """Set the weights and biases of ``layers`` (their own, not their children's) to zero: the identity-at-start form."""
    for layer in layers:
        for parameter in layer.parameters(recurse=False):
            nn.init.zeros_(parameter)
