"""q1_hopfield.py: each numeric check of a Q1 claim fails when the formula it checks is made wrong (a
forgotten beta, a missing -pp' term, a step that does not descend, a negated Hessian), the PSD check
reports each setting, large beta stays finite, and the script passes every claim and reproduces the
committed results/q1/hopfield.json.

Mistakes tried in the closed forms themselves (python tests/mutants.py), each caught by the test named:
- q1_hopfield.py: `return torch.logsumexp(beta * z, dim=-1) / beta` -> `return torch.logsumexp(beta * z, dim=-1)` | test_every_claim_passes_and_the_committed_result_reproduces
- q1_hopfield.py: `return 0.5 * q @ q + math.log` -> `return q @ q + math.log` | test_every_claim_passes_and_the_committed_result_reproduces
- q1_hopfield.py: `return q.clone()` -> `return 2 * q` | test_every_claim_passes_and_the_committed_result_reproduces
- q1_hopfield.py: `return X.T @ torch.softmax(beta * (X @ q), dim=0)` -> `return X.T @ torch.softmax(X @ q, dim=0)` | test_every_claim_passes_and_the_committed_result_reproduces
- q1_hopfield.py: `return torch.eye(len(q), dtype=q.dtype)` -> `return 2 * torch.eye(len(q), dtype=q.dtype)` | test_every_claim_passes_and_the_committed_result_reproduces
- q1_hopfield.py: `return beta * X.T @ (torch.diag(p) - torch.outer(p, p)) @ X` -> `return beta * X.T @ torch.diag(p) @ X` | test_every_claim_passes_and_the_committed_result_reproduces
- q1_hopfield.py: `return torch.softmax(beta * Q @ X.T, dim=-1) @ X` -> `return torch.softmax(Q @ X.T, dim=-1) @ X` | test_every_claim_passes_and_the_committed_result_reproduces
"""
import importlib
import json
import math
import os

import pytest
import torch

from conftest import ROOT, call_main

q1 = importlib.import_module("q1_hopfield")


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_wrong_gradient_fails(gen):
    wrong = lambda q, X, beta: X.T @ torch.softmax(X @ q, dim=0)  # forgets beta
    _, passed = q1.check_gradients(gen, grad_ne2=wrong)
    assert not passed


def test_wrong_hessian_fails(gen):
    def wrong(q, X, beta):  # forgets the -pp' term
        p = torch.softmax(beta * (X @ q), dim=0)
        return beta * X.T @ torch.diag(p) @ X
    _, passed = q1.check_hessians(gen, hess_ne2=wrong)
    assert not passed


def test_wrong_cccp_update_fails(gen):
    wrong = lambda Q, X, beta: torch.softmax(Q @ X.T, dim=-1) @ X  # beta left out
    assert not q1.check_cccp_argmin(gen, update=wrong)[1]
    assert not q1.check_attention(gen, update=lambda Q, X, beta: torch.softmax(Q @ X.T, dim=-1) @ X)[1]


def test_gradient_step_on_energy_can_increase_it(gen):
    """The monotonicity check detects an update that does not descend (a long gradient step)."""
    def overshoot(q, X, beta):
        return q - 5.0 * (q - q1.grad_neg_E2(q, X, beta))
    assert not q1.check_energy_decreases(gen, starts=3, iters=5, update=overshoot)[1]


def test_large_beta_is_stable():
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 10
    q = torch.ones(4, dtype=torch.float64)
    assert math.isfinite(q1.energy(q, X, 1000.0).item())
    assert torch.isfinite(q1.hess_neg_E2(q, X, 1000.0)).all()


def test_psd_is_measured_in_each_setting_and_fails_on_a_negated_hessian(gen):
    low, passed = q1.check_psd(gen, draws=10)
    assert passed and set(low) == {q1.setting(*c) for c in q1.CONFIGS}
    assert not q1.check_psd(gen, draws=10, hess_ne2=lambda q, X, b: -q1.hess_neg_E2(q, X, b))[1]


def test_every_claim_passes_and_the_committed_result_reproduces(tmp_path):
    code, out, err = call_main("q1_hopfield.py", "--out_dir", tmp_path)
    assert code == 0, err
    result = json.loads((tmp_path / "hopfield.json").read_text())
    committed = json.loads(open(os.path.join(ROOT, "results", "q1", "hopfield.json")).read())
    assert result["all_passed"] and "FAIL" not in out
    assert "PASS  Hessians are PSD (smallest eigenvalue per setting):" in out and ">= -1e-10" in out
    for key, check in committed["checks"].items():
        assert result["checks"][key]["passed"] and result["checks"][key]["claim"] == check["claim"]
    assert result["checks"]["psd_min_eigenvalue"]["value"] == pytest.approx(
        committed["checks"]["psd_min_eigenvalue"]["value"], rel=1e-6, abs=1e-12)
