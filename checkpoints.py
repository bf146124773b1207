"""Q3 checkpoints: self-describing files (state_dict, config, vocabularies; tensors and plain types
only) that `torch.load(..., weights_only=True)` reads back into the model they describe."""
import os

import torch

import data as p2g
import utils
from config import TrainConfig
from models import build_model

KIND = "hw2-q3-p2g-seq2seq"
REQUIRED = ("config", "src_vocab", "tgt_vocab", "model", "epoch", "val_cer")


def model_from_config(cfg, src_vocab_size, tgt_vocab_size):
    """The model a config describes (checkpoints older than a key get its value of that time)."""
    return build_model(src_vocab_size, tgt_vocab_size, cfg["hidden_size"], cfg["dropout"], cfg["use_attn"],
                       dropout_site=cfg.get("dropout_site", "output"), enc_layers=cfg.get("enc_layers", 1),
                       input_feed=cfg.get("input_feed", False))


def save(path, model, config, src_vocab, tgt_vocab, **extra):
    """Atomically write model's state_dict with its config and vocabularies; extra: epoch, scores..."""
    state = {"kind": KIND, "config": config, "src_vocab": src_vocab.itos, "tgt_vocab": tgt_vocab.itos,
             "model": model.state_dict(), **extra}
    utils.atomic_write(path, lambda f: torch.save(state, f))


def read(path, flag="--checkpoint_name"):
    """The checkpoint dict in path, on the CPU; an InputError naming the flag and the file otherwise."""
    name = f"{flag} {path}"
    if not os.path.exists(path):
        raise utils.InputError(f"{name}: no such checkpoint (train one first: python hw2-q3.py train --use_attn)")
    if os.path.isdir(path):
        raise utils.InputError(f"{name}: is a folder, not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise utils.InputError(f"{name}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise utils.InputError(f"{name}: not a hw2-q3.py checkpoint")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise utils.InputError(f"{name}: damaged checkpoint (no {missing[0]!r})")
    TrainConfig.from_dict(ckpt["config"]).check()
    return ckpt


def load(path, device, flag="--checkpoint_name"):
    """(model in eval mode on device, src_vocab, tgt_vocab, checkpoint dict); an InputError otherwise."""
    ckpt = read(path, flag)
    try:
        src_vocab, tgt_vocab = p2g.Vocabulary(ckpt["src_vocab"]), p2g.Vocabulary(ckpt["tgt_vocab"])
        model = model_from_config(ckpt["config"], len(src_vocab), len(tgt_vocab))
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, AssertionError) as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise utils.InputError(f"{flag} {path}: damaged checkpoint ({type(e).__name__}: {msg[:120]})") from None
    return model.to(device).eval(), src_vocab, tgt_vocab, ckpt
