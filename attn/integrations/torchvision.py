r"""Put an attention module into every residual block of a torchvision ResNet or MobileNetV2.

:func:`add_attention` places the module where the SE paper (and ECA, GE, NAM after it)
puts it: on the residual branch, after its last batch norm, before the shortcut is added.

- ``BasicBlock`` (ResNet-18/34): ``relu(attention(bn2(...)) + shortcut(x))``;
- ``Bottleneck`` (ResNet-50/101/152, Wide ResNet, ResNeXt): ``relu(attention(bn3(...)) + shortcut(x))``;
- ``InvertedResidual`` of MobileNetV2, when it has a residual connection
  (``use_res_connect``: stride 1 and as many output as input channels):
  ``x + attention(conv(x))``. The 7 blocks without one (the first block of every stage)
  get no module by default, since there is no add to place it before;
  ``residual_only=False`` gates them too, ``attention(conv(x))``, as the official
  ECA-MobileNetV2 does.

The official ECA networks (BangguWu/ECANet) set ``k`` by hand rather than by the paper's
Eq. 12, and a factory reproduces them:

- ECA-ResNet-50, ``k = 3, 5, 5, 7`` per stage: 80 parameters, the paper's figure (Eq. 12
  gives ``k = 5, 5, 5, 7`` and 86)::

      add_attention(resnet50(), lambda c: attn.create("eca", c, kernel_size={256: 3, 512: 5, 1024: 5, 2048: 7}[c]))

  The official state dict names the module ``eca``: rename ``layerS.B.eca.conv.weight`` to
  ``layerS.B.attention.conv.weight``; every other key is torchvision's.
- ECA-MobileNetV2, a module in all 17 blocks with ``k = 1`` where ``C < 96`` and 3 otherwise
  (the official code since its PR #32; its first commit had ``C <= 96``, 25 parameters: use
  that rule for a checkpoint whose 96-channel modules have ``k = 1``): 31 parameters::

      add_attention(mobilenet_v2(), lambda c: attn.create("eca", c, kernel_size=1 if c < 96 else 3),
                    residual_only=False)

  The official module is the last layer of the block's ``conv`` sequence: rename
  ``features.I.conv.J.conv.weight`` (``J`` = 3 in the first block, 4 in the others) to
  ``features.I.attention.conv.weight``, ``re.sub(r"\.conv\.\d+\.conv\.", ".attention.conv.", key)``;
  every other key is torchvision's.

The official training scripts wrap the model in ``nn.DataParallel`` (or
``DistributedDataParallel``) before saving it: strip the leading ``module.`` of every key too.

How it is done, and why. Each supported block gets the new module as a child named
``attention`` and its class is switched to a subclass whose ``forward`` applies it
(``BasicBlockWithAttention`` etc., defined below). Alternatives that were rejected:

- wrapping the last BN, ``block.bn2 = nn.Sequential(bn2, attention)``, renames its
  parameters (``bn2.weight`` becomes ``bn2.0.weight``), so pretrained weights no longer load;
- a BN subclass that applies the attention after normalising keeps the names, but every
  tool that folds a BN into the preceding convolution (quantisation, export) would fold
  the attention away with it, silently;
- a forward hook on the BN is not copied correctly by ``copy.deepcopy`` (the hook still
  calls the original block's module) and a closure cannot be pickled.

With the subclass every original parameter keeps its name and its value: loading the
state dict of the model *without* attention, ``load_state_dict(state, strict=False)``,
reports exactly the new ``...attention...`` keys as missing and nothing as unexpected, so
pretrained torchvision weights load into the attentive model. The blocks are still
instances of their torchvision class (``isinstance`` holds), the model pickles and deep
copies, and the ``forward`` methods below are torchvision's with one added call.

Modules that need the feature map's size at construction (GE-θ and GE-θ⁺ with a global
extent, NAM with its spatial branch) are not supported: a torchvision model takes any
input size, so a kernel that covers "the whole map" has no size to be built for. Use
``extent=2``, ``4`` or ``8`` for GE-θ/θ⁺ (``ge_theta_minus`` and ``nam`` work as they are).
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck

from .. import registry

__all__ = ["add_attention", "SUPPORTED_BLOCKS", "attention_modules"]

AttentionSpec = str | Callable[..., nn.Module]


# The subclasses below declare no class annotation for ``attention``: torch.jit.script would
# take it for the attribute's type and fail on it.


class BasicBlockWithAttention(BasicBlock):
    """torchvision's ``BasicBlock`` with ``self.attention`` after ``bn2``; ``(N, C_in, H, W) -> (N, C, H/s, W/s)``."""

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


class BottleneckWithAttention(Bottleneck):
    """torchvision's ``Bottleneck`` with ``self.attention`` after ``bn3``; ``(N, C_in, H, W) -> (N, C, H/s, W/s)``."""

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.attention(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


class InvertedResidualWithAttention(InvertedResidual):
    """MobileNetV2's ``InvertedResidual`` with ``self.attention`` after its last BN, before the add if it has one.

    ``(N, C_in, H, W) -> (N, C, H/s, W/s)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        out = self.attention(self.conv(x))
        return x + out if self.use_res_connect else out


# torchvision block type -> (its subclass with attention, the BN whose output is gated)
_ATTENTIVE: dict[type[nn.Module], tuple[type[nn.Module], Callable[[nn.Module], nn.BatchNorm2d]]] = {
    BasicBlock: (BasicBlockWithAttention, lambda block: block.bn2),
    Bottleneck: (BottleneckWithAttention, lambda block: block.bn3),
    InvertedResidual: (InvertedResidualWithAttention, lambda block: block.conv[-1]),
}
SUPPORTED_BLOCKS: tuple[str, ...] = (
    "torchvision.models.resnet.BasicBlock (resnet18, resnet34)",
    "torchvision.models.resnet.Bottleneck (resnet50/101/152, wide_resnet50_2/101_2, resnext*)",
    "torchvision.models.mobilenetv2.InvertedResidual (mobilenet_v2; residual blocks, all with residual_only=False)",
)


def add_attention(
    model: nn.Module, attention: AttentionSpec, *, residual_only: bool = True, **attention_kwargs: object
) -> nn.Module:
    """Insert an attention module into every residual block of ``model``, in place; returns ``model``.

    Args:
        model: a torchvision ResNet, Wide ResNet, ResNeXt or MobileNetV2 (or any model built
            from their block classes), pretrained or not. Its weights are left untouched.
        attention: a registry name (``attn.available()``) or a factory
            ``f(channels, **kwargs) -> nn.Module`` that keeps the shape ``(N, C, H, W)``.
        residual_only: skip MobileNetV2's blocks without a residual add (default). ``False``
            gates all 17, after their last BN, as the official ECA-MobileNetV2 does. Every
            ResNet block has a residual add.
        **attention_kwargs: passed to every module, e.g. ``reduction=16`` or ``extent=4``.

    Each module is built for its block's output channels ``C`` (the last BN's features)
    and placed on the block's parameters' device and dtype. The new parameters are named
    ``<block>.attention.*``, e.g. ``layer1.0.attention.conv.weight``.

    Raises:
        ValueError: no supported block in ``model`` (the message names the supported
            ones), attention already added, ``attention`` is ``"none"``, ``residual_only`` is
            not a bool, or ``spatial_size`` was passed (see the module docstring).
        TypeError: a keyword the module does not take (from :func:`attn.create`).
    """
    build = _builder(attention, attention_kwargs)
    blocks = _blocks(model, residual_only)
    modules = [_module_for(block, build) for block in blocks]  # all built before any block changes
    for block, module in zip(blocks, modules):
        block.__class__ = _ATTENTIVE[type(block)][0]
        block.attention = module
    return model


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The modules :func:`add_attention` inserted into ``model``, in network order."""
    attentive = tuple(cls for cls, _ in _ATTENTIVE.values())
    return [block.attention for block in model.modules() if isinstance(block, attentive)]


def _module_for(block: nn.Module, build: Callable[[int], nn.Module]) -> nn.Module:
    """The module for ``block``: built for its last BN's channels, on its device and dtype."""
    last_bn = _ATTENTIVE[type(block)][1](block)
    reference = next(block.parameters())
    return build(last_bn.num_features).to(device=reference.device, dtype=reference.dtype)


def _blocks(model: nn.Module, residual_only: bool) -> list[nn.Module]:
    """The blocks of ``model`` that get a module; raises ``ValueError`` if there are none."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"add_attention: model must be a torch.nn.Module, got {type(model).__name__}")
    if attention_modules(model):
        raise ValueError(f"add_attention: {type(model).__name__} already has attention modules; build a fresh model")
    if not isinstance(residual_only, bool):
        raise ValueError(f"add_attention: residual_only must be True or False, got {residual_only!r}")
    blocks = [
        block for block in model.modules()
        if type(block) in _ATTENTIVE and (not residual_only or getattr(block, "use_res_connect", True))
    ]
    if not blocks:
        supported = "\n  ".join(SUPPORTED_BLOCKS)
        raise ValueError(
            f"add_attention: found no supported residual block in {type(model).__name__}. "
            f"Supported block types:\n  {supported}"
        )
    return blocks


def _builder(attention: AttentionSpec, kwargs: dict[str, object]) -> Callable[[int], nn.Module]:
    """``build(channels) -> nn.Module``; rejects what cannot work before the model is touched."""
    if attention is None or attention == "none":
        raise ValueError("add_attention: attention must be a registry name or a factory, not 'none'")
    if not (isinstance(attention, str) or callable(attention)):
        raise ValueError(
            f"add_attention: attention must be a registry name (attn.available()) or a factory, "
            f"got {type(attention).__name__}"
        )
    if "spatial_size" in kwargs:
        raise ValueError(
            "add_attention: spatial_size cannot be given: feature maps differ per stage and with the input "
            "size. Use a module that works on any size (for GE-θ/θ⁺ pass extent=2, 4 or 8; NAM without spatial=True)"
        )

    def build(channels: int) -> nn.Module:
        if isinstance(attention, str):
            return registry.create(attention, channels, **kwargs)
        return attention(channels, **kwargs)

    return build
