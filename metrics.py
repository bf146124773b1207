"""Error rates shared by every program: CER, WER, WER@k, error rates by length, and bootstrap
confidence intervals over test items."""
import Levenshtein
import numpy as np

# One set of length bins for every table and figure: gold spellings (characters) or sources (phonemes).
LENGTH_BINS = ((1, 4), (5, 6), (7, 8), (9, 10), (11, None))


def cer_wer(preds, golds):
    """CER = total Levenshtein distance / total gold length; WER = fraction of words not exactly right."""
    dist = sum(Levenshtein.distance(p, g) for p, g in zip(preds, golds))
    cer = dist / sum(len(g) for g in golds)
    wer = sum(p != g for p, g in zip(preds, golds)) / len(golds)
    return cer, wer


def within_edits(preds, golds, edits=2):
    """How many wrong words are at most `edits` Levenshtein edits from their gold spelling."""
    return sum(p != g and Levenshtein.distance(p, g) <= edits for p, g in zip(preds, golds))


def wer_at_k(samples, golds):
    """Fraction of words for which none of the k predictions is right; samples: k lists of predictions."""
    return sum(all(s[i] != g for s in samples) for i, g in enumerate(golds)) / len(golds)


def bin_label(lo, hi):
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def by_length(preds, golds, lengths, bins=LENGTH_BINS):
    """Per bin of lengths (one per word: of the gold spelling or of the source): words, CER and WER."""
    rows = []
    for lo, hi in bins:
        idx = [i for i, n in enumerate(lengths) if n >= lo and (hi is None or n <= hi)]
        if idx:
            cer, wer = cer_wer([preds[i] for i in idx], [golds[i] for i in idx])
            rows.append({"lengths": bin_label(lo, hi), "words": len(idx), "cer": cer, "wer": wer})
    return rows


def bootstrap_ci(errors, sizes=None, n_resamples=2000, seed=0, level=0.95):
    """Percentile bootstrap over test items of an error rate sum(errors) / sum(sizes) (sizes: one per item,
    default 1): (low, high) at the given level, with a fixed seed."""
    errors = np.asarray(errors, dtype=float)
    sizes = np.ones_like(errors) if sizes is None else np.asarray(sizes, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(errors), size=(n_resamples, len(errors)))
    rates = errors[idx].sum(1) / sizes[idx].sum(1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(rates, tail)), float(np.percentile(rates, 100 - tail))


def intervals(preds, golds, seed=0):
    """95 % bootstrap intervals of CER and WER over the words: {"cer_ci": [lo, hi], "wer_ci": [lo, hi]}."""
    dist = [Levenshtein.distance(p, g) for p, g in zip(preds, golds)]
    return {"cer_ci": list(bootstrap_ci(dist, [len(g) for g in golds], seed=seed)),
            "wer_ci": list(bootstrap_ci([p != g for p, g in zip(preds, golds)], seed=seed))}


def wilson_ci(successes, n, z=1.959964):
    """95 % Wilson score interval of a proportion successes / n (order-free: from the counts alone)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return [centre - half, centre + half]
