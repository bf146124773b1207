"""The course files swap with the skeleton's, file by file, in a real python process on a tiny corpus
or image file: our models.py, data.py and nucleus_sampling in the skeleton's Q3 folder, driven by the
skeleton's own hw2-q3.py (train, then test with top-p); our utils.py, ConvBlock, CNN and
get_number_trainable_params in its Q2 folder, driven by its hw2-q2.py; and a student's skeleton-shaped
models.py (tests/skeleton_models.py: the skeleton's classes and nothing more, a decoder stepping one
token at a time) with our weights. That models.py trained and tested under our hw2-q3.py is the
checker's smoke run (tests/test_check.py). Each definition of the skeleton is in the same file of ours,
with the skeleton's parameters and defaults first. The skeleton comes from ../shared/skeleton at test
time; nothing here copies it.

- hw2-q3.py: `def nucleus_sampling(logits, p=0.8, rng=None):` -> `def nucleus_sampling(logits, top_p=0.8, rng=None):` | test_every_skeleton_definition_is_ours_with_its_parameters_and_defaults_first
- hw2-q2.py: `def predict(model, X, return_scores=True, batch_size=1000):` -> `def predict(model, X, return_scores=False, batch_size=1000):` | test_every_skeleton_definition_is_ours_with_its_parameters_and_defaults_first
- models.py: `    def sequence_mask(self, lengths, max_len=None):` -> `    def sequence_mask(self, lengths, max_len):` | test_every_skeleton_definition_is_ours_with_its_parameters_and_defaults_first
- data.py: `    @property\n    def vocab_size(self):` -> `    def vocab_size(self):` | test_every_skeleton_definition_is_ours_with_its_parameters_and_defaults_first
- utils.py: `def load_dataset(data_path, bias=False):` -> `def load_data(data_path, bias=False):` | test_every_skeleton_definition_is_ours_with_its_parameters_and_defaults_first
"""
import ast
import functools
import importlib
import inspect
import os
import shutil
import subprocess
import sys

import pytest

import skeleton_models
from conftest import ROOT, WORDS, intel_npz, q3, write_corpus
from data import PAD_IDX

SKELETON = os.path.join(os.path.dirname(ROOT), "shared", "skeleton")
COURSE_FILES = {"hw2-q2/hw2-q2.py": "hw2-q2", "hw2-q2/utils.py": "utils", "hw2-q3/hw2-q3.py": "hw2-q3",
                "hw2-q3/models.py": "models", "hw2-q3/data.py": "data"}  # the skeleton's file -> ours
TINY = ["--n_epochs", "1", "--hidden_size", "16", "--batch_size", "4"]


@pytest.fixture
def skeleton():
    if not os.path.isdir(SKELETON):
        pytest.skip(f"the course skeleton is not at {SKELETON}")
    return SKELETON


def run_in(folder, *args):
    """python args... in folder, as a student runs it there: (exit code, stdout + stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def definition(path, name):
    """(first line, last line, source lines) of the top-level function or class name in path."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    node = next(n for n in ast.parse("".join(lines)).body
                if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name)
    return node.lineno - 1, node.end_lineno, lines[node.lineno - 1:node.end_lineno]


def with_ours(script, names):
    """The skeleton's script (a path in the copied folder) with the definitions names replaced by
    those of our script of the same name, written over it."""
    for name in names:
        start, end, _ = definition(script, name)
        with open(script, encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
        ours = definition(os.path.join(ROOT, os.path.basename(script)), name)[2]
        with open(script, "w", encoding="utf-8") as f:
            f.write("".join(lines[:start] + ours + lines[end:]))


def skeleton_definitions(path):
    """{name: None for a class, "property" for one, [(parameter, default's source or None)] for a
    function or method}, each method named Class.method."""
    found = {}

    def walk(body, prefix):
        for node in body:
            if isinstance(node, ast.ClassDef):
                found[prefix + node.name] = None
                walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.FunctionDef) and "property" in map(ast.unparse, node.decorator_list):
                found[prefix + node.name] = "property"
            elif isinstance(node, ast.FunctionDef):
                names = [a.arg for a in node.args.args]
                defaults = [None] * (len(names) - len(node.args.defaults)) + node.args.defaults
                found[prefix + node.name] = [(n, d and ast.unparse(d)) for n, d in zip(names, defaults)]
    with open(path, encoding="utf-8") as f:
        walk(ast.parse(f.read()).body, "")
    return found


@pytest.mark.parametrize("skeleton_file", COURSE_FILES)
def test_every_skeleton_definition_is_ours_with_its_parameters_and_defaults_first(skeleton, skeleton_file):
    """Each class, function, method and property of the skeleton's file is in ours, its parameters first, in
    order, with the skeleton's defaults; what we add after them has a default."""
    module = importlib.import_module(COURSE_FILES[skeleton_file])
    for name, params in skeleton_definitions(os.path.join(skeleton, skeleton_file)).items():
        *owner, attr = name.split(".")
        ours = inspect.getattr_static(functools.reduce(getattr, owner, module), attr)
        if params is None or params == "property":
            assert inspect.isclass(ours) if params is None else isinstance(ours, property), name
            continue
        got = list(inspect.signature(ours).parameters.values())
        assert [p.name for p in got[:len(params)]] == [n for n, _ in params], name
        for p, (_, default) in zip(got, params):  # a default of ours where the skeleton has none
            assert default is None or p.default == eval(default, {}), (name, p.name)
        assert all(p.default is not inspect.Parameter.empty or p.kind is p.VAR_KEYWORD
                   for p in got[len(params):]), name


def test_our_q3_files_run_under_the_skeletons_driver(skeleton, tmp_path):
    """The skeleton's folder with our models.py and data.py; its hw2-q3.py, our nucleus_sampling in
    it, trains and tests."""
    folder = tmp_path / "hw2-q3"
    shutil.copytree(os.path.join(skeleton, "hw2-q3"), folder)
    for name in ("models.py", "data.py"):
        shutil.copy(os.path.join(ROOT, name), folder / name)
    with_ours(folder / "hw2-q3.py", ["nucleus_sampling"])
    write_corpus(folder / "data", WORDS[:6])
    code, out = run_in(folder, "hw2-q3.py", "train", "--use_attn", *TINY, "--checkpoint_name", "m.pt")
    assert code == 0 and "Best validation error rate" in out, out
    code, out = run_in(folder, "hw2-q3.py", "test", "--use_attn", *TINY, "--checkpoint_name", "m.pt",
                       "--topp", "0.8")
    assert code == 0 and "Test CER" in out and "Test WER@3" in out, out


def test_our_cnn_and_utils_run_under_the_skeletons_driver(skeleton, tmp_path):
    """The skeleton's hw2-q2.py feeds our CNN the flat vectors of our utils.load_dataset, trains it
    with its own loop and evaluate, and counts its parameters with ours."""
    folder = tmp_path / "hw2-q2"
    shutil.copytree(os.path.join(skeleton, "hw2-q2"), folder)
    shutil.copy(os.path.join(ROOT, "utils.py"), folder / "utils.py")
    with_ours(folder / "hw2-q2.py", ["ConvBlock", "CNN", "get_number_trainable_params"])
    npz = intel_npz(folder / "intel.npz")
    code, out = run_in(folder, "hw2-q2.py", "-data_path", npz, "-epochs", "1")
    assert code == 0 and "Final Test acc" in out and "trainable parameters:  755718" in out, out


def test_a_skeleton_shaped_model_spells_as_ours_with_the_same_weights(trained):
    """Our weights in the student's modules: hw2-q3's plain path (a step at a time, keys recomputed)
    gives the spellings of its fast path on our modules."""
    model, dataset, _ = trained
    H, src_vocab, tgt_vocab = model.decoder.hidden_size, dataset.src_vocab, dataset.tgt_vocab
    plain = skeleton_models.Seq2Seq(
        skeleton_models.Encoder(len(src_vocab), H, PAD_IDX, 0.0),
        skeleton_models.Decoder(H, len(tgt_vocab), skeleton_models.BahdanauAttention(H), PAD_IDX, 0.0))
    plain.load_state_dict(model.state_dict())
    assert q3.generate(plain, dataset, batch_size=5) == q3.generate(model, dataset, batch_size=5)
