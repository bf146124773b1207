"""Q3 modules: BiLSTM encoder, LSTM decoder, Bahdanau attention, and the Seq2Seq wrapper.

The course skeleton's classes and signatures, its forward() methods filled in; extras are keyword
arguments with defaults. Needs only torch, so that it drops into the course's folder as it is.
"""
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def reshape_state(state):
    """Bidirectional final state (2, B, H/2) x2 -> (1, B, H) x2, the directions side by side."""
    h_state, c_state = state
    new_h_state = torch.cat([h_state[:-1], h_state[1:]], dim=2)
    new_c_state = torch.cat([c_state[:-1], c_state[1:]], dim=2)
    return new_h_state, new_c_state


def sequence_mask(lengths, max_len=None):
    """(B,) lengths -> (B, max_len) boolean mask, True on real positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class BahdanauAttention(nn.Module):
    """e_ti = v' tanh(W_s s + W_h h_i); alpha = softmax over the real source positions;
    c = sum_i alpha_i h_i; s~ = tanh(W_out [c; s]). No biases, as in the assignment's equations.
    The query s is the decoder LSTM's output after it reads the previous character."""

    def __init__(self, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.W_s = nn.Linear(hidden_size, hidden_size, bias=False)
        self.W_h = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)
        self.W_out = nn.Linear(2 * hidden_size, hidden_size, bias=False)

    def forward(self, query, encoder_outputs, src_lengths, keys=None, return_weights=False):
        """query (B, Tq, H), encoder_outputs (B, S, H) -> attentional states (B, Tq, H) [, weights
        (B, Tq, S)]. keys: W_h h_i, computed once per batch by a caller decoding step by step."""
        keys = self.W_h(encoder_outputs) if keys is None else keys  # (B, S, H)
        scores = self.v(torch.tanh(self.W_s(query)[:, :, None] + keys[:, None])).squeeze(-1)
        mask = sequence_mask(src_lengths.to(scores.device), keys.size(1))  # (B, S)
        alpha = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), dim=-1)
        context = torch.bmm(alpha, encoder_outputs)  # (B, Tq, H)
        out = torch.tanh(self.W_out(torch.cat([context, query], dim=-1)))
        return (out, alpha) if return_weights else out


class Encoder(nn.Module):
    """Embedding -> dropout -> BiLSTM (H/2 per direction) -> dropout."""

    def __init__(self, src_vocab_size, hidden_size, padding_idx, dropout, num_layers=1):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(src_vocab_size, hidden_size, padding_idx=padding_idx)
        self.lstm = nn.LSTM(hidden_size, hidden_size // 2, num_layers=num_layers,
                            bidirectional=True, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src, lengths):
        """src (B, S), lengths (B,) -> outputs (B, S, H), zero past each length, and the final state
        (1, B, H) x2: the top layer's forward direction at the last real step beside its backward
        direction at step 0."""
        emb = self.dropout(self.embedding(src))
        if bool(sequence_mask(lengths, src.size(1)).all()):  # no padding: nothing to pack
            outputs, (h, c) = self.lstm(emb)
        else:
            packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            outputs, (h, c) = self.lstm(packed)  # h, c: (2 * num_layers, B, H/2)
            outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.size(1))
        return self.dropout(outputs), reshape_state((h[-2:], c[-2:]))


class Decoder(nn.Module):
    """Embedding -> dropout -> LSTM -> dropout -> [attention]. With dropout_site="output" the
    second dropout comes after the attention (the other reading of the assignment's sentence).

    Nothing feeds the attention output back into the LSTM, so with teacher forcing the LSTM runs
    over the whole target in one call and the attention is computed for every step at once."""

    def __init__(self, hidden_size, tgt_vocab_size, attn, padding_idx, dropout,
                 dropout_site="lstm", input_size=None):
        super().__init__()
        self.hidden_size = hidden_size
        self.tgt_vocab_size = tgt_vocab_size
        self.dropout_site = dropout_site
        self.embedding = nn.Embedding(tgt_vocab_size, hidden_size, padding_idx=padding_idx)
        self.lstm = nn.LSTM(input_size or hidden_size, hidden_size, batch_first=True)
        self.attn = attn
        self.dropout = nn.Dropout(dropout)

    def forward(self, tgt, dec_state, encoder_outputs, src_lengths, keys=None,
                return_weights=False):
        """tgt (B, T): the whole target SOS y_1 ... EOS in training, whose last token is never an
        input and is dropped, or one token (B, 1) per generation step. dec_state (h, c), each
        (1, B, H) or the encoder's (2, B, H/2). -> outputs (B, T', H), state [, weights (B, T', S)]
        with T' = T-1 or 1."""
        if dec_state[0].shape[0] == 2:
            dec_state = reshape_state(dec_state)
        if tgt.size(1) > 1:
            tgt = tgt[:, :-1]
        emb = self.dropout(self.embedding(tgt))
        outputs, dec_state = self.lstm(emb, dec_state)  # (B, T, H)
        outputs, weights = self.attend(outputs, encoder_outputs, src_lengths, keys)
        return (outputs, dec_state, weights) if return_weights else (outputs, dec_state)

    def attend(self, outputs, encoder_outputs, src_lengths, keys=None):
        """LSTM outputs (B, T, H) -> dropout and attention in dropout_site's order; weights."""
        weights = None
        if self.dropout_site == "lstm":
            outputs = self.dropout(outputs)
        if self.attn is not None:
            outputs, weights = self.attn(outputs, encoder_outputs, src_lengths, keys=keys,
                                         return_weights=True)
        if self.dropout_site == "output":
            outputs = self.dropout(outputs)
        return outputs, weights


class Seq2Seq(nn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.generator = nn.Linear(decoder.hidden_size, decoder.tgt_vocab_size)
        self.generator.weight = self.decoder.embedding.weight  # tied

    def forward(self, src, src_lengths, tgt, dec_hidden=None):
        """Teacher forcing: tgt (B, T) = SOS ... EOS -> logits (B, T-1, V) of tgt[:, 1:], state."""
        encoder_outputs, final_enc_state = self.encoder(src, src_lengths)
        if dec_hidden is None:
            dec_hidden = final_enc_state
        output, dec_hidden = self.decoder(tgt, dec_hidden, encoder_outputs, src_lengths)
        return self.generator(output), dec_hidden


def build_model(config, src_vocab_size, tgt_vocab_size, padding_idx=0, decoder_class=Decoder):
    """The Seq2Seq model of a config dict (use_attn, hidden_size, dropout; enc_layers and
    dropout_site when not the default), built in the skeleton's order."""
    hidden, dropout = config["hidden_size"], config["dropout"]
    encoder = Encoder(src_vocab_size, hidden, padding_idx, dropout,
                      num_layers=config.get("enc_layers", 1))
    attn = BahdanauAttention(hidden) if config["use_attn"] else None
    decoder = decoder_class(hidden, tgt_vocab_size, attn, padding_idx, dropout,
                            dropout_site=config.get("dropout_site", "lstm"))
    return Seq2Seq(encoder, decoder)
