"""study.py (strongest.py is its command line) end to end on a tiny corpus, with the validation scores
fixed so that each branch of the choice runs deterministically: which steps are kept, whether they are
tried together, which candidate the study's own choice picks, and what is reused."""
import json
import os

import pytest

import artefacts
import study
import training
from cli import InputError
from conftest import WORDS, tiny_config, write_corpus

TINY = tiny_config(n_epochs=2, select_on="wer")
VALID = WORDS[:8]  # validation words of their own, so that the scores of validation can be told apart
STEPS = {"hidden 24": ("h24", {"hidden_size": 24}), "input feeding": ("feed", {"input_feed": True})}


@pytest.fixture
def setup(tmp_path, monkeypatch):
    pytest.importorskip("pysle")
    data = write_corpus(tmp_path / "data", splits=("train", "test"))
    write_corpus(data, VALID, splits=("valid",))
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
    """Fixed validation WERs: a run's greedy score by run-name prefix, and a candidate's decoded score by
    its members (every beam and penalty alike; 0.9 for members not listed); the study's own choose then
    picks among them."""
    real_train, real_load, real_evaluate = study.train_or_reuse, training.load_checkpoint, study.evaluate

    def train_or_reuse(run, *args):
        record = dict(real_train(run, *args))
        wer = next(v for prefix, v in greedy.items() if run.name.startswith(prefix))
        return record | {"best_val_wer": wer, "best_val_cer": wer / 4}

    def load_checkpoint(path, *args):
        model, *rest = real_load(path, *args)
        model.run_name = os.path.basename(path)[:-len(".pt")]
        return (model, *rest)

    def evaluate(models, dataset, beam, penalty, lexicon=None):
        scores, preds = real_evaluate(models, dataset, beam, penalty, lexicon)
        members = frozenset(m.run_name for m in models)
        if dataset.golds == [w for _, w in VALID] and lexicon is None:
            scores = {"wer": decoded.get(members, 0.9), "cer": decoded.get(members, 0.9) / 4}
        return scores, preds
    monkeypatch.setattr(study, "train_or_reuse", train_or_reuse)
    monkeypatch.setattr(training, "load_checkpoint", load_checkpoint)
    monkeypatch.setattr(study, "evaluate", evaluate)


def runs(*names):
    return frozenset(f"strong-{n}" for n in names)


def test_kept_steps_are_tried_together_and_validation_chooses_the_record(setup, monkeypatch):
    greedy = {"strong-h24-feed": 0.3, "strong-h24": 0.4, "strong-feed": 0.45, "strong-base": 0.5}
    decoded = {runs("base-seed1"): 0.5, runs("base-seed1", "base-seed2"): 0.45, runs("h24-feed-seed1"): 0.35,
               runs("h24-feed-seed1", "h24-feed-seed2"): 0.2}
    fix_scores(monkeypatch, greedy, decoded)
    record = study.run(**setup)
    rows = json.loads(open(setup["out_dir"] + "/strongest-ablation.json").read())["rows"]
    assert [r["step"] for r in rows] == ["base", "hidden 24", "input feeding", "hidden 24 + input feeding"]
    assert [r["kept"] for r in rows] == [None, True, True, None]
    assert record["best_steps"] == ["hidden 24", "input feeding"]
    assert [c["candidate"] for c in record["candidates"]] == ["base-seed1", "base-ensemble", "best-seed1",
                                                              "best-ensemble", "finalists-ensemble", "all-ensemble"]
    assert record["choice"]["candidate"] == "best-ensemble" and record["choice"]["members"] == [
        "strong-h24-feed-seed1", "strong-h24-feed-seed2"]
    assert [m["run"] for m in record["members"]] == record["choice"]["members"]
    assert record["choice"]["val_wer"] == 0.2 and record["choice"]["beam_size"] == 1  # the first of equal decodings
    assert record["params_total"] == sum(m["params"] for m in record["members"])
    assert record["earlier_test_reads"] == []
    # a second study that chooses differently keeps the first one's test read as data
    decoded[frozenset(record["candidates"][-1]["members"])] = 0.1  # the ensemble of every model
    again = study.run(**setup)
    assert again["choice"]["candidate"] == "all-ensemble"
    assert again["earlier_test_reads"][0]["choice"]["candidate"] == "best-ensemble"
    assert again["earlier_test_reads"][0]["test_wer"] == record["test_wer"]


def test_no_kept_step_leaves_the_base_as_the_only_finalist(setup, monkeypatch):
    fix_scores(monkeypatch, {"strong-base": 0.3, "strong-": 0.6},
               {runs("base-seed1"): 0.2, runs("base-seed1", "base-seed2"): 0.4})
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
