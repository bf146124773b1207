#!/usr/bin/env python
"""Where an epoch's time goes, against the machine's limit: one Q3 attention epoch (as the assignment's
run trains it, and with --bucket) and a Q2 vanilla epoch (on a subset of the images), split into data
preparation, forward, backward, optimizer, validation decoding, metrics and bookkeeping (the epoch's
checkpoint and training state); their arithmetic (FLOPs counted by torch's FlopCounterMode, the LSTM
kernels that it does not see added by formula) as a share of what sgemm reaches on the same threads,
in the same run.
    python bench/bench_profile.py [--num_threads 1] [--q2_images 1600] [--bucket 50]
"""
import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import artefacts  # noqa: E402
import cnn  # noqa: E402
import data  # noqa: E402
import decoding  # noqa: E402
import intel  # noqa: E402
import metrics  # noqa: E402
import models  # noqa: E402
import training  # noqa: E402
from cli import configure_seed  # noqa: E402


def sgemm_flops_per_second(n=1024, repeats=10):
    """What a plain float32 matrix product reaches here: the limit every share below is taken of."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(timed(lambda: a @ b)[0] for _ in range(repeats))
    return 2 * n ** 3 / best


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def training_steps(model, batches, loss_of, optimizer, split):
    """Train on each batch (a callable returning its tensors), adding each phase's seconds to split."""
    model.train()
    for make in batches:
        t, tensors = timed(make)
        split["data"] += t
        t, loss = timed(lambda: loss_of(model, *tensors))
        split["forward"] += t
        optimizer.zero_grad(set_to_none=True)
        split["backward"] += timed(loss.backward)[0]
        split["optimizer"] += timed(optimizer.step)[0]


def counted_flops(model, loss_of, tensors, lstm_flops=0.0):
    """FLOPs of one training step (forward and backward): FlopCounterMode's count plus lstm_flops."""
    with FlopCounterMode(display=False) as counter:
        loss_of(model, *tensors).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() + lstm_flops


Q3_CRITERION = torch.nn.CrossEntropyLoss(ignore_index=data.PAD_IDX)


def q3_loss(model, src, src_lengths, tgt):
    """The loss train_epoch takes on one batch of the P2G model."""
    logits, _ = model(src, src_lengths, tgt)
    return Q3_CRITERION(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))


def q3_batches(dataset, order):
    """training_steps' batches: a callable per index tensor of order, returning (src, src_lengths, tgt)."""
    return [(lambda idx=idx: dataset.batch(idx)[:3]) for idx in order]


def q3_epoch(split, bucket=0):
    """One epoch of the assignment's attention model (bucketed by length with bucket > 0, as --bucket does);
    returns its training FLOPs."""
    corpus, _ = data.load_corpus("data", ("train", "valid"))
    cfg = training.TrainConfig(use_attn=True, bucket=bucket).check()
    src_vocab, tgt_vocab, sets = data.build_datasets(corpus, ("train", "valid"))
    configure_seed(cfg.seed)
    run = training.TrainingState(cfg, (src_vocab, tgt_vocab), torch.device("cpu"))
    order = list(sets["train"].batches(cfg.batch_size, generator=run.generator, bucket=bucket))
    flops = 0.0
    for idx in order:
        tensors = sets["train"].batch(idx)[:3]
        flops += counted_flops(run.model, q3_loss, tensors, lstm_flops(cfg.hidden_size, *tensors))
    training_steps(run.model, q3_batches(sets["train"], order), q3_loss, run.optimizer, split)
    run.model.eval()
    t, preds = timed(lambda: decoding.decode_dataset(run.model, sets["valid"], cfg.eval_batch_size, cfg.max_len))
    split["validation decoding"] += t
    split["metrics"] += timed(lambda: metrics.cer_wer(preds, sets["valid"].golds))[0]
    with tempfile.TemporaryDirectory() as tmp:  # what train() writes after an epoch: checkpoint and training state
        split["bookkeeping"] += timed(lambda: (
            training.save_checkpoint(os.path.join(tmp, "m.pt"), run.model, cfg, src_vocab, tgt_vocab, epoch=1),
            run.save_state(os.path.join(tmp, "m.last.pt"))))[0]
    return flops


def lstm_flops(H, src, src_lengths, tgt):
    """FLOPs of the LSTM calls that run in one mkldnn kernel, which FlopCounterMode does not see: the
    decoder's, and the encoder's when the batch has no padding (otherwise its packed steps are counted).
    Forward 2 * 4 gates * out * (in + out) per word and step; backward twice that."""
    B = src.size(0)
    flops = 3 * 2 * 4 * H * (H + H) * B * (tgt.size(1) - 1)
    if bool(models.length_mask(src_lengths, src.size(1)).all()):  # as Encoder.forward decides
        flops += 3 * 2 * 2 * 4 * (H // 2) * (H + H // 2) * B * src.size(1)  # two directions of H/2
    return flops


def q2_epoch(split, n_images):
    """The vanilla network's training on the first n_images training images, batch 8; returns its FLOPs."""
    X, y = intel.load(verbose=False)["train"]
    X, y = X[:n_images], y[:n_images]
    configure_seed(42)
    model = cnn.CNN(0.1, batch_norm=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    perm = torch.randperm(n_images, generator=torch.Generator().manual_seed(42))
    batches = [perm[i:i + 8] for i in range(0, n_images, 8)]
    loss_of = lambda model, xb, yb: F.nll_loss(model(xb), yb)
    flops = counted_flops(model, loss_of, (X[batches[0]], y[batches[0]])) * len(batches)
    training_steps(model, [(lambda idx=idx: (X[idx], y[idx])) for idx in batches], loss_of, optimizer, split)
    return flops


def adam_variants(steps=30):
    """Adam as the scripts run it (one tensor at a time) against torch's foreach and fused versions, on the
    attention model's first training batches: milliseconds per optimizer step, and whether the weights
    after the steps equal those of the default, to the last bit (what the committed runs need)."""
    corpus, _ = data.load_corpus("data", ("train",))
    src_vocab, tgt_vocab, sets = data.build_datasets(corpus, ("train",))
    order = sets["train"].batches(64, generator=torch.Generator().manual_seed(42))[:steps]
    rows, default = [], None
    for variant in ("default", "foreach", "fused"):
        configure_seed(42)
        model = models.build_model(training.TrainConfig(use_attn=True), len(src_vocab), len(tgt_vocab))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.003, **({variant: True} if variant != "default" else {}))
        split = defaultdict(float)
        training_steps(model, q3_batches(sets["train"], order), q3_loss, optimizer, split)
        weights = [p.detach().clone() for p in model.parameters()]
        default = default or weights
        rows.append({"variant": variant, "ms_per_step": split["optimizer"] / len(order) * 1000,
                     "same_weights": all(torch.equal(a, b) for a, b in zip(weights, default))})
        print(f"Adam {variant:<8} {rows[-1]['ms_per_step']:5.2f} ms per step, "
              f"{'the same weights' if rows[-1]['same_weights'] else 'other weights'} after {len(order)} steps")
    return rows


def report(task, label, split, flops, limit):
    total = sum(split.values())
    share = flops / total / limit
    print(f"{label}: {total:.1f} s, {flops / 1e9:.0f} GFLOP, {flops / total / 1e9:.1f} GFLOP/s = {share:.0%} of sgemm")
    for phase, t in split.items():
        print(f"  {phase:<20} {t:7.2f} s  {t / total:5.1%}")
    return {"task": task, "label": label, "seconds": total, "gflop": flops / 1e9, "share_of_sgemm": share,
            "split_seconds": dict(split)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num_threads", type=int, default=1, help="torch CPU threads (1: the scripts' default)")
    p.add_argument("--q2_images", type=int, default=1600, help="training images of the timed Q2 epoch")
    p.add_argument("--bucket", type=int, default=50, help="the --bucket pool size of the bucketed Q3 row")
    p.add_argument("--out", default="results/bench/bench_profile.json", help="where the figures go")
    args = p.parse_args()
    torch.set_num_threads(args.num_threads)
    limit = sgemm_flops_per_second()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s): sgemm {limit / 1e9:.0f} GFLOP/s")
    q3_split, bucket_split, q2_split = defaultdict(float), defaultdict(float), defaultdict(float)
    rows = [report("q3", "Q3, one epoch of the attention model", q3_split, q3_epoch(q3_split), limit),
            report("q3-bucket", f"Q3, the same with --bucket {args.bucket}", bucket_split,
                   q3_epoch(bucket_split, bucket=args.bucket), limit),
            report("q2", f"Q2, the vanilla network on {args.q2_images:,} training images", q2_split,
                   q2_epoch(q2_split, args.q2_images), limit)]
    artefacts.save_json({"threads": torch.get_num_threads(), "torch": torch.__version__,
                         "sgemm_gflops": limit / 1e9, "rows": rows, "adam": adam_variants()}, args.out)


if __name__ == "__main__":
    main()
