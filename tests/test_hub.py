"""The hub builds a tab per installed domain without launching a server."""

from diffcore.plugins import discover


def test_hub_has_a_tab_per_domain():
    import gradio as gr

    from diffcore.hub import build_hub

    hub = build_hub()
    # the hub's own tabs (elem_id "tab-<domain>"); a domain's demo may hold tabs of its own (the Prior's editors)
    tabs = [b for b in hub.blocks.values() if isinstance(b, gr.Tab) and (b.elem_id or "").startswith("tab-")]
    assert [t.id for t in tabs] == list(discover())
