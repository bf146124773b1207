import copy
import json

import pytest
import torch

import data as p2g
import decoding
import diagnostics
import metrics
import training
from conftest import run_script
from decoding import greedy_next_token, nucleus_sampling
from models import BahdanauAttention, Decoder, Encoder, Seq2Seq, build_model, length_mask, reshape_state

WORDS = [("k æ t", "cat"), ("d ɔ ɡ", "dog"), ("f ɪ ʃ", "fish"), ("b ɜː d", "bird"), ("m aʊ s", "mouse"),
         ("h ɔː s", "horse"), ("ʃ iː p", "sheep"), ("ɡ oʊ t", "goat"), ("k aʊ", "cow"), ("d ʌ k", "duck"),
         ("l aɪ ə n", "lion"), ("b ɛ ə", "bear")]


def tiny_model(use_attn=True, seed=0, V_src=12, V_tgt=10, H=16, input_feed=False):
    torch.manual_seed(seed)
    cfg = training.TrainConfig(use_attn=use_attn, hidden_size=H, dropout=0.0, input_feed=input_feed)
    return build_model(cfg, V_src, V_tgt).eval()


DECODERS = [(False, False), (True, False), (True, True)]  # (use_attn, input_feed)


def random_batch(seed=0, B=5, V_src=12, V_tgt=10, S=7, T=6):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([S, 3, 5, 1, 6][:B])
    src = torch.randint(4, V_src, (B, S), generator=g)
    src[~length_mask(lengths, S)] = p2g.PAD_IDX
    tgt = torch.randint(4, V_tgt, (B, T), generator=g)
    tgt[:, 0] = p2g.SOS_IDX
    return src, lengths, tgt


# ---- attention and padding ---------------------------------------------------------------------

def test_attention_weights_sum_to_one_and_are_zero_on_padding(device):
    torch.manual_seed(0)
    attn = BahdanauAttention(8).to(device)
    lengths = torch.tensor([4, 2, 1], device=device)
    enc = torch.randn(3, 4, 8, device=device)
    out, alpha = attn(torch.randn(3, 5, 8, device=device), enc, lengths, return_weights=True)
    assert out.shape == (3, 5, 8) and alpha.shape == (3, 5, 4)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 5, device=device))
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
def test_outputs_do_not_depend_on_padded_positions(use_attn, input_feed, device):
    model = tiny_model(use_attn, input_feed=input_feed).to(device)
    src, lengths, tgt = (t.to(device) for t in random_batch())
    noisy = src.clone()
    pad = ~length_mask(lengths, src.size(1))
    noisy[pad] = torch.randint(4, 12, (int(pad.sum()),), device=device)
    with torch.no_grad():
        torch.testing.assert_close(model(src, lengths, tgt)[0], model(noisy, lengths, tgt)[0])


@pytest.mark.parametrize("use_attn, input_feed", DECODERS)
def test_batch_equals_examples_one_by_one(use_attn, input_feed, device):
    model = tiny_model(use_attn, input_feed=input_feed).to(device)
    src, lengths, tgt = (t.to(device) for t in random_batch())
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
            assert (greedy_b[i, len(one):] == p2g.PAD_IDX).all()


@pytest.mark.parametrize("use_attn, input_feed", DECODERS)
def test_bulk_teacher_forcing_equals_step_by_step_loop(use_attn, input_feed, device):
    model = tiny_model(use_attn, input_feed=input_feed).to(device)
    src, lengths, tgt = (t.to(device) for t in random_batch())
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
    drawn = nucleus_sampling(logits, p, torch.Generator().manual_seed(0))
    assert drawn.shape == (20_000, 1)
    assert set(drawn.flatten().tolist()) == support


def test_nucleus_sampling_follows_the_renormalised_distribution():
    gen = torch.Generator().manual_seed(0)
    n = 40_000
    logits = PROBS.log()[None].expand(n, -1)
    counts = torch.bincount(nucleus_sampling(logits, 0.8, gen).flatten(), minlength=5).double() / n
    expected = torch.tensor([0.0, 0.4, 0.0, 0.3, 0.15], dtype=torch.double) / 0.85
    torch.testing.assert_close(counts, expected, atol=0.01, rtol=0)
    full = torch.bincount(nucleus_sampling(logits, 1.0, gen).flatten(), minlength=5).double() / n
    torch.testing.assert_close(full, PROBS, atol=0.01, rtol=0)


def test_skeleton_contracts_take_1d_logits():
    logits = torch.tensor([0.1, 2.0, -1.0])
    assert greedy_next_token(logits).tolist() == [1]
    out = nucleus_sampling(logits, p=0.5)
    assert out.shape == (1,) and out.dtype == torch.long and out.item() == 1


@pytest.mark.parametrize("bad", ["0", "-0.2", "1.5", "nan"])
def test_topp_outside_unit_interval_is_a_one_line_flag_error(bad):
    code, _, err = run_script("hw2-q3.py", "test", "--topp", bad)
    assert code == 2 and "--topp" in err and "Traceback" not in err


# ---- metrics -----------------------------------------------------------------------------------

def test_cer_wer_and_wer_at_k_by_hand():
    golds = ["cat", "dog", "house"]
    preds = ["cat", "dig", "hose"]  # distances 0, 1, 1 over 3 + 3 + 5 characters
    cer, wer = metrics.cer_wer(preds, golds)
    assert cer == pytest.approx(2 / 11) and wer == pytest.approx(2 / 3)
    samples = [["cat", "dig", "hose"], ["kat", "dog", "howse"], ["cat", "dug", "hous"]]
    assert metrics.wer_at_k(samples, golds) == pytest.approx(1 / 3)


# ---- data --------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("k æ t cat\n", "found 0 tabs"), ("k æ t\tcat\textra\n", "found 2 tabs"),
    ("\tcat\n", "empty phonemes"), ("k æ t\t \n", "empty spelling"),
])
def test_malformed_tsv_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text("d ɔ ɡ\tdog\n" + line, encoding="utf-8")
    with pytest.raises(p2g.DataError, match=rf"bad.tsv:2: .*{message}"):
        p2g.read_pairs(str(path))


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(p2g.DataError, match="empty file"):
        p2g.read_pairs(str(tmp_path / "empty.tsv"))


def test_vocabulary_specials_and_unknown_symbols():
    v = p2g.Vocabulary.build(["cab"])
    assert v.symbols == ["PAD", "SOS", "EOS", "UNK", "a", "b", "c"]
    assert v.encode("cz") == [v.word2index["c"], p2g.UNK_IDX]
    assert v.decode([v.word2index["a"], p2g.EOS_IDX, v.word2index["b"]]) == ["a"]


# ---- end to end --------------------------------------------------------------------------------

@pytest.fixture
def tiny_corpus(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.tsv").write_text("".join(f"{p}\t{w}\n" for p, w in WORDS), encoding="utf-8")
    return folder


def tiny_train(corpus_dir, ckpt, **fields):
    """training.train on the TSVs of corpus_dir: the record, with the checkpoint at ckpt."""
    device = torch.device(fields.pop("device", "cpu"))
    corpus, source = p2g.load_corpus(str(corpus_dir))
    cfg = training.TrainConfig(**{"dropout": 0.0, "batch_size": 4, "data": source, **fields}).check()
    return training.train(cfg, corpus, str(ckpt), device, log=lambda line: None)


def test_tiny_model_overfits_and_the_cli_tests_its_checkpoint(tiny_corpus, tmp_path, device):
    ckpt, out = tmp_path / "tiny.pt", tmp_path / "results"
    record = tiny_train(tiny_corpus, ckpt, use_attn=True, hidden_size=32, lr=0.02, n_epochs=60, device=device)
    assert record["best_val_cer"] == 0.0 and record["status"] == "completed"
    assert torch.load(ckpt, weights_only=True)["config"]["use_attn"] is True
    common = ["--data_dir", tiny_corpus, "--out_dir", out, "--checkpoint_name", ckpt, "--device", device]
    code, stdout, _ = run_script("hw2-q3.py", "test", *common)  # no --use_attn: the checkpoint knows
    assert code == 0 and "Test CER: 0.0000, Test WER: 0.0000" in stdout
    result = json.loads((out / "tiny-test-greedy.json").read_text())
    assert result["cer"] == 0.0 and result["wer_ci"] == [0.0, 0.0]
    code, _, _ = run_script("hw2-q3.py", "test", "--topp", "0.8", *common)
    exs = json.loads((out / "tiny-test-topp0.8.json").read_text())["examples"]
    assert code == 0 and all(len(ex["samples"]) == 3 for ex in exs)


def test_cli_train_writes_the_record_and_names_the_next_command(tiny_corpus, tmp_path):
    ckpt, out = tmp_path / "m.pt", tmp_path / "results"
    code, stdout, _ = run_script("hw2-q3.py", "train", "--use_attn", "--hidden_size", "16", "--n_epochs", "2",
                                 "--batch_size", "4", "--data_dir", tiny_corpus, "--out_dir", out,
                                 "--checkpoint_name", ckpt, "--quiet")
    record = json.loads((out / "m-train.json").read_text())
    assert code == 0 and record["config"]["num_threads"] == 1 and record["history"]["epoch"] == [1, 2]
    assert f"python hw2-q3.py test --checkpoint_name {ckpt} --topp 0.8" in stdout.splitlines()[-1]


def test_sampled_wer_at_k_is_the_share_of_words_no_sample_gets_right():
    golds = ["cat", "dog"]
    samples = [["cat", "dig"], ["kat", "dug"], ["cot", "dog"]]
    assert metrics.wer_at_k(samples, golds) == 0.0 and metrics.wer_at_k(samples[1:2], golds) == 1.0


# ---- beam search -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory):
    """A small attention model trained for a few epochs on WORDS: confident but not perfect."""
    folder = tmp_path_factory.mktemp("beam")
    for split in ("train", "valid", "test"):
        (folder / f"{split}.tsv").write_text("".join(f"{p}\t{w}\n" for p, w in WORDS), encoding="utf-8")
    ckpt = folder / "beam.pt"
    tiny_train(folder, ckpt, use_attn=True, hidden_size=32, lr=0.01, n_epochs=8)
    model, src_vocab, tgt_vocab, _ = training.load_checkpoint(str(ckpt), torch.device("cpu"))
    dataset = p2g.Seq2SeqDataset([(p.split(), w) for p, w in WORDS], src_vocab, tgt_vocab)
    return model, dataset


def test_beam_size_one_is_greedy(trained_tiny, device):
    model, dataset = trained_tiny
    model = copy.deepcopy(model).to(device)
    src, lengths, _, _ = (t.to(device) for t in dataset.batch(torch.arange(len(dataset))))
    greedy = decoding.decode(model, src, lengths, max_len=12)
    beams = decoding.beam_search(model, src, lengths, max_len=12, beam_size=1)
    for row, found in zip(greedy.tolist(), beams):
        expected = row[: row.index(p2g.EOS_IDX) + 1] if p2g.EOS_IDX in row else row
        assert found[0][0] == expected


def test_beam_scores_are_teacher_forced_log_probabilities(trained_tiny):
    model, dataset = trained_tiny
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    beams = decoding.beam_search(model, src, lengths, max_len=12, beam_size=3)
    for i, found in enumerate(beams):
        assert len(found) == 3
        for seq, log_prob, score in found:
            tgt = torch.tensor([[p2g.SOS_IDX] + seq])
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


def test_without_course_data_train_falls_back_to_islex_loudly(tmp_path):
    pytest.importorskip("pysle")
    code, stdout, err = run_script("hw2-q3.py", "train", "--n_epochs", "1", "--hidden_size", "16", "--quiet",
                                   cwd=tmp_path)  # no data/train.tsv here
    assert code == 0 and "the course P2G data are missing" in err and "ISLEX" in err
    assert "NOT the course data" in stdout.splitlines()[-1]  # said again at the end, where it is seen
    history = json.loads((tmp_path / "results" / "q3" / "no-attn-train.json").read_text())
    assert history["config"]["data"].startswith("islex") and (tmp_path / "no-attn.pt").exists()


@pytest.mark.parametrize("site, zeros_in_output", [("output", True), ("lstm", False)])
def test_dropout_site_decides_where_the_decoder_drops(site, zeros_in_output):
    torch.manual_seed(0)
    model = build_model(training.TrainConfig(use_attn=True, hidden_size=16, dropout=0.5, dropout_site=site), 12, 10).train()
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


def test_odd_hidden_size_is_a_flag_error():
    code, _, err = run_script("hw2-q3.py", "train", "--hidden_size", "127")
    assert code == 2 and "--hidden_size must be even" in err


def test_default_checkpoints_follow_the_assignment_commands(tmp_path):
    (tmp_path / "attn.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "no-attn.pt").write_bytes(b"not a checkpoint")
    for args, name in ((["test", "--topp", "0.8"], "attn.pt"), (["test"], "no-attn.pt"),
                       (["test", "--use_attn"], "attn.pt"), (["spell", "k æ t"], "attn.pt")):
        code, _, err = run_script("hw2-q3.py", *args, cwd=tmp_path)
        assert code == 2 and f"--checkpoint_name {name}: not a readable checkpoint" in err, (args, err)


def test_collate_samples_equals_batching_by_index():
    src_vocab = p2g.Vocabulary.build(p.split() for p, _ in WORDS)
    tgt_vocab = p2g.Vocabulary.build(w for _, w in WORDS)
    dataset = p2g.Seq2SeqDataset([(p.split(), w) for p, w in WORDS], src_vocab, tgt_vocab)
    idx = torch.tensor([4, 0, 10])
    src, _, tgt, _ = dataset.batch(idx)
    X, Y = p2g.collate_samples([dataset[i] for i in idx.tolist()], p2g.PAD_IDX)
    assert torch.equal(X, src) and torch.equal(Y, tgt)


# ---- the course's contract: its hw2-q3.py drives our modules like this ------------------------

def course_model(use_attn, V_src=12, V_tgt=10, H=16, dropout=0.3):
    """Built exactly as the course's hw2-q3.py builds it: positional arguments, no extras."""
    encoder = Encoder(V_src, H, p2g.PAD_IDX, dropout)
    attn = BahdanauAttention(H) if use_attn else None
    return Seq2Seq(encoder, Decoder(H, V_tgt, attn, p2g.PAD_IDX, dropout))


def course_generate(model, src, next_token_func, max_len=10):
    """The course's generation loop for one word (batch 1): 1-D logits, a (1,) token per step."""
    src_lengths = (src != p2g.PAD_IDX).sum(1)
    predicted = [torch.full([1, 1], p2g.SOS_IDX, dtype=torch.long)]
    with torch.no_grad():
        encoder_outputs, dec_state = model.encoder(src, src_lengths)
        if dec_state[0].shape[0] == 2:
            dec_state = reshape_state(dec_state)
        for _ in range(max_len):
            output, dec_state = model.decoder(predicted[-1], dec_state, encoder_outputs, src_lengths)
            next_token = next_token_func(model.generator(output.view(-1)))
            assert next_token.shape == (1,) and next_token.dtype == torch.long
            predicted.append(next_token.view(1, 1))
            if int(next_token) == p2g.EOS_IDX:
                break
    return torch.cat(predicted).squeeze().tolist()[1:]


@pytest.mark.parametrize("use_attn", [False, True])
def test_course_training_step_takes_the_whole_target(use_attn):
    torch.manual_seed(0)
    model = course_model(use_attn).train()
    src, lengths, tgt = random_batch()
    tgt[:, -1] = p2g.EOS_IDX
    assert torch.equal((src != p2g.PAD_IDX).sum(1), lengths)  # how the course computes the lengths
    criterion = torch.nn.CrossEntropyLoss(ignore_index=p2g.PAD_IDX)
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
        one = course_generate(model, src[i:i + 1, :n], greedy_next_token)
        assert one == batched[i][: len(one)]
        sampled = course_generate(model, src[i:i + 1, :n], lambda logits: nucleus_sampling(logits, p=0.8))
        assert all(0 <= t < 10 for t in sampled)
        tiny_p = course_generate(model, src[i:i + 1, :n], lambda logits: nucleus_sampling(logits, p=1e-6))
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
    encoder = Encoder(12, 16, p2g.PAD_IDX, 0.0).eval()
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
        p2g.read_pairs(str(path))


def test_damaged_checkpoint_is_a_one_line_error(trained_tiny, tmp_path):
    model, _ = trained_tiny
    path = tmp_path / "damaged.pt"
    torch.save({"kind": training.KIND, "config": {"hidden_size": 32, "dropout": 0.0, "use_attn": False},
                "src_vocab": ["a"] * 29, "tgt_vocab": ["b"] * 24, "model": model.state_dict(), "epoch": 1,
                "val_cer": 0.5}, path)
    with pytest.raises(training.InputError, match="damaged.pt: damaged checkpoint"):
        training.load_checkpoint(str(path), torch.device("cpu"))


# ---- spell -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spell_checkpoint(trained_tiny, tmp_path_factory):
    model, _ = trained_tiny
    path = tmp_path_factory.mktemp("spell") / "spell.pt"
    src_vocab = p2g.Vocabulary.build(p.split() for p, _ in WORDS)
    tgt_vocab = p2g.Vocabulary.build(w for _, w in WORDS)
    config = training.TrainConfig(use_attn=True, hidden_size=32, dropout=0.0)
    training.save_checkpoint(str(path), model, config, src_vocab, tgt_vocab, epoch=8, val_cer=0.0, val_wer=0.0)
    return str(path)


def parse_spell_line(line):
    phonemes, *hyps = line.split("\t")
    return phonemes, [(h.rsplit(" ", 1)[0], float(h.rsplit(" ", 1)[1])) for h in hyps]


def spell(*args, stdin=None):
    code, stdout, err = run_script("hw2-q3.py", "spell", *args, stdin=stdin)
    return code, stdout.splitlines(), err


def test_spell_gives_k_best_spellings_with_probabilities(spell_checkpoint):
    code, lines, _ = spell("--checkpoint_name", spell_checkpoint, "--k", "3", "k æ t", "d ɔ ɡ")
    assert code == 0 and len(lines) == 2
    for line, phonemes in zip(lines, ["k æ t", "d ɔ ɡ"]):
        got, hyps = parse_spell_line(line)
        assert got == phonemes and 1 <= len(hyps) <= 3
        probs = [p for _, p in hyps]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        assert len({w for w, _ in hyps}) == len(hyps)
    assert parse_spell_line(lines[0])[1][0][0] == "cat"  # a training word comes first
    _, five, _ = spell("--checkpoint_name", spell_checkpoint, "k æ t")
    assert 3 < len(parse_spell_line(five[0])[1]) <= 5  # the default k is 5


def test_spell_reads_stdin_and_skips_empty_lines(spell_checkpoint):
    code, lines, _ = spell("--checkpoint_name", spell_checkpoint, "--k", "2", stdin="k æ t\n\n   \nm aʊ s\n".encode())
    assert code == 0 and [parse_spell_line(line)[0] for line in lines] == ["k æ t", "m aʊ s"]
    assert all(len(parse_spell_line(line)[1]) <= 2 for line in lines)


def test_spell_warns_about_unknown_phonemes(spell_checkpoint):
    code, lines, err = spell("--checkpoint_name", spell_checkpoint, "k æ ʘ t")
    assert code == 0 and "ʘ" in err and "warning" in err and "Traceback" not in err
    assert parse_spell_line(lines[0])[0] == "k æ ʘ t"


def test_beam_search_never_returns_more_than_k_hypotheses(trained_tiny):
    model, dataset = trained_tiny
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    for found in decoding.beam_search(model, src, lengths, max_len=2, beam_size=3):  # max_len cuts every beam
        assert 1 <= len(found) <= 3


# ---- the strong model: presets, deeper encoder, ensembles ---------------------------------------

def test_train_config_rejects_values_out_of_their_domain():
    for bad in ({"dropout": 1.0}, {"hidden_size": 7}, {"input_feed": True}, {"lr": float("nan")}, {"select_on": "bleu"}):
        with pytest.raises(training.InputError, match=next(iter(bad))):
            training.TrainConfig(**bad).check()
    with pytest.raises(training.InputError, match="unknown field 'colour'"):
        training.TrainConfig.from_dict({"colour": 1})


def test_two_layer_encoder_hands_the_top_layer_to_the_decoder():
    torch.manual_seed(0)
    encoder = Encoder(12, 16, p2g.PAD_IDX, 0.0, num_layers=2).eval()
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
    other = build_model(training.TrainConfig(use_attn=True, hidden_size=32, dropout=0.0),
                        model.encoder.embedding.num_embeddings, model.decoder.tgt_vocab_size).eval()
    mixed = decoding.beam_search([model, other], src, lengths, max_len=12, beam_size=1)
    lp_model, _ = decoding.gold_log_probs(model, dataset, batch_size=12)
    lp_other, _ = decoding.gold_log_probs(other, dataset, batch_size=12)
    lp_mixed, _ = decoding.gold_log_probs([model, other], dataset, batch_size=12)
    torch.testing.assert_close(lp_mixed, (lp_model + lp_other) / 2)
    assert mixed != decoding.beam_search(other, src, lengths, max_len=12, beam_size=1)


def test_lengths_are_binned_once_for_sources_and_spellings():
    examples = [{"phonemes": "k æ t", "gold": "cat", "pred": "kat"},          # 3 phonemes, 1 edit / 3
                {"phonemes": "d ɔ ɡ z", "gold": "dogs", "pred": "dogs"},      # 4 phonemes, 0 / 4
                {"phonemes": "h ɔː s ɪ z", "gold": "horses", "pred": "hosses"}]  # 5 phonemes, 1 / 6
    rows = diagnostics.cer_by_source_length(examples)
    assert rows == [{"lengths": "1-4", "words": 2, "cer": pytest.approx(1 / 7), "wer": pytest.approx(1 / 2)},
                    {"lengths": "5-6", "words": 1, "cer": pytest.approx(1 / 6), "wer": 1.0}]
    by_gold = metrics.by_length(["kat", "dogs", "hosses"], ["cat", "dogs", "horses"], [3, 4, 6])
    assert [r["lengths"] for r in by_gold] == ["1-4", "5-6"]


def test_strong_style_checkpoint_tests_with_every_decoding(tiny_corpus, tmp_path):
    ckpt, out = tmp_path / "strong.pt", tmp_path / "results"
    record = tiny_train(tiny_corpus, ckpt, use_attn=True, hidden_size=16, enc_layers=2, label_smoothing=0.1,
                        select_on="wer", lr_schedule="cosine", n_epochs=3)
    saved = torch.load(ckpt, weights_only=True)["config"]
    assert (saved["enc_layers"], saved["label_smoothing"], saved["select_on"]) == (2, 0.1, "wer")
    assert record["best_val_wer"] == min(record["history"]["val_wer"])
    common = ["--data_dir", tiny_corpus, "--out_dir", out, "--checkpoint_name", ckpt]
    for flags, decodings in (([], ["greedy"]), (["--topp", "0.8"], ["topp0.8"]),
                             (["--beam_size", "1", "3"], ["beam1", "beam3"])):
        assert run_script("hw2-q3.py", "test", *flags, *common)[0] == 0
        for d in decodings:
            result = json.loads((out / f"strong-test-{d}.json").read_text())
            preds, golds = [e["pred"] for e in result["examples"]], [e["gold"] for e in result["examples"]]
            assert (result["cer"], result["wer"]) == metrics.cer_wer(preds, golds)


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
    tiny_train(tiny_corpus, ckpt, use_attn=True, input_feed=True, hidden_size=16, n_epochs=2, dropout=0.3)
    model, src_vocab, tgt_vocab, saved = training.load_checkpoint(str(ckpt), torch.device("cpu"))
    assert saved["config"].input_feed is True and model.decoder.input_feed
    dataset = p2g.Seq2SeqDataset([(p.split(), w) for p, w in WORDS], src_vocab, tgt_vocab)
    src, lengths, _, _ = dataset.batch(torch.arange(len(dataset)))
    greedy = decoding.decode(model, src, lengths, max_len=12)
    for row, found in zip(greedy.tolist(), decoding.beam_search(model, src, lengths, max_len=12, beam_size=1)):
        assert found[0][0] == (row[: row.index(p2g.EOS_IDX) + 1] if p2g.EOS_IDX in row else row)
    beams = decoding.beam_search(model, src, lengths, max_len=12, beam_size=3)
    tgt = torch.tensor([[p2g.SOS_IDX] + beams[0][0][0]])
    with torch.no_grad():
        logits, _ = model(src[:1, : lengths[0]], lengths[:1], tgt)
    expected = torch.log_softmax(logits, -1)[0].gather(1, tgt[0, 1:, None]).sum().item()
    assert beams[0][0][1] == pytest.approx(expected, abs=1e-4)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_earlier_best_checkpoint(tiny_corpus, tmp_path, monkeypatch):
    losses = iter([1.0, float("nan")])
    real = training.train_epoch
    monkeypatch.setattr(training, "train_epoch", lambda *a, **k: (real(*a, **k), next(losses))[1])
    ckpt = tmp_path / "m.pt"
    record = tiny_train(tiny_corpus, ckpt, use_attn=True, hidden_size=16, n_epochs=4)
    assert record["status"] == "diverged" and record["history"]["epoch"] == [1] and record["best_epoch"] == 1
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 1 and all(torch.isfinite(t).all() for t in saved["model"].values())
    training.artefacts.save_json(record, tmp_path / "m-train.json")  # strict JSON: nothing non-finite in the record
    with pytest.raises(training.InputError, match="non-finite"):
        training.artefacts.save_json({"loss": float("nan")}, tmp_path / "x.json")


def test_a_byte_order_mark_is_not_part_of_the_first_phoneme(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffk æ t\tcat\r\nd ɔ ɡ\tdog\r\n".encode("utf-8"))
    assert p2g.read_pairs(str(path)) == [(["k", "æ", "t"], "cat"), (["d", "ɔ", "ɡ"], "dog")]


def test_a_substituted_consonant_has_its_own_error_category():
    assert diagnostics.error_category("forse", "force") == "one consonant substituted"
    assert diagnostics.error_category("glossel", "glossal") == "vowel spelling only"
    assert diagnostics.error_category("Cat", "cat") == "capitalisation"
