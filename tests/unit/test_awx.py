"""awx/: the execution environment builds a context, the job templates point at real playbooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ansible_builder_create(tmp_path: Path) -> None:
    ctx = tmp_path / "context"
    subprocess.run([str(BIN / "ansible-builder"), "create", "-f", str(ROOT / "awx/execution-environment.yml"),
                    "-c", str(ctx)], check=True, capture_output=True, text=True, timeout=120)
    containerfile = next(p for p in (ctx / "Containerfile", ctx / "Dockerfile") if p.exists())
    assert "quay.io/ansible/awx-ee" in containerfile.read_text()
    reqs = (ctx / "_build/requirements.txt").read_text()
    assert "ansible-core==2.17.14" in reqs and "weasyprint==70.0" in reqs
    assert "openssh" in (ctx / "_build/bindep.txt").read_text()


def test_job_templates_and_schedule() -> None:
    data = yaml.safe_load((ROOT / "awx/job_templates.yml").read_text())
    books = {t["playbook"] for t in data["provnet_awx_job_templates"]}
    assert books == {"playbooks/site.yml", "playbooks/new_site.yml", "playbooks/compliance.yml"}
    assert all((ROOT / b).is_file() for b in books)
    names = {t["name"] for t in data["provnet_awx_job_templates"]}
    (nightly,) = data["provnet_awx_schedules"]
    assert nightly["unified_job_template"] in names
    assert "TZID=Asia/Ho_Chi_Minh:" in nightly["rrule"] and "T020000" in nightly["rrule"]
    assert "FREQ=DAILY" in nightly["rrule"]


@pytest.mark.parametrize("book", ["new_site.yml", "compliance.yml"])
def test_syntax_check(book: str) -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    r = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", str(ROOT / "playbooks" / book)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
