"""Build attention modules by name: ``create("eca", 64)``.

Every factory takes the channel count as its first positional argument (timm's
convention), so a network can place any of them with ``create(name, channels, **kwargs)``.
"""

from __future__ import annotations

import difflib
import inspect
from functools import partial
from typing import Callable

from torch import nn

from .eca import ECANoSharing, EfficientChannelAttention
from .gather_excite import GatherExcite
from .nam import NAM
from .se import SqueezeExcite
from .se_variants import SEGroupConv, SEVar1, SEVar2, SEVar3

__all__ = ["create", "available", "register", "accepts", "IDENTITY_AT_START", "SAME_OPERATOR", "OPERATOR_LABELS"]

Factory = Callable[..., nn.Module]

# In the order the book introduces them.
_FACTORIES: dict[str, Factory] = {
    "se": SqueezeExcite,
    "se_var1": SEVar1,
    "se_var2": SEVar2,
    "se_var3": SEVar3,
    "se_gc": SEGroupConv,
    "eca_ns": ECANoSharing,
    "eca": EfficientChannelAttention,
    "ge_theta_minus": partial(GatherExcite, variant="theta_minus"),
    "ge_theta": partial(GatherExcite, variant="theta"),
    "ge_theta_plus": partial(GatherExcite, variant="theta_plus"),
    "nam": NAM,
}


# The modules with an exact identity-at-start form (attn.gates): their logits come from a learned
# layer that can start at zero. SE-Var1 and GE-θ⁻ learn nothing; NAM's |γ| / Σ|γ| is 0/0 at γ = 0.
IDENTITY_AT_START: tuple[str, ...] = ("se", "se_var2", "se_var3", "se_gc", "eca_ns", "eca", "ge_theta", "ge_theta_plus")

#: Each name that computes the same function as another name, mapped to that name. GE-θ⁻ at its
#: default global extent is SE-Var1's gate σ(GAP(x)) (tests/test_gather_excite.py checks it), so
#: tables and plots show the two names as one operator.
SAME_OPERATOR: dict[str, str] = {"ge_theta_minus": "se_var1"}

#: How tables and plots name an operator that has two names.
OPERATOR_LABELS: dict[str, str] = {"se_var1": "SE-Var1 = GE-θ⁻"}


def available() -> list[str]:
    """The registered attention names, in the book's order."""
    return list(_FACTORIES)


def register(name: str, factory: Factory) -> None:
    """Register ``factory(channels, **kwargs) -> nn.Module`` under a new ``name``."""
    if not isinstance(name, str) or not name or name.lower() == "none":
        raise ValueError(f"register: name must be a non-empty string other than 'none', got {name!r}")
    if name in _FACTORIES:
        raise ValueError(f"register: {name!r} is already registered")
    if not callable(factory):
        raise ValueError(f"register: factory for {name!r} must be callable, got {type(factory).__name__}")
    _FACTORIES[name] = factory


def create(name: str | None, channels: int, **kwargs: object) -> nn.Module:
    """Build the attention module ``name`` for ``channels`` input channels.

    ``name`` ``None`` or ``"none"`` gives ``nn.Identity()`` (a network without attention).
    An unknown name raises ``ValueError`` listing the known ones; a keyword the module does
    not take raises ``TypeError`` listing the ones it does; ``identity_at_start=True`` for a
    module without that form (``attn.registry.IDENTITY_AT_START``) raises ``ValueError`` naming those with one.
    """
    if name is None or name == "none":
        return nn.Identity()
    factory = _lookup(name)
    if kwargs.get("identity_at_start") and name not in IDENTITY_AT_START:
        raise ValueError(
            f"attention {name!r} has no identity-at-start form (SE-Var1 and GE-θ⁻ learn nothing, and NAM's weights "
            f"|γ| / Σ|γ| are undefined at γ = 0; see attn.gates); the modules that have one: {', '.join(IDENTITY_AT_START)}"
        )
    _check_keywords(name, factory, kwargs)
    return factory(channels, **kwargs)


def accepts(attention: str | Factory, keyword: str) -> bool:
    """Whether the attention (a registered name or a factory) takes the keyword argument ``keyword``."""
    keywords = _keywords(_lookup(attention) if isinstance(attention, str) else attention)
    return keywords is None or keyword in keywords


def _lookup(name: str) -> Factory:
    """The factory registered as ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    if name not in _FACTORIES:
        close = difflib.get_close_matches(str(name), _FACTORIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown attention {name!r}.{hint} Known: none, {', '.join(_FACTORIES)}")
    return _FACTORIES[name]


def _keywords(factory: Factory) -> list[str] | None:
    """The keyword arguments ``factory`` takes after ``channels``; ``None`` if it takes any (``**kwargs``)."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    fixed = factory.keywords if isinstance(factory, partial) else {}
    return [p for p in list(parameters)[1:] if p not in fixed]


def _check_keywords(name: str, factory: Factory, kwargs: dict[str, object]) -> None:
    """Reject keywords the factory does not accept, naming the ones it does."""
    accepted = _keywords(factory)
    unknown = [] if accepted is None else sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"attention {name!r} does not take {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(accepted) or 'no keyword arguments'}"
        )
