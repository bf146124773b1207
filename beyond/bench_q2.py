"""Q2 speed: training images/second of hw2-q2.py's in-memory loop against a plain DataLoader over a
TensorDataset, and in the channels-last layout, side by side in one run, same model, batch 8.

    python -m beyond.bench_q2 [--images 1600] [--device cpu] [--num_threads 1]
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from beyond import q2
from utils import configure_seed, get_device, save_json


def dataloader_epoch(model, X, y, optimizer, batch_size, rng):
    """The plain loop: DataLoader over a TensorDataset, one sample at a time."""
    model.train()
    for xb, yb in DataLoader(TensorDataset(X, y), batch_size, shuffle=True, generator=rng):
        optimizer.zero_grad()
        F.nll_loss(model(xb), yb).backward()
        optimizer.step()


ASSIGNMENT = q2.parse_args([])  # hw2-q2.py's defaults: the assignment's dropout, rate and batch


def images_per_second(variant, batch_norm, X, y, batch_size, device, repeats=2):
    """The best of `repeats` epochs after a warm-up: other processes only ever slow a run down."""
    configure_seed(0)
    model = q2.CNN(ASSIGNMENT.dropout, batch_norm=batch_norm).to(device)
    if variant == "channels_last":
        model, X = model.to(memory_format=torch.channels_last), X.contiguous(
            memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=ASSIGNMENT.learning_rate)
    rng = torch.Generator().manual_seed(0)
    epoch = (dataloader_epoch if variant == "dataloader" else q2.train_epoch)
    best = float("inf")
    for r in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        epoch(model, X, y, optimizer, batch_size, rng)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0) if r else best
    return len(y) / best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", type=int, default=1600, help="training images per timed epoch")
    p.add_argument("--repeats", type=int, default=2, help="timed epochs per variant (best kept)")
    p.add_argument("--batch_size", type=int, default=ASSIGNMENT.batch_size,
                   help="batch size (default: the assignment's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--num_threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default="runs/bench/bench_q2.json", help="where the measurements go")
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    device = get_device(args.device)
    g = torch.Generator().manual_seed(0)  # the pixel values do not change the cost
    X = torch.rand(args.images, 3, 48, 48, generator=g).to(device)
    y = torch.randint(0, 6, (args.images,), generator=g).to(device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"{args.images} images per epoch, batch {args.batch_size}")
    table = {}
    for net in ("vanilla", "bn"):
        for variant in ("dataloader", "ours", "channels_last"):
            ips = images_per_second(variant, net == "bn", X, y, args.batch_size, device,
                                    args.repeats)
            table[f"{net}/{variant}"] = ips
            print(f"{net:<8} {variant:<14} {ips:8.0f} images/s  "
                  f"(x{ips / table[f'{net}/dataloader']:.2f})")
    save_json({"device": str(device), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "batch_size": args.batch_size,
               "images_per_second": table}, args.out)


if __name__ == "__main__":
    main()
