"""Plugin contract: discovery, loud failures, and conformance of every installed domain."""

from importlib.metadata import EntryPoint

import pytest

from diffcore.errors import PluginError, UnknownNameError
from diffcore.plugins import Domain, DomainEntry, discover, get_domain

DOMAINS = list(discover())


def test_prior_is_installed_and_first():
    assert DOMAINS[0] == "prior"


@pytest.mark.parametrize("name", DOMAINS)
def test_domain_conformance(name):
    """Each installed domain loads, runs its smoke inputs on CPU and builds its demo."""
    import gradio as gr

    dom = get_domain(name)
    assert isinstance(dom, Domain)
    assert dom.name == name and dom.title and dom.paper
    loaded = dom.load("cpu")
    numbers = dom.smoke(loaded)
    assert numbers and all(isinstance(v, float) and v == v for v in numbers.values())
    assert isinstance(dom.build_demo(), gr.Blocks)
    for bench_name, bench in dom.benchmarks.items():
        assert callable(bench), bench_name


def test_unknown_domain_is_a_typed_error():
    with pytest.raises(UnknownNameError, match="installed: prior"):
        get_domain("no-such-domain")


def test_broken_plugin_fails_loudly():
    broken = DomainEntry("broken", EntryPoint("broken", "diffcore_no_such_module:domain", "diffcore.domains"))
    with pytest.raises(PluginError, match="broken.*failed to import"):
        broken.load()


def test_plugin_missing_contract_fails_loudly():
    half = DomainEntry("half", EntryPoint("half", "diffcore.errors:DiffcoreError", "diffcore.domains"))
    with pytest.raises(PluginError, match="lacks"):
        half.load()
