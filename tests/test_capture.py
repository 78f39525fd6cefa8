"""Looking inside a network: the inputs of its attention slots and the gates its modules apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attn.capture import (attention_slots, branch_to_shortcut, capture_gates, capture_inputs, class_share,
                          per_class_mean)
from attn.data import normalize
from attn.models import cifar_resnet

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGES = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)


def test_every_block_s_slot_is_found_in_order_even_without_attention():
    slots = attention_slots(cifar_resnet(20))
    assert list(slots) == [f"stages.{s}.{b}" for s in range(3) for b in range(3)]
    assert all(isinstance(slot, torch.nn.Identity) for slot in slots.values())
    with pytest.raises(ValueError, match="no block with an 'attention' slot"):
        attention_slots(torch.nn.Linear(2, 2))


def test_inputs_are_what_the_slot_receives_in_eval_mode_and_the_mode_is_restored():
    model = cifar_resnet(8, "se").train()
    inputs = capture_inputs(model, IMAGES, batch_size=4)
    assert model.training and {name: tuple(x.shape) for name, x in inputs.items()} == {
        "stages.0.0": (6, 16, 32, 32), "stages.1.0": (6, 32, 16, 16), "stages.2.0": (6, 64, 8, 8)}
    model.eval()
    block = model.stages[0][0]
    with torch.no_grad():
        stem = model.stem(normalize(IMAGES))
        expected = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(stem)))))
    torch.testing.assert_close(inputs["stages.0.0"], expected)
    with pytest.raises(ValueError, match="expected uint8 images"):
        capture_inputs(model, IMAGES.float())


def test_float_images_already_normalised_are_taken_as_they_are_only_when_asked():
    model = cifar_resnet(8, "eca")
    from_uint8 = capture_gates(model, IMAGES)
    from_float = capture_gates(model, normalize(IMAGES), normalized=True)
    assert from_float.keys() == from_uint8.keys()
    for name in from_uint8:
        torch.testing.assert_close(from_float[name], from_uint8[name])
    torch.testing.assert_close(branch_to_shortcut(model, normalize(IMAGES), normalized=True), branch_to_shortcut(model, IMAGES))
    with pytest.raises(ValueError, match="expected float images .* already normalised"):
        capture_inputs(model, IMAGES, normalized=True)
    with pytest.raises(ValueError, match=r"or float ones with normalized=True"):
        capture_gates(model, normalize(IMAGES))


@pytest.mark.parametrize("name, shape", [("eca", (6, 16)), ("ge_theta_minus", (6, 16, 1, 1)), ("nam", (6, 16, 32, 32)),
                                         ("ge_theta", (6, 16, 1, 1))])
def test_gates_have_each_family_s_shape_and_are_what_forward_multiplies_by(name, shape):
    model = cifar_resnet(8, name).eval()
    gates = capture_gates(model, IMAGES)
    assert tuple(gates["stages.0.0"].shape) == shape
    x = capture_inputs(model, IMAGES)["stages.0.0"]
    with torch.no_grad():
        out = model.stages[0][0].attention(x)
    gate = gates["stages.0.0"]
    gate = gate[:, :, None, None] if gate.dim() == 2 else gate
    torch.testing.assert_close(out, x * gate)


def test_a_network_without_attention_has_no_gates_and_class_means_average_per_class():
    with pytest.raises(ValueError, match="no attention module with a gate"):
        capture_gates(cifar_resnet(8), IMAGES)
    values, labels = torch.arange(6.0)[:, None].repeat(1, 2), torch.tensor([0, 1, 0, 1, 2, 2])
    torch.testing.assert_close(per_class_mean(values, labels, classes=3),
                               torch.tensor([[1.0, 1.0], [2.0, 2.0], [4.5, 4.5]]))
    with pytest.raises(ValueError, match="6 values but 5 labels"):
        per_class_mean(values, labels[:5])


def test_the_class_share_is_zero_for_class_free_gates_and_one_for_gates_fixed_by_the_class():
    labels = torch.arange(200) % 10
    fixed = labels[:, None].float().repeat(1, 4)
    assert class_share(fixed, labels) == pytest.approx(1.0)
    constant_per_class_mean = torch.randn(200, 4) * 0.01 + 0.5
    assert class_share(constant_per_class_mean, labels) < 0.2
    spatial = fixed[:, :, None, None].expand(200, 4, 2, 2)
    assert class_share(spatial, labels) == pytest.approx(1.0)


def test_branch_to_shortcut_is_the_rms_ratio_before_and_after_the_slot_and_a_halving_gate_halves_it():
    model = cifar_resnet(8).eval()
    captured = {}
    block = model.stages[1][0]
    hooks = [block.attention.register_forward_hook(lambda m, i, o: captured.update(branch=o.clone())),
             block.register_forward_pre_hook(lambda m, i: captured.update(shortcut=m.shortcut(i[0]).clone()))]
    with torch.no_grad():
        model(normalize(IMAGES))
    for hook in hooks:
        hook.remove()
    ratios = branch_to_shortcut(model, IMAGES, batch_size=4)
    assert list(ratios) == ["stages.0.0", "stages.1.0", "stages.2.0"]
    expected = (captured["branch"].pow(2).sum() / captured["shortcut"].pow(2).sum()).sqrt().item()
    assert ratios["stages.1.0"]["gated"] == pytest.approx(expected, rel=1e-5)
    assert ratios["stages.1.0"]["ungated"] == pytest.approx(expected, rel=1e-5)  # an empty slot changes nothing

    class Half(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x

    model.stages[0][0].attention = Half()
    halved = branch_to_shortcut(model, IMAGES)["stages.0.0"]
    assert halved["gated"] == pytest.approx(ratios["stages.0.0"]["gated"] / 2, rel=1e-5)
    assert halved["ungated"] == pytest.approx(ratios["stages.0.0"]["ungated"], rel=1e-5)
    with pytest.raises(ValueError, match="expected uint8 images"):
        branch_to_shortcut(model, IMAGES.float())
    with pytest.raises(ValueError, match="no residual block"):
        branch_to_shortcut(torch.nn.Linear(2, 2), IMAGES)
