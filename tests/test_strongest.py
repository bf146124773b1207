"""The study end to end on a tiny corpus, with the validation scores fixed so that each branch of the
choice runs deterministically: which steps are kept, whether they are tried together, which candidate wins."""
import json

import pytest

import study
import training
import artefacts
from cli import InputError

WORDS = [("k æ t", "cat"), ("d ɔ ɡ", "dog"), ("f ɪ ʃ", "fish"), ("b ɜː d", "bird"), ("m aʊ s", "mouse"),
         ("h ɔː s", "horse"), ("ʃ iː p", "sheep"), ("ɡ oʊ t", "goat"), ("k aʊ", "cow"), ("d ʌ k", "duck")]
TINY = training.TrainConfig(use_attn=True, hidden_size=16, n_epochs=2, dropout=0.0, batch_size=4, select_on="wer")
STEPS = {"hidden 24": ("h24", {"hidden_size": 24}), "input feeding": ("feed", {"input_feed": True})}


@pytest.fixture
def setup(tmp_path, monkeypatch):
    pytest.importorskip("pysle")
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.tsv").write_text("".join(f"{p}\t{w}\n" for p, w in WORDS), encoding="utf-8")
    assignment = tmp_path / "attn-test-greedy.json"
    artefacts.save_json({"examples": [{"gold": w, "pred": w[:-1]} for _, w in WORDS]}, assignment)
    monkeypatch.setattr(study, "BASE", TINY)
    monkeypatch.setattr(study, "STEPS", STEPS)
    monkeypatch.setattr(study, "BEAMS", (1, 2))
    monkeypatch.setattr(study, "PENALTIES", (1.0,))
    monkeypatch.setattr(study, "LEXICON_BEAMS", (2,))
    return {"seeds": [1, 2], "data_dir": str(data), "out_dir": str(tmp_path / "results"),
            "runs_dir": str(tmp_path / "runs"), "assignment_json": str(assignment)}


def fix_scores(monkeypatch, greedy, decoded):
    """Greedy validation scores by run name prefix, and each candidate's best decoded score by candidate id."""
    real = study.train_or_reuse

    def train_or_reuse(run, *args):
        record = dict(real(run, *args))
        wer = next(v for prefix, v in greedy.items() if run.name.startswith(prefix))
        return record | {"best_val_wer": wer, "best_val_cer": wer / 4}
    monkeypatch.setattr(study, "train_or_reuse", train_or_reuse)
    real_choose = study.choose

    def choose(cands, *args):
        rows, grids, _ = real_choose(cands, *args)
        for r in rows:
            r["val_wer"], r["chosen"] = decoded[r["candidate"]], False
        chosen = min(rows, key=study.score)
        chosen["chosen"] = True
        return rows, grids, chosen
    monkeypatch.setattr(study, "choose", choose)


def test_kept_steps_are_tried_together_and_validation_chooses_the_record(setup, monkeypatch):
    greedy = {"strong-h24-feed": 0.3, "strong-h24": 0.4, "strong-feed": 0.45, "strong-base": 0.5}
    decoded = {"base-seed1": 0.5, "base-ensemble": 0.45, "best-seed1": 0.35, "best-ensemble": 0.2,
               "finalists-ensemble": 0.25, "all-ensemble": 0.3}
    fix_scores(monkeypatch, greedy, decoded)
    record = study.run(**setup)
    rows = json.loads(open(setup["out_dir"] + "/strongest-ablation.json").read())["rows"]
    assert [r["step"] for r in rows] == ["base", "hidden 24", "input feeding", "hidden 24 + input feeding"]
    assert [r["kept"] for r in rows] == [None, True, True, None]
    assert record["best_steps"] == ["hidden 24", "input feeding"]
    assert [c["candidate"] for c in record["candidates"]] == list(decoded)
    assert record["choice"]["candidate"] == "best-ensemble" and record["choice"]["members"] == [
        "strong-h24-feed-seed1", "strong-h24-feed-seed2"]
    assert [m["run"] for m in record["members"]] == record["choice"]["members"]
    assert record["wer_ci"][0] <= record["test_wer"] <= record["wer_ci"][1]
    assert record["params_total"] == sum(m["params"] for m in record["members"])
    assert record["earlier_test_reads"] == []
    # a second study that chooses differently keeps the first one's test read as data
    decoded["all-ensemble"] = 0.1
    again = study.run(**setup)
    assert again["choice"]["candidate"] == "all-ensemble"
    assert again["earlier_test_reads"][0]["choice"]["candidate"] == "best-ensemble"
    assert again["earlier_test_reads"][0]["test_wer"] == record["test_wer"]


def test_no_kept_step_leaves_the_base_as_the_only_finalist(setup, monkeypatch):
    fix_scores(monkeypatch, {"strong-base": 0.3, "strong-": 0.6},
               {"base-seed1": 0.2, "base-ensemble": 0.4, "all-ensemble": 0.5})
    record = study.run(**setup)
    assert record["best_steps"] == [] and list(record["finalists"]) == ["base"]
    assert [c["candidate"] for c in record["candidates"]] == ["base-seed1", "base-ensemble", "all-ensemble"]
    assert record["choice"]["candidate"] == "base-seed1" and record["choice"]["n_models"] == 1


def test_a_run_is_reused_only_when_its_saved_config_equals_the_one_asked_for(setup, monkeypatch):
    calls = []
    real = training.train
    monkeypatch.setattr(training, "train", lambda cfg, *a, **k: calls.append(cfg) or real(cfg, *a, **k))
    corpus, _, _ = study.check_inputs(setup["data_dir"], setup["out_dir"], setup["runs_dir"], setup["assignment_json"])
    dirs = {"records": setup["out_dir"] + "/runs", "checkpoints": setup["runs_dir"]}
    run = study.make_run((), 1)
    study.train_or_reuse(run, corpus, dirs, "cpu")
    study.train_or_reuse(run, corpus, dirs, "cpu")
    assert len(calls) == 1
    monkeypatch.setattr(study, "BASE", training.TrainConfig(**{**TINY.to_dict(), "lr": 0.01}))  # an edited step
    study.train_or_reuse(study.make_run((), 1), corpus, dirs, "cpu")
    assert len(calls) == 2


def test_inputs_are_checked_before_any_training(setup, monkeypatch):
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained before checking its inputs"))
    artefacts.save_json({"examples": [{"gold": "other", "pred": "x"}]}, setup["assignment_json"])
    with pytest.raises(InputError, match="attn-test-greedy.json: its test words are not those of"):
        study.run(**setup)
