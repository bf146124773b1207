"""diagnostics.py (and q3_compare.py, its command line): error categories and search errors on hand-made
examples, the error analysis, CER by source length, the attention heatmaps."""
import pytest

import diagnostics
from conftest import BIGRAM, Bigram, run_script, vocabularies
from data import Seq2SeqDataset, Vocabulary


@pytest.mark.parametrize("pred, gold, category", [
    ("Cat", "cat", "capitalisation"), ("mising", "missing", "double vs single letter"),
    ("reed", "read", "vowel spelling only"), ("nit", "knit", "letters left out (e.g. silent)"),
    ("catt", "cat", "double vs single letter"), ("cats", "cat", "letters added"),
    ("glossel", "glossal", "vowel spelling only"), ("forse", "force", "one consonant substituted"),
    ("fosre", "force", "two edits"), ("kwyk", "quick", "three or more edits"),
])
def test_each_wrong_spelling_gets_its_category(pred, gold, category):
    assert diagnostics.error_category(pred, gold) == category


def test_the_error_analysis_counts_wrong_words_and_substitutions():
    examples = [{"phonemes": "f ɔː s", "gold": "force", "pred": "forse"},
                {"phonemes": "k æ t", "gold": "cat", "pred": "cat"},
                {"phonemes": "s ɪ t i", "gold": "city", "pred": "sity"}]
    out = diagnostics.error_analysis(examples)
    assert out["n_wrong"] == 2 and out["within_two_edits"] == 2
    assert out["top_substitutions"] == [{"gold": "c", "pred": "s", "count": 2}]
    assert out["categories"][0]["category"] == "one consonant substituted" and out["categories"][0]["count"] == 2


def test_a_wrong_word_is_a_search_error_when_the_model_scores_the_gold_higher():
    """Bigram: "a" has log-probability log 0.36 in 2 tokens (score -0.51), "aa" log 0.144 in 3 (-0.65)."""
    model = Bigram(BIGRAM)
    src_vocab, tgt_vocab = Vocabulary.build([["x"]]), Vocabulary.build(["a"])
    dataset = Seq2SeqDataset([(["x"], "a"), (["x"], "aa"), (["x"], "a")], src_vocab, tgt_vocab)
    preds, best_scores = ["", "a", "a"], [-0.92, -0.51, -0.51]  # what a search returned, with its scores
    out = diagnostics.search_errors(model, dataset, preds, dataset.golds, best_scores, batch_size=3)
    assert out == {"n_wrong": 2, "search_errors": 1, "model_errors": 1}  # "a" beats -0.92; "aa" loses to -0.51


def test_cer_by_source_length_bins_words_by_their_phonemes():
    examples = [{"phonemes": "k æ t", "gold": "cat", "pred": "kat"},
                {"phonemes": "d ɔ ɡ z", "gold": "dogs", "pred": "dogs"},
                {"phonemes": "h ɔː s ɪ z", "gold": "horses", "pred": "hosses"}]
    assert diagnostics.cer_by_source_length(examples) == [
        {"lengths": "1-4", "words": 2, "cer": pytest.approx(1 / 7), "wer": pytest.approx(1 / 2)},
        {"lengths": "5-6", "words": 1, "cer": pytest.approx(1 / 6), "wer": 1.0}]


def test_each_attention_heatmap_row_is_a_distribution_over_the_phonemes(trained, tmp_path):
    model, dataset, _ = trained
    words = diagnostics.plot_attention(model, dataset, *vocabularies(), 4, 12, str(tmp_path / "tiny-attention"))
    assert len(words) == 4 and (tmp_path / "tiny-attention.pdf").exists()
    for w in words:
        assert w["row_sums"] == pytest.approx([1.0] * len(w["row_sums"]), abs=1e-4)
        assert all(len(row) == len(w["phonemes"]) for row in w["weights"])


def test_the_comparison_command_draws_cer_by_length_of_two_results(tmp_path):
    from artefacts import save_json

    examples = [{"phonemes": "k æ t", "gold": "cat", "pred": "kat"}]
    for name in ("a", "b"):
        save_json({"examples": examples}, tmp_path / f"{name}.json")
    code, out, err = run_script("q3_compare.py", "lengths", f"a={tmp_path / 'a.json'}", f"b={tmp_path / 'b.json'}",
                                "--out", tmp_path / "fig")
    assert code == 0, err
    assert (tmp_path / "fig.pdf").exists() and out.splitlines()[-1] == f"figure {tmp_path}/fig.pdf; table {tmp_path}/fig.json"
