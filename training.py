"""Q3 training as a function of values: a TrainConfig and a corpus in, a checkpoint and a record out.
hw2-q3.py train and the strongest-model study both call train()."""
import math
import os
import time

import torch
import torch.nn as nn
from tqdm import tqdm

import checkpoints
import data as p2g
import decoding
import metrics
import utils
from config import TrainConfig  # noqa: F401  (training.TrainConfig, the config of train())


def train_epoch(model, dataset, optimizer, criterion, batch_size, generator, device, progress=False):
    """One pass in shuffled batches; returns the mean of the batch losses."""
    model.train()
    total, n = torch.zeros((), device=device), 0
    for idx in tqdm(dataset.batches(batch_size, generator=generator), leave=False, disable=not progress):
        src, src_lengths, tgt, _ = (t.to(device, non_blocking=True) for t in dataset.batch(idx))
        logits, _ = model(src, src_lengths, tgt)  # (B, T-1, V): the decoder reads SOS y_1 .. y_{T-1}
        loss = criterion(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        n += 1
    return (total / n).item()


def reusable(record_path, checkpoint, cfg):
    """True when the run record at record_path and the checkpoint both hold a run of this very config (the one
    resume rule, utils.same_run, applied to a training's two outputs)."""
    wanted = cfg.to_dict()
    return utils.same_run(record_path, {"config": wanted}) and os.path.exists(checkpoint) and \
        utils.strip_noise(checkpoints.read(checkpoint)["config"]) == utils.strip_noise(wanted)


def finite_weights(model):
    return all(torch.isfinite(p).all() for p in model.parameters())


def say(line):
    print(line, flush=True)


def train(cfg, corpus, checkpoint, device, progress=False, log=say):
    """Train on corpus["train"], validate on corpus["valid"] after every epoch, keep the best epoch's
    checkpoint; a non-finite loss or weight stops the run as "diverged" (the earlier best checkpoint
    stays, nothing non-finite is saved). Returns the run's record."""
    utils.configure_seed(cfg.seed)
    threads = utils.set_threads(cfg.num_threads)
    src_vocab, tgt_vocab, sets = p2g.build_datasets(corpus, ("train", "valid"))
    golds = [w for _, w in corpus["valid"]]
    model = checkpoints.model_from_config(cfg.to_dict(), len(src_vocab), len(tgt_vocab)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.n_epochs) if cfg.lr_schedule == "cosine" else None
    criterion = nn.CrossEntropyLoss(ignore_index=p2g.PAD, label_smoothing=cfg.label_smoothing)
    generator = torch.Generator().manual_seed(cfg.seed)
    log(f"{'attention' if cfg.use_attn else 'no attention'}: {sum(p.numel() for p in model.parameters()):,} "
        f"parameters; vocabularies {len(src_vocab)} phonemes, {len(tgt_vocab)} characters; device {device}, "
        f"{threads} CPU thread{'s' * (threads > 1)}")
    history = {"epoch": [], "train_loss": [], "val_cer": [], "val_wer": [], "seconds": []}
    best, status, start = {"score": (math.inf,), "epoch": 0, "val_cer": None, "val_wer": None}, "completed", time.time()
    for epoch in range(1, cfg.n_epochs + 1):
        t0 = time.time()
        loss = train_epoch(model, sets["train"], optimizer, criterion, cfg.batch_size, generator, device, progress)
        if not math.isfinite(loss) or not finite_weights(model):
            status = "diverged"
            log(f"epoch {epoch:2d}/{cfg.n_epochs} | train loss {loss} | the run diverged and stops here; "
                f"{'the checkpoint of epoch ' + str(best['epoch']) + ' stays' if best['epoch'] else 'no checkpoint saved'}")
            break
        if schedule is not None:
            schedule.step()
        model.eval()
        preds = decoding.decode_dataset(model, sets["valid"], tgt_vocab, cfg.eval_batch_size, cfg.max_len)
        val_cer, val_wer = metrics.cer_wer(preds, golds)
        row = {"epoch": epoch, "train_loss": loss, "val_cer": val_cer, "val_wer": val_wer, "seconds": time.time() - t0}
        for k, v in row.items():
            history[k].append(round(v, 6) if isinstance(v, float) else v)
        score = (val_cer,) if cfg.select_on == "cer" else (val_wer, val_cer)
        mark = ""
        if score < best["score"]:
            best, mark = {"score": score, "epoch": epoch, "val_cer": val_cer, "val_wer": val_wer}, " *"
            checkpoints.save(checkpoint, model, cfg.to_dict(), src_vocab, tgt_vocab, epoch=epoch,
                             val_cer=val_cer, val_wer=val_wer)
        log(f"epoch {epoch:2d}/{cfg.n_epochs} | train loss {loss:.4f} | val CER {val_cer:.4f} "
            f"| val WER {val_wer:.4f} | {row['seconds']:.1f} s{mark}")
    return {"checkpoint": checkpoint, "config": cfg.to_dict(), "status": status, "history": history,
            "best_epoch": best["epoch"], "best_val_cer": best["val_cer"], "best_val_wer": best["val_wer"],
            "wall_seconds": round(time.time() - start, 1), "device": str(device), "num_threads": threads,
            "torch": torch.__version__}
