"""The configuration of a P2G training run: every field that determines a trained model, with the
assignment's values as defaults; training.py trains it, checkpoints.py checks the one a checkpoint holds."""
import dataclasses
import math

import utils


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained P2G model (the assignment's values are the defaults)."""
    use_attn: bool = False
    hidden_size: int = 128            # H: H/2 per encoder direction
    dropout: float = 0.3
    dropout_site: str = "lstm"        # decoder dropout before attention ("lstm") or after it ("output")
    enc_layers: int = 1
    input_feed: bool = False          # Luong et al. (2015); needs use_attn
    lr: float = 0.003
    n_epochs: int = 20
    batch_size: int = 64
    seed: int = 42
    max_len: int = 50
    label_smoothing: float = 0.0
    lr_schedule: str = "none"         # or "cosine"
    select_on: str = "cer"            # keep the epoch with the lowest validation CER, or WER (ties: CER)
    eval_batch_size: int = 500
    num_threads: int = 1              # torch CPU threads; 1 gives the committed numbers on any core count
    data: str = "data"                # where the corpus came from (a folder, or the ISLEX fallback)

    def check(self):
        """An InputError naming the first field out of its domain (or of its type)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            allowed = (int, float) if f.type is float else f.type
            if not isinstance(value, allowed) or (f.type is not bool and isinstance(value, bool)):
                raise utils.InputError(f"training configuration: {f.name} = {value!r} is not {f.type.__name__}")
        rules = {"hidden_size": self.hidden_size >= 2 and self.hidden_size % 2 == 0,
                 "dropout": 0.0 <= self.dropout < 1.0, "dropout_site": self.dropout_site in ("lstm", "output"),
                 "enc_layers": self.enc_layers >= 1, "input_feed": self.use_attn or not self.input_feed,
                 "lr": math.isfinite(self.lr) and self.lr > 0, "n_epochs": self.n_epochs >= 1,
                 "batch_size": self.batch_size >= 1, "max_len": self.max_len >= 1,
                 "label_smoothing": 0.0 <= self.label_smoothing < 1.0,
                 "lr_schedule": self.lr_schedule in ("none", "cosine"), "select_on": self.select_on in ("cer", "wer"),
                 "eval_batch_size": self.eval_batch_size >= 1, "num_threads": self.num_threads >= 0}
        bad = next((k for k, ok in rules.items() if not ok), None)
        if bad:
            raise utils.InputError(f"training configuration: {bad} = {getattr(self, bad)!r} is out of its domain"
                                   + (" (input_feed needs use_attn)" if bad == "input_feed" else ""))
        return self

    @classmethod
    def from_dict(cls, d):
        """The config a record or checkpoint holds; keys it lacks take their defaults, unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise utils.InputError(f"training configuration: unknown field {unknown[0]!r}")
        return cls(**d)

    def to_dict(self):
        return dataclasses.asdict(self)
