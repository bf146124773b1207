"""strongest.py end to end on a tiny corpus: steps, seeds, validation choice, one test read, outputs."""
import json

import pytest

import utils

strongest = utils.load_script("strongest")
q3 = utils.load_script("hw2-q3")

WORDS = [("k æ t", "cat"), ("d ɔ ɡ", "dog"), ("f ɪ ʃ", "fish"), ("b ɜː d", "bird"), ("m aʊ s", "mouse"),
         ("h ɔː s", "horse"), ("ʃ iː p", "sheep"), ("ɡ oʊ t", "goat"), ("k aʊ", "cow"), ("d ʌ k", "duck")]
TINY = ["--use_attn", "--hidden_size", "16", "--n_epochs", "2", "--dropout", "0", "--batch_size", "4",
        "--select_on", "wer"]


def test_strongest_runs_end_to_end_on_a_tiny_corpus(tmp_path, monkeypatch):
    pytest.importorskip("pysle")
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.tsv").write_text("".join(f"{p}\t{w}\n" for p, w in WORDS), encoding="utf-8")
    out = tmp_path / "results"
    common = ["--data_dir", str(data), "--out_dir", str(out), "--quiet"]
    q3.main(["train", "--checkpoint_name", "attn.pt"] + TINY + common)
    q3.main(["test", "--checkpoint_name", "attn.pt"] + common)
    monkeypatch.setattr(strongest, "BASE", TINY)
    # whether a step is kept depends on the tiny runs: the rows are checked against the rule below
    monkeypatch.setattr(strongest, "STEPS", [("hidden 24", "h24", ["--hidden_size", "24"]),
                                             ("input feeding", "feed", ["--input_feed"])])
    argv = ["--seeds", "1", "2", "3", "--data_dir", str(data), "--out_dir", str(out)]
    round1 = {"headline": "an earlier choice", "val_wer": 0.0, "val_cer": 0.0, "test_wer": 0.4, "test_cer": 0.1}
    utils.save_json(round1, str(out / "strongest-round1.json"))
    utils.save_json({"rows": [{"route": "earlier route", "val_cer": 0.2, "val_wer": 0.5}]},
                    str(out / "strongest-round1-ablation.json"))
    with pytest.raises(SystemExit):  # round 1's choice is unbeatable on validation: no second test read
        strongest.main(argv)
    assert not (out / "strongest.json").exists() and (out / "strongest-ablation.json").exists()
    utils.save_json(dict(round1, val_wer=1.0, val_cer=99.0), str(out / "strongest-round1.json"))
    strongest.main(argv)
    summary = json.loads((out / "strongest.json").read_text())
    rows = json.loads((out / "strongest-ablation.json").read_text())["rows"]
    assert summary["selected_on"] == "valid" and summary["earlier_test_reads"][0]["test_wer"] == 0.4
    assert rows[0] == {"route": "earlier route", "val_cer": 0.2, "val_wer": 0.5, "round": 1}
    base = next(r for r in rows if r["route"].startswith("base"))
    score = lambda r: (r["val_wer"], r["val_cer"])
    steps = [r for r in rows if "kept" in r]
    assert len(steps) == 2 and all(r["kept"] == (score(r) < score(base)) for r in steps)
    kept, together = [r for r in steps if r["kept"]], [r for r in rows if "together" in r["route"]]
    assert len(together) == (len(kept) == 2)  # two kept steps that set different flags are tried together
    winner = min([base] + kept + together, key=score)
    assert summary["round2_steps"] == [label for label, tag in (("hidden 24", "h24"), ("input feeding", "feed"))
                                       if tag in winner["run"].split("-")]
    candidates = [r for r in rows if "chosen on validation" in r["route"]]
    n = 2 if summary["round2_steps"] else 1  # finalists: each alone and as an ensemble, both, every round-2 model
    assert len(candidates) == 2 * n + (n > 1) + 1 and "every round-2 model" in candidates[-1]["route"]
    chosen = [r for r in rows if r.get("chosen")]
    assert len(chosen) == 1 and chosen[0]["val_wer"] == min(r["val_wer"] for r in candidates)
    assert sum("test_wer" in r for r in rows if r["round"] == 2) == 2  # the choice, and the word-list reranking
    assert len(summary["seeds"]) == summary["n_models"] and 0 <= summary["test_wer"] <= 1
    assert all(r["params"] > 0 for r in rows if "config" in r)
    assert (out / "strongest-wer_by_length.pdf").exists()
