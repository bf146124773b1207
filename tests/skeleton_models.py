"""A student's models.py as the course skeleton shapes it, written for the swap tests: the skeleton's
classes, constructors and signatures, nothing more, and a decoder that steps one token at a time.
tests/test_swaps.py runs hw2-q3.py on it, as models.py."""
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence as pack
from torch.nn.utils.rnn import pad_packed_sequence as unpack


def reshape_state(state):
    h_state = state[0]
    c_state = state[1]
    new_h_state = torch.cat([h_state[:-1], h_state[1:]], dim=2)
    new_c_state = torch.cat([c_state[:-1], c_state[1:]], dim=2)
    return (new_h_state, new_c_state)


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size):
        super(BahdanauAttention, self).__init__()
        self.W_s = nn.Linear(hidden_size, hidden_size, bias=False)
        self.W_h = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)
        self.W_out = nn.Linear(2 * hidden_size, hidden_size, bias=False)

    def forward(self, query, encoder_outputs, src_lengths):
        scores = self.v(torch.tanh(self.W_s(query).unsqueeze(2)
                                   + self.W_h(encoder_outputs).unsqueeze(1))).squeeze(-1)
        mask = self.sequence_mask(src_lengths).unsqueeze(1)
        alpha = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        context = torch.bmm(alpha, encoder_outputs)
        return torch.tanh(self.W_out(torch.cat([context, query], dim=-1)))

    def sequence_mask(self, lengths):
        batch_size = lengths.numel()
        max_len = lengths.max()
        return (torch.arange(max_len, device=lengths.device)
                .unsqueeze(0)
                .repeat(batch_size, 1)
                .lt(lengths.unsqueeze(1)))


class Encoder(nn.Module):
    def __init__(self, src_vocab_size, hidden_size, padding_idx, dropout):
        super(Encoder, self).__init__()
        self.hidden_size = hidden_size // 2
        self.embedding = nn.Embedding(src_vocab_size, hidden_size, padding_idx=padding_idx)
        self.lstm = nn.LSTM(hidden_size, self.hidden_size, bidirectional=True, batch_first=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src, lengths):
        packed = pack(self.dropout(self.embedding(src)), lengths.cpu(), batch_first=True,
                      enforce_sorted=False)
        output, final_hidden = self.lstm(packed)
        enc_output, _ = unpack(output, batch_first=True)
        return self.dropout(enc_output), final_hidden


class Decoder(nn.Module):
    def __init__(self, hidden_size, tgt_vocab_size, attn, padding_idx, dropout):
        super(Decoder, self).__init__()
        self.hidden_size = hidden_size
        self.tgt_vocab_size = tgt_vocab_size
        self.embedding = nn.Embedding(self.tgt_vocab_size, self.hidden_size,
                                      padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(self.hidden_size, self.hidden_size, batch_first=True)
        self.attn = attn

    def forward(self, tgt, dec_state, encoder_outputs, src_lengths):
        if dec_state[0].shape[0] == 2:
            dec_state = reshape_state(dec_state)
        if tgt.size(1) > 1:
            tgt = tgt[:, :-1]
        outputs = []
        for t in range(tgt.size(1)):
            output, dec_state = self.lstm(self.dropout(self.embedding(tgt[:, t:t + 1])), dec_state)
            output = self.dropout(output)
            if self.attn is not None:
                output = self.attn(output, encoder_outputs, src_lengths)
            outputs.append(output)
        return torch.cat(outputs, dim=1), dec_state


class Seq2Seq(nn.Module):
    def __init__(self, encoder, decoder):
        super(Seq2Seq, self).__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.generator = nn.Linear(decoder.hidden_size, decoder.tgt_vocab_size)
        self.generator.weight = self.decoder.embedding.weight

    def forward(self, src, src_lengths, tgt, dec_hidden=None):
        encoder_outputs, final_enc_state = self.encoder(src, src_lengths)
        if dec_hidden is None:
            dec_hidden = final_enc_state
        output, dec_hidden = self.decoder(tgt, dec_hidden, encoder_outputs, src_lengths)
        return self.generator(output), dec_hidden
