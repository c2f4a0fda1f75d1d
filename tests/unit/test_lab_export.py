"""`provnet lab export containerlab` writes the same topology as `lab up`, structurally valid."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from provnet import model
from provnet.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_containerlab_topology(tmp_path: Path) -> None:
    out = tmp_path / "lab.clab.yml"
    result = CliRunner().invoke(app, ["lab", "export", "containerlab", "-i", str(REPO / "inventory/lab"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    topo = yaml.safe_load(out.read_text())
    m = model.load(REPO / "inventory" / "lab")
    assert set(topo) >= {"name", "topology", "mgmt"}
    nodes = topo["topology"]["nodes"]
    assert set(nodes) == {d.hostname for d in m.nodes()}
    assert all(n["kind"] == "linux" and n["mgmt-ipv4"].startswith("198.19.") for n in nodes.values())
    endpoints = [tuple(e.split(":")) for l in topo["topology"]["links"] for e in l["endpoints"]]
    assert len(endpoints) == 2 * len(m.links)
    ifaces = {(d.hostname, i.name) for d in m.nodes() for i in d.interfaces}
    assert all(e in ifaces for e in endpoints)
    assert len(set(endpoints)) == len(endpoints)  # no interface cabled twice


def test_lab_exec_names_a_bad_node_without_a_traceback() -> None:
    """`lab exec -i …` (an option where the node goes) is a usage error, not a ValueError."""
    result = CliRunner().invoke(app, ["lab", "exec", "-i", "inventory/lab"])
    assert result.exit_code == 2
    assert "'-i' is not a node name" in result.stderr and "provnet lab exec NODE" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
