#!/usr/bin/env python
"""Beyond the assignment: the strongest P2G model this data gives, chosen on the validation set.

Runs the study in study.py: steps on a base configuration (seed 42), the finalists over seeds, the model
and decoding chosen on validation, then the test set decoded for that choice. Checkpoints go to the
git-ignored runs folder; a finished run of the config asked for is reused, an interrupted one continues
from its last epoch.

    python strongest.py [--seeds 42 43 44] [--num_threads 1]
"""
import argparse

import study
from cli import in_range, run, set_threads


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="seeds of each finalist (default: 42 43 44)")
    p.add_argument("--num_threads", type=in_range(int, 1), default=1, help="torch CPU threads per run (default: 1)")
    p.add_argument("--data_dir", default="data", help="folder with train/valid/test.tsv (default: data)")
    p.add_argument("--out_dir", default="results/q3", help="where the record goes (default: results/q3)")
    p.add_argument("--runs_dir", default="runs/strongest", help="where the checkpoints go (default: runs/strongest)")
    p.add_argument("--assignment", default="results/q3/attn-test-greedy.json",
                   help="the assignment model's greedy test result, compared with (default: %(default)s)")
    return p.parse_args()


def main():
    args = parse_args()
    set_threads(args.num_threads)
    record = study.run(args.seeds, args.data_dir, args.out_dir, args.runs_dir, args.assignment, args.num_threads)
    c = record["choice"]
    print(f"chosen on validation: {c['candidate']} ({c['n_models']} models), beam {c['beam_size']}, length penalty "
          f"{c['length_penalty']:g}: val WER {c['val_wer']:.4f}; test CER {record['test_cer']:.4f}, WER "
          f"{record['test_wer']:.4f}; wrote {args.out_dir}/strongest.json")
    return 0


if __name__ == "__main__":
    run(main)
