#!/usr/bin/env python
"""Q3: phoneme-to-grapheme conversion with a BiLSTM encoder, an LSTM decoder and Bahdanau attention.

    python hw2-q3.py train [--use_attn]      # 20 epochs; keeps the checkpoint with the lowest validation CER
    python hw2-q3.py test [--topp 0.8]       # greedy, or nucleus sampling with WER@k; --beam_size for beam search
    python hw2-q3.py spell "k æ t"           # the k best spellings of your own words, with probabilities
"""
import argparse
import difflib
import math
import os
import shlex
import sys
import time

import torch

import artefacts
import data
import decoding
import diagnostics
import metrics
import training
from cli import InputError, configure_seed, get_device, in_range, read_lines, run, set_threads
from decoding import greedy_next_token, nucleus_sampling  # the skeleton's two token rules  # noqa: F401
from locks import run_lock
from plots import plot

DEFAULTS = training.TrainConfig()
ASSIGNMENT_CHECKPOINTS = ("attn.pt", "no-attn.pt")  # the committed runs' checkpoints, which a trial run leaves alone


# ---- train ----------------------------------------------------------------------------------------

def train(args, device):
    """Train with the assignment's settings (or those given), write the checkpoint and <name>-train.json."""
    cfg = training.TrainConfig(**{name: getattr(args, name) for name in training.FLAGS},
                               data=data.data_source(args.data_dir, args.data_fallback)).check()
    identity = {"config": cfg.to_dict(), "device": str(device)}
    committed = result_path(args, "train")
    out = artefacts.trial_path(committed, identity)
    if out != committed and args.checkpoint_name in ASSIGNMENT_CHECKPOINTS:  # typed or default: attn.pt stays
        args.checkpoint_name = os.path.join(artefacts.RUNS_DIR, args.checkpoint_name)
    if args.reuse and artefacts.same_run(out, identity) and training.finished_run(out, args.checkpoint_name, cfg):
        print(f"{out} and {args.checkpoint_name} hold a finished run of this very config: reused (--reuse)")
        return 0
    artefacts.check_writable(args.checkpoint_name, "--checkpoint_name")
    artefacts.check_writable(out, "--out_dir")
    corpus = data.load_corpus(args.data_dir, ("train", "valid"), fallback=args.data_fallback)[0]
    if out != committed:
        print(artefacts.trial_notice(committed, out, identity) + f" and {args.checkpoint_name}")
    with run_lock(args.checkpoint_name), run_lock(out):
        try:
            record = training.train(cfg, corpus, args.checkpoint_name, device, progress=args.progress,
                                    resume=args.resume)
        except KeyboardInterrupt:
            say_how_to_resume(args)
            raise
        written = artefacts.save_result(record, out)
    if args.plot:
        print("figure:", *plot(record["history"]["epoch"], {f"attention: {cfg.use_attn}": record["history"]["val_cer"]},
                               "Validation CER", out[:-len(".json")], png=True))
    if record["status"] != "completed":
        print(f"diverged: wrote {out}; {args.checkpoint_name} holds epoch {record['best_epoch'] or 'none'}")
        return 3
    where = cfg.data if cfg.data != data.ISLEX_SOURCE else "the ISLEX fallback, NOT the course data (put them in data/)"
    print(f"best validation {cfg.select_on.upper()} {record['best_val_' + cfg.select_on]:.4f} at epoch "
          f"{record['best_epoch']}; {'wrote ' + out if written else out + ' unchanged (the same run)'}; "
          f"checkpoint {args.checkpoint_name}, trained on {where}; next: "
          f"python hw2-q3.py test --checkpoint_name {args.checkpoint_name}{' --topp 0.8' * cfg.use_attn}")
    return 0


def say_how_to_resume(args):
    """After Ctrl-C: which epoch the training state holds, and the command that continues from it."""
    state = training.state_path(args.checkpoint_name)
    if not os.path.exists(state):
        print("\nno epoch was finished: nothing to resume", file=sys.stderr)
        return
    epoch = training.read_checkpoint(state, kind=training.STATE_KIND)["epoch"]
    again = " ".join(["python", *sys.argv] + ([] if args.resume else ["--resume"]))
    print(f"\n{args.checkpoint_name} holds the best epoch so far, marked unfinished; {state} holds epoch {epoch} of "
          f"{args.n_epochs}; continue with: {again}", file=sys.stderr)


# ---- test -----------------------------------------------------------------------------------------

def test(args, device):
    """Greedy, nucleus-sampling or beam-search results on the test set: one JSON per decoding."""
    model, src_vocab, tgt_vocab, ckpt = load_checkpoint(args, device)
    cfg = ckpt["config"]
    if args.plot_attn and not cfg.use_attn:
        raise InputError(f"--plot_attn: {args.checkpoint_name} has no attention")
    corpus = data.load_corpus(args.data_dir, ("test",), fallback=args.data_fallback)[0]
    if args.plot_attn > len(corpus["test"]):
        raise InputError(f"--plot_attn {args.plot_attn}: the test set has {len(corpus['test'])} words")
    test_set = data.Seq2SeqDataset(corpus["test"], src_vocab, tgt_vocab)
    max_len = args.max_len or cfg.max_len
    print(f"checkpoint {args.checkpoint_name}: attention {cfg.use_attn}, epoch {ckpt['epoch']}, "
          f"val CER {ckpt['val_cer']:.4f}")
    base = {"checkpoint": args.checkpoint_name, "config": cfg.to_dict(), "best_epoch": ckpt["epoch"],
            "topp": args.topp, "k": args.k, "seed": args.seed, "max_len": max_len}
    if args.plot_attn:
        stem = result_path(args, "attention")[:-len(".json")]
        words = diagnostics.plot_attention(model, test_set, src_vocab, tgt_vocab, args.plot_attn, max_len, stem)
        artefacts.save_result({"checkpoint": args.checkpoint_name, "words": words}, f"{stem}.json")
        print(f"attention figure: {stem}.pdf and .png")
    if args.beam_size:
        return [test_beam(model, test_set, args, n, dict(base), cfg.eval_batch_size) for n in args.beam_size]
    return [test_token_by_token(model, test_set, args, base, cfg.eval_batch_size, device)]


def test_token_by_token(model, test_set, args, base, batch_size, device):
    """Greedy decoding with an error analysis, or nucleus sampling with WER@k over k samples."""
    rule = decoding.token_rule(args.topp, torch.Generator(device=device).manual_seed(args.seed))
    evaluate = lambda: decoding.evaluate(model, test_set, batch_size, base["max_len"], rule)
    t0 = time.time()
    first = evaluate()
    preds, golds = first["preds"], test_set.golds
    result = dict(base, decoding="greedy" if args.topp is None else f"topp{args.topp:g}",
                  decode_seconds=round(time.time() - t0, 3), cer=first["cer"], wer=first["wer"],
                  **metrics.intervals(preds, golds))
    print(f"Test CER: {result['cer']:.4f}, Test WER: {result['wer']:.4f}")
    phonemes = [" ".join(p) for p, _ in test_set.pairs]
    examples = [{"phonemes": ph, "gold": g, "pred": p} for ph, g, p in zip(phonemes, golds, preds)]
    if args.topp is None:
        result["errors"] = diagnostics.error_analysis(examples)
        return write_test_result(result, examples, args)
    samples = [evaluate()["preds"] for _ in range(args.k)]
    result["wer_at_k"] = metrics.wer_at_k(samples, golds)
    varied = [i for i in range(len(golds)) if len({s[i] for s in samples}) > 1]
    result["n_varied"] = len(varied)
    for i, ex in enumerate(examples):
        ex["samples"] = [s[i] for s in samples]
    print(f"Test WER@{args.k}: {result['wer_at_k']:.4f}\n{len(varied)} of {len(golds)} words got differing "
          "samples; the first 10:")
    for i in varied[:10]:
        print(f"  /{phonemes[i]}/  samples: {', '.join(s[i] for s in samples)}  | gold: {golds[i]}")
    return write_test_result(result, examples, args)


def test_beam(model, test_set, args, beam_size, result, batch_size):
    """Beam search of one size: CER/WER of the best hypothesis, WER@k over the k best distinct ones,
    and how many of the wrong words are search errors."""
    t0 = time.time()
    out = decoding.evaluate(model, test_set, batch_size, result["max_len"], beam_size=beam_size,
                            length_penalty=args.length_penalty)
    decode_seconds, golds = time.time() - t0, test_set.golds
    hyps, best_scores = [[w for w, _, _ in h] for h in out["nbest"]], [h[0][2] for h in out["nbest"]]
    topk = [[h[j] if j < len(h) else "" for h in hyps] for j in range(args.k)]
    result.update(decoding=f"beam{beam_size}", beam_size=beam_size, length_penalty=args.length_penalty,
                  cer=out["cer"], wer=out["wer"], **metrics.intervals(out["preds"], golds),
                  wer_at_k=metrics.wer_at_k(topk, golds), decode_seconds=round(decode_seconds, 3))
    print(f"beam {beam_size}: Test CER: {result['cer']:.4f}, Test WER: {result['wer']:.4f}, "
          f"Test WER@{args.k}: {result['wer_at_k']:.4f} ({decode_seconds:.1f} s)")
    result.update(diagnostics.search_errors(model, test_set, out["preds"], golds, best_scores, batch_size,
                                            args.length_penalty))
    print(f"  of {result['n_wrong']} wrong words, {result['search_errors']} are search errors (the model prefers "
          f"the gold spelling) and {result['model_errors']} model errors")
    examples = [{"phonemes": " ".join(p), "gold": g, "pred": h[0], "nbest": h[:args.k]}
                for (p, _), g, h in zip(test_set.pairs, golds, hyps)]
    return write_test_result(result, examples, args)


def write_test_result(result, examples, args):
    result = dict(result, examples=examples)
    keys = ("checkpoint", "config", "best_epoch", "topp", "k", "seed", "max_len", "length_penalty")
    identity = {k: result[k] for k in keys if k in result}
    path = artefacts.trial_path(result_path(args, f"test-{result['decoding']}"), identity)
    print(f"{'wrote' if artefacts.save_result(result, path) else 'unchanged:'} {path}")
    return result


# ---- spell ----------------------------------------------------------------------------------------

def spell(args, device):
    """One line per phoneme string: the phonemes, a tab, then at most k spellings, each with its probability
    (the model's, EOS included), tab-separated. Returns the lines."""
    if args.out:
        artefacts.check_writable(args.out, "--out")
    words = [w.split() for w in read_lines(args.phonemes)]
    if not words:
        raise InputError("spell: no phonemes given (arguments such as 'k æ t', or one string per line on stdin)")
    if len(args.phonemes) > 1 and all(len(w) == 1 for w in words):
        print(f"note: each argument is one word, so these are {len(words)} one-phoneme words; to spell one word, "
              f"quote it: python hw2-q3.py spell {shlex.quote(' '.join(args.phonemes))}", file=sys.stderr)
    model, src_vocab, tgt_vocab, ckpt = load_checkpoint(args, device)
    unknown = sorted({p for w in words for p in w if p not in src_vocab.word2index})
    if unknown:
        print(f"warning: phonemes unknown to {args.checkpoint_name}, read as UNK: {' '.join(unknown)}", file=sys.stderr)
    dataset = data.Seq2SeqDataset([(w, "?") for w in words], src_vocab, tgt_vocab)
    cfg = ckpt["config"]
    nbest = decoding.beam_search_dataset(model, dataset, cfg.eval_batch_size, args.max_len or cfg.max_len, args.k,
                                         args.length_penalty)
    lines = []
    for w, hyps in zip(words, nbest):
        by_prob = sorted(((math.exp(lp), spelling) for spelling, lp, _ in hyps), reverse=True)[:args.k]
        lines.append("\t".join([" ".join(w)] + [f"{spelling} {p:.2f}" for p, spelling in by_prob]))
        print(lines[-1])
    if args.out:
        artefacts.atomic_write(args.out, lambda f: f.write("".join(line + "\n" for line in lines).encode("utf-8")))
    return lines


# ---- shared by the modes --------------------------------------------------------------------------

def result_path(args, what):
    return os.path.join(args.out_dir, f"{os.path.splitext(os.path.basename(args.checkpoint_name))[0]}-{what}.json")


def load_checkpoint(args, device):
    """The checkpoint of --checkpoint_name, with a warning when it was trained on other data than --data_dir's."""
    trial = os.path.join(artefacts.RUNS_DIR, args.checkpoint_name)
    if not os.path.exists(args.checkpoint_name) and args.checkpoint_default and os.path.exists(trial):
        print(f"{args.checkpoint_name} is not here: using {trial}, which a trial run wrote", file=sys.stderr)
        args.checkpoint_name = trial
    if not os.path.exists(args.checkpoint_name):
        how = f"a trial run wrote {trial}: {command_with(trial)}" if os.path.exists(trial) else \
            "train one first: python hw2-q3.py " + {"attn.pt": "train --use_attn", "no-attn.pt": "train"}.get(
                args.checkpoint_name, f"train --checkpoint_name {args.checkpoint_name}")
        raise InputError(f"--checkpoint_name {args.checkpoint_name}: no such checkpoint ({how})")
    model, src_vocab, tgt_vocab, ckpt = training.load_checkpoint(args.checkpoint_name, device)
    trained, now = ckpt["config"].data, data.data_source(args.data_dir, args.data_fallback)
    if trained != now:
        print(f"warning: {args.checkpoint_name} was trained on {trained}, and the data now come from {now}: "
              "its scores here are not comparable", file=sys.stderr)
    return model, src_vocab, tgt_vocab, ckpt


def command_with(checkpoint):
    """The command just typed, whose --checkpoint_name names checkpoint instead."""
    argv = sys.argv[1:]
    argv = [checkpoint if before == "--checkpoint_name" else
            f"--checkpoint_name={checkpoint}" if a.startswith("--checkpoint_name=") else a
            for before, a in zip([None] + argv, argv)]
    return "python hw2-q3.py " + shlex.join(argv)


# ---- command line ---------------------------------------------------------------------------------

positive = in_range(int, 1)


class DefaultsUnlessNone(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = p.add_subparsers(dest="mode", required=True, metavar="{train,test,spell}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data_dir", default=None, help="folder with train/valid/test.tsv (default: data/, with "
                        "a loud fallback to an ISLEX-based set when data/train.tsv is absent)")
    common.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when available)")
    kw = dict(parents=[common], formatter_class=DefaultsUnlessNone)
    tr = modes.add_parser("train", help="train a model, keeping the epoch with the lowest validation CER", **kw)
    tr.add_argument("--checkpoint_name", default=None, help="checkpoint written (default: attn.pt with --use_attn, "
                    "else no-attn.pt, the assignment's names; a trial run of other settings writes runs/<name>)")
    training.add_config_flags(tr)
    tr.add_argument("--plot", action="store_true", help="also draw <name>-train.pdf/.png, validation CER per epoch")
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run from <name>.last.pt, "
                    "the state of its last finished epoch")
    tr.add_argument("--reuse", action="store_true", help="do nothing when the checkpoint and its record hold a "
                    "finished run of this very config (./reproduce.sh)")
    te = modes.add_parser("test", help="test a checkpoint on the test set", **kw)
    te.add_argument("--checkpoint_name", default=None, help="checkpoint tested (default: attn.pt with --use_attn "
                    "or --topp, else no-attn.pt)")
    te.add_argument("--use_attn", action="store_true", help="the default checkpoint is attn.pt")
    te.add_argument("--topp", type=in_range(float, 0.0, 1.0, low_open=True), default=None,
                    help="nucleus sampling with this p in (0, 1] (default: greedy decoding)")
    te.add_argument("--beam_size", type=positive, nargs="+", default=None, help="beam search with these sizes")
    te.add_argument("--k", type=positive, default=3, help="predictions per word for WER@k: samples or best hypotheses")
    te.add_argument("--plot_attn", type=in_range(int, 0), default=0, metavar="N",
                    help="draw the attention weights of N test words")
    sp = modes.add_parser("spell", help="spell your own phoneme strings (arguments, or one per line on stdin)", **kw)
    sp.add_argument("--checkpoint_name", default=None, help="checkpoint that spells (default: attn.pt)")
    sp.add_argument("phonemes", nargs="*", metavar="PHONEMES", help="space-separated IPA strings such as 'k æ t'")
    sp.add_argument("--k", type=positive, default=5, help="spellings per word (the beam size)")
    sp.add_argument("--out", default=None, help="also write the lines to this file")
    for q in (te, sp):
        q.add_argument("--length_penalty", type=in_range(float, 0.0, 5.0), default=1.0,
                       help="beam search: score = log-probability / length**length_penalty")
        q.add_argument("--max_len", type=positive, default=None, help="longest spelling decoded (default: the "
                       "checkpoint's)")
        q.add_argument("--seed", type=int, default=DEFAULTS.seed, help="the seed of sampling")
        q.add_argument("--num_threads", type=in_range(int, 0), default=DEFAULTS.num_threads,
                       help=training.FLAGS["num_threads"][1])
    for q in (tr, te):
        q.add_argument("--out_dir", default="results/q3", help="where the JSON results go")
        q.add_argument("--quiet", action="store_true", help="no progress bars")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):  # the assignment's flags, no mode
        mode = "test" if {"--topp", "--beam_size", "--plot_attn"} & {a.split("=")[0] for a in argv} else "train"
        p.error(f"a mode comes first: python hw2-q3.py {shlex.join([mode, *argv])}")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        sub = {"train": tr, "test": te, "spell": sp}[args.mode]
        flags = [o for a in sub._actions for o in a.option_strings]
        close = difflib.get_close_matches(unknown[0].split("=")[0].replace("-", "_").replace("__", "--"), flags, n=1)
        sub.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" (did you mean {close[0]}?)" if close else ""))
    if args.mode == "train" and (args.hidden_size % 2 or (args.input_feed and not args.use_attn)):
        tr.error(f"--hidden_size must be even (H/2 per encoder direction), got {args.hidden_size}"
                 if args.hidden_size % 2 else "--input_feed needs --use_attn")
    if args.mode == "test" and args.topp is not None and args.beam_size:
        te.error("--topp and --beam_size are two decodings: choose one")
    args.checkpoint_default = args.checkpoint_name is None  # a default checkpoint may be a trial run's, in runs/
    args.checkpoint_name = os.path.normpath(args.checkpoint_name or (  # ./attn.pt is attn.pt, data/ is data
        "attn.pt" if args.mode == "spell" or args.use_attn or getattr(args, "topp", None) is not None else "no-attn.pt"))
    args.data_fallback, args.data_dir = args.data_dir is None, os.path.normpath(args.data_dir or "data")
    if hasattr(args, "out_dir"):
        args.out_dir = os.path.normpath(args.out_dir)
    args.progress = not getattr(args, "quiet", True) and sys.stderr.isatty()
    return args


def main():
    args = parse_args()
    device = get_device(args.device)
    if args.mode != "spell":
        artefacts.check_folder(args.out_dir, "--out_dir")
    if args.mode != "train":  # training sets its own seed and threads, from its config
        set_threads(args.num_threads)
        configure_seed(args.seed)
    return {"train": train, "test": test, "spell": spell}[args.mode](args, device)


if __name__ == "__main__":
    run(main)
