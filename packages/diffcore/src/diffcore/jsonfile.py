"""A JSON object read from a file a checkpoint or a user supplies: anything amiss is a :class:`CheckpointError`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffcore.errors import CheckpointError


def read_object(path: str | Path, what: str = "") -> dict[str, Any]:
    """The JSON object in ``path``; unreadable, not JSON or not an object: ``CheckpointError`` naming ``what``."""
    f = Path(path)
    name = f"{what} {f}" if what else str(f)
    try:
        d = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {name}: {e}") from e
    if not isinstance(d, dict):
        raise CheckpointError(f"{name} is not a JSON object")
    return d
