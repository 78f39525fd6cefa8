import pytest

from attn.budget import BUDGETS, budget


def test_budget_from_argument_and_environment(monkeypatch):
    monkeypatch.setenv("ATTN_BUDGET", "standard")
    assert budget().name == "standard"
    assert budget("full") is BUDGETS["full"]


def test_default_on_cpu_is_quick(monkeypatch):
    monkeypatch.delenv("ATTN_BUDGET", raising=False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert budget() is BUDGETS["quick"]


def test_unknown_budget(monkeypatch):
    monkeypatch.setenv("ATTN_BUDGET", "huge")
    with pytest.raises(ValueError, match="unknown budget 'huge'.*quick, standard, full"):
        budget()
