"""Programs provnet runs on other hosts (``python3 -c <source> ARGS…`` over SSH).

Each module here is self-contained — standard library only, no provnet imports — so its
own source is the program: :func:`source` reads it, ``main()`` runs it on the far host.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import ModuleType


def source(module: ModuleType) -> str:
    """The text of a remote program's module, as shipped."""
    return _read(str(module.__file__))


@lru_cache(maxsize=None)
def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")
