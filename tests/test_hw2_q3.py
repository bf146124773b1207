"""hw2-q3.py: the token rules (nucleus sampling from the smallest top set reaching p, renormalised; the
skeleton's 1-D logits), batched decoding equal to the course's word-by-word loop and handing each word its
own spelling, CER/WER/WER@k worked out by hand, train()'s own loss (PAD never a target), each step on its
own batch's gradient in train mode, the checkpoint holding the epoch it names as best, divergence
recorded, the ISLEX fallback, and train then test run as a user runs them.

Mistakes tried (python tests/mutants.py), each caught by the test named:
- hw2-q3.py: `criterion = nn.CrossEntropyLoss(ignore_index=PAD_IDX)` -> `criterion = nn.CrossEntropyLoss()` | test_the_training_loss_is_the_mean_over_the_real_target_tokens
- hw2-q3.py: `tgt[:, 1:].reshape(-1))  # PAD ignored` -> `tgt[:, :-1].reshape(-1))  # PAD ignored` | test_the_training_loss_is_the_mean_over_the_real_target_tokens
- hw2-q3.py: `optimizer.zero_grad(set_to_none=True)` -> `None` | test_each_training_step_uses_the_gradient_of_its_own_batch_only
- hw2-q3.py: `    model.train()\n` -> `` | test_training_runs_in_train_mode_after_each_validation
- hw2-q3.py: `if mark:` -> `if True:` | test_the_checkpoint_holds_the_weights_of_the_epoch_it_names_as_best
- hw2-q3.py: `for i, row in zip(idx.tolist(), ids.tolist()):` -> `for i, row in zip(sorted(idx.tolist()), ids.tolist()):` | test_generate_gives_each_word_its_own_spelling
- hw2-q3.py: `    model.eval()\n    preds = ` -> `    preds = ` | test_generate_decodes_in_eval_mode
- hw2-q3.py: `hidden, state = model.decoder(` -> `hidden, _ = model.decoder(` | test_batched_greedy_decoding_equals_the_course_loop_word_by_word
- hw2-q3.py: `finished |= token[:, 0] == EOS_IDX` -> `finished = token[:, 0] == EOS_IDX` | test_batched_greedy_decoding_equals_the_course_loop_word_by_word
- hw2-q3.py: `return logits.argmax(-1, keepdim=True)` -> `return logits.argmin(-1, keepdim=True)` | test_the_skeleton_token_rules_take_1d_logits
- hw2-q3.py: `return logits.argmax(-1, keepdim=True)` -> `return logits.argmax(-1)` | test_the_skeleton_token_rules_take_1d_logits
- hw2-q3.py: `keep = mass_before < p - 1e-9 * p` -> `keep = sorted_probs.cumsum(dim=-1) < p` | test_nucleus_samples_come_from_the_smallest_top_set_reaching_p
- hw2-q3.py: `descending=True, stable=True` -> `descending=False, stable=True` | test_nucleus_samples_come_from_the_smallest_top_set_reaching_p
- hw2-q3.py: `probs * torch.zeros_like(keep).scatter(-1, order, keep)` -> `probs * keep` | test_nucleus_samples_come_from_the_smallest_top_set_reaching_p
- hw2-q3.py: `probs = torch.softmax(logits.double(), dim=-1)` -> `probs = torch.softmax(logits.double(), dim=0)` | test_nucleus_sampling_follows_the_renormalised_distribution
- hw2-q3.py: `m[x - 1, y - 1] + dg` -> `m[x - 1, y - 1] + 1` | test_cer_is_the_edit_distance_over_the_gold_length_and_wer_the_share_of_wrong_words
- hw2-q3.py: `gold_len += len(tgt)` -> `gold_len += len(pred)` | test_cer_is_the_edit_distance_over_the_gold_length_and_wer_the_share_of_wrong_words
- hw2-q3.py: `if tgt != pred:` -> `if tgt == pred:` | test_cer_is_the_edit_distance_over_the_gold_length_and_wer_the_share_of_wrong_words
- hw2-q3.py: `for pred, (src, tgt) in zip(predictions, pairs):` -> `for pred, (tgt, src) in zip(predictions, pairs):` | test_cer_is_the_edit_distance_over_the_gold_length_and_wer_the_share_of_wrong_words
- hw2-q3.py: `cer, wer = evaluate(predictions, data_iter)` -> `wer, cer = evaluate(predictions, data_iter)` | test_test_scores_the_spellings_that_generate_gives_with_its_p
- hw2-q3.py: `generate(model, data_iter, max_len=max_len, p=p, rng=rng)` -> `generate(model, data_iter, max_len=max_len, rng=rng)` | test_test_scores_the_spellings_that_generate_gives_with_its_p
- hw2-q3.py: `pred_sets = [set(p) for p in zip(*multipreds)]` -> `pred_sets = [{p[-1]} for p in zip(*multipreds)]` | test_wer_at_k_counts_a_word_wrong_only_when_every_sample_misses_it
- hw2-q3.py: `for i in range(k):` -> `for i in range(1):` | test_wer_at_k_counts_a_word_wrong_only_when_every_sample_misses_it
"""
import copy
import json
import os
import shutil

import Levenshtein

import pytest
import torch

import utils
from conftest import (PAIRS, ROOT, call_main, course_model, ctrl_c_in_epoch, q3, random_batch, run_script,
                      teacher_forced_log_prob, tiny_config, tiny_train, vocabularies, write_corpus)
from data import EOS_IDX, PAD_IDX, SOS_IDX, Seq2SeqDataset
from models import reshape_state

greedy_next_token, nucleus_sampling = q3.greedy_next_token, q3.nucleus_sampling

PROBS = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15], dtype=torch.double)  # ranking: 1, 3, 4, 2, 0


@pytest.mark.parametrize("p, support", [
    (0.1, {1}), (0.4, {1}), (0.41, {1, 3}), (0.7, {1, 3}), (0.71, {1, 3, 4}), (0.85, {1, 3, 4}),
    (0.9, {1, 3, 4, 2}), (0.95, {1, 3, 4, 2}), (0.96, {0, 1, 2, 3, 4}), (1.0, {0, 1, 2, 3, 4}),
])
def test_nucleus_samples_come_from_the_smallest_top_set_reaching_p(p, support):
    """20,000 draws: every token of V^(p) (probability >= 0.05) appears, no other token ever does."""
    drawn = nucleus_sampling(PROBS.log()[None].expand(20_000, -1), p, torch.Generator().manual_seed(0))
    assert drawn.shape == (20_000, 1) and set(drawn.flatten().tolist()) == support


def test_nucleus_sampling_follows_the_renormalised_distribution():
    gen, n = torch.Generator().manual_seed(0), 40_000
    logits = PROBS.log()[None].expand(n, -1)
    counts = torch.bincount(nucleus_sampling(logits, 0.8, gen).flatten(), minlength=5).double() / n
    torch.testing.assert_close(counts, torch.tensor([0.0, 0.4, 0.0, 0.3, 0.15], dtype=torch.double) / 0.85,
                               atol=0.01, rtol=0)
    full = torch.bincount(nucleus_sampling(logits, 1.0, gen).flatten(), minlength=5).double() / n
    torch.testing.assert_close(full, PROBS, atol=0.01, rtol=0)


def test_the_skeleton_token_rules_take_1d_logits():
    logits = torch.tensor([0.1, 2.0, -1.0])
    assert greedy_next_token(logits).tolist() == [1]
    out = nucleus_sampling(logits, p=0.5)
    assert out.shape == (1,) and out.dtype == torch.long and out.item() == 1


def course_generate(model, src, next_token_func, max_len=10):
    """The course's generation loop for one word (batch 1): 1-D logits, a (1,) token per step."""
    src_lengths = (src != PAD_IDX).sum(1)
    predicted = [torch.full([1, 1], SOS_IDX, dtype=torch.long)]
    with torch.no_grad():
        encoder_outputs, dec_state = model.encoder(src, src_lengths)
        if dec_state[0].shape[0] == 2:
            dec_state = reshape_state(dec_state)
        for _ in range(max_len):
            output, dec_state = model.decoder(predicted[-1], dec_state, encoder_outputs, src_lengths)
            next_token = next_token_func(model.generator(output.view(-1)))
            predicted.append(next_token.view(1, 1))
            if int(next_token) == EOS_IDX:
                break
    return torch.cat(predicted).squeeze().tolist()[1:]


@pytest.mark.parametrize("use_attn", [False, True])
def test_batched_greedy_decoding_equals_the_course_loop_word_by_word(use_attn):
    torch.manual_seed(1)
    model = course_model(use_attn).eval()
    src, lengths, _ = random_batch()
    batched = q3.decode_batch(model, src, lengths, max_len=10).tolist()
    for i, n in enumerate(lengths.tolist()):
        one = course_generate(model, src[i:i + 1, :n], greedy_next_token)
        assert batched[i][: len(one)] == one and all(t == PAD_IDX for t in batched[i][len(one):])
        tiny_p = course_generate(model, src[i:i + 1, :n], lambda logits: nucleus_sampling(logits, p=1e-6))
        assert tiny_p == one  # a nucleus of one token is greedy


def one_by_one(model, dataset):
    """Each word's greedy spelling by the course's loop, alone, in eval mode."""
    model.eval()
    return ["".join(dataset.tgt_vocab.decode(course_generate(model, dataset[i][0][None], greedy_next_token)))
            for i in range(len(dataset))]


def test_generate_gives_each_word_its_own_spelling(trained):
    """Batches sorted by length ("cow" first, "lion" last) are not index order: every spelling still goes
    to its own word, as decoding each word alone gives it."""
    model, dataset, _ = trained
    order = torch.cat(dataset.batches(5, by_length=True)).tolist()
    assert order != sorted(order)
    want = one_by_one(model, dataset)
    assert len(set(want)) > 6  # the words get different spellings, so a mix-up shows
    assert q3.generate(model, dataset, batch_size=5) == want


def test_generate_decodes_in_eval_mode(trained):
    """A model left in training mode with dropout 0.5 decodes as it does in eval mode."""
    model, dataset, _ = trained
    want = one_by_one(model, dataset)
    noisy = copy.deepcopy(model).train()
    for m in noisy.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.5
    torch.manual_seed(0)
    assert q3.generate(noisy, dataset, batch_size=5) == want


# ---- the scores: worked out by hand --------------------------------------------------------------------

def three_words():
    """cat, horse, dog (3 + 5 + 3 letters)."""
    return Seq2SeqDataset([PAIRS[0], PAIRS[5], PAIRS[1]], *vocabularies())


def test_cer_is_the_edit_distance_over_the_gold_length_and_wer_the_share_of_wrong_words():
    """c / horses / dog against cat / horse / dog: distances 2, 1, 0 over 11 gold letters (not the 10
    predicted ones, nor the mean of the words' rates 0.289); 2 of 3 words wrong."""
    cer, wer = q3.evaluate(["c", "horses", "dog"], three_words())
    assert cer == pytest.approx(3 / 11) and wer == pytest.approx(2 / 3)


def test_test_scores_the_spellings_that_generate_gives_with_its_p(monkeypatch):
    calls = []

    def generate(model, data_iter, max_len, p, rng):
        calls.append(p)
        return ["c", "horses", "dog"]
    monkeypatch.setattr(q3, "generate", generate)
    cer, wer = q3.test(None, three_words(), max_len=10, p=0.8)
    assert (cer, wer) == (pytest.approx(3 / 11), pytest.approx(2 / 3)) and calls == [0.8]


def test_wer_at_k_counts_a_word_wrong_only_when_every_sample_misses_it(monkeypatch):
    """Three samples of cat / horse / dog: cat right in two, horse in one, dog in none: WER@3 = 1/3 (each
    sample alone has WER 2/3)."""
    samples = iter([["cat", "hrose", "dgo"], ["cta", "horse", "dgo"], ["cat", "hose", "dgo"]])
    monkeypatch.setattr(q3, "generate", lambda *args, **kwargs: next(samples))
    assert q3.compute_wer_at_k(None, three_words(), p=0.8, k=3) == pytest.approx(1 / 3)




# ---- training ---------------------------------------------------------------------------------------

def test_the_training_loss_is_the_mean_over_the_real_target_tokens(tmp_path):
    """train() itself, one epoch at learning rate 0 on "cat" and "mouse" in one batch: its loss is -log P of
    the 4 + 6 real targets (EOS included) over 10, each word's P taken alone; the 2 PADs after "cat" add
    nothing."""
    src_vocab, tgt_vocab = vocabularies()
    dataset = Seq2SeqDataset([PAIRS[0], PAIRS[4]], src_vocab, tgt_vocab)
    assert dataset.batch(torch.tensor([0, 1]))[2][0, -2:].tolist() == [PAD_IDX, PAD_IDX]
    torch.manual_seed(0)
    model = q3.build_model(tiny_config(dropout=0.0), len(src_vocab), len(tgt_vocab))
    out = {}
    lowest, cers = q3.train((dataset, dataset), model, 0.0, 1, str(tmp_path / "m.pt"), batch_size=2,
                            log=lambda line: None, record=out)
    assert cers == out["history"]["val_cer"] and lowest == cers[0]  # the skeleton's return
    log_p = [teacher_forced_log_prob(model, src, tgt[1:].tolist()) for src, tgt in (dataset[0], dataset[1])]
    assert out["history"]["train_loss"][0] == pytest.approx(-sum(log_p) / 10, abs=2e-6)


def sgd_epoch(model, dataset, batches):
    q3.train_epoch(model, [torch.tensor(b) for b in batches], dataset,
                   torch.optim.SGD(model.parameters(), lr=0.5), torch.nn.CrossEntropyLoss(ignore_index=PAD_IDX))


def test_each_training_step_uses_the_gradient_of_its_own_batch_only():
    """An epoch of two SGD steps ends where two epochs of one step each end, when nothing is carried
    between them: the second step has no gradient of the first batch left in it."""
    src_vocab, tgt_vocab = vocabularies()
    dataset = Seq2SeqDataset(PAIRS[:4], src_vocab, tgt_vocab)
    torch.manual_seed(0)
    one = q3.build_model(tiny_config(dropout=0.0), len(src_vocab), len(tgt_vocab))
    two = copy.deepcopy(one)
    sgd_epoch(one, dataset, [[0, 1], [2, 3]])
    sgd_epoch(two, dataset, [[0, 1]])
    two.zero_grad(set_to_none=True)
    sgd_epoch(two, dataset, [[2, 3]])
    for a, b in zip(one.parameters(), two.parameters()):
        torch.testing.assert_close(a, b)


def test_training_runs_in_train_mode_after_each_validation(tmp_path):
    """Validation puts the model in eval mode; every training forward of the next epoch is in train mode
    again (dropout on)."""
    src_vocab, tgt_vocab = vocabularies()
    dataset = Seq2SeqDataset(PAIRS, src_vocab, tgt_vocab)
    torch.manual_seed(0)
    model = q3.build_model(tiny_config(), len(src_vocab), len(tgt_vocab))
    modes = []
    model.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    q3.train((dataset, dataset), model, 0.01, 2, str(tmp_path / "m.pt"), batch_size=4, log=lambda line: None)
    assert len(modes) == 6 and all(modes)


def test_the_checkpoint_holds_the_weights_of_the_epoch_it_names_as_best(tmp_path, monkeypatch):
    """Validation scores 0.5, 0.3, 0.4: epoch 2 is the best, and the checkpoint has its weights."""
    scores, weights, validate = iter([0.5, 0.3, 0.4]), [], q3.test

    def scripted(model, data_iter, **kwargs):
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
        validate(model, data_iter, **kwargs)
        cer = next(scores)
        return cer, cer
    monkeypatch.setattr(q3, "test", scripted)
    record = tiny_train(tiny_config(n_epochs=3, lr=0.01), tmp_path / "m.pt")
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert record["best_epoch"] == saved["epoch"] == 2 and saved["val_cer"] == 0.3
    assert all(torch.equal(saved["model"][k], weights[1][k]) for k in weights[1])
    assert not all(torch.equal(saved["model"][k], weights[2][k]) for k in weights[2])


def test_a_run_whose_loss_is_not_finite_stops_as_diverged_and_keeps_its_best_epoch(tmp_path):
    src_vocab, tgt_vocab = vocabularies()
    dataset = Seq2SeqDataset(PAIRS, src_vocab, tgt_vocab)
    torch.manual_seed(0)
    model = q3.build_model(tiny_config(), len(src_vocab), len(tgt_vocab))
    calls = []

    def poisoned(d, size, rng):  # the second epoch starts with a NaN weight
        calls.append(1)
        if len(calls) == 2:
            model.decoder.embedding.weight.data[4] = float("nan")
        return d.batches(size, rng=rng)
    out = {}
    q3.train((dataset, dataset), model, 0.01, 3, str(tmp_path / "m.pt"), batches=poisoned, record=out,
             log=lambda line: None)
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert out["status"] == "diverged" and out["history"]["epoch"] == [1] and saved["epoch"] == 1
    assert all(torch.isfinite(w).all() for w in saved["model"].values())


def test_without_the_course_data_training_falls_back_to_islex_loudly(tmp_path, monkeypatch):
    """As if the repository were tmp_path, which has no data/."""
    pytest.importorskip("pysle")
    monkeypatch.setattr(utils, "HOME", str(tmp_path))
    code, out, err = call_main("hw2-q3.py", "train", "--n_epochs", "1", "--hidden_size", "8",
                               "--batch_size", "256", "--checkpoint_name", "m.pt", cwd=tmp_path)
    assert code == 0 and "the course P2G data are missing" in err and "ISLEX" in err
    assert "NOT the course data" in out.splitlines()[-1]  # said again at the end, where it is seen
    record = json.loads((tmp_path / "runs" / "q3" / "m-train.json").read_text())
    assert record["config"]["data"].startswith("islex") and (tmp_path / "m.pt").exists()


def test_train_then_test_as_a_user_runs_them_from_another_folder(tmp_path):
    """Two fresh processes of a copy of the scripts in repo/, started from two folders outside it: train's
    default paths (data/, the checkpoint, runs/) are the repository's; test needs only the default checkpoint
    name, knows the data for those it was trained on, writes where --out_dir says, and its record's scores
    are those of its predictions."""
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    for name in ("hw2-q3.py", "data.py", "utils.py", "models.py"):
        shutil.copy(os.path.join(ROOT, name), write_corpus(repo / "data").parent / name)
    elsewhere.mkdir()
    code, out, err = run_script(str(repo / "hw2-q3.py"), "train", "--use_attn", "--n_epochs", "2", "--hidden_size", "16",
                                cwd=elsewhere)
    assert code == 0, err
    assert (repo / "attn.pt").exists() and (repo / "runs/q3/attn-val_cer.png").exists() and not any(elsewhere.iterdir())
    assert json.loads((repo / "runs/q3/attn-train.json").read_text())["config"]["data"] == "data"  # as from repo/
    (elsewhere / "deeper").mkdir()
    code, out, err = run_script(str(repo / "hw2-q3.py"), "test", "--topp", "0.8", "--out_dir", "out",
                                cwd=elsewhere / "deeper")
    assert code == 0 and "Test WER@3" in out and "(one sample per word, nucleus p = 0.8)" in out, err
    assert "not comparable" not in err  # the same data/, seen from another folder
    record = json.loads((elsewhere / "deeper/out/attn-test-topp0.8.json").read_text())
    examples = record["examples"]
    golds, preds = [e["gold"] for e in examples], [e["pred"] for e in examples]
    assert record["cer"] == pytest.approx(sum(map(Levenshtein.distance, preds, golds)) / sum(map(len, golds)))
    assert record["wer"] == pytest.approx(sum(p != g for p, g in zip(preds, golds)) / len(golds))
    assert record["wer_at_k"] == sum(e["gold"] not in e["samples"] for e in examples) / len(examples)
    assert record["config"]["use_attn"] and record["cer_ci"][0] <= record["cer"] <= record["cer_ci"][1]


def test_ctrl_c_keeps_the_epochs_run_in_the_record_and_the_best_in_the_checkpoint(trained, tmp_path, monkeypatch):
    """Ctrl-C in the second epoch: the record holds epoch 1 as "interrupted", the checkpoint epoch 1;
    the exit code is 130 and the last line says what is kept."""
    monkeypatch.setattr(q3, "train_epoch", ctrl_c_in_epoch(2, q3.train_epoch))
    write_corpus(tmp_path / "data")
    code, out, err = call_main("hw2-q3.py", "train", "--n_epochs", "3", "--hidden_size", "8", "--data_dir", "data",
                               "--checkpoint_name", "m.pt", "--out_dir", "out", cwd=tmp_path)
    record = json.loads((tmp_path / "out/m-train.json").read_text())
    assert code == 130 and record["status"] == "interrupted" and record["history"]["epoch"] == [1]
    assert torch.load(tmp_path / "m.pt", weights_only=True)["epoch"] == 1
    assert err.strip().splitlines()[-1].startswith("interrupted after 1 epoch(s): m.pt holds epoch 1 (val CER ")


def test_test_with_use_attn_on_a_model_without_attention_says_so(trained, tmp_path):
    path = tmp_path / "plain.pt"
    state = torch.load(trained[2], weights_only=True)
    state["config"]["use_attn"] = False
    state["model"] = {k: v for k, v in state["model"].items() if ".attn." not in k}
    torch.save(state, path)
    write_corpus(tmp_path / "data")
    code, out, err = call_main("hw2-q3.py", "test", "--use_attn", "--checkpoint_name", path, "--data_dir", "data",
                               "--out_dir", "out", cwd=tmp_path)
    assert code == 0 and f"note: {path} holds a model without attention" in err, err
