#!/usr/bin/env python
"""Q3: phoneme-to-grapheme conversion with a BiLSTM encoder, an LSTM decoder and Bahdanau attention.

    python hw2-q3.py train [--use_attn]    # 20 epochs; keeps the epoch of lowest validation CER
    python hw2-q3.py test [--topp 0.8]     # greedy decoding, or nucleus sampling with WER@k

The course skeleton's functions, filled in and batched. A checkpoint holds the model's state_dict
with its config and vocabularies, so test needs only its name. Records go to runs/q3/ (--out_dir).
Default paths (data/, runs/, the checkpoints) are the repository's, wherever the script is started
from; a path given on the command line is taken as given.
"""
import argparse
import math
import os
import random
import sys
import time
from functools import partial
from inspect import signature

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from data import (EOS_IDX, ISLEX_SOURCE, PAD_IDX, SOS_IDX, DataError, Seq2SeqDataset, Vocabulary,
                  build_datasets, load_corpus)
from models import BahdanauAttention, Decoder, Encoder, Seq2Seq
from utils import (InputError, as_recorded, atomic_write, get_device, home, in_range, plot_curves,
                   run, save_json, set_threads)

# ours: the given imports of DataLoader, pyplot, join and collate_samples, and the given
# module-level device, went with the code that used them: train draws its batches, utils draws the
# figures, and the device is --device's (auto: cuda if any)
KIND = "hw2-q3-p2g-seq2seq"  # what our checkpoints say they are
EVAL_BATCH = 500  # words decoded at once
MODE_FLAGS = {"train": {"lr", "dropout", "n_epochs", "batch_size", "hidden_size"},
              "test": {"topp", "k"}}  # the flags of one mode only: the other refuses them
# The assignment's configuration, written once: the flags' defaults and train()'s read it.
CONFIG = {"lr": 0.003, "dropout": 0.3, "n_epochs": 20, "batch_size": 64, "hidden_size": 128,
          "seed": 42, "max_len": 50}


def configure_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed(seed)
        torch.backends.cudnn.deterministic = True


def distance(str1, str2):
    """Simple Levenshtein implementation for evalm."""
    m = np.zeros([len(str2) + 1, len(str1) + 1], dtype=int)
    for x in range(1, len(str2) + 1):
        m[x, 0] = m[x - 1, 0] + 1
    for y in range(1, len(str1) + 1):
        m[0, y] = m[0, y - 1] + 1
    for x in range(1, len(str2) + 1):
        for y in range(1, len(str1) + 1):
            if str1[y - 1] == str2[x - 1]:
                dg = 0
            else:
                dg = 1
            m[x, y] = min(
                m[x - 1, y] + 1, m[x, y - 1] + 1, m[x - 1, y - 1] + dg
            )
    return m[len(str2), len(str1)]


def train(data, model, lr, n_epochs, checkpoint_name, max_len=CONFIG["max_len"],
          batch_size=CONFIG["batch_size"], seed=CONFIG["seed"],
          select_on="cer", lr_schedule="none", batches=None, meta=None, progress=False, log=print,
          record=None):
    """Train with Adam on data[0], validate greedily on data[1] after every epoch, and save the
    epoch with the lowest validation CER (select_on="wer": WER, then CER) to checkpoint_name, with
    meta (config, vocabularies). A non-finite loss or weight stops the run as "diverged".
    batches(dataset, batch_size, rng) -> index batches: one shuffle a epoch by default.
    Returns (the lowest validation CER, every epoch's), as the skeleton's train; record, a dict,
    receives the run's status, history and best epoch."""
    # ours, instead of the given loop: batches drawn by index from our own random generator (the
    # order the committed runs were trained in; a DataLoader's shuffle would draw others), the
    # mean loss of the epoch, a checkpoint with config and vocabularies, divergence stopping the run
    train_set, val_set = (getattr(d, "dataset", d) for d in data[:2])  # datasets, or loaders
    criterion = nn.CrossEntropyLoss(ignore_index=PAD_IDX)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_epochs) \
        if lr_schedule == "cosine" else None
    rng = torch.Generator().manual_seed(seed)
    batches = batches or (lambda dataset, size, rng: dataset.batches(size, rng=rng))
    history = {"epoch": [], "train_loss": [], "val_cer": [], "val_wer": [], "seconds": []}
    best, status = {"score": [math.inf], "epoch": 0, "val_cer": None, "val_wer": None}, "completed"
    try:  # Ctrl-C ends the run as "interrupted": the epochs run are recorded, the checkpoint whole
        for epoch in range(1, n_epochs + 1):
            t0 = time.time()
            loss = train_epoch(model, batches(train_set, batch_size, rng), train_set, optimizer,
                               criterion, progress)
            finite = all(torch.isfinite(p).all() for p in model.parameters())
            if not math.isfinite(loss) or not finite:
                status = "diverged"
                log(f"epoch {epoch:2d}/{n_epochs} | the loss or a weight is not finite: the run "
                    f"stops here; {checkpoint_name} keeps epoch {best['epoch'] or 'none'}")
                break
            if schedule is not None:
                schedule.step()
            val_cer, val_wer = test(model, val_set, max_len=max_len)
            row = {"epoch": epoch, "train_loss": loss, "val_cer": val_cer, "val_wer": val_wer,
                   "seconds": time.time() - t0}
            for k, v in row.items():
                history[k].append(round(v, 6) if isinstance(v, float) else v)
            score = [val_cer] if select_on == "cer" else [val_wer, val_cer]
            mark = " *" if score < best["score"] else ""
            if mark:
                best = {"score": score, "epoch": epoch, "val_cer": val_cer, "val_wer": val_wer}
                state = {**(meta or {}), "model": model.state_dict(), "epoch": epoch,
                         "val_cer": val_cer, "val_wer": val_wer}
                atomic_write(checkpoint_name, lambda f: torch.save(state, f))
            log(f"epoch {epoch:2d}/{n_epochs} | train loss {loss:.4f} | val CER {val_cer:.4f} | "
                f"val WER {val_wer:.4f} | {row['seconds']:.1f} s{mark}")
    except KeyboardInterrupt:
        status = "interrupted"
    (record if record is not None else {}).update(
        status=status, history=history, best_epoch=best["epoch"], best_val_cer=best["val_cer"],
        best_val_wer=best["val_wer"], wall_seconds=round(sum(history["seconds"]), 1))
    return min(history["val_cer"], default=math.inf), history["val_cer"]


def generate(model, data_iter, max_len=CONFIG["max_len"], p=None, rng=None, batch_size=EVAL_BATCH):
    """The spelling of every word of data_iter (a Seq2SeqDataset, or a DataLoader of one), in order:
    greedy, or nucleus sampling with p. Words are decoded in batches sorted by length."""
    # ours, instead of the given loop over words one at a time: whole batches at once (the same
    # spellings, a test checks), from a dataset or a DataLoader of any batch size
    dataset = getattr(data_iter, "dataset", data_iter)
    next_token = (greedy_next_token if p is None
                  else partial(nucleus_sampling, p=p, rng=rng))
    device = next(model.parameters()).device
    model.eval()
    preds = [None] * len(dataset)
    for idx in dataset.batches(batch_size, by_length=True):
        src, src_lengths, _, _ = dataset.batch(idx)
        ids = decode_batch(model, src.to(device), src_lengths.to(device), max_len, next_token)
        for i, row in zip(idx.tolist(), ids.tolist()):
            preds[i] = "".join(dataset.tgt_vocab.decode(row))
    return preds


def evaluate(predictions, gold_data_iter):
    """
    Return
        - character error rate (the levenshtein distance normalized by the true length)
        - word error rate (rate of examples where the prediction does not exactly match the true target)
    """  # noqa: E501 (given)
    gold_len = 0
    total_distance = 0
    incorrect = 0
    pairs = getattr(gold_data_iter, "dataset", gold_data_iter).pairs  # ours: a dataset too
    for pred, (src, tgt) in zip(predictions, pairs):
        tgt = "".join(tgt)

        d_list = int(distance(tgt, pred))  # ours: a Python int, not numpy's

        total_distance += d_list
        gold_len += len(tgt)
        if tgt != pred:
            incorrect += 1

    cer = total_distance / gold_len
    wer = incorrect / len(predictions)
    return cer, wer


def test(model, data_iter, max_len=CONFIG["max_len"], p=None, rng=None, return_predictions=False):
    # ours: rng, the random generator of nucleus sampling; the predictions too, if asked for
    predictions = generate(model, data_iter, max_len=max_len, p=p, rng=rng)
    cer, wer = evaluate(predictions, data_iter)
    if return_predictions:
        return cer, wer, predictions
    return cer, wer


def compute_wer_at_k(model, gold_data_iter, max_len=CONFIG["max_len"], p=None, k=1, ex_to_print=10,
                     rng=None, return_samples=False):
    # ours: rng, the random generator of nucleus sampling; the k samples too, if asked for
    multipreds = []
    true_targets = []
    for i in range(k):
        predictions = generate(model, gold_data_iter, max_len=max_len, p=p, rng=rng)
        multipreds.append(predictions)
    pred_sets = [set(p) for p in zip(*multipreds)]

    incorrect = 0
    pairs = getattr(gold_data_iter, "dataset", gold_data_iter).pairs  # ours: a dataset too
    for pred_set, (src, tgt) in zip(pred_sets, pairs):
        tgt = "".join(tgt)
        true_targets.append(tgt)

        if tgt not in pred_set:
            incorrect += 1

    wer_at_k = incorrect / len(predictions)
    examples = [(t, p) for t, p in zip(true_targets, pred_sets) if len(p) > 1]
    if ex_to_print > 0:
        print(f"Printing first {ex_to_print} examples with multiple predictions:")
    for ex in examples[: ex_to_print]:
        print(ex)
    if return_samples:
        return wer_at_k, multipreds
    return wer_at_k


def greedy_next_token(logits):
    """
    Performs greedy decoding.
    logits: 1d tensor of unnormalized scores for each class. Shape: (vocab_size,)

    Returns:
        next_token: index of the next predicted token. Shape: (1,)
    Ours: logits may be (..., vocab_size), a token for each row.
    """
    return logits.argmax(-1, keepdim=True)


def nucleus_sampling(logits, p=0.8, rng=None):
    """
    Performs nucleus (top-p) sampling
    logits: 1d tensor of unnormalized scores for each class. Shape: (vocab_size,)
    p: Cumulative probability threshold to be used. (scalar)

    Returns:
        next_token: index of the next predicted token. Shape: (1,)
    Ours: logits may be (..., vocab_size), a token for each row; rng, the random generator.
    """
    # TODO: Top-p (nucleus) sampling  (https://arxiv.org/pdf/1904.09751 - Section 3.1)
    # You are asked to implement the following steps:
    # 1. Transform the given logits into probabilities.
    # 2. Select the smallest set of tokens whose cumulative probability mass exceeds p.
    # This is equivalent to selecting the tokens with highest probabilities, whose cumulative probability mass equals or exceeds p.  # noqa: E501 (given)
    # 3. Rescale the distribution and sample from the resulting set of tokens.
    # Implementation of the steps as described above:
    probs = torch.softmax(logits.double(), dim=-1)  # float64: exact enough to compare with p
    if p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # the mass above each token
        keep = mass_before < p - 1e-9 * p  # the token that reaches p is kept, and none after it
        keep[..., 0] = True
        probs = probs * torch.zeros_like(keep).scatter(-1, order, keep)
        probs = probs / probs.sum(dim=-1, keepdim=True)  # divide by p'
    return torch.multinomial(probs, 1, generator=rng)


# ---- ours: decoding whole batches, intervals, training epochs, checkpoints, the two modes ------

@torch.no_grad()
def decode_batch(model, src, src_lengths, max_len, next_token=greedy_next_token):
    """(B, S) -> (B, <= max_len) token ids, one step for the whole batch at once; PAD after EOS."""
    encoder_outputs, state = model.encoder(src, src_lengths)
    # W_h h_i once per batch, not per step, where the decoder takes them (ours does)
    fast = model.decoder.attn is not None and "keys" in signature(model.decoder.forward).parameters
    keys = {"keys": model.decoder.attn.W_h(encoder_outputs)} if fast else {}
    token = torch.full((src.size(0), 1), SOS_IDX, dtype=torch.long, device=src.device)
    finished = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    out = []
    for _ in range(max_len):
        # hidden: (B, 1, H)
        hidden, state = model.decoder(token, state, encoder_outputs, src_lengths, **keys)
        token = next_token(model.generator(hidden[:, -1])).masked_fill(finished[:, None], PAD_IDX)
        out.append(token[:, 0])
        finished |= token[:, 0] == EOS_IDX
        if finished.all():
            break
    return torch.stack(out, dim=1)


def bootstrap_ci(errors, sizes, n_resamples=2000, seed=0):
    """95 % percentile bootstrap over the words of the rate sum(errors) / sum(sizes)."""
    errors, sizes = np.asarray(errors, dtype=float), np.asarray(sizes, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(errors), size=(n_resamples, len(errors)))
    rates = errors[idx].sum(1) / sizes[idx].sum(1)
    return [float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))]


def intervals(preds, golds):
    """{"cer_ci": [lo, hi], "wer_ci": [lo, hi]}: 95 % bootstrap intervals over the test words."""
    dist = [int(distance(g, p)) for p, g in zip(preds, golds)]
    return {"cer_ci": bootstrap_ci(dist, [len(g) for g in golds]),
            "wer_ci": bootstrap_ci([p != g for p, g in zip(preds, golds)], [1] * len(golds))}


def train_epoch(model, batches, dataset, optimizer, criterion, progress=False):
    """One pass over the batches (lists of word indices); the mean of the batch losses."""
    device = next(model.parameters()).device
    model.train()
    total = torch.zeros((), device=device)  # summed on the device: no host sync per batch
    for idx in tqdm(batches, leave=False, disable=not progress):
        src, src_lengths, tgt, _ = (t.to(device, non_blocking=True) for t in dataset.batch(idx))
        logits, _ = model(src, src_lengths, tgt)  # (B, T-1, V): it reads SOS y_1 .. y_{T-1}
        loss = criterion(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))  # PAD ignored
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
    return (total / len(batches)).item()


def build_model(config, src_vocab_size, tgt_vocab_size, decoder_class=Decoder):
    """The Seq2Seq model of a config dict (use_attn, hidden_size, dropout), built as the skeleton's
    main builds it; beyond/'s options (enc_layers, dropout_site) are passed where the config has
    them, so that any skeleton-shaped models.py builds the assignment's model."""
    hidden, dropout = config["hidden_size"], config["dropout"]
    encoder = Encoder(src_vocab_size, hidden, PAD_IDX, dropout,
                      **{"num_layers": config[k] for k in ["enc_layers"] if k in config})
    attn = BahdanauAttention(hidden) if config["use_attn"] else None
    decoder = decoder_class(hidden, tgt_vocab_size, attn, PAD_IDX, dropout,
                            **{k: config[k] for k in ["dropout_site"] if k in config})
    return Seq2Seq(encoder, decoder)


def read_corpus(data_dir, splits, fallback=False):
    """(corpus, source) of data.load_corpus, the source a folder as records keep it; a malformed
    file a one-line InputError."""
    try:
        corpus, source = load_corpus(data_dir, splits, fallback=fallback)
    except DataError as e:
        raise InputError(str(e)) from None
    return corpus, source if source == ISLEX_SOURCE else as_recorded(source)


def train_run(config, corpus, checkpoint_name, device, decoder_class=Decoder, batches=None,
              progress=False, log=print):
    """One seed for everything, the datasets, the model of config, train(): the run's record."""
    configure_seed(config["seed"])
    threads = set_threads(config["num_threads"])
    src_vocab, tgt_vocab, sets = build_datasets(corpus, ("train", "valid"))
    model = build_model(config, len(src_vocab), len(tgt_vocab), decoder_class=decoder_class)
    model = model.to(device)
    log(f"{'attention' if config['use_attn'] else 'no attention'}: "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; {len(src_vocab)} phonemes, "
        f"{len(tgt_vocab)} characters; device {device}, {threads} CPU thread(s)")
    meta = {"kind": KIND, "config": config, "src_vocab": src_vocab.symbols,
            "tgt_vocab": tgt_vocab.symbols}
    fit = {}
    train((sets["train"], sets["valid"]), model, config["lr"], config["n_epochs"], checkpoint_name,
          config["max_len"], config["batch_size"], config["seed"], batches=batches, meta=meta,
          progress=progress, log=log, record=fit,
          **{k: config[k] for k in ["select_on", "lr_schedule"] if k in config})
    return {"checkpoint": checkpoint_name, "config": config, **fit, "device": str(device),
            "num_threads": threads, "torch": torch.__version__}


def load_checkpoint(path, device, decoder_for=None):
    """(model in eval mode on device, src_vocab, tgt_vocab, checkpoint); one-line errors otherwise.
    decoder_for(config) gives the decoder's class (beyond/ has one of its own)."""
    if not os.path.isfile(path):
        how = "train --use_attn" if "attn" in path and "no-attn" not in path else "train"
        raise InputError(f"--checkpoint_name {path}: no such checkpoint (first: python hw2-q3.py "
                         f"{how} --checkpoint_name {path})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"--checkpoint_name {path}: not a readable checkpoint "
                         f"({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise InputError(f"--checkpoint_name {path}: not a hw2-q3.py checkpoint")
    config = ckpt.get("config")
    if decoder_for is None and isinstance(config, dict) and config.get("input_feed"):
        raise InputError(f"--checkpoint_name {path}: a model with input feeding: "
                         "see beyond/README.md")
    try:
        src_vocab, tgt_vocab = map(Vocabulary.from_symbols, (ckpt["src_vocab"], ckpt["tgt_vocab"]))
        model = build_model(config, len(src_vocab), len(tgt_vocab),
                            decoder_class=decoder_for(config) if decoder_for else Decoder)
        model.load_state_dict(ckpt["model"])
        ckpt["epoch"]
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"--checkpoint_name {path}: damaged checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:100] if str(e) else ''})") from None
    return model.to(device).eval(), src_vocab, tgt_vocab, ckpt


def stem_of(args):
    return os.path.join(args.out_dir, os.path.splitext(os.path.basename(args.checkpoint_name))[0])


def config_of(args, **extra):
    """What determines a trained model: the checkpoint and the record hold it."""
    return {"use_attn": args.use_attn, "hidden_size": args.hidden_size, "dropout": args.dropout,
            "lr": args.lr, "n_epochs": args.n_epochs, "batch_size": args.batch_size,
            "seed": args.seed, "max_len": args.max_len or CONFIG["max_len"],
            "num_threads": args.num_threads, "data": args.data_dir, **extra}


def train_mode(args, device, extra=None, **options):
    """Train, then write the record and the validation-CER figure. extra: config fields beyond the
    assignment's, and options (decoder_class, batches) the train_run arguments they need."""
    corpus, source = read_corpus(args.data_dir, ("train", "valid"), fallback=args.data_fallback)
    config = config_of(args, **(extra or {}), data=source)
    record = train_run(config, corpus, args.checkpoint_name, device, progress=sys.stderr.isatty(),
                       log=lambda line: print(line, flush=True), **options)
    path = save_json(record, stem_of(args) + "-train.json")
    h = record["history"]
    figure = plot_curves(h["epoch"], {"validation": h["val_cer"]}, "Validation CER",
                         stem_of(args) + "-val_cer", png=True)
    if record["status"] == "interrupted":
        kept = (f"{args.checkpoint_name} holds epoch {record['best_epoch']} (val CER "
                f"{record['best_val_cer']:.4f})" if record["best_epoch"]
                else "no checkpoint written by this run")
        print(f"\ninterrupted after {len(h['epoch'])} epoch(s): {kept}; wrote {path}",
              file=sys.stderr)
        return 130
    if record["status"] != "completed":
        print(f"diverged: wrote {path}")
        return 3
    print(f"best validation CER {record['best_val_cer']:.4f} at epoch {record['best_epoch']}; "
          f"checkpoint {args.checkpoint_name}; wrote {path}, {figure[0]}; trained on "
          + ("the ISLEX fallback, NOT the course data" if config["data"] == ISLEX_SOURCE
             else args.data_dir))
    return 0


def test_mode(args, device):
    model, src_vocab, tgt_vocab, ckpt = load_checkpoint(args.checkpoint_name, device)
    config = ckpt["config"]
    corpus, now = read_corpus(args.data_dir, ("test",), fallback=args.data_fallback)
    if config.get("data", now) != now:
        print(f"warning: {args.checkpoint_name} was trained on {config['data']}; its scores on "
              f"{now} are not comparable", file=sys.stderr)
    test_set = Seq2SeqDataset(corpus["test"], src_vocab, tgt_vocab)
    max_len = args.max_len or config["max_len"]
    rng = torch.Generator(device=device).manual_seed(args.seed)
    print(f"{args.checkpoint_name}: attention {config['use_attn']}, epoch {ckpt['epoch']}, "
          f"val CER {ckpt['val_cer']:.4f}")
    if args.use_attn and not config["use_attn"]:
        print(f"note: {args.checkpoint_name} holds a model without attention; in test, --use_attn "
              "only names the default checkpoint", file=sys.stderr)
    t0 = time.time()
    cer, wer, preds = test(model, test_set, max_len, args.topp, rng, return_predictions=True)
    print(f"Test CER: {cer:.4f}, Test WER: {wer:.4f}"
          + ("" if args.topp is None else f" (one sample per word, nucleus p = {args.topp:g})"))
    result = {"checkpoint": args.checkpoint_name, "config": config, "best_epoch": ckpt["epoch"],
              "decoding": "greedy" if args.topp is None else f"topp{args.topp:g}",
              "topp": args.topp, "k": args.k, "seed": args.seed, "max_len": max_len,
              "decode_seconds": round(time.time() - t0, 3), "cer": cer, "wer": wer,
              **intervals(preds, test_set.golds)}
    examples = [{"phonemes": " ".join(p), "gold": g, "pred": pred}
                for (p, _), g, pred in zip(test_set.pairs, test_set.golds, preds)]
    if args.topp is not None:
        result["wer_at_k"], samples = compute_wer_at_k(model, test_set, max_len, args.topp, args.k,
                                                       rng=rng, return_samples=True)
        result["n_varied"] = sum(len(set(s)) > 1 for s in zip(*samples))
        print(f"Test WER@{args.k}: {result['wer_at_k']:.4f}")
        for ex, s in zip(examples, zip(*samples)):
            ex["samples"] = list(s)
    print("wrote", save_json({**result, "examples": examples},
                             f"{stem_of(args)}-test-{result['decoding']}.json"))
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    positive = in_range(int, 1)
    p.add_argument("mode", choices=["train", "test"], help="train a model, or test a checkpoint")
    p.add_argument("--lr", type=in_range(float, 0, low_open=True), default=CONFIG["lr"],
                   help="Adam's learning rate")
    p.add_argument("--dropout", type=in_range(float, 0, 1, high_open=True),
                   default=CONFIG["dropout"],
                   help="dropout on the embeddings and on the LSTMs' outputs")
    p.add_argument("--n_epochs", type=positive, default=CONFIG["n_epochs"], help="training epochs")
    p.add_argument("--batch_size", type=positive, default=CONFIG["batch_size"],
                   help="training batch size")
    p.add_argument("--hidden_size", type=in_range(int, 2), default=CONFIG["hidden_size"],
                   help="hidden size H, even (H/2 per encoder direction)")
    p.add_argument("--seed", type=int, default=CONFIG["seed"],
                   help="one seed for everything, sampling too")
    p.add_argument("--use_attn", action="store_true", help="Bahdanau attention (test: attn.pt)")
    p.add_argument("--data_dir", default=None, help="folder with train/valid/test.tsv (default: "
                   "data/, or a loud ISLEX-based fallback when data/train.tsv is missing)")
    p.add_argument("--checkpoint_name", default=None, help="checkpoint written or tested (default: "
                   "attn.pt with --use_attn, and in test with --topp, which samples the attention "
                   "model as the assignment does; else no-attn.pt)")
    p.add_argument("--topp", type=in_range(float, 0, 1, low_open=True), default=None,
                   help="test: nucleus sampling with this p in (0, 1] (default: greedy decoding)")
    p.add_argument("--k", type=positive, default=3, help="test: samples per word for WER@k")
    p.add_argument("--max_len", type=positive, default=None,
                   help=f"longest spelling decoded (default: {CONFIG['max_len']} in training, the "
                   "checkpoint's in test)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps, or auto (cuda if any)")
    p.add_argument("--num_threads", type=in_range(int, 0), default=1,
                   help="torch CPU threads (1 gives the committed numbers; 0: torch's default)")
    p.add_argument("--out_dir", default=home("runs/q3"),
                   help="where the JSON records and figures go")
    args = p.parse_args(argv)
    unset = object()  # argparse leaves a namespace's attributes alone unless the flag is given
    given = {k for k, v in vars(p.parse_args(argv, argparse.Namespace(
        **{k: unset for k in vars(args)}))).items() if v is not unset}
    for mode, names in MODE_FLAGS.items():
        for name in sorted(given & names if mode != args.mode else ()):
            p.error(f"argument --{name}: {args.mode} does not take it, only {mode} does")
    if args.hidden_size % 2:
        p.error("argument --hidden_size: must be even (H/2 per encoder direction), "
                f"got {args.hidden_size}")
    args.checkpoint_name = args.checkpoint_name or home(
        "attn.pt" if args.use_attn or args.topp is not None else "no-attn.pt")
    args.data_fallback = args.data_dir is None
    args.data_dir = os.path.normpath(args.data_dir) if args.data_dir else home("data")
    return args


def main(args=None):
    # ours: args are the parsed flags, or a list of them to parse (None: the command line); the
    # given main's data, model and checkpoint are train_mode's and test_mode's
    args = args if isinstance(args, argparse.Namespace) else parse_args(args)
    device = get_device(args.device)
    set_threads(args.num_threads)
    configure_seed(args.seed)
    return (train_mode if args.mode == "train" else test_mode)(args, device)


if __name__ == "__main__":
    run(main)
