"""Every module of the project documents itself as ansible-doc reads it: DOCUMENTATION and RETURN parse as YAML,
with plain-text descriptions (a stray `: ` inside a description item turns it into a mapping)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from provnet.plugin_modules import PLUGINS, load

MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py"))


def _texts(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", MODULES)
def test_documentation_parses_with_text_descriptions(name: str) -> None:
    mod = load(name)
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["module"] == name and doc["short_description"]
    assert all(isinstance(t, str) for t in _texts(doc["description"])), doc["description"]
    for option, spec in (doc.get("options") or {}).items():
        assert all(isinstance(t, str) for t in _texts(spec["description"])), (name, option)
    for key, spec in (yaml.safe_load(getattr(mod, "RETURN", "") or "{}") or {}).items():
        assert all(isinstance(t, str) for t in _texts(spec["description"])), (name, key)


def test_every_module_is_covered() -> None:
    assert {"provnet_host", "provnet_files", "provnet_units", "provnet_packages"} <= set(MODULES)
    assert Path(PLUGINS / "modules").is_dir()
