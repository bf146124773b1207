"""Training options beyond the assignment, each reaching hw2-q3.py's train() as an argument: decoder
dropout after the attention, deeper encoders, input feeding, a cosine schedule, selection on WER and
length bucketing. The study uses them; so does the report's dropout-site ablation:

    python -m beyond.train --use_attn --dropout_site output --seed 43 --checkpoint_name runs/x.pt
    python -m beyond.train --use_attn --bucket 50        # faster epochs, other (worse) numbers

Every other flag is hw2-q3.py's; records and figures go where hw2-q3.py train puts them.
"""
import argparse
from inspect import signature

import torch

from beyond import q3
from models import Decoder, Encoder, reshape_state
from utils import in_range, run


def default(function, name):
    """The default of a parameter, written once where it acts."""
    return signature(function).parameters[name].default


EXTRAS = {  # field -> (default, argparse keywords): the options, written once
    "dropout_site": (default(Decoder, "dropout_site"), {
        "choices": ["lstm", "output"],
        "help": "the decoder's second dropout before the attention (the assignment's reading) or "
                "after"}),
    "enc_layers": (default(Encoder, "num_layers"), {"type": in_range(int, 1),
                                                    "help": "encoder BiLSTM layers"}),
    "input_feed": (False, {"action": "store_true", "help": "feed the previous attentional state "
                           "to the decoder's LSTM (Luong et al. 2015); needs --use_attn"}),
    "lr_schedule": (default(q3.train, "lr_schedule"), {"choices": ["none", "cosine"],
                                                       "help": "learning-rate schedule"}),
    "select_on": (default(q3.train, "select_on"), {
        "choices": ["cer", "wer"],
        "help": "keep the epoch of the lowest validation CER, or WER (ties: CER)"}),
    "bucket": (0, {"type": in_range(int, 0), "help": "sort the words by source length within "
                   "pools of this many batches (0: off): less padding, other batches and numbers"}),
}


class InputFeedDecoder(Decoder):
    """The decoder with input feeding: the previous step's attentional state s~ enters the LSTM
    beside the embedding, so the LSTM runs one step at a time. Its state is (h, c, s~), each
    (1, B, H)."""

    def __init__(self, hidden_size, tgt_vocab_size, attn, padding_idx, dropout, **options):
        rng = torch.get_rng_state()
        super().__init__(hidden_size, tgt_vocab_size, attn, padding_idx, dropout, **options)
        # the LSTM reads [embedding; s~], 2H wide. Drawn as Decoder draws its own, right after the
        # embedding: the initial weights of the committed input-feeding runs
        torch.set_rng_state(rng)
        self.embedding.reset_parameters()  # the same draws again
        self.lstm = torch.nn.LSTM(2 * hidden_size, hidden_size, batch_first=True)

    def forward(self, tgt, dec_state, encoder_outputs, src_lengths, keys=None,
                return_weights=False):
        if dec_state[0].shape[0] == 2:
            dec_state = reshape_state(dec_state)
        if tgt.size(1) > 1:
            tgt = tgt[:, :-1]
        emb = self.dropout(self.embedding(tgt))
        keys = self.attn.W_h(encoder_outputs) if keys is None else keys
        h, c = dec_state[:2]
        feed = (dec_state[2] if len(dec_state) > 2
                else emb.new_zeros(1, emb.size(0), self.hidden_size))
        steps = []
        for t in range(emb.size(1)):
            out, (h, c) = self.lstm(torch.cat([emb[:, t:t + 1], feed.transpose(0, 1)], dim=-1),
                                    (h, c))
            # (B, 1, H), (B, 1, S)
            steps.append(self.attend(out, encoder_outputs, src_lengths, keys))
            feed = steps[-1][0].transpose(0, 1)  # (1, B, H)
        outputs, weights = (torch.cat(parts, dim=1) for parts in zip(*steps))
        return (outputs, (h, c, feed), weights) if return_weights else (outputs, (h, c, feed))


def bucketed(pool):
    """Batches of words of about one source length: the shuffled words sorted by source length
    within pools of `pool` batches, cut into batches, and the batches shuffled."""
    def batches(dataset, batch_size, rng):
        order, chunks = torch.randperm(len(dataset), generator=rng), []
        for part in order.split(batch_size * pool):
            chunks += part[torch.argsort(dataset.src_lengths[part], stable=True)].split(batch_size)
        return [chunks[i] for i in torch.randperm(len(chunks), generator=rng).tolist()]
    return batches


def options(config):
    """hw2-q3.train_run's keyword arguments for the options config asks for."""
    return {"decoder_class": InputFeedDecoder if config.get("input_feed") else Decoder,
            "batches": bucketed(config["bucket"]) if config.get("bucket") else None}


def load_checkpoint(path, device):
    """hw2-q3's loader, with the decoder the checkpoint was trained with."""
    return q3.load_checkpoint(path, device, lambda config: options(config)["decoder_class"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, (default, how) in EXTRAS.items():
        p.add_argument(f"--{name}", **({"default": default} if "action" not in how else {}), **how)
    extra, rest = p.parse_known_args(argv)
    args = q3.parse_args(["train", *rest])
    if extra.input_feed and not args.use_attn:
        p.error("argument --input_feed: needs --use_attn")
    return q3.train_mode(args, q3.get_device(args.device), extra=vars(extra),
                         **options(vars(extra)))


if __name__ == "__main__":
    run(main)
