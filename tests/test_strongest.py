"""strongest.py end to end on a tiny corpus: routes, seeds, validation choice, one test read, outputs."""
import json

import pytest

import utils

strongest = utils.load_script("strongest")
q3 = utils.load_script("hw2-q3")

WORDS = [("k æ t", "cat"), ("d ɔ ɡ", "dog"), ("f ɪ ʃ", "fish"), ("b ɜː d", "bird"), ("m aʊ s", "mouse"),
         ("h ɔː s", "horse"), ("ʃ iː p", "sheep"), ("ɡ oʊ t", "goat"), ("k aʊ", "cow"), ("d ʌ k", "duck")]
TINY = ["--use_attn", "--hidden_size", "16", "--n_epochs", "2", "--dropout", "0", "--batch_size", "4"]


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
    monkeypatch.setattr(strongest, "ROUTES", [("+ hidden 24", "strong-abl-h24", TINY + ["--hidden_size", "24"])])
    monkeypatch.setattr(strongest, "FINALISTS", [
        ("smoothed", lambda s: f"strong-seed{s}", TINY + ["--select_on", "wer", "--label_smoothing", "0.1"]),
        ("plain", lambda s: f"strong-nols-seed{s}", TINY + ["--select_on", "wer"])])
    strongest.main(["--seeds", "1", "2", "3", "--data_dir", str(data), "--out_dir", str(out)])
    summary = json.loads((out / "strongest.json").read_text())
    assert summary["selected_on"] == "valid" and [s["seed"] for s in summary["seeds"]] == [1, 2, 3]
    assert summary["finalist"] in ("smoothed", "plain") and len(summary["decoding_grid"]) == 4
    assert 0 <= summary["test_wer"] <= 1 and 0 <= summary["test_cer"]
    rows = json.loads((out / "strongest-ablation.json").read_text())["rows"]
    assert [r["run"] for r in rows[:2]] == ["attn", "strong-abl-h24"]
    assert sum("test_wer" in r for r in rows) == 2  # the final choice, and the word-list reranking beside it
    chosen = [r for r in rows if r.get("chosen")]
    assert len(chosen) == 1 and chosen[0]["val_wer"] == min(r["val_wer"] for r in rows[2:6])
    assert all(r["params"] > 0 for r in rows[:2])
    assert (out / "strongest-wer_by_length.pdf").exists()
