"""The strongest-model study: how far can this P2G data go? About 160 minutes on one thread.

    python -m beyond.study [--seeds 42 43 44] [--num_threads 1] [--out_dir runs/q3]

Train a base configuration and each step added to it alone (seed 42), keep the steps that lower the
validation WER (ties: CER), try the kept steps that change different fields together; train the
finalists (the base and the best configuration) over seeds; choose the model (single or ensemble)
and its decoding on validation; then decode the test set for that choice, for each member alone
(reported, never chosen upon) and for the reranking of its n-best with a word list (outside
knowledge, reported apart)."""
import argparse
import dataclasses
import os
import statistics
import time

import torch

from beyond import decoding, diagnostics, load_json, q3
from beyond.train import EXTRAS, load_checkpoint, options
from data import SPLITS, Seq2SeqDataset, islex_entries
from utils import InputError, in_range, run, save_json, set_threads


def base_config(threads=1):
    """The study's base: the assignment's model with attention, hidden size 256, two encoder layers,
    a cosine schedule, 30 epochs, the checkpoint chosen on validation WER."""
    args = q3.parse_args(["train", "--use_attn", "--hidden_size", "256", "--n_epochs", "30",
                          "--num_threads", str(threads)])
    return q3.config_of(args, **{k: d for k, (d, _) in EXTRAS.items()},
                        enc_layers=2, lr_schedule="cosine", select_on="wer")


STEPS = {  # name -> (tag in run names, the fields it changes)
    "dropout 0.4": ("d04", {"dropout": 0.4}),
    "dropout 0.2": ("d02", {"dropout": 0.2}),
    "input feeding": ("feed", {"input_feed": True}),
    "3 encoder layers": ("l3", {"enc_layers": 3}),
    "40 epochs": ("e40", {"n_epochs": 40}),
}
BEAMS, PENALTIES, LEXICON_BEAMS = (1, 5, 10), (0.5, 1.0, 1.5), (5, 10)


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of the study: its steps (names), seed and configuration."""
    steps: tuple
    seed: int
    config: dict

    @property
    def name(self):
        tags = [STEPS[s][0] for s in STEPS if s in self.steps] or ["base"]
        return f"strong-{'-'.join(tags)}-seed{self.seed}"


def make_run(steps, seed, base=None, threads=1):
    """The run of base plus these steps, for one seed."""
    cfg = dict(base or base_config(threads))
    for s in steps:
        cfg.update(STEPS[s][1])
    return Run(tuple(s for s in STEPS if s in steps), seed,
               dict(cfg, seed=seed, num_threads=threads))


def score(r):
    return r["val_wer"], r["val_cer"]


# ---- training or reusing runs: one rule, the saved config equals the one asked for -------------

def train_or_reuse(run, corpus, dirs, device):
    """The run's train record: reused when its record and checkpoint exist with this very config,
    else trained."""
    path = os.path.join(dirs["records"], f"{run.name}-train.json")
    ckpt = os.path.join(dirs["checkpoints"], f"{run.name}.pt")
    old = load_json(path) if os.path.exists(path) else {}
    done = old.get("status") == "completed" and os.path.exists(ckpt)
    if done and old.get("config") == run.config:
        return old
    print(f"training {run.name}", flush=True)
    record = q3.train_run(run.config, corpus, ckpt, device, log=lambda line: None,
                          **options(run.config))
    if record["status"] == "interrupted":
        raise KeyboardInterrupt
    if record["status"] != "completed":
        raise InputError(f"study run {run.name} diverged at epoch "
                         f"{len(record['history']['epoch']) + 1}")
    save_json(record, path)
    return record


def search_steps(corpus, dirs, device, threads):
    """Ablation rows of the base and of each step (seed 42), kept or not, the best steps, and the
    runs' records."""
    records = {}

    def row_of(step, run):
        records[run.name] = train_or_reuse(run, corpus, dirs, device)
        return ablation_row(step, run, records[run.name])
    rows = [row_of("base", make_run((), 42, threads=threads))]
    kept = []
    for step in STEPS:
        row = row_of(step, make_run((step,), 42, threads=threads))
        row["kept"] = score(row) < score(rows[0])
        rows.append(row)
        kept += [row] if row["kept"] else []
    by_field = {}
    for row in sorted(kept, key=score):  # the best of the kept steps that change the same field
        by_field.setdefault(tuple(STEPS[row["step"]][1]), row["step"])
    if len(by_field) > 1:
        steps = tuple(s for s in STEPS if s in by_field.values())
        rows.append(row_of(" + ".join(steps), make_run(steps, 42, threads=threads)))
    best = min(rows, key=score)
    return rows, tuple(best["steps"]), records


def ablation_row(step, run, record):
    return {"step": step, "steps": list(run.steps), "run": run.name, "seed": run.seed,
            "config": run.config, "decoding": "greedy",
            "train_minutes": round(record["wall_seconds"] / 60, 1),
            "best_epoch": record["best_epoch"], "val_cer": record["best_val_cer"],
            "val_wer": record["best_val_wer"], "kept": None}


# ---- finalists, candidates and the choice on validation ----------------------------------------

def train_finalists(best_steps, seeds, corpus, dirs, device, threads):
    """{finalist: [(run, record)]}: the base and, when a step was kept, the best configuration, over
    seeds."""
    finalists = {"base": ()} | ({"best": best_steps} if best_steps else {})
    runs = {f: [make_run(steps, s, threads=threads) for s in seeds]
            for f, steps in finalists.items()}
    return {f: [(run, train_or_reuse(run, corpus, dirs, device)) for run in rs]
            for f, rs in runs.items()}


def candidates(finalists, step_rows):
    """Candidate models as {id: [run names]}: each finalist's first seed, each finalist's ensemble,
    the ensemble of both, and the ensemble of every model the study trained."""
    out = {}
    for f, members in finalists.items():
        out[f"{f}-seed{members[0][0].seed}"] = [members[0][0].name]
        out[f"{f}-ensemble"] = [run.name for run, _ in members]
    union = [run.name for members in finalists.values() for run, _ in members]
    if len(finalists) > 1:
        out["finalists-ensemble"] = union
    every = union + [r["run"] for r in step_rows if r["run"] not in union]
    if len(every) > len(union):
        out["all-ensemble"] = every
    return out


def evaluate(models, dataset, beam, penalty, lexicon=None):
    """Scores and predictions of one model or an ensemble (beam 1 = greedy); with lexicon, each
    word's best hypothesis that is in it."""
    out = decoding.evaluate(models if len(models) > 1 else models[0], dataset, q3.EVAL_BATCH,
                            q3.CONFIG["max_len"], beam, penalty, lexicon)
    return {"cer": out["cer"], "wer": out["wer"]}, out["preds"]


def tune_decoding(models, dataset, beams=None, penalties=None, lexicon=None):
    """Validation CER/WER for every beam size and length penalty (BEAMS, PENALTIES unless given),
    reranked with lexicon if any; the grid and its best row (WER, then CER)."""
    grid = []
    for beam in beams or BEAMS:
        for penalty in (penalties or PENALTIES) if beam > 1 else (1.0,):
            s, _ = evaluate(models, dataset, beam, penalty, lexicon)
            grid.append({"beam_size": beam, "length_penalty": penalty, "val_cer": s["cer"],
                         "val_wer": s["wer"]})
    return grid, min(grid, key=score)


def choose(cands, models, sets):
    """Each candidate's best decoding on validation, and the candidate chosen (lowest WER, then
    CER)."""
    rows, grids = [], {}
    for cid, names in cands.items():
        grids[cid], best = tune_decoding([models[n] for n in names], sets["valid"])
        rows.append({"candidate": cid, "members": names, "n_models": len(names), **best,
                     "chosen": False})
    chosen = min(rows, key=score)
    chosen["chosen"] = True
    return rows, grids, chosen


# ---- the test reads and the record -------------------------------------------------------------

def read_test(chosen, models, sets, records, words):
    """Decode the test set for the choice, for each member alone and for the word-list reranking."""
    beam, penalty = chosen["beam_size"], chosen["length_penalty"]
    members = [models[n] for n in chosen["members"]]
    t0 = time.time()
    test, preds = evaluate(members, sets["test"], beam, penalty)
    seconds = time.time() - t0
    rows = []
    for name, model in zip(chosen["members"], members):
        val, _ = evaluate([model], sets["valid"], beam, penalty)
        tst, _ = evaluate([model], sets["test"], beam, penalty)
        rows.append({"run": name, "seed": records[name]["config"]["seed"], "val_cer": val["cer"],
                     "val_wer": val["wer"], "test_cer": tst["cer"], "test_wer": tst["wer"],
                     "best_epoch": records[name]["best_epoch"],
                     "train_minutes": round(records[name]["wall_seconds"] / 60, 1),
                     "params": n_params(model)})
    lex_grid, lex = tune_decoding(members, sets["valid"], LEXICON_BEAMS, (penalty,), words)
    lex_test, _ = evaluate(members, sets["test"], lex["beam_size"], penalty, words)
    return {"scores": test, "preds": preds, "intervals": q3.intervals(preds, sets["test"].golds),
            "seconds": seconds, "members": rows,
            "lexicon_rerank": {"grid": lex_grid, "beam_size": lex["beam_size"],
                               "val_cer": lex["val_cer"], "val_wer": lex["val_wer"],
                               "test_cer": lex_test["cer"], "test_wer": lex_test["wer"],
                               "external_word_list": True}}


def n_params(model):
    return sum(t.numel() for t in model.parameters())


# ---- the study ---------------------------------------------------------------------------------

def check_inputs(data_dir, assignment_json):
    """Every input of the study, before any training: the corpus, the assignment's greedy test
    result on the same test words, the ISLEX word list: (corpus, assignment preds, words)."""
    corpus, _ = q3.read_corpus(data_dir, SPLITS)
    examples = load_json(assignment_json, "examples")["examples"]
    if [ex.get("gold") for ex in examples] != [w for _, w in corpus["test"]]:
        raise InputError(f"{assignment_json}: its test words are not those of {data_dir}/test.tsv")
    try:  # real English words
        words = {head.lower() for head, _ in islex_entries() if head.isalpha()}
    except (ImportError, OSError) as e:
        raise InputError(f"the ISLEX word list (pysle) is not available: {e}") from None
    return corpus, [ex["pred"] for ex in examples], words


def run_study(seeds, data_dir, out_dir, runs_dir, assignment_json, threads=1):
    """The whole study; writes out_dir/strongest.json, strongest-ablation.json and the length
    figure."""
    corpus, assignment_preds, words = check_inputs(data_dir, assignment_json)
    device = torch.device("cpu")
    dirs = {"records": os.path.join(out_dir, "strongest-runs"), "checkpoints": runs_dir}
    step_rows, best_steps, records = search_steps(corpus, dirs, device, threads)
    finalists = train_finalists(best_steps, seeds, corpus, dirs, device, threads)
    records |= {run.name: rec for members in finalists.values() for run, rec in members}
    models = {}
    for name in records:
        path = os.path.join(runs_dir, f"{name}.pt")
        models[name], src_vocab, tgt_vocab, _ = load_checkpoint(path, device)
    for row in step_rows:
        row["params"] = n_params(models[row["run"]])
    sets = {s: Seq2SeqDataset(corpus[s], src_vocab, tgt_vocab) for s in ("valid", "test")}
    cand_rows, grids, chosen = choose(candidates(finalists, step_rows), models, sets)
    test = read_test(chosen, models, sets, records, words)
    record = summary(chosen, test, cand_rows, grids, finalists, best_steps, seeds, threads)
    record |= diagnostics.compare_with_assignment(test["preds"], sets["test"].golds,
                                                  assignment_preds, words)
    record["earlier_test_reads"] = earlier_reads(os.path.join(out_dir, "strongest.json"), record)
    stem = os.path.join(out_dir, "strongest")
    diagnostics.plot_bins({"assignment model, greedy": record["by_length"]["assignment"],
                           "strongest" + (" ensemble" if chosen["n_models"] > 1 else ""):
                               record["by_length"]["strongest"]},
                          "lengths", "wer", "Length of the gold spelling (characters)", "Test WER",
                          f"{stem}-wer_by_length", ylim=(0, 1), legend_loc="upper left")
    save_json(record, f"{stem}.json")
    save_json({"selected_on": "valid", "base": base_config(threads), "rows": step_rows},
              f"{stem}-ablation.json")
    return record


def summary(chosen, test, cand_rows, grids, finalists, best_steps, seeds, threads):
    """The study's record: the choice, its test scores with intervals, its members, the
    candidates."""
    members = test["members"]
    finalist_of = {run.name: f for f, ms in finalists.items() for run, _ in ms}
    for m in members:
        m["finalist"] = finalist_of.get(m["run"], "step run")
    return {
        "selected_on": "valid",
        "choice": {k: chosen[k] for k in ("candidate", "members", "n_models", "beam_size",
                                          "length_penalty", "val_cer", "val_wer")},
        "test_cer": test["scores"]["cer"], "test_wer": test["scores"]["wer"],
        **test["intervals"],
        "test_decodings": ["choice", "each member alone, same decoding", "word-list reranking"],
        "best_steps": list(best_steps), "seeds": seeds, "members": members,
        "seed_mean_test_wer": statistics.mean(m["test_wer"] for m in members),
        "seed_mean_test_cer": statistics.mean(m["test_cer"] for m in members),
        "params_total": sum(m["params"] for m in members),
        "params_largest": max(m["params"] for m in members),
        "train_minutes_total": round(sum(m["train_minutes"] for m in members), 1),
        "train_threads": threads,
        "test_decode_seconds": round(test["seconds"], 2), "candidates": cand_rows,
        "decoding_grid": grids,
        "finalists": {f: {"steps": list(ms[0][0].steps), "config": ms[0][0].config,
                          "runs": [{"run": run.name, "seed": run.seed,
                                    "val_cer": rec["best_val_cer"],
                                    "val_wer": rec["best_val_wer"]} for run, rec in ms]}
                      for f, ms in finalists.items()},
        "lexicon_rerank": test["lexicon_rerank"],
        "command": f"python -m beyond.study --seeds {' '.join(map(str, seeds))} "
                   f"--num_threads {threads}",
    }


def earlier_reads(path, record):
    """The test reads of earlier records at path (data, kept as they were), plus that record's own
    read when its choice differs from this one."""
    if not os.path.exists(path):
        return []
    old = load_json(path)
    reads = list(old.get("earlier_test_reads", []))
    if old.get("choice") != record["choice"] and "test_wer" in old:
        reads.append({"choice": old.get("choice"), "val_wer": old["choice"]["val_wer"],
                      "val_cer": old["choice"]["val_cer"],
                      "test_wer": old["test_wer"], "test_cer": old["test_cer"],
                      "date": time.strftime("%Y-%m-%d")})
    return reads


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44],
                   help="seeds of each finalist (default: 42 43 44)")
    p.add_argument("--num_threads", type=in_range(int, 1), default=1,
                   help="torch CPU threads per run (default: 1)")
    p.add_argument("--data_dir", default="data",
                   help="folder with train/valid/test.tsv (default: data)")
    p.add_argument("--out_dir", default="runs/q3", help="where the record goes (default: runs/q3)")
    p.add_argument("--runs_dir", default="runs/strongest",
                   help="where the checkpoints go (default: runs/strongest)")
    p.add_argument("--assignment", default="results/q3/attn-test-greedy.json",
                   help="the assignment model's greedy test result, compared with (default: "
                        "%(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.num_threads)
    record = run_study(args.seeds, args.data_dir, args.out_dir, args.runs_dir, args.assignment,
                       args.num_threads)
    c = record["choice"]
    print(f"chosen on validation: {c['candidate']} ({c['n_models']} models), beam "
          f"{c['beam_size']}, length penalty {c['length_penalty']:g}: val WER "
          f"{c['val_wer']:.4f}; test CER {record['test_cer']:.4f}, WER {record['test_wer']:.4f}; "
          f"wrote {args.out_dir}/strongest.json")
    return 0


if __name__ == "__main__":
    run(main, kept="every finished run (reused by the next start)")
