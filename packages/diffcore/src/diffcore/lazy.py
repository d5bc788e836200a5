"""Lazy package exports (PEP 562): ``import pkg`` stays cheap, ``pkg.Name`` imports its module on first use.

A domain package's ``__init__`` names what it exports and where it lives::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"diffcodec.codec": ["Codec", "RateInfo"]})

so ``diffcodec --help`` or ``from diffcodec.errors import CodecError`` does not pay
for torch and diffusers, while ``from diffcodec import Codec`` works as before.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``{module: [name, ...]}``."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)
