"""attn: channel attention for CNNs (SE, ECA, Gather-Excite, NAM), derived and tested.

Build any module by name with :func:`create`; every module maps ``(N, C, H, W)`` to the
same shape and takes the channel count ``C`` as its first argument.
"""

from .channel_gate import ChannelGate
from .eca import ECANoSharing, EfficientChannelAttention, eca_kernel_size
from .gather_excite import GatherExcite
from .integrations import add_attention
from .nam import NAM, nam_sparsity_loss
from .registry import available, create, register
from .se import SqueezeExcite
from .se_variants import SEGroupConv, SEVar1, SEVar2, SEVar3

__version__ = "0.1.0"

__all__ = [
    "available",
    "create",
    "register",
    "add_attention",
    "eca_kernel_size",
    "nam_sparsity_loss",
    "ChannelGate",
    "SqueezeExcite",
    "SEVar1",
    "SEVar2",
    "SEVar3",
    "SEGroupConv",
    "ECANoSharing",
    "EfficientChannelAttention",
    "GatherExcite",
    "NAM",
]
