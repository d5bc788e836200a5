import json

import pytest

from diffcore.errors import CheckpointError, InvalidInputError, UnknownNameError
from diffcore.train import TrainingCard
from difftext import ARLM, BlockDiffusionLM, BlockSizeError, EmptyPromptError, Partial, PromptTooLongError, TextResult
from difftext.cli import main

PROMPT = "The import statement"


@pytest.fixture(scope="module")
def sdar():
    return BlockDiffusionLM.load()


@pytest.fixture(scope="module")
def ar():
    return ARLM.load()


def test_generate_counts_and_is_deterministic_for_a_seed(sdar, ar):
    a = sdar.generate(PROMPT, max_new_tokens=12, temperature=0.8, seed=3)
    b = sdar.generate(PROMPT, max_new_tokens=12, temperature=0.8, seed=3)
    assert a.text == b.text and a.tokens == b.tokens and 0 < len(a.tokens) <= 12
    assert a.forwards == sum(a.steps_per_block) and a.seconds > 0
    g = ar.generate(PROMPT, max_new_tokens=12, temperature=0.8, seed=3)
    assert g.tokens == ar.generate(PROMPT, max_new_tokens=12, temperature=0.8, seed=3).tokens
    assert g.forwards == len(g.tokens) or g.forwards == len(g.tokens) + 1  # one pass per token (+1 that found EOS)
    assert sdar.tokenizer.decode(a.tokens) == a.text


def test_any_unicode_prompt_is_accepted(sdar):
    r = sdar.generate("Zürich — 東京 🙂 naïve", max_new_tokens=4)
    assert isinstance(r.text, str) and r.prompt_tokens > 5


@pytest.mark.parametrize("dkv", [False, True])
def test_stream_animates_then_returns_what_generate_returns(sdar, dkv):
    items = list(sdar.stream(PROMPT, max_new_tokens=8, dkv=dkv))
    *partials, final = items
    assert isinstance(final, TextResult) and all(isinstance(p, Partial) for p in partials)
    assert len(partials) == final.forwards
    assert any(None in p.block for p in partials)  # masked positions are shown while a block fills in
    assert final.tokens == sdar.generate(PROMPT, max_new_tokens=8, dkv=dkv).tokens


def test_ar_stream_grows_token_by_token(ar):
    *partials, final = list(ar.stream(PROMPT, max_new_tokens=6))
    assert [len(ar.tokenizer(p.text, add_special_tokens=False)["input_ids"]) > 0 for p in partials]
    assert partials[-1].text == final.text


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(prompt=""), EmptyPromptError),
        (dict(prompt="   \n"), EmptyPromptError),
        (dict(prompt="word " * 400), PromptTooLongError),
        (dict(max_new_tokens=250), PromptTooLongError),
        (dict(block_size=5), BlockSizeError),
        (dict(block_size=2), BlockSizeError),
        (dict(block_size=0), BlockSizeError),
        (dict(threshold=0.0), InvalidInputError),
        (dict(threshold=1.5), InvalidInputError),
        (dict(threshold=float("nan")), InvalidInputError),
        (dict(temperature=-1.0), InvalidInputError),
        (dict(seed=-1), InvalidInputError),
        (dict(max_new_tokens=0), InvalidInputError),
        (dict(refresh=2), InvalidInputError),
        (dict(steps=5), InvalidInputError),
        (dict(steps=0), InvalidInputError),
    ],
)
def test_bad_input_is_refused_with_a_typed_error(sdar, kwargs, error):
    kwargs = {"prompt": PROMPT, **kwargs}
    with pytest.raises(error):
        sdar.generate(**kwargs)


def test_prompt_must_be_a_string(ar):
    with pytest.raises(InvalidInputError):
        ar.generate(123)


def test_missing_or_corrupt_weights_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="holds no difftext model"):
        BlockDiffusionLM.load(path=tmp_path)
    import shutil

    from difftext.lm import WEIGHTS

    bad = tmp_path / "bad"
    shutil.copytree(WEIGHTS / "sdar", bad / "sdar")
    (bad / "sdar" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        BlockDiffusionLM.load(path=bad)
    with pytest.raises(UnknownNameError, match="'sdar', not 'ar'"):
        BlockDiffusionLM.load("ar")


def test_cli_generate_and_eval(tmp_path, capsys):
    gen = tmp_path / "gen.json"
    assert main(["generate", PROMPT, "--max-new-tokens", "8", "--json", str(gen)]) == 0
    out = json.loads(gen.read_text())
    assert out["model"] == "sdar" and out["tokens"] <= 8 and out["forwards"] >= 2
    assert capsys.readouterr().out == PROMPT + out["text"] + "\n"
    assert main(["generate", PROMPT, "--max-new-tokens", "8", "--steps", "1", "--json", str(gen)]) == 0
    assert json.loads(gen.read_text())["forwards"] <= 3  # at most 3 blocks cover 8 tokens, one step each
    assert main(["generate", PROMPT, "--model", "ar", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.startswith(PROMPT)
    res = tmp_path / "eval.json"
    assert main(["eval", "--prompts", "2", "--max-new-tokens", "8", "--dkv", "--json", str(res)]) == 0
    data = json.loads(res.read_text())
    assert set(data["models"]) == {"ar", "sdar"} and data["models"]["sdar"]["tokens"] > 0


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["generate", ""], "prompt is empty"),
        (["generate", PROMPT, "--threshold", "0"], "threshold must be"),
        (["generate", PROMPT, "--refresh", "2"], "add --dkv"),
        (["generate", PROMPT, "--steps", "9"], "steps per block"),
        (["eval", "--weights", "/nonexistent"], "holds no difftext model"),
    ],
)
def test_cli_errors_exit_2_with_a_message(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("difftext: error: ") and msg in err


def test_train_forwards_its_arguments_and_reports_errors(monkeypatch, capsys):
    """``difftext train ARGS`` is ``diffcore train text ARGS``: the arguments reach difftext.train.main as given."""
    import difftext.train
    from diffcore.errors import DataError

    seen = []
    monkeypatch.setattr(difftext.train, "main", seen.append)
    assert main(["train", "--stage", "sdar", "--smoke"]) == 0
    assert seen == [["--stage", "sdar", "--smoke"]]

    def fail(argv):
        raise DataError("no .txt or .md files under ~/notes")

    monkeypatch.setattr(difftext.train, "main", fail)
    assert main(["train", "--data", "~/notes"]) == 2
    assert capsys.readouterr().err == "difftext: error: no .txt or .md files under ~/notes\n"


@pytest.mark.slow
def test_quick_bench_writes_the_report(tmp_path):
    from difftext.bench import run

    md = run(tmp_path, quick=True)
    text = md.read_text()
    for section in ("Likelihood", "Decoding at batch 1", "Decoding at batch 2", "One forward pass", "Goals", "Samples"):
        assert f"## {section}" in text
    data = json.loads((tmp_path / "text.json").read_text())
    rows = {r["setting"]: r for r in data["results"]["Decoding at batch 1 (test prompts)"]}
    assert 1.0 <= rows["AR greedy"]["forwards / token"] <= 1.0 + 1 / 8
    assert 0.25 <= rows["SDAR b4 thr 0.9"]["forwards / token"] <= 1.0 + 1 / 8
    for name in ("frontier", "speed"):
        assert (tmp_path / f"text_{name}.png").stat().st_size > 1000


@pytest.mark.slow
def test_cli_trains_converts_and_serves_a_smoke_model(tmp_path, capsys):
    runs, weights = tmp_path / "runs", tmp_path / "w"
    common = ["--smoke", "--out", str(runs), "--weights", str(weights)]
    assert main(["train", "--stage", "ar", *common]) == 0
    assert main(["train", "--stage", "sdar", *common]) == 0
    sdar, ar = TrainingCard.read(weights / "sdar"), TrainingCard.read(weights / "ar")
    assert (sdar.steps, ar.steps, sdar.batch) == (2, 4, 2)
    assert sdar.details["conversion_to_pretraining_steps"] == 0.5 and sdar.details["ar_steps"] == 4
    assert sdar.metrics["val_ar_nll_of_the_ar_model"] == ar.metrics["val_nll"]
    assert ar.details["documents"]["test"] > 0 and sdar.parameters == ar.parameters > 0
    assert sdar.command == "diffcore train text --stage sdar --seed 0 --smoke"
    lm = BlockDiffusionLM.load(path=weights)
    assert lm.model.config.hidden_size == 32
    assert lm.generate(PROMPT, max_new_tokens=4).forwards >= 1
    assert main(["eval", "--weights", str(weights), "--prompts", "1", "--max-new-tokens", "4"]) == 0
