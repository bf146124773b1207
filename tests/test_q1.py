import math

import pytest
import torch

import hopfield as q1
from conftest import run_script


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_every_claim_passes(gen):
    results = q1.run_checks(seed=0)
    failed = {k: r["value"] for k, r in results.items() if not r["passed"]}
    assert not failed


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


def test_script_writes_json_and_figure_and_prints_each_tolerance(tmp_path):
    code, out, _ = run_script("q1_hopfield.py", "--out_dir", tmp_path)
    assert code == 0 and (tmp_path / "hopfield.json").exists() and (tmp_path / "retrieval.pdf").exists()
    assert "PASS  Hessians are PSD (smallest eigenvalue, zero up to rounding):" in out and ">= -1e-10" in out
    code, out, _ = run_script("q1_hopfield.py", "--out_dir", tmp_path)
    assert code == 0 and "unchanged" in out.splitlines()[-1]  # a rerun leaves the result as it is
