"""diffcodec's test fixtures.

The codec tests run on the shipped weights by default. Set
``DIFFCODEC_TEST_WEIGHTS`` to a weights root (what ``diffcore train codec
--weights PATH`` or ``python -m diffcodec.train --smoke --weights PATH``
writes) to run them on other weights, e.g. the few-minute smoke ones.
"""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(scope="session")
def codec_path() -> str | None:
    """The weights root the tests load codecs from (None: the shipped weights)."""
    return os.environ.get("DIFFCODEC_TEST_WEIGHTS") or None


@pytest.fixture(scope="session")
def small_image() -> np.ndarray:
    """A 48×64 RGB crop of a real photo (uint8)."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.coffee()[100:148, 200:264])
