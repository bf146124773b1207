#!/usr/bin/env python
"""Q3: phoneme-to-grapheme conversion with a BiLSTM encoder, an LSTM decoder and Bahdanau attention.

    python hw2-q3.py train [--use_attn]      # 20 epochs, keeps the checkpoint with the lowest validation CER
    python hw2-q3.py test [--topp 0.8]       # greedy, or nucleus sampling with WER@k
"""
import argparse
import os
import sys
import time

import Levenshtein
import torch
import torch.nn as nn
from tqdm import tqdm

import data as p2g
import utils
from models import build_model

CHECKPOINT_KIND = "hw2-q3-p2g-seq2seq"


# ---- choosing the next token -------------------------------------------------------------------

def greedy_next_tokens(logits):
    """(B, V) logits -> (B,) most probable tokens."""
    return logits.argmax(dim=-1)


def greedy_next_token(logits):
    """The skeleton's contract: 1-D logits (V,) -> LongTensor of shape (1,)."""
    return greedy_next_tokens(logits[None])


def nucleus_support(probs, p):
    """(B, V) probabilities -> (B, V) mask of V^(p): the smallest set of most probable tokens whose
    mass is >= p. A token is kept when the mass strictly above it in the ranking is still < p, so
    the token that crosses p is kept and the first token is always kept."""
    sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # (B, V)
    keep_sorted = mass_before < p - 1e-9 * p  # float64 sums: a mass equal to p counts as reaching it
    keep_sorted[:, 0] = True
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def nucleus_sample(logits, p=0.8, generator=None):
    """(B, V) logits -> (B,) tokens sampled from P' = P restricted to V^(p), renormalised by p'."""
    probs = torch.softmax(logits.double(), dim=-1)  # float64: the boundary test above is exact enough
    if p < 1.0:
        probs = probs * nucleus_support(probs, p)
        probs = probs / probs.sum(dim=-1, keepdim=True)  # divide by p'
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def nucleus_sampling(logits, p=0.8, generator=None):
    """The skeleton's contract: 1-D logits (V,) -> LongTensor of shape (1,)."""
    return nucleus_sample(logits[None], p, generator)


# ---- decoding and metrics ----------------------------------------------------------------------

@torch.no_grad()
def decode(model, src, src_lengths, max_len, next_token=greedy_next_tokens):
    """Decode a whole batch, one step for all examples at once: (B, S) -> (B, <=max_len) token ids,
    PAD after each example's EOS."""
    model.eval()
    encoder_outputs, state = model.encoder(src, src_lengths)
    attn = model.decoder.attn
    keys = attn.project_keys(encoder_outputs) if attn is not None else None
    B = src.size(0)
    token = torch.full((B, 1), p2g.SOS, dtype=torch.long, device=src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    out = []
    for _ in range(max_len):
        hidden, state = model.decoder(token, state, encoder_outputs, src_lengths, keys=keys)
        nxt = next_token(model.generator(hidden[:, -1])).masked_fill(finished, p2g.PAD)  # (B,)
        out.append(nxt)
        finished |= nxt == p2g.EOS
        if finished.all():
            break
        token = nxt[:, None]
    return torch.stack(out, dim=1)


def decode_dataset(model, dataset, tgt_vocab, args, device, next_token=greedy_next_tokens):
    """Predicted spellings for every example of dataset, in dataset order (decoded in length-sorted batches)."""
    preds = [None] * len(dataset)
    for idx in dataset.batches(args.eval_batch_size, by_length=True):
        src, src_lengths, _, _ = dataset.batch(idx)
        ids = decode(model, src.to(device), src_lengths.to(device), args.max_len, next_token).cpu().tolist()
        for i, row in zip(idx.tolist(), ids):
            preds[i] = "".join(tgt_vocab.decode(row))
    return preds


def cer_wer(preds, golds):
    """CER = total Levenshtein distance / total gold length; WER = fraction of words not exactly right."""
    dist = sum(Levenshtein.distance(p, g) for p, g in zip(preds, golds))
    cer = dist / sum(len(g) for g in golds)
    wer = sum(p != g for p, g in zip(preds, golds)) / len(golds)
    return cer, wer


def wer_at_k(samples, golds):
    """Fraction of words for which none of the k predictions is right; samples: k lists of predictions."""
    return sum(all(s[i] != g for s in samples) for i, g in enumerate(golds)) / len(golds)


# ---- training ----------------------------------------------------------------------------------

def train_epoch(model, dataset, optimizer, criterion, batch_size, generator, device, progress=False):
    """One pass in shuffled batches; returns the mean of the batch losses."""
    model.train()
    total, n = torch.zeros((), device=device), 0
    for idx in tqdm(dataset.batches(batch_size, generator=generator), leave=False, disable=not progress):
        src, src_lengths, tgt, _ = (t.to(device, non_blocking=True) for t in dataset.batch(idx))
        logits, _ = model(src, src_lengths, tgt[:, :-1])  # (B, T-1, V): inputs SOS y_1 .. y_{T-1}
        loss = criterion(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        n += 1
    return (total / n).item()


def checkpoint_stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def train(args, device):
    utils.check_writable(args.checkpoint_name)
    corpus, source = load_corpus_or_die(args)
    src_vocab = p2g.Vocabulary.build(p for p, _ in corpus["train"])
    tgt_vocab = p2g.Vocabulary.build(w for _, w in corpus["train"])
    train_set = p2g.Seq2SeqDataset(corpus["train"], src_vocab, tgt_vocab)
    valid_set = p2g.Seq2SeqDataset(corpus["valid"], src_vocab, tgt_vocab)
    golds = [w for _, w in corpus["valid"]]

    config = {"use_attn": args.use_attn, "hidden_size": args.hidden_size, "dropout": args.dropout,
              "lr": args.lr, "n_epochs": args.n_epochs, "batch_size": args.batch_size, "seed": args.seed,
              "max_len": args.max_len, "data": source}
    model = build_model(len(src_vocab), len(tgt_vocab), args.hidden_size, args.dropout, args.use_attn).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss(ignore_index=p2g.PAD)
    generator = torch.Generator().manual_seed(args.seed)
    print(f"{'attention' if args.use_attn else 'no attention'}: {sum(p.numel() for p in model.parameters()):,} "
          f"parameters; vocabularies {len(src_vocab)} phonemes, {len(tgt_vocab)} characters; device {device}")

    history = {"epoch": [], "train_loss": [], "val_cer": [], "val_wer": [], "seconds": []}
    best_cer, best_epoch, start = float("inf"), 0, time.time()
    for epoch in range(1, args.n_epochs + 1):
        t0 = time.time()
        loss = train_epoch(model, train_set, optimizer, criterion, args.batch_size, generator, device, args.progress)
        val_cer, val_wer = cer_wer(decode_dataset(model, valid_set, tgt_vocab, args, device), golds)
        for k, v in zip(history, (epoch, loss, val_cer, val_wer, time.time() - t0)):
            history[k].append(round(v, 6) if isinstance(v, float) else v)
        mark = ""
        if val_cer < best_cer:
            best_cer, best_epoch, mark = val_cer, epoch, " *"
            utils.save_checkpoint({
                "kind": CHECKPOINT_KIND, "config": config, "epoch": epoch, "val_cer": val_cer, "val_wer": val_wer,
                "src_vocab": src_vocab.itos, "tgt_vocab": tgt_vocab.itos, "model": model.state_dict(),
            }, args.checkpoint_name)
        print(f"epoch {epoch:2d}/{args.n_epochs} | train loss {loss:.4f} | val CER {val_cer:.4f} "
              f"| val WER {val_wer:.4f} | {time.time() - t0:.1f} s{mark}", flush=True)

    stem = os.path.join(args.out_dir, checkpoint_stem(args.checkpoint_name))
    utils.plot(history["epoch"], {f"attention: {args.use_attn}": history["val_cer"]}, "Validation CER",
               f"{stem}-err_rate", title=f"{checkpoint_stem(args.checkpoint_name)}: validation CER per epoch")
    utils.save_json({"checkpoint": args.checkpoint_name, "config": config, "history": history,
                     "best_epoch": best_epoch, "best_val_cer": best_cer,
                     "best_val_wer": history["val_wer"][best_epoch - 1],
                     "wall_seconds": round(time.time() - start, 1), "device": str(device),
                     "num_threads": torch.get_num_threads(), "torch": torch.__version__}, f"{stem}-train.json")
    print(f"best validation CER {best_cer:.4f} at epoch {best_epoch}; checkpoint {args.checkpoint_name}; "
          f"wrote {stem}-train.json and {stem}-err_rate.pdf")


# ---- testing -----------------------------------------------------------------------------------

def load_checkpoint(path, device):
    """Model, vocabularies and config from a checkpoint written by train (one-line error otherwise)."""
    if not os.path.exists(path):
        utils.die(f"--checkpoint_name {path}: no such checkpoint (run `python hw2-q3.py train` first)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        utils.die(f"--checkpoint_name {path}: not a readable checkpoint ({type(e).__name__})")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        utils.die(f"--checkpoint_name {path}: not a hw2-q3.py checkpoint")
    cfg = ckpt["config"]
    src_vocab, tgt_vocab = p2g.Vocabulary(ckpt["src_vocab"]), p2g.Vocabulary(ckpt["tgt_vocab"])
    model = build_model(len(src_vocab), len(tgt_vocab), cfg["hidden_size"], cfg["dropout"], cfg["use_attn"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), src_vocab, tgt_vocab, ckpt


def test(args, device):
    model, src_vocab, tgt_vocab, ckpt = load_checkpoint(args.checkpoint_name, device)
    cfg = ckpt["config"]
    corpus, _ = load_corpus_or_die(args)
    test_set = p2g.Seq2SeqDataset(corpus["test"], src_vocab, tgt_vocab)
    phonemes, golds = [" ".join(p) for p, _ in corpus["test"]], [w for _, w in corpus["test"]]
    print(f"checkpoint {args.checkpoint_name}: attention {cfg['use_attn']}, epoch {ckpt['epoch']}, "
          f"val CER {ckpt['val_cer']:.4f}")

    gen = torch.Generator(device=device).manual_seed(args.seed)
    if args.topp is None:
        next_token, decoding = greedy_next_tokens, "greedy"
    else:
        next_token, decoding = (lambda logits: nucleus_sample(logits, args.topp, gen)), f"topp{args.topp:g}"
    t0 = time.time()
    preds = decode_dataset(model, test_set, tgt_vocab, args, device, next_token)
    decode_seconds = time.time() - t0
    cer, wer = cer_wer(preds, golds)
    print(f"Test CER: {cer:.4f}, Test WER: {wer:.4f}")
    result = {"checkpoint": args.checkpoint_name, "config": cfg, "best_epoch": ckpt["epoch"],
              "decoding": decoding, "topp": args.topp, "k": args.k, "seed": args.seed, "max_len": args.max_len,
              "cer": cer, "wer": wer, "decode_seconds": round(decode_seconds, 3)}
    examples = [{"phonemes": ph, "gold": g, "pred": p} for ph, g, p in zip(phonemes, golds, preds)]
    if args.topp is not None:
        samples = [decode_dataset(model, test_set, tgt_vocab, args, device, next_token) for _ in range(args.k)]
        result["wer_at_k"] = wer_at_k(samples, golds)
        print(f"Test WER@{args.k}: {result['wer_at_k']:.4f}")
        varied = [i for i in range(len(golds)) if len({s[i] for s in samples}) > 1]
        result["n_varied"] = len(varied)
        for i, ex in enumerate(examples):
            ex["samples"] = [s[i] for s in samples]
        print(f"{len(varied)} of {len(golds)} words got differing samples; the first 10:")
        for i in varied[:10]:
            print(f"  /{phonemes[i]}/  samples: {', '.join(s[i] for s in samples)}  | gold: {golds[i]}")
    result["examples"] = examples
    path = os.path.join(args.out_dir, f"{checkpoint_stem(args.checkpoint_name)}-test-{decoding}.json")
    utils.save_json(result, path)
    print(f"wrote {path}")
    return result


# ---- command line ------------------------------------------------------------------------------

def load_corpus_or_die(args):
    try:
        return p2g.load_corpus(args.data_dir, args.data_dir_given)
    except p2g.DataError as e:
        utils.die(str(e))


def topp_value(s):
    v = float(s)
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {s}")
    return v


def positive_int(s):
    v = int(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("mode", choices=["train", "test"], help="train a model, or test a checkpoint")
    p.add_argument("--data_dir", default=None,
                   help="folder with train/valid/test.tsv (default data/, with a loud fallback to an "
                        "ISLEX-based set when data/train.tsv is absent)")
    p.add_argument("--lr", type=float, default=0.003, help="Adam learning rate")
    p.add_argument("--dropout", type=float, default=0.3, help="dropout on embeddings and final outputs")
    p.add_argument("--n_epochs", type=positive_int, default=20, help="training epochs")
    p.add_argument("--batch_size", type=positive_int, default=64, help="training batch size")
    p.add_argument("--eval_batch_size", type=positive_int, default=500, help="decoding batch size")
    p.add_argument("--hidden_size", type=positive_int, default=128, help="hidden size H (H/2 per encoder direction)")
    p.add_argument("--seed", type=int, default=42, help="one seed for python, numpy, torch and sampling")
    p.add_argument("--use_attn", action="store_true", help="train with Bahdanau attention")
    p.add_argument("--checkpoint_name", default=None,
                   help="checkpoint file (default model.pt, or model-attn.pt with --use_attn)")
    p.add_argument("--topp", type=topp_value, default=None,
                   help="test: nucleus sampling with this p in (0, 1] (default: greedy decoding)")
    p.add_argument("--k", type=positive_int, default=3, help="test with --topp: samples per word for WER@k")
    p.add_argument("--max_len", type=positive_int, default=50, help="longest spelling decoded")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when available)")
    p.add_argument("--num_threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out_dir", default="results/q3", help="where the JSON results and plots go")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if not 0.0 <= args.dropout < 1.0:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.checkpoint_name is None:
        args.checkpoint_name = "model-attn.pt" if args.use_attn else "model.pt"
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
    utils.check_writable(os.path.join(args.out_dir, "x.json"))
    if args.mode == "train":
        train(args, device)
    else:
        return test(args, device)


if __name__ == "__main__":
    main()
