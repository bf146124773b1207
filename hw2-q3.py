#!/usr/bin/env python
"""Q3: phoneme-to-grapheme conversion with a BiLSTM encoder, an LSTM decoder and Bahdanau attention.

    python hw2-q3.py train [--use_attn]      # 20 epochs; keeps the checkpoint with the lowest validation CER
    python hw2-q3.py test [--topp 0.8]       # greedy, or nucleus sampling with WER@k; --beam_size for beam search
    python hw2-q3.py spell "k æ t"           # the k best spellings of your own words, with probabilities
"""
import argparse
import math
import os
import sys
import time

import torch

import checkpoints
import data as p2g
import decoding
import diagnostics
import metrics
import training
import utils
from decoding import greedy_next_token, nucleus_sampling  # the skeleton's two token rules  # noqa: F401
from utils import InputError


# ---- train ----------------------------------------------------------------------------------------

def train(args, device):
    """Train with the assignment's settings (or those given), write the checkpoint and <name>-train.json."""
    cfg = training.TrainConfig(use_attn=args.use_attn, hidden_size=args.hidden_size, dropout=args.dropout,
                               dropout_site=args.dropout_site, lr=args.lr, n_epochs=args.n_epochs,
                               batch_size=args.batch_size, seed=args.seed, max_len=args.max_len,
                               num_threads=args.num_threads,
                               data=p2g.data_source(args.data_dir, args.data_fallback)).check()
    identity = {"config": cfg.to_dict(), "device": str(device)}
    out = utils.trial_path(result_path(args, "train"), identity)
    if out != result_path(args, "train") and args.checkpoint_default:  # a trial run keeps attn.pt as it is
        args.checkpoint_name = os.path.join(utils.RUNS_DIR, args.checkpoint_name)
        print(f"{result_path(args, 'train')} records another run: this one goes to {out} and {args.checkpoint_name}")
    if args.resume and utils.same_run(out, identity) and training.reusable(out, args.checkpoint_name, cfg):
        print(f"{out} and {args.checkpoint_name} hold a run of this very config: reused (--resume)")
        return 0
    utils.check_writable(args.checkpoint_name, "--checkpoint_name")
    utils.check_writable(out, "--out_dir")
    corpus = load_corpus(args, ("train", "valid"))
    with utils.run_lock(args.checkpoint_name), utils.run_lock(out):
        record = training.train(cfg, corpus, args.checkpoint_name, device, progress=args.progress)
        utils.save_result(record, out)
    if args.plot:
        utils.plot(record["history"]["epoch"], {f"attention: {cfg.use_attn}": record["history"]["val_cer"]},
                   "Validation CER", out[:-len(".json")], png=True)
    if record["status"] != "completed":
        print(f"diverged: wrote {out}; {args.checkpoint_name} holds epoch {record['best_epoch'] or 'none'}")
        return 3
    where = cfg.data if cfg.data != p2g.ISLEX_SOURCE else "the ISLEX fallback, NOT the course data (put them in data/)"
    print(f"best validation {cfg.select_on.upper()} {record['best_val_' + cfg.select_on]:.4f} at epoch "
          f"{record['best_epoch']}; wrote {out}; checkpoint {args.checkpoint_name}, trained on {where}; next: "
          f"python hw2-q3.py test --checkpoint_name {args.checkpoint_name}{' --topp 0.8' * cfg.use_attn}")
    return 0


# ---- test -----------------------------------------------------------------------------------------

def test(args, device):
    """Greedy, nucleus-sampling or beam-search results on the test set: one JSON per decoding."""
    model, src_vocab, tgt_vocab, ckpt = checkpoints.load(args.checkpoint_name, device)
    if args.plot_attn and model.decoder.attn is None:
        raise InputError(f"--plot_attn: {args.checkpoint_name} has no attention")
    warn_if_other_data(ckpt, args)
    corpus = load_corpus(args, ("test",))
    if args.plot_attn > len(corpus["test"]):
        raise InputError(f"--plot_attn {args.plot_attn}: the test set has {len(corpus['test'])} words")
    test_set = p2g.Seq2SeqDataset(corpus["test"], src_vocab, tgt_vocab)
    phonemes, golds = [" ".join(p) for p, _ in corpus["test"]], [w for _, w in corpus["test"]]
    cfg = ckpt["config"]
    print(f"checkpoint {args.checkpoint_name}: attention {cfg['use_attn']}, epoch {ckpt['epoch']}, "
          f"val CER {ckpt['val_cer']:.4f}")
    base = {"checkpoint": args.checkpoint_name, "config": cfg, "best_epoch": ckpt["epoch"], "topp": args.topp,
            "k": args.k, "seed": args.seed, "max_len": args.max_len}
    if args.plot_attn:
        stem = result_path(args, "attention")[:-len(".json")]
        words = diagnostics.plot_attention(model, test_set, src_vocab, tgt_vocab, args.plot_attn, args.max_len, stem)
        utils.save_result({"checkpoint": args.checkpoint_name, "words": words}, f"{stem}.json")
    if args.beam_size:
        return [test_beam(model, test_set, args, n, phonemes, golds, dict(base), tgt_vocab) for n in args.beam_size]
    run = lambda rule: decoding.decode_dataset(model, test_set, tgt_vocab, 500, args.max_len, rule)
    rule = decoding.token_rule(args.topp, torch.Generator(device=device).manual_seed(args.seed))
    t0 = time.time()
    preds = run(rule)
    result = dict(base, decoding="greedy" if args.topp is None else f"topp{args.topp:g}",
                  decode_seconds=round(time.time() - t0, 3), **scores(preds, golds))
    print(f"Test CER: {result['cer']:.4f}, Test WER: {result['wer']:.4f}")
    examples = [{"phonemes": ph, "gold": g, "pred": p} for ph, g, p in zip(phonemes, golds, preds)]
    if args.topp is None:
        result["errors"] = diagnostics.error_analysis(examples)
    else:
        samples = [run(rule) for _ in range(args.k)]
        result["wer_at_k"] = metrics.wer_at_k(samples, golds)
        print(f"Test WER@{args.k}: {result['wer_at_k']:.4f}")
        varied = [i for i in range(len(golds)) if len({s[i] for s in samples}) > 1]
        result["n_varied"] = len(varied)
        for i, ex in enumerate(examples):
            ex["samples"] = [s[i] for s in samples]
        print(f"{len(varied)} of {len(golds)} words got differing samples; the first 10:")
        for i in varied[:10]:
            print(f"  /{phonemes[i]}/  samples: {', '.join(s[i] for s in samples)}  | gold: {golds[i]}")
    return [write_test_result(result, examples, args)]


def scores(preds, golds):
    cer, wer = metrics.cer_wer(preds, golds)
    return {"cer": cer, "wer": wer, **metrics.intervals(preds, golds)}


def test_beam(model, test_set, args, beam_size, phonemes, golds, result, tgt_vocab):
    """Beam search of one size: CER/WER of the best hypothesis, WER@k over the k best distinct ones,
    and how many of the wrong words are search errors."""
    t0 = time.time()
    nbest = decoding.beam_search_dataset(model, test_set, tgt_vocab, 500, args.max_len, beam_size, args.length_penalty)
    decode_seconds = time.time() - t0
    hyps, best_scores = [[w for w, _, _ in h] for h in nbest], [h[0][2] for h in nbest]
    preds = [h[0] for h in hyps]
    topk = [[h[j] if j < len(h) else "" for h in hyps] for j in range(args.k)]
    result.update(decoding=f"beam{beam_size}", beam_size=beam_size, length_penalty=args.length_penalty,
                  **scores(preds, golds), wer_at_k=metrics.wer_at_k(topk, golds), decode_seconds=round(decode_seconds, 3))
    print(f"beam {beam_size}: Test CER: {result['cer']:.4f}, Test WER: {result['wer']:.4f}, "
          f"Test WER@{args.k}: {result['wer_at_k']:.4f} ({decode_seconds:.1f} s)")
    result.update(diagnostics.search_errors(model, test_set, preds, golds, best_scores, 500, args.length_penalty))
    print(f"  of {result['n_wrong']} wrong words, {result['search_errors']} are search errors (the model prefers "
          f"the gold spelling) and {result['model_errors']} model errors")
    examples = [{"phonemes": ph, "gold": g, "pred": h[0], "nbest": h[:args.k]} for ph, g, h in zip(phonemes, golds, hyps)]
    return write_test_result(result, examples, args)


def write_test_result(result, examples, args):
    result = dict(result, examples=examples)
    keys = ("checkpoint", "config", "best_epoch", "topp", "k", "seed", "max_len", "length_penalty")
    identity = {k: result[k] for k in keys if k in result}
    path = utils.trial_path(result_path(args, f"test-{result['decoding']}"), identity)
    print(f"{'wrote' if utils.save_result(result, path) else 'unchanged:'} {path}")
    return result


# ---- spell ----------------------------------------------------------------------------------------

def read_words(args):
    """The phoneme strings to spell: the arguments, or one per line on standard input."""
    if args.phonemes:
        lines = args.phonemes
    else:
        try:
            lines = sys.stdin.buffer.read().decode("utf-8").removeprefix("\ufeff").splitlines()
        except UnicodeDecodeError as e:
            raise InputError(f"standard input: not UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    words = [w.split() for w in lines if w.strip()]
    if not words:
        raise InputError("spell: no phonemes given (arguments such as 'k æ t', or one string per line on stdin)")
    return words


def spell(args, device):
    """One line per phoneme string: the phonemes, a tab, then at most k spellings, each with its probability
    (the model's, EOS included), tab-separated. Returns the lines."""
    words = read_words(args)
    model, src_vocab, tgt_vocab, ckpt = checkpoints.load(args.checkpoint_name, device)
    warn_if_other_data(ckpt, args)
    unknown = sorted({p for w in words for p in w if p not in src_vocab.stoi})
    if unknown:
        print(f"warning: phonemes unknown to {args.checkpoint_name}, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    dataset = p2g.Seq2SeqDataset([(w, "?") for w in words], src_vocab, tgt_vocab)
    nbest = decoding.beam_search_dataset(model, dataset, tgt_vocab, 500, args.max_len, args.k, args.length_penalty)
    lines = []
    for w, hyps in zip(words, nbest):
        by_prob = sorted(((math.exp(lp), spelling) for spelling, lp, _ in hyps), reverse=True)[:args.k]
        lines.append("\t".join([" ".join(w)] + [f"{spelling} {p:.2f}" for p, spelling in by_prob]))
        print(lines[-1])
    return lines


# ---- shared by the modes --------------------------------------------------------------------------

def result_path(args, what):
    return os.path.join(args.out_dir, f"{os.path.splitext(os.path.basename(args.checkpoint_name))[0]}-{what}.json")


def load_corpus(args, splits):
    return p2g.load_corpus(args.data_dir, splits, fallback=args.data_fallback)[0]


def warn_if_other_data(ckpt, args):
    """One line when the checkpoint was trained on other data than what --data_dir holds now."""
    trained, now = ckpt["config"].get("data"), p2g.data_source(args.data_dir, args.data_fallback)
    if trained is not None and trained != now:
        print(f"warning: {args.checkpoint_name} was trained on {trained}, and the data now come from {now}: "
              "its scores here are not comparable", file=sys.stderr)


# ---- command line ---------------------------------------------------------------------------------

positive = utils.in_range(int, 1)


class DefaultsUnlessNone(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default in its help, except where the help says how the default is chosen."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = p.add_subparsers(dest="mode", required=True, metavar="{train,test,spell}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data_dir", default=None, help="folder with train/valid/test.tsv (default: data/, with "
                        "a loud fallback to an ISLEX-based set when data/train.tsv is absent)")
    common.add_argument("--checkpoint_name", default=None, help="checkpoint file (default attn.pt with --use_attn "
                        "or --topp, the assignment's names; else no-attn.pt; spell: attn.pt)")
    common.add_argument("--max_len", type=positive, default=50, help="longest spelling decoded")
    common.add_argument("--seed", type=int, default=42, help="one seed for python, numpy, torch and sampling")
    common.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when available)")
    common.add_argument("--num_threads", type=utils.in_range(int, 0), default=1,
                        help="torch CPU threads (1 reproduces the committed runs and is fastest on a shared CPU; "
                             "0: torch's default)")
    kw = dict(parents=[common], formatter_class=DefaultsUnlessNone)
    tr = modes.add_parser("train", help="train a model, keeping the epoch with the lowest validation CER", **kw)
    tr.add_argument("--use_attn", action="store_true", help="Bahdanau attention")
    tr.add_argument("--n_epochs", type=positive, default=20, help="training epochs")
    tr.add_argument("--lr", type=utils.in_range(float, 0.0, low_open=True), default=0.003, help="Adam learning rate")
    tr.add_argument("--dropout", type=utils.in_range(float, 0.0, 1.0, high_open=True), default=0.3,
                    help="dropout on the embeddings and on the LSTMs' outputs")
    tr.add_argument("--hidden_size", type=positive, default=128, help="hidden size H, even (H/2 per encoder direction)")
    tr.add_argument("--batch_size", type=positive, default=64, help="training batch size")
    tr.add_argument("--dropout_site", choices=["lstm", "output"], default="lstm", help="decoder dropout on the "
                    "LSTM output, before attention, or on the attentional output, after it (the report's ablation)")
    tr.add_argument("--plot", action="store_true", help="also draw <name>-train.pdf/.png, validation CER per epoch")
    tr.add_argument("--resume", action="store_true", help="reuse the checkpoint and its record when both hold a "
                    "run of this very config (./reproduce.sh)")
    te = modes.add_parser("test", help="test a checkpoint on the test set", **kw)
    te.add_argument("--use_attn", action="store_true", help="the default checkpoint is attn.pt")
    te.add_argument("--topp", type=utils.in_range(float, 0.0, 1.0, low_open=True), default=None,
                    help="nucleus sampling with this p in (0, 1] (default: greedy decoding)")
    te.add_argument("--beam_size", type=positive, nargs="+", default=None, help="beam search with these sizes")
    te.add_argument("--k", type=positive, default=3, help="predictions per word for WER@k: samples (--topp) "
                    "or the best distinct hypotheses (--beam_size)")
    te.add_argument("--plot_attn", type=utils.in_range(int, 0), default=0, metavar="N",
                    help="draw the attention weights of N test words")
    sp = modes.add_parser("spell", help="spell your own phoneme strings (arguments, or one per line on stdin)", **kw)
    sp.add_argument("phonemes", nargs="*", metavar="PHONEMES", help="space-separated IPA strings such as 'k æ t'")
    sp.add_argument("--k", type=positive, default=5, help="spellings per word (the beam size)")
    for q in (te, sp):
        q.add_argument("--length_penalty", type=utils.in_range(float, 0.0, 5.0), default=1.0,
                       help="beam search: score = log-probability / length**length_penalty")
    for q in (tr, te):
        q.add_argument("--out_dir", default="results/q3", help="where the JSON results go")
        q.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.mode == "train" and args.hidden_size % 2:
        tr.error(f"--hidden_size must be even (H/2 per encoder direction), got {args.hidden_size}")
    if args.mode == "test" and args.topp is not None and args.beam_size:
        te.error("--topp and --beam_size are two decodings: choose one")
    args.checkpoint_default = args.checkpoint_name is None
    if args.checkpoint_name is None:
        attn = args.mode == "spell" or args.use_attn or getattr(args, "topp", None) is not None
        args.checkpoint_name = "attn.pt" if attn else "no-attn.pt"
    args.data_fallback, args.data_dir = args.data_dir is None, args.data_dir or "data"
    args.progress = not getattr(args, "quiet", True) and sys.stderr.isatty()
    return args


def main():
    args = parse_args()
    utils.set_threads(args.num_threads)
    utils.configure_seed(args.seed)
    device = utils.get_device(args.device)
    if args.mode != "spell":
        utils.check_folder(args.out_dir, "--out_dir")
    code = {"train": train, "test": test, "spell": spell}[args.mode](args, device)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    utils.cli(main)
