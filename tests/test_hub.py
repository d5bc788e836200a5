"""The hub builds a tab per installed domain without launching a server."""

from diffcore.plugins import discover


def test_hub_has_a_tab_per_domain():
    import gradio as gr

    from diffcore.hub import build_hub

    hub = build_hub()
    tabs = [b for b in hub.blocks.values() if isinstance(b, gr.Tab)]
    assert [t.id for t in tabs] == list(discover())
