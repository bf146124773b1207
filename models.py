"""Q3 modules: BiLSTM encoder, LSTM decoder, Bahdanau attention, and the Seq2Seq wrapper."""
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def reshape_state(state):
    """Bidirectional final state (2, B, H/2) x2 -> decoder state (1, B, H) x2: both directions side by side."""
    h_state, c_state = state
    new_h_state = torch.cat([h_state[:-1], h_state[1:]], dim=2)
    new_c_state = torch.cat([c_state[:-1], c_state[1:]], dim=2)
    return new_h_state, new_c_state


def length_mask(lengths, max_len):
    """(B,) lengths -> (B, max_len) boolean mask, True on real positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class BahdanauAttention(nn.Module):
    """e_ti = v' tanh(W_s s + W_h h_i), alpha = softmax over real source positions,
    c = sum_i alpha_i h_i, s~ = tanh(W_out [c; s]). The query s is the decoder LSTM's output after it
    reads the previous character (the assignment's s_{t-1}); no biases, as in the equations."""

    def __init__(self, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.W_s = nn.Linear(hidden_size, hidden_size, bias=False)
        self.W_h = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)
        self.W_out = nn.Linear(2 * hidden_size, hidden_size, bias=False)

    def project_keys(self, encoder_outputs):
        """W_h h_i for every source position; computed once per batch and reused at every step."""
        return self.W_h(encoder_outputs)

    def weights(self, query, keys, src_lengths):
        """Attention weights (B, Tq, S), exactly zero on padded source positions."""
        scores = self.v(torch.tanh(self.W_s(query)[:, :, None] + keys[:, None])).squeeze(-1)  # (B, Tq, S)
        mask = length_mask(src_lengths.to(scores.device), keys.size(1))  # (B, S)
        return torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), dim=-1)

    def forward(self, query, encoder_outputs, src_lengths, keys=None, return_weights=False):
        """query (B, Tq, H) decoder states; encoder_outputs (B, S, H) -> attentional states (B, Tq, H)."""
        assert query.dim() == 3 and encoder_outputs.dim() == 3, "query (B,Tq,H), encoder_outputs (B,S,H)"
        if keys is None:
            keys = self.project_keys(encoder_outputs)
        alpha = self.weights(query, keys, src_lengths)  # (B, Tq, S)
        context = torch.bmm(alpha, encoder_outputs)  # (B, Tq, H)
        out = torch.tanh(self.W_out(torch.cat([context, query], dim=-1)))
        return (out, alpha) if return_weights else out


class Encoder(nn.Module):
    """Embedding -> dropout -> BiLSTM (H/2 per direction, num_layers deep; packed when lengths differ) -> dropout."""

    def __init__(self, src_vocab_size, hidden_size, padding_idx, dropout, num_layers=1):
        super().__init__()
        assert hidden_size % 2 == 0, "hidden_size must be even (H/2 per direction)"
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(src_vocab_size, hidden_size, padding_idx=padding_idx)
        self.lstm = nn.LSTM(hidden_size, hidden_size // 2, num_layers=num_layers, bidirectional=True,
                            batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src, lengths):
        """src (B, S), lengths (B,) -> outputs (B, S, H) (zero past each length), final state (1, B, H) x2:
        the top layer's forward direction at the last real step beside its backward direction at step 0."""
        emb = self.dropout(self.embedding(src))
        if bool(length_mask(lengths, src.size(1)).all()):  # no padding (a length-bucketed batch): nothing to pack
            outputs, (h, c) = self.lstm(emb)
        else:
            packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
            outputs, (h, c) = self.lstm(packed)  # h, c: (2 * num_layers, B, H/2)
            outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.size(1))
        return self.dropout(outputs), reshape_state((h[-2:], c[-2:]))


class Decoder(nn.Module):
    """Embedding -> dropout -> LSTM -> dropout -> [attention] (dropout_site "lstm", the default), or
    embedding -> dropout -> LSTM -> [attention] -> dropout (dropout_site "output"); the same without attention.

    Nothing feeds the attention output back into the LSTM input, so with teacher forcing the LSTM
    runs over the whole target in one call and attention is computed for all steps at once.
    input_feed=True (beyond the assignment, Luong et al. 2015) feeds the previous step's attentional
    state s~ to the LSTM beside the embedding; the state is then (h, c, s~), each (1, B, H), and the
    LSTM runs one step at a time.
    """

    def __init__(self, hidden_size, tgt_vocab_size, attn, padding_idx, dropout, dropout_site="lstm",
                 input_feed=False):
        super().__init__()
        assert dropout_site in ("output", "lstm"), f"dropout_site must be 'output' or 'lstm', not {dropout_site!r}"
        assert attn is not None or not input_feed, "input_feed needs attention"
        self.hidden_size = hidden_size
        self.tgt_vocab_size = tgt_vocab_size
        self.dropout_site = dropout_site
        self.input_feed = input_feed
        self.embedding = nn.Embedding(tgt_vocab_size, hidden_size, padding_idx=padding_idx)
        self.lstm = nn.LSTM(2 * hidden_size if input_feed else hidden_size, hidden_size, batch_first=True)
        self.attn = attn
        self.dropout = nn.Dropout(dropout)

    def forward(self, tgt, dec_state, encoder_outputs, src_lengths, keys=None, return_weights=False):
        """The course's contract: tgt (B, T) is the whole target SOS y_1 ... y_n EOS in training, whose last
        token is never an input, so the decoder drops it ("the input is the previous target token"), or one
        token (B, 1) per generation step. dec_state (h, c): each (1, B, H), or the encoder's (2, B, H/2).
        -> outputs (B, T-1 or 1, H), new state [, attention weights (B, T-1 or 1, S)]."""
        if dec_state[0].shape[0] == 2:
            dec_state = reshape_state(dec_state)
        if tgt.size(1) > 1:
            tgt = tgt[:, :-1]
        emb = self.dropout(self.embedding(tgt))
        if not self.input_feed:
            outputs, dec_state = self.lstm(emb, dec_state)  # (B, T, H)
            outputs, weights = self.attend(outputs, encoder_outputs, src_lengths, keys)
        else:
            keys = self.attn.project_keys(encoder_outputs) if keys is None else keys
            h, c = dec_state[:2]
            feed = dec_state[2] if len(dec_state) > 2 else emb.new_zeros(1, emb.size(0), self.hidden_size)
            steps = []
            for t in range(emb.size(1)):
                out, (h, c) = self.lstm(torch.cat([emb[:, t:t + 1], feed.transpose(0, 1)], dim=-1), (h, c))
                steps.append(self.attend(out, encoder_outputs, src_lengths, keys))  # (B, 1, H), (B, 1, S)
                feed = steps[-1][0].transpose(0, 1)  # (1, B, H)
            outputs, weights = (torch.cat(parts, dim=1) for parts in zip(*steps))
            dec_state = (h, c, feed)
        return (outputs, dec_state, weights) if return_weights else (outputs, dec_state)

    def attend(self, outputs, encoder_outputs, src_lengths, keys):
        """LSTM outputs (B, T, H) -> dropout, attention and dropout as dropout_site says; weights or None."""
        weights = None
        if self.dropout_site == "lstm":
            outputs = self.dropout(outputs)
        if self.attn is not None:
            outputs, weights = self.attn(outputs, encoder_outputs, src_lengths, keys=keys, return_weights=True)
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
        """Teacher forcing on the whole target tgt (B, T) = SOS ... EOS -> logits (B, T-1, V) for tgt[:, 1:],
        and the final decoder state."""
        encoder_outputs, final_enc_state = self.encoder(src, src_lengths)
        if dec_hidden is None:
            dec_hidden = final_enc_state
        output, dec_hidden = self.decoder(tgt, dec_hidden, encoder_outputs, src_lengths)
        return self.generator(output), dec_hidden


def build_model(cfg, src_vocab_size, tgt_vocab_size, padding_idx=0):
    """The Seq2Seq model a training configuration describes (training.TrainConfig, or any object with
    use_attn, hidden_size, dropout, dropout_site, enc_layers and input_feed)."""
    encoder = Encoder(src_vocab_size, cfg.hidden_size, padding_idx, cfg.dropout, num_layers=cfg.enc_layers)
    attn = BahdanauAttention(cfg.hidden_size) if cfg.use_attn else None
    decoder = Decoder(cfg.hidden_size, tgt_vocab_size, attn, padding_idx, cfg.dropout, cfg.dropout_site,
                      input_feed=cfg.input_feed)
    return Seq2Seq(encoder, decoder)
