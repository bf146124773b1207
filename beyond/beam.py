"""Beam search on the test set: CER/WER of the best hypothesis, the k-best oracle WER (the share
of words none of whose k best distinct spellings is right; field wer_at_k), and how many wrong words
are search errors; with --plot_attn, attention heatmaps.

    python -m beyond.beam --checkpoint_name attn.pt --beam_size 1 3 5 10 --plot_attn 6
"""
import argparse
import os
import time

from beyond import decoding, diagnostics, q3
from beyond.train import load_checkpoint
from data import Seq2SeqDataset
from utils import InputError, in_range, run, save_json

positive = in_range(int, 1)


def test_beam(model, test_set, beam_size, args, base):
    """One beam size: its record, written to <out_dir>/<checkpoint>-test-beam<size>.json."""
    t0 = time.time()
    out = decoding.evaluate(model, test_set, q3.EVAL_BATCH, base["max_len"], beam_size,
                            args.length_penalty)
    seconds, golds = time.time() - t0, test_set.golds
    hyps = [[w for w, _, _ in h] for h in out["nbest"]]
    topk = [[h[j] if j < len(h) else "" for h in hyps] for j in range(args.k)]
    record = dict(base, decoding=f"beam{beam_size}", beam_size=beam_size,
                  length_penalty=args.length_penalty,
                  cer=out["cer"], wer=out["wer"], **q3.intervals(out["preds"], golds),
                  wer_at_k=sum(all(s[i] != g for s in topk)
                               for i, g in enumerate(golds)) / len(golds),
                  decode_seconds=round(seconds, 3))
    record.update(diagnostics.search_errors(model, test_set, out["preds"], golds,
                                            [h[0][2] for h in out["nbest"]],
                                            q3.EVAL_BATCH, args.length_penalty))
    print(f"beam {beam_size}: Test CER: {record['cer']:.4f}, Test WER: {record['wer']:.4f}, "
          f"{args.k}-best oracle WER: {record['wer_at_k']:.4f} ({seconds:.1f} s); of "
          f"{record['n_wrong']} wrong words {record['search_errors']} are search errors, "
          f"{record['model_errors']} model errors")
    record["examples"] = [{"phonemes": " ".join(p), "gold": g, "pred": h[0], "nbest": h[:args.k]}
                          for (p, _), g, h in zip(test_set.pairs, golds, hyps)]
    return save_json(record, f"{args.stem}-test-beam{beam_size}.json")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint_name", default="attn.pt", help="the checkpoint decoded")
    p.add_argument("--beam_size", type=positive, nargs="+", default=[1, 3, 5, 10],
                   help="beam sizes")
    p.add_argument("--k", type=positive, default=3,
                   help="best distinct hypotheses per word for the k-best oracle WER")
    p.add_argument("--length_penalty", type=in_range(float, 0.0, 5.0), default=1.0,
                   help="score = log-probability / length**length_penalty")
    p.add_argument("--plot_attn", type=in_range(int, 0), default=0, metavar="N",
                   help="draw the attention weights of N test words")
    p.add_argument("--data_dir", default="data", help="folder with test.tsv")
    p.add_argument("--out_dir", default="runs/q3", help="where the records and figures go")
    args = p.parse_args(argv)
    model, src_vocab, tgt_vocab, ckpt = load_checkpoint(args.checkpoint_name, q3.get_device("cpu"))
    test_set = Seq2SeqDataset(q3.read_corpus(args.data_dir, ("test",))[0]["test"], src_vocab,
                              tgt_vocab)
    if args.plot_attn and not ckpt["config"]["use_attn"]:
        raise InputError(f"--plot_attn: {args.checkpoint_name} has no attention")
    if args.plot_attn > len(test_set):
        raise InputError(f"--plot_attn {args.plot_attn}: the test set has {len(test_set)} words")
    args.stem = os.path.join(args.out_dir,
                             os.path.splitext(os.path.basename(args.checkpoint_name))[0])
    base = {"checkpoint": args.checkpoint_name, "config": ckpt["config"],
            "best_epoch": ckpt["epoch"], "k": args.k, "max_len": ckpt["config"]["max_len"]}
    if args.plot_attn:
        words = diagnostics.plot_attention(model, test_set, src_vocab, tgt_vocab, args.plot_attn,
                                           base["max_len"], f"{args.stem}-attention")
        save_json({"checkpoint": args.checkpoint_name, "words": words},
                  f"{args.stem}-attention.json")
        print(f"attention figure: {args.stem}-attention.pdf and .png")
    for size in args.beam_size:
        print("wrote", test_beam(model, test_set, size, args, base))
    return 0


if __name__ == "__main__":
    run(main)
