#!/usr/bin/env python
"""Q2: a CNN on the Intel landscapes images (48x48 RGB, 6 classes).

The default network is the Q2.2 one (batch norm + global average pooling); -no_batch_norm gives the
vanilla Q2.1 network. Each run writes results/q2/<run>.json and its figures; -sweep runs several
learning rates and draws the two figures the assignment asks for.
"""
import argparse
import copy
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import utils


class ConvBlock(nn.Module):
    """conv (k x k, stride 1) -> [BatchNorm2d] -> ReLU -> [MaxPool 2x2] -> Dropout."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=None, maxpool=True,
                 batch_norm=True, dropout=0.0, bias=True):
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=padding, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2) if maxpool else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.pool(self.relu(self.bn(self.conv(x)))))


class CNN(nn.Module):
    """Three conv blocks (32, 64, 128 channels) and an MLP head (1024, 512, 6) with log-softmax output.

    batch_norm=False: the Q2.1 network (flatten -> 1024). batch_norm=True: the Q2.2 network
    (BatchNorm2d in the blocks, global average pooling instead of flatten, BatchNorm1d before the dropout).
    """

    def __init__(self, dropout_prob, maxpool=True, batch_norm=True, conv_bias=True, n_classes=6, image_size=48):
        super().__init__()
        channels = [3, 32, 64, 128]
        self.blocks = nn.Sequential(*[
            ConvBlock(c_in, c_out, 3, maxpool=maxpool, batch_norm=batch_norm, dropout=dropout_prob, bias=conv_bias)
            for c_in, c_out in zip(channels[:-1], channels[1:])
        ])
        side = image_size // 8 if maxpool else image_size
        if batch_norm:
            self.pool = nn.AdaptiveAvgPool2d((1, 1))
            n_flat = channels[-1]
        else:
            self.pool = nn.Identity()
            n_flat = channels[-1] * side * side
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(n_flat, 1024)
        self.bn1 = nn.BatchNorm1d(1024) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout_prob)
        self.fc2 = nn.Linear(1024, 512)
        self.fc3 = nn.Linear(512, n_classes)

    def forward(self, x):
        x = self.flatten(self.pool(self.blocks(x)))  # (B, n_flat)
        x = self.dropout(self.bn1(F.relu(self.fc1(x))))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=-1)


def get_number_trainable_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def param_table(model):
    """Rows (module name, trainable parameters), one per module that owns parameters."""
    rows = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            owner = name.rsplit(".", 1)[0]
            rows[owner] = rows.get(owner, 0) + p.numel()
    return list(rows.items())


def train_epoch(model, X, y, optimizer, batch_size, generator, progress=True, desc="train"):
    """One pass over (X, y) in shuffled mini-batches; returns the mean of the batch losses."""
    model.train()
    n = len(y)
    perm = torch.randperm(n, generator=generator).to(X.device)
    total = torch.zeros((), device=X.device)  # summed on device: no host sync per batch
    n_batches = 0
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=not progress):
        idx = perm[start:start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.nll_loss(model(X[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.detach()
        n_batches += 1
    return (total / n_batches).item()


@torch.inference_mode()
def predict(model, X, batch_size=1000):
    model.eval()
    return torch.cat([model(X[i:i + batch_size]).argmax(-1) for i in range(0, len(X), batch_size)])


def evaluate(model, X, y):
    """Accuracy of model on (X, y)."""
    return (predict(model, X) == y).float().mean().item()


@torch.inference_mode()
def evaluate_loss(model, X, y, batch_size=1000):
    """Mean negative log-likelihood of model on (X, y), in eval mode."""
    model.eval()
    return sum(F.nll_loss(model(X[i:i + batch_size]), y[i:i + batch_size], reduction="sum").item()
               for i in range(0, len(X), batch_size)) / len(X)


@torch.inference_mode()
def reestimated_bn_accuracy(model, X_train, X, y, batch_size=500):
    """Accuracy on (X, y) of a copy of model whose batch-norm statistics are recomputed over the whole
    training set (a cumulative average over large batches) instead of the running averages that
    training with small batches leaves. Draws no random numbers: dropout stays off."""
    probe = copy.deepcopy(model).eval()
    bns = [m for m in probe.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    for i in range(0, len(X_train), batch_size):
        probe(X_train[i:i + batch_size])
    return evaluate(probe, X, y)


def skeleton_view(X):
    """What the course skeleton's CNN sees: its loader flattens each channel-last (48, 48, 3) image and
    its forward does x.reshape(B, 3, 48, -1), so each "channel" is a third of the interleaved R, G, B
    values. X (N, 3, 48, 48) in the true layout -> (N, 3, 48, 48) in that scrambled one."""
    return X.permute(0, 2, 3, 1).reshape(X.shape[0], 3, 48, 48)


def run_name(args, lr):
    name = f"cnn-{'vanilla' if args.no_batch_norm else 'bn'}-lr{lr:g}"
    if args.skeleton_layout:
        name += "-skeleton_layout"
    if args.no_maxpool:
        name += "-nomaxpool"
    if args.optimizer != "sgd":
        name += f"-{args.optimizer}"
    return name


def build_model(args):
    return CNN(args.dropout, maxpool=not args.no_maxpool, batch_norm=not args.no_batch_norm)


def confusion(y_true, y_pred):
    """6x6 counts, rows true classes, columns predictions."""
    n = len(utils.INTEL_CLASSES)
    return torch.bincount(y_true * n + y_pred, minlength=n * n).view(n, n).tolist()


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
        utils.plot(history["epoch"], {label: history["train_loss"]}, "Training loss", f"{stem}-train_loss", title=title)
        curves = {label: history["val_acc"]}
        if history.get("val_acc_reestimated_bn"):
            curves = {"batch-norm running averages (eval mode)": history["val_acc"],
                      "statistics re-estimated on the training set": history["val_acc_reestimated_bn"]}
        utils.plot(history["epoch"], curves, "Validation accuracy", f"{stem}-val_acc", title=title)
        if history.get("val_loss"):
            utils.plot(history["epoch"], {"training (mean of batch losses)": history["train_loss"],
                                          "validation": history["val_loss"]}, "Loss", f"{stem}-losses", title=title)
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
    utils.configure_seed(args.seed)
    name = run_name(args, lr)
    model = build_model(args).to(device)
    print(f"[{name}] {'vanilla (Q2.1)' if args.no_batch_norm else 'batch-norm (Q2.2)'} network, "
          f"{get_number_trainable_params(model):,} trainable parameters, device {device}")
    if args.print_params:
        for owner, count in param_table(model):
            print(f"  {owner:<14} {count:>10,}")
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    splits = {s: (X.to(device).contiguous(memory_format=fmt), y.to(device)) for s, (X, y) in data.items()}
    start = time.time()
    fit = fit_network(model, splits, args, lr, name)
    fit["wall_seconds"] = round(time.time() - start, 1)
    return write_run(model, fit, splits, args, lr, device, name)


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
    best = {"val_acc": None, "epoch": 0, "state": None}
    status = "completed"
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        loss = train_epoch(model, Xtr, ytr, optimizer, args.batch_size, generator,
                           progress=not args.quiet, desc=f"epoch {epoch}")
        if not np.isfinite(loss):
            status = "diverged"
            print(f"[{name}] epoch {epoch}: training loss is {loss}; the run diverged and stops here")
            break
        val_acc = evaluate(model, Xdv, ydv)
        for k, v in zip(history, (epoch, loss, val_acc, time.time() - t0)):
            history[k].append(round(v, 6) if isinstance(v, float) else v)
        history["val_loss"].append(round(evaluate_loss(model, Xdv, ydv), 6))
        if "val_acc_reestimated_bn" in history:  # evidence for the report: how much the running averages cost
            history["val_acc_reestimated_bn"].append(round(reestimated_bn_accuracy(model, Xtr, Xdv, ydv), 6))
        if best["val_acc"] is None or val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        print(f"[{name}] epoch {epoch:2d}/{args.epochs} | train loss {loss:.4f} | val acc {val_acc:.4f} "
              f"| {time.time() - t0:.1f} s", flush=True)
    final_test_acc = evaluate(model, Xte, yte) if status == "completed" else None
    return {"history": history, "status": status, "final_test_acc": final_test_acc, "best": best}


def write_run(model, fit, splits, args, lr, device, name):
    """Load the best-validation state into model, then write the run's JSON, curves, confusion matrix and
    activation maps."""
    out = os.path.join(args.out_dir, name)
    Xte, yte = splits["test"]
    history, best = fit["history"], fit["best"]
    best_test_acc, preds = None, None
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        preds = predict(model, Xte).cpu()
        best_test_acc = (preds == yte.cpu()).float().mean().item()
    config = {k: v for k, v in vars(args).items() if k not in ("sweep", "quiet", "print_params")}
    config.update(learning_rate=lr, batch_norm=not args.no_batch_norm, maxpool=not args.no_maxpool,
                  device=str(device), num_threads=torch.get_num_threads(),
                  data_sizes={split: len(y) for split, (_, y) in splits.items()})
    result = {
        "name": name, "status": fit["status"], "config": config, "n_params": get_number_trainable_params(model),
        "param_table": param_table(model), "history": history, "final_test_acc": fit["final_test_acc"],
        "best_val_acc": best["val_acc"], "best_epoch": best["epoch"], "best_val_test_acc": best_test_acc,
        "wall_seconds": fit["wall_seconds"], "torch": torch.__version__,
    }
    if preds is not None:
        result["confusion_matrix"] = confusion(yte.cpu(), preds)
    title = draw_run_figures(result, out)
    if preds is not None:
        plot_activation_maps(model, Xte, yte.cpu(), f"{out}-activations", f"{title}: first block, after ReLU")
    utils.save_json(result, f"{out}.json")
    fin = "n/a" if fit["final_test_acc"] is None else f"{fit['final_test_acc']:.4f}"
    bst = "n/a" if best_test_acc is None else f"{best_test_acc:.4f}"
    print(f"[{name}] {fit['status']}: final test acc {fin} | best-val epoch {best['epoch']} test acc {bst} "
          f"| wrote {out}.json")
    return result


def sweep(args, data, device):
    """Train at each learning rate (reusing a run whose JSON exists unless -force), pick the best by
    validation accuracy and draw the loss and validation-accuracy figures, one line per learning rate."""
    import json

    same = ("epochs", "batch_size", "l2_decay", "dropout", "optimizer", "seed", "maxpool", "batch_norm",
            "channels_last", "skeleton_layout")
    results = []
    for lr in args.sweep:
        path = os.path.join(args.out_dir, run_name(args, lr) + ".json")
        old = None
        if os.path.exists(path) and not args.force:
            with open(path) as f:
                old = json.load(f)
            wanted = {"maxpool": not args.no_maxpool, "batch_norm": not args.no_batch_norm, **vars(args)}
            # runs made before -channels_last and -skeleton_layout existed have no such keys: both were off
            if any(old["config"].get(k, False if k in ("channels_last", "skeleton_layout") else None) != wanted[k]
                   for k in same):
                print(f"{path} exists but was run with other settings: training again")
                old = None
            else:
                print(f"{path} exists with the same settings: reusing it (-force to rerun); redrawing its figures")
                draw_run_figures(old, path[:-len(".json")])
        results.append(old or train_run(args, lr, data, device))
    kind = "vanilla" if args.no_batch_norm else "bn"
    stem = os.path.join(args.out_dir, f"sweep-{kind}")
    epochs = list(range(1, max(len(r["history"]["epoch"]) for r in results) + 1))
    label = lambda r: f"lr={r['config']['learning_rate']:g}" + (" (diverged)" if r["status"] != "completed" else "")
    utils.plot(epochs, {label(r): r["history"]["train_loss"] for r in results}, "Training loss", f"{stem}-train_loss")
    utils.plot(epochs, {label(r): r["history"]["val_acc"] for r in results}, "Validation accuracy", f"{stem}-val_acc")
    scored = [r for r in results if r["best_val_acc"] is not None]
    best = max(scored, key=lambda r: r["best_val_acc"]) if scored else None
    summary = {
        "runs": [r["name"] for r in results], "data_path": args.data_path,
        "data_sizes": {split: len(y) for split, (_, y) in data.items()},
        "best_learning_rate": best and best["config"]["learning_rate"], "best_run": best and best["name"],
        "table": [{"learning_rate": r["config"]["learning_rate"], "status": r["status"],
                   "best_val_acc": r["best_val_acc"], "best_epoch": r["best_epoch"],
                   "final_val_acc": r["history"]["val_acc"][-1] if r["history"]["val_acc"] else None,
                   "final_test_acc": r["final_test_acc"], "best_val_test_acc": r["best_val_test_acc"]}
                  for r in results],
    }
    utils.save_json(summary, f"{stem}.json")
    if best is None:
        utils.die(f"every run of the sweep diverged; wrote {stem}.json and figures")
    print(f"best learning rate by validation accuracy: {summary['best_learning_rate']:g} "
          f"(val {best['best_val_acc']:.4f}); wrote {stem}.json and figures")
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-epochs", type=utils.in_range(int, 1), default=40, help="number of training epochs")
    p.add_argument("-batch_size", type=utils.in_range(int, 1), default=8, help="mini-batch size")
    p.add_argument("-learning_rate", type=utils.in_range(float, 0, low_open=True), default=0.01, help="learning rate")
    p.add_argument("-l2_decay", type=utils.in_range(float, 0.0), default=0.0, help="L2 weight decay")
    p.add_argument("-dropout", type=float, default=0.1, help="dropout probability (blocks and MLP)")
    p.add_argument("-optimizer", choices=["sgd", "adam"], default="sgd", help="optimizer")
    p.add_argument("-no_maxpool", action="store_true", help="switch max pooling off in the conv blocks")
    p.add_argument("-no_batch_norm", action="store_true",
                   help="the vanilla Q2.1 network (flatten, no batch norm); default: the Q2.2 network")
    p.add_argument("-data_path", default=utils.INTEL_PATH, help="the Intel landscapes .npz file")
    p.add_argument("-device", default="auto", help="cpu, cuda, or auto (cuda when available)")
    p.add_argument("-channels_last", action="store_true",
                   help="NHWC memory layout: faster on CPU (see bench/bench_q2.py), not bit-identical to the default")
    p.add_argument("-skeleton_layout", action="store_true",
                   help="feed the network what the course skeleton's reshape makes of channel-last images "
                        "(colour values interleaved across the three channels), to measure what that costs")
    p.add_argument("-seed", type=int, default=42, help="one seed for python, numpy and torch")
    p.add_argument("-num_threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("-out_dir", default="results/q2", help="where the JSON and figures go")
    p.add_argument("-sweep", type=utils.in_range(float, 0, low_open=True), nargs="+", metavar="LR",
                   help="train at each of these learning rates and compare them (e.g. -sweep 0.1 0.01 0.001)")
    p.add_argument("-force", action="store_true", help="with -sweep: rerun runs whose JSON already exists")
    p.add_argument("-print_params", action="store_true", help="print trainable parameters per layer")
    p.add_argument("-quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if not 0.0 <= args.dropout < 1.0:
        p.error(f"-dropout must be in [0, 1), got {args.dropout}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    args.quiet = args.quiet or not sys.stderr.isatty()
    device = utils.get_device(args.device)
    utils.check_writable(os.path.join(args.out_dir, "x.json"))
    data = utils.load_dataset(args.data_path)
    if args.skeleton_layout:
        data = {split: (skeleton_view(X), y) for split, (X, y) in data.items()}
    if args.sweep:
        sweep(args, data, device)
    else:
        train_run(args, args.learning_rate, data, device)


if __name__ == "__main__":
    main()
