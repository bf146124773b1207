"""Q2 library: the CNN of the assignment (ConvBlock, CNN, get_number_trainable_params), its in-memory
training and evaluation loops, and fit(), which trains and keeps the best-validation epoch (the Q2
counterpart of training.py). hw2-q2.py and bench/bench_q2.py use them."""
import copy
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import intel


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


def has_batch_norm(model):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def train_epoch(model, X, y, optimizer, batch_size, generator, progress=True, desc="train"):
    """One pass over (X, y) in shuffled mini-batches; returns the mean of the batch losses."""
    model.train()
    n = len(y)
    perm = torch.randperm(n, generator=generator).to(X.device)
    total = torch.zeros((), device=X.device)  # summed on device: no host sync per batch
    n_batches = 0
    has_bn = has_batch_norm(model)
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=not progress):
        idx = perm[start:start + batch_size]
        if has_bn and len(idx) == 1:
            continue  # batch norm cannot normalise a batch of one image: a last batch of one is left out
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
def reestimated_bn_accuracy(model, X_train, X, y, batch_size=500, progress=False):
    """Accuracy on (X, y) of a copy of model whose batch-norm statistics are recomputed over the whole
    training set (a cumulative average over large batches) instead of the running averages that
    training with small batches leaves. Draws no random numbers: dropout stays off."""
    probe = copy.deepcopy(model).eval()
    bns = [m for m in probe.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    starts = [i for i in range(0, len(X_train), batch_size) if len(X_train) - i > 1]  # no chunk of one image
    for i in tqdm(starts, desc="re-estimating batch-norm statistics", leave=False, disable=not progress):
        probe(X_train[i:i + batch_size if i + batch_size < len(X_train) - 1 else len(X_train)])
    return evaluate(probe, X, y)


def confusion(y_true, y_pred):
    """6x6 counts, rows true classes, columns predictions."""
    n = len(intel.CLASSES)
    return torch.bincount(y_true * n + y_pred, minlength=n * n).view(n, n).tolist()


def validate(model, splits, progress=False):
    """Validation accuracy and loss after an epoch; with batch norm, also the accuracy with statistics
    re-estimated on the training set (evidence for the report: what the running averages cost)."""
    (Xtr, _), (Xdv, ydv) = splits["train"], splits["dev"]
    row = {"val_acc": evaluate(model, Xdv, ydv), "val_loss": evaluate_loss(model, Xdv, ydv)}
    if has_batch_norm(model):
        row["val_acc_reestimated_bn"] = reestimated_bn_accuracy(model, Xtr, Xdv, ydv, progress=progress)
    return row


def fit(model, splits, optimizer, epochs, batch_size, seed, name="cnn", progress=False, log=None):
    """Train for `epochs` epochs on splits["train"], validating on splits["dev"] after each; a non-finite
    loss stops the run as "diverged". The model ends with the weights of its best-validation epoch.
    Returns history, status, the final epoch's test accuracy, the best validation accuracy and its epoch."""
    log = log or (lambda line: print(line, flush=True))
    (Xtr, ytr), (Xte, yte) = splits["train"], splits["test"]
    generator = torch.Generator().manual_seed(seed)
    keys = ["epoch", "train_loss", "val_acc", "epoch_seconds", "val_loss"]
    history = {k: [] for k in keys + ["val_acc_reestimated_bn"] * has_batch_norm(model)}
    best, status = {"val_acc": None, "epoch": 0, "state": None}, "completed"
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        loss = train_epoch(model, Xtr, ytr, optimizer, batch_size, generator, progress=progress, desc=f"epoch {epoch}")
        if not math.isfinite(loss):
            status = "diverged"
            log(f"[{name}] epoch {epoch}: training loss is {loss}; the run diverged and stops here")
            break
        row = {"epoch": epoch, "train_loss": loss, **validate(model, splits, progress)}
        row["epoch_seconds"] = time.time() - t0
        for k in history:
            history[k].append(round(row[k], 6) if isinstance(row[k], float) else row[k])
        if best["val_acc"] is None or row["val_acc"] > best["val_acc"]:
            best = {"val_acc": row["val_acc"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        log(f"[{name}] epoch {epoch:2d}/{epochs} | train loss {loss:.4f} | val acc {row['val_acc']:.4f} "
            f"| {time.time() - t0:.1f} s")
    final_test_acc = evaluate(model, Xte, yte) if status == "completed" else None
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    return {"history": history, "status": status, "final_test_acc": final_test_acc, "best_val_acc": best["val_acc"],
            "best_epoch": best["epoch"]}
