"""Q3 training: a TrainConfig and a corpus in, the best epoch's checkpoint and a record out. train()
validates after every epoch and keeps the best epoch's checkpoint (<name>.pt). While it runs,
<name>.last.pt holds the last finished epoch with the optimizer, the schedule, the random states and the
history, so that resume=True continues an interrupted run exactly as if it had never stopped.
Checkpoints hold tensors and plain types only: torch.load(..., weights_only=True) reads them.
"""
import dataclasses
import math
import os
import time

import torch
import torch.nn as nn
from tqdm import tqdm

import artefacts
import data
import decoding
from cli import InputError, configure_seed, in_range, set_threads
from models import build_model

KIND = "hw2-q3-p2g-seq2seq"
STATE_KIND = "hw2-q3-p2g-training-state"
_positive = in_range(int, 1)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained P2G model; the assignment's values are the defaults, and
    hw2-q3.py's training flags (FLAGS below says what each field means) take theirs from here."""
    use_attn: bool = False
    hidden_size: int = 128
    dropout: float = 0.3
    dropout_site: str = "lstm"
    enc_layers: int = 1
    input_feed: bool = False
    lr: float = 0.003
    n_epochs: int = 20
    batch_size: int = 64
    bucket: int = 0
    seed: int = 42
    max_len: int = 50
    label_smoothing: float = 0.0
    lr_schedule: str = "none"
    select_on: str = "cer"
    eval_batch_size: int = 500
    num_threads: int = 1
    data: str = "data"                # where the corpus came from (a folder, or the ISLEX fallback); no flag

    def check(self, where="training configuration"):
        """self, or an InputError naming where and the first field out of its type or domain."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            allowed = (int, float) if f.type is float else f.type
            if not isinstance(value, allowed) or (f.type is not bool and isinstance(value, bool)):
                raise InputError(f"{where}: {f.name} = {value!r} is not {f.type.__name__}")
        rules = {"hidden_size": self.hidden_size >= 2 and self.hidden_size % 2 == 0,
                 "dropout": 0.0 <= self.dropout < 1.0, "dropout_site": self.dropout_site in ("lstm", "output"),
                 "enc_layers": self.enc_layers >= 1, "input_feed": self.use_attn or not self.input_feed,
                 "lr": math.isfinite(self.lr) and self.lr > 0, "n_epochs": self.n_epochs >= 1,
                 "batch_size": self.batch_size >= 1, "bucket": self.bucket >= 0, "max_len": self.max_len >= 1,
                 "label_smoothing": 0.0 <= self.label_smoothing < 1.0,
                 "lr_schedule": self.lr_schedule in ("none", "cosine"), "select_on": self.select_on in ("cer", "wer"),
                 "eval_batch_size": self.eval_batch_size >= 1, "num_threads": self.num_threads >= 0}
        bad = next((k for k, ok in rules.items() if not ok), None)
        if bad:
            raise InputError(f"{where}: {bad} = {getattr(self, bad)!r} is out of its domain"
                             + (" (input_feed needs use_attn)" if bad == "input_feed" else ""))
        return self

    @classmethod
    def from_dict(cls, d, where="training configuration"):
        """The checked config a record or checkpoint holds; keys it lacks take their defaults."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"{where}: unknown field {unknown[0]!r}")
        return cls(**d).check(where)

    def to_dict(self):
        return dataclasses.asdict(self)


FLAGS = {  # TrainConfig field -> (argparse type or choices, help) of hw2-q3.py train's flag; defaults: TrainConfig's
    "use_attn": (bool, "Bahdanau attention"),
    "n_epochs": (_positive, "training epochs"),
    "lr": (in_range(float, 0.0, low_open=True), "Adam learning rate"),
    "dropout": (in_range(float, 0.0, 1.0, high_open=True), "dropout on the embeddings and on the LSTMs' outputs"),
    "hidden_size": (_positive, "hidden size H, even (H/2 per encoder direction)"),
    "batch_size": (_positive, "training batch size"),
    "bucket": (in_range(int, 0), "sort words by source length within pools of this many batches (0: off; "
                                 "beyond the assignment): less padding, faster, other batches, other numbers"),
    "dropout_site": (["lstm", "output"], "decoder dropout before attention, or after it (the report's ablation)"),
    "enc_layers": (_positive, "encoder BiLSTM layers (beyond the assignment)"),
    "input_feed": (bool, "feed the previous attentional state to the decoder (beyond the assignment; needs --use_attn)"),
    "label_smoothing": (in_range(float, 0.0, 1.0, high_open=True), "label smoothing of the loss"),
    "lr_schedule": (["none", "cosine"], "learning-rate schedule"),
    "select_on": (["cer", "wer"], "keep the epoch with the lowest validation CER, or WER (ties: CER)"),
    "seed": (int, "one seed for python, numpy, torch and sampling"),
    "max_len": (_positive, "longest spelling decoded"),
    "num_threads": (in_range(int, 0), "torch CPU threads (1 reproduces the committed runs; 0: torch's default)"),
}


def add_config_flags(parser):
    """One flag per entry of FLAGS, its default the field's in TrainConfig."""
    for name, (kind, help) in FLAGS.items():
        default = getattr(TrainConfig(), name)
        how = {"action": "store_true"} if kind is bool else \
            {"choices": kind, "default": default} if isinstance(kind, list) else {"type": kind, "default": default}
        parser.add_argument(f"--{name}", help=help, **how)


# ---- checkpoints: store and restore ------------------------------------------------------------------

def save_checkpoint(path, model, cfg, src_vocab, tgt_vocab, kind=KIND, **extra):
    """Atomically write model's state_dict with its config and vocabularies; extra: epoch, scores..."""
    state = {"kind": kind, "config": cfg.to_dict(), "src_vocab": src_vocab.symbols, "tgt_vocab": tgt_vocab.symbols,
             "model": model.state_dict(), **extra}
    artefacts.atomic_write(path, lambda f: torch.save(state, f))


def read_checkpoint(path, flag="--checkpoint_name", kind=KIND):
    """The checkpoint dict in path, on the CPU, its config checked; an InputError naming the file otherwise."""
    name = f"{flag} {path}"
    if not os.path.exists(path):
        raise InputError(f"{name}: no such checkpoint")
    if os.path.isdir(path):
        raise InputError(f"{name}: is a folder, not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{name}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        raise InputError(f"{name}: not a hw2-q3.py {'checkpoint' if kind == KIND else 'training state'}")
    missing = [k for k in ("config", "src_vocab", "tgt_vocab", "model", "epoch") if k not in ckpt]
    if missing:
        raise InputError(f"{name}: damaged checkpoint (no {missing[0]!r})")
    if not isinstance(ckpt["config"], dict):
        raise InputError(f"{name}: damaged checkpoint (its config is not a dict)")
    ckpt["config"] = TrainConfig.from_dict(ckpt["config"], where=name)
    return ckpt


def load_checkpoint(path, device, flag="--checkpoint_name"):
    """(model in eval mode on device, src_vocab, tgt_vocab, checkpoint dict); an InputError otherwise."""
    ckpt = read_checkpoint(path, flag)
    try:
        src_vocab, tgt_vocab = data.Vocabulary.from_symbols(ckpt["src_vocab"]), data.Vocabulary.from_symbols(ckpt["tgt_vocab"])
        model = build_model(ckpt["config"], len(src_vocab), len(tgt_vocab))
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, AssertionError) as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise InputError(f"{flag} {path}: damaged checkpoint ({type(e).__name__}: {msg[:120]})") from None
    return model.to(device).eval(), src_vocab, tgt_vocab, ckpt


def state_path(checkpoint):
    """Where a run that writes checkpoint keeps its last epoch's training state."""
    return f"{os.path.splitext(os.fspath(checkpoint))[0]}.last.pt"


def finished_run(record_path, checkpoint, cfg):
    """True when the record and the checkpoint both hold a finished run of this very config: what
    --reuse (and the study) skip instead of training again."""
    if not (artefacts.same_run(record_path, {"config": cfg.to_dict(), "status": "completed"})
            and os.path.exists(checkpoint)):
        return False
    ckpt = read_checkpoint(checkpoint)
    return ckpt.get("finished") is True and artefacts.strip_noise(ckpt["config"].to_dict()) == \
        artefacts.strip_noise(cfg.to_dict())


# ---- training ---------------------------------------------------------------------------------------

def train_epoch(model, dataset, optimizer, criterion, batch_size, generator, device, progress=False, bucket=0):
    """One pass in shuffled batches (bucketed by length with bucket: Dataset.batches); returns the mean loss."""
    model.train()
    total, n = torch.zeros((), device=device), 0
    for idx in tqdm(dataset.batches(batch_size, generator=generator, bucket=bucket), leave=False,
                    disable=not progress):
        src, src_lengths, tgt, _ = (t.to(device, non_blocking=True) for t in dataset.batch(idx))
        logits, _ = model(src, src_lengths, tgt)  # (B, T-1, V): the decoder reads SOS y_1 .. y_{T-1}
        loss = criterion(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        n += 1
    return (total / n).item()


def finite_weights(model):
    return all(torch.isfinite(p).all() for p in model.parameters())


class TrainingState:
    """What one training run holds: model, optimizer, schedule, shuffling generator, and its progress
    (epochs done, history, best epoch, seconds spent), all of which its training state saves."""

    def __init__(self, cfg, vocabs, device):
        self.cfg, self.vocabs = cfg, vocabs
        self.model = build_model(cfg, len(vocabs[0]), len(vocabs[1])).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, cfg.n_epochs) \
            if cfg.lr_schedule == "cosine" else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch, self.seconds = 0, 0.0
        self.history = {"epoch": [], "train_loss": [], "val_cer": [], "val_wer": [], "seconds": []}
        self.best = {"score": [math.inf], "epoch": 0, "val_cer": None, "val_wer": None}

    def save_state(self, path):
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        save_checkpoint(path, self.model, self.cfg, *self.vocabs, kind=STATE_KIND, epoch=self.epoch,
                        optimizer=self.optimizer.state_dict(), generator=self.generator.get_state(),
                        schedule=self.schedule.state_dict() if self.schedule else None,
                        rng=torch.get_rng_state(), cuda_rng=cuda, history=self.history, best=self.best,
                        seconds=self.seconds)

    def restore(self, path):
        """Continue from the training state at path, which must hold a run of this very config."""
        state = read_checkpoint(path, "--resume", kind=STATE_KIND)
        if artefacts.strip_noise(state["config"].to_dict()) != artefacts.strip_noise(self.cfg.to_dict()):
            other = next(k for k, v in state["config"].to_dict().items() if getattr(self.cfg, k) != v)
            raise InputError(f"--resume: {path} holds a run of another config ({other} = "
                             f"{getattr(state['config'], other)!r}, not {getattr(self.cfg, other)!r}); "
                             "delete it to start again")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule:
            self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch, self.seconds, self.history, self.best = (state[k] for k in ("epoch", "seconds", "history", "best"))


def run_epoch(run, sets, criterion, device, progress):
    """Train one epoch and validate; a history row, or None when the loss or a weight is not finite."""
    t0 = time.time()
    cfg = run.cfg
    loss = train_epoch(run.model, sets["train"], run.optimizer, criterion, cfg.batch_size, run.generator, device,
                       progress, bucket=cfg.bucket)
    if not math.isfinite(loss) or not finite_weights(run.model):
        return None
    if run.schedule is not None:
        run.schedule.step()
    run.model.eval()
    val = decoding.evaluate(run.model, sets["valid"], cfg.eval_batch_size, cfg.max_len)
    return {"epoch": run.epoch + 1, "train_loss": loss, "val_cer": val["cer"], "val_wer": val["wer"],
            "seconds": time.time() - t0}


def train(cfg, corpus, checkpoint, device, progress=False, log=None, resume=False):
    """Train on corpus["train"], validate on corpus["valid"] after every epoch, keep the best epoch's
    checkpoint and, until the run ends, the last epoch's training state (resume=True continues from it).
    A non-finite loss or weight stops the run as "diverged" (nothing non-finite is saved). Returns the record."""
    log = log or (lambda line: print(line, flush=True))
    configure_seed(cfg.seed)
    threads = set_threads(cfg.num_threads)
    src_vocab, tgt_vocab, sets = data.build_datasets(corpus, ("train", "valid"))
    run, state = TrainingState(cfg, (src_vocab, tgt_vocab), device), state_path(checkpoint)
    if resume and os.path.exists(state):
        run.restore(state)
        log(f"resuming from {state}: epoch {run.epoch} of {cfg.n_epochs} done")
    criterion = nn.CrossEntropyLoss(ignore_index=data.PAD_IDX, label_smoothing=cfg.label_smoothing)
    log(f"{'attention' if cfg.use_attn else 'no attention'}: {sum(p.numel() for p in run.model.parameters()):,} "
        f"parameters; vocabularies {len(src_vocab)} phonemes, {len(tgt_vocab)} characters; device {device}, "
        f"{threads} CPU thread{'s' * (threads > 1)}")
    status = "completed"
    while run.epoch < cfg.n_epochs:
        row = run_epoch(run, sets, criterion, device, progress)
        if row is None:
            status = "diverged"
            kept = f"the checkpoint of epoch {run.best['epoch']} stays" if run.best["epoch"] else "no checkpoint saved"
            log(f"epoch {run.epoch + 1:2d}/{cfg.n_epochs} | the loss or a weight is not finite: the run diverged "
                f"and stops here; {kept}")
            break
        run.epoch, run.seconds = row["epoch"], run.seconds + row["seconds"]
        for k, v in row.items():
            run.history[k].append(round(v, 6) if isinstance(v, float) else v)
        score = [row["val_cer"]] if cfg.select_on == "cer" else [row["val_wer"], row["val_cer"]]
        mark = " *" if score < run.best["score"] else ""
        if mark:
            run.best = {"score": score, "epoch": run.epoch, "val_cer": row["val_cer"], "val_wer": row["val_wer"]}
            save_checkpoint(checkpoint, run.model, cfg, src_vocab, tgt_vocab, epoch=run.epoch, finished=False,
                            val_cer=row["val_cer"], val_wer=row["val_wer"])
        run.save_state(state)
        log(f"epoch {run.epoch:2d}/{cfg.n_epochs} | train loss {row['train_loss']:.4f} | val CER {row['val_cer']:.4f} "
            f"| val WER {row['val_wer']:.4f} | {row['seconds']:.1f} s{mark}")
    end_run(checkpoint, state, status)
    best = run.best
    return {"checkpoint": checkpoint, "config": cfg.to_dict(), "status": status, "history": run.history,
            "best_epoch": best["epoch"], "best_val_cer": best["val_cer"], "best_val_wer": best["val_wer"],
            "wall_seconds": round(run.seconds, 1), "device": str(device), "num_threads": threads,
            "torch": torch.__version__}


def end_run(checkpoint, state, status):
    """A completed run's checkpoint is marked finished; the training state goes, as nothing is left to resume."""
    if status == "completed":
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        artefacts.atomic_write(checkpoint, lambda f: torch.save(dict(ckpt, finished=True), f))
    if os.path.exists(state):
        os.remove(state)
