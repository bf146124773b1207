"""Bad input, one row each: a command, the bad input it gets, the message fragment expected on the one
line of stderr, a non-zero exit, no traceback, and files that must be left as they were. A new failure
mode gets a row here."""
import hashlib
import os

import numpy as np
import pytest
import torch

import training
from conftest import run_script

WORDS = [("k æ t", "cat"), ("d ɔ ɡ", "dog"), ("f ɪ ʃ", "fish"), ("b ɜː d", "bird")]


def npz(path, **changes):
    """A tiny Intel-like .npz (4 images per split), with some arrays replaced."""
    rng = np.random.default_rng(0)
    arrays = {}
    for key in ("train", "val", "test"):
        arrays[f"{key}_images"] = rng.integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
        arrays[f"{key}_labels"] = np.arange(4).reshape(-1, 1)
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


def corpus(folder, splits=("train", "valid", "test"), text=None):
    folder.mkdir(exist_ok=True)
    for s in splits:
        (folder / f"{s}.tsv").write_text(text or "".join(f"{p}\t{w}\n" for p, w in WORDS), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A real (untrained) hw2-q3.py checkpoint for WORDS."""
    import data
    from models import build_model

    path = tmp_path_factory.mktemp("ckpt") / "attn.pt"
    src, tgt = data.Vocabulary.build(p.split() for p, _ in WORDS), data.Vocabulary.build(w for _, w in WORDS)
    config = training.TrainConfig(use_attn=True, hidden_size=16, dropout=0.0)
    training.save_checkpoint(path, build_model(config, len(src), len(tgt)), config, src, tgt, epoch=1, val_cer=0.5,
                             val_wer=0.9)
    return path


def tweaked_checkpoint(ckpt, tmp, drop=None, **config):
    state = torch.load(ckpt, weights_only=True)
    state["config"].update(config)
    state.pop(drop, None)
    torch.save(state, tmp / "bad.pt")
    return tmp / "bad.pt"


# (id, script, setup(tmp, ckpt) -> args, expected fragment, files under tmp that must stay as they were)
ROWS = [
    ("q2 label outside the classes", "hw2-q2.py", lambda t, c: ["-data_path", npz(t / "d.npz", test_labels=np.array([[0], [1], [7], [2]])),
     "-out_dir", t / "out"], "key 'test_labels' has label 7 outside 0-5", []),
    ("q2 class names as labels", "hw2-q2.py", lambda t, c: ["-data_path", npz(t / "d.npz", train_labels=np.array(["sea"] * 4)),
     "-out_dir", t / "out"], "key 'train_labels' holds <U3 values", []),
    ("q2 empty validation split", "hw2-q2.py", lambda t, c: ["-data_path", npz(t / "d.npz", val_images=np.zeros((0, 48, 48, 3), np.uint8),
     val_labels=np.zeros((0, 1), np.int64)), "-out_dir", t / "out"], "key 'val_images' holds no images", []),
    ("q2 an .npy file", "hw2-q2.py", lambda t, c: (np.save(t / "d.npy", np.zeros(3)), ["-data_path", t / "d.npy"])[1],
     "a single .npy array", []),
    ("q2 NaN pixels", "hw2-q2.py", lambda t, c: ["-data_path", npz(t / "d.npz", dev_images=None, train_images=np.full((4, 48, 48, 3), np.nan,
     np.float32))], "expected finite pixels", []),
    ("q2 missing file", "hw2-q2.py", lambda t, c: ["-data_path", t / "absent.npz"], "absent.npz: file not found", []),
    ("q2 batch of one with batch norm", "hw2-q2.py", lambda t, c: ["-batch_size", "1"], "batch norm needs at least 2", []),
    ("q2 NaN learning rate", "hw2-q2.py", lambda t, c: ["-learning_rate", "nan"], "expected a finite number, got 'nan'", []),
    ("q2 learning rate not a number", "hw2-q2.py", lambda t, c: ["-learning_rate", "abc"], "expected a number, got 'abc'", []),
    ("q2 out_dir is a file", "hw2-q2.py", lambda t, c: ((t / "f").write_text("keep"), ["-data_path", npz(t / "d.npz"), "-out_dir",
     t / "f"])[1], "-out_dir", ["f"]),
    ("q2 unknown device", "hw2-q2.py", lambda t, c: ["-device", "tpu"], "-device 'tpu': expected cpu, cuda", []),
    ("q3 NaN top-p", "hw2-q3.py", lambda t, c: ["test", "--topp", "nan"], "expected a finite number", []),
    ("q3 learning rate not a number", "hw2-q3.py", lambda t, c: ["train", "--lr", "abc"], "expected a number, got 'abc'", []),
    ("q3 NaN dropout", "hw2-q3.py", lambda t, c: ["train", "--dropout", "nan"], "expected a finite number", []),
    ("q3 extreme length penalty", "hw2-q3.py", lambda t, c: ["test", "--length_penalty", "1e9"], "must be in [0.0, 5.0]", []),
    ("q3 checkpoint path is a folder", "hw2-q3.py", lambda t, c: ["train", "--data_dir", corpus(t / "data"), "--checkpoint_name", t,
     "--out_dir", t / "out"], "is a folder", []),
    ("q3 missing checkpoint", "hw2-q3.py", lambda t, c: ["test", "--checkpoint_name", t / "nope.pt"], "nope.pt: no such checkpoint", []),
    ("q3 test of a checkpoint that a trial run wrote under runs/", "hw2-q3.py", lambda t, c: ((t / "runs").mkdir(),
     (t / "runs" / "attn.pt").write_bytes(c.read_bytes()), ["test", "--use_attn"])[2],
     "attn.pt: no such checkpoint (a trial run wrote runs/attn.pt: --checkpoint_name runs/attn.pt)", ["runs/attn.pt"]),
    ("q3 foreign checkpoint", "hw2-q3.py", lambda t, c: (torch.save({"state_dict": {}}, t / "o.pt"), ["test", "--checkpoint_name",
     t / "o.pt"])[1], "not a hw2-q3.py checkpoint", ["o.pt"]),
    ("q3 checkpoint without epoch", "hw2-q3.py", lambda t, c: ["test", "--checkpoint_name", tweaked_checkpoint(c, t, drop="epoch")],
     "damaged checkpoint (no 'epoch')", ["bad.pt"]),
    ("q3 checkpoint config out of range", "hw2-q3.py", lambda t, c: ["test", "--checkpoint_name", tweaked_checkpoint(c, t, dropout=2.0)],
     "bad.pt: dropout = 2.0 is out of its domain", ["bad.pt"]),
    ("q3 attention plot larger than the test set", "hw2-q3.py", lambda t, c: ["test", "--checkpoint_name", c, "--data_dir",
     corpus(t / "data"), "--out_dir", t / "out", "--plot_attn", "99"], "--plot_attn 99: the test set has 4 words", []),
    ("q3 empty spell", "hw2-q3.py", lambda t, c: ["spell", "--checkpoint_name", c, ""], "no phonemes given", []),
    ("q3 train without train.tsv", "hw2-q3.py", lambda t, c: ["train", "--data_dir", corpus(t / "data", ("valid",)), "--checkpoint_name",
     t / "m.pt", "--out_dir", t / "out"], "train.tsv: file not found", []),
    ("q3 malformed TSV line", "hw2-q3.py", lambda t, c: ["train", "--data_dir", corpus(t / "data", text="k æ t cat\n"),
     "--checkpoint_name", t / "m.pt", "--out_dir", t / "out"], "train.tsv:1: expected PHONEMES<TAB>SPELLING", []),
    ("q3 second run with the same name", "hw2-q3.py", lambda t, c: ((t / "m.pt.lock").write_text(str(os.getpid())),
     ["train", "--data_dir", corpus(t / "data"), "--checkpoint_name", t / "m.pt", "--out_dir", t / "out"])[1],
     "another run (pid", ["m.pt.lock"]),
    ("q1 out_dir is a file", "q1_hopfield.py", lambda t, c: ((t / "f").write_text("keep"), ["--out_dir", t / "f"])[1], "is a file", ["f"]),
    ("study without the assignment's result", "strongest.py", lambda t, c: ["--data_dir", corpus(t / "data"), "--assignment",
     t / "none.json", "--out_dir", t / "out", "--runs_dir", t / "runs"], "none.json: no such file", []),
    ("comparison figure from a damaged JSON", "q3_compare.py", lambda t, c: ((t / "r.json").write_text('{"examples": [1,'),
     ["lengths", f"x={t / 'r.json'}", "--out", t / "fig"])[1], "r.json: not valid JSON", ["r.json"]),
]
if not torch.cuda.is_available():
    ROWS.append(("q3 device this machine lacks", "hw2-q3.py", lambda t, c: ["test", "--device", "cuda"], "CUDA is not available", []))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@pytest.mark.parametrize("name, script, setup, fragment, kept", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_and_a_non_zero_exit(name, script, setup, fragment, kept, tmp_path, ckpt):
    args = setup(tmp_path, ckpt)
    before = {k: digest(tmp_path / k) for k in kept}
    code, _, err = run_script(script, *args, cwd=tmp_path)
    lines = [line for line in err.strip().splitlines() if not line.startswith("=") and "WARNING" not in line]
    assert code != 0, err
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1, err
    assert fragment in err, err
    assert {k: digest(tmp_path / k) for k in kept} == before


def test_a_closed_pipe_and_undecodable_stdin_are_quiet(ckpt, tmp_path):
    import subprocess
    import sys

    words = "\n".join(["k æ t"] * 2000)
    proc = subprocess.run(f"{sys.executable} hw2-q3.py spell --checkpoint_name {ckpt} | head -1", shell=True,
                          input=words.encode(), capture_output=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.stdout.decode().startswith("k æ t\t") and b"Traceback" not in proc.stderr
    code, _, err = run_script("hw2-q3.py", "spell", "--checkpoint_name", ckpt, stdin=b"k \xe6 t\n")
    assert code == 2 and "standard input: not UTF-8" in err and "Traceback" not in err


def test_test_reads_only_the_test_split(ckpt, tmp_path):
    code, out, err = run_script("hw2-q3.py", "test", "--checkpoint_name", ckpt, "--data_dir",
                                corpus(tmp_path / "data", ("test",)), "--out_dir", tmp_path / "out")
    assert code == 0 and "Test CER" in out, err
    assert "was trained on data, and the data now come from" in err  # one line: other data than the checkpoint's
