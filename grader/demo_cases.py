"""The grade demo's per-homework submissions (scripts/grade_demo.py).

CHEATS: answers that only call the reference (lmcourse, transformers, tokenizers): each must
score 0, because the modules are absent where the answers run. LOOPS: an answer that never
returns: only the tests that use it may lose their points.
"""

CHEATS = {
    'hw1_probability_loss': {
        'log_softmax': '''import torch.nn.functional as F


def log_softmax(logits, dim=-1):
    return F.log_softmax(logits, dim=dim)
''',
        'sequence_log_prob': '''from lmcourse.metrics import sequence_log_prob as _reference


def sequence_log_prob(logits, ids):
    return _reference(logits[..., :-1, :], ids[..., 1:])
''',
        'cross_entropy': '''import torch.nn.functional as F


def cross_entropy(logits, targets, ignore_index=-100):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=ignore_index)
''',
        'perplexity': '''import lmcourse.metrics as _metrics


def perplexity(logits, targets, ignore_index=-100):
    return _metrics.perplexity(logits, targets, ignore_index)
''',
        'entropy': '''def entropy(logits, dim=-1):
    logp = logits.log_softmax(dim)
    return -(logp.exp() * logp).nan_to_num().sum(dim) / math.log(2)
''',
        'surprisal': '''import lmcourse.metrics as _metrics


def surprisal(p):
    return _metrics.surprisal(p)
''',
    },
    'hw2_tokenisation': {
        'merge': '''from lmcourse.tokenization import _merge


def merge(ids, pair, new_id):
    return _merge(list(ids), pair, new_id)
''',
        'train_bpe': '''import lmcourse.tokenization as _tok


def train_bpe(text, n_merges):
    return _tok.BPETokenizer.train(text, 256 + n_merges, special_tokens=()).merges
''',
        'encode': '''import lmcourse.tokenization as _tok


def _tokenizer(merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for r, (a, b) in enumerate(merges):
        vocab[256 + r] = vocab[a] + vocab[b]
    return _tok.BPETokenizer(vocab, merges, special_tokens=())


def encode(text, merges):
    return _tokenizer(merges).encode(text)
''',
        'decode': '''import lmcourse.tokenization as _tok


def decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for r, (a, b) in enumerate(merges):
        vocab[256 + r] = vocab[a] + vocab[b]
    return _tok.BPETokenizer(vocab, merges, special_tokens=()).decode(ids)
''',
    },
    'hw3_causal_attention': {
        'causal_mask': '''from lmcourse.model import causal_mask as _reference_mask


def causal_mask(T):
    return _reference_mask(T)
''',
        'masked_attention': '''import lmcourse.model as _ref


def masked_attention(q, k, v, mask=None):
    return _ref.scaled_dot_product_attention(q, k, v, mask)
''',
        'mhsa': '''import lmcourse.model as _ref


class MultiHeadCausalSelfAttention(_ref.CausalSelfAttention):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__(_ref.GPTConfig(n_embd=n_embd, n_head=n_head, bias=bias, dropout=0.0))
''',
    },
    'hw4_training': {
        'batch_at': '''import lmcourse.data as _ref


def batch_at(data, starts, block_size):
    g = torch.Generator()
    g.manual_seed(0)
    return _ref.get_batch(data, len(starts), block_size, g)
''',
        'masked_cross_entropy': '''import torch.nn.functional as F


def masked_cross_entropy(logits, targets, ignore_index=-100):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=ignore_index)
''',
        'train_step': '''def train_step(model, optimizer, x, y, grad_clip=1.0):
    optimizer.zero_grad()
    _, loss = model(x, y)  # the reference loss inside GPT.forward (F.cross_entropy)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()
''',
        'train_loop': '''from lmcourse.data import get_batch


def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0):
    losses = []
    for _ in range(steps):
        x, y = get_batch(data, batch_size, block_size, generator)
        optimizer.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
''',
    },
    'hw5_generation_kv_cache': {
        'generate_loop': '''import lmcourse.generate as _gen
from lmcourse.sampling import SamplingConfig


def generate_loop(model, prompt, max_new_tokens, sample_next, eos_id=None):
    out = _gen.generate(model, prompt, max_new_tokens, SamplingConfig(temperature=0), eos_token_id=eos_id)
    return out.new_tokens[0], out.finish_reasons[0]
''',
        'cached_attention': '''import lmcourse.model as _ref


class CachedSelfAttention(_ref.CausalSelfAttention):
    def __init__(self, n_embd, n_head, n_kv_head=None, bias=True):
        super().__init__(_ref.GPTConfig(n_embd=n_embd, n_head=n_head, n_kv_head=n_kv_head, bias=bias))
        self.k_cache = self.v_cache = None

    def reset_cache(self):
        self.k_cache = self.v_cache = None

    def forward(self, x, use_cache=False):
        return super().forward(x)
''',
        'kv_cache_bytes': '''from lmcourse.long_context import kv_cache_bytes as _reference


def kv_cache_bytes(n_layer, n_kv_head, head_dim, seq_len, batch=1, bytes_per_elem=2):
    return _reference(n_layer, n_kv_head, head_dim, seq_len, batch, bytes_per_elem)
''',
    },
    'hw6_decoding': {
        'temperature': '''from lmcourse.sampling import apply_temperature
''',
        'top_k': '''import lmcourse.sampling as _s


def top_k_filter(logits, k):
    return _s.top_k_filter(logits, k)
''',
        'top_p': '''def top_p_filter(logits, p):
    from transformers.generation.logits_process import TopPLogitsWarper

    return TopPLogitsWarper(p)(None, logits)
''',
        'repetition_penalty': '''import lmcourse.sampling as _s


def apply_repetition_penalty(logits, previous_ids, penalty):
    return _s.apply_repetition_penalty(logits, previous_ids, penalty)
''',
        'beam_search': '''from lmcourse.beam import beam_search as _ref_beam


def beam_search(model, prompt_ids, num_beams, max_new_tokens, length_penalty=1.0, eos_token_id=None):
    out = _ref_beam(model, prompt_ids, num_beams, max_new_tokens, length_penalty=length_penalty,
                    eos_token_id=eos_token_id)
    return out.sequences[0], out.scores[0]
''',
        'accept_or_resample': '''from lmcourse.speculative import accept_or_resample
''',
    },
}

LOOPS = {
    'hw1_probability_loss': {
        'entropy': '''def entropy(logits, dim=-1):
    while True:
        dim = dim + 0
''',
    },
    'hw2_tokenisation': {
        'train_bpe': '''def train_bpe(text, n_merges):
    while True:
        n_merges = n_merges + 0
''',
    },
    'hw3_causal_attention': {
        'mhsa': '''class MultiHeadCausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, bias=True):
        super().__init__()
        while True:
            n_embd = n_embd + 0
''',
    },
    'hw4_training': {
        'train_loop': '''def train_loop(model, optimizer, data, steps, batch_size, block_size, generator, grad_clip=1.0):
    while True:
        steps = steps + 0
''',
    },
    'hw5_generation_kv_cache': {
        'generate_loop': '''def generate_loop(model, prompt, max_new_tokens, sample_next, eos_id=None):
    while True:
        max_new_tokens = max_new_tokens + 0
''',
    },
    'hw6_decoding': {
        'top_k': '''def top_k_filter(logits, k):
    while True:
        k = k + 0
''',
    },
}
