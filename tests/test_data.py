"""data.py is the course's: its hw2-q3.py's data calls, exactly as the course writes them, run on our file
beside our models.py; our own scripts' richer functions agree with them. (Malformed files: the bad-input table.)

Mistakes tried (python tests/mutants.py), each caught by the test named:
- data.py: `order = torch.randperm(len(self), generator=rng)` -> `order = torch.randperm(len(self))` | test_the_default_batches_are_one_shuffle_split_in_order
- data.py: `self.tgt_vocab.encode(w) + [EOS_IDX] for _, w in self.pairs]` -> `self.tgt_vocab.encode(w) for _, w in self.pairs]` | test_the_padded_batch_equals_the_course_collate_of_the_same_words
- data.py: `ix = [SOS_IDX] + ix + [EOS_IDX]` -> `ix = [SOS_IDX] + ix` | test_the_course_dataset_reads_characters_and_skips_long_pairs
- data.py: `(len(src_toks) > max_length or len(tgt_toks) > max_length)` -> `(len(src_toks) >= max_length or len(tgt_toks) >= max_length)` | test_the_course_dataset_reads_characters_and_skips_long_pairs
- data.py: `ids = ids[:ids.index(EOS_IDX)] if EOS_IDX in ids else ids` -> `ids = ids` | test_unknown_symbols_encode_as_unk_and_decoding_stops_at_eos
- data.py: `self.word2index.get(s, UNK_IDX)` -> `self.word2index.get(s, PAD_IDX)` | test_unknown_symbols_encode_as_unk_and_decoding_stops_at_eos
"""
from functools import partial

import torch
from torch.utils.data import DataLoader

from data import EOS_IDX, PAD_IDX, SOS_IDX, UNK_IDX, Seq2SeqDataset, Vocabulary, collate_samples  # the course's
import data
from conftest import PAIRS, WORDS, vocabularies, write_corpus
from models import BahdanauAttention, Decoder, Encoder, Seq2Seq


def write_tsv(path, words=WORDS[:5]):
    write_corpus(path.parent, words, splits=[path.stem])
    return str(path)


def test_the_course_hw2_q3_data_calls_train_our_models(tmp_path):
    train_dataset = Seq2SeqDataset(write_tsv(tmp_path / "train.tsv"))
    src_vocab, tgt_vocab = train_dataset.src_vocab, train_dataset.tgt_vocab
    val_dataset = Seq2SeqDataset(write_tsv(tmp_path / "valid.tsv", WORDS[:2]), src_vocab, tgt_vocab)
    loader = DataLoader(train_dataset, batch_size=2, shuffle=True, collate_fn=partial(collate_samples, padding_idx=PAD_IDX))
    torch.manual_seed(0)
    encoder = Encoder(src_vocab.vocab_size, 16, PAD_IDX, 0.3)
    model = Seq2Seq(encoder, Decoder(16, tgt_vocab.vocab_size, BahdanauAttention(16), PAD_IDX, 0.3))
    criterion = torch.nn.CrossEntropyLoss(ignore_index=PAD_IDX)
    for src, tgt in loader:
        src_lengths = (src != PAD_IDX).sum(1)
        outputs, _ = model(src, src_lengths, tgt)
        loss = criterion(outputs.reshape(-1, outputs.shape[-1]), tgt[:, 1:].reshape(-1))
        loss.backward()
    assert torch.isfinite(loss)
    src, tgt = next(iter(DataLoader(val_dataset, batch_size=1, shuffle=False)))
    assert tgt[0, 0] == SOS_IDX and tgt[0, -1] == EOS_IDX
    assert tgt_vocab.tensor2string(tgt[0]) == "".join(val_dataset.pairs[0][1]) == "cat"


def test_vocabulary_ids_follow_first_appearance_after_the_four_specials():
    v = Vocabulary()
    v.add_sentence("cab")
    v.add_word("a")
    assert v.word2index == {"c": 4, "a": 5, "b": 6} and v.vocab_size == 7
    assert [v.index2word[i] for i in range(4)] == ["PAD", "SOS", "EOS", "UNK"]
    assert v.string2tensor("cz", add_specials=True).tolist() == [SOS_IDX, 4, UNK_IDX, EOS_IDX]
    assert v.tensor2tokens(torch.tensor([SOS_IDX, 5, 6, EOS_IDX])) == ["a", "b"]


def test_the_course_dataset_reads_characters_and_skips_long_pairs(tmp_path):
    dataset = Seq2SeqDataset(write_tsv(tmp_path / "t.tsv"), max_length=4)
    assert dataset.pairs[0] == (["k", "æ", "t"], ["c", "a", "t"])
    assert ["".join(w) for _, w in dataset.pairs] == ["cat", "dog", "fish", "bird"]  # mouse: 5 letters > 4
    src, tgt = dataset[0]
    assert src.tolist() == [4, 5, 6] and tgt.tolist() == [SOS_IDX, 4, 5, 6, EOS_IDX]


def test_collate_samples_pads_to_the_longest(tmp_path):
    dataset = Seq2SeqDataset(write_tsv(tmp_path / "t.tsv"))
    X, Y = collate_samples([dataset[0], dataset[4]], padding_idx=PAD_IDX)
    assert X.shape == (2, 3) and Y.shape == (2, 7) and Y[0, 5:].tolist() == [PAD_IDX, PAD_IDX]


def test_our_sorted_vocabulary_round_trips_through_its_symbols():
    v = data.Vocabulary.build(["cab", "bad"])
    assert v.symbols == ["PAD", "SOS", "EOS", "UNK", "a", "b", "c", "d"]
    w = data.Vocabulary.from_symbols(v.symbols)
    assert w.word2index == v.word2index and w.index2word == v.index2word


def test_unknown_symbols_encode_as_unk_and_decoding_stops_at_eos():
    v = data.Vocabulary.build(["cab"])
    assert v.encode("cz") == [v.word2index["c"], UNK_IDX]
    assert v.decode([v.word2index["a"], EOS_IDX, v.word2index["b"]]) == ["a"]


def test_the_padded_batch_equals_the_course_collate_of_the_same_words():
    dataset = Seq2SeqDataset(PAIRS, *vocabularies())
    idx = torch.tensor([4, 0, 10])
    src, lengths, tgt, _ = dataset.batch(idx)
    X, Y = collate_samples([dataset[i] for i in idx.tolist()], PAD_IDX)
    assert torch.equal(X, src) and torch.equal(Y, tgt) and lengths.tolist() == [3, 3, 4]


def test_a_byte_order_mark_and_crlf_line_ends_are_not_part_of_the_words(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffk æ t\tcat\r\nd ɔ ɡ\tdog\r\n".encode("utf-8"))
    assert data.read_pairs(str(path)) == [(["k", "æ", "t"], "cat"), (["d", "ɔ", "ɡ"], "dog")]


def test_the_default_batches_are_one_shuffle_split_in_order():
    """What the committed runs were trained on: the random generator's permutation of the words (torch's
    randperm, seed 1, written out), cut into batches in its order."""
    got = Seq2SeqDataset(PAIRS * 3).batches(4, rng=torch.Generator().manual_seed(1))
    assert [b.tolist() for b in got] == [[13, 25, 34, 14], [35, 18, 17, 26], [15, 5, 24, 4], [16, 30, 19, 27],
                                         [9, 6, 20, 23], [2, 10, 7, 28], [8, 32, 0, 11], [33, 12, 1, 22],
                                         [21, 3, 31, 29]]
