"""`provnet verify`: testinfra checks of every site, in parallel, with one root cause per site.

Registered as a command by provnet.cli.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

from provnet.cli_common import InventoryOpt, JsonOpt, emit_json, fail, load_model, out

SITES_TESTS = Path(__file__).resolve().parent.parent / "tests" / "sites"


def verify(
    inventory: Optional[Path] = InventoryOpt,
    site: Optional[str] = typer.Option(None, "--site", help="One site (slug)."),
    district: Optional[str] = typer.Option(None, "--district", help="A district and its communes (slug)."),
    all_: bool = typer.Option(False, "--all", help="Every site and the DC (the default)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML report."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write an HTML report (one row per site)."),
    workers: int = typer.Option(4, "--workers", "-n", help="Parallel pytest workers (0: none)."),
    as_json: bool = JsonOpt,
) -> None:
    """Is every site healthy, and if not, what exactly is broken?

    Runs the testinfra checks of tests/sites against the live network, one SSH connection
    per host, facts gathered once per host; prints per site the root cause (the lowest
    failing layer, expected vs observed) with the circuit id and contact, and marks the
    checks it blocks. Exit 1 when any site fails.
    """
    from provnet.verify import findings as fmod
    from provnet.verify import report

    m = load_model(inventory)
    limit = site or (district and f"district_{district}") or None
    if site and site not in m.sites:
        fail(f"no site '{site}' in {m.root}")
    if district and district not in m.sites:
        fail(f"no district '{district}' in {m.root}")
    Path(os.path.expanduser("~/.cache/provnet/cp")).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as tmp:
        findings_path = tmp.name
    argv = [sys.executable, "-m", "pytest", str(SITES_TESTS), "-p", "provnet.verify.plugin", "-p", "no:cacheprovider",
            "-q", "--no-header", "-rN", "--provnet-inventory", str(m.root), "-o", "console_output_style=classic"]
    if limit:
        argv += ["--provnet-limit", limit]
    if workers > 0:
        argv += ["-n", str(workers), "--dist", "loadgroup"]
    if junit:
        argv += ["--junitxml", str(junit)]
    env = {**os.environ, "PROVNET_FINDINGS": findings_path,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "ANSIBLE_CONFIG": str(SITES_TESTS.parents[1] / "ansible.cfg")}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=SITES_TESTS.parents[1])
    lines = Path(findings_path).read_text(encoding="utf-8").splitlines()
    os.unlink(findings_path)
    found = [fmod.Finding(**json.loads(l)) for l in lines if l.strip()]
    if not found:
        fail(f"no check ran:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}", code=1)
    sites = {s.slug: (s.name, s.circuit_id, f"{s.contact_name} {s.contact_phone}") for s in m.sites.values()}
    sites["dc"] = ("Trung tâm dữ liệu (DC)", "", "")
    verdicts = fmod.verdicts(found, sites)
    if html_out:
        html_out.write_text(report.as_html(verdicts, f"provnet verify — {m.name}"), encoding="utf-8")
    if as_json:
        emit_json(report.as_json(verdicts))
    else:
        out.print(report.table(verdicts))
        bad = [v for v in verdicts if not v.ok]
        out.print(f"{len(verdicts) - len(bad)} of {len(verdicts)} sites healthy; {len(found)} checks", markup=False)
    if any(not v.ok for v in verdicts):
        raise typer.Exit(1)
