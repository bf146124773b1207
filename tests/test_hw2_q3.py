"""hw2-q3.py: the token rules (nucleus sampling from the smallest top set reaching p, renormalised; the
skeleton's 1-D logits), batched decoding equal to the course's word-by-word loop, a loss that PAD never
enters, the checkpoint holding the epoch it names as best, divergence recorded, the ISLEX fallback, and
train then test run as a user runs them."""
import json

import pytest
import torch

from conftest import (PAIRS, call_main, course_model, q3, random_batch, run_script, tiny_config,
                      tiny_train, vocabularies, write_corpus)
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




# ---- training ---------------------------------------------------------------------------------------

def test_pad_positions_never_count_in_the_loss():
    """The loss of a batch of a short and a long word is the token-weighted mean of their losses alone:
    the short word's PAD targets add nothing."""
    src_vocab, tgt_vocab = vocabularies()
    dataset = Seq2SeqDataset([PAIRS[0], PAIRS[4]], src_vocab, tgt_vocab)  # cat, mouse: 4 and 6 targets
    torch.manual_seed(0)
    model = q3.build_model(tiny_config(dropout=0.0), len(src_vocab), len(tgt_vocab))
    still = torch.optim.SGD(model.parameters(), lr=0.0)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=PAD_IDX)
    loss = lambda idx: q3.train_epoch(model, [torch.tensor(idx)], dataset, still, criterion)  # noqa: E731
    n = (dataset.tgt_lengths - 1).tolist()  # target positions after SOS
    assert dataset.batch(torch.tensor([0, 1]))[2][0, -1] == PAD_IDX
    assert loss([0, 1]) == pytest.approx((loss([0]) * n[0] + loss([1]) * n[1]) / (n[0] + n[1]), rel=1e-5)


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

    def poisoned(d, size, generator):  # the second epoch starts with a NaN weight
        calls.append(1)
        if len(calls) == 2:
            model.decoder.embedding.weight.data[4] = float("nan")
        return d.batches(size, generator=generator)
    out = q3.train((dataset, dataset), model, 0.01, 3, str(tmp_path / "m.pt"), batches=poisoned,
                   log=lambda line: None)
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert out["status"] == "diverged" and out["history"]["epoch"] == [1] and saved["epoch"] == 1
    assert all(torch.isfinite(w).all() for w in saved["model"].values())


def test_without_the_course_data_training_falls_back_to_islex_loudly(tmp_path):
    pytest.importorskip("pysle")
    code, out, err = call_main("hw2-q3.py", "train", "--n_epochs", "1", "--hidden_size", "8",
                               "--batch_size", "256", "--checkpoint_name", "m.pt", cwd=tmp_path)
    assert code == 0 and "the course P2G data are missing" in err and "ISLEX" in err
    assert "NOT the course data" in out.splitlines()[-1]  # said again at the end, where it is seen
    record = json.loads((tmp_path / "runs" / "q3" / "m-train.json").read_text())
    assert record["config"]["data"].startswith("islex") and (tmp_path / "m.pt").exists()


def test_train_then_test_as_a_user_runs_them(tmp_path):
    """Two fresh processes: train writes the checkpoint, its record and figure; test needs only the
    checkpoint's name, and its record's scores are those of its predictions."""
    write_corpus(tmp_path / "data")
    code, out, err = run_script("hw2-q3.py", "train", "--use_attn", "--n_epochs", "2", "--hidden_size", "16",
                                "--checkpoint_name", "attn.pt", cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "runs/q3/attn-train.json").exists() and (tmp_path / "runs/q3/attn-val_cer.png").exists()
    code, out, err = run_script("hw2-q3.py", "test", "--topp", "0.8", cwd=tmp_path)  # attn.pt by default
    assert code == 0 and "Test WER@3" in out, err
    record = json.loads((tmp_path / "runs/q3/attn-test-topp0.8.json").read_text())
    examples = record["examples"]
    assert (record["cer"], record["wer"]) == q3.cer_wer([e["pred"] for e in examples], [e["gold"] for e in examples])
    assert record["wer_at_k"] == sum(e["gold"] not in e["samples"] for e in examples) / len(examples)
    assert record["config"]["use_attn"] and record["cer_ci"][0] <= record["cer"] <= record["cer_ci"][1]
