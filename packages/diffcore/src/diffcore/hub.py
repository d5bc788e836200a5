"""The diffsuite hub: one Gradio page, a tab per installed domain (``uv run diffsuite``).

Domains add their tab through the plugin contract (:mod:`diffcore.plugins`);
the hub never names them. Gradio is imported lazily (the ``app`` extra).
"""

from __future__ import annotations

import argparse
from typing import Any

from diffcore.plugins import discover, get_domain


def build_hub() -> Any:
    """Build (not launch) the hub's ``gr.Blocks``."""
    from diffcore.offline_gradio import gr

    domains = [entry.load() for entry in discover().values()]
    # built outside the hub's context: a Blocks created inside another renders itself there
    demos = [dom.build_demo() for dom in domains]
    with gr.Blocks(title="diffsuite") as hub:
        gr.Markdown(
            "# diffsuite\nEfficient diffusion applications on one shared core. "
            f"Installed domains: {', '.join(d.title for d in domains)}."
        )
        with gr.Tabs():
            for dom, demo in zip(domains, demos):
                with gr.Tab(dom.title, id=dom.name, elem_id=f"tab-{dom.name}"):
                    gr.Markdown(f"*{dom.paper}*")
                    demo.render()
    return hub


def launch(domain: str | None = None, *, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the hub, or a single domain's demo when ``domain`` is given."""
    demo = get_domain(domain).build_demo() if domain else build_hub()
    demo.queue(default_concurrency_limit=2).launch(server_name=host, server_port=port, show_error=True)


def main(argv: list[str] | None = None) -> None:
    """``diffsuite [--host H] [--port P] [DOMAIN]``: start the suite."""
    p = argparse.ArgumentParser(prog="diffsuite", description="Start the diffsuite hub (http://127.0.0.1:7860).")
    p.add_argument("domain", nargs="?", default=None, help="serve one domain's app instead of the hub")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    a = p.parse_args(argv)
    launch(a.domain, host=a.host, port=a.port)
