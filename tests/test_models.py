"""models.py: the assignment's attention equations, padding that changes nothing (more of it neither), the
batch equal to its words one by one, teacher forcing in bulk equal to the step-by-step loop, the encoder's
final state (packed, or unpacked without padding) and reshape_state worked out by hand, dropout on the
embeddings and the LSTMs' outputs in training only, the decoder starting from the encoder's state, and the
course's contract (its constructors, its training step, a bare state_dict, the tied output layer).
Beyond's input-feeding decoder is held to the same rules.

Mistakes tried (python tests/mutants.py), each caught by the test named:
- models.py: `emb = self.dropout(self.embedding(src))` -> `emb = self.embedding(src)` | test_dropout_acts_on_the_embeddings_and_the_lstm_outputs_in_training_only
- models.py: `return self.dropout(enc_output), final_hidden` -> `return enc_output, final_hidden` | test_dropout_acts_on_the_embeddings_and_the_lstm_outputs_in_training_only
- models.py: `emb = self.dropout(self.embedding(tgt))` -> `emb = self.embedding(tgt)` | test_dropout_acts_on_the_embeddings_and_the_lstm_outputs_in_training_only
- models.py: `if self.dropout_site == "lstm":` -> `if False:` | test_dropout_acts_on_the_embeddings_and_the_lstm_outputs_in_training_only
- models.py: `masked_fill(~mask[:, None], float("-inf"))` -> `masked_fill(~mask[:, None], 0.0)` | test_attention_weights_sum_to_one_and_are_zero_on_padding
- models.py: `float("-inf")), dim=-1)` -> `float("-inf")), dim=1)` | test_attention_weights_sum_to_one_and_are_zero_on_padding
- models.py: `.lt(lengths.unsqueeze(1)))` -> `.le(lengths.unsqueeze(1)))` | test_attention_weights_sum_to_one_and_are_zero_on_padding
- models.py: `torch.cat([context, query], dim=-1)` -> `torch.cat([query, context], dim=-1)` | test_attention_is_the_assignment_equations_written_out
- models.py: `context = torch.bmm(alpha, encoder_outputs)` -> `context = torch.bmm(alpha, keys)` | test_attention_is_the_assignment_equations_written_out
- models.py: `self.v(torch.tanh(self.W_s(query)[:, :, None] + keys[:, None]))` -> `self.v(self.W_s(query)[:, :, None] + keys[:, None])` | test_attention_is_the_assignment_equations_written_out
- models.py: `out = torch.tanh(self.W_out(` -> `out = (self.W_out(` | test_attention_is_the_assignment_equations_written_out
- models.py: `new_c_state = torch.cat([c_state[:-1], c_state[1:]], dim=2)` -> `new_c_state = torch.cat([c_state[1:], c_state[:-1]], dim=2)` | test_reshape_state_puts_the_two_directions_side_by_side
- models.py: `new_h_state = torch.cat([h_state[:-1], h_state[1:]], dim=2)` -> `new_h_state = torch.cat([h_state[:-1], h_state[1:]], dim=0)` | test_reshape_state_puts_the_two_directions_side_by_side
- models.py: `batch_first=True, total_length=src.size(1))` -> `batch_first=True)` | test_encoder_outputs_are_zero_past_each_length_and_more_padding_changes_nothing
- models.py: `if bool((lengths == src.size(1)).all()):` -> `if bool((lengths == src.size(1)).any()):` | test_outputs_do_not_depend_on_padded_positions
- models.py: `enforce_sorted=False` -> `enforce_sorted=True` | test_outputs_do_not_depend_on_padded_positions
- models.py: `reshape_state((h[-2:], c[-2:]))` -> `reshape_state((h[:2], c[:2]))` | test_the_encoder_hands_over_forward_at_the_last_real_step_and_backward_at_step_0
- models.py: `if tgt.size(1) > 1:` -> `if False:` | test_the_course_training_step_takes_the_whole_target_and_learns
- models.py: `outputs, dec_state = self.lstm(emb, dec_state)` -> `outputs, _ = self.lstm(emb, dec_state)` | test_teacher_forcing_in_bulk_equals_the_step_by_step_loop
- models.py: `dec_hidden = final_enc_state` -> `dec_hidden = tuple(torch.zeros_like(s) for s in final_enc_state)` | test_without_attention_the_decoder_starts_from_the_encoders_final_state
- models.py: `self.generator.weight = self.decoder.embedding.weight` -> `pass` | test_a_bare_state_dict_loads_strictly_into_fresh_modules
"""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import course_model, dropped, q3, random_batch, random_model
from data import EOS_IDX, PAD_IDX
from models import BahdanauAttention, Encoder, reshape_state

DECODERS = [(False, False), (True, False), (True, True)]  # (use_attn, input_feed)


def test_attention_weights_sum_to_one_and_are_zero_on_padding(device):
    torch.manual_seed(0)
    attn = BahdanauAttention(8).to(device)
    lengths = torch.tensor([4, 2, 1], device=device)
    out, alpha = attn(torch.randn(3, 5, 8, device=device), torch.randn(3, 4, 8, device=device), lengths,
                      return_weights=True)
    assert out.shape == (3, 5, 8) and alpha.shape == (3, 5, 4)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 5, device=device))
    real = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool, device=device)
    assert (alpha[~real[:, None].expand_as(alpha)] == 0).all() and (alpha[real[:, None].expand_as(alpha)] > 0).all()


def test_attention_is_the_assignment_equations_written_out():
    torch.manual_seed(0)
    attn = BahdanauAttention(6)
    s, h = torch.randn(6), torch.randn(4, 6)
    e = torch.stack([attn.v.weight[0] @ torch.tanh(attn.W_s.weight @ s + attn.W_h.weight @ h_i) for h_i in h])
    expected = torch.tanh(attn.W_out.weight @ torch.cat([torch.softmax(e, 0) @ h, s]))
    torch.testing.assert_close(attn(s[None, None], h[None], torch.tensor([4]))[0, 0], expected)


@pytest.mark.parametrize("use_attn, input_feed", DECODERS)
def test_outputs_do_not_depend_on_padded_positions(use_attn, input_feed, device):
    model = random_model(use_attn, input_feed).to(device)
    src, lengths, tgt = (t.to(device) for t in random_batch())
    noisy = src.clone()
    pad = src == PAD_IDX  # random_batch pads after each length
    noisy[pad] = torch.randint(4, 12, (int(pad.sum()),), device=device)
    with torch.no_grad():
        torch.testing.assert_close(model(src, lengths, tgt)[0], model(noisy, lengths, tgt)[0])


@pytest.mark.parametrize("use_attn, input_feed", DECODERS)
def test_a_batch_equals_its_words_one_by_one(use_attn, input_feed, device):
    model = random_model(use_attn, input_feed).to(device)
    src, lengths, tgt = (t.to(device) for t in random_batch())
    with torch.no_grad():
        enc_b, (h_b, _) = model.encoder(src, lengths)
        logits_b, _ = model(src, lengths, tgt)
        for i, n in enumerate(lengths.tolist()):
            one_src, one_len = src[i:i + 1, :n], lengths[i:i + 1]
            enc_1, (h_1, _) = model.encoder(one_src, one_len)
            torch.testing.assert_close(enc_b[i:i + 1, :n], enc_1)
            torch.testing.assert_close(h_b[:, i:i + 1], h_1)
            torch.testing.assert_close(logits_b[i:i + 1], model(one_src, one_len, tgt[i:i + 1])[0])


@pytest.mark.parametrize("use_attn, input_feed", DECODERS)
def test_teacher_forcing_in_bulk_equals_the_step_by_step_loop(use_attn, input_feed, device):
    model = random_model(use_attn, input_feed).to(device)
    src, lengths, tgt = (t.to(device) for t in random_batch())
    with torch.no_grad():
        bulk, _ = model(src, lengths, tgt)
        enc, state = model.encoder(src, lengths)
        steps = []
        for t in range(tgt.size(1) - 1):  # the whole target goes in; its last token is never an input
            out, state = model.decoder(tgt[:, t:t + 1], state, enc, lengths)
            steps.append(model.generator(out))
    torch.testing.assert_close(bulk, torch.cat(steps, 1), atol=1e-5, rtol=1e-5)


def test_encoder_outputs_are_zero_past_each_length_and_more_padding_changes_nothing():
    model = random_model()
    src, lengths, tgt = random_batch()
    wider = torch.cat([src, torch.full((5, 2), PAD_IDX)], 1)  # two more PAD columns
    with torch.no_grad():
        outputs, (h, c) = model.encoder(src, lengths)
        more, (h2, c2) = model.encoder(wider, lengths)
        assert more.shape == (5, 9, 16) and not any(more[i, n:].any() for i, n in enumerate(lengths.tolist()))
        torch.testing.assert_close((more[:, :7], h2, c2), (outputs, h, c))
        torch.testing.assert_close(model(wider, lengths, tgt)[0], model(src, lengths, tgt)[0])


def test_reshape_state_puts_the_two_directions_side_by_side():
    h = torch.arange(12.0).view(2, 2, 3)  # (directions, B, H/2): forward 0..5, backward 6..11
    new_h, new_c = reshape_state((h, h + 100))
    assert new_h.tolist() == [[[0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11]]]
    assert new_c.tolist() == [[[100, 101, 102, 106, 107, 108], [103, 104, 105, 109, 110, 111]]]


@pytest.mark.parametrize("num_layers", [1, 2])
def test_the_encoder_hands_over_forward_at_the_last_real_step_and_backward_at_step_0(num_layers):
    torch.manual_seed(0)
    encoder = Encoder(12, 16, PAD_IDX, 0.0, num_layers=num_layers).eval()
    src, lengths, _ = random_batch()
    with torch.no_grad():
        outputs, (h, c) = encoder(src, lengths)
    assert h.shape == c.shape == (1, 5, 16)  # the top layer only, both directions side by side
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(h[0, i, :8], outputs[i, n - 1, :8])
        torch.testing.assert_close(h[0, i, 8:], outputs[i, 0, 8:])


def test_input_feeding_feeds_the_previous_attentional_state():
    """Step t's LSTM input is [embedding of y_{t-1}; s~_{t-1}] with s~_0 = 0: rebuilt here by hand."""
    model = random_model(input_feed=True)
    src, lengths, tgt = random_batch()
    dec = model.decoder
    with torch.no_grad():
        enc, (h, c) = model.encoder(src, lengths)
        out, state = dec(tgt, (h, c), enc, lengths)
        feed = torch.zeros(5, 1, 16)
        for t in range(tgt.size(1) - 1):
            o, (h, c) = dec.lstm(torch.cat([dec.embedding(tgt[:, t:t + 1]), feed], -1), (h, c))
            feed = dec.attn(o, enc, lengths)
            torch.testing.assert_close(out[:, t:t + 1], feed)
    torch.testing.assert_close(state[2], feed.transpose(0, 1))


def test_without_attention_the_decoder_starts_from_the_encoders_final_state():
    """Without attention the source reaches the decoder only through the state it starts from: the logits
    are the decoder's from that state, and other phonemes give other logits."""
    model = random_model(use_attn=False)
    src, lengths, tgt = random_batch()
    with torch.no_grad():
        _, state = model.encoder(src, lengths)
        logits = model(src, lengths, tgt)[0]
        torch.testing.assert_close(logits, model.generator(model.decoder(tgt, state, None, lengths)[0]))
        assert not torch.allclose(logits, model(src.roll(1, 0), lengths.roll(1), tgt)[0])


@pytest.mark.parametrize("use_attn", [False, True])
def test_dropout_acts_on_the_embeddings_and_the_lstm_outputs_in_training_only(use_attn):
    """The assignment: dropout "only ... to the embeddings and the final outputs (in both the encoder and
    the decoder)". In training mode each LSTM reads its embeddings dropped, and the encoder's outputs and
    the decoder LSTM's outputs (what the attention reads) are dropped; in eval mode nothing is."""
    torch.manual_seed(0)
    model = q3.build_model({"use_attn": use_attn, "hidden_size": 16, "dropout": 0.5}, 12, 10)
    src, lengths = torch.randint(4, 12, (5, 7)), torch.full((5,), 7)  # no padding: tensors, not packs
    tgt = random_batch()[2]
    seen = {}
    for name, m in [("enc", model.encoder), ("dec", model.decoder)]:
        m.embedding.register_forward_hook(lambda mod, i, o, n=name: seen.update({n + " emb": o}))
        m.lstm.register_forward_hook(lambda mod, i, o, n=name: seen.update({n + " in": i[0], n + " out": o[0]}))
    if use_attn:
        model.decoder.attn.register_forward_pre_hook(lambda mod, args: seen.update({"dec next": args[0]}))
    for training in (True, False):
        model.train(training)
        enc, state = model.encoder(src, lengths)
        out, _ = model.decoder(tgt, state, enc, lengths)
        pairs = {"encoder embeddings": (seen["enc emb"], seen["enc in"]), "encoder outputs": (seen["enc out"], enc),
                 "decoder embeddings": (seen["dec emb"], seen["dec in"]),
                 "decoder LSTM outputs": (seen["dec out"], seen.pop("dec next", out))}
        for site, (before, after) in pairs.items():
            assert dropped(before, after, 0.5) if training else torch.equal(before, after), site


# ---- the course's contract: its hw2-q3.py drives our modules like this --------------------------------

@pytest.mark.parametrize("use_attn", [False, True])
def test_the_course_training_step_takes_the_whole_target_and_learns(use_attn):
    torch.manual_seed(0)
    model = course_model(use_attn).train()
    src, lengths, tgt = random_batch()
    tgt[:, -1] = EOS_IDX
    criterion = torch.nn.CrossEntropyLoss(ignore_index=PAD_IDX)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        outputs, _ = model(src, (src != PAD_IDX).sum(1), tgt)  # the lengths as the course computes them
        assert outputs.shape == (5, tgt.size(1) - 1, 10), "one prediction per target position after SOS"
        loss = criterion(outputs.reshape(-1, outputs.shape[-1]), tgt[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_the_decoder_takes_the_encoder_state_in_either_layout():
    model = course_model(True).eval()
    src, lengths, tgt = random_batch()
    enc, _ = model.encoder(src, lengths)
    torch.manual_seed(0)
    raw = (torch.randn(2, 5, 8), torch.randn(2, 5, 8))  # (num_directions, B, H/2), as nn.LSTM returns it
    with torch.no_grad():
        torch.testing.assert_close(model.decoder(tgt, raw, enc, lengths)[0],
                                   model.decoder(tgt, reshape_state(raw), enc, lengths)[0])


@pytest.mark.parametrize("use_attn", [False, True])
def test_a_bare_state_dict_loads_strictly_into_fresh_modules(use_attn, tmp_path):
    """The skeleton's Seq2Seq ties its output layer to the decoder's embeddings: one matrix."""
    torch.manual_seed(0)
    trained = course_model(use_attn).eval()
    assert trained.generator.weight is trained.decoder.embedding.weight
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    torch.manual_seed(1)
    fresh = course_model(use_attn)
    fresh.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    fresh.eval()
    src, lengths, tgt = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(fresh(src, lengths, tgt)[0], trained(src, lengths, tgt)[0])


@pytest.mark.parametrize("site, zeros_in_output", [("output", True), ("lstm", False)])
def test_the_dropout_site_decides_where_the_decoder_drops(site, zeros_in_output):
    torch.manual_seed(0)
    model = q3.build_model({"use_attn": True, "hidden_size": 16, "dropout": 0.5, "dropout_site": site}, 12, 10).train()
    src, lengths, tgt = random_batch()
    enc, state = model.encoder(src, lengths)
    out, _ = model.decoder(tgt, state, enc, lengths)  # with site "lstm" attention's tanh output is never dropped
    assert bool((out == 0).any()) is zeros_in_output


def test_a_batch_without_padding_skips_packing_and_gets_what_packing_gives():
    torch.manual_seed(0)
    encoder = Encoder(12, 16, PAD_IDX, 0.0, num_layers=2).train()  # train mode: the kernel a bucketed run uses
    src, lengths = torch.randint(4, 12, (5, 7)), torch.full((5,), 7)
    outputs, state = encoder(src, lengths)
    want, (h, c) = encoder.lstm(pack_padded_sequence(encoder.embedding(src), lengths, batch_first=True))
    torch.testing.assert_close(outputs, pad_packed_sequence(want, batch_first=True)[0])
    torch.testing.assert_close(state, reshape_state((h[-2:], c[-2:])))
