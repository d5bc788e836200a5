import pytest
import torch

from diffcore.errors import DataError, InvalidInputError
from difftext import decode
from difftext.corpus import load_documents, split_documents, split_of
from difftext.decode import block_causal, run
from difftext.sdar import BlockDiffusionObjective, block_diffusion_mask, nll_bound


def _tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def test_documents_split_by_name():
    splits = split_documents(load_documents())
    names = {s: {d.name for d in v} for s, v in splits.items()}
    assert not names["train"] & names["test"] and not names["train"] & names["val"]
    assert all(split_of(n) == "test" for n in names["test"])


def test_folder_corpus(tmp_path):
    with pytest.raises(DataError):
        load_documents(tmp_path)
    (tmp_path / "a.txt").write_text("hello")
    assert [d.name for d in load_documents(tmp_path)] == ["a.txt"]
    with pytest.raises(DataError, match="came out empty"):
        split_documents(load_documents(tmp_path))


def test_block_diffusion_mask_layout():
    m = block_diffusion_mask(8, 4)
    assert m[:4, :4].all() and not m[:4, 4:8].any()  # noisy block 0: itself only
    assert m[4:8, 8:12].all() and not m[4:8, 12:].any()  # noisy block 1 sees clean block 0, not clean block 1
    assert not m[8:, :8].any()  # clean tokens never see noisy ones
    assert m[8:12, 8:12].all() and not m[8:12, 12:].any()  # clean: block-causal
    with pytest.raises(InvalidInputError):
        block_diffusion_mask(10, 4)


def test_clean_stream_is_independent_of_the_noisy_one():
    """The clean half of [x_t ; x] is a block-causal pass on x, whatever x_t holds."""
    m = _tiny()
    x = torch.randint(4, 50, (1, 16))
    attn = block_diffusion_mask(16, 4)[None, None]
    pos = torch.arange(16).repeat(2)[None]
    a = m(input_ids=torch.cat([torch.full_like(x, 3), x], 1), attention_mask=attn, position_ids=pos).logits[:, 16:]
    b = m(input_ids=torch.cat([torch.randint(4, 50, (1, 16)), x], 1), attention_mask=attn, position_ids=pos).logits[:, 16:]
    assert torch.allclose(a, b, atol=1e-5)
    obj = BlockDiffusionObjective(m, mask_id=3)
    assert torch.isfinite(obj(torch.randint(4, 50, (2, 32)))["loss"])
    s = torch.randint(4, 50, (300,))
    assert nll_bound(m, s, block=4, mask_id=3) == nll_bound(m, s, block=4, mask_id=3)  # seeded estimate


def test_ar_cache_matches_no_cache_and_batches():
    m = _tiny()
    g = run(decode.ar(m, [[5, 6, 7], [9, 8, 7]], max_new_tokens=6, eos_id=2))
    for prompt, toks in zip([[5, 6, 7], [9, 8, 7]], g.tokens, strict=True):
        ids = list(prompt)
        for _ in range(len(toks)):
            ids.append(int(m(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        assert ids[3:] == toks
    assert g.forwards == 6


def _reference_blocks(m, prompt, n_blocks, block, mask_id):
    """Block decoding without any cache: every step recomputes the whole sequence, block-causally (threshold 1)."""
    full = len(prompt) // block * block
    seq, given = list(prompt), len(prompt) - full
    for _ in range(n_blocks):
        cur = seq[full:] + [mask_id] * (block - given)
        while mask_id in cur:
            ids = torch.tensor([seq[:full] + cur])
            logits = m(input_ids=ids, attention_mask=block_causal(len(ids[0]), block)[None, None]).logits[0, full:]
            probs = torch.softmax(logits, -1).max(-1)
            conf = torch.where(torch.tensor(cur) == mask_id, probs.values, torch.tensor(-1.0))
            i = int(conf.argmax())
            cur[i] = int(probs.indices[i])
        seq = seq[:full] + cur
        full, given = full + block, 0
    return seq[len(prompt) :]


@pytest.mark.parametrize("prompt", [[5, 6, 7, 8, 9], [5, 6, 7, 8]])
def test_block_decoding_with_its_cache_equals_recomputing_everything(prompt):
    """The cache, and the finished block entering it in the next block's first pass, change nothing."""
    m = _tiny()
    g = run(decode.blocks(m, [prompt], max_new_tokens=12, block=4, mask_id=3, eos_id=99, threshold=1.0))
    ref = _reference_blocks(m, prompt, 3 + (len(prompt) % 4 > 0), 4, 3)
    assert g.tokens[0] == ref[:12]
    assert g.forwards == sum(g.steps_per_block)  # no separate commit passes


@pytest.mark.parametrize("threshold", [1.0, 0.5])
def test_block_decoding_is_deterministic_bounded_and_batches(threshold):
    m = _tiny()
    kw = dict(max_new_tokens=8, block=4, mask_id=3, eos_id=2, threshold=threshold)
    a = run(decode.blocks(m, [[5, 6, 7, 8, 9]], **kw))
    b = run(decode.blocks(m, [[5, 6, 7, 8, 9], [9, 8, 7, 6, 5]], **kw))
    assert a.tokens[0] == b.tokens[0] and len(a.tokens[0]) <= 8
    assert b.tokens[1] == run(decode.blocks(m, [[9, 8, 7, 6, 5]], **kw)).tokens[0]
    assert all(1 <= s <= 4 for s in a.steps_per_block)
    with pytest.raises(InvalidInputError):
        run(decode.blocks(m, [[5]], max_new_tokens=4, block=4, mask_id=3, eos_id=2, threshold=1.5))
    with pytest.raises(InvalidInputError):
        run(decode.blocks(m, [[5], [5, 6]], max_new_tokens=4, block=4, mask_id=3, eos_id=2))


def test_dkv_with_refresh_every_step_is_exact_within_a_block():
    """Recomputing the block at every step, dKV-Cache's query order is the only difference: the same tokens."""
    m = _tiny()
    kw = dict(max_new_tokens=4, block=4, mask_id=3, eos_id=2, threshold=0.03)
    exact = run(decode.blocks(m, [[5, 6, 7, 8]], **kw))
    assert run(decode.blocks_dkv(m, [5, 6, 7, 8], refresh=1, **kw)).tokens == exact.tokens
    lazy = run(decode.blocks_dkv(m, [5, 6, 7, 8, 9], max_new_tokens=12, block=4, mask_id=3, eos_id=2))
    assert lazy.forwards == sum(lazy.steps_per_block) and len(lazy.tokens[0]) == 12


def test_decoders_stream_every_forward_pass():
    m = _tiny()
    steps = list(decode.iter_steps(decode.blocks(m, [[5, 6, 7, 8, 9]], max_new_tokens=8, block=4, mask_id=3, eos_id=99)))
    final = steps.pop()
    assert [s.forwards for s in steps] == list(range(1, final.forwards + 1))
    assert any(None in s.block for s in steps)
    assert (steps[-1].done + list(steps[-1].block))[:8] == final.tokens[0]


def test_static_top_k_commits_block_over_steps_tokens_per_step():
    m = _tiny()
    g = run(decode.blocks(m, [[5, 6, 7, 8]], max_new_tokens=8, block=4, mask_id=3, eos_id=99, threshold=1.0, steps=2))
    assert g.steps_per_block == [2, 2] and g.forwards == 4 and len(g.tokens[0]) == 8
    one = run(decode.blocks_dkv(m, [5, 6, 7, 8], max_new_tokens=8, block=4, mask_id=3, eos_id=99, threshold=1.0, steps=1))
    assert one.steps_per_block == [1, 1]
    for bad in (0, 5, 2.0):
        with pytest.raises(InvalidInputError, match="steps per block"):
            run(decode.blocks(m, [[5, 6, 7, 8]], max_new_tokens=4, block=4, mask_id=3, eos_id=99, steps=bad))


class _PrefersMask(torch.nn.Module):
    """A model whose top prediction is always the mask token (an untrained or broken checkpoint can do this)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    @property
    def device(self):
        return self.m.device

    def forward(self, **kw):
        out = self.m(**kw)
        out.logits[..., 3] += 100.0
        return out


@pytest.mark.parametrize("dkv", [False, True])
def test_a_model_that_predicts_the_mask_token_cannot_stall_decoding(dkv):
    m = _PrefersMask(_tiny())
    kw = dict(max_new_tokens=8, block=4, mask_id=3, eos_id=99, threshold=0.9)
    dec = decode.blocks_dkv(m, [5, 6, 7], **kw) if dkv else decode.blocks(m, [[5, 6, 7]], **kw)
    g = run(dec)
    assert len(g.tokens[0]) == 8 and 3 not in g.tokens[0] and g.forwards <= 1 + 4 + 4  # 1 + 4 + 4 new tokens
