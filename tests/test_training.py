"""training.py: a run is deterministic, an interrupted run resumes to the record of an uninterrupted one, an
unfinished run is never reused as finished, a diverging run keeps its last finite checkpoint, and the
schedule, label smoothing and selection metric do what their fields say."""
import os
import signal
import subprocess

import pytest
import torch

import artefacts
import data
import training
from conftest import CORPUS, FRESH_ENV, WORDS, fresh_command, run_script, tiny_config, tiny_train, write_corpus

TINY = tiny_config(dropout=0.3, n_epochs=3, lr=0.01, lr_schedule="cosine")


def stop_at(epoch):
    def log(line):
        if line.startswith(f"epoch {epoch:2d}/"):
            raise KeyboardInterrupt
    return log


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_two_runs_of_one_config_give_one_record(tmp_path):  # what "unchanged" and reuse rest on
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


TRAIN = ["train", "--use_attn", "--hidden_size", "16", "--batch_size", "8", "--n_epochs", "3", "--lr_schedule",
         "cosine", "--checkpoint_name", "m.pt", "--out_dir", "out", "--quiet"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The corpus folder (enough words that an epoch takes a moment) and the record of the command run
    without a stop."""
    top = tmp_path_factory.mktemp("resume")
    folder = write_corpus(top / "data", WORDS * 20)
    (top / "whole").mkdir()
    code, _, err = run_script("hw2-q3.py", *TRAIN, "--data_dir", folder, cwd=top / "whole")
    assert code == 0, err
    return folder, artefacts.load_json(top / "whole" / "out" / "m-train.json")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_the_cli_resumes_after_ctrl_c_or_a_kill_to_the_uninterrupted_record(uninterrupted, tmp_path, sig):
    """Slow: a training of the command line in its own interpreter, stopped after epoch 1 of 3 by a
    signal, then resumed."""
    folder, record = uninterrupted
    proc = subprocess.Popen(fresh_command("hw2-q3.py", *TRAIN, "--data_dir", folder), cwd=tmp_path, env=FRESH_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,  # Ctrl-C reaches it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # in a backgrounded suite
    for line in iter(proc.stdout.readline, ""):
        if line.startswith("epoch  1/3"):
            proc.send_signal(sig)
            break
    _, err = proc.communicate(timeout=60)
    assert not (tmp_path / "out" / "m-train.json").exists(), "the run ended before the signal"
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "m.pt holds the best epoch so far, marked unfinished; m.last.pt holds " \
                                          "epoch 1 of 3; continue with: python" in err, err
        assert "--data_dir" in err and "--resume\n" in err, err
    code, out, err = run_script("hw2-q3.py", *TRAIN, "--data_dir", folder, "--resume", cwd=tmp_path)
    assert code == 0 and "resuming from m.last.pt" in out, err
    assert artefacts.strip_noise(artefacts.load_json(tmp_path / "out" / "m-train.json")) == artefacts.strip_noise(record)


@pytest.mark.parametrize("schedule, last_lr", [("cosine", 0.0), ("none", 0.01)])
def test_the_cosine_schedule_brings_the_rate_to_zero_by_the_last_epoch(tmp_path, schedule, last_lr):
    cfg = training.TrainConfig(**{**TINY.to_dict(), "lr_schedule": schedule})
    with pytest.raises(KeyboardInterrupt):  # stopped once the last epoch's state is saved
        training.train(cfg, CORPUS, str(tmp_path / "m.pt"), "cpu", log=stop_at(3))
    state = torch.load(training.state_path(str(tmp_path / "m.pt")), weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(last_lr, abs=1e-12)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_earlier_best_checkpoint(tmp_path, monkeypatch):
    losses = iter([1.0, float("nan")])
    real = training.train_epoch
    monkeypatch.setattr(training, "train_epoch", lambda *a, **k: (real(*a, **k), next(losses))[1])
    record = tiny_train(tiny_config(n_epochs=4), tmp_path / "m.pt")
    assert record["status"] == "diverged" and record["history"]["epoch"] == [1] and record["best_epoch"] == 1
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert saved["epoch"] == 1 and all(torch.isfinite(t).all() for t in saved["model"].values())
    artefacts.save_json(record, tmp_path / "m-train.json")  # strict JSON: nothing non-finite in the record


def test_selecting_on_wer_keeps_the_epoch_of_the_lowest_validation_wer(tmp_path):
    record = tiny_train(tiny_config(select_on="wer", enc_layers=2, n_epochs=6, lr=0.02), tmp_path / "m.pt")
    history = record["history"]
    best = min(range(6), key=lambda i: (history["val_wer"][i], history["val_cer"][i]))
    assert record["best_epoch"] == history["epoch"][best] and record["best_val_wer"] == pytest.approx(history["val_wer"][best], abs=1e-6)
    assert torch.load(tmp_path / "m.pt", weights_only=True)["epoch"] == record["best_epoch"]


def mean_top_probability(checkpoint):
    """The model's mean probability of its own next token, teacher-forced on the training words."""
    model, src_vocab, tgt_vocab, _ = training.load_checkpoint(str(checkpoint), torch.device("cpu"))
    src, lengths, tgt, _ = data.Seq2SeqDataset(CORPUS["train"], src_vocab, tgt_vocab).batch(torch.arange(12))
    with torch.no_grad():
        probs = torch.softmax(model(src, lengths, tgt)[0], -1).max(-1).values  # (B, T-1)
    return probs[tgt[:, 1:] != data.PAD_IDX].mean().item()


def test_label_smoothing_keeps_the_model_from_certainty(tmp_path):
    """Smoothing 0.3 makes the loss lowest at about 0.7 + 0.3 / V on the gold letter: the best checkpoint
    of the smoothed run is far less sure of its letters than the plain run's."""
    for eps in (0.0, 0.3):
        tiny_train(tiny_config(hidden_size=32, lr=0.02, n_epochs=30, label_smoothing=eps), tmp_path / f"{eps}.pt")
    plain, smoothed = mean_top_probability(tmp_path / "0.0.pt"), mean_top_probability(tmp_path / "0.3.pt")
    assert plain - smoothed > 0.1


def test_a_checkpoint_rebuilds_the_model_of_its_config(tmp_path):
    cfg = tiny_config(input_feed=True, enc_layers=2, n_epochs=1)
    tiny_train(cfg, tmp_path / "m.pt")
    model, _, _, saved = training.load_checkpoint(str(tmp_path / "m.pt"), torch.device("cpu"))
    assert saved["config"] == cfg and model.decoder.input_feed and model.encoder.lstm.num_layers == 2
    assert not model.training
