"""timm's ResNet family with ``attn`` modules, through timm's own ``attn_layer`` hook.

timm's ``BasicBlock`` and ``Bottleneck`` build ``create_attn(attn_layer, channels)`` after
their last batch norm, before the shortcut is added (the SE paper's placement, the same as
:func:`attn.add_attention`), and ``create_attn`` calls any callable it is given with the
channel count. So one factory is all it takes::

    import timm
    from attn.integrations.timm import attn_block_args

    model = timm.create_model("resnet50", block_args=attn_block_args("eca"))
    model = timm.create_model("resnet18", block_args=attn_block_args("se", reduction=8))

The module sits in ``<block>.se`` (timm's name for the slot, whatever the module), so a
timm checkpoint of the plain network loads with ``strict=False`` and only the new
``....se.*`` keys missing. Modules that need the feature map's size at construction (GE-θ
and GE-θ⁺ with a global extent, NAM's spatial branch) are refused, as in
:func:`attn.add_attention`: timm passes only the channel count.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from .. import registry

__all__ = ["attn_layer", "attn_block_args"]

# The registry modules whose default needs a spatial size that timm's hook cannot give.
_NEEDS_SPATIAL_SIZE = ("ge_theta", "ge_theta_plus")


def attn_layer(name: str, **kwargs: object) -> Callable[[int], nn.Module]:
    """A factory ``channels -> module`` for timm's ``attn_layer``: ``attn.create(name, channels, **kwargs)``.

    The name and keywords are checked now, with a module of 16 channels, so a typo fails
    before timm builds anything.
    """
    if name in _NEEDS_SPATIAL_SIZE and kwargs.get("extent", 0) == 0:
        raise ValueError(
            f"attn_layer: {name!r} with a global extent needs each block's spatial size, which timm's attn_layer "
            f"hook does not pass (it gives the channel count only); use extent=2, 4 or 8, or 'ge_theta_minus'"
        )
    if kwargs.get("spatial"):
        raise ValueError("attn_layer: NAM's spatial branch needs each block's spatial size, which timm does not pass")
    registry.create(name, 16, **kwargs)
    return partial(registry.create, name, **kwargs)


def attn_block_args(name: str, **kwargs: object) -> dict[str, object]:
    """``block_args`` for ``timm.create_model`` of a ResNet-family model: ``{"attn_layer": attn_layer(name, **kwargs)}``."""
    return {"attn_layer": attn_layer(name, **kwargs)}
