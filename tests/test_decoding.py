"""decoding.py: the token rules (greedy, nucleus sampling), batched decoding equal to the course's
word-by-word loop, and beam search: beam 1 is greedy, its scores are teacher-forced log-probabilities,
batched equals one by one, never more than k, the length penalty, ensembles."""
import copy

import pytest
import torch

import decoding
from conftest import A_ID as A, BIGRAM, Bigram, course_model, random_batch, random_model, teacher_forced_log_prob, vocabularies
from data import EOS_IDX, PAD_IDX, SOS_IDX, Seq2SeqDataset
from decoding import greedy_next_token, nucleus_sampling
from models import reshape_state

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
    batched = decoding.decode(model, src, lengths, max_len=10).tolist()
    for i, n in enumerate(lengths.tolist()):
        one = course_generate(model, src[i:i + 1, :n], greedy_next_token)
        assert batched[i][: len(one)] == one and all(t == PAD_IDX for t in batched[i][len(one):])
        tiny_p = course_generate(model, src[i:i + 1, :n], lambda logits: nucleus_sampling(logits, p=1e-6))
        assert tiny_p == one  # a nucleus of one token is greedy


# ---- beam search ----------------------------------------------------------------------------------------

def until_eos(row):
    return row[: row.index(EOS_IDX) + 1] if EOS_IDX in row else row


@pytest.mark.parametrize("input_feed", [False, True])
def test_beam_size_one_is_greedy(input_feed, device):
    model = random_model(input_feed=input_feed).to(device)
    src, lengths, _ = (t.to(device) for t in random_batch())
    greedy = decoding.decode(model, src, lengths, max_len=8)
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
    out = decoding.evaluate(model, dataset, batch_size=2, max_len=5)
    assert out["wer"] == 1.0 and len(out["preds"]) == 2 and out["nbest"] is None  # an untrained model is wrong
    beams = decoding.evaluate(model, dataset, batch_size=4, max_len=5, beam_size=2)
    assert beams["preds"] == [nbest[0][0] for nbest in beams["nbest"]]
