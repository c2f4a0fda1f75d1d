"""Export the lab province as a containerlab topology, for users with Docker."""

from __future__ import annotations

from typing import Any

from provnet.model import Model

IMAGE = "provnet/lab-node:bookworm"


def containerlab(m: Model, name: str | None = None) -> dict[str, Any]:
    """The same nodes and links as `provnet lab up`, as a containerlab topology."""
    nodes: dict[str, Any] = {}
    for dev in m.nodes():
        entry: dict[str, Any] = {"kind": "linux", "image": IMAGE,
                                 "labels": {"provnet.role": dev.role, "provnet.platform": dev.platform}}
        if dev.oob_address is not None:
            entry["mgmt-ipv4"] = str(dev.oob_address.ip)
        nodes[dev.hostname] = entry
    links = [{"endpoints": [f"{l.a[0]}:{l.a[1]}", f"{l.b[0]}:{l.b[1]}"]} for l in m.links]
    topo: dict[str, Any] = {
        "name": name or f"provnet-{m.root.name}",
        "topology": {"kinds": {"linux": {"image": IMAGE}}, "nodes": nodes, "links": links},
    }
    if m.oob_network is not None:
        topo["mgmt"] = {"network": "provnet-oob", "ipv4-subnet": str(m.oob_network)}
    return topo
