#!/usr/bin/env python
"""Q1: a numeric check of every claim about modern Hopfield networks, CCCP and attention.

E(q) = E1(q) + E2(q), E1(q) = 1/2 q'q + log(N)/beta + 1/2 M^2 (convex), E2(q) = -lse(beta, Xq)
(concave). Each closed form of the report is compared with autograd or a numeric solver, in float64:
one PASS/FAIL line per claim with its tolerance and a JSON of every measured error. The retrieval
figure of the report is beyond/retrieval.py's.

    python q1_hopfield.py [--out_dir runs/q1]
"""
import argparse
import math

import torch
import torch.nn.functional as F
from torch.autograd.functional import hessian, jacobian

from utils import configure_seed, home, run, save_json, set_threads

DT = torch.float64  # every check runs in float64

# (N memories, D dimensions, beta); at beta = 1000 a naive exp(beta * z) overflows.
CONFIGS = [(5, 3, 0.5), (20, 8, 1.0), (50, 16, 4.0), (10, 4, 100.0), (8, 6, 1000.0)]
TOL = {"grad": 1e-10, "hess": 1e-10, "psd": -1e-10, "dd": -1e-12, "cccp_argmin": 1e-8,
       "energy_increase": 1e-10, "attention": 1e-12}


# ---- the energy and its closed forms -----------------------------------------------------------

def lse(beta, z):
    """lse(beta, z) = beta^-1 log sum_i exp(beta z_i), computed stably."""
    return torch.logsumexp(beta * z, dim=-1) / beta


def E1(q, X, beta):
    M = X.norm(dim=1).max()
    return 0.5 * q @ q + math.log(X.shape[0]) / beta + 0.5 * M**2


def E2(q, X, beta):
    return -lse(beta, X @ q)


def energy(q, X, beta):
    return E1(q, X, beta) + E2(q, X, beta)


def grad_E1(q, X, beta):
    return q.clone()


def grad_neg_E2(q, X, beta):
    """X' softmax(beta X q)."""
    return X.T @ torch.softmax(beta * (X @ q), dim=0)


def hess_E1(q, X, beta):
    return torch.eye(len(q), dtype=q.dtype)


def hess_neg_E2(q, X, beta):
    """beta X' (diag(p) - p p') X with p = softmax(beta X q)."""
    p = torch.softmax(beta * (X @ q), dim=0)
    return beta * X.T @ (torch.diag(p) - torch.outer(p, p)) @ X


def cccp_update(Q, X, beta):
    """q_{t+1} = X' softmax(beta X q_t), for one query (D,) or a batch of queries (n, D)."""
    return torch.softmax(beta * Q @ X.T, dim=-1) @ X


def random_problem(gen, N, D):
    """Memories X (N, D) and a query q (D,): at beta = 1000 the scores beta * Xq reach thousands."""
    return torch.randn(N, D, generator=gen, dtype=DT), torch.randn(D, generator=gen, dtype=DT)


# ---- the checks: each returns (measured figure, passed) ----------------------------------------

def check_derivatives(gen, autodiff, e1, ne2, tol):
    """Largest abs difference between autodiff (jacobian or hessian) of E1 and -E2 and the closed
    forms."""
    err = 0.0
    for N, D, beta in CONFIGS:
        X, q = random_problem(gen, N, D)
        for f, closed in ((lambda v: E1(v, X, beta), e1), (lambda v: -E2(v, X, beta), ne2)):
            err = max(err, (autodiff(f, q) - closed(q, X, beta)).abs().max().item())
    return err, err <= tol


def check_gradients(gen, grad_ne2=grad_neg_E2):
    return check_derivatives(gen, jacobian, grad_E1, grad_ne2, TOL["grad"])


def check_hessians(gen, hess_ne2=hess_neg_E2):
    return check_derivatives(gen, hessian, hess_E1, hess_ne2, TOL["hess"])


def setting(N, D, beta):
    return f"N={N} D={D} beta={beta:g}"


def check_psd(gen, draws=200, hess_ne2=hess_neg_E2):
    """Smallest eigenvalue of the Hessians of -E2 and E1 (the identity) in each setting of CONFIGS,
    over many random draws."""
    low = {setting(*c): math.inf for c in CONFIGS}
    for i in range(draws):
        N, D, beta = CONFIGS[i % len(CONFIGS)]
        X, q = random_problem(gen, N, D)
        eigs = torch.cat([torch.linalg.eigvalsh(H(q, X, beta)) for H in (hess_ne2, hess_E1)])
        low[setting(N, D, beta)] = min(low[setting(N, D, beta)], eigs.min().item())
    return low, min(low.values()) >= TOL["psd"]


def check_diagonal_dominance(gen, draws=200):
    """diag(p) - pp' is symmetric with a non-negative diagonal and |A_ii| >= sum_{j!=i} |A_ij|.

    Returns the smallest margin |A_ii| - sum_{j!=i} |A_ij| (0 up to rounding: the bound is tight).
    """
    margin, ok = math.inf, True
    for i in range(draws):
        N, D, beta = CONFIGS[i % len(CONFIGS)]
        X, q = random_problem(gen, N, D)
        p = torch.softmax(beta * (X @ q), dim=0)
        A = torch.diag(p) - torch.outer(p, p)
        off = A.abs().sum(dim=1) - A.diagonal().abs()
        margin = min(margin, (A.diagonal().abs() - off).min().item())
        ok &= torch.equal(A, A.T) and bool((A.diagonal() >= 0).all())
    return margin, ok and margin >= TOL["dd"]


def check_cccp_argmin(gen, update=cccp_update):
    """The closed-form CCCP step equals the numeric argmin of E1(q) + E2(q_t) + grad E2(q_t)'(q -
    q_t)."""
    err = 0.0
    for N, D, beta in CONFIGS:
        X, qt = random_problem(gen, N, D)
        g2 = -grad_neg_E2(qt, X, beta)  # grad E2(q_t)
        e2 = E2(qt, X, beta)
        q = torch.randn(D, generator=gen, dtype=DT).requires_grad_()
        opt = torch.optim.LBFGS([q], lr=1, max_iter=200, tolerance_grad=1e-14,
                                tolerance_change=1e-16, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            obj = E1(q, X, beta) + e2 + g2 @ (q - qt)
            obj.backward()
            return obj

        opt.step(closure)
        err = max(err, (q.detach() - update(qt, X, beta)).abs().max().item())
    return err, err <= TOL["cccp_argmin"]


ENERGY_STARTS, ENERGY_ITERS = 40, 50


def check_energy_decreases(gen, starts=ENERGY_STARTS, iters=ENERGY_ITERS, update=cccp_update):
    """Along CCCP iterations the energy never increases: the largest relative increase
    E(q_{t+1}) - E(q_t)."""
    worst = -math.inf
    for N, D, beta in CONFIGS:
        X = torch.randn(N, D, generator=gen, dtype=DT)
        for _ in range(starts):
            q = 3 * torch.randn(D, generator=gen, dtype=DT)
            e = energy(q, X, beta)
            for _ in range(iters):
                q = update(q, X, beta)
                e_next = energy(q, X, beta)
                worst = max(worst, ((e_next - e) / max(1.0, abs(e.item()))).item())
                e = e_next
    return worst, worst <= TOL["energy_increase"]


def check_attention(gen, update=cccp_update):
    """With beta = 1/sqrt(D), one update of a batch of queries Q equals single-head cross-attention
    with W_K = W_V = I: scaled_dot_product_attention(Q, X, X) and nn.MultiheadAttention (identity
    in/out projections, no biases)."""
    err = {"sdpa": 0.0, "multihead": 0.0}
    for N, D, _ in CONFIGS:
        X = torch.randn(N, D, generator=gen, dtype=DT)
        Q = torch.randn(N, D, generator=gen, dtype=DT)  # N queries, as in the assignment
        ours = update(Q, X, 1 / math.sqrt(D))
        sdpa = F.scaled_dot_product_attention(Q[None], X[None], X[None])[0]
        mha = torch.nn.MultiheadAttention(D, num_heads=1, bias=False, batch_first=True, dtype=DT)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.eye(D, dtype=DT).repeat(3, 1))  # W_Q = W_K = W_V = I
            mha.out_proj.weight.copy_(torch.eye(D, dtype=DT))
            out, _ = mha(Q[None], X[None], X[None], need_weights=False)
        err["sdpa"] = max(err["sdpa"], (ours - sdpa).abs().max().item())
        err["multihead"] = max(err["multihead"], (ours - out[0]).abs().max().item())
    return err, max(err.values()) <= TOL["attention"]


CHECKS = [  # (claim, key, check, tolerance key, the comparison a PASS means)
    ("gradients of E1 and -E2 match autograd (max abs error)", "gradients", check_gradients,
     "grad", "<="),
    ("Hessians of E1 and -E2 match autograd (max abs error)", "hessians", check_hessians,
     "hess", "<="),
    ("Hessians are PSD (smallest eigenvalue per setting)", "psd_min_eigenvalue", check_psd,
     "psd", ">="),
    ("diag(p) - p p^T is symmetric diagonally dominant (smallest margin)",
     "diagonal_dominance_margin", check_diagonal_dominance, "dd", ">="),
    ("CCCP closed form equals the numeric argmin (max abs error)", "cccp_argmin",
     check_cccp_argmin, "cccp_argmin", "<="),
    ("energy never increases along CCCP (largest relative increase)", "energy_increase",
     check_energy_decreases, "energy_increase", "<="),
    ("one update equals single-head cross-attention (max abs error)", "attention",
     check_attention, "attention", "<="),
]


def run_checks(seed=42):
    """Every check, with one seeded generator: {key: {claim, value, passed, tolerance, test}}."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # nn.MultiheadAttention's initialisation
    results = {}
    for claim, key, check, tol, test in CHECKS:
        value, passed = check(gen)
        results[key] = {"claim": claim, "value": value, "passed": bool(passed),
                        "tolerance": TOL[tol], "test": test}
    return results


def shown(r):
    """'-4.34e-14 >= -1e-10': the measured figure against its tolerance."""
    values = r["value"].items() if isinstance(r["value"], dict) else [("", r["value"])]
    return ", ".join(f"{k + ' ' if k else ''}{v:.2e} {r['test']} {r['tolerance']:.0e}"
                     for k, v in values)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=42, help="seed of every random draw")
    p.add_argument("--out_dir", default=home("runs/q1"),
                   help="where hopfield.json goes (default: the repository's runs/q1)")
    args = p.parse_args(argv)
    set_threads(1)
    configure_seed(args.seed)
    results = run_checks(args.seed)
    for r in results.values():
        print(f"{'PASS' if r['passed'] else 'FAIL'}  {r['claim']}: {shown(r)}")
    all_passed = all(r["passed"] for r in results.values())
    record = {"seed": args.seed, "configs": [dict(N=n, D=d, beta=b) for n, d, b in CONFIGS],
              "energy_starts": ENERGY_STARTS, "energy_iterations": ENERGY_ITERS, "tolerances": TOL,
              "checks": results, "all_passed": all_passed}
    path = save_json(record, f"{args.out_dir}/hopfield.json")
    print(f"wrote {path}")
    return 0 if all_passed else 1


if __name__ == "__main__":
    run(main)
