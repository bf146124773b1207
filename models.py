import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence as pack
from torch.nn.utils.rnn import pad_packed_sequence as unpack

# Q3 modules: the course skeleton's models.py, its forward() methods answered. Ours beside the
# given code, each a keyword argument with its default: Encoder(num_layers), Decoder(dropout_site),
# forward(keys, return_weights). Needs only torch: it drops into the course's folder.


def reshape_state(state):
    h_state = state[0]
    c_state = state[1]
    new_h_state = torch.cat([h_state[:-1], h_state[1:]], dim=2)
    new_c_state = torch.cat([c_state[:-1], c_state[1:]], dim=2)
    return (new_h_state, new_c_state)


class BahdanauAttention(nn.Module):
    """
    Bahdanau attention mechanism:
    score(h_i, s_j) = v^T * tanh(W_h h_i + W_s s_j)
    """

    def __init__(self, hidden_size):
        super(BahdanauAttention, self).__init__()
        # No biases, as in the assignment's equations.
        self.hidden_size = hidden_size
        self.W_s = nn.Linear(hidden_size, hidden_size, bias=False)
        self.W_h = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)
        self.W_out = nn.Linear(2 * hidden_size, hidden_size, bias=False)

    def forward(self, query, encoder_outputs, src_lengths, keys=None, return_weights=False):
        """
        query:          (batch_size, max_tgt_len, hidden_size)
        encoder_outputs:(batch_size, max_src_len, hidden_size)
        src_lengths:    (batch_size)
        Returns:
            attn_out:   (batch_size, max_tgt_len, hidden_size) - attended vector
        Ours: keys, W_h h_i computed once per batch by a caller decoding step by step; with
        return_weights, the weights alpha (batch_size, max_tgt_len, max_src_len) too.
        """
        # e_ti = v' tanh(W_s s + W_h h_i); alpha = softmax over the real source positions;
        # c = sum_i alpha_i h_i; s~ = tanh(W_out [c; s]). The query s is the decoder LSTM's output
        # after it reads the previous character.
        keys = self.W_h(encoder_outputs) if keys is None else keys  # (B, S, H)
        scores = self.v(torch.tanh(self.W_s(query)[:, :, None] + keys[:, None])).squeeze(-1)
        mask = self.sequence_mask(src_lengths.to(scores.device), keys.size(1))  # (B, S)
        alpha = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), dim=-1)
        context = torch.bmm(alpha, encoder_outputs)  # (B, Tq, H)
        out = torch.tanh(self.W_out(torch.cat([context, query], dim=-1)))
        return (out, alpha) if return_weights else out

    def sequence_mask(self, lengths, max_len=None):
        """
        Creates a boolean mask from sequence lengths.
        True for valid positions, False for padding.
        """
        batch_size = lengths.numel()
        max_len = lengths.max() if max_len is None else max_len  # ours: a batch padded further
        return (torch.arange(max_len, device=lengths.device)
                .unsqueeze(0)
                .repeat(batch_size, 1)
                .lt(lengths.unsqueeze(1)))


class Encoder(nn.Module):
    def __init__(
        self,
        src_vocab_size,
        hidden_size,
        padding_idx,
        dropout,
        num_layers=1,
    ):
        super(Encoder, self).__init__()
        self.hidden_size = hidden_size // 2
        self.dropout = dropout

        self.embedding = nn.Embedding(
            src_vocab_size,
            hidden_size,
            padding_idx=padding_idx,
        )
        self.lstm = nn.LSTM(
            hidden_size,
            self.hidden_size,
            bidirectional=True,
            batch_first=True,
            num_layers=num_layers,  # ours: deeper encoders (beyond/), dropout between layers
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(self.dropout)

    def forward(
        self,
        src,
        lengths,
    ):
        # src: (batch_size, max_src_len)
        # lengths: (batch_size)
        #############################################
        # TODO: Implement the forward pass of the encoder
        # Hints:
        # - Use torch.nn.utils.rnn.pack_padded_sequence to pack the padded sequences
        #   (before passing them to the LSTM)
        # - Use torch.nn.utils.rnn.pad_packed_sequence to unpack the packed sequences
        #   (after passing them to the LSTM)
        #############################################
        emb = self.dropout(self.embedding(src))
        if bool((lengths == src.size(1)).all()):  # no padding: nothing to pack
            enc_output, (h, c) = self.lstm(emb)
        else:
            packed = pack(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
            enc_output, (h, c) = self.lstm(packed)  # h, c: (2 * num_layers, B, H/2)
            enc_output, _ = unpack(enc_output, batch_first=True, total_length=src.size(1))
        # the top layer's forward direction at the last real step beside its backward direction
        # at step 0, (1, B, H) each: the decoder's first state
        final_hidden = reshape_state((h[-2:], c[-2:]))
        return self.dropout(enc_output), final_hidden  # zero past each length
        #############################################
        # END OF YOUR CODE
        #############################################
        # enc_output: (batch_size, max_src_len, hidden_size)
        # final_hidden: tuple with 2 tensors
        # each tensor is (num_layers * num_directions, batch_size, hidden_size)


class Decoder(nn.Module):
    def __init__(
        self,
        hidden_size,
        tgt_vocab_size,
        attn,
        padding_idx,
        dropout,
        dropout_site="lstm",
    ):
        super(Decoder, self).__init__()
        self.hidden_size = hidden_size
        self.tgt_vocab_size = tgt_vocab_size
        self.dropout = dropout
        # ours: dropout_site "output" drops after the attention (the other reading of the
        # assignment's sentence)
        self.dropout_site = dropout_site

        self.embedding = nn.Embedding(
            self.tgt_vocab_size, self.hidden_size, padding_idx=padding_idx
        )

        self.dropout = nn.Dropout(self.dropout)
        self.lstm = nn.LSTM(
            self.hidden_size,
            self.hidden_size,
            batch_first=True,
        )

        self.attn = attn

    def forward(
        self,
        tgt,
        dec_state,
        encoder_outputs,
        src_lengths,
        keys=None,
        return_weights=False,
    ):
        # tgt: (batch_size, max_tgt_len)
        # dec_state: tuple with 2 tensors
        # each tensor is (num_layers * num_directions, batch_size, hidden_size)
        # encoder_outputs: (batch_size, max_src_len, hidden_size)
        # src_lengths: (batch_size)
        # bidirectional encoder outputs are concatenated, so we may need to
        # reshape the decoder states to be of size (num_layers, batch_size, 2*hidden_size)
        # if they are of size (num_layers*num_directions, batch_size, hidden_size)
        if dec_state[0].shape[0] == 2:
            dec_state = reshape_state(dec_state)

        #############################################
        # TODO: Implement the forward pass of the decoder
        # Hints:
        # - the input to the decoder is the previous target token,
        #   and the output is the next target token
        # - New token representations should be generated one at a time, given
        #   the previous token representation and the previous decoder state
        # - Add this somewhere in the decoder loop when you implement the attention mechanism in 3.2:  # noqa: E501 (given)
        # if self.attn is not None:
        #     output = self.attn(
        #         output,
        #         encoder_outputs,
        #         src_lengths,
        #     )
        #############################################
        # tgt is the whole target SOS y_1 ... EOS in training, whose last token is never an input,
        # or one token (B, 1) per generation step. Nothing feeds the attention's output back into
        # the LSTM, so the LSTM reads all the steps in one call, and the attention attends for
        # all of them at once: the same outputs as one step at a time.
        if tgt.size(1) > 1:
            tgt = tgt[:, :-1]
        emb = self.dropout(self.embedding(tgt))
        outputs, dec_state = self.lstm(emb, dec_state)  # (B, T, H)
        outputs, weights = self.attend(outputs, encoder_outputs, src_lengths, keys)
        #############################################
        # END OF YOUR CODE
        #############################################
        # outputs: (batch_size, max_tgt_len, hidden_size)
        # dec_state: tuple with 2 tensors
        # each tensor is (num_layers, batch_size, hidden_size)
        return (outputs, dec_state, weights) if return_weights else (outputs, dec_state)

    def attend(self, outputs, encoder_outputs, src_lengths, keys=None):
        """Ours: LSTM outputs (B, T, H) -> dropout and attention in dropout_site's order; the
        attention weights (B, T, S), or None without attention."""
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
    def __init__(
        self,
        encoder,
        decoder,
    ):
        super(Seq2Seq, self).__init__()

        self.encoder = encoder
        self.decoder = decoder

        self.generator = nn.Linear(decoder.hidden_size, decoder.tgt_vocab_size)

        self.generator.weight = self.decoder.embedding.weight

    def forward(
        self,
        src,
        src_lengths,
        tgt,
        dec_hidden=None,
    ):

        encoder_outputs, final_enc_state = self.encoder(src, src_lengths)

        if dec_hidden is None:
            dec_hidden = final_enc_state

        output, dec_hidden = self.decoder(
            tgt, dec_hidden, encoder_outputs, src_lengths
        )

        return self.generator(output), dec_hidden
