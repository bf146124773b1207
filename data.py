"""Q3 data: the course skeleton's data.py, its given code kept; after it, what hw2-q3.py adds: the
vocabulary of our runs (sorted, stored in checkpoints), the split as padded tensors batched by
index, and load_corpus (every line checked; a loud ISLEX-based fallback when the course data are
missing).
Imports nothing of the project, so that it drops into the course's folder as it is."""
import os
import random
import sys

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

PAD_IDX = 0
SOS_IDX = 1
EOS_IDX = 2
UNK_IDX = 3
MAX_LENGTH = 20


class Vocabulary:
    def __init__(self):
        self.word2index = {}
        self.index2word = {0: "PAD", 1: "SOS", 2: "EOS", 3: "UNK"}

    @property
    def vocab_size(self):
        return len(self.index2word)

    def add_sentence(self, sentence):
        for word in sentence:
            self.add_word(word)

    def add_word(self, word):
        if word not in self.word2index:
            current_vocab_size = self.vocab_size
            self.word2index[word] = current_vocab_size
            self.index2word[current_vocab_size] = word

    def string2tensor(self, word, add_specials=False):

        ix = [
            self.word2index[x] if x in self.word2index else UNK_IDX for x in word
        ]
        if add_specials:
            ix = [SOS_IDX] + ix + [EOS_IDX]
        return torch.tensor(ix).long()

    def tensor2tokens(self, t):
        ix = []
        for i in t.tolist():
            if i != 1 and i != 2:
                ix.append(self.index2word[i])
        return ix

    def tensor2string(self, t):
        tokens = self.tensor2tokens(t)
        return "".join(tokens)

    # ---- ours: the vocabulary of our runs, as a checkpoint stores it ---------------------------

    @classmethod
    def build(cls, sequences):
        """Every symbol of sequences, in sorted order after the four specials."""
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

    def __len__(self):
        return self.vocab_size

    @property
    def symbols(self):
        """Every symbol, by id: what a checkpoint stores."""
        return [self.index2word[i] for i in range(self.vocab_size)]

    def encode(self, symbols):
        """Ids of symbols; an unknown symbol is UNK."""
        return [self.word2index.get(s, UNK_IDX) for s in symbols]

    def decode(self, ids):
        """Symbols up to the first EOS, special tokens left out."""
        ids = ids[:ids.index(EOS_IDX)] if EOS_IDX in ids else ids
        return [self.index2word[i] for i in ids if i >= len(SPECIALS)]


class Seq2SeqDataset(Dataset):
    """
    src_tokenizer and tgt_tokenizer defaults are designed with phoneme-to-grapheme
    in mind.
    """
    def __init__(
        self,
        data_tsv,
        src_vocab=None,
        tgt_vocab=None,
        src_tokenizer=str.split,
        tgt_tokenizer=list,
        max_length=None
    ):
        if isinstance(data_tsv, (str, os.PathLike)):  # ours: data_tsv may be a list of pairs too
            data_tsv = read_tsv_corpus(
                data_tsv,
                max_length=max_length,
                src_tokenizer=src_tokenizer,
                tgt_tokenizer=tgt_tokenizer
            )
        self.pairs = list(data_tsv)

        if src_vocab is not None:
            self.src_vocab = src_vocab
        else:
            self.src_vocab = Vocabulary()
            for p in self.pairs:
                self.src_vocab.add_sentence(p[0])

        if tgt_vocab is not None:
            self.tgt_vocab = tgt_vocab
        else:
            self.tgt_vocab = Vocabulary()
            for p in self.pairs:
                self.tgt_vocab.add_sentence(p[1])

        # ours: the whole split as padded tensors src (N, S), tgt (N, T) and lengths, for batch()
        self.src, self.src_lengths = pad_sequences(
            [self.src_vocab.encode(p) for p, _ in self.pairs])
        self.tgt, self.tgt_lengths = pad_sequences(
            [[SOS_IDX] + self.tgt_vocab.encode(w) + [EOS_IDX] for _, w in self.pairs])

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, idx):
        src = self.pairs[idx][0]
        tgt = self.pairs[idx][1]

        src_ix = self.src_vocab.string2tensor(src)
        tgt_ix = self.tgt_vocab.string2tensor(tgt, add_specials=True)
        return src_ix, tgt_ix

    # ---- ours: the gold spellings, and batches by index ----------------------------------------

    @property
    def golds(self):
        """The gold spellings, as strings."""
        return ["".join(w) for _, w in self.pairs]

    def batch(self, idx):
        """Examples idx: (src (B, S), src_lengths, tgt (B, T), tgt_lengths), padding trimmed."""
        sl, tl = self.src_lengths[idx], self.tgt_lengths[idx]
        return self.src[idx, : int(sl.max())], sl, self.tgt[idx, : int(tl.max())], tl

    def batches(self, batch_size, rng=None, by_length=False):
        """Index tensors of batch_size examples: shuffled with the random generator rng, sorted by
        source length with by_length (decoding), else in order."""
        if rng is not None:
            order = torch.randperm(len(self), generator=rng)
        elif by_length:
            order = torch.argsort(self.src_lengths, stable=True)
        else:
            order = torch.arange(len(self))
        return list(order.split(batch_size))


def read_tsv_corpus(path, max_length=None, src_tokenizer=list, tgt_tokenizer=list):
    # previous function readLangs takes two language labels and a split and
    # returns two vocab objects with nothing in them and a set of pairs
    # This one returns just a set of pairs based on the path

    # ours, instead of the given loop (which fails on a blank line with a bare traceback): every
    # line checked, a DataError naming the file and the line; a byte-order mark is no phoneme
    pairs = []
    for lineno, line in enumerate(read_lines(path), 1):
        line = line.strip(" \r\n")  # a tab at either end stays, to be reported
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}:{lineno}: expected PHONEMES<TAB>SPELLING, "
                            f"found {len(parts) - 1} tabs")
        src_toks, tgt_toks = src_tokenizer(parts[0]), tgt_tokenizer(parts[1])
        if not src_toks or not tgt_toks:
            raise DataError(f"{path}:{lineno}: empty {'phonemes' if not src_toks else 'spelling'}")
        if max_length is not None and (len(src_toks) > max_length or len(tgt_toks) > max_length):
            continue
        pairs.append((src_toks, tgt_toks))
    if not pairs:
        raise DataError(f"{path}: no examples (empty file)")
    return pairs


def collate_samples(samples, padding_idx):
    batch_size = len(samples)
    max_seq_length_x = max([x.shape[0] for x, _ in samples])
    max_seq_length_y = max([y.shape[0] for _, y in samples])
    X_shape = (batch_size, max_seq_length_x)
    y_shape = (batch_size, max_seq_length_y)
    X = torch.zeros(X_shape, dtype=torch.long).fill_(padding_idx)
    Y = torch.zeros(y_shape, dtype=torch.long).fill_(padding_idx)
    for i, (x, y) in enumerate(samples):
        seq_len_x = x.shape[0]
        seq_len_y = y.shape[0]
        X[i, :seq_len_x] = x
        Y[i, :seq_len_y] = y
    return X, Y


# ---- ours: reading the files, padding, the datasets of a run -----------------------------------

SPECIALS = ["PAD", "SOS", "EOS", "UNK"]
SPLITS = ("train", "valid", "test")


class DataError(ValueError):
    """A P2G file that cannot be read; the message names the file and the line. The scripts report
    it in one line, as utils.InputError."""


def read_lines(path):
    """The lines of a UTF-8 file; a DataError naming the file, or the line of the first byte that is
    not UTF-8."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: {e.strerror}") from None
    try:
        return raw.decode("utf-8-sig").split("\n")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte {raw[e.start]:#04x})") from None


def read_pairs(path):
    """[(phonemes: list of str, spelling: str)] from a P2G TSV file, every line checked."""
    return read_tsv_corpus(path, src_tokenizer=str.split, tgt_tokenizer=str.strip)


def pad_sequences(seqs, padding_idx=PAD_IDX):
    """List of id lists -> (padded LongTensor (N, max_len), lengths LongTensor (N,))."""
    tensors = [torch.tensor(s, dtype=torch.long) for s in seqs]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return pad_sequence(tensors, batch_first=True, padding_value=padding_idx), lengths


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
