#!/usr/bin/env python
"""Figures that compare Q3 runs: test CER by source length (greedy test JSONs), or validation CER per
epoch (train JSONs).

    python q3_compare.py lengths "no attention=results/q3/no-attn-test-greedy.json" \
        "attention=results/q3/attn-test-greedy.json" --out results/q3/cer_by_source_length
"""
import argparse

import diagnostics
from cli import run


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=["lengths", "curves"], help="which comparison")
    p.add_argument("runs", nargs="+", metavar="LABEL=JSON", help="e.g. 'no attention=results/q3/no-attn-test-greedy.json'")
    p.add_argument("--out", required=True, help="stem of the figure (and JSON) written")
    args = p.parse_args()
    args.runs_by_label = dict(r.split("=", 1) for r in args.runs if "=" in r)
    if len(args.runs_by_label) != len(args.runs):
        p.error("each run is LABEL=JSON")
    return args


def main():
    args = parse_args()
    if args.figure == "curves":
        diagnostics.compare_curves(args.runs_by_label, args.out)
        print(f"figure {args.out}.pdf")
        return 0
    table = diagnostics.compare_by_source_length(args.runs_by_label, args.out)
    for label, rows in table.items():
        print(f"{label}: " + ", ".join(f"{r['lengths']}: {r['cer']:.3f} ({r['words']})" for r in rows))
    print(f"figure {args.out}.pdf; table {args.out}.json")
    return 0


if __name__ == "__main__":
    run(main)
