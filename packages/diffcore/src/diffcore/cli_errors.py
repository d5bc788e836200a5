"""How every diffsuite command reports a user's mistake: ``<prog>: error: <message>`` on stderr, exit status 2.

The same line and status argparse gives for a bad option, so a script sees one
convention whichever check caught the mistake.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from diffcore.errors import DiffcoreError

#: the exit status of a command refused for bad input (argparse's own)
USAGE_ERROR = 2


def report_error(prog: str, error: BaseException | str) -> int:
    """Print ``<prog>: error: <error>`` on stderr and return :data:`USAGE_ERROR` (for ``return`` from ``main``)."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return USAGE_ERROR


def run_command(prog: str, command: Callable[[], int], *, catch: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``command()``; a :class:`DiffcoreError` (or one of ``catch``) becomes :func:`report_error`'s line and status 2.

    Anything else propagates with its traceback: that is a bug, not the user's mistake.
    """
    try:
        return command()
    except (DiffcoreError, *catch) as e:
        return report_error(prog, e)
