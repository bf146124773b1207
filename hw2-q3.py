#!/usr/bin/env python
"""Q3: phoneme-to-grapheme conversion with a BiLSTM encoder, an LSTM decoder and Bahdanau attention.

    python hw2-q3.py train [--use_attn]      # 20 epochs, keeps the checkpoint with the lowest validation CER
    python hw2-q3.py test [--topp 0.8]       # greedy, or nucleus sampling with WER@k
    python hw2-q3.py spell "k æ t"           # the 5 best spellings of your own words, with probabilities
"""
import argparse
import math
import os
import sys
import time

import Levenshtein
import torch
import torch.nn as nn
from tqdm import tqdm

import checkpoints
import data as p2g
import decoding
import diagnostics
import utils


# ---- choosing the next token (the skeleton's two functions) -----------------------------------

def greedy_next_token(logits):
    """logits (..., V) -> the most probable token (..., 1); 1-D logits (V,) give shape (1,), as the skeleton has it."""
    return logits.argmax(dim=-1, keepdim=True)


def nucleus_sampling(logits, p=0.8, generator=None):
    """Top-p sampling: logits (..., V) -> a token (..., 1) drawn from P' = P restricted to V^(p), the
    smallest set of most probable tokens whose mass reaches p, renormalised by that mass p'.

    Self-contained, so that it can be pasted into the course's hw2-q3.py; batched logits (B, V) give (B, 1).
    """
    probs = torch.softmax(logits.double(), dim=-1)  # float64: the boundary test below is exact enough
    if p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass strictly above each token
        keep = mass_before < p - 1e-9 * p  # the token that crosses p is kept; a mass equal to p reaches it
        keep[..., 0] = True
        probs = probs * torch.zeros_like(keep).scatter(-1, order, keep)
        probs = probs / probs.sum(dim=-1, keepdim=True)  # divide by p'
    return torch.multinomial(probs, 1, generator=generator)


# ---- metrics -------------------------------------------------------------------------------------

def cer_wer(preds, golds):
    """CER = total Levenshtein distance / total gold length; WER = fraction of words not exactly right."""
    dist = sum(Levenshtein.distance(p, g) for p, g in zip(preds, golds))
    cer = dist / sum(len(g) for g in golds)
    wer = sum(p != g for p, g in zip(preds, golds)) / len(golds)
    return cer, wer


def wer_at_k(samples, golds):
    """Fraction of words for which none of the k predictions is right; samples: k lists of predictions."""
    return sum(all(s[i] != g for s in samples) for i, g in enumerate(golds)) / len(golds)


# ---- training ------------------------------------------------------------------------------------

def train_epoch(model, dataset, optimizer, criterion, batch_size, generator, device, progress=False):
    """One pass in shuffled batches; returns the mean of the batch losses."""
    model.train()
    total, n = torch.zeros((), device=device), 0
    for idx in tqdm(dataset.batches(batch_size, generator=generator), leave=False, disable=not progress):
        src, src_lengths, tgt, _ = (t.to(device, non_blocking=True) for t in dataset.batch(idx))
        logits, _ = model(src, src_lengths, tgt)  # (B, T-1, V): the decoder reads SOS y_1 .. y_{T-1}
        loss = criterion(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        n += 1
    return (total / n).item()


PRESETS = {  # --preset strong: the strongest model of the report's "how far can this data go" section
    "strong": {"use_attn": True, "hidden_size": 256, "enc_layers": 2, "label_smoothing": 0.1,
               "lr_schedule": "cosine", "n_epochs": 30, "select_on": "wer"},
}


def checkpoint_stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def train(args, device):
    utils.check_writable(args.checkpoint_name)
    corpus, source = load_corpus_or_die(args)
    src_vocab, tgt_vocab, sets = p2g.build_datasets(corpus, ("train", "valid"))
    golds = [w for _, w in corpus["valid"]]
    config = {k: getattr(args, k) for k in checkpoints.MODEL_KEYS + checkpoints.TRAIN_KEYS}
    config["data"] = source
    model = checkpoints.model_from_config(config, len(src_vocab), len(tgt_vocab)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.n_epochs) if args.lr_schedule == "cosine" else None
    criterion = nn.CrossEntropyLoss(ignore_index=p2g.PAD, label_smoothing=args.label_smoothing)
    generator = torch.Generator().manual_seed(args.seed)
    print(f"{'attention' if args.use_attn else 'no attention'}: {sum(p.numel() for p in model.parameters()):,} "
          f"parameters; vocabularies {len(src_vocab)} phonemes, {len(tgt_vocab)} characters; device {device}")

    history = {"epoch": [], "train_loss": [], "val_cer": [], "val_wer": [], "seconds": []}
    best, best_epoch, start = (float("inf"),), 0, time.time()
    for epoch in range(1, args.n_epochs + 1):
        t0 = time.time()
        loss = train_epoch(model, sets["train"], optimizer, criterion, args.batch_size, generator, device,
                           args.progress)
        if schedule is not None:
            schedule.step()
        model.eval()
        preds = decoding.decode_dataset(model, sets["valid"], tgt_vocab, args.eval_batch_size, args.max_len)
        val_cer, val_wer = cer_wer(preds, golds)
        for k, v in zip(history, (epoch, loss, val_cer, val_wer, time.time() - t0)):
            history[k].append(round(v, 6) if isinstance(v, float) else v)
        mark, score = "", (val_cer,) if args.select_on == "cer" else (val_wer, val_cer)
        if score < best:
            best, best_epoch, best_vals, mark = score, epoch, (val_cer, val_wer), " *"
            checkpoints.save(args.checkpoint_name, model, config, src_vocab, tgt_vocab, epoch=epoch,
                             val_cer=val_cer, val_wer=val_wer)
        print(f"epoch {epoch:2d}/{args.n_epochs} | train loss {loss:.4f} | val CER {val_cer:.4f} "
              f"| val WER {val_wer:.4f} | {time.time() - t0:.1f} s{mark}", flush=True)

    name = checkpoint_stem(args.checkpoint_name)
    stem = os.path.join(args.out_dir, name)
    utils.plot(history["epoch"], {f"attention: {args.use_attn}": history["val_cer"]}, "Validation CER",
               f"{stem}-err_rate", title=f"Validation CER per epoch ({'with' if args.use_attn else 'no'} attention)")
    utils.save_json({"checkpoint": args.checkpoint_name, "config": config, "history": history,
                     "best_epoch": best_epoch, "best_val_cer": best_vals[0], "best_val_wer": best_vals[1],
                     "wall_seconds": round(time.time() - start, 1), "device": str(device),
                     "num_threads": torch.get_num_threads(), "torch": torch.__version__}, f"{stem}-train.json")
    print(f"best validation {args.select_on.upper()} {best[0]:.4f} at epoch {best_epoch}; checkpoint {args.checkpoint_name}; "
          f"wrote {stem}-train.json and {stem}-err_rate.pdf")


# ---- testing -------------------------------------------------------------------------------------

def test(args, device):
    """Greedy, nucleus-sampling or beam-search test results: a list with one result per decoding."""
    model, src_vocab, tgt_vocab, ckpt = checkpoints.load_or_die(args.checkpoint_name, device)
    cfg = ckpt["config"]
    corpus, _ = load_corpus_or_die(args)
    test_set = p2g.Seq2SeqDataset(corpus["test"], src_vocab, tgt_vocab)
    phonemes, golds = [" ".join(p) for p, _ in corpus["test"]], [w for _, w in corpus["test"]]
    print(f"checkpoint {args.checkpoint_name}: attention {cfg['use_attn']}, epoch {ckpt['epoch']}, "
          f"val CER {ckpt['val_cer']:.4f}")
    stem = os.path.join(args.out_dir, checkpoint_stem(args.checkpoint_name))
    if args.plot_attn and model.decoder.attn is None:
        utils.die("--plot_attn: this checkpoint has no attention")
    if args.plot_attn:
        words = diagnostics.plot_attention(model, test_set, src_vocab, tgt_vocab, args.plot_attn, args.max_len,
                                           f"{stem}-attention")
        utils.save_json({"checkpoint": args.checkpoint_name, "words": words}, f"{stem}-attention.json")
    base = {"checkpoint": args.checkpoint_name, "config": cfg, "best_epoch": ckpt["epoch"], "topp": args.topp,
            "k": args.k, "seed": args.seed, "max_len": args.max_len}
    if args.beam_size:
        return [test_beam(model, test_set, args, n, phonemes, golds, dict(base), stem, tgt_vocab)
                for n in args.beam_size]

    gen = torch.Generator(device=device).manual_seed(args.seed)
    if args.topp is None:
        next_token, decoding_name = greedy_next_token, "greedy"
    else:
        next_token, decoding_name = (lambda logits: nucleus_sampling(logits, args.topp, gen)), f"topp{args.topp:g}"
    run = lambda: decoding.decode_dataset(model, test_set, tgt_vocab, args.eval_batch_size, args.max_len, next_token)
    t0 = time.time()
    preds = run()
    decode_seconds = time.time() - t0
    cer, wer = cer_wer(preds, golds)
    print(f"Test CER: {cer:.4f}, Test WER: {wer:.4f}")
    result = dict(base, decoding=decoding_name, cer=cer, wer=wer, decode_seconds=round(decode_seconds, 3))
    examples = [{"phonemes": ph, "gold": g, "pred": p} for ph, g, p in zip(phonemes, golds, preds)]
    if args.topp is None:
        result["errors"] = diagnostics.error_analysis(examples, f"{stem}-test-greedy")
    else:
        samples = [run() for _ in range(args.k)]
        result["wer_at_k"] = wer_at_k(samples, golds)
        print(f"Test WER@{args.k}: {result['wer_at_k']:.4f}")
        varied = [i for i in range(len(golds)) if len({s[i] for s in samples}) > 1]
        result["n_varied"] = len(varied)
        for i, ex in enumerate(examples):
            ex["samples"] = [s[i] for s in samples]
        print(f"{len(varied)} of {len(golds)} words got differing samples; the first 10:")
        for i in varied[:10]:
            print(f"  /{phonemes[i]}/  samples: {', '.join(s[i] for s in samples)}  | gold: {golds[i]}")
    return [write_test_result(result, examples, stem)]


def test_beam(model, test_set, args, beam_size, phonemes, golds, result, stem, tgt_vocab):
    """Beam search of one size: CER/WER of the best hypothesis, WER@k over the k best distinct ones,
    and how many of the wrong words are search errors."""
    t0 = time.time()
    nbest = decoding.beam_search_dataset(model, test_set, tgt_vocab, args.eval_batch_size, args.max_len,
                                         beam_size, args.length_penalty)
    decode_seconds = time.time() - t0
    hyps, best_scores = [[w for w, _, _ in h] for h in nbest], [h[0][2] for h in nbest]
    preds = [h[0] for h in hyps]
    cer, wer = cer_wer(preds, golds)
    topk = [[h[j] if j < len(h) else "" for h in hyps] for j in range(args.k)]
    result.update(decoding=f"beam{beam_size}", beam_size=beam_size, length_penalty=args.length_penalty,
                  cer=cer, wer=wer, wer_at_k=wer_at_k(topk, golds), decode_seconds=round(decode_seconds, 3))
    print(f"beam {beam_size}: Test CER: {cer:.4f}, Test WER: {wer:.4f}, Test WER@{args.k}: {result['wer_at_k']:.4f} "
          f"({decode_seconds:.1f} s)")
    result.update(diagnostics.search_errors(model, test_set, preds, golds, best_scores, args.eval_batch_size,
                                            args.length_penalty))
    print(f"  of {result['n_wrong']} wrong words, {result['search_errors']} are search errors (the model prefers "
          f"the gold spelling) and {result['model_errors']} model errors")
    examples = [{"phonemes": ph, "gold": g, "pred": h[0], "nbest": h[:args.k]}
                for ph, g, h in zip(phonemes, golds, hyps)]
    return write_test_result(result, examples, stem)


def write_test_result(result, examples, stem):
    result, path = dict(result, examples=examples), f"{stem}-test-{result['decoding']}.json"
    utils.save_json(result, path)
    print(f"wrote {path}")
    return result


# ---- spell: any checkpoint on your own words ---------------------------------------------------

def spell(args, device):
    """One line per phoneme string: the phonemes, a tab, then the K best spellings, each with its
    probability (the model's, EOS included), tab-separated. Returns the lines."""
    model, src_vocab, tgt_vocab, _ = checkpoints.load_or_die(args.checkpoint_name, device)
    words = [w.split() for w in (args.phonemes or sys.stdin.read().splitlines()) if w.strip()]
    unknown = sorted({p for w in words for p in w if p not in src_vocab.stoi})
    if unknown:
        print(f"warning: phonemes unknown to {args.checkpoint_name}, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    if not words:
        return []
    k = args.beam_size[0] if args.beam_size else 5
    dataset = p2g.Seq2SeqDataset([(w, "?") for w in words], src_vocab, tgt_vocab)
    nbest = decoding.beam_search_dataset(model, dataset, tgt_vocab, args.eval_batch_size, args.max_len, k,
                                         args.length_penalty)
    lines = []
    for w, hyps in zip(words, nbest):
        by_prob = sorted(((math.exp(lp), spelling) for spelling, lp, _ in hyps), reverse=True)
        lines.append("\t".join([" ".join(w)] + [f"{spelling} {p:.2f}" for p, spelling in by_prob]))
        print(lines[-1])
    return lines


# ---- command line ------------------------------------------------------------------------------

def load_corpus_or_die(args):
    try:
        return p2g.load_corpus(args.data_dir, args.data_dir_given)
    except p2g.DataError as e:
        utils.die(str(e))


positive_int = utils.in_range(int, 1)


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spelling = next((a for a in argv if a in ("train", "test", "spell")), None) == "spell"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("mode", choices=["train", "test", "spell"],
                   help="train a model, test a checkpoint, or spell the PHONEMES given (or read from stdin)")
    p.add_argument("phonemes", nargs="*", metavar="PHONEMES",
                   help="spell: space-separated IPA strings such as 'k æ t' (default: one per line on stdin)")
    p.add_argument("--data_dir", default=None, help="folder with train/valid/test.tsv (default data/, with a loud "
                   "fallback to an ISLEX-based set when data/train.tsv is absent)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="train: defaults of a stronger model (its flags can still be given): " +
                        "; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    p.add_argument("--lr", type=utils.in_range(float, 0.0, low_open=True), default=0.003, help="Adam learning rate")
    p.add_argument("--lr_schedule", choices=["none", "cosine"], default="none", help="learning rate over the epochs")
    p.add_argument("--label_smoothing", type=utils.in_range(float, 0.0, 0.99), default=0.0, help="of the training loss")
    p.add_argument("--dropout", type=utils.in_range(float, 0.0, 0.99), default=0.3,
                   help="dropout on embeddings and final outputs")
    p.add_argument("--n_epochs", type=positive_int, default=20, help="training epochs")
    p.add_argument("--select_on", choices=["cer", "wer"], default="cer",
                   help="keep the checkpoint of the epoch with the lowest validation CER (ties: first) or WER (ties: CER)")
    p.add_argument("--batch_size", type=positive_int, default=64, help="training batch size")
    p.add_argument("--eval_batch_size", type=positive_int, default=500, help="decoding batch size")
    p.add_argument("--dropout_site", choices=["lstm", "output"], default="lstm",
                   help="decoder dropout on the LSTM output, before attention, or on the final output, after it")
    p.add_argument("--hidden_size", type=positive_int, default=128, help="hidden size H, even (H/2 per encoder direction)")
    p.add_argument("--enc_layers", type=positive_int, default=1, help="BiLSTM encoder layers")
    p.add_argument("--input_feed", action="store_true",
                   help="feed the previous attentional state to the decoder LSTM (Luong et al. 2015; needs --use_attn)")
    p.add_argument("--seed", type=int, default=42, help="one seed for python, numpy, torch and sampling")
    p.add_argument("--use_attn", action="store_true", help="train with Bahdanau attention")
    p.add_argument("--checkpoint_name", default=None, help="checkpoint file (default model.pt, or model-attn.pt "
                   "with --use_attn; test and spell without either take the newer of the two)")
    p.add_argument("--topp", type=utils.in_range(float, 0.0, 1.0, low_open=True), default=None,
                   help="test: nucleus sampling with this p in (0, 1] (default: greedy decoding)")
    p.add_argument("--k", type=positive_int, default=3,
                   help="test: samples (--topp) or best hypotheses (--beam_size) per word for WER@k")
    p.add_argument("--beam_size", type=positive_int, nargs=None if spelling else "+", default=None,
                   help="test: beam search with these beam sizes (e.g. 1 3 5 10); spell: one, the spellings per "
                        "word (default 5)")
    p.add_argument("--length_penalty", type=float, default=1.0,
                   help="beam search: score = log-probability / length**length_penalty")
    p.add_argument("--plot_attn", type=utils.in_range(int, 0), default=0, metavar="N",
                   help="test: draw the attention weights of N test words (attention checkpoints)")
    p.add_argument("--max_len", type=positive_int, default=50, help="longest spelling decoded")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when available)")
    p.add_argument("--num_threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out_dir", default="results/q3", help="where the JSON results and plots go")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_intermixed_args(argv)
    if args.preset:
        p.set_defaults(**PRESETS[args.preset])
        args = p.parse_intermixed_args(argv)
    if args.hidden_size % 2:
        p.error(f"--hidden_size must be even (H/2 per encoder direction), got {args.hidden_size}")
    if args.mode == "train" and args.input_feed and not args.use_attn:
        p.error("--input_feed feeds the attentional state back: it needs --use_attn")
    if args.topp is not None and args.beam_size:
        p.error("--topp and --beam_size are two decodings: choose one")
    if args.phonemes and args.mode != "spell":
        p.error(f"unexpected arguments {' '.join(args.phonemes)!r}: only spell takes phonemes")
    if spelling and args.beam_size:
        args.beam_size = [args.beam_size]
    if args.checkpoint_name is None:
        args.checkpoint_name = checkpoints.default_path(args.mode, args.use_attn)
    args.data_dir_given = args.data_dir is not None
    args.data_dir = args.data_dir or "data"
    args.progress = not args.quiet and sys.stderr.isatty()
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    utils.configure_seed(args.seed)
    device = utils.get_device(args.device)
    if args.mode == "spell":
        return spell(args, device)
    utils.check_writable(os.path.join(args.out_dir, "x.json"))
    return train(args, device) if args.mode == "train" else test(args, device)


if __name__ == "__main__":
    main()
