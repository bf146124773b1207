import io
import json

import pytest
import torch

import data as p2g
import checkpoints
import decoding
import diagnostics
from utils import load_script
from models import BahdanauAttention, Decoder, Encoder, Seq2Seq, build_model, length_mask, reshape_state

q3 = load_script("hw2-q3")

WORDS = [("k æ t", "cat"), ("d ɔ ɡ", "dog"), ("f ɪ ʃ", "fish"), ("b ɜː d", "bird"), ("m aʊ s", "mouse"),
         ("h ɔː s", "horse"), ("ʃ iː p", "sheep"), ("ɡ oʊ t", "goat"), ("k aʊ", "cow"), ("d ʌ k", "duck"),
         ("l aɪ ə n", "lion"), ("b ɛ ə", "bear")]


def tiny_model(use_attn=True, seed=0, V_src=12, V_tgt=10, H=16, input_feed=False):
    torch.manual_seed(seed)
    return build_model(V_src, V_tgt, H, dropout=0.0, use_attn=use_attn, input_feed=input_feed).eval()


DECODERS = [(False, False), (True, False), (True, True)]  # (use_attn, input_feed)


def random_batch(seed=0, B=5, V_src=12, V_tgt=10, S=7, T=6):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([S, 3, 5, 1, 6][:B])
    src = torch.randint(4, V_src, (B, S), generator=g)
    src[~length_mask(lengths, S)] = p2g.PAD
    tgt = torch.randint(4, V_tgt, (B, T), generator=g)
    tgt[:, 0] = p2g.SOS
    return src, lengths, tgt


# ---- attention and padding ---------------------------------------------------------------------

def test_attention_weights_sum_to_one_and_are_zero_on_padding():
    torch.manual_seed(0)
    attn = BahdanauAttention(8)
    lengths = torch.tensor([4, 2, 1])
    enc = torch.randn(3, 4, 8)
    out, alpha = attn(torch.randn(3, 5, 8), enc, lengths, return_weights=True)
    assert out.shape == (3, 5, 8) and alpha.shape == (3, 5, 4)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 5))
    assert (alpha[~length_mask(lengths, 4)[:, None].expand_as(alpha)] == 0).all()


def test_attention_matches_the_assignment_equations():
    torch.manual_seed(0)
    attn = BahdanauAttention(6)
    s, h = torch.randn(6), torch.randn(4, 6)
    e = torch.stack([attn.v.weight[0] @ torch.tanh(attn.W_s.weight @ s + attn.W_h.weight @ h_i) for h_i in h])
    c = torch.softmax(e, 0) @ h
    expected = torch.tanh(attn.W_out.weight @ torch.cat([c, s]))
    torch.testing.assert_close(attn(s[None, None], h[None], torch.tensor([4]))[0, 0], expected)


@pytest.mark.parametrize("use_attn, input_feed", DECODERS)
def test_outputs_do_not_depend_on_padded_positions(use_attn, input_feed):
    model = tiny_model(use_attn, input_feed=input_feed)
    src, lengths, tgt = random_batch()
    noisy = src.clone()
    pad = ~length_mask(lengths, src.size(1))
    noisy[pad] = torch.randint(4, 12, (int(pad.sum()),))
    with torch.no_grad():
        torch.testing.assert_close(model(src, lengths, tgt)[0], model(noisy, lengths, tgt)[0])


@pytest.mark.parametrize("use_attn, input_feed", DECODERS)
def test_batch_equals_examples_one_by_one(use_attn, input_feed):
    model = tiny_model(use_attn, input_feed=input_feed)
    src, lengths, tgt = random_batch()
    with torch.no_grad():
        enc_b, (h_b, _) = model.encoder(src, lengths)
        logits_b, _ = model(src, lengths, tgt)
        greedy_b = decoding.decode(model, src, lengths, max_len=8)
        for i, n in enumerate(lengths.tolist()):
            one_src, one_len = src[i:i + 1, :n], lengths[i:i + 1]
            enc_1, (h_1, _) = model.encoder(one_src, one_len)
            torch.testing.assert_close(enc_b[i:i + 1, :n], enc_1)
            torch.testing.assert_close(h_b[:, i:i + 1], h_1)
            torch.testing.assert_close(logits_b[i:i + 1], model(one_src, one_len, tgt[i:i + 1])[0])
            one = decoding.decode(model, one_src, one_len, max_len=8)[0]
            assert greedy_b[i, : len(one)].tolist() == one.tolist()
            assert (greedy_b[i, len(one):] == p2g.PAD).all()


@pytest.mark.parametrize("use_attn, input_feed", DECODERS)
def test_bulk_teacher_forcing_equals_step_by_step_loop(use_attn, input_feed):
    model = tiny_model(use_attn, input_feed=input_feed)
    src, lengths, tgt = random_batch()
    with torch.no_grad():
        bulk, _ = model(src, lengths, tgt)
        enc, state = model.encoder(src, lengths)
        steps = []
        for t in range(tgt.size(1) - 1):  # the whole target goes in; its last token is never an input
            out, state = model.decoder(tgt[:, t:t + 1], state, enc, lengths)
            steps.append(model.generator(out))
    torch.testing.assert_close(bulk, torch.cat(steps, 1), atol=1e-5, rtol=1e-5)


# ---- next-token rules --------------------------------------------------------------------------

PROBS = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15], dtype=torch.double)  # ranking: 1, 3, 4, 2, 0


@pytest.mark.parametrize("p, support", [
    (0.1, {1}), (0.4, {1}), (0.41, {1, 3}), (0.7, {1, 3}), (0.71, {1, 3, 4}), (0.85, {1, 3, 4}),
    (0.9, {1, 3, 4, 2}), (0.95, {1, 3, 4, 2}), (0.96, {0, 1, 2, 3, 4}), (1.0, {0, 1, 2, 3, 4}),
])
def test_nucleus_samples_come_from_the_smallest_top_set_reaching_p(p, support):
    """20,000 draws: every token of V^(p) (probability >= 0.05) appears, no other token ever does."""
    logits = PROBS.log()[None].expand(20_000, -1)
    drawn = q3.nucleus_sampling(logits, p, torch.Generator().manual_seed(0))
    assert drawn.shape == (20_000, 1)
    assert set(drawn.flatten().tolist()) == support


def test_nucleus_sampling_follows_the_renormalised_distribution():
    gen = torch.Generator().manual_seed(0)
    n = 40_000
    logits = PROBS.log()[None].expand(n, -1)
    counts = torch.bincount(q3.nucleus_sampling(logits, 0.8, gen).flatten(), minlength=5).double() / n
    expected = torch.tensor([0.0, 0.4, 0.0, 0.3, 0.15], dtype=torch.double) / 0.85
    torch.testing.assert_close(counts, expected, atol=0.01, rtol=0)
    full = torch.bincount(q3.nucleus_sampling(logits, 1.0, gen).flatten(), minlength=5).double() / n
    torch.testing.assert_close(full, PROBS, atol=0.01, rtol=0)


def test_skeleton_contracts_take_1d_logits():
    logits = torch.tensor([0.1, 2.0, -1.0])
    assert q3.greedy_next_token(logits).tolist() == [1]
    out = q3.nucleus_sampling(logits, p=0.5)
    assert out.shape == (1,) and out.dtype == torch.long and out.item() == 1


@pytest.mark.parametrize("bad", ["0", "-0.2", "1.5"])
def test_topp_outside_unit_interval_is_an_argparse_error(bad):
    with pytest.raises(SystemExit):
        q3.parse_args(["test", "--topp", bad])


# ---- metrics -----------------------------------------------------------------------------------

def test_cer_wer_and_wer_at_k_by_hand():
    golds = ["cat", "dog", "house"]
    preds = ["cat", "dig", "hose"]  # distances 0, 1, 1 over 3 + 3 + 5 characters
    cer, wer = q3.cer_wer(preds, golds)
    assert cer == pytest.approx(2 / 11) and wer == pytest.approx(2 / 3)
    samples = [["cat", "dig", "hose"], ["kat", "dog", "howse"], ["cat", "dug", "hous"]]
    assert q3.wer_at_k(samples, golds) == pytest.approx(1 / 3)


# ---- data --------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("k æ t cat\n", "found 0 tabs"), ("k æ t\tcat\textra\n", "found 2 tabs"),
    ("\tcat\n", "empty phonemes"), ("k æ t\t \n", "empty spelling"),
])
def test_malformed_tsv_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text("d ɔ ɡ\tdog\n" + line, encoding="utf-8")
    with pytest.raises(p2g.DataError, match=rf"bad.tsv:2: .*{message}"):
        p2g.read_tsv_corpus(str(path))


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(p2g.DataError, match="empty file"):
        p2g.read_tsv_corpus(str(tmp_path / "empty.tsv"))


def test_vocabulary_specials_and_unknown_symbols():
    v = p2g.Vocabulary.build(["cab"])
    assert v.itos[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert v.encode("cz") == [v.stoi["c"], p2g.UNK]
    assert v.decode([v.stoi["a"], p2g.EOS, v.stoi["b"]]) == ["a"]


# ---- end to end --------------------------------------------------------------------------------

@pytest.fixture
def tiny_corpus(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.tsv").write_text("".join(f"{p}\t{w}\n" for p, w in WORDS), encoding="utf-8")
    return folder


def test_tiny_model_overfits_and_checkpoint_round_trips(tiny_corpus, tmp_path, capsys):
    ckpt, out = tmp_path / "tiny.pt", tmp_path / "results"
    common = ["--data_dir", str(tiny_corpus), "--out_dir", str(out), "--checkpoint_name", str(ckpt), "--quiet"]
    q3.main(["train", "--use_attn", "--hidden_size", "32", "--dropout", "0", "--lr", "0.02",
             "--n_epochs", "60", "--batch_size", "4"] + common)
    history = json.loads((out / "tiny-train.json").read_text())
    assert history["best_val_cer"] == 0.0
    assert (out / "tiny-err_rate.pdf").exists()
    ckpt_data = torch.load(ckpt, weights_only=True)
    assert ckpt_data["config"]["use_attn"] is True
    [result] = q3.main(["test"] + common)  # no --use_attn: the checkpoint knows
    assert result["cer"] == 0.0 and result["wer"] == 0.0
    assert "Test CER: 0.0000, Test WER: 0.0000" in capsys.readouterr().out
    [sampled] = q3.main(["test", "--topp", "0.8"] + common)
    exs = sampled["examples"]
    assert all(len(ex["samples"]) == 3 for ex in exs)
    per_sample_wer = [sum(ex["samples"][j] != ex["gold"] for ex in exs) / len(exs) for j in range(3)]
    none_right = sum(all(s != ex["gold"] for s in ex["samples"]) for ex in exs) / len(exs)
    assert sampled["wer_at_k"] == pytest.approx(none_right) and none_right <= min(per_sample_wer)


def test_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        q3.main(["test", "--checkpoint_name", str(tmp_path / "nope.pt"), "--out_dir", str(tmp_path)])
    assert e.value.code != 0
    err = capsys.readouterr().err.strip()
    assert "nope.pt" in err and len(err.splitlines()) == 1


def test_foreign_checkpoint_is_rejected(tmp_path, capsys):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(SystemExit):
        q3.main(["test", "--checkpoint_name", str(path), "--out_dir", str(tmp_path)])
    assert "not a hw2-q3.py checkpoint" in capsys.readouterr().err


def test_missing_data_dir_names_the_path(tmp_path, capsys):
    with pytest.raises(SystemExit):
        q3.main(["train", "--data_dir", str(tmp_path / "nowhere"), "--checkpoint_name", str(tmp_path / "m.pt"),
                 "--out_dir", str(tmp_path)])
    assert "nowhere/train.tsv: file not found" in capsys.readouterr().err


# ---- beam search -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory):
    """A small attention model trained for a few epochs on WORDS: confident but not perfect."""
    folder = tmp_path_factory.mktemp("beam")
    for split in ("train", "valid", "test"):
        (folder / f"{split}.tsv").write_text("".join(f"{p}\t{w}\n" for p, w in WORDS), encoding="utf-8")
    ckpt = folder / "beam.pt"
    q3.main(["train", "--use_attn", "--hidden_size", "32", "--dropout", "0", "--lr", "0.01", "--n_epochs", "8",
             "--batch_size", "4", "--data_dir", str(folder), "--out_dir", str(folder), "--checkpoint_name", str(ckpt),
             "--quiet"])
    model, src_vocab, tgt_vocab, _ = checkpoints.load_or_die(str(ckpt), torch.device("cpu"))
    dataset = p2g.Seq2SeqDataset([(p.split(), w) for p, w in WORDS], src_vocab, tgt_vocab)
    return model, dataset


def test_beam_size_one_is_greedy(trained_tiny):
    model, dataset = trained_tiny
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    greedy = decoding.decode(model, src, lengths, max_len=12)
    beams = decoding.beam_search(model, src, lengths, max_len=12, beam_size=1)
    for row, found in zip(greedy.tolist(), beams):
        expected = row[: row.index(p2g.EOS) + 1] if p2g.EOS in row else row
        assert found[0][0] == expected


def test_beam_scores_are_teacher_forced_log_probabilities(trained_tiny):
    model, dataset = trained_tiny
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    beams = decoding.beam_search(model, src, lengths, max_len=12, beam_size=3)
    for i, found in enumerate(beams):
        assert len(found) == 3
        for seq, log_prob, score in found:
            tgt = torch.tensor([[p2g.SOS] + seq])
            with torch.no_grad():
                logits, _ = model(src[i:i + 1, : lengths[i]], lengths[i:i + 1], tgt)
            expected = torch.log_softmax(logits, -1)[0].gather(1, tgt[0, 1:, None]).sum().item()
            assert log_prob == pytest.approx(expected, abs=1e-4)
            assert score == pytest.approx(log_prob / len(seq))


def test_batched_beam_equals_single_example_beam(trained_tiny):
    model, dataset = trained_tiny
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    batched = decoding.beam_search(model, src, lengths, max_len=12, beam_size=4)
    for i in range(len(dataset)):
        one = decoding.beam_search(model, src[i:i + 1, : lengths[i]], lengths[i:i + 1], max_len=12, beam_size=4)[0]
        assert [h[0] for h in one] == [h[0] for h in batched[i]]
        assert [h[1] for h in one] == pytest.approx([h[1] for h in batched[i]], abs=1e-5)


def test_heatmap_rows_sum_to_one(trained_tiny, tmp_path):
    model, dataset = trained_tiny
    src_vocab = p2g.Vocabulary.build(p.split() for p, _ in WORDS)
    tgt_vocab = p2g.Vocabulary.build(w for _, w in WORDS)
    words = diagnostics.plot_attention(model, dataset, src_vocab, tgt_vocab, 4, 12, str(tmp_path / "tiny-attention"))
    assert len(words) == 4 and (tmp_path / "tiny-attention.png").exists()
    for w in words:
        assert all(abs(s - 1) < 1e-4 for s in w["row_sums"])
        assert all(len(row) == len(w["phonemes"]) for row in w["weights"])


def test_without_course_data_train_falls_back_to_islex_loudly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/train.tsv here
    q3.main(["train", "--n_epochs", "1", "--hidden_size", "16", "--quiet", "--eval_batch_size", "1000"])
    err = capsys.readouterr().err
    assert "the course P2G data are missing" in err and "ISLEX" in err
    history = json.loads((tmp_path / "results" / "q3" / "model-train.json").read_text())
    assert history["config"]["data"].startswith("islex") and (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("site, zeros_in_output", [("output", True), ("lstm", False)])
def test_dropout_site_decides_where_the_decoder_drops(site, zeros_in_output):
    torch.manual_seed(0)
    model = build_model(12, 10, 16, dropout=0.5, use_attn=True, dropout_site=site).train()
    src, lengths, tgt = random_batch()
    enc, state = model.encoder(src, lengths)
    out, _ = model.decoder(tgt, state, enc, lengths)  # with site "lstm" attention's tanh output is never dropped
    assert bool((out == 0).any()) is zeros_in_output


def test_gold_log_probs_sum_the_teacher_forced_token_log_probs(trained_tiny):
    model, dataset = trained_tiny
    log_probs, lengths = decoding.gold_log_probs(model, dataset, batch_size=5)
    for i in range(len(dataset)):
        src, tgt = dataset[i]
        with torch.no_grad():
            logits, _ = model(src[None], torch.tensor([len(src)]), tgt[None])
        expected = torch.log_softmax(logits[0], -1).gather(1, tgt[1:, None]).sum()
        torch.testing.assert_close(log_probs[i], expected, atol=1e-5, rtol=1e-5)
        assert lengths[i] == len(tgt) - 1


def test_odd_hidden_size_is_an_argparse_error():
    with pytest.raises(SystemExit):
        q3.parse_args(["train", "--hidden_size", "127"])


def test_test_without_flags_finds_the_attention_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert q3.parse_args(["test"]).checkpoint_name == "model.pt"  # nothing trained: the plain default
    (tmp_path / "model-attn.pt").write_bytes(b"")
    assert q3.parse_args(["test", "--topp", "0.8"]).checkpoint_name == "model-attn.pt"
    assert q3.parse_args(["train"]).checkpoint_name == "model.pt"
    assert q3.parse_args(["test", "--checkpoint_name", "x.pt"]).checkpoint_name == "x.pt"


def test_collate_samples_equals_batching_by_index():
    src_vocab = p2g.Vocabulary.build(p.split() for p, _ in WORDS)
    tgt_vocab = p2g.Vocabulary.build(w for _, w in WORDS)
    dataset = p2g.Seq2SeqDataset([(p.split(), w) for p, w in WORDS], src_vocab, tgt_vocab)
    idx = torch.tensor([4, 0, 10])
    for a, b in zip(p2g.collate_samples([dataset[i] for i in idx.tolist()]), dataset.batch(idx)):
        assert torch.equal(a, b)


# ---- the course's contract: its hw2-q3.py drives our modules like this ------------------------

def course_model(use_attn, V_src=12, V_tgt=10, H=16, dropout=0.3):
    """Built exactly as the course's hw2-q3.py builds it: positional arguments, no extras."""
    encoder = Encoder(V_src, H, p2g.PAD, dropout)
    attn = BahdanauAttention(H) if use_attn else None
    return Seq2Seq(encoder, Decoder(H, V_tgt, attn, p2g.PAD, dropout))


def course_generate(model, src, next_token_func, max_len=10):
    """The course's generation loop for one word (batch 1): 1-D logits, a (1,) token per step."""
    src_lengths = (src != p2g.PAD).sum(1)
    predicted = [torch.full([1, 1], p2g.SOS, dtype=torch.long)]
    with torch.no_grad():
        encoder_outputs, dec_state = model.encoder(src, src_lengths)
        if dec_state[0].shape[0] == 2:
            dec_state = reshape_state(dec_state)
        for _ in range(max_len):
            output, dec_state = model.decoder(predicted[-1], dec_state, encoder_outputs, src_lengths)
            next_token = next_token_func(model.generator(output.view(-1)))
            assert next_token.shape == (1,) and next_token.dtype == torch.long
            predicted.append(next_token.view(1, 1))
            if int(next_token) == p2g.EOS:
                break
    return torch.cat(predicted).squeeze().tolist()[1:]


@pytest.mark.parametrize("use_attn", [False, True])
def test_course_training_step_takes_the_whole_target(use_attn):
    torch.manual_seed(0)
    model = course_model(use_attn).train()
    src, lengths, tgt = random_batch()
    tgt[:, -1] = p2g.EOS
    assert torch.equal((src != p2g.PAD).sum(1), lengths)  # how the course computes the lengths
    criterion = torch.nn.CrossEntropyLoss(ignore_index=p2g.PAD)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        outputs, _ = model(src, lengths, tgt)
        assert outputs.shape == (5, tgt.size(1) - 1, 10), "one prediction per target position after SOS"
        loss = criterion(outputs.reshape(-1, outputs.shape[-1]), tgt[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("use_attn", [False, True])
def test_course_generation_loop_matches_batched_greedy_decoding(use_attn):
    torch.manual_seed(1)
    model = course_model(use_attn).eval()
    src, lengths, _ = random_batch()
    batched = decoding.decode(model, src, lengths, max_len=10).tolist()
    for i, n in enumerate(lengths.tolist()):
        one = course_generate(model, src[i:i + 1, :n], q3.greedy_next_token)
        assert one == batched[i][: len(one)]
        sampled = course_generate(model, src[i:i + 1, :n], lambda logits: q3.nucleus_sampling(logits, p=0.8))
        assert all(0 <= t < 10 for t in sampled)
        tiny_p = course_generate(model, src[i:i + 1, :n], lambda logits: q3.nucleus_sampling(logits, p=1e-6))
        assert tiny_p == one  # a nucleus of one token is greedy


def test_decoder_takes_the_encoder_state_in_either_layout():
    torch.manual_seed(0)
    model = course_model(True).eval()
    src, lengths, tgt = random_batch()
    enc, _ = model.encoder(src, lengths)
    raw = (torch.randn(2, 5, 8), torch.randn(2, 5, 8))  # (num_directions, B, H/2), as nn.LSTM returns it
    with torch.no_grad():
        torch.testing.assert_close(model.decoder(tgt, raw, enc, lengths)[0],
                                   model.decoder(tgt, reshape_state(raw), enc, lengths)[0])


@pytest.mark.parametrize("use_attn", [False, True])
def test_bare_state_dict_round_trips_into_fresh_modules(use_attn, tmp_path):
    torch.manual_seed(0)
    trained = course_model(use_attn).eval()
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    torch.manual_seed(1)
    fresh = course_model(use_attn)
    fresh.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))  # strict
    fresh.eval()
    src, lengths, tgt = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(fresh(src, lengths, tgt)[0], trained(src, lengths, tgt)[0])


def test_encoder_final_state_is_forward_at_last_real_step_and_backward_at_step_0():
    torch.manual_seed(0)
    encoder = Encoder(12, 16, p2g.PAD, 0.0).eval()
    src, lengths, _ = random_batch()
    with torch.no_grad():
        outputs, (h, c) = encoder(src, lengths)
    assert h.shape == c.shape == (1, 5, 16)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(h[0, i, :8], outputs[i, n - 1, :8])
        torch.testing.assert_close(h[0, i, 8:], outputs[i, 0, 8:])


def test_tsv_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("d ɔ ɡ\tdog\n".encode() + "k a f e\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(p2g.DataError, match=r"latin1.tsv:2: not UTF-8"):
        p2g.read_tsv_corpus(str(path))


def test_damaged_checkpoint_is_a_one_line_error(trained_tiny, tmp_path, capsys):
    model, _ = trained_tiny
    path = tmp_path / "damaged.pt"
    torch.save({"kind": checkpoints.KIND, "config": {"hidden_size": 32, "dropout": 0.0, "use_attn": False},
                "src_vocab": ["a"] * 29, "tgt_vocab": ["b"] * 24, "model": model.state_dict()}, path)
    with pytest.raises(SystemExit):
        checkpoints.load_or_die(str(path), torch.device("cpu"))
    err = capsys.readouterr().err.strip()
    assert "damaged.pt: damaged checkpoint" in err and len(err.splitlines()) == 1


# ---- spell -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spell_checkpoint(trained_tiny, tmp_path_factory):
    model, _ = trained_tiny
    path = tmp_path_factory.mktemp("spell") / "spell.pt"
    src_vocab = p2g.Vocabulary.build(p.split() for p, _ in WORDS)
    tgt_vocab = p2g.Vocabulary.build(w for _, w in WORDS)
    config = {"use_attn": True, "hidden_size": 32, "dropout": 0.0, "dropout_site": "lstm", "enc_layers": 1}
    checkpoints.save(str(path), model, config, src_vocab, tgt_vocab, epoch=8, val_cer=0.0, val_wer=0.0)
    return str(path)


def parse_spell_line(line):
    phonemes, *hyps = line.split("\t")
    return phonemes, [(h.rsplit(" ", 1)[0], float(h.rsplit(" ", 1)[1])) for h in hyps]


def test_spell_gives_k_best_spellings_with_probabilities(spell_checkpoint, capsys):
    lines = q3.main(["spell", "--checkpoint_name", spell_checkpoint, "--beam_size", "3", "k æ t", "d ɔ ɡ"])
    assert capsys.readouterr().out.splitlines() == lines and len(lines) == 2
    for line, phonemes in zip(lines, ["k æ t", "d ɔ ɡ"]):
        got, hyps = parse_spell_line(line)
        assert got == phonemes and 1 <= len(hyps) <= 3
        probs = [p for _, p in hyps]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        assert len({w for w, _ in hyps}) == len(hyps)
    assert parse_spell_line(lines[0])[1][0][0] == "cat"  # a training word comes first
    five = q3.main(["spell", "--checkpoint_name", spell_checkpoint, "k æ t"])
    assert len(parse_spell_line(five[0])[1]) > 3  # the default K is 5


def test_spell_reads_stdin_and_skips_empty_lines(spell_checkpoint, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("k æ t\n\n   \nm aʊ s\n"))
    lines = q3.main(["spell", "--checkpoint_name", spell_checkpoint, "--beam_size", "2"])
    assert [parse_spell_line(line)[0] for line in lines] == ["k æ t", "m aʊ s"]
    assert all(len(parse_spell_line(line)[1]) <= 2 for line in lines)


def test_spell_warns_about_unknown_phonemes(spell_checkpoint, capsys):
    lines = q3.main(["spell", "--checkpoint_name", spell_checkpoint, "k æ ʘ t"])
    err = capsys.readouterr().err
    assert "ʘ" in err and "warning" in err and "Traceback" not in err
    assert parse_spell_line(lines[0])[0] == "k æ ʘ t"


def test_phonemes_outside_spell_are_an_argparse_error():
    with pytest.raises(SystemExit):
        q3.parse_args(["test", "k æ t"])


# ---- the strong model: presets, deeper encoder, ensembles ---------------------------------------

def test_preset_sets_defaults_that_explicit_flags_override():
    args = q3.parse_args(["train", "--preset", "strong"])
    for key, value in q3.PRESETS["strong"].items():
        assert getattr(args, key) == value
    assert q3.parse_args(["train", "--preset", "strong", "--hidden_size", "64"]).hidden_size == 64
    plain = q3.parse_args(["train"])
    assert (plain.hidden_size, plain.enc_layers, plain.label_smoothing, plain.select_on) == (128, 1, 0.0, "cer")


def test_two_layer_encoder_hands_the_top_layer_to_the_decoder():
    torch.manual_seed(0)
    encoder = Encoder(12, 16, p2g.PAD, 0.0, num_layers=2).eval()
    src, lengths, _ = random_batch()
    with torch.no_grad():
        outputs, (h, _) = encoder(src, lengths)
    assert h.shape == (1, 5, 16)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(h[0, i, :8], outputs[i, n - 1, :8])
        torch.testing.assert_close(h[0, i, 8:], outputs[i, 0, 8:])


def test_ensemble_of_copies_equals_the_single_model_and_differs_from_either_member(trained_tiny):
    model, dataset = trained_tiny
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    single = decoding.beam_search(model, src, lengths, max_len=12, beam_size=3)
    copies = decoding.beam_search([model, model], src, lengths, max_len=12, beam_size=3)
    for a, b in zip(single, copies):
        assert [h[0] for h in a] == [h[0] for h in b]
        assert [h[1] for h in a] == pytest.approx([h[1] for h in b], abs=1e-5)
    torch.manual_seed(3)
    other = build_model(model.encoder.embedding.num_embeddings, model.decoder.tgt_vocab_size, 32, 0.0, True).eval()
    mixed = decoding.beam_search([model, other], src, lengths, max_len=12, beam_size=1)
    lp_model, _ = decoding.gold_log_probs(model, dataset, batch_size=12)
    lp_other, _ = decoding.gold_log_probs(other, dataset, batch_size=12)
    lp_mixed, _ = decoding.gold_log_probs([model, other], dataset, batch_size=12)
    torch.testing.assert_close(lp_mixed, (lp_model + lp_other) / 2)
    assert mixed != decoding.beam_search(other, src, lengths, max_len=12, beam_size=1)


def test_cer_by_source_length_by_hand():
    examples = [{"phonemes": "k æ t", "gold": "cat", "pred": "kat"},          # 3 phonemes, 1 edit / 3
                {"phonemes": "d ɔ ɡ z", "gold": "dogs", "pred": "dogs"},      # 4 phonemes, 0 / 4
                {"phonemes": "h ɔː s ɪ z", "gold": "horses", "pred": "hosses"}]  # 5 phonemes, 1 / 6
    rows = diagnostics.cer_by_source_length(examples)
    assert rows == [{"phonemes": "1-3", "words": 1, "cer": pytest.approx(1 / 3)},
                    {"phonemes": "4-5", "words": 2, "cer": pytest.approx(1 / 10)}]


def test_strong_style_checkpoint_tests_with_every_decoding(tiny_corpus, tmp_path):
    ckpt, out = tmp_path / "strong.pt", tmp_path / "results"
    common = ["--data_dir", str(tiny_corpus), "--out_dir", str(out), "--checkpoint_name", str(ckpt), "--quiet"]
    q3.main(["train", "--preset", "strong", "--hidden_size", "16", "--n_epochs", "3", "--batch_size", "4"] + common)
    saved = torch.load(ckpt, weights_only=True)["config"]
    assert (saved["enc_layers"], saved["label_smoothing"], saved["select_on"]) == (2, 0.1, "wer")
    history = json.loads((out / "strong-train.json").read_text())
    assert history["best_val_wer"] == min(history["history"]["val_wer"])
    for flags in ([], ["--topp", "0.8"], ["--beam_size", "1", "3"]):
        for result in q3.main(["test"] + flags + common):
            assert 0 <= result["wer"] <= 1


# ---- input feeding (beyond the assignment) ---------------------------------------------------------

def test_input_feeding_feeds_the_previous_attentional_state():
    """Step t's LSTM input is [embedding of y_{t-1}; s~_{t-1}] with s~_0 = 0: rebuilt here by hand."""
    model = tiny_model(input_feed=True)
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
    assert len(state) == 3
    torch.testing.assert_close(state[2], feed.transpose(0, 1))
    assert dec.lstm.input_size == 32


def test_input_feeding_beam_one_is_greedy_and_checkpoint_round_trips(tiny_corpus, tmp_path):
    ckpt = tmp_path / "feed.pt"
    q3.main(["train", "--use_attn", "--input_feed", "--hidden_size", "16", "--n_epochs", "2", "--batch_size", "4",
             "--data_dir", str(tiny_corpus), "--out_dir", str(tmp_path), "--checkpoint_name", str(ckpt), "--quiet"])
    model, src_vocab, tgt_vocab, saved = checkpoints.load_or_die(str(ckpt), torch.device("cpu"))
    assert saved["config"]["input_feed"] is True and model.decoder.input_feed
    dataset = p2g.Seq2SeqDataset([(p.split(), w) for p, w in WORDS], src_vocab, tgt_vocab)
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    greedy = decoding.decode(model, src, lengths, max_len=12)
    for row, found in zip(greedy.tolist(), decoding.beam_search(model, src, lengths, max_len=12, beam_size=1)):
        assert found[0][0] == (row[: row.index(p2g.EOS) + 1] if p2g.EOS in row else row)
    beams = decoding.beam_search(model, src, lengths, max_len=12, beam_size=3)
    tgt = torch.tensor([[p2g.SOS] + beams[0][0][0]])
    with torch.no_grad():
        logits, _ = model(src[:1, : lengths[0]], lengths[:1], tgt)
    expected = torch.log_softmax(logits, -1)[0].gather(1, tgt[0, 1:, None]).sum().item()
    assert beams[0][0][1] == pytest.approx(expected, abs=1e-4)


def test_input_feeding_without_attention_is_an_argparse_error():
    with pytest.raises(SystemExit):
        q3.parse_args(["train", "--input_feed"])
