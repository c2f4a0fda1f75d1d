"""The project's own Ansible modules imported in-process (compliance and tests reuse what the roles run)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def _find_utils() -> None:
    """``ansible.module_utils.provnet_*`` importable here as Ansible finds them (ansible.cfg ``module_utils``)."""
    import ansible.module_utils as mu

    utils = str(PLUGINS / "module_utils")
    if utils not in mu.__path__:
        mu.__path__.append(utils)


def utils(name: str) -> ModuleType:
    """``plugins/module_utils/<name>.py``: the logic the modules share."""
    _find_utils()
    return importlib.import_module(f"ansible.module_utils.{name}")


def load(name: str) -> ModuleType:
    """``plugins/modules/<name>.py``, with its module_utils."""
    _find_utils()
    spec = importlib.util.spec_from_file_location(f"_provnet_module_{name}", PLUGINS / "modules" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
