"""The API contract every domain package's public class meets, as a test base its tests subclass.

The contract (``docs/conventions.md``): the shipped weights load; a corrupt
checkpoint gives :class:`~diffcore.errors.CheckpointError` and nothing else;
seeds go through :func:`diffcore.validate.check_seed`; wrong inputs give typed
errors; the same seed gives the same output; concurrent calls from threads
equal sequential ones. diffusers' shared scheduler test base is the model::

    from diffcore.testing import APIContract

    class TestPlannerContract(APIContract):
        weights = WEIGHTS                       # the shipped weights root
        copy = ("diffusiondrive",)              # what the fuzz tests copy and corrupt

        def load(self, path=None):
            return Planner.load("diffusiondrive", path=path)

        def call(self, model, seed):
            return model.plan(SCENE, seed=seed)
        ...

pytest is a dev dependency, not a runtime one: it is imported inside the tests,
so importing this module needs only diffcore.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from diffcore.errors import CheckpointError, DiffcoreError, InvalidInputError
from diffcore.validate import SEED_LIMIT

#: values every seeded API refuses with InvalidInputError (the last in-range seed is accepted)
BAD_SEEDS: tuple[Any, ...] = (-1, SEED_LIMIT, True, 1.5, "0", None)


def truncate(path: Path) -> None:
    """Keep the first half of the file (at least its first byte gone from the end)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_header_bits(path: Path) -> None:
    """Flip one bit in each of the first 64 bytes: a safetensors file's header length and JSON header."""
    data = bytearray(path.read_bytes())
    for i in range(min(64, len(data))):
        data[i] ^= 1 << (i % 8)
    path.write_bytes(bytes(data))


def break_json(path: Path) -> None:
    """Cut a JSON file mid-object, so it no longer parses."""
    text = path.read_text()
    path.write_text(text[: max(1, len(text) // 2)])


def wrong_json_types(path: Path) -> None:
    """Replace every value of a JSON object by a string of nonsense: it parses but describes no model."""
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({k: "nonsense" for k in cfg} if isinstance(cfg, dict) else "nonsense"))


class APIContract:
    """Tests of one domain class's public contract; a subclass provides the hooks below.

    The name does not start with ``Test``, so pytest collects the subclasses only.
    """

    #: the shipped weights root (laid out as ``load(path=...)`` expects)
    weights: ClassVar[Path]
    #: folders (relative to ``weights``) the fuzz tests copy into a temp root: what ``load`` reads
    copy: ClassVar[tuple[str, ...]] = ()
    #: whether the API takes a seed; if not, ``call``'s seed only varies the input and the seed tests skip
    takes_seed: ClassVar[bool] = True
    #: whether two seeds give two different outputs (a stochastic sampler), checked when True
    seed_changes_output: ClassVar[bool] = False
    #: dotted names of the functions that load weights; the CLI test makes them fail to prove they are not reached
    model_loaders: ClassVar[tuple[str, ...]] = ("diffcore.checkpoint.load_model",)

    # ------------------------------------------------------------------ hooks

    def load(self, path: Path | None = None) -> Any:
        """The public class loaded from the weights root ``path`` (None: the shipped weights)."""
        raise NotImplementedError

    def call(self, model: Any, seed: Any) -> Any:
        """One tiny call of the main verb, with ``seed`` passed to the API (or used to draw its input)."""
        raise NotImplementedError

    def assert_same(self, a: Any, b: Any) -> None:
        """Fail unless two outputs of :meth:`call` are equal (exactly: same seed, same numbers)."""
        raise NotImplementedError

    def bad_inputs(self, model: Any) -> list[tuple[Callable[[], Any], type[DiffcoreError]]]:
        """Calls that must fail, each with the typed error it must raise."""
        raise NotImplementedError

    def cli_seed_argv(self, seed: str) -> list[str] | None:
        """The package CLI's argv running with ``--seed seed`` (None: the CLI takes no seed)."""
        return None

    def cli_main(self, argv: list[str]) -> int:
        """The package CLI's ``main``."""
        raise NotImplementedError

    def cli_bad_argvs(self) -> list[list[str]]:
        """Argument lists the CLI must refuse (status 2, one ``error:`` line) before it loads any model."""
        return []

    # ------------------------------------------------------------------ the contract

    def _fuzzed_root(self, tmp_path: Path) -> Path:
        root = tmp_path / "weights"
        for rel in self.copy or ("",):
            shutil.copytree(self.weights / rel, root / rel)
        return root

    def _files(self, pattern: str) -> list[Path]:
        """The shipped files matching ``pattern`` under the copied folders, relative to the weights root."""
        files = sorted(f.relative_to(self.weights) for rel in self.copy or ("",) for f in (self.weights / rel).rglob(pattern))
        assert files, f"no {pattern} under {self.weights} / {self.copy}: the contract would test nothing"
        return files

    def _assert_refused(self, tmp_path: Path, pattern: str, corrupt: Callable[[Path], None], *, always: bool) -> None:
        """Corrupt each ``pattern`` file of a fresh copy in turn: loading gives CheckpointError (or, unless
        ``always``, a model that loads: a flipped bit may leave a valid file)."""
        import pytest

        for i, rel in enumerate(self._files(pattern)):
            root = self._fuzzed_root(tmp_path / f"copy{i}")
            corrupt(root / rel)
            if always:
                with pytest.raises(CheckpointError):
                    self.load(root)
            else:
                try:
                    self.load(root)
                except CheckpointError:
                    pass

    def test_shipped_weights_load(self) -> None:
        model = self.load()
        assert model is not None
        self.assert_same(self.call(model, 0), self.call(self.load(self.weights), 0))

    def test_missing_weights_root(self, tmp_path: Path) -> None:
        import pytest

        with pytest.raises(CheckpointError):
            self.load(tmp_path / "nowhere")

    def test_truncated_safetensors(self, tmp_path: Path) -> None:
        self._assert_refused(tmp_path, "*.safetensors", truncate, always=True)

    def test_bit_flipped_safetensors(self, tmp_path: Path) -> None:
        self._assert_refused(tmp_path, "*.safetensors", flip_header_bits, always=False)

    def test_broken_config_json(self, tmp_path: Path) -> None:
        self._assert_refused(tmp_path, "config.json", break_json, always=True)

    def test_config_json_of_wrong_types(self, tmp_path: Path) -> None:
        self._assert_refused(tmp_path, "config.json", wrong_json_types, always=True)

    def test_seeds_are_validated(self) -> None:
        import pytest

        if not self.takes_seed:
            pytest.skip("this API takes no seed")
        model = self.load()
        self.assert_same(self.call(model, SEED_LIMIT - 1), self.call(model, SEED_LIMIT - 1))
        for bad in BAD_SEEDS:
            with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
                self.call(model, bad)

    def test_cli_seeds_are_validated(self, capsys: Any) -> None:
        import pytest

        if self.cli_seed_argv("0") is None:
            pytest.skip("this CLI takes no seed")
        for bad in ("-1", str(SEED_LIMIT), "1.5", "x"):
            with pytest.raises(SystemExit) as exit_:
                self.cli_main(self.cli_seed_argv(bad))
            assert exit_.value.code == 2
            assert re.search(r"error: argument --seed: .*" + re.escape(bad), capsys.readouterr().err)

    def test_cli_refuses_bad_arguments_before_loading(self, capsys: Any, monkeypatch: Any) -> None:
        import pytest

        argvs = self.cli_bad_argvs()
        if not argvs:
            pytest.skip("no bad argument lists given for this CLI")

        def no_load(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a model was loaded before the arguments were checked")

        for name in self.model_loaders:
            monkeypatch.setattr(name, no_load)
        for argv in argvs:
            try:
                code = self.cli_main(argv)
            except SystemExit as e:  # argparse's own refusals
                code = e.code
            assert code == 2, f"{argv}: exit status {code}"
            err = capsys.readouterr().err
            assert "error:" in err and "Traceback" not in err, f"{argv}: {err}"

    def test_bad_inputs_give_typed_errors(self) -> None:
        import pytest

        model = self.load()
        cases = self.bad_inputs(model)
        assert cases, "bad_inputs() lists no case"
        for call, error in cases:
            assert issubclass(error, DiffcoreError), f"{error.__name__} is not a diffcore error"
            with pytest.raises(error):
                call()

    def test_same_seed_same_output(self) -> None:
        model = self.load()
        self.assert_same(self.call(model, 7), self.call(model, 7))
        if self.seed_changes_output:
            try:
                self.assert_same(self.call(model, 7), self.call(model, 8))
            except AssertionError:
                return
            raise AssertionError("seeds 7 and 8 gave the same output: is the seed used at all?")

    def test_threads_equal_sequential(self) -> None:
        model = self.load()
        seeds = [0, 1, 2, 3]
        sequential = [self.call(model, s) for s in seeds]
        with ThreadPoolExecutor(max_workers=len(seeds)) as pool:
            threaded = list(pool.map(lambda s: self.call(model, s), seeds))
        for a, b in zip(sequential, threaded, strict=True):
            self.assert_same(a, b)
