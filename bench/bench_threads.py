#!/usr/bin/env python
"""Threads: seconds per training batch with 1 and 2 torch threads, side by side in one run, on an idle
CPU and with a competing busy process, for Q3 (batch 64, attention) and Q2 (batch 8, batch norm).
Each setting runs in its own process; the figures are the median and the mean over the timed batches
(the mean is what an epoch costs; the median hides its long batches).

    python bench/bench_threads.py [--batches 40]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WORKER = r"""
import json, statistics, sys, time, torch
sys.path.insert(0, sys.argv[1])
task, threads, batches = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
if task == "q3":
    import torch.nn as nn, data, training
    from models import build_model
    corpus, _ = data.load_corpus(sys.argv[5], ("train", "valid"), fallback=True)
    src_vocab, tgt_vocab, sets = data.build_datasets(corpus, ("train",))
    model = build_model(training.TrainConfig(use_attn=True), len(src_vocab), len(tgt_vocab)).train()
    opt, crit = torch.optim.Adam(model.parameters(), lr=0.003), nn.CrossEntropyLoss(ignore_index=data.PAD_IDX)
    idx = sets["train"].batches(64, generator=torch.Generator().manual_seed(0))
    def step(i):
        src, sl, tgt, _ = sets["train"].batch(idx[i % len(idx)])
        logits, _ = model(src, sl, tgt)
        loss = crit(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))
        opt.zero_grad(); loss.backward(); opt.step()
else:
    import torch.nn.functional as F, cnn
    model = cnn.CNN(0.1, batch_norm=True).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    X, y = torch.rand(8, 3, 48, 48), torch.arange(8) % 6
    def step(i):
        opt.zero_grad(); F.nll_loss(model(X), y).backward(); opt.step()
times = []
for i in range(batches + 5):
    t0 = time.perf_counter(); step(i); times.append(time.perf_counter() - t0)
print(json.dumps({"median": statistics.median(times[5:]), "mean": statistics.mean(times[5:])}))
"""


def measure(task, threads, batches, data_dir):
    out = subprocess.run([sys.executable, "-c", WORKER, ROOT, task, str(threads), str(batches), data_dir],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=40, help="timed batches per setting (default: 40)")
    p.add_argument("--data_dir", default="data", help="the P2G data (default: data)")
    p.add_argument("--out", default="results/bench/bench_threads.json", help="where the timings go")
    args = p.parse_args()
    import artefacts

    rows = []
    for load in ("idle", "one busy process"):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
        try:
            time.sleep(0.5 if busy else 0)
            for task in ("q3", "q2"):
                got = {t: measure(task, t, args.batches, args.data_dir) for t in (1, 2)}
                secs, mean = ({str(t): g[k] for t, g in got.items()} for k in ("median", "mean"))
                rows.append({"task": task, "load": load, "seconds_per_batch": secs, "mean_seconds_per_batch": mean,
                             "two_over_one": secs["2"] / secs["1"], "two_over_one_mean": mean["2"] / mean["1"]})
                print(f"{task}, {load}: median 1 thread {secs['1'] * 1000:.1f} ms/batch, 2 threads "
                      f"{secs['2'] * 1000:.1f} (x{secs['2'] / secs['1']:.2f}); mean {mean['1'] * 1000:.1f} against "
                      f"{mean['2'] * 1000:.1f} (x{mean['2'] / mean['1']:.2f})", flush=True)
        finally:
            if busy:
                busy.kill()
    import torch
    artefacts.save_json({"cpu_count": os.cpu_count(), "torch": torch.__version__, "batches": args.batches, "rows": rows},
                    args.out)


if __name__ == "__main__":
    main()
