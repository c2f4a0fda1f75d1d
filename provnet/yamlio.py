"""YAML reading and writing shared by the loader, the importer and the vault.

Reads Ansible's ``!vault`` tag (inline-encrypted values) as the ciphertext string,
so the loader can tell an encrypted secret from a plain one without a password.

Every file is read with limits, so a hostile or broken file is refused in
milliseconds with the place of the problem instead of hanging or tracing back:
its size, UTF-8, control characters, nesting depth, one value's length and the
number of values after expanding aliases (an "alias bomb" is a few hundred bytes
that expand to billions). YAML merge keys (``<<``) are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import MappingEndEvent, SequenceEndEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_FILE_BYTES = 128 * 1024  # inventory files are a few KB; PyYAML reads a dense one at ~100-300 KB/s
MAX_DEPTH = 64
MAX_VALUE_CHARS = 16 * 1024  # a vaulted key or certificate fits
MAX_VALUES = 50_000  # values in one file once aliases are expanded
EXCERPT_CHARS = 60

# What YAML 1.1 calls printable (PyYAML's Reader refuses the rest, without a byte offset).
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MERGE_TAG = "tag:yaml.org,2002:merge"


def excerpt_text(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters with an ellipsis, for error messages."""
    return excerpt_text(_short_repr(value, limit) if isinstance(value, (dict, list)) else repr(value), limit)


def _short_repr(value: dict[Any, Any] | list[Any], limit: int) -> str:
    # repr() of an expanded alias bomb would build gigabytes: stop at the limit
    parts: list[str] = []
    size = 0
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        piece = (f"{key!r}: " if isinstance(value, dict) else "") + (
            _short_repr(item, limit) if isinstance(item, (dict, list)) else repr(item))
        parts.append(piece)
        size += len(piece) + 2
        if size > limit:
            break
    open_, close = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return open_ + ", ".join(parts) + close


class YamlSyntaxError(ValueError):
    """A file is not valid YAML; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class YamlLimitError(YamlSyntaxError):
    """A file is refused before it is used: too big, too deep, not UTF-8, an alias bomb, a merge key.

    ``obj`` is where in the file (a key path, or ``"file"``), ``fix`` what to do about it.
    """

    def __init__(self, message: str, fix: str, *, obj: str = "file", line: int | None = None) -> None:
        super().__init__(message, line)
        self.obj = obj
        self.fix = fix


def _line(node_or_event: Any) -> int:
    return int(node_or_event.start_mark.line) + 1


class _Loader(yaml.SafeLoader):
    """A safe loader that keeps ``!vault`` values as their ciphertext and enforces the limits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []  # keys from the root to the node being composed
        self._sizes: dict[int, int] = {}  # id(node) → values under it, aliases expanded
        self._aliased = False

    def _where(self) -> str:
        text = ""
        for part in self._path[:6]:
            text += part if part.startswith("[") else ("." if text else "") + part
        if len(self._path) > 6:
            text += "…"
        return excerpt_text(text) if text else "file"

    def _limit(self, message: str, fix: str, line: int) -> YamlLimitError:
        return YamlLimitError(message, fix, obj=self._where(), line=line)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            self._aliased = True
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:
                raise self._limit(f"alias '*{excerpt_text(str(event.anchor))}' at line {_line(event)} "
                                  "refers to a collection that contains it",
                                  "remove the recursive alias", _line(event))
            return node
        if len(self._path) >= MAX_DEPTH and self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            raise self._limit(f"nested deeper than {MAX_DEPTH} levels at line {_line(self.peek_event())}",
                              "flatten the structure: inventory files nest a few levels only",
                              _line(self.peek_event()))
        return super().compose_node(parent, index)  # type: ignore[no-any-return]

    def compose_scalar_node(self, anchor: str | None) -> ScalarNode:
        node: ScalarNode = super().compose_scalar_node(anchor)
        if len(node.value) > MAX_VALUE_CHARS:
            raise self._limit(f"value at line {_line(node)} is {len(node.value):,} characters long, "
                              f"over the limit of {MAX_VALUE_CHARS:,}",
                              "shorten the value (or keep large data outside the inventory)", _line(node))
        self._sizes[id(node)] = 1
        return node

    def _count(self, node: Node, size: int, child: Node) -> int:
        """``size`` plus the values under ``child``; refused as soon as it passes the limit."""
        size += self._sizes[id(child)]
        if size > MAX_VALUES and self._aliased:
            raise self._limit(f"holds more than {MAX_VALUES:,} values once its aliases are expanded "
                              f"(line {_line(node)}: an alias bomb?)",
                              "write the values out; use anchors (&) and aliases (*) only for small repeated values",
                              _line(node))
        if size > MAX_VALUES:
            raise self._limit(f"holds more than {MAX_VALUES:,} values (line {_line(node)})",
                              "keep bulk data outside the inventory: a file holds a few hundred values", _line(node))
        return size

    def compose_sequence_node(self, anchor: str | None) -> SequenceNode:
        start = self.get_event()
        node = SequenceNode(start.tag or self.resolve(SequenceNode, None, start.implicit), [],
                            start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        index, size = 0, 1
        while not self.check_event(SequenceEndEvent):
            self._path.append(f"[{index}]")
            node.value.append(self.compose_node(node, index))
            self._path.pop()
            size = self._count(node, size, node.value[-1])
            index += 1
        node.end_mark = self.get_event().end_mark
        self._sizes[id(node)] = size
        return node

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        start = self.get_event()
        node = MappingNode(start.tag or self.resolve(MappingNode, None, start.implicit), [],
                           start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        size = 1
        while not self.check_event(MappingEndEvent):
            key = self.compose_node(node, None)
            size = self._count(node, size, key)
            if key.tag == _MERGE_TAG:
                raise self._limit(f"YAML merge key '<<' at line {_line(key)} is not supported",
                                  "write the keys out in full (a merge key hides which values apply)",
                                  _line(key))
            self._path.append(str(key.value) if isinstance(key, ScalarNode) else "?")
            value = self.compose_node(node, key)
            self._path.pop()
            size = self._count(node, size, value)
            node.value.append((key, value))
        node.end_mark = self.get_event().end_mark
        self._sizes[id(node)] = size
        return node


def _vault(loader: SafeConstructor, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("!vault", _vault)


def _mapping(loader: SafeConstructor, node: yaml.MappingNode) -> dict[object, object]:
    """Like SafeLoader's, but a key given twice is an error (YAML keeps the last one silently)."""
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise YamlSyntaxError(f"duplicate key '{excerpt_text(str(key))}' (the second one would silently "
                                  "replace the first)", key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _offset_line(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def decode(raw: bytes) -> str:
    """UTF-8 text of a file, refusing bytes that are not UTF-8 and control characters (with the byte offset)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise YamlLimitError("is UTF-16 (its first bytes are a UTF-16 byte order mark), not UTF-8",
                             "save the file as UTF-8", line=1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 1].hex()
        raise YamlLimitError(f"is not UTF-8: byte 0x{bad} at byte offset {exc.start} "
                             f"(line {_offset_line(raw, exc.start)})",
                             "save the file as UTF-8 (Vietnamese text in another encoding must be converted)",
                             line=_offset_line(raw, exc.start)) from None
    start = 1 if text.startswith("\ufeff") else 0  # a leading byte order mark is allowed
    match = _NON_PRINTABLE.search(text, start)
    if match:
        offset = len(text[: match.start()].encode("utf-8"))
        raise YamlLimitError(f"control character U+{ord(match.group()):04X} at byte offset {offset} "
                             f"(line {_offset_line(raw, offset)})",
                             "remove it (a NUL byte often means a binary or UTF-16 file saved under this name)",
                             line=_offset_line(raw, offset))
    return text[start:]


def loads(text: str) -> Any:
    """Parse YAML text with the limits (no file size check)."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise YamlSyntaxError(excerpt_text(str(exc.problem or exc), 120), line) from None
    except yaml.YAMLError as exc:  # pragma: no cover - decode() refuses what the Reader would
        raise YamlSyntaxError(excerpt_text(str(exc), 120), None) from None
    finally:
        loader.dispose()


def load(path: Path) -> Any:
    """Parse one YAML file; raise :class:`YamlSyntaxError` (or :class:`YamlLimitError`) when it is refused."""
    with Path(path).open("rb") as fh:
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        size = Path(path).stat().st_size
        raise YamlLimitError(f"is {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} for one inventory file",
                             "split it or remove the oversized value (limits: docs/inventory.md)")
    return loads(decode(raw))


def dump(data: Any) -> str:
    """Serialise for people: block style, key order kept, unicode as is."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
