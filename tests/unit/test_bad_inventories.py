"""Every broken inventory in tests/fixtures/bad-inventories gives exactly its expected errors."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provnet.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bad-inventories"
CASES = sorted(p for p in FIXTURES.iterdir() if (p / "expected.txt").is_file())


def test_there_are_at_least_fifteen_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_reports_exactly_the_expected_problems(case: Path) -> None:
    result = CliRunner().invoke(app, ["inventory", "validate", "-i", str(case)])
    assert result.exit_code == 2
    lines = [l.replace(str(case), "{inv}") for l in result.stderr.splitlines() if l and "problem(s) in" not in l]
    expected = (case / "expected.txt").read_text(encoding="utf-8").splitlines()
    assert lines == expected
    for line in lines:  # each names the file, the object and the fix
        assert line.startswith("{inv}/") and " — fix: " in line


def test_json_output_lists_problems() -> None:
    case = FIXTURES / "duplicate-id"
    result = CliRunner().invoke(app, ["inventory", "validate", "-i", str(case), "--json"])
    assert result.exit_code == 2
    import json

    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert data["problems"][0]["message"].startswith("duplicate id 2")


def test_exit_status_from_the_real_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "provnet.cli", "inventory", "validate", "-i",
                           str(FIXTURES / "missing-district")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "parent district 'huyen-b' does not exist" in proc.stderr


def test_the_fixture_generator_is_in_sync(tmp_path: Path) -> None:
    sys.path.insert(0, str(FIXTURES.parent))
    import make_bad_inventories as gen

    for name, fn in gen.CASES.items():
        gen.write(tmp_path / name, fn)
        for f in (tmp_path / name).rglob("*.yml"):
            rel = f.relative_to(tmp_path / name)
            assert (FIXTURES / name / rel).read_bytes() == f.read_bytes(), f"{name}/{rel}"  # some are not UTF-8


# ansible-playbook reads the same folders through the inventory plugin: it must refuse each
# fixture with the same first problem, never a traceback. (Without provnet.yml Ansible never
# calls the plugin at all, which is why validate itself refuses that case.)
ANSIBLE_CASES = [c for c in CASES if (c / "provnet.yml").is_file()]


def _ansible_inventory(case: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "ANSIBLE_CONFIG": str(root / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(case), "--list"],
                          capture_output=True, text=True, env=env, cwd=root, timeout=120)


def test_ansible_inventory_refuses_every_fixture_with_its_problem() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(ANSIBLE_CASES, pool.map(_ansible_inventory, ANSIBLE_CASES)))
    for case, proc in results.items():
        first = (case / "expected.txt").read_text(encoding="utf-8").splitlines()[0]
        said = "".join(proc.stderr.split())  # Ansible wraps its warnings, hyphens included
        expected = "".join(first.replace("{inv}", str(case)).split(" — fix: ")[0].split())
        assert proc.returncode != 0, case.name
        assert "Traceback" not in proc.stderr, case.name
        assert expected in said, f"{case.name}: {proc.stderr[:600]}"
