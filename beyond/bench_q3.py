#!/usr/bin/env python
"""Q3 speed: one epoch (train + validation decode) of hw2-q3.py, as the assignment's run trains it
and with --bucket, against a per-step-loop reference of the same model, side by side in one run on
the same threads; then decode time per 1,000 words for greedy and beam sizes.

The reference is what the common homework code does: teacher forcing calls the decoder one target
step at a time (re-projecting the encoder keys at every step), and validation decodes word by word.
    python -m beyond.bench_q3 [--data_dir data] [--repeats 2] [--num_threads 1] [--buckets 4 50]
"""
import argparse
import time

import torch
import torch.nn as nn

import data
from beyond import decoding, q3
from beyond.train import bucketed, load_checkpoint
from models import build_model
from utils import configure_seed, save_json


def reference_train_epoch(model, dataset, optimizer, criterion, batch_size, generator):
    """Teacher forcing one step at a time."""
    model.train()
    for idx in dataset.batches(batch_size, generator=generator):
        src, src_lengths, tgt, _ = dataset.batch(idx)
        enc, state = model.encoder(src, src_lengths)
        steps = []
        for t in range(tgt.size(1) - 1):
            out, state = model.decoder(tgt[:, t:t + 1], state, enc, src_lengths)
            steps.append(model.generator(out))
        logits = torch.cat(steps, dim=1)
        loss = criterion(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@torch.no_grad()
def reference_decode_dataset(model, dataset, tgt_vocab, max_len):
    """Greedy decoding one word at a time."""
    model.eval()
    preds = []
    for i in range(len(dataset)):
        src, tgt = dataset[i]
        enc, state = model.encoder(src[None], torch.tensor([len(src)]))
        token, out = torch.tensor([[data.SOS_IDX]]), []
        for _ in range(max_len):
            hidden, state = model.decoder(token, state, enc, torch.tensor([len(src)]))
            token = model.generator(hidden[:, -1]).argmax(-1, keepdim=True)
            if token.item() == data.EOS_IDX:
                break
            out.append(token.item())
        preds.append("".join(tgt_vocab.decode(out)))
    return preds


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", default="data", help="folder with the P2G TSV files")
    p.add_argument("--repeats", type=int, default=2,
                   help="epochs timed per implementation (best kept)")
    p.add_argument("--num_threads", type=int, default=1,
                   help="torch CPU threads (1: the scripts' default)")
    p.add_argument("--buckets", type=int, nargs="*", default=[4, 50],
                   help="--bucket pool sizes, a row each")
    p.add_argument("--use_attn", type=int, default=1,
                   help="1: the attention model, 0: without attention")
    p.add_argument("--beam_sizes", type=int, nargs="*", default=[1, 3, 5, 10],
                   help="beam sizes to time")
    p.add_argument("--checkpoint", default=None,
                   help="decode with this trained checkpoint's weights (its vocabularies must "
                        "match the data); "
                        "default: the model after the timed epochs, whose short outputs make "
                        "decoding look cheap")
    p.add_argument("--out", default="runs/bench/bench_q3.json", help="where the timings go")
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    corpus, source = data.load_corpus(args.data_dir, ("train", "valid"), fallback=True)
    src_vocab, tgt_vocab, sets = data.build_datasets(corpus, ("train", "valid"))
    train_set, valid_set = sets["train"], sets["valid"]
    criterion = nn.CrossEntropyLoss(ignore_index=data.PAD_IDX)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, attention "
          f"{bool(args.use_attn)}")

    trained = None
    if args.checkpoint:
        trained, src_vocab, tgt_vocab, _ = load_checkpoint(args.checkpoint, torch.device("cpu"))
        valid_set = data.Seq2SeqDataset(corpus["valid"], src_vocab, tgt_vocab)
    rows = {}
    pools = {"ours": 0, **{f"bucket{n}": n for n in args.buckets}}  # each of our rows: its --bucket
    names = [*pools, "reference"]
    for name in names:
        configure_seed(0)
        model = build_model({"use_attn": bool(args.use_attn), "hidden_size": 128, "dropout": 0.3},
                            len(src_vocab), len(tgt_vocab))
        decoder_model = trained or model
        optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
        best = {"train": float("inf"), "decode": float("inf")}
        for r in range(args.repeats):
            gen = torch.Generator().manual_seed(r)
            if name != "reference":
                batches = (bucketed(pools[name]) if pools[name] else
                           lambda d, size, g: d.batches(size, generator=g))(train_set, 64, gen)
                t_train, _ = timed(lambda: q3.train_epoch(model, batches, train_set, optimizer,
                                                          criterion))
                t_dec, _ = timed(lambda: q3.generate(decoder_model, valid_set))
            else:
                t_train, _ = timed(lambda: reference_train_epoch(model, train_set, optimizer,
                                                                 criterion, 64, gen))
                t_dec, _ = timed(lambda: reference_decode_dataset(decoder_model, valid_set,
                                                                  tgt_vocab, 50))
            best = {"train": min(best["train"], t_train), "decode": min(best["decode"], t_dec)}
        best["epoch"] = best["train"] + best["decode"]
        rows[name] = best
        print(f"{name:<10} train {best['train']:6.2f} s | validation decode (1,000 words) "
              f"{best['decode']:6.2f} s "
              f"| epoch {best['epoch']:6.2f} s")
    ratio = {name: {k: rows["reference"][k] / rows[name][k] for k in ("train", "decode", "epoch")}
             for name in names[:-1]}
    for name, r in ratio.items():
        print(f"{name} against the reference: train x{r['train']:.2f}, decode x{r['decode']:.2f}, "
              f"epoch x{r['epoch']:.2f}")

    beams = time_beams(decoder_model.eval(), valid_set, args.beam_sizes)
    save_json({"threads": torch.get_num_threads(), "torch": torch.__version__,
               "use_attn": bool(args.use_attn),
                         "buckets": args.buckets, "seconds": rows, "speedup": ratio,
                         "beam_seconds_per_1000_words": beams,
                         "data": source, "decode_checkpoint": args.checkpoint}, args.out)


def time_beams(model, valid_set, beam_sizes):
    """Seconds per 1,000 words of beam search, per beam size."""
    beams = {}
    for k in beam_sizes:
        t, _ = timed(lambda: decoding.beam_search_dataset(model, valid_set, 500, 50, beam_size=k))
        beams[str(k)] = t / len(valid_set) * 1000
        print(f"beam {k:>2}: {beams[str(k)]:.2f} s per 1,000 words")
    return beams


if __name__ == "__main__":
    main()
