"""Bad input, one row each, as plain data: the command (run in a fresh folder), the files it finds there,
and the fragment of the one error line expected. Every row must exit non-zero with exactly one error line
and no traceback, and leave every file it found as it was. A new failure mode gets a row here."""
import hashlib
import shlex
from typing import NamedTuple

import numpy as np
import pytest
import torch

from conftest import WORDS, call_main, intel_npz

GOOD_TSV = "".join(f"{p}\t{w}\n" for p, w in WORDS)
CORPUS = {"data/train.tsv": GOOD_TSV, "data/valid.tsv": GOOD_TSV, "data/test.tsv": GOOD_TSV}
Q3_TRAIN = "hw2-q3.py train --data_dir data --checkpoint_name m.pt --out_dir out"


class Row(NamedTuple):
    id: str
    command: str
    files: dict  # name -> text, or (kind, value): ("npz", arrays changed), ("checkpoint", config changed), ...
    message: str


ROWS = [
    # ---- Q2: the Intel file and the flags
    Row("q2 missing file", "hw2-q2.py -data_path absent.npz", {}, "absent.npz: file not found"),
    Row("q2 not an npz file", "hw2-q2.py -data_path d.npz", {"d.npz": "text"}, "d.npz: not a readable .npz file"),
    Row("q2 a key missing", "hw2-q2.py -data_path d.npz", {"d.npz": ("npz", {"val_labels": None})},
        "d.npz: missing key 'val_labels'"),
    Row("q2 images of another shape", "hw2-q2.py -data_path d.npz",
        {"d.npz": ("npz", {"test_images": np.zeros((4, 32, 48, 3), np.uint8)})},
        "key 'test_images' has shape (4, 32, 48, 3), expected (N,48,48,3)"),
    Row("q2 float pixels", "hw2-q2.py -data_path d.npz",
        {"d.npz": ("npz", {"train_images": np.full((4, 48, 48, 3), np.nan, np.float32)})}, "must be uint8"),
    Row("q2 label outside the classes", "hw2-q2.py -data_path d.npz",
        {"d.npz": ("npz", {"test_labels": np.array([[0], [1], [7], [2]])})}, "'test_labels' has a label outside 0-5"),
    Row("q2 class names as labels", "hw2-q2.py -data_path d.npz",
        {"d.npz": ("npz", {"train_labels": np.array(["sea"] * 4)})}, "'train_labels' N integers"),
    Row("q2 empty validation split", "hw2-q2.py -data_path d.npz",
        {"d.npz": ("npz", {"val_images": np.zeros((0, 48, 48, 3), np.uint8), "val_labels": np.zeros((0, 1), np.int64)})},
        "key 'val_images' has shape (0, 48, 48, 3)"),
    Row("q2 batch of one with batch norm", "hw2-q2.py -batch_size 1", {}, "batch norm needs at least 2"),
    Row("q2 NaN learning rate", "hw2-q2.py -learning_rate nan", {}, "expected a finite number, got 'nan'"),
    Row("q2 learning rate not a number", "hw2-q2.py -learning_rate abc", {}, "expected float, got 'abc'"),
    Row("q2 unknown device", "hw2-q2.py -device tpu", {}, "-device 'tpu': expected cpu, cuda"),
    # ---- Q3: flags
    Row("q3 the assignment's flags without a mode", "hw2-q3.py --use_attn", {}, "the following arguments are required: mode"),
    Row("q3 top-p of zero", "hw2-q3.py test --topp 0", {}, "argument --topp: must be in (0, 1]"),
    Row("q3 top-p above one", "hw2-q3.py test --topp 1.5", {}, "argument --topp: must be in (0, 1]"),
    Row("q3 learning rate not a number", "hw2-q3.py train --lr abc", {}, "expected float, got 'abc'"),
    Row("q3 NaN dropout", "hw2-q3.py train --dropout nan", {}, "expected a finite number"),
    Row("q3 dropout of one", "hw2-q3.py train --dropout 1", {}, "argument --dropout: must be in [0, 1)"),
    Row("q3 odd hidden size", "hw2-q3.py train --hidden_size 127", {}, "--hidden_size: must be even"),
    Row("q3 device this machine lacks", "hw2-q3.py test --device cuda:7", {}, "--device cuda:7"),
    Row("q3 input feeding without attention", "beyond.train --input_feed", {}, "--input_feed: needs --use_attn"),
    # ---- Q3: the corpus
    Row("q3 train without train.tsv", Q3_TRAIN, {"data/valid.tsv": GOOD_TSV}, "data/train.tsv: No such file"),
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
    Row("q3 checkpoint path is a folder", "hw2-q3.py train --data_dir data --checkpoint_name sub",
        {**CORPUS, "sub/x": "keep"}, "cannot write sub"),
    Row("q3 missing checkpoint", "hw2-q3.py test --checkpoint_name nope.pt", {},
        "nope.pt: no such checkpoint (first: python hw2-q3.py train --checkpoint_name nope.pt)"),
    Row("q3 a checkpoint that is not one", "hw2-q3.py test --checkpoint_name t.pt", {"t.pt": "text"},
        "t.pt: not a readable checkpoint"),
    Row("q3 foreign checkpoint", "hw2-q3.py test --checkpoint_name o.pt", {"o.pt": ("torch", {"state_dict": {}})},
        "o.pt: not a hw2-q3.py checkpoint"),
    Row("q3 checkpoint without epoch", "hw2-q3.py test --checkpoint_name bad.pt", {"bad.pt": ("checkpoint", {"epoch": None})},
        "bad.pt: damaged checkpoint (KeyError: 'epoch')"),
    Row("q3 checkpoint whose weights do not fit its config", "hw2-q3.py test --checkpoint_name bad.pt",
        {"bad.pt": ("checkpoint", {"config": {"use_attn": False}})}, "bad.pt: damaged checkpoint (RuntimeError"),
    Row("q3 an input-feeding checkpoint", "hw2-q3.py test --checkpoint_name f.pt",
        {"f.pt": ("checkpoint", {"config": {"input_feed": True}})}, "f.pt: a model with input feeding"),
    Row("q3 train with a flag of test", "hw2-q3.py train --topp 0.8", {},
        "argument --topp: train does not take it, only test does"),
    Row("q3 test with a flag of train", "hw2-q3.py test --lr 0.1", {}, "argument --lr: test does not take it, only train does"),
    # ---- Q1 and beyond
    Row("q1 out_dir is a file", "q1_hopfield.py --out_dir f", {"f": "keep"}, "cannot write f/"),
    Row("attention plot larger than the test set", "beyond.beam --checkpoint_name attn.pt --plot_attn 99",
        {**CORPUS, "attn.pt": ("checkpoint", {})}, "--plot_attn 99: the test set has 12 words"),
    Row("empty spell", "beyond.spell --checkpoint_name attn.pt ''", {"attn.pt": ("checkpoint", {})},
        "no phonemes given"),
    Row("study without the assignment's result", "beyond.study --data_dir data --assignment none.json --out_dir out "
        "--runs_dir runs", CORPUS, "none.json: No such file"),
    Row("comparison figure from a damaged JSON", "beyond.diagnostics lengths x=r.json --out fig",
        {"r.json": '{"examples": [1,'}, "r.json: not valid JSON"),
    Row("paired comparison of a record without predictions", "beyond.compare --results r --out p.json",
        {"r/attn-test-greedy.json": '{"cer": 0.2}'}, "r/attn-test-greedy.json: no examples with gold and pred"),
    Row("q2 global pooling out of its choices", "hw2-q2.py -global_pool maybe", {},
        "argument -global_pool: invalid choice: 'maybe'"),
    Row("check a folder that is not there", "beyond.check nowhere", {}, "nowhere: no such folder"),
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
    code, _, err = call_main(script, *args, cwd=tmp_path)
    assert code != 0 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1 and row.message in errors[0], err
    assert digests(tmp_path) == before


def test_test_says_when_the_data_differ_from_those_it_was_trained_on(trained, tmp_path):
    prepare(tmp_path, {"data/test.tsv": GOOD_TSV}, None)
    code, out, err = call_main("hw2-q3.py", "test", "--checkpoint_name", trained[2], "--data_dir",
                               tmp_path / "data", "--out_dir", "out", cwd=tmp_path)
    assert code == 0 and "Test CER" in out, err
    assert f"was trained on data; its scores on {tmp_path / 'data'} are not comparable" in err
