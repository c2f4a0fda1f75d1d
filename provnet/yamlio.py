"""YAML reading and writing shared by the loader, the importer and the vault.

Reads Ansible's ``!vault`` tag (inline-encrypted values) as the ciphertext string,
so the loader can tell an encrypted secret from a plain one without a password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps ``!vault`` values as their ciphertext."""


def _vault(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("!vault", _vault)


class YamlSyntaxError(ValueError):
    """A file is not valid YAML; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[object, object]:
    """Like SafeLoader's, but a key given twice is an error (YAML keeps the last one silently)."""
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise YamlSyntaxError(f"duplicate key '{key}' (the second one would silently replace the first)",
                                  key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(path: Path) -> Any:
    """Parse one YAML file."""
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise YamlSyntaxError(str(exc.problem or exc), line) from None


def dump(data: Any) -> str:
    """Serialise for people: block style, key order kept, unicode as is."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
