"""Paired comparisons of two decodings or models on the same test words, from their stored
predictions: the difference in CER and in WER with a paired bootstrap 95 % interval (the words
resampled, both systems with the same draw), and for WER the words only one of them gets wrong
with McNemar's exact test.

    python -m beyond.compare [--results results/q3] [--out runs/q3/paired.json]
"""
import argparse
import math
import os

import Levenshtein
import numpy as np

from beyond import load_json, q3
from utils import InputError, run, save_json

RESAMPLES, SEED = 10_000, 0  # the paired bootstrap's draws

# (name, A, B): A - B, each a test record of results/q3 whose examples hold gold and pred; the
# ensemble's record (strongest) holds the assignment model's prediction beside its own
PAIRS = [
    ("attention - no attention, seed 42", "attn-test-greedy", "no-attn-test-greedy"),
    ("attention - no attention, seed 43", "attn-seed43-test-greedy", "no-attn-seed43-test-greedy"),
    ("attention - no attention, seed 44", "attn-seed44-test-greedy", "no-attn-seed44-test-greedy"),
    ("top-p 0.8 sample - greedy", "attn-test-topp0.8", "attn-test-greedy"),
    ("beam 3 - greedy", "attn-test-beam3", "attn-test-greedy"),
    ("beam 5 - greedy", "attn-test-beam5", "attn-test-greedy"),
    ("beam 10 - greedy", "attn-test-beam10", "attn-test-greedy"),
    ("dropout after - before attention, seed 42", "attn-dropout_output-seed42-test-greedy",
     "attn-test-greedy"),
    ("dropout after - before attention, seed 43", "attn-dropout_output-seed43-test-greedy",
     "attn-seed43-test-greedy"),
    ("dropout after - before attention, seed 44", "attn-dropout_output-seed44-test-greedy",
     "attn-seed44-test-greedy"),
    ("ensemble - assignment model", "strongest", "strongest:assignment_pred"),
]


def paired_bootstrap(errors_a, errors_b, sizes, n_resamples=RESAMPLES, seed=SEED):
    """sum(errors_a) / sum(sizes) - sum(errors_b) / sum(sizes) over the same items, and the 95 %
    percentile interval of that difference when the items are resampled with replacement: the
    bootstrap of hw2-q3.py on the item-by-item differences, whose sizes are shared."""
    diff = np.subtract(errors_a, errors_b, dtype=float)
    return {"diff": float(diff.sum() / np.sum(sizes)),
            "ci": q3.bootstrap_ci(diff, sizes, n_resamples=n_resamples, seed=seed)}


def mcnemar_exact(only_a, only_b):
    """Two-sided exact McNemar p-value: the discordant words split as Binomial(n, 1/2)."""
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


def compare(preds_a, preds_b, golds):
    """CER and WER differences A - B with paired intervals; the words only A, or only B, gets
    wrong."""
    if not len(preds_a) == len(preds_b) == len(golds):
        raise ValueError("the two systems must spell the same words")
    dist = lambda preds: [Levenshtein.distance(p, g) for p, g in zip(preds, golds)]
    wrong_a = [p != g for p, g in zip(preds_a, golds)]
    wrong_b = [p != g for p, g in zip(preds_b, golds)]
    only_a = sum(a and not b for a, b in zip(wrong_a, wrong_b))
    only_b = sum(b and not a for a, b in zip(wrong_a, wrong_b))
    return {"n_words": len(golds),
            "cer": paired_bootstrap(dist(preds_a), dist(preds_b), [len(g) for g in golds]),
            "wer": paired_bootstrap(wrong_a, wrong_b, [1] * len(golds)),
            "only_a_wrong": only_a, "only_b_wrong": only_b,
            "mcnemar_p": mcnemar_exact(only_a, only_b)}


def predictions(folder, name):
    """(golds, preds) of a stored record; "record:field" reads another prediction field."""
    stem, _, field = name.partition(":")
    path = os.path.join(folder, f"{stem}.json")
    examples = load_json(path).get("examples")
    if not examples or any("gold" not in e or (field or "pred") not in e for e in examples):
        raise InputError(f"{path}: no examples with gold and {field or 'pred'}")
    return [e["gold"] for e in examples], [e[field or "pred"] for e in examples]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results/q3", help="folder of the stored test records")
    p.add_argument("--out", default="runs/q3/paired.json", help="the JSON written")
    args = p.parse_args(argv)
    rows = []
    for name, a, b in PAIRS:
        (golds, preds_a), (golds_b, preds_b) = (predictions(args.results, r) for r in (a, b))
        if golds != golds_b:
            raise InputError(f"{a} and {b}: not the same test words")
        row = {"comparison": name, "a": a, "b": b, **compare(preds_a, preds_b, golds)}
        rows.append(row)
        print(f"{name}: CER {row['cer']['diff']:+.4f} [{row['cer']['ci'][0]:+.4f}, "
              f"{row['cer']['ci'][1]:+.4f}], WER {row['wer']['diff']:+.4f} "
              f"[{row['wer']['ci'][0]:+.4f}, {row['wer']['ci'][1]:+.4f}], "
              f"discordant {row['only_a_wrong']}/{row['only_b_wrong']}, "
              f"McNemar p {row['mcnemar_p']:.2g}")
    print("wrote", save_json({"resamples": RESAMPLES, "seed": SEED, "rows": rows}, args.out))
    return 0


if __name__ == "__main__":
    run(main)
