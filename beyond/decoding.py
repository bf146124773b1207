"""Beam search for one model or an ensemble (a list of models whose log-probabilities are averaged
at every step), decoding whole batches; the teacher-forced log-probability of the gold spellings;
and evaluate(), which scores a dataset decoded with a beam (and, with a word list, reranked)."""
import torch

from beyond import q3
from data import EOS_IDX as EOS, PAD_IDX as PAD, SOS_IDX as SOS


def as_list(model):
    """One model or an ensemble given as a list -> a list of models."""
    return list(model) if isinstance(model, (list, tuple)) else [model]


@torch.no_grad()
def beam_search(model, src, src_lengths, max_len, beam_size, length_penalty=1.0):
    """Beam search for a whole batch, beams laid out as a (B*K) batch; model may be a list of
    models, an ensemble whose log-probabilities are averaged at every step.

    Returns, per example, its finished hypotheses sorted best first as (tokens, log_prob, score),
    score = log_prob / len**length_penalty (len counts EOS). Each step ranks the 2K best candidates:
    EOS among the first K finish, the first K others go on. An example is done with K finished
    hypotheses; at max_len the live beams finish as they are. K = 1 is exactly greedy decoding.
    """
    B, K = src.size(0), beam_size
    members = start_beams(model, src, src_lengths, K)
    src_lengths = src_lengths.repeat_interleave(K, dim=0)
    token = torch.full((B * K, 1), SOS, dtype=torch.long, device=src.device)
    scores = torch.full((B, K), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # one live beam at the start
    seqs = torch.zeros((B * K, 0), dtype=torch.long, device=src.device)
    finished = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool)
    offsets = (torch.arange(B, device=src.device) * K)[:, None]  # (B, 1)
    norm = lambda lp, n: lp / float(n) ** length_penalty
    for t in range(max_len):
        logp = 0.0
        for member in members:
            m, encoder_outputs, keys, state = member
            hidden, member[3] = m.decoder(token, state, encoder_outputs, src_lengths, keys=keys)
            logp = logp + torch.log_softmax(m.generator(hidden[:, -1]).float(), dim=-1)  # (B*K, V)
        logp = logp / len(members)
        V = logp.size(-1)
        cand, flat = (scores.view(-1, 1) + logp).view(B, K * V).topk(2 * K, dim=-1)  # (B, 2K)
        origin, tok = flat // V, flat % V
        is_eos = tok == EOS
        for b, j in (is_eos[:, :K] & torch.isfinite(cand[:, :K])).nonzero().tolist():
            if not done[b] and len(finished[b]) < K:
                seq = seqs[offsets[b, 0] + origin[b, j]].tolist() + [EOS]
                finished[b].append((seq, cand[b, j].item(), norm(cand[b, j].item(), t + 1)))
        done |= torch.tensor([len(f) >= K for f in finished])
        if done.all():
            break
        live, pick = cand.masked_fill(is_eos, float("-inf")).topk(K, dim=-1)  # the K best non-EOS
        scores = live.masked_fill(done[:, None].to(live.device), float("-inf"))
        rows = (offsets + origin.gather(1, pick)).view(-1)  # (B*K,) beam each new beam extends
        token = tok.gather(1, pick).view(-1, 1)
        seqs = torch.cat([seqs[rows], token], dim=1)
        for member in members:
            # (h, c) or, with input feeding, (h, c, s~)
            member[3] = tuple(s[:, rows] for s in member[3])
    else:  # max_len reached: the live beams of unfinished examples end here
        for b in (~done).nonzero().flatten().tolist():
            # at most K in all
            live = [j for j in range(K) if torch.isfinite(scores[b, j])][:K - len(finished[b])]
            finished[b] += [(seqs[b * K + j].tolist(), scores[b, j].item(),
                             norm(scores[b, j].item(), max_len)) for j in live]
    return [sorted(f, key=lambda hyp: -hyp[2]) for f in finished]


def start_beams(model, src, src_lengths, K):
    """Per model of an ensemble: [model, encoder outputs, projected keys, decoder state], each
    repeated K times along the batch ((B, ...) -> (B*K, ...); the state (1, B*K, H))."""
    members = []
    for m in as_list(model):
        encoder_outputs, (h, c) = m.encoder(src, src_lengths)
        keys = m.decoder.attn.W_h(encoder_outputs) if m.decoder.attn is not None else None
        members.append([m, encoder_outputs.repeat_interleave(K, dim=0),
                        keys.repeat_interleave(K, dim=0) if keys is not None else None,
                        (h.repeat_interleave(K, dim=1), c.repeat_interleave(K, dim=1))])
    return members


def beam_search_dataset(model, dataset, batch_size, max_len, beam_size, length_penalty=1.0):
    """Per example, in dataset order, its distinct spellings best first as (spelling, log_prob,
    score) (a spelling reached twice keeps its better hypothesis). batch_size counts hypotheses:
    each batch holds batch_size // beam_size words."""
    device = next(as_list(model)[0].parameters()).device
    nbest = [None] * len(dataset)
    for idx in dataset.batches(max(1, batch_size // beam_size), by_length=True):
        src, src_lengths, _, _ = dataset.batch(idx)
        found = beam_search(model, src.to(device), src_lengths.to(device), max_len, beam_size,
                            length_penalty)
        for i, hyps in zip(idx.tolist(), found):
            distinct = {}
            for seq, log_prob, score in hyps:
                distinct.setdefault("".join(dataset.tgt_vocab.decode(seq)), (log_prob, score))
            nbest[i] = [(w, lp, sc) for w, (lp, sc) in distinct.items()]
    return nbest


def evaluate(model, dataset, batch_size, max_len, beam_size, length_penalty=1.0, lexicon=None):
    """Beam-search dataset and score it: {"cer", "wer", "preds", "nbest"}. With lexicon, a word's
    prediction is its best hypothesis in the lexicon, if any."""
    nbest = beam_search_dataset(model, dataset, batch_size, max_len, beam_size, length_penalty)
    preds = [next((w for w, _, _ in h if lexicon and w.lower() in lexicon), h[0][0]) for h in nbest]
    cer, wer = q3.evaluate(preds, dataset)
    return {"cer": cer, "wer": wer, "preds": preds, "nbest": nbest}


@torch.no_grad()
def gold_log_probs(model, dataset, batch_size):
    """Teacher-forced log-probability of every gold spelling (EOS included; an ensemble's is the
    mean of its models'), and its length in tokens."""
    models = as_list(model)
    device = next(models[0].parameters()).device
    log_probs, lengths = torch.zeros(len(dataset)), dataset.tgt_lengths - 1
    for idx in dataset.batches(batch_size, by_length=True):
        src, src_lengths, tgt, _ = (t.to(device) for t in dataset.batch(idx))
        lp = 0.0
        for m in models:
            logits, _ = m(src, src_lengths, tgt)  # (B, T-1, V) for tgt[:, 1:]
            step_lp = torch.log_softmax(logits.float(), dim=-1)  # (B, T-1, V)
            lp = lp + step_lp.gather(2, tgt[:, 1:, None]).squeeze(2)  # (B, T-1)
        log_probs[idx] = (lp / len(models)).masked_fill(tgt[:, 1:] == PAD, 0.0).sum(1).cpu()
    return log_probs, lengths
