#!/usr/bin/env python
"""Q2: a CNN on the Intel landscapes images (48x48 RGB, 6 classes).

The default network is the Q2.2 one (batch norm + global average pooling); -no_batch_norm gives the
vanilla Q2.1 network. Each run writes results/q2/<run>.json and its figures (a run whose settings differ
from the result already there goes to runs/q2/ instead); -sweep runs several learning rates and draws the
two figures the assignment asks for.
"""
import argparse
import copy
import os
import sys
import time

import numpy as np
import torch

import utils
from metrics import wilson_ci
from cnn import (CNN, ConvBlock, confusion, evaluate, evaluate_loss, get_number_trainable_params,  # noqa: F401
                 param_table, predict, reestimated_bn_accuracy, skeleton_view, train_epoch)
from utils import InputError


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


def run_path(args, lr, device):
    """results/q2/<run>.json, or runs/q2/<run>.json when the file there holds a run of other settings."""
    return utils.trial_path(os.path.join(args.out_dir, run_name(args, lr) + ".json"),
                            {"config": run_config(args, lr, device)})


def plot_confusion(cm, stem, title):
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = utils.plt_style()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ConfusionMatrixDisplay(np.array(cm), display_labels=utils.INTEL_CLASSES).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.grid(False)
    ax.set_title(title, fontsize=9)
    plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
    utils.save_figure(fig, stem)


def draw_run_figures(result, stem):
    """Training loss, validation accuracy and test confusion figures of one run, from its result dict alone."""
    cfg, history = result["config"], result["history"]
    title = f"{'CNN with batch norm' if cfg['batch_norm'] else 'Vanilla CNN'}, lr {cfg['learning_rate']:g}"
    title += " (skeleton's scrambled layout)" if cfg.get("skeleton_layout") else ""
    if history["epoch"]:
        label = f"lr={cfg['learning_rate']:g}"
        if history.get("val_loss"):
            utils.plot(history["epoch"], {"training (mean of batch losses)": history["train_loss"],
                                          "validation": history["val_loss"]}, "Loss", f"{stem}-losses", title=title)
        else:
            utils.plot(history["epoch"], {label: history["train_loss"]}, "Training loss", f"{stem}-train_loss", title=title)
        curves = {label: history["val_acc"]}
        if history.get("val_acc_reestimated_bn"):
            curves = {"batch-norm running averages (eval mode)": history["val_acc"],
                      "statistics re-estimated on the training set": history["val_acc_reestimated_bn"]}
        utils.plot(history["epoch"], curves, "Validation accuracy", f"{stem}-val_acc", title=title)
    if result.get("confusion_matrix"):
        plot_confusion(result["confusion_matrix"], f"{stem}-confusion",
                       f"{title}, epoch {result['best_epoch']}: test accuracy {result['best_val_test_acc']:.3f}")
    return title


@torch.inference_mode()
def plot_activation_maps(model, X, y, stem, title, n_images=4, n_maps=8):
    """The first block's feature maps (after ReLU, before pooling) for a few test images."""
    plt = utils.plt_style()
    model.eval()
    present = [c for c in range(len(utils.INTEL_CLASSES)) if (y == c).any()][:n_images]
    idx = torch.tensor([int((y == c).nonzero()[0]) for c in present])  # one image per class
    n_images = len(idx)
    captured = {}
    hook = model.blocks[0].relu.register_forward_hook(lambda m, i, o: captured.update(a=o.detach().cpu()))
    model(X[idx.to(X.device)])
    hook.remove()
    acts = captured["a"]  # (n_images, 32, 48, 48)
    channels = acts.mean(dim=(0, 2, 3)).argsort(descending=True)[:n_maps]  # the most active maps
    fig, axes = plt.subplots(n_images, n_maps + 1, figsize=(1.1 * (n_maps + 1), 1.15 * n_images), squeeze=False)
    for r in range(n_images):
        axes[r, 0].imshow(X[idx[r]].cpu().permute(1, 2, 0).numpy())
        axes[r, 0].set_ylabel(utils.INTEL_CLASSES[int(y[idx[r]])], fontsize=8)
        for c, ch in enumerate(channels):
            axes[r, c + 1].imshow(acts[r, ch].numpy(), cmap="viridis")
            if r == 0:
                axes[r, c + 1].set_title(f"ch {int(ch)}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    axes[0, 0].set_title("input", fontsize=8)
    fig.suptitle(title, fontsize=9)
    utils.save_figure(fig, stem)


def train_run(args, lr, data, device):
    """Train one network at learning rate lr, write its JSON and figures, and return the result dict."""
    path = run_path(args, lr, device)
    utils.check_writable(path, "-out_dir")
    utils.configure_seed(args.seed)
    name = run_name(args, lr)
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
    start = time.time()
    with utils.run_lock(path):
        fit = fit_network(model, splits, args, lr, name)
        fit["wall_seconds"] = round(time.time() - start, 1)
        return write_run(model, fit, splits, run_config(args, lr, device), path)


def fit_network(model, splits, args, lr, name):
    """SGD (or Adam) for args.epochs epochs, validating after each; stops early if the loss is not finite.
    Returns history, status, the final model's test accuracy and the best-validation epoch's state."""
    (Xtr, ytr), (Xdv, ydv), (Xte, yte) = splits["train"], splits["dev"], splits["test"]
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[args.optimizer]
    optimizer = opt_cls(model.parameters(), lr=lr, weight_decay=args.l2_decay)
    generator = torch.Generator().manual_seed(args.seed)
    history = {"epoch": [], "train_loss": [], "val_acc": [], "epoch_seconds": [], "val_loss": []}
    if not args.no_batch_norm:
        history["val_acc_reestimated_bn"] = []
    best, status = {"val_acc": None, "epoch": 0, "state": None}, "completed"
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        loss = train_epoch(model, Xtr, ytr, optimizer, args.batch_size, generator,
                           progress=not args.quiet, desc=f"epoch {epoch}")
        if not np.isfinite(loss):
            status = "diverged"
            print(f"[{name}] epoch {epoch}: training loss is {loss}; the run diverged and stops here")
            break
        val_acc = evaluate(model, Xdv, ydv)
        row = {"epoch": epoch, "train_loss": loss, "val_acc": val_acc, "epoch_seconds": time.time() - t0,
               "val_loss": evaluate_loss(model, Xdv, ydv)}
        if "val_acc_reestimated_bn" in history:  # evidence for the report: how much the running averages cost
            row["val_acc_reestimated_bn"] = reestimated_bn_accuracy(model, Xtr, Xdv, ydv, progress=not args.quiet)
        for k, v in row.items():
            history[k].append(round(v, 6) if isinstance(v, float) else v)
        if best["val_acc"] is None or val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        print(f"[{name}] epoch {epoch:2d}/{args.epochs} | train loss {loss:.4f} | val acc {val_acc:.4f} "
              f"| {time.time() - t0:.1f} s", flush=True)
    final_test_acc = evaluate(model, Xte, yte) if status == "completed" else None
    return {"history": history, "status": status, "final_test_acc": final_test_acc, "best": best}


def write_run(model, fit, splits, config, path):
    """Load the best-validation state into model, then write the run's JSON, curves, confusion matrix and
    activation maps."""
    Xte, yte = splits["test"]
    history, best = fit["history"], fit["best"]
    result = {"name": os.path.basename(path)[:-len(".json")], "status": fit["status"], "config": config,
              "data_sizes": {split: len(y) for split, (_, y) in splits.items()},
              "n_params": get_number_trainable_params(model), "param_table": param_table(model), "history": history,
              "final_test_acc": fit["final_test_acc"], "best_val_acc": best["val_acc"], "best_epoch": best["epoch"],
              "best_val_test_acc": None, "wall_seconds": fit["wall_seconds"], "torch": torch.__version__}
    if fit["final_test_acc"] is not None:
        result["final_test_acc_ci"] = wilson_ci(round(fit["final_test_acc"] * len(yte)), len(yte))
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        preds = predict(model, Xte).cpu()
        correct = preds == yte.cpu()
        result.update(best_val_test_acc=correct.float().mean().item(),
                      best_val_test_acc_ci=wilson_ci(int(correct.sum()), len(correct)),
                      confusion_matrix=confusion(yte.cpu(), preds))
    stem = path[:-len(".json")]
    title = draw_run_figures(result, stem)
    if best["state"] is not None:
        plot_activation_maps(model, Xte, yte.cpu(), f"{stem}-activations", f"{title}: first block, after ReLU")
    written = utils.save_result(result, path)
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"
    print(f"[{result['name']}] {fit['status']}: final test acc {fmt(fit['final_test_acc'])} | best-val epoch "
          f"{best['epoch']} test acc {fmt(result['best_val_test_acc'])} | {'wrote' if written else 'unchanged:'} {path}")
    return result


def reuse(path, config):
    """The result at path when it is a run of exactly this config (the one resume rule), else None."""
    return utils.load_json(path, "an earlier run") if utils.same_run(path, {"config": config}) else None


def sweep(args, data, device):
    """Train at each learning rate (reusing a run of the same config unless -force), pick the best by
    validation accuracy and draw the loss and validation-accuracy figures, one line per learning rate."""
    results, paths = [], []
    for lr in args.sweep:
        path = run_path(args, lr, device)
        paths.append(path)
        old = None if args.force else reuse(path, run_config(args, lr, device))
        if old is not None:
            print(f"{path}: a run of the same config; reused (-force to rerun)")
        results.append(old or train_run(args, lr, data, device))
    stem = os.path.join(os.path.dirname(paths[0]),
                        f"sweep-{'vanilla' if args.no_batch_norm else 'bn'}")
    epochs = list(range(1, max(len(r["history"]["epoch"]) for r in results) + 1))
    label = lambda r: f"lr={r['config']['learning_rate']:g}" + (" (diverged)" if r["status"] != "completed" else "")
    utils.plot(epochs, {label(r): r["history"]["train_loss"] for r in results}, "Training loss", f"{stem}-train_loss")
    utils.plot(epochs, {label(r): r["history"]["val_acc"] for r in results}, "Validation accuracy", f"{stem}-val_acc",
               png=True)
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
    utils.save_result(summary, f"{stem}.json")
    if best is None:
        raise InputError(f"every run of the sweep diverged; wrote {stem}.json and figures")
    print(f"best learning rate by validation accuracy: {summary['best_learning_rate']:g} "
          f"(val {best['best_val_acc']:.4f}); wrote {stem}.json and figures")
    return 0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rate = utils.in_range(float, 0, low_open=True)
    p.add_argument("-epochs", type=utils.in_range(int, 1), default=40, help="number of training epochs")
    p.add_argument("-batch_size", type=utils.in_range(int, 1), default=8, help="mini-batch size")
    p.add_argument("-learning_rate", type=rate, default=0.01, help="learning rate")
    p.add_argument("-l2_decay", type=utils.in_range(float, 0.0), default=0.0, help="L2 weight decay")
    p.add_argument("-dropout", type=utils.in_range(float, 0.0, 1.0, high_open=True), default=0.1,
                   help="dropout probability (blocks and MLP)")
    p.add_argument("-optimizer", choices=["sgd", "adam"], default="sgd", help="optimizer")
    p.add_argument("-no_maxpool", action="store_true", help="switch max pooling off in the conv blocks")
    p.add_argument("-no_batch_norm", action="store_true",
                   help="the vanilla Q2.1 network (flatten, no batch norm); default: the Q2.2 network")
    p.add_argument("-data_path", default=utils.INTEL_PATH, help="the Intel landscapes .npz file")
    p.add_argument("-device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when available)")
    p.add_argument("-channels_last", action="store_true",
                   help="NHWC memory layout: faster on CPU (see bench/bench_q2.py), not bit-identical to the default")
    p.add_argument("-skeleton_layout", action="store_true",
                   help="feed the network what the course skeleton's reshape makes of channel-last images "
                        "(colour values interleaved across the three channels), to measure what that costs")
    p.add_argument("-seed", type=int, default=42, help="one seed for python, numpy and torch")
    p.add_argument("-num_threads", type=utils.in_range(int, 0), default=1,
                   help="torch CPU threads (1 reproduces the committed runs and is fastest on a shared CPU; "
                        "0: torch's default)")
    p.add_argument("-out_dir", default="results/q2", help="where the JSON and figures go")
    p.add_argument("-sweep", type=rate, nargs="+", metavar="LR",
                   help="train at each of these learning rates and compare them (e.g. -sweep 0.1 0.01 0.001)")
    p.add_argument("-force", action="store_true", help="with -sweep: rerun runs whose JSON already exists")
    p.add_argument("-resume", action="store_true", help="reuse the run's JSON when it records this very config")
    p.add_argument("-print_params", action="store_true", help="print trainable parameters per layer")
    p.add_argument("-quiet", action="store_true", help="no progress bars")
    args = p.parse_args()
    if args.batch_size == 1 and not args.no_batch_norm:
        p.error("-batch_size 1: batch norm needs at least 2 images per batch (or use -no_batch_norm)")
    return args


def main():
    args = parse_args()
    utils.set_threads(args.num_threads)
    args.quiet = args.quiet or not sys.stderr.isatty()
    device = utils.get_device(args.device, "-device")
    utils.check_folder(args.out_dir, "-out_dir")
    data = utils.load_dataset(args.data_path)
    if args.skeleton_layout:
        data = {split: (skeleton_view(X), y) for split, (X, y) in data.items()}
    if args.sweep:
        return sweep(args, data, device)
    path = run_path(args, args.learning_rate, device)
    if args.resume and reuse(path, run_config(args, args.learning_rate, device)):
        print(f"{path}: a run of the same config; reused (-resume)")
        return 0
    return 0 if train_run(args, args.learning_rate, data, device)["status"] == "completed" else 3


if __name__ == "__main__":
    utils.cli(main)
