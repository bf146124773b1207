#!/usr/bin/env python
"""Beyond the assignment: how far can this P2G data go?

Round 2 of the study (round 1 is kept as it was written, results/q3/strongest-round1*.json): starting
from round 1's winner, tries further steps on seed 42 on the validation set and keeps those that help;
trains the finalists over several seeds with hw2-q3.py (a run whose train JSON and checkpoint exist
is reused); chooses the model (a single one, or the ensemble of a finalist's seeds, of both finalists'
seeds, or of every round-2 model) and the decoding (beam size, length penalty) on the validation set;
reads the test set once for that choice; and writes results/q3/strongest.json,
results/q3/strongest-ablation.json (both rounds) and a figure comparing errors by length.

    python strongest.py [--seeds 42 43 44] [--num_threads 1]
"""
import argparse
import os
import statistics
import time

import Levenshtein
import torch

import checkpoints
import data as p2g
import decoding
import diagnostics
import utils

q3 = utils.load_script("hw2-q3")

# Round 1 (strongest.py at commit 2108237) tried cosine schedule, hidden 256, a 2-layer encoder and label
# smoothing on seed 42, trained two finalists over seeds 42-44, chose on validation and read the test set
# once: results/q3/strongest-round1*.json, kept as they were written. Its winner is round 2's base.
ROUND1, ROUND1_COMMIT = "strongest-round1", "2108237"
BASE = ["--preset", "strong", "--label_smoothing", "0"]  # round 1's winner: --preset strong without label smoothing
# Round 2: steps tried one at a time on top of the base (seed 42); a step is kept when it lowers the base's
# validation WER (ties: CER). Kept steps that set different flags are then tried together.
STEPS = [("dropout 0.4", "d04", ["--dropout", "0.4"]),
         ("dropout 0.2", "d02", ["--dropout", "0.2"]),
         ("input feeding", "feed", ["--input_feed"]),
         ("3 encoder layers", "l3", ["--enc_layers", "3"]),
         ("40 epochs", "e40", ["--n_epochs", "40"])]
BEAMS, PENALTIES = (1, 5, 10), (0.5, 1.0, 1.5)
OTEANN_WER = 1 - 0.364  # Marjou (2020), arXiv 1912.13321: 36.4 % of English words right from IPA


def run_name(tags, seed):
    """Checkpoint stem of the base plus the steps tagged `tags`, for one seed."""
    return "strong-" + "-".join(tags or ("base",)) + f"-seed{seed}"


def step_flags(tags):
    return BASE + [f for _, tag, flags in STEPS if tag in tags for f in flags]


def train_if_missing(name, flags, args):
    """Train the run <name> unless both its train JSON and its checkpoint exist; return its train JSON."""
    path = os.path.join(args.out_dir, f"{name}-train.json")
    if not (os.path.exists(path) and os.path.exists(f"{name}.pt")):
        q3.main(["train", "--checkpoint_name", f"{name}.pt", "--out_dir", args.out_dir, "--quiet",
                 "--num_threads", str(args.num_threads), "--data_dir", args.data_dir] + flags)
    return utils.load_json(path)


def evaluate(model, dataset, golds, tgt_vocab, beam, penalty):
    """CER, WER and predictions of one model or ensemble on dataset, with beam search (beam 1 = greedy)."""
    nbest = decoding.beam_search_dataset(model, dataset, tgt_vocab, 500, 50, beam, penalty)
    preds = [h[0][0] for h in nbest]
    cer, wer = q3.cer_wer(preds, golds)
    return {"cer": cer, "wer": wer}, preds


def lexicon_rerank(nbest, words):
    """Per word, the best hypothesis that is a real English word (ISLEX, case ignored), else the best one."""
    return [next((w for w, _, _ in hyps if w.lower() in words), hyps[0][0]) for hyps in nbest]


def tune_decoding(models, dataset, golds, tgt_vocab):
    """Validation CER/WER for every beam size and length penalty; the best by WER (ties: CER)."""
    grid = []
    for beam in BEAMS:
        for penalty in (PENALTIES if beam > 1 else (1.0,)):
            scores, _ = evaluate(models, dataset, golds, tgt_vocab, beam, penalty)
            grid.append({"beam_size": beam, "length_penalty": penalty, "val_cer": scores["cer"], "val_wer": scores["wer"]})
    return grid, min(grid, key=lambda r: (r["val_wer"], r["val_cer"]))


def error_profile(preds, golds, words):
    """What the wrong words are: only the capitalisation differs; another real English word (ISLEX, e.g. a
    homophone); a proper noun (capitalised gold); a gold spelling with letters outside ASCII (loanwords)."""
    wrong = [(p, g) for p, g in zip(preds, golds) if p != g]
    n = max(1, len(wrong))
    case = [(p, g) for p, g in wrong if p.lower() == g.lower()]
    real = [(p, g) for p, g in wrong if p.lower() != g.lower() and p.lower() in words]
    return {
        "n_wrong": len(wrong),
        "capitalisation_share": len(case) / n,
        "real_word_share": len(real) / n,
        "proper_noun_share": sum(g[:1].isupper() for _, g in wrong) / n,
        "non_ascii_share": sum(not g.isascii() for _, g in wrong) / n,
        "examples_real_word": [{"gold": g, "pred": p} for p, g in real][:8],
    }


def wer_by_length(preds, golds, bins=((1, 4), (5, 6), (7, 8), (9, 10), (11, 99))):
    out = []
    for lo, hi in bins:
        idx = [i for i, g in enumerate(golds) if lo <= len(g) <= hi]
        if not idx:
            continue
        out.append({"lengths": f"{lo}-{hi}" if hi < 99 else f"{lo}+", "words": len(idx),
                    "wer": sum(preds[i] != golds[i] for i in idx) / len(idx),
                    "cer": sum(Levenshtein.distance(preds[i], golds[i]) for i in idx) / sum(len(golds[i]) for i in idx)})
    return out


def load_models(names, cache):
    """The models of these checkpoint stems, each file read once (cache: stem -> model)."""
    for n in names:
        if n not in cache:
            cache[n] = checkpoints.load_or_die(f"{n}.pt", torch.device("cpu"))[0]
    return [cache[n] for n in names]


def round1_record(out_dir):
    """Round 1's summary and ablation rows as written then, or (None, []) when absent."""
    path = os.path.join(out_dir, f"{ROUND1}.json")
    if not os.path.exists(path):
        return None, []
    return utils.load_json(path), utils.load_json(os.path.join(out_dir, f"{ROUND1}-ablation.json"))["rows"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="seeds of each finalist")
    p.add_argument("--num_threads", type=int, default=1, help="torch CPU threads, for training runs and decoding")
    p.add_argument("--data_dir", default="data", help="folder with train/valid/test.tsv")
    p.add_argument("--out_dir", default="results/q3", help="where the runs and the summary go")
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    try:
        corpus, _ = p2g.load_corpus(args.data_dir, True)
    except p2g.DataError as e:
        utils.die(str(e))
    round1, round1_rows = round1_record(args.out_dir)
    ablation = [dict(r, round=1) for r in round1_rows]

    # Round 2 on seed 42: each step on top of the base, kept when it lowers the validation WER (ties: CER);
    # then the kept steps together (the best of those that set the same flag).
    seed42 = []  # (label, tags, train JSON) of every seed-42 run of round 2

    def seed42_row(label, tags):
        run = train_if_missing(run_name(tags, 42), step_flags(tags) + ["--seed", "42"], args)
        seed42.append((label, tags, run))
        ablation.append({"round": 2, "route": label, "run": run_name(tags, 42), "config": run["config"],
                         "train_minutes": round(run["wall_seconds"] / 60, 1),
                         "val_cer": run["best_val_cer"], "val_wer": run["best_val_wer"]})
        return run["best_val_wer"], run["best_val_cer"]

    base_score = seed42_row("base: round 1's winner (--preset strong, no label smoothing) retrained, greedy", ())
    tried = [(seed42_row(f"+ {label}, greedy", (tag,)), label, tag, flags) for label, tag, flags in STEPS]
    for (score, *_), row in zip(tried, ablation[-len(STEPS):]):
        row["kept"] = score < base_score
    configs = [(base_score, ())] + [(score, (tag,)) for score, _, tag, _ in tried if score < base_score]
    by_flag = {}
    for score, label, tag, flags in sorted(t for t in tried if t[0] < base_score):
        by_flag.setdefault(flags[0], tag)
    if len(by_flag) > 1:
        tags = tuple(tag for _, tag, _ in STEPS if tag in by_flag.values())
        labels = " + ".join(label for label, tag, _ in STEPS if tag in tags)
        configs.append((seed42_row(f"+ {labels} together, greedy", tags), tags))
    best_tags = min(configs)[1]

    # Finalists over the seeds: the base and, when a step was kept, round 2's configuration; candidates are
    # each finalist's seed-42 model, the ensemble of its seeds, that of both finalists' seeds, and that of every
    # round-2 model (the finalists' seeds and the seed-42 step runs).
    finalists = [("round 1's configuration", ())] + ([("round 2's configuration", best_tags)] if best_tags else [])
    members = {}  # label -> [(seed, checkpoint stem, train JSON)]
    for label, tags in finalists:
        members[label] = [(s, run_name(tags, s), train_if_missing(run_name(tags, s), step_flags(tags) + ["--seed", str(s)],
                                                                  args)) for s in args.seeds]
    _, src_vocab, tgt_vocab, _ = checkpoints.load_or_die(f"{run_name((), args.seeds[0])}.pt", torch.device("cpu"))
    sets = {s: p2g.Seq2SeqDataset(corpus[s], src_vocab, tgt_vocab) for s in ("valid", "test")}
    golds = {s: [w for _, w in corpus[s]] for s in ("valid", "test")}
    for row in ablation:
        if "config" in row and "params" not in row:
            model = checkpoints.model_from_config(row["config"], len(src_vocab), len(tgt_vocab))
            row["params"] = sum(t.numel() for t in model.parameters())

    candidates = []  # (label, [(finalist, seed, name, train JSON)])
    for label, _ in finalists:
        runs = [(label,) + m for m in members[label]]
        candidates += [(f"{label}: seed {args.seeds[0]}", runs[:1]),
                       (f"{label}: ensemble of {len(runs)} seeds (mean log-probabilities)", runs)]
    union = [(label,) + m for label, _ in finalists for m in members[label]]
    if len(finalists) > 1:
        candidates.append((f"both finalists: ensemble of {len(union)} models (mean log-probabilities)", union))
    every = {name: (label, seed, name, run) for label, seed, name, run in union}
    for label, tags, run in seed42:
        every.setdefault(run_name(tags, 42), (label.split(",")[0], 42, run_name(tags, 42), run))
    if len(every) > len(union):
        candidates.append((f"every round-2 model (finalists' seeds and seed-42 steps): ensemble of {len(every)} "
                           "(mean log-probabilities)", list(every.values())))
    options, grids, loaded = [], {}, {}
    for label, runs in candidates:
        models = load_models([name for _, _, name, _ in runs], loaded)
        grid, best = tune_decoding(models if len(models) > 1 else models[0], sets["valid"], golds["valid"], tgt_vocab)
        grids[label] = grid
        ablation.append({"round": 2, "route": f"{label}, beam {best['beam_size']}, length penalty "
                                              f"{best['length_penalty']:g} (chosen on validation)",
                         "run": "+".join(name for _, _, name, _ in runs), "val_cer": best["val_cer"],
                         "val_wer": best["val_wer"]})
        options.append({"label": label, "runs": runs, "models": models, "best": best, "row": ablation[-1]})
    option = min(options, key=lambda o: (o["best"]["val_wer"], o["best"]["val_cer"]))
    choice, runs, models = option["best"], option["runs"], option["models"]
    if round1 is not None and (choice["val_wer"], choice["val_cer"]) >= (round1["val_wer"], round1["val_cer"]):
        utils.save_json({"selected_on": "valid", "rows": ablation}, os.path.join(args.out_dir, "strongest-ablation.json"))
        utils.die(f"round 2's best ({option['label']}: validation WER {choice['val_wer']:.4f}) does not beat round 1's "
                  f"choice ({round1['val_wer']:.4f}) on validation: the test set is not read again; round 1's record stands")
    chosen = models if len(models) > 1 else models[0]
    n_params = max(sum(t.numel() for t in m.parameters()) for m in models)

    # Beyond the model: rerank the n-best with an external word list (ISLEX spellings, no pronunciations).
    words = p2g.islex_words()
    lex_grid = []
    for beam in (5, 10):
        nbest = decoding.beam_search_dataset(models, sets["valid"], tgt_vocab, 500, 50, beam, choice["length_penalty"])
        cer, wer = q3.cer_wer(lexicon_rerank(nbest, words), golds["valid"])
        lex_grid.append({"beam_size": beam, "length_penalty": choice["length_penalty"], "val_cer": cer, "val_wer": wer})
    best_lex = min(lex_grid, key=lambda r: (r["val_wer"], r["val_cer"]))

    # The choice is made on validation; the test set is read once, below, for it.
    t0 = time.time()
    test_scores, test_preds = evaluate(chosen, sets["test"], golds["test"], tgt_vocab, choice["beam_size"],
                                       choice["length_penalty"])
    test_seconds = time.time() - t0
    option["row"].update(test_cer=test_scores["cer"], test_wer=test_scores["wer"], chosen=True)
    nbest = decoding.beam_search_dataset(models, sets["test"], tgt_vocab, 500, 50, best_lex["beam_size"],
                                         best_lex["length_penalty"])
    lex_test_cer, lex_test_wer = q3.cer_wer(lexicon_rerank(nbest, words), golds["test"])
    ablation.append({"round": 2, "route": f"+ n-best reranked with an English word list (ISLEX spellings), beam "
                                          f"{best_lex['beam_size']} (external knowledge: not comparable with OTEANN)",
                     "run": option["row"]["run"], "val_cer": best_lex["val_cer"], "val_wer": best_lex["val_wer"],
                     "test_cer": lex_test_cer, "test_wer": lex_test_wer, "external_word_list": True})
    seeds = []
    for (finalist, s, name, run), model in zip(runs, models):
        val, _ = evaluate(model, sets["valid"], golds["valid"], tgt_vocab, choice["beam_size"], choice["length_penalty"])
        test, _ = evaluate(model, sets["test"], golds["test"], tgt_vocab, choice["beam_size"], choice["length_penalty"])
        seeds.append({"seed": s, "finalist": finalist, "checkpoint": f"{name}.pt", "val_cer": val["cer"],
                      "val_wer": val["wer"], "test_cer": test["cer"], "test_wer": test["wer"],
                      "train_minutes": round(run["wall_seconds"] / 60, 1), "best_epoch": run["best_epoch"]})

    assignment = utils.load_json(os.path.join(args.out_dir, "attn-test-greedy.json"))
    base_preds = [ex["pred"] for ex in assignment["examples"]]
    assert [ex["gold"] for ex in assignment["examples"]] == golds["test"], "attn-test-greedy.json: other test set"
    profile = {"assignment": error_profile(base_preds, golds["test"], words),
               "strongest": error_profile(test_preds, golds["test"], words)}
    by_length = {"assignment": wer_by_length(base_preds, golds["test"]),
                 "strongest": wer_by_length(test_preds, golds["test"])}
    stem = os.path.join(args.out_dir, "strongest")
    diagnostics.plot_bins({"assignment model, greedy": by_length["assignment"],
                           "strongest" + (" ensemble" if len(models) > 1 else ""): by_length["strongest"]},
                          "lengths", "wer", "Length of the gold spelling (characters)", "Test WER",
                          f"{stem}-wer_by_length", ylim=(0, 1), legend_loc="upper left")
    fixed = sum(b != g and t == g for b, t, g in zip(base_preds, test_preds, golds["test"]))
    broken = sum(b == g and t != g for b, t, g in zip(base_preds, test_preds, golds["test"]))

    minutes = [r["train_minutes"] for r in seeds]
    earlier = [] if round1 is None else [{
        "round": 1, "commit": ROUND1_COMMIT, "record": f"{ROUND1}.json", "headline": round1["headline"],
        "val_wer": round1["val_wer"], "val_cer": round1["val_cer"],
        "test_wer": round1["test_wer"], "test_cer": round1["test_cer"]}]
    summary = {
        "test_wer": test_scores["wer"], "test_cer": test_scores["cer"],
        "headline": option["label"] + f", beam {choice['beam_size']}, length penalty {choice['length_penalty']:g}",
        "round": 2, "earlier_test_reads": earlier,
        "round2_steps": [label for label, tag, _ in STEPS if tag in best_tags],
        "ensemble": len(models) > 1, "n_models": len(models), "beam_size": choice["beam_size"],
        "length_penalty": choice["length_penalty"], "val_wer": choice["val_wer"], "val_cer": choice["val_cer"],
        "selected_on": "valid", "seeds": seeds,
        "seed_mean_test_wer": statistics.mean(r["test_wer"] for r in seeds),
        "seed_mean_test_cer": statistics.mean(r["test_cer"] for r in seeds),
        "configs": {label: members[label][0][2]["config"] for label, _ in finalists
                    if any(r[0] == label for r in runs)},
        "params": n_params,
        "command": "python strongest.py --seeds " + " ".join(map(str, args.seeds)) + f" --num_threads {args.num_threads}",
        "train_minutes": max(minutes), "train_minutes_per_seed": minutes,
        "train_threads": runs[0][3]["num_threads"], "test_decode_seconds": round(test_seconds, 2),
        "finalists": {label: [{"seed": seed, "run": name, "val_cer": run["best_val_cer"], "val_wer": run["best_val_wer"],
                               "train_minutes": round(run["wall_seconds"] / 60, 1)} for seed, name, run in members[label]]
                      for label, _ in finalists},
        "decoding_grid": grids,
        "lexicon_rerank": {"grid": lex_grid, "test_cer": lex_test_cer, "test_wer": lex_test_wer,
                           "note": "n-best of the chosen model(s) reranked with the ISLEX word list; not the headline"},
        "errors": profile, "by_length": by_length, "fixed_vs_assignment": fixed, "broken_vs_assignment": broken,
        "oteann_wer": OTEANN_WER, "examples": [{"gold": g, "pred": t, "assignment_pred": b}
                                           for b, t, g in zip(base_preds, test_preds, golds["test"])],
    }
    utils.save_json(summary, f"{stem}.json")
    utils.save_json({"selected_on": "valid", "rows": ablation}, f"{stem}-ablation.json")
    for row in ablation:
        test = f" | test CER {row['test_cer']:.4f} WER {row['test_wer']:.4f}" if "test_wer" in row else ""
        print(f"round {row['round']}: {row['route']:<100} val CER {row['val_cer']:.4f} WER {row['val_wer']:.4f}{test}")
    print(f"strongest ({summary['headline']}): test CER {summary['test_cer']:.4f}, WER {summary['test_wer']:.4f}; "
          "per model test WER " + ", ".join(f"{r['test_wer']:.3f}" for r in seeds) + f"; wrote {stem}.json")


if __name__ == "__main__":
    main()
