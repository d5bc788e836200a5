"""The hub builds a tab per installed domain without launching a server."""

from diffcore.plugins import discover


def test_hub_has_a_tab_per_domain():
    import gradio as gr

    from diffcore.hub import build_hub

    hub = build_hub()
    # the hub's own tabs (elem_id "tab-<domain>"); a domain's demo may hold tabs of its own (the Prior's editors)
    tabs = [b for b in hub.blocks.values() if isinstance(b, gr.Tab) and (b.elem_id or "").startswith("tab-")]
    assert [t.id for t in tabs] == list(discover())


def test_every_endpoint_has_a_chosen_api_name():
    """gradio_client users see named endpoints (``/codec_compress``), never ``/_run``, ``/_run_1`` or ``/lambda``."""
    from diffcore.hub import build_hub

    hub = build_hub()
    public = [fn for fn in hub.fns.values() if fn.api_visibility == "public"]
    names = [fn.api_name for fn in public]
    assert len(public) >= 5 and len(set(names)) == len(names), names
    domains = set(discover())
    for name in names:
        prefix = name.split("_", 1)[0]
        assert prefix in domains, f"{name}: an endpoint is named after its domain"
        assert "lambda" not in name and not name.rstrip("0123456789").endswith("_"), name
