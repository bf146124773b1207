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
from utils import configure_seed, save_json


def reference_train_epoch(model, batches, dataset, optimizer, criterion):
    """Teacher forcing one step at a time."""
    model.train()
    for idx in batches:
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
def reference_generate(model, dataset, max_len=q3.CONFIG["max_len"]):
    """Greedy decoding one word at a time."""
    model.eval()
    preds = []
    for i in range(len(dataset)):
        src, _ = dataset[i]
        enc, state = model.encoder(src[None], torch.tensor([len(src)]))
        token, out = torch.tensor([[data.SOS_IDX]]), []
        for _ in range(max_len):
            hidden, state = model.decoder(token, state, enc, torch.tensor([len(src)]))
            token = model.generator(hidden[:, -1]).argmax(-1, keepdim=True)
            if token.item() == data.EOS_IDX:
                break
            out.append(token.item())
        preds.append("".join(dataset.tgt_vocab.decode(out)))
    return preds


def seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_epochs(pool, sets, decoder_model, repeats):
    """The best of `repeats` epochs: training seconds, validation-decode seconds and their sum, and
    the model trained. pool: the --bucket of our loop (0: off), or None for the reference."""
    train_set, valid_set = sets
    configure_seed(0)
    model = q3.build_model({**q3.CONFIG, "use_attn": True}, len(train_set.src_vocab),
                           len(train_set.tgt_vocab))
    decoder_model = decoder_model or model
    optimizer = torch.optim.Adam(model.parameters(), lr=q3.CONFIG["lr"])
    criterion = nn.CrossEntropyLoss(ignore_index=data.PAD_IDX)
    best = {"train": float("inf"), "decode": float("inf")}
    size = q3.CONFIG["batch_size"]
    for r in range(repeats):
        rng = torch.Generator().manual_seed(r)
        batches = (bucketed(pool)(train_set, size, rng) if pool
                   else train_set.batches(size, rng=rng))
        if pool is None:
            train = lambda: reference_train_epoch(model, batches, train_set, optimizer, criterion)
            decode = lambda: reference_generate(decoder_model, valid_set)
        else:
            train = lambda: q3.train_epoch(model, batches, train_set, optimizer, criterion)
            decode = lambda: q3.generate(decoder_model, valid_set)
        best = {"train": min(best["train"], seconds(train)),
                "decode": min(best["decode"], seconds(decode))}
    return dict(best, epoch=best["train"] + best["decode"]), model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", default="data", help="folder with the P2G TSV files")
    p.add_argument("--repeats", type=int, default=2, help="epochs timed per loop (best kept)")
    p.add_argument("--num_threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--buckets", type=int, nargs="*", default=[4, 50], help="--bucket rows")
    p.add_argument("--beam_sizes", type=int, nargs="*", default=[1, 3, 5, 10], help="beams timed")
    p.add_argument("--checkpoint", default=None, help="decode with this trained checkpoint "
                   "(default: the model timed last, whose short outputs flatter decoding)")
    p.add_argument("--out", default="runs/bench/bench_q3.json", help="where the timings go")
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    corpus, source = q3.read_corpus(args.data_dir, ("train", "valid"), fallback=True)
    _, _, sets = data.build_datasets(corpus, ("train", "valid"))
    trained = None
    if args.checkpoint:  # its vocabularies must be those of the data
        trained, src_vocab, tgt_vocab, _ = load_checkpoint(args.checkpoint, torch.device("cpu"))
        sets["valid"] = data.Seq2SeqDataset(corpus["valid"], src_vocab, tgt_vocab)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    pools = {"ours": 0, **{f"bucket{n}": n for n in args.buckets}, "reference": None}
    rows = {}
    for name, pool in pools.items():
        rows[name], model = time_epochs(pool, (sets["train"], sets["valid"]), trained, args.repeats)
        print(f"{name:<10} train {rows[name]['train']:6.2f} s | validation decode "
              f"{rows[name]['decode']:6.2f} s | epoch {rows[name]['epoch']:6.2f} s")
    speedup = {name: {k: rows["reference"][k] / rows[name][k] for k in rows[name]}
               for name in list(pools)[:-1]}
    model = (trained or model).eval()
    beams = {str(k): seconds(lambda: decoding.beam_search_dataset(
        model, sets["valid"], q3.EVAL_BATCH, q3.CONFIG["max_len"], beam_size=k))
        / len(sets["valid"]) * 1000
        for k in args.beam_sizes}
    print("epoch against the reference: " + ", ".join(f"{n} x{r['epoch']:.2f}"
                                                      for n, r in speedup.items()))
    print("beam search per 1,000 words: " + ", ".join(f"{k}: {v:.2f} s" for k, v in beams.items()))
    save_json({"threads": torch.get_num_threads(), "torch": torch.__version__, "use_attn": True,
               "buckets": args.buckets, "seconds": rows, "speedup": speedup,
               "beam_seconds_per_1000_words": beams, "data": source,
               "decode_checkpoint": args.checkpoint}, args.out)


if __name__ == "__main__":
    main()
