"""The diffsuite hub: one Gradio page, a tab per installed domain (``uv run diffsuite``).

Domains add their tab through the plugin contract (:mod:`diffcore.plugins`);
the hub never names them. Gradio is imported lazily (the ``app`` extra).
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import socket
import sys
from typing import Any

from diffcore.cli_errors import run_command
from diffcore.errors import InvalidInputError
from diffcore.plugins import discover, get_domain
from diffcore.validate import check_count, count_arg

#: the largest upload the hub and every app accept (an image or a blob); Gradio refuses more before writing it
MAX_UPLOAD = "32mb"


def build_hub() -> Any:
    """Build (not launch) the hub's ``gr.Blocks``."""
    from diffcore.offline_gradio import DELETE_CACHE, gr

    domains = [entry.load() for entry in discover().values()]
    # built outside the hub's context: a Blocks created inside another renders itself there
    demos = [dom.build_demo() for dom in domains]
    with gr.Blocks(title="diffsuite", delete_cache=DELETE_CACHE) as hub:
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


def check_address(host: str, port: int) -> None:
    """Refuse, before any demo is built (tens of seconds), a port out of range or an address already in use."""
    check_count(port, "port", high=65535)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InvalidInputError(f"cannot serve on host {host!r}: {e}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        try:
            s.bind(address)
        except OSError as e:
            busy = e.errno == errno.EADDRINUSE
            raise InvalidInputError(
                f"{host}:{port} is already in use: stop what runs there or pick another --port"
                if busy
                else f"cannot serve on {host}:{port}: {e.strerror}"
            ) from None


def _log_to_stderr() -> None:
    """The apps' log (``diffsuite.app``: user errors in one line, faults with a traceback), timestamped, on stderr."""
    log = logging.getLogger("diffsuite.app")
    if not log.handlers:
        out = logging.StreamHandler()
        out.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(out)
        log.setLevel(logging.INFO)
        log.propagate = False


def launch(domain: str | None = None, *, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the hub, or a single domain's demo when ``domain`` is given."""
    check_address(host, port)
    _log_to_stderr()
    # `kill` (SIGTERM) exits like Ctrl-C: atexit handlers run, and the apps' work folders go
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    demo = get_domain(domain).build_demo() if domain else build_hub()
    demo.queue(default_concurrency_limit=2).launch(server_name=host, server_port=port, show_error=True, max_file_size=MAX_UPLOAD)


def add_serve_args(p: argparse.ArgumentParser) -> None:
    """``[DOMAIN] [--host H] [--port P]``, shared by ``diffsuite`` and ``diffcore serve``."""
    p.add_argument("domain", nargs="?", default=None, help="serve one domain's app instead of the hub")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=count_arg("--port", high=65535), default=7860)


def main(argv: list[str] | None = None) -> int:
    """``diffsuite [--host H] [--port P] [DOMAIN]``: start the suite."""
    p = argparse.ArgumentParser(prog="diffsuite", description="Start the diffsuite hub (http://127.0.0.1:7860).")
    add_serve_args(p)
    a = p.parse_args(argv)

    def serve() -> int:
        launch(a.domain, host=a.host, port=a.port)
        return 0

    return run_command("diffsuite", serve)
