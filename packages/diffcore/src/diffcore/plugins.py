"""The plugin contract between diffcore and the domain packages.

A domain package registers ONE object under the entry-point group
``diffcore.domains``::

    [project.entry-points."diffcore.domains"]
    codec = "diffcodec.domain:domain"

The object must satisfy :class:`Domain`. :func:`discover` lists what is
installed without importing it; :func:`get_domain` imports one and checks the
contract, raising :class:`~diffcore.errors.PluginError` (never skipping
silently) when the package is broken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from diffcore.errors import PluginError, UnknownNameError

GROUP = "diffcore.domains"

#: a benchmark: ``run(out_dir, quick=False) -> path of the Markdown report``
Benchmark = Callable[..., Path]


@runtime_checkable
class Domain(Protocol):
    """What every domain package provides.

    Attributes:
        name: short id used on the command line (``diffcore serve codec``).
        title: human title, the hub's tab label.
        paper: the paper(s) the package follows, as a citation line.
        benchmarks: benchmark name -> callable; ``diffcore bench NAME`` runs it.
    """

    name: str
    title: str
    paper: str
    benchmarks: Mapping[str, Benchmark]

    def load(self, device: str = "cpu") -> Any:
        """Load the shipped model(s) onto ``device``; return what ``smoke`` takes."""

    def smoke(self, loaded: Any) -> Mapping[str, float]:
        """Run the domain's smoke inputs on ``loaded``; return a few checked numbers."""

    def build_demo(self) -> Any:
        """Build (not launch) the domain's Gradio ``Blocks``; imports gradio lazily."""

    def train(self, argv: list[str]) -> None:
        """Retrain the shipped weights (``diffcore train NAME [ARGS…]``)."""


@dataclass(frozen=True)
class DomainEntry:
    """An installed domain, not yet imported."""

    name: str
    entry_point: EntryPoint

    def load(self) -> Domain:
        return _load(self)


def discover() -> dict[str, DomainEntry]:
    """Installed domains by name, in a stable order (``prior`` first, then A–Z).

    Nothing is imported. Two packages registering the same name is an error.
    """
    found: dict[str, DomainEntry] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found and found[ep.name].entry_point.value != ep.value:
            raise PluginError(
                f"two packages register the domain {ep.name!r}: {found[ep.name].entry_point.value} and {ep.value}; "
                "uninstall one of them"
            )
        found[ep.name] = DomainEntry(ep.name, ep)
    order = sorted(found, key=lambda n: (n != "prior", n))
    return {n: found[n] for n in order}


def _load(entry: DomainEntry) -> Domain:
    try:
        obj = entry.entry_point.load()
    except Exception as e:  # a plugin's import error must name the plugin
        raise PluginError(f"domain {entry.name!r} ({entry.entry_point.value}) failed to import: {e!r}") from e
    missing = [a for a in ("name", "title", "paper", "benchmarks", "load", "smoke", "build_demo", "train") if not hasattr(obj, a)]
    if missing:
        raise PluginError(f"domain {entry.name!r} ({entry.entry_point.value}) lacks {missing} of the Domain contract")
    if obj.name != entry.name:
        raise PluginError(f"domain registered as {entry.name!r} calls itself {obj.name!r}; make them equal")
    return obj


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
            return dom, dom.benchmarks[name]
        available += list(dom.benchmarks)
    raise UnknownNameError(f"no benchmark {name!r}; available: {', '.join(available) or 'none'}")
