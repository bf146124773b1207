"""training.py: a run is deterministic, an interrupted run resumes to the record of an uninterrupted one,
and an unfinished run is never reused as finished."""
import os
import signal
import subprocess
import sys

import pytest
import torch

import artefacts
import data
import training
from conftest import ROOT

WORDS = [("k æ t", "cat"), ("d ɔ ɡ", "dog"), ("f ɪ ʃ", "fish"), ("b ɜː d", "bird"), ("m aʊ s", "mouse"),
         ("h ɔː s", "horse"), ("ʃ iː p", "sheep"), ("ɡ oʊ t", "goat"), ("k aʊ", "cow"), ("d ʌ k", "duck")]
CORPUS = {s: [(p.split(), w) for p, w in WORDS] for s in data.SPLITS}
TINY = training.TrainConfig(use_attn=True, hidden_size=16, batch_size=4, n_epochs=3, lr=0.01, lr_schedule="cosine")


def stop_at(epoch):
    def log(line):
        if line.startswith(f"epoch {epoch:2d}/"):
            raise KeyboardInterrupt
    return log


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_two_runs_of_one_config_give_one_record(tmp_path):
    a = training.train(TINY, CORPUS, str(tmp_path / "a.pt"), "cpu", log=lambda line: None)
    b = training.train(TINY, CORPUS, str(tmp_path / "b.pt"), "cpu", log=lambda line: None)
    assert artefacts.strip_noise(dict(a, checkpoint=None)) == artefacts.strip_noise(dict(b, checkpoint=None))


def test_resume_after_an_interruption_ends_with_the_uninterrupted_record(tmp_path):
    whole = training.train(TINY, CORPUS, str(tmp_path / "whole.pt"), "cpu", log=lambda line: None)
    ckpt = str(tmp_path / "cut.pt")
    with pytest.raises(KeyboardInterrupt):
        training.train(TINY, CORPUS, ckpt, "cpu", log=stop_at(2))
    state = torch.load(training.state_path(ckpt), weights_only=True)
    assert state["epoch"] == 2 and torch.load(ckpt, weights_only=True)["finished"] is False
    resumed = training.train(TINY, CORPUS, ckpt, "cpu", log=lambda line: None, resume=True)
    assert resumed["history"]["epoch"] == [1, 2, 3]
    assert artefacts.strip_noise(dict(resumed, checkpoint=None)) == artefacts.strip_noise(dict(whole, checkpoint=None))
    for k, v in weights(str(tmp_path / "whole.pt")).items():
        assert torch.equal(v, weights(ckpt)[k]), k
    assert torch.load(ckpt, weights_only=True)["finished"] is True and not os.path.exists(training.state_path(ckpt))


def test_an_interrupted_run_is_not_reused_as_finished(tmp_path):
    ckpt, record = str(tmp_path / "m.pt"), str(tmp_path / "m-train.json")
    artefacts.save_json(training.train(TINY, CORPUS, ckpt, "cpu", log=lambda line: None), record)
    assert training.finished_run(record, ckpt, TINY)
    with pytest.raises(KeyboardInterrupt):  # the same config again, stopped after epoch 1: the old record stays
        training.train(TINY, CORPUS, ckpt, "cpu", log=stop_at(1))
    assert not training.finished_run(record, ckpt, TINY)


def test_resume_refuses_the_state_of_another_config(tmp_path):
    ckpt = str(tmp_path / "m.pt")
    with pytest.raises(KeyboardInterrupt):
        training.train(TINY, CORPUS, ckpt, "cpu", log=stop_at(1))
    other = training.TrainConfig(**{**TINY.to_dict(), "lr": 0.02})
    with pytest.raises(training.InputError, match=r"m.last.pt holds a run of another config \(lr = 0.01"):
        training.train(other, CORPUS, ckpt, "cpu", log=lambda line: None, resume=True)


def corpus_dir(folder):
    folder.mkdir()
    for s in data.SPLITS:  # enough batches that an epoch takes a moment
        (folder / f"{s}.tsv").write_text("".join(f"{p}\t{w}\n" for p, w in WORDS * (100 if s == "train" else 1)),
                                         encoding="utf-8")
    return folder


def train_command(folder, *extra):
    return [sys.executable, os.path.join(ROOT, "hw2-q3.py"), "train", "--use_attn", "--hidden_size", "16",
            "--batch_size", "8", "--n_epochs", "3", "--lr_schedule", "cosine", "--data_dir", str(folder),
            "--checkpoint_name", "m.pt", "--out_dir", "out", "--quiet", *extra]


ENV = dict(os.environ, PYTHONPATH=ROOT)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The corpus folder and the record of the command run without a stop."""
    top = tmp_path_factory.mktemp("resume")
    folder, whole = corpus_dir(top / "data"), top / "whole"
    whole.mkdir()
    subprocess.run(train_command(folder), cwd=whole, env=ENV, check=True, capture_output=True)
    return folder, artefacts.load_json(whole / "out" / "m-train.json")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_the_cli_resumes_after_ctrl_c_or_a_kill_to_the_uninterrupted_record(uninterrupted, tmp_path, sig):
    """Slow: trainings of the command line, stopped after epoch 1 of 3 and resumed."""
    folder, record = uninterrupted
    proc = subprocess.Popen(train_command(folder), cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1,  # Ctrl-C reaches it even when the suite
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # runs in the background
    for line in iter(proc.stdout.readline, ""):
        if line.startswith("epoch  1/3"):
            proc.send_signal(sig)
            break
    _, err = proc.communicate(timeout=60)
    assert not (tmp_path / "out" / "m-train.json").exists(), "the run ended before the signal"
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "m.last.pt holds epoch" in err and "--resume" in err, err
    done = subprocess.run(train_command(folder, "--resume"), cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0 and "resuming from m.last.pt" in done.stdout, done.stderr
    assert artefacts.strip_noise(artefacts.load_json(tmp_path / "out" / "m-train.json")) == artefacts.strip_noise(record)


@pytest.mark.parametrize("schedule, last_lr", [("cosine", 0.0), ("none", 0.01)])
def test_the_cosine_schedule_brings_the_rate_to_zero_by_the_last_epoch(tmp_path, schedule, last_lr):
    cfg = training.TrainConfig(**{**TINY.to_dict(), "lr_schedule": schedule})
    with pytest.raises(KeyboardInterrupt):  # stopped once the last epoch's state is saved
        training.train(cfg, CORPUS, str(tmp_path / "m.pt"), "cpu", log=stop_at(3))
    state = torch.load(training.state_path(str(tmp_path / "m.pt")), weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(last_lr, abs=1e-12)
