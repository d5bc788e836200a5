"""Plugin contract: declarations, discovery, loud failures, and conformance of every installed domain."""

import dataclasses
from importlib.metadata import EntryPoint

import pytest

from diffcore.errors import PluginError, UnknownNameError
from diffcore.plugins import Domain, DomainEntry, discover, get_domain, resolve

DOMAINS = list(discover())

#: a valid declaration to vary: the prior's own references spelled out, without its benchmarks
_PRIOR = get_domain("prior")
DECL = {f.name: getattr(_PRIOR, f.name) for f in dataclasses.fields(Domain) if f.name not in ("benchmarks", "module")}


def test_prior_is_installed_and_first():
    assert DOMAINS[0] == "prior"


@pytest.mark.parametrize("name", DOMAINS)
def test_domain_conformance(name):
    """Each installed domain loads, runs its smoke inputs on CPU and builds its demo; every reference resolves."""
    import gradio as gr

    dom = get_domain(name)
    assert isinstance(dom, Domain)
    assert dom.name == name and dom.title and dom.paper
    numbers = dom.run_smoke(dom.load_model(device="cpu"))
    assert numbers and all(isinstance(v, float) and v == v for v in numbers.values())
    assert isinstance(dom.build_demo(), gr.Blocks)
    assert callable(resolve(dom.train))
    for bench_name in dom.benchmarks:
        assert callable(dom.benchmark(bench_name)), bench_name


def test_every_domain_names_its_package():
    for entry in discover().values():
        assert entry.package, entry
        assert set(discover(entry.package)) >= {entry.name}


def test_unknown_domain_is_a_typed_error():
    with pytest.raises(UnknownNameError, match="installed: prior"):
        get_domain("no-such-domain")
    with pytest.raises(UnknownNameError, match="registers no domain"):
        discover("no-such-package")


def test_broken_plugin_fails_loudly():
    broken = DomainEntry("broken", EntryPoint("broken", "diffcore_no_such_module:domain", "diffcore.domains"))
    with pytest.raises(PluginError, match=r"broken.*failed to import"):
        broken.load()


def test_plugin_that_is_not_a_declaration_fails_loudly():
    half = DomainEntry("half", EntryPoint("half", "diffcore.errors:DiffcoreError", "diffcore.domains"))
    with pytest.raises(PluginError, match=r"not a diffcore.plugins.Domain"):
        half.load()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"name": "Bad Name"}, "lower case"),
        ({"title": " "}, "non-empty title"),
        ({"load": "diffcore.zoo.load_tinysd"}, "load must be a 'module:attribute'"),
        ({"smoke": None}, "smoke must be"),
        ({"benchmarks": {"x": "no colon"}}, r"benchmarks\['x'\]"),
        ({"benchmarks": {"X Y": "a:b"}}, "benchmark name"),
    ],
)
def test_bad_declarations_are_refused(change, match):
    with pytest.raises(PluginError, match=match):
        Domain(**{**DECL, **change})


def test_module_supplies_the_conventional_references():
    dom = Domain(name="edge", title="Edges", paper="A paper", module="diffedge", load="diffedge.detector:Detector.load")
    assert (dom.smoke, dom.demo, dom.train) == ("diffedge.smoke:smoke", "diffedge.ui:build_demo", "diffedge.train:main")
    assert dict(dom.benchmarks) == {"edge": "diffedge.bench:run"}
    given = Domain(**{**DECL, "module": "diffcore.prior", "train": "x.y:z", "benchmarks": {}})
    assert given.train == "x.y:z" and given.smoke == DECL["smoke"] and dict(given.benchmarks) == {}
    with pytest.raises(PluginError, match="smoke must be"):
        Domain(name="edge", title="Edges", paper="A paper", load="a:b")  # no module, no smoke


def test_references_resolve_lazily_and_fail_by_name():
    dom = Domain(**{**DECL, "benchmarks": {"x": "diffcore.no_such_module:run", "y": "diffcore.zoo:nothing_here"}})
    assert dict(dom.benchmarks) == {"x": "diffcore.no_such_module:run", "y": "diffcore.zoo:nothing_here"}
    with pytest.raises(PluginError, match=r"cannot import diffcore.no_such_module"):
        dom.benchmark("x")
    with pytest.raises(PluginError, match="has no attribute nothing_here"):
        dom.benchmark("y")
    with pytest.raises(UnknownNameError, match="has no benchmark 'z'"):
        dom.benchmark("z")
    assert resolve("diffcore.zoo:TinySD.latent_channels") is not None  # dotted attributes


def test_smoke_numbers_are_checked():
    dom = Domain(**{**DECL, "smoke": "math:sqrt"})
    with pytest.raises(TypeError):
        dom.run_smoke(None)
    bad = Domain(**{**DECL, "smoke": "builtins:dict"})
    with pytest.raises(PluginError, match="finite floats"):
        bad.run_smoke({"nan": float("nan")})
    assert bad.run_smoke({"ok": 1.5}) == {"ok": 1.5}
