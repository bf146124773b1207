"""Q3 data: the P2G TSV files, vocabularies and padded batches.

The course skeleton's names and behaviour; beside them, what hw2-q3.py uses: Vocabulary.build (ids
in sorted order), Seq2SeqDataset.batch / batches (padded tensors by index) and load_corpus (every
line checked; a loud ISLEX-based fallback when the course data are missing).
"""
import os
import random
import sys

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from utils import InputError

PAD_IDX, SOS_IDX, EOS_IDX, UNK_IDX = 0, 1, 2, 3
MAX_LENGTH = 20
SPECIALS = ["PAD", "SOS", "EOS", "UNK"]
SPLITS = ("train", "valid", "test")


class Vocabulary:
    """Symbols <-> ids: PAD 0, SOS 1, EOS 2, UNK 3, then each symbol in the order it was added."""

    def __init__(self):
        self.word2index = {}
        self.index2word = dict(enumerate(SPECIALS))

    @classmethod
    def build(cls, sequences):
        """The vocabulary of our runs: every symbol of sequences, in sorted order."""
        vocab = cls()
        vocab.add_sentence(sorted({s for seq in sequences for s in seq} - set(SPECIALS)))
        return vocab

    @classmethod
    def from_symbols(cls, symbols):
        """The vocabulary whose id i is symbols[i] (as a checkpoint stores it)."""
        vocab = cls()
        vocab.index2word = dict(enumerate(symbols))
        vocab.word2index = {s: i for i, s in enumerate(symbols) if i >= len(SPECIALS)}
        return vocab

    @property
    def vocab_size(self):
        return len(self.index2word)

    def __len__(self):
        return self.vocab_size

    @property
    def symbols(self):
        """Every symbol, by id: what a checkpoint stores."""
        return [self.index2word[i] for i in range(self.vocab_size)]

    def add_sentence(self, sentence):
        for word in sentence:
            self.add_word(word)

    def add_word(self, word):
        if word not in self.word2index:
            i = self.vocab_size
            self.word2index[word] = i
            self.index2word[i] = word

    def encode(self, symbols):
        """Ids of symbols; an unknown symbol is UNK."""
        return [self.word2index.get(s, UNK_IDX) for s in symbols]

    def string2tensor(self, word, add_specials=False):
        ids = self.encode(word)
        return torch.tensor([SOS_IDX] + ids + [EOS_IDX] if add_specials else ids, dtype=torch.long)

    def decode(self, ids):
        """Symbols up to the first EOS, special tokens left out."""
        ids = ids[:ids.index(EOS_IDX)] if EOS_IDX in ids else ids
        return [self.index2word[i] for i in ids if i >= len(SPECIALS)]

    def tensor2tokens(self, t):
        """The course's: every symbol of t but SOS and EOS."""
        return [self.index2word[i] for i in t.tolist() if i not in (SOS_IDX, EOS_IDX)]

    def tensor2string(self, t):
        return "".join(self.tensor2tokens(t))


def read_lines(path):
    """The lines of a UTF-8 file (a byte-order mark is no phoneme); an InputError naming the file,
    or the line of the first byte that is not UTF-8."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    try:
        return raw.decode("utf-8-sig").split("\n")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 (byte {raw[e.start]:#04x})") from None


def read_tsv_corpus(path, max_length=None, src_tokenizer=list, tgt_tokenizer=list):
    """[(src tokens, tgt tokens)] from lines `SOURCE<TAB>TARGET` (the course's reader), pairs longer
    than max_length left out. Every line is checked: an InputError names the file and the line."""
    pairs = []
    for lineno, line in enumerate(read_lines(path), 1):
        line = line.strip(" \r\n")  # as the course; a tab at either end stays, to be reported
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise InputError(f"{path}:{lineno}: expected PHONEMES<TAB>SPELLING, "
                             f"found {len(parts) - 1} tabs")
        src, tgt = src_tokenizer(parts[0]), tgt_tokenizer(parts[1])
        if not src or not tgt:
            raise InputError(f"{path}:{lineno}: empty {'phonemes' if not src else 'spelling'}")
        if max_length is None or (len(src) <= max_length and len(tgt) <= max_length):
            pairs.append((src, tgt))
    if not pairs:
        raise InputError(f"{path}: no examples (empty file)")
    return pairs


def pad_sequences(seqs, padding_idx=PAD_IDX):
    """List of id lists -> (padded LongTensor (N, max_len), lengths LongTensor (N,))."""
    tensors = [torch.tensor(s, dtype=torch.long) for s in seqs]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return pad_sequence(tensors, batch_first=True, padding_value=padding_idx), lengths


class Seq2SeqDataset(Dataset):
    """One split: items (src_ix, tgt_ix), the target as SOS spelling EOS; vocabularies built from
    the pairs in order of first appearance when none are given (the course's dataset).

    data_tsv is a TSV path or a list of (phonemes, spelling) pairs. The whole split is also held as
    padded tensors src (N, S) and tgt (N, T) with their lengths, batched by index with batch()."""

    def __init__(self, data_tsv, src_vocab=None, tgt_vocab=None, src_tokenizer=str.split,
                 tgt_tokenizer=list, max_length=None):
        if isinstance(data_tsv, (str, os.PathLike)):
            data_tsv = read_tsv_corpus(data_tsv, max_length, src_tokenizer, tgt_tokenizer)
        self.pairs = pairs = list(data_tsv)
        self.src_vocab, self.tgt_vocab = src_vocab or Vocabulary(), tgt_vocab or Vocabulary()
        for vocab, side, given in ((self.src_vocab, 0, src_vocab), (self.tgt_vocab, 1, tgt_vocab)):
            if given is None:
                for pair in self.pairs:
                    vocab.add_sentence(pair[side])
        self.src, self.src_lengths = pad_sequences([self.src_vocab.encode(p) for p, _ in pairs])
        self.tgt, self.tgt_lengths = pad_sequences(
            [[SOS_IDX] + self.tgt_vocab.encode(w) + [EOS_IDX] for _, w in pairs])

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        return self.src[i, : self.src_lengths[i]], self.tgt[i, : self.tgt_lengths[i]]

    @property
    def golds(self):
        """The gold spellings, as strings."""
        return ["".join(w) for _, w in self.pairs]

    def batch(self, idx):
        """Examples idx: (src (B, S), src_lengths, tgt (B, T), tgt_lengths), padding trimmed."""
        sl, tl = self.src_lengths[idx], self.tgt_lengths[idx]
        return self.src[idx, : int(sl.max())], sl, self.tgt[idx, : int(tl.max())], tl

    def batches(self, batch_size, generator=None, by_length=False):
        """Index tensors of batch_size examples: shuffled with generator, sorted by source length
        with by_length (decoding), else in order."""
        if generator is not None:
            order = torch.randperm(len(self), generator=generator)
        elif by_length:
            order = torch.argsort(self.src_lengths, stable=True)
        else:
            order = torch.arange(len(self))
        return list(order.split(batch_size))


def collate_samples(samples, padding_idx):
    """[(src, tgt)] -> (X (B, S_max), Y (B, T_max)), padded with padding_idx (the course's)."""
    X = pad_sequence([x for x, _ in samples], batch_first=True, padding_value=padding_idx)
    Y = pad_sequence([y for _, y in samples], batch_first=True, padding_value=padding_idx)
    return X, Y


def build_datasets(corpus, splits=SPLITS):
    """(src_vocab, tgt_vocab, {split: dataset}), the vocabularies from the training split."""
    src_vocab = Vocabulary.build(p for p, _ in corpus["train"])
    tgt_vocab = Vocabulary.build(w for _, w in corpus["train"])
    sets = {s: Seq2SeqDataset(corpus[s], src_vocab, tgt_vocab) for s in splits}
    return src_vocab, tgt_vocab, sets


# ---- where the corpus comes from: data/<split>.tsv, or the ISLEX fallback ----------------------

ISLEX_SOURCE = "islex (pysle)"
FALLBACK_WARNING = ("the course P2G data are missing ({path} not found): using an English "
                    "IPA->spelling set built from the ISLEX lexicon in pysle, whose numbers are "
                    "NOT comparable with the course's; put train/valid/test.tsv in data/")


def load_corpus(data_dir, splits=SPLITS, fallback=False):
    """({split: [(phonemes: list of str, spelling: str)]}, source) from data_dir/<split>.tsv; with
    fallback (no --data_dir given) and no data_dir/train.tsv, the ISLEX set, with a loud warning."""
    if fallback and not os.path.exists(os.path.join(data_dir, "train.tsv")):
        warning = FALLBACK_WARNING.format(path=os.path.join(data_dir, "train.tsv"))
        print(f"{'=' * 78}\nWARNING: {warning}\n{'=' * 78}", file=sys.stderr)
        corpus = islex_corpus()
        return {s: corpus[s] for s in splits}, ISLEX_SOURCE
    return {s: read_pairs(os.path.join(data_dir, f"{s}.tsv")) for s in splits}, data_dir


def read_pairs(path):
    """[(phonemes: list of str, spelling: str)] from a P2G TSV file, every line checked."""
    return read_tsv_corpus(path, src_tokenizer=str.split, tgt_tokenizer=str.strip)


def islex_entries():
    """(headword, phonemes) for each single-word entry of the ISLEX lexicon shipped in pysle (MIT
    licence): stress and syllable marks stripped, every pronunciation in the lexicon's order."""
    import pysle

    with open(os.path.join(os.path.dirname(pysle.__file__), "data", "ISLEdict.txt"),
              encoding="utf-8") as f:
        for line in f:
            head, _, rest = line.partition("(")
            fields = rest.split("#")
            if len(fields) != 3:
                continue  # multi-word entries have more '#' fields
            phones = [p.replace("ˈ", "").replace("ˌ", "") for p in fields[1].split() if p != "."]
            yield head.strip(), [p for p in phones if p]


def islex_corpus(seed=42, sizes=(10_000, 1_000, 1_000)):
    """An English IPA -> spelling set from ISLEX: lowercase ASCII alphabetic words only, the first
    pronunciation of each, a fixed seeded split into train / valid / test."""
    seen, pairs = set(), []
    for head, phones in islex_entries():
        if head.isalpha() and head.islower() and head.isascii() and head not in seen and phones:
            seen.add(head)
            pairs.append((phones, head))
    random.Random(seed).shuffle(pairs)
    ends = [sum(sizes[:i + 1]) for i in range(len(sizes))]
    return {split: pairs[end - n:end] for split, n, end in zip(SPLITS, sizes, ends)}
