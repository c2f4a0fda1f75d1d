"""The compliance_runner role's units, rendered from its own templates and checked by systemd's own tools."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "compliance_runner"
needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")


def render(tmp: Path, **overrides: object) -> tuple[Path, Path]:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    values = {**defaults, "ansible_managed": "managed", "compliance_runner_provnet": "/usr/bin/env",
              "compliance_runner_workdir": str(tmp), "compliance_runner_inventory": "/srv/provnet/inventory/thanhhoa",
              "compliance_runner_home": "/var/lib/provnet home", "compliance_runner_report_dir": str(tmp / "reports"),
              **overrides}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    paths = []
    for kind in ("service", "timer"):
        text = env.from_string((ROLE / f"templates/compliance.{kind}.j2").read_text()).render(**values)
        path = tmp / f"{values['compliance_runner_unit']}.{kind}"
        path.write_text(text)
        paths.append(path)
    return paths[0], paths[1]


def exec_start(service: Path) -> list[str]:
    text = service.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_the_run_is_locked_scoped_and_writes_every_report(tmp_path: Path) -> None:
    service, _ = render(tmp_path, compliance_runner_scope="district huyen-cao-loc")
    argv = exec_start(service)
    assert argv[:4] == ["/usr/bin/flock", "--nonblock", "--conflict-exit-code", "75"]
    assert argv[4] == f"{tmp_path}/reports/.lock" and argv[5] == "/usr/bin/env"
    assert argv[6:10] == ["compliance", "run", "-i", "/srv/provnet/inventory/thanhhoa"]
    assert "--scope=district huyen-cao-loc" in argv  # one argument, space and all
    for name, option in (("compliance.html", "--html"), ("compliance.md", "--md"), ("compliance.junit.xml", "--junit")):
        assert argv[argv.index(option) + 1] == f"{tmp_path}/reports/{name}"
    text = service.read_text()
    assert f"StandardOutput=truncate:{tmp_path}/reports/compliance.json" in text and "--json" in argv
    assert 'Environment="PROVNET_HOME=/var/lib/provnet home"' in text


@needs_systemd_analyze
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    service, timer = render(tmp_path, compliance_runner_environment={"PROVNET_STATE_DIR": "/var/lib/provnet"})
    proc = subprocess.run(["systemd-analyze", "verify", str(service), str(timer)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'Environment="PROVNET_STATE_DIR=/var/lib/provnet"' in service.read_text()


@needs_systemd_analyze
def test_systemd_refuses_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a unit whose program does not exist is refused."""
    service, timer = render(tmp_path)
    service.write_text(service.read_text().replace("/usr/bin/flock", "/usr/bin/no-such-flock"))
    proc = subprocess.run(["systemd-analyze", "verify", str(service), str(timer)], capture_output=True, text=True)
    assert proc.returncode != 0


@needs_systemd_analyze
def test_the_timer_fires_at_two_in_the_morning_in_the_province(tmp_path: Path) -> None:
    _, timer = render(tmp_path)
    text = timer.read_text()
    assert "Persistent=true" in text and "Unit=provnet-compliance.service" in text
    calendar = next(ln for ln in text.splitlines() if ln.startswith("OnCalendar=")).removeprefix("OnCalendar=")
    proc = subprocess.run(["systemd-analyze", "calendar", "--iterations=3", calendar],
                          capture_output=True, text=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    elapses = [ln for ln in proc.stdout.splitlines() if "UTC" in ln]
    assert len(elapses) == 3 and all("19:00:00 UTC" in ln for ln in elapses), proc.stdout  # 02:00 at UTC+7
