"""What the tests share, each written once: the word list, a corpus on disk, vocabularies, a tiny Intel
.npz, small models, a model trained once for the session, and two ways to run a script: in a fresh
python process, as a user runs it, or its main() in this process (the bad-input table)."""
import contextlib
import importlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "report"))  # report/build.py

import data  # noqa: E402
from beyond import q2, q3  # noqa: E402,F401  (hw2-q2.py and hw2-q3.py as modules)
from beyond.train import InputFeedDecoder  # noqa: E402
from models import BahdanauAttention, Decoder, Encoder, Seq2Seq  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

WORDS = [("k æ t", "cat"), ("d ɔ ɡ", "dog"), ("f ɪ ʃ", "fish"), ("b ɜː d", "bird"), ("m aʊ s", "mouse"),
         ("h ɔː s", "horse"), ("ʃ iː p", "sheep"), ("ɡ oʊ t", "goat"), ("k aʊ", "cow"), ("d ʌ k", "duck"),
         ("l aɪ ə n", "lion"), ("b ɛ ə", "bear")]
PAIRS = [(p.split(), w) for p, w in WORDS]  # as data.read_pairs returns them
CORPUS = {s: PAIRS for s in data.SPLITS}  # as data.load_corpus returns it


def checkout():
    """Every file and folder of the checkout, a file with its modification time, but the environment
    and caches (one walk, which never enters them)."""
    skip, found = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}, set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        found.add((os.path.relpath(folder, ROOT) + "/", 0))
        found |= {(os.path.relpath(os.path.join(folder, f), ROOT), os.lstat(os.path.join(folder, f)).st_mtime)
                  for f in files}
    return found


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller, with or without xdist workers
        session.config.checkout = checkout()


def pytest_sessionfinish(session, exitstatus):
    """The suite leaves the checkout as it found it: a test that writes there fails the run."""
    now = checkout() if hasattr(session.config, "checkout") else None
    if now is not None and now != session.config.checkout:
        changed = sorted(name for name, _ in now ^ session.config.checkout)
        print(f"\nthe tests changed the checkout: {', '.join(changed[:10])}", file=sys.stderr)
        session.exitstatus = 1


@pytest.fixture(params=DEVICES)
def device(request):
    """Every test that runs a model runs on the CPU and, where CUDA is available, on the GPU too."""
    return torch.device(request.param)


# ---- data on disk ------------------------------------------------------------------------------------

def write_corpus(folder, words=WORDS, splits=data.SPLITS, text=None):
    """folder/<split>.tsv for each split, the lines of words (or the given text); returns folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in splits:
        (folder / f"{s}.tsv").write_text(text if text is not None else "".join(f"{p}\t{w}\n" for p, w in words),
                                         encoding="utf-8")
    return folder


@pytest.fixture
def corpus_dir(tmp_path):
    return write_corpus(tmp_path / "data")


def vocabularies(pairs=PAIRS):
    """(src_vocab, tgt_vocab) as training builds them from the training pairs."""
    return data.Vocabulary.build(p for p, _ in pairs), data.Vocabulary.build(w for _, w in pairs)


def intel_npz(path, sizes=(24, 12, 12), seed=0, **changes):
    """A tiny Intel-like .npz: random uint8 (N, 48, 48, 3) images, labels 0-5 in turn as (N, 1); changes
    replace arrays (None removes one). Returns the path as a string."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, n in zip(("train", "val", "test"), sizes):
        arrays[f"{key}_images"] = rng.integers(0, 256, (n, 48, 48, 3), dtype=np.uint8)
        arrays[f"{key}_labels"] = (np.arange(n) % 6).reshape(-1, 1).astype(np.int64)
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def course_file(name):
    """Path of a course data file under data/, or skip the test with a reason."""
    path = os.path.join(ROOT, "data", name)
    if not os.path.exists(path):
        pytest.skip(f"the course data file data/{name} is not here (see the README's Data section)")
    return path


# ---- models ------------------------------------------------------------------------------------------

def tiny_config(**fields):
    """The config of a small model, every field that hw2-q3.py train writes."""
    args = q3.parse_args(["train", "--use_attn", "--hidden_size", "16", "--dropout", "0", "--batch_size", "4"])
    return {**q3.config_of(args), **fields}


def random_model(use_attn=True, input_feed=False, seed=0, V_src=12, V_tgt=10, H=16):
    """An untrained model of hw2-q3's build_model (with input_feed, beyond's decoder), in eval mode."""
    torch.manual_seed(seed)
    return q3.build_model({"use_attn": use_attn, "hidden_size": H, "dropout": 0.0}, V_src, V_tgt,
                          decoder_class=InputFeedDecoder if input_feed else Decoder).eval()


def course_model(use_attn, V_src=12, V_tgt=10, H=16, dropout=0.3):
    """Built exactly as the course's hw2-q3.py builds it: positional arguments, no extras."""
    encoder = Encoder(V_src, H, data.PAD_IDX, dropout)
    attn = BahdanauAttention(H) if use_attn else None
    return Seq2Seq(encoder, Decoder(H, V_tgt, attn, data.PAD_IDX, dropout))


def random_batch(seed=0, B=5, V_src=12, V_tgt=10, S=7, T=6):
    """(src (B, S) padded after each length, lengths (B,), tgt (B, T) starting with SOS) of random ids."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([S, 3, 5, 1, 6][:B])
    src = torch.randint(4, V_src, (B, S), generator=g)
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = data.PAD_IDX
    tgt = torch.randint(4, V_tgt, (B, T), generator=g)
    tgt[:, 0] = data.SOS_IDX
    return src, lengths, tgt


class Bigram(torch.nn.Module):
    """A hand-made model whose next token depends on the last one only: P(next | last) = table[last][next].
    It offers what decoding calls: encoder, decoder (without attention), generator, and the forward of Seq2Seq."""

    def __init__(self, table):
        super().__init__()
        self.log_table = torch.nn.Parameter(torch.tensor(table).log(), requires_grad=False)  # (V, V)
        self.encoder = lambda src, lengths: (torch.zeros(len(src), 1, 1), (torch.zeros(1, len(src), 1),) * 2)
        self.decoder = _BigramDecoder(self.log_table)
        self.generator = torch.nn.Identity()  # the decoder's output is already the log-probabilities

    def forward(self, src, src_lengths, tgt):
        return self.log_table[tgt[:, :-1]], None


class _BigramDecoder:
    attn = None

    def __init__(self, log_table):
        self.log_table = log_table

    def __call__(self, tgt, state, encoder_outputs, src_lengths, keys=None):
        return self.log_table[tgt], state


A_ID = 4  # the id of "a" in a target vocabulary built from "a": PAD SOS EOS UNK a
BIGRAM = [[1.0, 0, 0, 0, 0], [1e-9, 1e-9, 0.4, 1e-9, 0.6], [1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0],
          [1e-9, 1e-9, 0.6, 1e-9, 0.4]]  # after SOS: EOS 0.4, a 0.6; after a: EOS 0.6, a 0.4


def tiny_train(config, checkpoint, corpus=CORPUS, **options):
    """hw2-q3's train_run, quietly: the record; the checkpoint at checkpoint."""
    return q3.train_run(config, corpus, str(checkpoint), torch.device("cpu"), log=lambda line: None, **options)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small attention model trained for 8 epochs on WORDS (confident, not perfect): (model, dataset of
    WORDS, checkpoint path)."""
    path = tmp_path_factory.mktemp("trained") / "attn.pt"
    tiny_train(tiny_config(hidden_size=32, lr=0.01, n_epochs=8), path)
    model, src_vocab, tgt_vocab, _ = q3.load_checkpoint(str(path), torch.device("cpu"))
    return model, data.Seq2SeqDataset(PAIRS, src_vocab, tgt_vocab), path


def teacher_forced_log_prob(model, src, tokens):
    """log P(tokens | src) of one word, step by step from SOS by the model's own forward: src (S,), tokens
    a list of ids ending with EOS."""
    tgt = torch.tensor([[data.SOS_IDX] + list(tokens)], device=src.device)
    with torch.no_grad():
        logits, _ = model(src[None], torch.tensor([len(src)], device=src.device), tgt)
    return torch.log_softmax(logits[0], -1).gather(1, tgt[0, 1:, None]).sum().item()


def dropped(before, after, p):
    """after is before with some non-zero entries zeroed and every other one scaled by 1 / (1 - p)."""
    kept = after != 0
    return bool((before[~kept] != 0).any()) and torch.allclose(after[kept], before[kept] / (1 - p))


# ---- the scripts ---------------------------------------------------------------------------------------

def ctrl_c_in_epoch(n, train_epoch):
    """train_epoch, but Ctrl-C (KeyboardInterrupt) as the n-th epoch starts."""
    calls = []

    def stopped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return train_epoch(*args, **kwargs)
    return stopped


def run_script(*command, cwd=ROOT, stdin=None, timeout=300):
    """A script run as a user runs it, in a fresh python process: (exit code, stdout, stderr).
    command: "hw2-q3.py", "train", ... or "-m", "beyond.spell", ..."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONIOENCODING="utf-8")
    script = [os.path.join(ROOT, command[0])] if command[0].endswith(".py") else [command[0]]
    proc = subprocess.run([sys.executable, *script, *map(str, command[1:])], cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def call_main(script, *args, cwd=ROOT, stdin=""):
    """A script's main() through utils.run, in this process, in folder cwd: (exit code, stdout, stderr)."""
    module = importlib.import_module(script[:-3] if script.endswith(".py") else script)
    out, err, old = io.StringIO(), io.StringIO(), os.getcwd()
    argv0, sys.argv[0] = sys.argv[0], os.path.join(ROOT, script if script.endswith(".py") else "x.py")
    stdin_before, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                from utils import run
                run(module.main, [str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    finally:
        os.chdir(old)
        sys.argv[0], sys.stdin = argv0, stdin_before
    return code, out.getvalue(), err.getvalue()
