"""beyond/: the strongest-model study end to end on a tiny corpus (validation scores fixed so that each
branch of the choice runs deterministically); beam search (beam 1 is greedy, teacher-forced scores,
batched equals one by one, never more than k, the length penalty, ensembles); the error analysis; length
bucketing; input feeding; paired comparisons (a bootstrap and McNemar's test computed by hand, the
committed paired.json reproduced); Q1's retrieval figure; and the modules run as a user runs them."""
import copy
import json
import os

import Levenshtein
import numpy as np
import pytest
import torch

import beyond.study as study
from beyond import compare as compare_mod, decoding, diagnostics, rebuild_intel
from beyond.train import InputFeedDecoder, bucketed
from conftest import (A_ID as A, BIGRAM, PAIRS, ROOT, WORDS, Bigram, call_main, q3,
                      random_batch,
                      random_model,
                      run_script, teacher_forced_log_prob, tiny_config, vocabularies, write_corpus)
from data import EOS_IDX, Seq2SeqDataset, Vocabulary
from models import BahdanauAttention
from utils import CLASSES, InputError, save_json

TINY = tiny_config(n_epochs=2, select_on="wer")
VALID = WORDS[:8]  # validation words of their own, so that the scores of validation can be told apart
STEPS = {"hidden 24": ("h24", {"hidden_size": 24}), "input feeding": ("feed", {"input_feed": True})}


@pytest.fixture
def setup(tmp_path, monkeypatch):
    pytest.importorskip("pysle")
    data = write_corpus(tmp_path / "data", splits=("train", "test"))
    write_corpus(data, VALID, splits=("valid",))
    assignment = tmp_path / "attn-test-greedy.json"
    save_json({"examples": [{"gold": w, "pred": w[:-1]} for _, w in WORDS]}, assignment)
    monkeypatch.setattr(study, "base_config", lambda threads=1: TINY)
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
    real_train, real_load, real_evaluate = study.train_or_reuse, study.load_checkpoint, study.evaluate

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
    monkeypatch.setattr(study, "load_checkpoint", load_checkpoint)
    monkeypatch.setattr(study, "evaluate", evaluate)


def runs(*names):
    return frozenset(f"strong-{n}" for n in names)


def test_kept_steps_are_tried_together_and_validation_chooses_the_record(setup, monkeypatch):
    greedy = {"strong-h24-feed": 0.3, "strong-h24": 0.4, "strong-feed": 0.45, "strong-base": 0.5}
    decoded = {runs("base-seed1"): 0.5, runs("base-seed1", "base-seed2"): 0.45, runs("h24-feed-seed1"): 0.35,
               runs("h24-feed-seed1", "h24-feed-seed2"): 0.2}
    fix_scores(monkeypatch, greedy, decoded)
    record = study.run_study(**setup)
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
    again = study.run_study(**setup)
    assert again["choice"]["candidate"] == "all-ensemble"
    assert again["earlier_test_reads"][0]["choice"]["candidate"] == "best-ensemble"
    assert again["earlier_test_reads"][0]["test_wer"] == record["test_wer"]


def test_no_kept_step_leaves_the_base_as_the_only_finalist(setup, monkeypatch):
    fix_scores(monkeypatch, {"strong-base": 0.3, "strong-": 0.6},
               {runs("base-seed1"): 0.2, runs("base-seed1", "base-seed2"): 0.4})
    record = study.run_study(**setup)
    assert record["best_steps"] == [] and list(record["finalists"]) == ["base"]
    assert [c["candidate"] for c in record["candidates"]] == ["base-seed1", "base-ensemble", "all-ensemble"]
    assert record["choice"]["candidate"] == "base-seed1" and record["choice"]["n_models"] == 1


def test_a_run_is_reused_only_when_its_saved_config_equals_the_one_asked_for(setup, monkeypatch):
    calls = []
    real = q3.train_run
    monkeypatch.setattr(q3, "train_run", lambda cfg, *a, **k: calls.append(cfg) or real(cfg, *a, **k))
    corpus, _, _ = study.check_inputs(setup["data_dir"], setup["assignment_json"])
    dirs = {"records": setup["out_dir"] + "/runs", "checkpoints": setup["runs_dir"]}
    run = study.make_run((), 1)
    study.train_or_reuse(run, corpus, dirs, "cpu")
    study.train_or_reuse(run, corpus, dirs, "cpu")
    assert len(calls) == 1
    monkeypatch.setattr(study, "base_config", lambda threads=1: {**TINY, "lr": 0.01})  # an edited step
    study.train_or_reuse(study.make_run((), 1), corpus, dirs, "cpu")
    assert len(calls) == 2


def test_inputs_are_checked_before_any_training(setup, monkeypatch):
    monkeypatch.setattr(q3, "train_run", lambda *a, **k: pytest.fail("trained before checking its inputs"))
    save_json({"examples": [{"gold": "other", "pred": "x"}]}, setup["assignment_json"])
    with pytest.raises(InputError, match="attn-test-greedy.json: its test words are not those of"):
        study.run_study(**setup)


# ---- beam search ----------------------------------------------------------------------------------------

def until_eos(row):
    return row[: row.index(EOS_IDX) + 1] if EOS_IDX in row else row


@pytest.mark.parametrize("input_feed", [False, True])
def test_beam_size_one_is_greedy(input_feed, device):
    model = random_model(input_feed=input_feed).to(device)
    src, lengths, _ = (t.to(device) for t in random_batch())
    greedy = q3.decode_batch(model, src, lengths, max_len=8)
    beams = decoding.beam_search(model, src, lengths, max_len=8, beam_size=1)
    assert [found[0][0] for found in beams] == [until_eos(row) for row in greedy.tolist()]


def test_beam_scores_are_teacher_forced_log_probabilities(trained):
    model, dataset, _ = trained
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    for i, found in enumerate(decoding.beam_search(model, src, lengths, max_len=12, beam_size=3)):
        assert len(found) == 3
        for seq, log_prob, score in found:
            assert log_prob == pytest.approx(teacher_forced_log_prob(model, src[i, : lengths[i]], seq), abs=1e-4)
            assert score == pytest.approx(log_prob / len(seq))


def test_batched_beam_search_equals_one_word_at_a_time(trained):
    model, dataset, _ = trained
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    batched = decoding.beam_search(model, src, lengths, max_len=12, beam_size=4)
    for i in range(len(dataset)):
        one = decoding.beam_search(model, src[i:i + 1, : lengths[i]], lengths[i:i + 1], max_len=12, beam_size=4)[0]
        assert [h[0] for h in one] == [h[0] for h in batched[i]]
        assert [h[1] for h in one] == pytest.approx([h[1] for h in batched[i]], abs=1e-5)


def test_beam_search_never_returns_more_than_k_hypotheses(trained):
    model, dataset, _ = trained
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    found = decoding.beam_search(model, src, lengths, max_len=2, beam_size=3)  # max_len cuts every beam
    assert max(len(f) for f in found) == 3 and min(len(f) for f in found) >= 1


@pytest.mark.parametrize("penalty, winner", [(0.0, [EOS_IDX]), (1.0, [A, EOS_IDX])])
def test_the_length_penalty_decides_between_a_short_and_a_long_word(penalty, winner):
    """The empty word has log-probability log 0.4 = -0.92 in 1 token, "a" log 0.36 = -1.02 in 2: the raw
    score (penalty 0) prefers the empty word, the per-token score (penalty 1) prefers "a" (-0.51)."""
    found = decoding.beam_search(Bigram(BIGRAM), torch.ones(1, 1, dtype=torch.long), torch.tensor([1]),
                                 max_len=3, beam_size=2, length_penalty=penalty)[0]
    assert found[0][0] == winner
    expected = {(EOS_IDX,): 0.4, (A, EOS_IDX): 0.36}[tuple(winner)]
    assert found[0][1] == pytest.approx(torch.tensor(expected).log().item(), abs=1e-6)


def test_an_ensemble_of_copies_is_the_model_and_a_mixed_one_averages_log_probabilities(trained):
    model, dataset, _ = trained
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    single = decoding.beam_search(model, src, lengths, max_len=12, beam_size=3)
    copies = decoding.beam_search([model, copy.deepcopy(model)], src, lengths, max_len=12, beam_size=3)
    assert [[h[0] for h in f] for f in single] == [[h[0] for h in f] for f in copies]
    other = random_model(seed=3, V_src=model.encoder.embedding.num_embeddings, V_tgt=model.decoder.tgt_vocab_size,
                         H=32)
    lp_model, _ = decoding.gold_log_probs(model, dataset, batch_size=12)
    lp_other, _ = decoding.gold_log_probs(other, dataset, batch_size=12)
    torch.testing.assert_close(decoding.gold_log_probs([model, other], dataset, batch_size=12)[0],
                               (lp_model + lp_other) / 2)


def test_gold_log_probs_are_the_teacher_forced_ones_in_any_batching(trained):
    model, dataset, _ = trained
    log_probs, lengths = decoding.gold_log_probs(model, dataset, batch_size=5)
    for i in range(len(dataset)):
        src, tgt = dataset[i]
        assert log_probs[i].item() == pytest.approx(teacher_forced_log_prob(model, src, tgt[1:].tolist()), abs=1e-5)
        assert lengths[i] == len(tgt) - 1


def test_evaluate_scores_the_predictions_it_returns():
    src_vocab, tgt_vocab = vocabularies()
    dataset = Seq2SeqDataset([(["k", "æ", "t"], "cat"), (["d", "ɔ", "ɡ"], "dog")], src_vocab, tgt_vocab)
    model = random_model(V_src=len(src_vocab), V_tgt=len(tgt_vocab))
    beams = decoding.evaluate(model, dataset, batch_size=4, max_len=5, beam_size=2)
    assert beams["preds"] == [nbest[0][0] for nbest in beams["nbest"]]
    preds, golds = beams["preds"], dataset.golds
    assert beams["cer"] == pytest.approx(sum(map(Levenshtein.distance, preds, golds)) / 6)  # 3 + 3 gold letters
    assert beams["wer"] == sum(p != g for p, g in zip(preds, golds)) / 2



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
    examples = [{"phonemes": "k æ t", "gold": "cat", "pred": "kat"}]
    for name in ("a", "b"):
        save_json({"examples": examples}, tmp_path / f"{name}.json")
    code, out, err = call_main("beyond.diagnostics", "lengths", f"a={tmp_path / 'a.json'}",
                               f"b={tmp_path / 'b.json'}", "--out", tmp_path / "fig")
    assert code == 0, err
    assert (tmp_path / "fig.pdf").exists() and out.splitlines()[-1] == f"figure {tmp_path}/fig.pdf; table {tmp_path}/fig.json"


def test_bucketed_batches_cover_every_word_once_each_of_about_one_length():
    dataset = Seq2SeqDataset([(p + ["k"] * (i % 5), w) for i, (p, w) in enumerate(PAIRS * 4)])
    one_pool = bucketed(100)(dataset, 4, torch.Generator().manual_seed(1))
    assert sorted(torch.cat(one_pool).tolist()) == list(range(len(dataset)))
    spans = sorted((int(dataset.src_lengths[b].min()), int(dataset.src_lengths[b].max())) for b in one_pool)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))  # consecutive in length
    padding = lambda batches: sum(int(dataset.src_lengths[b].max()) * len(b) - int(dataset.src_lengths[b].sum())  # noqa: E731
                                  for b in batches)
    assert padding(one_pool) < padding(dataset.batches(4, rng=torch.Generator().manual_seed(1)))
    again = bucketed(100)(dataset, 4, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(one_pool, again, strict=True))


def test_the_input_feeding_decoder_draws_the_initial_weights_of_the_committed_runs():
    """Golden values: the embedding, then an LSTM reading 2H, drawn in that order from the seed (as
    the committed input-feeding runs were initialised), and the generator left where they leave it."""
    torch.manual_seed(0)
    decoder = InputFeedDecoder(4, 6, BahdanauAttention(4), 0, 0.0)
    assert decoder.lstm.input_size == 8
    got = [*decoder.embedding.weight[1, :3].tolist(), *decoder.lstm.weight_ih_l0[0, [0, 7]].tolist(),
           decoder.lstm.bias_hh_l0[-1].item(), torch.rand(1).item()]
    assert got == pytest.approx([1.5091219, 2.0819554, 1.7067116, -0.0275498, -0.4216415, -0.4299605,
                                 0.9988049], abs=1e-6)


def test_the_modules_run_as_a_user_runs_them(trained, tmp_path):
    """Fresh processes: beam search with attention heatmaps, spelling, and a training option."""
    write_corpus(tmp_path / "data")
    code, out, err = run_script("-m", "beyond.beam", "--checkpoint_name", trained[2], "--beam_size", "1", "2",
                                "--plot_attn", "2", "--data_dir", tmp_path / "data", "--out_dir", tmp_path)
    assert code == 0 and "beam 2: Test CER" in out and (tmp_path / "attn-attention.pdf").exists(), err
    assert json.loads((tmp_path / "attn-test-beam2.json").read_text())["beam_size"] == 2
    code, out, err = run_script("-m", "beyond.spell", "--checkpoint_name", trained[2], "--k", "3",
                                stdin="k æ t\n\nd ɔ ɡ\n".encode())
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and lines[0].startswith("k æ t\t"), err
    probs = [float(s.rsplit(" ", 1)[1]) for s in lines[0].split("\t")[1:]]
    assert 1 <= len(probs) <= 3 and probs == sorted(probs, reverse=True)
    code, out, err = run_script("-m", "beyond.train", "--use_attn", "--dropout_site", "output", "--bucket", "2",
                                "--n_epochs", "1", "--hidden_size", "8", "--checkpoint_name", "x.pt", "--data_dir", "data",
                                "--out_dir", "runs/q3", cwd=tmp_path)
    config = json.loads((tmp_path / "runs/q3/x-train.json").read_text())["config"]
    assert code == 0 and config["dropout_site"] == "output" and config["bucket"] == 2, err


def test_the_retrieval_figure_reproduces_the_committed_record(tmp_path):
    code, out, err = call_main("beyond.retrieval", "--out_dir", tmp_path)
    assert code == 0 and (tmp_path / "retrieval.pdf").exists(), err
    result = json.loads((tmp_path / "retrieval.json").read_text())["retrieval"]
    committed = json.loads(open(os.path.join(ROOT, "results", "q1", "retrieval.json")).read())["retrieval"]
    for ours, theirs in zip(result, committed, strict=True):
        assert ours["distance_to_stored"] == pytest.approx(theirs["distance_to_stored"], rel=1e-9)
        assert ours["distance_to_mean"] == pytest.approx(theirs["distance_to_mean"], rel=1e-9)
    assert result[0]["largest_softmax_weight"] < 0.2 < 0.99 < result[1]["largest_softmax_weight"]


def test_the_benches_write_the_fields_beyond_readme_reads(tmp_path):
    write_corpus(tmp_path / "data")
    code, out, err = call_main("beyond.bench_q3", "--repeats", "1", "--beam_sizes", "1", "--buckets", "4",
                               "--out", "q3.json", cwd=tmp_path)
    assert code == 0, err
    record = json.loads((tmp_path / "q3.json").read_text())
    assert set(record["seconds"]) == {"ours", "bucket4", "reference"} and set(record["speedup"]) == {"ours", "bucket4"}
    assert record["threads"] == 1 and set(record["beam_seconds_per_1000_words"]) == {"1"}
    code, out, err = call_main("beyond.bench_q2", "--images", "16", "--repeats", "1", "--out", "q2.json", cwd=tmp_path)
    assert code == 0, err
    ips = json.loads((tmp_path / "q2.json").read_text())["images_per_second"]
    assert set(ips) == {f"{n}/{v}" for n in ("vanilla", "bn") for v in ("dataloader", "ours", "channels_last")}


# ---- paired comparisons on the same words ------------------------------------------------------

def test_paired_bootstrap_of_one_extra_error_in_four_items_is_the_binomial_quantiles():
    """A wrong on item 0 only: a resample's difference is (times item 0 is drawn) / 4, Binomial(4, 1/4),
    whose 2.5 % and 97.5 % quantiles are 0 and 3 (P(<= 2) = 0.949, P(<= 3) = 0.996)."""
    out = compare_mod.paired_bootstrap([1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1])
    assert out["diff"] == 0.25 and out["ci"] == [0.0, 0.75]
    same = compare_mod.paired_bootstrap([2, 0, 1], [2, 0, 1], [3, 4, 5])
    assert same == {"diff": 0.0, "ci": [0.0, 0.0]}  # the same errors: no spread at all, unlike two unpaired intervals


def test_mcnemar_exact_by_hand():
    assert compare_mod.mcnemar_exact(0, 3) == 0.25  # 2 * (1/2)^3
    assert compare_mod.mcnemar_exact(1, 5) == 2 * (1 + 6) / 64
    assert compare_mod.mcnemar_exact(2, 2) == 1.0 and compare_mod.mcnemar_exact(0, 0) == 1.0


def test_compare_counts_characters_against_the_gold_and_the_discordant_words():
    golds = ["cat", "dog"]
    out = compare_mod.compare(["cat", "dxx"], ["cut", "dog"], golds)  # 2 and 1 edits in 6 gold letters
    assert out["cer"]["diff"] == pytest.approx(1 / 6) and out["wer"]["diff"] == 0.0
    assert (out["only_a_wrong"], out["only_b_wrong"], out["mcnemar_p"]) == (1, 1, 1.0)
    with pytest.raises(ValueError):
        compare_mod.compare(["cat"], ["cat", "dog"], golds)


def test_the_committed_paired_comparisons_reproduce(tmp_path):
    code, out, err = call_main("beyond.compare", "--out", tmp_path / "paired.json")
    assert code == 0, err
    ours = json.loads((tmp_path / "paired.json").read_text())
    assert ours == json.loads(open(os.path.join(ROOT, "results", "q3", "paired.json")).read())


def test_the_intel_rebuild_puts_each_image_in_its_class_block_and_split(tmp_path):
    """Solid-colour JPGs of several sizes: test in class blocks, names sorted as strings (10.jpg before
    9.jpg); validation the first tenth, rounded up, of RandomState(42)'s permutation of the training
    images; a file that one GitHub copy adds is left out; each image resized to 48 x 48 whole."""
    from PIL import Image
    colours, train_files = {}, []
    for label, name in enumerate(CLASSES):
        for part, files in (("seg_train", ["9.jpg", "10.jpg"]), ("seg_test", ["5.jpg"])):
            for i, f in enumerate(files + (["0.jpg"] if part == "seg_train" and name == "sea" else [])):
                (tmp_path / part / name).mkdir(parents=True, exist_ok=True)
                colour = (40 * label + 20, 100 + 60 * i, 200 if part == "seg_test" else 30)
                Image.new("RGB", (60 + 9 * i, 50), colour).save(tmp_path / part / name / f, quality=95)
                colours[f"{part}/{name}/{f}"] = colour
            train_files += [f"seg_train/{name}/10.jpg", f"seg_train/{name}/9.jpg"] if part == "seg_train" else []
    code, out, err = call_main("beyond.rebuild_intel", tmp_path, "--out", tmp_path / "x.npz")
    assert code == 0, err
    arrays = dict(np.load(tmp_path / "x.npz"))
    perm = np.random.RandomState(42).permutation(12)
    expected = {"train": [train_files[i] for i in perm[2:]], "val": [train_files[i] for i in perm[:2]],
                "test": [f"seg_test/{name}/5.jpg" for name in CLASSES]}
    for split, files in expected.items():
        assert arrays[f"{split}_images"].shape == (len(files), 48, 48, 3)
        assert arrays[f"{split}_labels"].reshape(-1).tolist() == [CLASSES.index(f.split("/")[1]) for f in files]
        means = arrays[f"{split}_images"].reshape(len(files), -1, 3).mean(1)
        assert np.abs(means - np.array([colours[f] for f in files])).max() < 3
    for key, digest in rebuild_intel.digests(arrays).items():
        assert f"sha256 {digest}" in out
