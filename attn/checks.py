"""Argument and input checks shared by every attention module.

Every check raises ``ValueError`` with a message that names the module, the argument,
what was expected and what was given, so a wrong configuration fails at construction
and a wrong tensor fails at the first forward call, never as a silent wrong result.

The input checks run in every module's ``forward``, so they are written to compile with
``torch.jit.script`` (no ``object`` annotations, no ``type(self)``): a module passes its
class name as ``owner``, kept as a string attribute. A scripted module raises the same
message, as a ``torch.jit.Error`` that quotes ``builtins.ValueError``. Under tracing
(``torch.jit.trace``, the TorchScript-based ONNX exporter) they do nothing: a traced graph
keeps no Python condition, and the tracer's sizes are tensors that a check would turn into
warnings.
"""

from __future__ import annotations

import numbers

import torch

__all__ = ["positive_int", "spatial_pair", "check_feature_map", "check_spatial_size"]


def positive_int(owner: str, name: str, value: object) -> int:
    """Return ``value`` as an ``int`` if it is a positive integer, else raise ``ValueError``.

    Floats such as ``16.0`` and booleans are rejected: a reduction ratio or a group count
    that is not a whole number is almost always a mistake upstream.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value}")
    return int(value)


def spatial_pair(owner: str, value: object) -> tuple[int, int]:
    """Return a spatial size given as ``H`` (square) or ``(H, W)`` as a pair of positive ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{owner}: spatial_size must be an int or (H, W), got {value!r}")
        return positive_int(owner, "spatial_size[0]", value[0]), positive_int(owner, "spatial_size[1]", value[1])
    size = positive_int(owner, "spatial_size", value)
    return size, size


def check_feature_map(owner: str, x: torch.Tensor, channels: int) -> None:
    """Check that ``x`` is a ``(N, C, H, W)`` tensor with ``C == channels``.

    Scriptable (``torch.jit.script``), like :func:`check_spatial_size`: the modules call both in
    ``forward``. ``x`` may be anything in eager mode; a non-tensor is rejected with its type.
    """
    if torch.jit.is_tracing():
        return
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{owner}: expected a torch.Tensor of shape (N, {channels}, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{owner}: expected a 4-D input of shape (N, C, H, W) with C={channels}, "
            f"got a {x.dim()}-D tensor of shape {_shape(x)}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{owner}: channel mismatch: built for C={channels} channels, "
            f"got an input with {x.shape[1]} channels (shape {_shape(x)}, expected (N, C, H, W))"
        )


def check_spatial_size(owner: str, x: torch.Tensor, spatial_size: tuple[int, int] | None) -> None:
    """Check that ``x`` ``(N, C, H, W)`` has ``(H, W) == spatial_size`` when one was declared."""
    if torch.jit.is_tracing():
        return
    if spatial_size is not None and (x.shape[-2], x.shape[-1]) != spatial_size:
        raise ValueError(
            f"{owner}: built for spatial_size={spatial_size}, "
            f"got an input of spatial size ({x.shape[-2]}, {x.shape[-1]})"
        )


def _shape(x: torch.Tensor) -> str:
    """``x.shape`` written as a Python tuple, ``(2, 8, 4, 4)``, in eager mode and in TorchScript."""
    dims = [str(size) for size in x.shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
