import pytest
import torch

from diffcore.errors import DataError, InvalidInputError
from difftext.corpus import load_documents, split_documents, split_of
from difftext.decode import generate_ar, generate_blocks
from difftext.sdar import BlockDiffusionObjective, block_diffusion_mask, nll_bound


def _tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=256, attn_implementation="sdpa")  # fmt: skip
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


def test_ar_cache_matches_no_cache():
    m = _tiny()
    g = generate_ar(m, [5, 6, 7], max_new_tokens=6, eos_id=2)
    ids = [5, 6, 7]
    for _ in range(len(g.tokens)):
        ids.append(int(m(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    assert ids[3:] == g.tokens


@pytest.mark.parametrize("threshold", [1.0, 0.5])
def test_block_decoding_is_deterministic_and_bounded(threshold):
    m = _tiny()
    a = generate_blocks(m, [5, 6, 7, 8, 9], max_new_tokens=8, block=4, mask_id=3, eos_id=2, threshold=threshold)
    b = generate_blocks(m, [5, 6, 7, 8, 9], max_new_tokens=8, block=4, mask_id=3, eos_id=2, threshold=threshold)
    assert a.tokens == b.tokens and len(a.tokens) <= 8
    assert all(1 <= s <= 4 for s in a.steps_per_block)
    with pytest.raises(InvalidInputError):
        generate_blocks(m, [5], max_new_tokens=4, block=4, mask_id=3, eos_id=2, threshold=1.5)


def test_dkv_with_refresh_every_step_is_exact_within_a_block():
    """Recomputing the block at every step, dKV-Cache's query order is the only difference: the same tokens."""
    from difftext.decode import generate_blocks_dkv

    m = _tiny()
    kw = dict(max_new_tokens=4, block=4, mask_id=3, eos_id=2, threshold=0.03)
    exact = generate_blocks(m, [5, 6, 7, 8], **kw)
    dkv = generate_blocks_dkv(m, [5, 6, 7, 8], refresh=1, **kw)
    assert dkv.tokens == exact.tokens
    lazy = generate_blocks_dkv(m, [5, 6, 7, 8, 9], max_new_tokens=12, block=4, mask_id=3, eos_id=2)
    full = generate_blocks(m, [5, 6, 7, 8, 9], max_new_tokens=12, block=4, mask_id=3, eos_id=2)
    assert lazy.forwards < full.forwards  # no commit passes
