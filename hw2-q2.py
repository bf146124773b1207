#!/usr/bin/env python
"""Q2: a CNN on the Intel landscapes images (48x48 RGB, 6 classes).

    python hw2-q2.py -no_batch_norm -sweep 0.1 0.01 0.001   # Q2.1: the vanilla network, each rate
    python hw2-q2.py -learning_rate 0.01                    # Q2.2: batch norm + global avg pooling

The course skeleton's classes and functions, filled in. Each run writes runs/q2/<run>.json
(-out_dir) with its curves and test confusion matrix, and after every epoch <run>.pt, the best
validation epoch so far; the model kept is the best-validation epoch. Default paths (data/, runs/)
are the repository's, wherever the script is started from; a path given is taken as given.
"""
import argparse
import copy
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from utils import (CLASSES, INTEL_PATH, as_recorded, atomic_write, configure_seed, get_device, home,
                   in_range, load_images, plot_curves, run, save_json, set_threads)

# ours: names from utils, not the given `import utils`; the given imports of DataLoader, pyplot and
# numpy went with the given main and plot, whose work fit, plot_curves and main do

MIN_BN_BATCH = 2  # batch norm cannot normalise a batch of one image
EXIT = {"completed": 0, "diverged": 3, "interrupted": 130}  # a run's status -> the exit code


class ConvBlock(nn.Module):
    """conv (k x k, stride 1) -> [BatchNorm2d] -> ReLU -> [MaxPool 2x2] -> Dropout."""

    def __init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            padding=None,
            maxpool=True,
            batch_norm=True,
            dropout=0.0,
            bias=True,  # ours: CNN(conv_bias=False) reaches the convolution
        ):
        super().__init__()

        # Q2.1. Initialize convolution, maxpool, activation and dropout layers
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=padding,
                              bias=bias)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2) if maxpool else nn.Identity()
        self.dropout = nn.Dropout(dropout)

        # Q2.2 Initialize batchnorm layer
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()

    def forward(self, x):
        # input for convolution is [b, c, w, h]

        # Implement execution of layers in right order
        return self.dropout(self.pool(self.relu(self.bn(self.conv(x)))))


class CNN(nn.Module):
    """Three conv blocks (32, 64, 128 channels), then an MLP (1024, 512, 6) with log-softmax output.
    batch_norm=False: the Q2.1 network (flatten). batch_norm=True: the Q2.2 network (BatchNorm2d in
    the blocks, global average pooling instead of flatten, BatchNorm1d before the MLP's dropout).
    Ours: global_pool (default: as batch_norm) separates the two changes; n_classes and image_size
    are the assignment's (utils.CLASSES and IMAGE_SIDE, which a test holds them to), written here
    so that the class drops into the course's file as it is."""

    def __init__(self, dropout_prob, maxpool=True, batch_norm=True, conv_bias=True, n_classes=6,
                 image_size=48, global_pool=None):
        super(CNN, self).__init__()
        channels = [3, 32, 64, 128]
        fc1_out_dim = 1024
        fc2_out_dim = 512
        self.maxpool = maxpool
        self.batch_norm = batch_norm

        # Initialize convolutional blocks
        self.blocks = nn.Sequential(*[
            ConvBlock(c_in, c_out, 3, maxpool=maxpool, batch_norm=batch_norm, dropout=dropout_prob,
                      bias=conv_bias) for c_in, c_out in zip(channels[:-1], channels[1:])])

        # Initialize layers for the MLP block
        # For Q2.2 initalize batch normalization
        global_pool = batch_norm if global_pool is None else global_pool
        self.image_size = image_size
        side = image_size // 8 if maxpool else image_size
        self.pool = nn.AdaptiveAvgPool2d((1, 1)) if global_pool else nn.Identity()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(channels[-1] * (1 if global_pool else side * side), fc1_out_dim)
        self.bn1 = nn.BatchNorm1d(fc1_out_dim) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout_prob)
        self.fc2 = nn.Linear(fc1_out_dim, fc2_out_dim)
        self.fc3 = nn.Linear(fc2_out_dim, n_classes)

    def forward(self, x):
        if x.dim() == 2:  # the course loader's flat images, stored (48, 48, 3): the given
            # x.reshape(x.shape[0], 3, 48, -1) would mix the colours (Appendix A measures it)
            x = x.reshape(x.shape[0], self.image_size, self.image_size, 3).permute(0, 3, 1, 2)

        # Implement execution of convolutional blocks
        x = self.blocks(x)

        # Flattent output of the last conv block
        # For Q2.2 implement global averag pooling
        x = self.flatten(self.pool(x))  # (B, 128) or (B, 128 * 6 * 6)

        # Implement MLP part
        x = self.dropout(self.bn1(F.relu(self.fc1(x))))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)

        return F.log_softmax(x, dim=1)


def train_batch(X, y, model, optimizer, criterion, **kwargs):
    """
    X (n_examples x n_features)
    y (n_examples): gold labels
    model: a PyTorch defined model
    optimizer: optimizer used in gradient step
    criterion: loss function
    """
    optimizer.zero_grad()
    out = model(X, **kwargs)
    loss = criterion(out, y)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.inference_mode()
def predict(model, X, return_scores=True, batch_size=1000):
    """X (n_examples x n_features), or (n_examples, 3, 48, 48)"""
    model.eval()  # ours: predictions are always made in eval mode, in chunks (memory)
    scores = torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    predicted_labels = scores.argmax(dim=-1)  # (n_examples)

    if return_scores:
        return predicted_labels, scores
    else:
        return predicted_labels


def evaluate(model, X, y, criterion=None):
    """
    X (n_examples x n_features)
    y (n_examples): gold labels
    Returns (accuracy, loss); ours: the loss is None without a criterion.
    """
    model.eval()
    with torch.no_grad():
        y_hat, scores = predict(model, X, return_scores=True)
        loss = criterion(scores, y) if criterion is not None else None
        n_correct = (y == y_hat).sum().item()
        n_possible = float(y.shape[0])

    return n_correct / n_possible, loss


@torch.inference_mode()
def evaluate_loss(model, X, y, batch_size=1000):
    """Mean negative log-likelihood on (X, y), in eval mode."""
    model.eval()
    return sum(F.nll_loss(model(X[i:i + batch_size]), y[i:i + batch_size], reduction="sum").item()
               for i in range(0, len(X), batch_size)) / len(X)


def plot(epochs, plottable, ylabel="", name="", **kwargs):
    """The skeleton's plot: plottable is one curve, or {label: curve}; writes name.pdf."""
    curves = plottable if isinstance(plottable, dict) else {ylabel: plottable}
    return plot_curves(list(epochs), curves, ylabel, name, **kwargs)


def get_number_trainable_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def plot_file_name_sufix(opt, exlude):
    """
    opt : options from argument parser
    exlude : set of variable names to exlude from the sufix (e.g. "device")

    """
    return '-'.join([str(value) for name, value in vars(opt).items() if name not in exlude])


def param_table(model):
    """[(module, trainable parameters)], one row per module that owns parameters."""
    return [(name, get_number_trainable_params(m)) for name, m in model.named_modules()
            if not list(m.children()) and get_number_trainable_params(m)]


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.inference_mode()
def reestimated_bn_accuracy(model, X_train, X, y, batch_size=500):
    """Accuracy on (X, y) of a copy of model whose batch-norm statistics are averaged over the
    whole training set, not the running averages that batches of 8 leave. Draws nothing random."""
    probe = copy.deepcopy(model).eval()
    for m in batch_norms(probe):
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
        m.train()
    n = len(X_train)
    for i in [i for i in range(0, n, batch_size) if n - i >= MIN_BN_BATCH]:  # a short tail joins
        probe(X_train[i:i + batch_size if i + batch_size <= n - MIN_BN_BATCH else n])
    return evaluate(probe, X, y)[0]


def train_epoch(model, X, y, optimizer, batch_size, rng, desc="train"):
    """One pass in shuffled batches; the mean batch loss. With batch norm, a last batch smaller than
    MIN_BN_BATCH is left out."""
    model.train()
    perm = torch.randperm(len(y), generator=rng).to(X.device)
    total, n_batches = torch.zeros((), device=X.device), 0
    criterion, smallest = nn.NLLLoss(), MIN_BN_BATCH if batch_norms(model) else 1
    for start in tqdm(range(0, len(y), batch_size), desc=desc, leave=False,
                      disable=not sys.stderr.isatty()):
        idx = perm[start:start + batch_size]
        if len(idx) >= smallest:
            total += train_batch(X[idx], y[idx], model, optimizer, criterion)  # float32
            n_batches += 1
    return (total / n_batches).item()


def fit(model, splits, optimizer, epochs, batch_size, seed, name="cnn", checkpoint=None):
    """Train for epochs, validating after each; a non-finite loss stops the run as "diverged",
    Ctrl-C as "interrupted". The model ends with the weights of its best-validation epoch, which
    checkpoint (a path) holds after every epoch, with the history."""
    (Xtr, ytr), (Xdv, ydv), (Xte, yte) = splits["train"], splits["dev"], splits["test"]
    rng = torch.Generator().manual_seed(seed)
    history = {k: [] for k in ["epoch", "train_loss", "val_acc", "epoch_seconds", "val_loss"]
               + ["val_acc_reestimated_bn"] * bool(batch_norms(model))}
    best, status = {"val_acc": None, "epoch": 0, "state": None}, "completed"
    try:  # Ctrl-C ends the run as "interrupted", keeping the epochs run and the best model
        for epoch in range(1, epochs + 1):
            t0 = time.time()
            loss = train_epoch(model, Xtr, ytr, optimizer, batch_size, rng, f"epoch {epoch}")
            if not math.isfinite(loss):
                status = "diverged"
                print(f"[{name}] epoch {epoch}: the training loss is {loss}; the run stops here")
                break
            row = {"epoch": epoch, "train_loss": loss, "val_acc": evaluate(model, Xdv, ydv)[0],
                   "val_loss": evaluate_loss(model, Xdv, ydv)}
            if "val_acc_reestimated_bn" in history:
                row["val_acc_reestimated_bn"] = reestimated_bn_accuracy(model, Xtr, Xdv, ydv)
            row["epoch_seconds"] = time.time() - t0
            row = {k: round(v, 6) if isinstance(v, float) else v
                   for k, v in row.items()}  # as recorded
            for k in history:
                history[k].append(row[k])
            if best["val_acc"] is None or row["val_acc"] > best["val_acc"]:
                best = {"val_acc": row["val_acc"], "epoch": epoch,
                        "state": copy.deepcopy(model.state_dict())}
            if checkpoint:  # the best epoch so far and the history, whole, after every epoch
                save_checkpoint(checkpoint, best, history)
            print(f"[{name}] epoch {epoch:2d}/{epochs} | train loss {loss:.4f} | val acc "
                  f"{row['val_acc']:.4f} | {row['epoch_seconds']:.1f} s", flush=True)
    except KeyboardInterrupt:
        status = "interrupted"
    final_test_acc = evaluate(model, Xte, yte)[0] if status == "completed" else None
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    return {"history": history, "status": status, "final_test_acc": final_test_acc,
            "best_val_acc": best["val_acc"], "best_epoch": best["epoch"]}


def save_checkpoint(path, best, history):
    state = {"model": best["state"], "epoch": best["epoch"], "val_acc": best["val_acc"],
             "history": history}
    atomic_write(path, lambda f: torch.save(state, f))


def confusion(y_true, y_pred, n=len(CLASSES)):
    """n x n counts, rows the true classes, columns the predictions."""
    return torch.bincount(y_true * n + y_pred, minlength=n * n).view(n, n).tolist()


def wilson_ci(successes, n, z=1.959964):
    """95 % Wilson score interval of the proportion successes / n."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return [centre - half, centre + half]


# ---- one run, its record and figures; a sweep of learning rates --------------------------------

def run_name(args, lr):
    return (f"cnn-{'vanilla' if args.no_batch_norm else 'bn'}-lr{lr:g}"
            + "-skeleton_layout" * args.skeleton_layout + "-nomaxpool" * args.no_maxpool
            + (f"-{args.optimizer}" if args.optimizer != "sgd" else "")
            + {"auto": "", "on": "-gap", "off": "-flatten"}[args.global_pool])


def train_run(args, lr, splits, device):
    """Train one network at learning rate lr; write its record and figures; return the record."""
    configure_seed(args.seed)
    name = run_name(args, lr)
    model = CNN(args.dropout, maxpool=not args.no_maxpool, batch_norm=not args.no_batch_norm,
                global_pool={"auto": None, "on": True, "off": False}[args.global_pool]).to(device)
    print(f"[{name}] {get_number_trainable_params(model):,} trainable parameters, device {device}:")
    for owner, count in param_table(model):
        print(f"  {owner:<14} {count:>10,}")
    optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[args.optimizer](
        model.parameters(), lr=lr, weight_decay=args.l2_decay)
    start = time.time()
    stem = os.path.join(args.out_dir, name)
    fitted = fit(model, splits, optimizer, args.epochs, args.batch_size, args.seed, name,
                 checkpoint=stem + ".pt")
    config = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": lr,
              "l2_decay": args.l2_decay, "dropout": args.dropout, "optimizer": args.optimizer,
              "batch_norm": not args.no_batch_norm, "maxpool": not args.no_maxpool,
              "global_pool": isinstance(model.pool, nn.AdaptiveAvgPool2d),
              "skeleton_layout": args.skeleton_layout, "seed": args.seed,
              "num_threads": torch.get_num_threads(), "data_path": as_recorded(args.data_path),
              "device": str(device)}
    Xte, yte = splits["test"]
    record = {"name": name, "status": fitted["status"], "config": config,
              "data_sizes": {split: len(y) for split, (_, y) in splits.items()},
              "n_params": get_number_trainable_params(model), "param_table": param_table(model),
              **fitted, "best_val_test_acc": None, "wall_seconds": round(time.time() - start, 1),
              "torch": torch.__version__}
    if fitted["final_test_acc"] is not None:
        n_right = round(fitted["final_test_acc"] * len(yte))
        record["final_test_acc_ci"] = wilson_ci(n_right, len(yte))
    if fitted["best_epoch"]:  # the model holds its best-validation epoch
        preds = predict(model, Xte, return_scores=False).cpu()
        correct = preds == yte.cpu()
        record.update(best_val_test_acc=correct.float().mean().item(),
                      best_val_test_acc_ci=wilson_ci(int(correct.sum()), len(correct)),
                      confusion_matrix=confusion(yte.cpu(), preds))
    figures = run_figures(record, stem)
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
    print(f"[{name}] {record['status']}: final test acc {fmt(record['final_test_acc'])} | best-val "
          f"epoch {record['best_epoch']} test acc {fmt(record['best_val_test_acc'])} | wrote "
          f"{save_json(record, stem + '.json')}, {', '.join(figures)}")
    if record["status"] == "interrupted":
        kept = (f"{stem}.pt holds epoch {record['best_epoch']} (val acc "
                f"{record['best_val_acc']:.4f})" if record["best_epoch"] else "no epoch finished")
        print(f"\ninterrupted after {len(record['history']['epoch'])} epoch(s): {kept}; the record "
              "above keeps the history", file=sys.stderr)
    return record


def run_figures(record, stem):
    """The run's loss and validation-accuracy curves."""
    cfg, h = record["config"], record["history"]
    if not h["epoch"]:
        return []
    paths = plot(h["epoch"], {"training (mean of batch losses)": h["train_loss"],
                              "validation": h["val_loss"]}, "Loss", f"{stem}-losses")
    curves, where = {f"lr={cfg['learning_rate']:g}": h["val_acc"]}, "best"
    if "val_acc_reestimated_bn" in h:  # two curves rising from the lower left: legend on the right
        curves = {"running averages (eval mode)": h["val_acc"],
                  "re-estimated on the training set": h["val_acc_reestimated_bn"]}
        where = "lower right"
    return paths + plot(h["epoch"], curves, "Validation accuracy", f"{stem}-val_acc",
                        legend_loc=where)


def sweep(args, splits, device):
    """Q2.1: train at each learning rate, choose the best by validation accuracy, and draw the
    training loss and validation accuracy of every rate on one figure each."""
    records = []
    for lr in args.sweep:
        records.append(train_run(args, lr, splits, device))
        if records[-1]["status"] == "interrupted":
            return EXIT["interrupted"]
    stem = os.path.join(args.out_dir, f"sweep-{'vanilla' if args.no_batch_norm else 'bn'}")
    epochs = list(range(1, args.epochs + 1))
    label = lambda r: (f"lr={r['config']['learning_rate']:g}"
                       + " (diverged)" * (r["status"] != "completed"))
    curves = lambda key: {label(r): r["history"][key] for r in records}
    figures = plot(epochs, curves("train_loss"), "Training loss", f"{stem}-train_loss")
    figures += plot(epochs, curves("val_acc"), "Validation accuracy", f"{stem}-val_acc", png=True)
    scored = [r for r in records if r["best_val_acc"] is not None]
    best = max(scored, key=lambda r: r["best_val_acc"]) if scored else None
    summary = {"runs": [r["name"] for r in records], "data_path": as_recorded(args.data_path),
               "data_sizes": records[0]["data_sizes"],
               "best_learning_rate": best and best["config"]["learning_rate"],
               "best_run": best and best["name"]}
    print(f"best learning rate by validation accuracy: {summary['best_learning_rate']}; wrote "
          f"{save_json(summary, stem + '.json')}, {', '.join(figures)}")
    return 0 if best else 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    rate = in_range(float, 0, low_open=True)
    p.add_argument("-epochs", type=in_range(int, 1), default=40, help="training epochs")
    p.add_argument("-batch_size", type=in_range(int, 1), default=8, help="mini-batch size")
    p.add_argument("-learning_rate", type=rate, default=0.01, help="learning rate")
    p.add_argument("-l2_decay", type=in_range(float, 0.0), default=0.0, help="L2 weight decay")
    p.add_argument("-dropout", type=in_range(float, 0.0, 1.0, high_open=True), default=0.1,
                   help="dropout probability (blocks and MLP)")
    p.add_argument("-optimizer", choices=["sgd", "adam"], default="sgd", help="optimizer")
    p.add_argument("-no_maxpool", action="store_true", help="no max pooling in the conv blocks")
    p.add_argument("-no_batch_norm", action="store_true",
                   help="the vanilla Q2.1 network (default: the Q2.2 network)")
    p.add_argument("-global_pool", choices=["auto", "on", "off"], default="auto",
                   help="global average pooling after the last block, or flatten "
                   "(auto: pooling with batch norm)")
    p.add_argument("-data_path", default=home(INTEL_PATH), help="the Intel landscapes .npz file")
    p.add_argument("-device", default="auto", help="cpu, cuda, cuda:N, mps, or auto (cuda if any)")
    p.add_argument("-sweep", type=rate, nargs="+", metavar="LR", default=None,
                   help="train at each of these learning rates and choose on validation")
    p.add_argument("-skeleton_layout", action="store_true",
                   help="feed the network what the skeleton's reshape makes of channel-last images "
                   "(each channel a third of interleaved R, G, B)")
    p.add_argument("-seed", type=int, default=42, help="one seed for python, numpy and torch")
    p.add_argument("-num_threads", type=in_range(int, 0), default=1,
                   help="torch CPU threads (1 gives the committed numbers; 0: torch's default)")
    p.add_argument("-out_dir", default=home("runs/q2"),
                   help="where the JSON records, checkpoints and figures go")
    args = p.parse_args(argv)
    if args.batch_size < MIN_BN_BATCH and not args.no_batch_norm:
        p.error(f"argument -batch_size: batch norm needs at least {MIN_BN_BATCH} images per batch "
                "(or -no_batch_norm)")
    return args


def main(argv=None):
    # ours, instead of the given main: its flags and defaults in parse_args, its loop in fit (the
    # best-validation model kept), its figures in run_figures, and -sweep for Q2.1's three rates
    args = parse_args(argv)
    set_threads(args.num_threads)
    device = get_device(args.device, "-device")
    splits = {s: (X.to(device), y.to(device)) for s, (X, y) in load_images(args.data_path).items()}
    if args.skeleton_layout:  # the skeleton flattens (48, 48, 3) images, reshapes to (3, 48, 48)
        splits = {s: (X.permute(0, 2, 3, 1).reshape(X.shape), y)
                  for s, (X, y) in splits.items()}
    if args.sweep:
        return sweep(args, splits, device)
    return EXIT[train_run(args, args.learning_rate, splits, device)["status"]]


if __name__ == "__main__":
    run(main)
