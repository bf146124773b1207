#!/usr/bin/env python
"""Q2: a CNN on the Intel landscapes images (48x48 RGB, 6 classes).

The default network is the Q2.2 one (batch norm + global average pooling); -no_batch_norm gives the
vanilla Q2.1 network. Each run writes results/q2/<run>.json and its figures (a run whose settings differ
from the result already there goes to runs/q2/ instead); -sweep runs several learning rates and draws the
two figures the assignment asks for.
"""
import argparse
import os
import sys
import time

import torch

import artefacts
import intel
import plots
from cli import InputError, configure_seed, get_device, in_range, run, set_threads
from cnn import CNN, ConvBlock, confusion, fit, get_number_trainable_params, param_table, predict  # noqa: F401
from locks import run_lock
from metrics import wilson_ci


def run_name(args, lr):
    name = f"cnn-{'vanilla' if args.no_batch_norm else 'bn'}-lr{lr:g}"
    if args.skeleton_layout:
        name += "-skeleton_layout"
    if args.no_maxpool:
        name += "-nomaxpool"
    if args.optimizer != "sgd":
        name += f"-{args.optimizer}"
    return name


def run_config(args, lr, device):
    """Everything that determines a run's numbers: what the resume rule and the trial-run rule compare."""
    return {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": lr, "l2_decay": args.l2_decay,
            "dropout": args.dropout, "optimizer": args.optimizer, "batch_norm": not args.no_batch_norm,
            "maxpool": not args.no_maxpool, "channels_last": args.channels_last,
            "skeleton_layout": args.skeleton_layout, "seed": args.seed, "num_threads": torch.get_num_threads(),
            "data_path": args.data_path, "device": str(device)}


def committed_path(args, lr):
    return os.path.join(args.out_dir, run_name(args, lr) + ".json")


def run_path(args, lr, device):
    """results/q2/<run>.json, or runs/q2/<run>.json when the file there holds a run of other settings."""
    return artefacts.trial_path(committed_path(args, lr), {"config": run_config(args, lr, device)})


def train_run(args, lr, data, device):
    """Train one network at learning rate lr, write its JSON and figures, and return the result dict."""
    path = run_path(args, lr, device)
    artefacts.check_writable(path, "-out_dir")
    configure_seed(args.seed)
    name = run_name(args, lr)
    committed = committed_path(args, lr)
    if path != committed:
        print(f"[{name}] " + artefacts.trial_notice(committed, path, {"config": run_config(args, lr, device)}))
    model = CNN(args.dropout, maxpool=not args.no_maxpool, batch_norm=not args.no_batch_norm).to(device)
    print(f"[{name}] {'vanilla (Q2.1)' if args.no_batch_norm else 'batch-norm (Q2.2)'} network, "
          f"{get_number_trainable_params(model):,} trainable parameters, device {device}, "
          f"{torch.get_num_threads()} CPU thread(s)")
    if args.print_params:
        for owner, count in param_table(model):
            print(f"  {owner:<14} {count:>10,}")
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    splits = {s: (X.to(device).contiguous(memory_format=fmt), y.to(device)) for s, (X, y) in data.items()}
    optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[args.optimizer](
        model.parameters(), lr=lr, weight_decay=args.l2_decay)
    start = time.time()
    with run_lock(path):
        fitted = fit(model, splits, optimizer, args.epochs, args.batch_size, args.seed, name, progress=not args.quiet)
        fitted["wall_seconds"] = round(time.time() - start, 1)
        return write_run(model, fitted, splits, run_config(args, lr, device), path)


def write_run(model, fitted, splits, config, path):
    """The run's JSON, curves, confusion matrix and activation maps; model holds its best-validation epoch."""
    Xte, yte = splits["test"]
    result = {"name": os.path.basename(path)[:-len(".json")], "status": fitted["status"], "config": config,
              "data_sizes": {split: len(y) for split, (_, y) in splits.items()},
              "n_params": get_number_trainable_params(model), "param_table": param_table(model),
              "history": fitted["history"], "final_test_acc": fitted["final_test_acc"],
              "best_val_acc": fitted["best_val_acc"], "best_epoch": fitted["best_epoch"], "best_val_test_acc": None,
              "wall_seconds": fitted["wall_seconds"], "torch": torch.__version__}
    if fitted["final_test_acc"] is not None:
        result["final_test_acc_ci"] = wilson_ci(round(fitted["final_test_acc"] * len(yte)), len(yte))
    if fitted["best_epoch"]:
        preds = predict(model, Xte).cpu()
        correct = preds == yte.cpu()
        result.update(best_val_test_acc=correct.float().mean().item(),
                      best_val_test_acc_ci=wilson_ci(int(correct.sum()), len(correct)),
                      confusion_matrix=confusion(yte.cpu(), preds))
    stem = path[:-len(".json")]
    title, figures = plots.cnn_run_figures(result, intel.CLASSES, stem)
    if fitted["best_epoch"]:
        figures += plots.activation_maps(model, Xte, yte.cpu(), intel.CLASSES, f"{stem}-activations",
                                         f"{title}: first block, after ReLU")
    written = artefacts.save_result(result, path)
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"
    print(f"[{result['name']}] {fitted['status']}: final test acc {fmt(fitted['final_test_acc'])} | best-val epoch "
          f"{fitted['best_epoch']} test acc {fmt(result['best_val_test_acc'])} | "
          f"{'wrote' if written else 'unchanged:'} {path}" + (f"; figures {', '.join(figures)}" if figures else ""))
    return result


def reused(result, path):
    """A finished run kept as it is: its curves and confusion matrix drawn again from its record."""
    _, figures = plots.cnn_run_figures(result, intel.CLASSES, path[:-len(".json")])
    print(f"{path}: a finished run of this very config; reused (-reuse); figures drawn from it: {', '.join(figures)}")


def finished_run(path, config):
    """The result at path when it holds a completed run of exactly this config (what -reuse skips), else None."""
    if artefacts.same_run(path, {"config": config, "status": "completed"}):
        return artefacts.load_json(path, "an earlier run")
    return None


def sweep(args, data, device):
    """Train at each learning rate (with -reuse, a finished run of the same config is kept), pick the best by
    validation accuracy and draw the loss and validation-accuracy figures, one line per learning rate."""
    results, paths = [], []
    for lr in args.sweep:
        path = run_path(args, lr, device)
        paths.append(path)
        old = finished_run(path, run_config(args, lr, device)) if args.reuse else None
        if old is not None:
            reused(old, path)
        results.append(old or train_run(args, lr, data, device))
    stem = os.path.join(os.path.dirname(paths[0]),
                        f"sweep-{'vanilla' if args.no_batch_norm else 'bn'}")
    epochs = list(range(1, max(len(r["history"]["epoch"]) for r in results) + 1))
    label = lambda r: f"lr={r['config']['learning_rate']:g}" + (" (diverged)" if r["status"] != "completed" else "")
    figures = plots.plot(epochs, {label(r): r["history"]["train_loss"] for r in results}, "Training loss",
                         f"{stem}-train_loss")
    figures += plots.plot(epochs, {label(r): r["history"]["val_acc"] for r in results}, "Validation accuracy",
                          f"{stem}-val_acc", png=True)
    scored = [r for r in results if r["best_val_acc"] is not None]
    best = max(scored, key=lambda r: r["best_val_acc"]) if scored else None
    summary = {
        "runs": [r["name"] for r in results], "data_path": args.data_path, "data_sizes": results[0]["data_sizes"],
        "best_learning_rate": best and best["config"]["learning_rate"], "best_run": best and best["name"],
        "table": [{"learning_rate": r["config"]["learning_rate"], "status": r["status"],
                   "best_val_acc": r["best_val_acc"], "best_epoch": r["best_epoch"],
                   "final_val_acc": r["history"]["val_acc"][-1] if r["history"]["val_acc"] else None,
                   "final_test_acc": r["final_test_acc"], "best_val_test_acc": r["best_val_test_acc"]}
                  for r in results],
    }
    artefacts.save_result(summary, f"{stem}.json")
    if best is None:
        raise InputError(f"every run of the sweep diverged; wrote {stem}.json and {', '.join(figures)}")
    print(f"best learning rate by validation accuracy: {summary['best_learning_rate']:g} "
          f"(val {best['best_val_acc']:.4f}); wrote {stem}.json and {', '.join(figures)}")
    return 0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rate = in_range(float, 0, low_open=True)
    p.add_argument("-epochs", type=in_range(int, 1), default=40, help="number of training epochs")
    p.add_argument("-batch_size", type=in_range(int, 1), default=8, help="mini-batch size")
    p.add_argument("-learning_rate", type=rate, default=0.01, help="learning rate")
    p.add_argument("-l2_decay", type=in_range(float, 0.0), default=0.0, help="L2 weight decay")
    p.add_argument("-dropout", type=in_range(float, 0.0, 1.0, high_open=True), default=0.1,
                   help="dropout probability (blocks and MLP)")
    p.add_argument("-optimizer", choices=["sgd", "adam"], default="sgd", help="optimizer")
    p.add_argument("-no_maxpool", action="store_true", help="switch max pooling off in the conv blocks")
    p.add_argument("-no_batch_norm", action="store_true",
                   help="the vanilla Q2.1 network (flatten, no batch norm); default: the Q2.2 network")
    p.add_argument("-data_path", default=intel.PATH, help="the Intel landscapes .npz file")
    p.add_argument("-device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when available)")
    p.add_argument("-channels_last", action="store_true",
                   help="NHWC memory layout: faster on CPU (see bench/bench_q2.py), not bit-identical to the default")
    p.add_argument("-skeleton_layout", action="store_true",
                   help="feed the network what the course skeleton's reshape makes of channel-last images "
                        "(colour values interleaved across the three channels), to measure what that costs")
    p.add_argument("-seed", type=int, default=42, help="one seed for python, numpy and torch")
    p.add_argument("-num_threads", type=in_range(int, 0), default=1,
                   help="torch CPU threads (1 reproduces the committed runs and is fastest on a shared CPU; "
                        "0: torch's default)")
    p.add_argument("-out_dir", default="results/q2", help="where the JSON and figures go")
    p.add_argument("-sweep", type=rate, nargs="+", metavar="LR",
                   help="train at each of these learning rates and compare them (e.g. -sweep 0.1 0.01 0.001)")
    p.add_argument("-reuse", action="store_true", help="do nothing for a run whose JSON holds a finished run of "
                   "this very config (./reproduce.sh)")
    p.add_argument("-print_params", action="store_true", help="print trainable parameters per layer")
    p.add_argument("-quiet", action="store_true", help="no progress bars")
    args = p.parse_args()
    args.data_path, args.out_dir = os.path.normpath(args.data_path), os.path.normpath(args.out_dir)  # ./x is x
    if args.batch_size == 1 and not args.no_batch_norm:
        p.error("-batch_size 1: batch norm needs at least 2 images per batch (or use -no_batch_norm)")
    return args


def main():
    args = parse_args()
    set_threads(args.num_threads)
    args.quiet = args.quiet or not sys.stderr.isatty()
    device = get_device(args.device, "-device")
    artefacts.check_folder(args.out_dir, "-out_dir")
    data = intel.load(args.data_path)
    if args.skeleton_layout:
        data = {split: (intel.skeleton_view(X), y) for split, (X, y) in data.items()}
    if args.sweep:
        return sweep(args, data, device)
    path = run_path(args, args.learning_rate, device)
    old = finished_run(path, run_config(args, args.learning_rate, device)) if args.reuse else None
    if old is not None:
        reused(old, path)
        return 0
    return 0 if train_run(args, args.learning_rate, data, device)["status"] == "completed" else 3


if __name__ == "__main__":
    run(main)
