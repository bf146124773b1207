#!/usr/bin/env python
"""Q1: a numeric check of every claim about modern Hopfield networks, CCCP and attention.

Each closed form of the report (hopfield.py) is compared with autograd or with a numeric solver in
float64: one PASS/FAIL line per claim with its tolerance, a JSON of every measured error and a retrieval figure.
"""
import argparse

import torch

import artefacts
from cli import configure_seed, run, set_threads
from hopfield import CONFIGS, ENERGY_ITERS, ENERGY_STARTS, TOL, retrieval_demo, run_checks, shown


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seed", type=int, default=42, help="seed of every random draw")
    p.add_argument("--out_dir", default="results/q1", help="where hopfield.json and the figure go")
    args = p.parse_args()
    artefacts.check_folder(args.out_dir, "--out_dir")
    set_threads(1)
    configure_seed(args.seed)
    results = run_checks(args.seed)
    for r in results.values():
        print(f"{'PASS' if r['passed'] else 'FAIL'}  {r['claim']}: {shown(r)}")
    retrieval = retrieval_demo(torch.Generator().manual_seed(args.seed), f"{args.out_dir}/retrieval")
    for r in retrieval:
        print(f"retrieval, beta = {r['beta']:g}: distance to the stored digit "
              + ", ".join(f"{d:.3f} after {t}" for t, d in r["distance_to_stored"].items())
              + f"; largest attention weight {r['largest_softmax_weight']:.3f}")
    all_passed = all(r["passed"] for r in results.values())
    path = f"{args.out_dir}/hopfield.json"
    written = artefacts.save_result({"seed": args.seed, "configs": [dict(N=n, D=d, beta=b) for n, d, b in CONFIGS],
                                 "energy_starts": ENERGY_STARTS, "energy_iterations": ENERGY_ITERS,
                                 "tolerances": TOL, "checks": results, "retrieval": retrieval, "all_passed": all_passed},
                                path)
    print(f"{'wrote' if written else 'unchanged (the same results up to rounding):'} {path}; "
          f"figure {args.out_dir}/retrieval.pdf")
    return 0 if all_passed else 1


if __name__ == "__main__":
    run(main)
