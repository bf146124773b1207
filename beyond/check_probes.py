"""The checks of `python -m beyond.check`, run in a process of their own on a student's folder:

    python beyond/check_probes.py '{"reference": {...}, "jobs": [[FOLDER, GROUP], ...]}'

For each job it imports the student's file the group needs (hw2-q2.py, models.py or hw2-q3.py,
from FOLDER, with FOLDER first on sys.path), runs the group's checks on tiny inputs and prints one
line per check, MARK and JSON: {"check": id, "status": "PASS" | "FAIL", "found": text}, between a
{"begin": job} and an {"end": job}. It imports torch and the student's files, never the
reference's: beyond/check.py reads these lines and survives whatever the student's code does.
"""
import importlib.util
import json
import os
import sys
from collections import Counter
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

MARK = "@@hw2-check "
PAD = 0  # the skeleton's PAD_IDX
H, V_SRC, V_TGT = 8, 11, 9  # hidden size and vocabularies of the Q3 checks

# id -> (group, question, what is checked, the sentence of the assignment or skeleton it rests on)
CHECKS = {
    "conv_block": ("Q2", "Q2.1", "ConvBlock: conv 3x3 (stride 1, padding 1) -> ReLU -> max-pool "
                   "2x2 -> dropout 0.1", "For the kernel size use 3x3, for stride use 1 and for "
                   "padding use 1. [...] A max pooling with kernel size 2x2 and stride 2. A "
                   "dropout layer with a dropout probability of 0.1."),
    "conv_block_bn": ("Q2", "Q2.2", "ConvBlock(batch_norm=True): batch norm between the conv and "
                      "the ReLU", "Implement batch normalization in each convolutional block "
                      "(Figure 2: conv, batch norm, ReLU, max pooling, dropout)."),
    "params_vanilla": ("Q2", "Q2.1", "CNN(batch_norm=False): the reference's layers and parameters",
                       "a sequence of 3 convolutional blocks [...] 32, 64, and 128 [...] 1024 "
                       "output features [...] 512 output features"),
    "params_bn": ("Q2", "Q2.2", "CNN(batch_norm=True): the reference's layers and parameters",
                  "Replace [...] flattening [...] with a global average pooling layer [...] "
                  "Incorporate a batch normalization layer in the MLP block."),
    "global_pool": ("Q2", "Q2.2", "CNN(batch_norm=True): the MLP reads the last block's output "
                    "averaged over height and width", "Replace transformation of flattening the "
                    "output of the convolutional blocks with a global average pooling layer, i.e., "
                    "right after the last convolution block."),
    "mlp_order": ("Q2", "Q2.2", "the MLP: fc1 -> [BatchNorm1d] -> dropout -> fc2 -> fc3",
                  "Incorporate a batch normalization layer in the MLP block. before the dropout "
                  "layer."),
    "log_softmax": ("Q2", "Q2.1", "CNN outputs log-probabilities (each row's exp sums to 1)",
                    "An affine transformation with the number of classes followed by an output "
                    "Log-Softmax layer."),
    "layout": ("Q2", "Q2.1", "CNN reads the course loader's flat vectors as 48x48 images with "
               "the colours last", "the course's file stores each image 48 x 48 x 3, colours "
               "last, and its loader flattens it; nn.Conv2d reads (B, 3, 48, 48)"),
    "count_params": ("Q2", "Q2.3", "get_number_trainable_params counts trainable parameters only",
                     "Implement the function `get_number_trainable_params` to determine the number "
                     "of trainable parameters"),
    "encoder_outputs": ("Q3a", "Q3.1(a)", "Encoder: outputs (B, S, H), zero past each word's "
                        "length", "a bidirectional LSTM encoder (skeleton: pack_padded_sequence "
                        "before the LSTM, pad_packed_sequence after it)"),
    "encoder_state": ("Q3a", "Q3.1(a)", "Encoder: the final state is each direction's last real "
                      "step", "Use torch.nn.utils.rnn.pack_padded_sequence to pack the padded "
                      "sequences (skeleton, Encoder.forward)"),
    "reshape_state": ("Q3a", "Q3.1(a)", "reshape_state: (2, B, H/2) -> (1, B, H), [forward; "
                      "backward]", "reshape the decoder states to be of size (num_layers, "
                      "batch_size, 2*hidden_size) (skeleton, Decoder.forward)"),
    "dropout_sites": ("Q3a", "Q3.1(a)", "dropout on the embeddings and on each LSTM's outputs, "
                      "in the encoder and the decoder", "The dropout layer should only be applied "
                      "to the embeddings and the final outputs (in both the encoder and the "
                      "decoder)."),
    "teacher_forcing": ("Q3a", "Q3.1(a)", "Decoder: teacher-forced outputs equal step-by-step "
                        "decoding (dropout off; with attention too)", "the resulting decoder "
                        "state is used in the next timestep. In the end, all decoder outputs are "
                        "concatenated to form an output sequence."),
    "output_length": ("Q3a", "Q3.1(a)", "Decoder: a target of length T gives T-1 outputs and a "
                      "state (1, B, H)", "the input to the decoder is the previous target token, "
                      "and the output is the next target token (skeleton, Decoder.forward)"),
    "attn_padding": ("Q3b", "Q3.1(b)", "attention: padded positions get no weight",
                     "alpha_ti = exp(e_ti) / sum_{j=1}^n exp(e_tj), where n is the number of "
                     "encoder time steps"),
    "attn_sum": ("Q3b", "Q3.1(b)", "attention: the weights over a word's positions sum to one",
                 "alpha_ti = exp(e_ti) / sum_{j=1}^n exp(e_tj)"),
    "attn_combine": ("Q3b", "Q3.1(b)", "attention: the output is tanh(W_out [c_t; s_{t-1}])",
                     "s~_t = tanh(W_out [c_t; s_{t-1}])"),
    "attn_scores": ("Q3b", "Q3.1(b)", "attention: the weights are the softmax of v^T tanh(W_s s + "
                    "W_h h_i)", "e_ti = v^T tanh(W_s s_{t-1} + W_h h_i)"),
    "nucleus_set": ("Q3c", "Q3.1(c)", "nucleus_sampling draws from the smallest top set reaching "
                    "p, in proportion to P'", "the smallest set of tokens that their cumulative "
                    "probability mass equals or exceeds [...] p [...] P'(x) = P(x) / p'"),
    "nucleus_shape": ("Q3c", "Q3.1(c)", "nucleus_sampling returns shape (1,) for 1-D logits",
                      "next_token: index of the next predicted token. Shape: (1,) (skeleton)"),
    "nucleus_greedy": ("Q3c", "Q3.1(c)", "nucleus_sampling with p -> 0 is greedy decoding",
                       "the next token is the one that has the highest probability"),
    "wer_at_k": ("Q3c", "Q3.1(c)", "compute_wer_at_k: a word is wrong only when none of its k "
                 "samples is right", "WER@3: this is the percentage of examples for which *none* "
                 "of the model's 3 predictions are correct."),
}
FILES = {"Q2": "hw2-q2.py", "Q3a": "models.py", "Q3b": "models.py", "Q3c": "hw2-q3.py"}


class Fail(Exception):
    """What a check found, when it is not what the assignment asks."""


def close(a, b, tol=1e-6):
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=tol, rtol=0))


def load(folder, filename):
    """The student's file as a module, FOLDER first on sys.path (its own imports resolve there)."""
    if sys.path[0] != folder:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(filename[:-3].replace("-", "_"),
                                                  os.path.join(folder, filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calls(model, x, kinds, train=False):
    """[(module, input, output)] of the leaf modules of these kinds, in the order model(x) calls
    them."""
    seen, hooks = [], []
    for m in model.modules():
        if isinstance(m, kinds):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out: seen.append((mod, inp[0] if inp else None, out))))
    model.train(train)
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def names(seen):
    return " -> ".join(type(m).__name__ for m, _, _ in seen)


def images(n=4, seed=0):
    """n random images as the course's loader gives them: flat (n, 6912), colours last."""
    img = torch.rand(n, 48, 48, 3, generator=torch.Generator().manual_seed(seed))
    return img, img.reshape(n, -1)


# ---- Q2 ------------------------------------------------------------------------------------------

def only(module, kind):
    found = [m for m in module.modules() if isinstance(m, kind)]
    if len(found) != 1:
        raise Fail(f"{len(found)} {kind.__name__} in {type(module).__name__}, expected one")
    return found[0]


def block_input():
    return torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))


def check_conv_block(q2, ref):
    block, x = q2.ConvBlock(3, 8, 3, dropout=0.1, batch_norm=False), block_input()
    conv = only(block, nn.Conv2d)
    if (conv.kernel_size, conv.stride, conv.padding) != ((3, 3), (1, 1), (1, 1)):
        raise Fail(f"kernel {conv.kernel_size}, stride {conv.stride}, padding {conv.padding}")
    dropped = [(m.p, tuple(inp.shape)) for m, inp, _ in calls(block, x, (nn.Dropout,), train=True)]
    if dropped != [(0.1, (2, 8, 6, 6))]:
        raise Fail(f"dropout (p, input shape) {dropped or 'never'}; expected once, p 0.1, on the "
                   "pooled (2, 8, 6, 6)")
    with torch.no_grad():
        if not close(block.eval()(x), F.max_pool2d(torch.relu(conv(x)), 2, 2)):
            raise Fail("in eval mode the output is not max-pool 2x2 (ReLU(conv(x)))")


def check_conv_block_bn(q2, ref):
    block, x = q2.ConvBlock(3, 8, 3, dropout=0.1, batch_norm=True), block_input()
    conv, bn = only(block, nn.Conv2d), only(block, nn.BatchNorm2d)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)  # statistics that make the order visible
        bn.running_var.uniform_(0.5, 2)
        if not close(block.eval()(x), F.max_pool2d(torch.relu(bn(conv(x))), 2, 2)):
            raise Fail("in eval mode the output is not max-pool 2x2 (ReLU(batch norm(conv(x))))")


def layer_table(model):
    return [[type(m).__name__, sum(p.numel() for p in m.parameters(recurse=False)
                                   if p.requires_grad)]
            for m in model.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]


def check_params(q2, ref, batch_norm):
    table = layer_table(q2.CNN(0.1, maxpool=True, batch_norm=batch_norm))
    expected = ref["tables"]["bn" if batch_norm else "vanilla"]
    rows = lambda t: Counter(map(tuple, t))
    extra, missing = rows(table) - rows(expected), rows(expected) - rows(table)
    if extra or missing:
        show = lambda c: ", ".join(f"{kind} with {n:,}" for kind, n in sorted(c)) or "nothing"
        raise Fail(f"{sum(n for _, n in table):,} parameters, expected "
                   f"{sum(n for _, n in expected):,}: layers with parameters {show(extra)} where "
                   f"the reference has {show(missing)}")


def check_global_pool(q2, ref):
    model = q2.CNN(0.1, maxpool=True, batch_norm=True)
    blocks = [m for m in model.modules() if type(m).__name__ == "ConvBlock"]
    seen = calls(model, images()[1], tuple({type(b) for b in blocks}) + (nn.Linear,))
    outs = [out for m, _, out in seen if type(m).__name__ == "ConvBlock"]
    linear_inputs = [inp for m, inp, _ in seen if isinstance(m, nn.Linear)]
    if not outs or not linear_inputs:
        raise Fail(f"{len(outs)} ConvBlock and {len(linear_inputs)} nn.Linear calls in the forward")
    last, fc1_input = outs[-1], linear_inputs[0]
    if not close(fc1_input, last.mean(dim=(2, 3))):
        raise Fail(f"the first Linear reads {tuple(fc1_input.shape)}, not the mean of the last "
                   f"block's {tuple(last.shape)} over height and width")


def check_mlp_order(q2, ref):
    for batch_norm in (False, True):
        seen = calls(q2.CNN(0.1, batch_norm=batch_norm), images()[1],
                     (nn.Linear, nn.BatchNorm1d, nn.Dropout), train=True)
        seen = [s for s in seen if not (isinstance(s[0], nn.Dropout) and s[1].dim() == 4)]
        want = ["Linear"] + ["BatchNorm1d"] * batch_norm + ["Dropout", "Linear", "Linear"]
        if [type(m).__name__ for m, _, _ in seen] != want:
            found = names(seen) or "no Linear, BatchNorm1d or Dropout"
            raise Fail(f"batch_norm={batch_norm}: {found}, expected {' -> '.join(want)}")


def check_log_softmax(q2, ref):
    for batch_norm in (False, True):
        model = q2.CNN(0.1, batch_norm=batch_norm).eval()
        with torch.no_grad():
            out = model(images()[1])
        if out.shape != (4, 6):
            raise Fail(f"batch_norm={batch_norm}: output {tuple(out.shape)}, expected (4, 6)")
        off = (out.exp().sum(1) - 1).abs().max()
        if off > 1e-5:
            raise Fail(f"batch_norm={batch_norm}: the rows' exp sum to 1 +- {off:.3g}, not 1")


def check_layout(q2, ref):
    img, flat = images(2)
    seen = calls(q2.CNN(0.1, batch_norm=False), flat, (nn.Conv2d,))
    if not seen:
        raise Fail("no nn.Conv2d runs in the forward")
    first = seen[0][1]
    if close(first, img.permute(0, 3, 1, 2), 0):
        return
    if close(first, flat.reshape(2, 3, 48, 48), 0):
        raise Fail("the skeleton's x.reshape(x.shape[0], 3, 48, -1): each 'channel' interleaves "
                   f"R, G and B of 16 rows{ref['layout_cost']}")
    raise Fail("the first convolution reads neither the images nor the skeleton's reshape")


def check_count_params(q2, ref):
    model = q2.CNN(0.1, batch_norm=True)
    for p in list(model.parameters())[:2]:
        p.requires_grad_(False)
    want = sum(p.numel() for p in model.parameters() if p.requires_grad)
    got = q2.get_number_trainable_params(model)
    if got != want:
        raise Fail(f"{got} on a network with {want} trainable parameters (its first layer frozen)")


# ---- Q3.1(a) -------------------------------------------------------------------------------------

def source_batch():
    """src (3, 6) padded with PAD, the longest word filling the batch; lengths [6, 4, 2]."""
    gen = torch.Generator().manual_seed(2)
    lengths = torch.tensor([6, 4, 2])
    src = torch.randint(1, V_SRC, (3, 6), generator=gen)
    src[torch.arange(6)[None] >= lengths[:, None]] = PAD
    return src, lengths


def target_batch():
    tgt = torch.randint(3, V_TGT, (3, 5), generator=torch.Generator().manual_seed(3))
    tgt[:, 0] = 1  # SOS
    return tgt


def two_sided(state):
    """A final state as (1, B, H): the skeleton's (2, B, H/2) joined the way reshape_state does."""
    h, c = state
    return (torch.cat([h[0], h[1]], -1)[None], torch.cat([c[0], c[1]], -1)[None]) \
        if h.size(0) == 2 else (h, c)


def check_encoder_outputs(models, ref):
    src, lengths = source_batch()
    with torch.no_grad():
        out, _ = models.Encoder(V_SRC, H, PAD, 0.3).eval()(src, lengths)
    if out.shape != (3, 6, H):
        raise Fail(f"outputs {tuple(out.shape)}, expected (3, 6, {H})")
    past = out[torch.arange(6)[None] >= lengths[:, None]]
    if past.abs().max() > 0:
        raise Fail(f"outputs past a word's length reach {past.abs().max():.3g}, expected 0")


def check_encoder_state(models, ref):
    src, lengths = source_batch()
    encoder = models.Encoder(V_SRC, H, PAD, 0.3).eval()
    lstm = next(m for m in encoder.modules() if isinstance(m, nn.LSTM))
    with torch.no_grad():
        h, c = two_sided(encoder(src, lengths)[1])
        for i, n in enumerate(lengths.tolist()):  # each word alone, no padding at all
            _, alone = lstm(encoder.embedding(src[i:i + 1, :n]))
            want_h, want_c = two_sided(alone)
            if not (close(h[:, i], want_h[:, 0]) and close(c[:, i], want_c[:, 0])):
                raise Fail(f"word {i} (length {n} of 6): the state is not the one its last real "
                           "step gives")


def check_reshape_state(models, ref):
    h = torch.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    new_h, new_c = models.reshape_state((h, -h))
    want = torch.cat([h[0], h[1]], dim=-1)[None]
    if not (close(new_h, want) and close(new_c, -want)):
        raise Fail(f"(2, 3, 4) became {tuple(new_h.shape)}, not [forward; backward] (1, 3, 8)")


def dropout_sites(module, args):
    """(every embedding dropped, every LSTM output dropped) when module(*args) runs in training
    mode: a dropout whose input shares the embedding's storage; a dropout, not of an embedding,
    right after each LSTM call."""
    events, embedded, alive = [], [], []  # alive: no storage freed and reused during the run

    def hook(mod, inp, out):
        alive.append((inp, out))
        if isinstance(mod, nn.Embedding):
            embedded.append(out.untyped_storage().data_ptr())
        else:
            events.append("lstm" if isinstance(mod, nn.LSTM)
                          else inp[0].untyped_storage().data_ptr())
    hooks = [m.register_forward_hook(hook) for m in module.modules()
             if isinstance(m, (nn.LSTM, nn.Embedding)) or isinstance(m, nn.Dropout) and m.p > 0]
    module.train()
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for h in hooks:
            h.remove()
    embeddings = bool(embedded) and all(e in events for e in embedded)
    after = [b for a, b in zip(events, events[1:] + [None]) if a == "lstm"]
    outputs = bool(after) and all(b not in ("lstm", None) and b not in embedded for b in after)
    return embeddings, outputs


def check_dropout_sites(models, ref):
    src, lengths = source_batch()
    encoder = models.Encoder(V_SRC, H, PAD, 0.3)
    embeddings, outputs = dropout_sites(encoder, (src, lengths))
    if not (embeddings and outputs):
        raise Fail(f"encoder: embeddings dropped {embeddings}; outputs dropped {outputs}")
    encoder.eval()
    with torch.no_grad():
        enc_out, state = encoder(src, lengths)
    decoder = models.Decoder(H, V_TGT, None, PAD, 0.3)
    embeddings, outputs = dropout_sites(decoder, (target_batch(), state, enc_out, lengths))
    if not (embeddings and outputs):
        raise Fail(f"decoder: embeddings dropped {embeddings}; LSTM outputs dropped {outputs}")


def seq2seq_parts(models, attention):
    torch.manual_seed(4)
    encoder = models.Encoder(V_SRC, H, PAD, 0.3).eval()
    attn = models.BahdanauAttention(H) if attention else None
    return encoder, models.Decoder(H, V_TGT, attn, PAD, 0.3).eval()


def check_teacher_forcing(models, ref):
    src, lengths, tgt = *source_batch(), target_batch()
    for attention in (False, True):
        try:
            encoder, decoder = seq2seq_parts(models, attention)
        except NotImplementedError:
            continue  # Q3.1(b) not answered yet: its checks say so
        with torch.no_grad():
            enc_out, state = encoder(src, lengths)
            forced, _ = decoder(tgt, state, enc_out, lengths)
            steps = []
            for t in range(tgt.size(1) - 1):
                out, state = decoder(tgt[:, t:t + 1], state, enc_out, lengths)
                steps.append(out)
        stepped = torch.cat(steps, dim=1)
        if not close(forced, stepped, 1e-5):
            raise Fail(f"attention {attention}: teacher forcing gives {tuple(forced.shape)}, steps "
                       f"give {tuple(stepped.shape)}" + (", with other values"
                                                          * (forced.shape == stepped.shape)))


def check_output_length(models, ref):
    src, lengths, tgt = *source_batch(), target_batch()
    encoder, decoder = seq2seq_parts(models, False)
    with torch.no_grad():
        enc_out, state = encoder(src, lengths)
        out, (h, c) = decoder(tgt, state, enc_out, lengths)
    if out.shape != (3, tgt.size(1) - 1, H) or h.shape != (1, 3, H) or c.shape != (1, 3, H):
        raise Fail(f"a target (3, 5) gives outputs {tuple(out.shape)} and a state "
                   f"{tuple(h.shape)}, expected (3, 4, {H}) and (1, 3, {H})")


# ---- Q3.1(b): the attention alone, in float64 ----------------------------------------------------

def attention(models):
    torch.manual_seed(5)
    return models.BahdanauAttention(H).double().eval()


def linears(attn, n_in, n_out):
    return [m for m in attn.modules() if isinstance(m, nn.Linear)
            and (m.in_features, m.out_features) == (n_in, n_out)]


def w_out(attn):
    found = linears(attn, 2 * H, H)
    if len(found) != 1:
        raise Fail(f"{len(found)} Linear(2H -> H) in BahdanauAttention, expected one: W_out")
    return found[0]


def small(*shape, seed=6):
    return 0.3 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)


def combination(attn, out, query, context):
    """(order, scales, residual): out read as tanh(W_out [scale c; s]) (order "[c; s]") or
    tanh(W_out [s; scale c]) (order "[s; c]"), one scale per query, whichever fits better."""
    layer, z = w_out(attn), torch.atanh(out.clamp(-1 + 1e-12, 1 - 1e-12))
    bias = layer.bias.detach() if layer.bias is not None else 0
    fits = []
    w = layer.weight.detach()
    for order, (w_c, w_s) in (("[c; s]", (w[:, :H], w[:, H:])), ("[s; c]", (w[:, H:], w[:, :H]))):
        rest = z - query @ w_s.T - bias  # (B, T, H)
        direction = (context @ w_c.T).expand_as(rest)
        scales = (rest * direction).sum(-1) / (direction * direction).sum(-1)  # (B, T)
        fits.append((float((rest - scales[..., None] * direction).abs().max()), order, scales))
    residual, order, scales = min(fits, key=lambda fit: fit[0])
    return order, scales, residual


def constant_states(models):
    """(attn, out, query, g): every encoder state the same g, no padding."""
    attn, query, g = attention(models), small(2, 3, H), small(2, 1, H, seed=7)
    with torch.no_grad():
        out = attn(query, g.expand(2, 5, H).contiguous(), torch.tensor([5, 5]))
    return attn, out, query, g


def check_attn_padding(models, ref):
    attn, query, enc = attention(models), small(3, 2, H), small(3, 5, H, seed=8)
    lengths = torch.tensor([5, 3, 2])
    changed = enc.clone()
    changed[torch.arange(5)[None] >= lengths[:, None]] = 5.0  # what lies past each length
    with torch.no_grad():
        moved = (attn(query, enc, lengths) - attn(query, changed, lengths)).abs().max()
    if moved > 1e-12:
        raise Fail(f"changing the encoder states past a word's length moves the output by "
                   f"{moved:.3g}: the padding gets weight")


def check_attn_sum(models, ref):
    attn, out, query, g = constant_states(models)
    order, scales, residual = combination(attn, out, query, g)
    if residual > 1e-8:
        raise Fail("the output is not tanh(W_out [c; s]) of any context c along h: the weights "
                   "cannot be read")
    if (scales - 1).abs().max() > 1e-8:
        raise Fail(f"with every encoder state h the contexts are {scales.flatten().tolist()} h, "
                   "expected h")


def check_attn_combine(models, ref):
    attn, out, query, g = constant_states(models)
    order, _, residual = combination(attn, out, query, g)
    if residual > 1e-8 or order != "[c; s]":
        raise Fail(f"the output is tanh(W_out {order})" if residual <= 1e-8
                   else f"the output is not tanh(W_out [c; s]) (off by {residual:.3g})")


def check_attn_scores(models, ref):
    order = combination(*constant_states(models))[0]
    attn, query, enc = attention(models), small(2, 3, H), small(2, 5, H, seed=9)
    with torch.no_grad():
        out = attn(query, enc, torch.tensor([5, 5]))
        layer = w_out(attn)
        w_c = layer.weight[:, :H] if order == "[c; s]" else layer.weight[:, H:]
        w_s = layer.weight[:, H:] if order == "[c; s]" else layer.weight[:, :H]
        z = torch.atanh(out) - query @ w_s.T - (layer.bias if layer.bias is not None else 0)
        context = torch.linalg.solve(w_c, z.transpose(1, 2)).transpose(1, 2)  # (2, 3, H)
        alpha = torch.linalg.lstsq(enc.transpose(1, 2), context.transpose(1, 2)).solution
        alpha = alpha.transpose(1, 2)  # (2, 3, 5): the weights the output was made with
        squares, vs = linears(attn, H, H), linears(attn, H, 1)
        if len(squares) != 2 or len(vs) != 1:
            raise Fail("BahdanauAttention needs two Linear(H -> H) (W_s, W_h) and a Linear(H -> 1) "
                       "(v) for this check")
        errors = []
        for w_s_, w_h_ in (squares, squares[::-1]):
            e = vs[0](torch.tanh(w_s_(query)[:, :, None] + w_h_(enc)[:, None])).squeeze(-1)
            errors.append(float((alpha - torch.softmax(e, dim=-1)).abs().max()))
    if min(errors) > 1e-6:
        raise Fail(f"the weights behind the output differ from softmax(v^T tanh(W_s s + W_h h_i)) "
                   f"by {min(errors):.3g}")


# ---- Q3.1(c) -------------------------------------------------------------------------------------

P_NUCLEUS = torch.tensor([0.05, 0.5, 0.15, 0.3])  # p = 0.75: V(p) = {1, 3}, P' = 0.625, 0.375


def draws(q3, n, p, seed=0):
    torch.manual_seed(seed)
    logits = P_NUCLEUS.log()
    return torch.cat([q3.nucleus_sampling(logits, p=p).reshape(-1) for _ in range(n)])


def check_nucleus_set(q3, ref):
    n, tokens = 2000, draws(q3, 2000, 0.75)
    counts = torch.bincount(tokens, minlength=4).tolist()
    share = counts[1] / n
    sd = (0.625 * 0.375 / n) ** 0.5  # 5 sd: a false alarm once in about 1.7 million runs
    if counts[0] or counts[2] or not counts[3] or abs(share - 0.625) > 5 * sd:
        raise Fail(f"P = {P_NUCLEUS.tolist()}, p = 0.75: {n} draws gave tokens 0-3 {counts} times; "
                   f"expected only 1 and 3 (the token that crosses p included), about "
                   f"{0.625 * n:.0f} and {0.375 * n:.0f}")


def check_nucleus_shape(q3, ref):
    torch.manual_seed(0)
    out = q3.nucleus_sampling(P_NUCLEUS.log(), p=0.8)
    if tuple(out.shape) != (1,) or out.dtype != torch.long:
        raise Fail(f"shape {tuple(out.shape)}, dtype {out.dtype}; expected (1,), torch.int64")


def check_nucleus_greedy(q3, ref):
    tokens = draws(q3, 200, 1e-6).unique().tolist()
    if tokens != [1]:
        raise Fail(f"p = 1e-6 drew tokens {tokens}; expected only the most probable, 1")


class Words:
    """What compute_wer_at_k reads of a DataLoader: .dataset.pairs and .batch_size."""

    def __init__(self, golds):
        self.dataset, self.batch_size = self, 1
        self.pairs = [(["?"], list(g)) for g in golds]


def check_wer_at_k(q3, ref):
    golds = ["cat", "dog", "cow"]
    samples = iter([["cot", "dgo", "cow"], ["cat", "dag", "cow"], ["kat", "dug", "cow"]])
    q3.generate = lambda *args, **kwargs: next(samples)  # the student's module, this process only
    got = q3.compute_wer_at_k(None, Words(golds), p=0.8, k=3, ex_to_print=0)
    if abs(got - 1 / 3) > 1e-12:
        raise Fail(f"{got:.4f} for samples cat: (cot, cat, kat), dog: (dgo, dag, dug), cow: 3 x "
                   "cow; expected 1/3 (only dog has no right sample)")


CHECK_FUNCTIONS = {
    "conv_block": check_conv_block, "conv_block_bn": check_conv_block_bn,
    "params_vanilla": partial(check_params, batch_norm=False),
    "params_bn": partial(check_params, batch_norm=True), "global_pool": check_global_pool,
    "mlp_order": check_mlp_order, "log_softmax": check_log_softmax, "layout": check_layout,
    "count_params": check_count_params, "encoder_outputs": check_encoder_outputs,
    "encoder_state": check_encoder_state, "reshape_state": check_reshape_state,
    "dropout_sites": check_dropout_sites, "teacher_forcing": check_teacher_forcing,
    "output_length": check_output_length, "attn_padding": check_attn_padding,
    "attn_sum": check_attn_sum, "attn_combine": check_attn_combine,
    "attn_scores": check_attn_scores, "nucleus_set": check_nucleus_set,
    "nucleus_shape": check_nucleus_shape, "nucleus_greedy": check_nucleus_greedy,
    "wer_at_k": check_wer_at_k,
}


def say(**fields):
    print(MARK + json.dumps(fields), flush=True)


def failure(e):
    if isinstance(e, Fail):
        return str(e)
    return f"raised {type(e).__name__}" + (f": {str(e)[:200]}" if str(e) else "")


def run_group(folder, group, ref):
    say(begin=[folder, group])
    try:
        module = load(folder, FILES[group])
    except BaseException as e:  # noqa: BLE001 (the student's import may raise anything, exit too)
        module, why = None, f"{FILES[group]} does not import: {type(e).__name__}: {str(e)[:200]}"
    for check, (where, *_) in CHECKS.items():
        if where != group:
            continue
        if module is None:
            say(folder=folder, check=check, status="FAIL", found=why)
            continue
        try:
            CHECK_FUNCTIONS[check](module, ref)
            say(folder=folder, check=check, status="PASS", found="")
        except Exception as e:  # noqa: BLE001 (each check reports its own failure)
            say(folder=folder, check=check, status="FAIL", found=failure(e))
    say(end=[folder, group])


def main(argv):
    task = json.loads(argv[0])
    torch.set_num_threads(1)
    for folder, group in task["jobs"]:
        run_group(folder, group, task["reference"])


if __name__ == "__main__":
    main(sys.argv[1:])
