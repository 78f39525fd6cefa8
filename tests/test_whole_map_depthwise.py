"""GE-θ's whole-map gather as a dense product: the same values and gradients as the einsum, counted as what it is."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from attn.gather_excite import WholeMapDepthwiseConv
from attn.whole_map_depthwise import whole_map_depthwise


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_values_and_gradients_equal_the_einsum_in_float64(layout):
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    weight = torch.randn(4, 5, 6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(whole_map_depthwise(x, weight), torch.einsum("nchw,chw->nc", x, weight))
    assert torch.autograd.gradcheck(whole_map_depthwise, (x, weight))


def test_the_operator_passes_torch_library_s_checks():
    torch.library.opcheck(torch.ops.attn.whole_map_depthwise.default, (torch.randn(2, 3, 4, 4), torch.randn(3, 4, 4)))


def test_flop_counters_count_one_multiply_add_per_input_element_not_the_dense_product():
    conv = WholeMapDepthwiseConv(16, (32, 32))
    with FlopCounterMode(display=False) as counter:
        conv(torch.randn(8, 16, 32, 32).contiguous(memory_format=torch.channels_last))
    assert counter.get_total_flops() == 2 * 8 * 16 * 32 * 32


def test_the_module_equals_the_grouped_convolution_it_stands_for_eager_and_compiled():
    conv = WholeMapDepthwiseConv(8, (6, 6)).double()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    reference = torch.nn.functional.conv2d(x, conv.weight, groups=8)
    torch.testing.assert_close(conv(x), reference)
    torch.testing.assert_close(torch.compile(conv, fullgraph=True)(x), reference)
