"""The k most probable spellings of your own phoneme strings, with their probabilities (beam
search).

    python -m beyond.spell "k æ t" "f ə n ɛ t ɪ k s"     # or one string per line on standard input
"""
import argparse
import math
import sys

from beyond import decoding, q3
from beyond.train import load_checkpoint
from data import Seq2SeqDataset
from utils import InputError, atomic_write, in_range, run


def spell(model, src_vocab, tgt_vocab, words, k, max_len, length_penalty=1.0):
    """One line per word: its phonemes, a tab, then at most k spellings, each with its
    probability."""
    dataset = Seq2SeqDataset([(w, "?") for w in words], src_vocab, tgt_vocab)
    found = decoding.beam_search_dataset(model, dataset, q3.EVAL_BATCH, max_len, k, length_penalty)
    lines = []
    for w, hyps in zip(words, found):
        by_prob = sorted(((math.exp(lp), spelling) for spelling, lp, _ in hyps), reverse=True)[:k]
        lines.append("\t".join([" ".join(w)] + [f"{spelling} {p:.2f}" for p, spelling in by_prob]))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phonemes", nargs="*", metavar="PHONEMES",
                   help="space-separated IPA such as 'k æ t'")
    p.add_argument("--checkpoint_name", default="attn.pt", help="the checkpoint that spells")
    p.add_argument("--k", type=in_range(int, 1), default=5,
                   help="spellings per word (the beam size)")
    p.add_argument("--out", default=None, help="also write the lines to this file")
    args = p.parse_args(argv)
    given = args.phonemes or sys.stdin.read().splitlines()
    words = [line.split() for line in given if line.strip()]
    if not words:
        raise InputError("no phonemes given (arguments such as 'k æ t', or one string per line on "
                         "stdin)")
    model, src_vocab, tgt_vocab, ckpt = load_checkpoint(args.checkpoint_name, q3.get_device("cpu"))
    unknown = sorted({ph for w in words for ph in w if ph not in src_vocab.word2index})
    if unknown:
        print(f"warning: phonemes unknown to {args.checkpoint_name}, read as UNK: "
              f"{' '.join(unknown)}", file=sys.stderr)
    lines = spell(model, src_vocab, tgt_vocab, words, args.k, ckpt["config"]["max_len"])
    print("\n".join(lines))
    if args.out:
        atomic_write(args.out,
                     lambda f: f.write("".join(line + "\n" for line in lines).encode("utf-8")))
    return 0


if __name__ == "__main__":
    run(main)
