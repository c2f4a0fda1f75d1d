"""The playbooks parse, run in the documented order, and every play targets the inventory's groups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=REPO, capture_output=True, text=True,
                          env=env, check=False, timeout=120)


def test_playbooks_pass_syntax_check() -> None:
    for book in ("site.yml", "dc.yml", "sites.yml"):
        res = _run("--syntax-check", f"playbooks/{book}")
        assert res.returncode == 0, res.stdout + res.stderr


def test_site_runs_dc_servers_then_dc_network_then_sites() -> None:
    res = _run("--list-tasks", "playbooks/site.yml")
    assert res.returncode == 0, res.stderr
    plays = [line.split("): ", 1)[1].split("\t")[0].strip() for line in res.stdout.splitlines() if "play #" in line]
    order = [p.split(" | ")[0] for p in plays]
    assert order == sorted(order, key=["DC servers", "DC network", "Sites"].index), plays
    sites = [p for p in plays if p.startswith("Sites")]
    assert sites == ["Sites | CE routers through the engine", "Sites | video-conference endpoints", "Sites | base"]


def test_limit_to_one_site_targets_only_its_hosts() -> None:
    res = _run("--list-hosts", "--limit", "site_dong_dang", "playbooks/site.yml")
    assert res.returncode == 0, res.stderr
    hosts = {line.strip() for line in res.stdout.splitlines() if line.startswith("      ")}
    assert hosts == {"dong-dang-ce", "dong-dang-vc"}


def test_network_devices_go_through_the_engine_only() -> None:
    for book in ("dc.yml", "sites.yml"):
        for play in yaml.safe_load((REPO / "playbooks" / book).read_text()):
            for task in play.get("tasks", []):
                if "provnet_config" in task:
                    assert "template" not in task and "copy" not in task


def test_tags_per_layer() -> None:
    res = _run("--list-tags", "playbooks/site.yml")
    for tag in ("dc", "dc_servers", "dc_network", "sites", "site_network", "site_base", "endpoints"):
        assert tag in res.stdout, tag
