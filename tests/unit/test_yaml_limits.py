"""Hostile YAML files are refused fast, with the place of the problem, never a traceback."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provnet import yamlio
from provnet.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bad-inventories"


def _load(tmp_path: Path, raw: bytes) -> object:
    path = tmp_path / "f.yml"
    path.write_bytes(raw)
    return yamlio.load(path)


def _refused(tmp_path: Path, raw: bytes) -> yamlio.YamlLimitError:
    with pytest.raises(yamlio.YamlLimitError) as info:
        _load(tmp_path, raw)
    return info.value


def test_ordinary_files_load(tmp_path: Path) -> None:
    raw = "\ufeffname: Xã Đồng Đăng\nip: &ip 198.18.0.1\nntp: [*ip, *ip]\nsecret: !vault |\n  $ANSIBLE_VAULT;1.1\n"
    assert _load(tmp_path, raw.encode("utf-8")) == {
        "name": "Xã Đồng Đăng", "ip": "198.18.0.1", "ntp": ["198.18.0.1", "198.18.0.1"],
        "secret": "$ANSIBLE_VAULT;1.1\n"}


def test_alias_bomb(tmp_path: Path) -> None:
    raw = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
    start = time.monotonic()
    exc = _refused(tmp_path, raw.encode())
    assert time.monotonic() - start < 1
    assert "more than 50,000 values once its aliases are expanded" in str(exc) and exc.obj == "e"


def test_recursive_alias(tmp_path: Path) -> None:
    exc = _refused(tmp_path, b"a: &a [1, *a]\n")
    assert str(exc) == "alias '*a' at line 1 refers to a collection that contains it" and exc.obj == "a[1]"


def test_twenty_megabyte_file_is_not_read(tmp_path: Path) -> None:
    exc = _refused(tmp_path, b"name: " + b"x" * 20_000_000 + b"\n")
    assert str(exc) == "is 20,000,007 bytes, over the limit of 131,072 for one inventory file"


def test_long_value(tmp_path: Path) -> None:
    exc = _refused(tmp_path, b"contact:\n  name: " + b"x" * 100_000 + b"\n")
    assert exc.obj == "contact.name" and str(exc) == "value at line 2 is 100,000 characters long, over the limit of 16,384"


@pytest.mark.parametrize("raw", [b"a: " + b"[" * 20000 + b"]" * 20000, b"a: " + b"{b: " * 20000 + b"1" + b"}" * 20000])
def test_deep_nesting(tmp_path: Path, raw: bytes) -> None:
    exc = _refused(tmp_path, raw + b"\n")
    assert str(exc) == "nested deeper than 64 levels at line 1" and exc.obj.endswith("…")


def test_not_utf8_and_control_characters_name_the_byte(tmp_path: Path) -> None:
    assert str(_refused(tmp_path, b"id: 1\nname: X\xe3\n")) == "is not UTF-8: byte 0xe3 at byte offset 13 (line 2)"
    assert str(_refused(tmp_path, "name: Xã\x07\n".encode())) == "control character U+0007 at byte offset 9 (line 1)"
    assert "U+0000" in str(_refused(tmp_path, "a: 1".encode("utf-16-le")))  # UTF-16 reads as NULs
    assert str(_refused(tmp_path, "a: 1".encode("utf-16"))).startswith("is UTF-16")


def test_merge_key_is_refused(tmp_path: Path) -> None:
    exc = _refused(tmp_path, b"base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert exc.obj == "other" and str(exc) == "YAML merge key '<<' at line 3 is not supported"
    assert _load(tmp_path, b'"<<": quoted is an ordinary key\n') == {"<<": "quoted is an ordinary key"}


def test_excerpt() -> None:
    assert yamlio.excerpt("short") == "'short'"
    long = yamlio.excerpt("x" * 10_000)
    assert len(long) == 60 and long.endswith("…")
    nested: list[object] = ["lol"] * 9
    for _ in range(8):
        nested = [nested] * 9  # 9**9 values if printed in full
    assert len(yamlio.excerpt(nested)) == 60


def test_schema_errors_quote_an_excerpt(tmp_path: Path) -> None:
    case = tmp_path / "inv"
    shutil.copytree(FIXTURES / "wrong-type", case)
    path = case / "sites" / "cao-loc.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("id: three", "id: " + "t" * 10_000), encoding="utf-8")
    result = CliRunner().invoke(app, ["inventory", "validate", "-i", str(case)])
    assert result.exit_code == 2
    line = next(line for line in result.stderr.splitlines() if "site 'cao-loc'.id" in line)
    assert "must be an integer, got 'tttt" in line and len(line) < 300


@pytest.mark.parametrize("name", ["alias-bomb", "deep-nesting", "not-utf8", "nul-byte", "merge-key"])
def test_validate_refuses_each_hostile_fixture_quickly(name: str) -> None:
    start = time.monotonic()
    result = CliRunner().invoke(app, ["inventory", "validate", "-i", str(FIXTURES / name)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert time.monotonic() - start < 2


def test_many_values_without_aliases(tmp_path: Path) -> None:
    exc = _refused(tmp_path, b"note: [" + b",".join([b"1"] * 60_000) + b"]\n")
    assert str(exc) == "holds more than 50,000 values (line 1)" and exc.obj == "note"
