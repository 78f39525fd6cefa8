import torch
from torch import nn

from attn.models import cifar_resnet
from attn.profile import (compare_latency, count_macs, count_parameters, latency_rounds, measure_latency,
                          profile_model, ratios_per_round)


def test_resnet20_costs_about_41_million_macs():
    assert 40e6 < count_macs(cifar_resnet(20)) < 42e6


def test_macs_of_a_linear_layer_and_the_model_is_left_untouched():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    model.train()
    before = set(model.state_dict())
    assert count_macs(model, (2, 3, 2, 2)) == 2 * 12 * 5
    assert model.training and set(model.state_dict()) == before


def test_profile_reports_params_macs_latency():
    model = cifar_resnet(8, "se")
    report = profile_model(model, min_run_time=0.05)
    assert report["params"] == count_parameters(model)
    assert report["macs"] > 0 and report["latency_ms"] > 0
    assert measure_latency(model, (2, 3, 32, 32), min_run_time=0.05) > 0


def test_compare_latency_measures_every_model():
    models = {"none": cifar_resnet(8), "se": cifar_resnet(8, "se")}
    latency = compare_latency(models, rounds=2, min_run_time=0.02)
    assert set(latency) == {"none", "se"} and all(ms > 0 for ms in latency.values())


def test_latency_rounds_times_every_model_in_every_round():
    models = {"none": cifar_resnet(8), "eca": cifar_resnet(8, "eca")}
    rounds = latency_rounds(models, rounds=3, min_run_time=0.02)
    assert set(rounds) == {"none", "eca"} and all(len(values) == 3 and min(values) > 0 for values in rounds.values())


def test_ratios_per_round_divides_by_the_baseline_of_the_same_round():
    assert ratios_per_round({"none": [2.0, 4.0], "se": [3.0, 5.0]}) == {"se": [1.5, 1.25]}
