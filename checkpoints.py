"""Q3 checkpoints: self-describing files (state_dict, config, vocabularies; tensors and plain types
only) that `torch.load(..., weights_only=True)` reads back into the model they describe."""
import os

import torch

import data as p2g
import utils
from models import build_model

KIND = "hw2-q3-p2g-seq2seq"
MODEL_KEYS = ("use_attn", "hidden_size", "dropout", "dropout_site", "enc_layers", "input_feed")
TRAIN_KEYS = ("lr", "n_epochs", "batch_size", "seed", "max_len", "label_smoothing", "lr_schedule", "select_on")


def model_from_config(cfg, src_vocab_size, tgt_vocab_size):
    """The model a config describes (checkpoints older than a key get its value of that time)."""
    return build_model(src_vocab_size, tgt_vocab_size, cfg["hidden_size"], cfg["dropout"], cfg["use_attn"],
                       dropout_site=cfg.get("dropout_site", "output"), enc_layers=cfg.get("enc_layers", 1),
                       input_feed=cfg.get("input_feed", False))


def save(path, model, config, src_vocab, tgt_vocab, **extra):
    """Atomically write model's state_dict with its config and vocabularies; extra: epoch, scores..."""
    utils.save_checkpoint({"kind": KIND, "config": config, "src_vocab": src_vocab.itos, "tgt_vocab": tgt_vocab.itos,
                           "model": model.state_dict(), **extra}, path)


def load_or_die(path, device):
    """(model in eval mode, src_vocab, tgt_vocab, checkpoint dict); a one-line error naming the file otherwise."""
    if not os.path.exists(path):
        utils.die(f"--checkpoint_name {path}: no such checkpoint (run `python hw2-q3.py train` first)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        utils.die(f"--checkpoint_name {path}: not a readable checkpoint ({type(e).__name__})")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        utils.die(f"--checkpoint_name {path}: not a hw2-q3.py checkpoint")
    try:
        src_vocab, tgt_vocab = p2g.Vocabulary(ckpt["src_vocab"]), p2g.Vocabulary(ckpt["tgt_vocab"])
        model = model_from_config(ckpt["config"], len(src_vocab), len(tgt_vocab))
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        utils.die(f"--checkpoint_name {path}: damaged checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})")
    return model.to(device).eval(), src_vocab, tgt_vocab, ckpt


def default_path(mode, use_attn):
    """model.pt, or model-attn.pt with --use_attn; test and spell without either flag take the newer of the
    two that exist, so that `train --use_attn` then `test --topp 0.8` works as the assignment writes it."""
    if mode == "train" or use_attn:
        return "model-attn.pt" if use_attn else "model.pt"
    found = [p for p in ("model.pt", "model-attn.pt") if os.path.exists(p)]
    if len(found) > 1:
        found.sort(key=os.path.getmtime)
        print(f"using {found[-1]}, the newer of model.pt and model-attn.pt (--checkpoint_name to choose)")
    return found[-1] if found else "model.pt"
