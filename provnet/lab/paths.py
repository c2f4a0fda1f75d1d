"""Where the lab keeps its state on the host (never inside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/provnet")


def state_root() -> Path:
    """Return the lab's state directory: ``$PROVNET_STATE_DIR`` or ``/var/lib/provnet``."""
    value = os.environ.get("PROVNET_STATE_DIR", "").strip()
    return Path(value) if value else DEFAULT_STATE_DIR
