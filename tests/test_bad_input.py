"""Bad input, one row each, as plain data: the command (run in a fresh folder), the files it finds there,
and the fragment of the one error line expected. Every row must exit non-zero with exactly one error line
and no traceback, and leave every file it found as it was. A new failure mode gets a row here."""
import hashlib
import os
import shlex
import subprocess
import sys
from typing import NamedTuple

import numpy as np
import pytest
import torch

from conftest import ROOT, WORDS, intel_npz, run_script

GOOD_TSV = "".join(f"{p}\t{w}\n" for p, w in WORDS)
CORPUS = {"data/train.tsv": GOOD_TSV, "data/valid.tsv": GOOD_TSV, "data/test.tsv": GOOD_TSV}
Q3_TRAIN = "hw2-q3.py train --data_dir data --checkpoint_name m.pt --out_dir out"


class Row(NamedTuple):
    id: str
    command: str
    files: dict  # name -> text, or (kind, value): ("npz", arrays changed), ("checkpoint", config changed), ...
    message: str
    folder: str = ""  # run in this folder of the repository instead of the fresh one


ROWS = [
    # ---- Q2: the Intel file and the flags
    Row("q2 missing file", "hw2-q2.py -data_path absent.npz", {}, "absent.npz: file not found"),
    Row("q2 an .npy file", "hw2-q2.py -data_path d.npy", {"d.npy": ("npy", np.zeros(3))}, "a single .npy array"),
    Row("q2 a key missing", "hw2-q2.py -data_path d.npz", {"d.npz": ("npz", {"val_labels": None})},
        "d.npz: missing key 'val_labels'"),
    Row("q2 images of another shape", "hw2-q2.py -data_path d.npz",
        {"d.npz": ("npz", {"test_images": np.zeros((4, 32, 48, 3), np.uint8)})},
        "key 'test_images' has shape (4, 32, 48, 3), expected (N,48,48,3)"),
    Row("q2 object arrays", "hw2-q2.py -data_path d.npz", {"d.npz": ("npz", {"train_images": np.array([None] * 4)})},
        "d.npz: cannot read 'train_images'"),
    Row("q2 label outside the classes", "hw2-q2.py -data_path d.npz -out_dir out",
        {"d.npz": ("npz", {"test_labels": np.array([[0], [1], [7], [2]])})}, "key 'test_labels' has label 7 outside 0-5"),
    Row("q2 class names as labels", "hw2-q2.py -data_path d.npz -out_dir out",
        {"d.npz": ("npz", {"train_labels": np.array(["sea"] * 4)})}, "key 'train_labels' holds <U3 values"),
    Row("q2 empty validation split", "hw2-q2.py -data_path d.npz -out_dir out",
        {"d.npz": ("npz", {"val_images": np.zeros((0, 48, 48, 3), np.uint8), "val_labels": np.zeros((0, 1), np.int64)})},
        "key 'val_images' holds no images"),
    Row("q2 NaN pixels", "hw2-q2.py -data_path d.npz",
        {"d.npz": ("npz", {"train_images": np.full((4, 48, 48, 3), np.nan, np.float32)})}, "expected finite pixels"),
    Row("q2 batch of one with batch norm", "hw2-q2.py -batch_size 1", {}, "batch norm needs at least 2"),
    Row("q2 NaN learning rate", "hw2-q2.py -learning_rate nan", {}, "expected a finite number, got 'nan'"),
    Row("q2 learning rate not a number", "hw2-q2.py -learning_rate abc", {}, "expected a number, got 'abc'"),
    Row("q2 out_dir is a file", "hw2-q2.py -data_path d.npz -out_dir f", {"d.npz": ("npz", {}), "f": "keep"}, "-out_dir"),
    Row("q2 unknown device", "hw2-q2.py -device tpu", {}, "-device 'tpu': expected cpu, cuda"),
    # ---- Q3: flags
    Row("q3 the assignment's train flags without a mode", "hw2-q3.py --use_attn", {},
        "a mode comes first: python hw2-q3.py train --use_attn"),
    Row("q3 the assignment's test flags without a mode", "hw2-q3.py --topp 0.8", {},
        "a mode comes first: python hw2-q3.py test --topp 0.8"),
    Row("q3 a misspelt flag", "hw2-q3.py train --use-attn", {},
        "hw2-q3.py train: error: unrecognized arguments: --use-attn (did you mean --use_attn?)"),
    Row("q3 top-p of zero", "hw2-q3.py test --topp 0", {}, "argument --topp: must be in (0.0, 1.0]"),
    Row("q3 top-p above one", "hw2-q3.py test --topp 1.5", {}, "argument --topp: must be in (0.0, 1.0]"),
    Row("q3 NaN top-p", "hw2-q3.py test --topp nan", {}, "expected a finite number"),
    Row("q3 top-p and beam search at once", "hw2-q3.py test --topp 0.8 --beam_size 3", {}, "two decodings"),
    Row("q3 learning rate not a number", "hw2-q3.py train --lr abc", {}, "expected a number, got 'abc'"),
    Row("q3 NaN dropout", "hw2-q3.py train --dropout nan", {}, "expected a finite number"),
    Row("q3 dropout of one", "hw2-q3.py train --dropout 1", {}, "argument --dropout: must be in [0.0, 1.0)"),
    Row("q3 odd hidden size", "hw2-q3.py train --hidden_size 127", {}, "--hidden_size must be even"),
    Row("q3 input feeding without attention", "hw2-q3.py train --input_feed", {}, "--input_feed needs --use_attn"),
    Row("q3 negative bucket pool", "hw2-q3.py train --bucket -1", {}, "argument --bucket: must be"),
    Row("q3 unknown selection metric", "hw2-q3.py train --select_on bleu", {}, "--select_on: invalid choice: 'bleu'"),
    Row("q3 extreme length penalty", "hw2-q3.py test --length_penalty 1e9", {}, "must be in [0.0, 5.0]"),
    Row("q3 device this machine lacks", "hw2-q3.py test --device cuda:7", {}, "--device cuda:7"),
    # ---- Q3: the corpus
    Row("q3 train without train.tsv", Q3_TRAIN, {"data/valid.tsv": GOOD_TSV}, "data/train.tsv: file not found"),
    Row("q3 TSV line without a tab", Q3_TRAIN, {**CORPUS, "data/train.tsv": "k æ t cat\n"},
        "data/train.tsv:1: expected PHONEMES<TAB>SPELLING, found 0 tabs"),
    Row("q3 TSV line with two tabs", Q3_TRAIN, {**CORPUS, "data/train.tsv": "d ɔ ɡ\tdog\nk æ t\tcat\textra\n"},
        "data/train.tsv:2: expected PHONEMES<TAB>SPELLING, found 2 tabs"),
    Row("q3 TSV line without phonemes", Q3_TRAIN, {**CORPUS, "data/valid.tsv": "\tcat\n"},
        "data/valid.tsv:1: empty phonemes"),
    Row("q3 TSV line without a spelling", Q3_TRAIN, {**CORPUS, "data/train.tsv": "k æ t\t \n"},
        "data/train.tsv:1: empty spelling"),
    Row("q3 empty TSV", Q3_TRAIN, {**CORPUS, "data/train.tsv": ""}, "data/train.tsv: no examples (empty file)"),
    Row("q3 TSV not UTF-8", Q3_TRAIN, {**CORPUS, "data/train.tsv": ("bytes", "d ɔ ɡ\tdog\n".encode() + b"k a f e\tcaf\xe9\n")},
        "data/train.tsv:2: not UTF-8"),
    # ---- Q3: checkpoints and outputs
    Row("q3 checkpoint path is a folder", "hw2-q3.py train --data_dir data --checkpoint_name sub --out_dir out",
        {**CORPUS, "sub/x": "keep"}, "--checkpoint_name sub: is a folder"),
    Row("q3 missing checkpoint", "hw2-q3.py test --checkpoint_name nope.pt", {}, "nope.pt: no such checkpoint"),
    Row("q3 a typed checkpoint that a trial run wrote under runs/", "hw2-q3.py test --checkpoint_name attn.pt --use_attn",
        {"runs/attn.pt": ("checkpoint", {})},
        "attn.pt: no such checkpoint (a trial run wrote runs/attn.pt: python hw2-q3.py test --checkpoint_name "
        "runs/attn.pt --use_attn)"),
    Row("q3 foreign checkpoint", "hw2-q3.py test --checkpoint_name o.pt", {"o.pt": ("torch", {"state_dict": {}})},
        "o.pt: not a hw2-q3.py checkpoint"),
    Row("q3 checkpoint without epoch", "hw2-q3.py test --checkpoint_name bad.pt", {"bad.pt": ("checkpoint", {"epoch": None})},
        "bad.pt: damaged checkpoint (no 'epoch')"),
    Row("q3 checkpoint whose weights do not fit its config", "hw2-q3.py test --checkpoint_name bad.pt",
        {"bad.pt": ("checkpoint", {"config": {"use_attn": False}})}, "bad.pt: damaged checkpoint"),
    Row("q3 checkpoint config out of range", "hw2-q3.py test --checkpoint_name bad.pt",
        {"bad.pt": ("checkpoint", {"config": {"dropout": 2.0}})}, "bad.pt: dropout = 2.0 is out of its domain"),
    Row("q3 checkpoint config with an unknown field", "hw2-q3.py test --checkpoint_name bad.pt",
        {"bad.pt": ("checkpoint", {"config": {"colour": 1}})}, "bad.pt: unknown field 'colour'"),
    Row("q3 attention plot larger than the test set",
        "hw2-q3.py test --checkpoint_name attn.pt --data_dir data --out_dir out --plot_attn 99",
        {**CORPUS, "attn.pt": ("checkpoint", {})}, "--plot_attn 99: the test set has 12 words"),
    Row("q3 empty spell", "hw2-q3.py spell --checkpoint_name attn.pt ''", {"attn.pt": ("checkpoint", {})},
        "no phonemes given"),
    Row("q3 spell output is a folder", "hw2-q3.py spell --checkpoint_name attn.pt --out sub 'k æ t'",
        {"attn.pt": ("checkpoint", {}), "sub/x": "keep"}, "--out sub: is a folder"),
    Row("q3 second run with the same name", Q3_TRAIN, {**CORPUS, "m.pt.lock": str(os.getpid())}, "another run (pid"),
    Row("q3 run from a folder inside the repository", "hw2-q3.py train --use_attn", {},
        "run hw2-q3.py from the repository root: cd ..", folder="report"),
    # ---- Q1, the study, the comparison figures
    Row("q1 out_dir is a file", "q1_hopfield.py --out_dir f", {"f": "keep"}, "is a file"),
    Row("study without the assignment's result", "strongest.py --data_dir data --assignment none.json --out_dir out "
        "--runs_dir runs", CORPUS, "none.json: no such file"),
    Row("comparison figure from a damaged JSON", "q3_compare.py lengths x=r.json --out fig",
        {"r.json": '{"examples": [1,'}, "r.json: not valid JSON"),
]


def prepare(folder, files, checkpoint):
    """Write each file of a row under folder."""
    for name, spec in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        kind, value = spec if isinstance(spec, tuple) else ("text", spec)
        if kind == "text":
            path.write_text(value, encoding="utf-8")
        elif kind == "bytes":
            path.write_bytes(value)
        elif kind == "npy":
            np.save(path, value)
        elif kind == "npz":
            intel_npz(path, sizes=(4, 4, 4), **value)
        elif kind == "torch":
            torch.save(value, path)
        elif kind == "checkpoint":  # the session's trained checkpoint, with some entries changed or (None) removed
            state = torch.load(checkpoint, weights_only=True)
            state["config"].update(value.pop("config", {}))
            state.update(value)
            torch.save({k: v for k, v in state.items() if v is not None}, path)


def digests(folder):
    """Every file and folder under folder: a file's SHA-256, a folder's None."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_error_line_and_a_non_zero_exit(row, tmp_path, trained):
    prepare(tmp_path, row.files, trained[2])
    before = digests(tmp_path)
    script, *args = shlex.split(row.command)
    code, _, err = run_script(script, *args, cwd=os.path.join(ROOT, row.folder) if row.folder else tmp_path)
    assert code != 0 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1 and row.message in errors[0], err
    assert digests(tmp_path) == before


def test_a_closed_pipe_is_quiet_and_undecodable_standard_input_is_one_line(trained, tmp_path):
    """Slow: the pipe needs a shell and a fresh interpreter."""
    words = "\n".join(["k æ t"] * 2000)
    proc = subprocess.run(f"{sys.executable} hw2-q3.py spell --checkpoint_name {trained[2]} | head -1", shell=True,
                          input=words.encode(), capture_output=True, cwd=ROOT)
    assert proc.stdout.decode().startswith("k æ t\t") and proc.stderr == b""
    code, _, err = run_script("hw2-q3.py", "spell", "--checkpoint_name", trained[2], stdin=b"k \xe6 t\n")
    assert code == 2 and "standard input: not UTF-8" in err and "Traceback" not in err


def test_test_reads_only_the_test_split_and_says_when_the_data_differ(trained, tmp_path):
    prepare(tmp_path, {"data/test.tsv": GOOD_TSV}, None)
    code, out, err = run_script("hw2-q3.py", "test", "--checkpoint_name", trained[2], "--data_dir", tmp_path / "data",
                                "--out_dir", "out", cwd=tmp_path)
    assert code == 0 and "Test CER" in out, err
    assert f"was trained on data, and the data now come from {tmp_path / 'data'}" in err
