"""Q3 diagnostics: what the model gets wrong (error categories, CER by length, search against model
errors) and where it looks (attention heatmaps); figures that compare runs.

    python -m beyond.diagnostics errors results/q3/attn-test-greedy.json \
        --out results/q3/attn-errors
    python -m beyond.diagnostics lengths "no attention=results/q3/no-attn-test-greedy.json" \
        "attention=results/q3/attn-test-greedy.json" --out results/q3/cer_by_source_length
    python -m beyond.diagnostics curves "no attention=results/q3/no-attn-train.json" \
        "attention=results/q3/attn-train.json" --out results/q3/val_cer_curves
"""
import argparse
from collections import Counter, defaultdict
from types import SimpleNamespace

import Levenshtein
import torch

from beyond import load_json, q3
from beyond.decoding import gold_log_probs
from data import EOS_IDX as EOS, SOS_IDX as SOS
from utils import plot_curves, pyplot, run, save_figure, save_json

VOWELS = set("aeiouy")
LENGTH_BINS = ((1, 4), (5, 6), (7, 8), (9, 10), (11, None))  # one set of bins for every table


def by_length(preds, golds, lengths, bins=LENGTH_BINS):
    """Per bin of lengths (one per word: of the gold spelling or of the source): words, CER, WER."""
    rows = []
    for lo, hi in bins:
        idx = [i for i, n in enumerate(lengths) if n >= lo and (hi is None or n <= hi)]
        if idx:
            gold = SimpleNamespace(pairs=[(None, golds[i]) for i in idx])  # what evaluate reads
            cer, wer = q3.evaluate([preds[i] for i in idx], gold)
            rows.append({"lengths": f"{lo}+" if hi is None else f"{lo}-{hi}", "words": len(idx),
                         "cer": cer, "wer": wer})
    return rows


def within_edits(preds, golds, edits=2):
    """How many wrong words are at most `edits` Levenshtein edits from their gold spelling."""
    return sum(p != g and Levenshtein.distance(p, g) <= edits for p, g in zip(preds, golds))


def error_category(pred, gold):
    """A coarse label for one wrong spelling, from its Levenshtein edit operations."""
    squeeze = lambda w: "".join(ch for i, ch in enumerate(w) if i == 0 or ch != w[i - 1])
    if pred.lower() == gold.lower():
        return "capitalisation"
    if squeeze(pred) == squeeze(gold):
        return "double vs single letter"
    ops = Levenshtein.editops(pred, gold)
    if all(op == "insert" for op, _, _ in ops):
        return "letters left out (e.g. silent)"
    if all(op == "delete" for op, _, _ in ops):
        return "letters added"
    letters = ({pred[i] for op, i, _ in ops if op != "insert"}
               | {gold[j] for op, _, j in ops if op != "delete"})
    if letters <= VOWELS:
        return "vowel spelling only"
    if len(ops) == 1:
        return "one consonant substituted"
    return "two edits" if len(ops) == 2 else "three or more edits"


def error_analysis(examples):
    """CER and WER by gold length, the most frequent substitutions, and error categories with
    examples. examples: dicts with phonemes, gold and pred."""
    subs, cats, cat_examples = Counter(), Counter(), defaultdict(list)
    for ex in examples:
        p, g = ex["pred"], ex["gold"]
        for op, i, j in Levenshtein.editops(p, g):
            if op == "replace":
                subs[(g[j], p[i])] += 1  # gold letter written as predicted letter
        if p != g:
            cat = error_category(p, g)
            cats[cat] += 1
            if len(cat_examples[cat]) < 3:
                cat_examples[cat].append({"phonemes": ex["phonemes"], "gold": g, "pred": p})
    preds, golds = [ex["pred"] for ex in examples], [ex["gold"] for ex in examples]
    n_wrong = sum(cats.values())
    return {"by_length": by_length(preds, golds, [len(g) for g in golds]), "n_wrong": n_wrong,
            "within_two_edits": within_edits(preds, golds),
            "top_substitutions": [{"gold": g, "pred": p, "count": v}
                                  for (g, p), v in subs.most_common(12)],
            "categories": [{"category": c, "count": n, "share": n / n_wrong,
                            "examples": cat_examples[c]}
                           for c, n in cats.most_common()]}


def search_errors(model, dataset, preds, golds, best_scores, batch_size, length_penalty=1.0):
    """Of the wrong words, how many are search errors: the model scores the gold spelling above what
    the search returned, so a better search could fix them; the rest are model errors."""
    gold_lp, gold_len = gold_log_probs(model, dataset, batch_size)
    gold_score = gold_lp / gold_len.float() ** length_penalty
    wrong = [i for i, (p, g) in enumerate(zip(preds, golds)) if p != g]
    n_search = sum(gold_score[i].item() > best_scores[i] for i in wrong)
    return {"n_wrong": len(wrong), "search_errors": n_search, "model_errors": len(wrong) - n_search}


@torch.no_grad()
def plot_attention(model, dataset, src_vocab, tgt_vocab, n, max_len, stem, seed=0):
    """Attention weights (output characters x source phonemes) of the greedy output for n test
    words; writes stem.pdf/.png and stem.json (the weights and their row sums)."""
    assert model.decoder.attn is not None, "plot_attention needs a model with attention"
    device = next(model.parameters()).device
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    src, src_lengths, _, _ = (t.to(device) for t in dataset.batch(idx))
    pred = q3.decode_batch(model, src, src_lengths, max_len)  # (n, T)
    tgt = torch.cat([torch.full_like(pred[:, :1], SOS), pred], dim=1)  # its last token is dropped
    enc, state = model.encoder(src, src_lengths)
    _, _, weights = model.decoder(tgt, state, enc, src_lengths, return_weights=True)  # (n, T, S)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols  # printed at full width
    fig, axes = pyplot().subplots(rows, cols, figsize=(2.2 * cols, 2.0 * rows), squeeze=False)
    record, image = [], None
    for a, ax in enumerate(axes.flat):
        ax.grid(False)
        if a >= n:
            ax.axis("off")
            continue
        S = int(src_lengths[a])
        out = pred[a].tolist()
        T = out.index(EOS) + 1 if EOS in out else len(out)
        w = weights[a, :T, :S].cpu()
        src_sym = [src_vocab.index2word[i] for i in src[a, :S].tolist()]
        tgt_sym = [tgt_vocab.index2word[i] if i != EOS else "</s>" for i in out[:T]]
        image = ax.imshow(w.numpy(), cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(S), src_sym)
        ax.set_yticks(range(T), tgt_sym)
        if a // cols == rows - 1 or a + cols >= n:  # the bottom panel of its column
            ax.set_xlabel("source phoneme")
        if a % cols == 0:
            ax.set_ylabel("output character")
        word, gold = "".join(tgt_vocab.decode(out)), dataset.pairs[int(idx[a])][1]
        ax.set_title(word if word == gold else f"{word} (gold: {gold})")
        record.append({"phonemes": src_sym, "pred": tgt_sym, "gold": gold,
                       "weights": [[round(v, 4) for v in r] for r in w.tolist()],
                       "row_sums": [round(v, 6) for v in w.sum(1).tolist()]})
    fig.tight_layout()
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="attention weight")
    save_figure(fig, stem, png=True)
    return record


def cer_by_source_length(examples):
    """Per bin of source lengths (phonemes, LENGTH_BINS): the number of words, CER and WER."""
    return by_length([ex["pred"] for ex in examples], [ex["gold"] for ex in examples],
                     [len(ex["phonemes"].split()) for ex in examples])


def plot_bins(table, bin_key, value, xlabel, ylabel, stem, ylim=None, legend_loc="best"):
    """Grouped bars: table {label: rows}, each row a bin with bin_key (its name), words and value;
    the x labels give the number of words in each bin (taken from the first label's rows)."""
    first = next(iter(table.values()))
    fig, ax = pyplot().subplots(figsize=(3.6, 2.4))
    width = 0.8 / len(table)
    for k, (label, rows) in enumerate(table.items()):
        ax.bar([i + (k - (len(table) - 1) / 2) * width for i in range(len(rows))],
               [r[value] for r in rows], width, label=label)
    ax.set_xticks(range(len(first)),  # ranges with an en dash
                  [f"{r[bin_key].replace('-', '–')}\n({r['words']})" for r in first])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(loc=legend_loc, ncols=len(table) if legend_loc == "upper left" else 1)
    save_figure(fig, stem)


def compare_by_source_length(runs, stem):
    """Bars of test CER by source length for several greedy test results {label: result JSON path},
    with the number of words in each bin; writes stem.pdf and stem.json."""
    table = {label: cer_by_source_length(load_json(path, "examples")["examples"])
             for label, path in runs.items()}
    plot_bins(table, "lengths", "cer", "Length of the source in phonemes (words in the bin)",
              "Test CER", stem)
    save_json({"runs": runs, "by_source_length": table}, f"{stem}.json")
    return table


def compare_curves(runs, stem):
    """Validation CER per epoch of several training runs {label: train JSON path}, on one pair of
    axes."""
    histories = {label: load_json(path, "history")["history"] for label, path in runs.items()}
    first = next(iter(histories.values()))
    plot_curves(first["epoch"], {label: h["val_cer"] for label, h in histories.items()},
                "Validation CER", stem)
    return histories


def error_profile(preds, golds, words):
    """What the wrong words are: only the capitalisation differs; another real English word (ISLEX,
    e.g. a homophone); a proper noun (capitalised gold); a gold spelling with letters outside ASCII
    (loanwords)."""
    wrong = [(p, g) for p, g in zip(preds, golds) if p != g]
    n = max(1, len(wrong))
    real = [(p, g) for p, g in wrong if p.lower() != g.lower() and p.lower() in words]
    return {"n_wrong": len(wrong),
            "capitalisation_share": sum(p.lower() == g.lower() for p, g in wrong) / n,
            "real_word_share": len(real) / n,
            "proper_noun_share": sum(g[:1].isupper() for _, g in wrong) / n,
            "non_ascii_share": sum(not g.isascii() for _, g in wrong) / n,
            "within_two_edits": within_edits(preds, golds),
            "examples_real_word": [{"gold": g, "pred": p} for p, g in real][:8]}


def compare_with_assignment(preds, golds, assignment_preds, words):
    """Error profiles, WER by gold length, and the words fixed and broken against the assignment's
    model."""
    lengths, triples = [len(g) for g in golds], list(zip(assignment_preds, preds, golds))
    return {"errors": {"assignment": error_profile(assignment_preds, golds, words),
                       "strongest": error_profile(preds, golds, words)},
            "by_length": {"assignment": by_length(assignment_preds, golds, lengths),
                          "strongest": by_length(preds, golds, lengths)},
            "fixed_vs_assignment": sum(b != g and t == g for b, t, g in triples),
            "broken_vs_assignment": sum(b == g and t != g for b, t, g in triples),
            "examples": [{"gold": g, "pred": t, "assignment_pred": b} for b, t, g in triples]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=["errors", "lengths", "curves"],
                   help="the error analysis of one greedy test record, or a comparison of runs")
    p.add_argument("runs", nargs="+", metavar="[LABEL=]JSON", help="test or train records")
    p.add_argument("--out", required=True, help="stem of the JSON (and figure) written")
    args = p.parse_args(argv)
    runs = dict(r.split("=", 1) if "=" in r else (r, r) for r in args.runs)
    if args.figure == "errors":
        analysis = error_analysis(load_json(next(iter(runs.values())), "examples")["examples"])
        print(f"{analysis['n_wrong']} wrong words; wrote {save_json(analysis, args.out + '.json')}")
    elif args.figure == "curves":
        compare_curves(runs, args.out)
        print(f"figure {args.out}.pdf")
    else:
        for label, rows in compare_by_source_length(runs, args.out).items():
            print(f"{label}: "
                  + ", ".join(f"{r['lengths']}: {r['cer']:.3f} ({r['words']})" for r in rows))
        print(f"figure {args.out}.pdf; table {args.out}.json")
    return 0


if __name__ == "__main__":
    run(main)
