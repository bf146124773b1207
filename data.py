"""Q3 data: the P2G TSV files, vocabularies, and padded tensors batched by index."""
import os
import random
import sys

import torch
from torch.nn.utils.rnn import pad_sequence

import utils

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
SPLITS = ("train", "valid", "test")


class DataError(utils.InputError):
    """Bad input data; its message names the file and the line."""


class Vocabulary:
    """Symbols <-> ids, with PAD 0, SOS 1, EOS 2, UNK 3; unknown symbols map to UNK."""

    def __init__(self, symbols):
        self.itos = SPECIALS + sorted(set(symbols) - set(SPECIALS))
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @classmethod
    def build(cls, sequences):
        return cls(s for seq in sequences for s in seq)

    def __len__(self):
        return len(self.itos)

    def encode(self, symbols):
        return [self.stoi.get(s, UNK) for s in symbols]

    def decode(self, ids):
        """Symbols up to the first EOS, special tokens left out."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.itos[i])
        return out


def read_tsv_corpus(path):
    """[(phonemes: list of str, spelling: str)] from lines `PHONEMES<TAB>SPELLING`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    pairs = []
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        try:
            line = line.decode("utf-8").rstrip("\r")
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark is not part of the first phoneme
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{lineno}: not UTF-8 (byte {line[e.start]:#04x} at column {e.start + 1})") from None
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}:{lineno}: expected PHONEMES<TAB>SPELLING, found {len(parts) - 1} tabs")
        phonemes, spelling = parts[0].split(), parts[1].strip()
        if not phonemes or not spelling:
            side = "phonemes" if not phonemes else "spelling"
            raise DataError(f"{path}:{lineno}: empty {side}")
        pairs.append((phonemes, spelling))
    if not pairs:
        raise DataError(f"{path}: no examples (empty file)")
    return pairs


def pad_sequences(seqs, padding_idx=PAD):
    """List of id lists -> (padded LongTensor (N, max_len), lengths LongTensor (N,))."""
    tensors = [torch.tensor(s, dtype=torch.long) for s in seqs]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return pad_sequence(tensors, batch_first=True, padding_value=padding_idx), lengths


class Seq2SeqDataset:
    """One split held as padded tensors: src (N, S), tgt (N, T) = SOS spelling EOS, and their lengths."""

    def __init__(self, pairs, src_vocab, tgt_vocab):
        self.pairs = pairs
        self.src, self.src_lengths = pad_sequences([src_vocab.encode(p) for p, _ in pairs])
        self.tgt, self.tgt_lengths = pad_sequences([[SOS] + tgt_vocab.encode(w) + [EOS] for _, w in pairs])

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        return self.src[i, : self.src_lengths[i]], self.tgt[i, : self.tgt_lengths[i]]

    def batch(self, idx):
        """Examples idx as (src (B, S_max), src_lengths, tgt (B, T_max), tgt_lengths), padding trimmed."""
        sl, tl = self.src_lengths[idx], self.tgt_lengths[idx]
        return self.src[idx, : int(sl.max())], sl, self.tgt[idx, : int(tl.max())], tl

    def batches(self, batch_size, generator=None, by_length=False):
        """Index tensors: shuffled with generator, sorted by source length with by_length, else in order."""
        if generator is not None:
            order = torch.randperm(len(self), generator=generator)
        elif by_length:
            order = torch.argsort(self.src_lengths, stable=True)
        else:
            order = torch.arange(len(self))
        return list(order.split(batch_size))


def build_datasets(corpus, splits=SPLITS):
    """Vocabularies from the training split and a dataset per split: (src_vocab, tgt_vocab, {split: dataset})."""
    src_vocab = Vocabulary.build(p for p, _ in corpus["train"])
    tgt_vocab = Vocabulary.build(w for _, w in corpus["train"])
    return src_vocab, tgt_vocab, {s: Seq2SeqDataset(corpus[s], src_vocab, tgt_vocab) for s in splits}


def collate_samples(samples, padding_idx=PAD):
    """[(src, tgt)] -> (src, src_lengths, tgt, tgt_lengths), padded (the skeleton's collate function)."""
    src, src_lengths = pad_sequences([s.tolist() for s, _ in samples], padding_idx)
    tgt, tgt_lengths = pad_sequences([t.tolist() for _, t in samples], padding_idx)
    return src, src_lengths, tgt, tgt_lengths


def islex_path():
    import pysle

    return os.path.join(os.path.dirname(pysle.__file__), "data", "ISLEdict.txt")


def islex_entries():
    """(headword, phonemes) for each single-word entry of the ISLEX lexicon shipped in pysle (MIT licence):
    stress and syllable marks stripped, every pronunciation of a word in the lexicon's order."""
    with open(islex_path(), encoding="utf-8") as f:
        for line in f:
            head, _, rest = line.partition("(")
            fields = rest.split("#")
            if len(fields) != 3:
                continue  # multi-word entries have more '#' fields
            phones = [p.replace("ˈ", "").replace("ˌ", "") for p in fields[1].split() if p != "."]
            yield head.strip(), [p for p in phones if p]


def islex_words():
    """The lowercased alphabetic headwords of ISLEX: a list of real English words."""
    return {head.lower() for head, _ in islex_entries() if head.isalpha()}


def islex_corpus(seed=42, sizes=(10_000, 1_000, 1_000)):
    """An English IPA -> spelling set from ISLEX: lowercase ASCII alphabetic words only, the first
    pronunciation of each, a fixed seeded split into train / valid / test."""
    seen, pairs = set(), []
    for head, phones in islex_entries():
        if not head.isalpha() or not head.islower() or not head.isascii() or head in seen or not phones:
            continue
        seen.add(head)
        pairs.append((phones, head))
    random.Random(seed).shuffle(pairs)
    out, start = {}, 0
    for split, n in zip(SPLITS, sizes):
        out[split] = pairs[start:start + n]
        start += n
    return out


FALLBACK_WARNING = ("the course P2G data are missing ({path} not found): using an English IPA->spelling set "
                    "built from the ISLEX lexicon in pysle, whose numbers are NOT comparable with the course's; "
                    "put train/valid/test.tsv in data/")


def load_corpus(data_dir, splits=SPLITS, fallback=False):
    """({split: pairs}, source) for the splits asked for, from data_dir/<split>.tsv; with fallback (no
    --data_dir given) and no data_dir/train.tsv, the ISLEX set instead, with a loud warning.
    Raises DataError naming the file and line."""
    paths = {s: os.path.join(data_dir, f"{s}.tsv") for s in splits}
    if fallback and not os.path.exists(os.path.join(data_dir, "train.tsv")):
        print("=" * 78 + "\nWARNING: " + FALLBACK_WARNING.format(path=os.path.join(data_dir, "train.tsv")) +
              "\n" + "=" * 78, file=sys.stderr)
        corpus = islex_corpus()
        return {s: corpus[s] for s in splits}, ISLEX_SOURCE
    return {s: read_tsv_corpus(p) for s, p in paths.items()}, data_dir


ISLEX_SOURCE = "islex (pysle)"


def data_source(data_dir, fallback=False):
    """What load_corpus would read now, without reading it: data_dir, or the ISLEX fallback."""
    if fallback and not os.path.exists(os.path.join(data_dir, "train.tsv")):
        return ISLEX_SOURCE
    return data_dir
