"""One error format for every command: problem lines on stderr, or one JSON object with --json.

Commands that reach devices or the lab must refuse a broken inventory before touching anything:
every function that would touch the host is replaced by one that fails the test.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provnet.cli import app
from provnet.errors import ProvnetError

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "fixtures" / "bad-inventories" / "duplicate-id"
LAB = REPO / "inventory" / "lab"
PROBLEM = "duplicate id 2"

# Every command that takes --json and an inventory (the inventory is appended).
JSON_COMMANDS = [
    ["inventory", "validate"], ["inventory", "ipplan"], ["inventory", "show"], ["inventory", "show", "cao-loc"],
    ["inventory", "vault"], ["status"],
    ["lab", "up"], ["lab", "status"], ["lab", "fault", "frr-stop", "cao-loc"], ["lab", "fault", "clear"],
    ["net", "render"], ["net", "diff"], ["net", "deploy", "--commit"], ["net", "rollback"], ["net", "backup"],
    ["verify"], ["vc", "readiness"],
    ["vc", "meeting", "start", "toan-tinh"], ["vc", "meeting", "status"], ["vc", "meeting", "mute", "cao-loc"],
    ["vc", "meeting", "unmute", "cao-loc"], ["vc", "meeting", "drop", "cao-loc"],
    ["vc", "meeting", "redial", "cao-loc"], ["vc", "meeting", "end"], ["vc", "meeting", "list"],
]
# Commands that take an inventory but no --json: the same problem lines on stderr.
TEXT_ONLY_COMMANDS = [["inventory", "next-id"], ["lab", "ssh", "cao-loc-ce"], ["lab", "export", "containerlab"],
                      ["net", "get"], ["vc", "meeting", "report", "1"]]


def _touched(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a command touched the host or the lab on an invalid inventory")


@pytest.fixture(autouse=True)
def _no_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVNET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROVNET_INVENTORY", raising=False)
    monkeypatch.delenv("PROVNET_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # net render's default build/ folder, if it were ever reached
    for target in ("provnet.lab.province.up", "provnet.lab.province.down", "provnet.lab.province.status",
                   "provnet.lab.province.check_range", "provnet.lab.faults.inject", "provnet.lab.faults.clear",
                   "provnet.engine.run.run", "provnet.render.render_device", "provnet.render.write",
                   "provnet.secrets.ensure", "provnet.status.collect", "provnet.vc.probes.lab_probes",
                   "provnet.vc.bridge.lab_bridge", "provnet.history.open_store", "subprocess.run", "os.execvp"):
        monkeypatch.setattr(target, _touched)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("command", JSON_COMMANDS, ids=" ".join)
def test_json_error_on_a_broken_inventory(command: list[str]) -> None:
    result = _invoke(*command, "-i", str(BAD), "--json")
    assert result.exit_code == 2, result.output
    data = json.loads(result.stdout)  # one object, nothing else on stdout
    assert data["ok"] is False and data["valid"] is False
    assert data["inventory"] == str(BAD) and data["error"].startswith(f"1 problem(s) in {BAD}")
    [problem] = data["problems"]
    assert set(problem) == {"file", "obj", "message", "fix"}
    assert problem["file"] == f"{BAD}/sites/dong-dang.yml" and problem["message"].startswith(PROBLEM)
    assert result.stderr == ""


@pytest.mark.parametrize("command", JSON_COMMANDS + TEXT_ONLY_COMMANDS, ids=" ".join)
def test_text_error_on_a_broken_inventory(command: list[str]) -> None:
    result = _invoke(*command, "-i", str(BAD))
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{BAD}/sites/dong-dang.yml: site 'dong-dang': {PROBLEM}") and " — fix: " in lines[0]
    assert lines[1].startswith(f"1 problem(s) in {BAD}")
    assert result.stdout == ""


def test_import_error_as_json(tmp_path: Path) -> None:
    result = _invoke("inventory", "import", "--province", "Atlantis", "-o", str(tmp_path / "inv"), "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and "no province matches 'Atlantis'" in data["error"] and data["problems"] == []


def test_a_command_error_as_json_and_as_text() -> None:
    as_json = _invoke("inventory", "show", "atlantis", "-i", str(LAB), "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout) == {
        "ok": False, "problems": [],
        "error": f"no device or site named 'atlantis' in {LAB}; see `provnet inventory show --json`"}
    as_text = _invoke("inventory", "show", "atlantis", "-i", str(LAB))
    assert as_text.exit_code == 2 and as_text.stdout == ""
    assert as_text.stderr.startswith("provnet: no device or site named 'atlantis'")


def test_an_unexpected_exception_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(m: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("provnet.cli.ipplan_rows", boom)
    text = _invoke("inventory", "ipplan", "-i", str(LAB))
    assert text.exit_code == 1 and isinstance(text.exception, SystemExit)
    assert text.stderr == "provnet: unexpected error: RuntimeError: boom (PROVNET_DEBUG=1 shows the traceback)\n"
    as_json = _invoke("inventory", "ipplan", "-i", str(LAB), "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"].startswith("unexpected error: RuntimeError: boom")
    monkeypatch.setenv("PROVNET_DEBUG", "1")
    debug = _invoke("inventory", "ipplan", "-i", str(LAB))
    assert isinstance(debug.exception, RuntimeError)


def test_an_escaped_provnet_error_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(m: Any) -> Any:
        raise ProvnetError("refused for a reason")

    monkeypatch.setattr("provnet.cli.ipplan_rows", refuse)
    text = _invoke("inventory", "ipplan", "-i", str(LAB))
    assert text.exit_code == 2 and text.stderr == "provnet: refused for a reason\n"
    as_json = _invoke("inventory", "ipplan", "-i", str(LAB), "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout) == {"ok": False, "error": "refused for a reason", "problems": []}


def test_json_mode_does_not_leak_into_the_next_command() -> None:
    _invoke("inventory", "show", "atlantis", "-i", str(LAB), "--json")
    result = _invoke("inventory", "next-id", "-i", str(BAD))
    assert result.exit_code == 2 and result.stdout == "" and PROBLEM in result.stderr


def test_the_province_file_stands_for_its_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = _invoke("inventory", "validate", "-i", str(LAB / "province.yml"))
    assert ok.exit_code == 0 and ok.stdout.startswith(f"{LAB}: valid")
    bad = _invoke("inventory", "ipplan", "-i", str(BAD / "province.yml"))
    assert bad.exit_code == 2 and "province.yml/" not in bad.stderr
    assert bad.stderr.startswith(f"{BAD}/sites/dong-dang.yml: site 'dong-dang': {PROBLEM}")
    monkeypatch.setenv("PROVNET_INVENTORY", str(LAB / "province.yml"))
    assert _invoke("inventory", "next-id").exit_code == 0


def test_another_file_is_refused_naming_the_fix() -> None:
    result = _invoke("inventory", "validate", "-i", str(LAB / "ids.yml"), "--json")
    assert result.exit_code == 2
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["file"] == str(LAB / "ids.yml") and "not an inventory folder" in problem["message"]
    assert "province.yml" in problem["fix"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("module", ["cli_common", "lab_cli", "net_cli", "verify_cli", "vc_cli"])
def test_no_module_imports_the_cli_back(module: str) -> None:
    assert "provnet.cli" not in _imports(REPO / "provnet" / f"{module}.py")
