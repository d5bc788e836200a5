"""The plugin contract between diffcore and the domain packages.

A domain package declares itself with ONE :class:`Domain` value, whose
callables are named by ``"module:attribute"`` strings that diffcore resolves
only when they are used, so importing a declaration imports no model, no
torch-heavy module and no gradio::

    # diffcodec/domain.py
    domain = Domain(
        name="codec",
        title="Image codec",
        paper="Guo et al. 2025, OSCAR …",
        module="diffcodec",  # where the conventional files are: smoke.py, ui.py, train.py, bench.py
        load="diffcodec.codec:Codec.load",  # load(device=...) -> what smoke takes
    )

``module`` fills in the references a package laid out as ``docs/new-domain.md``
says need not spell out: ``smoke="diffcodec.smoke:smoke"`` (``smoke(loaded) ->
{name: float}``), ``demo="diffcodec.ui:build_demo"`` (a ``gr.Blocks``, not
launched), ``train="diffcodec.train:main"`` (``main(argv)`` retrains the shipped
weights) and ``benchmarks={"codec": "diffcodec.bench:run"}`` (``run(out_dir,
quick=False, command=None) -> report path``). Any of them can be given instead.

and registers it under the entry-point group ``diffcore.domains``::

    [project.entry-points."diffcore.domains"]
    codec = "diffcodec.domain:domain"

:func:`discover` lists what is installed without importing it;
:meth:`DomainEntry.load` imports one declaration and checks it, raising
:class:`~diffcore.errors.PluginError` (never skipping silently) when the
package is broken.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import MappingProxyType
from typing import Any

from diffcore.errors import PluginError, UnknownNameError

GROUP = "diffcore.domains"

#: a benchmark: ``run(out_dir, quick=False, command=None) -> path of the Markdown report``
Benchmark = Callable[..., Path]

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve(ref: str) -> Any:
    """The object a ``"package.module:attr.sub"`` reference names (imported now)."""
    if not isinstance(ref, str) or not _REF.match(ref):
        raise PluginError(f"{ref!r} is not a 'module:attribute' reference")
    module, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise PluginError(f"{ref}: cannot import {module}: {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise PluginError(f"{ref}: {module} has no attribute {attr}") from e
    return obj


@dataclass(frozen=True)
class Domain:
    """What a domain package provides: names, and references to its callables.

    Attributes:
        name: short id used on the command line (``diffcore serve codec``),
            lower case, digits and dashes.
        title: human title, the hub's tab label.
        paper: the paper(s) the package follows, as a citation line.
        module: the module holding the conventional ``smoke.py``, ``ui.py``,
            ``train.py`` and ``bench.py``; it supplies the references below that
            are not given.
        load: ``load(device="cpu")`` returning the shipped model(s) that
            ``smoke`` takes.
        smoke: ``smoke(loaded)`` running the domain's tiny smoke inputs and
            returning a few finite numbers (CI checks each installed package
            with it: ``diffcore smoke NAME``).
        demo: ``build_demo()`` building (not launching) the Gradio ``Blocks``;
            gradio is imported there, never by the declaration.
        train: ``main(argv)`` retraining the shipped weights
            (``diffcore train NAME ARGS…``).
        benchmarks: benchmark name -> ``run(out_dir, quick=False, command=None)``
            reference (``diffcore bench NAME``).
    """

    name: str
    title: str
    paper: str
    load: str
    module: str = ""
    smoke: str = ""
    demo: str = ""
    train: str = ""
    benchmarks: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.module:
            defaults = {"smoke": "smoke:smoke", "demo": "ui:build_demo", "train": "train:main"}
            for attr, tail in defaults.items():
                if not getattr(self, attr):
                    object.__setattr__(self, attr, f"{self.module}.{tail}")
            if self.benchmarks is None:
                object.__setattr__(self, "benchmarks", {self.name: f"{self.module}.bench:run"})
        if self.benchmarks is None:
            object.__setattr__(self, "benchmarks", {})
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PluginError(f"domain name {self.name!r} must be lower case letters, digits and dashes")
        for attr in ("title", "paper"):
            if not isinstance(getattr(self, attr), str) or not getattr(self, attr).strip():
                raise PluginError(f"domain {self.name!r} needs a non-empty {attr}")
        refs = {"load": self.load, "smoke": self.smoke, "demo": self.demo, "train": self.train}
        refs.update({f"benchmarks[{k!r}]": v for k, v in dict(self.benchmarks).items()})
        for what, ref in refs.items():
            if not isinstance(ref, str) or not _REF.match(ref):
                raise PluginError(f"domain {self.name!r}: {what} must be a 'module:attribute' string, got {ref!r}")
        for bench in self.benchmarks:
            if not isinstance(bench, str) or not _NAME.match(bench):
                raise PluginError(f"domain {self.name!r}: benchmark name {bench!r} must be lower case, digits and dashes")
        object.__setattr__(self, "benchmarks", MappingProxyType(dict(self.benchmarks)))

    def load_model(self, device: str = "cpu") -> Any:
        """Load the shipped model(s) onto ``device``."""
        return resolve(self.load)(device=device)

    def run_smoke(self, loaded: Any) -> dict[str, float]:
        """The smoke numbers of ``loaded`` (checked: a non-empty mapping of finite floats)."""
        numbers = dict(resolve(self.smoke)(loaded))
        bad = {k: v for k, v in numbers.items() if not isinstance(v, float) or v != v or v in (float("inf"), float("-inf"))}
        if not numbers or bad:
            raise PluginError(f"domain {self.name!r}: smoke must return finite floats, got {numbers}")
        return numbers

    def build_demo(self) -> Any:
        """Build (not launch) the domain's Gradio ``Blocks``."""
        return resolve(self.demo)()

    def run_train(self, argv: list[str]) -> None:
        """Retrain the shipped weights with the recipe's own arguments."""
        resolve(self.train)(argv)

    def benchmark(self, name: str) -> Benchmark:
        """The benchmark callable called ``name``."""
        if name not in self.benchmarks:
            have = ", ".join(self.benchmarks) or "none"
            raise UnknownNameError(f"domain {self.name!r} has no benchmark {name!r}; it has: {have}")
        return resolve(self.benchmarks[name])


@dataclass(frozen=True)
class DomainEntry:
    """An installed domain, not yet imported; ``package`` is the distribution that registers it."""

    name: str
    entry_point: EntryPoint
    package: str = ""

    def load(self) -> Domain:
        """Import the declaration and check it."""
        try:
            obj = self.entry_point.load()
        except Exception as e:  # a plugin's import error must name the plugin
            raise PluginError(f"domain {self.name!r} ({self.entry_point.value}) failed to import: {e!r}") from e
        if not isinstance(obj, Domain):
            raise PluginError(
                f"domain {self.name!r} ({self.entry_point.value}) is a {type(obj).__name__}, not a diffcore.plugins.Domain"
            )
        if obj.name != self.name:
            raise PluginError(f"domain registered as {self.name!r} calls itself {obj.name!r}; make them equal")
        return obj


def discover(package: str | None = None) -> dict[str, DomainEntry]:
    """Installed domains by name, in a stable order (``prior`` first, then A–Z).

    Nothing is imported. Two packages registering the same name is an error.
    With ``package`` (a distribution name such as ``"diffcodec"``), only the
    domains that distribution registers.
    """
    found: dict[str, DomainEntry] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found and found[ep.name].entry_point.value != ep.value:
            raise PluginError(
                f"two packages register the domain {ep.name!r}: {found[ep.name].entry_point.value} and {ep.value}; "
                "uninstall one of them"
            )
        dist = ep.dist.name if ep.dist is not None else ""
        found[ep.name] = DomainEntry(ep.name, ep, dist)
    if package is not None:
        found = {n: e for n, e in found.items() if e.package.replace("_", "-") == package.replace("_", "-")}
        if not found:
            raise UnknownNameError(f"the installed package {package!r} registers no domain")
    order = sorted(found, key=lambda n: (n != "prior", n))
    return {n: found[n] for n in order}


def get_domain(name: str) -> Domain:
    """Import and return the installed domain ``name``."""
    found = discover()
    if name not in found:
        raise UnknownNameError(f"no installed domain {name!r}; installed: {', '.join(found) or 'none'}")
    return found[name].load()


def find_benchmark(name: str) -> tuple[Domain, Benchmark]:
    """The benchmark called ``name`` and the domain that provides it."""
    available = []
    for entry in discover().values():
        dom = entry.load()
        if name in dom.benchmarks:
            return dom, dom.benchmark(name)
        available += list(dom.benchmarks)
    raise UnknownNameError(f"no benchmark {name!r}; available: {', '.join(available) or 'none'}")
